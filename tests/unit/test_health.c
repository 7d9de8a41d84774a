/* Unit tests for core/health: the overall status over combinations of required and optional
 * checks, readiness and its reasons (starting, draining, a required check down), and the
 * /healthz JSON as a client parses it. */
#include "core/common.h"
#include "core/health.h"
#include "core/runtime.h"

#include <cJSON.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

typedef struct {
    sl_health_status_t status;
    const char *detail; /* NULL: write none */
    int calls;
} fake_check_t;

static sl_health_status_t fake_cb(void *arg, sl_buf_t *detail) {
    fake_check_t *f = arg;
    __atomic_fetch_add(&f->calls, 1, __ATOMIC_RELAXED);
    if (f->detail) sl_buf_puts(detail, f->detail);
    return f->status;
}

/* Evaluates h, checks the JSON parses, and returns it (caller deletes). */
static cJSON *healthz(sl_health_t *h, sl_health_status_t *overall) {
    sl_buf_t json = SL_BUF_INIT;
    *overall = sl_health_evaluate(h, &json);
    cJSON *j = cJSON_Parse(json.data);
    if (!j) fail_msg("not JSON: %s", json.data);
    sl_buf_free(&json);
    assert_true(cJSON_IsObject(j));
    return j;
}

static const char *jstr(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsString(v)) fail_msg("no string %s", key);
    return v->valuestring;
}

static bool jready(const cJSON *o) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "ready");
    assert_true(cJSON_IsBool(v));
    return cJSON_IsTrue(v);
}

static void test_no_checks_lifecycle(void **state) {
    sl_health_t *h = sl_health_new("gateway", NULL);
    assert_string_equal(sl_health_component(h), "gateway");
    sl_buf_t reason = SL_BUF_INIT;
    assert_false(sl_health_ready(h, &reason));
    assert_string_equal(reason.data, "starting");

    sl_health_status_t st;
    cJSON *j = healthz(h, &st);
    assert_int_equal(st, SL_HEALTH_OK); /* healthy, just not ready yet */
    assert_string_equal(jstr(j, "status"), "ok");
    assert_string_equal(jstr(j, "component"), "gateway");
    assert_false(jready(j));
    assert_string_equal(jstr(j, "reason"), "starting");
    const cJSON *checks = cJSON_GetObjectItemCaseSensitive(j, "checks");
    assert_true(cJSON_IsObject(checks));
    assert_null(checks->child);
    cJSON_Delete(j);

    sl_health_set_started(h, true);
    sl_buf_reset(&reason);
    assert_true(sl_health_ready(h, &reason));
    assert_int_equal(reason.len, 0);
    j = healthz(h, &st);
    assert_true(jready(j));
    assert_null(cJSON_GetObjectItemCaseSensitive(j, "reason"));
    cJSON_Delete(j);

    sl_health_set_started(h, false);
    assert_false(sl_health_ready(h, NULL));
    sl_buf_free(&reason);
    sl_health_free(h);
}

static void test_status_combinations(void **state) {
    static const struct {
        sl_health_status_t req, opt;
        sl_health_status_t overall;
        bool ready;
    } cases[] = {
        {SL_HEALTH_OK, SL_HEALTH_OK, SL_HEALTH_OK, true},
        {SL_HEALTH_OK, SL_HEALTH_DEGRADED, SL_HEALTH_DEGRADED, true},
        {SL_HEALTH_OK, SL_HEALTH_DOWN, SL_HEALTH_DEGRADED, true},
        {SL_HEALTH_DEGRADED, SL_HEALTH_OK, SL_HEALTH_DEGRADED, true},
        {SL_HEALTH_DEGRADED, SL_HEALTH_DEGRADED, SL_HEALTH_DEGRADED, true},
        {SL_HEALTH_DEGRADED, SL_HEALTH_DOWN, SL_HEALTH_DEGRADED, true},
        {SL_HEALTH_DOWN, SL_HEALTH_OK, SL_HEALTH_DOWN, false},
        {SL_HEALTH_DOWN, SL_HEALTH_DEGRADED, SL_HEALTH_DOWN, false},
        {SL_HEALTH_DOWN, SL_HEALTH_DOWN, SL_HEALTH_DOWN, false},
    };
    for (unsigned i = 0; i < SL_ARRAY_LEN(cases); i++) {
        fake_check_t req = {cases[i].req, NULL, 0}, opt = {cases[i].opt, NULL, 0};
        fake_check_t ok = {SL_HEALTH_OK, NULL, 0};
        sl_health_t *h = sl_health_new("inference", NULL);
        sl_health_add(h, "store", fake_cb, &req, true);
        sl_health_add(h, "cache", fake_cb, &opt, false);
        sl_health_add(h, "models", fake_cb, &ok, true);
        sl_health_set_started(h, true);

        sl_health_status_t st;
        cJSON *j = healthz(h, &st);
        assert_int_equal(st, cases[i].overall);
        assert_string_equal(jstr(j, "status"), sl_health_status_name(cases[i].overall));
        assert_int_equal(jready(j), cases[i].ready);
        const cJSON *checks = cJSON_GetObjectItemCaseSensitive(j, "checks");
        assert_int_equal(cJSON_GetArraySize(checks), 3);
        assert_string_equal(jstr(cJSON_GetObjectItemCaseSensitive(checks, "store"), "status"),
                            sl_health_status_name(cases[i].req));
        assert_string_equal(jstr(cJSON_GetObjectItemCaseSensitive(checks, "cache"), "status"),
                            sl_health_status_name(cases[i].opt));
        assert_string_equal(jstr(cJSON_GetObjectItemCaseSensitive(checks, "models"), "status"),
                            "ok");

        sl_buf_t reason = SL_BUF_INIT;
        assert_int_equal(sl_health_ready(h, &reason), cases[i].ready);
        if (cases[i].ready) {
            assert_null(cJSON_GetObjectItemCaseSensitive(j, "reason"));
            assert_int_equal(reason.len, 0);
        } else {
            assert_string_equal(reason.data, "required check down: store");
            assert_string_equal(jstr(j, "reason"), "required check down: store");
        }
        sl_buf_free(&reason);
        cJSON_Delete(j);
        sl_health_free(h);
    }
}

static void test_details_and_names(void **state) {
    fake_check_t with = {SL_HEALTH_DEGRADED, "replica 2 of 3 \"slow\"\nlatency\x01 \xff!", 0};
    fake_check_t without = {SL_HEALTH_OK, NULL, 0};
    fake_check_t empty = {SL_HEALTH_OK, "", 0};
    char long_detail[2000];
    memset(long_detail, 'x', sizeof long_detail - 1);
    long_detail[sizeof long_detail - 1] = '\0';
    memcpy(long_detail + 510, "\xe2\x82\xac", 3); /* a 3-byte character across the cut */
    fake_check_t verbose = {SL_HEALTH_OK, long_detail, 0};

    sl_health_t *h = sl_health_new("fea\"tures", NULL);
    sl_health_add(h, "upstream \"inference\"", fake_cb, &with, false);
    sl_health_add(h, "quiet", fake_cb, &without, true);
    sl_health_add(h, "empty", fake_cb, &empty, true);
    sl_health_add(h, "verbose", fake_cb, &verbose, false);
    sl_health_set_started(h, true);
    sl_health_status_t st;
    cJSON *j = healthz(h, &st);
    assert_int_equal(st, SL_HEALTH_DEGRADED);
    assert_string_equal(jstr(j, "component"), "fea\"tures");
    const cJSON *checks = cJSON_GetObjectItemCaseSensitive(j, "checks");
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(checks, "upstream \"inference\"");
    assert_non_null(c);
    assert_string_equal(jstr(c, "status"), "degraded");
    assert_string_equal(jstr(c, "detail"), "replica 2 of 3 \"slow\"\nlatency\x01 \xef\xbf\xbd!");
    /* No detail written, or an empty one: the key is left out. */
    assert_null(cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(checks, "quiet"),
                                                 "detail"));
    assert_null(cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(checks, "empty"),
                                                 "detail"));
    /* A long detail is cut, and not in the middle of a character. */
    const char *d = jstr(cJSON_GetObjectItemCaseSensitive(checks, "verbose"), "detail");
    assert_int_equal(strlen(d), 510);
    assert_int_equal(strspn(d, "x"), 510);
    cJSON_Delete(j);
    sl_health_free(h);
}

static void test_ready_runs_only_required(void **state) {
    fake_check_t req = {SL_HEALTH_OK, NULL, 0}, opt = {SL_HEALTH_DOWN, NULL, 0};
    sl_health_t *h = sl_health_new("worker", NULL);
    sl_health_add(h, "queue", fake_cb, &req, true);
    sl_health_add(h, "metrics-push", fake_cb, &opt, false);
    sl_health_set_started(h, true);
    assert_true(sl_health_ready(h, NULL));
    assert_int_equal(req.calls, 1);
    assert_int_equal(opt.calls, 0);
    /* Not started: no reason to run anything. */
    sl_health_set_started(h, false);
    assert_false(sl_health_ready(h, NULL));
    assert_int_equal(req.calls, 1);
    /* /healthz runs everything once. */
    sl_health_status_t st = sl_health_evaluate(h, NULL);
    assert_int_equal(st, SL_HEALTH_DEGRADED);
    assert_int_equal(req.calls, 2);
    assert_int_equal(opt.calls, 1);
    sl_health_free(h);
}

static void test_unknown_status_is_down(void **state) {
    fake_check_t bad = {(sl_health_status_t)7, NULL, 0};
    sl_health_t *h = sl_health_new("registry", NULL);
    sl_health_add(h, "db", fake_cb, &bad, true);
    sl_health_set_started(h, true);
    sl_health_status_t st;
    cJSON *j = healthz(h, &st);
    assert_int_equal(st, SL_HEALTH_DOWN);
    assert_string_equal(
        jstr(cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "checks"), "db"),
             "status"),
        "down");
    cJSON_Delete(j);
    assert_string_equal(sl_health_status_name(SL_HEALTH_OK), "ok");
    assert_string_equal(sl_health_status_name(SL_HEALTH_DEGRADED), "degraded");
    assert_string_equal(sl_health_status_name(SL_HEALTH_DOWN), "down");
    sl_health_free(h);
}

static void test_several_required_down(void **state) {
    fake_check_t a = {SL_HEALTH_DOWN, "refused", 0}, b = {SL_HEALTH_DOWN, NULL, 0};
    sl_health_t *h = sl_health_new("gateway", NULL);
    sl_health_add(h, "features", fake_cb, &a, true);
    sl_health_add(h, "inference", fake_cb, &b, true);
    sl_health_set_started(h, true);
    sl_buf_t reason = SL_BUF_INIT;
    assert_false(sl_health_ready(h, &reason));
    assert_string_equal(reason.data, "required check down: features, inference");
    sl_buf_free(&reason);
    sl_health_free(h);
}

static void *run_runtime(void *arg) {
    return (void *)(intptr_t)sl_runtime_run(arg);
}

static void test_draining_from_runtime(void **state) {
    sl_runtime_opts_t opts = {.io_threads = 1, .drain_delay_ms = 500, .drain_timeout_ms = 1000};
    sl_runtime_t *rt = sl_runtime_new(&opts);
    assert_non_null(rt);
    fake_check_t ok = {SL_HEALTH_OK, NULL, 0};
    sl_health_t *h = sl_health_new("inference", rt);
    sl_health_add(h, "models", fake_cb, &ok, true);
    sl_health_set_started(h, true);
    assert_true(sl_health_ready(h, NULL));

    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, run_runtime, rt), 0);
    sl_runtime_stop(rt);
    /* The runtime flags the drain on its main loop: poll for it. */
    sl_buf_t reason = SL_BUF_INIT;
    uint64_t deadline = sl_now_ms() + 5000;
    while (sl_health_ready(h, NULL)) {
        assert_true(sl_now_ms() < deadline);
        nanosleep(&(struct timespec){0, 5 * 1000 * 1000}, NULL);
    }
    assert_false(sl_health_ready(h, &reason));
    assert_string_equal(reason.data, "draining");
    sl_health_status_t st;
    cJSON *j = healthz(h, &st);
    assert_int_equal(st, SL_HEALTH_OK); /* draining is not unhealthy, only not ready */
    assert_false(jready(j));
    assert_string_equal(jstr(j, "reason"), "draining");
    cJSON_Delete(j);
    void *rc;
    pthread_join(t, &rc);
    assert_int_equal((intptr_t)rc, 0);
    sl_buf_free(&reason);
    sl_health_free(h);
    sl_runtime_free(rt);
}

typedef struct {
    sl_health_t *h;
    int iterations;
} prober_t;

static void *probe(void *arg) {
    prober_t *p = arg;
    sl_buf_t json = SL_BUF_INIT;
    for (int i = 0; i < p->iterations; i++) {
        sl_buf_reset(&json);
        sl_health_evaluate(p->h, &json);
        cJSON *j = cJSON_Parse(json.data);
        if (!j) return (void *)1;
        cJSON_Delete(j);
        sl_health_ready(p->h, NULL);
        sl_health_set_started(p->h, i % 2 == 0);
    }
    sl_buf_free(&json);
    return NULL;
}

static void test_concurrent_probes(void **state) {
    fake_check_t a = {SL_HEALTH_OK, "fine", 0}, b = {SL_HEALTH_DEGRADED, "slow", 0};
    sl_health_t *h = sl_health_new("gateway", NULL);
    sl_health_add(h, "a", fake_cb, &a, true);
    sl_health_add(h, "b", fake_cb, &b, false);
    prober_t p = {h, 2000};
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&t[i], NULL, probe, &p), 0);
    for (int i = 0; i < 4; i++) {
        void *rc;
        pthread_join(t[i], &rc);
        assert_null(rc);
    }
    assert_int_equal(b.calls, 4 * 2000);
    sl_health_free(h);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_checks_lifecycle),
        cmocka_unit_test(test_status_combinations),
        cmocka_unit_test(test_details_and_names),
        cmocka_unit_test(test_ready_runs_only_required),
        cmocka_unit_test(test_unknown_status_is_down),
        cmocka_unit_test(test_several_required_down),
        cmocka_unit_test(test_draining_from_runtime),
        cmocka_unit_test(test_concurrent_probes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
