/* Unit tests for the HTTP/1.1 client: a tiny scripted HTTP server on the same libuv loop (bound to
 * 127.0.0.1 port 0) answers the client in one of several modes. */
#include "core/buf.h"
#include "core/common.h"
#include "core/http_client.h"

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

/* ---- the scripted server ----------------------------------------------------------------- */

typedef enum {
    MODE_OK,          /* 200 with Content-Length, keep-alive */
    MODE_CHUNKED,     /* 200, chunked body "hello world" */
    MODE_SILENT,      /* reads, never answers */
    MODE_BIG,         /* 200 with a 4096-byte Content-Length body */
    MODE_BIG_CHUNKED, /* 200 with 4096 bytes in chunks */
    MODE_MALFORMED,   /* not HTTP */
    MODE_CLOSE,       /* Connection: close, then closes */
    MODE_EOF_BODY,    /* no length: body ends when the server closes */
    MODE_NO_CONTENT,  /* 204 (a body-less response that stays keep-alive) */
    MODE_HEAD,        /* Content-Length: 100 with no body (answer to HEAD) */
    MODE_INTERIM,     /* 100 Continue, then 200 */
} srv_mode_t;

typedef struct srv srv_t;
typedef struct sconn {
    uv_tcp_t tcp;
    srv_t *s;
    sl_buf_t in;
    struct sconn *next;
    bool closing;
} sconn_t;

struct srv {
    uv_loop_t *loop;
    uv_tcp_t listener;
    uint16_t port;
    srv_mode_t mode;
    unsigned accepted, live, max_live, requests;
    sconn_t *conns;
    char last_method[16];
    char last_head[1024];
};

static void sconn_closed(uv_handle_t *h) {
    sconn_t *sc = h->data;
    sc->s->live--;
    sl_buf_free(&sc->in);
    free(sc);
}

static void sconn_close(sconn_t *sc) {
    if (sc->closing) return;
    sc->closing = true;
    for (sconn_t **pp = &sc->s->conns; *pp; pp = &(*pp)->next) {
        if (*pp == sc) {
            *pp = sc->next;
            break;
        }
    }
    uv_close((uv_handle_t *)&sc->tcp, sconn_closed);
}

typedef struct {
    uv_write_t w;
    sconn_t *sc;
    bool close_after;
    char data[];
} swrite_t;

static void swrite_cb(uv_write_t *w, int status) {
    swrite_t *sw = (swrite_t *)w;
    if (sw->close_after) sconn_close(sw->sc);
    free(sw);
}

static void swrite(sconn_t *sc, const char *data, size_t n, bool close_after) {
    swrite_t *sw = malloc(sizeof *sw + n);
    memcpy(sw->data, data, n);
    sw->sc = sc;
    sw->close_after = close_after;
    uv_buf_t b = uv_buf_init(sw->data, (unsigned)n);
    assert_int_equal(uv_write(&sw->w, (uv_stream_t *)&sc->tcp, &b, 1, swrite_cb), 0);
}

static void respond(sconn_t *sc) {
    srv_t *s = sc->s;
    char buf[8192];
    int n = 0;
    switch (s->mode) {
    case MODE_OK: {
        char body[32];
        int bl = snprintf(body, sizeof body, "hello %u", s->requests);
        n = snprintf(buf, sizeof buf,
                     "HTTP/1.1 200 OK\r\nContent-Length: %d\r\nX-Req: %u\r\n\r\n%s", bl,
                     s->requests, body);
        break;
    }
    case MODE_CHUNKED:
        n = snprintf(buf, sizeof buf,
                     "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                     "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n");
        break;
    case MODE_SILENT:
        return;
    case MODE_BIG:
        n = snprintf(buf, sizeof buf, "HTTP/1.1 200 OK\r\nContent-Length: 4096\r\n\r\n");
        memset(buf + n, 'x', 4096);
        n += 4096;
        break;
    case MODE_BIG_CHUNKED:
        n = snprintf(buf, sizeof buf, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
        for (int i = 0; i < 8; i++) {
            n += snprintf(buf + n, sizeof buf - (size_t)n, "200\r\n");
            memset(buf + n, 'y', 512);
            n += 512;
            n += snprintf(buf + n, sizeof buf - (size_t)n, "\r\n");
        }
        n += snprintf(buf + n, sizeof buf - (size_t)n, "0\r\n\r\n");
        break;
    case MODE_MALFORMED:
        n = snprintf(buf, sizeof buf, "HTTP/1.1 abc Whatever\r\n\r\n");
        break;
    case MODE_CLOSE:
        n = snprintf(buf, sizeof buf,
                     "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok");
        swrite(sc, buf, (size_t)n, true);
        return;
    case MODE_EOF_BODY:
        n = snprintf(buf, sizeof buf, "HTTP/1.1 200 OK\r\n\r\nuntil the end");
        swrite(sc, buf, (size_t)n, true);
        return;
    case MODE_NO_CONTENT:
        n = snprintf(buf, sizeof buf, "HTTP/1.1 204 No Content\r\n\r\n");
        break;
    case MODE_HEAD:
        n = snprintf(buf, sizeof buf, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n");
        break;
    case MODE_INTERIM:
        n = snprintf(buf, sizeof buf,
                     "HTTP/1.1 100 Continue\r\nX-Req: interim\r\n\r\n"
                     "HTTP/1.1 201 Created\r\nX-Req: final\r\nContent-Length: 4\r\n\r\ndone");
        break;
    }
    swrite(sc, buf, (size_t)n, false);
}

/* Answers every complete request in the buffer (requests carry Content-Length or no body). */
static void sconn_process(sconn_t *sc) {
    for (;;) {
        char *end = sc->in.data ? strstr(sc->in.data, "\r\n\r\n") : NULL;
        if (!end) return;
        size_t head_len = (size_t)(end - sc->in.data) + 4;
        size_t body_len = 0;
        for (char *p = sc->in.data; p < end; p++) {
            if (strncasecmp(p, "\r\ncontent-length:", 17) == 0)
                body_len = strtoul(p + 17, NULL, 10);
        }
        if (sc->in.len < head_len + body_len) return;
        srv_t *s = sc->s;
        s->requests++;
        size_t ml = strcspn(sc->in.data, " ");
        snprintf(s->last_method, sizeof s->last_method, "%.*s", (int)ml, sc->in.data);
        snprintf(s->last_head, sizeof s->last_head, "%.*s", (int)head_len, sc->in.data);
        sl_buf_consume(&sc->in, head_len + body_len);
        respond(sc);
    }
}

static void salloc(uv_handle_t *h, size_t sz, uv_buf_t *b) {
    static char mem[65536];
    *b = uv_buf_init(mem, sizeof mem);
}

static void sread(uv_stream_t *st, ssize_t n, const uv_buf_t *b) {
    sconn_t *sc = st->data;
    if (n < 0) {
        sconn_close(sc);
        return;
    }
    sl_buf_append(&sc->in, b->base, (size_t)n);
    sconn_process(sc);
}

static void on_conn(uv_stream_t *l, int status) {
    srv_t *s = l->data;
    sconn_t *sc = calloc(1, sizeof *sc);
    sc->s = s;
    uv_tcp_init(s->loop, &sc->tcp);
    sc->tcp.data = sc;
    assert_int_equal(uv_accept(l, (uv_stream_t *)&sc->tcp), 0);
    sc->next = s->conns;
    s->conns = sc;
    s->accepted++;
    s->live++;
    if (s->live > s->max_live) s->max_live = s->live;
    uv_read_start((uv_stream_t *)&sc->tcp, salloc, sread);
}

static void srv_start(srv_t *s, uv_loop_t *loop, srv_mode_t mode) {
    memset(s, 0, sizeof *s);
    s->loop = loop;
    s->mode = mode;
    uv_tcp_init(loop, &s->listener);
    s->listener.data = s;
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", 0, &a);
    assert_int_equal(uv_tcp_bind(&s->listener, (struct sockaddr *)&a, 0), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&s->listener, 128, on_conn), 0);
    struct sockaddr_storage ss;
    int len = sizeof ss;
    uv_tcp_getsockname(&s->listener, (struct sockaddr *)&ss, &len);
    s->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

static void srv_close_conns(srv_t *s) {
    while (s->conns)
        sconn_close(s->conns);
}

static void srv_stop(srv_t *s) {
    srv_close_conns(s);
    uv_close((uv_handle_t *)&s->listener, NULL);
}

/* ---- harness ----------------------------------------------------------------------------- */

static void tick_cb(uv_timer_t *t) {}

/* Runs the loop until *flag becomes true or deadline_ms passes; returns *flag. */
static bool run_until(uv_loop_t *loop, const volatile bool *flag, uint64_t deadline_ms) {
    uv_timer_t tick;
    uv_timer_init(loop, &tick);
    uv_timer_start(&tick, tick_cb, 5, 5);
    uint64_t end = sl_now_ms() + deadline_ms;
    while (!*flag && sl_now_ms() < end)
        uv_run(loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&tick, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
    return *flag;
}

static void drain_loop(uv_loop_t *loop) {
    uv_run(loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(loop), 0); /* every handle closed: nothing leaked */
}

typedef struct result {
    bool done;
    int status;
    int code;
    char body[8192];
    size_t body_len;
    char x_req[16];
    unsigned n_headers;
    unsigned calls;
} result_t;

static void result_cb(int status, const sl_http_response_t *resp, void *arg) {
    result_t *r = arg;
    r->calls++;
    r->done = true;
    r->status = status;
    if (status == 0) {
        r->code = resp->status;
        r->body_len = SL_MIN(resp->body_len, sizeof r->body - 1);
        memcpy(r->body, resp->body, r->body_len);
        r->body[r->body_len] = '\0';
        r->n_headers = resp->n_headers;
        for (unsigned i = 0; i < resp->n_headers; i++) {
            if (sl_str_ieq(resp->headers[i].name, "x-req"))
                snprintf(r->x_req, sizeof r->x_req, "%.*s", (int)resp->headers[i].value.len,
                         resp->headers[i].value.ptr);
        }
    } else {
        assert_null(resp);
    }
}

static sl_http_client_req_t get_req(const srv_t *s, const char *method) {
    return (sl_http_client_req_t){
        .method = method, .host = "127.0.0.1", .port = s->port, .path = "/x"};
}

/* ---- tests ------------------------------------------------------------------------------- */

typedef struct chain {
    sl_http_client_t *c;
    srv_t *s;
    unsigned n;
    bool done;
    int statuses[3];
    char bodies[3][32];
} chain_t;

static void chain_cb(int status, const sl_http_response_t *resp, void *arg) {
    chain_t *ch = arg;
    ch->statuses[ch->n] = status == 0 ? resp->status : status;
    if (status == 0)
        snprintf(ch->bodies[ch->n], 32, "%.*s", (int)resp->body_len, (const char *)resp->body);
    if (++ch->n == 3) {
        ch->done = true;
        return;
    }
    sl_http_client_req_t req = get_req(ch->s, "GET");
    assert_int_equal(sl_http_client_request(ch->c, &req, chain_cb, ch), 0);
}

static void test_keepalive_reuse(void **state) {
    uv_loop_t loop;
    uv_loop_init(&loop);
    srv_t s;
    srv_start(&s, &loop, MODE_OK);
    sl_http_client_t *c = sl_http_client_new(&loop, NULL);
    chain_t ch = {.c = c, .s = &s};
    sl_http_client_req_t req = get_req(&s, "GET");
    assert_int_equal(sl_http_client_request(c, &req, chain_cb, &ch), 0);
    assert_true(run_until(&loop, &ch.done, 5000));
    for (int i = 0; i < 3; i++)
        assert_int_equal(ch.statuses[i], 200);
    assert_string_equal(ch.bodies[0], "hello 1");
    assert_string_equal(ch.bodies[2], "hello 3");
    assert_int_equal(s.accepted, 1); /* three requests, one connection */
    assert_non_null(strstr(s.last_head, "\r\nHost: 127.0.0.1:"));
    sl_http_client_free(c);
    srv_stop(&s);
    drain_loop(&loop);
}

static void run_one(srv_mode_t mode, const sl_http_client_opts_t *opts, const char *method,
                    result_t *r, srv_t *s_out) {
    uv_loop_t loop;
    uv_loop_init(&loop);
    srv_t s;
    srv_start(&s, &loop, mode);
    sl_http_client_t *c = sl_http_client_new(&loop, opts);
    memset(r, 0, sizeof *r);
    sl_http_client_req_t req = get_req(&s, method);
    assert_int_equal(sl_http_client_request(c, &req, result_cb, r), 0);
    assert_false(r->done); /* never called before request() returns */
    assert_true(run_until(&loop, &r->done, 5000));
    sl_http_client_free(c);
    srv_stop(&s);
    drain_loop(&loop);
    assert_int_equal(r->calls, 1);
    if (s_out) *s_out = s;
}

static void test_chunked(void **state) {
    result_t r;
    run_one(MODE_CHUNKED, NULL, "GET", &r, NULL);
    assert_int_equal(r.status, 0);
    assert_int_equal(r.code, 200);
    assert_string_equal(r.body, "hello world");
}

static void test_body_until_close(void **state) {
    result_t r;
    run_one(MODE_EOF_BODY, NULL, "GET", &r, NULL);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.body, "until the end");
}

static void test_head_and_204_have_no_body(void **state) {
    result_t r;
    run_one(MODE_HEAD, NULL, "HEAD", &r, NULL);
    assert_int_equal(r.status, 0);
    assert_int_equal(r.code, 200);
    assert_int_equal(r.body_len, 0);
    run_one(MODE_NO_CONTENT, NULL, "GET", &r, NULL);
    assert_int_equal(r.status, 0);
    assert_int_equal(r.code, 204);
    assert_int_equal(r.body_len, 0);
}

static void test_interim_response_skipped(void **state) {
    result_t r;
    run_one(MODE_INTERIM, NULL, "POST", &r, NULL);
    assert_int_equal(r.status, 0);
    assert_int_equal(r.code, 201);
    assert_string_equal(r.x_req, "final");
    assert_int_equal(r.n_headers, 2);
    assert_string_equal(r.body, "done");
}

typedef struct freer {
    sl_http_client_t *c;
    srv_t *s;
    int again;
    bool done;
} freer_t;

static void free_in_cb(int status, const sl_http_response_t *resp, void *arg) {
    freer_t *f = arg;
    sl_http_client_free(f->c);
    sl_http_client_req_t req = get_req(f->s, "GET");
    f->again = sl_http_client_request(f->c, &req, result_cb, NULL);
    f->done = true;
}

static void test_free_from_callback(void **state) {
    uv_loop_t loop;
    uv_loop_init(&loop);
    srv_t s;
    srv_start(&s, &loop, MODE_OK);
    sl_http_client_t *c = sl_http_client_new(&loop, NULL);
    freer_t f = {.c = c, .s = &s};
    sl_http_client_req_t req = get_req(&s, "GET");
    assert_int_equal(sl_http_client_request(c, &req, free_in_cb, &f), 0);
    assert_true(run_until(&loop, &f.done, 5000));
    assert_int_equal(f.again, SL_ECANCELED); /* the client is going away */
    srv_stop(&s);
    drain_loop(&loop); /* the client's memory and handles are gone too (ASan checks) */
}

static void test_malformed_is_eproto(void **state) {
    result_t r;
    run_one(MODE_MALFORMED, NULL, "GET", &r, NULL);
    assert_int_equal(r.status, SL_EPROTO);
}

static void test_response_too_big(void **state) {
    sl_http_client_opts_t o = {.max_response_bytes = 1024};
    result_t r;
    run_one(MODE_BIG, &o, "GET", &r, NULL);
    assert_int_equal(r.status, SL_ELIMIT);
    run_one(MODE_BIG_CHUNKED, &o, "GET", &r, NULL);
    assert_int_equal(r.status, SL_ELIMIT);
    o.max_response_bytes = 4096; /* exactly at the limit is fine */
    run_one(MODE_BIG, &o, "GET", &r, NULL);
    assert_int_equal(r.status, 0);
    assert_int_equal(r.body_len, 4096);
}

static void test_request_timeout(void **state) {
    uv_loop_t loop;
    uv_loop_init(&loop);
    srv_t s;
    srv_start(&s, &loop, MODE_SILENT);
    sl_http_client_t *c = sl_http_client_new(&loop, NULL);
    result_t r = {0};
    sl_http_client_req_t req = get_req(&s, "GET");
    req.timeout_ms = 200;
    uint64_t t0 = sl_now_ms();
    assert_int_equal(sl_http_client_request(c, &req, result_cb, &r), 0);
    assert_true(run_until(&loop, &r.done, 5000));
    uint64_t took = sl_now_ms() - t0;
    assert_int_equal(r.status, SL_ETIMEOUT);
    assert_true(took >= 190 && took < 2000);
    assert_int_equal(s.requests, 1); /* it was sent; the server just never answered */
    sl_http_client_free(c);
    srv_stop(&s);
    drain_loop(&loop);
}

static uint16_t closed_port(uv_loop_t *loop) {
    uv_tcp_t t;
    uv_tcp_init(loop, &t);
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", 0, &a);
    assert_int_equal(uv_tcp_bind(&t, (struct sockaddr *)&a, 0), 0);
    struct sockaddr_storage ss;
    int len = sizeof ss;
    uv_tcp_getsockname(&t, (struct sockaddr *)&ss, &len);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
    return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

static void test_connect_refused(void **state) {
    uv_loop_t loop;
    uv_loop_init(&loop);
    sl_http_client_t *c = sl_http_client_new(&loop, NULL);
    result_t r = {0};
    sl_http_client_req_t req = {
        .method = "GET", .host = "127.0.0.1", .port = closed_port(&loop), .path = "/"};
    assert_int_equal(sl_http_client_request(c, &req, result_cb, &r), 0);
    assert_true(run_until(&loop, &r.done, 5000));
    assert_int_equal(r.status, SL_ECONNREFUSED);
    sl_http_client_free(c);
    drain_loop(&loop);
}

/* A listening socket nobody accepts from, with its accept queue filled: further SYNs go
 * unanswered, so a connect hangs until the client's connect timeout. */
static void test_connect_timeout(void **state) {
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", 0, &a);
    assert_int_equal(bind(l, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(l, 0), 0);
    socklen_t alen = sizeof a;
    getsockname(l, (struct sockaddr *)&a, &alen);
    int fill[3];
    for (int i = 0; i < 3; i++) {
        fill[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        connect(fill[i], (struct sockaddr *)&a, sizeof a);
    }
    uv_loop_t loop;
    uv_loop_init(&loop);
    sl_http_client_opts_t o = {.connect_timeout_ms = 150};
    sl_http_client_t *c = sl_http_client_new(&loop, &o);
    result_t r = {0};
    sl_http_client_req_t req = {
        .method = "GET", .host = "127.0.0.1", .port = ntohs(a.sin_port), .path = "/"};
    uint64_t t0 = sl_now_ms();
    assert_int_equal(sl_http_client_request(c, &req, result_cb, &r), 0);
    assert_true(run_until(&loop, &r.done, 5000));
    uint64_t took = sl_now_ms() - t0;
    assert_int_equal(r.status, SL_ETIMEOUT);
    if (!(took >= 140 && took < 1000)) fail_msg("took %llu ms", (unsigned long long)took);
    sl_http_client_free(c);
    drain_loop(&loop);
    for (int i = 0; i < 3; i++)
        close(fill[i]);
    close(l);
}

typedef struct stale {
    sl_http_client_t *c;
    srv_t *s;
    const char *second_method;
    result_t first, second;
} stale_t;

static void stale_first_cb(int status, const sl_http_response_t *resp, void *arg) {
    stale_t *st = arg;
    result_cb(status, resp, &st->first);
    /* The server drops the keep-alive connection just as the next request goes out on it. */
    srv_close_conns(st->s);
    sl_http_client_req_t req = get_req(st->s, st->second_method);
    assert_int_equal(sl_http_client_request(st->c, &req, result_cb, &st->second), 0);
}

static void run_stale(const char *method, stale_t *st, srv_t *s) {
    uv_loop_t loop;
    uv_loop_init(&loop);
    srv_start(s, &loop, MODE_OK);
    sl_http_client_t *c = sl_http_client_new(&loop, NULL);
    *st = (stale_t){.c = c, .s = s, .second_method = method};
    sl_http_client_req_t req = get_req(s, "GET");
    assert_int_equal(sl_http_client_request(c, &req, stale_first_cb, st), 0);
    assert_true(run_until(&loop, &st->second.done, 5000));
    sl_http_client_free(c);
    srv_stop(s);
    drain_loop(&loop);
}

static void test_stale_pooled_conn_is_retried(void **state) {
    stale_t st;
    srv_t s;
    run_stale("GET", &st, &s);
    assert_int_equal(st.first.code, 200);
    assert_int_equal(st.second.status, 0);
    assert_int_equal(st.second.code, 200);
    assert_int_equal(s.accepted, 2); /* the retry went out on a fresh connection */
    assert_int_equal(s.requests, 2);
}

static void test_stale_post_not_retried(void **state) {
    stale_t st;
    srv_t s;
    run_stale("POST", &st, &s);
    assert_int_equal(st.first.code, 200);
    assert_int_equal(st.second.status, SL_ECLOSED);
    assert_int_equal(s.accepted, 1);
}

static void test_idle_timeout_closes(void **state) {
    uv_loop_t loop;
    uv_loop_init(&loop);
    srv_t s;
    srv_start(&s, &loop, MODE_OK);
    sl_http_client_opts_t o = {.idle_timeout_ms = 50};
    sl_http_client_t *c = sl_http_client_new(&loop, &o);
    result_t r = {0};
    sl_http_client_req_t req = get_req(&s, "GET");
    assert_int_equal(sl_http_client_request(c, &req, result_cb, &r), 0);
    assert_true(run_until(&loop, &r.done, 5000));
    assert_int_equal(s.live, 1);
    volatile bool gone = false;
    uint64_t end = sl_now_ms() + 5000;
    while (!gone && sl_now_ms() < end) {
        bool f = false;
        run_until(&loop, &f, 10);
        gone = s.live == 0;
    }
    assert_true(gone); /* the client closed its idle connection */
    r = (result_t){0};
    assert_int_equal(sl_http_client_request(c, &req, result_cb, &r), 0);
    assert_true(run_until(&loop, &r.done, 5000));
    assert_int_equal(r.code, 200);
    assert_int_equal(s.accepted, 2);
    sl_http_client_free(c);
    srv_stop(&s);
    drain_loop(&loop);
}

static void test_connection_close_honoured(void **state) {
    uv_loop_t loop;
    uv_loop_init(&loop);
    srv_t s;
    srv_start(&s, &loop, MODE_CLOSE);
    sl_http_client_t *c = sl_http_client_new(&loop, NULL);
    for (int i = 0; i < 2; i++) {
        result_t r = {0};
        sl_http_client_req_t req = get_req(&s, "GET");
        assert_int_equal(sl_http_client_request(c, &req, result_cb, &r), 0);
        assert_true(run_until(&loop, &r.done, 5000));
        assert_int_equal(r.status, 0);
        assert_string_equal(r.body, "ok");
    }
    assert_int_equal(s.accepted, 2);
    sl_http_client_free(c);
    srv_stop(&s);
    drain_loop(&loop);
}

typedef struct many {
    unsigned done_n, ok_n;
    bool all;
} many_t;

static void many_cb(int status, const sl_http_response_t *resp, void *arg) {
    many_t *m = arg;
    if (status == 0 && resp->status == 200) m->ok_n++;
    if (++m->done_n == 10) m->all = true;
}

static void test_queue_over_cap(void **state) {
    uv_loop_t loop;
    uv_loop_init(&loop);
    srv_t s;
    srv_start(&s, &loop, MODE_OK);
    sl_http_client_opts_t o = {.max_conns_per_host = 2};
    sl_http_client_t *c = sl_http_client_new(&loop, &o);
    many_t m = {0};
    for (int i = 0; i < 10; i++) {
        sl_http_client_req_t req = get_req(&s, i % 2 ? "GET" : "POST");
        req.body = "{}";
        req.body_len = i % 2 ? 0 : 2;
        assert_int_equal(sl_http_client_request(c, &req, many_cb, &m), 0);
    }
    assert_true(run_until(&loop, &m.all, 5000));
    assert_int_equal(m.ok_n, 10);
    assert_int_equal(s.requests, 10);
    assert_int_equal(s.accepted, 2);
    assert_true(s.max_live <= 2);
    sl_http_client_free(c);
    srv_stop(&s);
    drain_loop(&loop);
}

static void test_free_cancels_pending(void **state) {
    uv_loop_t loop;
    uv_loop_init(&loop);
    srv_t s;
    srv_start(&s, &loop, MODE_SILENT);
    sl_http_client_opts_t o = {.max_conns_per_host = 1};
    sl_http_client_t *c = sl_http_client_new(&loop, &o);
    result_t a = {0}, b = {0};
    sl_http_client_req_t req = get_req(&s, "GET");
    assert_int_equal(sl_http_client_request(c, &req, result_cb, &a), 0);
    assert_int_equal(sl_http_client_request(c, &req, result_cb, &b), 0); /* queued */
    bool f = false;
    while (s.requests == 0)
        run_until(&loop, &f, 10);
    sl_http_client_free(c);
    assert_int_equal(a.status, SL_ECANCELED);
    assert_int_equal(b.status, SL_ECANCELED);
    assert_int_equal(a.calls + b.calls, 2);
    srv_stop(&s);
    drain_loop(&loop);
}

static void test_name_resolution(void **state) {
    uv_loop_t loop;
    uv_loop_init(&loop);
    srv_t s;
    srv_start(&s, &loop, MODE_OK);
    sl_http_client_t *c = sl_http_client_new(&loop, NULL);
    result_t r = {0};
    /* "localhost" may resolve to ::1 first; the server only listens on 127.0.0.1, so this also
     * checks that the next address is tried. */
    sl_http_client_req_t req = {.method = "GET", .host = "localhost", .port = s.port, .path = "/"};
    assert_int_equal(sl_http_client_request(c, &req, result_cb, &r), 0);
    assert_true(run_until(&loop, &r.done, 5000));
    assert_int_equal(r.status, 0);
    assert_int_equal(r.code, 200);
    assert_non_null(strstr(s.last_head, "\r\nHost: localhost:"));
    sl_http_client_free(c);
    srv_stop(&s);
    drain_loop(&loop);
}

static void test_invalid_requests(void **state) {
    uv_loop_t loop;
    uv_loop_init(&loop);
    sl_http_client_t *c = sl_http_client_new(&loop, NULL);
    result_t r = {0};
    sl_http_header_t inj = {SL_STR("X-A"), SL_STR("b\r\nEvil: 1")};
    sl_http_header_t cl = {SL_STR("Content-Length"), SL_STR("5")};
    sl_http_client_req_t req = {.method = "GET", .host = "127.0.0.1", .port = 80, .path = "/"};
    req.headers = &inj;
    req.n_headers = 1;
    assert_int_equal(sl_http_client_request(c, &req, result_cb, &r), SL_EINVAL);
    req.headers = &cl;
    assert_int_equal(sl_http_client_request(c, &req, result_cb, &r), SL_EINVAL);
    req.n_headers = 0;
    req.path = "/a b";
    assert_int_equal(sl_http_client_request(c, &req, result_cb, &r), SL_EINVAL);
    req.path = "/";
    req.method = "GE T";
    assert_int_equal(sl_http_client_request(c, &req, result_cb, &r), SL_EINVAL);
    req.method = "GET";
    req.port = 0;
    assert_int_equal(sl_http_client_request(c, &req, result_cb, &r), SL_EINVAL);
    assert_int_equal(r.calls, 0);
    sl_http_client_free(c);
    drain_loop(&loop);
}

static void test_url_parse(void **state) {
    char *host, *path;
    uint16_t port;
    assert_int_equal(sl_http_url_parse("http://example.com", &host, &port, &path), 0);
    assert_string_equal(host, "example.com");
    assert_int_equal(port, 80);
    assert_string_equal(path, "/");
    free(host);
    free(path);
    assert_int_equal(
        sl_http_url_parse("http://10.0.0.1:4318/v1/traces?x=1#frag", &host, &port, &path), 0);
    assert_string_equal(host, "10.0.0.1");
    assert_int_equal(port, 4318);
    assert_string_equal(path, "/v1/traces?x=1");
    free(host);
    free(path);
    assert_int_equal(sl_http_url_parse("HTTP://[::1]:8080/readyz", &host, &port, &path), 0);
    assert_string_equal(host, "::1");
    assert_int_equal(port, 8080);
    assert_string_equal(path, "/readyz");
    free(host);
    free(path);
    const char *bad[] = {"https://example.com/", "ftp://x",
                         "example.com",          "http://",
                         "http://:80/",          "http://host:0/",
                         "http://host:65536/",   "http://host:x/",
                         "http://[::1/",         "http://[zz]:1/",
                         "http://user@host/",    "http://h/a b",
                         "http://host:80x/",     NULL};
    for (int i = 0; bad[i]; i++) {
        host = path = (char *)1;
        assert_int_equal(sl_http_url_parse(bad[i], &host, &port, &path), SL_EINVAL);
        assert_null(host);
        assert_null(path);
    }
}

typedef struct bg {
    uv_loop_t loop;
    uv_async_t stop;
    srv_t s;
    pthread_t th;
} bg_t;

static void bg_stop_cb(uv_async_t *a) {
    bg_t *bg = a->data;
    srv_stop(&bg->s);
    uv_close((uv_handle_t *)a, NULL);
}

static void *bg_main(void *arg) {
    bg_t *bg = arg;
    uv_run(&bg->loop, UV_RUN_DEFAULT);
    return NULL;
}

static void test_fetch_blocking(void **state) {
    bg_t *bg = calloc(1, sizeof *bg);
    uv_loop_init(&bg->loop);
    srv_start(&bg->s, &bg->loop, MODE_CHUNKED);
    uv_async_init(&bg->loop, &bg->stop, bg_stop_cb);
    bg->stop.data = bg;
    pthread_create(&bg->th, NULL, bg_main, bg);

    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%u/healthz", bg->s.port);
    sl_buf_t body = SL_BUF_INIT;
    int code = 0;
    uint64_t t0 = sl_now_ms();
    assert_int_equal(sl_http_fetch("GET", url, NULL, 0, 2000, &code, &body), 0);
    assert_true(sl_now_ms() - t0 < 1000); /* returns as soon as the answer is in */
    assert_int_equal(code, 200);
    assert_string_equal(body.data, "hello world");
    sl_buf_reset(&body);
    assert_int_equal(sl_http_fetch("POST", url, "{}", 2, 2000, &code, &body), 0);
    assert_int_equal(code, 200);
    assert_int_equal(sl_http_fetch("GET", "https://x/", NULL, 0, 2000, &code, &body), SL_EINVAL);
    uv_async_send(&bg->stop);
    pthread_join(bg->th, NULL);
    drain_loop(&bg->loop);
    snprintf(url, sizeof url, "http://127.0.0.1:%u/", bg->s.port); /* nobody listens now */
    assert_int_equal(sl_http_fetch("GET", url, NULL, 0, 2000, &code, &body), SL_ECONNREFUSED);
    sl_buf_free(&body);
    free(bg);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keepalive_reuse),
        cmocka_unit_test(test_chunked),
        cmocka_unit_test(test_body_until_close),
        cmocka_unit_test(test_head_and_204_have_no_body),
        cmocka_unit_test(test_interim_response_skipped),
        cmocka_unit_test(test_free_from_callback),
        cmocka_unit_test(test_malformed_is_eproto),
        cmocka_unit_test(test_response_too_big),
        cmocka_unit_test(test_request_timeout),
        cmocka_unit_test(test_connect_refused),
        cmocka_unit_test(test_connect_timeout),
        cmocka_unit_test(test_stale_pooled_conn_is_retried),
        cmocka_unit_test(test_stale_post_not_retried),
        cmocka_unit_test(test_idle_timeout_closes),
        cmocka_unit_test(test_connection_close_honoured),
        cmocka_unit_test(test_queue_over_cap),
        cmocka_unit_test(test_free_cancels_pending),
        cmocka_unit_test(test_name_resolution),
        cmocka_unit_test(test_invalid_requests),
        cmocka_unit_test(test_url_parse),
        cmocka_unit_test(test_fetch_blocking),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
