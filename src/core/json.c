/* JSON on top of cJSON: a linear pre-scan enforces the limits cJSON lacks (it recurses once per
 * nesting level and accepts raw control bytes and invalid UTF-8 in strings) before the bytes
 * reach it; getters turn type mismatches into messages a client can act on. */
#include "core/json.h"

#include "core/common.h"
#include "core/utf8.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static void set_err(char *err, size_t err_len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t err_len, const char *fmt, ...) {
    if (!err || err_len == 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, err_len, fmt, ap);
    va_end(ap);
}

/* One pass over the bytes: nesting depth and string contents. cJSON checks the grammar. */
static int prescan(const unsigned char *s, size_t len, unsigned max_depth, char *err,
                   size_t err_len) {
    unsigned depth = 0;
    bool in_string = false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = s[i];
        if (in_string) {
            if (c == '\\') {
                /* cJSON keeps strings NUL-terminated, so \u0000 would silently cut one short. */
                if (len - i >= 6 && memcmp(s + i + 1, "u0000", 5) == 0) {
                    set_err(err, err_len, "JSON strings must not contain \\u0000 (byte %zu)", i);
                    return SL_EPARSE;
                }
                i++; /* the escaped byte; cJSON validates the escape itself */
                if (i < len && s[i] < 0x20) {
                    set_err(err, err_len, "invalid JSON: control character in a string at byte %zu",
                            i);
                    return SL_EPARSE;
                }
            } else if (c == '"') {
                in_string = false;
            } else if (c < 0x20) {
                set_err(err, err_len, "invalid JSON: control character in a string at byte %zu", i);
                return SL_EPARSE;
            } else if (c >= 0x80) {
                size_t n = sl_utf8_seq(s + i, len - i, NULL);
                if (n == 0) {
                    set_err(err, err_len, "invalid JSON: invalid UTF-8 at byte %zu", i);
                    return SL_EPARSE;
                }
                i += n - 1;
            }
        } else if (c == '"') {
            in_string = true;
        } else if (c == '[' || c == '{') {
            if (++depth > max_depth) {
                set_err(err, err_len, "JSON nested deeper than %u levels at byte %zu", max_depth,
                        i);
                return SL_ELIMIT;
            }
        } else if ((c == ']' || c == '}') && depth > 0) {
            depth--;
        }
    }
    return SL_OK;
}

int sl_json_parse_ex(const char *data, size_t len, const sl_json_limits_t *lim, cJSON **out,
                     char *err, size_t err_len) {
    size_t max_bytes = lim && lim->max_bytes ? lim->max_bytes : SL_JSON_MAX_BYTES;
    unsigned max_depth = lim && lim->max_depth ? lim->max_depth : SL_JSON_MAX_DEPTH;
    if (max_depth > SL_JSON_MAX_DEPTH) max_depth = SL_JSON_MAX_DEPTH;
    *out = NULL;
    if (len > max_bytes) {
        set_err(err, err_len, "JSON of %zu bytes is larger than the limit of %zu bytes", len,
                max_bytes);
        return SL_ELIMIT;
    }
    if (len == 0 || !data) {
        set_err(err, err_len, "invalid JSON: empty input");
        return SL_EPARSE;
    }
    int rc = prescan((const unsigned char *)data, len, max_depth, err, err_len);
    if (rc != SL_OK) return rc;

    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(data, len, &end, 0);
    if (!root) {
        size_t off = end && end >= data && end <= data + len ? (size_t)(end - data) : 0;
        set_err(err, err_len, "invalid JSON at byte %zu", off);
        return SL_EPARSE;
    }
    size_t off = (size_t)(end - data);
    while (off < len &&
           (data[off] == ' ' || data[off] == '\t' || data[off] == '\n' || data[off] == '\r'))
        off++;
    if (off < len) {
        cJSON_Delete(root);
        set_err(err, err_len, "invalid JSON: unexpected data after the value at byte %zu", off);
        return SL_EPARSE;
    }
    *out = root;
    return SL_OK;
}

int sl_json_parse(const char *data, size_t len, cJSON **out, char *err, size_t err_len) {
    return sl_json_parse_ex(data, len, NULL, out, err, err_len);
}

static const char *kind(const cJSON *v) {
    if (cJSON_IsNull(v)) return "null";
    if (cJSON_IsBool(v)) return "a boolean";
    if (cJSON_IsNumber(v)) return "a number";
    if (cJSON_IsString(v)) return "a string";
    if (cJSON_IsArray(v)) return "an array";
    if (cJSON_IsObject(v)) return "an object";
    return "an invalid value";
}

/* The field, or NULL with *rc and err set. */
static const cJSON *get(const cJSON *obj, const char *name, int *rc, char *err, size_t err_len) {
    if (!cJSON_IsObject(obj)) {
        set_err(err, err_len, "expected a JSON object with field '%s', got %s", name,
                obj ? kind(obj) : "nothing");
        *rc = SL_EINVAL;
        return NULL;
    }
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(obj, name);
    if (!f) {
        set_err(err, err_len, "missing field '%s'", name);
        *rc = SL_ENOENT;
    }
    return f;
}

static int wrong_type(const char *name, const char *expected, const cJSON *got, char *err,
                      size_t err_len) {
    set_err(err, err_len, "field '%s' must be %s, got %s", name, expected, kind(got));
    return SL_EINVAL;
}

int sl_json_get_string(const cJSON *obj, const char *name, const char **out, char *err,
                       size_t err_len) {
    int rc = SL_OK;
    const cJSON *f = get(obj, name, &rc, err, err_len);
    if (!f) return rc;
    if (!cJSON_IsString(f) || !f->valuestring) return wrong_type(name, "a string", f, err, err_len);
    *out = f->valuestring;
    return SL_OK;
}

int sl_json_get_int64(const cJSON *obj, const char *name, int64_t min, int64_t max, int64_t *out,
                      char *err, size_t err_len) {
    int rc = SL_OK;
    const cJSON *f = get(obj, name, &rc, err, err_len);
    if (!f) return rc;
    if (!cJSON_IsNumber(f)) return wrong_type(name, "an integer", f, err, err_len);
    double d = f->valuedouble;
    if (!isfinite(d) || d != floor(d)) {
        set_err(err, err_len, "field '%s' must be an integer", name);
        return SL_EINVAL;
    }
    /* At 2^53 a double stops telling neighbouring integers apart: 2^53 + 1 reads as 2^53. */
    if (d >= (double)SL_JSON_MAX_EXACT_INT || d <= -(double)SL_JSON_MAX_EXACT_INT) {
        set_err(err, err_len, "field '%s' is too large (integers must be below 2^53)", name);
        return SL_ERANGE;
    }
    if ((int64_t)d < min || (int64_t)d > max) {
        set_err(err, err_len, "field '%s' must be between %lld and %lld", name, (long long)min,
                (long long)max);
        return SL_ERANGE;
    }
    *out = (int64_t)d;
    return SL_OK;
}

int sl_json_get_double(const cJSON *obj, const char *name, double *out, char *err, size_t err_len) {
    int rc = SL_OK;
    const cJSON *f = get(obj, name, &rc, err, err_len);
    if (!f) return rc;
    if (!cJSON_IsNumber(f)) return wrong_type(name, "a number", f, err, err_len);
    if (!isfinite(f->valuedouble)) {
        set_err(err, err_len, "field '%s' is out of the range of a double", name);
        return SL_ERANGE;
    }
    *out = f->valuedouble;
    return SL_OK;
}

int sl_json_get_bool(const cJSON *obj, const char *name, bool *out, char *err, size_t err_len) {
    int rc = SL_OK;
    const cJSON *f = get(obj, name, &rc, err, err_len);
    if (!f) return rc;
    if (!cJSON_IsBool(f)) return wrong_type(name, "true or false", f, err, err_len);
    *out = cJSON_IsTrue(f);
    return SL_OK;
}

int sl_json_get_array(const cJSON *obj, const char *name, const cJSON **out, size_t *n, char *err,
                      size_t err_len) {
    int rc = SL_OK;
    const cJSON *f = get(obj, name, &rc, err, err_len);
    if (!f) return rc;
    if (!cJSON_IsArray(f)) return wrong_type(name, "an array", f, err, err_len);
    *out = f;
    if (n) *n = (size_t)cJSON_GetArraySize(f);
    return SL_OK;
}

int sl_json_get_object(const cJSON *obj, const char *name, const cJSON **out, char *err,
                       size_t err_len) {
    int rc = SL_OK;
    const cJSON *f = get(obj, name, &rc, err, err_len);
    if (!f) return rc;
    if (!cJSON_IsObject(f)) return wrong_type(name, "an object", f, err, err_len);
    *out = f;
    return SL_OK;
}

int sl_json_print(const cJSON *item, sl_buf_t *out) {
    char *s = cJSON_PrintUnformatted(item);
    if (!s) return SL_ENOMEM;
    sl_buf_puts(out, s);
    cJSON_free(s);
    return SL_OK;
}
