/* API keys: the keys file's parser and writer, the immutable lookup table (SHA-256 digests in an
 * open-addressing hash table keyed by their first 8 bytes, full digests compared with
 * CRYPTO_memcmp), its holder for I/O threads and the file reloader. See keys.h. */
#include "gateway/keys.h"

#include "core/buf.h"
#include "core/json.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define DIGEST_LEN 32

typedef struct entry {
    sl_key_info_t info; /* its strings are owned by the entry */
    uint8_t digest[DIGEST_LEN];
} entry_t;

struct sl_keys {
    atomic_size_t refs;
    entry_t **v; /* separately allocated, so borrowed sl_key_info_t pointers never move */
    size_t n, cap;
    uint32_t *slots; /* index + 1 into v; 0 is empty */
    size_t mask;     /* slot count - 1 (a power of two) */
};

static void seterr(char *err, size_t err_len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void seterr(char *err, size_t err_len, const char *fmt, ...) {
    if (!err || !err_len) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, err_len, fmt, ap);
    va_end(ap);
}

/* --- Digests and key text ------------------------------------------------------------------ */

/* The SHA-256 implementation, fetched once: an implicit fetch on every call would take the
 * provider store's lock on the hot path. */
static EVP_MD *sha256_md;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;
static void sha256_fetch(void) {
    sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
}

static bool sha256(const void *data, size_t len, uint8_t out[DIGEST_LEN]) {
    pthread_once(&sha256_once, sha256_fetch);
    unsigned int n = 0;
    return sha256_md && EVP_Digest(data, len, out, &n, sha256_md, NULL) == 1 && n == DIGEST_LEN;
}

static uint64_t digest_prefix(const uint8_t d[DIGEST_LEN]) {
    uint64_t u;
    memcpy(&u, d, sizeof u);
    return u;
}

static bool is_b64url(char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_';
}

/* Base64url without padding: 32 bytes give 43 characters. */
static void b64url_encode(const uint8_t *in, size_t n, char *out) {
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        acc = acc << 8 | in[i];
        for (bits += 8; bits >= 6; bits -= 6)
            *out++ = tab[acc >> (bits - 6) & 63];
    }
    if (bits) *out++ = tab[acc << (6 - bits) & 63];
    *out = '\0';
}

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

static void hex_encode(const uint8_t *in, size_t n, char *out) {
    static const char tab[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = tab[in[i] >> 4];
        out[2 * i + 1] = tab[in[i] & 15];
    }
    out[2 * n] = '\0';
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
static bool valid_tenant(const char *s) {
    return valid_chars(s, SL_KEYS_TENANT_MAX, "._:@-", true);
}
static bool valid_tier(const char *s) {
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

/* --- The table ----------------------------------------------------------------------------- */

static void entry_free(entry_t *e) {
    if (!e) return;
    free((char *)e->info.id);
    free((char *)e->info.tenant);
    free((char *)e->info.tier);
    free(e);
}

sl_keys_t *sl_keys_new_empty(void) {
    sl_keys_t *t = sl_calloc(1, sizeof *t);
    atomic_init(&t->refs, 1);
    t->mask = 15;
    t->slots = sl_calloc(t->mask + 1, sizeof *t->slots);
    return t;
}

sl_keys_t *sl_keys_ref(sl_keys_t *t) {
    if (t) atomic_fetch_add_explicit(&t->refs, 1, memory_order_relaxed);
    return t;
}

void sl_keys_unref(sl_keys_t *t) {
    if (!t || atomic_fetch_sub_explicit(&t->refs, 1, memory_order_acq_rel) != 1) return;
    for (size_t i = 0; i < t->n; i++)
        entry_free(t->v[i]);
    free(t->v);
    free(t->slots);
    free(t);
}

/* Rebuilds the digest index for t->n entries. Returns the index of an entry whose digest
 * repeats an earlier one, or SIZE_MAX. */
static size_t index_build(sl_keys_t *t) {
    size_t want = 16;
    while (want < 2 * t->n)
        want *= 2;
    free(t->slots);
    t->slots = sl_calloc(want, sizeof *t->slots);
    t->mask = want - 1;
    for (size_t i = 0; i < t->n; i++) {
        size_t s = (size_t)digest_prefix(t->v[i]->digest) & t->mask;
        while (t->slots[s]) {
            if (memcmp(t->v[t->slots[s] - 1]->digest, t->v[i]->digest, DIGEST_LEN) == 0) return i;
            s = (s + 1) & t->mask;
        }
        t->slots[s] = (uint32_t)(i + 1);
    }
    return SIZE_MAX;
}

static void table_push(sl_keys_t *t, entry_t *e) {
    if (t->n == t->cap) {
        t->cap = t->cap ? 2 * t->cap : 16;
        t->v = sl_realloc(t->v, t->cap * sizeof *t->v);
    }
    t->v[t->n++] = e;
}

size_t sl_keys_count(const sl_keys_t *t) {
    return t->n;
}

const sl_key_info_t *sl_keys_at(const sl_keys_t *t, size_t i) {
    SL_ASSERT(i < t->n);
    return &t->v[i]->info;
}

const sl_key_info_t *sl_keys_find_id(const sl_keys_t *t, const char *id) {
    for (size_t i = 0; i < t->n; i++) {
        if (strcmp(t->v[i]->info.id, id) == 0) return &t->v[i]->info;
    }
    return NULL;
}

sl_key_state_t sl_keys_state(const sl_key_info_t *key, int64_t now) {
    if (key->revoked_at) return SL_KEY_REVOKED;
    if (key->expires_at && now >= key->expires_at) return SL_KEY_EXPIRED;
    return SL_KEY_ACTIVE;
}

const char *sl_keys_state_name(sl_key_state_t s) {
    static const char *const names[] = {"active", "expired", "revoked"};
    return (unsigned)s < SL_ARRAY_LEN(names) ? names[s] : "?";
}

/* --- Parsing ------------------------------------------------------------------------------- */

/* An optional time field: absent or null is 0. Returns false with a message on a bad value. */
static bool get_time(const cJSON *o, const char *name, bool required, int64_t *out, size_t i,
                     char *err, size_t err_len) {
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(o, name);
    *out = 0;
    if (!f || cJSON_IsNull(f)) {
        if (!required) return true;
        seterr(err, err_len, "keys[%zu]: missing field '%s'", i, name);
        return false;
    }
    if (!cJSON_IsString(f) || sl_keys_parse_time(f->valuestring, out) != 0) {
        seterr(err, err_len, "keys[%zu].%s must be an RFC 3339 time (2025-01-02T03:04:05Z)%s", i,
               name, required ? "" : " or null");
        return false;
    }
    return true;
}

static const char *get_str(const cJSON *o, const char *name, size_t i, char *err, size_t err_len) {
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(o, name);
    if (!f) {
        seterr(err, err_len, "keys[%zu]: missing field '%s'", i, name);
        return NULL;
    }
    if (!cJSON_IsString(f)) {
        seterr(err, err_len, "keys[%zu].%s must be a string", i, name);
        return NULL;
    }
    return f->valuestring;
}

static entry_t *parse_entry(const cJSON *o, size_t i, char *err, size_t err_len) {
    static const char *const known[] = {"id",     "sha256",     "tenant",     "tier",
                                        "scopes", "created_at", "expires_at", "revoked_at"};
    if (!cJSON_IsObject(o)) {
        seterr(err, err_len, "keys[%zu] must be an object", i);
        return NULL;
    }
    const cJSON *f;
    cJSON_ArrayForEach(f, o) {
        bool ok = false;
        for (size_t k = 0; k < SL_ARRAY_LEN(known) && !ok; k++)
            ok = strcmp(f->string, known[k]) == 0;
        if (!ok) {
            seterr(err, err_len, "keys[%zu]: unknown field '%.64s'", i, f->string);
            return NULL;
        }
    }
    const char *id, *hex, *tenant, *tier;
    if (!(id = get_str(o, "id", i, err, err_len)) ||
        !(hex = get_str(o, "sha256", i, err, err_len)) ||
        !(tenant = get_str(o, "tenant", i, err, err_len)) ||
        !(tier = get_str(o, "tier", i, err, err_len)))
        return NULL;
    uint8_t digest[DIGEST_LEN];
    if (!valid_id(id)) {
        seterr(err, err_len, "keys[%zu].id must be 1-%d characters of [A-Za-z0-9_-]", i,
               SL_KEYS_ID_MAX);
        return NULL;
    }
    if (!hex_decode(hex, digest, DIGEST_LEN)) {
        seterr(err, err_len, "keys[%zu].sha256 must be 64 hex digits", i);
        return NULL;
    }
    if (!valid_tenant(tenant)) {
        seterr(err, err_len, "keys[%zu].tenant must be 1-%d characters of [A-Za-z0-9._:@-]", i,
               SL_KEYS_TENANT_MAX);
        return NULL;
    }
    if (!valid_tier(tier)) {
        seterr(err, err_len, "keys[%zu].tier must be 1-%d characters of [a-z0-9_-]", i,
               SL_KEYS_TIER_MAX);
        return NULL;
    }
    const cJSON *scopes = cJSON_GetObjectItemCaseSensitive(o, "scopes"), *s;
    unsigned bits = 0;
    if (!cJSON_IsArray(scopes) || cJSON_GetArraySize(scopes) == 0) {
        seterr(err, err_len, "keys[%zu].scopes must be a non-empty array of \"predict\", \"admin\"",
               i);
        return NULL;
    }
    cJSON_ArrayForEach(s, scopes) {
        unsigned b = cJSON_IsString(s) ? scope_bit(s->valuestring, strlen(s->valuestring)) : 0;
        if (!b || (bits & b)) {
            seterr(err, err_len, "keys[%zu].scopes: %s", i,
                   b ? "a scope is listed twice" : "each scope must be \"predict\" or \"admin\"");
            return NULL;
        }
        bits |= b;
    }
    int64_t created, expires, revoked;
    if (!get_time(o, "created_at", true, &created, i, err, err_len) ||
        !get_time(o, "expires_at", false, &expires, i, err, err_len) ||
        !get_time(o, "revoked_at", false, &revoked, i, err, err_len))
        return NULL;
    entry_t *e = sl_calloc(1, sizeof *e);
    e->info = (sl_key_info_t){.id = sl_strdup(id),
                              .tenant = sl_strdup(tenant),
                              .tier = sl_strdup(tier),
                              .scopes = bits,
                              .created_at = created,
                              .expires_at = expires,
                              .revoked_at = revoked};
    memcpy(e->digest, digest, DIGEST_LEN);
    return e;
}

static uint64_t fnv1a(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 1099511628211ull;
    return h;
}

/* Returns the index of the first entry whose id repeats an earlier one, or SIZE_MAX. */
static size_t find_duplicate_id(const sl_keys_t *t) {
    size_t cap = 16;
    while (cap < 2 * t->n)
        cap *= 2;
    uint32_t *set = sl_calloc(cap, sizeof *set);
    size_t dup = SIZE_MAX;
    for (size_t i = 0; i < t->n && dup == SIZE_MAX; i++) {
        size_t s = (size_t)fnv1a(t->v[i]->info.id) & (cap - 1);
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
        seterr(err, err_len, "file is larger than %u bytes", SL_KEYS_MAX_FILE);
        return SL_ELIMIT;
    }
    sl_json_limits_t lim = {.max_bytes = SL_KEYS_MAX_FILE, .max_depth = 8};
    cJSON *root = NULL;
    char jerr[160];
    int rc = sl_json_parse_ex(data, len, &lim, &root, jerr, sizeof jerr);
    if (rc != 0) {
        seterr(err, err_len, "not valid JSON: %s", jerr);
        return rc == SL_ELIMIT ? SL_ELIMIT : SL_EPARSE;
    }
    sl_keys_t *t = NULL;
    rc = SL_EPARSE;
    const cJSON *f, *keys = cJSON_GetObjectItemCaseSensitive(root, "keys"),
                    *version = cJSON_GetObjectItemCaseSensitive(root, "version");
    if (!cJSON_IsObject(root)) {
        seterr(err, err_len, "the top level must be an object {\"version\": 1, \"keys\": [...]}");
        goto done;
    }
    cJSON_ArrayForEach(f, root) {
        if (strcmp(f->string, "version") != 0 && strcmp(f->string, "keys") != 0) {
            seterr(err, err_len, "unknown top-level field '%.64s'", f->string);
            goto done;
        }
    }
    if (!cJSON_IsNumber(version) || version->valuedouble != 1) {
        seterr(err, err_len, "field 'version' must be 1");
        goto done;
    }
    if (!cJSON_IsArray(keys)) {
        seterr(err, err_len, "field 'keys' must be an array");
        goto done;
    }
    if (cJSON_GetArraySize(keys) > SL_KEYS_MAX_KEYS) {
        seterr(err, err_len, "more than %d keys", SL_KEYS_MAX_KEYS);
        rc = SL_ELIMIT;
        goto done;
    }
    t = sl_keys_new_empty();
    size_t i = 0;
    cJSON_ArrayForEach(f, keys) {
        entry_t *e = parse_entry(f, i++, err, err_len);
        if (!e) goto done;
        table_push(t, e);
    }
    size_t dup = find_duplicate_id(t);
    if (dup != SIZE_MAX) {
        seterr(err, err_len, "keys[%zu].id '%s' is used twice", dup, t->v[dup]->info.id);
        goto done;
    }
    if ((dup = index_build(t)) != SIZE_MAX) {
        seterr(err, err_len, "keys[%zu].sha256 repeats the digest of an earlier key", dup);
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
static int load_fd(int fd, const struct stat *st, sl_keys_t **out, char *err, size_t err_len) {
    *out = NULL;
    if (!S_ISREG(st->st_mode)) {
        seterr(err, err_len, "not a regular file");
        return SL_EIO;
    }
    if (st->st_size > (off_t)SL_KEYS_MAX_FILE) {
        seterr(err, err_len, "file is larger than %u bytes", SL_KEYS_MAX_FILE);
        return SL_ELIMIT;
    }
    sl_buf_t b = SL_BUF_INIT;
    int rc = 0;
    while (true) {
        sl_buf_reserve(&b, 65536);
        ssize_t r = read(fd, b.data + b.len, b.cap - b.len - 1);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            seterr(err, err_len, "cannot read: %s", strerror(errno));
            rc = SL_EIO;
            break;
        }
        if (r == 0) break;
        b.len += (size_t)r;
        if (b.len > SL_KEYS_MAX_FILE) {
            seterr(err, err_len, "file is larger than %u bytes", SL_KEYS_MAX_FILE);
            rc = SL_ELIMIT;
            break;
        }
    }
    if (rc == 0) rc = sl_keys_parse(b.len ? b.data : "", b.len, out, err, err_len);
    sl_buf_free(&b);
    return rc;
}

static int open_file(const char *path, int *fd, struct stat *st, char *err, size_t err_len) {
    *fd = open(path, O_RDONLY | O_CLOEXEC);
    if (*fd < 0 || fstat(*fd, st) != 0) {
        int e = errno;
        if (*fd >= 0) close(*fd);
        *fd = -1;
        seterr(err, err_len, "cannot open: %s", strerror(e));
        return e == ENOENT ? SL_ENOENT : SL_EIO;
    }
    return 0;
}

int sl_keys_load(const char *path, sl_keys_t **out, char *err, size_t err_len) {
    int fd;
    struct stat st;
    *out = NULL;
    int rc = open_file(path, &fd, &st, err, err_len);
    if (rc != 0) return rc;
    rc = load_fd(fd, &st, out, err, err_len);
    close(fd);
    return rc;
}

/* --- Authentication ------------------------------------------------------------------------ */

static bool is_ows(char c) {
    return c == ' ' || c == '\t';
}

sl_keys_auth_outcome_t sl_keys_authenticate(const sl_keys_t *t, sl_str_t header, int64_t now,
                                            sl_keys_auth_t *res) {
    res->key = NULL;
    const char *p = header.ptr, *end = header.ptr ? header.ptr + header.len : NULL;
    while (p < end && is_ows(*p))
        p++;
    while (end > p && is_ows(end[-1]))
        end--;
    if (!p || p == end) return res->outcome = SL_KEYS_AUTH_MISSING;
    res->outcome = SL_KEYS_AUTH_MALFORMED;
    if (header.len > SL_KEYS_HEADER_MAX || end - p < 7 || !sl_str_ieq((sl_str_t){p, 6}, "bearer") ||
        !is_ows(p[6]))
        return res->outcome;
    p += 7;
    while (p < end && is_ows(*p))
        p++;
    if (end - p != SL_KEYS_KEY_LEN || memcmp(p, SL_KEYS_PREFIX, 4) != 0) return res->outcome;
    for (const char *c = p + 4; c < end; c++) {
        if (!is_b64url(*c)) return res->outcome;
    }
    uint8_t d[DIGEST_LEN];
    if (!sha256(p, SL_KEYS_KEY_LEN, d)) return res->outcome = SL_KEYS_AUTH_UNKNOWN;
    res->outcome = SL_KEYS_AUTH_UNKNOWN;
    if (!t) return res->outcome; /* no table published yet: every key is unknown */
    uint64_t prefix = digest_prefix(d);
    for (size_t s = (size_t)prefix & t->mask; t->slots[s]; s = (s + 1) & t->mask) {
        const entry_t *e = t->v[t->slots[s] - 1];
        /* The prefix only picks candidates; the decision is the full digest, compared in
         * constant time. */
        if (digest_prefix(e->digest) != prefix || CRYPTO_memcmp(e->digest, d, DIGEST_LEN) != 0)
            continue;
        res->key = &e->info;
        sl_key_state_t st = sl_keys_state(&e->info, now);
        res->outcome = st == SL_KEY_REVOKED   ? SL_KEYS_AUTH_REVOKED
                       : st == SL_KEY_EXPIRED ? SL_KEYS_AUTH_EXPIRED
                                              : SL_KEYS_AUTH_OK;
        break;
    }
    return res->outcome;
}

const char *sl_keys_auth_outcome_name(sl_keys_auth_outcome_t o) {
    static const char *const names[] = {"ok",      "missing", "malformed",
                                        "unknown", "expired", "revoked"};
    return (unsigned)o < SL_ARRAY_LEN(names) ? names[o] : "?";
}

/* --- Holder -------------------------------------------------------------------------------- */

struct sl_keys_holder {
    pthread_mutex_t lock;
    sl_keys_t *table;     /* guarded by lock */
    _Atomic uint64_t gen; /* bumped (under lock) on every publish; starts at 1 */
};

sl_keys_holder_t *sl_keys_holder_new(sl_keys_t *initial) {
    sl_keys_holder_t *h = sl_calloc(1, sizeof *h);
    pthread_mutex_init(&h->lock, NULL);
    h->table = initial;
    atomic_init(&h->gen, 1);
    return h;
}

void sl_keys_holder_free(sl_keys_holder_t *h) {
    if (!h) return;
    sl_keys_unref(h->table);
    pthread_mutex_destroy(&h->lock);
    free(h);
}

void sl_keys_holder_publish(sl_keys_holder_t *h, sl_keys_t *t) {
    pthread_mutex_lock(&h->lock);
    sl_keys_t *old = h->table;
    h->table = t;
    atomic_fetch_add_explicit(&h->gen, 1, memory_order_release);
    pthread_mutex_unlock(&h->lock);
    sl_keys_unref(old); /* outside the lock: freeing a large table takes a while */
}

static sl_keys_t *acquire(sl_keys_holder_t *h, uint64_t *gen) {
    pthread_mutex_lock(&h->lock);
    sl_keys_t *t = sl_keys_ref(h->table);
    if (gen) *gen = atomic_load_explicit(&h->gen, memory_order_relaxed);
    pthread_mutex_unlock(&h->lock);
    return t;
}

sl_keys_t *sl_keys_holder_acquire(sl_keys_holder_t *h) {
    return acquire(h, NULL);
}

const sl_keys_t *sl_keys_view_get(sl_keys_holder_t *h, sl_keys_view_t *v) {
    if (atomic_load_explicit(&h->gen, memory_order_acquire) != v->gen) {
        sl_keys_t *old = v->table;
        v->table = acquire(h, &v->gen);
        sl_keys_unref(old);
    }
    return v->table;
}

void sl_keys_view_release(sl_keys_view_t *v) {
    sl_keys_unref(v->table);
    v->table = NULL;
    v->gen = 0;
}

/* --- Reloader ------------------------------------------------------------------------------ */

typedef struct stamp {
    int err; /* the status of a failed open/stat, else 0 */
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime, ctime;
} stamp_t;

struct sl_keys_reloader {
    char *path;
    bool seen; /* last is valid */
    stamp_t last;
};

sl_keys_reloader_t *sl_keys_reloader_new(const char *path) {
    sl_keys_reloader_t *r = sl_calloc(1, sizeof *r);
    r->path = sl_strdup(path);
    return r;
}

void sl_keys_reloader_free(sl_keys_reloader_t *r) {
    if (!r) return;
    free(r->path);
    free(r);
}

static bool stamp_eq(const stamp_t *a, const stamp_t *b) {
    return a->err == b->err && a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
           a->mtime.tv_sec == b->mtime.tv_sec && a->mtime.tv_nsec == b->mtime.tv_nsec &&
           a->ctime.tv_sec == b->ctime.tv_sec && a->ctime.tv_nsec == b->ctime.tv_nsec;
}

int sl_keys_reloader_poll(sl_keys_reloader_t *r, sl_keys_t **out, char *err, size_t err_len) {
    *out = NULL;
    int fd;
    struct stat st;
    char msg[256];
    stamp_t now = {0};
    int rc = open_file(r->path, &fd, &st, msg, sizeof msg);
    if (rc != 0) {
        now.err = rc; /* SL_ENOENT or SL_EIO: stable across polls, unlike errno */
    } else {
        now.dev = st.st_dev;
        now.ino = st.st_ino;
        now.size = st.st_size;
        now.mtime = st.st_mtim;
        now.ctime = st.st_ctim;
    }
    if (r->seen && stamp_eq(&now, &r->last)) {
        if (fd >= 0) close(fd);
        return 0;
    }
    r->seen = true;
    r->last = now;
    if (rc == 0) {
        rc = load_fd(fd, &st, out, msg, sizeof msg);
        close(fd);
    }
    if (rc != 0) seterr(err, err_len, "%s: %s", r->path, msg);
    return rc;
}

/* --- Editing and saving -------------------------------------------------------------------- */

int sl_keys_create(sl_keys_t *t, const sl_keys_spec_t *spec, int64_t now,
                   char key_out[SL_KEYS_KEY_BUF], const sl_key_info_t **info_out, char *err,
                   size_t err_len) {
    const char *tier = spec->tier ? spec->tier : SL_KEYS_DEFAULT_TIER;
    unsigned scopes = spec->scopes ? spec->scopes : SL_KEY_SCOPE_PREDICT;
    if (!spec->tenant || !valid_tenant(spec->tenant)) {
        seterr(err, err_len, "a tenant is 1-%d characters of [A-Za-z0-9._:@-]", SL_KEYS_TENANT_MAX);
        return SL_EINVAL;
    }
    if (!valid_tier(tier)) {
        seterr(err, err_len, "a tier is 1-%d characters of [a-z0-9_-]", SL_KEYS_TIER_MAX);
        return SL_EINVAL;
    }
    if (scopes & ~(unsigned)(SL_KEY_SCOPE_PREDICT | SL_KEY_SCOPE_ADMIN)) {
        seterr(err, err_len, "unknown scope bits");
        return SL_EINVAL;
    }
    if (spec->expires_at && spec->expires_at <= now) {
        seterr(err, err_len, "the expiry time is not in the future");
        return SL_EINVAL;
    }
    if (t->n >= SL_KEYS_MAX_KEYS) {
        seterr(err, err_len, "the table already holds %d keys", SL_KEYS_MAX_KEYS);
        return SL_ELIMIT;
    }
    uint8_t raw[32], d[DIGEST_LEN];
    char id[13];
    for (int attempt = 0;; attempt++) {
        /* 32 bits of id collide within a file of thousands of keys now and then: draw again. */
        if (attempt == 16 || RAND_bytes(raw, sizeof raw) != 1) {
            seterr(err, err_len, "the random number generator failed");
            OPENSSL_cleanse(raw, sizeof raw);
            return SL_EIO;
        }
        memcpy(key_out, SL_KEYS_PREFIX, 4);
        b64url_encode(raw, sizeof raw, key_out + 4);
        if (!sha256(key_out, SL_KEYS_KEY_LEN, d)) continue;
        memcpy(id, "key_", 4);
        hex_encode(d, 4, id + 4);
        bool clash = sl_keys_find_id(t, id) != NULL;
        for (size_t i = 0; i < t->n && !clash; i++)
            clash = memcmp(t->v[i]->digest, d, DIGEST_LEN) == 0;
        if (!clash) break;
    }
    OPENSSL_cleanse(raw, sizeof raw);
    entry_t *e = sl_calloc(1, sizeof *e);
    e->info = (sl_key_info_t){.id = sl_strdup(id),
                              .tenant = sl_strdup(spec->tenant),
                              .tier = sl_strdup(tier),
                              .scopes = scopes,
                              .created_at = now,
                              .expires_at = spec->expires_at};
    memcpy(e->digest, d, DIGEST_LEN);
    table_push(t, e);
    SL_ASSERT(index_build(t) == SIZE_MAX); /* digests were checked for clashes above */
    if (info_out) *info_out = &e->info;
    return 0;
}

int sl_keys_revoke(sl_keys_t *t, const char *id, int64_t now) {
    for (size_t i = 0; i < t->n; i++) {
        sl_key_info_t *k = &t->v[i]->info;
        if (strcmp(k->id, id) != 0) continue;
        if (k->revoked_at) return SL_EEXISTS;
        k->revoked_at = now > 0 ? now : 1;
        return 0;
    }
    return SL_ENOENT;
}

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
        const entry_t *e = t->v[i];
        char hex[2 * DIGEST_LEN + 1];
        hex_encode(e->digest, DIGEST_LEN, hex);
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
        seterr(err, err_len, "cannot create a temporary file next to it: %s", strerror(errno));
        goto done;
    }
    if (fchmod(fd, 0600) != 0 || !write_all(fd, b.data, b.len) || fsync(fd) != 0) {
        seterr(err, err_len, "cannot write %s: %s", tmp.data, strerror(errno));
        close(fd);
        unlink(tmp.data);
        goto done;
    }
    if (close(fd) != 0 || rename(tmp.data, path) != 0) {
        seterr(err, err_len, "cannot replace it: %s", strerror(errno));
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
