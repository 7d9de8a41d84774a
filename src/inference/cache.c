/* The per-model response cache: an LRU of responses keyed by a 64-bit hash of the canonical
 * request bytes (version, inputs, requested outputs), with the bytes themselves kept to make a
 * hit exact. A chained hash table finds entries, a doubly linked list orders them by use; both
 * the number of entries and the bytes held (keys plus responses) are bounded. One mutex. */
#include "inference/cache.h"

#include "core/common.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

typedef struct entry {
    uint64_t hash;
    uint8_t *blob;
    size_t len;
    sl_infer_response_t *resp;
    uint64_t bytes;            /* what this entry counts against max_bytes */
    struct entry *chain;       /* next in the hash bucket */
    struct entry *prev, *next; /* LRU list: head is the most recently used */
} entry_t;

struct sl_resp_cache {
    pthread_mutex_t mu;
    uint32_t max_entries;
    uint64_t max_bytes;
    entry_t **buckets;
    size_t mask; /* buckets - 1 (a power of two) */
    entry_t *head, *tail;
    uint32_t n_entries;
    uint64_t bytes;
};

/* ---- the canonical request bytes and their hash ---- */

/* A hash of 8-byte words with a 64x64->128 multiply fold (the core of wyhash, written from
 * its idea): much faster than byte-wise FNV-1a on tensor data, and well mixed. */
static inline uint64_t mix(uint64_t a, uint64_t b) {
    __uint128_t r = (__uint128_t)a * b;
    return (uint64_t)r ^ (uint64_t)(r >> 64);
}

static uint64_t hash_bytes(const uint8_t *p, size_t n) {
    const uint64_t k0 = 0xa0761d6478bd642full, k1 = 0xe7037ed1a0b428dbull;
    uint64_t h = mix((uint64_t)n ^ k0, k1);
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        uint64_t a, b;
        memcpy(&a, p + i, 8);
        memcpy(&b, p + i + 8, 8);
        h = mix(a ^ k0 ^ h, b ^ k1);
    }
    uint64_t a = 0, b = 0;
    size_t rest = n - i;
    if (rest > 8) {
        memcpy(&a, p + i, 8);
        memcpy(&b, p + i + 8, rest - 8);
    } else if (rest > 0) {
        memcpy(&a, p + i, rest);
    }
    h = mix(a ^ k0 ^ h, b ^ k1 ^ rest);
    return mix(h ^ k1, k0);
}

typedef struct {
    uint8_t *p;
    size_t len, cap;
} wbuf_t;

static void put_bytes(wbuf_t *w, const void *src, size_t n) {
    if (n == 0) return;
    if (w->cap - w->len < n) {
        size_t cap = w->cap ? w->cap : 256;
        while (cap - w->len < n)
            cap *= 2;
        w->p = sl_realloc(w->p, cap);
        w->cap = cap;
    }
    memcpy(w->p + w->len, src, n);
    w->len += n;
}

static void put_u64(wbuf_t *w, uint64_t v) {
    put_bytes(w, &v, sizeof v);
}

static void put_str(wbuf_t *w, const char *s) {
    size_t n = s ? strlen(s) : 0;
    put_u64(w, n);
    put_bytes(w, s, n);
}

void sl_resp_cache_key_make(const char *version, const sl_infer_request_t *req,
                            sl_resp_cache_key_t *key) {
    /* Every variable-length field is length-prefixed, so two different requests can never
     * produce the same bytes. Inputs are in config order after validation. Binary flags only
     * change the encoding of the answer, not its values, so they are left out. */
    wbuf_t w = {0};
    size_t need = 64;
    for (size_t i = 0; i < req->n_inputs; i++)
        need += 128 + req->inputs[i].byte_size;
    w.p = sl_malloc(need);
    w.cap = need;
    put_str(&w, version);
    put_u64(&w, req->n_inputs);
    for (size_t i = 0; i < req->n_inputs; i++) {
        const sl_infer_input_t *in = &req->inputs[i];
        put_str(&w, in->name);
        put_u64(&w, (uint64_t)in->dtype);
        put_u64(&w, in->ndim);
        for (uint32_t d = 0; d < in->ndim && d < SLUICE_MAX_DIMS; d++) {
            put_u64(&w, (uint64_t)in->dims[d]);
        }
        put_u64(&w, in->byte_size);
        put_bytes(&w, in->data, in->byte_size);
    }
    put_u64(&w, req->n_outputs);
    for (size_t i = 0; i < req->n_outputs; i++)
        put_str(&w, req->outputs[i].name);
    key->blob = w.p;
    key->len = w.len;
    key->hash = hash_bytes(w.p, w.len);
}

void sl_resp_cache_key_free(sl_resp_cache_key_t *key) {
    if (!key) return;
    free(key->blob);
    key->blob = NULL;
    key->len = 0;
}

/* ---- the LRU ---- */

sl_resp_cache_t *sl_resp_cache_new(uint32_t max_entries, uint64_t max_bytes) {
    sl_resp_cache_t *c = sl_calloc(1, sizeof *c);
    pthread_mutex_init(&c->mu, NULL);
    c->max_entries = max_entries ? max_entries : 1;
    c->max_bytes = max_bytes;
    size_t nb = 16;
    while (nb < (size_t)c->max_entries + c->max_entries / 2 && nb < ((size_t)1 << 24))
        nb *= 2;
    c->buckets = sl_calloc(nb, sizeof *c->buckets);
    c->mask = nb - 1;
    return c;
}

static void entry_free(entry_t *e) {
    sl_infer_response_free(e->resp);
    free(e->blob);
    free(e);
}

void sl_resp_cache_free(sl_resp_cache_t *c) {
    if (!c) return;
    entry_t *e = c->head;
    while (e) {
        entry_t *next = e->next;
        entry_free(e);
        e = next;
    }
    free(c->buckets);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

static void lru_unlink(sl_resp_cache_t *c, entry_t *e) {
    if (e->prev)
        e->prev->next = e->next;
    else
        c->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        c->tail = e->prev;
    e->prev = e->next = NULL;
}

static void lru_push_front(sl_resp_cache_t *c, entry_t *e) {
    e->prev = NULL;
    e->next = c->head;
    if (c->head) c->head->prev = e;
    c->head = e;
    if (!c->tail) c->tail = e;
}

static entry_t **find_slot(sl_resp_cache_t *c, const sl_resp_cache_key_t *key) {
    entry_t **pp = &c->buckets[key->hash & c->mask];
    while (*pp) {
        entry_t *e = *pp;
        if (e->hash == key->hash && e->len == key->len && memcmp(e->blob, key->blob, e->len) == 0) {
            return pp;
        }
        pp = &e->chain;
    }
    return pp;
}

/* Removes e from the table and the list and frees it. */
static void remove_entry(sl_resp_cache_t *c, entry_t *e) {
    entry_t **pp = &c->buckets[e->hash & c->mask];
    while (*pp != e)
        pp = &(*pp)->chain;
    *pp = e->chain;
    lru_unlink(c, e);
    c->n_entries--;
    c->bytes -= e->bytes;
    entry_free(e);
}

sl_infer_response_t *sl_resp_cache_get(sl_resp_cache_t *c, const sl_resp_cache_key_t *key) {
    pthread_mutex_lock(&c->mu);
    entry_t *e = *find_slot(c, key);
    sl_infer_response_t *out = NULL;
    if (e) {
        lru_unlink(c, e);
        lru_push_front(c, e);
        out = sl_infer_response_clone(e->resp);
        out->cached = true;
    }
    pthread_mutex_unlock(&c->mu);
    return out;
}

static uint64_t response_bytes(const sl_infer_response_t *r) {
    uint64_t n = sizeof *r + strlen(r->model_name) + strlen(r->model_version) + 2;
    for (size_t i = 0; i < r->n_outputs; i++) {
        n += sizeof r->outputs[i] + strlen(r->outputs[i].name) + 1 + r->outputs[i].byte_size;
    }
    return n;
}

void sl_resp_cache_put(sl_resp_cache_t *c, const sl_resp_cache_key_t *key,
                       const sl_infer_response_t *resp) {
    uint64_t bytes = sizeof(entry_t) + key->len + response_bytes(resp);
    if (c->max_bytes && bytes > c->max_bytes) return; /* would evict everything for nothing */
    /* Clone outside the lock: the copy may be large. */
    sl_infer_response_t *copy = sl_infer_response_clone(resp);
    copy->cached = false;
    pthread_mutex_lock(&c->mu);
    entry_t *old = *find_slot(c, key);
    if (old) remove_entry(c, old); /* the newer answer wins (same request, same version) */
    while (c->tail &&
           (c->n_entries >= c->max_entries || (c->max_bytes && c->bytes + bytes > c->max_bytes))) {
        remove_entry(c, c->tail);
    }
    entry_t *e = sl_calloc(1, sizeof *e);
    e->hash = key->hash;
    e->len = key->len;
    e->blob = sl_malloc(key->len ? key->len : 1);
    if (key->len) memcpy(e->blob, key->blob, key->len);
    e->resp = copy;
    e->bytes = bytes;
    entry_t **slot = &c->buckets[key->hash & c->mask];
    e->chain = *slot;
    *slot = e;
    lru_push_front(c, e);
    c->n_entries++;
    c->bytes += bytes;
    pthread_mutex_unlock(&c->mu);
}
