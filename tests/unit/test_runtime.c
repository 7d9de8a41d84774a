/* Runtime: listeners on every loop, accept and connection limit, posting across threads,
 * graceful drain (connections asked to drain, loops finish) and the forced stop at the deadline. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "core/common.h"
#include "core/runtime.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* A toy protocol: answers each read with "ok:<bytes>", drains only when told by a byte 'q'. */
typedef struct toy_conn {
    sl_conn_t base;
    uv_write_t w;
    char out[64];
    bool draining;
    bool stubborn; /* ignores drain until it reads 'q' */
} toy_conn_t;

static atomic_int g_drained, g_rejected, g_freed;

static sl_conn_t *toy_new(sl_loop_t *loop, void *ctx) {
    toy_conn_t *c = sl_calloc(1, sizeof *c);
    c->stubborn = ctx != NULL;
    return &c->base;
}

static void toy_alloc(uv_handle_t *h, size_t sz, uv_buf_t *b) {
    toy_conn_t *c = h->data;
    size_t len;
    char *p = sl_loop_read_buffer(c->base.loop, &len);
    *b = uv_buf_init(p, (unsigned)len);
}

static void toy_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b) {
    toy_conn_t *c = s->data;
    if (n < 0) {
        sl_conn_close(&c->base);
        return;
    }
    if (n == 0) return;
    if (memchr(b->base, 'q', (size_t)n) && c->draining) {
        sl_conn_close(&c->base);
        return;
    }
    int len = snprintf(c->out, sizeof c->out, "ok:%zd", n);
    uv_buf_t out = uv_buf_init(c->out, (unsigned)len);
    uv_try_write(s, &out, 1);
}

static void toy_start(sl_conn_t *base) {
    toy_conn_t *c = (toy_conn_t *)base;
    base->tcp.data = c;
    uv_read_start((uv_stream_t *)&base->tcp, toy_alloc, toy_read);
}

static void toy_reject(sl_conn_t *base) {
    atomic_fetch_add(&g_rejected, 1);
    sl_conn_close(base);
}

static void toy_drain(sl_conn_t *base) {
    toy_conn_t *c = (toy_conn_t *)base;
    atomic_fetch_add(&g_drained, 1);
    c->draining = true;
    if (!c->stubborn) sl_conn_close(base);
}

static void toy_free(sl_conn_t *base) {
    atomic_fetch_add(&g_freed, 1);
    free(base);
}

static const sl_proto_t toy = {
    .name = "toy",
    .conn_new = toy_new,
    .conn_start = toy_start,
    .conn_reject = toy_reject,
    .conn_drain = toy_drain,
    .conn_free = toy_free,
};

static int dial(uint16_t port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
}

static void *run_thread(void *arg) {
    sl_runtime_run(arg);
    return NULL;
}

typedef struct {
    sl_runtime_t *rt;
    pthread_t th;
} running_t;

static running_t start(sl_runtime_t *rt) {
    running_t r = {rt, 0};
    pthread_create(&r.th, NULL, run_thread, rt);
    return r;
}

static void reset_counters(void) {
    atomic_store(&g_drained, 0);
    atomic_store(&g_rejected, 0);
    atomic_store(&g_freed, 0);
}

static void test_serve_and_graceful_stop(void **state) {
    reset_counters();
    sl_runtime_opts_t o = {.io_threads = 2, .drain_timeout_ms = 5000};
    sl_runtime_t *rt = sl_runtime_new(&o);
    sl_listener_t *ls;
    sl_listener_cfg_t lc = {.name = "toy", .host = "127.0.0.1", .port = 0};
    assert_int_equal(sl_runtime_listen(rt, &lc, &toy, NULL, &ls), 0);
    uint16_t port = sl_listener_port(ls);
    assert_true(port > 0);
    running_t r = start(rt);
    int fds[8];
    for (int i = 0; i < 8; i++) {
        fds[i] = dial(port);
        char buf[32] = {0};
        assert_int_equal(write(fds[i], "hello", 5), 5);
        assert_true(read(fds[i], buf, sizeof buf - 1) > 0);
        assert_string_equal(buf, "ok:5");
    }
    assert_int_equal(sl_listener_connections(ls), 8);
    sl_runtime_stop(rt);
    pthread_join(r.th, NULL);
    assert_int_equal(atomic_load(&g_drained), 8);
    assert_int_equal(atomic_load(&g_freed), 8);
    assert_true(sl_runtime_draining(rt));
    for (int i = 0; i < 8; i++) {
        char c;
        assert_int_equal(read(fds[i], &c, 1), 0); /* closed by the server */
        close(fds[i]);
    }
    sl_runtime_free(rt);
}

static void test_connection_limit_rejects(void **state) {
    reset_counters();
    sl_runtime_opts_t o = {.io_threads = 1, .drain_timeout_ms = 1000};
    sl_runtime_t *rt = sl_runtime_new(&o);
    sl_listener_t *ls;
    sl_listener_cfg_t lc = {.name = "toy", .host = "127.0.0.1", .port = 0, .max_connections = 2};
    assert_int_equal(sl_runtime_listen(rt, &lc, &toy, NULL, &ls), 0);
    running_t r = start(rt);
    int a = dial(sl_listener_port(ls)), b = dial(sl_listener_port(ls));
    char buf[16];
    assert_int_equal(write(a, "x", 1), 1);
    assert_true(read(a, buf, sizeof buf) > 0);
    assert_int_equal(write(b, "x", 1), 1);
    assert_true(read(b, buf, sizeof buf) > 0);
    int c = dial(sl_listener_port(ls));
    assert_int_equal(read(c, buf, sizeof buf), 0); /* closed at once */
    assert_int_equal(atomic_load(&g_rejected), 1);
    sl_runtime_stop(rt);
    pthread_join(r.th, NULL);
    close(a);
    close(b);
    close(c);
    sl_runtime_free(rt);
}

static void test_drain_deadline_forces_close(void **state) {
    reset_counters();
    sl_runtime_opts_t o = {.io_threads = 1, .drain_timeout_ms = 200};
    sl_runtime_t *rt = sl_runtime_new(&o);
    sl_listener_t *ls;
    sl_listener_cfg_t lc = {.name = "toy", .host = "127.0.0.1", .port = 0};
    assert_int_equal(sl_runtime_listen(rt, &lc, &toy, (void *)1 /* stubborn */, &ls), 0);
    running_t r = start(rt);
    int fd = dial(sl_listener_port(ls));
    char buf[16];
    assert_int_equal(write(fd, "x", 1), 1);
    assert_true(read(fd, buf, sizeof buf) > 0);
    uint64_t t0 = sl_now_ms();
    sl_runtime_stop(rt);
    pthread_join(r.th, NULL);
    uint64_t took = sl_now_ms() - t0;
    assert_true(took >= 150 && took < 3000);
    assert_int_equal(atomic_load(&g_freed), 1);
    close(fd);
    sl_runtime_free(rt);
}

static void test_port_in_use(void **state) {
    int blocker = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    assert_int_equal(bind(blocker, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(blocker, 1), 0);
    socklen_t len = sizeof a;
    getsockname(blocker, (struct sockaddr *)&a, &len);
    sl_runtime_opts_t o = {.io_threads = 2};
    sl_runtime_t *rt = sl_runtime_new(&o);
    sl_listener_cfg_t lc = {.name = "toy", .host = "127.0.0.1", .port = ntohs(a.sin_port)};
    assert_int_equal(sl_runtime_listen(rt, &lc, &toy, NULL, NULL), SL_EADDRINUSE);
    lc.host = "not-an-ip";
    assert_int_equal(sl_runtime_listen(rt, &lc, &toy, NULL, NULL), SL_EINVAL);
    sl_runtime_free(rt);
    close(blocker);
}

/* Two runtimes in one process stand in for two processes: SO_REUSEPORT must not let the second
 * silently share the first one's port. */
static void test_second_reuseport_listener_refused(void **state) {
    sl_runtime_opts_t o = {.io_threads = 1};
    sl_runtime_t *a = sl_runtime_new(&o), *b = sl_runtime_new(&o);
    sl_listener_t *ls;
    sl_listener_cfg_t lc = {.name = "toy", .host = "127.0.0.1", .port = 0};
    assert_int_equal(sl_runtime_listen(a, &lc, &toy, NULL, &ls), 0);
    lc.port = sl_listener_port(ls);
    assert_int_equal(sl_runtime_listen(b, &lc, &toy, NULL, NULL), SL_EADDRINUSE);
    sl_runtime_free(b);
    sl_runtime_free(a);
}

typedef struct {
    atomic_int ran;
    sl_loop_t *seen;
    sl_runtime_t *rt;
} post_probe_t;

static void probe(void *arg) {
    post_probe_t *p = arg;
    p->seen = sl_loop_current();
    atomic_fetch_add(&p->ran, 1);
    sl_runtime_stop(p->rt);
}

static void test_post_runs_on_loop_thread(void **state) {
    sl_runtime_opts_t o = {.io_threads = 2, .drain_timeout_ms = 1000};
    sl_runtime_t *rt = sl_runtime_new(&o);
    post_probe_t p = {.rt = rt};
    running_t r = start(rt);
    assert_int_equal(sl_loop_post(sl_runtime_loop(rt, 1), probe, &p), 0);
    pthread_join(r.th, NULL);
    assert_int_equal(atomic_load(&p.ran), 1);
    assert_ptr_equal(p.seen, sl_runtime_loop(rt, 1));
    assert_int_equal(sl_loop_post(sl_runtime_loop(rt, 0), probe, &p), SL_ECLOSED);
    sl_runtime_free(rt);
}

/* Blocking work goes to libuv's thread pool, sized by worker_threads, and its completion runs
 * back on the I/O loop that queued it. */
typedef struct {
    uv_work_t req;
    sl_runtime_t *rt;
    pthread_t worker, after, loop_thread;
    bool done;
} work_probe_t;

static void work_cb(uv_work_t *w) {
    work_probe_t *p = w->data;
    p->worker = pthread_self();
}

static void after_cb(uv_work_t *w, int status) {
    work_probe_t *p = w->data;
    p->after = pthread_self();
    p->done = status == 0;
    sl_runtime_stop(p->rt);
}

static void queue(void *arg) {
    work_probe_t *p = arg;
    p->loop_thread = pthread_self();
    p->req.data = p;
    uv_queue_work(sl_loop_uv(sl_loop_current()), &p->req, work_cb, after_cb);
}

static void test_worker_pool(void **state) {
    sl_runtime_opts_t o = {.io_threads = 1, .worker_threads = 3, .drain_timeout_ms = 1000};
    sl_runtime_t *rt = sl_runtime_new(&o);
    assert_string_equal(getenv("UV_THREADPOOL_SIZE"), "3");
    work_probe_t p = {.rt = rt};
    running_t r = start(rt);
    assert_int_equal(sl_loop_post(sl_runtime_loop(rt, 0), queue, &p), 0);
    pthread_join(r.th, NULL);
    assert_true(p.done);
    assert_false(pthread_equal(p.worker, p.loop_thread));
    assert_true(pthread_equal(p.after, p.loop_thread));
    sl_runtime_free(rt);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_serve_and_graceful_stop),
        cmocka_unit_test(test_connection_limit_rejects),
        cmocka_unit_test(test_drain_deadline_forces_close),
        cmocka_unit_test(test_port_in_use),
        cmocka_unit_test(test_second_reuseport_listener_refused),
        cmocka_unit_test(test_post_runs_on_loop_thread),
        cmocka_unit_test(test_worker_pool),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
