/* gRPC client: unary calls multiplexed on one nghttp2 client session per upstream, on a libuv
 * loop. Connects lazily, reconnects after a failure, moves to a fresh connection when the
 * server sends GOAWAY (retrying calls the server refused unprocessed), enforces deadlines
 * locally and sends them as grpc-timeout. Results are delivered outside nghttp2's callbacks, so
 * a callback may start calls or free the client. */
#include "core/grpc.h"

#include "core/grpc_frame.h"
#include "core/log.h"

#include <nghttp2/nghttp2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WRITE_BATCH_MAX           (256 * 1024)
#define STREAM_WINDOW             (1 << 20)
#define CONN_WINDOW               (16 << 20)
#define MAX_MESSAGE_TEXT          4096
#define MAX_RESPONSE_HEADER_BYTES (64 * 1024)

typedef struct ccall ccall_t;
typedef struct cconn cconn_t;

enum { C_RESOLVING, C_CONNECTING, C_READY, C_GOAWAY, C_CLOSED };

struct cconn {
    sl_grpc_client_t *client;
    cconn_t *prev, *next;
    int state;
    uv_tcp_t tcp;
    uv_connect_t creq;
    uv_getaddrinfo_t gai;
    uv_write_t wreq;
    nghttp2_session *h2;
    uint64_t connect_deadline_ms;
    sl_buf_t wbuf;
    bool writing;
    bool batching;
    bool tcp_open; /* initialised and its close callback not yet run */
    bool gai_pending;
    char err[160];
};

struct ccall {
    sl_grpc_client_t *client;
    cconn_t *conn;     /* NULL while waiting to be routed to a connection */
    int32_t stream_id; /* 0 until submitted */
    ccall_t *prev, *next;
    char *path;
    sl_buf_t req; /* framed request message */
    size_t req_off;
    char *traceparent;
    uint64_t deadline_ms;
    sl_grpc_client_cb cb;
    void *arg;
    bool retried;
    bool got_headers;
    bool too_large;
    int http_status;
    int grpc_status; /* -1 until received */
    size_t hdr_bytes;
    sl_buf_t message;
    sl_buf_t resp;
    /* The result, once decided; the call then waits on the done list for delivery. */
    int code;
    ccall_t *done_next;
};

struct sl_grpc_client {
    uv_loop_t *loop;
    char *host;
    uint16_t port;
    char *authority;
    sl_grpc_client_opts_t opts;
    cconn_t *cur;   /* where new calls go; NULL: connect on the next call */
    cconn_t *conns; /* every connection not yet released */
    ccall_t *calls; /* calls without a result */
    ccall_t *done_head, *done_tail;
    unsigned unrouted;
    uv_timer_t timer;
    unsigned handles_open;
    int busy;
    bool freeing;
    char err[160]; /* why the last connection attempt failed synchronously */
};

static void conn_flush(cconn_t *k);
static void leave(sl_grpc_client_t *c);
static void conn_close(cconn_t *k, int code, const char *why);

/* ---- results ---- */

/* Decides a call's result and queues it for delivery. rst: the stream is still open and must be
 * cancelled on the wire. */
static void call_complete(ccall_t *call, int code, const char *message, bool rst) {
    sl_grpc_client_t *c = call->client;
    cconn_t *k = call->conn;
    if (k && call->stream_id > 0 && k->h2) {
        nghttp2_session_set_stream_user_data(k->h2, call->stream_id, NULL);
        if (rst)
            nghttp2_submit_rst_stream(k->h2, NGHTTP2_FLAG_NONE, call->stream_id, NGHTTP2_CANCEL);
    }
    if (!k) c->unrouted--;
    call->conn = NULL;
    if (call->prev) {
        call->prev->next = call->next;
    } else {
        c->calls = call->next;
    }
    if (call->next) call->next->prev = call->prev;
    call->prev = call->next = NULL;
    call->code = code;
    if (code != SL_GRPC_OK && message != call->message.data) {
        sl_buf_reset(&call->message);
        if (message) sl_buf_puts(&call->message, message);
    }
    call->done_next = NULL;
    if (c->done_tail) {
        c->done_tail->done_next = call;
    } else {
        c->done_head = call;
    }
    c->done_tail = call;
}

static void call_free(ccall_t *call) {
    free(call->path);
    free(call->traceparent);
    sl_buf_free(&call->req);
    sl_buf_free(&call->message);
    sl_buf_free(&call->resp);
    free(call);
}

static void deliver_done(sl_grpc_client_t *c) {
    while (c->done_head) {
        ccall_t *call = c->done_head;
        c->done_head = call->done_next;
        if (!c->done_head) c->done_tail = NULL;
        const uint8_t *msg = NULL;
        size_t len = 0;
        if (call->code == SL_GRPC_OK) {
            msg = (const uint8_t *)call->resp.data + SL_GRPC_PREFIX_LEN;
            len = call->resp.len - SL_GRPC_PREFIX_LEN;
        }
        call->cb(call->code, call->message.data ? call->message.data : "", msg, len, call->arg);
        call_free(call);
    }
}

/* The result of a stream the server finished (or reset). */
static void call_finish_stream(ccall_t *call, uint32_t error_code) {
    sl_grpc_client_t *c = call->client;
    char text[96];
    if (call->too_large) {
        snprintf(text, sizeof text, "response message larger than max (%u bytes)",
                 c->opts.max_response_bytes);
        call_complete(call, SL_GRPC_RESOURCE_EXHAUSTED, text, false);
        return;
    }
    if (call->grpc_status < 0) {
        if (error_code != NGHTTP2_NO_ERROR) {
            int code = error_code == NGHTTP2_CANCEL              ? SL_GRPC_CANCELLED
                       : error_code == NGHTTP2_REFUSED_STREAM    ? SL_GRPC_UNAVAILABLE
                       : error_code == NGHTTP2_ENHANCE_YOUR_CALM ? SL_GRPC_RESOURCE_EXHAUSTED
                                                                 : SL_GRPC_INTERNAL;
            snprintf(text, sizeof text, "stream reset by the server (HTTP/2 error %s)",
                     nghttp2_http2_strerror(error_code));
            call_complete(call, code, text, false);
        } else if (call->http_status != 200) {
            snprintf(text, sizeof text, "HTTP status %d without grpc-status", call->http_status);
            call_complete(call, sl_grpc__code_from_http(call->http_status), text, false);
        } else {
            call_complete(call, SL_GRPC_INTERNAL, "response without grpc-status", false);
        }
        return;
    }
    if (call->grpc_status != SL_GRPC_OK) {
        call_complete(call, call->grpc_status, call->message.data, false);
        return;
    }
    const uint8_t *msg;
    size_t len;
    const char *why;
    int code = sl_grpc__unary_parse((const uint8_t *)call->resp.data, call->resp.len,
                                    c->opts.max_response_bytes, &msg, &len, &why);
    if (code != SL_GRPC_OK) {
        snprintf(text, sizeof text, "bad response: %s", why);
        call_complete(call, code, text, false);
        return;
    }
    call_complete(call, SL_GRPC_OK, NULL, false);
}

/* ---- nghttp2 callbacks ---- */

static ccall_t *call_by_stream(cconn_t *k, int32_t stream_id) {
    for (ccall_t *call = k->client->calls; call; call = call->next) {
        if (call->conn == k && call->stream_id == stream_id) return call;
    }
    return NULL;
}

/* The server refused the stream without processing it (GOAWAY, REFUSED_STREAM): safe to send it
 * once more on a fresh connection. */
static bool call_retry(ccall_t *call) {
    if (call->retried || call->got_headers || call->client->freeing) return false;
    if (call->conn && call->conn->h2)
        nghttp2_session_set_stream_user_data(call->conn->h2, call->stream_id, NULL);
    call->retried = true;
    call->conn = NULL;
    call->stream_id = 0;
    call->req_off = 0;
    call->client->unrouted++;
    return true;
}

static ssize_t req_read(nghttp2_session *h2, int32_t stream_id, uint8_t *buf, size_t length,
                        uint32_t *flags, nghttp2_data_source *src, void *ud) {
    ccall_t *call = nghttp2_session_get_stream_user_data(h2, stream_id);
    if (!call) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    size_t n = SL_MIN(length, call->req.len - call->req_off);
    memcpy(buf, call->req.data + call->req_off, n);
    call->req_off += n;
    if (call->req_off == call->req.len) *flags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)n;
}

static int on_header(nghttp2_session *h2, const nghttp2_frame *frame, const uint8_t *name,
                     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
                     void *ud) {
    ccall_t *call = nghttp2_session_get_stream_user_data(h2, frame->hd.stream_id);
    if (!call) return 0;
    call->got_headers = true;
    call->hdr_bytes += namelen + valuelen + 32;
    if (call->hdr_bytes > MAX_RESPONSE_HEADER_BYTES) {
        call_complete(call, SL_GRPC_RESOURCE_EXHAUSTED, "response metadata too large", true);
        return 0;
    }
    sl_str_t n = {(const char *)name, namelen};
    if (sl_str_eq(n, ":status")) {
        int st = 0;
        for (size_t i = 0; i < valuelen && i < 3; i++)
            st = st * 10 + (value[i] - '0');
        call->http_status = st; /* nghttp2 has checked it is 3 digits */
    } else if (sl_str_eq(n, "grpc-status")) {
        int st = 0;
        bool ok = valuelen > 0 && valuelen <= 3;
        for (size_t i = 0; ok && i < valuelen; i++) {
            if (value[i] < '0' || value[i] > '9') ok = false;
            st = st * 10 + (value[i] - '0');
        }
        /* Codes outside the known range are UNKNOWN, as the spec asks. */
        call->grpc_status = !ok ? SL_GRPC_UNKNOWN : st < SL_GRPC_CODE_COUNT ? st : SL_GRPC_UNKNOWN;
    } else if (sl_str_eq(n, "grpc-message")) {
        sl_buf_reset(&call->message);
        sl_grpc__message_decode(&call->message, (const char *)value,
                                SL_MIN(valuelen, MAX_MESSAGE_TEXT));
    }
    return 0;
}

static int on_data_chunk_recv(nghttp2_session *h2, uint8_t flags, int32_t stream_id,
                              const uint8_t *data, size_t len, void *ud) {
    cconn_t *k = ud;
    ccall_t *call = nghttp2_session_get_stream_user_data(h2, stream_id);
    if (!call || call->too_large) return 0;
    size_t max = (size_t)k->client->opts.max_response_bytes + SL_GRPC_PREFIX_LEN;
    if (call->resp.len + len > max) {
        /* Stop it now rather than buffer what will be refused anyway. */
        call->too_large = true;
        nghttp2_submit_rst_stream(h2, NGHTTP2_FLAG_NONE, stream_id, NGHTTP2_CANCEL);
        return 0;
    }
    sl_buf_append(&call->resp, data, len);
    return 0;
}

static int on_frame_recv(nghttp2_session *h2, const nghttp2_frame *frame, void *ud) {
    cconn_t *k = ud;
    if (frame->hd.type == NGHTTP2_GOAWAY && k->state == C_READY) {
        /* No new streams here; calls above last_stream_id are refused by nghttp2 and retried. */
        k->state = C_GOAWAY;
        if (k->client->cur == k) k->client->cur = NULL;
    }
    return 0;
}

static int on_frame_not_send(nghttp2_session *h2, const nghttp2_frame *frame, int lib_error,
                             void *ud) {
    cconn_t *k = ud;
    if (frame->hd.type != NGHTTP2_HEADERS) return 0;
    ccall_t *call = call_by_stream(k, frame->hd.stream_id);
    if (!call) return 0;
    if (!call_retry(call)) {
        snprintf(k->err, sizeof k->err, "cannot start stream: %s", nghttp2_strerror(lib_error));
        call_complete(call, SL_GRPC_UNAVAILABLE, k->err, false);
    }
    return 0;
}

static int on_stream_close(nghttp2_session *h2, int32_t stream_id, uint32_t error_code, void *ud) {
    ccall_t *call = nghttp2_session_get_stream_user_data(h2, stream_id);
    if (!call) return 0;
    if (error_code == NGHTTP2_REFUSED_STREAM && call_retry(call)) return 0;
    call_finish_stream(call, error_code);
    return 0;
}

/* ---- connections ---- */

static void client_destroy(sl_grpc_client_t *c) {
    free(c->host);
    free(c->authority);
    free(c);
}

static void client_maybe_destroy(sl_grpc_client_t *c) {
    if (c->freeing && c->busy == 0 && c->handles_open == 0) client_destroy(c);
}

static void conn_maybe_release(cconn_t *k) {
    if (k->state != C_CLOSED || k->tcp_open || k->gai_pending) return;
    sl_grpc_client_t *c = k->client;
    if (k->prev) {
        k->prev->next = k->next;
    } else {
        c->conns = k->next;
    }
    if (k->next) k->next->prev = k->prev;
    sl_buf_free(&k->wbuf);
    free(k);
}

static void on_tcp_closed(uv_handle_t *h) {
    cconn_t *k = h->data;
    sl_grpc_client_t *c = k->client;
    k->tcp_open = false;
    c->handles_open--;
    conn_maybe_release(k);
    client_maybe_destroy(c);
}

/* Closes the connection and fails every call still on it with code/why. */
static void conn_close(cconn_t *k, int code, const char *why) {
    if (k->state == C_CLOSED) return;
    sl_grpc_client_t *c = k->client;
    k->state = C_CLOSED;
    if (c->cur == k) c->cur = NULL;
    for (ccall_t *call = c->calls, *next; call; call = next) {
        next = call->next;
        if (call->conn == k) call_complete(call, code, why, false);
    }
    if (k->h2) {
        nghttp2_session_del(k->h2);
        k->h2 = NULL;
    }
    if (k->tcp_open) {
        if (!uv_is_closing((uv_handle_t *)&k->tcp)) {
            uv_close((uv_handle_t *)&k->tcp, on_tcp_closed);
        } else {
            /* Closed by someone else: a forced runtime stop closes every handle of the loop,
             * and the loop has finished those closes before anyone frees us. */
            k->tcp_open = false;
            c->handles_open--;
        }
    }
    if (k->gai_pending) uv_cancel((uv_req_t *)&k->gai);
    conn_maybe_release(k);
}

static void on_write(uv_write_t *req, int status) {
    cconn_t *k = req->data;
    sl_grpc_client_t *c = k->client;
    c->busy++;
    k->writing = false;
    if (k->state != C_CLOSED) {
        if (status < 0) {
            snprintf(k->err, sizeof k->err, "write to %s failed: %s", c->authority,
                     uv_strerror(status));
            conn_close(k, SL_GRPC_UNAVAILABLE, k->err);
        } else {
            conn_flush(k);
        }
    }
    leave(c);
}

static void conn_flush(cconn_t *k) {
    if (k->batching || k->writing || !k->h2) return;
    sl_buf_reset(&k->wbuf);
    int rv = sl_grpc__h2_collect(k->h2, &k->wbuf, WRITE_BATCH_MAX);
    if (rv < 0) {
        snprintf(k->err, sizeof k->err, "HTTP/2 error: %s", nghttp2_strerror(rv));
        conn_close(k, SL_GRPC_INTERNAL, k->err);
        return;
    }
    if (k->wbuf.len == 0) {
        if (!nghttp2_session_want_read(k->h2) && !nghttp2_session_want_write(k->h2))
            conn_close(k, SL_GRPC_UNAVAILABLE, "connection finished by the server");
        return;
    }
    uv_buf_t b = uv_buf_init(k->wbuf.data, (unsigned)k->wbuf.len);
    k->wreq.data = k;
    k->writing = true;
    int rc = uv_write(&k->wreq, (uv_stream_t *)&k->tcp, &b, 1, on_write);
    if (rc != 0) {
        k->writing = false;
        snprintf(k->err, sizeof k->err, "write to %s failed: %s", k->client->authority,
                 uv_strerror(rc));
        conn_close(k, SL_GRPC_UNAVAILABLE, k->err);
    }
}

#define NV(n, v, vlen)                                                                             \
    { (uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, (vlen), NGHTTP2_NV_FLAG_NONE }

static void call_submit(cconn_t *k, ccall_t *call) {
    char timeout[SL_GRPC_TIMEOUT_MAX_LEN];
    size_t timeout_len = 0;
    if (call->deadline_ms) {
        uint64_t now = sl_now_ms();
        uint64_t left = call->deadline_ms > now ? call->deadline_ms - now : 1;
        timeout_len = sl_grpc__timeout_format(left, timeout);
    }
    static const char ua[] = "sluice/" SL_VERSION;
    sl_grpc_client_t *c = k->client;
    nghttp2_nv nva[9] = {
        NV(":method", "POST", 4),
        NV(":scheme", "http", 4),
        NV(":path", call->path, strlen(call->path)),
        NV(":authority", c->authority, strlen(c->authority)),
        NV("content-type", "application/grpc", 16),
        NV("te", "trailers", 8),
        NV("user-agent", ua, sizeof ua - 1),
    };
    size_t n = 7;
    if (timeout_len) nva[n++] = (nghttp2_nv)NV("grpc-timeout", timeout, timeout_len);
    if (call->traceparent)
        nva[n++] = (nghttp2_nv)NV("traceparent", call->traceparent, strlen(call->traceparent));
    nghttp2_data_provider prd = {.read_callback = req_read};
    int32_t id = nghttp2_submit_request(k->h2, NULL, nva, n, &prd, call);
    if (id < 0) {
        snprintf(k->err, sizeof k->err, "cannot start stream: %s", nghttp2_strerror(id));
        call_complete(call, SL_GRPC_UNAVAILABLE, k->err, false);
        return;
    }
    call->stream_id = id;
}

static int session_init(cconn_t *k) {
    nghttp2_session_callbacks *cbs;
    nghttp2_session_callbacks_new(&cbs);
    nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data_chunk_recv);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
    nghttp2_session_callbacks_set_on_frame_not_send_callback(cbs, on_frame_not_send);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
    int rv = nghttp2_session_client_new(&k->h2, cbs, k);
    nghttp2_session_callbacks_del(cbs);
    if (rv != 0) return rv;
    nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, STREAM_WINDOW},
    };
    rv = nghttp2_submit_settings(k->h2, NGHTTP2_FLAG_NONE, iv, SL_ARRAY_LEN(iv));
    if (rv == 0)
        rv = nghttp2_session_set_local_window_size(k->h2, NGHTTP2_FLAG_NONE, 0, CONN_WINDOW);
    return rv;
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf) {
    cconn_t *k = stream->data;
    sl_grpc_client_t *c = k->client;
    if (k->state == C_CLOSED || nread == 0) return;
    c->busy++;
    if (nread < 0) {
        snprintf(k->err, sizeof k->err, "connection to %s closed: %s", c->authority,
                 uv_strerror((int)nread));
        conn_close(k, SL_GRPC_UNAVAILABLE, k->err);
    } else {
        k->batching = true;
        ssize_t rv = nghttp2_session_mem_recv(k->h2, (const uint8_t *)buf->base, (size_t)nread);
        k->batching = false;
        if (rv < 0) {
            snprintf(k->err, sizeof k->err, "HTTP/2 protocol error from %s: %s", c->authority,
                     nghttp2_strerror((int)rv));
            conn_close(k, SL_GRPC_INTERNAL, k->err);
        } else {
            conn_flush(k);
        }
    }
    leave(c);
}

static void conn_ready(cconn_t *k) {
    sl_grpc_client_t *c = k->client;
    uv_tcp_nodelay(&k->tcp, 1);
    if (session_init(k) != 0 ||
        uv_read_start((uv_stream_t *)&k->tcp, sl_grpc__alloc_cb, on_read) != 0) {
        conn_close(k, SL_GRPC_INTERNAL, "cannot start HTTP/2 session");
        return;
    }
    k->state = C_READY;
    for (ccall_t *call = c->calls, *next; call; call = next) {
        next = call->next;
        if (call->conn == k && call->stream_id == 0) call_submit(k, call);
    }
    conn_flush(k);
}

static void on_connect(uv_connect_t *req, int status) {
    cconn_t *k = req->data;
    sl_grpc_client_t *c = k->client;
    if (k->state == C_CLOSED) return;
    c->busy++;
    if (status < 0) {
        snprintf(k->err, sizeof k->err, "connect to %s failed: %s", c->authority,
                 uv_strerror(status));
        conn_close(k, SL_GRPC_UNAVAILABLE, k->err);
    } else {
        conn_ready(k);
    }
    leave(c);
}

static void conn_connect(cconn_t *k, const struct sockaddr *addr) {
    sl_grpc_client_t *c = k->client;
    uv_tcp_init(c->loop, &k->tcp);
    k->tcp.data = k;
    k->tcp_open = true;
    c->handles_open++;
    k->state = C_CONNECTING;
    k->creq.data = k;
    int rc = uv_tcp_connect(&k->creq, &k->tcp, addr, on_connect);
    if (rc != 0) {
        snprintf(k->err, sizeof k->err, "connect to %s failed: %s", c->authority, uv_strerror(rc));
        conn_close(k, SL_GRPC_UNAVAILABLE, k->err);
    }
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res) {
    cconn_t *k = req->data;
    sl_grpc_client_t *c = k->client;
    k->gai_pending = false;
    c->handles_open--;
    c->busy++;
    if (k->state == C_CLOSED) {
        conn_maybe_release(k);
    } else if (status < 0 || !res) {
        snprintf(k->err, sizeof k->err, "cannot resolve %s: %s", c->host, uv_strerror(status));
        conn_close(k, SL_GRPC_UNAVAILABLE, k->err);
    } else {
        conn_connect(k, res->ai_addr);
    }
    if (res) uv_freeaddrinfo(res);
    leave(c);
}

static cconn_t *conn_open(sl_grpc_client_t *c) {
    cconn_t *k = sl_calloc(1, sizeof *k);
    k->client = c;
    k->next = c->conns;
    if (c->conns) c->conns->prev = k;
    c->conns = k;
    k->connect_deadline_ms = sl_now_ms() + c->opts.connect_timeout_ms;
    struct sockaddr_storage ss;
    if (uv_ip4_addr(c->host, c->port, (struct sockaddr_in *)&ss) == 0 ||
        uv_ip6_addr(c->host, c->port, (struct sockaddr_in6 *)&ss) == 0) {
        conn_connect(k, (const struct sockaddr *)&ss);
        if (k->state != C_CLOSED) return k;
        memcpy(c->err, k->err, sizeof c->err); /* k is released when its handle has closed */
        return NULL;
    }
    char port[8];
    snprintf(port, sizeof port, "%u", c->port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    k->state = C_RESOLVING;
    k->gai.data = k;
    int rc = uv_getaddrinfo(c->loop, &k->gai, on_resolved, c->host, port, &hints);
    if (rc != 0) {
        snprintf(c->err, sizeof c->err, "cannot resolve %s: %s", c->host, uv_strerror(rc));
        k->state = C_CLOSED;
        conn_maybe_release(k);
        return NULL;
    }
    k->gai_pending = true;
    c->handles_open++;
    return k;
}

/* ---- routing, deadlines, delivery ---- */

static void call_route(sl_grpc_client_t *c, ccall_t *call) {
    if (!c->cur) c->cur = conn_open(c);
    cconn_t *k = c->cur;
    if (!k) {
        /* The connection failed synchronously (bad address): report its reason. */
        call_complete(call, SL_GRPC_UNAVAILABLE, c->err, false);
        return;
    }
    c->unrouted--;
    call->conn = k;
    if (k->state == C_READY) {
        call_submit(k, call);
        conn_flush(k);
    }
}

static void on_timer(uv_timer_t *t);

static void timer_arm(sl_grpc_client_t *c) {
    uint64_t next = UINT64_MAX;
    for (ccall_t *call = c->calls; call; call = call->next) {
        if (call->deadline_ms) next = SL_MIN(next, call->deadline_ms);
    }
    for (cconn_t *k = c->conns; k; k = k->next) {
        if (k->state == C_RESOLVING || k->state == C_CONNECTING)
            next = SL_MIN(next, k->connect_deadline_ms);
    }
    if (c->done_head) next = 0;
    if (next == UINT64_MAX) {
        uv_timer_stop(&c->timer);
        return;
    }
    uint64_t now = sl_now_ms();
    uv_timer_start(&c->timer, on_timer, next > now ? next - now : 0, 0);
}

/* Ends an entry from libuv or the API: routes retried calls, delivers results (callbacks may
 * start calls or free the client), re-arms the timer. */
static void leave(sl_grpc_client_t *c) {
    if (c->busy == 1) {
        for (;;) {
            while (c->unrouted && !c->freeing) {
                ccall_t *call = c->calls;
                while (call && call->conn)
                    call = call->next;
                if (!call) break;
                call_route(c, call);
            }
            if (!c->done_head) break;
            deliver_done(c);
        }
        if (!c->freeing) timer_arm(c);
    }
    c->busy--;
    client_maybe_destroy(c);
}

static void on_timer(uv_timer_t *t) {
    sl_grpc_client_t *c = t->data;
    c->busy++;
    uint64_t now = sl_now_ms();
    for (cconn_t *k = c->conns, *next; k; k = next) {
        next = k->next;
        if ((k->state == C_RESOLVING || k->state == C_CONNECTING) &&
            now >= k->connect_deadline_ms) {
            snprintf(k->err, sizeof k->err, "connect to %s timed out after %u ms", c->authority,
                     c->opts.connect_timeout_ms);
            conn_close(k, SL_GRPC_UNAVAILABLE, k->err);
        }
    }
    for (ccall_t *call = c->calls, *next; call; call = next) {
        next = call->next;
        if (call->deadline_ms && now >= call->deadline_ms)
            call_complete(call, SL_GRPC_DEADLINE_EXCEEDED, "deadline exceeded", true);
    }
    /* The RST_STREAMs go out now; a flush may close a finished connection. */
    for (cconn_t *k = c->conns, *next; k; k = next) {
        next = k->next;
        conn_flush(k);
    }
    leave(c);
}

static void on_timer_closed(uv_handle_t *h) {
    sl_grpc_client_t *c = h->data;
    c->handles_open--;
    client_maybe_destroy(c);
}

/* ---- API ---- */

sl_grpc_client_t *sl_grpc_client_new(uv_loop_t *loop, const char *host, uint16_t port,
                                     const sl_grpc_client_opts_t *opts) {
    sl_grpc_client_t *c = sl_calloc(1, sizeof *c);
    c->loop = loop;
    c->host = sl_strdup(host);
    c->port = port;
    sl_buf_t auth = SL_BUF_INIT;
    if (strchr(host, ':')) {
        sl_buf_printf(&auth, "[%s]:%u", host, port);
    } else {
        sl_buf_printf(&auth, "%s:%u", host, port);
    }
    c->authority = auth.data;
    if (opts) c->opts = *opts;
    if (!c->opts.connect_timeout_ms) c->opts.connect_timeout_ms = 1000;
    if (!c->opts.max_response_bytes) c->opts.max_response_bytes = 4u << 20;
    uv_timer_init(loop, &c->timer);
    c->timer.data = c;
    c->handles_open = 1;
    return c;
}

void sl_grpc_client_free(sl_grpc_client_t *c) {
    if (!c || c->freeing) return;
    c->busy++;
    c->freeing = true;
    while (c->calls)
        call_complete(c->calls, SL_GRPC_CANCELLED, "client closed", true);
    for (cconn_t *k = c->conns, *next; k; k = next) {
        next = k->next;
        conn_close(k, SL_GRPC_CANCELLED, "client closed");
    }
    if (!uv_is_closing((uv_handle_t *)&c->timer)) {
        uv_close((uv_handle_t *)&c->timer, on_timer_closed);
    } else {
        c->handles_open--; /* closed by someone else (a forced runtime stop) */
    }
    leave(c);
}

int sl_grpc_client_call(sl_grpc_client_t *c, const char *path, const void *msg, size_t len,
                        uint32_t timeout_ms, const char *traceparent, sl_grpc_client_cb cb,
                        void *arg) {
    if (c->freeing) return SL_ECLOSED;
    if (!path || path[0] != '/' || strlen(path) > SL_GRPC_MAX_PATH || len > UINT32_MAX || !cb)
        return SL_EINVAL;
    for (const char *p = path; *p; p++) {
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f) return SL_EINVAL;
    }
    c->busy++;
    ccall_t *call = sl_calloc(1, sizeof *call);
    call->client = c;
    call->path = sl_strdup(path);
    sl_grpc__frame_append(&call->req, msg, len);
    if (traceparent && *traceparent && strlen(traceparent) <= 256)
        call->traceparent = sl_strdup(traceparent);
    call->deadline_ms = timeout_ms ? sl_now_ms() + timeout_ms : 0;
    call->cb = cb;
    call->arg = arg;
    call->grpc_status = -1;
    call->next = c->calls;
    if (c->calls) c->calls->prev = call;
    c->calls = call;
    c->unrouted++;
    call_route(c, call);
    /* Never deliver from inside this function: leave() only delivers at the outermost entry,
     * and a result decided here is delivered from the timer. */
    if (c->busy == 1) {
        c->busy--;
        timer_arm(c);
    } else {
        c->busy--;
    }
    return SL_OK;
}
