/* Unit tests for gateway/ratelimit: exact token-bucket counts over a simulated time axis,
 * Retry-After, the daily quota across the day boundary, peak hours, exactness under 8 threads,
 * separate buckets per key and class, the bounded table, header values and config errors. A
 * test clock moves wall and monotonic time together. */
#include "core/buf.h"
#include "core/common.h"
#include "core/log.h"
#include "gateway/ratelimit.h"

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "rl_test_clock.h"

static bool check(sl_ratelimiter_t *rl, const char *key, const char *cls, const char *tier,
                  sl_rl_result_t *res) {
    sl_rl_result_t tmp;
    if (!res) res = &tmp;
    sl_rl_request_t req = {.key_id = key, .route_class = cls, .tier = tier};
    assert_int_equal(sl_rl_check(rl, &req, res), 0);
    if (!res->allowed) assert_true(res->retry_after_s >= 1);
    return res->allowed;
}

static int count_pass(sl_ratelimiter_t *rl, const char *key, const char *cls, int tries) {
    int n = 0;
    for (int i = 0; i < tries; i++)
        n += check(rl, key, cls, NULL, NULL);
    return n;
}

static void test_bucket_time_axis(void **state) {
    static const sl_rl_class_t cls[] = {{.name = "predict", .rate = 10, .burst = 5}};
    test_clock_t clk;
    sl_rl_config_t cfg = base_cfg(&clk, cls, 1);
    sl_ratelimiter_t rl;
    assert_int_equal(sl_rl_local_new(&cfg, &rl, NULL), 0);
    sl_rl_result_t r;

    assert_int_equal(count_pass(&rl, "k", "predict", 5), 5); /* t=0: the full burst */
    assert_false(check(&rl, "k", "predict", NULL, &r));
    assert_int_equal(r.retry_after_s, 1); /* 0.1 s to the next token, rounded up */
    assert_int_equal(r.policies[0].remaining, 0);

    advance_ms(&clk, 250); /* 2.5 tokens */
    assert_int_equal(count_pass(&rl, "k", "predict", 10), 2);
    advance_ms(&clk, 50); /* 0.5 + 0.5 = 1 token exactly */
    assert_int_equal(count_pass(&rl, "k", "predict", 10), 1);
    advance_ms(&clk, 99); /* 0.99 tokens: not enough */
    assert_int_equal(count_pass(&rl, "k", "predict", 10), 0);
    advance_ms(&clk, 1);
    assert_int_equal(count_pass(&rl, "k", "predict", 10), 1);
    advance_ms(&clk, 60000); /* refill stops at the burst */
    assert_int_equal(count_pass(&rl, "k", "predict", 100), 5);

    /* 100 s at 10/s with a request every 100 ms: every one passes, none is lost. */
    int n = 0;
    for (int i = 0; i < 1000; i++) {
        advance_ms(&clk, 100);
        n += check(&rl, "k", "predict", NULL, NULL);
    }
    assert_int_equal(n, 1000);
    sl_rl_free(&rl);
}

static void test_retry_after(void **state) {
    static const sl_rl_class_t cls[] = {{.name = "slow", .rate = 0.1, .burst = 1},
                                        {.name = "never", .rate = 0, .burst = 2}};
    test_clock_t clk;
    sl_rl_config_t cfg = base_cfg(&clk, cls, 2);
    sl_ratelimiter_t rl;
    assert_int_equal(sl_rl_local_new(&cfg, &rl, NULL), 0);
    sl_rl_result_t r;

    assert_true(check(&rl, "k", "slow", NULL, &r));
    assert_int_equal(r.retry_after_s, 0);
    assert_false(check(&rl, "k", "slow", NULL, &r));
    assert_int_equal(r.retry_after_s, 10);
    advance_ms(&clk, 3000);
    assert_false(check(&rl, "k", "slow", NULL, &r));
    assert_int_equal(r.retry_after_s, 7);
    advance_ms(&clk, 6500);
    assert_false(check(&rl, "k", "slow", NULL, &r));
    assert_int_equal(r.retry_after_s, 1); /* 0.5 s rounds up to 1 */
    /* Waiting exactly Retry-After seconds is always enough. */
    advance_ms(&clk, 1000);
    assert_true(check(&rl, "k", "slow", NULL, &r));

    /* Rate 0: the burst and then nothing; Retry-After is capped, the reset is unknown. */
    assert_int_equal(count_pass(&rl, "k", "never", 5), 2);
    assert_false(check(&rl, "k", "never", NULL, &r));
    assert_int_equal(r.retry_after_s, SL_RL_RETRY_MAX_S);
    assert_int_equal(r.policies[0].reset_s, SL_RL_NEVER);
    assert_int_equal(r.policies[0].window_s, SL_RL_NEVER);
    advance_ms(&clk, 3600 * 1000);
    assert_false(check(&rl, "k", "never", NULL, NULL));
    sl_rl_free(&rl);
}

static void test_daily_quota_day_boundary(void **state) {
    static const sl_rl_class_t cls[] = {
        {.name = "predict", .rate = 1000, .burst = 1000, .counts_quota = true},
        {.name = "meta", .rate = 1000, .burst = 1000}};
    static const sl_rl_tier_t tiers[] = {{"standard", 3}};
    test_clock_t clk;
    sl_rl_config_t cfg = base_cfg(&clk, cls, 2);
    cfg.tiers = tiers;
    cfg.n_tiers = 1;
    sl_ratelimiter_t rl;
    assert_int_equal(sl_rl_local_new(&cfg, &rl, NULL), 0);
    sl_rl_result_t r;

    set_wall_s(&clk, 24 * HOUR - 10); /* 23:59:50 UTC */
    for (int i = 0; i < 3; i++)
        assert_true(check(&rl, "k", "predict", "standard", &r));
    assert_int_equal(r.policies[1].remaining, 0);
    assert_false(check(&rl, "k", "predict", "standard", &r));
    assert_int_equal(r.retry_after_s, 10);
    assert_int_equal(r.tightest, 1);
    assert_string_equal(r.policies[1].name, "daily");
    assert_int_equal(r.policies[1].reset_s, 10);
    /* Classes that do not count predictions still pass. */
    assert_true(check(&rl, "k", "meta", "standard", NULL));
    /* Another key of the same tenant shares the quota through quota_id. */
    sl_rl_request_t req = {
        .key_id = "k2", .quota_id = "k", .route_class = "predict", .tier = "standard"};
    assert_int_equal(sl_rl_check(&rl, &req, &r), 0);
    assert_false(r.allowed);

    set_wall_s(&clk, 24 * HOUR - 1); /* 23:59:59: still today */
    assert_false(check(&rl, "k", "predict", "standard", &r));
    assert_int_equal(r.retry_after_s, 1);
    set_wall_s(&clk, 24 * HOUR); /* midnight UTC: a new day */
    for (int i = 0; i < 3; i++)
        assert_true(check(&rl, "k", "predict", "standard", &r));
    assert_int_equal(r.policies[1].reset_s, 86400);
    assert_false(check(&rl, "k", "predict", "standard", &r));
    sl_rl_free(&rl);

    /* With UTC+02:00 the day ends at 22:00 UTC. */
    cfg.utc_offset_s = 2 * 3600;
    assert_int_equal(sl_rl_local_new(&cfg, &rl, NULL), 0);
    set_wall_s(&clk, 46 * HOUR - 5); /* 21:59:55 UTC on day 1 */
    for (int i = 0; i < 3; i++)
        assert_true(check(&rl, "k", "predict", "standard", &r));
    assert_false(check(&rl, "k", "predict", "standard", &r));
    assert_int_equal(r.retry_after_s, 5);
    set_wall_s(&clk, 46 * HOUR);
    assert_true(check(&rl, "k", "predict", "standard", &r));
    sl_rl_free(&rl);
}

static void test_peak_hours(void **state) {
    static const sl_rl_class_t cls[] = {
        {.name = "predict", .rate = 1, .burst = 10, .peak_rate = 1, .peak_burst = 2},
        {.name = "meta", .rate = 1, .burst = 10}};
    test_clock_t clk;
    sl_rl_config_t cfg = base_cfg(&clk, cls, 2);
    cfg.peak_start_s = 9 * 3600;
    cfg.peak_end_s = 17 * 3600;
    sl_ratelimiter_t rl;
    assert_int_equal(sl_rl_local_new(&cfg, &rl, NULL), 0);
    sl_rl_result_t r;

    set_wall_s(&clk, 24 * HOUR + 8 * HOUR); /* 08:00, before the window */
    assert_int_equal(count_pass(&rl, "k", "predict", 20), 10);
    set_wall_s(&clk, 24 * HOUR + 9 * HOUR); /* 09:00: full again, but the peak burst is 2 */
    assert_int_equal(count_pass(&rl, "k", "predict", 20), 2);
    assert_false(check(&rl, "k", "predict", NULL, &r));
    assert_int_equal(r.policies[0].quota, 2);
    assert_int_equal(r.policies[0].window_s, 2);
    assert_int_equal(count_pass(&rl, "k", "meta", 20), 10); /* no peak limit on this class */
    set_wall_s(&clk, 24 * HOUR + 17 * HOUR - 1);            /* 16:59:59: still peak */
    assert_int_equal(count_pass(&rl, "k", "predict", 20), 2);
    set_wall_s(&clk, 24 * HOUR + 17 * HOUR + 10); /* 17:00:10: off-peak, 10 s of refill */
    assert_int_equal(count_pass(&rl, "k", "predict", 20), 10);
    sl_rl_free(&rl);

    /* A window across midnight, 22:00-06:00. */
    cfg.peak_start_s = 22 * 3600;
    cfg.peak_end_s = 6 * 3600;
    assert_int_equal(sl_rl_local_new(&cfg, &rl, NULL), 0);
    set_wall_s(&clk, 3 * 24 * HOUR + 12 * HOUR); /* noon: off-peak */
    assert_int_equal(count_pass(&rl, "a", "predict", 20), 10);
    set_wall_s(&clk, 3 * 24 * HOUR + 23 * HOUR);
    assert_int_equal(count_pass(&rl, "b", "predict", 20), 2);
    set_wall_s(&clk, 4 * 24 * HOUR + 5 * HOUR + 3599);
    assert_int_equal(count_pass(&rl, "c", "predict", 20), 2);
    set_wall_s(&clk, 4 * 24 * HOUR + 6 * HOUR);
    assert_int_equal(count_pass(&rl, "d", "predict", 20), 10);
    sl_rl_free(&rl);
}

typedef struct hammer {
    sl_ratelimiter_t *rl;
    pthread_barrier_t *barrier;
    int idx;
    int tries;
    bool share_quota;
    int allowed;
} hammer_t;

static void *hammer_main(void *arg) {
    hammer_t *h = arg;
    char key[16];
    snprintf(key, sizeof key, "key-%d", h->idx % 4);
    sl_rl_request_t req = {.key_id = h->share_quota ? key : "one",
                           .quota_id = h->share_quota ? "tenant" : NULL,
                           .route_class = "predict",
                           .tier = h->share_quota ? "standard" : NULL};
    pthread_barrier_wait(h->barrier);
    for (int i = 0; i < h->tries; i++) {
        sl_rl_result_t r;
        if (sl_rl_check(h->rl, &req, &r) == 0 && r.allowed) h->allowed++;
    }
    return NULL;
}

static int run_hammer(sl_ratelimiter_t *rl, bool share_quota, int tries) {
    enum { N = 8 };
    pthread_t th[N];
    hammer_t h[N];
    pthread_barrier_t barrier;
    pthread_barrier_init(&barrier, NULL, N);
    for (int i = 0; i < N; i++) {
        h[i] = (hammer_t){rl, &barrier, i, tries, share_quota, 0};
        assert_int_equal(pthread_create(&th[i], NULL, hammer_main, &h[i]), 0);
    }
    int total = 0;
    for (int i = 0; i < N; i++) {
        pthread_join(th[i], NULL);
        total += h[i].allowed;
    }
    pthread_barrier_destroy(&barrier);
    return total;
}

static void test_threads_exact(void **state) {
    static const sl_rl_class_t cls[] = {
        {.name = "predict", .rate = 0, .burst = 1000, .counts_quota = true}};
    static const sl_rl_tier_t tiers[] = {{"standard", 777}};
    test_clock_t clk;
    sl_rl_config_t cfg = base_cfg(&clk, cls, 1);
    cfg.tiers = tiers;
    cfg.n_tiers = 1;
    sl_ratelimiter_t rl;
    assert_int_equal(sl_rl_local_new(&cfg, &rl, NULL), 0);
    /* One key, rate 0: exactly the burst passes. */
    assert_int_equal(run_hammer(&rl, false, 20000), 1000);
    sl_rl_stats_t st;
    sl_rl_stats(&rl, &st);
    assert_int_equal(st.allowed, 1000);
    assert_int_equal(st.denied, 8 * 20000 - 1000);
    /* Four keys of one tenant (buckets and quota in different shards): exactly the quota. */
    assert_int_equal(run_hammer(&rl, true, 5000), 777);
    sl_rl_free(&rl);
}

static void test_separate_buckets(void **state) {
    static const sl_rl_class_t cls[] = {{.name = "predict", .rate = 0, .burst = 3},
                                        {.name = "oip", .rate = 0, .burst = 2}};
    test_clock_t clk;
    sl_rl_config_t cfg = base_cfg(&clk, cls, 2);
    sl_ratelimiter_t rl;
    assert_int_equal(sl_rl_local_new(&cfg, &rl, NULL), 0);
    assert_int_equal(count_pass(&rl, "alice", "predict", 10), 3);
    assert_int_equal(count_pass(&rl, "bob", "predict", 10), 3);
    assert_int_equal(count_pass(&rl, "alice", "oip", 10), 2);
    assert_int_equal(count_pass(&rl, "alice", "predict", 10), 0);
    /* Ids are compared as bytes: a prefix is another key. */
    assert_int_equal(count_pass(&rl, "alic", "predict", 10), 3);
    sl_rl_stats_t st;
    sl_rl_stats(&rl, &st);
    assert_int_equal(st.entries, 4);
    sl_rl_free(&rl);
}

static void test_table_bounded(void **state) {
    static const sl_rl_class_t cls[] = {{.name = "predict", .rate = 1, .burst = 2},
                                        {.name = "zero", .rate = 0, .burst = 2}};
    test_clock_t clk;
    sl_rl_config_t cfg = base_cfg(&clk, cls, 2);
    cfg.max_buckets = 64;
    cfg.idle_ttl_ms = 1000;
    sl_log_level_set(SL_LOG_ERROR); /* the lossy evictions below each log a warning */
    sl_ratelimiter_t rl;
    assert_int_equal(sl_rl_local_new(&cfg, &rl, NULL), 0);
    char key[32];
    sl_rl_stats_t st;
    for (int i = 0; i < 1000; i++) {
        snprintf(key, sizeof key, "key-%d", i);
        assert_true(check(&rl, key, "predict", NULL, NULL));
        sl_rl_stats(&rl, &st);
        assert_true(st.entries <= 64);
    }
    assert_true(st.evicted >= 1000 - 64);
    /* Each bucket was used once and is not yet full again: the evictions were lossy. */
    assert_int_equal(st.evicted, st.evicted_active);

    /* After idling past the TTL the refilled buckets go; a rate-0 bucket keeps its state. */
    assert_true(check(&rl, "stuck", "zero", NULL, NULL));
    advance_ms(&clk, 5000);
    sl_rl_sweep(&rl);
    sl_rl_stats(&rl, &st);
    assert_int_equal(st.entries, 1);
    assert_true(st.expired >= 1);
    assert_int_equal(count_pass(&rl, "stuck", "zero", 5), 1);
    sl_rl_free(&rl);
    sl_log_level_set(SL_LOG_INFO);
}

static void test_headers(void **state) {
    static const sl_rl_class_t cls[] = {
        {.name = "predict", .rate = 10, .burst = 5, .counts_quota = true},
        {.name = "oip", .rate = 100, .burst = 100}};
    test_clock_t clk;
    sl_rl_config_t cfg = base_cfg(&clk, cls, 2);
    sl_ratelimiter_t rl;
    assert_int_equal(sl_rl_local_new(&cfg, &rl, NULL), 0);
    sl_rl_result_t r;
    sl_rl_headers_t h;

    assert_true(check(&rl, "k", "predict", "standard", &r));
    assert_int_equal(sl_rl_format_headers(&r, &h), 0);
    assert_string_equal(h.policy, "\"predict\";q=5;w=1, \"daily\";q=1000;w=86400");
    assert_string_equal(h.ratelimit, "\"predict\";r=4;t=1");
    assert_string_equal(h.retry_after, "");

    assert_int_equal(count_pass(&rl, "k", "predict", 10), 4);
    assert_false(check(&rl, "k", "predict", "standard", &r));
    assert_int_equal(sl_rl_format_headers(&r, &h), 0);
    assert_string_equal(h.ratelimit, "\"predict\";r=0;t=1");
    assert_string_equal(h.retry_after, "1");

    assert_true(check(&rl, "k", "oip", "standard", &r)); /* oip spends no quota */
    assert_int_equal(sl_rl_format_headers(&r, &h), 0);
    assert_string_equal(h.policy, "\"oip\";q=100;w=1");
    assert_string_equal(h.ratelimit, "\"oip\";r=99;t=1");

    /* The formatter refuses results it cannot render safely. */
    sl_rl_result_t bad = r;
    bad.tightest = 1;
    assert_int_equal(sl_rl_format_headers(&bad, &h), SL_EINVAL);
    bad = r;
    bad.policies[0].name = "a\"b";
    assert_int_equal(sl_rl_format_headers(&bad, &h), SL_EINVAL);
    assert_string_equal(h.policy, "");
    sl_rl_free(&rl);
}

static void expect_cfg_error(const sl_rl_config_t *cfg, int code, const char *needle) {
    sl_buf_t err = SL_BUF_INIT;
    sl_ratelimiter_t rl;
    assert_int_equal(sl_rl_local_new(cfg, &rl, &err), code);
    assert_non_null(err.data);
    if (!strstr(err.data, needle)) fail_msg("message '%s' lacks '%s'", err.data, needle);
    assert_null(rl.ctx);
    sl_buf_free(&err);
}

static void test_bad_config_and_requests(void **state) {
    test_clock_t clk;
    sl_rl_class_t cls[1] = {{.name = "predict", .rate = 1, .burst = 1}};
    sl_rl_config_t cfg = base_cfg(&clk, cls, 1);
    cls[0].burst = 0;
    expect_cfg_error(&cfg, SL_ERANGE, "burst");
    cls[0] = (sl_rl_class_t){.name = "predict", .rate = -1, .burst = 1};
    expect_cfg_error(&cfg, SL_ERANGE, "rate");
    cls[0].rate = 0.0 / 0.0;
    expect_cfg_error(&cfg, SL_ERANGE, "rate");
    cls[0] = (sl_rl_class_t){.name = "bad name", .rate = 1, .burst = 1};
    expect_cfg_error(&cfg, SL_EINVAL, "classes[0]: name");
    cls[0] = (sl_rl_class_t){.name = "daily", .rate = 1, .burst = 1};
    expect_cfg_error(&cfg, SL_EINVAL, "daily");
    cls[0] = (sl_rl_class_t){.name = "p", .rate = 1, .burst = 1, .peak_burst = 2000000};
    expect_cfg_error(&cfg, SL_ERANGE, "peak_burst");
    cls[0] = (sl_rl_class_t){.name = "p", .rate = 1, .burst = 1};
    cfg.max_buckets = 1;
    expect_cfg_error(&cfg, SL_ERANGE, "max_buckets");
    cfg.max_buckets = 0;
    cfg.utc_offset_s = 15 * 3600;
    expect_cfg_error(&cfg, SL_ERANGE, "utc_offset_s");
    cfg.utc_offset_s = 0;
    cfg.peak_end_s = 86400;
    expect_cfg_error(&cfg, SL_ERANGE, "peak");
    cfg.peak_end_s = 0;
    cfg.n_classes = 0;
    expect_cfg_error(&cfg, SL_EINVAL, "classes");
    cfg.n_classes = 1;

    sl_ratelimiter_t rl;
    assert_int_equal(sl_rl_local_new(&cfg, &rl, NULL), 0);
    sl_rl_result_t r;
    char longid[SL_RL_ID_MAX + 2];
    memset(longid, 'x', sizeof longid - 1);
    longid[sizeof longid - 1] = '\0';
    sl_rl_request_t req = {.key_id = "k", .route_class = "nope"};
    assert_int_equal(sl_rl_check(&rl, &req, &r), SL_ENOENT);
    req = (sl_rl_request_t){.key_id = "k", .route_class = "p", .tier = "gold"};
    assert_int_equal(sl_rl_check(&rl, &req, &r), SL_ENOENT);
    req = (sl_rl_request_t){.key_id = "", .route_class = "p"};
    assert_int_equal(sl_rl_check(&rl, &req, &r), SL_EINVAL);
    req = (sl_rl_request_t){.key_id = longid, .route_class = "p"};
    assert_int_equal(sl_rl_check(&rl, &req, &r), SL_EINVAL);
    longid[SL_RL_ID_MAX] = '\0'; /* exactly the maximum is fine */
    assert_int_equal(sl_rl_check(&rl, &req, &r), 0);
    req = (sl_rl_request_t){.key_id = "k", .route_class = "p", .cost = 2};
    assert_int_equal(sl_rl_check(&rl, &req, &r), SL_ERANGE);
    sl_rl_free(&rl);
    sl_rl_free(&rl); /* idempotent */
}

/* Not a pass/fail test: prints the cost of a local check on the real clock. */
static void test_check_cost(void **state) {
    static const sl_rl_class_t cls[] = {
        {.name = "predict", .rate = 1e6, .burst = 1000000, .counts_quota = true}};
    static const sl_rl_tier_t tiers[] = {{"enterprise", 1000000000}};
    sl_rl_config_t cfg = {.classes = cls, .n_classes = 1, .tiers = tiers, .n_tiers = 1};
    sl_ratelimiter_t rl;
    assert_int_equal(sl_rl_local_new(&cfg, &rl, NULL), 0);
    char keys[1000][24];
    for (int i = 0; i < 1000; i++)
        snprintf(keys[i], sizeof keys[i], "sk_live_%08d", i);
    enum { N = 1000000 };
    int allowed = 0;
    uint64_t t0 = sl_now_ns();
    for (int i = 0; i < N; i++) {
        sl_rl_request_t req = {
            .key_id = keys[i % 1000], .route_class = "predict", .tier = "enterprise"};
        sl_rl_result_t r;
        if (sl_rl_check(&rl, &req, &r) == 0 && r.allowed) allowed++;
    }
    uint64_t dt = sl_now_ns() - t0;
    printf("ratelimit: local check (bucket + daily quota, 1000 keys): %.1f ns/check\n",
           (double)dt / N);
    assert_int_equal(allowed, N);
    sl_rl_free(&rl);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bucket_time_axis),
        cmocka_unit_test(test_retry_after),
        cmocka_unit_test(test_daily_quota_day_boundary),
        cmocka_unit_test(test_peak_hours),
        cmocka_unit_test(test_threads_exact),
        cmocka_unit_test(test_separate_buckets),
        cmocka_unit_test(test_table_bounded),
        cmocka_unit_test(test_headers),
        cmocka_unit_test(test_bad_config_and_requests),
        cmocka_unit_test(test_check_cost),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
