/* Parsing of a model version's manifest.json (artifact, sha256, semver, optional training
 * metadata) and of semantic versions with SemVer 2.0 precedence. Declared in model_config.h; the
 * repository uses both to discover and order a model's versions. */
#include "inference/model_config.h"

#include "core/common.h"
#include "core/json.h"

#include <stdlib.h>
#include <string.h>

/* ---- manifest.json ---- */

#define MANIFEST_MAX_BYTES (64u << 10)

static bool hex_lower(const char *s, char out[65]) {
    if (strlen(s) != 64) return false;
    for (size_t i = 0; i < 64; i++) {
        char ch = s[i];
        if (ch >= 'A' && ch <= 'F') ch = (char)(ch - 'A' + 'a');
        if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f'))) return false;
        out[i] = ch;
    }
    out[64] = '\0';
    return true;
}

/* RFC 3339 date-time, checked for shape: YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM). */
static bool rfc3339_ok(const char *s) {
    const char *pat = "dddd-dd-ddTdd:dd:dd";
    size_t i = 0;
    for (; pat[i]; i++) {
        if (pat[i] == 'd'
                ? (s[i] < '0' || s[i] > '9')
                : (pat[i] == 'T' ? (s[i] != 'T' && s[i] != 't' && s[i] != ' ') : s[i] != pat[i])) {
            return false;
        }
    }
    s += i;
    if (*s == '.') {
        s++;
        if (*s < '0' || *s > '9') return false;
        while (*s >= '0' && *s <= '9')
            s++;
    }
    if (*s == 'Z' || *s == 'z') return s[1] == '\0';
    if (*s != '+' && *s != '-') return false;
    return s[1] >= '0' && s[1] <= '9' && s[2] >= '0' && s[2] <= '9' && s[3] == ':' && s[4] >= '0' &&
           s[4] <= '9' && s[5] >= '0' && s[5] <= '9' && s[6] == '\0';
}

int sl_manifest_parse(const char *file, const void *data, size_t len, sl_manifest_t *m,
                      sl_buf_t *err) {
    memset(m, 0, sizeof *m);
    char msg[256];
    cJSON *root = NULL;
    sl_json_limits_t lim = {.max_bytes = MANIFEST_MAX_BYTES, .max_depth = 16};
    int rc = sl_json_parse_ex(data, len, &lim, &root, msg, sizeof msg);
    if (rc != 0) {
        sl_buf_printf(err, "%s: %s\n", file, msg);
        return rc;
    }
    int status = 0;
#define MERR(...)                                                                                  \
    do {                                                                                           \
        sl_buf_printf(err, "%s: ", file);                                                          \
        sl_buf_printf(err, __VA_ARGS__);                                                           \
        sl_buf_putc(err, '\n');                                                                    \
        status = SL_EINVAL;                                                                        \
    } while (0)
    if (!cJSON_IsObject(root)) {
        MERR("expected a JSON object");
        goto out;
    }
    static const char *const allowed[] = {"artifact",   "sha256",  "semver",
                                          "trained_at", "metrics", "feature_schema"};
    const cJSON *it;
    cJSON_ArrayForEach(it, root) {
        bool ok = false;
        for (size_t i = 0; i < SL_ARRAY_LEN(allowed); i++)
            ok |= strcmp(it->string, allowed[i]) == 0;
        if (!ok) {
            MERR("unknown field '%.64s' (expected artifact, sha256, semver, trained_at, metrics, "
                 "feature_schema)",
                 it->string);
        }
    }
    const char *s;
    if (sl_json_get_string(root, "artifact", &s, msg, sizeof msg) != 0) {
        MERR("%s", msg);
    } else if (strchr(s, '/') || !strcmp(s, ".") || !strcmp(s, "..") || !*s || strlen(s) > 255) {
        MERR("field 'artifact' must be a file name in the version directory, got '%.64s'", s);
    } else {
        m->artifact = sl_strdup(s);
    }
    if (sl_json_get_string(root, "sha256", &s, msg, sizeof msg) != 0) {
        MERR("%s", msg);
    } else if (!hex_lower(s, m->sha256)) {
        MERR("field 'sha256' must be 64 hexadecimal digits");
    }
    sl_semver_t sv;
    if (sl_json_get_string(root, "semver", &s, msg, sizeof msg) != 0) {
        MERR("%s", msg);
    } else if (sl_semver_parse(s, &sv) != 0) {
        MERR("field 'semver' must be a semantic version (MAJOR.MINOR.PATCH), got '%.64s'", s);
    } else {
        m->semver = sl_strdup(s);
    }
    rc = sl_json_get_string(root, "trained_at", &s, msg, sizeof msg);
    if (rc == 0 && !rfc3339_ok(s)) {
        MERR("field 'trained_at' must be an RFC 3339 time (2024-05-01T12:00:00Z), got '%.64s'", s);
    } else if (rc == 0) {
        m->trained_at = sl_strdup(s);
    } else if (rc != SL_ENOENT) {
        MERR("%s", msg);
    }
    const cJSON *o = cJSON_GetObjectItemCaseSensitive(root, "metrics");
    if (o && !cJSON_IsObject(o)) {
        MERR("field 'metrics' must be an object");
    } else if (o) {
        sl_buf_t b = SL_BUF_INIT;
        if (sl_json_print(o, &b) == 0) m->metrics_json = sl_strdup(b.data);
        sl_buf_free(&b);
    }
    o = cJSON_GetObjectItemCaseSensitive(root, "feature_schema");
    if (o && !cJSON_IsObject(o) && !cJSON_IsArray(o)) {
        MERR("field 'feature_schema' must be an object or an array");
    } else if (o) {
        sl_buf_t b = SL_BUF_INIT;
        if (sl_json_print(o, &b) == 0) m->feature_schema_json = sl_strdup(b.data);
        sl_buf_free(&b);
    }
#undef MERR
out:
    cJSON_Delete(root);
    if (status) sl_manifest_free(m);
    return status;
}

void sl_manifest_free(sl_manifest_t *m) {
    free(m->artifact);
    free(m->semver);
    free(m->trained_at);
    free(m->metrics_json);
    free(m->feature_schema_json);
    memset(m, 0, sizeof *m);
}

/* ---- semantic versions (SemVer 2.0.0) ---- */

#define SEMVER_MAX_LEN 128

static bool parse_num(const char **p, uint64_t *out) {
    const char *s = *p;
    if (*s < '0' || *s > '9') return false;
    if (s[0] == '0' && s[1] >= '0' && s[1] <= '9') return false; /* no leading zeros */
    uint64_t v = 0;
    while (*s >= '0' && *s <= '9') {
        uint64_t d = (uint64_t)(*s - '0');
        if (v > (UINT64_MAX - d) / 10) return false;
        v = v * 10 + d;
        s++;
    }
    *p = s;
    *out = v;
    return true;
}

/* Dot-separated identifiers of [0-9A-Za-z-]; numeric ones without leading zeros when numeric
 * (pre-release only). Returns the length consumed, or 0 when malformed. */
static size_t parse_idents(const char *s, bool prerelease) {
    size_t i = 0;
    for (;;) {
        size_t start = i;
        bool numeric = true;
        while ((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'z') ||
               (s[i] >= 'A' && s[i] <= 'Z') || s[i] == '-') {
            numeric &= s[i] >= '0' && s[i] <= '9';
            i++;
        }
        if (i == start) return 0;
        if (prerelease && numeric && s[start] == '0' && i - start > 1) return 0;
        if (s[i] != '.') return i;
        i++;
    }
}

int sl_semver_parse(const char *s, sl_semver_t *out) {
    memset(out, 0, sizeof *out);
    if (!s || strlen(s) > SEMVER_MAX_LEN) return SL_EINVAL;
    const char *p = s;
    if (!parse_num(&p, &out->major) || *p++ != '.') return SL_EINVAL;
    if (!parse_num(&p, &out->minor) || *p++ != '.') return SL_EINVAL;
    if (!parse_num(&p, &out->patch)) return SL_EINVAL;
    if (*p == '-') {
        p++;
        size_t n = parse_idents(p, true);
        if (n == 0 || n >= sizeof out->pre) return SL_EINVAL;
        memcpy(out->pre, p, n);
        out->pre[n] = '\0';
        p += n;
    }
    if (*p == '+') {
        p++;
        size_t n = parse_idents(p, false);
        if (n == 0) return SL_EINVAL;
        p += n;
    }
    return *p ? SL_EINVAL : 0;
}

static bool all_digits(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return false;
    }
    return n > 0;
}

int sl_semver_cmp(const sl_semver_t *a, const sl_semver_t *b) {
    if (a->major != b->major) return a->major < b->major ? -1 : 1;
    if (a->minor != b->minor) return a->minor < b->minor ? -1 : 1;
    if (a->patch != b->patch) return a->patch < b->patch ? -1 : 1;
    /* A version without pre-release has higher precedence than one with. */
    if (!a->pre[0] || !b->pre[0]) return !a->pre[0] - !b->pre[0];
    const char *x = a->pre, *y = b->pre;
    for (;;) {
        size_t nx = strcspn(x, "."), ny = strcspn(y, ".");
        bool dx = all_digits(x, nx), dy = all_digits(y, ny);
        int c;
        if (dx && dy) {
            /* No leading zeros, so the longer number is the larger. */
            c = nx != ny ? (nx < ny ? -1 : 1) : memcmp(x, y, nx);
        } else if (dx || dy) {
            c = dx ? -1 : 1; /* numeric identifiers sort before alphanumeric ones */
        } else {
            c = memcmp(x, y, SL_MIN(nx, ny));
            if (c == 0 && nx != ny) c = nx < ny ? -1 : 1;
        }
        if (c) return c < 0 ? -1 : 1;
        x += nx;
        y += ny;
        if (!*x || !*y) return !*x && !*y ? 0 : (!*x ? -1 : 1);
        x++;
        y++;
    }
}
