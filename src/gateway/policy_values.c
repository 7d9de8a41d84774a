/* Scalar readers for the gateway policy parser (see policy_internal.h): durations ("250ms",
 * "15s", "2m"), sizes ("64MiB"), plain numbers, two-decimal percents, names, addresses and the
 * main config's ${} references, each failing with a "file:line: message" naming the key. The
 * syntaxes match core/config_options.c's, whose parsers are not exported. */
#include "gateway/names.h"
#include "gateway/policy_internal.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MS_S 1000ull
#define MS_M (60ull * MS_S)
#define MS_H (60ull * MS_M)

#define SECRET_FILE_MAX (64u << 10)

void sl_gw__err(sl_gw__pc_t *c, const sl_yaml_node_t *at, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    sl_yaml_verror(&c->ye, at, SL_EINVAL, fmt, ap);
    va_end(ap);
}

bool sl_gw__want(sl_gw__pc_t *c, const sl_yaml_node_t *n, sl_yaml_kind_t kind, const char *what) {
    return sl_yaml_want(&c->ye, n, kind, what);
}

bool sl_gw__want_map(sl_gw__pc_t *c, const sl_yaml_node_t *n, const char *what) {
    if (!n || sl_yaml_is_null(n)) return false;
    return sl_gw__want(c, n, SL_YAML_MAP, what);
}

typedef struct {
    const char *name;
    uint64_t mult;
} unit_t;

static const unit_t duration_units[] = {{"ms", 1}, {"s", MS_S}, {"m", MS_M}, {"h", MS_H}};
static const unit_t size_units[] = {
    {"B", 1},           {"KiB", 1ull << 10}, {"Ki", 1ull << 10}, {"MiB", 1ull << 20},
    {"Mi", 1ull << 20}, {"GiB", 1ull << 30}, {"Gi", 1ull << 30}, {"KB", 1000},
    {"MB", 1000000},    {"GB", 1000000000},
};

/* "<digits>[.<digits>]<unit>" or "<digits>" (unit 1). The value must come out whole (1.5s is
 * 1500 ms; 1.5ms is refused). Returns 0, SL_EINVAL (syntax) or SL_ERANGE (overflow). */
static int parse_scaled(const char *s, size_t len, const unit_t *units, size_t n_units,
                        uint64_t *out) {
    uint64_t whole = 0, frac = 0, frac_div = 1;
    size_t i = 0, digits = 0;
    for (; i < len && s[i] >= '0' && s[i] <= '9'; i++, digits++) {
        if (digits >= 15) return SL_ERANGE;
        whole = whole * 10 + (uint64_t)(s[i] - '0');
    }
    if (digits == 0) return SL_EINVAL;
    bool has_frac = false;
    if (i < len && s[i] == '.') {
        size_t fd = 0;
        for (i++; i < len && s[i] >= '0' && s[i] <= '9'; i++, fd++) {
            if (fd >= 6) return SL_EINVAL;
            frac = frac * 10 + (uint64_t)(s[i] - '0');
            frac_div *= 10;
        }
        if (fd == 0) return SL_EINVAL;
        has_frac = true;
    }
    if (i == len) {
        if (has_frac) return SL_EINVAL;
        *out = whole;
        return 0;
    }
    for (size_t u = 0; u < n_units; u++) {
        size_t ul = strlen(units[u].name);
        if (len - i != ul || memcmp(s + i, units[u].name, ul) != 0) continue;
        uint64_t m = units[u].mult;
        if (whole > UINT64_MAX / m) return SL_ERANGE;
        uint64_t f = frac * m; /* frac < 10^6 and m < 2^32: no overflow */
        if (f % frac_div) return SL_EINVAL;
        *out = whole * m + f / frac_div;
        return 0;
    }
    return SL_EINVAL;
}

static bool scalar(sl_gw__pc_t *c, const sl_yaml_node_t *n, const char *what) {
    if (n->kind != SL_YAML_SCALAR) {
        sl_gw__err(c, n, "%s must be a scalar, not %s", what, sl_yaml_kind_name(n->kind));
        return false;
    }
    if (sl_yaml_is_null(n)) {
        sl_gw__err(c, n, "%s: missing value", what);
        return false;
    }
    return true;
}

static void format_ms(char *buf, size_t cap, uint64_t ms) {
    if (ms && ms % MS_H == 0)
        snprintf(buf, cap, "%lluh", (unsigned long long)(ms / MS_H));
    else if (ms && ms % MS_M == 0)
        snprintf(buf, cap, "%llum", (unsigned long long)(ms / MS_M));
    else if (ms && ms % MS_S == 0)
        snprintf(buf, cap, "%llus", (unsigned long long)(ms / MS_S));
    else
        snprintf(buf, cap, "%llums", (unsigned long long)ms);
}

bool sl_gw__duration(sl_gw__pc_t *c, const sl_yaml_node_t *n, const char *what, uint64_t min_ms,
                     uint64_t max_ms, uint64_t *out) {
    if (!scalar(c, n, what)) return false;
    uint64_t v = 0;
    int rc = parse_scaled(n->value, n->len, duration_units, SL_ARRAY_LEN(duration_units), &v);
    if (rc == SL_EINVAL) {
        sl_gw__err(c, n,
                   "%s: expected a duration (250ms, 15s, 2m, 1h; a plain integer is "
                   "milliseconds), got '%.64s'",
                   what, n->value);
        return false;
    }
    if (rc != 0 || v < min_ms || v > max_ms) {
        char lo[32], hi[32];
        format_ms(lo, sizeof lo, min_ms);
        format_ms(hi, sizeof hi, max_ms);
        sl_gw__err(c, n, "%s: '%.64s' is out of bounds (%s..%s)", what, n->value, lo, hi);
        return false;
    }
    *out = v;
    return true;
}

bool sl_gw__size(sl_gw__pc_t *c, const sl_yaml_node_t *n, const char *what, uint64_t min,
                 uint64_t max, uint64_t *out) {
    if (!scalar(c, n, what)) return false;
    uint64_t v = 0;
    int rc = parse_scaled(n->value, n->len, size_units, SL_ARRAY_LEN(size_units), &v);
    if (rc == SL_EINVAL) {
        sl_gw__err(c, n, "%s: expected a size (1024, 64KiB, 16MiB, 1GiB), got '%.64s'", what,
                   n->value);
        return false;
    }
    if (rc != 0 || v < min || v > max) {
        sl_gw__err(c, n, "%s: '%.64s' is out of bounds (%llu..%llu bytes)", what, n->value,
                   (unsigned long long)min, (unsigned long long)max);
        return false;
    }
    *out = v;
    return true;
}

bool sl_gw__uint(sl_gw__pc_t *c, const sl_yaml_node_t *n, const char *what, uint64_t min,
                 uint64_t max, uint64_t *out) {
    if (!scalar(c, n, what)) return false;
    SL_ASSERT(max <= INT64_MAX);
    int64_t v = 0;
    int rc = sl_yaml_get_int64(n, (int64_t)min, (int64_t)max, &v);
    if (rc == SL_ERANGE) {
        sl_gw__err(c, n, "%s: %.64s is out of bounds (%llu..%llu)", what, n->value,
                   (unsigned long long)min, (unsigned long long)max);
        return false;
    }
    if (rc != 0) {
        sl_gw__err(c, n, "%s: expected an integer, got '%.64s'", what, n->value);
        return false;
    }
    *out = (uint64_t)v;
    return true;
}

bool sl_gw__number(sl_gw__pc_t *c, const sl_yaml_node_t *n, const char *what, double min,
                   double max, double *out) {
    if (!scalar(c, n, what)) return false;
    /* Plain decimal only: strtod would also take hex, exponents, "inf" and "nan". */
    const char *s = n->value;
    size_t i = 0, digits = 0, frac_digits = 0;
    if (s[i] == '-') i++;
    for (; s[i] >= '0' && s[i] <= '9'; i++)
        digits++;
    if (s[i] == '.')
        for (i++; s[i] >= '0' && s[i] <= '9'; i++)
            frac_digits++;
    if (digits == 0 || digits > 15 || frac_digits > 9 || s[i] != '\0' ||
        (s[i - 1] == '.' && frac_digits == 0)) {
        sl_gw__err(c, n, "%s: expected a number, got '%.64s'", what, n->value);
        return false;
    }
    double v = strtod(s, NULL);
    if (!(v >= min && v <= max)) {
        sl_gw__err(c, n, "%s: %.64s is out of bounds (%.10g..%.10g)", what, n->value, min, max);
        return false;
    }
    *out = v;
    return true;
}

bool sl_gw__percent_bp(sl_gw__pc_t *c, const sl_yaml_node_t *n, const char *what, uint32_t *out) {
    if (!scalar(c, n, what)) return false;
    const char *s = n->value;
    uint64_t whole = 0, frac = 0;
    size_t i = 0, digits = 0, fd = 0;
    for (; s[i] >= '0' && s[i] <= '9' && digits < 4; i++, digits++)
        whole = whole * 10 + (uint64_t)(s[i] - '0');
    bool ok = digits > 0;
    if (ok && s[i] == '.') {
        for (i++; s[i] >= '0' && s[i] <= '9' && fd < 3; i++, fd++)
            frac = frac * 10 + (uint64_t)(s[i] - '0');
        ok = fd >= 1 && fd <= 2;
        if (fd == 1) frac *= 10;
    }
    uint64_t v = whole * 100 + frac;
    if (!ok || s[i] != '\0' || v > 10000) {
        sl_gw__err(c, n,
                   "%s: expected a percent from 0 to 100 with at most two decimals, got "
                   "'%.64s'",
                   what, n->value);
        return false;
    }
    *out = (uint32_t)v;
    return true;
}

bool sl_gw__bool(sl_gw__pc_t *c, const sl_yaml_node_t *n, const char *what, bool *out) {
    if (!scalar(c, n, what)) return false;
    if (sl_yaml_get_bool(n, out) != 0) {
        sl_gw__err(c, n, "%s: expected true or false, got '%.64s'", what, n->value);
        return false;
    }
    return true;
}

bool sl_gw__string(sl_gw__pc_t *c, const sl_yaml_node_t *n, const char *what, size_t max,
                   const char **out) {
    if (!scalar(c, n, what)) return false;
    if (n->len == 0 || n->len > max || strlen(n->value) != n->len) {
        sl_gw__err(c, n, "%s must be 1..%zu bytes without NUL", what, max);
        return false;
    }
    *out = n->value;
    return true;
}

/* ---- ${} references ------------------------------------------------------------------------ */

static bool env_name_ok(const char *s, size_t len) {
    if (len == 0 || (s[0] >= '0' && s[0] <= '9')) return false;
    for (size_t i = 0; i < len; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '_') return false;
    return true;
}

/* Appends the file's bytes without one trailing newline (as the main config does). */
static bool read_secret(sl_gw__pc_t *c, const sl_yaml_node_t *n, const char *what, const char *path,
                        size_t plen, sl_buf_t *out) {
    char *p = sl_strndup(path, plen);
    bool ok = false;
    struct stat st;
    FILE *f = NULL;
    if (p[0] != '/' || strlen(p) != plen) {
        sl_gw__err(c, n, "%s: ${file:...} needs an absolute path", what);
    } else if (stat(p, &st) != 0) {
        sl_gw__err(c, n, "%s: cannot read secret file '%.256s': %s", what, p, strerror(errno));
    } else if (!S_ISREG(st.st_mode)) {
        sl_gw__err(c, n, "%s: secret file '%.256s' is not a regular file", what, p);
    } else if (st.st_size > (off_t)SECRET_FILE_MAX) {
        sl_gw__err(c, n, "%s: secret file '%.256s' is larger than %u bytes", what, p,
                   SECRET_FILE_MAX);
    } else if (!(f = fopen(p, "rb"))) {
        sl_gw__err(c, n, "%s: cannot read secret file '%.256s': %s", what, p, strerror(errno));
    } else {
        char *buf = sl_malloc(SECRET_FILE_MAX + 1);
        size_t got = fread(buf, 1, SECRET_FILE_MAX + 1, f);
        if (ferror(f) || got > SECRET_FILE_MAX) {
            sl_gw__err(c, n, "%s: cannot read secret file '%.256s'", what, p);
        } else {
            if (got && buf[got - 1] == '\n') got--;
            if (got && buf[got - 1] == '\r') got--;
            sl_buf_append(out, buf, got);
            ok = true;
        }
        free(buf);
        fclose(f);
    }
    free(p);
    return ok;
}

bool sl_gw__expand(sl_gw__pc_t *c, const sl_yaml_node_t *n, const char *what, size_t max,
                   sl_buf_t *out) {
    if (!scalar(c, n, what)) return false;
    const char *s = n->value;
    size_t len = n->len;
    size_t start = out->len;
    for (size_t i = 0; i < len;) {
        if (s[i] == '$' && i + 2 < len && s[i + 1] == '$' && s[i + 2] == '{') {
            sl_buf_puts(out, "${");
            i += 3;
        } else if (!(s[i] == '$' && i + 1 < len && s[i + 1] == '{')) {
            sl_buf_putc(out, s[i++]);
        } else {
            const char *inner = s + i + 2;
            const char *close = memchr(inner, '}', len - i - 2);
            if (!close) {
                sl_gw__err(c, n, "%s: unterminated '${' reference", what);
                return false;
            }
            size_t k = (size_t)(close - inner);
            if (k >= 5 && memcmp(inner, "file:", 5) == 0) {
                if (!read_secret(c, n, what, inner + 5, k - 5, out)) return false;
            } else {
                size_t name_len = k;
                const char *dflt = NULL;
                for (size_t j = 0; j + 1 < k; j++) {
                    if (inner[j] == ':' && inner[j + 1] == '-') {
                        name_len = j;
                        dflt = inner + j + 2;
                        break;
                    }
                }
                if (!env_name_ok(inner, name_len)) {
                    sl_gw__err(c, n,
                               "%s: invalid reference (expected ${NAME}, ${NAME:-default} or "
                               "${file:/path})",
                               what);
                    return false;
                }
                char *name = sl_strndup(inner, name_len);
                const char *v = getenv(name);
                if (dflt && (!v || !*v)) {
                    sl_buf_append(out, dflt, (size_t)(close - dflt));
                } else if (!v) {
                    sl_gw__err(c, n, "%s: environment variable '%s' is not set", what, name);
                    free(name);
                    return false;
                } else {
                    sl_buf_puts(out, v);
                }
                free(name);
            }
            i += k + 3;
        }
        if (out->len - start > max) {
            sl_gw__err(c, n, "%s: value longer than %zu bytes after expanding references", what,
                       max);
            return false;
        }
    }
    if (memchr(out->data ? out->data + start : "", '\0', out->len - start)) {
        sl_gw__err(c, n, "%s: value contains a NUL byte", what);
        return false;
    }
    return true;
}

/* ---- names and addresses ------------------------------------------------------------------- */

bool sl_gw__name_ok(const char *s, size_t n, size_t max) {
    return strlen(s) == n && sl_gw_name_ok(s, n, max, false);
}

bool sl_gw__model_ok(const char *s, size_t n) {
    return strlen(s) == n && sl_gw_name_ok(s, n, SL_GW_MODEL_MAX, true);
}
