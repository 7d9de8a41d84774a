/* The gateway's degradation fallback: a bounded cache of the last good answer per (route, input
 * hash), served when the upstream is down or its breaker open, and the marker that turns a JSON
 * answer into a degraded one ({"degraded":true,...}). One cache is shared by all I/O threads:
 * it is sharded (one mutex per shard), bounded by entries and bytes, LRU within a shard, with an
 * optional TTL. The caller computes the hash over route + model inputs (e.g. sl_fnv64); the route
 * name is stored and compared too, so a 64-bit collision across routes never serves another
 * route's answer. */
#ifndef SL_GATEWAY_FALLBACK_H
#define SL_GATEWAY_FALLBACK_H

#include "core/buf.h"
#include "core/common.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SL_FALLBACK_MAX_ENTRIES (1u << 24) /* bound on max_entries */
#define SL_FALLBACK_ROUTE_MAX   256        /* longer route names are not cached */

/* The content-type tag stored with a body: a small number the caller defines; these two are
 * what the gateway's routes produce. */
enum {
    SL_FALLBACK_CT_JSON = 0,     /* application/json */
    SL_FALLBACK_CT_PROTOBUF = 1, /* application/grpc+proto, an OIP protobuf message */
};

typedef struct sl_fallback_cache sl_fallback_cache_t;

typedef struct sl_fallback_stats {
    size_t entries;
    size_t bytes;       /* body + route bytes of the stored entries */
    uint64_t hits;      /* gets that returned an answer */
    uint64_t misses;    /* gets that did not (absent, other route, or expired) */
    uint64_t evictions; /* entries dropped to stay within max_entries / max_bytes */
    uint64_t expired;   /* entries dropped because they were older than ttl_ms */
} sl_fallback_stats_t;

/* Creates a cache of at most max_entries entries (clamped to SL_FALLBACK_MAX_ENTRIES) holding at
 * most max_bytes of body + route bytes together. An entry older than ttl_ms (0: no TTL) is not
 * served and is dropped. max_entries or max_bytes 0 gives a cache that stores nothing. The
 * bounds are split evenly among the shards (small caches get one shard, so LRU is exact there),
 * so a body larger than max_bytes / shards is not cached. Free with sl_fallback_cache_free. */
sl_fallback_cache_t *sl_fallback_cache_new(size_t max_entries, size_t max_bytes, uint64_t ttl_ms);
/* Frees the cache and every entry; c may be NULL. No other call may be in flight. */
void sl_fallback_cache_free(sl_fallback_cache_t *c);

/* Stores a copy of body[0..len) with tag ct (SL_FALLBACK_CT_*) as the answer for (route, hash)
 * at time now_ms (monotonic ms, e.g. sl_now_ms), replacing an older answer for the same key and
 * making it the most recently used; least recently used entries of its shard are evicted to make
 * room. route and body are borrowed for the call. A route name longer than SL_FALLBACK_ROUTE_MAX
 * or an entry that cannot fit is silently not stored (the fallback is best effort). Thread-safe. */
void sl_fallback_put(sl_fallback_cache_t *c, const char *route, uint64_t hash, uint8_t ct,
                     const void *body, size_t len, uint64_t now_ms);

/* Looks up (route, hash) at time now_ms. On a hit appends the stored body to out (the copy is
 * the caller's), stores its tag in *ct (ct may be NULL), marks the entry most recently used and
 * returns true. Returns false (out untouched) when there is no fresh answer; an expired one is
 * dropped. Thread-safe. */
bool sl_fallback_get(sl_fallback_cache_t *c, const char *route, uint64_t hash, uint64_t now_ms,
                     sl_buf_t *out, uint8_t *ct);

/* Drops the answer for (route, hash) if present (e.g. a stored answer later found bad). Returns
 * whether one was dropped. Thread-safe. */
bool sl_fallback_remove(sl_fallback_cache_t *c, const char *route, uint64_t hash);

/* A snapshot of the counters (summed over shards; each shard is read under its lock). */
void sl_fallback_stats(sl_fallback_cache_t *c, sl_fallback_stats_t *out);

/* Writes the JSON object json[0..len) (borrowed; leading and trailing whitespace allowed) to out
 * (appended) with "degraded":true as its first member: {"degraded":true,"model":...}, and {} gives
 * {"degraded":true}. The body's bytes are copied, not re-serialised. The whole input is checked
 * first (well-formed JSON per RFC 8259, strings valid UTF-8, \u surrogates paired, nesting at
 * most 64 deep). Returns 0, or SL_EINVAL with out untouched when it is not one such object or
 * when the object already has a top-level "degraded" member (however its key is escaped): the
 * caller then treats the answer as uncacheable rather than produce a duplicate key. */
int sl_fallback_mark_degraded(const void *json, size_t len, sl_buf_t *out);

#endif
