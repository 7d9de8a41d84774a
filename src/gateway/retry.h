/* Retry policy for gateway -> upstream calls: which outcomes may be retried, how many attempts,
 * full-jitter exponential backoff, per-try timeout and overall deadline, and a retry budget that
 * caps retries at a share of requests over a sliding window (Envoy's retry_budget, Linkerd's and
 * Finagle's RetryBudget). Pure logic: time and randomness come in as arguments. The upstream
 * pool (upstream.h) combines these; the gateway may also call them directly. */
#ifndef SL_GATEWAY_RETRY_H
#define SL_GATEWAY_RETRY_H

#include "core/buf.h"
#include "core/common.h"

/* What one attempt to an upstream endpoint ended with, as the gateway classifies it. */
typedef enum sl_retry_outcome {
    SL_RETRY_OUTCOME_OK = 0,                /* a response (any gRPC status not listed below) */
    SL_RETRY_OUTCOME_CONNECT_FAILURE,       /* no connection: the request never left */
    SL_RETRY_OUTCOME_UNAVAILABLE,           /* gRPC UNAVAILABLE / HTTP 503 from the endpoint */
    SL_RETRY_OUTCOME_RESET_BEFORE_RESPONSE, /* stream or connection reset, no response bytes */
    SL_RETRY_OUTCOME_PER_TRY_TIMEOUT,       /* the per-try timeout fired before a response */
    SL_RETRY_OUTCOME_FAILED_AFTER_RESPONSE, /* failed after the response had started */
    SL_RETRY_OUTCOME_SERVER_ERROR,          /* INTERNAL, UNKNOWN, HTTP 5xx other than 503 */
    SL_RETRY_OUTCOME_RATE_LIMITED,          /* RESOURCE_EXHAUSTED / 429: never retried at once */
    SL_RETRY_OUTCOME_CLIENT_ERROR, /* INVALID_ARGUMENT, NOT_FOUND, 4xx: the request's fault */
} sl_retry_outcome_t;

/* Whether the outcome counts against the endpoint's health (breaker, outlier ejection): every
 * connection-level and 5xx-class failure; not OK, RATE_LIMITED or CLIENT_ERROR. */
bool sl_retry_outcome_is_failure(sl_retry_outcome_t o);

/* Whether the outcome may be retried on another attempt. CONNECT_FAILURE always (nothing
 * reached the server); UNAVAILABLE, RESET_BEFORE_RESPONSE and PER_TRY_TIMEOUT only when the
 * caller marked the request idempotent (the server may have acted on it); nothing else, and
 * never once a response has started. */
bool sl_retry_outcome_is_retriable(sl_retry_outcome_t o, bool idempotent);

/* "ok", "connect_failure", ... (static), for logs and metric labels. */
const char *sl_retry_outcome_name(sl_retry_outcome_t o);

/* gRPC caps maxAttempts at 5; so do we. */
#define SL_RETRY_MAX_ATTEMPTS 5u

/* Defaults: Envoy's router (platform-anchors.md section 2.3): backoff base 25 ms, cap 10x base
 * = 250 ms, route timeout 15 s. max_attempts 3 (2 retries) is ours: Envoy's num_retries default
 * is 1, but the pool excludes already-tried endpoints, and a dead replica plus one connect race
 * should still not reach the client. The budget bounds the extra load either way. */
typedef struct sl_retry_policy {
    uint32_t max_attempts;       /* 1..SL_RETRY_MAX_ATTEMPTS, the first try included */
    uint32_t backoff_base_ms;    /* > 0 */
    uint32_t backoff_cap_ms;     /* >= backoff_base_ms */
    uint32_t per_try_timeout_ms; /* 0: each try may use the whole remaining deadline */
    uint32_t timeout_ms;         /* overall deadline of a request, all tries, > 0 */
} sl_retry_policy_t;

void sl_retry_policy_default(sl_retry_policy_t *p);
/* Returns 0, or SL_EINVAL with a message naming the field appended to err (borrowed). */
int sl_retry_policy_validate(const sl_retry_policy_t *p, sl_buf_t *err);

/* Full-jitter backoff before retry number retry_index (0 for the first retry):
 * rnd mapped uniformly onto [0, min(cap, base * 2^retry_index)] ms. rnd is any 64-bit random
 * value (sl_rand64() in production). Never overflows, never exceeds the cap. */
uint64_t sl_retry_backoff_ms(const sl_retry_policy_t *p, uint32_t retry_index, uint64_t rnd);

/* The absolute deadline (ms, same clock as now_ms) of a request arriving at now_ms: now +
 * timeout_ms, or the client's own deadline client_deadline_ms when that is earlier (0: the
 * client sent none). */
uint64_t sl_retry_deadline_ms(const sl_retry_policy_t *p, uint64_t now_ms,
                              uint64_t client_deadline_ms);

/* The timeout for an attempt starting at now_ms: min(per_try_timeout_ms, deadline - now), in
 * *timeout_ms (>= 1). This is what the gateway passes as timeout_ms to sl_grpc_client_call(),
 * which sends it as grpc-timeout, so the upstream sees the shrinking deadline. Returns 0, or
 * SL_ETIMEOUT when the deadline has passed (answer DEADLINE_EXCEEDED / 504 without a try). */
int sl_retry_try_timeout_ms(const sl_retry_policy_t *p, uint64_t deadline_ms, uint64_t now_ms,
                            uint32_t *timeout_ms);

/* Retry budget: a retry is allowed while retries <= ratio * requests + min_retries_per_sec *
 * window_s, both counted over the last window_s seconds (Finagle/Linkerd RetryBudget: the floor
 * lets low-traffic pools retry at all). Defaults: ratio 0.2 and a floor of 3 per second
 * (Envoy's retry_budget budget_percent 20% / min_retry_concurrency 3, anchors section 2.1),
 * window 10 s (Linkerd's ttl). Requests are first tries only; retries do not earn retries. */
typedef struct sl_retry_budget_config {
    double ratio;                 /* [0, 1] */
    uint32_t min_retries_per_sec; /* floor */
    uint32_t window_s;            /* 1..3600 */
} sl_retry_budget_config_t;

typedef struct sl_retry_budget sl_retry_budget_t;

void sl_retry_budget_config_default(sl_retry_budget_config_t *c);
int sl_retry_budget_config_validate(const sl_retry_budget_config_t *c, sl_buf_t *err);
/* c is copied and must be valid (asserted). Free with sl_retry_budget_free(). */
sl_retry_budget_t *sl_retry_budget_new(const sl_retry_budget_config_t *c);
void sl_retry_budget_free(sl_retry_budget_t *b);
/* Counts one new request (a first try). Thread-safe (a mutex per budget). */
void sl_retry_budget_on_request(sl_retry_budget_t *b, uint64_t now_ms);
/* Takes one retry from the budget if it allows one now; true when taken. Thread-safe. */
bool sl_retry_budget_try_withdraw(sl_retry_budget_t *b, uint64_t now_ms);
/* Requests and retries counted in the current window (for metrics and tests). Thread-safe. */
void sl_retry_budget_counts(sl_retry_budget_t *b, uint64_t now_ms, uint64_t *requests,
                            uint64_t *retries);

/* Why a failed attempt is, or is not, retried. */
typedef enum sl_retry_verdict {
    SL_RETRY_YES = 0,
    SL_RETRY_NO_SUCCESS,       /* the outcome is not a failure to retry: OK or the client's */
    SL_RETRY_NO_NOT_RETRIABLE, /* a failure that must not be retried (see is_retriable) */
    SL_RETRY_NO_ATTEMPTS,      /* max_attempts reached */
    SL_RETRY_NO_DEADLINE,      /* the backoff would end at or past the deadline */
    SL_RETRY_NO_BUDGET,        /* the retry budget is spent */
} sl_retry_verdict_t;

typedef struct sl_retry_decision {
    sl_retry_verdict_t verdict;
    uint64_t backoff_ms; /* wait this long before the next try (when verdict is SL_RETRY_YES) */
} sl_retry_decision_t;

/* Decides after attempt number attempts_done (1 for the first try) ended with o at now_ms.
 * Checks in order: retriable, attempts, backoff vs deadline, then the budget (withdrawing a
 * retry only when all else allows it). budget may be NULL (no budget). rnd feeds the backoff.
 * Thread-safe as the budget is. */
sl_retry_decision_t sl_retry_decide(const sl_retry_policy_t *p, sl_retry_budget_t *budget,
                                    uint32_t attempts_done, sl_retry_outcome_t o, bool idempotent,
                                    uint64_t now_ms, uint64_t deadline_ms, uint64_t rnd);

/* "retry", "success", "not_retriable", "attempts", "deadline", "budget" (static). */
const char *sl_retry_verdict_name(sl_retry_verdict_t v);

#endif
