/* Unit tests for the OTLP/HTTP JSON exporter: the encoding checked with cJSON, and end-to-end
 * export to a tiny collector on the test's libuv loop (127.0.0.1 port 0) that records each POST:
 * the exact body shape, batching, flush on interval, failures counted, spans from many threads. */
#include "core/buf.h"
#include "core/common.h"
#include "core/metrics.h"
#include "core/otlp.h"
#include "core/trace.h"

#include <cJSON.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cmocka.h>

/* ---- the collector ----------------------------------------------------------------------- */

#define MAX_POSTS 64

typedef struct collector collector_t;
typedef struct cconn {
    uv_tcp_t tcp;
    collector_t *col;
    sl_buf_t in;
} cconn_t;

struct collector {
    uv_loop_t *loop;
    uv_tcp_t listener;
    uint16_t port;
    int answer; /* HTTP status to answer with */
    unsigned n_posts;
    char *bodies[MAX_POSTS];
    char paths[MAX_POSTS][64];
    char content_types[MAX_POSTS][64];
    uint64_t at_ms[MAX_POSTS];
    cconn_t *conns[16];
    unsigned n_conns;
};

static void cconn_closed(uv_handle_t *h) {
    cconn_t *cc = h->data;
    for (unsigned i = 0; i < cc->col->n_conns; i++) {
        if (cc->col->conns[i] == cc) cc->col->conns[i] = NULL;
    }
    sl_buf_free(&cc->in);
    free(cc);
}

static void cwrite_cb(uv_write_t *w, int status) {
    free(w);
}

static void header_value(const char *head, const char *name, char *out, size_t outsz) {
    out[0] = '\0';
    size_t nl = strlen(name);
    for (const char *p = strstr(head, "\r\n"); p; p = strstr(p + 2, "\r\n")) {
        if (strncasecmp(p + 2, name, nl) == 0 && p[2 + nl] == ':') {
            const char *v = p + 3 + nl;
            while (*v == ' ')
                v++;
            snprintf(out, outsz, "%.*s", (int)strcspn(v, "\r"), v);
            return;
        }
    }
}

static void cconn_process(cconn_t *cc) {
    collector_t *col = cc->col;
    for (;;) {
        char *end = cc->in.data ? strstr(cc->in.data, "\r\n\r\n") : NULL;
        if (!end) return;
        size_t head_len = (size_t)(end - cc->in.data) + 4;
        char head[4096], cl[32];
        snprintf(head, sizeof head, "%.*s", (int)head_len, cc->in.data);
        header_value(head, "content-length", cl, sizeof cl);
        size_t body_len = strtoul(cl, NULL, 10);
        if (cc->in.len < head_len + body_len) return;
        if (col->n_posts < MAX_POSTS) {
            unsigned i = col->n_posts++;
            col->bodies[i] = sl_strndup(cc->in.data + head_len, body_len);
            sscanf(head, "POST %63s", col->paths[i]);
            header_value(head, "content-type", col->content_types[i], 64);
            col->at_ms[i] = sl_now_ms();
        }
        sl_buf_consume(&cc->in, head_len + body_len);
        struct {
            uv_write_t w;
            char text[128];
        } *wr = malloc(sizeof *wr);
        int n = snprintf(wr->text, sizeof wr->text, "HTTP/1.1 %d X\r\nContent-Length: 2\r\n\r\n{}",
                         col->answer);
        uv_buf_t b = uv_buf_init(wr->text, (unsigned)n);
        uv_write(&wr->w, (uv_stream_t *)&cc->tcp, &b, 1, cwrite_cb);
    }
}

static void calloc_cb(uv_handle_t *h, size_t sz, uv_buf_t *b) {
    static char mem[65536];
    *b = uv_buf_init(mem, sizeof mem);
}

static void cread(uv_stream_t *s, ssize_t n, const uv_buf_t *b) {
    cconn_t *cc = s->data;
    if (n < 0) {
        if (!uv_is_closing((uv_handle_t *)s)) uv_close((uv_handle_t *)s, cconn_closed);
        return;
    }
    sl_buf_append(&cc->in, b->base, (size_t)n);
    cconn_process(cc);
}

static void con_cb(uv_stream_t *l, int status) {
    collector_t *col = l->data;
    cconn_t *cc = calloc(1, sizeof *cc);
    cc->col = col;
    uv_tcp_init(col->loop, &cc->tcp);
    cc->tcp.data = cc;
    assert_int_equal(uv_accept(l, (uv_stream_t *)&cc->tcp), 0);
    if (col->n_conns < SL_ARRAY_LEN(col->conns)) col->conns[col->n_conns++] = cc;
    uv_read_start((uv_stream_t *)&cc->tcp, calloc_cb, cread);
}

static void collector_start(collector_t *col, uv_loop_t *loop, int answer) {
    memset(col, 0, sizeof *col);
    col->loop = loop;
    col->answer = answer;
    uv_tcp_init(loop, &col->listener);
    col->listener.data = col;
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", 0, &a);
    assert_int_equal(uv_tcp_bind(&col->listener, (struct sockaddr *)&a, 0), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&col->listener, 16, con_cb), 0);
    struct sockaddr_storage ss;
    int len = sizeof ss;
    uv_tcp_getsockname(&col->listener, (struct sockaddr *)&ss, &len);
    col->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

static void collector_stop(collector_t *col) {
    for (unsigned i = 0; i < col->n_conns; i++) {
        if (!col->conns[i]) continue;
        uv_handle_t *h = (uv_handle_t *)&col->conns[i]->tcp;
        if (!uv_is_closing(h)) uv_close(h, cconn_closed);
    }
    uv_close((uv_handle_t *)&col->listener, NULL);
    for (unsigned i = 0; i < col->n_posts; i++)
        free(col->bodies[i]);
}

/* ---- harness ----------------------------------------------------------------------------- */

static void tick_cb(uv_timer_t *t) {}

/* Runs the loop until cond(arg) holds or the deadline passes. */
static bool run_until(uv_loop_t *loop, bool (*cond)(void *), void *arg, uint64_t deadline_ms) {
    uv_timer_t tick;
    uv_timer_init(loop, &tick);
    uv_timer_start(&tick, tick_cb, 5, 5);
    uint64_t end = sl_now_ms() + deadline_ms;
    bool ok;
    while (!(ok = cond(arg)) && sl_now_ms() < end)
        uv_run(loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&tick, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
    return ok;
}

typedef struct {
    collector_t *col;
    unsigned n;
} posts_arg_t;

static bool have_posts(void *arg) {
    posts_arg_t *p = arg;
    return p->col->n_posts >= p->n;
}

static bool flag_set(void *arg) {
    return *(bool *)arg;
}

static void done_flag(void *arg) {
    *(bool *)arg = true;
}

static void shutdown_and_close(sl_tracer_t *t, uv_loop_t *loop, collector_t *col) {
    bool done = false;
    sl_tracer_shutdown(t, done_flag, &done);
    assert_true(run_until(loop, flag_set, &done, 10000));
    collector_stop(col);
    uv_run(loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(loop), 0);
}

static sl_tracer_t *tracer_to(collector_t *col, uv_loop_t *loop, uint32_t batch,
                              uint32_t flush_ms) {
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%u/v1/traces", col->port);
    sl_tracer_opts_t o = {.service_name = "svc-test",
                          .endpoint = url,
                          .sample_ratio = 1,
                          .queue_size = 4096,
                          .batch_size = batch,
                          .flush_interval_ms = flush_ms,
                          .export_timeout_ms = 3000};
    int err = 1;
    sl_tracer_t *t = sl_tracer_new(&o, loop, &err);
    assert_non_null(t);
    assert_int_equal(err, 0);
    return t;
}

static uint64_t metric(const char *reason) {
    sl_metrics_t *m = sl_metrics_default();
    if (!reason)
        return sl_counter_value(sl_metrics_counter(m, "sluice_trace_spans_exported_total", ""));
    const char *labels[] = {"reason"};
    sl_metric_family_t *f =
        sl_metrics_counter_family(m, "sluice_trace_spans_dropped_total", "", 1, labels, 2);
    return sl_counter_value(sl_metric_counter(f, (const char *const[]){reason}));
}

static unsigned spans_in(const char *body) {
    cJSON *root = cJSON_Parse(body);
    assert_non_null(root);
    cJSON *spans = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetArrayItem(
            cJSON_GetObjectItemCaseSensitive(
                cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(root, "resourceSpans"), 0),
                "scopeSpans"),
            0),
        "spans");
    assert_true(cJSON_IsArray(spans));
    unsigned n = (unsigned)cJSON_GetArraySize(spans);
    cJSON_Delete(root);
    return n;
}

static const char *jstr(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    assert_true(cJSON_IsString(v));
    return v->valuestring;
}

static bool all_digits(const char *s) {
    if (!*s) return false;
    for (; *s; s++) {
        if (*s < '0' || *s > '9') return false;
    }
    return true;
}

/* ---- tests ------------------------------------------------------------------------------- */

static void test_encode_escapes_and_utf8(void **state) {
    sl_otlp_span_t s = {.trace_id = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16},
                        .span_id = {0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 1},
                        .name = "say \"hi\"\n\xff\xfe ok \xc3\xa9",
                        .kind = SL_SPAN_INTERNAL,
                        .start_ns = 18446744073709551615ull,
                        .end_ns = 1,
                        .n_attrs = 2,
                        .attrs = {{.key = "neg", .i = INT64_MIN}, {.key = "k\\", .str = "\x01"}},
                        .status_code = 2};
    const sl_otlp_span_t *arr[] = {&s};
    sl_buf_t b = SL_BUF_INIT;
    sl_otlp__encode("svc \xe2\x82", arr, 1, &b);
    cJSON *root = cJSON_Parse(b.data);
    assert_non_null(root); /* valid JSON even for invalid UTF-8 input */
    const cJSON *rs = cJSON_GetArrayItem(cJSON_GetObjectItem(root, "resourceSpans"), 0);
    const cJSON *attr0 = cJSON_GetArrayItem(
        cJSON_GetObjectItem(cJSON_GetObjectItem(rs, "resource"), "attributes"), 0);
    assert_string_equal(jstr(cJSON_GetObjectItem(attr0, "value"), "stringValue"),
                        "svc \xef\xbf\xbd"); /* one U+FFFD per maximal ill-formed subpart */
    const cJSON *span = cJSON_GetArrayItem(
        cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(rs, "scopeSpans"), 0), "spans"),
        0);
    assert_string_equal(jstr(span, "traceId"), "0102030405060708090a0b0c0d0e0f10");
    assert_string_equal(jstr(span, "spanId"), "deadbeef00000001");
    assert_string_equal(jstr(span, "name"), "say \"hi\"\n\xef\xbf\xbd\xef\xbf\xbd ok \xc3\xa9");
    assert_null(cJSON_GetObjectItem(span, "parentSpanId"));
    assert_null(cJSON_GetObjectItem(span, "traceState"));
    assert_string_equal(jstr(span, "startTimeUnixNano"), "18446744073709551615");
    const cJSON *attrs = cJSON_GetObjectItem(span, "attributes");
    assert_string_equal(
        jstr(cJSON_GetObjectItem(cJSON_GetArrayItem(attrs, 0), "value"), "intValue"),
        "-9223372036854775808");
    assert_string_equal(jstr(cJSON_GetArrayItem(attrs, 1), "key"), "k\\");
    const cJSON *st = cJSON_GetObjectItem(span, "status");
    assert_int_equal(cJSON_GetObjectItem(st, "code")->valueint, 2);
    assert_null(cJSON_GetObjectItem(st, "message"));
    cJSON_Delete(root);
    sl_buf_free(&b);
}

static void test_export_shape(void **state) {
    uv_loop_t loop;
    uv_loop_init(&loop);
    collector_t col;
    collector_start(&col, &loop, 200);
    uint64_t exported0 = metric(NULL);
    sl_tracer_t *t = tracer_to(&col, &loop, 3, 60000);

    sl_trace_ctx_t incoming;
    assert_int_equal(
        sl_traceparent_parse(
            (sl_str_t)SL_STR("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"), &incoming),
        0);
    assert_int_equal(sl_tracestate_parse((sl_str_t)SL_STR("rojo=1"), &incoming), 0);
    sl_span_t *server = sl_span_start(t, "POST /v1/predict/fraud", SL_SPAN_SERVER, &incoming);
    sl_span_attr_str(server, "http.method", "GET");
    sl_span_attr_int(server, "http.status_code", 200);
    sl_span_t *client =
        sl_span_start(t, "features.GetFeatures", SL_SPAN_CLIENT, sl_span_ctx(server));
    sl_span_set_error(client, "deadline exceeded");
    sl_span_t *root = sl_span_start(t, "warmup", SL_SPAN_INTERNAL, NULL);
    char ids[3][2][33];
    sl_span_t *all[3] = {server, client, root};
    for (int i = 0; i < 3; i++) {
        sl_trace_id_hex(sl_span_ctx(all[i]), ids[i][0]);
        sl_span_id_hex(sl_span_ctx(all[i]), ids[i][1]);
    }
    sl_span_end(client);
    sl_span_end(server);
    sl_span_end(root); /* the batch is full: it goes out without waiting for the interval */

    posts_arg_t pa = {&col, 1};
    assert_true(run_until(&loop, have_posts, &pa, 5000));
    assert_string_equal(col.paths[0], "/v1/traces");
    assert_string_equal(col.content_types[0], "application/json");

    cJSON *body = cJSON_Parse(col.bodies[0]);
    assert_non_null(body);
    const cJSON *rs = cJSON_GetObjectItemCaseSensitive(body, "resourceSpans");
    assert_int_equal(cJSON_GetArraySize(rs), 1);
    const cJSON *res = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(rs, 0), "resource");
    const cJSON *ra = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(res, "attributes"), 0);
    assert_string_equal(jstr(ra, "key"), "service.name");
    assert_string_equal(jstr(cJSON_GetObjectItemCaseSensitive(ra, "value"), "stringValue"),
                        "svc-test");
    const cJSON *ss = cJSON_GetArrayItem(
        cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(rs, 0), "scopeSpans"), 0);
    assert_string_equal(jstr(cJSON_GetObjectItemCaseSensitive(ss, "scope"), "name"), "sluice");
    const cJSON *spans = cJSON_GetObjectItemCaseSensitive(ss, "spans");
    assert_int_equal(cJSON_GetArraySize(spans), 3);

    /* Spans arrive in the order they ended: client, server, root. */
    const int order[3] = {1, 0, 2};
    const int kinds[3] = {2, 3, 1};
    for (int j = 0; j < 3; j++) {
        const cJSON *sp = cJSON_GetArrayItem(spans, j);
        int i = order[j];
        assert_string_equal(jstr(sp, "traceId"), ids[i][0]);
        assert_string_equal(jstr(sp, "spanId"), ids[i][1]);
        assert_int_equal(cJSON_GetObjectItemCaseSensitive(sp, "kind")->valueint, kinds[i]);
        assert_true(cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(sp, "kind")));
        const char *start = jstr(sp, "startTimeUnixNano"), *end = jstr(sp, "endTimeUnixNano");
        assert_true(all_digits(start) && all_digits(end));
        assert_true(strtoull(start, NULL, 10) <= strtoull(end, NULL, 10));
    }
    const cJSON *c_sp = cJSON_GetArrayItem(spans, 0), *s_sp = cJSON_GetArrayItem(spans, 1),
                *r_sp = cJSON_GetArrayItem(spans, 2);
    /* Children carry their parent's span id; the root has none. */
    assert_string_equal(jstr(s_sp, "traceId"), "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_string_equal(jstr(s_sp, "parentSpanId"), "00f067aa0ba902b7");
    assert_string_equal(jstr(s_sp, "traceState"), "rojo=1");
    assert_string_equal(jstr(c_sp, "parentSpanId"), ids[0][1]);
    assert_string_equal(jstr(c_sp, "traceId"), ids[0][0]);
    assert_null(cJSON_GetObjectItemCaseSensitive(r_sp, "parentSpanId"));
    assert_string_equal(jstr(s_sp, "name"), "POST /v1/predict/fraud");
    /* Attributes: strings as stringValue, int64 as a decimal string in intValue. */
    const cJSON *attrs = cJSON_GetObjectItemCaseSensitive(s_sp, "attributes");
    assert_int_equal(cJSON_GetArraySize(attrs), 2);
    const cJSON *a0 = cJSON_GetArrayItem(attrs, 0), *a1 = cJSON_GetArrayItem(attrs, 1);
    assert_string_equal(jstr(a0, "key"), "http.method");
    assert_string_equal(jstr(cJSON_GetObjectItemCaseSensitive(a0, "value"), "stringValue"), "GET");
    assert_string_equal(jstr(a1, "key"), "http.status_code");
    assert_string_equal(jstr(cJSON_GetObjectItemCaseSensitive(a1, "value"), "intValue"), "200");
    /* Status: omitted when unset, code 2 with the message on error. */
    assert_null(cJSON_GetObjectItemCaseSensitive(s_sp, "status"));
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(c_sp, "status");
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(st, "code")->valueint, 2);
    assert_string_equal(jstr(st, "message"), "deadline exceeded");
    cJSON_Delete(body);

    assert_int_equal(sl_tracer_exported(t), 3);
    assert_int_equal(metric(NULL) - exported0, 3);
    shutdown_and_close(t, &loop, &col);
}

static void test_batches_and_shutdown_flush(void **state) {
    uv_loop_t loop;
    uv_loop_init(&loop);
    collector_t col;
    collector_start(&col, &loop, 200);
    uint64_t exported0 = metric(NULL);
    sl_tracer_t *t = tracer_to(&col, &loop, 4, 60000);
    for (int i = 0; i < 10; i++)
        sl_span_end(sl_span_start(t, "s", SL_SPAN_INTERNAL, NULL));
    posts_arg_t pa = {&col, 2};
    assert_true(run_until(&loop, have_posts, &pa, 5000));
    /* Two full batches went out; the last two spans wait for the interval (a minute away). */
    bool never = false;
    run_until(&loop, flag_set, &never, 100);
    assert_int_equal(col.n_posts, 2);
    assert_int_equal(spans_in(col.bodies[0]), 4);
    assert_int_equal(spans_in(col.bodies[1]), 4);
    /* Shutdown flushes what is queued. */
    bool done = false;
    sl_tracer_shutdown(t, done_flag, &done);
    assert_true(run_until(&loop, flag_set, &done, 5000));
    assert_int_equal(col.n_posts, 3);
    assert_int_equal(spans_in(col.bodies[2]), 2);
    assert_int_equal(metric(NULL) - exported0, 10);
    collector_stop(&col);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_flush_on_interval(void **state) {
    uv_loop_t loop;
    uv_loop_init(&loop);
    collector_t col;
    collector_start(&col, &loop, 200);
    sl_tracer_t *t = tracer_to(&col, &loop, 100, 150);
    uint64_t t0 = sl_now_ms();
    for (int i = 0; i < 3; i++)
        sl_span_end(sl_span_start(t, "s", SL_SPAN_INTERNAL, NULL));
    posts_arg_t pa = {&col, 1};
    assert_true(run_until(&loop, have_posts, &pa, 5000));
    assert_true(col.at_ms[0] - t0 >= 140); /* a partial batch waits for the interval */
    assert_int_equal(spans_in(col.bodies[0]), 3);
    assert_int_equal(sl_tracer_exported(t), 3);
    shutdown_and_close(t, &loop, &col);
}

static void test_collector_error_counts_drops(void **state) {
    uv_loop_t loop;
    uv_loop_init(&loop);
    collector_t col;
    collector_start(&col, &loop, 500);
    uint64_t exported0 = metric(NULL), failed0 = metric("export_failed");
    sl_tracer_t *t = tracer_to(&col, &loop, 5, 60000);
    for (int i = 0; i < 10; i++)
        sl_span_end(sl_span_start(t, "s", SL_SPAN_INTERNAL, NULL));
    posts_arg_t pa = {&col, 2};
    assert_true(run_until(&loop, have_posts, &pa, 5000));
    /* Each failed batch is dropped (no retry), and the next one still goes. */
    uint64_t end = sl_now_ms() + 5000;
    while (metric("export_failed") - failed0 < 10 && sl_now_ms() < end) {
        bool never = false;
        run_until(&loop, flag_set, &never, 10);
    }
    assert_int_equal(metric("export_failed") - failed0, 10);
    assert_int_equal(col.n_posts, 2);
    assert_int_equal(sl_tracer_exported(t), 0);
    assert_int_equal(metric(NULL) - exported0, 0);
    shutdown_and_close(t, &loop, &col);
}

typedef struct {
    sl_tracer_t *t;
    int n;
} producer_t;

static void *producer(void *arg) {
    producer_t *p = arg;
    for (int i = 0; i < p->n; i++) {
        sl_span_t *s = sl_span_start(p->t, "work", SL_SPAN_INTERNAL, NULL);
        sl_span_attr_int(s, "i", i);
        sl_span_end(s);
    }
    return NULL;
}

static void test_spans_from_many_threads(void **state) {
    uv_loop_t loop;
    uv_loop_init(&loop);
    collector_t col;
    collector_start(&col, &loop, 200);
    sl_tracer_t *t = tracer_to(&col, &loop, 500, 50);
    pthread_t th[4];
    producer_t p = {t, 500};
    for (int i = 0; i < 4; i++)
        pthread_create(&th[i], NULL, producer, &p);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    bool done = false;
    sl_tracer_shutdown(t, done_flag, &done);
    assert_true(run_until(&loop, flag_set, &done, 10000));
    unsigned total = 0;
    for (unsigned i = 0; i < col.n_posts; i++) {
        unsigned n = spans_in(col.bodies[i]);
        assert_true(n <= 500);
        total += n;
    }
    assert_int_equal(total, 2000);
    collector_stop(&col);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_encode_escapes_and_utf8),
        cmocka_unit_test(test_export_shape),
        cmocka_unit_test(test_batches_and_shutdown_flush),
        cmocka_unit_test(test_flush_on_interval),
        cmocka_unit_test(test_collector_error_counts_drops),
        cmocka_unit_test(test_spans_from_many_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
