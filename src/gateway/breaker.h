/* A circuit breaker for one upstream endpoint, with Resilience4j's state machine: CLOSED ->
 * OPEN -> HALF_OPEN -> (CLOSED | OPEN), failure-rate and slow-call-rate thresholds over a
 * sliding window of the last N calls or the last N seconds. Pure logic: the caller passes the
 * monotonic time (milliseconds) to every call, so tests drive it with a fake clock. The upstream
 * pool (upstream.h) keeps one per endpoint; the gateway rarely calls it directly. */
#ifndef SL_GATEWAY_BREAKER_H
#define SL_GATEWAY_BREAKER_H

#include "core/buf.h"
#include "core/common.h"

typedef enum sl_breaker_state {
    SL_BREAKER_CLOSED = 0,    /* calls flow; outcomes fill the sliding window */
    SL_BREAKER_OPEN = 1,      /* calls are rejected until the open wait has passed */
    SL_BREAKER_HALF_OPEN = 2, /* a fixed number of trial calls decide CLOSED or OPEN */
} sl_breaker_state_t;

typedef enum sl_breaker_window {
    SL_BREAKER_WINDOW_COUNT = 0, /* the last window_size calls */
    SL_BREAKER_WINDOW_TIME = 1,  /* the calls of the last window_size seconds */
} sl_breaker_window_t;

/* Limits that sl_breaker_config_validate() enforces (the window is allocated up front). */
#define SL_BREAKER_WINDOW_MAX    10000u
#define SL_BREAKER_HALF_OPEN_MAX 1000u

/* Defaults are Resilience4j's (CircuitBreakerConfig; see
 * /work/shared/reference/platform-anchors.md section 2.4): COUNT_BASED window of 100 calls,
 * minimumNumberOfCalls 100, failureRateThreshold 50%, slowCallRateThreshold 100%,
 * slowCallDurationThreshold 60 s, waitDurationInOpenState 60 s,
 * permittedNumberOfCallsInHalfOpenState 10. */
typedef struct sl_breaker_config {
    sl_breaker_window_t window_type;
    uint32_t window_size;            /* calls (COUNT) or seconds (TIME), 1..SL_BREAKER_WINDOW_MAX */
    uint32_t minimum_calls;          /* no rate is evaluated below this many calls in the window;
                                        for a COUNT window it is capped at window_size, as in R4J */
    double failure_rate_threshold;   /* percent, (0, 100]: opens when the rate is >= this */
    double slow_call_rate_threshold; /* percent, (0, 100]: opens when the rate is >= this */
    uint64_t slow_call_duration_ms;  /* a call at least this long is slow (> 0) */
    uint64_t wait_in_open_ms;        /* OPEN lasts this long, then the next call goes HALF_OPEN */
    uint32_t permitted_calls_in_half_open; /* 1..SL_BREAKER_HALF_OPEN_MAX */
} sl_breaker_config_t;

typedef struct sl_breaker sl_breaker_t;

/* Fills c with the defaults above. */
void sl_breaker_config_default(sl_breaker_config_t *c);

/* Returns 0, or SL_EINVAL with a message naming the field appended to err (borrowed). */
int sl_breaker_config_validate(const sl_breaker_config_t *c, sl_buf_t *err);

/* A new breaker in CLOSED; c is copied and must be valid (asserted: validate config input
 * first). Free with sl_breaker_free(). */
sl_breaker_t *sl_breaker_new(const sl_breaker_config_t *c);
void sl_breaker_free(sl_breaker_t *b);

/* Asks permission for one call at now_ms. OPEN whose wait has passed moves to HALF_OPEN here
 * (lazily, as R4J does by default). In HALF_OPEN at most permitted_calls_in_half_open calls are
 * admitted in total. On true, *ticket identifies the permission: pass it to exactly one of
 * sl_breaker_record() or sl_breaker_release(). Thread-safe (a mutex per breaker). */
bool sl_breaker_acquire(sl_breaker_t *b, uint64_t now_ms, uint64_t *ticket);

/* Whether sl_breaker_acquire() would succeed at now_ms, without taking a permission or
 * changing state (for choosing among endpoints). Thread-safe; the answer may be stale by the
 * time the caller acts on it, so acquire can still fail. */
bool sl_breaker_would_allow(sl_breaker_t *b, uint64_t now_ms);

/* Gives back a permission whose call was never made (a HALF_OPEN trial slot becomes free
 * again). Thread-safe. */
void sl_breaker_release(sl_breaker_t *b, uint64_t ticket);

/* Records the outcome of the call that ticket admitted: failure, and whether it was slow
 * (duration_ms >= slow_call_duration_ms). An outcome whose ticket predates the latest state
 * change is ignored, so a slow call admitted while CLOSED cannot decide a HALF_OPEN trial.
 * Returns the state after the call. Thread-safe. */
sl_breaker_state_t sl_breaker_record(sl_breaker_t *b, uint64_t ticket, uint64_t now_ms,
                                     uint64_t duration_ms, bool failure);

/* The current state (OPEN stays OPEN here until a call asks, even after the wait). Thread-safe. */
sl_breaker_state_t sl_breaker_state(sl_breaker_t *b);

/* How many times the breaker has opened since it was created (for metrics). Thread-safe. */
uint64_t sl_breaker_open_count(sl_breaker_t *b);

/* "closed", "open" or "half_open" (static). */
const char *sl_breaker_state_name(sl_breaker_state_t s);

#endif
