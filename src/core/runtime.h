/* The runtime: N I/O threads, each running its own libuv loop with its own SO_REUSEPORT listening
 * socket per port, plus the main thread's loop for signals, config reload and exporters.
 * Protocols (HTTP/1.1, HTTP/2 + gRPC) plug in through sl_proto_t; the runtime owns accepting,
 * connection limits and graceful drain: on SIGTERM/SIGINT it closes the listeners, asks every
 * connection to drain, and force-closes what is left when the drain deadline passes.
 * Blocking work goes to libuv's thread pool (uv_queue_work on the calling loop), sized by
 * sl_runtime_opts_t.worker_threads. */
#ifndef SL_RUNTIME_H
#define SL_RUNTIME_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

typedef struct sl_runtime sl_runtime_t;
typedef struct sl_loop sl_loop_t;
typedef struct sl_conn sl_conn_t;
typedef struct sl_listener sl_listener_t;

/* A wire protocol served on a listener. All callbacks run on the connection's loop thread. */
typedef struct sl_proto {
    const char *name;
    /* Allocates a connection object that embeds sl_conn_t and returns the embedded part. */
    sl_conn_t *(*conn_new)(sl_loop_t *loop, void *ctx);
    /* The connection is accepted (c->tcp is open): start reading. */
    void (*conn_start)(sl_conn_t *c);
    /* The listener is at its connection limit: answer if the protocol can (HTTP/1.1 writes a
     * 503) and call sl_conn_close(). NULL: the runtime closes it. */
    void (*conn_reject)(sl_conn_t *c);
    /* Stop taking new requests, finish in-flight ones, then sl_conn_close(). */
    void (*conn_drain)(sl_conn_t *c);
    /* Called once the handle has closed; frees the object (possibly later, if a handler
     * still holds a request of this connection). */
    void (*conn_free)(sl_conn_t *c);
} sl_proto_t;

/* The runtime's part of every connection; protocols embed it in their own struct. */
struct sl_conn {
    uv_tcp_t tcp; /* tcp.data belongs to the protocol */
    sl_loop_t *loop;
    sl_listener_t *listener;
    const sl_proto_t *proto;
    void *proto_ctx;
    sl_conn_t *prev, *next; /* the loop's list of live connections */
    bool closing;
};

/* Closes the connection (idempotent): unlinks it, closes the handle, then calls conn_free. */
void sl_conn_close(sl_conn_t *c);

typedef struct sl_listener_cfg {
    const char *name;         /* for logs and metrics, e.g. "inference-http" (copied) */
    const char *host;         /* address to bind, e.g. "0.0.0.0" or "127.0.0.1" (copied) */
    uint16_t port;            /* 0 picks a free port, readable with sl_listener_port() */
    uint32_t max_connections; /* per process, over all I/O threads; 0 = unlimited */
    int backlog;              /* listen(2) backlog; 0 = 1024 */
} sl_listener_cfg_t;

typedef struct sl_runtime_opts {
    unsigned io_threads;       /* 0 = number of online CPUs */
    unsigned worker_threads;   /* libuv thread pool size; 0 = 4 */
    uint32_t drain_timeout_ms; /* how long graceful stop waits before force-closing */
    uint32_t drain_delay_ms;   /* after the signal, keep serving (not ready) this long first */
} sl_runtime_opts_t;

/* Creates the runtime and its loops (threads start in sl_runtime_run). Free with
 * sl_runtime_free() after sl_runtime_run() returned. */
sl_runtime_t *sl_runtime_new(const sl_runtime_opts_t *opts);
void sl_runtime_free(sl_runtime_t *rt);

/* Binds host:port on every I/O loop (SO_REUSEPORT) and serves proto on it; ctx is passed to
 * proto->conn_new and borrowed until the runtime is freed. Fails with SL_EADDRINUSE when any
 * other socket holds the port (also one with SO_REUSEPORT in another process), SL_EINVAL for a
 * bad address. On success *out (optional) receives the listener. Call before sl_runtime_run. */
int sl_runtime_listen(sl_runtime_t *rt, const sl_listener_cfg_t *cfg, const sl_proto_t *proto,
                      void *ctx, sl_listener_t **out);
uint16_t sl_listener_port(const sl_listener_t *l);
const char *sl_listener_name(const sl_listener_t *l);
uint32_t sl_listener_connections(const sl_listener_t *l); /* live connections, all threads */

/* Serves an already connected stream socket fd (owned from here on) as if l had accepted it on
 * loop, connection limit included; call on loop's thread (or before it runs). For socket
 * hand-over and for driving a protocol from fuzzers and tests over a socketpair. */
void sl_listener_adopt(sl_listener_t *l, sl_loop_t *loop, int fd);

/* Starts the I/O threads and runs the main loop until a graceful stop has finished. Installs
 * SIGTERM/SIGINT handlers (a second signal forces an immediate stop) and ignores SIGPIPE.
 * Returns 0, or a negative status if the threads could not start. */
int sl_runtime_run(sl_runtime_t *rt);

/* Starts a graceful stop; safe from any thread. */
void sl_runtime_stop(sl_runtime_t *rt);

/* True once a stop has begun (readiness reports "draining"). */
bool sl_runtime_draining(const sl_runtime_t *rt);

/* Hooks run on the main loop's thread: after the I/O threads started; when a stop begins
 * (before the drain delay); and once every I/O thread has finished (close what still lives on
 * the main loop here, e.g. flush the trace exporter, or sl_runtime_run cannot return).
 * Optional; one each. */
typedef void (*sl_runtime_hook_cb)(sl_runtime_t *rt, void *arg);
void sl_runtime_on_started(sl_runtime_t *rt, sl_runtime_hook_cb cb, void *arg);
void sl_runtime_on_stopping(sl_runtime_t *rt, sl_runtime_hook_cb cb, void *arg);
void sl_runtime_on_stopped(sl_runtime_t *rt, sl_runtime_hook_cb cb, void *arg);

/* Per-loop shutdown: cb(loop, arg) runs on each I/O loop's thread once that loop has no
 * connections left (after the drain, or when a forced stop closed them), before the thread
 * ends. Close what a component keeps per loop here (upstream clients, timers): the thread runs
 * until their handles have closed. Register before sl_runtime_run; at most
 * SL_RUNTIME_MAX_LOOP_HOOKS, run in registration order. */
#define SL_RUNTIME_MAX_LOOP_HOOKS 8
typedef void (*sl_loop_hook_cb)(sl_loop_t *loop, void *arg);
void sl_runtime_on_loop_finish(sl_runtime_t *rt, sl_loop_hook_cb cb, void *arg);

/* The main thread's loop (signals, config watch, exporters). Valid until sl_runtime_free. */
uv_loop_t *sl_runtime_main_loop(sl_runtime_t *rt);

unsigned sl_runtime_loop_count(const sl_runtime_t *rt);
sl_loop_t *sl_runtime_loop(sl_runtime_t *rt, unsigned i);
uv_loop_t *sl_loop_uv(sl_loop_t *loop);
unsigned sl_loop_index(const sl_loop_t *loop);
sl_runtime_t *sl_loop_runtime(sl_loop_t *loop);
/* The I/O loop running on the calling thread, or NULL on any other thread. */
sl_loop_t *sl_loop_current(void);

/* A scratch buffer owned by the loop for reading sockets: what a read callback gets in it must be
 * consumed (or copied) before the callback returns. Shared by every connection on the loop, so
 * idle connections hold no read memory. */
char *sl_loop_read_buffer(sl_loop_t *loop, size_t *len);

/* Work that another thread does for this loop and that will answer on it (a model execution on
 * an instance thread): while any hold is taken, a graceful stop does not finish the loop, so
 * the answer still finds its connection (a forced stop does not wait). Both are safe from any
 * thread; each hold is released exactly once. */
void sl_loop_hold(sl_loop_t *loop);
void sl_loop_release(sl_loop_t *loop);

/* Runs fn(arg) on loop's thread soon; safe from any thread. Returns 0 or SL_ECLOSED if the
 * loop has stopped (fn is then not called). */
int sl_loop_post(sl_loop_t *loop, void (*fn)(void *arg), void *arg);

#endif
