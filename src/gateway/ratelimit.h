/* Gateway rate limits and daily quotas: a token bucket per (key id, route class), stricter
 * buckets in configured peak hours, a daily quota per tier, and the IETF RateLimit-Policy /
 * RateLimit / Retry-After header values that describe the outcome. The limiter sits behind a
 * small interface (sl_ratelimiter_t) so that the local, in-process implementation here and a
 * later Redis one are interchangeable; the gateway calls sl_rl_check from its I/O threads. */
#ifndef SL_GATEWAY_RATELIMIT_H
#define SL_GATEWAY_RATELIMIT_H

#include "core/buf.h"
#include "core/common.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Limits on configuration (checked by sl_rl_local_new, answered with a message in err). */
#define SL_RL_NAME_MAX     32        /* class and tier names: 1..32 of [A-Za-z0-9_.-] */
#define SL_RL_ID_MAX       128       /* key and quota ids: 1..128 bytes, any value */
#define SL_RL_MAX_CLASSES  16        /* route classes */
#define SL_RL_MAX_TIERS    16        /* quota tiers */
#define SL_RL_RATE_MAX     1000000.0 /* tokens per second; resolution 0.001/s */
#define SL_RL_BURST_MAX    1000000u  /* tokens */
#define SL_RL_BUCKETS_MAX  (1u << 24)
#define SL_RL_RETRY_MAX_S  86400u     /* Retry-After cap, e.g. for a bucket with rate 0 */
#define SL_RL_NEVER        UINT32_MAX /* reset_s / window_s sentinel: never (field omitted) */
#define SL_RL_MAX_POLICIES 2          /* the route class's bucket, then the daily quota */
#define SL_RL_DAILY_POLICY "daily"    /* the quota policy's name in the headers */

/* The clock: wall time (Unix epoch ns; decides the day and peak hours) and monotonic time (ns;
 * drives token refill). Tests inject one to move time; NULL in the config means the real clocks
 * (sl_wall_time_ns / sl_now_ns). Must be callable from any thread. */
typedef void (*sl_rl_clock_cb)(void *ctx, uint64_t *wall_ns, uint64_t *mono_ns);

/* One route class (endpoint class), e.g. "predict", "oip", "admin": each (key, class) pair has
 * its own bucket. A bucket starts full; it refills at `rate` tokens/s up to `burst`. Inside the
 * peak window a class with peak_burst > 0 uses peak_rate/peak_burst instead (tokens above the
 * peak burst are dropped on entry). counts_quota: checks of this class also spend the tier's
 * daily quota (predictions do, metadata and health calls usually do not). */
typedef struct sl_rl_class {
    const char *name;
    double rate;
    uint32_t burst;
    double peak_rate;
    uint32_t peak_burst; /* 0: no peak-hour limit for this class */
    bool counts_quota;
} sl_rl_class_t;

/* A tier's daily quota, e.g. {"standard", 1000}, {"enterprise", 10000}; 0 means unlimited. */
typedef struct sl_rl_tier {
    const char *name;
    uint64_t daily_quota;
} sl_rl_tier_t;

/* Limiter configuration. The arrays and strings are borrowed during sl_rl_local_new only (the
 * limiter keeps copies). Day boundary and peak window are in local time = UTC + utc_offset_s.
 * The peak window is [peak_start_s, peak_end_s) in seconds of the local day and may wrap past
 * midnight (e.g. 22:00-06:00); start == end means no peak hours. */
typedef struct sl_rl_config {
    const sl_rl_class_t *classes;
    size_t n_classes;
    const sl_rl_tier_t *tiers;
    size_t n_tiers;
    int32_t utc_offset_s; /* -14 h .. +14 h */
    uint32_t peak_start_s;
    uint32_t peak_end_s;
    size_t max_buckets;   /* table bound, buckets and quota counters together; 0: 65536 */
    uint64_t idle_ttl_ms; /* a refilled bucket idle this long is dropped; 0: 10 minutes */
    sl_rl_clock_cb clock; /* NULL: real clocks */
    void *clock_ctx;
} sl_rl_config_t;

/* One check: key_id owns the buckets; quota_id owns the daily quota (the tenant, so that a
 * tenant's rotated keys share it; NULL means key_id); tier names the quota (NULL: no quota);
 * cost is what the request spends (0 counts as 1; e.g. the rows of a batch prediction). All
 * strings are borrowed for the call. */
typedef struct sl_rl_request {
    const char *key_id;
    const char *quota_id;
    const char *route_class;
    const char *tier;
    uint32_t cost;
} sl_rl_request_t;

/* The state of one policy after the check, as the headers report it. name is borrowed from the
 * limiter and valid until it is freed. quota/window_s form the RateLimit-Policy item: a bucket is
 * reported as q=burst over w=the seconds to refill it from empty (burst/rate rounded up; never
 * with rate 0); the daily quota as q=quota, w=86400. remaining is whole units left; reset_s the
 * seconds until the policy is whole again (bucket full, or the next day), rounded up. */
typedef struct sl_rl_policy {
    const char *name;
    uint64_t quota;
    uint32_t window_s; /* SL_RL_NEVER: omitted */
    uint64_t remaining;
    uint32_t reset_s; /* SL_RL_NEVER: omitted */
} sl_rl_policy_t;

typedef struct sl_rl_result {
    bool allowed;           /* false: answer 429 */
    uint32_t retry_after_s; /* on deny: >= 1, rounded up, at most SL_RL_RETRY_MAX_S; else 0 */
    uint32_t n_policies;
    uint32_t tightest; /* index of the policy closest to exhaustion (the RateLimit field) */
    sl_rl_policy_t policies[SL_RL_MAX_POLICIES];
} sl_rl_result_t;

/* Counters of a limiter, summed over its shards at the time of the call. */
typedef struct sl_rl_stats {
    uint64_t allowed;
    uint64_t denied;         /* every rejection */
    uint64_t entries;        /* buckets and quota counters in the table now */
    uint64_t expired;        /* dropped after idling, losing nothing */
    uint64_t evicted;        /* dropped because the table was full */
    uint64_t evicted_active; /* ...of them, ones that still held state (a partial bucket, or
                              * today's quota count): that key's limit restarted */
} sl_rl_stats_t;

/* The limiter interface: a context and its operations, filled by an implementation's
 * constructor (sl_rl_local_new now, a Redis one later). check and free are required; sweep and
 * stats may be NULL (sl_rl_sweep / sl_rl_stats then do nothing / zero the output). */
typedef struct sl_ratelimiter {
    const char *name; /* "local", ... */
    void *ctx;
    /* Decides one request and fills out. Returns 0 (allowed or denied: see out->allowed),
     * SL_ENOENT for an unknown route class or tier, SL_EINVAL for a missing or oversized id,
     * SL_ERANGE when cost exceeds the class's burst (it could never pass). Thread-safe. */
    int (*check)(void *ctx, const sl_rl_request_t *req, sl_rl_result_t *out);
    /* Drops idle state; called from a timer. Thread-safe. */
    void (*sweep)(void *ctx);
    void (*stats)(void *ctx, sl_rl_stats_t *out);
    void (*free)(void *ctx);
} sl_ratelimiter_t;

/* Creates the local limiter: exact across all threads of this process (a sharded table with a
 * mutex per shard; a check locks at most two shards). Buckets appear on first use; when the
 * table is full the least recently used entry of the shard is evicted (never refused: refusing
 * new keys would let one client's burst of keys lock every other client out). On success fills
 * *out and returns 0; the caller frees it with sl_rl_free. On a bad config returns SL_EINVAL
 * or SL_ERANGE, appends a message naming the field to err (may be NULL) and leaves *out zeroed. */
int sl_rl_local_new(const sl_rl_config_t *cfg, sl_ratelimiter_t *out, sl_buf_t *err);

/* Convenience wrappers over the interface; rl is borrowed. */
static inline int sl_rl_check(const sl_ratelimiter_t *rl, const sl_rl_request_t *req,
                              sl_rl_result_t *out) {
    return rl->check(rl->ctx, req, out);
}
void sl_rl_sweep(const sl_ratelimiter_t *rl);
void sl_rl_stats(const sl_ratelimiter_t *rl, sl_rl_stats_t *out);
/* Frees the limiter's context and zeroes *rl; NULL or an already freed one is a no-op. */
void sl_rl_free(sl_ratelimiter_t *rl);

/* Header values for a result, NUL-terminated, without the field names. Syntax of
 * draft-ietf-httpapi-ratelimit-headers-10 (Structured Field lists):
 *   RateLimit-Policy: "predict";q=5;w=1, "daily";q=1000;w=86400
 *   RateLimit:        "daily";r=0;t=3600         (the tightest policy only)
 *   Retry-After:      3                          (delay-seconds, RFC 9110; empty when allowed)
 * The draft says Retry-After takes precedence over RateLimit when both are present. */
typedef struct sl_rl_headers {
    char policy[256];
    char ratelimit[96];
    char retry_after[16];
} sl_rl_headers_t;

/* Fills *out from r (both borrowed for the call). Returns 0, or SL_EINVAL for a result with no
 * policies or an out-of-range tightest index (out is then empty strings). */
int sl_rl_format_headers(const sl_rl_result_t *r, sl_rl_headers_t *out);

#endif
