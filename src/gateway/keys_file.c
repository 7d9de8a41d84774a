/* The keys file: JSON parsing with limits and field-by-field validation messages, loading from
 * disk, the atomic 0600 save, and the RFC 3339 and scope helpers the file and the CLI share.
 * The table itself lives in keys.c. See keys.h. */
#include "gateway/keys.h"
#include "gateway/keys_internal.h"

#include "core/buf.h"
#include "core/json.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

void sl_keys__seterr(char *err, size_t err_len, const char *fmt, ...) {
    if (!err || !err_len) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, err_len, fmt, ap);
    va_end(ap);
}

/* --- Hex digests ---------------------------------------------------------------------------- */

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static bool hex_decode(const char *s, uint8_t *out, size_t n) {
    if (strlen(s) != 2 * n) return false;
    for (size_t i = 0; i < n; i++) {
        int hi = hexval(s[2 * i]), lo = hexval(s[2 * i + 1]);
        if (hi < 0 || lo < 0) return false;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return true;
}

/* --- Field syntax -------------------------------------------------------------------------- */

static bool valid_chars(const char *s, size_t max, const char *extra, bool upper) {
    size_t n = strlen(s);
    if (n == 0 || n > max) return false;
    for (; *s; s++) {
        char c = *s;
        bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                  (upper && c >= 'A' && c <= 'Z') || (c && strchr(extra, c));
        if (!ok) return false;
    }
    return true;
}

static bool valid_id(const char *s) {
    return valid_chars(s, SL_KEYS_ID_MAX, "_-", true);
}
bool sl_keys__valid_tenant(const char *s) {
    return valid_chars(s, SL_KEYS_TENANT_MAX, "._:@-", true);
}
bool sl_keys__valid_tier(const char *s) {
    return valid_chars(s, SL_KEYS_TIER_MAX, "_-", false);
}

static const struct {
    const char *name;
    unsigned bit;
} scope_names[] = {{"predict", SL_KEY_SCOPE_PREDICT}, {"admin", SL_KEY_SCOPE_ADMIN}};

static unsigned scope_bit(const char *s, size_t n) {
    for (size_t i = 0; i < SL_ARRAY_LEN(scope_names); i++) {
        if (strlen(scope_names[i].name) == n && memcmp(scope_names[i].name, s, n) == 0)
            return scope_names[i].bit;
    }
    return 0;
}

int sl_keys_parse_scopes(const char *s, unsigned *out) {
    unsigned bits = 0;
    while (true) {
        const char *comma = strchr(s, ',');
        size_t n = comma ? (size_t)(comma - s) : strlen(s);
        unsigned b = scope_bit(s, n);
        if (!b) return SL_EINVAL;
        bits |= b;
        if (!comma) break;
        s = comma + 1;
    }
    *out = bits;
    return 0;
}

/* --- Time ---------------------------------------------------------------------------------- */

static bool digits(const char *s, int n, unsigned *out) {
    unsigned v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return false;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    *out = v;
    return true;
}

int sl_keys_parse_time(const char *s, int64_t *out) {
    static const unsigned mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    unsigned y, mo, d, h, mi, se;
    if (strlen(s) < 20 || !digits(s, 4, &y) || s[4] != '-' || !digits(s + 5, 2, &mo) ||
        s[7] != '-' || !digits(s + 8, 2, &d) || (s[10] != 'T' && s[10] != 't') ||
        !digits(s + 11, 2, &h) || s[13] != ':' || !digits(s + 14, 2, &mi) || s[16] != ':' ||
        !digits(s + 17, 2, &se))
        return SL_EINVAL;
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] ||
        (mo == 2 && d == 29 && !leap) || h > 23 || mi > 59 || se > 60)
        return SL_EINVAL;
    const char *p = s + 19;
    if (*p == '.') {
        p++;
        if (*p < '0' || *p > '9') return SL_EINVAL;
        for (int i = 0; *p >= '0' && *p <= '9'; p++, i++) {
            if (i >= 9) return SL_EINVAL;
        }
    }
    int64_t offset = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        unsigned oh, om;
        if (!digits(p + 1, 2, &oh) || p[3] != ':' || !digits(p + 4, 2, &om) || oh > 23 || om > 59)
            return SL_EINVAL;
        offset = (int64_t)(oh * 3600 + om * 60) * (*p == '-' ? -1 : 1);
        p += 6;
    } else {
        return SL_EINVAL;
    }
    if (*p) return SL_EINVAL;
    if (se == 60) se = 59; /* a leap second: POSIX time has no such second */
    struct tm tm = {.tm_year = (int)y - 1900,
                    .tm_mon = (int)mo - 1,
                    .tm_mday = (int)d,
                    .tm_hour = (int)h,
                    .tm_min = (int)mi,
                    .tm_sec = (int)se};
    int64_t t = (int64_t)timegm(&tm) - offset;
    if (t <= 0) return SL_EINVAL; /* 0 means "none" in sl_key_info_t */
    *out = t;
    return 0;
}

void sl_keys_format_time(int64_t t, char buf[21]) {
    struct tm tm;
    time_t tt = (time_t)t;
    if (!gmtime_r(&tt, &tm) || strftime(buf, 21, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(buf, 21, "(out of range)");
}

/* --- Parsing ------------------------------------------------------------------------------- */

/* An optional time field: absent or null is 0. Returns false with a message on a bad value. */
static bool get_time(const cJSON *o, const char *name, bool required, int64_t *out, size_t i,
                     char *err, size_t err_len) {
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(o, name);
    *out = 0;
    if (!f || cJSON_IsNull(f)) {
        if (!required) return true;
        sl_keys__seterr(err, err_len, "keys[%zu]: missing field '%s'", i, name);
        return false;
    }
    if (!cJSON_IsString(f) || sl_keys_parse_time(f->valuestring, out) != 0) {
        sl_keys__seterr(err, err_len,
                        "keys[%zu].%s must be an RFC 3339 time (2025-01-02T03:04:05Z)%s", i, name,
                        required ? "" : " or null");
        return false;
    }
    return true;
}

static const char *get_str(const cJSON *o, const char *name, size_t i, char *err, size_t err_len) {
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(o, name);
    if (!f) {
        sl_keys__seterr(err, err_len, "keys[%zu]: missing field '%s'", i, name);
        return NULL;
    }
    if (!cJSON_IsString(f)) {
        sl_keys__seterr(err, err_len, "keys[%zu].%s must be a string", i, name);
        return NULL;
    }
    return f->valuestring;
}

static sl_keys__entry_t *parse_entry(const cJSON *o, size_t i, char *err, size_t err_len) {
    static const char *const known[] = {"id",     "sha256",     "tenant",     "tier",
                                        "scopes", "created_at", "expires_at", "revoked_at"};
    if (!cJSON_IsObject(o)) {
        sl_keys__seterr(err, err_len, "keys[%zu] must be an object", i);
        return NULL;
    }
    const cJSON *f;
    cJSON_ArrayForEach(f, o) {
        bool ok = false;
        for (size_t k = 0; k < SL_ARRAY_LEN(known) && !ok; k++)
            ok = strcmp(f->string, known[k]) == 0;
        if (!ok) {
            sl_keys__seterr(err, err_len, "keys[%zu]: unknown field '%.64s'", i, f->string);
            return NULL;
        }
    }
    const char *id, *hex, *tenant, *tier;
    if (!(id = get_str(o, "id", i, err, err_len)) ||
        !(hex = get_str(o, "sha256", i, err, err_len)) ||
        !(tenant = get_str(o, "tenant", i, err, err_len)) ||
        !(tier = get_str(o, "tier", i, err, err_len)))
        return NULL;
    uint8_t digest[SL_KEYS__DIGEST_LEN];
    if (!valid_id(id)) {
        sl_keys__seterr(err, err_len, "keys[%zu].id must be 1-%d characters of [A-Za-z0-9_-]", i,
                        SL_KEYS_ID_MAX);
        return NULL;
    }
    if (!hex_decode(hex, digest, SL_KEYS__DIGEST_LEN)) {
        sl_keys__seterr(err, err_len, "keys[%zu].sha256 must be 64 hex digits", i);
        return NULL;
    }
    if (!sl_keys__valid_tenant(tenant)) {
        sl_keys__seterr(err, err_len,
                        "keys[%zu].tenant must be 1-%d characters of [A-Za-z0-9._:@-]", i,
                        SL_KEYS_TENANT_MAX);
        return NULL;
    }
    if (!sl_keys__valid_tier(tier)) {
        sl_keys__seterr(err, err_len, "keys[%zu].tier must be 1-%d characters of [a-z0-9_-]", i,
                        SL_KEYS_TIER_MAX);
        return NULL;
    }
    const cJSON *scopes = cJSON_GetObjectItemCaseSensitive(o, "scopes"), *s;
    unsigned bits = 0;
    if (!cJSON_IsArray(scopes) || cJSON_GetArraySize(scopes) == 0) {
        sl_keys__seterr(err, err_len,
                        "keys[%zu].scopes must be a non-empty array of \"predict\", \"admin\"", i);
        return NULL;
    }
    cJSON_ArrayForEach(s, scopes) {
        unsigned b = cJSON_IsString(s) ? scope_bit(s->valuestring, strlen(s->valuestring)) : 0;
        if (!b || (bits & b)) {
            sl_keys__seterr(err, err_len, "keys[%zu].scopes: %s", i,
                            b ? "a scope is listed twice"
                              : "each scope must be \"predict\" or \"admin\"");
            return NULL;
        }
        bits |= b;
    }
    int64_t created, expires, revoked;
    if (!get_time(o, "created_at", true, &created, i, err, err_len) ||
        !get_time(o, "expires_at", false, &expires, i, err, err_len) ||
        !get_time(o, "revoked_at", false, &revoked, i, err, err_len))
        return NULL;
    sl_keys__entry_t *e = sl_calloc(1, sizeof *e);
    e->info = (sl_key_info_t){.id = sl_strdup(id),
                              .tenant = sl_strdup(tenant),
                              .tier = sl_strdup(tier),
                              .scopes = bits,
                              .created_at = created,
                              .expires_at = expires,
                              .revoked_at = revoked};
    memcpy(e->digest, digest, SL_KEYS__DIGEST_LEN);
    return e;
}

/* Returns the index of the first entry whose id repeats an earlier one, or SIZE_MAX. */
static size_t find_duplicate_id(const sl_keys_t *t) {
    size_t cap = 16;
    while (cap < 2 * t->n)
        cap *= 2;
    uint32_t *set = sl_calloc(cap, sizeof *set);
    size_t dup = SIZE_MAX;
    for (size_t i = 0; i < t->n && dup == SIZE_MAX; i++) {
        size_t s =
            (size_t)sl_fnv64(SL_FNV64_INIT, t->v[i]->info.id, strlen(t->v[i]->info.id)) & (cap - 1);
        while (set[s] && dup == SIZE_MAX) {
            if (strcmp(t->v[set[s] - 1]->info.id, t->v[i]->info.id) == 0) dup = i;
            s = (s + 1) & (cap - 1);
        }
        set[s] = (uint32_t)(i + 1);
    }
    free(set);
    return dup;
}

int sl_keys_parse(const char *data, size_t len, sl_keys_t **out, char *err, size_t err_len) {
    *out = NULL;
    if (len > SL_KEYS_MAX_FILE) {
        sl_keys__seterr(err, err_len, "file is larger than %u bytes", SL_KEYS_MAX_FILE);
        return SL_ELIMIT;
    }
    sl_json_limits_t lim = {.max_bytes = SL_KEYS_MAX_FILE, .max_depth = 8};
    cJSON *root = NULL;
    char jerr[160];
    int rc = sl_json_parse_ex(data, len, &lim, &root, jerr, sizeof jerr);
    if (rc != 0) {
        sl_keys__seterr(err, err_len, "not valid JSON: %s", jerr);
        return rc == SL_ELIMIT ? SL_ELIMIT : SL_EPARSE;
    }
    sl_keys_t *t = NULL;
    rc = SL_EPARSE;
    const cJSON *f, *keys = cJSON_GetObjectItemCaseSensitive(root, "keys"),
                    *version = cJSON_GetObjectItemCaseSensitive(root, "version");
    if (!cJSON_IsObject(root)) {
        sl_keys__seterr(err, err_len,
                        "the top level must be an object {\"version\": 1, \"keys\": [...]}");
        goto done;
    }
    cJSON_ArrayForEach(f, root) {
        if (strcmp(f->string, "version") != 0 && strcmp(f->string, "keys") != 0) {
            sl_keys__seterr(err, err_len, "unknown top-level field '%.64s'", f->string);
            goto done;
        }
    }
    if (!cJSON_IsNumber(version) || version->valuedouble != 1) {
        sl_keys__seterr(err, err_len, "field 'version' must be 1");
        goto done;
    }
    if (!cJSON_IsArray(keys)) {
        sl_keys__seterr(err, err_len, "field 'keys' must be an array");
        goto done;
    }
    if (cJSON_GetArraySize(keys) > SL_KEYS_MAX_KEYS) {
        sl_keys__seterr(err, err_len, "more than %d keys", SL_KEYS_MAX_KEYS);
        rc = SL_ELIMIT;
        goto done;
    }
    t = sl_keys_new_empty();
    size_t i = 0;
    cJSON_ArrayForEach(f, keys) {
        sl_keys__entry_t *e = parse_entry(f, i++, err, err_len);
        if (!e) goto done;
        sl_keys__table_push(t, e);
    }
    size_t dup = find_duplicate_id(t);
    if (dup != SIZE_MAX) {
        sl_keys__seterr(err, err_len, "keys[%zu].id '%s' is used twice", dup, t->v[dup]->info.id);
        goto done;
    }
    if ((dup = sl_keys__index_build(t)) != SIZE_MAX) {
        sl_keys__seterr(err, err_len, "keys[%zu].sha256 repeats the digest of an earlier key", dup);
        goto done;
    }
    rc = 0;
    *out = t;
    t = NULL;
done:
    sl_keys_unref(t);
    cJSON_Delete(root);
    return rc;
}

/* Reads the open file fd (at most SL_KEYS_MAX_FILE bytes) and parses it. */
int sl_keys__load_fd(int fd, const struct stat *st, sl_keys_t **out, char *err, size_t err_len) {
    *out = NULL;
    if (!S_ISREG(st->st_mode)) {
        sl_keys__seterr(err, err_len, "not a regular file");
        return SL_EIO;
    }
    if (st->st_size > (off_t)SL_KEYS_MAX_FILE) {
        sl_keys__seterr(err, err_len, "file is larger than %u bytes", SL_KEYS_MAX_FILE);
        return SL_ELIMIT;
    }
    sl_buf_t b = SL_BUF_INIT;
    int rc = 0;
    while (true) {
        sl_buf_reserve(&b, 65536);
        ssize_t r = read(fd, b.data + b.len, b.cap - b.len - 1);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            sl_keys__seterr(err, err_len, "cannot read: %s", strerror(errno));
            rc = SL_EIO;
            break;
        }
        if (r == 0) break;
        b.len += (size_t)r;
        if (b.len > SL_KEYS_MAX_FILE) {
            sl_keys__seterr(err, err_len, "file is larger than %u bytes", SL_KEYS_MAX_FILE);
            rc = SL_ELIMIT;
            break;
        }
    }
    if (rc == 0) rc = sl_keys_parse(b.len ? b.data : "", b.len, out, err, err_len);
    sl_buf_free(&b);
    return rc;
}

int sl_keys__open_file(const char *path, int *fd, struct stat *st, char *err, size_t err_len) {
    *fd = open(path, O_RDONLY | O_CLOEXEC);
    if (*fd < 0 || fstat(*fd, st) != 0) {
        int e = errno;
        if (*fd >= 0) close(*fd);
        *fd = -1;
        sl_keys__seterr(err, err_len, "cannot open: %s", strerror(e));
        return e == ENOENT ? SL_ENOENT : SL_EIO;
    }
    return 0;
}

int sl_keys_load(const char *path, sl_keys_t **out, char *err, size_t err_len) {
    int fd;
    struct stat st;
    *out = NULL;
    int rc = sl_keys__open_file(path, &fd, &st, err, err_len);
    if (rc != 0) return rc;
    rc = sl_keys__load_fd(fd, &st, out, err, err_len);
    close(fd);
    return rc;
}

/* --- Saving ------------------------------------------------------------------------------- */

static void put_time(sl_buf_t *b, const char *name, int64_t t) {
    char ts[21];
    sl_buf_printf(b, ", \"%s\": ", name);
    if (!t) {
        sl_buf_puts(b, "null");
        return;
    }
    sl_keys_format_time(t, ts);
    sl_buf_printf(b, "\"%s\"", ts);
}

static void serialize(const sl_keys_t *t, sl_buf_t *b) {
    sl_buf_puts(b, "{\n  \"version\": 1,\n  \"keys\": [");
    for (size_t i = 0; i < t->n; i++) {
        const sl_keys__entry_t *e = t->v[i];
        char hex[2 * SL_KEYS__DIGEST_LEN + 1];
        sl_keys__hex_encode(e->digest, SL_KEYS__DIGEST_LEN, hex);
        /* ids, tenants and tiers are restricted to characters JSON needs no escape for. */
        sl_buf_printf(b,
                      "%s\n    {\"id\": \"%s\", \"sha256\": \"%s\", \"tenant\": \"%s\", "
                      "\"tier\": \"%s\", \"scopes\": [",
                      i ? "," : "", e->info.id, hex, e->info.tenant, e->info.tier);
        const char *sep = "";
        for (size_t k = 0; k < SL_ARRAY_LEN(scope_names); k++) {
            if (!(e->info.scopes & scope_names[k].bit)) continue;
            sl_buf_printf(b, "%s\"%s\"", sep, scope_names[k].name);
            sep = ", ";
        }
        sl_buf_puts(b, "]");
        put_time(b, "created_at", e->info.created_at);
        put_time(b, "expires_at", e->info.expires_at);
        put_time(b, "revoked_at", e->info.revoked_at);
        sl_buf_puts(b, "}");
    }
    sl_buf_puts(b, t->n ? "\n  ]\n}\n" : "]\n}\n");
}

static bool write_all(int fd, const char *p, size_t n) {
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return false;
        p += w;
        n -= (size_t)w;
    }
    return true;
}

int sl_keys_save(const sl_keys_t *t, const char *path, char *err, size_t err_len) {
    sl_buf_t b = SL_BUF_INIT, tmp = SL_BUF_INIT, dir = SL_BUF_INIT;
    serialize(t, &b);
    sl_buf_printf(&tmp, "%s.tmp.XXXXXX", path);
    const char *slash = strrchr(path, '/');
    if (slash)
        sl_buf_append(&dir, path, slash == path ? 1 : (size_t)(slash - path));
    else
        sl_buf_puts(&dir, ".");
    int rc = SL_EIO;
    int fd = mkstemp(tmp.data); /* mode 0600 */
    if (fd < 0) {
        sl_keys__seterr(err, err_len, "cannot create a temporary file next to it: %s",
                        strerror(errno));
        goto done;
    }
    if (fchmod(fd, 0600) != 0 || !write_all(fd, b.data, b.len) || fsync(fd) != 0) {
        sl_keys__seterr(err, err_len, "cannot write %s: %s", tmp.data, strerror(errno));
        close(fd);
        unlink(tmp.data);
        goto done;
    }
    if (close(fd) != 0 || rename(tmp.data, path) != 0) {
        sl_keys__seterr(err, err_len, "cannot replace it: %s", strerror(errno));
        unlink(tmp.data);
        goto done;
    }
    /* Make the rename itself durable; a failure here leaves a correct file, so it is ignored. */
    int dfd = open(dir.data, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        (void)fsync(dfd);
        close(dfd);
    }
    rc = 0;
done:
    sl_buf_free(&b);
    sl_buf_free(&tmp);
    sl_buf_free(&dir);
    return rc;
}
