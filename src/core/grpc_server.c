/* gRPC server: one nghttp2 server session per accepted connection (h2c with prior knowledge),
 * plugged into the runtime as an sl_proto_t. Requests are unary: headers are checked, the one
 * length-prefixed message is collected within max_message_bytes, the handler runs on the I/O
 * thread and answers once (HEADERS + DATA + trailers, or a trailers-only error). Output of a
 * whole read batch is coalesced into one uv_write. */
#include "core/grpc.h"

#include "core/grpc_frame.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/trace.h"

#include <nghttp2/nghttp2.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WRITE_BATCH_MAX (256 * 1024)
#define STREAM_WINDOW   (1 << 20)
#define CONN_WINDOW     (16 << 20)
/* Between the shutdown notice and the final GOAWAY: about one round trip, so that requests the
 * client sent before it saw the notice are still accepted (RFC 9113 section 6.8). */
#define DRAIN_NOTICE_MS 100

typedef struct method {
    char *path;
    sl_grpc_handler_cb cb;
    void *ctx;
    sl_histogram_t *duration;
    /* Created on first use so that /metrics shows only codes that happened. */
    _Atomic(sl_counter_t *) requests[SL_GRPC_CODE_COUNT];
} method_t;

struct sl_grpc_server {
    char *name;
    sl_grpc_limits_t limits;
    method_t **methods;
    size_t n_methods;
    method_t unknown; /* label "unknown": anything not registered */
    sl_metric_family_t *requests_family;
    sl_metric_family_t *duration_family;
    sl_tracer_t *tracer;
};

typedef struct hdr {
    uint32_t name_off, name_len, value_off, value_len;
} hdr_t;

typedef struct gconn gconn_t;

struct sl_grpc_call {
    sl_grpc_server_t *srv;
    gconn_t *conn; /* NULL once the stream or the connection is gone */
    uv_loop_t *uv;
    method_t *method;
    int32_t stream_id;
    sl_grpc_call_t *prev, *next; /* the connection's calls */
    bool stream_open;            /* nghttp2 holds the call as stream user data */
    bool handler_holds;          /* dispatched, not yet answered by the handler */
    bool answered;               /* a status was decided (sent, or dropped because the peer left) */
    bool queued; /* complete request waiting for dispatch at the end of the read batch */
    bool headers_done;
    bool hdr_overflow;
    bool prefix_seen;
    bool rst_after_headers; /* answered early: reset (NO_ERROR) once the trailers are out */
    uint32_t msg_len;
    sl_buf_t arena; /* header names and values */
    hdr_t *hdrs;
    unsigned n_hdrs;
    size_t hdr_bytes;
    sl_buf_t body; /* prefix + message, never more than 5 + max_message_bytes */
    uint64_t start_ns;
    uint64_t deadline_ms;
    sl_span_t *span;
    sl_trace_ctx_t trace;
    sl_buf_t resp; /* framed response message */
    size_t resp_off;
};

enum { TIMER_NONE, TIMER_ACTIVE, TIMER_CLOSING, TIMER_DONE };

struct gconn {
    sl_conn_t base;
    sl_grpc_server_t *srv;
    uv_loop_t *uv;
    nghttp2_session *h2;
    sl_grpc_call_t *calls;
    unsigned n_calls, n_queued;
    sl_buf_t wbuf;
    uv_write_t wreq;
    uv_timer_t timer; /* earliest of: call deadlines, idle timeout, final GOAWAY of a drain */
    int timer_state;
    uint64_t idle_since_ms;
    uint64_t goaway_at_ms;
    bool batching; /* inside a read batch or timer sweep: answers are flushed at its end */
    bool writing;
    bool closed;
    bool freed;
    bool draining;
    bool rejected;
    bool close_after_write;
    bool sockless; /* sl_grpc__server_feed: no socket, output goes to sink */
    sl_buf_t *sink;
};

static void conn_flush(gconn_t *g);
static void conn_close(gconn_t *g);

/* ---- server object ---- */

sl_grpc_limits_t sl_grpc_limits_default(void) {
    return (sl_grpc_limits_t){
        .max_message_bytes = 4u << 20,
        .max_concurrent_streams = 100,
        .max_connections = 10000,
        .idle_timeout_ms = 300000,
    };
}

static void method_init(sl_grpc_server_t *s, method_t *m, const char *path, sl_grpc_handler_cb cb,
                        void *ctx) {
    m->path = sl_strdup(path);
    m->cb = cb;
    m->ctx = ctx;
    const char *labels[] = {s->name, m->path};
    m->duration = sl_metric_histogram(s->duration_family, labels);
    for (int i = 0; i < SL_GRPC_CODE_COUNT; i++)
        atomic_init(&m->requests[i], NULL);
}

sl_grpc_server_t *sl_grpc_server_new(const char *name, const sl_grpc_limits_t *limits) {
    sl_grpc_server_t *s = sl_calloc(1, sizeof *s);
    s->name = sl_strdup(name);
    s->limits = limits ? *limits : sl_grpc_limits_default();
    sl_grpc_limits_t def = sl_grpc_limits_default();
    if (s->limits.max_message_bytes == 0) s->limits.max_message_bytes = def.max_message_bytes;
    if (s->limits.max_concurrent_streams == 0)
        s->limits.max_concurrent_streams = def.max_concurrent_streams;
    sl_metrics_t *reg = sl_metrics_default();
    static const char *const req_labels[] = {"server", "method", "code"};
    static const char *const dur_labels[] = {"server", "method"};
    s->requests_family = sl_metrics_counter_family(
        reg, "sluice_grpc_requests_total", "gRPC calls answered, by server, method and status code",
        3, req_labels, 4096);
    s->duration_family = sl_metrics_histogram_family(
        reg, "sluice_grpc_request_duration_seconds",
        "Time from request headers to the answer, by server and method", 2, dur_labels, 512,
        sl_metrics_latency_buckets, sl_metrics_latency_buckets_n);
    method_init(s, &s->unknown, "unknown", NULL, NULL);
    return s;
}

void sl_grpc_server_free(sl_grpc_server_t *s) {
    if (!s) return;
    for (size_t i = 0; i < s->n_methods; i++) {
        free(s->methods[i]->path);
        free(s->methods[i]);
    }
    free(s->methods);
    free(s->unknown.path);
    free(s->name);
    free(s);
}

static bool path_valid(const char *path) {
    /* "/pkg.Service/Method": a leading slash, exactly one more slash, neither part empty. */
    size_t n = strlen(path);
    if (n < 4 || n > SL_GRPC_MAX_PATH || path[0] != '/') return false;
    const char *slash = strchr(path + 1, '/');
    if (!slash || slash == path + 1 || slash[1] == '\0' || strchr(slash + 1, '/')) return false;
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)path[i] <= 0x20 || (unsigned char)path[i] >= 0x7f) return false;
    }
    return true;
}

static method_t *method_find(sl_grpc_server_t *s, const char *path, size_t len) {
    for (size_t i = 0; i < s->n_methods; i++) {
        method_t *m = s->methods[i];
        if (strlen(m->path) == len && memcmp(m->path, path, len) == 0) return m;
    }
    return NULL;
}

int sl_grpc_server_add_method(sl_grpc_server_t *s, const char *path, sl_grpc_handler_cb cb,
                              void *ctx) {
    if (!path || !cb || !path_valid(path)) return SL_EINVAL;
    if (method_find(s, path, strlen(path))) return SL_EEXISTS;
    method_t *m = sl_calloc(1, sizeof *m);
    method_init(s, m, path, cb, ctx);
    s->methods = sl_realloc(s->methods, (s->n_methods + 1) * sizeof *s->methods);
    s->methods[s->n_methods++] = m;
    return SL_OK;
}

void sl_grpc_server_set_tracer(sl_grpc_server_t *s, sl_tracer_t *tracer) {
    s->tracer = tracer;
}

int sl_grpc_server_listen(sl_grpc_server_t *s, sl_runtime_t *rt, const char *host, uint16_t port,
                          sl_listener_t **out) {
    sl_listener_cfg_t cfg = {
        .name = s->name,
        .host = host,
        .port = port,
        .max_connections = s->limits.max_connections,
    };
    return sl_runtime_listen(rt, &cfg, sl_grpc_proto(), s, out);
}

static sl_counter_t *requests_counter(sl_grpc_server_t *s, method_t *m, int code) {
    sl_counter_t *c = atomic_load_explicit(&m->requests[code], memory_order_acquire);
    if (!c) {
        /* Two threads may race here; get-or-create returns the same series to both. */
        const char *labels[] = {s->name, m->path, sl_grpc_code_name(code)};
        c = sl_metric_counter(s->requests_family, labels);
        atomic_store_explicit(&m->requests[code], c, memory_order_release);
    }
    return c;
}

/* ---- calls ---- */

static sl_grpc_call_t *call_new(gconn_t *g, int32_t stream_id) {
    sl_grpc_call_t *call = sl_calloc(1, sizeof *call);
    call->srv = g->srv;
    call->conn = g;
    call->uv = g->uv;
    call->method = &g->srv->unknown;
    call->stream_id = stream_id;
    call->stream_open = true;
    call->start_ns = sl_now_ns();
    call->next = g->calls;
    if (g->calls) g->calls->prev = call;
    g->calls = call;
    g->n_calls++;
    return call;
}

static void call_free(sl_grpc_call_t *call) {
    if (call->span) sl_span_end(call->span);
    sl_buf_free(&call->arena);
    sl_buf_free(&call->body);
    sl_buf_free(&call->resp);
    free(call->hdrs);
    free(call);
}

static void call_unlink(gconn_t *g, sl_grpc_call_t *call) {
    if (call->prev) {
        call->prev->next = call->next;
    } else {
        g->calls = call->next;
    }
    if (call->next) call->next->prev = call->prev;
    call->prev = call->next = NULL;
    if (call->queued) {
        call->queued = false;
        g->n_queued--;
    }
    if (--g->n_calls == 0) g->idle_since_ms = sl_now_ms();
    call->conn = NULL;
    call->stream_open = false;
}

static sl_str_t call_header(const sl_grpc_call_t *call, const char *name) {
    size_t n = strlen(name);
    for (unsigned i = 0; i < call->n_hdrs; i++) {
        const hdr_t *h = &call->hdrs[i];
        if (h->name_len == n && memcmp(call->arena.data + h->name_off, name, n) == 0)
            return (sl_str_t){call->arena.data + h->value_off, h->value_len};
    }
    return (sl_str_t){NULL, 0};
}

/* Counts the outcome once: metrics, and the server span ends with the status. */
static void call_record(sl_grpc_call_t *call, int code, const char *message) {
    if (!call->headers_done) return;
    sl_grpc_server_t *s = call->srv;
    method_t *m = call->method;
    sl_counter_inc(requests_counter(s, m, code));
    sl_histogram_observe(m->duration, (double)(sl_now_ns() - call->start_ns) / 1e9);
    if (call->span) {
        sl_span_attr_str(call->span, "rpc.system", "grpc");
        sl_span_attr_str(call->span, "rpc.method", m->path);
        sl_span_attr_int(call->span, "rpc.grpc.status_code", code);
        if (code != SL_GRPC_OK)
            sl_span_set_error(call->span, message && *message ? message : sl_grpc_code_name(code));
        sl_span_end(call->span);
        call->span = NULL;
    }
}

static ssize_t resp_read(nghttp2_session *h2, int32_t stream_id, uint8_t *buf, size_t length,
                         uint32_t *flags, nghttp2_data_source *src, void *ud) {
    sl_grpc_call_t *call = src->ptr;
    size_t n = SL_MIN(length, call->resp.len - call->resp_off);
    memcpy(buf, call->resp.data + call->resp_off, n);
    call->resp_off += n;
    if (call->resp_off == call->resp.len) {
        *flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
        static const nghttp2_nv trailers[] = {
            {(uint8_t *)"grpc-status", (uint8_t *)"0", 11, 1, NGHTTP2_NV_FLAG_NONE},
        };
        if (nghttp2_submit_trailer(h2, stream_id, trailers, 1) != 0)
            return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    }
    return (ssize_t)n;
}

#define NV(n, v, vlen)                                                                             \
    { (uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, (vlen), NGHTTP2_NV_FLAG_NONE }

/* Decides the call's status and, if the stream is still there, submits the response: HEADERS +
 * DATA + trailers for OK, a trailers-only response otherwise. http_status is 200 except for
 * requests that are not gRPC at all (405, 415). */
static void call_answer(sl_grpc_call_t *call, int code, const char *message, const void *resp,
                        size_t len, int http_status) {
    SL_ASSERT(!call->answered);
    call->answered = true;
    call_record(call, code, message);
    gconn_t *g = call->conn;
    if (!g || !call->stream_open || !g->h2) return;
    int32_t id = call->stream_id;
    int rv;
    if (code == SL_GRPC_OK) {
        sl_grpc__frame_append(&call->resp, resp, len);
        nghttp2_nv nva[] = {
            NV(":status", "200", 3),
            NV("content-type", "application/grpc", 16),
            NV("grpc-accept-encoding", "identity", 8),
        };
        nghttp2_data_provider prd = {.source.ptr = call, .read_callback = resp_read};
        rv = nghttp2_submit_response(g->h2, id, nva, SL_ARRAY_LEN(nva), &prd);
    } else {
        char status[8], gs[8];
        int status_len = snprintf(status, sizeof status, "%d", http_status);
        int gs_len = snprintf(gs, sizeof gs, "%d", code);
        sl_buf_t enc = SL_BUF_INIT;
        if (message) sl_grpc__message_encode(&enc, message, strlen(message));
        nghttp2_nv nva[] = {
            NV(":status", status, (size_t)status_len),
            NV("content-type", "application/grpc", 16),
            NV("grpc-accept-encoding", "identity", 8),
            NV("grpc-status", gs, (size_t)gs_len),
            NV("grpc-message", enc.data ? enc.data : "", enc.len),
        };
        rv = nghttp2_submit_response(g->h2, id, nva, SL_ARRAY_LEN(nva) - (enc.len == 0), NULL);
        sl_buf_free(&enc);
        /* Answered before the request ended (oversized message, deadline, bad headers): the
         * client is asked to stop sending, without an error (RFC 9113 section 8.1), but only
         * after the trailers left: nghttp2 drops queued frames of a stream being reset. */
        call->rst_after_headers = true;
    }
    if (rv != 0) {
        SL_DEBUG("grpc", "cannot submit response", SL_LF_S("error", nghttp2_strerror(rv)));
        nghttp2_submit_rst_stream(g->h2, NGHTTP2_FLAG_NONE, id, NGHTTP2_INTERNAL_ERROR);
    }
    conn_flush(g);
}

static void call_fail(sl_grpc_call_t *call, int code, const char *message) {
    call_answer(call, code, message, NULL, 0, 200);
}

/* The handler's answer. The call stays held while answering so that a stream closed during the
 * flush does not free it under us. */
static void handler_answer(sl_grpc_call_t *call, int code, const char *message, const void *msg,
                           size_t len) {
    SL_ASSERT(call->handler_holds);
    if (!call->answered) {
        if (code == SL_GRPC_OK && len > UINT32_MAX) {
            call_fail(call, SL_GRPC_RESOURCE_EXHAUSTED, "response message too large");
        } else {
            call_answer(call, code, message, msg, len, 200);
        }
    }
    call->handler_holds = false;
    if (!call->stream_open) call_free(call);
}

void sl_grpc_reply(sl_grpc_call_t *call, const void *msg, size_t len) {
    handler_answer(call, SL_GRPC_OK, NULL, msg, len);
}

void sl_grpc_fail(sl_grpc_call_t *call, sl_grpc_code_t code, const char *message) {
    SL_ASSERT(code > SL_GRPC_OK && code < SL_GRPC_CODE_COUNT);
    handler_answer(call, code, message, NULL, 0);
}

const char *sl_grpc_call_method(const sl_grpc_call_t *call) {
    return call->method->path;
}

uint64_t sl_grpc_call_deadline_ms(const sl_grpc_call_t *call) {
    return call->deadline_ms;
}

sl_str_t sl_grpc_call_metadata(const sl_grpc_call_t *call, const char *name) {
    return call_header(call, name);
}

const sl_trace_ctx_t *sl_grpc_call_trace(const sl_grpc_call_t *call) {
    return &call->trace;
}

uv_loop_t *sl_grpc_call_loop(const sl_grpc_call_t *call) {
    return call->uv;
}

bool sl_grpc_call_cancelled(const sl_grpc_call_t *call) {
    return call->answered || !call->stream_open;
}

/* ---- request processing (nghttp2 callbacks) ---- */

static void request_headers_done(sl_grpc_call_t *call) {
    sl_grpc_server_t *s = call->srv;
    call->headers_done = true;
    if (call->hdr_overflow) {
        call_fail(call, SL_GRPC_RESOURCE_EXHAUSTED, "request metadata too large");
        return;
    }
    sl_str_t path = call_header(call, ":path");
    method_t *m = path.ptr ? method_find(s, path.ptr, path.len) : NULL;
    if (m) call->method = m;

    sl_str_t hm = call_header(call, ":method");
    if (!hm.ptr || !sl_str_eq(hm, "POST")) {
        call_answer(call, SL_GRPC_UNIMPLEMENTED, "gRPC requires the POST method", NULL, 0, 405);
        return;
    }
    sl_str_t ct = call_header(call, "content-type");
    if (!ct.ptr || !sl_grpc__content_type_ok(ct)) {
        call_answer(call, SL_GRPC_INTERNAL, "invalid gRPC request content-type", NULL, 0, 415);
        return;
    }
    sl_str_t enc = call_header(call, "grpc-encoding");
    if (enc.ptr && !sl_str_eq(enc, "identity")) {
        call_fail(call, SL_GRPC_UNIMPLEMENTED, "grpc-encoding not supported (identity only)");
        return;
    }
    sl_str_t to = call_header(call, "grpc-timeout");
    if (to.ptr) {
        uint64_t ns;
        if (sl_grpc__timeout_parse(to, &ns) != 0) {
            call_fail(call, SL_GRPC_INTERNAL, "malformed grpc-timeout");
            return;
        }
        call->deadline_ms = sl_now_ms() + (ns + 999999) / 1000000;
    }
    if (!m) {
        sl_buf_t msg = SL_BUF_INIT;
        sl_buf_puts(&msg, "unknown method ");
        sl_buf_append(&msg, path.ptr ? path.ptr : "", SL_MIN(path.len, 256));
        call_fail(call, SL_GRPC_UNIMPLEMENTED, msg.data);
        sl_buf_free(&msg);
        return;
    }
    sl_trace_ctx_t parent;
    sl_str_t tp = call_header(call, "traceparent");
    bool has_parent = tp.ptr && sl_traceparent_parse(tp, &parent) == 0;
    if (has_parent) {
        sl_str_t ts = call_header(call, "tracestate");
        if (ts.ptr) sl_tracestate_parse(ts, &parent);
    }
    call->span = sl_span_start(s->tracer, m->path, SL_SPAN_SERVER, has_parent ? &parent : NULL);
    call->trace = *sl_span_ctx(call->span);
}

static void request_ended(gconn_t *g, sl_grpc_call_t *call) {
    if (call->answered || call->queued) return;
    const uint8_t *msg;
    size_t len;
    const char *why;
    int code = sl_grpc__unary_parse((const uint8_t *)call->body.data, call->body.len,
                                    g->srv->limits.max_message_bytes, &msg, &len, &why);
    if (code != SL_GRPC_OK) {
        call_fail(call, code, why);
        return;
    }
    call->queued = true;
    g->n_queued++;
}

static int on_begin_headers(nghttp2_session *h2, const nghttp2_frame *frame, void *ud) {
    gconn_t *g = ud;
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
    sl_grpc_call_t *call = call_new(g, frame->hd.stream_id);
    nghttp2_session_set_stream_user_data(h2, frame->hd.stream_id, call);
    return 0;
}

static int on_header(nghttp2_session *h2, const nghttp2_frame *frame, const uint8_t *name,
                     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
                     void *ud) {
    sl_grpc_call_t *call = nghttp2_session_get_stream_user_data(h2, frame->hd.stream_id);
    if (!call || call->headers_done || call->hdr_overflow) return 0; /* trailers are ignored */
    size_t cost = namelen + valuelen + 32; /* as SETTINGS_MAX_HEADER_LIST_SIZE counts */
    if (call->hdr_bytes + cost > SL_GRPC_MAX_HEADER_BYTES || call->n_hdrs >= SL_GRPC_MAX_HEADERS) {
        call->hdr_overflow = true;
        return 0;
    }
    call->hdr_bytes += cost;
    if (!call->hdrs) call->hdrs = sl_malloc(SL_GRPC_MAX_HEADERS * sizeof *call->hdrs);
    hdr_t *h = &call->hdrs[call->n_hdrs++];
    h->name_off = (uint32_t)call->arena.len;
    h->name_len = (uint32_t)namelen;
    sl_buf_append(&call->arena, name, namelen);
    h->value_off = (uint32_t)call->arena.len;
    h->value_len = (uint32_t)valuelen;
    sl_buf_append(&call->arena, value, valuelen);
    return 0;
}

static int on_data_chunk_recv(nghttp2_session *h2, uint8_t flags, int32_t stream_id,
                              const uint8_t *data, size_t len, void *ud) {
    gconn_t *g = ud;
    sl_grpc_call_t *call = nghttp2_session_get_stream_user_data(h2, stream_id);
    if (!call || call->answered) return 0; /* flow control is still credited by nghttp2 */
    uint32_t max = g->srv->limits.max_message_bytes;
    while (len > 0) {
        size_t want = call->prefix_seen
                          ? SL_GRPC_PREFIX_LEN + (size_t)call->msg_len - call->body.len
                          : SL_GRPC_PREFIX_LEN - call->body.len;
        if (want == 0) {
            call_fail(call, SL_GRPC_INTERNAL, "more than one message in a unary call");
            return 0;
        }
        size_t n = SL_MIN(want, len);
        sl_buf_append(&call->body, data, n);
        data += n;
        len -= n;
        if (!call->prefix_seen && call->body.len == SL_GRPC_PREFIX_LEN) {
            bool compressed;
            int rc = sl_grpc__prefix_parse((const uint8_t *)call->body.data, call->body.len,
                                           &compressed, &call->msg_len);
            call->prefix_seen = true;
            if (rc != 0) {
                call_fail(call, SL_GRPC_INTERNAL, "invalid compressed-flag byte in message prefix");
                return 0;
            }
            if (compressed) {
                call_fail(call, SL_GRPC_UNIMPLEMENTED, "compression not supported");
                return 0;
            }
            if (call->msg_len > max) {
                /* Answered now, from the prefix alone: the rest is never buffered. */
                char msg[128];
                snprintf(msg, sizeof msg, "request message larger than max (%u vs. %u bytes)",
                         call->msg_len, max);
                call_fail(call, SL_GRPC_RESOURCE_EXHAUSTED, msg);
                return 0;
            }
            sl_buf_reserve(&call->body, call->msg_len);
        }
    }
    return 0;
}

static int on_frame_recv(nghttp2_session *h2, const nghttp2_frame *frame, void *ud) {
    gconn_t *g = ud;
    if (frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA) return 0;
    sl_grpc_call_t *call = nghttp2_session_get_stream_user_data(h2, frame->hd.stream_id);
    if (!call) return 0;
    if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_REQUEST)
        request_headers_done(call);
    if (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) request_ended(g, call);
    return 0;
}

static int on_frame_send(nghttp2_session *h2, const nghttp2_frame *frame, void *ud) {
    if (frame->hd.type != NGHTTP2_HEADERS || !(frame->hd.flags & NGHTTP2_FLAG_END_STREAM)) return 0;
    sl_grpc_call_t *call = nghttp2_session_get_stream_user_data(h2, frame->hd.stream_id);
    if (call && call->rst_after_headers &&
        !nghttp2_session_get_stream_remote_close(h2, frame->hd.stream_id))
        nghttp2_submit_rst_stream(h2, NGHTTP2_FLAG_NONE, frame->hd.stream_id, NGHTTP2_NO_ERROR);
    return 0;
}

static int on_stream_close(nghttp2_session *h2, int32_t stream_id, uint32_t error_code, void *ud) {
    gconn_t *g = ud;
    sl_grpc_call_t *call = nghttp2_session_get_stream_user_data(h2, stream_id);
    if (!call) return 0;
    nghttp2_session_set_stream_user_data(h2, stream_id, NULL);
    call_unlink(g, call);
    if (!call->answered) {
        call->answered = true;
        call_record(call, SL_GRPC_CANCELLED, "stream closed by the client");
    }
    if (!call->handler_holds) call_free(call);
    return 0;
}

/* ---- connections ---- */

static void dispatch_queued(gconn_t *g) {
    if (g->n_queued == 0) return;
    /* Handlers cannot change the list: answers are only flushed after the batch. */
    for (sl_grpc_call_t *call = g->calls; call; call = call->next) {
        if (!call->queued) continue;
        call->queued = false;
        g->n_queued--;
        call->handler_holds = true;
        call->method->cb(call, (const uint8_t *)call->body.data + SL_GRPC_PREFIX_LEN, call->msg_len,
                         call->method->ctx);
    }
}

static void on_timer(uv_timer_t *t);

static void timer_arm(gconn_t *g) {
    if (g->closed || g->timer_state != TIMER_ACTIVE) return;
    uint64_t next = UINT64_MAX;
    for (sl_grpc_call_t *call = g->calls; call; call = call->next) {
        if (!call->answered && call->deadline_ms) next = SL_MIN(next, call->deadline_ms);
    }
    uint32_t idle = g->srv->limits.idle_timeout_ms;
    if (g->n_calls == 0 && idle) next = SL_MIN(next, g->idle_since_ms + idle);
    if (g->goaway_at_ms) next = SL_MIN(next, g->goaway_at_ms);
    if (next == UINT64_MAX) {
        uv_timer_stop(&g->timer);
        return;
    }
    uint64_t now = sl_now_ms();
    uv_timer_start(&g->timer, on_timer, next > now ? next - now : 0, 0);
}

static void on_timer(uv_timer_t *t) {
    gconn_t *g = t->data;
    if (g->closed) return;
    uint64_t now = sl_now_ms();
    g->batching = true;
    for (sl_grpc_call_t *call = g->calls; call; call = call->next) {
        if (!call->answered && call->deadline_ms && call->deadline_ms <= now)
            call_fail(call, SL_GRPC_DEADLINE_EXCEEDED, "deadline exceeded");
    }
    uint32_t idle = g->srv->limits.idle_timeout_ms;
    if (g->n_calls == 0 && idle && now >= g->idle_since_ms + idle && !g->close_after_write) {
        SL_DEBUG("grpc", "closing idle connection", SL_LF_S("server", g->srv->name));
        nghttp2_session_terminate_session(g->h2, NGHTTP2_NO_ERROR);
        g->close_after_write = true;
    }
    if (g->goaway_at_ms && now >= g->goaway_at_ms) {
        g->goaway_at_ms = 0;
        nghttp2_submit_goaway(g->h2, NGHTTP2_FLAG_NONE,
                              nghttp2_session_get_last_proc_stream_id(g->h2), NGHTTP2_NO_ERROR,
                              NULL, 0);
    }
    g->batching = false;
    conn_flush(g);
}

static void on_write(uv_write_t *req, int status) {
    gconn_t *g = req->data;
    g->writing = false;
    if (g->closed) return;
    if (status < 0) {
        conn_close(g);
        return;
    }
    conn_flush(g);
}

/* Sends what nghttp2 has queued (one write at a time, each up to WRITE_BATCH_MAX), and closes
 * the connection once the session is finished (GOAWAY exchanged, no streams left). */
static void conn_flush(gconn_t *g) {
    if (g->batching || g->writing || g->closed || !g->h2) return;
    for (;;) {
        sl_buf_reset(&g->wbuf);
        int rv = sl_grpc__h2_collect(g->h2, &g->wbuf, WRITE_BATCH_MAX);
        if (rv < 0) {
            SL_DEBUG("grpc", "session send failed", SL_LF_S("error", nghttp2_strerror(rv)));
            conn_close(g);
            return;
        }
        if (g->wbuf.len == 0) break;
        if (g->sockless) {
            if (g->sink) sl_buf_append(g->sink, g->wbuf.data, g->wbuf.len);
            continue;
        }
        uv_buf_t b = uv_buf_init(g->wbuf.data, (unsigned)g->wbuf.len);
        g->writing = true;
        g->wreq.data = g;
        if (uv_write(&g->wreq, (uv_stream_t *)&g->base.tcp, &b, 1, on_write) != 0) {
            g->writing = false;
            conn_close(g);
            return;
        }
        timer_arm(g);
        return;
    }
    if (g->close_after_write ||
        (!nghttp2_session_want_read(g->h2) && !nghttp2_session_want_write(g->h2))) {
        conn_close(g);
        return;
    }
    timer_arm(g);
}

static void conn_destroy(gconn_t *g) {
    sl_buf_free(&g->wbuf);
    free(g);
}

static void on_timer_closed(uv_handle_t *h) {
    gconn_t *g = h->data;
    g->timer_state = TIMER_DONE;
    if (g->freed) conn_destroy(g);
}

/* Detaches every call (held ones live on until their handler answers), deletes the session and
 * closes the timer. Idempotent. */
static void conn_teardown(gconn_t *g) {
    while (g->calls) {
        sl_grpc_call_t *call = g->calls;
        call_unlink(g, call);
        if (!call->answered) {
            call->answered = true;
            call_record(call, SL_GRPC_CANCELLED, "connection closed");
        }
        if (!call->handler_holds) call_free(call);
    }
    if (g->h2) {
        nghttp2_session_del(g->h2);
        g->h2 = NULL;
    }
    if (g->timer_state == TIMER_ACTIVE) {
        if (uv_is_closing((uv_handle_t *)&g->timer)) {
            /* The runtime's forced stop closed every handle of the loop right after closing
             * the connections; libuv finishes closes in reverse order, so this timer is done
             * before the connection's conn_free runs. */
            g->timer_state = TIMER_DONE;
        } else {
            g->timer_state = TIMER_CLOSING;
            uv_close((uv_handle_t *)&g->timer, on_timer_closed);
        }
    }
}

static void conn_close(gconn_t *g) {
    if (g->closed) return;
    g->closed = true;
    conn_teardown(g);
    if (!g->sockless) sl_conn_close(&g->base);
}

static int session_init(gconn_t *g) {
    nghttp2_session_callbacks *cbs;
    nghttp2_session_callbacks_new(&cbs);
    nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data_chunk_recv);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
    nghttp2_session_callbacks_set_on_frame_send_callback(cbs, on_frame_send);
    int rv = nghttp2_session_server_new(&g->h2, cbs, g);
    nghttp2_session_callbacks_del(cbs);
    if (rv != 0) return rv;
    nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, g->srv->limits.max_concurrent_streams},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, STREAM_WINDOW},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, SL_GRPC_MAX_HEADER_BYTES},
    };
    rv = nghttp2_submit_settings(g->h2, NGHTTP2_FLAG_NONE, iv, SL_ARRAY_LEN(iv));
    if (rv == 0)
        rv = nghttp2_session_set_local_window_size(g->h2, NGHTTP2_FLAG_NONE, 0, CONN_WINDOW);
    return rv;
}

/* Runs one batch of input through the session, dispatches the complete requests, then writes
 * everything the batch produced at once. */
static void conn_feed(gconn_t *g, const uint8_t *data, size_t len) {
    g->batching = true;
    ssize_t rv = nghttp2_session_mem_recv(g->h2, data, len);
    if (rv < 0) {
        g->batching = false;
        SL_DEBUG("grpc", "bad HTTP/2 input, closing", SL_LF_S("server", g->srv->name),
                 SL_LF_S("error", nghttp2_strerror((int)rv)));
        if (rv == NGHTTP2_ERR_FLOODED || rv == NGHTTP2_ERR_NOMEM) {
            conn_close(g);
            return;
        }
        nghttp2_session_terminate_session(g->h2, NGHTTP2_PROTOCOL_ERROR);
        g->close_after_write = true;
        conn_flush(g);
        return;
    }
    dispatch_queued(g);
    g->batching = false;
    conn_flush(g);
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf) {
    gconn_t *g = SL_CONTAINER_OF((uv_tcp_t *)stream, gconn_t, base.tcp);
    if (g->closed) return;
    if (nread < 0) {
        conn_close(g);
        return;
    }
    if (nread == 0 || g->rejected) return;
    conn_feed(g, (const uint8_t *)buf->base, (size_t)nread);
}

static sl_conn_t *proto_conn_new(sl_loop_t *loop, void *ctx) {
    gconn_t *g = sl_calloc(1, sizeof *g);
    g->srv = ctx;
    g->uv = sl_loop_uv(loop);
    return &g->base;
}

static bool conn_init(gconn_t *g) {
    if (session_init(g) != 0) return false;
    uv_timer_init(g->uv, &g->timer);
    g->timer.data = g;
    g->timer_state = TIMER_ACTIVE;
    g->idle_since_ms = sl_now_ms();
    return true;
}

static void proto_conn_start(sl_conn_t *c) {
    gconn_t *g = SL_CONTAINER_OF(c, gconn_t, base);
    if (!conn_init(g) || uv_read_start((uv_stream_t *)&c->tcp, sl_grpc__alloc_cb, on_read) != 0) {
        conn_close(g);
        return;
    }
    conn_flush(g); /* our SETTINGS */
}

static void proto_conn_reject(sl_conn_t *c) {
    gconn_t *g = SL_CONTAINER_OF(c, gconn_t, base);
    g->rejected = true;
    if (!conn_init(g)) {
        conn_close(g);
        return;
    }
    /* SETTINGS then GOAWAY: an HTTP/2 client learns it was refused and may retry elsewhere.
     * Input is read and dropped so that the close is not turned into a reset. */
    nghttp2_session_terminate_session(g->h2, NGHTTP2_REFUSED_STREAM);
    g->close_after_write = true;
    uv_read_start((uv_stream_t *)&c->tcp, sl_grpc__alloc_cb, on_read);
    conn_flush(g);
}

static void proto_conn_drain(sl_conn_t *c) {
    gconn_t *g = SL_CONTAINER_OF(c, gconn_t, base);
    if (g->closed || g->draining || g->rejected || !g->h2) return;
    g->draining = true;
    nghttp2_submit_shutdown_notice(g->h2);
    g->goaway_at_ms = sl_now_ms() + DRAIN_NOTICE_MS;
    conn_flush(g);
}

static void proto_conn_free(sl_conn_t *c) {
    gconn_t *g = SL_CONTAINER_OF(c, gconn_t, base);
    g->closed = true;
    g->freed = true;
    conn_teardown(g);
    if (g->timer_state != TIMER_CLOSING) conn_destroy(g);
}

const sl_proto_t *sl_grpc_proto(void) {
    static const sl_proto_t proto = {
        .name = "grpc",
        .conn_new = proto_conn_new,
        .conn_start = proto_conn_start,
        .conn_reject = proto_conn_reject,
        .conn_drain = proto_conn_drain,
        .conn_free = proto_conn_free,
    };
    return &proto;
}

/* ---- socketless sessions for the fuzzer and tests ---- */

void sl_grpc__server_feed(sl_grpc_server_t *srv, uv_loop_t *loop, const uint8_t *data, size_t len,
                          const size_t *chunks, size_t n_chunks, sl_buf_t *out) {
    gconn_t *g = sl_calloc(1, sizeof *g);
    g->srv = srv;
    g->uv = loop;
    g->sockless = true;
    g->sink = out;
    if (conn_init(g)) {
        conn_flush(g);
        size_t off = 0;
        for (size_t i = 0; i <= n_chunks && !g->closed && off < len; i++) {
            size_t end = i < n_chunks ? SL_MIN(SL_MAX(chunks[i], off), len) : len;
            if (end > off) conn_feed(g, data + off, end - off);
            off = end;
        }
    }
    conn_close(g);
    g->freed = true;
    if (g->timer_state != TIMER_CLOSING) conn_destroy(g);
}
