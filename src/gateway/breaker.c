/* The per-endpoint circuit breaker (Resilience4j semantics). The sliding window keeps running
 * totals so each call is O(1): a COUNT window is a ring of the last N outcomes, a TIME window a
 * ring of N one-second buckets evicted as time moves on. One small mutex per breaker: the state
 * machine must see outcome and transition atomically, and it is held for a few instructions. */
#include "gateway/breaker.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define OUT_FAILURE 1u
#define OUT_SLOW    2u

typedef struct {
    uint64_t sec; /* the second this bucket counts, valid when calls > 0 */
    uint32_t calls, failures, slow;
} bucket_t;

struct sl_breaker {
    pthread_mutex_t mu;
    sl_breaker_config_t cfg;
    sl_breaker_state_t state;
    uint64_t epoch;     /* bumped on every transition; tickets carry it */
    uint64_t opened_at; /* ms, when OPEN began */
    uint64_t opens;
    /* CLOSED window, running totals. */
    uint32_t calls, failures, slow;
    uint8_t *ring; /* COUNT: one OUT_* byte per call */
    uint32_t head;
    bucket_t *buckets; /* TIME: window_size buckets */
    uint64_t last_sec;
    /* HALF_OPEN trial. */
    uint32_t ho_issued, ho_done, ho_failures, ho_slow;
};

void sl_breaker_config_default(sl_breaker_config_t *c) {
    *c = (sl_breaker_config_t){
        .window_type = SL_BREAKER_WINDOW_COUNT,
        .window_size = 100,
        .minimum_calls = 100,
        .failure_rate_threshold = 50.0,
        .slow_call_rate_threshold = 100.0,
        .slow_call_duration_ms = 60000,
        .wait_in_open_ms = 60000,
        .permitted_calls_in_half_open = 10,
    };
}

int sl_breaker_config_validate(const sl_breaker_config_t *c, sl_buf_t *err) {
    const char *bad = NULL;
    if (c->window_type != SL_BREAKER_WINDOW_COUNT && c->window_type != SL_BREAKER_WINDOW_TIME)
        bad = "window_type must be count or time";
    else if (c->window_size < 1 || c->window_size > SL_BREAKER_WINDOW_MAX)
        bad = "window_size must be 1..10000";
    else if (c->minimum_calls < 1)
        bad = "minimum_calls must be at least 1";
    else if (!(c->failure_rate_threshold > 0.0 && c->failure_rate_threshold <= 100.0))
        bad = "failure_rate_threshold must be a percent in (0, 100]";
    else if (!(c->slow_call_rate_threshold > 0.0 && c->slow_call_rate_threshold <= 100.0))
        bad = "slow_call_rate_threshold must be a percent in (0, 100]";
    else if (c->slow_call_duration_ms == 0)
        bad = "slow_call_duration_ms must be > 0";
    else if (c->permitted_calls_in_half_open < 1 ||
             c->permitted_calls_in_half_open > SL_BREAKER_HALF_OPEN_MAX)
        bad = "permitted_calls_in_half_open must be 1..1000";
    if (!bad) return 0;
    sl_buf_printf(err, "circuit breaker: %s", bad);
    return SL_EINVAL;
}

static void window_reset(sl_breaker_t *b) {
    b->calls = b->failures = b->slow = 0;
    b->head = 0;
    if (b->ring) memset(b->ring, 0, b->cfg.window_size);
    if (b->buckets) memset(b->buckets, 0, sizeof(bucket_t) * b->cfg.window_size);
}

sl_breaker_t *sl_breaker_new(const sl_breaker_config_t *c) {
    sl_buf_t why = SL_BUF_INIT;
    int rc = sl_breaker_config_validate(c, &why);
    sl_buf_free(&why);
    SL_ASSERT(rc == 0);
    sl_breaker_t *b = sl_calloc(1, sizeof *b);
    pthread_mutex_init(&b->mu, NULL);
    b->cfg = *c;
    if (c->window_type == SL_BREAKER_WINDOW_COUNT) {
        b->ring = sl_calloc(c->window_size, 1);
        if (b->cfg.minimum_calls > c->window_size) b->cfg.minimum_calls = c->window_size;
    } else {
        b->buckets = sl_calloc(c->window_size, sizeof(bucket_t));
    }
    b->state = SL_BREAKER_CLOSED;
    return b;
}

void sl_breaker_free(sl_breaker_t *b) {
    if (!b) return;
    pthread_mutex_destroy(&b->mu);
    free(b->ring);
    free(b->buckets);
    free(b);
}

static void transition(sl_breaker_t *b, sl_breaker_state_t to, uint64_t now_ms) {
    b->state = to;
    b->epoch++;
    window_reset(b);
    b->ho_issued = b->ho_done = b->ho_failures = b->ho_slow = 0;
    if (to == SL_BREAKER_OPEN) {
        b->opened_at = now_ms;
        b->opens++;
    }
}

/* OPEN whose wait is over becomes HALF_OPEN (called under the mutex). */
static void maybe_half_open(sl_breaker_t *b, uint64_t now_ms) {
    if (b->state == SL_BREAKER_OPEN && now_ms >= b->opened_at + b->cfg.wait_in_open_ms)
        transition(b, SL_BREAKER_HALF_OPEN, now_ms);
}

bool sl_breaker_acquire(sl_breaker_t *b, uint64_t now_ms, uint64_t *ticket) {
    pthread_mutex_lock(&b->mu);
    maybe_half_open(b, now_ms);
    bool ok = true;
    if (b->state == SL_BREAKER_OPEN)
        ok = false;
    else if (b->state == SL_BREAKER_HALF_OPEN) {
        ok = b->ho_issued < b->cfg.permitted_calls_in_half_open;
        if (ok) b->ho_issued++;
    }
    *ticket = b->epoch;
    pthread_mutex_unlock(&b->mu);
    return ok;
}

bool sl_breaker_would_allow(sl_breaker_t *b, uint64_t now_ms) {
    pthread_mutex_lock(&b->mu);
    bool ok;
    if (b->state == SL_BREAKER_CLOSED)
        ok = true;
    else if (b->state == SL_BREAKER_OPEN)
        ok = now_ms >= b->opened_at + b->cfg.wait_in_open_ms; /* would go HALF_OPEN with slots */
    else
        ok = b->ho_issued < b->cfg.permitted_calls_in_half_open;
    pthread_mutex_unlock(&b->mu);
    return ok;
}

void sl_breaker_release(sl_breaker_t *b, uint64_t ticket) {
    pthread_mutex_lock(&b->mu);
    if (ticket == b->epoch && b->state == SL_BREAKER_HALF_OPEN && b->ho_issued > b->ho_done)
        b->ho_issued--;
    pthread_mutex_unlock(&b->mu);
}

/* Rate in percent of part over total (total > 0). */
static double rate(uint32_t part, uint32_t total) {
    return (double)part * 100.0 / (double)total;
}

static void window_add_count(sl_breaker_t *b, uint8_t out) {
    uint32_t n = b->cfg.window_size;
    if (b->calls == n) { /* full: the oldest outcome at head leaves */
        uint8_t old = b->ring[b->head];
        b->failures -= (old & OUT_FAILURE) ? 1 : 0;
        b->slow -= (old & OUT_SLOW) ? 1 : 0;
        b->calls--;
    }
    b->ring[b->head] = out;
    b->head = (b->head + 1) % n;
    b->calls++;
    b->failures += (out & OUT_FAILURE) ? 1 : 0;
    b->slow += (out & OUT_SLOW) ? 1 : 0;
}

static void window_add_time(sl_breaker_t *b, uint64_t now_ms, uint8_t out) {
    uint32_t n = b->cfg.window_size;
    uint64_t sec = now_ms / 1000;
    /* Evict the buckets of seconds that fell out of the window since the last call: at most n
     * steps however long the gap, so amortised O(1). A clock going backwards (it must not,
     * being monotonic) just lands in the current bucket. */
    if (sec > b->last_sec) {
        uint64_t steps = SL_MIN(sec - b->last_sec, (uint64_t)n);
        for (uint64_t s = sec - steps + 1; s <= sec; s++) {
            bucket_t *k = &b->buckets[s % n];
            b->calls -= k->calls;
            b->failures -= k->failures;
            b->slow -= k->slow;
            *k = (bucket_t){.sec = s};
        }
        b->last_sec = sec;
    }
    bucket_t *k = &b->buckets[b->last_sec % n];
    k->calls++;
    k->failures += (out & OUT_FAILURE) ? 1 : 0;
    k->slow += (out & OUT_SLOW) ? 1 : 0;
    b->calls++;
    b->failures += (out & OUT_FAILURE) ? 1 : 0;
    b->slow += (out & OUT_SLOW) ? 1 : 0;
}

sl_breaker_state_t sl_breaker_record(sl_breaker_t *b, uint64_t ticket, uint64_t now_ms,
                                     uint64_t duration_ms, bool failure) {
    uint8_t out = (uint8_t)((failure ? OUT_FAILURE : 0) |
                            (duration_ms >= b->cfg.slow_call_duration_ms ? OUT_SLOW : 0));
    pthread_mutex_lock(&b->mu);
    if (ticket != b->epoch) goto done; /* admitted under an earlier state: not evidence now */
    if (b->state == SL_BREAKER_CLOSED) {
        if (b->ring)
            window_add_count(b, out);
        else
            window_add_time(b, now_ms, out);
        if (b->calls >= b->cfg.minimum_calls &&
            (rate(b->failures, b->calls) >= b->cfg.failure_rate_threshold ||
             rate(b->slow, b->calls) >= b->cfg.slow_call_rate_threshold))
            transition(b, SL_BREAKER_OPEN, now_ms);
    } else if (b->state == SL_BREAKER_HALF_OPEN) {
        b->ho_done++;
        b->ho_failures += (out & OUT_FAILURE) ? 1 : 0;
        b->ho_slow += (out & OUT_SLOW) ? 1 : 0;
        uint32_t n = b->cfg.permitted_calls_in_half_open;
        if (b->ho_done >= n) {
            bool bad = rate(b->ho_failures, b->ho_done) >= b->cfg.failure_rate_threshold ||
                       rate(b->ho_slow, b->ho_done) >= b->cfg.slow_call_rate_threshold;
            transition(b, bad ? SL_BREAKER_OPEN : SL_BREAKER_CLOSED, now_ms);
        }
    }
done:;
    sl_breaker_state_t s = b->state;
    pthread_mutex_unlock(&b->mu);
    return s;
}

sl_breaker_state_t sl_breaker_state(sl_breaker_t *b) {
    pthread_mutex_lock(&b->mu);
    sl_breaker_state_t s = b->state;
    pthread_mutex_unlock(&b->mu);
    return s;
}

uint64_t sl_breaker_open_count(sl_breaker_t *b) {
    pthread_mutex_lock(&b->mu);
    uint64_t n = b->opens;
    pthread_mutex_unlock(&b->mu);
    return n;
}

const char *sl_breaker_state_name(sl_breaker_state_t s) {
    switch (s) {
    case SL_BREAKER_CLOSED:
        return "closed";
    case SL_BREAKER_OPEN:
        return "open";
    case SL_BREAKER_HALF_OPEN:
        return "half_open";
    }
    return "unknown";
}
