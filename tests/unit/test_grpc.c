/* gRPC end to end in one process: the runtime serves sl_grpc_proto() on 127.0.0.1 (port 0) on
 * its own thread; the C client runs on the test's loop. Echo (small and 1 MiB), many concurrent
 * calls, unknown method, deadlines, oversized messages, health, metadata and trace propagation,
 * connection failure, client free, and a graceful drain that lets an in-flight call finish. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "core/grpc.h"
#include "core/grpc_frame.h"
#include "core/health.h"
#include "core/metrics.h"
#include "core/runtime.h"
#include "core/trace.h"

#include "grpc/health/v1/health.pb-c.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

#define SERVER_NAME "test-grpc"
#define MAX_MESSAGE (2u << 20)
#define LATE_MS     300

typedef struct env {
    sl_runtime_t *rt;
    pthread_t th;
    bool running;
    sl_grpc_server_t *srv;
    sl_grpc_server_t *srv_idle;    /* idle_timeout_ms 300 */
    sl_grpc_server_t *srv_limited; /* max_connections 1 */
    sl_listener_t *ls_idle, *ls_limited;
    sl_health_t *health;
    uint16_t port;
    uv_loop_t loop;
    uv_timer_t tick;
    sl_grpc_client_t *client;
} env_t;

static env_t E;
static atomic_int g_late_replied;
static atomic_bool g_late_saw_cancel;
static atomic_bool g_late_had_deadline;

/* ---- server-side handlers used by the tests ---- */

typedef struct late {
    uv_timer_t timer;
    sl_grpc_call_t *call;
} late_t;

static void late_closed(uv_handle_t *h) {
    free(h->data);
}

static void late_fire(uv_timer_t *t) {
    late_t *l = t->data;
    atomic_store(&g_late_saw_cancel, sl_grpc_call_cancelled(l->call));
    sl_grpc_reply(l->call, "late", 4); /* possibly after the deadline: must be dropped safely */
    atomic_fetch_add(&g_late_replied, 1);
    uv_close((uv_handle_t *)t, late_closed);
}

/* Answers LATE_MS later, from a timer on the call's loop. */
static void late_handler(sl_grpc_call_t *call, const uint8_t *msg, size_t len, void *ctx) {
    late_t *l = sl_calloc(1, sizeof *l);
    l->call = call;
    atomic_store(&g_late_had_deadline, sl_grpc_call_deadline_ms(call) != 0);
    uv_timer_init(sl_grpc_call_loop(call), &l->timer);
    l->timer.data = l;
    uv_timer_start(&l->timer, late_fire, LATE_MS, 0);
}

/* Replies "<x-test metadata>|<trace id hex>|<deadline set>". */
static void meta_handler(sl_grpc_call_t *call, const uint8_t *msg, size_t len, void *ctx) {
    sl_buf_t out = SL_BUF_INIT;
    sl_str_t v = sl_grpc_call_metadata(call, "x-test");
    sl_buf_append(&out, v.ptr ? v.ptr : "-", v.ptr ? v.len : 1);
    char tid[33];
    sl_trace_id_hex(sl_grpc_call_trace(call), tid);
    sl_buf_printf(&out, "|%s|%d", tid, sl_grpc_call_deadline_ms(call) != 0);
    sl_grpc_reply(call, out.data, out.len);
    sl_buf_free(&out);
}

static void fail_handler(sl_grpc_call_t *call, const uint8_t *msg, size_t len, void *ctx) {
    sl_grpc_fail(call, SL_GRPC_UNAVAILABLE, "model busy: 100% of slots\nin use");
}

/* ---- client side helpers ---- */

typedef struct result {
    bool done;
    int code;
    char message[256];
    sl_buf_t resp;
} result_t;

static void on_result(int code, const char *message, const uint8_t *resp, size_t len, void *arg) {
    result_t *r = arg;
    assert_false(r->done); /* exactly once */
    r->done = true;
    r->code = code;
    snprintf(r->message, sizeof r->message, "%s", message);
    if (resp) sl_buf_append(&r->resp, resp, len);
}

static void on_tick(uv_timer_t *t) {}

/* Runs the test loop until *flag or the deadline; a ticking timer keeps uv_run from blocking. */
static bool run_until(bool (*pred)(void *), void *arg, uint32_t timeout_ms) {
    uint64_t deadline = sl_now_ms() + timeout_ms;
    uv_timer_start(&E.tick, on_tick, 5, 5);
    while (!pred(arg) && sl_now_ms() < deadline)
        uv_run(&E.loop, UV_RUN_ONCE);
    uv_timer_stop(&E.tick);
    return pred(arg);
}

static bool result_done(void *arg) {
    return ((result_t *)arg)->done;
}

static result_t call_sync(sl_grpc_client_t *c, const char *path, const void *msg, size_t len,
                          uint32_t timeout_ms) {
    result_t r = {0};
    assert_int_equal(sl_grpc_client_call(c, path, msg, len, timeout_ms, NULL, on_result, &r), 0);
    assert_false(r.done); /* never called before the call returns */
    assert_true(run_until(result_done, &r, 10000));
    return r;
}

static uint64_t server_count(const char *method, const char *code) {
    static const char *const labels[] = {"server", "method", "code"};
    sl_metric_family_t *f = sl_metrics_counter_family(
        sl_metrics_default(), "sluice_grpc_requests_total",
        "gRPC calls answered, by server, method and status code", 3, labels, 4096);
    const char *values[] = {SERVER_NAME, method, code};
    return sl_counter_value(sl_metric_counter(f, values));
}

static void *run_thread(void *arg) {
    sl_runtime_run(arg);
    return NULL;
}

/* ---- fixture ---- */

static int setup(void **state) {
    sl_runtime_opts_t ro = {.io_threads = 2, .worker_threads = 1, .drain_timeout_ms = 5000};
    E.rt = sl_runtime_new(&ro);
    sl_grpc_limits_t lim = sl_grpc_limits_default();
    lim.max_message_bytes = MAX_MESSAGE;
    lim.max_concurrent_streams = 16; /* the concurrency test goes beyond it */
    E.srv = sl_grpc_server_new(SERVER_NAME, &lim);
    E.health = sl_health_new("inference", NULL);
    assert_int_equal(sl_grpc_health_register(E.srv, E.health), 0);
    assert_int_equal(sl_grpc_echo_register(E.srv), 0);
    assert_int_equal(sl_grpc_server_add_method(E.srv, "/test.Slow/Late", late_handler, NULL), 0);
    assert_int_equal(sl_grpc_server_add_method(E.srv, "/test.Meta/Get", meta_handler, NULL), 0);
    assert_int_equal(sl_grpc_server_add_method(E.srv, "/test.Fail/Now", fail_handler, NULL), 0);
    sl_listener_t *ls;
    assert_int_equal(sl_grpc_server_listen(E.srv, E.rt, "127.0.0.1", 0, &ls), 0);
    E.port = sl_listener_port(ls);
    lim = sl_grpc_limits_default();
    lim.idle_timeout_ms = 300;
    E.srv_idle = sl_grpc_server_new(SERVER_NAME "-idle", &lim);
    sl_grpc_echo_register(E.srv_idle);
    assert_int_equal(sl_grpc_server_listen(E.srv_idle, E.rt, "127.0.0.1", 0, &E.ls_idle), 0);
    lim = sl_grpc_limits_default();
    lim.max_connections = 1;
    E.srv_limited = sl_grpc_server_new(SERVER_NAME "-limited", &lim);
    sl_grpc_echo_register(E.srv_limited);
    assert_int_equal(sl_grpc_server_listen(E.srv_limited, E.rt, "127.0.0.1", 0, &E.ls_limited), 0);
    assert_int_equal(pthread_create(&E.th, NULL, run_thread, E.rt), 0);
    E.running = true;
    assert_int_equal(uv_loop_init(&E.loop), 0);
    uv_timer_init(&E.loop, &E.tick);
    E.client = sl_grpc_client_new(&E.loop, "127.0.0.1", E.port, NULL);
    return 0;
}

static int teardown(void **state) {
    sl_grpc_client_free(E.client);
    uv_close((uv_handle_t *)&E.tick, NULL);
    uv_run(&E.loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&E.loop), 0);
    if (E.running) {
        sl_runtime_stop(E.rt);
        pthread_join(E.th, NULL);
    }
    sl_runtime_free(E.rt);
    sl_grpc_server_free(E.srv);
    sl_grpc_server_free(E.srv_idle);
    sl_grpc_server_free(E.srv_limited);
    sl_health_free(E.health);
    return 0;
}

/* ---- tests ---- */

static void test_echo_small(void **state) {
    result_t r = call_sync(E.client, "/sluice.v1.Echo/Echo", "hello", 5, 5000);
    assert_int_equal(r.code, SL_GRPC_OK);
    assert_int_equal(r.resp.len, 5);
    assert_memory_equal(r.resp.data, "hello", 5);
    assert_string_equal(r.message, "");
    sl_buf_free(&r.resp);
    /* An empty message is a valid message. */
    r = call_sync(E.client, "/sluice.v1.Echo/Echo", "", 0, 0);
    assert_int_equal(r.code, SL_GRPC_OK);
    assert_int_equal(r.resp.len, 0);
    sl_buf_free(&r.resp);
}

static void test_echo_1mib(void **state) {
    size_t n = 1u << 20;
    uint8_t *big = sl_malloc(n);
    sl_random_bytes(big, n);
    result_t r = call_sync(E.client, "/sluice.v1.Echo/Echo", big, n, 10000);
    assert_int_equal(r.code, SL_GRPC_OK);
    assert_int_equal(r.resp.len, n);
    assert_memory_equal(r.resp.data, big, n);
    sl_buf_free(&r.resp);
    free(big);
}

typedef struct many {
    result_t r[200];
    char payload[200][16];
} many_t;

static bool all_done(void *arg) {
    many_t *m = arg;
    for (size_t i = 0; i < SL_ARRAY_LEN(m->r); i++) {
        if (!m->r[i].done) return false;
    }
    return true;
}

static void test_many_concurrent(void **state) {
    many_t *m = sl_calloc(1, sizeof *m);
    /* 200 calls at once on one connection whose server allows 16 streams at a time. */
    for (size_t i = 0; i < SL_ARRAY_LEN(m->r); i++) {
        snprintf(m->payload[i], sizeof m->payload[i], "call-%zu", i);
        assert_int_equal(sl_grpc_client_call(E.client, "/sluice.v1.Echo/Echo", m->payload[i],
                                             strlen(m->payload[i]), 10000, NULL, on_result,
                                             &m->r[i]),
                         0);
    }
    assert_true(run_until(all_done, m, 15000));
    for (size_t i = 0; i < SL_ARRAY_LEN(m->r); i++) {
        assert_int_equal(m->r[i].code, SL_GRPC_OK);
        assert_int_equal(m->r[i].resp.len, strlen(m->payload[i]));
        assert_memory_equal(m->r[i].resp.data, m->payload[i], m->r[i].resp.len);
        sl_buf_free(&m->r[i].resp);
    }
    free(m);
}

static void test_unknown_method(void **state) {
    uint64_t before = server_count("unknown", "UNIMPLEMENTED");
    result_t r = call_sync(E.client, "/no.Such/Method", "x", 1, 5000);
    assert_int_equal(r.code, SL_GRPC_UNIMPLEMENTED);
    assert_non_null(strstr(r.message, "/no.Such/Method"));
    assert_int_equal(server_count("unknown", "UNIMPLEMENTED"), before + 1);
    /* Bad paths are refused by the client before anything is sent. */
    assert_int_equal(sl_grpc_client_call(E.client, "no-slash", "", 0, 0, NULL, on_result, &r),
                     SL_EINVAL);
}

static void test_error_status_and_message(void **state) {
    result_t r = call_sync(E.client, "/test.Fail/Now", "", 0, 5000);
    assert_int_equal(r.code, SL_GRPC_UNAVAILABLE);
    /* Percent-encoded on the wire, decoded by the client. */
    assert_string_equal(r.message, "model busy: 100% of slots\nin use");
    assert_int_equal(server_count("/test.Fail/Now", "UNAVAILABLE"), 1);
}

static bool late_replied(void *arg) {
    return atomic_load(&g_late_replied) >= *(int *)arg;
}

static void test_deadline_exceeded(void **state) {
    uint64_t before = server_count("/test.Slow/Late", "DEADLINE_EXCEEDED") +
                      server_count("/test.Slow/Late", "CANCELLED");
    uint64_t t0 = sl_now_ms();
    result_t r = call_sync(E.client, "/test.Slow/Late", "x", 1, 50);
    assert_int_equal(r.code, SL_GRPC_DEADLINE_EXCEEDED);
    assert_true(sl_now_ms() - t0 < LATE_MS);
    /* The server got the deadline; the client's cancel or the server's own deadline (whichever
     * came first: test_raw_deadlines pins the latter) ended the call, and the handler's late
     * reply was dropped safely. */
    assert_true(atomic_load(&g_late_had_deadline));
    int want = 1;
    assert_true(run_until(late_replied, &want, 5000));
    assert_true(atomic_load(&g_late_saw_cancel));
    assert_int_equal(server_count("/test.Slow/Late", "DEADLINE_EXCEEDED") +
                         server_count("/test.Slow/Late", "CANCELLED"),
                     before + 1);
    /* The connection is still good. */
    r = call_sync(E.client, "/sluice.v1.Echo/Echo", "ok", 2, 5000);
    assert_int_equal(r.code, SL_GRPC_OK);
    sl_buf_free(&r.resp);
}

static void test_oversized_message(void **state) {
    size_t n = MAX_MESSAGE + 1;
    uint8_t *big = sl_calloc(1, n);
    result_t r = call_sync(E.client, "/sluice.v1.Echo/Echo", big, n, 10000);
    assert_int_equal(r.code, SL_GRPC_RESOURCE_EXHAUSTED);
    assert_non_null(strstr(r.message, "larger than max"));
    free(big);
    /* The stream was reset, the connection lives on. */
    r = call_sync(E.client, "/sluice.v1.Echo/Echo", "ok", 2, 5000);
    assert_int_equal(r.code, SL_GRPC_OK);
    sl_buf_free(&r.resp);
}

static int health_status(const char *service, char *message, size_t mlen) {
    Grpc__Health__V1__HealthCheckRequest req = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
    req.service = (char *)service;
    uint8_t buf[256];
    size_t n = grpc__health__v1__health_check_request__pack(&req, buf);
    result_t r = call_sync(E.client, "/grpc.health.v1.Health/Check", buf, n, 5000);
    snprintf(message, mlen, "%s", r.message);
    if (r.code != SL_GRPC_OK) {
        sl_buf_free(&r.resp);
        return -r.code;
    }
    Grpc__Health__V1__HealthCheckResponse *resp = grpc__health__v1__health_check_response__unpack(
        NULL, r.resp.len, (const uint8_t *)r.resp.data);
    assert_non_null(resp);
    int status = resp->status;
    grpc__health__v1__health_check_response__free_unpacked(resp, NULL);
    sl_buf_free(&r.resp);
    return status;
}

static void test_health_check(void **state) {
    char msg[256];
    sl_health_set_started(E.health, false);
    assert_int_equal(health_status("", msg, sizeof msg),
                     GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING);
    sl_health_set_started(E.health, true);
    assert_int_equal(health_status("", msg, sizeof msg),
                     GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING);
    assert_int_equal(health_status("inference", msg, sizeof msg),
                     GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING);
    assert_int_equal(health_status("gateway", msg, sizeof msg), -SL_GRPC_NOT_FOUND);
    /* Garbage instead of a HealthCheckRequest. */
    result_t r = call_sync(E.client, "/grpc.health.v1.Health/Check", "\xff\xff\xff", 3, 5000);
    assert_int_equal(r.code, SL_GRPC_INVALID_ARGUMENT);
    r = call_sync(E.client, "/grpc.health.v1.Health/Watch", "", 0, 5000);
    assert_int_equal(r.code, SL_GRPC_UNIMPLEMENTED);
}

static void test_metadata_and_trace(void **state) {
    const char *tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    result_t r = {0};
    assert_int_equal(
        sl_grpc_client_call(E.client, "/test.Meta/Get", "", 0, 2000, tp, on_result, &r), 0);
    assert_true(run_until(result_done, &r, 5000));
    assert_int_equal(r.code, SL_GRPC_OK);
    /* No x-test header from this client; the server span continues the client's trace; the
     * timeout arrived as a deadline. */
    assert_string_equal(r.resp.data, "-|0af7651916cd43dd8448eb211c80319c|1");
    sl_buf_free(&r.resp);
}

static void test_connect_failure(void **state) {
    /* A port nobody listens on: bind one, note it, close it. */
    uv_tcp_t probe;
    uv_tcp_init(&E.loop, &probe);
    struct sockaddr_in sa;
    uv_ip4_addr("127.0.0.1", 0, &sa);
    uv_tcp_bind(&probe, (const struct sockaddr *)&sa, 0);
    int len = sizeof sa;
    uv_tcp_getsockname(&probe, (struct sockaddr *)&sa, &len);
    uv_close((uv_handle_t *)&probe, NULL);
    uint16_t dead = ntohs(sa.sin_port);

    sl_grpc_client_t *c = sl_grpc_client_new(&E.loop, "127.0.0.1", dead, NULL);
    result_t r = call_sync(c, "/sluice.v1.Echo/Echo", "x", 1, 5000);
    assert_int_equal(r.code, SL_GRPC_UNAVAILABLE);
    assert_non_null(strstr(r.message, "connect"));
    /* It tries again on the next call (and fails again the same way). */
    r = call_sync(c, "/sluice.v1.Echo/Echo", "x", 1, 5000);
    assert_int_equal(r.code, SL_GRPC_UNAVAILABLE);
    sl_grpc_client_free(c);

    /* A name that does not resolve. */
    c = sl_grpc_client_new(&E.loop, "does-not-exist.invalid", 80, NULL);
    r = call_sync(c, "/sluice.v1.Echo/Echo", "x", 1, 5000);
    assert_int_equal(r.code, SL_GRPC_UNAVAILABLE);
    sl_grpc_client_free(c);

    /* "localhost" resolves and reaches the server. */
    c = sl_grpc_client_new(&E.loop, "localhost", E.port, NULL);
    r = call_sync(c, "/sluice.v1.Echo/Echo", "via-name", 8, 5000);
    if (r.code != SL_GRPC_OK) {
        /* localhost may resolve to ::1 first where nothing listens; that is UNAVAILABLE. */
        assert_int_equal(r.code, SL_GRPC_UNAVAILABLE);
    }
    sl_buf_free(&r.resp);
    sl_grpc_client_free(c);
}

static void test_response_limit(void **state) {
    sl_grpc_client_opts_t o = {.max_response_bytes = 1000};
    sl_grpc_client_t *c = sl_grpc_client_new(&E.loop, "127.0.0.1", E.port, &o);
    uint8_t buf[2000] = {0};
    result_t r = call_sync(c, "/sluice.v1.Echo/Echo", buf, sizeof buf, 5000);
    assert_int_equal(r.code, SL_GRPC_RESOURCE_EXHAUSTED);
    r = call_sync(c, "/sluice.v1.Echo/Echo", buf, 1000, 5000);
    assert_int_equal(r.code, SL_GRPC_OK);
    assert_int_equal(r.resp.len, 1000);
    sl_buf_free(&r.resp);
    sl_grpc_client_free(c);
}

static void test_client_free_cancels(void **state) {
    sl_grpc_client_t *c = sl_grpc_client_new(&E.loop, "127.0.0.1", E.port, NULL);
    result_t r = {0};
    int before = atomic_load(&g_late_replied);
    assert_int_equal(sl_grpc_client_call(c, "/test.Slow/Late", "x", 1, 0, NULL, on_result, &r), 0);
    /* Let the request reach the server, then give up on it. */
    uint64_t until = sl_now_ms() + 50;
    uv_timer_start(&E.tick, on_tick, 5, 5);
    while (sl_now_ms() < until)
        uv_run(&E.loop, UV_RUN_ONCE);
    uv_timer_stop(&E.tick);
    sl_grpc_client_free(c);
    assert_true(r.done);
    assert_int_equal(r.code, SL_GRPC_CANCELLED);
    /* The server's handler still answers (into a closed stream) without harm. */
    int want = before + 1;
    assert_true(run_until(late_replied, &want, 5000));
}

static void test_drain_finishes_inflight(void **state) {
    result_t r = {0};
    int before = atomic_load(&g_late_replied);
    assert_int_equal(
        sl_grpc_client_call(E.client, "/test.Slow/Late", "x", 1, 0, NULL, on_result, &r), 0);
    uint64_t until = sl_now_ms() + 50;
    uv_timer_start(&E.tick, on_tick, 5, 5);
    while (sl_now_ms() < until)
        uv_run(&E.loop, UV_RUN_ONCE);
    uv_timer_stop(&E.tick);
    assert_int_equal(atomic_load(&g_late_replied), before);
    sl_runtime_stop(E.rt);
    assert_true(run_until(result_done, &r, 5000));
    assert_int_equal(r.code, SL_GRPC_OK);
    assert_memory_equal(r.resp.data, "late", 4);
    sl_buf_free(&r.resp);
    pthread_join(E.th, NULL); /* the runtime stopped once the connection had drained */
    E.running = false;
    /* A new call now finds nobody listening. */
    r = call_sync(E.client, "/sluice.v1.Echo/Echo", "x", 1, 2000);
    assert_int_equal(r.code, SL_GRPC_UNAVAILABLE);
}

/* ---- a raw HTTP/2 client (nghttp2 on a blocking socket) for requests the C client never
 * sends: custom grpc-timeout without a local deadline, bad content-type, compression... ---- */

typedef struct raw_result {
    int http_status;
    int grpc_status; /* -1: none */
    char grpc_message[256];
    bool closed;
    uint32_t error_code;
    size_t data_len;
    bool goaway;
} raw_result_t;

typedef struct raw_body {
    const uint8_t *data;
    size_t len, off;
    bool end_stream;
} raw_body_t;

static int raw_on_header(nghttp2_session *h, const nghttp2_frame *f, const uint8_t *name, size_t nl,
                         const uint8_t *value, size_t vl, uint8_t flags, void *ud) {
    raw_result_t *r = ud;
    sl_str_t n = {(const char *)name, nl};
    if (sl_str_eq(n, ":status")) r->http_status = atoi((const char *)value);
    if (sl_str_eq(n, "grpc-status")) r->grpc_status = atoi((const char *)value);
    if (sl_str_eq(n, "grpc-message"))
        snprintf(r->grpc_message, sizeof r->grpc_message, "%.*s", (int)vl, (const char *)value);
    return 0;
}

static int raw_on_data(nghttp2_session *h, uint8_t flags, int32_t id, const uint8_t *d, size_t len,
                       void *ud) {
    ((raw_result_t *)ud)->data_len += len;
    return 0;
}

static int raw_on_close(nghttp2_session *h, int32_t id, uint32_t code, void *ud) {
    raw_result_t *r = ud;
    r->closed = true;
    r->error_code = code;
    return 0;
}

static int raw_on_frame(nghttp2_session *h, const nghttp2_frame *f, void *ud) {
    if (f->hd.type == NGHTTP2_GOAWAY) ((raw_result_t *)ud)->goaway = true;
    return 0;
}

static ssize_t raw_read(nghttp2_session *h, int32_t id, uint8_t *buf, size_t length,
                        uint32_t *flags, nghttp2_data_source *src, void *ud) {
    raw_body_t *b = src->ptr;
    size_t n = SL_MIN(length, b->len - b->off);
    if (n) memcpy(buf, b->data + b->off, n);
    b->off += n;
    if (b->off == b->len) {
        if (!b->end_stream) return n ? (ssize_t)n : NGHTTP2_ERR_DEFERRED;
        *flags |= NGHTTP2_DATA_FLAG_EOF;
    }
    return (ssize_t)n;
}

static int raw_connect(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(E.port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    struct timeval tv = {.tv_sec = 0, .tv_usec = 20000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
}

/* Sends one request with the given headers (pseudo-headers included) and body, and reads until
 * the stream closes or 5 s pass. */
static raw_result_t raw_call(const char *const *headers, size_t n_headers, const void *body,
                             size_t body_len, bool end_stream) {
    raw_result_t r = {.grpc_status = -1};
    nghttp2_session_callbacks *cbs;
    nghttp2_session_callbacks_new(&cbs);
    nghttp2_session_callbacks_set_on_header_callback(cbs, raw_on_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, raw_on_data);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, raw_on_close);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, raw_on_frame);
    nghttp2_session *h;
    assert_int_equal(nghttp2_session_client_new(&h, cbs, &r), 0);
    nghttp2_session_callbacks_del(cbs);
    nghttp2_submit_settings(h, NGHTTP2_FLAG_NONE, NULL, 0);
    nghttp2_nv nva[16];
    for (size_t i = 0; i < n_headers; i++) {
        nva[i] =
            (nghttp2_nv){(uint8_t *)headers[2 * i], (uint8_t *)headers[2 * i + 1],
                         strlen(headers[2 * i]), strlen(headers[2 * i + 1]), NGHTTP2_NV_FLAG_NONE};
    }
    raw_body_t b = {body, body_len, 0, end_stream};
    nghttp2_data_provider prd = {.source.ptr = &b, .read_callback = raw_read};
    assert_true(nghttp2_submit_request(h, NULL, nva, n_headers, &prd, NULL) > 0);
    int fd = raw_connect();
    uint64_t deadline = sl_now_ms() + 5000;
    while (!r.closed && sl_now_ms() < deadline) {
        const uint8_t *out;
        ssize_t n;
        while ((n = nghttp2_session_mem_send(h, &out)) > 0) {
            assert_int_equal(write(fd, out, (size_t)n), n);
        }
        uint8_t in[16384];
        ssize_t got = read(fd, in, sizeof in);
        if (got == 0) break;
        if (got > 0) assert_true(nghttp2_session_mem_recv(h, in, (size_t)got) >= 0);
    }
    close(fd);
    nghttp2_session_del(h);
    return r;
}

#define REQ(path) ":method", "POST", ":scheme", "http", ":path", (path), ":authority", "test"

static void test_raw_deadlines(void **state) {
    uint8_t framed[SL_GRPC_PREFIX_LEN + 1];
    sl_grpc__prefix_write(framed, false, 1);
    framed[5] = 'x';
    /* The request never ends; the server's own deadline answers, and resets the stream. */
    const char *h1[] = {REQ("/sluice.v1.Echo/Echo"),
                        "content-type",
                        "application/grpc",
                        "te",
                        "trailers",
                        "grpc-timeout",
                        "100m"};
    uint64_t t0 = sl_now_ms();
    raw_result_t r = raw_call(h1, SL_ARRAY_LEN(h1) / 2, framed, 3, false);
    assert_true(r.closed);
    assert_int_equal(r.http_status, 200);
    assert_int_equal(r.grpc_status, SL_GRPC_DEADLINE_EXCEEDED);
    assert_true(sl_now_ms() - t0 >= 100);
    assert_int_equal(r.error_code, NGHTTP2_NO_ERROR);

    /* A complete request whose handler is too slow: the server answers at the deadline, without
     * any help from a client-side timer. */
    int before = atomic_load(&g_late_replied);
    uint64_t dl = server_count("/test.Slow/Late", "DEADLINE_EXCEEDED");
    const char *h2[] = {
        REQ("/test.Slow/Late"), "content-type", "application/grpc", "te", "trailers",
        "grpc-timeout",         "50m"};
    t0 = sl_now_ms();
    r = raw_call(h2, SL_ARRAY_LEN(h2) / 2, framed, sizeof framed, true);
    assert_int_equal(r.grpc_status, SL_GRPC_DEADLINE_EXCEEDED);
    assert_true(sl_now_ms() - t0 < LATE_MS);
    assert_int_equal(server_count("/test.Slow/Late", "DEADLINE_EXCEEDED"), dl + 1);
    int want = before + 1;
    assert_true(run_until(late_replied, &want, 5000));
    assert_true(atomic_load(&g_late_saw_cancel));

    /* A malformed grpc-timeout is refused. */
    const char *h3[] = {REQ("/sluice.v1.Echo/Echo"), "content-type", "application/grpc",
                        "grpc-timeout", "123456789S"};
    r = raw_call(h3, SL_ARRAY_LEN(h3) / 2, framed, sizeof framed, true);
    assert_int_equal(r.grpc_status, SL_GRPC_INTERNAL);
    assert_non_null(strstr(r.grpc_message, "grpc-timeout"));
}

static void test_raw_bad_requests(void **state) {
    uint8_t framed[SL_GRPC_PREFIX_LEN + 2];
    sl_grpc__prefix_write(framed, false, 2);
    framed[5] = 'h';
    framed[6] = 'i';
    /* The baseline: this request is fine. */
    const char *ok[] = {REQ("/sluice.v1.Echo/Echo"), "content-type", "application/grpc+proto"};
    raw_result_t r = raw_call(ok, SL_ARRAY_LEN(ok) / 2, framed, sizeof framed, true);
    assert_int_equal(r.http_status, 200);
    assert_int_equal(r.grpc_status, SL_GRPC_OK);
    assert_int_equal(r.data_len, sizeof framed);

    const char *ct[] = {REQ("/sluice.v1.Echo/Echo"), "content-type", "application/json"};
    r = raw_call(ct, SL_ARRAY_LEN(ct) / 2, framed, sizeof framed, true);
    assert_int_equal(r.http_status, 415);
    assert_int_equal(r.grpc_status, SL_GRPC_INTERNAL);

    const char *get[] = {":method",      "GET",
                         ":scheme",      "http",
                         ":path",        "/sluice.v1.Echo/Echo",
                         ":authority",   "test",
                         "content-type", "application/grpc"};
    r = raw_call(get, SL_ARRAY_LEN(get) / 2, NULL, 0, true);
    assert_int_equal(r.http_status, 405);
    assert_int_equal(r.grpc_status, SL_GRPC_UNIMPLEMENTED);

    const char *gz[] = {REQ("/sluice.v1.Echo/Echo"), "content-type", "application/grpc",
                        "grpc-encoding", "gzip"};
    r = raw_call(gz, SL_ARRAY_LEN(gz) / 2, framed, sizeof framed, true);
    assert_int_equal(r.grpc_status, SL_GRPC_UNIMPLEMENTED);

    /* Compressed flag without compression support. */
    uint8_t comp[sizeof framed];
    memcpy(comp, framed, sizeof comp);
    comp[0] = 1;
    r = raw_call(ok, SL_ARRAY_LEN(ok) / 2, comp, sizeof comp, true);
    assert_int_equal(r.grpc_status, SL_GRPC_UNIMPLEMENTED);
    assert_non_null(strstr(r.grpc_message, "compression"));

    /* No message, a truncated one, two messages. */
    r = raw_call(ok, SL_ARRAY_LEN(ok) / 2, NULL, 0, true);
    assert_int_equal(r.grpc_status, SL_GRPC_INTERNAL);
    r = raw_call(ok, SL_ARRAY_LEN(ok) / 2, framed, sizeof framed - 1, true);
    assert_int_equal(r.grpc_status, SL_GRPC_INTERNAL);
    uint8_t two[2 * sizeof framed];
    memcpy(two, framed, sizeof framed);
    memcpy(two + sizeof framed, framed, sizeof framed);
    r = raw_call(ok, SL_ARRAY_LEN(ok) / 2, two, sizeof two, true);
    assert_int_equal(r.grpc_status, SL_GRPC_INTERNAL);
    assert_non_null(strstr(r.grpc_message, "more than one"));

    /* A length prefix far over the limit is answered from the prefix alone, before the body
     * (which never comes) arrives. */
    uint8_t huge[SL_GRPC_PREFIX_LEN];
    sl_grpc__prefix_write(huge, false, 0x7fffffffu);
    r = raw_call(ok, SL_ARRAY_LEN(ok) / 2, huge, sizeof huge, false);
    assert_true(r.closed);
    assert_int_equal(r.grpc_status, SL_GRPC_RESOURCE_EXHAUSTED);

    /* Metadata over the limit. */
    char *big = sl_malloc(SL_GRPC_MAX_HEADER_BYTES + 1);
    memset(big, 'a', SL_GRPC_MAX_HEADER_BYTES);
    big[SL_GRPC_MAX_HEADER_BYTES] = '\0';
    const char *mh[] = {REQ("/sluice.v1.Echo/Echo"), "content-type", "application/grpc", "x-big",
                        big};
    r = raw_call(mh, SL_ARRAY_LEN(mh) / 2, framed, sizeof framed, true);
    assert_int_equal(r.grpc_status, SL_GRPC_RESOURCE_EXHAUSTED);
    free(big);
}

/* The server session without a socket (what the fuzzer drives): a request fed one byte at a time
 * still produces one echo response. */
static void lit(sl_buf_t *b, const char *n, const char *v) {
    uint8_t h[2] = {0, (uint8_t)strlen(n)};
    sl_buf_append(b, h, 2);
    sl_buf_puts(b, n);
    uint8_t vl = (uint8_t)strlen(v);
    sl_buf_append(b, &vl, 1);
    sl_buf_puts(b, v);
}

static void h2frame(sl_buf_t *b, uint8_t type, uint8_t flags, uint32_t sid, const void *p,
                    size_t n) {
    uint8_t hd[9] = {
        (uint8_t)(n >> 16),   (uint8_t)(n >> 8),    (uint8_t)n,          type,        flags,
        (uint8_t)(sid >> 24), (uint8_t)(sid >> 16), (uint8_t)(sid >> 8), (uint8_t)sid};
    sl_buf_append(b, hd, 9);
    sl_buf_append(b, p, n);
}

static void test_socketless_feed(void **state) {
    sl_buf_t in = SL_BUF_INIT, hb = SL_BUF_INIT, msg = SL_BUF_INIT, out = SL_BUF_INIT;
    sl_buf_puts(&in, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
    h2frame(&in, NGHTTP2_SETTINGS, 0, 0, "", 0);
    lit(&hb, ":method", "POST");
    lit(&hb, ":scheme", "http");
    lit(&hb, ":path", "/sluice.v1.Echo/Echo");
    lit(&hb, ":authority", "x");
    lit(&hb, "content-type", "application/grpc");
    h2frame(&in, NGHTTP2_HEADERS, NGHTTP2_FLAG_END_HEADERS, 1, hb.data, hb.len);
    sl_grpc__frame_append(&msg, "\x0a\x05hello", 7);
    h2frame(&in, NGHTTP2_DATA, NGHTTP2_FLAG_END_STREAM, 1, msg.data, msg.len);

    size_t *chunks = sl_malloc(in.len * sizeof *chunks);
    for (size_t i = 0; i < in.len; i++)
        chunks[i] = i + 1;
    uv_loop_t loop;
    uv_loop_init(&loop);
    uint64_t ok = server_count("/sluice.v1.Echo/Echo", "OK");
    sl_grpc__server_feed(E.srv, &loop, (const uint8_t *)in.data, in.len, chunks, in.len, &out);
    uv_run(&loop, UV_RUN_NOWAIT);
    assert_int_equal(uv_loop_close(&loop), 0);
    assert_int_equal(server_count("/sluice.v1.Echo/Echo", "OK"), ok + 1);
    /* The response DATA frame carries the same framed message. */
    bool found = false;
    for (size_t i = 0; i + msg.len <= out.len && !found; i++) {
        found = memcmp(out.data + i, msg.data, msg.len) == 0;
    }
    assert_true(found);
    free(chunks);
    sl_buf_free(&in);
    sl_buf_free(&hb);
    sl_buf_free(&msg);
    sl_buf_free(&out);
}

static bool no_connections(void *arg) {
    return sl_listener_connections(arg) == 0;
}

static void test_idle_close_and_reconnect(void **state) {
    sl_grpc_client_t *c =
        sl_grpc_client_new(&E.loop, "127.0.0.1", sl_listener_port(E.ls_idle), NULL);
    result_t r = call_sync(c, "/sluice.v1.Echo/Echo", "one", 3, 5000);
    assert_int_equal(r.code, SL_GRPC_OK);
    sl_buf_free(&r.resp);
    assert_int_equal(sl_listener_connections(E.ls_idle), 1);
    /* The server closes the idle connection (GOAWAY, then close)... */
    assert_true(run_until(no_connections, E.ls_idle, 5000));
    /* ...and the client notices and connects again for the next call. */
    r = call_sync(c, "/sluice.v1.Echo/Echo", "two", 3, 5000);
    assert_int_equal(r.code, SL_GRPC_OK);
    assert_memory_equal(r.resp.data, "two", 3);
    sl_buf_free(&r.resp);
    sl_grpc_client_free(c);
}

static void test_connection_limit(void **state) {
    uint16_t port = sl_listener_port(E.ls_limited);
    sl_grpc_client_t *a = sl_grpc_client_new(&E.loop, "127.0.0.1", port, NULL);
    sl_grpc_client_t *b = sl_grpc_client_new(&E.loop, "127.0.0.1", port, NULL);
    result_t r = call_sync(a, "/sluice.v1.Echo/Echo", "a", 1, 5000);
    assert_int_equal(r.code, SL_GRPC_OK);
    sl_buf_free(&r.resp);
    /* The second connection is refused with GOAWAY; the client's one retry is refused too. */
    r = call_sync(b, "/sluice.v1.Echo/Echo", "b", 1, 5000);
    assert_int_equal(r.code, SL_GRPC_UNAVAILABLE);
    assert_non_null(strstr(r.message, "REFUSED_STREAM"));
    /* Once the first connection is gone there is room again. */
    sl_grpc_client_free(a);
    assert_true(run_until(no_connections, E.ls_limited, 5000));
    r = call_sync(b, "/sluice.v1.Echo/Echo", "b", 1, 5000);
    assert_int_equal(r.code, SL_GRPC_OK);
    sl_buf_free(&r.resp);
    sl_grpc_client_free(b);
}

static void test_server_api_validation(void **state) {
    sl_grpc_server_t *s = sl_grpc_server_new("validation", NULL);
    assert_int_equal(sl_grpc_server_add_method(s, "/a.B/C", meta_handler, NULL), 0);
    assert_int_equal(sl_grpc_server_add_method(s, "/a.B/C", meta_handler, NULL), SL_EEXISTS);
    assert_int_equal(sl_grpc_server_add_method(s, "a.B/C", meta_handler, NULL), SL_EINVAL);
    assert_int_equal(sl_grpc_server_add_method(s, "/a.B", meta_handler, NULL), SL_EINVAL);
    assert_int_equal(sl_grpc_server_add_method(s, "/a.B/", meta_handler, NULL), SL_EINVAL);
    assert_int_equal(sl_grpc_server_add_method(s, "/a.B/C/D", meta_handler, NULL), SL_EINVAL);
    assert_int_equal(sl_grpc_server_add_method(s, "/a B/C", meta_handler, NULL), SL_EINVAL);
    sl_grpc_server_free(s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_server_api_validation),
        cmocka_unit_test(test_echo_small),
        cmocka_unit_test(test_echo_1mib),
        cmocka_unit_test(test_many_concurrent),
        cmocka_unit_test(test_unknown_method),
        cmocka_unit_test(test_error_status_and_message),
        cmocka_unit_test(test_deadline_exceeded),
        cmocka_unit_test(test_oversized_message),
        cmocka_unit_test(test_raw_deadlines),
        cmocka_unit_test(test_raw_bad_requests),
        cmocka_unit_test(test_socketless_feed),
        cmocka_unit_test(test_idle_close_and_reconnect),
        cmocka_unit_test(test_connection_limit),
        cmocka_unit_test(test_health_check),
        cmocka_unit_test(test_metadata_and_trace),
        cmocka_unit_test(test_connect_failure),
        cmocka_unit_test(test_response_limit),
        cmocka_unit_test(test_client_free_cancels),
        cmocka_unit_test(test_drain_finishes_inflight), /* last: stops the runtime */
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
