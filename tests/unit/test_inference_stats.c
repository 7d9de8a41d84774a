/* Unit tests for per-version inference statistics: the exact counters of the statistics
 * extension, the Prometheus series they feed (names, labels, base units, buckets), separate
 * series per version, exact counts under concurrent updates, and bounded cardinality. */
#include "core/buf.h"
#include "core/common.h"
#include "core/metrics.h"
#include "inference/stats.h"

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static char *render(void) {
    sl_buf_t b = SL_BUF_INIT;
    sl_metrics_render(sl_metrics_default(), &b);
    return b.data; /* owned by the caller */
}

static void expect_line(const char *text, const char *line) {
    char want[512];
    snprintf(want, sizeof want, "\n%s\n", line);
    if (!strstr(text, want)) fail_msg("missing metrics line: %s", line);
}

static void test_counters_and_snapshot(void **state) {
    uint64_t before_ms = sl_wall_time_ns() / 1000000u;
    sl_model_stats_t *s = sl_model_stats_new("digits", "1.2.0", 8);
    sl_model_stats_request(s, true, 3000000);  /* 3 ms */
    sl_model_stats_request(s, true, 1000000);  /* 1 ms */
    sl_model_stats_request(s, false, 2000000); /* 2 ms */
    sl_model_stats_queued(s, 500000);
    sl_model_stats_queued(s, 700000);
    sl_model_stats_execution(s, 5, 2, 4000000); /* 5 items in 2 requests, 4 ms */
    sl_model_stats_execution(s, 8, 1, 1000000);
    sl_model_stats_execution(s, 5, 3, 2000000);
    sl_model_stats_cache(s, true, 100);
    sl_model_stats_cache(s, false, 300);
    sl_model_stats_cache(s, false, 200);
    sl_model_stats_queue_add(s, 1);
    sl_model_stats_queue_add(s, 1);
    sl_model_stats_queue_add(s, 1);
    sl_model_stats_queue_add(s, -1);

    sl_model_stats_snapshot_t snap;
    sl_model_stats_snapshot(s, &snap);
    assert_int_equal(snap.success_count, 2);
    assert_int_equal(snap.success_ns, 4000000);
    assert_int_equal(snap.fail_count, 1);
    assert_int_equal(snap.fail_ns, 2000000);
    assert_int_equal(snap.queue_count, 2);
    assert_int_equal(snap.queue_ns, 1200000);
    assert_int_equal(snap.execution_count, 3);
    assert_int_equal(snap.inference_count, 18);
    /* Compute time per request: each request of a batch spent the whole execution. */
    assert_int_equal(snap.compute_count, 6);
    assert_int_equal(snap.compute_ns, 2 * 4000000 + 1000000 + 3 * 2000000);
    assert_int_equal(snap.cache_hit_count, 1);
    assert_int_equal(snap.cache_hit_ns, 100);
    assert_int_equal(snap.cache_miss_count, 2);
    assert_int_equal(snap.cache_miss_ns, 500);
    assert_int_equal(snap.max_batch, 8);
    assert_int_equal(snap.executions_by_size[5], 2);
    assert_int_equal(snap.compute_ns_by_size[5], 6000000);
    assert_int_equal(snap.executions_by_size[8], 1);
    assert_int_equal(snap.executions_by_size[1], 0);
    assert_true(snap.last_inference_ms >= before_ms);
    assert_true(snap.last_inference_ms <= sl_wall_time_ns() / 1000000u);
    sl_model_stats_snapshot_free(&snap);

    char *text = render();
    expect_line(text, "# TYPE sluice_inference_requests_total counter");
    expect_line(text,
                "sluice_inference_requests_total{model=\"digits\",version=\"1.2.0\",outcome=\""
                "success\"} 2");
    expect_line(text,
                "sluice_inference_requests_total{model=\"digits\",version=\"1.2.0\",outcome=\""
                "failure\"} 1");
    expect_line(text, "sluice_inference_count_total{model=\"digits\",version=\"1.2.0\"} 18");
    expect_line(text, "sluice_inference_executions_total{model=\"digits\",version=\"1.2.0\"} 3");
    expect_line(
        text, "sluice_inference_cache_total{model=\"digits\",version=\"1.2.0\",result=\"hit\"} 1");
    expect_line(
        text, "sluice_inference_cache_total{model=\"digits\",version=\"1.2.0\",result=\"miss\"} 2");
    expect_line(text, "# TYPE sluice_inference_queue_depth gauge");
    expect_line(text, "sluice_inference_queue_depth{model=\"digits\",version=\"1.2.0\"} 2");
    /* Histograms in seconds: 3 requests, 1+2+3 ms. */
    expect_line(text, "# TYPE sluice_inference_request_seconds histogram");
    expect_line(text,
                "sluice_inference_request_seconds_count{model=\"digits\",version=\"1.2.0\"} 3");
    expect_line(text,
                "sluice_inference_request_seconds_sum{model=\"digits\",version=\"1.2.0\"} 0.006");
    expect_line(text, "sluice_inference_queue_seconds_count{model=\"digits\",version=\"1.2.0\"} 2");
    expect_line(text,
                "sluice_inference_compute_seconds_count{model=\"digits\",version=\"1.2.0\"} 6");
    /* Batch sizes 5, 8, 5 in buckets 1, 2, 4, 8, ...: none <= 4, all three <= 8. */
    expect_line(
        text, "sluice_inference_batch_size_bucket{model=\"digits\",version=\"1.2.0\",le=\"4\"} 0");
    expect_line(
        text, "sluice_inference_batch_size_bucket{model=\"digits\",version=\"1.2.0\",le=\"8\"} 3");
    expect_line(text, "sluice_inference_batch_size_sum{model=\"digits\",version=\"1.2.0\"} 18");
    free(text);
    sl_model_stats_free(s);
}

static void test_versions_have_their_own_series(void **state) {
    sl_model_stats_t *a = sl_model_stats_new("fraud", "1.0.0", 4);
    sl_model_stats_t *b = sl_model_stats_new("fraud", "2.0.0", 4);
    sl_model_stats_request(a, true, 1000);
    sl_model_stats_request(b, true, 1000);
    sl_model_stats_request(b, true, 1000);
    char *text = render();
    expect_line(text, "sluice_inference_requests_total{model=\"fraud\",version=\"1.0.0\",outcome=\""
                      "success\"} 1");
    expect_line(text, "sluice_inference_requests_total{model=\"fraud\",version=\"2.0.0\",outcome=\""
                      "success\"} 2");
    free(text);
    /* A version loaded again continues its Prometheus counters (they never go down), while its
     * statistics-extension counters start afresh with the new load. */
    sl_model_stats_free(a);
    a = sl_model_stats_new("fraud", "1.0.0", 4);
    sl_model_stats_request(a, true, 1000);
    sl_model_stats_snapshot_t snap;
    sl_model_stats_snapshot(a, &snap);
    assert_int_equal(snap.success_count, 1);
    sl_model_stats_snapshot_free(&snap);
    text = render();
    expect_line(text, "sluice_inference_requests_total{model=\"fraud\",version=\"1.0.0\",outcome=\""
                      "success\"} 2");
    free(text);
    sl_model_stats_free(a);
    sl_model_stats_free(b);
}

static void test_batch_sizes_out_of_range(void **state) {
    /* A non-batching model executes batches of 1; sizes beyond max_batch are counted but not
     * tracked per size. */
    sl_model_stats_t *s = sl_model_stats_new("nobatch", "1", 0);
    sl_model_stats_execution(s, 1, 1, 10);
    sl_model_stats_execution(s, 3, 1, 10);
    sl_model_stats_snapshot_t snap;
    sl_model_stats_snapshot(s, &snap);
    assert_int_equal(snap.max_batch, 1);
    assert_int_equal(snap.executions_by_size[1], 1);
    assert_int_equal(snap.execution_count, 2);
    assert_int_equal(snap.inference_count, 4);
    sl_model_stats_snapshot_free(&snap);
    sl_model_stats_snapshot_free(&snap); /* idempotent */
    sl_model_stats_free(s);
    sl_model_stats_free(NULL);
}

enum { N_THREADS = 8, PER_THREAD = 20000 };

static void *hammer(void *arg) {
    sl_model_stats_t *s = arg;
    for (int i = 0; i < PER_THREAD; i++) {
        sl_model_stats_request(s, i % 4 != 0, 10);
        sl_model_stats_queued(s, 1);
        sl_model_stats_execution(s, 2, 1, 5);
        sl_model_stats_queue_add(s, 1);
        sl_model_stats_queue_add(s, -1);
    }
    return NULL;
}

static void test_concurrent_updates_are_exact(void **state) {
    sl_model_stats_t *s = sl_model_stats_new("busy", "1", 4);
    pthread_t th[N_THREADS];
    for (int i = 0; i < N_THREADS; i++) {
        assert_int_equal(pthread_create(&th[i], NULL, hammer, s), 0);
    }
    for (int i = 0; i < N_THREADS; i++)
        pthread_join(th[i], NULL);
    sl_model_stats_snapshot_t snap;
    sl_model_stats_snapshot(s, &snap);
    const uint64_t total = (uint64_t)N_THREADS * PER_THREAD;
    assert_int_equal(snap.success_count, total * 3 / 4);
    assert_int_equal(snap.fail_count, total / 4);
    assert_int_equal(snap.success_ns + snap.fail_ns, total * 10);
    assert_int_equal(snap.queue_count, total);
    assert_int_equal(snap.execution_count, total);
    assert_int_equal(snap.inference_count, 2 * total);
    assert_int_equal(snap.executions_by_size[2], total);
    sl_model_stats_snapshot_free(&snap);
    char *text = render();
    char line[256];
    snprintf(line, sizeof line,
             "sluice_inference_executions_total{model=\"busy\",version=\"1\"} %llu",
             (unsigned long long)total);
    expect_line(text, line);
    expect_line(text, "sluice_inference_queue_depth{model=\"busy\",version=\"1\"} 0");
    free(text);
    sl_model_stats_free(s);
}

static void test_cardinality_is_bounded(void **state) {
    /* 1000 model/version combinations per family; the rest share the "other" series. */
    for (int i = 0; i < 1100; i++) {
        char v[32];
        snprintf(v, sizeof v, "0.0.%d", i);
        sl_model_stats_t *s = sl_model_stats_new("many", v, 1);
        sl_model_stats_execution(s, 1, 1, 1);
        sl_model_stats_free(s);
    }
    char *text = render();
    assert_non_null(strstr(text, "sluice_inference_executions_total{model=\"other\",version="
                                 "\"other\"}"));
    assert_null(strstr(text, "version=\"0.0.1099\""));
    size_t series = 0;
    for (const char *p = text; (p = strstr(p, "\nsluice_inference_executions_total{")); p++) {
        series++;
    }
    assert_true(series <= 1001);
    free(text);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counters_and_snapshot),
        cmocka_unit_test(test_versions_have_their_own_series),
        cmocka_unit_test(test_batch_sizes_out_of_range),
        cmocka_unit_test(test_concurrent_updates_are_exact),
        cmocka_unit_test(test_cardinality_is_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
