/* HTTP/1.1 server connections on llhttp. Reads go through the loop's shared read buffer; the
 * request head and body are copied into per-connection buffers that are reused across
 * requests; responses produced while a read batch is parsed are coalesced into one writev.
 * A request whose handler answers later pauses parsing (and reading) until it has answered, so
 * pipelined requests are answered in order. */
#include "core/http.h"
#include "core/http_server_internal.h"

#include "core/log.h"
#include "core/trace.h"

#include <llhttp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

/* Bodies at least this large are written from their own buffer instead of being copied into
 * the connection's output buffer. */
#define BIG_BODY     16384
#define MAX_SEGMENTS 16

typedef enum {
    PH_WAIT,    /* no request bytes yet (new or keep-alive idle connection) */
    PH_HEAD,    /* reading the request line and headers */
    PH_BODY,    /* reading the body */
    PH_HANDLER, /* the request is with its handler */
} phase_t;

typedef struct {
    uint32_t name_off, name_len, value_off, value_len;
} hdr_span_t;

typedef struct out_seg {
    char *data; /* owned when own is true */
    size_t len;
    bool own;
} out_seg_t;

typedef struct http_conn {
    sl_conn_t base;
    sl_http_server_t *srv;
    llhttp_t parser;
    uv_timer_t read_timer;
    uv_timer_t write_timer;
    phase_t phase;

    /* The request being read. */
    sl_buf_t head; /* url bytes then header names/values, copied */
    uint32_t url_len;
    hdr_span_t *hdrs;
    unsigned n_hdrs, cap_hdrs;
    sl_http_header_t *hdr_view;
    unsigned cap_view;
    bool in_value;
    uint32_t header_bytes;
    sl_buf_t body;
    int limit_status; /* set by a callback that hit a limit */
    bool expect_continue;

    /* The request with its handler. */
    sl_http_req_t req;
    const http_route_t *route;
    sl_buf_t resp_headers; /* extra "Name: value\r\n" lines */
    uint64_t start_ns;
    sl_span_t *span;
    char trace_hex[33], span_hex[17];
    bool keep_alive;

    /* Input parked while a handler is pending. */
    sl_buf_t pending;

    /* Output: `out` collects small writes; segments are flushed with one uv_write. */
    sl_buf_t out[2];
    int out_fill; /* which out buffer is being filled */
    out_seg_t segs[MAX_SEGMENTS];
    unsigned n_segs;
    out_seg_t wsegs[MAX_SEGMENTS]; /* the segments of the write in flight */
    unsigned n_wsegs;
    uv_write_t wreq;
    bool writing;
    bool in_read_cb;

    bool close_after_write; /* close once everything queued is written */
    bool draining;
    bool reading;
    bool orphaned;       /* the handle closed while a handler still held the request */
    uint8_t open_timers; /* timers still closing in http_conn_free */
} http_conn_t;

static llhttp_settings_t g_settings;
static void settings_init(void);

/* ---- limits and reason phrases ---- */

sl_http_limits_t sl_http_limits_default(void) {
    return (sl_http_limits_t){
        .max_request_line = 8 * 1024,
        .max_header_bytes = 32 * 1024,
        .max_headers = 100,
        .max_body_bytes = 16 * 1024 * 1024,
        .max_connections = 10000,
        .header_timeout_ms = 10000,
        .body_timeout_ms = 60000,
        .idle_timeout_ms = 75000,
        .write_timeout_ms = 30000,
    };
}

const char *sl_http_reason(int status) {
    switch (status) {
    case 100:
        return "Continue";
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 301:
        return "Moved Permanently";
    case 302:
        return "Found";
    case 304:
        return "Not Modified";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 411:
        return "Length Required";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 415:
        return "Unsupported Media Type";
    case 417:
        return "Expectation Failed";
    case 422:
        return "Unprocessable Content";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return "Unknown";
    }
}

/* ---- output ---- */

/* The Date header, formatted once per second per thread. */
static const char *date_header(void) {
    static _Thread_local char buf[64];
    static _Thread_local time_t last;
    time_t now = time(NULL);
    if (now != last) {
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(buf, sizeof buf, "Date: %a, %d %b %Y %H:%M:%S GMT\r\n", &tm);
        last = now;
    }
    return buf;
}

static void conn_flush(http_conn_t *c);
static void conn_close(http_conn_t *c);
static void conn_release(http_conn_t *c);
static void conn_resume(http_conn_t *c);

static void seg_push(http_conn_t *c, char *data, size_t len, bool own) {
    if (c->n_segs == MAX_SEGMENTS) {
        /* Fold everything so far into one owned segment; rare (deep pipelining of big bodies). */
        sl_buf_t all = SL_BUF_INIT;
        for (unsigned i = 0; i < c->n_segs; i++) {
            sl_buf_append(&all, c->segs[i].data, c->segs[i].len);
            if (c->segs[i].own) free(c->segs[i].data);
        }
        c->segs[0] = (out_seg_t){all.data, all.len, true};
        c->n_segs = 1;
    }
    c->segs[c->n_segs++] = (out_seg_t){data, len, own};
}

/* Closes the current fill buffer's run as a segment so that a big body can follow it. */
static void seal_fill(http_conn_t *c, size_t *sealed) {
    sl_buf_t *b = &c->out[c->out_fill];
    if (b->len > *sealed) {
        seg_push(c, NULL, b->len - *sealed, false); /* data fixed up at flush time */
        *sealed = b->len;
    }
}

static void on_write_timeout(uv_timer_t *t) {
    http_conn_t *c = t->data;
    SL_DEBUG("http", "write timeout, closing connection", SL_LF_S("server", c->srv->name));
    sl_counter_inc(c->srv->m_errors[HTTP_ERR_TIMEOUT]);
    conn_close(c);
}

static void release_wsegs(http_conn_t *c) {
    for (unsigned i = 0; i < c->n_wsegs; i++) {
        if (c->wsegs[i].own) free(c->wsegs[i].data);
    }
    c->n_wsegs = 0;
}

/* What follows a completed write, whether it finished at once or in on_write. */
static void write_done(http_conn_t *c, int status) {
    release_wsegs(c);
    sl_buf_reset(&c->out[1 - c->out_fill]);
    if (c->base.closing) return;
    uv_timer_stop(&c->write_timer);
    if (status < 0) {
        conn_close(c);
        return;
    }
    if (c->n_segs > 0) {
        conn_flush(c);
        return;
    }
    if (c->close_after_write) {
        conn_close(c);
        return;
    }
    conn_resume(c);
}

static void on_write(uv_write_t *w, int status) {
    http_conn_t *c = w->data;
    c->writing = false;
    write_done(c, status);
}

static void conn_flush(http_conn_t *c) {
    if (c->writing || c->base.closing) return;
    sl_buf_t *b = &c->out[c->out_fill];
    size_t sealed = 0;
    for (unsigned i = 0; i < c->n_segs; i++) {
        if (!c->segs[i].own && c->segs[i].data == NULL) sealed += c->segs[i].len;
    }
    seal_fill(c, &sealed);
    if (c->n_segs == 0) return;

    /* Resolve the fill-buffer runs now that the buffer no longer moves. */
    uv_buf_t bufs[MAX_SEGMENTS];
    size_t off = 0;
    for (unsigned i = 0; i < c->n_segs; i++) {
        out_seg_t *s = &c->segs[i];
        if (!s->own && s->data == NULL) {
            s->data = b->data + off;
            off += s->len;
        }
        bufs[i] = uv_buf_init(s->data, (unsigned)s->len);
        c->wsegs[i] = *s;
    }
    c->n_wsegs = c->n_segs;
    c->n_segs = 0;
    c->out_fill = 1 - c->out_fill; /* new output goes to the other buffer meanwhile */

    /* Most responses fit the socket buffer: write them now. Handing them to uv_write instead
     * would make libuv drop and re-arm the socket's write interest, one epoll_ctl per request,
     * which measurably delays the requests that arrived meanwhile. */
    unsigned nbufs = c->n_wsegs;
    uv_buf_t *rest = bufs;
    int wrote = uv_try_write((uv_stream_t *)&c->base.tcp, bufs, nbufs);
    if (wrote < 0 && wrote != UV_EAGAIN) {
        write_done(c, wrote);
        return;
    }
    size_t left = wrote > 0 ? (size_t)wrote : 0;
    while (nbufs > 0 && left >= rest->len) {
        left -= rest->len;
        rest++;
        nbufs--;
    }
    if (nbufs == 0) {
        write_done(c, 0);
        return;
    }
    rest->base += left;
    rest->len -= left;
    c->writing = true;
    c->wreq.data = c;
    int rc = uv_write(&c->wreq, (uv_stream_t *)&c->base.tcp, rest, nbufs, on_write);
    if (rc < 0) {
        c->writing = false;
        release_wsegs(c);
        conn_close(c);
        return;
    }
    if (c->srv->limits.write_timeout_ms) {
        uv_timer_start(&c->write_timer, on_write_timeout, c->srv->limits.write_timeout_ms, 0);
    }
}

/* Appends a complete response to the output. body is copied unless it is big and owned, in
 * which case it is written in place and freed after the write. */
/* Appends a response head: status line, Server, Date, Content-Type, Content-Length, extra. */
static void emit_head(http_conn_t *c, int status, const char *content_type, size_t len,
                      const sl_buf_t *extra, bool close, size_t body_hint) {
    sl_buf_t *b = &c->out[c->out_fill];
    sl_buf_reserve(b, 160 + (extra ? extra->len : 0) + body_hint);
    sl_buf_puts(b, "HTTP/1.1 ");
    sl_buf_put_u64(b, (uint64_t)status);
    sl_buf_putc(b, ' ');
    sl_buf_puts(b, sl_http_reason(status));
    sl_buf_puts(b, "\r\n");
    sl_buf_puts(b, "Server: sluice\r\n");
    sl_buf_puts(b, date_header());
    if (content_type && len > 0) {
        sl_buf_puts(b, "Content-Type: ");
        sl_buf_puts(b, content_type);
        sl_buf_puts(b, "\r\n");
    }
    if (status != 204) {
        sl_buf_puts(b, "Content-Length: ");
        sl_buf_put_u64(b, len);
        sl_buf_puts(b, "\r\n");
    }
    if (close) sl_buf_puts(b, "Connection: close\r\n");
    if (extra && extra->len) sl_buf_append(b, extra->data, extra->len);
    sl_buf_puts(b, "\r\n");
}

/* Appends a complete response to the output. body is copied unless it is big, in which case
 * it is written in place (and freed after the write when owned). */
static void emit_response(http_conn_t *c, int status, const char *content_type, const void *body,
                          size_t len, bool body_owned, const sl_buf_t *extra, bool close) {
    emit_head(c, status, content_type, len, extra, close, len < BIG_BODY ? len : 0);
    sl_buf_t *b = &c->out[c->out_fill];
    if (len >= BIG_BODY) {
        size_t sealed = 0;
        for (unsigned i = 0; i < c->n_segs; i++) {
            if (!c->segs[i].own && c->segs[i].data == NULL) sealed += c->segs[i].len;
        }
        seal_fill(c, &sealed);
        char *copy = (char *)body;
        if (!body_owned) {
            copy = sl_malloc(len);
            memcpy(copy, body, len);
        }
        seg_push(c, copy, len, true);
    } else {
        sl_buf_append(b, body, len);
        if (body_owned) free((void *)body);
    }
}

/* ---- request lifecycle ---- */

static void reset_request(http_conn_t *c) {
    sl_buf_reset(&c->head);
    sl_buf_reset(&c->body);
    sl_buf_reset(&c->resp_headers);
    c->url_len = 0;
    c->n_hdrs = 0;
    c->in_value = false;
    c->header_bytes = 0;
    c->limit_status = 0;
    c->expect_continue = false;
    c->route = NULL;
    c->span = NULL;
}

static void on_read_timeout(uv_timer_t *t);

static void arm_read_timer(http_conn_t *c, uint32_t ms) {
    if (ms) {
        uv_timer_start(&c->read_timer, on_read_timeout, ms, 0);
    } else {
        uv_timer_stop(&c->read_timer);
    }
}

static const char *error_code_for(int status) {
    switch (status) {
    case 400:
        return "bad_request";
    case 404:
        return "not_found";
    case 405:
        return "method_not_allowed";
    case 408:
        return "request_timeout";
    case 413:
        return "body_too_large";
    case 414:
        return "uri_too_long";
    case 417:
        return "expectation_failed";
    case 431:
        return "headers_too_large";
    case 503:
        return "unavailable";
    case 505:
        return "http_version_not_supported";
    default:
        return "error";
    }
}

static void error_body(sl_buf_t *b, const char *code, const char *message) {
    sl_buf_puts(b, "{\"error\":{\"code\":\"");
    sl_buf_json_escape(b, code, strlen(code));
    sl_buf_puts(b, "\",\"message\":\"");
    sl_buf_json_escape(b, message, strlen(message));
    sl_buf_puts(b, "\"}}");
}

/* Answers a protocol-level failure and closes the connection after the write: the rest of the
 * input cannot be trusted to frame further requests. */
static void fail_connection(http_conn_t *c, int status, const char *message, http_err_t kind) {
    sl_counter_inc(c->srv->m_errors[kind]);
    sl_buf_t body = SL_BUF_INIT;
    error_body(&body, error_code_for(status), message);
    emit_response(c, status, "application/json", body.data, body.len, false, NULL, true);
    sl_buf_free(&body);
    c->close_after_write = true;
    c->phase = PH_WAIT;
    uv_timer_stop(&c->read_timer);
    if (c->reading) {
        uv_read_stop((uv_stream_t *)&c->base.tcp);
        c->reading = false;
    }
    if (!c->in_read_cb) conn_flush(c);
}

static void on_read_timeout(uv_timer_t *t) {
    http_conn_t *c = t->data;
    if (c->phase == PH_HEAD || c->phase == PH_BODY) {
        fail_connection(c, 408,
                        c->phase == PH_HEAD ? "request headers not received in time"
                                            : "request body not received in time",
                        HTTP_ERR_TIMEOUT);
    } else if (c->phase == PH_WAIT) {
        conn_close(c); /* idle keep-alive connection, or one that never sent a byte */
    }
}

/* ---- llhttp callbacks ---- */

static int cb_message_begin(llhttp_t *p) {
    http_conn_t *c = p->data;
    reset_request(c);
    c->phase = PH_HEAD;
    c->start_ns = sl_now_ns();
    arm_read_timer(c, c->srv->limits.header_timeout_ms);
    return 0;
}

static int cb_url(llhttp_t *p, const char *at, size_t len) {
    http_conn_t *c = p->data;
    if (c->url_len + len + 16 > c->srv->limits.max_request_line) {
        c->limit_status = 414;
        return HPE_USER;
    }
    sl_buf_append(&c->head, at, len);
    c->url_len += (uint32_t)len;
    return 0;
}

/* Chunked trailers arrive after the head, whose bytes the request view points into: they are
 * counted against the header limit and otherwise ignored (no handler reads trailers). */
static int trailer_bytes(http_conn_t *c, size_t len) {
    c->header_bytes += (uint32_t)len;
    if (c->header_bytes > c->srv->limits.max_header_bytes) {
        c->limit_status = 431;
        return HPE_USER;
    }
    return 0;
}

static int cb_header_field(llhttp_t *p, const char *at, size_t len) {
    http_conn_t *c = p->data;
    if (c->phase == PH_BODY) return trailer_bytes(c, len);
    c->header_bytes += (uint32_t)len;
    if (c->header_bytes > c->srv->limits.max_header_bytes) {
        c->limit_status = 431;
        return HPE_USER;
    }
    if (!c->in_value && c->n_hdrs > 0 &&
        c->hdrs[c->n_hdrs - 1].name_off + c->hdrs[c->n_hdrs - 1].name_len == c->head.len &&
        c->hdrs[c->n_hdrs - 1].value_len == 0 && c->hdrs[c->n_hdrs - 1].value_off == 0) {
        /* Continuation of the same field name split across reads. */
        sl_buf_append(&c->head, at, len);
        c->hdrs[c->n_hdrs - 1].name_len += (uint32_t)len;
        return 0;
    }
    if (c->n_hdrs == c->srv->limits.max_headers) {
        c->limit_status = 431;
        return HPE_USER;
    }
    if (c->n_hdrs == c->cap_hdrs) {
        c->cap_hdrs = c->cap_hdrs ? c->cap_hdrs * 2 : 16;
        c->hdrs = sl_realloc(c->hdrs, c->cap_hdrs * sizeof *c->hdrs);
    }
    c->hdrs[c->n_hdrs++] = (hdr_span_t){(uint32_t)c->head.len, (uint32_t)len, 0, 0};
    sl_buf_append(&c->head, at, len);
    c->in_value = false;
    return 0;
}

static int cb_header_value(llhttp_t *p, const char *at, size_t len) {
    http_conn_t *c = p->data;
    if (c->phase == PH_BODY) return trailer_bytes(c, len);
    c->header_bytes += (uint32_t)len;
    if (c->header_bytes > c->srv->limits.max_header_bytes) {
        c->limit_status = 431;
        return HPE_USER;
    }
    hdr_span_t *h = &c->hdrs[c->n_hdrs - 1];
    if (!c->in_value) {
        h->value_off = (uint32_t)c->head.len;
        h->value_len = 0;
        c->in_value = true;
    }
    sl_buf_append(&c->head, at, len);
    h->value_len += (uint32_t)len;
    return 0;
}

static int cb_header_field_complete(llhttp_t *p) {
    http_conn_t *c = p->data;
    c->in_value = false;
    /* Mark the field as finished so that a following field is not taken as its continuation. */
    if (c->n_hdrs > 0 && c->phase != PH_BODY)
        c->hdrs[c->n_hdrs - 1].value_off = (uint32_t)c->head.len;
    return 0;
}

static int cb_header_value_complete(llhttp_t *p) {
    http_conn_t *c = p->data;
    c->in_value = false;
    return 0;
}

static void build_request_view(http_conn_t *c) {
    if (c->cap_view < c->n_hdrs) {
        c->cap_view = c->n_hdrs;
        c->hdr_view = sl_realloc(c->hdr_view, c->cap_view * sizeof *c->hdr_view);
    }
    const char *base = c->head.data;
    for (unsigned i = 0; i < c->n_hdrs; i++) {
        hdr_span_t *h = &c->hdrs[i];
        c->hdr_view[i].name = (sl_str_t){base + h->name_off, h->name_len};
        c->hdr_view[i].value = (sl_str_t){h->value_len ? base + h->value_off : "", h->value_len};
        /* Trim optional whitespace at the end of the value. */
        while (c->hdr_view[i].value.len > 0 &&
               (c->hdr_view[i].value.ptr[c->hdr_view[i].value.len - 1] == ' ' ||
                c->hdr_view[i].value.ptr[c->hdr_view[i].value.len - 1] == '\t')) {
            c->hdr_view[i].value.len--;
        }
    }
    sl_http_req_t *r = &c->req;
    const char *m = llhttp_method_name((llhttp_method_t)c->parser.method);
    r->method = (sl_str_t){m, strlen(m)};
    r->target = (sl_str_t){base, c->url_len};
    const char *q = memchr(base, '?', c->url_len);
    if (q) {
        r->path = (sl_str_t){base, (size_t)(q - base)};
        r->query = (sl_str_t){q + 1, c->url_len - (size_t)(q - base) - 1};
    } else {
        r->path = r->target;
        r->query = (sl_str_t){"", 0};
    }
    r->http_minor = c->parser.http_minor;
    r->headers = c->hdr_view;
    r->n_headers = c->n_hdrs;
}

static int cb_headers_complete(llhttp_t *p) {
    http_conn_t *c = p->data;
    build_request_view(c);
    if (c->parser.http_major != 1) {
        c->limit_status = 505;
        return HPE_USER;
    }
    uint64_t max = c->srv->limits.max_body_bytes;
    if ((p->flags & F_CONTENT_LENGTH) && p->content_length > max) {
        c->limit_status = 413;
        return HPE_USER;
    }
    sl_str_t expect = sl_http_req_header(&c->req, "expect");
    if (expect.ptr) {
        if (!sl_str_ieq(expect, "100-continue")) {
            c->limit_status = 417;
            return HPE_USER;
        }
        c->expect_continue = c->parser.http_minor >= 1;
    }
    c->phase = PH_BODY;
    arm_read_timer(c, c->srv->limits.body_timeout_ms);
    if (c->expect_continue && (p->flags & (F_CONTENT_LENGTH | F_CHUNKED)) &&
        !(p->flags & F_CONTENT_LENGTH && p->content_length == 0)) {
        /* Tell the client to send the body; written ahead of anything else queued. */
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        sl_buf_append(&c->out[c->out_fill], cont, sizeof cont - 1);
    }
    return 0;
}

static int cb_body(llhttp_t *p, const char *at, size_t len) {
    http_conn_t *c = p->data;
    if (c->body.len + len > c->srv->limits.max_body_bytes) {
        c->limit_status = 413;
        return HPE_USER;
    }
    sl_buf_append(&c->body, at, len);
    return 0;
}

static void dispatch(http_conn_t *c);

static int cb_message_complete(llhttp_t *p) {
    http_conn_t *c = p->data;
    c->keep_alive = llhttp_should_keep_alive(p) && !c->draining;
    c->req.body = (const uint8_t *)(c->body.len ? c->body.data : "");
    c->req.body_len = c->body.len;
    c->phase = PH_HANDLER;
    uv_timer_stop(&c->read_timer);
    dispatch(c);
    /* Stop here if the handler answers later; parsing resumes after its response. */
    return c->phase == PH_HANDLER ? HPE_PAUSED : 0;
}

static void settings_init(void) {
    llhttp_settings_init(&g_settings);
    g_settings.on_message_begin = cb_message_begin;
    g_settings.on_url = cb_url;
    g_settings.on_header_field = cb_header_field;
    g_settings.on_header_value = cb_header_value;
    g_settings.on_header_field_complete = cb_header_field_complete;
    g_settings.on_header_value_complete = cb_header_value_complete;
    g_settings.on_headers_complete = cb_headers_complete;
    g_settings.on_body = cb_body;
    g_settings.on_message_complete = cb_message_complete;
}

/* ---- routing and handlers ---- */

sl_str_t sl_http_req_header(const sl_http_req_t *req, const char *name) {
    for (unsigned i = 0; i < req->n_headers; i++) {
        if (sl_str_ieq(req->headers[i].name, name)) return req->headers[i].value;
    }
    return (sl_str_t){NULL, 0};
}

const struct sl_trace_ctx *sl_http_req_trace(const sl_http_req_t *req) {
    const http_conn_t *c = SL_CONTAINER_OF(req, http_conn_t, req);
    return c->span ? sl_span_ctx(c->span) : NULL;
}

static void start_span(http_conn_t *c) {
    sl_trace_ctx_t parent;
    const sl_trace_ctx_t *pp = NULL;
    sl_str_t tp = sl_http_req_header(&c->req, "traceparent");
    if (tp.ptr && sl_traceparent_parse(tp, &parent) == 0) {
        sl_str_t ts = sl_http_req_header(&c->req, "tracestate");
        if (ts.ptr) sl_tracestate_parse(ts, &parent);
        pp = &parent;
    }
    /* The span's name is only kept when a tracer records spans: format it only then. */
    char name[96] = "";
    if (c->srv->tracer) {
        snprintf(name, sizeof name, "%.*s %s", (int)c->req.method.len, c->req.method.ptr,
                 c->route ? c->route->path : "unmatched");
    }
    c->span = sl_span_start(c->srv->tracer, name, SL_SPAN_SERVER, pp);
    if (sl_span_sampled(c->span)) {
        char tmp[256];
        snprintf(tmp, sizeof tmp, "%.*s", (int)c->req.method.len, c->req.method.ptr);
        sl_span_attr_str(c->span, "http.request.method", tmp);
        snprintf(tmp, sizeof tmp, "%.*s", (int)SL_MIN(c->req.path.len, 200), c->req.path.ptr);
        sl_span_attr_str(c->span, "url.path", tmp);
        if (c->route) sl_span_attr_str(c->span, "http.route", c->route->path);
        sl_span_attr_str(c->span, "server.name", c->srv->name);
    }
    const sl_trace_ctx_t *ctx = sl_span_ctx(c->span);
    sl_trace_id_hex(ctx, c->trace_hex);
    sl_span_id_hex(ctx, c->span_hex);
}

static void dispatch(http_conn_t *c) {
    sl_http_server_t *srv = c->srv;
    bool method_mismatch = false;
    c->route = http_router_match(srv, &c->req, &method_mismatch);
    if (c->route && c->route->traced && srv->tracer) start_span(c);
    if (!c->route) {
        if (method_mismatch) {
            sl_http_respond_error(&c->req, 405, "method_not_allowed",
                                  "method not allowed for this path");
        } else {
            sl_http_respond_error(&c->req, 404, "not_found", "no such endpoint");
        }
        return;
    }
    c->req.route_ctx = c->route->ctx;
    if (c->span) sl_log_set_trace(c->trace_hex, c->span_hex);
    c->route->cb(&c->req, c->route->ctx);
    sl_log_set_trace(NULL, NULL);
}

void sl_http_resp_header(sl_http_req_t *req, const char *name, const char *value) {
    http_conn_t *c = SL_CONTAINER_OF(req, http_conn_t, req);
    SL_ASSERT(c->phase == PH_HANDLER);
    /* Header injection guard: CR/LF in a value would split the response. */
    sl_buf_puts(&c->resp_headers, name);
    sl_buf_puts(&c->resp_headers, ": ");
    for (const char *v = value; *v; v++) {
        sl_buf_putc(&c->resp_headers, (*v == '\r' || *v == '\n') ? ' ' : *v);
    }
    sl_buf_puts(&c->resp_headers, "\r\n");
}

static void finish_request(http_conn_t *c, int status) {
    const http_route_t *route = c->route;
    http_route_metrics_t *m = route ? (http_route_metrics_t *)&route->metrics : &c->srv->unmatched;
    unsigned cls = (unsigned)(status / 100);
    if (cls >= 1 && cls <= 5) sl_counter_inc(m->requests[cls - 1]);
    sl_histogram_observe(m->duration, (double)(sl_now_ns() - c->start_ns) / 1e9);
    if (c->span) {
        sl_span_attr_int(c->span, "http.response.status_code", status);
        if (status >= 500) sl_span_set_error(c->span, sl_http_reason(status));
        sl_span_end(c->span);
        c->span = NULL;
    }
}

static void respond(sl_http_req_t *req, int status, const char *content_type, const void *body,
                    size_t len, bool owned) {
    http_conn_t *c = SL_CONTAINER_OF(req, http_conn_t, req);
    SL_ASSERT(c->phase == PH_HANDLER);
    finish_request(c, status);
    if (c->orphaned) {
        /* The connection went away while the handler worked: nothing to write to. */
        if (owned) free((void *)body);
        c->phase = PH_WAIT;
        conn_release(c);
        return;
    }
    bool close = !c->keep_alive || c->close_after_write || c->draining;
    if (c->parser.method == HTTP_HEAD || status == 204 || status == 304) {
        /* No body on the wire (RFC 9110 9.3.2, 15.3.5, 15.4.5); HEAD keeps the length a GET
         * would have had. */
        if (owned) free((void *)body);
        emit_head(c, status, content_type, status == 204 ? 0 : len, &c->resp_headers, close, 0);
    } else {
        emit_response(c, status, content_type, body, len, owned, &c->resp_headers, close);
    }
    if (close) c->close_after_write = true;
    c->phase = PH_WAIT;
    if (!c->in_read_cb) {
        /* An asynchronous answer: write now, then continue with parked input. */
        conn_flush(c);
    }
}

void sl_http_respond(sl_http_req_t *req, int status, const char *content_type, const void *body,
                     size_t len) {
    respond(req, status, content_type, body, len, false);
}

void sl_http_respond_take(sl_http_req_t *req, int status, const char *content_type, void *body,
                          size_t len) {
    respond(req, status, content_type, body, len, true);
}

void sl_http_respond_error(sl_http_req_t *req, int status, const char *code, const char *message) {
    sl_buf_t body = SL_BUF_INIT;
    error_body(&body, code, message);
    respond(req, status, "application/json", body.data, body.len, false);
    sl_buf_free(&body);
}

/* ---- reading ---- */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
    http_conn_t *c = h->data;
    size_t len;
    char *p = sl_loop_read_buffer(c->base.loop, &len);
    *buf = uv_buf_init(p, (unsigned)len);
}

/* Feeds bytes to the parser. Returns the number consumed; stops early when a handler is
 * pending (the rest must be parked) or the connection failed. */
static size_t feed(http_conn_t *c, const char *data, size_t len) {
    if (c->close_after_write) return len; /* after a fatal error or Connection: close, ignore */
    llhttp_errno_t err = llhttp_execute(&c->parser, data, len);
    if (err == HPE_OK) return len;
    if (err == HPE_PAUSED) {
        size_t used = (size_t)(llhttp_get_error_pos(&c->parser) - data);
        if (c->phase == PH_HANDLER) return used; /* handler pending: park the rest */
        /* The handler answered synchronously after we asked to pause: carry on. */
        llhttp_resume(&c->parser);
        return used + feed(c, data + used, len - used);
    }
    /* A callback that hit a limit set limit_status; llhttp reports it as HPE_USER, or as a
     * callback error for on_headers_complete. */
    if (c->limit_status) {
        static const char *const msgs[][2] = {
            {"413", "request body exceeds the size limit"},
            {"414", "request line exceeds the size limit"},
            {"417", "only 'Expect: 100-continue' is supported"},
            {"431", "request headers exceed the size or count limit"},
            {"505", "only HTTP/1.x is supported"},
        };
        const char *msg = "request rejected";
        char code[4];
        snprintf(code, sizeof code, "%d", c->limit_status);
        for (size_t i = 0; i < SL_ARRAY_LEN(msgs); i++) {
            if (strcmp(msgs[i][0], code) == 0) msg = msgs[i][1];
        }
        http_err_t kind = c->limit_status == 413   ? HTTP_ERR_TOO_LARGE
                          : c->limit_status == 414 ? HTTP_ERR_URI_TOO_LONG
                          : c->limit_status == 431 ? HTTP_ERR_HEADERS_TOO_LARGE
                                                   : HTTP_ERR_BAD_REQUEST;
        fail_connection(c, c->limit_status, msg, kind);
        return len;
    }
    /* Malformed input: say what is wrong in general terms only. */
    fail_connection(c, 400, "malformed HTTP request", HTTP_ERR_BAD_REQUEST);
    return len;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
    http_conn_t *c = s->data;
    if (nread < 0) {
        /* EOF or reset. A handler still working keeps the request until it answers. */
        if (c->phase == PH_HANDLER) {
            uv_read_stop(s);
            c->reading = false;
            c->close_after_write = true;
            return;
        }
        conn_close(c);
        return;
    }
    if (nread == 0) return;
    c->in_read_cb = true;
    size_t used = feed(c, buf->base, (size_t)nread);
    c->in_read_cb = false;
    if (used < (size_t)nread) {
        /* A handler is pending: park the rest and stop reading until it answers. */
        sl_buf_append(&c->pending, buf->base + used, (size_t)nread - used);
        uv_read_stop(s);
        c->reading = false;
    }
    if (c->base.closing) return;
    conn_flush(c);
    if (c->base.closing) return;
    if (c->phase == PH_WAIT && !c->close_after_write && !c->writing) {
        arm_read_timer(c, c->srv->limits.idle_timeout_ms);
    }
    if (c->draining && c->phase == PH_WAIT && !c->writing && c->n_segs == 0) conn_close(c);
}

/* Continues after an asynchronous response was written: parked input first, then the socket. */
static void conn_resume(http_conn_t *c) {
    if (c->base.closing || c->phase == PH_HANDLER) return;
    if (c->draining && c->phase == PH_WAIT) {
        conn_close(c);
        return;
    }
    if (c->pending.len > 0) {
        sl_buf_t parked = c->pending;
        c->pending = (sl_buf_t)SL_BUF_INIT;
        if (llhttp_get_errno(&c->parser) == HPE_PAUSED) llhttp_resume(&c->parser);
        c->in_read_cb = true;
        size_t used = feed(c, parked.data, parked.len);
        c->in_read_cb = false;
        if (used < parked.len) {
            sl_buf_append(&c->pending, parked.data + used, parked.len - used);
        }
        sl_buf_free(&parked);
        if (c->base.closing) return;
        conn_flush(c);
        if (c->base.closing || c->phase == PH_HANDLER || c->writing) return;
    } else if (llhttp_get_errno(&c->parser) == HPE_PAUSED) {
        llhttp_resume(&c->parser);
    }
    if (!c->reading && !c->close_after_write) {
        uv_read_start((uv_stream_t *)&c->base.tcp, on_alloc, on_read);
        c->reading = true;
    }
    if (c->phase == PH_WAIT) arm_read_timer(c, c->srv->limits.idle_timeout_ms);
}

/* ---- the protocol ---- */

static sl_conn_t *http_conn_new(sl_loop_t *loop, void *ctx) {
    http_conn_t *c = sl_calloc(1, sizeof *c);
    c->srv = ctx;
    return &c->base;
}

static void http_conn_start(sl_conn_t *base) {
    http_conn_t *c = SL_CONTAINER_OF(base, http_conn_t, base);
    static uv_once_t once = UV_ONCE_INIT;
    uv_once(&once, settings_init);
    c->base.tcp.data = c;
    llhttp_init(&c->parser, HTTP_REQUEST, &g_settings);
    c->parser.data = c;
    uv_timer_init(sl_loop_uv(base->loop), &c->read_timer);
    uv_timer_init(sl_loop_uv(base->loop), &c->write_timer);
    c->read_timer.data = c->write_timer.data = c;
    c->phase = PH_WAIT;
    sl_gauge_add(c->srv->m_connections, 1);
    /* A new connection must send its first request within the header timeout. */
    arm_read_timer(c, c->srv->limits.header_timeout_ms);
    uv_read_start((uv_stream_t *)&c->base.tcp, on_alloc, on_read);
    c->reading = true;
}

static void http_conn_reject(sl_conn_t *base) {
    http_conn_t *c = SL_CONTAINER_OF(base, http_conn_t, base);
    static uv_once_t once = UV_ONCE_INIT;
    uv_once(&once, settings_init);
    c->base.tcp.data = c;
    uv_timer_init(sl_loop_uv(base->loop), &c->read_timer);
    uv_timer_init(sl_loop_uv(base->loop), &c->write_timer);
    c->read_timer.data = c->write_timer.data = c;
    sl_gauge_add(c->srv->m_connections, 1);
    sl_counter_inc(c->srv->m_errors[HTTP_ERR_CONN_LIMIT]);
    sl_buf_t body = SL_BUF_INIT;
    error_body(&body, "unavailable", "server is at its connection limit, retry later");
    emit_response(c, 503, "application/json", body.data, body.len, false, NULL, true);
    sl_buf_free(&body);
    c->close_after_write = true;
    conn_flush(c);
}

/* True when the client's next request has already reached the socket but was not read yet. */
static bool input_waiting(http_conn_t *c) {
    uv_os_fd_t fd;
    char byte;
    if (uv_fileno((uv_handle_t *)&c->base.tcp, &fd) != 0) return false;
    return recv(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT) > 0;
}

static void http_conn_drain(sl_conn_t *base) {
    http_conn_t *c = SL_CONTAINER_OF(base, http_conn_t, base);
    c->draining = true;
    if (c->phase == PH_WAIT && !c->writing && c->n_segs == 0) {
        /* An idle connection closes now, unless a request already arrived: that one is served
         * (with Connection: close) rather than lost to the race between client and signal. */
        if (!input_waiting(c)) conn_close(c);
    } else if (c->phase != PH_HANDLER) {
        /* A request still being read is answered, then the connection closes. */
        c->close_after_write = c->phase == PH_WAIT;
    }
}

static void conn_close(http_conn_t *c) {
    if (c->base.closing) return;
    uv_timer_stop(&c->read_timer);
    uv_timer_stop(&c->write_timer);
    sl_conn_close(&c->base);
}

static void conn_release(http_conn_t *c) {
    sl_gauge_add(c->srv->m_connections, -1);
    for (unsigned i = 0; i < c->n_segs; i++) {
        if (c->segs[i].own) free(c->segs[i].data);
    }
    release_wsegs(c);
    sl_buf_free(&c->head);
    sl_buf_free(&c->body);
    sl_buf_free(&c->resp_headers);
    sl_buf_free(&c->pending);
    sl_buf_free(&c->out[0]);
    sl_buf_free(&c->out[1]);
    free(c->hdrs);
    free(c->hdr_view);
    free(c);
}

/* libuv finishes closing handles in a batch and reads each handle's successor in the batch
 * after running its callback, so the connection (which embeds both timers) may only go away in
 * the callback of the last of them to finish: count them down. */
static void on_timer_closed(uv_handle_t *h) {
    http_conn_t *c = h->data;
    if (--c->open_timers > 0) return;
    if (c->phase == PH_HANDLER) {
        c->orphaned = true; /* freed when its handler answers */
        return;
    }
    conn_release(c);
}

static void http_conn_free(sl_conn_t *base) {
    http_conn_t *c = SL_CONTAINER_OF(base, http_conn_t, base);
    c->open_timers = 2;
    uv_close((uv_handle_t *)&c->read_timer, on_timer_closed);
    uv_close((uv_handle_t *)&c->write_timer, on_timer_closed);
}

static const sl_proto_t http_proto = {
    .name = "http",
    .conn_new = http_conn_new,
    .conn_start = http_conn_start,
    .conn_reject = http_conn_reject,
    .conn_drain = http_conn_drain,
    .conn_free = http_conn_free,
};

const sl_proto_t *sl_http_proto(void) {
    return &http_proto;
}
