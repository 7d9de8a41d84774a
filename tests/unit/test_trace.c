/* Unit tests for tracing: W3C traceparent/tracestate vectors, the parent-based ratio sampler,
 * span context propagation, the attribute cap, and queue overflow accounting. */
#include "core/common.h"
#include "core/metrics.h"
#include "core/otlp.h"
#include "core/trace.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define TP_VALID "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

static sl_str_t str(const char *s) {
    return (sl_str_t){s, strlen(s)};
}

static void test_traceparent_valid(void **state) {
    sl_trace_ctx_t c;
    memset(&c, 0xab, sizeof c);
    assert_int_equal(sl_traceparent_parse(str(TP_VALID), &c), 0);
    const uint8_t tid[16] = {0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6,
                             0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36};
    const uint8_t sid[8] = {0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7};
    assert_memory_equal(c.trace_id, tid, 16);
    assert_memory_equal(c.span_id, sid, 8);
    assert_int_equal(c.flags, 1);
    assert_string_equal(c.tracestate, "");
    char out[SL_TRACEPARENT_LEN + 1];
    sl_traceparent_format(&c, out);
    assert_string_equal(out, TP_VALID);
    char th[33], sh[17];
    sl_trace_id_hex(&c, th);
    sl_span_id_hex(&c, sh);
    assert_string_equal(th, "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_string_equal(sh, "00f067aa0ba902b7");

    /* Unsampled flags round-trip too. */
    const char *unsampled = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";
    assert_int_equal(sl_traceparent_parse(str(unsampled), &c), 0);
    assert_int_equal(c.flags, 0);
    sl_traceparent_format(&c, out);
    assert_string_equal(out, unsampled);
}

static void test_traceparent_invalid(void **state) {
    const char *bad[] = {
        "",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0",   /* 54 chars */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-", /* 00 is exactly 55 */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", /* version ff */
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", /* uppercase trace id */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00F067AA0BA902B7-01", /* uppercase span id */
        "0A-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", /* uppercase version */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0A", /* uppercase flags */
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01", /* zero trace id */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", /* zero span id */
        "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", /* separators */
        "00-4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7_01",
        "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01", /* not hex */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-g1",
        "zz-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e47-3600f067aa0ba902b7-01", /* fields shifted */
        " 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        NULL,
    };
    for (int i = 0; bad[i]; i++) {
        sl_trace_ctx_t c = {0};
        if (sl_traceparent_parse(str(bad[i]), &c) != SL_EPARSE) fail_msg("accepted: '%s'", bad[i]);
    }
    sl_trace_ctx_t c;
    assert_int_equal(sl_traceparent_parse((sl_str_t){NULL, 0}, &c), SL_EPARSE);
}

static void test_traceparent_future_version(void **state) {
    sl_trace_ctx_t c;
    /* A higher version is read by its first four fields; more may follow after a '-'. */
    assert_int_equal(
        sl_traceparent_parse(str("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-"
                                 "01-what-the-future-will-be-like"),
                             &c),
        0);
    assert_int_equal(c.flags, 1);
    assert_int_equal(c.trace_id[0], 0x4b);
    assert_int_equal(
        sl_traceparent_parse(str("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-09"), &c),
        0);
    assert_int_equal(c.flags, 9);
    /* Our own output is always version 00. */
    char out[SL_TRACEPARENT_LEN + 1];
    sl_traceparent_format(&c, out);
    assert_memory_equal(out, "00-", 3);
    assert_int_equal(sl_traceparent_parse(
                         str("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01.extra"), &c),
                     SL_EPARSE);
    assert_int_equal(
        sl_traceparent_parse(str("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x"), &c),
        SL_EPARSE);
}

static int ts(const char *v) {
    sl_trace_ctx_t c;
    memset(&c, 0, sizeof c);
    int rc = sl_tracestate_parse(str(v), &c);
    if (rc == 0)
        assert_string_equal(c.tracestate, v);
    else
        assert_string_equal(c.tracestate, "");
    return rc;
}

static void test_tracestate(void **state) {
    assert_int_equal(ts("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"), 0);
    assert_int_equal(ts("fw529a3039@dt=Z"), 0);
    assert_int_equal(ts("a=1 , b=2\t,c=x y"), 0);
    assert_int_equal(ts("a=1,,b=2"), 0); /* empty members are allowed */
    assert_int_equal(ts("k/*_-9=!\"#$%&'()*+-./:;<>?@[\\]^_`{|}~"), 0);
    const char *bad[] = {
        "",      " ",      ",",    "A=1",  "1a=1",  "a=",      "a",          "a=b,c", "a=1,a=2",
        "a=b=c", "a=\x01", "@a=1", "a@=1", "a@1=1", "a@b@c=1", "a=1,b=\x7f", "é=1",   NULL};
    for (int i = 0; bad[i]; i++) {
        if (ts(bad[i]) != SL_EPARSE) fail_msg("accepted tracestate '%s'", bad[i]);
    }
    /* Keys: simple keys up to 256, tenant ids up to 241, system ids up to 14. */
    char buf[1024];
    memset(buf, 'k', 256);
    strcpy(buf + 256, "=v");
    assert_int_equal(ts(buf), 0);
    memset(buf, 'k', 257);
    strcpy(buf + 257, "=v");
    assert_int_equal(ts(buf), SL_EPARSE);
    memset(buf, 't', 241);
    strcpy(buf + 241, "@abcdefghijklmn=v");
    assert_int_equal(ts(buf), 0);
    memset(buf, 't', 242);
    strcpy(buf + 242, "@s=v");
    assert_int_equal(ts(buf), SL_EPARSE);
    strcpy(buf, "t@abcdefghijklmno=v");
    assert_int_equal(ts(buf), SL_EPARSE);

    /* 32 members are fine, 33 are not. */
    size_t n = 0;
    for (int i = 0; i < 32; i++)
        n += (size_t)sprintf(buf + n, "%sk%d=v", i ? "," : "", i);
    assert_int_equal(ts(buf), 0);
    sprintf(buf + n, ",k32=v");
    assert_int_equal(ts(buf), SL_EPARSE);

    /* 512 bytes are fine, 513 are not. */
    memset(buf, 0, sizeof buf);
    strcpy(buf, "a=");
    memset(buf + 2, 'v', 256);
    strcpy(buf + 258, ",b=");
    memset(buf + 261, 'w', 251);
    assert_int_equal(strlen(buf), 512);
    assert_int_equal(ts(buf), 0);
    buf[512] = 'w';
    assert_int_equal(ts(buf), SL_EPARSE);
}

static sl_tracer_t *local_tracer(double ratio) {
    sl_tracer_opts_t o = {.service_name = "t", .sample_ratio = ratio};
    int err = 1;
    sl_tracer_t *t = sl_tracer_new(&o, NULL, &err);
    assert_non_null(t);
    assert_int_equal(err, 0);
    return t;
}

static void done_flag(void *arg) {
    *(bool *)arg = true;
}

static void shutdown_sync(sl_tracer_t *t, uv_loop_t *loop) {
    bool done = false;
    sl_tracer_shutdown(t, done_flag, &done);
    if (loop) {
        uint64_t end = sl_now_ms() + 10000;
        while (!done && sl_now_ms() < end)
            uv_run(loop, UV_RUN_ONCE);
    }
    assert_true(done);
}

static void test_sampling_ratio_0_and_1(void **state) {
    sl_tracer_t *t = local_tracer(0);
    for (int i = 0; i < 1000; i++) {
        sl_span_t *s = sl_span_start(t, "root", SL_SPAN_SERVER, NULL);
        assert_false(sl_span_sampled(s));
        assert_int_equal(sl_span_ctx(s)->flags, 0);
        sl_span_end(s);
    }
    sl_tracer_set_sample_ratio(t, 1);
    for (int i = 0; i < 1000; i++) {
        sl_span_t *s = sl_span_start(t, "root", SL_SPAN_SERVER, NULL);
        assert_true(sl_span_sampled(s));
        assert_int_equal(sl_span_ctx(s)->flags, 1);
        sl_span_end(s);
    }
    shutdown_sync(t, NULL);
}

static void test_parent_flag_respected(void **state) {
    sl_trace_ctx_t parent;
    assert_int_equal(sl_traceparent_parse(str(TP_VALID), &parent), 0);
    assert_int_equal(sl_tracestate_parse(str("rojo=1"), &parent), 0);
    sl_tracer_t *t = local_tracer(0); /* the ratio does not apply to children */
    sl_span_t *s = sl_span_start(t, "child", SL_SPAN_SERVER, &parent);
    assert_true(sl_span_sampled(s));
    const sl_trace_ctx_t *c = sl_span_ctx(s);
    assert_memory_equal(c->trace_id, parent.trace_id, 16);
    assert_memory_not_equal(c->span_id, parent.span_id, 8);
    assert_string_equal(c->tracestate, "rojo=1");
    sl_span_end(s);

    sl_tracer_set_sample_ratio(t, 1);
    parent.flags = 0;
    s = sl_span_start(t, "child", SL_SPAN_SERVER, &parent);
    assert_false(sl_span_sampled(s));
    sl_span_end(s);

    /* An invalid parent (zero ids) starts a new trace. */
    sl_trace_ctx_t zero = {0};
    s = sl_span_start(t, "root", SL_SPAN_SERVER, &zero);
    assert_true(sl_span_sampled(s));
    assert_memory_not_equal(sl_span_ctx(s)->trace_id, zero.trace_id, 16);
    sl_span_end(s);
    shutdown_sync(t, NULL);

    /* Without a tracer a span only carries context. */
    s = sl_span_start(NULL, "x", SL_SPAN_CLIENT, &parent);
    assert_memory_equal(sl_span_ctx(s)->trace_id, parent.trace_id, 16);
    sl_span_end(s);
}

static void test_sampling_ratio_quarter(void **state) {
    sl_tracer_t *t = local_tracer(0.25);
    const uint64_t threshold = (uint64_t)(0.25 * 18446744073709551616.0);
    int sampled = 0;
    for (int i = 0; i < 10000; i++) {
        sl_span_t *s = sl_span_start(t, "root", SL_SPAN_SERVER, NULL);
        const sl_trace_ctx_t *c = sl_span_ctx(s);
        uint64_t low = 0;
        for (int b = 8; b < 16; b++)
            low = low << 8 | c->trace_id[b];
        /* Deterministic: the decision is exactly the trace id rule. */
        assert_int_equal(sl_span_sampled(s), low < threshold);
        assert_false(c->trace_id[0] == 0 && memcmp(c->trace_id, (uint8_t[16]){0}, 16) == 0);
        sampled += sl_span_sampled(s);
        sl_span_end(s);
    }
    /* Binomial(10000, 0.25): sd ~43; 2250..2750 is more than 5 sd either way. */
    assert_in_range(sampled, 2250, 2750);
    shutdown_sync(t, NULL);
}

static void test_bad_options(void **state) {
    int err = 0;
    sl_tracer_opts_t o = {
        .service_name = "x", .endpoint = "https://collector:4318/v1/traces", .sample_ratio = 1};
    uv_loop_t loop;
    uv_loop_init(&loop);
    assert_null(sl_tracer_new(&o, &loop, &err));
    assert_int_equal(err, SL_EINVAL);
    o.endpoint = "collector:4318";
    err = 0;
    assert_null(sl_tracer_new(&o, &loop, &err));
    assert_int_equal(err, SL_EINVAL);
    o.endpoint = NULL;
    o.sample_ratio = 0.0 / 0.0;
    err = 0;
    assert_null(sl_tracer_new(&o, &loop, &err));
    assert_int_equal(err, SL_EINVAL);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static sl_tracer_t *exporting_tracer(uv_loop_t *loop, uint32_t queue, uint32_t batch) {
    /* Port 1 on loopback: nothing listens, so nothing is ever accepted. */
    sl_tracer_opts_t o = {.service_name = "t",
                          .endpoint = "http://127.0.0.1:1/v1/traces",
                          .sample_ratio = 1,
                          .queue_size = queue,
                          .batch_size = batch,
                          .flush_interval_ms = 60000,
                          .export_timeout_ms = 2000};
    int err = 1;
    sl_tracer_t *t = sl_tracer_new(&o, loop, &err);
    assert_non_null(t);
    return t;
}

static void test_attributes_cap(void **state) {
    uv_loop_t loop;
    uv_loop_init(&loop);
    sl_tracer_t *t = exporting_tracer(&loop, 16, 16);
    sl_span_t *s = sl_span_start(t, "GET /v1/predict", SL_SPAN_SERVER, NULL);
    char key[32], big[600];
    memset(big, 'z', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    for (int i = 0; i < 20; i++) {
        snprintf(key, sizeof key, "attr.%d", i);
        if (i % 2)
            sl_span_attr_int(s, key, -1234567890123LL * i);
        else
            sl_span_attr_str(s, key, i == 4 ? big : "v");
    }
    sl_span_attr_str(s, "attr.0", "again"); /* existing key: overwritten, not added */
    sl_span_set_error(s, "upstream timed out");
    const sl_otlp_span_t *r = sl_span__record(s);
    assert_int_equal(r->n_attrs, SL_OTLP_MAX_ATTRS);
    assert_string_equal(r->attrs[0].key, "attr.0");
    assert_string_equal(r->attrs[0].str, "again");
    assert_null(r->attrs[1].str);
    assert_int_equal(r->attrs[1].i, -1234567890123LL);
    assert_string_equal(r->attrs[4].str, big);
    assert_string_equal(r->attrs[15].key, "attr.15");
    assert_string_equal(r->name, "GET /v1/predict");
    assert_int_equal(r->kind, SL_SPAN_SERVER);
    assert_int_equal(r->status_code, 2);
    assert_string_equal(r->status_message, "upstream timed out");
    assert_false(r->has_parent);
    assert_true(r->start_ns > 1600000000ull * 1000000000ull);
    sl_span_end(s);
    shutdown_sync(t, &loop);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static uint64_t dropped_metric(const char *reason) {
    const char *labels[] = {"reason"};
    sl_metric_family_t *f = sl_metrics_counter_family(
        sl_metrics_default(), "sluice_trace_spans_dropped_total", "", 1, labels, 2);
    return sl_counter_value(sl_metric_counter(f, (const char *const[]){reason}));
}

static void test_queue_overflow_counts_drops(void **state) {
    uv_loop_t loop;
    uv_loop_init(&loop);
    uint64_t full0 = dropped_metric("queue_full"), failed0 = dropped_metric("export_failed");
    sl_tracer_t *t = exporting_tracer(&loop, 8, 4);
    /* The export loop does not run yet, so nothing leaves the queue. */
    for (int i = 0; i < 20; i++)
        sl_span_end(sl_span_start(t, "s", SL_SPAN_INTERNAL, NULL));
    assert_int_equal(sl_tracer_dropped(t), 12);
    assert_int_equal(dropped_metric("queue_full") - full0, 12);
    /* Unsampled spans never reach the queue, so they are not drops. */
    sl_tracer_set_sample_ratio(t, 0);
    for (int i = 0; i < 5; i++)
        sl_span_end(sl_span_start(t, "s", SL_SPAN_INTERNAL, NULL));
    assert_int_equal(sl_tracer_dropped(t), 12);
    assert_int_equal(sl_tracer_exported(t), 0);
    /* Shutdown tries the (absent) collector: the 8 queued spans fail and are counted. */
    shutdown_sync(t, &loop);
    assert_int_equal(dropped_metric("export_failed") - failed0, 8);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_traceparent_valid),
        cmocka_unit_test(test_traceparent_invalid),
        cmocka_unit_test(test_traceparent_future_version),
        cmocka_unit_test(test_tracestate),
        cmocka_unit_test(test_sampling_ratio_0_and_1),
        cmocka_unit_test(test_parent_flag_respected),
        cmocka_unit_test(test_sampling_ratio_quarter),
        cmocka_unit_test(test_bad_options),
        cmocka_unit_test(test_attributes_cap),
        cmocka_unit_test(test_queue_overflow_counts_drops),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
