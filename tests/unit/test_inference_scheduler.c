/* Unit tests for the inference scheduler (dynamic batcher + instance threads) with the real
 * batch.c and a fake backend that records every batch it executes, can hold its instance busy
 * behind a gate (so requests pile up in the queue deterministically), and answers y = x + 1000
 * row by row. Synchronisation is by condition variables with deadlines, never sleeps. */
#include "core/common.h"
#include "core/metrics.h"
#include "inference/batch.h"
#include "oip/oip_types.h"
#include "inference/model_config.h"
#include "inference/scheduler.h"
#include "inference/stats.h"

#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#define MAX_EXEC  1024
#define MAX_ORDER 8192
#define WAIT_MS   10000

/* ---- the fake backend and the completion recorder ---- */

typedef struct result {
    bool done;
    sl_infer_code_t code;
    char msg[256];
    int64_t dim0;
    int32_t vals[16];
    uint32_t n_vals;
    uint64_t t_done_ns;
} result_t;

typedef struct fake_inst {
    atomic_int busy;
} fake_inst_t;

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool gate_closed;
    uint32_t executing;
    uint32_t n_exec;
    uint32_t sizes[MAX_EXEC], nreqs[MAX_EXEC];
    int32_t order[MAX_ORDER]; /* first value of each row, in execution order */
    uint32_t n_order;
    bool fail;
    uint32_t n_done;
    atomic_bool overlap;
} g;

static fake_inst_t g_inst[4];
static void *g_inst_ptrs[4] = {&g_inst[0], &g_inst[1], &g_inst[2], &g_inst[3]};
static sl_model_config_t g_cfg;

static sluice_status_t *fake_execute(void *state, sluice_batch_t *b) {
    fake_inst_t *fi = state;
    if (atomic_fetch_add(&fi->busy, 1) != 0) atomic_store(&g.overlap, true);
    const sluice_host_t *h = sl_backend_host();
    const sluice_tensor_t *x = h->batch_input(b, 0);
    int64_t numel = sl_dims_numel(x->dims, x->ndim);
    int64_t width = numel / (int64_t)h->batch_size(b);
    pthread_mutex_lock(&g.mu);
    if (g.n_exec < MAX_EXEC) {
        g.sizes[g.n_exec] = (uint32_t)h->batch_size(b);
        g.nreqs[g.n_exec] = h->batch_request_count(b);
    }
    g.n_exec++;
    const int32_t *in = x->data;
    for (int64_t r = 0; r < numel; r += width) {
        if (g.n_order < MAX_ORDER) g.order[g.n_order++] = in[r];
    }
    g.executing++;
    pthread_cond_broadcast(&g.cv);
    while (g.gate_closed)
        pthread_cond_wait(&g.cv, &g.mu);
    g.executing--;
    bool fail = g.fail;
    pthread_mutex_unlock(&g.mu);

    sluice_status_t *st = NULL;
    if (fail) {
        st = h->status_new(SLUICE_STATUS_INTERNAL, "fake backend failure");
    } else {
        void *out = NULL;
        st = h->output_alloc(b, 0, SLUICE_DT_INT32, x->ndim, x->dims, 0, &out);
        for (int64_t i = 0; !st && i < numel; i++)
            ((int32_t *)out)[i] = in[i] + 1000;
    }
    atomic_fetch_sub(&fi->busy, 1);
    return st;
}

static const sluice_backend_iface_t fake_iface = {
    .api_major = SLUICE_BACKEND_API_MAJOR,
    .api_minor = SLUICE_BACKEND_API_MINOR,
    .name = "fake",
    .execute = fake_execute,
};

static void done_cb(sl_infer_request_t *req, sl_infer_response_t *resp, const sl_infer_error_t *err,
                    void *arg) {
    result_t *r = arg;
    pthread_mutex_lock(&g.mu);
    r->code = resp ? SL_INFER_OK : err->code;
    if (err) snprintf(r->msg, sizeof r->msg, "%s", err->msg);
    if (resp && resp->n_outputs == 1 && strcmp(resp->outputs[0].name, "y") == 0) {
        const sl_infer_output_t *o = &resp->outputs[0];
        r->dim0 = o->dims[0];
        r->n_vals = (uint32_t)SL_MIN(o->byte_size / 4, SL_ARRAY_LEN(r->vals));
        memcpy(r->vals, o->data, r->n_vals * 4);
    }
    r->t_done_ns = sl_now_ns();
    r->done = true;
    g.n_done++;
    pthread_cond_broadcast(&g.cv);
    pthread_mutex_unlock(&g.mu);
    sl_infer_response_free(resp);
    sl_infer_request_free(req);
}

/* Waits (g.mu held by the caller) until pred() holds or WAIT_MS pass; returns pred(). */
static bool wait_locked(bool (*pred)(void *), void *arg) {
    uint64_t deadline = sl_now_ns() + (uint64_t)WAIT_MS * 1000000u;
    while (!pred(arg)) {
        uint64_t now = sl_now_ns();
        if (now >= deadline) return false;
        struct timespec ts = {.tv_sec = (time_t)(deadline / 1000000000u),
                              .tv_nsec = (long)(deadline % 1000000000u)};
        pthread_cond_timedwait(&g.cv, &g.mu, &ts);
    }
    return true;
}

static bool pred_done(void *arg) {
    return g.n_done >= *(uint32_t *)arg;
}
static bool pred_executing(void *arg) {
    return g.executing >= *(uint32_t *)arg;
}

static void wait_done(uint32_t n) {
    pthread_mutex_lock(&g.mu);
    bool ok = wait_locked(pred_done, &n);
    uint32_t got = g.n_done;
    pthread_mutex_unlock(&g.mu);
    if (!ok) fail_msg("only %u of %u requests completed in time", got, n);
}

static void wait_executing(uint32_t n) {
    pthread_mutex_lock(&g.mu);
    bool ok = wait_locked(pred_executing, &n);
    pthread_mutex_unlock(&g.mu);
    assert_true(ok);
}

static void gate(bool closed) {
    pthread_mutex_lock(&g.mu);
    g.gate_closed = closed;
    pthread_cond_broadcast(&g.cv);
    pthread_mutex_unlock(&g.mu);
}

static int setup(void **state) {
    pthread_mutex_lock(&g.mu);
    g.gate_closed = false;
    g.executing = g.n_exec = g.n_order = g.n_done = 0;
    g.fail = false;
    atomic_store(&g.overlap, false);
    pthread_mutex_unlock(&g.mu);
    memset(&g_cfg, 0, sizeof g_cfg);
    g_cfg.name = "m";
    g_cfg.n_inputs = g_cfg.n_outputs = 1;
    g_cfg.inputs[0] = (sluice_tensor_desc_t){.name = "x", .dtype = SLUICE_DT_INT32, 1, {1}};
    g_cfg.outputs[0] = (sluice_tensor_desc_t){.name = "y", .dtype = SLUICE_DT_INT32, 1, {1}};
    g_cfg.instance_count = 1;
    return 0;
}

static void batching(uint32_t max_batch, uint64_t delay_us) {
    g_cfg.max_batch_size = max_batch;
    g_cfg.batching.enabled = true;
    g_cfg.batching.max_queue_delay_us = delay_us;
}

static sl_sched_t *start(const char *stats_name, uint32_t n_inst, sl_model_stats_t **stats) {
    *stats = sl_model_stats_new(stats_name, "1", g_cfg.max_batch_size);
    sl_sched_cfg_t c = {.model_name = "m",
                        .version = "1",
                        .cfg = &g_cfg,
                        .be = &fake_iface,
                        .instances = g_inst_ptrs,
                        .n_instances = n_inst,
                        .stats = *stats};
    char err[256] = "";
    sl_sched_t *s = sl_sched_new(&c, err, sizeof err);
    assert_non_null(s);
    return s;
}

/* A validated request of `rows` rows of `width` values first, first+1, ... */
static sl_infer_request_t *make_req_w(result_t *r, int32_t first, uint32_t rows, uint32_t width) {
    memset(r, 0, sizeof *r);
    sl_infer_request_t *req = sl_infer_request_new(NULL, done_cb, r);
    req->model_name = "m";
    sl_infer_input_t *in = sl_infer_request_add_input(req);
    in->name = "x";
    in->dtype = SLUICE_DT_INT32;
    if (g_cfg.max_batch_size > 0) {
        in->ndim = 2;
        in->dims[0] = rows;
        in->dims[1] = width;
    } else {
        in->ndim = 1;
        in->dims[0] = width;
    }
    uint32_t n = rows * width;
    int32_t *d = sl_infer_request_alloc(req, n * 4);
    for (uint32_t i = 0; i < n; i++)
        d[i] = first + (int32_t)i;
    in->data = d;
    in->byte_size = n * 4;
    sl_infer_error_t e;
    sl_infer_code_t code = sl_batch_validate(&g_cfg, req, &e);
    if (code != SL_INFER_OK) fail_msg("request rejected: %s", e.msg);
    return req;
}

static sl_infer_request_t *make_req(result_t *r, int32_t first, uint32_t rows) {
    return make_req_w(r, first, rows, 1);
}

static void submit(sl_sched_t *s, result_t *r, int32_t first, uint32_t rows, uint32_t prio,
                   uint64_t timeout_us) {
    sl_infer_request_t *req = make_req(r, first, rows);
    req->priority = prio;
    req->timeout_us = timeout_us;
    sl_sched_submit(s, req);
}

/* The request succeeded and got exactly its own rows back. */
static void check_ok(const result_t *r, int32_t first, uint32_t n_vals) {
    pthread_mutex_lock(&g.mu);
    result_t c = *r;
    pthread_mutex_unlock(&g.mu);
    assert_true(c.done);
    if (c.code != SL_INFER_OK) fail_msg("request %d failed: %s", first, c.msg);
    assert_int_equal(c.n_vals, n_vals);
    for (uint32_t i = 0; i < n_vals; i++)
        assert_int_equal(c.vals[i], first + (int32_t)i + 1000);
}

static void check_sizes(const uint32_t *want, uint32_t n) {
    pthread_mutex_lock(&g.mu);
    uint32_t got_n = g.n_exec;
    uint32_t got[MAX_EXEC];
    memcpy(got, g.sizes, sizeof got);
    pthread_mutex_unlock(&g.mu);
    char buf[512] = "";
    for (uint32_t i = 0; i < got_n && i < 32; i++) {
        snprintf(buf + strlen(buf), sizeof buf - strlen(buf), "%u ", got[i]);
    }
    if (got_n != n) fail_msg("%u executions (sizes %s), want %u", got_n, buf, n);
    for (uint32_t i = 0; i < n; i++) {
        if (got[i] != want[i]) fail_msg("batch sizes %s; batch %u should be %u", buf, i, want[i]);
    }
}

/* Holds the single instance busy with request A (value 0) so that what follows queues up. */
static void hold_instance_rows(sl_sched_t *s, result_t *a, uint32_t rows) {
    gate(true);
    submit(s, a, 0, rows, 0, 0);
    wait_executing(1);
}

static void hold_instance(sl_sched_t *s, result_t *a) {
    hold_instance_rows(s, a, 1);
}

/* ---- batch forming ---- */

static void test_batches_form_up_to_max(void **state) {
    batching(8, 0);
    sl_model_stats_t *st;
    sl_sched_t *s = start("t_max", 1, &st);
    result_t a, r[10];
    hold_instance(s, &a);
    for (int i = 0; i < 10; i++)
        submit(s, &r[i], 100 * (i + 1), 1, 0, 0);
    assert_int_equal(sl_sched_queue_depth(s), 10);
    gate(false);
    wait_done(11);
    check_sizes((uint32_t[]){1, 8, 2}, 3);
    check_ok(&a, 0, 1);
    for (int i = 0; i < 10; i++)
        check_ok(&r[i], 100 * (i + 1), 1);
    sl_sched_free(s);

    /* The statistics saw the same batches. */
    sl_model_stats_snapshot_t snap;
    sl_model_stats_snapshot(st, &snap);
    assert_int_equal(snap.execution_count, 3);
    assert_int_equal(snap.inference_count, 11);
    assert_int_equal(snap.queue_count, 11);
    assert_int_equal(snap.compute_count, 11);
    assert_int_equal(snap.executions_by_size[1], 1);
    assert_int_equal(snap.executions_by_size[2], 1);
    assert_int_equal(snap.executions_by_size[8], 1);
    sl_model_stats_snapshot_free(&snap);
    sl_buf_t out = SL_BUF_INIT;
    sl_metrics_render(sl_metrics_default(), &out);
    assert_non_null(
        strstr(out.data, "sluice_inference_queue_depth{model=\"t_max\",version=\"1\"} 0\n"));
    assert_non_null(strstr(out.data, "sluice_inference_executions_total{model=\"t_max\","
                                     "version=\"1\"} 3\n"));
    assert_non_null(strstr(out.data, "sluice_inference_batch_size_bucket{model=\"t_max\","
                                     "version=\"1\",le=\"4\"} 2\n"));
    sl_buf_free(&out);
    sl_model_stats_free(st);
}

static void test_rows_go_back_to_their_callers(void **state) {
    batching(8, 0);
    sl_model_stats_t *st;
    sl_sched_t *s = start("t_rows", 1, &st);
    result_t a, r[4];
    hold_instance(s, &a);
    /* 3 + 2 fit; the 4 would make 9: it is not split but starts the next batch with the 1. */
    submit(s, &r[0], 100, 3, 0, 0);
    submit(s, &r[1], 200, 2, 0, 0);
    submit(s, &r[2], 300, 4, 0, 0);
    submit(s, &r[3], 400, 1, 0, 0);
    gate(false);
    wait_done(5);
    check_sizes((uint32_t[]){1, 5, 5}, 3);
    assert_int_equal(g.nreqs[1], 2);
    assert_int_equal(g.nreqs[2], 2);
    check_ok(&r[0], 100, 3);
    check_ok(&r[1], 200, 2);
    check_ok(&r[2], 300, 4);
    check_ok(&r[3], 400, 1);
    assert_int_equal(r[0].dim0, 3);
    assert_int_equal(r[2].dim0, 4);
    sl_sched_free(s);
    sl_model_stats_free(st);
}

static void test_preferred_sizes(void **state) {
    batching(8, 0);
    g_cfg.batching.preferred[0] = 2;
    g_cfg.batching.preferred[1] = 4;
    g_cfg.batching.n_preferred = 2;
    sl_model_stats_t *st;
    sl_sched_t *s = start("t_pref", 1, &st);
    result_t a, r[7];
    hold_instance(s, &a);
    for (int i = 0; i < 7; i++)
        submit(s, &r[i], 100 * (i + 1), 1, 0, 0);
    gate(false);
    wait_done(8);
    /* 7 queued: the largest preferred size (4), then 2; the last one goes alone (no delay). */
    check_sizes((uint32_t[]){1, 4, 2, 1}, 4);
    for (int i = 0; i < 7; i++)
        check_ok(&r[i], 100 * (i + 1), 1);
    sl_sched_free(s);
    sl_model_stats_free(st);
}

static void test_preferred_then_delay(void **state) {
    batching(8, 200000);
    g_cfg.batching.preferred[0] = 4;
    g_cfg.batching.n_preferred = 1;
    sl_model_stats_t *st;
    sl_sched_t *s = start("t_pref_delay", 1, &st);
    result_t a, r[6];
    hold_instance(s, &a);
    uint64_t t0 = sl_now_ns();
    for (int i = 0; i < 6; i++)
        submit(s, &r[i], 100 * (i + 1), 1, 0, 0);
    gate(false);
    wait_done(7);
    /* The preferred 4 go at once; the 2 left wait until the oldest has waited 200 ms. */
    check_sizes((uint32_t[]){1, 4, 2}, 3);
    for (int i = 0; i < 6; i++)
        check_ok(&r[i], 100 * (i + 1), 1);
    assert_true(r[3].t_done_ns < r[4].t_done_ns);
    assert_true(r[4].t_done_ns - t0 >= 200000000u);
    assert_true(r[5].t_done_ns - t0 >= 200000000u);
    sl_sched_free(s);
    sl_model_stats_free(st);
}

static void test_max_queue_delay(void **state) {
    batching(8, 150000);
    sl_model_stats_t *st;
    sl_sched_t *s = start("t_delay", 1, &st);
    result_t r[3];
    uint64_t t0 = sl_now_ns();
    for (int i = 0; i < 3; i++)
        submit(s, &r[i], 100 * (i + 1), 1, 0, 0);
    wait_done(3);
    /* Nothing forced the batch out: it left when the oldest request had waited 150 ms. */
    check_sizes((uint32_t[]){3}, 1);
    for (int i = 0; i < 3; i++) {
        check_ok(&r[i], 100 * (i + 1), 1);
        assert_true(r[i].t_done_ns - t0 >= 150000000u);
    }
    sl_sched_free(s);
    sl_model_stats_free(st);
}

static void test_full_batch_does_not_wait(void **state) {
    batching(4, 30000000); /* 30 s: the test would time out if the batch waited for it */
    sl_model_stats_t *st;
    sl_sched_t *s = start("t_full", 1, &st);
    result_t r[4];
    for (int i = 0; i < 4; i++)
        submit(s, &r[i], 100 * (i + 1), 1, 0, 0);
    wait_done(4);
    check_sizes((uint32_t[]){4}, 1);
    sl_sched_free(s);
    sl_model_stats_free(st);
}

static void test_shapes_that_cannot_join(void **state) {
    batching(8, 0);
    g_cfg.inputs[0].dims[0] = -1;
    g_cfg.outputs[0].dims[0] = -1;
    sl_model_stats_t *st;
    sl_sched_t *s = start("t_ragged", 1, &st);
    result_t a, r[4];
    hold_instance(s, &a);
    const uint32_t widths[4] = {3, 3, 2, 3};
    for (int i = 0; i < 4; i++) {
        sl_sched_submit(s, make_req_w(&r[i], 100 * (i + 1), 1, widths[i]));
    }
    gate(false);
    wait_done(5);
    check_sizes((uint32_t[]){1, 2, 1, 1}, 4);
    for (int i = 0; i < 4; i++)
        check_ok(&r[i], 100 * (i + 1), widths[i]);
    sl_sched_free(s);
    sl_model_stats_free(st);
}

static void test_without_dynamic_batching(void **state) {
    g_cfg.max_batch_size = 8; /* batching allowed by the model, but no dynamic batcher */
    sl_model_stats_t *st;
    sl_sched_t *s = start("t_nodyn", 1, &st);
    result_t a, r[3];
    hold_instance(s, &a);
    for (int i = 0; i < 3; i++)
        submit(s, &r[i], 100 * (i + 1), 2, 0, 0);
    gate(false);
    wait_done(4);
    check_sizes((uint32_t[]){1, 2, 2, 2}, 4);
    for (int i = 0; i < 3; i++)
        check_ok(&r[i], 100 * (i + 1), 2);
    sl_model_stats_snapshot_t snap;
    sl_model_stats_snapshot(st, &snap);
    assert_int_equal(snap.execution_count, 4);
    assert_int_equal(snap.inference_count, 7);
    sl_model_stats_snapshot_free(&snap);
    sl_sched_free(s);
    sl_model_stats_free(st);
}

static void test_max_batch_size_zero(void **state) {
    batching(0, 100000); /* dynamic batching on, but the model does not batch */
    sl_model_stats_t *st;
    sl_sched_t *s = start("t_nobatch", 1, &st);
    result_t a, r[3];
    hold_instance(s, &a);
    for (int i = 0; i < 3; i++)
        submit(s, &r[i], 100 * (i + 1), 1, 0, 0);
    gate(false);
    wait_done(4);
    check_sizes((uint32_t[]){1, 1, 1, 1}, 4);
    for (int i = 0; i < 3; i++)
        check_ok(&r[i], 100 * (i + 1), 1);
    sl_sched_free(s);
    sl_model_stats_free(st);
}

/* ---- priorities and queue policies ---- */

static void test_priority_order(void **state) {
    batching(4, 0);
    g_cfg.batching.priority_levels = 3;
    g_cfg.batching.default_priority_level = 2;
    sl_model_stats_t *st;
    sl_sched_t *s = start("t_prio", 1, &st);
    result_t a, r[7];
    hold_instance(s, &a);
    submit(s, &r[0], 301, 1, 3, 0);
    submit(s, &r[1], 302, 1, 3, 0);
    submit(s, &r[2], 201, 1, 0, 0); /* 0: the default level, 2 */
    submit(s, &r[3], 101, 1, 1, 0);
    submit(s, &r[4], 303, 1, 3, 0);
    submit(s, &r[5], 102, 1, 1, 0);
    submit(s, &r[6], 202, 1, 9, 0); /* a level the model lacks: the default */
    gate(false);
    wait_done(8);
    check_sizes((uint32_t[]){1, 4, 3}, 3);
    const int32_t want[8] = {0, 101, 102, 201, 202, 301, 302, 303};
    assert_int_equal(g.n_order, 8);
    for (int i = 0; i < 8; i++)
        assert_int_equal(g.order[i], want[i]);
    for (int i = 0; i < 7; i++)
        assert_int_equal(r[i].code, SL_INFER_OK);
    sl_sched_free(s);
    sl_model_stats_free(st);
}

static void test_queue_full(void **state) {
    batching(8, 0);
    g_cfg.batching.default_policy.max_queue_size = 4;
    sl_model_stats_t *st;
    sl_sched_t *s = start("t_full_q", 1, &st);
    result_t a, r[10];
    hold_instance(s, &a);
    for (int i = 0; i < 10; i++)
        submit(s, &r[i], 100 * (i + 1), 1, 0, 0);
    /* Rejections are immediate: exactly 6, the requests that found 4 already queued. */
    pthread_mutex_lock(&g.mu);
    assert_int_equal(g.n_done, 6);
    pthread_mutex_unlock(&g.mu);
    for (int i = 4; i < 10; i++) {
        assert_true(r[i].done);
        assert_int_equal(r[i].code, SL_INFER_OVERLOADED);
        assert_string_equal(r[i].msg, "queue of model 'm' is full (4 requests)");
    }
    assert_int_equal(sl_sched_queue_depth(s), 4);
    gate(false);
    wait_done(11);
    check_sizes((uint32_t[]){1, 4}, 2);
    for (int i = 0; i < 4; i++)
        check_ok(&r[i], 100 * (i + 1), 1);
    sl_sched_free(s);
    sl_model_stats_free(st);
}

static void test_timeout_reject(void **state) {
    batching(8, 0);
    g_cfg.batching.default_policy.default_timeout_us = 50000;
    g_cfg.batching.default_policy.allow_timeout_override = true;
    g_cfg.batching.default_policy.timeout_action = SL_TIMEOUT_REJECT;
    sl_model_stats_t *st;
    sl_sched_t *s = start("t_tmo", 1, &st);
    result_t a, r[5];
    hold_instance(s, &a);
    uint64_t t0 = sl_now_ns();
    submit(s, &r[0], 100, 1, 0, 0);        /* the default 50 ms */
    submit(s, &r[1], 200, 1, 0, 60000000); /* its own 60 s: survives */
    submit(s, &r[2], 300, 1, 0, 0);        /* 50 ms */
    submit(s, &r[3], 400, 1, 0, 1000);     /* its own 1 ms */
    submit(s, &r[4], 500, 1, 0, 0);        /* 50 ms */
    /* The instance is still busy: the timeouts must not wait for it. */
    wait_done(4);
    pthread_mutex_lock(&g.mu);
    assert_int_equal(g.executing, 1);
    pthread_mutex_unlock(&g.mu);
    const int timed_out[4] = {0, 2, 3, 4};
    for (int k = 0; k < 4; k++) {
        const result_t *x = &r[timed_out[k]];
        assert_true(x->done);
        assert_int_equal(x->code, SL_INFER_TIMEOUT);
        assert_non_null(strstr(x->msg, "timed out in the queue of model 'm'"));
    }
    assert_true(r[0].t_done_ns - t0 >= 50000000u);
    assert_false(r[1].done);
    assert_int_equal(sl_sched_queue_depth(s), 1);
    gate(false);
    wait_done(6);
    check_ok(&a, 0, 1);
    check_ok(&r[1], 200, 1);
    check_sizes((uint32_t[]){1, 1}, 2);
    sl_sched_free(s);
    sl_model_stats_snapshot_t snap;
    sl_model_stats_snapshot(st, &snap);
    assert_int_equal(snap.queue_count, 2); /* only requests that reached a batch */
    sl_model_stats_snapshot_free(&snap);
    sl_model_stats_free(st);
}

static void test_timeout_delay(void **state) {
    batching(1, 0); /* one request per batch: the execution order is the queue order */
    g_cfg.batching.priority_levels = 2;
    g_cfg.batching.default_priority_level = 2;
    g_cfg.batching.default_policy.allow_timeout_override = true;
    g_cfg.batching.default_policy.timeout_action = SL_TIMEOUT_DELAY;
    sl_model_stats_t *st;
    sl_sched_t *s = start("t_tmo_delay", 1, &st);
    result_t a, r[4];
    hold_instance(s, &a);
    submit(s, &r[0], 101, 1, 1, 1); /* level 1, expires at once */
    submit(s, &r[1], 201, 1, 2, 0); /* level 2 */
    submit(s, &r[2], 202, 1, 2, 1); /* level 2, expires */
    submit(s, &r[3], 102, 1, 1, 0); /* level 1 */
    /* Wait until both short timeouts have certainly passed, by the clock. */
    uint64_t until = sl_now_ns() + 2000000u;
    while (sl_now_ns() < until)
        sched_yield();
    gate(false);
    wait_done(5);
    /* Expired requests go behind every unexpired one, in priority order among themselves. */
    const int32_t want[5] = {0, 102, 201, 101, 202};
    assert_int_equal(g.n_order, 5);
    for (int i = 0; i < 5; i++)
        assert_int_equal(g.order[i], want[i]);
    check_ok(&r[0], 101, 1);
    check_ok(&r[2], 202, 1);
    sl_sched_free(s);
    sl_model_stats_free(st);
}

/* ---- failures, shutdown, concurrency ---- */

static void test_backend_failure(void **state) {
    batching(8, 0);
    sl_model_stats_t *st;
    sl_sched_t *s = start("t_fail", 1, &st);
    result_t a, r[3];
    hold_instance(s, &a);
    for (int i = 0; i < 3; i++)
        submit(s, &r[i], 100 * (i + 1), 1, 0, 0);
    pthread_mutex_lock(&g.mu);
    g.fail = true;
    pthread_mutex_unlock(&g.mu);
    gate(false);
    wait_done(4);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(r[i].code, SL_INFER_INTERNAL);
        assert_null(strstr(r[i].msg, "fake")); /* internal details stay in the log */
    }
    sl_sched_free(s);
    sl_model_stats_snapshot_t snap;
    sl_model_stats_snapshot(st, &snap);
    assert_int_equal(snap.execution_count, 0);
    sl_model_stats_snapshot_free(&snap);
    sl_model_stats_free(st);
}

typedef struct {
    sl_sched_t *s;
} freer_t;

static void *freer_main(void *arg) {
    sl_sched_free(((freer_t *)arg)->s);
    return NULL;
}

static void test_free_completes_queued(void **state) {
    batching(8, 2000000); /* a 2 s delay that shutdown must not wait for */
    sl_model_stats_t *st;
    sl_sched_t *s = start("t_free", 1, &st);
    enum { N_PROBES = 100000 };
    result_t a, r[6];
    result_t *probes = calloc(N_PROBES, sizeof *probes);
    hold_instance_rows(s, &a, 8); /* a full batch: it goes at once */
    for (int i = 0; i < 6; i++)
        submit(s, &r[i], 100 * (i + 1), 1, 0, 0);
    freer_t f = {s};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, freer_main, &f), 0);
    /* Probe until the scheduler refuses new requests: each probe before that is queued. */
    int n = 0;
    for (;;) {
        assert_true(n < N_PROBES);
        submit(s, &probes[n], 10000 + n, 1, 0, 0);
        pthread_mutex_lock(&g.mu);
        bool refused = probes[n].done && probes[n].code == SL_INFER_UNAVAILABLE;
        pthread_mutex_unlock(&g.mu);
        n++;
        if (refused) break;
        sched_yield();
    }
    assert_string_equal(probes[n - 1].msg, "model 'm' version '1' is unloading");
    uint64_t t_open = sl_now_ns();
    gate(false);
    assert_int_equal(pthread_join(th, NULL), 0);
    /* A partial last batch was sent without waiting for the queue delay. */
    assert_true(sl_now_ns() - t_open < 1000000000u);
    /* Joined: everything queued before the stop has run, nothing is left unanswered. */
    assert_int_equal(g.n_done, (uint32_t)(1 + 6 + n));
    check_ok(&a, 0, 8);
    for (int i = 0; i < 6; i++)
        check_ok(&r[i], 100 * (i + 1), 1);
    for (int i = 0; i < n - 1; i++)
        check_ok(&probes[i], 10000 + i, 1);
    free(probes);
    sl_model_stats_free(st);
}

enum { N_THREADS = 8, PER_THREAD = 50 };

typedef struct {
    sl_sched_t *s;
    int t;
    result_t r[PER_THREAD];
} submitter_t;

static void *submitter_main(void *arg) {
    submitter_t *sub = arg;
    for (int i = 0; i < PER_THREAD; i++) {
        int32_t first = sub->t * 100000 + i * 100;
        sl_sched_submit(sub->s, make_req(&sub->r[i], first, 1 + (uint32_t)(i % 3)));
    }
    return NULL;
}

static void test_concurrent_submitters(void **state) {
    batching(8, 2000);
    sl_model_stats_t *st;
    sl_sched_t *s = start("t_conc", 2, &st);
    submitter_t *subs = calloc(N_THREADS, sizeof *subs);
    pthread_t th[N_THREADS];
    for (int t = 0; t < N_THREADS; t++) {
        subs[t].s = s;
        subs[t].t = t;
        assert_int_equal(pthread_create(&th[t], NULL, submitter_main, &subs[t]), 0);
    }
    for (int t = 0; t < N_THREADS; t++)
        pthread_join(th[t], NULL);
    wait_done(N_THREADS * PER_THREAD);
    uint64_t rows = 0;
    for (int t = 0; t < N_THREADS; t++) {
        for (int i = 0; i < PER_THREAD; i++) {
            uint32_t n = 1 + (uint32_t)(i % 3);
            check_ok(&subs[t].r[i], t * 100000 + i * 100, n);
            assert_int_equal(subs[t].r[i].dim0, n);
            rows += n;
        }
    }
    sl_sched_free(s);
    assert_false(atomic_load(&g.overlap)); /* never two executes on one instance */
    assert_true(g.n_exec < N_THREADS * PER_THREAD);
    uint64_t sum = 0;
    for (uint32_t i = 0; i < g.n_exec && i < MAX_EXEC; i++) {
        assert_true(g.sizes[i] <= 8);
        sum += g.sizes[i];
    }
    assert_int_equal(sum, rows);
    sl_model_stats_snapshot_t snap;
    sl_model_stats_snapshot(st, &snap);
    assert_int_equal(snap.execution_count, g.n_exec);
    assert_int_equal(snap.inference_count, rows);
    assert_int_equal(snap.queue_count, N_THREADS * PER_THREAD);
    sl_model_stats_snapshot_free(&snap);
    sl_model_stats_free(st);
    free(subs);
}

int main(void) {
    pthread_mutex_init(&g.mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&g.cv, &ca);
    pthread_condattr_destroy(&ca);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_batches_form_up_to_max, setup),
        cmocka_unit_test_setup(test_rows_go_back_to_their_callers, setup),
        cmocka_unit_test_setup(test_preferred_sizes, setup),
        cmocka_unit_test_setup(test_preferred_then_delay, setup),
        cmocka_unit_test_setup(test_max_queue_delay, setup),
        cmocka_unit_test_setup(test_full_batch_does_not_wait, setup),
        cmocka_unit_test_setup(test_shapes_that_cannot_join, setup),
        cmocka_unit_test_setup(test_without_dynamic_batching, setup),
        cmocka_unit_test_setup(test_max_batch_size_zero, setup),
        cmocka_unit_test_setup(test_priority_order, setup),
        cmocka_unit_test_setup(test_queue_full, setup),
        cmocka_unit_test_setup(test_timeout_reject, setup),
        cmocka_unit_test_setup(test_timeout_delay, setup),
        cmocka_unit_test_setup(test_backend_failure, setup),
        cmocka_unit_test_setup(test_free_completes_queued, setup),
        cmocka_unit_test_setup(test_concurrent_submitters, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
