/* An upstream pool: the inference endpoints behind one gateway route, and everything that keeps
 * one bad replica from becoming a client-visible outage: power-of-two-choices selection on
 * in-flight requests, a circuit breaker per endpoint (breaker.h), outlier ejection after
 * consecutive failures (Envoy's consecutive_5xx), slow start when an endpoint comes back,
 * admission limits (max pending / max concurrent -> 503) and retries within a budget
 * (retry.h). The gateway's I/O threads share one pool; time and randomness are injectable.
 *
 * One request's life, as the gateway drives it:
 *   sl_upstream_request_begin()            admission; counts the request for the retry budget
 *   loop: sl_upstream_request_pick()       chooses an endpoint for the next attempt
 *         sl_upstream_request_try_timeout_ms()  the timeout to send as grpc-timeout
 *         ... the gRPC call ...
 *         sl_upstream_request_attempt_done()    records the outcome, says whether to retry
 *         (wait backoff_ms on the loop's timer, then loop)
 *   sl_upstream_request_end()              always, exactly once after a successful begin */
#ifndef SL_GATEWAY_UPSTREAM_H
#define SL_GATEWAY_UPSTREAM_H

#include "core/buf.h"
#include "core/common.h"
#include "gateway/breaker.h"
#include "gateway/retry.h"

#define SL_UPSTREAM_MAX_ENDPOINTS 256u
#define SL_UPSTREAM_ADDR_MAX      262u /* "host:port": a 253-byte DNS name, ':', 5 digits, NUL */

/* Outlier ejection, Envoy's defaults (outlier_detection.proto, anchors section 2.2):
 * consecutive_5xx 5, base_ejection_time 30 s (ejection = base x times ejected), capped at
 * max_ejection_time 300 s, max_ejection_percent 10, interval 10 s. The multiplier drops by one
 * per interval the endpoint stays un-ejected, as in Envoy. always_eject_one (Envoy's
 * always_eject_one_host, its behaviour before PR #27909) defaults to true here because
 * inference pools are small: with two replicas 10% would allow no ejection at all. */
typedef struct sl_upstream_outlier_config {
    uint32_t consecutive_failures; /* 0 disables ejection */
    uint64_t base_ejection_ms;
    uint64_t max_ejection_ms;
    uint32_t max_ejection_percent; /* 0..100 of the pool's endpoints ejected at once */
    uint64_t interval_ms;          /* the multiplier decays by one per interval healthy */
    bool always_eject_one;
} sl_upstream_outlier_config_t;

/* Slow start (Envoy's slow_start_config with aggression 1): an endpoint added to a running pool,
 * back from ejection, or whose breaker has just closed again, gets weight
 * max(min_weight_percent, elapsed / window) for window_ms, then full weight. window_ms 0
 * disables it. Envoy has no default window; ours is 10 s, min_weight_percent Envoy's 10. */
typedef struct sl_upstream_slow_start_config {
    uint64_t window_ms;
    uint32_t min_weight_percent; /* 1..100 */
} sl_upstream_slow_start_config_t;

typedef struct sl_upstream_config {
    sl_breaker_config_t breaker;
    sl_upstream_outlier_config_t outlier;
    sl_upstream_slow_start_config_t slow_start;
    sl_retry_policy_t retry;
    sl_retry_budget_config_t retry_budget;
    uint32_t max_pending;    /* admitted requests not in an attempt (Envoy default 1024) */
    uint32_t max_concurrent; /* attempts in flight to the pool (Envoy max_requests, 1024) */
} sl_upstream_config_t;

/* The clock and random source; NULL members mean sl_now_ms() and sl_rand64(). Both are called
 * from every thread that uses the pool, so they must be thread-safe. */
typedef struct sl_upstream_env {
    uint64_t (*now_ms)(void *arg);
    uint64_t (*rand64)(void *arg);
    void *arg;
} sl_upstream_env_t;

typedef struct sl_upstream_pool sl_upstream_pool_t;
typedef struct sl_upstream_endpoint sl_upstream_endpoint_t;

/* Why a request could not get an endpoint. Every reason maps to 503 (UNAVAILABLE) for the
 * client except DEADLINE (504, DEADLINE_EXCEEDED); the name goes to logs and metrics. */
typedef enum sl_upstream_reason {
    SL_UPSTREAM_OK = 0,
    SL_UPSTREAM_PENDING_FULL,     /* max_pending reached */
    SL_UPSTREAM_CONCURRENCY_FULL, /* max_concurrent reached */
    SL_UPSTREAM_NO_ENDPOINTS,     /* the pool has no endpoints (none configured or resolved) */
    SL_UPSTREAM_ALL_EJECTED,      /* every endpoint is ejected */
    SL_UPSTREAM_ALL_OPEN,         /* every endpoint's breaker is open (or half-open and full) */
    SL_UPSTREAM_ALL_UNAVAILABLE,  /* every endpoint is ejected or its breaker open, mixed */
    SL_UPSTREAM_DEADLINE,         /* the request's deadline has passed */
} sl_upstream_reason_t;

/* "ok", "pending_full", ... (static). */
const char *sl_upstream_reason_name(sl_upstream_reason_t r);

/* Fills c with the defaults documented above (breaker and retry defaults from their headers). */
void sl_upstream_config_default(sl_upstream_config_t *c);
/* Returns 0, or SL_EINVAL with a message naming the field appended to err (borrowed). */
int sl_upstream_config_validate(const sl_upstream_config_t *c, sl_buf_t *err);

/* A new pool with no endpoints. name (for logs) and c are copied; c must be valid (asserted).
 * env may be NULL (real clock and random). Free with sl_upstream_pool_free() once no request is
 * in progress. */
sl_upstream_pool_t *sl_upstream_pool_new(const char *name, const sl_upstream_config_t *c,
                                         const sl_upstream_env_t *env);
void sl_upstream_pool_free(sl_upstream_pool_t *p);

/* Replaces the endpoint set with addrs[0..n) ("host:port" strings, borrowed for the call), as
 * one atomic swap: endpoints whose address is in both sets keep their state (in-flight count,
 * breaker, ejection); new ones start in slow start, except in the first set a pool gets.
 * Requests already holding a removed endpoint finish normally. Returns 0, or SL_EINVAL (with a
 * message naming the address in err) for a malformed or duplicate address or more than
 * SL_UPSTREAM_MAX_ENDPOINTS; the old set then stays. Thread-safe (the DNS re-resolver may call
 * it while I/O threads pick). */
int sl_upstream_pool_set_endpoints(sl_upstream_pool_t *p, const char *const *addrs, size_t n,
                                   sl_buf_t *err);

/* One request's progress through the pool. The caller owns the struct (typically inside its
 * per-request context) and must not touch the fields; one thread at a time per request. */
typedef struct sl_upstream_request {
    sl_upstream_pool_t *pool;
    uint64_t deadline_ms;
    uint64_t attempt_start_ms;
    uint64_t breaker_ticket;
    sl_upstream_endpoint_t *current; /* the endpoint of the attempt in flight, or NULL */
    sl_upstream_endpoint_t *tried[SL_RETRY_MAX_ATTEMPTS]; /* referenced until end */
    uint32_t attempts;
    bool idempotent;
    bool pending; /* counted in the pool's pending requests */
} sl_upstream_request_t;

/* Admits a request: fails fast with SL_ELIMIT and *why = PENDING_FULL when max_pending requests
 * are already waiting. client_deadline_ms is the client's own deadline on the pool's clock (0:
 * none); the request's deadline is the earlier of it and now + retry.timeout_ms. idempotent
 * false restricts retries to connect failures. Counts the request for the retry budget. On
 * success the caller must call sl_upstream_request_end() once. Thread-safe. */
int sl_upstream_request_begin(sl_upstream_pool_t *p, sl_upstream_request_t *req,
                              uint64_t client_deadline_ms, bool idempotent,
                              sl_upstream_reason_t *why);

/* Chooses the endpoint for the next attempt: two distinct random endpoints among those neither
 * ejected nor with an open breaker, preferring ones this request has not tried yet; of the two,
 * the one with fewer requests in flight (while either is in slow start, the choice is random
 * with odds weight / (in_flight + 1), as Envoy's weighted least-request). Returns 0 and a
 * borrowed endpoint in *ep (valid until sl_upstream_request_end()); or fails fast with
 * SL_ELIMIT (CONCURRENCY_FULL), SL_ETIMEOUT (DEADLINE), SL_ENOENT (NO_ENDPOINTS) or SL_EAGAIN
 * (ALL_EJECTED, ALL_OPEN, ALL_UNAVAILABLE), *why saying which. Must not be called while an
 * attempt is in flight. Thread-safe. */
int sl_upstream_request_pick(sl_upstream_request_t *req, sl_upstream_endpoint_t **ep,
                             sl_upstream_reason_t *why);

/* The timeout for the attempt just picked, to pass to sl_grpc_client_call() (sent as
 * grpc-timeout): min(per-try timeout, time left to the deadline). Returns 0 or SL_ETIMEOUT. */
int sl_upstream_request_try_timeout_ms(const sl_upstream_request_t *req, uint32_t *timeout_ms);

/* Ends the attempt in flight with outcome o: updates the endpoint's breaker (with the attempt's
 * duration on the pool's clock), consecutive-failure count and ejection, then decides whether
 * to retry (retry.h: retriable, attempts, deadline, budget). Thread-safe. */
sl_retry_decision_t sl_upstream_request_attempt_done(sl_upstream_request_t *req,
                                                     sl_retry_outcome_t o);

/* Finishes the request: releases an attempt still in flight (its breaker permission is given
 * back unused, e.g. the client went away) and the endpoint references. Thread-safe. */
void sl_upstream_request_end(sl_upstream_request_t *req);

/* Endpoint addresses: "host:port" with a DNS name or IPv4 host, or "[v6]:port"; port 1..65535.
 * sl_upstream_addr_ok checks one (the pool, the policy parser and the Redis address use it);
 * sl_upstream_addr_split splits a valid one into host (brackets removed, NUL-terminated into
 * host[cap]) and port, returning false when it is not valid or the host does not fit. */
bool sl_upstream_addr_ok(const char *addr);
bool sl_upstream_addr_split(const char *addr, char *host, size_t cap, uint16_t *port);

/* The endpoint's "host:port" (borrowed, valid while the endpoint is held). */
const char *sl_upstream_endpoint_addr(const sl_upstream_endpoint_t *ep);

/* A snapshot of one endpoint, for metrics, the admin API and tests. */
typedef struct sl_upstream_endpoint_info {
    char addr[SL_UPSTREAM_ADDR_MAX];
    uint32_t in_flight;
    bool ejected;
    uint64_t ejected_until_ms; /* 0 when not ejected */
    uint32_t ejections;        /* the current ejection multiplier */
    uint32_t consecutive_failures;
    sl_breaker_state_t breaker;
    double weight; /* (0, 1]: below 1 during slow start */
} sl_upstream_endpoint_info_t;

typedef struct sl_upstream_stats {
    uint32_t pending, active;
    uint64_t requests, retries, rejected_pending, rejected_concurrency, unavailable,
        budget_exhausted, ejections;
} sl_upstream_stats_t;

/* Copies up to cap endpoints' state, in set order, into out; returns the number of endpoints
 * in the set. Thread-safe. */
size_t sl_upstream_pool_endpoints(sl_upstream_pool_t *p, sl_upstream_endpoint_info_t *out,
                                  size_t cap);
/* Pool counters since creation. Thread-safe. */
void sl_upstream_pool_stats(sl_upstream_pool_t *p, sl_upstream_stats_t *out);

#endif
