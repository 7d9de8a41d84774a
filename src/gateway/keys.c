/* API keys: the immutable lookup table (SHA-256 digests in an open-addressing hash table keyed by
 * their first 8 bytes, full digests compared with CRYPTO_memcmp), Bearer authentication, its
 * holder for I/O threads, the file reloader and key creation. keys_file.c reads and writes the
 * file. See keys.h. */
#include "gateway/keys.h"
#include "gateway/keys_internal.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* --- Digests and key text ------------------------------------------------------------------ */

/* The SHA-256 implementation, fetched once: an implicit fetch on every call would take the
 * provider store's lock on the hot path. */
static EVP_MD *sha256_md;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;
static void sha256_fetch(void) {
    sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
}

static bool sha256(const void *data, size_t len, uint8_t out[SL_KEYS__DIGEST_LEN]) {
    pthread_once(&sha256_once, sha256_fetch);
    unsigned int n = 0;
    return sha256_md && EVP_Digest(data, len, out, &n, sha256_md, NULL) == 1 &&
           n == SL_KEYS__DIGEST_LEN;
}

static uint64_t digest_prefix(const uint8_t d[SL_KEYS__DIGEST_LEN]) {
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

void sl_keys__hex_encode(const uint8_t *in, size_t n, char *out) {
    static const char tab[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = tab[in[i] >> 4];
        out[2 * i + 1] = tab[in[i] & 15];
    }
    out[2 * n] = '\0';
}

/* --- The table ----------------------------------------------------------------------------- */

static void entry_free(sl_keys__entry_t *e) {
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
size_t sl_keys__index_build(sl_keys_t *t) {
    size_t want = 16;
    while (want < 2 * t->n)
        want *= 2;
    free(t->slots);
    t->slots = sl_calloc(want, sizeof *t->slots);
    t->mask = want - 1;
    for (size_t i = 0; i < t->n; i++) {
        size_t s = (size_t)digest_prefix(t->v[i]->digest) & t->mask;
        while (t->slots[s]) {
            if (memcmp(t->v[t->slots[s] - 1]->digest, t->v[i]->digest, SL_KEYS__DIGEST_LEN) == 0)
                return i;
            s = (s + 1) & t->mask;
        }
        t->slots[s] = (uint32_t)(i + 1);
    }
    return SIZE_MAX;
}

void sl_keys__table_push(sl_keys_t *t, sl_keys__entry_t *e) {
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
    uint8_t d[SL_KEYS__DIGEST_LEN];
    if (!sha256(p, SL_KEYS_KEY_LEN, d)) return res->outcome = SL_KEYS_AUTH_UNKNOWN;
    res->outcome = SL_KEYS_AUTH_UNKNOWN;
    if (!t) return res->outcome; /* no table published yet: every key is unknown */
    uint64_t prefix = digest_prefix(d);
    for (size_t s = (size_t)prefix & t->mask; t->slots[s]; s = (s + 1) & t->mask) {
        const sl_keys__entry_t *e = t->v[t->slots[s] - 1];
        /* The prefix only picks candidates; the decision is the full digest, compared in
         * constant time. */
        if (digest_prefix(e->digest) != prefix ||
            CRYPTO_memcmp(e->digest, d, SL_KEYS__DIGEST_LEN) != 0)
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

/* The holder is a core snapshot of tables; these adapt the typed refcount to its callbacks. */
static void table_ref(void *t) {
    sl_keys_ref(t);
}
static void table_unref(void *t) {
    sl_keys_unref(t);
}

struct sl_keys_holder {
    sl_snapshot_t *snap;
};

sl_keys_holder_t *sl_keys_holder_new(sl_keys_t *initial) {
    sl_keys_holder_t *h = sl_calloc(1, sizeof *h);
    h->snap = sl_snapshot_new(table_ref, table_unref, initial);
    return h;
}

void sl_keys_holder_free(sl_keys_holder_t *h) {
    if (!h) return;
    sl_snapshot_free(h->snap);
    free(h);
}

void sl_keys_holder_publish(sl_keys_holder_t *h, sl_keys_t *t) {
    sl_snapshot_publish(h->snap, t);
}

sl_keys_t *sl_keys_holder_acquire(sl_keys_holder_t *h) {
    return sl_snapshot_acquire(h->snap);
}

const sl_keys_t *sl_keys_view_get(sl_keys_holder_t *h, sl_keys_view_t *v) {
    return sl_snapshot_view_get(h->snap, &v->snap);
}

void sl_keys_view_release(sl_keys_view_t *v) {
    sl_snapshot_view_release(&v->snap);
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
    int rc = sl_keys__open_file(r->path, &fd, &st, msg, sizeof msg);
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
        rc = sl_keys__load_fd(fd, &st, out, msg, sizeof msg);
        close(fd);
    }
    if (rc != 0) sl_keys__seterr(err, err_len, "%s: %s", r->path, msg);
    return rc;
}

/* --- Editing and saving -------------------------------------------------------------------- */

int sl_keys_create(sl_keys_t *t, const sl_keys_spec_t *spec, int64_t now,
                   char key_out[SL_KEYS_KEY_BUF], const sl_key_info_t **info_out, char *err,
                   size_t err_len) {
    const char *tier = spec->tier ? spec->tier : SL_KEYS_DEFAULT_TIER;
    unsigned scopes = spec->scopes ? spec->scopes : SL_KEY_SCOPE_PREDICT;
    if (!spec->tenant || !sl_keys__valid_tenant(spec->tenant)) {
        sl_keys__seterr(err, err_len, "a tenant is 1-%d characters of [A-Za-z0-9._:@-]",
                        SL_KEYS_TENANT_MAX);
        return SL_EINVAL;
    }
    if (!sl_keys__valid_tier(tier)) {
        sl_keys__seterr(err, err_len, "a tier is 1-%d characters of [a-z0-9_-]", SL_KEYS_TIER_MAX);
        return SL_EINVAL;
    }
    if (scopes & ~(unsigned)(SL_KEY_SCOPE_PREDICT | SL_KEY_SCOPE_ADMIN)) {
        sl_keys__seterr(err, err_len, "unknown scope bits");
        return SL_EINVAL;
    }
    if (spec->expires_at && spec->expires_at <= now) {
        sl_keys__seterr(err, err_len, "the expiry time is not in the future");
        return SL_EINVAL;
    }
    if (t->n >= SL_KEYS_MAX_KEYS) {
        sl_keys__seterr(err, err_len, "the table already holds %d keys", SL_KEYS_MAX_KEYS);
        return SL_ELIMIT;
    }
    uint8_t raw[32], d[SL_KEYS__DIGEST_LEN];
    char id[13];
    for (int attempt = 0;; attempt++) {
        /* 32 bits of id collide within a file of thousands of keys now and then: draw again. */
        if (attempt == 16 || RAND_bytes(raw, sizeof raw) != 1) {
            sl_keys__seterr(err, err_len, "the random number generator failed");
            OPENSSL_cleanse(raw, sizeof raw);
            return SL_EIO;
        }
        memcpy(key_out, SL_KEYS_PREFIX, 4);
        b64url_encode(raw, sizeof raw, key_out + 4);
        if (!sha256(key_out, SL_KEYS_KEY_LEN, d)) continue;
        memcpy(id, "key_", 4);
        sl_keys__hex_encode(d, 4, id + 4);
        bool clash = sl_keys_find_id(t, id) != NULL;
        for (size_t i = 0; i < t->n && !clash; i++)
            clash = memcmp(t->v[i]->digest, d, SL_KEYS__DIGEST_LEN) == 0;
        if (!clash) break;
    }
    OPENSSL_cleanse(raw, sizeof raw);
    sl_keys__entry_t *e = sl_calloc(1, sizeof *e);
    e->info = (sl_key_info_t){.id = sl_strdup(id),
                              .tenant = sl_strdup(spec->tenant),
                              .tier = sl_strdup(tier),
                              .scopes = scopes,
                              .created_at = now,
                              .expires_at = spec->expires_at};
    memcpy(e->digest, d, SL_KEYS__DIGEST_LEN);
    sl_keys__table_push(t, e);
    SL_ASSERT(sl_keys__index_build(t) == SIZE_MAX); /* digests were checked for clashes above */
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
