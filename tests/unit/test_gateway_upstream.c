/* Unit tests for gateway/upstream and gateway/retry with a fake clock and a seeded random
 * source: P2C prefers the less loaded endpoint and never picks an ejected or open one,
 * ejection times grow and respect the max percent, slow start ramps, admission limits fail
 * fast, the endpoint set is swapped with state carried over, retries avoid tried endpoints, the
 * retry budget holds under a failure storm, backoff stays in [0, cap] and deadlines shrink. */
#include "core/buf.h"
#include "core/common.h"
#include "gateway/upstream.h"

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

typedef struct {
    uint64_t now; /* atomic */
    uint64_t seed;
} fake_env_t;

static fake_env_t fake = {1000000, 0x9e3779b97f4a7c15ull};

static uint64_t fake_now(void *arg) {
    return __atomic_load_n(&((fake_env_t *)arg)->now, __ATOMIC_ACQUIRE);
}

/* splitmix64 over an atomic counter: deterministic per sequence, thread-safe. */
static uint64_t fake_rand(void *arg) {
    uint64_t z =
        __atomic_add_fetch(&((fake_env_t *)arg)->seed, 0x9e3779b97f4a7c15ull, __ATOMIC_RELAXED);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void advance(uint64_t ms) {
    __atomic_add_fetch(&fake.now, ms, __ATOMIC_ACQ_REL);
}

static const sl_upstream_env_t env = {fake_now, fake_rand, &fake};

static sl_upstream_pool_t *pool_of(const sl_upstream_config_t *c, size_t n) {
    sl_upstream_pool_t *p = sl_upstream_pool_new("test", c, &env);
    char names[SL_UPSTREAM_MAX_ENDPOINTS][40];
    const char *addrs[SL_UPSTREAM_MAX_ENDPOINTS];
    for (size_t i = 0; i < n; i++) {
        snprintf(names[i], sizeof names[i], "10.0.0.%zu:8001", i);
        addrs[i] = names[i];
    }
    sl_buf_t err = SL_BUF_INIT;
    assert_int_equal(sl_upstream_pool_set_endpoints(p, addrs, n, &err), 0);
    sl_buf_free(&err);
    return p;
}

/* The index of endpoint "10.0.0.<i>:8001". */
static int ep_index(const sl_upstream_endpoint_t *ep) {
    return atoi(sl_upstream_endpoint_addr(ep) + strlen("10.0.0."));
}

/* One whole request with one attempt ending in o; returns the endpoint index, or -1 when the
 * pick failed (*why says why). */
static int one_request(sl_upstream_pool_t *p, sl_retry_outcome_t o, sl_upstream_reason_t *why) {
    sl_upstream_request_t r;
    sl_upstream_reason_t w;
    assert_int_equal(sl_upstream_request_begin(p, &r, 0, true, &w), 0);
    sl_upstream_endpoint_t *ep;
    int idx = -1;
    if (sl_upstream_request_pick(&r, &ep, &w) == 0) {
        idx = ep_index(ep);
        sl_upstream_request_attempt_done(&r, o);
    }
    if (why) *why = w;
    sl_upstream_request_end(&r);
    return idx;
}

/* Fails endpoint target n times in a row (other picks succeed). */
static void fail_endpoint(sl_upstream_pool_t *p, int target, int n) {
    for (int fails = 0, guard = 0; fails < n; guard++) {
        assert_true(guard < 100000);
        sl_upstream_request_t r;
        sl_upstream_reason_t w;
        sl_upstream_endpoint_t *ep;
        assert_int_equal(sl_upstream_request_begin(p, &r, 0, true, &w), 0);
        assert_int_equal(sl_upstream_request_pick(&r, &ep, &w), 0);
        bool hit = ep_index(ep) == target;
        sl_upstream_request_attempt_done(&r,
                                         hit ? SL_RETRY_OUTCOME_UNAVAILABLE : SL_RETRY_OUTCOME_OK);
        fails += hit;
        sl_upstream_request_end(&r);
    }
}

static sl_upstream_endpoint_info_t info_of(sl_upstream_pool_t *p, int i) {
    sl_upstream_endpoint_info_t inf[SL_UPSTREAM_MAX_ENDPOINTS];
    size_t n = sl_upstream_pool_endpoints(p, inf, SL_UPSTREAM_MAX_ENDPOINTS);
    assert_true((size_t)i < n);
    return inf[i];
}

static sl_upstream_config_t base_cfg(void) {
    sl_upstream_config_t c;
    sl_upstream_config_default(&c);
    c.slow_start.window_ms = 0; /* tests that want it turn it on */
    return c;
}

static void test_config_and_addresses(void **state) {
    sl_upstream_config_t c;
    sl_upstream_config_default(&c);
    sl_buf_t err = SL_BUF_INIT;
    assert_int_equal(sl_upstream_config_validate(&c, &err), 0);
    assert_int_equal(c.outlier.consecutive_failures, 5);
    assert_int_equal(c.outlier.base_ejection_ms, 30000);
    assert_int_equal(c.outlier.max_ejection_percent, 10);
    assert_int_equal(c.max_pending, 1024);
    assert_true(c.retry_budget.ratio == 0.2);
    c.outlier.max_ejection_percent = 101;
    assert_int_equal(sl_upstream_config_validate(&c, &err), SL_EINVAL);
    assert_non_null(strstr(err.data, "max_ejection_percent"));

    c.outlier.max_ejection_percent = 10;
    sl_upstream_pool_t *p = pool_of(&c, 0);
    sl_upstream_pool_free(p);
    p = pool_of(&c, 2);
    const char *bad[] = {"10.0.0.1",         "10.0.0.1:0",  "10.0.0.1:65536", ":80",
                         "host name:80",     "h:8x",        "[::1:80",        "h:123456",
                         "a\r\nInjected:80", "10.0.0.1:80/"};
    for (size_t i = 0; i < SL_ARRAY_LEN(bad); i++) {
        sl_buf_reset(&err);
        assert_int_equal(sl_upstream_pool_set_endpoints(p, &bad[i], 1, &err), SL_EINVAL);
        assert_non_null(strstr(err.data, "not host:port"));
    }
    const char *dup[] = {"a:1", "b:2", "a:1"};
    sl_buf_reset(&err);
    assert_int_equal(sl_upstream_pool_set_endpoints(p, dup, 3, &err), SL_EINVAL);
    assert_non_null(strstr(err.data, "listed twice"));
    assert_int_equal(sl_upstream_pool_endpoints(p, NULL, 0), 2); /* the old set stays */
    const char *good[] = {"[::1]:8001", "inference-0.svc.local:9000", "127.0.0.1:1"};
    assert_int_equal(sl_upstream_pool_set_endpoints(p, good, 3, &err), 0);
    assert_int_equal(sl_upstream_pool_endpoints(p, NULL, 0), 3);
    sl_buf_free(&err);
    sl_upstream_pool_free(p);
}

/* Opens n requests, each with an attempt in flight; at[i] is the endpoint request i got. */
static void shape_load(sl_upstream_pool_t *p, sl_upstream_request_t *r, int n, int *at) {
    for (int i = 0; i < n; i++) {
        sl_upstream_reason_t w;
        sl_upstream_endpoint_t *ep;
        assert_int_equal(sl_upstream_request_begin(p, &r[i], 0, true, &w), 0);
        assert_int_equal(sl_upstream_request_pick(&r[i], &ep, &w), 0);
        at[i] = ep_index(ep);
    }
}

static void test_p2c_prefers_less_loaded(void **state) {
    sl_upstream_config_t c = base_cfg();
    sl_upstream_pool_t *p = pool_of(&c, 2);
    /* Hold three requests in flight on endpoint 0. P2C itself spreads requests, so open six
     * (three land on each) and finish those on endpoint 1. */
    sl_upstream_request_t held[3], r6[6];
    int h = 0, at[6];
    shape_load(p, r6, 6, at);
    for (int i = 0; i < 6; i++) {
        if (at[i] == 0) {
            held[h++] = r6[i];
        } else {
            sl_upstream_request_attempt_done(&r6[i], SL_RETRY_OUTCOME_OK);
            sl_upstream_request_end(&r6[i]);
        }
    }
    assert_int_equal(h, 3);
    assert_int_equal(info_of(p, 0).in_flight, 3);
    for (int i = 0; i < 500; i++)
        assert_int_equal(one_request(p, SL_RETRY_OUTCOME_OK, NULL), 1);
    for (int i = 0; i < 3; i++)
        sl_upstream_request_end(&held[i]); /* abandoned attempts are released */
    assert_int_equal(info_of(p, 0).in_flight, 0);
    /* Idle: both endpoints get traffic. */
    int hits[2] = {0, 0};
    for (int i = 0; i < 1000; i++)
        hits[one_request(p, SL_RETRY_OUTCOME_OK, NULL)]++;
    assert_true(hits[0] > 350 && hits[1] > 350);
    sl_upstream_pool_free(p);

    /* Five endpoints with loads 0..4: the most loaded one never wins a pair, and the least
     * loaded wins every pair it is in (2 of 5 pairs' slots: 40% of picks). */
    p = pool_of(&c, 5);
    sl_upstream_request_t open30[30], load[10];
    int at30[30], nl = 0, kept[5] = {0};
    shape_load(p, open30, 30, at30);
    for (int i = 0; i < 30; i++) {
        if (kept[at30[i]] < at30[i]) { /* endpoint k keeps k in flight */
            kept[at30[i]]++;
            load[nl++] = open30[i];
        } else {
            sl_upstream_request_end(&open30[i]);
        }
    }
    assert_int_equal(nl, 10);
    int picks[5] = {0};
    for (int i = 0; i < 2000; i++)
        picks[one_request(p, SL_RETRY_OUTCOME_OK, NULL)]++;
    assert_int_equal(picks[4], 0);
    assert_true(picks[0] > 700 && picks[0] < 900);
    assert_true(picks[0] > picks[1] && picks[1] > picks[2] && picks[2] > picks[3]);
    for (int i = 0; i < nl; i++)
        sl_upstream_request_end(&load[i]);
    sl_upstream_pool_free(p);
}

static void test_never_picks_ejected_or_open(void **state) {
    sl_upstream_config_t c = base_cfg();
    c.outlier.max_ejection_percent = 50;
    sl_upstream_pool_t *p = pool_of(&c, 3);
    fail_endpoint(p, 1, 5);
    sl_upstream_endpoint_info_t i1 = info_of(p, 1);
    assert_true(i1.ejected);
    assert_int_equal(i1.ejected_until_ms, fake.now + 30000);
    for (int i = 0; i < 1000; i++)
        assert_int_not_equal(one_request(p, SL_RETRY_OUTCOME_OK, NULL), 1);
    sl_upstream_pool_free(p);

    /* Breakers: outlier ejection off, a small window; endpoint 2's breaker opens. */
    c.outlier.consecutive_failures = 0;
    c.breaker.window_size = 4;
    c.breaker.minimum_calls = 4;
    c.breaker.failure_rate_threshold = 100; /* opens exactly at 4 failures of 4 */
    p = pool_of(&c, 3);
    fail_endpoint(p, 2, 4);
    assert_int_equal(info_of(p, 2).breaker, SL_BREAKER_OPEN);
    for (int i = 0; i < 1000; i++)
        assert_int_not_equal(one_request(p, SL_RETRY_OUTCOME_OK, NULL), 2);
    /* All open: fail fast with the reason. */
    fail_endpoint(p, 0, 4);
    fail_endpoint(p, 1, 4);
    sl_upstream_reason_t why;
    assert_int_equal(one_request(p, SL_RETRY_OUTCOME_OK, &why), -1);
    assert_int_equal(why, SL_UPSTREAM_ALL_OPEN);
    assert_string_equal(sl_upstream_reason_name(why), "all_breakers_open");
    /* After the open wait, half-open trials go through again. */
    advance(c.breaker.wait_in_open_ms);
    assert_true(one_request(p, SL_RETRY_OUTCOME_OK, &why) >= 0);
    sl_upstream_pool_free(p);

    /* All ejected (100% allowed). */
    c = base_cfg();
    c.outlier.max_ejection_percent = 100;
    p = pool_of(&c, 2);
    fail_endpoint(p, 0, 5);
    fail_endpoint(p, 1, 5);
    assert_int_equal(one_request(p, SL_RETRY_OUTCOME_OK, &why), -1);
    assert_int_equal(why, SL_UPSTREAM_ALL_EJECTED);
    sl_upstream_pool_free(p);

    /* No endpoints. */
    p = pool_of(&c, 0);
    assert_int_equal(one_request(p, SL_RETRY_OUTCOME_OK, &why), -1);
    assert_int_equal(why, SL_UPSTREAM_NO_ENDPOINTS);
    sl_upstream_pool_free(p);
}

static void test_ejection_grows_and_decays(void **state) {
    sl_upstream_config_t c = base_cfg();
    c.outlier.max_ejection_ms = 100000;
    sl_upstream_pool_t *p = pool_of(&c, 2); /* 10% of 2 = 0, but always_eject_one */
    uint64_t expect[] = {30000, 60000, 90000, 100000, 100000}; /* base x n, capped */
    for (size_t k = 0; k < SL_ARRAY_LEN(expect); k++) {
        fail_endpoint(p, 0, 4);
        assert_false(info_of(p, 0).ejected); /* 4 consecutive are not enough */
        uint64_t t = fake.now;
        fail_endpoint(p, 0, 1);
        sl_upstream_endpoint_info_t e = info_of(p, 0);
        assert_true(e.ejected);
        assert_int_equal(e.ejections, k + 1);
        assert_int_equal(e.ejected_until_ms - t, expect[k]);
        advance(expect[k] - 1);
        assert_true(info_of(p, 0).ejected);
        advance(1);
        assert_false(info_of(p, 0).ejected);
    }
    /* A success resets the consecutive count. */
    fail_endpoint(p, 0, 4);
    for (int i = 0; i < 100 && info_of(p, 0).consecutive_failures; i++)
        one_request(p, SL_RETRY_OUTCOME_OK, NULL);
    assert_int_equal(info_of(p, 0).consecutive_failures, 0);
    /* Healthy for 3 intervals (10 s each): the multiplier 5 decays to 2, so the next ejection
     * is 3 x 30 s. */
    advance(30000);
    uint64_t t = fake.now;
    fail_endpoint(p, 0, 5);
    assert_int_equal(info_of(p, 0).ejections, 3);
    assert_int_equal(info_of(p, 0).ejected_until_ms - t, 90000);
    sl_upstream_pool_free(p);

    /* Without always_eject_one, 10% of 2 endpoints is none. */
    c.outlier.always_eject_one = false;
    p = pool_of(&c, 2);
    fail_endpoint(p, 0, 20);
    assert_false(info_of(p, 0).ejected);
    sl_upstream_pool_free(p);
}

static void test_max_ejection_percent(void **state) {
    sl_upstream_config_t c = base_cfg();
    c.outlier.max_ejection_percent = 20;
    sl_upstream_pool_t *p = pool_of(&c, 10); /* at most 2 ejected */
    /* Endpoint 2 last, so no success elsewhere resets its count afterwards. */
    int order[] = {0, 1, 3, 4, 2};
    for (int e = 0; e < 5; e++)
        fail_endpoint(p, order[e], 5);
    int ejected = 0;
    for (int e = 0; e < 10; e++)
        ejected += info_of(p, e).ejected;
    assert_int_equal(ejected, 2);
    assert_true(info_of(p, 0).ejected && info_of(p, 1).ejected);
    /* Endpoint 2 keeps failing but stays in: its ejection waits for a free slot, which opens
     * when 0 and 1 come back. */
    advance(30000);
    fail_endpoint(p, 2, 1);
    assert_true(info_of(p, 2).ejected);
    sl_upstream_stats_t s;
    sl_upstream_pool_stats(p, &s);
    assert_int_equal(s.ejections, 3);
    sl_upstream_pool_free(p);
}

static void test_slow_start_ramps(void **state) {
    sl_upstream_config_t c = base_cfg();
    c.slow_start.window_ms = 10000;
    c.slow_start.min_weight_percent = 10;
    sl_upstream_pool_t *p = pool_of(&c, 2);
    assert_true(info_of(p, 0).weight == 1.0); /* the first set starts at full weight */
    fail_endpoint(p, 0, 5);
    advance(30000); /* back from ejection: slow start begins */
    int share[5];
    double w[5];
    for (int step = 0; step < 5; step++) {
        w[step] = info_of(p, 0).weight;
        share[step] = 0;
        for (int i = 0; i < 2000; i++)
            share[step] += one_request(p, SL_RETRY_OUTCOME_OK, NULL) == 0;
        advance(2500);
    }
    assert_true(w[0] == 0.1); /* min_weight_percent */
    assert_true(w[1] == 0.25 && w[2] == 0.5 && w[3] == 0.75);
    assert_true(w[4] == 1.0);
    /* Idle picks split by weight / (in flight + 1): w / (1 + w) of the traffic. */
    for (int step = 0; step < 4; step++) {
        double expect = 2000 * w[step] / (1 + w[step]);
        assert_true(share[step] > expect - 120 && share[step] < expect + 120);
        assert_true(share[step] < share[step + 1]);
    }
    assert_true(share[4] > 850); /* an even split once at full weight (ties go either way) */

    /* An endpoint added to a running pool slow-starts too; a kept one keeps its state. */
    const char *addrs[] = {"10.0.0.0:8001", "10.0.0.7:8001"};
    sl_buf_t err = SL_BUF_INIT;
    fail_endpoint(p, 0, 5);
    assert_int_equal(sl_upstream_pool_set_endpoints(p, addrs, 2, &err), 0);
    assert_true(info_of(p, 0).ejected);
    assert_int_equal(info_of(p, 0).ejections, 1); /* decayed: 12.5 s healthy > 1 interval */
    assert_true(info_of(p, 1).weight == 0.1);
    assert_int_equal(one_request(p, SL_RETRY_OUTCOME_OK, NULL), 7);
    sl_buf_free(&err);
    sl_upstream_pool_free(p);
}

static void test_admission_limits(void **state) {
    sl_upstream_config_t c = base_cfg();
    c.max_pending = 2;
    c.max_concurrent = 1;
    sl_upstream_pool_t *p = pool_of(&c, 2);
    sl_upstream_request_t a, b, x;
    sl_upstream_reason_t w;
    sl_upstream_endpoint_t *ep;
    assert_int_equal(sl_upstream_request_begin(p, &a, 0, true, &w), 0);
    assert_int_equal(sl_upstream_request_begin(p, &b, 0, true, &w), 0);
    assert_int_equal(sl_upstream_request_begin(p, &x, 0, true, &w), SL_ELIMIT);
    assert_int_equal(w, SL_UPSTREAM_PENDING_FULL);
    assert_int_equal(sl_upstream_request_pick(&a, &ep, &w), 0); /* a leaves pending */
    assert_int_equal(sl_upstream_request_pick(&b, &ep, &w), SL_ELIMIT);
    assert_int_equal(w, SL_UPSTREAM_CONCURRENCY_FULL);
    assert_int_equal(sl_upstream_request_begin(p, &x, 0, true, &w), 0);
    sl_upstream_request_attempt_done(&a, SL_RETRY_OUTCOME_OK);
    sl_upstream_request_end(&a);
    assert_int_equal(sl_upstream_request_pick(&b, &ep, &w), 0);
    sl_upstream_request_end(&b);
    sl_upstream_request_end(&x);
    sl_upstream_stats_t s;
    sl_upstream_pool_stats(p, &s);
    assert_int_equal(s.pending, 0);
    assert_int_equal(s.active, 0);
    assert_int_equal(s.rejected_pending, 1);
    assert_int_equal(s.rejected_concurrency, 1);
    sl_upstream_pool_free(p);
}

static void test_retry_loop(void **state) {
    sl_upstream_config_t c = base_cfg();
    c.retry.per_try_timeout_ms = 1000;
    c.retry.timeout_ms = 2500;
    c.retry.max_attempts = 3;
    sl_upstream_pool_t *p = pool_of(&c, 3);
    sl_upstream_request_t r;
    sl_upstream_reason_t w;
    sl_upstream_endpoint_t *ep;
    uint32_t tmo;
    bool seen[3] = {false, false, false};
    assert_int_equal(sl_upstream_request_begin(p, &r, 0, true, &w), 0);
    /* Deadlines shrink: 1000 (per try), 1000, then what is left of 2500. */
    uint32_t expect_tmo[] = {1000, 1000, 400};
    for (int k = 0; k < 3; k++) {
        assert_int_equal(sl_upstream_request_pick(&r, &ep, &w), 0);
        assert_false(seen[ep_index(ep)]); /* every retry goes to an endpoint not yet tried */
        seen[ep_index(ep)] = true;
        assert_int_equal(sl_upstream_request_try_timeout_ms(&r, &tmo), 0);
        assert_int_equal(tmo, expect_tmo[k]);
        advance(k < 2 ? 1000 : 10);
        sl_retry_decision_t d = sl_upstream_request_attempt_done(
            &r, k == 0 ? SL_RETRY_OUTCOME_CONNECT_FAILURE : SL_RETRY_OUTCOME_PER_TRY_TIMEOUT);
        if (k < 2) {
            assert_int_equal(d.verdict, SL_RETRY_YES);
            assert_true(d.backoff_ms <= (k == 0 ? 25u : 50u));
            advance(50); /* slept past the backoff */
        } else {
            assert_int_equal(d.verdict, SL_RETRY_NO_ATTEMPTS);
        }
    }
    sl_upstream_request_end(&r);
    /* A client deadline earlier than the route's wins; a passed one fails the pick. */
    assert_int_equal(sl_upstream_request_begin(p, &r, fake.now + 300, true, &w), 0);
    assert_int_equal(sl_upstream_request_pick(&r, &ep, &w), 0);
    assert_int_equal(sl_upstream_request_try_timeout_ms(&r, &tmo), 0);
    assert_int_equal(tmo, 300);
    advance(290);
    sl_retry_decision_t d = sl_upstream_request_attempt_done(&r, SL_RETRY_OUTCOME_UNAVAILABLE);
    assert_true(d.verdict == SL_RETRY_YES || d.verdict == SL_RETRY_NO_DEADLINE);
    advance(10);
    assert_int_equal(sl_upstream_request_pick(&r, &ep, &w), SL_ETIMEOUT);
    assert_int_equal(w, SL_UPSTREAM_DEADLINE);
    assert_int_equal(sl_upstream_request_try_timeout_ms(&r, &tmo), SL_ETIMEOUT);
    sl_upstream_request_end(&r);
    /* Non-idempotent: UNAVAILABLE is not retried, a connect failure is. */
    assert_int_equal(sl_upstream_request_begin(p, &r, 0, false, &w), 0);
    assert_int_equal(sl_upstream_request_pick(&r, &ep, &w), 0);
    d = sl_upstream_request_attempt_done(&r, SL_RETRY_OUTCOME_UNAVAILABLE);
    assert_int_equal(d.verdict, SL_RETRY_NO_NOT_RETRIABLE);
    sl_upstream_request_end(&r);
    assert_int_equal(sl_upstream_request_begin(p, &r, 0, false, &w), 0);
    assert_int_equal(sl_upstream_request_pick(&r, &ep, &w), 0);
    d = sl_upstream_request_attempt_done(&r, SL_RETRY_OUTCOME_CONNECT_FAILURE);
    assert_int_equal(d.verdict, SL_RETRY_YES);
    sl_upstream_request_end(&r);
    sl_upstream_pool_free(p);
}

static void test_outcome_classes(void **state) {
    struct {
        sl_retry_outcome_t o;
        bool failure, idem, non_idem;
    } t[] = {
        {SL_RETRY_OUTCOME_OK, false, false, false},
        {SL_RETRY_OUTCOME_CONNECT_FAILURE, true, true, true},
        {SL_RETRY_OUTCOME_UNAVAILABLE, true, true, false},
        {SL_RETRY_OUTCOME_RESET_BEFORE_RESPONSE, true, true, false},
        {SL_RETRY_OUTCOME_PER_TRY_TIMEOUT, true, true, false},
        {SL_RETRY_OUTCOME_FAILED_AFTER_RESPONSE, true, false, false},
        {SL_RETRY_OUTCOME_SERVER_ERROR, true, false, false},
        {SL_RETRY_OUTCOME_RATE_LIMITED, false, false, false},
        {SL_RETRY_OUTCOME_CLIENT_ERROR, false, false, false},
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(t); i++) {
        assert_int_equal(sl_retry_outcome_is_failure(t[i].o), t[i].failure);
        assert_int_equal(sl_retry_outcome_is_retriable(t[i].o, true), t[i].idem);
        assert_int_equal(sl_retry_outcome_is_retriable(t[i].o, false), t[i].non_idem);
        assert_string_not_equal(sl_retry_outcome_name(t[i].o), "unknown");
    }
}

static void test_backoff_full_jitter(void **state) {
    sl_retry_policy_t p;
    sl_retry_policy_default(&p);
    assert_int_equal(p.backoff_base_ms, 25);
    assert_int_equal(p.backoff_cap_ms, 250);
    uint64_t ceil_of[] = {25, 50, 100, 200, 250, 250};
    for (uint32_t n = 0; n < 70; n++) {
        uint64_t ceil = ceil_of[SL_MIN(n, 5u)];
        uint64_t max = 0, min = UINT64_MAX;
        for (int i = 0; i < 5000; i++) {
            uint64_t b = sl_retry_backoff_ms(&p, n, fake_rand(&fake));
            max = SL_MAX(max, b);
            min = SL_MIN(min, b);
        }
        assert_true(max <= ceil);
        assert_true(max >= ceil * 9 / 10); /* the whole range is used */
        assert_true(min <= ceil / 10);
        assert_int_equal(sl_retry_backoff_ms(&p, n, UINT64_MAX) <= ceil, 1);
        assert_int_equal(sl_retry_backoff_ms(&p, n, ceil), ceil);
    }
    p.backoff_base_ms = 1000000;
    p.backoff_cap_ms = UINT32_MAX;
    assert_true(sl_retry_backoff_ms(&p, UINT32_MAX, UINT64_MAX) <= UINT32_MAX);
}

static void test_retry_budget_under_storm(void **state) {
    sl_retry_budget_config_t bc;
    sl_retry_budget_config_default(&bc);
    assert_true(bc.ratio == 0.2);
    assert_int_equal(bc.min_retries_per_sec, 3);
    assert_int_equal(bc.window_s, 10);
    sl_retry_budget_t *b = sl_retry_budget_new(&bc);
    /* A failure storm: 500 requests a second for 60 s, every one failing and asking for up to
     * two retries. Track per-second ledgers independently of the budget's own counters. */
    enum { SECS = 60, RPS = 500 };
    static uint64_t req_at[SECS], ret_at[SECS];
    memset(req_at, 0, sizeof req_at);
    memset(ret_at, 0, sizeof ret_at);
    uint64_t t0 = 5000000;
    uint64_t total_req = 0, total_ret = 0;
    for (int s = 0; s < SECS; s++) {
        for (int i = 0; i < RPS; i++) {
            uint64_t now = t0 + (uint64_t)s * 1000 + (uint64_t)i * 1000 / RPS;
            sl_retry_budget_on_request(b, now);
            req_at[s]++;
            for (int k = 0; k < 2; k++)
                if (sl_retry_budget_try_withdraw(b, now)) ret_at[s]++;
        }
        uint64_t rq = 0, rt = 0;
        for (int k = s; k >= 0 && k > s - 10; k--) {
            rq += req_at[k];
            rt += ret_at[k];
        }
        /* Never more than 20% of the window's requests plus the floor (3/s x 10 s). */
        assert_true((double)rt <= 0.2 * (double)rq + 30.0);
        total_req += req_at[s];
        total_ret += ret_at[s];
    }
    /* The budget is used, not just respected: close to 20% overall. */
    double share = (double)total_ret / (double)total_req;
    assert_true(share > 0.19 && share <= 0.2 + 30.0 * 6 / (double)total_req);
    sl_retry_budget_free(b);

    /* Low traffic: the floor still allows retries (3/s over 10 s = 30). */
    b = sl_retry_budget_new(&bc);
    int got = 0;
    for (int i = 0; i < 100; i++)
        got += sl_retry_budget_try_withdraw(b, t0);
    assert_int_equal(got, 30);
    uint64_t rq, rt;
    sl_retry_budget_counts(b, t0, &rq, &rt);
    assert_int_equal(rt, 30);
    /* They expire with the window. */
    assert_true(sl_retry_budget_try_withdraw(b, t0 + 10000));
    sl_retry_budget_free(b);
}

static void test_pool_budget_limits_retries(void **state) {
    sl_upstream_config_t c = base_cfg();
    c.outlier.consecutive_failures = 0;
    c.breaker.window_size = SL_BREAKER_WINDOW_MAX; /* keep the breakers out of this test */
    c.breaker.minimum_calls = SL_BREAKER_WINDOW_MAX;
    c.retry.max_attempts = 5;
    sl_upstream_pool_t *p = pool_of(&c, 4);
    /* Everything fails with UNAVAILABLE; each request retries while the pool allows. */
    for (int i = 0; i < 4000; i++) {
        sl_upstream_request_t r;
        sl_upstream_reason_t w;
        sl_upstream_endpoint_t *ep;
        assert_int_equal(sl_upstream_request_begin(p, &r, 0, true, &w), 0);
        for (;;) {
            if (sl_upstream_request_pick(&r, &ep, &w) != 0) break;
            sl_retry_decision_t d =
                sl_upstream_request_attempt_done(&r, SL_RETRY_OUTCOME_UNAVAILABLE);
            if (d.verdict != SL_RETRY_YES) break;
        }
        sl_upstream_request_end(&r);
        advance(2); /* 500 requests a second */
    }
    sl_upstream_stats_t s;
    sl_upstream_pool_stats(p, &s);
    /* 8 s of traffic, inside one 10 s window: 20% of the requests plus the floor of 30. */
    assert_int_equal(s.requests, 4000);
    assert_true(s.retries <= 4000 * 0.2 + 30);
    assert_true(s.retries >= 4000 * 0.19);
    assert_true(s.budget_exhausted > 0);
    assert_int_equal(s.pending, 0);
    assert_int_equal(s.active, 0);
    sl_upstream_pool_free(p);
}

typedef struct {
    sl_upstream_pool_t *p;
    int n;
    int ok;
} worker_t;

static void *worker(void *arg) {
    worker_t *wk = arg;
    for (int i = 0; i < wk->n; i++) {
        sl_upstream_request_t r;
        sl_upstream_reason_t w;
        sl_upstream_endpoint_t *ep;
        if (sl_upstream_request_begin(wk->p, &r, 0, true, &w) != 0) continue;
        for (;;) {
            if (sl_upstream_request_pick(&r, &ep, &w) != 0) break;
            sl_retry_outcome_t o =
                fake_rand(&fake) % 10 == 0 ? SL_RETRY_OUTCOME_CONNECT_FAILURE : SL_RETRY_OUTCOME_OK;
            if (i % 13 == 0) break; /* abandoned in flight: end releases it */
            sl_retry_decision_t d = sl_upstream_request_attempt_done(&r, o);
            if (o == SL_RETRY_OUTCOME_OK) wk->ok++;
            if (d.verdict != SL_RETRY_YES) break;
        }
        sl_upstream_request_end(&r);
        if (i % 64 == 0) advance(1);
    }
    return NULL;
}

static void test_concurrent_with_set_swaps(void **state) {
    sl_upstream_config_t c = base_cfg();
    c.slow_start.window_ms = 1000;
    sl_upstream_pool_t *p = pool_of(&c, 4);
    worker_t wk[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        wk[i] = (worker_t){p, 20000, 0};
        assert_int_equal(pthread_create(&th[i], NULL, worker, &wk[i]), 0);
    }
    /* The re-resolver swaps sets underneath (kept, added and removed endpoints). */
    const char *sets[3][3] = {{"10.0.0.0:8001", "10.0.0.1:8001", "10.0.0.5:8001"},
                              {"10.0.0.5:8001", "10.0.0.6:8001", "10.0.0.2:8001"},
                              {"10.0.0.0:8001", "10.0.0.1:8001", "10.0.0.2:8001"}};
    sl_buf_t err = SL_BUF_INIT;
    for (int i = 0; i < 300; i++)
        assert_int_equal(sl_upstream_pool_set_endpoints(p, sets[i % 3], 3, &err), 0);
    int ok = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        ok += wk[i].ok;
    }
    assert_true(ok > 40000);
    sl_upstream_stats_t s;
    sl_upstream_pool_stats(p, &s);
    assert_int_equal(s.pending, 0);
    assert_int_equal(s.active, 0);
    sl_upstream_endpoint_info_t inf[3];
    assert_int_equal(sl_upstream_pool_endpoints(p, inf, 3), 3);
    for (int i = 0; i < 3; i++)
        assert_int_equal(inf[i].in_flight, 0);
    sl_buf_free(&err);
    sl_upstream_pool_free(p);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_and_addresses),
        cmocka_unit_test(test_p2c_prefers_less_loaded),
        cmocka_unit_test(test_never_picks_ejected_or_open),
        cmocka_unit_test(test_ejection_grows_and_decays),
        cmocka_unit_test(test_max_ejection_percent),
        cmocka_unit_test(test_slow_start_ramps),
        cmocka_unit_test(test_admission_limits),
        cmocka_unit_test(test_retry_loop),
        cmocka_unit_test(test_outcome_classes),
        cmocka_unit_test(test_backoff_full_jitter),
        cmocka_unit_test(test_retry_budget_under_storm),
        cmocka_unit_test(test_pool_budget_limits_retries),
        cmocka_unit_test(test_concurrent_with_set_swaps),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
