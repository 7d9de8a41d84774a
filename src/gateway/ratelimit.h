/* Gateway rate limits and daily quotas: a token bucket per (key id, route class), stricter
 * buckets in configured peak hours, a daily quota per tier, and the IETF RateLimit-Policy /
 * RateLimit / Retry-After header values that describe the outcome. The limiter sits behind a
 * small interface (sl_ratelimiter_t) with two implementations that give the same answers: the
 * local, in-process one (ratelimit.c) and the global one in Redis shared by every gateway
 * replica (ratelimit_redis.c). The gateway calls sl_rl_check_async from its I/O threads. */
#ifndef SL_GATEWAY_RATELIMIT_H
#define SL_GATEWAY_RATELIMIT_H

#include "core/buf.h"
#include "core/common.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

/* Limits on configuration (checked by sl_rl_local_new, answered with a message in err). */
#define SL_RL_NAME_MAX            32        /* class and tier names: 1..32 of [A-Za-z0-9_.-] */
#define SL_RL_ID_MAX              128       /* key and quota ids: 1..128 bytes, any value */
#define SL_RL_MAX_CLASSES         16        /* route classes */
#define SL_RL_MAX_TIERS           16        /* quota tiers */
#define SL_RL_RATE_MAX            1000000.0 /* tokens per second; resolution 0.001/s */
#define SL_RL_BURST_MAX           1000000u  /* tokens */
#define SL_RL_BUCKETS_MAX         (1u << 24)
#define SL_RL_RETRY_MAX_S         86400u     /* Retry-After cap, e.g. for a bucket with rate 0 */
#define SL_RL_NEVER               UINT32_MAX /* reset_s / window_s sentinel: never (field omitted) */
#define SL_RL_MAX_POLICIES        2          /* the route class's bucket, then the daily quota */
#define SL_RL_DAILY_POLICY        "daily"    /* the quota policy's name in the headers */
#define SL_RL_IDLE_TTL_MS_DEFAULT 600000u    /* sl_rl_config_t.idle_ttl_ms when 0: 10 minutes */

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

/* Limiter configuration. The arrays and strings are borrowed during sl_rl_local_new /
 * sl_rl_redis_new only (the limiter keeps copies). Day boundary and peak window are in local time =
 * UTC + utc_offset_s. The peak window is [peak_start_s, peak_end_s) in seconds of the local day and
 * may wrap past midnight (e.g. 22:00-06:00); start == end means no peak hours. */
typedef struct sl_rl_config {
    const sl_rl_class_t *classes;
    size_t n_classes;
    const sl_rl_tier_t *tiers;
    size_t n_tiers;
    int32_t utc_offset_s; /* -14 h .. +14 h */
    uint32_t peak_start_s;
    uint32_t peak_end_s;
    size_t max_buckets;   /* local: table bound, buckets and quota counters together; 0: 65536 */
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

/* Counters of a limiter, summed over its shards at the time of the call. The Redis limiter
 * counts allowed, denied and errors only (its entries live in Redis). */
typedef struct sl_rl_stats {
    uint64_t allowed;
    uint64_t denied;         /* every rejection */
    uint64_t errors;         /* checks the backend could not answer (Redis down, timeout), decided
                              * by the fail-open/closed policy and counted here only; 0 for local */
    uint64_t entries;        /* buckets and quota counters in the table now */
    uint64_t expired;        /* dropped after idling, losing nothing */
    uint64_t evicted;        /* dropped because the table was full */
    uint64_t evicted_active; /* ...of them, ones that still held state (a partial bucket, or
                              * today's quota count): that key's limit restarted */
} sl_rl_stats_t;

/* The outcome of an asynchronous check, called exactly once per accepted check, on the thread
 * of the loop the check was made on. status 0: res is the decision. status < 0: the backend
 * could not decide (SL_ETIMEOUT: no answer within the timeout; SL_ECLOSED: not connected, or the
 * connection broke; SL_EIO / SL_EPROTO: an error or unexpected reply; SL_ELIMIT: too many checks
 * in flight; SL_ECANCELED: sl_rl_loop_close) and res holds what the fail-open/closed policy
 * decided: allowed, or denied with retry_after_s 1, with no policies (n_policies 0: the
 * RateLimit fields are omitted). res is borrowed for the call. */
typedef void (*sl_rl_done_cb)(int status, const sl_rl_result_t *res, void *arg);

/* The limiter interface: a context and its operations, filled by an implementation's
 * constructor. free and one of check / check_async are required; the others may be NULL
 * (sl_rl_sweep / sl_rl_stats / sl_rl_loop_close then do nothing / zero the output / nothing). */
typedef struct sl_ratelimiter {
    const char *name; /* "local", "redis" */
    void *ctx;
    /* Decides one request and fills out. Returns 0 (allowed or denied: see out->allowed),
     * SL_ENOENT for an unknown route class or tier, SL_EINVAL for a missing or oversized id,
     * SL_ERANGE when cost exceeds the class's burst (it could never pass). Thread-safe. NULL for
     * limiters that can only answer asynchronously (Redis). */
    int (*check)(void *ctx, const sl_rl_request_t *req, sl_rl_result_t *out);
    /* Starts one check on loop (called on loop's thread). Returns 0 and later calls done once,
     * or returns SL_ENOENT / SL_EINVAL / SL_ERANGE as check does and never calls done. NULL:
     * sl_rl_check_async runs check instead. */
    int (*check_async)(void *ctx, uv_loop_t *loop, const sl_rl_request_t *req, sl_rl_done_cb done,
                       void *arg);
    /* Releases what the limiter holds for loop (its Redis connection); on loop's thread. */
    void (*loop_close)(void *ctx, uv_loop_t *loop);
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

/* Where the Redis limiter keeps its state. Strings are borrowed during sl_rl_redis_new only. */
typedef struct sl_rl_redis_opts {
    const char *host;       /* IPv4/IPv6 address or DNS name (resolved, blocking, at each
                             * (re)connect: prefer an address); NULL: "127.0.0.1" */
    uint16_t port;          /* 0: 6379 */
    const char *password;   /* NULL or "": no AUTH; else AUTH on every connect */
    const char *key_prefix; /* NULL: "sluice:rl:"; at most 64 bytes */
    uint32_t timeout_ms;    /* a check not answered in time is an error; 0: 50; at most 60000 */
    bool fail_open;         /* on an error: true allows the request, false denies it (Retry-After
                             * 1 s) */
} sl_rl_redis_opts_t;

/* Creates the global limiter: the buckets and quota counters live in Redis, so every gateway
 * replica pointed at the same Redis (and configured alike) enforces one limit. It answers
 * exactly as the local limiter would for the same checks and clock values; each check is one
 * atomic Lua script (EVALSHA). Refill uses the config clock's wall time (replicas must be
 * NTP-synced); daily quotas up to 2^50. Asynchronous only (check is NULL): each uv loop that
 * calls sl_rl_check_async gets its own connection, made on its first check and re-made after a
 * failure with a backoff of 100 ms doubling to 2 s (checks meanwhile fail fast); the checks of a
 * loop are pipelined on it. done is never called before sl_rl_check_async returns. The process
 * must ignore SIGPIPE. Before sl_rl_free, call sl_rl_loop_close on each loop (on its thread)
 * and let the loop run once so the connection's handles close. Returns 0 and fills *out, or
 * SL_EINVAL / SL_ERANGE with a message in err (may be NULL) and *out zeroed. Nothing connects
 * here: an unreachable Redis shows up as check errors (stats.errors). */
int sl_rl_redis_new(const sl_rl_config_t *cfg, const sl_rl_redis_opts_t *ro, sl_ratelimiter_t *out,
                    sl_buf_t *err);

/* Convenience wrappers over the interface; rl is borrowed. sl_rl_check returns
 * SL_EUNSUPPORTED for a limiter without a synchronous check (Redis). */
static inline int sl_rl_check(const sl_ratelimiter_t *rl, const sl_rl_request_t *req,
                              sl_rl_result_t *out) {
    if (!rl->check) return SL_EUNSUPPORTED;
    return rl->check(rl->ctx, req, out);
}
/* Checks req on loop's thread. Returns 0 when done will be called exactly once (status and
 * result as sl_rl_done_cb says), or SL_ENOENT / SL_EINVAL / SL_ERANGE for a bad request (see
 * check), in which case done is never called. req and its strings are borrowed for the call
 * only. With a synchronous limiter (local) done runs BEFORE this returns; with Redis it runs
 * later from loop. Do not call sl_rl_loop_close or sl_rl_free from inside done. */
int sl_rl_check_async(const sl_ratelimiter_t *rl, uv_loop_t *loop, const sl_rl_request_t *req,
                      sl_rl_done_cb done, void *arg);
/* Releases what rl holds for loop (a no-op for local). Call on loop's thread, after its last
 * check; checks still in flight are answered with SL_ECANCELED before this returns. The loop
 * must run afterwards until its handles close (uv_run), as with any libuv handle. */
void sl_rl_loop_close(const sl_ratelimiter_t *rl, uv_loop_t *loop);
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

/* Fills *out from r (both borrowed for the call). Returns 0, or SL_EINVAL for an out-of-range
 * tightest index or an unrenderable name (out is then empty strings). A result with no policies
 * (a backend error decided by fail-open/closed) gives empty policy and ratelimit strings (omit
 * those fields) and still the Retry-After value when denied. */
int sl_rl_format_headers(const sl_rl_result_t *r, sl_rl_headers_t *out);

/* ---- Internals shared by the implementations (ratelimit.c, ratelimit_redis.c) only ---- */

#define SL_RL__TOK 1000000000000ull /* bucket units per token (1e-12 token) */

/* A validated configuration (opaque). */
typedef struct sl_rl__conf sl_rl__conf_t;

/* Validates cfg as sl_rl_local_new does (same messages in err) and returns a copy in *out
 * (freed with free()), or SL_EINVAL / SL_ERANGE and *out NULL. */
int sl_rl__conf_new(const sl_rl_config_t *cfg, sl_rl__conf_t **out, sl_buf_t *err);

/* What one check needs, resolved from the request, the config and one clock reading. Pointers
 * are borrowed: class_name from the conf, quota_id from the request. Bucket amounts are in
 * SL_RL__TOK units, rates in units per ns (= milli-tokens per second). */
typedef struct sl_rl__plan {
    const char *class_name;
    uint16_t class_idx;
    size_t key_len;
    bool use_quota;       /* the class counts quota and the tier has a limit */
    const char *quota_id; /* quota_id, or key_id */
    size_t quota_len;
    uint64_t quota;         /* the tier's daily quota when use_quota */
    uint64_t cost;          /* whole tokens, >= 1 */
    uint64_t cost_u;        /* cost * SL_RL__TOK */
    uint64_t rate_u, cap_u; /* the bucket's parameters in force now */
    uint32_t burst, window_s;
    uint64_t rate_min_u, cap_max_u; /* over peak and off-peak: how long refilling can take */
    uint64_t wall_ns, mono_ns;
    int64_t day;          /* local day index */
    uint32_t day_reset_s; /* seconds to the next local midnight, 1..86400 */
    int peak;             /* 1 inside the peak window */
    uint64_t idle_ttl_ms;
} sl_rl__plan_t;

/* Validates req against conf and reads the clock. Returns 0, or SL_EINVAL / SL_ENOENT /
 * SL_ERANGE as the check functions document. */
int sl_rl__plan(const sl_rl__conf_t *conf, const sl_rl_request_t *req, sl_rl__plan_t *p);

/* Fills *out for a decision: the bucket holds bucket_u units and the quota counter quota_used
 * after it (nothing is spent on a deny, so the reason is recomputed from these). */
void sl_rl__result(const sl_rl__plan_t *p, bool allowed, uint64_t bucket_u, uint64_t quota_used,
                   sl_rl_result_t *out);

#endif
