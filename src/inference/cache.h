/* The optional per-model response cache: an LRU of responses keyed by model version and a hash
 * of the request's inputs (names, datatypes, shapes, bytes) and requested outputs. Thread-safe
 * (one mutex; lookups copy the response out). Misses and hits are counted by the caller. */
#ifndef SL_RESP_CACHE_H
#define SL_RESP_CACHE_H

#include "oip/oip_types.h"

typedef struct sl_resp_cache sl_resp_cache_t;

/* A cache holding at most max_entries responses and max_bytes of response data. */
sl_resp_cache_t *sl_resp_cache_new(uint32_t max_entries, uint64_t max_bytes);
void sl_resp_cache_free(sl_resp_cache_t *c);

/* The key of a validated request (64-bit hash; collisions are resolved by comparing the stored
 * request bytes, so a hit is always exact). */
typedef struct sl_resp_cache_key {
    uint64_t hash;
    uint8_t *blob; /* the canonical request bytes (owned) */
    size_t len;
} sl_resp_cache_key_t;
void sl_resp_cache_key_make(const char *version, const sl_infer_request_t *req,
                            sl_resp_cache_key_t *key);
void sl_resp_cache_key_free(sl_resp_cache_key_t *key);

/* A copy of the cached response (caller frees), or NULL. */
sl_infer_response_t *sl_resp_cache_get(sl_resp_cache_t *c, const sl_resp_cache_key_t *key);
/* Stores a copy of resp under key (key copied); evicts least recently used entries. */
void sl_resp_cache_put(sl_resp_cache_t *c, const sl_resp_cache_key_t *key,
                       const sl_infer_response_t *resp);

#endif
