/* HTTP/1.1 client: per-upstream pools of keep-alive connections on one libuv loop, responses
 * parsed with llhttp. Serves `sluice health`, the OTLP exporter and (later) the gateway. User
 * callbacks only ever run at the top of our own call stacks, once pool state is consistent, so a
 * callback may start new requests or free the client. */
#include "core/http_client.h"

#include "core/common.h"
#include "core/log.h"

#include <llhttp.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define READ_BUF_SIZE         (64 * 1024)
#define MAX_RESP_HEADERS      128
#define MAX_RESP_HEADER_BYTES (64 * 1024)
#define MAX_HOST_LEN          255
#define MAX_TARGET_LEN        8192

typedef struct pool pool_t;
typedef struct conn conn_t;
typedef struct creq creq_t;

struct sl_http_client {
    uv_loop_t *loop;
    sl_http_client_opts_t opts;
    pool_t *pools;
    conn_t *conns; /* every open connection, busy or idle */
    creq_t *reqs;  /* every request whose callback has not run yet */
    unsigned live; /* connections and requests whose handles have not closed yet */
    bool closing;
    char *rbuf; /* shared read buffer: reads are consumed within their callback */
};

struct pool {
    pool_t *next;
    char *host;
    uint16_t port;
    unsigned n_conns; /* connecting, busy and idle */
    conn_t *idle;     /* LIFO: the most recently used connection is the warmest */
    creq_t *wait_head, *wait_tail;
};

typedef struct hdr_off {
    uint32_t name_off, name_len, value_off, value_len;
} hdr_off_t;

struct creq {
    sl_http_client_t *c;
    pool_t *pool;
    uv_timer_t timer; /* the whole exchange; also fires deferred failures */
    sl_http_client_cb cb;
    void *arg;
    sl_buf_t head; /* serialized request line and headers */
    uint8_t *body;
    size_t body_len;
    bool idempotent, is_head, close_after, retried, force_fresh, done, timer_closed, queued;
    int pending_err;   /* non-zero: fail with this when the timer fires */
    unsigned n_writes; /* writes in flight that point at head/body */
    conn_t *conn;
    creq_t *wait_next;
    creq_t *all_prev, *all_next; /* the client's list of unfinished requests */
    /* Response under construction. */
    int status;
    bool in_value, interim, complete, keep_alive;
    int parse_err;
    sl_buf_t hbuf;
    hdr_off_t *hdrs;
    unsigned n_hdrs;
    sl_buf_t body_in;
};

typedef struct gai_req {
    uv_getaddrinfo_t r;
    conn_t *conn; /* NULL once the connection gave up on it */
} gai_req_t;

struct conn {
    sl_http_client_t *c;
    pool_t *pool;
    uv_tcp_t tcp;
    uv_timer_t timer; /* connect timeout, then idle timeout */
    uv_connect_t connect_req;
    uv_write_t write_req;
    creq_t *writing; /* the request whose buffers write_req points at */
    gai_req_t *gai;
    struct addrinfo *ai_head, *ai; /* resolved addresses (owned) and the one being tried */
    llhttp_t parser;
    creq_t *req;
    conn_t *prev, *next;           /* client's list of open connections */
    conn_t *idle_prev, *idle_next; /* pool's idle stack */
    bool connected, is_idle, closing, got_bytes;
    unsigned served;       /* responses completed on this connection */
    unsigned open_handles; /* tcp + timer until both closed */
};

static void conn_close(conn_t *conn, bool kick);
static void pool_dispatch(pool_t *p, creq_t *r);
static void pool_kick(pool_t *p);

/* ---- requests ------------------------------------------------------------------------- */

static void maybe_free_client(sl_http_client_t *c) {
    if (!c->closing || c->live > 0) return;
    pool_t *p = c->pools;
    while (p) {
        pool_t *next = p->next;
        free(p->host);
        free(p);
        p = next;
    }
    free(c->rbuf);
    free(c);
}

static void req_maybe_free(creq_t *r) {
    if (!r->timer_closed || r->n_writes > 0) return;
    sl_http_client_t *c = r->c;
    sl_buf_free(&r->head);
    sl_buf_free(&r->hbuf);
    sl_buf_free(&r->body_in);
    free(r->hdrs);
    free(r->body);
    free(r);
    c->live--;
    maybe_free_client(c);
}

static void req_timer_closed(uv_handle_t *h) {
    creq_t *r = h->data;
    r->timer_closed = true;
    req_maybe_free(r);
}

static void req_reset_response(creq_t *r) {
    r->status = 0;
    r->in_value = r->interim = r->complete = r->keep_alive = false;
    r->parse_err = 0;
    sl_buf_reset(&r->hbuf);
    r->n_hdrs = 0;
    sl_buf_reset(&r->body_in);
}

static void wait_remove(pool_t *p, creq_t *r) {
    if (!r->queued) return;
    r->queued = false;
    creq_t **pp = &p->wait_head, *prev = NULL;
    while (*pp && *pp != r) {
        prev = *pp;
        pp = &(*pp)->wait_next;
    }
    if (!*pp) return;
    *pp = r->wait_next;
    if (p->wait_tail == r) p->wait_tail = prev;
    r->wait_next = NULL;
}

/* Calls the user's callback exactly once and releases the request. The request must already
 * be detached from any connection. */
static void req_complete(creq_t *r, int status, const sl_http_response_t *resp) {
    SL_ASSERT(!r->done && r->conn == NULL);
    r->done = true;
    wait_remove(r->pool, r);
    if (r->all_prev)
        r->all_prev->all_next = r->all_next;
    else
        r->c->reqs = r->all_next;
    if (r->all_next) r->all_next->all_prev = r->all_prev;
    uv_timer_stop(&r->timer);
    r->cb(status, resp, r->arg);
    uv_close((uv_handle_t *)&r->timer, req_timer_closed);
}

static void req_timer_cb(uv_timer_t *t);

/* Fails r on a later loop iteration (keeps "never before request() returns"). */
static void req_fail_later(creq_t *r, int err) {
    r->pending_err = err;
    uv_timer_start(&r->timer, req_timer_cb, 0, 0);
}

static void req_deliver(creq_t *r) {
    sl_http_header_t *hv = r->n_hdrs ? sl_calloc(r->n_hdrs, sizeof *hv) : NULL;
    for (unsigned i = 0; i < r->n_hdrs; i++) {
        hv[i].name = (sl_str_t){r->hbuf.data + r->hdrs[i].name_off, r->hdrs[i].name_len};
        hv[i].value = (sl_str_t){r->hbuf.data + r->hdrs[i].value_off, r->hdrs[i].value_len};
    }
    sl_http_response_t resp = {
        .status = r->status,
        .headers = hv,
        .n_headers = r->n_hdrs,
        .body = (const uint8_t *)(r->body_in.data ? r->body_in.data : ""),
        .body_len = r->body_in.len,
    };
    req_complete(r, 0, &resp);
    free(hv);
}

/* ---- llhttp callbacks (parser.data is the connection) ----------------------------------- */

static int on_header_field(llhttp_t *p, const char *at, size_t len) {
    creq_t *r = ((conn_t *)p->data)->req;
    if (r->in_value || r->n_hdrs == 0) {
        if (r->n_hdrs == MAX_RESP_HEADERS) {
            r->parse_err = SL_ELIMIT;
            return -1;
        }
        if (r->n_hdrs % 16 == 0)
            r->hdrs = sl_realloc(r->hdrs, (r->n_hdrs + 16) * sizeof(hdr_off_t));
        r->hdrs[r->n_hdrs++] = (hdr_off_t){(uint32_t)r->hbuf.len, 0, 0, 0};
        r->in_value = false;
    }
    if (r->hbuf.len + len > MAX_RESP_HEADER_BYTES) {
        r->parse_err = SL_ELIMIT;
        return -1;
    }
    sl_buf_append(&r->hbuf, at, len);
    r->hdrs[r->n_hdrs - 1].name_len += (uint32_t)len;
    return 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t len) {
    creq_t *r = ((conn_t *)p->data)->req;
    if (r->n_hdrs == 0) return -1;
    hdr_off_t *h = &r->hdrs[r->n_hdrs - 1];
    if (!r->in_value) {
        r->in_value = true;
        h->value_off = (uint32_t)r->hbuf.len;
    }
    if (r->hbuf.len + len > MAX_RESP_HEADER_BYTES) {
        r->parse_err = SL_ELIMIT;
        return -1;
    }
    sl_buf_append(&r->hbuf, at, len);
    h->value_len += (uint32_t)len;
    return 0;
}

static int on_headers_complete(llhttp_t *p) {
    creq_t *r = ((conn_t *)p->data)->req;
    r->status = llhttp_get_status_code(p);
    if (r->status == 101) { /* we never ask for an upgrade */
        r->parse_err = SL_EPROTO;
        return -1;
    }
    if (r->status / 100 == 1) {
        r->interim = true; /* 100 Continue and friends: the real response follows */
        return 0;
    }
    bool skip = r->is_head || r->status == 204 || r->status == 304;
    bool http11 = p->http_major == 1 && p->http_minor >= 1;
    bool persist = http11 ? !(p->flags & F_CONNECTION_CLOSE) : (p->flags & F_CONNECTION_KEEP_ALIVE);
    r->keep_alive = persist && !r->close_after && (skip || !llhttp_message_needs_eof(p));
    if (!skip && (p->flags & F_CONTENT_LENGTH) &&
        p->content_length > r->c->opts.max_response_bytes) {
        r->parse_err = SL_ELIMIT;
        return -1;
    }
    return skip ? 1 : 0;
}

static int on_body(llhttp_t *p, const char *at, size_t len) {
    creq_t *r = ((conn_t *)p->data)->req;
    if (r->body_in.len + len > r->c->opts.max_response_bytes) {
        r->parse_err = SL_ELIMIT;
        return -1;
    }
    sl_buf_append(&r->body_in, at, len);
    return 0;
}

static int on_message_complete(llhttp_t *p) {
    creq_t *r = ((conn_t *)p->data)->req;
    if (r->interim) {
        req_reset_response(r);
        return 0;
    }
    r->complete = true;
    return HPE_PAUSED; /* stop here; anything after the response is not ours */
}

static const llhttp_settings_t parser_settings = {
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* ---- connections ------------------------------------------------------------------------ */

static void conn_handle_closed(uv_handle_t *h) {
    conn_t *conn = h->data;
    if (--conn->open_handles > 0) return;
    sl_http_client_t *c = conn->c;
    if (conn->ai_head) uv_freeaddrinfo(conn->ai_head);
    free(conn);
    c->live--;
    maybe_free_client(c);
}

static void idle_remove(conn_t *conn) {
    if (!conn->is_idle) return;
    if (conn->idle_prev)
        conn->idle_prev->idle_next = conn->idle_next;
    else
        conn->pool->idle = conn->idle_next;
    if (conn->idle_next) conn->idle_next->idle_prev = conn->idle_prev;
    conn->idle_prev = conn->idle_next = NULL;
    conn->is_idle = false;
}

/* Closes the connection (its request, if any, must be detached first). kick: let a waiting
 * request use the freed slot. */
static void conn_close(conn_t *conn, bool kick) {
    if (conn->closing) return;
    SL_ASSERT(conn->req == NULL);
    conn->closing = true;
    idle_remove(conn);
    if (conn->prev)
        conn->prev->next = conn->next;
    else
        conn->c->conns = conn->next;
    if (conn->next) conn->next->prev = conn->prev;
    if (conn->gai) {
        conn->gai->conn = NULL;
        uv_cancel((uv_req_t *)&conn->gai->r);
        conn->gai = NULL;
    }
    conn->pool->n_conns--;
    uv_close((uv_handle_t *)&conn->tcp, conn_handle_closed);
    uv_close((uv_handle_t *)&conn->timer, conn_handle_closed);
    if (kick) pool_kick(conn->pool);
}

static creq_t *conn_detach(conn_t *conn) {
    creq_t *r = conn->req;
    if (r) r->conn = NULL;
    conn->req = NULL;
    return r;
}

/* The connection failed while r (maybe NULL) was on it. */
static void conn_fail(conn_t *conn, int err) {
    creq_t *r = conn_detach(conn);
    conn_close(conn, true);
    if (r) req_complete(r, err, NULL);
}

static bool stale_retry_ok(const conn_t *conn, const creq_t *r) {
    return r && conn->served > 0 && !conn->got_bytes && r->idempotent && !r->retried;
}

/* A reused connection died before answering: the server most likely closed it while it sat in
 * the pool, so an idempotent request is safely sent once more on a fresh connection. */
static void conn_lost(conn_t *conn, int err) {
    creq_t *r = conn->req;
    if (!stale_retry_ok(conn, r)) {
        conn_fail(conn, err);
        return;
    }
    conn_detach(conn);
    conn_close(conn, false); /* r takes over the freed slot */
    r->retried = true;
    r->force_fresh = true;
    req_reset_response(r);
    pool_dispatch(r->pool, r);
}

static void idle_timer_cb(uv_timer_t *t) {
    conn_close(t->data, true);
}

static void idle_push(conn_t *conn) {
    pool_t *p = conn->pool;
    conn->is_idle = true;
    conn->idle_prev = NULL;
    conn->idle_next = p->idle;
    if (p->idle) p->idle->idle_prev = conn;
    p->idle = conn;
}

/* The connection finished an exchange and may carry another: hand it to the oldest waiting
 * request, or park it on the idle stack with its idle timer running. */
static void conn_release(conn_t *conn) {
    pool_t *p = conn->pool;
    if (conn->c->closing) {
        conn_close(conn, false);
        return;
    }
    idle_push(conn);
    if (p->wait_head) {
        creq_t *r = p->wait_head;
        wait_remove(p, r);
        pool_dispatch(p, r); /* takes the connection just pushed */
        return;
    }
    uv_timer_start(&conn->timer, idle_timer_cb, conn->c->opts.idle_timeout_ms, 0);
}

static void finish_response(conn_t *conn) {
    creq_t *r = conn_detach(conn);
    conn->served++;
    /* A server may answer before it has read the whole request; while our write is still in
     * flight the connection cannot take another request. */
    if (r->keep_alive && !conn->writing)
        conn_release(conn);
    else
        conn_close(conn, true);
    req_deliver(r);
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
    conn_t *conn = h->data;
    *buf = uv_buf_init(conn->c->rbuf, READ_BUF_SIZE);
}

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
    conn_t *conn = s->data;
    if (conn->closing || nread == 0) return;
    creq_t *r = conn->req;
    if (nread < 0) {
        if (!r) {
            conn_close(conn, true); /* the server closed an idle connection */
            return;
        }
        if (!conn->got_bytes) {
            conn_lost(conn, SL_ECLOSED);
            return;
        }
        /* llhttp_finish completes a body delimited by the close (our on_message_complete makes
         * it return HPE_PAUSED, so look at the flag, not the code). */
        if (nread == UV_EOF) llhttp_finish(&conn->parser);
        if (r->complete) {
            r->keep_alive = false; /* a body delimited by the close */
            finish_response(conn);
            return;
        }
        conn_fail(conn, r->parse_err ? r->parse_err : SL_ECLOSED);
        return;
    }
    if (!r) {
        conn_close(conn, true); /* bytes nobody asked for: the connection is unusable */
        return;
    }
    conn->got_bytes = true;
    const char *end = buf->base + nread;
    llhttp_errno_t err = llhttp_execute(&conn->parser, buf->base, (size_t)nread);
    if (err == HPE_PAUSED && r->complete) {
        const char *pos = llhttp_get_error_pos(&conn->parser);
        if (pos && pos < end) r->keep_alive = false;
        finish_response(conn);
        return;
    }
    if (err != HPE_OK) conn_fail(conn, r->parse_err ? r->parse_err : SL_EPROTO);
}

static void write_cb(uv_write_t *w, int status) {
    conn_t *conn = w->data;
    creq_t *r = conn->writing;
    conn->writing = NULL;
    r->n_writes--;
    if (r->done) {
        req_maybe_free(r);
        return;
    }
    if (status < 0 && !conn->closing && conn->req == r) conn_lost(conn, SL_ECLOSED);
}

/* Sends r on an open connection. Returns 0 or a negative status (r is then detached). */
static int conn_send(conn_t *conn, creq_t *r) {
    conn->req = r;
    r->conn = conn;
    conn->got_bytes = false;
    llhttp_init(&conn->parser, HTTP_RESPONSE, &parser_settings);
    conn->parser.data = conn;
    uv_buf_t bufs[2] = {uv_buf_init(r->head.data, (unsigned)r->head.len),
                        uv_buf_init((char *)r->body, (unsigned)r->body_len)};
    conn->writing = r;
    conn->write_req.data = conn;
    int rc =
        uv_write(&conn->write_req, (uv_stream_t *)&conn->tcp, bufs, r->body_len ? 2 : 1, write_cb);
    if (rc < 0) {
        conn->writing = NULL;
        conn_detach(conn);
        return SL_ECLOSED;
    }
    r->n_writes++;
    return 0;
}

static conn_t *conn_new(pool_t *p, creq_t *r);
static int conn_connect(conn_t *conn, const struct sockaddr *addr);

static void connect_cb(uv_connect_t *cr, int status) {
    conn_t *conn = cr->data;
    if (conn->closing) return;
    if (status < 0) {
        int err = status == UV_ECONNREFUSED ? SL_ECONNREFUSED
                  : status == UV_ETIMEDOUT  ? SL_ETIMEOUT
                                            : SL_EIO;
        if (!conn->ai || !conn->ai->ai_next) {
            conn_fail(conn, err);
            return;
        }
        /* A name with several addresses ("localhost": ::1 then 127.0.0.1): try the next one on
         * a new socket, in the same pool slot. */
        creq_t *r = conn_detach(conn);
        struct addrinfo *head = conn->ai_head, *next = conn->ai->ai_next;
        conn->ai_head = NULL;
        conn_close(conn, false);
        conn_t *n2 = conn_new(r->pool, r);
        n2->ai_head = head;
        n2->ai = next;
        int rc = conn_connect(n2, next->ai_addr);
        if (rc < 0) conn_fail(n2, rc); /* not under request(): completing now is fine */
        return;
    }
    uv_timer_stop(&conn->timer);
    conn->connected = true;
    uv_tcp_nodelay(&conn->tcp, 1);
    int rc = uv_read_start((uv_stream_t *)&conn->tcp, alloc_cb, read_cb);
    creq_t *r = conn->req;
    if (rc == 0) rc = conn_send(conn, r);
    if (rc < 0) {
        conn_detach(conn);
        conn_close(conn, true);
        req_complete(r, SL_EIO, NULL);
    }
}

static int conn_connect(conn_t *conn, const struct sockaddr *addr) {
    conn->connect_req.data = conn;
    int rc = uv_tcp_connect(&conn->connect_req, &conn->tcp, addr, connect_cb);
    if (rc == UV_ECONNREFUSED) return SL_ECONNREFUSED;
    return rc < 0 ? SL_EIO : 0;
}

static void gai_cb(uv_getaddrinfo_t *g, int status, struct addrinfo *res) {
    gai_req_t *gr = SL_CONTAINER_OF(g, gai_req_t, r);
    conn_t *conn = gr->conn;
    free(gr);
    if (!conn) {
        if (res) uv_freeaddrinfo(res);
        return;
    }
    conn->gai = NULL;
    if (status < 0 || !res) {
        if (res) uv_freeaddrinfo(res);
        conn_fail(conn, SL_ERESOLVE);
        return;
    }
    conn->ai_head = conn->ai = res;
    int rc = conn_connect(conn, res->ai_addr);
    if (rc < 0) conn_fail(conn, rc);
}

static void connect_timer_cb(uv_timer_t *t) {
    conn_fail(t->data, SL_ETIMEOUT);
}

/* A new connection in pool p, carrying r, with its connect timer running. */
static conn_t *conn_new(pool_t *p, creq_t *r) {
    sl_http_client_t *c = r->c;
    conn_t *conn = sl_calloc(1, sizeof *conn);
    conn->c = c;
    conn->pool = p;
    uv_tcp_init(c->loop, &conn->tcp);
    uv_timer_init(c->loop, &conn->timer);
    conn->tcp.data = conn->timer.data = conn;
    conn->open_handles = 2;
    c->live++;
    p->n_conns++;
    conn->next = c->conns;
    if (c->conns) c->conns->prev = conn;
    c->conns = conn;
    conn->req = r;
    r->conn = conn;
    uv_timer_start(&conn->timer, connect_timer_cb, c->opts.connect_timeout_ms, 0);
    return conn;
}

/* Opens a new connection for r. Returns 0 or a negative status (nothing left open). */
static int conn_open(pool_t *p, creq_t *r) {
    conn_t *conn = conn_new(p, r);
    struct sockaddr_storage ss;
    int rc;
    if (uv_ip4_addr(p->host, p->port, (struct sockaddr_in *)&ss) == 0 ||
        uv_ip6_addr(p->host, p->port, (struct sockaddr_in6 *)&ss) == 0) {
        rc = conn_connect(conn, (struct sockaddr *)&ss); /* numeric: no resolver round trip */
    } else {
        gai_req_t *gr = sl_calloc(1, sizeof *gr);
        gr->conn = conn;
        conn->gai = gr;
        char port[8];
        snprintf(port, sizeof port, "%u", p->port);
        struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
        rc = uv_getaddrinfo(r->c->loop, &gr->r, gai_cb, p->host, port, &hints);
        if (rc < 0) {
            conn->gai = NULL;
            free(gr);
            rc = SL_ERESOLVE;
        }
    }
    if (rc < 0) {
        conn_detach(conn);
        conn_close(conn, false);
    }
    return rc;
}

/* ---- pools ------------------------------------------------------------------------------- */

static pool_t *pool_get(sl_http_client_t *c, const char *host, uint16_t port) {
    for (pool_t *p = c->pools; p; p = p->next) {
        if (p->port == port && strcasecmp(p->host, host) == 0) return p;
    }
    pool_t *p = sl_calloc(1, sizeof *p);
    p->host = sl_strdup(host);
    p->port = port;
    p->next = c->pools;
    c->pools = p;
    return p;
}

static void pool_dispatch(pool_t *p, creq_t *r) {
    sl_http_client_t *c = r->c;
    if (!r->force_fresh && p->idle) {
        conn_t *conn = p->idle;
        idle_remove(conn);
        uv_timer_stop(&conn->timer);
        if (conn_send(conn, r) < 0) {
            if (stale_retry_ok(conn, r)) {
                conn_close(conn, false);
                r->retried = r->force_fresh = true;
                pool_dispatch(p, r);
            } else {
                conn_close(conn, true);
                req_fail_later(r, SL_ECLOSED);
            }
        }
        return;
    }
    if (p->n_conns < c->opts.max_conns_per_host || r->force_fresh) {
        int rc = conn_open(p, r);
        if (rc < 0) req_fail_later(r, rc);
        return;
    }
    r->wait_next = NULL;
    r->queued = true;
    if (p->wait_tail)
        p->wait_tail->wait_next = r;
    else
        p->wait_head = r;
    p->wait_tail = r;
}

/* A slot or an idle connection became free: start the oldest waiting request. */
static void pool_kick(pool_t *p) {
    if (p->wait_head == NULL || p->wait_head->c->closing) return;
    if (!p->idle && p->n_conns >= p->wait_head->c->opts.max_conns_per_host) return;
    creq_t *r = p->wait_head;
    wait_remove(p, r);
    pool_dispatch(p, r);
}

static void req_timer_cb(uv_timer_t *t) {
    creq_t *r = t->data;
    int err = r->pending_err ? r->pending_err : SL_ETIMEOUT;
    conn_t *conn = r->conn;
    if (conn) {
        conn_detach(conn);
        conn_close(conn, true); /* half an exchange leaves the connection unusable */
    }
    req_complete(r, err, NULL);
}

/* ---- public API -------------------------------------------------------------------------- */

sl_http_client_t *sl_http_client_new(uv_loop_t *loop, const sl_http_client_opts_t *opts) {
    sl_http_client_t *c = sl_calloc(1, sizeof *c);
    c->loop = loop;
    if (opts) c->opts = *opts;
    if (!c->opts.connect_timeout_ms) c->opts.connect_timeout_ms = 1000;
    if (!c->opts.request_timeout_ms) c->opts.request_timeout_ms = 5000;
    if (!c->opts.idle_timeout_ms) c->opts.idle_timeout_ms = 30000;
    if (!c->opts.max_conns_per_host) c->opts.max_conns_per_host = 64;
    if (!c->opts.max_response_bytes) c->opts.max_response_bytes = 16u << 20;
    c->rbuf = sl_malloc(READ_BUF_SIZE);
    return c;
}

void sl_http_client_free(sl_http_client_t *c) {
    if (!c || c->closing) return;
    c->closing = true;
    c->live++; /* keep c alive while callbacks run */
    conn_t *conn;
    while ((conn = c->conns)) {
        conn_detach(conn);
        conn_close(conn, false);
    }
    /* Queued, in flight, or about to fail: every callback runs now, none after this returns. */
    while (c->reqs)
        req_complete(c->reqs, SL_ECANCELED, NULL);
    c->live--;
    maybe_free_client(c);
}

static bool is_tchar(unsigned char ch) {
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

static bool token_ok(const char *s, size_t n, size_t max) {
    if (n == 0 || n > max) return false;
    for (size_t i = 0; i < n; i++) {
        if (!is_tchar((unsigned char)s[i])) return false;
    }
    return true;
}

/* Visible ASCII and (for values) spaces and tabs; no CR, LF or NUL can get through. */
static bool text_ok(const char *s, size_t n, bool allow_space) {
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == ' ' || ch == '\t') {
            if (!allow_space) return false;
        } else if (ch < 0x21 || ch == 0x7f) {
            return false;
        }
    }
    return true;
}

static bool method_is(const char *m, const char *lit) {
    return strcmp(m, lit) == 0;
}

int sl_http_client_request(sl_http_client_t *c, const sl_http_client_req_t *req,
                           sl_http_client_cb cb, void *arg) {
    if (!c || !req || !cb || !req->method || !req->host || !req->path || req->port == 0)
        return SL_EINVAL;
    if (c->closing) return SL_ECANCELED;
    size_t hlen = strlen(req->host), plen = strlen(req->path);
    if (!token_ok(req->method, strlen(req->method), 32) || hlen == 0 || hlen > MAX_HOST_LEN ||
        !text_ok(req->host, hlen, false) || strpbrk(req->host, "/?#@[]") || plen == 0 ||
        plen > MAX_TARGET_LEN || !text_ok(req->path, plen, false) ||
        (req->path[0] != '/' && strcmp(req->path, "*") != 0) || (req->body_len > 0 && !req->body) ||
        req->body_len > UINT32_MAX)
        return SL_EINVAL;
    bool user_host = false, close_after = false;
    for (unsigned i = 0; i < req->n_headers; i++) {
        const sl_http_header_t *h = &req->headers[i];
        if (!h->name.ptr || !token_ok(h->name.ptr, h->name.len, 256) ||
            (h->value.len && !h->value.ptr) || !text_ok(h->value.ptr, h->value.len, true))
            return SL_EINVAL;
        /* Framing is ours: a caller's Content-Length or Transfer-Encoding could desync. */
        if (sl_str_ieq(h->name, "content-length") || sl_str_ieq(h->name, "transfer-encoding"))
            return SL_EINVAL;
        if (sl_str_ieq(h->name, "host")) user_host = true;
        if (sl_str_ieq(h->name, "connection") && sl_str_ieq(h->value, "close")) close_after = true;
    }

    creq_t *r = sl_calloc(1, sizeof *r);
    r->c = c;
    r->cb = cb;
    r->arg = arg;
    r->pool = pool_get(c, req->host, req->port);
    const char *m = req->method;
    r->is_head = method_is(m, "HEAD");
    r->idempotent = method_is(m, "GET") || r->is_head || method_is(m, "PUT") ||
                    method_is(m, "DELETE") || method_is(m, "OPTIONS");
    r->close_after = close_after;
    sl_buf_t *b = &r->head;
    sl_buf_printf(b, "%s %s HTTP/1.1\r\n", m, req->path);
    if (!user_host) {
        bool v6 = strchr(req->host, ':') != NULL;
        sl_buf_printf(b, v6 ? "Host: [%s]" : "Host: %s", req->host);
        if (req->port != 80) sl_buf_printf(b, ":%u", req->port);
        sl_buf_puts(b, "\r\n");
    }
    for (unsigned i = 0; i < req->n_headers; i++) {
        const sl_http_header_t *h = &req->headers[i];
        sl_buf_append(b, h->name.ptr, h->name.len);
        sl_buf_puts(b, ": ");
        sl_buf_append(b, h->value.ptr, h->value.len);
        sl_buf_puts(b, "\r\n");
    }
    if (req->body_len > 0 || method_is(m, "POST") || method_is(m, "PUT") || method_is(m, "PATCH"))
        sl_buf_printf(b, "Content-Length: %zu\r\n", req->body_len);
    sl_buf_puts(b, "\r\n");
    if (req->body_len) {
        r->body = sl_malloc(req->body_len);
        memcpy(r->body, req->body, req->body_len);
        r->body_len = req->body_len;
    }
    uv_timer_init(c->loop, &r->timer);
    r->timer.data = r;
    c->live++;
    r->all_next = c->reqs;
    if (c->reqs) c->reqs->all_prev = r;
    c->reqs = r;
    uv_timer_start(&r->timer, req_timer_cb,
                   req->timeout_ms ? req->timeout_ms : c->opts.request_timeout_ms, 0);
    pool_dispatch(r->pool, r);
    return 0;
}

int sl_http_url_parse(const char *url, char **host, uint16_t *port, char **path) {
    *host = *path = NULL;
    *port = 0;
    if (!url || strlen(url) > MAX_TARGET_LEN || strncasecmp(url, "http://", 7) != 0)
        return SL_EINVAL;
    const char *p = url + 7, *hs, *he;
    if (*p == '[') {
        hs = p + 1;
        he = strchr(hs, ']');
        if (!he) return SL_EINVAL;
        p = he + 1;
    } else {
        hs = p;
        while (*p && *p != ':' && *p != '/' && *p != '?' && *p != '#')
            p++;
        he = p;
    }
    size_t hlen = (size_t)(he - hs);
    if (hlen == 0 || hlen > MAX_HOST_LEN) return SL_EINVAL;
    char hbuf[MAX_HOST_LEN + 1];
    memcpy(hbuf, hs, hlen);
    hbuf[hlen] = '\0';
    if (hs[-1] == '[') {
        struct sockaddr_in6 sa6;
        if (uv_ip6_addr(hbuf, 0, &sa6) != 0) return SL_EINVAL;
    } else {
        for (size_t i = 0; i < hlen; i++) {
            unsigned char ch = (unsigned char)hbuf[i];
            if (!(ch == '-' || ch == '.' || ch == '_' || (ch >= '0' && ch <= '9') ||
                  ((ch | 0x20) >= 'a' && (ch | 0x20) <= 'z')))
                return SL_EINVAL; /* includes '@': credentials in URLs are not supported */
        }
    }
    unsigned long pv = 80;
    if (*p == ':') {
        p++;
        if (*p < '0' || *p > '9') return SL_EINVAL;
        pv = 0;
        while (*p >= '0' && *p <= '9') {
            pv = pv * 10 + (unsigned long)(*p++ - '0');
            if (pv > 65535) return SL_EINVAL;
        }
        if (pv == 0) return SL_EINVAL;
    }
    if (*p && *p != '/' && *p != '?') return SL_EINVAL;
    size_t plen = strcspn(p, "#"); /* the fragment never goes on the wire */
    if (!text_ok(p, plen, false)) return SL_EINVAL;
    if (plen == 0 || *p == '?') {
        char *pp = sl_malloc(plen + 2);
        pp[0] = '/';
        memcpy(pp + 1, p, plen);
        pp[plen + 1] = '\0';
        *path = pp;
    } else {
        *path = sl_strndup(p, plen);
    }
    *host = sl_strdup(hbuf);
    *port = (uint16_t)pv;
    return 0;
}

typedef struct fetch_state {
    sl_http_client_t *c;
    int rc;
    int status;
    sl_buf_t *out;
} fetch_state_t;

static void fetch_cb(int status, const sl_http_response_t *resp, void *arg) {
    fetch_state_t *st = arg;
    st->rc = status;
    if (status == 0) {
        st->status = resp->status;
        if (st->out) sl_buf_append(st->out, resp->body, resp->body_len);
    }
    /* Freeing here closes the pooled connection, so the private loop runs out of work. */
    sl_http_client_free(st->c);
    st->c = NULL;
}

int sl_http_fetch(const char *method, const char *url, const void *body, size_t body_len,
                  uint32_t timeout_ms, int *status_code, sl_buf_t *body_out) {
    char *host, *path;
    uint16_t port;
    int rc = sl_http_url_parse(url, &host, &port, &path);
    if (rc < 0) return rc;
    uv_loop_t loop;
    if (uv_loop_init(&loop) != 0) {
        free(host);
        free(path);
        return SL_EIO;
    }
    sl_http_client_opts_t opts = {.request_timeout_ms = timeout_ms,
                                  .connect_timeout_ms = timeout_ms};
    sl_http_client_t *c = sl_http_client_new(&loop, &opts);
    const sl_http_header_t json = {SL_STR("Content-Type"), SL_STR("application/json")};
    sl_http_client_req_t req = {.method = method ? method : "GET",
                                .host = host,
                                .port = port,
                                .path = path,
                                .headers = &json,
                                .n_headers = body_len ? 1 : 0,
                                .body = body,
                                .body_len = body_len};
    fetch_state_t st = {.c = c, .rc = SL_ECANCELED, .out = body_out};
    rc = sl_http_client_request(c, &req, fetch_cb, &st);
    if (rc < 0) sl_http_client_free(c);
    uv_run(&loop, UV_RUN_DEFAULT);
    if (rc == 0) rc = st.rc;
    uv_loop_close(&loop);
    free(host);
    free(path);
    if (rc == 0 && status_code) *status_code = st.status;
    return rc;
}
