/* The fallback cache (sharded LRU of last good answers, bounded by entries and bytes, with a
 * TTL) and the "degraded" marker with its small validating JSON skipper. The cache copies bodies
 * in and out so that no entry is ever shared with a caller; eviction frees outside the lock. */
#include "gateway/fallback.h"

#include "core/utf8.h"

#include <pthread.h>
#include <stdalign.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SHARDS      16
#define MIN_SHARD_BYTES (1u << 20) /* a shard holds at least 1 MiB, or the cache has fewer */
#define MIN_SHARD_ITEMS 16
#define INITIAL_BUCKETS 16
#define JSON_MAX_DEPTH  64

typedef struct entry {
    struct entry *hnext;       /* hash chain; also links a list of entries to free */
    struct entry *prev, *next; /* LRU list, most recent after the shard's sentinel */
    uint64_t hash;             /* the caller's hash */
    uint64_t put_ms;
    size_t len;
    size_t route_len;
    uint8_t ct;
    char data[]; /* route, NUL, then body */
} entry_t;

typedef struct shard {
    alignas(64) pthread_mutex_t mu;
    entry_t **buckets;
    size_t n_buckets; /* power of two */
    entry_t *lru;     /* sentinel of a circular list (its own allocation: entry_t ends in a
                       * flexible array, so it cannot sit inside another struct) */
    size_t entries, bytes;
    size_t max_entries, max_bytes;
    uint64_t hits, misses, evictions, expired;
} shard_t;

struct sl_fallback_cache {
    shard_t *shards;
    size_t n_shards; /* power of two; 0: the cache stores nothing */
    unsigned shard_shift;
    uint64_t ttl_ms;
};

static size_t cost_of(const entry_t *e) {
    return e->len + e->route_len;
}

sl_fallback_cache_t *sl_fallback_cache_new(size_t max_entries, size_t max_bytes, uint64_t ttl_ms) {
    sl_fallback_cache_t *c = sl_calloc(1, sizeof *c);
    c->ttl_ms = ttl_ms;
    if (max_entries > SL_FALLBACK_MAX_ENTRIES) max_entries = SL_FALLBACK_MAX_ENTRIES;
    if (max_entries == 0 || max_bytes == 0) return c;
    size_t n = MAX_SHARDS;
    while (n > 1 && (max_entries / n < MIN_SHARD_ITEMS || max_bytes / n < MIN_SHARD_BYTES))
        n /= 2;
    c->n_shards = n;
    unsigned bits = 0;
    while (((size_t)1 << bits) < n)
        bits++;
    c->shard_shift = 64 - bits; /* unused when there is one shard */
    c->shards = aligned_alloc(64, n * sizeof(shard_t));
    SL_ASSERT(c->shards != NULL);
    memset(c->shards, 0, n * sizeof(shard_t));
    for (size_t i = 0; i < n; i++) {
        shard_t *s = &c->shards[i];
        pthread_mutex_init(&s->mu, NULL);
        s->n_buckets = INITIAL_BUCKETS;
        s->buckets = sl_calloc(s->n_buckets, sizeof *s->buckets);
        s->lru = sl_calloc(1, sizeof *s->lru);
        s->lru->prev = s->lru->next = s->lru;
        /* Split the bounds exactly: the shards together hold at most the configured totals. */
        s->max_entries = max_entries / n + (i < max_entries % n);
        s->max_bytes = max_bytes / n + (i < max_bytes % n);
    }
    return c;
}

void sl_fallback_cache_free(sl_fallback_cache_t *c) {
    if (!c) return;
    for (size_t i = 0; i < c->n_shards; i++) {
        shard_t *s = &c->shards[i];
        entry_t *e = s->lru->next;
        while (e != s->lru) {
            entry_t *next = e->next;
            free(e);
            e = next;
        }
        free(s->lru);
        free(s->buckets);
        pthread_mutex_destroy(&s->mu);
    }
    free(c->shards);
    free(c);
}

static shard_t *shard_for(sl_fallback_cache_t *c, uint64_t mixed) {
    return c->n_shards == 1 ? &c->shards[0] : &c->shards[mixed >> c->shard_shift];
}

/* The chain link that points at (route, hash)'s entry, or at the chain's NULL end. */
static entry_t **find_slot(shard_t *s, uint64_t mixed, uint64_t hash, const char *route,
                           size_t route_len) {
    entry_t **pp = &s->buckets[mixed & (s->n_buckets - 1)];
    for (; *pp; pp = &(*pp)->hnext) {
        entry_t *e = *pp;
        if (e->hash == hash && e->route_len == route_len &&
            memcmp(e->data, route, route_len) == 0) {
            break;
        }
    }
    return pp;
}

static void lru_unlink(entry_t *e) {
    e->prev->next = e->next;
    e->next->prev = e->prev;
}

static void lru_push_front(shard_t *s, entry_t *e) {
    e->next = s->lru->next;
    e->prev = s->lru;
    s->lru->next->prev = e;
    s->lru->next = e;
}

/* Removes e (found at *pp) from the shard; the caller frees it outside the lock. */
static void drop(shard_t *s, entry_t **pp, entry_t *e) {
    *pp = e->hnext;
    lru_unlink(e);
    s->entries--;
    s->bytes -= cost_of(e);
}

static void grow(shard_t *s) {
    size_t n = s->n_buckets * 2;
    entry_t **b = sl_calloc(n, sizeof *b);
    for (size_t i = 0; i < s->n_buckets; i++) {
        entry_t *e = s->buckets[i];
        while (e) {
            entry_t *next = e->hnext;
            size_t j = sl_mix64(e->hash) & (n - 1);
            e->hnext = b[j];
            b[j] = e;
            e = next;
        }
    }
    free(s->buckets);
    s->buckets = b;
    s->n_buckets = n;
}

static void free_list(entry_t *e) {
    while (e) {
        entry_t *next = e->hnext;
        free(e);
        e = next;
    }
}

void sl_fallback_put(sl_fallback_cache_t *c, const char *route, uint64_t hash, uint8_t ct,
                     const void *body, size_t len, uint64_t now_ms) {
    if (c->n_shards == 0 || !route) return;
    size_t route_len = strnlen(route, SL_FALLBACK_ROUTE_MAX + 1);
    if (route_len > SL_FALLBACK_ROUTE_MAX) return;
    uint64_t mixed = sl_mix64(hash);
    shard_t *s = shard_for(c, mixed);
    if (len > s->max_bytes || route_len + len > s->max_bytes) return;

    /* Build the entry before taking the lock: the copy is the expensive part. */
    entry_t *e = sl_malloc(sizeof *e + route_len + 1 + len);
    e->hash = hash;
    e->put_ms = now_ms;
    e->len = len;
    e->route_len = route_len;
    e->ct = ct;
    memcpy(e->data, route, route_len);
    e->data[route_len] = '\0';
    if (len) memcpy(e->data + route_len + 1, body, len);

    entry_t *garbage = NULL;
    pthread_mutex_lock(&s->mu);
    entry_t **pp = find_slot(s, mixed, hash, route, route_len);
    if (*pp) {
        entry_t *old = *pp;
        drop(s, pp, old);
        old->hnext = garbage;
        garbage = old;
    }
    if (s->entries >= s->n_buckets && s->n_buckets < s->max_entries) grow(s);
    entry_t **head = &s->buckets[mixed & (s->n_buckets - 1)];
    e->hnext = *head;
    *head = e;
    lru_push_front(s, e);
    s->entries++;
    s->bytes += cost_of(e);
    while (s->entries > s->max_entries || s->bytes > s->max_bytes) {
        entry_t *victim = s->lru->prev;
        SL_ASSERT(victim != e); /* e alone fits: checked above */
        entry_t **vp =
            find_slot(s, sl_mix64(victim->hash), victim->hash, victim->data, victim->route_len);
        SL_ASSERT(*vp == victim);
        drop(s, vp, victim);
        s->evictions++;
        victim->hnext = garbage;
        garbage = victim;
    }
    pthread_mutex_unlock(&s->mu);
    free_list(garbage);
}

bool sl_fallback_get(sl_fallback_cache_t *c, const char *route, uint64_t hash, uint64_t now_ms,
                     sl_buf_t *out, uint8_t *ct) {
    if (c->n_shards == 0 || !route) return false;
    size_t route_len = strnlen(route, SL_FALLBACK_ROUTE_MAX + 1);
    if (route_len > SL_FALLBACK_ROUTE_MAX) return false;
    uint64_t mixed = sl_mix64(hash);
    shard_t *s = shard_for(c, mixed);
    entry_t *stale = NULL;
    bool hit = false;
    pthread_mutex_lock(&s->mu);
    entry_t **pp = find_slot(s, mixed, hash, route, route_len);
    entry_t *e = *pp;
    if (e && c->ttl_ms > 0 && now_ms > e->put_ms && now_ms - e->put_ms > c->ttl_ms) {
        drop(s, pp, e);
        s->expired++;
        stale = e;
        e = NULL;
    }
    if (e) {
        lru_unlink(e);
        lru_push_front(s, e);
        /* Copied under the lock: a concurrent put may free the entry right after. */
        sl_buf_append(out, e->data + e->route_len + 1, e->len);
        if (ct) *ct = e->ct;
        s->hits++;
        hit = true;
    } else {
        s->misses++;
    }
    pthread_mutex_unlock(&s->mu);
    free(stale);
    return hit;
}

bool sl_fallback_remove(sl_fallback_cache_t *c, const char *route, uint64_t hash) {
    if (c->n_shards == 0 || !route) return false;
    size_t route_len = strnlen(route, SL_FALLBACK_ROUTE_MAX + 1);
    if (route_len > SL_FALLBACK_ROUTE_MAX) return false;
    uint64_t mixed = sl_mix64(hash);
    shard_t *s = shard_for(c, mixed);
    pthread_mutex_lock(&s->mu);
    entry_t **pp = find_slot(s, mixed, hash, route, route_len);
    entry_t *e = *pp;
    if (e) drop(s, pp, e);
    pthread_mutex_unlock(&s->mu);
    free(e);
    return e != NULL;
}

void sl_fallback_stats(sl_fallback_cache_t *c, sl_fallback_stats_t *out) {
    memset(out, 0, sizeof *out);
    for (size_t i = 0; i < c->n_shards; i++) {
        shard_t *s = &c->shards[i];
        pthread_mutex_lock(&s->mu);
        out->entries += s->entries;
        out->bytes += s->bytes;
        out->hits += s->hits;
        out->misses += s->misses;
        out->evictions += s->evictions;
        out->expired += s->expired;
        pthread_mutex_unlock(&s->mu);
    }
}

/* ---- The degraded marker: a validating JSON skipper (RFC 8259) over bytes. ---- */

typedef struct {
    const unsigned char *p, *end;
} scan_t;

static void skip_ws(scan_t *sc) {
    while (sc->p < sc->end &&
           (*sc->p == ' ' || *sc->p == '\t' || *sc->p == '\n' || *sc->p == '\r')) {
        sc->p++;
    }
}

static int hexval(unsigned char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Skips a string at sc->p (which must be '"'). When is_degraded is not NULL, decodes the string
 * far enough to tell whether it equals "degraded" (escapes included: "degr\u0061ded" is the same
 * key) and stores the answer there. */
static int skip_string(scan_t *sc, bool *is_degraded) {
    static const char want[] = "degraded";
    const size_t want_len = sizeof want - 1;
    size_t k = 0;   /* decoded ASCII bytes that matched so far */
    bool eq = true; /* still possibly equal */
    if (sc->p >= sc->end || *sc->p != '"') return SL_EINVAL;
    sc->p++;
    for (;;) {
        if (sc->p >= sc->end) return SL_EINVAL;
        unsigned char c = *sc->p;
        int dec = -1; /* the decoded ASCII byte, or -1 for anything else */
        if (c == '"') {
            sc->p++;
            break;
        }
        if (c < 0x20) return SL_EINVAL;
        if (c == '\\') {
            if (sc->end - sc->p < 2) return SL_EINVAL;
            unsigned char x = sc->p[1];
            sc->p += 2;
            switch (x) {
            case '"':
            case '\\':
            case '/':
                dec = x;
                break;
            case 'b':
            case 'f':
            case 'n':
            case 'r':
            case 't':
                dec = 0; /* a control character: never part of "degraded" */
                break;
            case 'u': {
                if (sc->end - sc->p < 4) return SL_EINVAL;
                int v = 0;
                for (int i = 0; i < 4; i++) {
                    int h = hexval(sc->p[i]);
                    if (h < 0) return SL_EINVAL;
                    v = v * 16 + h;
                }
                sc->p += 4;
                /* UTF-16 surrogates must pair up (a lone one is no character; cJSON refuses it
                 * too, so the gateway's own parser could not read such an answer back). */
                if (v >= 0xdc00 && v <= 0xdfff) return SL_EINVAL;
                if (v >= 0xd800 && v <= 0xdbff) {
                    if (sc->end - sc->p < 6 || sc->p[0] != '\\' || sc->p[1] != 'u') {
                        return SL_EINVAL;
                    }
                    int lo = 0;
                    for (int i = 2; i < 6; i++) {
                        int h = hexval(sc->p[i]);
                        if (h < 0) return SL_EINVAL;
                        lo = lo * 16 + h;
                    }
                    if (lo < 0xdc00 || lo > 0xdfff) return SL_EINVAL;
                    sc->p += 6;
                }
                dec = v < 0x80 ? v : -1;
                break;
            }
            default:
                return SL_EINVAL;
            }
        } else if (c >= 0x80) {
            size_t n = sl_utf8_seq(sc->p, (size_t)(sc->end - sc->p), NULL);
            if (n == 0) return SL_EINVAL;
            sc->p += n;
        } else {
            dec = c;
            sc->p++;
        }
        if (eq) eq = dec >= 0 && k < want_len && (char)dec == want[k++];
    }
    if (is_degraded) *is_degraded = eq && k == want_len;
    return SL_OK;
}

static int skip_number(scan_t *sc) {
    const unsigned char *p = sc->p, *end = sc->end;
    if (p < end && *p == '-') p++;
    if (p >= end) return SL_EINVAL;
    if (*p == '0') {
        p++;
    } else if (*p >= '1' && *p <= '9') {
        while (p < end && *p >= '0' && *p <= '9')
            p++;
    } else {
        return SL_EINVAL;
    }
    if (p < end && *p == '.') {
        p++;
        if (p >= end || *p < '0' || *p > '9') return SL_EINVAL;
        while (p < end && *p >= '0' && *p <= '9')
            p++;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < end && (*p == '+' || *p == '-')) p++;
        if (p >= end || *p < '0' || *p > '9') return SL_EINVAL;
        while (p < end && *p >= '0' && *p <= '9')
            p++;
    }
    sc->p = p;
    return SL_OK;
}

static int skip_literal(scan_t *sc, const char *lit) {
    size_t n = strlen(lit);
    if ((size_t)(sc->end - sc->p) < n || memcmp(sc->p, lit, n) != 0) return SL_EINVAL;
    sc->p += n;
    return SL_OK;
}

static int skip_value(scan_t *sc, int depth);

/* Skips an object at sc->p ('{'); depth counts it. When has_degraded is not NULL, reports
 * whether one of its own keys is "degraded". */
static int skip_object(scan_t *sc, int depth, bool *has_degraded) {
    if (depth > JSON_MAX_DEPTH) return SL_EINVAL;
    sc->p++; /* '{' */
    skip_ws(sc);
    if (sc->p < sc->end && *sc->p == '}') {
        sc->p++;
        return SL_OK;
    }
    for (;;) {
        bool is_deg = false;
        int rc = skip_string(sc, has_degraded ? &is_deg : NULL);
        if (rc != SL_OK) return rc;
        if (is_deg) *has_degraded = true;
        skip_ws(sc);
        if (sc->p >= sc->end || *sc->p != ':') return SL_EINVAL;
        sc->p++;
        skip_ws(sc);
        rc = skip_value(sc, depth);
        if (rc != SL_OK) return rc;
        skip_ws(sc);
        if (sc->p >= sc->end) return SL_EINVAL;
        if (*sc->p == '}') {
            sc->p++;
            return SL_OK;
        }
        if (*sc->p != ',') return SL_EINVAL;
        sc->p++;
        skip_ws(sc);
    }
}

static int skip_array(scan_t *sc, int depth) {
    if (depth > JSON_MAX_DEPTH) return SL_EINVAL;
    sc->p++; /* '[' */
    skip_ws(sc);
    if (sc->p < sc->end && *sc->p == ']') {
        sc->p++;
        return SL_OK;
    }
    for (;;) {
        int rc = skip_value(sc, depth);
        if (rc != SL_OK) return rc;
        skip_ws(sc);
        if (sc->p >= sc->end) return SL_EINVAL;
        if (*sc->p == ']') {
            sc->p++;
            return SL_OK;
        }
        if (*sc->p != ',') return SL_EINVAL;
        sc->p++;
        skip_ws(sc);
    }
}

/* Skips one value at sc->p (no leading whitespace); depth is that of the enclosing container. */
static int skip_value(scan_t *sc, int depth) {
    if (sc->p >= sc->end) return SL_EINVAL;
    switch (*sc->p) {
    case '{':
        return skip_object(sc, depth + 1, NULL);
    case '[':
        return skip_array(sc, depth + 1);
    case '"':
        return skip_string(sc, NULL);
    case 't':
        return skip_literal(sc, "true");
    case 'f':
        return skip_literal(sc, "false");
    case 'n':
        return skip_literal(sc, "null");
    default:
        return skip_number(sc);
    }
}

int sl_fallback_mark_degraded(const void *json, size_t len, sl_buf_t *out) {
    if (!json && len) return SL_EINVAL;
    scan_t sc = {json, (const unsigned char *)json + len};
    skip_ws(&sc);
    if (sc.p >= sc.end || *sc.p != '{') return SL_EINVAL;
    const unsigned char *open = sc.p;
    bool has_degraded = false;
    int rc = skip_object(&sc, 1, &has_degraded);
    if (rc != SL_OK || has_degraded) return SL_EINVAL;
    skip_ws(&sc);
    if (sc.p != sc.end) return SL_EINVAL; /* trailing garbage */

    /* Empty when only whitespace separates the braces. */
    scan_t inner = {open + 1, sc.end};
    skip_ws(&inner);
    bool empty = *inner.p == '}';
    static const char head[] = "{\"degraded\":true";
    size_t rest = (size_t)(sc.end - (open + 1));
    sl_buf_reserve(out, sizeof head + rest);
    sl_buf_append(out, head, sizeof head - 1);
    if (!empty) sl_buf_putc(out, ',');
    sl_buf_append(out, open + 1, rest);
    return SL_OK;
}
