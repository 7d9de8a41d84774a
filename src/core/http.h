/* HTTP/1.1 server on llhttp: keep-alive, pipelining (answered in order), content-length and
 * chunked bodies, Expect: 100-continue, limits answered with 400/408/413/414/431/503, header,
 * body, idle and write timeouts, graceful drain, a server span per request (W3C traceparent),
 * and per-route request metrics. Handlers run on the connection's I/O thread and may answer
 * later (asynchronously) but on that same thread, exactly once per request. */
#ifndef SL_HTTP_H
#define SL_HTTP_H

#include "core/common.h"
#include "core/runtime.h"

#include <stdint.h>

typedef struct sl_http_server sl_http_server_t;
typedef struct sl_http_req sl_http_req_t;
struct sl_tracer;
struct sl_trace_ctx;

typedef struct sl_http_limits {
    uint32_t max_request_line;  /* method + target + version, bytes; 414 beyond */
    uint32_t max_header_bytes;  /* all header lines together; 431 beyond */
    uint32_t max_headers;       /* header count; 431 beyond */
    uint64_t max_body_bytes;    /* decoded body; 413 beyond */
    uint32_t max_connections;   /* per listener and process; 503 beyond */
    uint32_t header_timeout_ms; /* the whole head must arrive within this; 408 */
    uint32_t body_timeout_ms;   /* the whole body must arrive within this after the head; 408 */
    uint32_t idle_timeout_ms;   /* keep-alive connection with no request: closed */
    uint32_t write_timeout_ms;  /* a response not written within this: closed */
} sl_http_limits_t;

/* The defaults documented in docs/configuration.md. */
sl_http_limits_t sl_http_limits_default(void);

typedef struct sl_http_header {
    sl_str_t name;
    sl_str_t value;
} sl_http_header_t;

/* A parsed request. Every pointer is borrowed and valid until the response has been sent. */
struct sl_http_req {
    sl_str_t method; /* "GET" */
    sl_str_t target; /* raw request target, "/v2/models/x?verbose=1" */
    sl_str_t path;   /* target up to '?' */
    sl_str_t query;  /* after '?', empty if none */
    unsigned http_minor;
    const sl_http_header_t *headers;
    unsigned n_headers;
    const uint8_t *body;
    size_t body_len;
    void *route_ctx; /* the ctx given to sl_http_server_route */
};

/* The first header named name (ASCII case-insensitive); .ptr is NULL when absent. */
sl_str_t sl_http_req_header(const sl_http_req_t *req, const char *name);
/* The request's trace context (its server span's), for logs and outgoing calls. */
const struct sl_trace_ctx *sl_http_req_trace(const sl_http_req_t *req);

typedef void (*sl_http_handler_cb)(sl_http_req_t *req, void *ctx);

/* Creates a server: name labels its metrics and logs (copied); limits are copied. */
sl_http_server_t *sl_http_server_new(const char *name, const sl_http_limits_t *limits);
/* Frees a server; only after the runtime serving it has stopped. */
void sl_http_server_free(sl_http_server_t *s);

/* Adds a route. method NULL matches any method; path is exact, or a prefix when it ends in '*'.
 * The longest matching path wins; a path that matches with another method answers 405.
 * traced=false skips the server span (health checks and scrapes). Strings are copied. */
void sl_http_server_route(sl_http_server_t *s, const char *method, const char *path,
                          sl_http_handler_cb cb, void *ctx, bool traced);

/* Spans for requests go to tracer (borrowed, may be NULL: no spans). */
void sl_http_server_set_tracer(sl_http_server_t *s, struct sl_tracer *tracer);

/* The protocol to pass to sl_runtime_listen with the server as ctx. */
const sl_proto_t *sl_http_proto(void);

/* Adds a response header (copied) to the response req will get. */
void sl_http_resp_header(sl_http_req_t *req, const char *name, const char *value);
/* Sends the response (body copied or written before return; the request is then gone). */
void sl_http_respond(sl_http_req_t *req, int status, const char *content_type, const void *body,
                     size_t len);
/* Like sl_http_respond, but takes ownership of body (malloc'd), which is written in place. */
void sl_http_respond_take(sl_http_req_t *req, int status, const char *content_type, void *body,
                          size_t len);
/* Sends {"error":{"code":code,"message":message}} with the given status. */
void sl_http_respond_error(sl_http_req_t *req, int status, const char *code, const char *message);

/* The standard reason phrase ("Not Found"), "Unknown" for codes without one. */
const char *sl_http_reason(int status);

#endif
