/* gRPC over HTTP/2 (h2c, prior knowledge) on nghttp2: a unary-call server that plugs into the
 * runtime as an sl_proto_t, a multiplexing client on a libuv loop, the grpc.health.v1 service and
 * the sluice.v1.Echo benchmark service. Messages are opaque bytes here; callers pack and unpack
 * them with protobuf-c. Only identity encoding is supported (no compression). */
#ifndef SL_GRPC_H
#define SL_GRPC_H

#include "core/common.h"
#include "core/runtime.h"

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct sl_health;
struct sl_tracer;
struct sl_trace_ctx;

/* The status codes of the gRPC spec (doc/statuscodes.md), sent in the grpc-status trailer. */
#define SL_GRPC_CODE_MAP(X)                                                                        \
    X(OK, 0)                                                                                       \
    X(CANCELLED, 1)                                                                                \
    X(UNKNOWN, 2)                                                                                  \
    X(INVALID_ARGUMENT, 3)                                                                         \
    X(DEADLINE_EXCEEDED, 4)                                                                        \
    X(NOT_FOUND, 5)                                                                                \
    X(ALREADY_EXISTS, 6)                                                                           \
    X(PERMISSION_DENIED, 7)                                                                        \
    X(RESOURCE_EXHAUSTED, 8)                                                                       \
    X(FAILED_PRECONDITION, 9)                                                                      \
    X(ABORTED, 10)                                                                                 \
    X(OUT_OF_RANGE, 11)                                                                            \
    X(UNIMPLEMENTED, 12)                                                                           \
    X(INTERNAL, 13)                                                                                \
    X(UNAVAILABLE, 14)                                                                             \
    X(DATA_LOSS, 15)                                                                               \
    X(UNAUTHENTICATED, 16)

typedef enum sl_grpc_code {
#define SL__GRPC_ENUM(name, code) SL_GRPC_##name = (code),
    SL_GRPC_CODE_MAP(SL__GRPC_ENUM)
#undef SL__GRPC_ENUM
} sl_grpc_code_t;

#define SL_GRPC_CODE_COUNT 17

/* The canonical upper-case name ("DEADLINE_EXCEEDED"); "UNKNOWN" for codes outside 0..16. */
const char *sl_grpc_code_name(int code);

/* ---- server ---- */

typedef struct sl_grpc_limits {
    uint32_t max_message_bytes;      /* request message; RESOURCE_EXHAUSTED beyond */
    uint32_t max_concurrent_streams; /* SETTINGS_MAX_CONCURRENT_STREAMS per connection */
    uint32_t max_connections;        /* per listener and process (see sl_grpc_server_listen) */
    uint32_t idle_timeout_ms;        /* a connection with no open call this long is closed; 0 off */
} sl_grpc_limits_t;

/* The config defaults: 4 MiB, 100 streams, 10000 connections, 300 s. */
sl_grpc_limits_t sl_grpc_limits_default(void);

typedef struct sl_grpc_server sl_grpc_server_t;
typedef struct sl_grpc_call sl_grpc_call_t;

/* A unary handler. msg/len is the request message, borrowed until the call is answered. The
 * handler runs on the connection's I/O thread and must answer exactly once, now or later on that
 * same thread, with sl_grpc_reply() or sl_grpc_fail(); the call object stays valid until then,
 * even if the client goes away (the answer is then dropped). */
typedef void (*sl_grpc_handler_cb)(sl_grpc_call_t *call, const uint8_t *msg, size_t len, void *ctx);

/* Creates a server; name labels its metrics and logs (copied), limits are copied (NULL:
 * defaults). Free with sl_grpc_server_free() only after the runtime serving it has stopped. */
sl_grpc_server_t *sl_grpc_server_new(const char *name, const sl_grpc_limits_t *limits);
void sl_grpc_server_free(sl_grpc_server_t *s);

/* Registers a method by its full path "/package.Service/Method" (copied); ctx is borrowed and
 * passed to cb. Call before serving starts. Returns 0, SL_EINVAL for a malformed path or
 * SL_EEXISTS if the path is already registered. */
int sl_grpc_server_add_method(sl_grpc_server_t *s, const char *path, sl_grpc_handler_cb cb,
                              void *ctx);

/* Server spans for calls go to tracer (borrowed, may be NULL: spans only carry context). */
void sl_grpc_server_set_tracer(sl_grpc_server_t *s, struct sl_tracer *tracer);

/* The protocol to pass to sl_runtime_listen() with the server as ctx. */
const sl_proto_t *sl_grpc_proto(void);

/* Convenience: sl_runtime_listen() on host:port with the server's name and max_connections.
 * Same return values; *out (optional) receives the listener. */
int sl_grpc_server_listen(sl_grpc_server_t *s, sl_runtime_t *rt, const char *host, uint16_t port,
                          sl_listener_t **out);

/* Answers the call with a response message (copied before return). The call is gone after this
 * returns. A reply after the deadline passed or the client left is dropped silently. */
void sl_grpc_reply(sl_grpc_call_t *call, const void *msg, size_t len);
/* Answers the call with an error status (code != SL_GRPC_OK) and a message (copied, may be NULL),
 * sent percent-encoded in grpc-message. The call is gone after this returns. */
void sl_grpc_fail(sl_grpc_call_t *call, sl_grpc_code_t code, const char *message);

/* Accessors; every returned pointer is borrowed until the call is answered. */
const char *sl_grpc_call_method(const sl_grpc_call_t *call); /* "/pkg.Service/Method" */
/* The deadline from grpc-timeout on sl_now_ms()'s clock, 0 when the client sent none. */
uint64_t sl_grpc_call_deadline_ms(const sl_grpc_call_t *call);
/* The first request header (metadata) named name, lowercase; .ptr is NULL when absent. */
sl_str_t sl_grpc_call_metadata(const sl_grpc_call_t *call, const char *name);
/* The call's trace context (its server span's; a child of the client's traceparent if any). */
const struct sl_trace_ctx *sl_grpc_call_trace(const sl_grpc_call_t *call);
/* The libuv loop the call belongs to (answer on its thread). */
uv_loop_t *sl_grpc_call_loop(const sl_grpc_call_t *call);
/* True once an answer is pointless: the client reset the stream, the connection closed, or the
 * deadline passed. The handler must still answer to release the call. */
bool sl_grpc_call_cancelled(const sl_grpc_call_t *call);

/* Standard services. grpc.health.v1.Health/Check answers SERVING when sl_health_ready(health)
 * for service "" or the component's name, NOT_SERVING otherwise, and NOT_FOUND for any other
 * name; Health/Watch answers UNIMPLEMENTED. health is borrowed for the server's lifetime. */
int sl_grpc_health_register(sl_grpc_server_t *s, struct sl_health *health);
/* sluice.v1.Echo/Echo: returns the request bytes unchanged (for benchmarks). */
int sl_grpc_echo_register(sl_grpc_server_t *s);

/* ---- client ---- */

typedef struct sl_grpc_client sl_grpc_client_t;

typedef struct sl_grpc_client_opts {
    uint32_t connect_timeout_ms; /* default 1000 */
    uint32_t max_response_bytes; /* response message limit, default 4 MiB (RESOURCE_EXHAUSTED) */
} sl_grpc_client_opts_t;

/* Result of a call: code is an sl_grpc_code_t; message is the decoded grpc-message ("" when none);
 * resp/len is the response message when code is SL_GRPC_OK (NULL/0 otherwise). Everything is
 * borrowed for the duration of the callback. Transport failures are UNAVAILABLE, a passed
 * deadline DEADLINE_EXCEEDED, sl_grpc_client_free() CANCELLED. */
typedef void (*sl_grpc_client_cb)(int code, const char *message, const uint8_t *resp, size_t len,
                                  void *arg);

/* Creates a client for host:port (host copied: a numeric address or a name resolved with
 * getaddrinfo). It connects lazily on the first call, multiplexes every call on one HTTP/2
 * connection and reconnects after a failure. opts may be NULL (defaults). Use only on loop's
 * thread; free with sl_grpc_client_free(). */
sl_grpc_client_t *sl_grpc_client_new(uv_loop_t *loop, const char *host, uint16_t port,
                                     const sl_grpc_client_opts_t *opts);
/* Fails every pending call with CANCELLED (their callbacks run before this returns) and closes
 * the connection; the memory is released once the handles have closed (keep running the loop). */
void sl_grpc_client_free(sl_grpc_client_t *c);

/* Starts a unary call. path, msg and traceparent (a W3C traceparent value, or NULL) are copied.
 * timeout_ms > 0 sets the deadline (sent as grpc-timeout and enforced locally); 0 means none.
 * cb is called exactly once, never before this returns. Returns 0, SL_EINVAL for a malformed
 * path or a message over 4 GiB, or SL_ECLOSED when called from a callback that
 * sl_grpc_client_free() is delivering (cb is then not called). */
int sl_grpc_client_call(sl_grpc_client_t *c, const char *path, const void *msg, size_t len,
                        uint32_t timeout_ms, const char *traceparent, sl_grpc_client_cb cb,
                        void *arg);

#endif
