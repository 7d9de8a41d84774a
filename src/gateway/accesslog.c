/* The gateway's access log: config helpers (names, percentages, the never-logged list), the
 * sampling decision and the line writer. Lines go through core/log.h's limiter-free variant:
 * sampling is this module's volume control, and a repeat limiter would drop lines silently. */
#include "gateway/accesslog.h"

#include "core/log.h"

#include <openssl/evp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* Names whose values must never reach a log whatever the config says: credentials. Matched
 * ignoring case, against fields and headers alike. */
static const char *const never_logged[] = {
    "authorization", "proxy-authorization",
    "cookie",        "set-cookie",
    "x-api-key",     "api-key",
    "api_key",       "apikey",
    "x-auth-token",
};

#define FIXED_FIELDS    20 /* entry fields plus path_truncated, with room to spare */
#define MAX_LINE_FIELDS (FIXED_FIELDS + 2 * SL_ACCESS_LOG_MAX_NAMES)
#define KEY_MAX         (sizeof "header." + SL_ACCESS_LOG_NAME_MAX)
/* A cut value: 256 bytes, each NUL byte widened to a 3-byte U+FFFD, plus the terminator. */
#define VAL_MAX (3 * SL_ACCESS_LOG_VALUE_MAX + 1)

static void seterr(char *err, size_t err_len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void seterr(char *err, size_t err_len, const char *fmt, ...) {
    if (!err || err_len == 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, err_len, fmt, ap);
    va_end(ap);
}

void sl_access_log_cfg_init(sl_access_log_cfg_t *cfg) {
    memset(cfg, 0, sizeof *cfg);
    cfg->enabled = true;
    cfg->sample_bp = SL_ACCESS_LOG_PERCENT_ALL;
    cfg->errors_sample_bp = SL_ACCESS_LOG_PERCENT_ALL;
    cfg->rejections_sample_bp = 100;
}

int sl_access_log_percent_parse(const char *s, uint32_t *out_bp) {
    if (!s) return SL_EINVAL;
    const char *p = s;
    uint32_t whole = 0;
    size_t nd = 0;
    while (*p >= '0' && *p <= '9') {
        if (++nd > 3) return *p == '0' && whole == 0 ? SL_EINVAL : SL_ERANGE;
        whole = whole * 10 + (uint32_t)(*p++ - '0');
    }
    if (nd == 0) return SL_EINVAL;
    uint32_t frac = 0;
    if (*p == '.') {
        p++;
        size_t nf = 0;
        while (*p >= '0' && *p <= '9') {
            if (++nf > 2) return SL_EINVAL;
            frac = frac * 10 + (uint32_t)(*p++ - '0');
        }
        if (nf == 0) return SL_EINVAL;
        if (nf == 1) frac *= 10;
    }
    if (*p != '\0') return SL_EINVAL;
    uint32_t bp = whole * 100 + frac;
    if (bp > SL_ACCESS_LOG_PERCENT_ALL) return SL_ERANGE;
    *out_bp = bp;
    return SL_OK;
}

int sl_access_log_scrub_mode_parse(const char *s, sl_access_scrub_mode_t *out) {
    if (s && strcmp(s, "hash") == 0) {
        *out = SL_ACCESS_SCRUB_HASH;
        return SL_OK;
    }
    if (s && strcmp(s, "redact") == 0) {
        *out = SL_ACCESS_SCRUB_REDACT;
        return SL_OK;
    }
    return SL_EINVAL;
}

static bool is_never_logged(const char *name) {
    for (size_t i = 0; i < SL_ARRAY_LEN(never_logged); i++) {
        if (strcasecmp(name, never_logged[i]) == 0) return true;
    }
    return false;
}

/* Checks one name (NUL-terminated within SL_ACCESS_LOG_NAME_MAX + 1 bytes); opt names the list
 * in messages. */
static int check_name(const char *opt, const char *name, char *err, size_t err_len) {
    size_t n = strnlen(name, SL_ACCESS_LOG_NAME_MAX + 1);
    if (n == 0) {
        seterr(err, err_len, "access_log.%s: empty name", opt);
        return SL_EINVAL;
    }
    if (n > SL_ACCESS_LOG_NAME_MAX) {
        seterr(err, err_len, "access_log.%s: name longer than %d bytes", opt,
               SL_ACCESS_LOG_NAME_MAX);
        return SL_EINVAL;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '.' || c == '-';
        if (!ok) {
            seterr(err, err_len, "access_log.%s: name '%.64s' may only hold [A-Za-z0-9_.-]", opt,
                   name);
            return SL_EINVAL;
        }
    }
    if (is_never_logged(name)) {
        char low[SL_ACCESS_LOG_NAME_MAX + 1];
        for (size_t i = 0; i <= n; i++) {
            char c = name[i];
            low[i] = (char)(c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c);
        }
        seterr(err, err_len, "access_log.%s: %s is never logged", opt, low);
        return SL_EINVAL;
    }
    return SL_OK;
}

static int add_name(const char *opt, char (*list)[SL_ACCESS_LOG_NAME_MAX + 1], size_t *n,
                    const char *name, bool lower, char *err, size_t err_len) {
    if (!name) {
        seterr(err, err_len, "access_log.%s: empty name", opt);
        return SL_EINVAL;
    }
    int rc = check_name(opt, name, err, err_len);
    if (rc != SL_OK) return rc;
    for (size_t i = 0; i < *n; i++) {
        if (strcasecmp(list[i], name) == 0) {
            seterr(err, err_len, "access_log.%s: '%s' is listed twice", opt, name);
            return SL_EEXISTS;
        }
    }
    if (*n >= SL_ACCESS_LOG_MAX_NAMES) {
        seterr(err, err_len, "access_log.%s: at most %d names", opt, SL_ACCESS_LOG_MAX_NAMES);
        return SL_ELIMIT;
    }
    size_t len = strlen(name);
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        list[*n][i] = (char)(lower && c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c);
    }
    list[*n][len] = '\0';
    (*n)++;
    return SL_OK;
}

int sl_access_log_cfg_add_field(sl_access_log_cfg_t *cfg, const char *name, char *err,
                                size_t err_len) {
    return add_name("fields", cfg->fields, &cfg->n_fields, name, false, err, err_len);
}

int sl_access_log_cfg_add_header(sl_access_log_cfg_t *cfg, const char *name, char *err,
                                 size_t err_len) {
    return add_name("headers", cfg->headers, &cfg->n_headers, name, true, err, err_len);
}

int sl_access_log_cfg_add_scrub(sl_access_log_cfg_t *cfg, const char *name,
                                sl_access_scrub_mode_t mode, char *err, size_t err_len) {
    if (!name) {
        seterr(err, err_len, "access_log.scrub: empty name");
        return SL_EINVAL;
    }
    if (mode != SL_ACCESS_SCRUB_HASH && mode != SL_ACCESS_SCRUB_REDACT) {
        seterr(err, err_len, "access_log.scrub: mode must be hash or redact");
        return SL_EINVAL;
    }
    /* A credential name is refused here too: listing it to scrub suggests it would be logged. */
    int rc = check_name("scrub", name, err, err_len);
    if (rc != SL_OK) return rc;
    for (size_t i = 0; i < cfg->n_scrub; i++) {
        if (strcasecmp(cfg->scrub[i].name, name) == 0) {
            seterr(err, err_len, "access_log.scrub: '%s' is listed twice", name);
            return SL_EEXISTS;
        }
    }
    if (cfg->n_scrub >= SL_ACCESS_LOG_MAX_SCRUB) {
        seterr(err, err_len, "access_log.scrub: at most %d names", SL_ACCESS_LOG_MAX_SCRUB);
        return SL_ELIMIT;
    }
    sl_access_scrub_t *s = &cfg->scrub[cfg->n_scrub++];
    memcpy(s->name, name, strlen(name) + 1);
    s->mode = mode;
    return SL_OK;
}

int sl_access_log_cfg_set_salt(sl_access_log_cfg_t *cfg, const void *salt, size_t len, char *err,
                               size_t err_len) {
    if (!salt || len == 0 || len > SL_ACCESS_LOG_SALT_MAX) {
        seterr(err, err_len, "access_log.salt: must be 1..%d bytes", SL_ACCESS_LOG_SALT_MAX);
        return SL_EINVAL;
    }
    memcpy(cfg->salt, salt, len);
    cfg->salt_len = len;
    return SL_OK;
}

static int validate_list(const char *opt, const char (*list)[SL_ACCESS_LOG_NAME_MAX + 1], size_t n,
                         char *err, size_t err_len) {
    if (n > SL_ACCESS_LOG_MAX_NAMES) {
        seterr(err, err_len, "access_log.%s: at most %d names", opt, SL_ACCESS_LOG_MAX_NAMES);
        return SL_EINVAL;
    }
    for (size_t i = 0; i < n; i++) {
        int rc = check_name(opt, list[i], err, err_len);
        if (rc != SL_OK) return rc;
        for (size_t j = 0; j < i; j++) {
            if (strcasecmp(list[i], list[j]) == 0) {
                seterr(err, err_len, "access_log.%s: '%s' is listed twice", opt, list[i]);
                return SL_EINVAL;
            }
        }
    }
    return SL_OK;
}

int sl_access_log_cfg_validate(const sl_access_log_cfg_t *cfg, char *err, size_t err_len) {
    static const char *const share_names[] = {"sample_percent", "errors_sample_percent",
                                              "rejections_sample_percent"};
    const uint32_t shares[] = {cfg->sample_bp, cfg->errors_sample_bp, cfg->rejections_sample_bp};
    for (size_t i = 0; i < SL_ARRAY_LEN(shares); i++) {
        if (shares[i] > SL_ACCESS_LOG_PERCENT_ALL) {
            seterr(err, err_len, "access_log.%s: must be between 0 and 100", share_names[i]);
            return SL_EINVAL;
        }
    }
    int rc = validate_list("fields", (const char(*)[SL_ACCESS_LOG_NAME_MAX + 1]) cfg->fields,
                           cfg->n_fields, err, err_len);
    if (rc == SL_OK) {
        rc = validate_list("headers", (const char(*)[SL_ACCESS_LOG_NAME_MAX + 1]) cfg->headers,
                           cfg->n_headers, err, err_len);
    }
    if (rc != SL_OK) return SL_EINVAL;
    if (cfg->n_scrub > SL_ACCESS_LOG_MAX_SCRUB) {
        seterr(err, err_len, "access_log.scrub: at most %d names", SL_ACCESS_LOG_MAX_SCRUB);
        return SL_EINVAL;
    }
    for (size_t i = 0; i < cfg->n_scrub; i++) {
        const sl_access_scrub_t *s = &cfg->scrub[i];
        if (check_name("scrub", s->name, err, err_len) != SL_OK) return SL_EINVAL;
        if (s->mode != SL_ACCESS_SCRUB_HASH && s->mode != SL_ACCESS_SCRUB_REDACT) {
            seterr(err, err_len, "access_log.scrub: mode must be hash or redact");
            return SL_EINVAL;
        }
        for (size_t j = 0; j < i; j++) {
            if (strcasecmp(s->name, cfg->scrub[j].name) == 0) {
                seterr(err, err_len, "access_log.scrub: '%s' is listed twice", s->name);
                return SL_EINVAL;
            }
        }
    }
    if (cfg->salt_len > SL_ACCESS_LOG_SALT_MAX) {
        seterr(err, err_len, "access_log.salt: must be 1..%d bytes", SL_ACCESS_LOG_SALT_MAX);
        return SL_EINVAL;
    }
    return SL_OK;
}

bool sl_access_log_sampled(const sl_access_log_cfg_t *cfg, int status, uint64_t rnd) {
    if (!cfg->enabled) return false;
    uint32_t share;
    if (status == 401 || status == 429) {
        share = cfg->rejections_sample_bp;
    } else if (status >= 400) {
        share = cfg->errors_sample_bp;
    } else {
        share = cfg->sample_bp;
    }
    return rnd % SL_ACCESS_LOG_PERCENT_ALL < share;
}

/* The per-process salt for configs without one: made once, never logged. */
static unsigned char g_salt[32];
static pthread_once_t g_salt_once = PTHREAD_ONCE_INIT;

static void make_salt(void) {
    sl_random_bytes(g_salt, sizeof g_salt);
}

void sl_access_log_hash(const sl_access_log_cfg_t *cfg, const void *value, size_t len,
                        char out[20]) {
    const unsigned char *salt = cfg->salt;
    size_t salt_len = cfg->salt_len;
    if (salt_len == 0 || salt_len > SL_ACCESS_LOG_SALT_MAX) {
        pthread_once(&g_salt_once, make_salt);
        salt = g_salt;
        salt_len = sizeof g_salt;
    }
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    SL_ASSERT(ctx != NULL);
    bool ok = EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1 &&
              EVP_DigestUpdate(ctx, salt, salt_len) == 1 &&
              (len == 0 || EVP_DigestUpdate(ctx, value, len) == 1) &&
              EVP_DigestFinal_ex(ctx, md, &md_len) == 1;
    EVP_MD_CTX_free(ctx);
    SL_ASSERT(ok && md_len >= 6);
    static const char hex[] = "0123456789abcdef";
    memcpy(out, "sha256:", 7);
    for (size_t i = 0; i < 6; i++) {
        out[7 + 2 * i] = hex[md[i] >> 4];
        out[8 + 2 * i] = hex[md[i] & 15];
    }
    out[19] = '\0';
}

/* Copies at most SL_ACCESS_LOG_VALUE_MAX bytes of s into out (VAL_MAX bytes), cutting at a
 * UTF-8 character boundary and writing each NUL byte as U+FFFD (the logger's strings are
 * NUL-terminated; other bytes are escaped by the logger). Returns whether s was cut. */
static bool copy_cut(const char *s, size_t n, char *out) {
    bool cut = n > SL_ACCESS_LOG_VALUE_MAX;
    if (cut) {
        n = SL_ACCESS_LOG_VALUE_MAX;
        /* Back off over continuation bytes so a character is not split (at most 3). */
        size_t k = n;
        while (k > 0 && n - k < 3 && ((unsigned char)s[k] & 0xc0) == 0x80)
            k--;
        if (((unsigned char)s[k] & 0xc0) == 0x80) k = n; /* not UTF-8 anyway: cut as is */
        n = k;
    }
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\0') {
            memcpy(out + o, "\xef\xbf\xbd", 3);
            o += 3;
        } else {
            out[o++] = s[i];
        }
    }
    out[o] = '\0';
    return cut;
}

static const sl_access_scrub_t *find_scrub(const sl_access_log_cfg_t *cfg, const char *name) {
    size_t n = SL_MIN(cfg->n_scrub, (size_t)SL_ACCESS_LOG_MAX_SCRUB);
    for (size_t i = 0; i < n; i++) {
        if (strcasecmp(cfg->scrub[i].name, name) == 0) return &cfg->scrub[i];
    }
    return NULL;
}

/* Working storage for one line: every string value is copied (cut) into vals. */
#define LINE_STRS (FIXED_FIELDS + 2 * SL_ACCESS_LOG_MAX_NAMES + 2) /* + trace ids */
typedef struct {
    sl_log_field_t f[MAX_LINE_FIELDS];
    size_t n;
    char keys[2 * SL_ACCESS_LOG_MAX_NAMES][KEY_MAX];
    size_t n_keys;
    char vals[LINE_STRS][VAL_MAX];
    size_t n_vals;
} line_t;

static char *next_val(line_t *l) {
    SL_ASSERT(l->n_vals < LINE_STRS);
    return l->vals[l->n_vals++];
}

/* Adds key: v, cut at SL_ACCESS_LOG_VALUE_MAX bytes; returns whether it was cut. */
static bool add_str(line_t *l, const char *key, const char *v, size_t len) {
    if (!v) return false;
    SL_ASSERT(l->n < MAX_LINE_FIELDS);
    char *val = next_val(l);
    bool cut = copy_cut(v, len, val);
    l->f[l->n++] = SL_LF_S(key, val);
    return cut;
}

static void add_cstr(line_t *l, const char *key, const char *v) {
    if (v) add_str(l, key, v, strnlen(v, SL_ACCESS_LOG_VALUE_MAX + 1));
}

/* Adds "<prefix><name>" for each name of list that cb finds, scrubbed when configured. */
static void add_named(line_t *l, const sl_access_log_cfg_t *cfg, const char *prefix,
                      const char (*list)[SL_ACCESS_LOG_NAME_MAX + 1], size_t n,
                      sl_access_lookup_cb cb, void *ctx) {
    if (!cb) return;
    n = SL_MIN(n, (size_t)SL_ACCESS_LOG_MAX_NAMES);
    for (size_t i = 0; i < n; i++) {
        const char *name = list[i];
        if (strnlen(name, SL_ACCESS_LOG_NAME_MAX + 1) > SL_ACCESS_LOG_NAME_MAX) continue;
        if (is_never_logged(name)) continue; /* even when validation was skipped */
        sl_str_t v = {NULL, 0};
        if (!cb(ctx, name, &v)) continue;
        if (!v.ptr) v.len = 0;
        SL_ASSERT(l->n_keys < SL_ARRAY_LEN(l->keys));
        char *key = l->keys[l->n_keys++];
        snprintf(key, KEY_MAX, "%s%s", prefix, name);
        const char *p = v.ptr ? v.ptr : "";
        const sl_access_scrub_t *s = find_scrub(cfg, name);
        if (!s) {
            add_str(l, key, p, v.len);
            continue;
        }
        char *val = next_val(l);
        if (s->mode == SL_ACCESS_SCRUB_REDACT) {
            memcpy(val, "[redacted]", sizeof "[redacted]");
        } else {
            sl_access_log_hash(cfg, p, v.len, val);
        }
        l->f[l->n++] = SL_LF_S(key, val);
    }
}

bool sl_access_log_write(const sl_access_log_cfg_t *cfg, const sl_access_entry_t *e, uint64_t rnd) {
    if (!sl_access_log_sampled(cfg, e->status, rnd)) return false;
    if (SL_LOG_INFO < sl_log_level_get()) return false;
    /* About 40 KiB: per thread rather than on an I/O thread's stack or malloc'd per request.
     * Nothing below re-enters this function (the lookups only read the request). */
    static _Thread_local line_t t_line;
    line_t *l = &t_line;
    l->n = l->n_keys = l->n_vals = 0;
    add_cstr(l, "method", e->method);
    if (e->path && add_str(l, "path", e->path, e->path_len)) {
        l->f[l->n++] = SL_LF_B("path_truncated", true);
    }
    l->f[l->n++] = SL_LF_I("status", e->status);
    l->f[l->n++] = SL_LF_U("duration_us", e->duration_us);
    l->f[l->n++] = SL_LF_U("upstream_us", e->upstream_us);
    l->f[l->n++] = SL_LF_U("bytes_in", e->bytes_in);
    l->f[l->n++] = SL_LF_U("bytes_out", e->bytes_out);
    add_cstr(l, "key_id", e->key_id);
    add_cstr(l, "tenant", e->tenant);
    add_cstr(l, "model", e->model);
    add_cstr(l, "version", e->version);
    add_cstr(l, "endpoint", e->endpoint);
    add_cstr(l, "route", e->route);
    add_cstr(l, "outcome", e->outcome);
    l->f[l->n++] = SL_LF_B("degraded", e->degraded);
    l->f[l->n++] = SL_LF_U("retries", e->retries);
    add_cstr(l, "client", e->client_addr);
    SL_ASSERT(l->n <= FIXED_FIELDS);
    add_named(l, cfg, "field.", (const char(*)[SL_ACCESS_LOG_NAME_MAX + 1]) cfg->fields,
              cfg->n_fields, e->field_cb, e->cb_ctx);
    add_named(l, cfg, "header.", (const char(*)[SL_ACCESS_LOG_NAME_MAX + 1]) cfg->headers,
              cfg->n_headers, e->header_cb, e->cb_ctx);
    /* Trace ids come from request headers via the trace module: bound them too. */
    const char *tid = NULL, *sid = NULL;
    if (e->trace_id) {
        tid = next_val(l);
        copy_cut(e->trace_id, strnlen(e->trace_id, SL_ACCESS_LOG_VALUE_MAX + 1), (char *)tid);
        if (e->span_id) {
            sid = next_val(l);
            copy_cut(e->span_id, strnlen(e->span_id, SL_ACCESS_LOG_VALUE_MAX + 1), (char *)sid);
        }
    }
    sl_log_fields_nolimit(SL_LOG_INFO, "access", "request", tid, sid, l->f, l->n);
    return true;
}
