/* The runtime: I/O threads with one libuv loop each, SO_REUSEPORT listeners per loop, the
 * accept path with connection limits, cross-thread task posting, and graceful stop driven from
 * the main thread's loop (signal -> drain delay -> close listeners and drain -> force close). */
#include "core/runtime.h"

#include "core/common.h"
#include "core/log.h"

#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#define READ_BUFFER_SIZE (64 * 1024)

typedef struct task {
    void (*fn)(void *);
    void *arg;
    struct task *next;
} task_t;

struct sl_listener {
    char *name;
    char *host;
    uint16_t port;
    uint32_t max_conns;
    int backlog;
    const sl_proto_t *proto;
    void *ctx;
    atomic_uint conns;
    int *fds;          /* one bound socket per loop until the loop adopts it */
    uv_tcp_t *handles; /* one per loop */
    sl_runtime_t *rt;
    sl_listener_t *next;
};

struct sl_loop {
    sl_runtime_t *rt;
    unsigned index;
    uv_loop_t uv;
    uv_thread_t thread;
    uv_async_t async;
    pthread_mutex_t mu;
    task_t *tasks, *tasks_tail;
    bool posts_closed; /* under mu */
    sl_conn_t *conns;  /* live connections on this loop */
    unsigned n_conns;
    bool draining;
    bool finished;
    atomic_uint holds; /* sl_loop_hold: work elsewhere that will still answer on this loop */
    char *read_buf;
    uv_timer_t force_timer;
};

struct sl_runtime {
    sl_runtime_opts_t opts;
    unsigned n_loops;
    sl_loop_t *loops;
    sl_listener_t *listeners;
    uv_loop_t main;
    uv_signal_t sig_term, sig_int;
    uv_timer_t delay_timer, drain_timer;
    uv_async_t main_async;
    atomic_bool draining;
    atomic_uint loops_done;
    atomic_bool stop_requested;
    bool forced;
    bool running;
    bool ran;
    sl_runtime_hook_cb on_started, on_stopping, on_stopped;
    void *on_started_arg, *on_stopping_arg, *on_stopped_arg;
    struct {
        sl_loop_hook_cb cb;
        void *arg;
    } loop_finish[SL_RUNTIME_MAX_LOOP_HOOKS];
    unsigned n_loop_finish;
};

static _Thread_local sl_loop_t *t_current_loop;

/* ---- tasks posted across threads ---- */

static void run_tasks(uv_async_t *a) {
    sl_loop_t *l = a->data;
    pthread_mutex_lock(&l->mu);
    task_t *t = l->tasks;
    l->tasks = l->tasks_tail = NULL;
    pthread_mutex_unlock(&l->mu);
    while (t) {
        task_t *next = t->next;
        t->fn(t->arg);
        free(t);
        t = next;
    }
}

int sl_loop_post(sl_loop_t *loop, void (*fn)(void *arg), void *arg) {
    task_t *t = sl_malloc(sizeof *t);
    *t = (task_t){fn, arg, NULL};
    pthread_mutex_lock(&loop->mu);
    if (loop->posts_closed) {
        pthread_mutex_unlock(&loop->mu);
        free(t);
        return SL_ECLOSED;
    }
    if (loop->tasks_tail) {
        loop->tasks_tail->next = t;
    } else {
        loop->tasks = t;
    }
    loop->tasks_tail = t;
    uv_async_send(&loop->async);
    pthread_mutex_unlock(&loop->mu);
    return SL_OK;
}

/* ---- connections ---- */

static void loop_maybe_finish(sl_loop_t *l);

static void on_conn_closed(uv_handle_t *h) {
    sl_conn_t *c = SL_CONTAINER_OF((uv_tcp_t *)h, sl_conn_t, tcp);
    sl_loop_t *l = c->loop;
    c->proto->conn_free(c);
    loop_maybe_finish(l);
}

void sl_conn_close(sl_conn_t *c) {
    if (c->closing) return;
    c->closing = true;
    sl_loop_t *l = c->loop;
    if (c->prev) {
        c->prev->next = c->next;
    } else {
        l->conns = c->next;
    }
    if (c->next) c->next->prev = c->prev;
    c->prev = c->next = NULL;
    l->n_conns--;
    atomic_fetch_sub_explicit(&c->listener->conns, 1, memory_order_relaxed);
    uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
}

/* Wraps an accepted (or adopted) socket in a protocol connection on loop l. */
static void conn_attach(sl_listener_t *ls, sl_loop_t *l, uv_stream_t *server, int fd) {
    sl_conn_t *c = ls->proto->conn_new(l, ls->ctx);
    c->loop = l;
    c->listener = ls;
    c->proto = ls->proto;
    c->proto_ctx = ls->ctx;
    c->closing = false;
    uv_tcp_init(&l->uv, &c->tcp);
    /* Link first so that sl_conn_close can always unlink. */
    c->prev = NULL;
    c->next = l->conns;
    if (l->conns) l->conns->prev = c;
    l->conns = c;
    l->n_conns++;
    unsigned n = atomic_fetch_add_explicit(&ls->conns, 1, memory_order_relaxed) + 1;
    int rc = server ? uv_accept(server, (uv_stream_t *)&c->tcp) : uv_tcp_open(&c->tcp, fd);
    if (rc != 0) {
        if (!server) close(fd);
        sl_conn_close(c);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    if (ls->max_conns && n > ls->max_conns) {
        if (ls->proto->conn_reject) {
            ls->proto->conn_reject(c);
        } else {
            sl_conn_close(c);
        }
        return;
    }
    ls->proto->conn_start(c);
}

static void on_accept(uv_stream_t *server, int status) {
    sl_listener_t *ls = server->data;
    if (status < 0) {
        SL_WARN("runtime", "accept failed", SL_LF_S("listener", ls->name),
                SL_LF_S("error", uv_strerror(status)));
        return;
    }
    conn_attach(ls, t_current_loop, server, -1);
}

void sl_listener_adopt(sl_listener_t *ls, sl_loop_t *loop, int fd) {
    conn_attach(ls, loop, NULL, fd);
}

/* ---- listeners ---- */

static int parse_addr(const char *host, uint16_t port, struct sockaddr_storage *ss) {
    memset(ss, 0, sizeof *ss);
    if (uv_ip4_addr(host, port, (struct sockaddr_in *)ss) == 0) return SL_OK;
    if (uv_ip6_addr(host, port, (struct sockaddr_in6 *)ss) == 0) return SL_OK;
    return SL_EINVAL;
}

static socklen_t addr_len(const struct sockaddr_storage *ss) {
    return ss->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
}

static int bind_socket(const struct sockaddr_storage *ss, bool reuseport, int backlog, int *out) {
    int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return SL_EIO;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (reuseport) setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    if (ss->ss_family == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    if (bind(fd, (const struct sockaddr *)ss, addr_len(ss)) != 0) {
        int e = errno;
        close(fd);
        return e == EADDRINUSE ? SL_EADDRINUSE : SL_EIO;
    }
    if (backlog > 0 && listen(fd, backlog) != 0) {
        close(fd);
        return SL_EIO;
    }
    *out = fd;
    return SL_OK;
}

static void set_port(struct sockaddr_storage *ss, uint16_t port) {
    if (ss->ss_family == AF_INET6) {
        ((struct sockaddr_in6 *)ss)->sin6_port = htons(port);
    } else {
        ((struct sockaddr_in *)ss)->sin_port = htons(port);
    }
}

static uint16_t bound_port(int fd) {
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0) return 0;
    return ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                          : ((struct sockaddr_in *)&ss)->sin_port);
}

int sl_runtime_listen(sl_runtime_t *rt, const sl_listener_cfg_t *cfg, const sl_proto_t *proto,
                      void *ctx, sl_listener_t **out) {
    SL_ASSERT(!rt->running);
    struct sockaddr_storage ss;
    if (parse_addr(cfg->host, cfg->port, &ss) != 0) return SL_EINVAL;
    int backlog = cfg->backlog > 0 ? cfg->backlog : 1024;

    /* SO_REUSEPORT would let a second process of the same user silently share the port, so
     * first prove the port is free with a socket that does not set it. */
    uint16_t port = cfg->port;
    if (port != 0) {
        int probe;
        int rc = bind_socket(&ss, false, 0, &probe);
        if (rc != 0) return rc;
        close(probe);
    }
    int *fds = sl_calloc(rt->n_loops, sizeof *fds);
    for (unsigned i = 0; i < rt->n_loops; i++) {
        set_port(&ss, port);
        int rc = bind_socket(&ss, true, backlog, &fds[i]);
        if (rc != 0) {
            for (unsigned j = 0; j < i; j++)
                close(fds[j]);
            free(fds);
            return rc;
        }
        if (port == 0) port = bound_port(fds[i]);
    }
    sl_listener_t *ls = sl_calloc(1, sizeof *ls);
    ls->name = sl_strdup(cfg->name ? cfg->name : "listener");
    ls->host = sl_strdup(cfg->host);
    ls->port = port;
    ls->max_conns = cfg->max_connections;
    ls->backlog = backlog;
    ls->proto = proto;
    ls->ctx = ctx;
    ls->fds = fds;
    ls->handles = sl_calloc(rt->n_loops, sizeof *ls->handles);
    ls->rt = rt;
    ls->next = rt->listeners;
    rt->listeners = ls;
    if (out) *out = ls;
    return SL_OK;
}

uint16_t sl_listener_port(const sl_listener_t *l) {
    return l->port;
}

const char *sl_listener_name(const sl_listener_t *l) {
    return l->name;
}

uint32_t sl_listener_connections(const sl_listener_t *l) {
    return atomic_load_explicit(&((sl_listener_t *)l)->conns, memory_order_relaxed);
}

/* ---- I/O threads ---- */

static void loop_thread(void *arg) {
    sl_loop_t *l = arg;
    t_current_loop = l;
    char name[16];
    snprintf(name, sizeof name, "sl-io-%u", l->index);
    prctl(PR_SET_NAME, name, 0, 0, 0);
    for (sl_listener_t *ls = l->rt->listeners; ls; ls = ls->next) {
        uv_tcp_t *h = &ls->handles[l->index];
        uv_tcp_init(&l->uv, h);
        h->data = ls;
        int rc = uv_tcp_open(h, ls->fds[l->index]);
        if (rc == 0) rc = uv_listen((uv_stream_t *)h, ls->backlog, on_accept);
        if (rc != 0) {
            SL_ERROR("runtime", "listen failed", SL_LF_S("listener", ls->name),
                     SL_LF_S("error", uv_strerror(rc)));
        }
    }
    uv_run(&l->uv, UV_RUN_DEFAULT);
    t_current_loop = NULL;
    atomic_fetch_add(&l->rt->loops_done, 1);
    uv_async_send(&l->rt->main_async);
}

static void loop_finish(sl_loop_t *l) {
    if (l->finished) return;
    l->finished = true;
    pthread_mutex_lock(&l->mu);
    l->posts_closed = true;
    pthread_mutex_unlock(&l->mu);
    run_tasks(&l->async); /* what was posted before closing still runs */
    for (unsigned i = 0; i < l->rt->n_loop_finish; i++)
        l->rt->loop_finish[i].cb(l, l->rt->loop_finish[i].arg);
    uv_close((uv_handle_t *)&l->async, NULL);
}

static void loop_maybe_finish(sl_loop_t *l) {
    if (l->draining && l->n_conns == 0 && atomic_load(&l->holds) == 0) loop_finish(l);
}

static void task_maybe_finish(void *arg) {
    loop_maybe_finish(arg);
}

void sl_loop_hold(sl_loop_t *loop) {
    atomic_fetch_add(&loop->holds, 1);
}

void sl_loop_release(sl_loop_t *loop) {
    unsigned before = atomic_fetch_sub(&loop->holds, 1);
    SL_ASSERT(before > 0);
    /* Always through the queue: the last release often happens inside a posted task. A closed
     * queue means the loop has finished already. */
    if (before == 1) sl_loop_post(loop, task_maybe_finish, loop);
}

static void close_listeners(sl_loop_t *l) {
    for (sl_listener_t *ls = l->rt->listeners; ls; ls = ls->next) {
        uv_handle_t *h = (uv_handle_t *)&ls->handles[l->index];
        if (!uv_is_closing(h)) uv_close(h, NULL);
    }
}

static void task_drain(void *arg) {
    sl_loop_t *l = arg;
    if (l->draining) return;
    l->draining = true;
    close_listeners(l);
    for (sl_conn_t *c = l->conns, *next; c; c = next) {
        next = c->next;
        if (c->proto->conn_drain) {
            c->proto->conn_drain(c);
        } else {
            sl_conn_close(c);
        }
    }
    loop_maybe_finish(l);
}

static void close_any(uv_handle_t *h, void *arg) {
    if (!uv_is_closing(h)) uv_close(h, NULL);
}

static void close_leftovers(uv_timer_t *t) {
    /* Whatever a component left open (timers, clients) must not keep the thread alive. By now
     * the connections' own close callbacks have run and closed their handles. */
    uv_walk(t->loop, close_any, NULL);
}

static void task_force(void *arg) {
    sl_loop_t *l = arg;
    l->draining = true;
    close_listeners(l);
    while (l->conns)
        sl_conn_close(l->conns);
    loop_finish(l);
    uv_timer_init(&l->uv, &l->force_timer);
    uv_timer_start(&l->force_timer, close_leftovers, 100, 0);
    uv_unref((uv_handle_t *)&l->force_timer);
}

char *sl_loop_read_buffer(sl_loop_t *loop, size_t *len) {
    if (!loop->read_buf) loop->read_buf = sl_malloc(READ_BUFFER_SIZE);
    *len = READ_BUFFER_SIZE;
    return loop->read_buf;
}

/* ---- stop sequence on the main loop ---- */

static void post_all(sl_runtime_t *rt, void (*fn)(void *)) {
    for (unsigned i = 0; i < rt->n_loops; i++)
        sl_loop_post(&rt->loops[i], fn, &rt->loops[i]);
}

static void on_drain_deadline(uv_timer_t *t) {
    sl_runtime_t *rt = t->data;
    if (rt->forced) return;
    rt->forced = true;
    SL_WARN("runtime", "drain deadline passed, closing remaining connections",
            SL_LF_U("drain_timeout_ms", rt->opts.drain_timeout_ms));
    post_all(rt, task_force);
}

static void begin_drain(uv_timer_t *t) {
    sl_runtime_t *rt = t->data;
    SL_INFO("runtime", "draining", SL_LF_U("drain_timeout_ms", rt->opts.drain_timeout_ms));
    post_all(rt, task_drain);
    uv_timer_start(&rt->drain_timer, on_drain_deadline, rt->opts.drain_timeout_ms, 0);
}

static void stop_on_main(sl_runtime_t *rt) {
    if (atomic_exchange(&rt->draining, true)) {
        /* A second request to stop: no more waiting. */
        on_drain_deadline(&rt->drain_timer);
        return;
    }
    SL_INFO("runtime", "stopping", SL_LF_U("drain_delay_ms", rt->opts.drain_delay_ms));
    if (rt->on_stopping) rt->on_stopping(rt, rt->on_stopping_arg);
    uv_timer_start(&rt->delay_timer, begin_drain, rt->opts.drain_delay_ms, 0);
}

static void on_signal(uv_signal_t *s, int signum) {
    sl_runtime_t *rt = s->data;
    SL_INFO("runtime", "signal received",
            SL_LF_S("signal", signum == SIGTERM ? "SIGTERM" : "SIGINT"));
    stop_on_main(rt);
}

static void on_main_async(uv_async_t *a) {
    sl_runtime_t *rt = a->data;
    if (atomic_exchange(&rt->stop_requested, false)) stop_on_main(rt);
    if (atomic_load(&rt->loops_done) == rt->n_loops && !uv_is_closing((uv_handle_t *)a)) {
        if (rt->on_stopped) rt->on_stopped(rt, rt->on_stopped_arg);
        uv_close((uv_handle_t *)&rt->sig_term, NULL);
        uv_close((uv_handle_t *)&rt->sig_int, NULL);
        uv_close((uv_handle_t *)&rt->delay_timer, NULL);
        uv_close((uv_handle_t *)&rt->drain_timer, NULL);
        uv_close((uv_handle_t *)&rt->main_async, NULL);
    }
}

void sl_runtime_stop(sl_runtime_t *rt) {
    atomic_store(&rt->stop_requested, true);
    uv_async_send(&rt->main_async);
}

bool sl_runtime_draining(const sl_runtime_t *rt) {
    return atomic_load(&((sl_runtime_t *)rt)->draining);
}

void sl_runtime_on_started(sl_runtime_t *rt, sl_runtime_hook_cb cb, void *arg) {
    rt->on_started = cb;
    rt->on_started_arg = arg;
}

void sl_runtime_on_stopping(sl_runtime_t *rt, sl_runtime_hook_cb cb, void *arg) {
    rt->on_stopping = cb;
    rt->on_stopping_arg = arg;
}

void sl_runtime_on_loop_finish(sl_runtime_t *rt, sl_loop_hook_cb cb, void *arg) {
    SL_ASSERT(!rt->running && rt->n_loop_finish < SL_RUNTIME_MAX_LOOP_HOOKS);
    rt->loop_finish[rt->n_loop_finish].cb = cb;
    rt->loop_finish[rt->n_loop_finish].arg = arg;
    rt->n_loop_finish++;
}

void sl_runtime_on_stopped(sl_runtime_t *rt, sl_runtime_hook_cb cb, void *arg) {
    rt->on_stopped = cb;
    rt->on_stopped_arg = arg;
}

/* ---- lifecycle ---- */

sl_runtime_t *sl_runtime_new(const sl_runtime_opts_t *opts) {
    sl_runtime_t *rt = sl_calloc(1, sizeof *rt);
    rt->opts = *opts;
    unsigned n = opts->io_threads;
    if (n == 0) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        n = cpus > 0 ? (unsigned)cpus : 1;
    }
    rt->n_loops = n;
    /* libuv sizes its thread pool from the environment on first use. */
    char pool[16];
    snprintf(pool, sizeof pool, "%u", opts->worker_threads ? opts->worker_threads : 4);
    setenv("UV_THREADPOOL_SIZE", pool, 1);

    rt->loops = sl_calloc(n, sizeof *rt->loops);
    for (unsigned i = 0; i < n; i++) {
        sl_loop_t *l = &rt->loops[i];
        l->rt = rt;
        l->index = i;
        SL_ASSERT(uv_loop_init(&l->uv) == 0);
        pthread_mutex_init(&l->mu, NULL);
        uv_async_init(&l->uv, &l->async, run_tasks);
        l->async.data = l;
    }
    SL_ASSERT(uv_loop_init(&rt->main) == 0);
    uv_signal_init(&rt->main, &rt->sig_term);
    uv_signal_init(&rt->main, &rt->sig_int);
    rt->sig_term.data = rt->sig_int.data = rt;
    uv_timer_init(&rt->main, &rt->delay_timer);
    uv_timer_init(&rt->main, &rt->drain_timer);
    rt->delay_timer.data = rt->drain_timer.data = rt;
    uv_async_init(&rt->main, &rt->main_async, on_main_async);
    rt->main_async.data = rt;
    return rt;
}

int sl_runtime_run(sl_runtime_t *rt) {
    signal(SIGPIPE, SIG_IGN);
    uv_signal_start(&rt->sig_term, on_signal, SIGTERM);
    uv_signal_start(&rt->sig_int, on_signal, SIGINT);
    rt->running = true;
    rt->ran = true;
    for (unsigned i = 0; i < rt->n_loops; i++) {
        int rc = uv_thread_create(&rt->loops[i].thread, loop_thread, &rt->loops[i]);
        if (rc != 0) {
            SL_ERROR("runtime", "cannot start I/O thread", SL_LF_S("error", uv_strerror(rc)));
            abort();
        }
    }
    if (rt->on_started) rt->on_started(rt, rt->on_started_arg);
    uv_run(&rt->main, UV_RUN_DEFAULT);
    for (unsigned i = 0; i < rt->n_loops; i++)
        uv_thread_join(&rt->loops[i].thread);
    rt->running = false;
    return SL_OK;
}

uv_loop_t *sl_runtime_main_loop(sl_runtime_t *rt) {
    return &rt->main;
}

unsigned sl_runtime_loop_count(const sl_runtime_t *rt) {
    return rt->n_loops;
}

sl_loop_t *sl_runtime_loop(sl_runtime_t *rt, unsigned i) {
    SL_ASSERT(i < rt->n_loops);
    return &rt->loops[i];
}

uv_loop_t *sl_loop_uv(sl_loop_t *loop) {
    return &loop->uv;
}

unsigned sl_loop_index(const sl_loop_t *loop) {
    return loop->index;
}

sl_runtime_t *sl_loop_runtime(sl_loop_t *loop) {
    return loop->rt;
}

sl_loop_t *sl_loop_current(void) {
    return t_current_loop;
}

void sl_runtime_free(sl_runtime_t *rt) {
    if (!rt) return;
    SL_ASSERT(!rt->running);
    /* Close what never ran (a runtime freed before sl_runtime_run), drive the close callbacks,
     * then release the loops. */
    uv_walk(&rt->main, close_any, NULL);
    uv_run(&rt->main, UV_RUN_DEFAULT);
    SL_ASSERT(uv_loop_close(&rt->main) == 0);
    for (unsigned i = 0; i < rt->n_loops; i++) {
        sl_loop_t *l = &rt->loops[i];
        uv_walk(&l->uv, close_any, NULL);
        uv_run(&l->uv, UV_RUN_DEFAULT);
        SL_ASSERT(uv_loop_close(&l->uv) == 0);
        pthread_mutex_destroy(&l->mu);
        free(l->read_buf);
        task_t *t = l->tasks;
        while (t) {
            task_t *next = t->next;
            free(t);
            t = next;
        }
    }
    while (rt->listeners) {
        sl_listener_t *ls = rt->listeners;
        rt->listeners = ls->next;
        if (!rt->ran) {
            for (unsigned i = 0; i < rt->n_loops; i++)
                close(ls->fds[i]);
        }
        free(ls->name);
        free(ls->host);
        free(ls->fds);
        free(ls->handles);
        free(ls);
    }
    free(rt->loops);
    free(rt);
}
