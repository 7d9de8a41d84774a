/* Unit tests for gateway/breaker: the Resilience4j state machine driven by a fake clock:
 * opening on failure rate and on slow-call rate, never before the minimum number of calls,
 * the sliding count and time windows, half-open admitting exactly the permitted calls and
 * closing or reopening from their outcomes, stale outcomes ignored, and concurrent use. */
#include "core/buf.h"
#include "core/common.h"
#include "gateway/breaker.h"

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define T0 1000000u /* a fake monotonic start, far from 0 */

static sl_breaker_config_t small_cfg(void) {
    sl_breaker_config_t c;
    sl_breaker_config_default(&c);
    c.window_size = 10;
    c.minimum_calls = 10;
    c.failure_rate_threshold = 50;
    c.slow_call_rate_threshold = 50;
    c.slow_call_duration_ms = 100;
    c.wait_in_open_ms = 5000;
    c.permitted_calls_in_half_open = 3;
    return c;
}

/* One whole call: acquire (must succeed), then record. Returns the state after. */
static sl_breaker_state_t call(sl_breaker_t *b, uint64_t now, uint64_t dur, bool fail) {
    uint64_t t;
    assert_true(sl_breaker_acquire(b, now, &t));
    return sl_breaker_record(b, t, now + dur, dur, fail);
}

static void test_defaults_are_resilience4j(void **state) {
    sl_breaker_config_t c;
    sl_breaker_config_default(&c);
    assert_int_equal(c.window_type, SL_BREAKER_WINDOW_COUNT);
    assert_int_equal(c.window_size, 100);
    assert_int_equal(c.minimum_calls, 100);
    assert_true(c.failure_rate_threshold == 50.0);
    assert_true(c.slow_call_rate_threshold == 100.0);
    assert_int_equal(c.slow_call_duration_ms, 60000);
    assert_int_equal(c.wait_in_open_ms, 60000);
    assert_int_equal(c.permitted_calls_in_half_open, 10);
    sl_buf_t err = SL_BUF_INIT;
    assert_int_equal(sl_breaker_config_validate(&c, &err), 0);
    c.failure_rate_threshold = 0;
    assert_int_equal(sl_breaker_config_validate(&c, &err), SL_EINVAL);
    assert_non_null(strstr(err.data, "failure_rate_threshold"));
    sl_buf_reset(&err);
    sl_breaker_config_default(&c);
    c.window_size = 0;
    assert_int_equal(sl_breaker_config_validate(&c, &err), SL_EINVAL);
    assert_non_null(strstr(err.data, "window_size"));
    sl_buf_reset(&err);
    sl_breaker_config_default(&c);
    c.permitted_calls_in_half_open = 0;
    assert_int_equal(sl_breaker_config_validate(&c, &err), SL_EINVAL);
    assert_non_null(strstr(err.data, "permitted_calls_in_half_open"));
    sl_buf_free(&err);
    assert_string_equal(sl_breaker_state_name(SL_BREAKER_HALF_OPEN), "half_open");
}

static void test_not_before_minimum_calls(void **state) {
    sl_breaker_config_t c = small_cfg();
    sl_breaker_t *b = sl_breaker_new(&c);
    /* Nine failures out of nine calls: 100% but below the minimum of 10, still closed. */
    for (int i = 0; i < 9; i++)
        assert_int_equal(call(b, T0 + i, 1, true), SL_BREAKER_CLOSED);
    assert_int_equal(sl_breaker_open_count(b), 0);
    assert_int_equal(call(b, T0 + 9, 1, true), SL_BREAKER_OPEN);
    assert_int_equal(sl_breaker_open_count(b), 1);
    sl_breaker_free(b);
}

static void test_opens_on_failure_rate(void **state) {
    sl_breaker_config_t c = small_cfg();
    sl_breaker_t *b = sl_breaker_new(&c);
    /* 10 calls, 4 failures first: 40% < 50%, closed. The window slides: each new failure
     * evicts one of the old failures and the rate stays 40%, until the fifth evicts a success
     * and makes 5/10. */
    for (int i = 0; i < 10; i++)
        assert_int_equal(call(b, T0, 1, i < 4), SL_BREAKER_CLOSED);
    for (int i = 0; i < 4; i++)
        assert_int_equal(call(b, T0, 1, true), SL_BREAKER_CLOSED);
    assert_int_equal(call(b, T0, 1, true), SL_BREAKER_OPEN);
    sl_breaker_free(b);

    /* A cleaner sequence: 5 successes then failures until the rate reaches 50%. */
    b = sl_breaker_new(&c);
    for (int i = 0; i < 5; i++)
        call(b, T0, 1, false);
    for (int i = 0; i < 4; i++)
        assert_int_equal(call(b, T0, 1, true), SL_BREAKER_CLOSED); /* 9 calls: below minimum */
    assert_int_equal(call(b, T0, 1, true), SL_BREAKER_OPEN);       /* 5 of 10 = 50% */
    uint64_t t;
    assert_false(sl_breaker_acquire(b, T0 + 1, &t));
    assert_false(sl_breaker_would_allow(b, T0 + 1));
    sl_breaker_free(b);
}

static void test_count_window_slides(void **state) {
    sl_breaker_config_t c = small_cfg();
    sl_breaker_t *b = sl_breaker_new(&c);
    /* 4 failures, then 100 successes: the failures leave the window, so 4 more failures later
     * make 4/10 and the breaker stays closed; a 5th makes 5/10 and opens it. */
    for (int i = 0; i < 4; i++)
        call(b, T0, 1, true);
    for (int i = 0; i < 100; i++)
        assert_int_equal(call(b, T0, 1, false), SL_BREAKER_CLOSED);
    for (int i = 0; i < 4; i++)
        assert_int_equal(call(b, T0, 1, true), SL_BREAKER_CLOSED);
    assert_int_equal(call(b, T0, 1, true), SL_BREAKER_OPEN);
    sl_breaker_free(b);
}

static void test_opens_on_slow_call_rate(void **state) {
    sl_breaker_config_t c = small_cfg();
    sl_breaker_t *b = sl_breaker_new(&c);
    /* All successes, but half of them at or over the slow threshold of 100 ms. */
    for (int i = 0; i < 9; i++)
        assert_int_equal(call(b, T0, i % 2 ? 100 : 99, false), SL_BREAKER_CLOSED);
    /* 4 slow of 9 so far; the 10th slow makes 5/10. */
    assert_int_equal(call(b, T0, 250, false), SL_BREAKER_OPEN);
    sl_breaker_free(b);

    /* Fast successes never open it. */
    b = sl_breaker_new(&c);
    for (int i = 0; i < 1000; i++)
        assert_int_equal(call(b, T0, 99, false), SL_BREAKER_CLOSED);
    sl_breaker_free(b);
}

static void test_time_window(void **state) {
    sl_breaker_config_t c = small_cfg();
    c.window_type = SL_BREAKER_WINDOW_TIME;
    c.window_size = 10; /* seconds */
    c.minimum_calls = 4;
    sl_breaker_t *b = sl_breaker_new(&c);
    /* 3 failures at t=0 s: below the minimum of 4. 11 s later they have left the window: one
     * new failure and 3 successes are 1/4 = 25%, closed (had they stayed, 4/4 would open). */
    for (int i = 0; i < 3; i++)
        assert_int_equal(call(b, T0, 1, true), SL_BREAKER_CLOSED);
    uint64_t later = T0 + 11000;
    assert_int_equal(call(b, later, 1, true), SL_BREAKER_CLOSED);
    for (int i = 0; i < 3; i++)
        assert_int_equal(call(b, later + 100, 1, false), SL_BREAKER_CLOSED); /* 1/4 = 25% */
    /* Within the window, failures add up across seconds: +1 at 3 s -> 2/5 = 40%, +1 -> 3/6. */
    assert_int_equal(call(b, later + 3000, 1, true), SL_BREAKER_CLOSED);
    assert_int_equal(call(b, later + 5000, 1, true), SL_BREAKER_OPEN);
    sl_breaker_free(b);
}

static sl_breaker_t *opened(const sl_breaker_config_t *c) {
    sl_breaker_t *b = sl_breaker_new(c);
    for (int i = 0; i < 10; i++)
        call(b, T0, 1, true);
    assert_int_equal(sl_breaker_state(b), SL_BREAKER_OPEN);
    return b;
}

static void test_half_open_admits_exactly_permitted(void **state) {
    sl_breaker_config_t c = small_cfg();
    sl_breaker_t *b = opened(&c);
    uint64_t t[4];
    /* Still open 1 ms before the wait is over; lazily half-open at the first call after it. */
    assert_false(sl_breaker_acquire(b, T0 + 4999, &t[0]));
    assert_int_equal(sl_breaker_state(b), SL_BREAKER_OPEN);
    assert_true(sl_breaker_would_allow(b, T0 + 5001)); /* would, without changing state */
    assert_int_equal(sl_breaker_state(b), SL_BREAKER_OPEN);
    for (int i = 0; i < 3; i++)
        assert_true(sl_breaker_acquire(b, T0 + 5001, &t[i]));
    assert_int_equal(sl_breaker_state(b), SL_BREAKER_HALF_OPEN);
    assert_false(sl_breaker_acquire(b, T0 + 5002, &t[3])); /* the 4th is refused */
    assert_false(sl_breaker_would_allow(b, T0 + 5002));
    /* A permission given back unused frees its slot, once. */
    sl_breaker_release(b, t[2]);
    assert_true(sl_breaker_acquire(b, T0 + 5003, &t[2]));
    assert_false(sl_breaker_acquire(b, T0 + 5003, &t[3]));
    /* Two successes: still half-open until the third trial reports. */
    assert_int_equal(sl_breaker_record(b, t[0], T0 + 5010, 5, false), SL_BREAKER_HALF_OPEN);
    assert_int_equal(sl_breaker_record(b, t[1], T0 + 5010, 5, false), SL_BREAKER_HALF_OPEN);
    assert_false(sl_breaker_acquire(b, T0 + 5010, &t[3])); /* completed trials free no slots */
    assert_int_equal(sl_breaker_record(b, t[2], T0 + 5010, 5, false), SL_BREAKER_CLOSED);
    /* Closed again with a fresh window: 9 failures do not reopen it. */
    for (int i = 0; i < 9; i++)
        assert_int_equal(call(b, T0 + 6000, 1, true), SL_BREAKER_CLOSED);
    assert_int_equal(sl_breaker_open_count(b), 1);
    sl_breaker_free(b);
}

static void test_half_open_reopens(void **state) {
    sl_breaker_config_t c = small_cfg();
    sl_breaker_t *b = opened(&c);
    uint64_t t[3];
    for (int i = 0; i < 3; i++)
        assert_true(sl_breaker_acquire(b, T0 + 6000, &t[i]));
    /* 2 failures of 3 = 67% >= 50%: back to open, for another full wait. */
    sl_breaker_record(b, t[0], T0 + 6001, 1, true);
    sl_breaker_record(b, t[1], T0 + 6001, 1, false);
    assert_int_equal(sl_breaker_record(b, t[2], T0 + 6002, 1, true), SL_BREAKER_OPEN);
    assert_int_equal(sl_breaker_open_count(b), 2);
    uint64_t x;
    assert_false(sl_breaker_acquire(b, T0 + 6002 + 4999, &x));
    assert_true(sl_breaker_acquire(b, T0 + 6002 + 5000, &x));
    sl_breaker_free(b);

    /* Slow trials reopen it too, even when they succeed. */
    b = opened(&c);
    for (int i = 0; i < 3; i++)
        assert_true(sl_breaker_acquire(b, T0 + 6000, &t[i]));
    sl_breaker_record(b, t[0], T0 + 6200, 200, false);
    sl_breaker_record(b, t[1], T0 + 6200, 200, false);
    assert_int_equal(sl_breaker_record(b, t[2], T0 + 6200, 1, false), SL_BREAKER_OPEN);
    sl_breaker_free(b);
}

static void test_stale_outcomes_ignored(void **state) {
    sl_breaker_config_t c = small_cfg();
    sl_breaker_t *b = sl_breaker_new(&c);
    uint64_t slow_ticket, t[3];
    assert_true(sl_breaker_acquire(b, T0, &slow_ticket)); /* admitted while closed */
    for (int i = 0; i < 10; i++)
        call(b, T0, 1, true);
    assert_int_equal(sl_breaker_state(b), SL_BREAKER_OPEN);
    for (int i = 0; i < 3; i++)
        assert_true(sl_breaker_acquire(b, T0 + 5001, &t[i]));
    /* The old call's failure arrives during the trial: it must not count as a trial. */
    assert_int_equal(sl_breaker_record(b, slow_ticket, T0 + 5002, 5001, true),
                     SL_BREAKER_HALF_OPEN);
    sl_breaker_release(b, slow_ticket); /* nor free a trial slot */
    uint64_t x;
    assert_false(sl_breaker_acquire(b, T0 + 5002, &x));
    for (int i = 0; i < 3; i++)
        sl_breaker_record(b, t[i], T0 + 5003, 1, false);
    assert_int_equal(sl_breaker_state(b), SL_BREAKER_CLOSED);
    sl_breaker_free(b);
}

typedef struct {
    sl_breaker_t *b;
    int calls, admitted;
} hammer_t;

static void *hammer(void *arg) {
    hammer_t *h = arg;
    for (int i = 0; i < h->calls; i++) {
        uint64_t t, now = T0 + (uint64_t)i;
        if (!sl_breaker_acquire(h->b, now, &t)) continue;
        h->admitted++;
        if (i % 7 == 0)
            sl_breaker_release(h->b, t);
        else
            sl_breaker_record(h->b, t, now, 1, i % 3 != 0);
    }
    return NULL;
}

static void test_concurrent_use(void **state) {
    sl_breaker_config_t c = small_cfg();
    c.wait_in_open_ms = 50;
    sl_breaker_t *b = sl_breaker_new(&c);
    hammer_t h[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        h[i] = (hammer_t){b, 20000, 0};
        assert_int_equal(pthread_create(&th[i], NULL, hammer, &h[i]), 0);
    }
    int admitted = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        admitted += h[i].admitted;
    }
    /* Two thirds of the calls fail: the breaker keeps opening and probing, so it admits some
     * but not all calls, and never wedges. */
    assert_true(admitted > 0 && admitted < 80000);
    assert_true(sl_breaker_open_count(b) > 0);
    sl_breaker_free(b);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_are_resilience4j),
        cmocka_unit_test(test_not_before_minimum_calls),
        cmocka_unit_test(test_opens_on_failure_rate),
        cmocka_unit_test(test_count_window_slides),
        cmocka_unit_test(test_opens_on_slow_call_rate),
        cmocka_unit_test(test_time_window),
        cmocka_unit_test(test_half_open_admits_exactly_permitted),
        cmocka_unit_test(test_half_open_reopens),
        cmocka_unit_test(test_stale_outcomes_ignored),
        cmocka_unit_test(test_concurrent_use),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
