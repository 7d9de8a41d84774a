/* The global rate limiter: the buckets and daily quota counters of ratelimit.h kept in Redis, so
 * that every gateway replica enforces one limit. Each check is one Lua script (EVALSHA) that
 * refills and spends the bucket and the quota atomically, with the same integer arithmetic as
 * the local limiter; request validation and the result's fields are the local limiter's own
 * (sl_rl__plan / sl_rl__result). Asynchronous on hiredis + libuv: one connection per uv loop,
 * made lazily, pipelined, with per-check timeouts, reconnect backoff and fail open/closed. */
#include "gateway/ratelimit.h"

#include "core/log.h"

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PREFIX_MAX     64
#define HOST_MAX       255
#define PASSWORD_MAX   512
#define TIMEOUT_MAX_MS 60000u
#define BACKOFF_MIN_MS 100u
#define BACKOFF_MAX_MS 2000u
#define CONNECT_MIN_MS 1000u  /* a connect not done in max(this, 2 x timeout) is abandoned */
#define STALL_MIN_MS   1000u  /* no reply for max(this, 10 x timeout) with checks out: drop */
#define INFLIGHT_MAX   65536u /* checks per loop in flight; more fail fast (SL_ELIMIT) */
#define QUOTA_MAX      (1ull << 50)
#define IDLE_MAX_MS    (30ull * 86400 * 1000)
#define QUOTA_MARGIN_S 3600 /* a day's counter outlives its day by this (clock skew) */
#define ARGV_MAX       15
#define CHECK_BUF      1024

/* KEYS[1] the bucket, KEYS[2] (optional) today's quota counter. ARGV: now (s, ns), rate (units
 * of 1e-12 token per ns, i.e. milli-tokens/s), burst, cost, quota, quota key TTL (s), the slowest
 * rate and the largest burst of the class (how long a refill may take), idle TTL (ms).
 *
 * Lua numbers are doubles, so the local limiter's 1e-12-token units (up to 1e18) are split into
 * whole tokens t (<= 1e6) and a fraction f (< 1e12 units), and time into seconds and ns. Every
 * intermediate stays below 2^53, so the refill is the local limiter's exactly: val = min(cap,
 * val + dt * rate), nothing when time did not advance. A bucket is stored as "t f s ns" (its
 * level at time s.ns). All reads come first and the writes last, so a failing script changes
 * nothing; deny-by-quota spends no bucket token, as in the local limiter. */
static const char SCRIPT[] =
    "local function idiv(a, b)\n"
    "  local q = math.floor(a / b)\n"
    "  local r = a - q * b\n"
    "  if r < 0 then q = q - 1; r = r + b elseif r >= b then q = q + 1; r = r - b end\n"
    "  return q, r\n"
    "end\n"
    "local now_s, now_n = tonumber(ARGV[1]), tonumber(ARGV[2])\n"
    "local rate, cap, cost = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])\n"
    "local t, f, ls, ln = cap, 0, now_s, now_n\n"
    "local st = redis.call('GET', KEYS[1])\n"
    "if st then\n"
    "  local a, b, c, d = string.match(st, '^(%d+) (%d+) (%d+) (%d+)$')\n"
    "  if a then t, f, ls, ln = tonumber(a), tonumber(b), tonumber(c), tonumber(d) end\n"
    "end\n"
    "if t >= cap then t, f = cap, 0 end\n"
    "if now_s > ls or (now_s == ls and now_n > ln) then\n"
    "  if rate > 0 and t < cap then\n"
    "    local ds, dn = now_s - ls, now_n - ln\n"
    "    if dn < 0 then ds = ds - 1; dn = dn + 1e9 end\n"
    "    if ds >= (cap - t) * 1000 / rate + 1 then\n"
    "      t, f = cap, 0\n"
    "    else\n"
    "      local q1, r1 = idiv(ds * rate, 1000)\n"
    "      local dh, dl = idiv(dn, 1000)\n"
    "      local q2, r2 = idiv(dh * rate, 1e9)\n"
    "      local q3, r3 = idiv(f + r1 * 1e9 + r2 * 1000 + dl * rate, 1e12)\n"
    "      t, f = t + q1 + q2 + q3, r3\n"
    "      if t >= cap then t, f = cap, 0 end\n"
    "    end\n"
    "  end\n"
    "  ls, ln = now_s, now_n\n"
    "end\n"
    "local ok = t >= cost\n"
    "local used = 0\n"
    "if #KEYS > 1 then\n"
    "  used = tonumber(redis.call('GET', KEYS[2]) or '0') or 0\n"
    "  if used + cost > tonumber(ARGV[6]) then ok = false end\n"
    "end\n"
    "local rmin, cmax = tonumber(ARGV[8]), tonumber(ARGV[9])\n"
    "if ok then\n"
    "  t = t - cost\n"
    "  if #KEYS > 1 then\n"
    "    used = used + cost\n"
    "    redis.call('SET', KEYS[2], string.format('%.0f', used), 'EX', ARGV[7])\n"
    "  end\n"
    "end\n"
    "local ttl = 604800000\n"
    "if t >= cmax then ttl = 0\n"
    "elseif rmin > 0 then ttl = math.min(ttl, math.ceil(((cmax - t) * 1e12 - f) / rmin / 1e6)) "
    "end\n"
    "redis.call('SET', KEYS[1], string.format('%.0f %.0f %.0f %.0f', t, f, ls, ln), 'PX',\n"
    "           string.format('%.0f', ttl + tonumber(ARGV[10])))\n"
    "return {ok and 1 or 0, t, f, used}\n";

typedef struct rl_redis rl_redis_t;
typedef struct rconn rconn_t;

/* One check, from sl_rl_check_async until done has run and hiredis no longer holds it. */
typedef struct rcheck {
    struct rcheck *prev, *next; /* the connection's pending list, in deadline order */
    rconn_t *conn;
    sl_rl__plan_t plan; /* quota_id cleared: the request's strings are gone after the call */
    sl_rl_done_cb done;
    void *arg;
    uint64_t deadline; /* uv_now() ms */
    int status;        /* the error the timer answers with: SL_ETIMEOUT, or a fail-fast one */
    bool in_redis;     /* hiredis holds it; its reply callback frees it */
    bool answered;     /* done has run */
    bool eval_sent;    /* NOSCRIPT: resent as EVAL once */
    bool listed;       /* on the pending list */
    int argc;
    const char *argv[ARGV_MAX];
    size_t argvlen[ARGV_MAX];
    char buf[CHECK_BUF];
} rcheck_t;

typedef enum { CONN_DOWN, CONN_CONNECTING, CONN_READY } conn_state_t;

/* The connection of one uv loop; touched only on that loop's thread (the list link under mu). */
struct rconn {
    rconn_t *next;
    rl_redis_t *r;
    uv_loop_t *loop;
    redisAsyncContext *ac; /* NULL while down */
    conn_state_t state;
    bool closing;
    bool replied;      /* this connection has answered a check: it was healthy */
    uint64_t retry_at; /* down: no reconnect before this */
    uint32_t backoff_ms;
    uint64_t connect_deadline;
    uint64_t quiet_since; /* the last reply, or the first send after none were out */
    size_t inflight;      /* checks hiredis holds */
    rcheck_t *head, *tail;
    uv_timer_t timer;
};

struct rl_redis {
    sl_rl__conf_t *conf;
    char host[HOST_MAX + 1];
    int port;
    char password[PASSWORD_MAX + 1]; /* "" : none */
    char prefix[PREFIX_MAX + 1];
    size_t prefix_len;
    uint32_t timeout_ms;
    bool fail_open;
    char sha[41];
    pthread_mutex_t mu;
    rconn_t *conns;
    _Atomic uint64_t allowed, denied, errors;
};

/* ---- pending list and timer ---- */

static void pending_unlink(rconn_t *c, rcheck_t *k) {
    if (!k->listed) return;
    if (k->prev)
        k->prev->next = k->next;
    else
        c->head = k->next;
    if (k->next)
        k->next->prev = k->prev;
    else
        c->tail = k->prev;
    k->prev = k->next = NULL;
    k->listed = false;
}

static void pending_push(rconn_t *c, rcheck_t *k, bool at_head) {
    k->listed = true;
    if (at_head) {
        k->prev = NULL;
        k->next = c->head;
        if (c->head)
            c->head->prev = k;
        else
            c->tail = k;
        c->head = k;
    } else {
        k->next = NULL;
        k->prev = c->tail;
        if (c->tail)
            c->tail->next = k;
        else
            c->head = k;
        c->tail = k;
    }
}

static uint64_t stall_ms(const rl_redis_t *r) {
    return SL_MAX(STALL_MIN_MS, 10ull * r->timeout_ms);
}

static void on_timer(uv_timer_t *t);

/* Arms the timer for the earliest of: the first pending deadline, the connect deadline, the
 * stall deadline. Called when one of them may have moved earlier; a wake-up that finds nothing
 * due just re-arms. */
static void conn_arm(rconn_t *c) {
    uint64_t wake = UINT64_MAX;
    if (c->head) wake = c->head->deadline;
    if (c->state == CONN_CONNECTING) wake = SL_MIN(wake, c->connect_deadline);
    if (c->state == CONN_READY && c->inflight > 0)
        wake = SL_MIN(wake, c->quiet_since + stall_ms(c->r));
    if (wake == UINT64_MAX) {
        uv_timer_stop(&c->timer);
        return;
    }
    uint64_t now = uv_now(c->loop);
    uv_timer_start(&c->timer, on_timer, wake > now ? wake - now : 0, 0);
}

/* ---- answers ---- */

static void answer_error(rcheck_t *k, int status) {
    rl_redis_t *r = k->conn->r;
    sl_rl_result_t res;
    memset(&res, 0, sizeof res);
    res.allowed = r->fail_open;
    if (!res.allowed) res.retry_after_s = 1;
    atomic_fetch_add_explicit(&r->errors, 1, memory_order_relaxed);
    k->answered = true;
    k->done(status, &res, k->arg);
}

/* Answers k with status from the loop (never inside sl_rl_check_async: a done that starts a new
 * check must not recurse). */
static void fail_soon(rconn_t *c, rcheck_t *k, int status) {
    k->status = status;
    k->deadline = 0;
    pending_push(c, k, true);
    conn_arm(c);
}

/* ---- hiredis on libuv ---- */

/* hiredis's event hooks on a uv_poll_t. Not hiredis 0.14's adapters/libuv.h: it ignores the
 * error status libuv reports for POLLERR (and libuv then stops the handle), so a refused connect
 * or a reset connection would go unnoticed until a timeout. Here an error lets hiredis read or
 * write, which finds the socket's error and fails the connection. */
typedef struct rpoll {
    uv_poll_t handle;
    redisAsyncContext *ac; /* NULL once hiredis cleaned up */
    int events;
} rpoll_t;

static void rpoll_cb(uv_poll_t *h, int status, int events) {
    rpoll_t *p = h->data;
    if (status < 0) events = p->events;
    if (p->ac && (events & UV_READABLE)) redisAsyncHandleRead(p->ac);
    if (p->ac && (events & UV_WRITABLE)) redisAsyncHandleWrite(p->ac);
}

static void rpoll_update(rpoll_t *p, int add, int del) {
    p->events = (p->events | add) & ~del;
    if (p->events)
        uv_poll_start(&p->handle, p->events, rpoll_cb);
    else
        uv_poll_stop(&p->handle);
}

static void rpoll_add_read(void *p) {
    rpoll_update(p, UV_READABLE, 0);
}
static void rpoll_del_read(void *p) {
    rpoll_update(p, 0, UV_READABLE);
}
static void rpoll_add_write(void *p) {
    rpoll_update(p, UV_WRITABLE, 0);
}
static void rpoll_del_write(void *p) {
    rpoll_update(p, 0, UV_WRITABLE);
}

static void rpoll_closed(uv_handle_t *h) {
    free(h->data);
}

static void rpoll_cleanup(void *arg) {
    rpoll_t *p = arg;
    p->ac = NULL;
    uv_close((uv_handle_t *)&p->handle, rpoll_closed);
}

static int rpoll_attach(redisAsyncContext *ac, uv_loop_t *loop) {
    rpoll_t *p = sl_calloc(1, sizeof *p);
    if (uv_poll_init(loop, &p->handle, ac->c.fd) != 0) {
        free(p);
        return -1;
    }
    p->handle.data = p;
    p->ac = ac;
    ac->ev.data = p;
    ac->ev.addRead = rpoll_add_read;
    ac->ev.delRead = rpoll_del_read;
    ac->ev.addWrite = rpoll_add_write;
    ac->ev.delWrite = rpoll_del_write;
    ac->ev.cleanup = rpoll_cleanup;
    return 0;
}

/* ---- the connection ---- */

/* A connection that had answered checks may be re-made at once (Redis closing idle clients
 * must not fail the next request); any other failure waits out a doubling backoff. */
static void conn_down(rconn_t *c, uint64_t now, bool backoff) {
    c->ac = NULL;
    c->state = CONN_DOWN;
    c->replied = false;
    if (backoff) {
        c->retry_at = now + c->backoff_ms;
        c->backoff_ms = SL_MIN(BACKOFF_MAX_MS, c->backoff_ms * 2);
    } else {
        c->retry_at = now;
    }
}

/* Drops a live connection: hiredis answers what it holds with NULL replies (on_reply). */
static void conn_drop(rconn_t *c, const char *why) {
    redisAsyncContext *ac = c->ac;
    SL_WARN("gateway", "redis rate limiter: dropping the connection", SL_LF_S("reason", why),
            SL_LF_S("host", c->r->host), SL_LF_I("port", c->r->port));
    conn_down(c, uv_now(c->loop), true);
    if (ac) redisAsyncFree(ac);
}

static rconn_t *conn_of(const redisAsyncContext *ac) {
    rconn_t *c = ac->data;
    return c && c->ac == ac ? c : NULL;
}

static void on_connect(const redisAsyncContext *ac, int status) {
    rconn_t *c = conn_of(ac);
    if (!c) return;
    if (status != REDIS_OK) {
        SL_WARN("gateway", "redis rate limiter: cannot connect",
                SL_LF_S("error", ac->errstr ? ac->errstr : "?"), SL_LF_S("host", c->r->host),
                SL_LF_I("port", c->r->port));
        /* hiredis frees the context after this callback and fails what it held. */
        conn_down(c, uv_now(c->loop), true);
        return;
    }
    c->state = CONN_READY;
    c->quiet_since = uv_now(c->loop);
    SL_INFO("gateway", "redis rate limiter: connected", SL_LF_S("host", c->r->host),
            SL_LF_I("port", c->r->port));
    conn_arm(c);
}

static void on_disconnect(const redisAsyncContext *ac, int status) {
    rconn_t *c = conn_of(ac);
    if (!c) return;
    SL_WARN("gateway", "redis rate limiter: connection lost",
            SL_LF_S("error", ac->errstr ? ac->errstr : "closed"), SL_LF_S("host", c->r->host),
            SL_LF_I("port", c->r->port));
    conn_down(c, uv_now(c->loop), !c->replied);
}

/* AUTH and SCRIPT LOAD replies: only a failure is worth a line (every check then fails too). */
static void on_setup_reply(redisAsyncContext *ac, void *reply, void *priv) {
    redisReply *rep = reply;
    const char *what = priv;
    rconn_t *c = ac->data;
    if (!rep || !c) return;
    if (rep->type == REDIS_REPLY_ERROR) {
        SL_ERROR("gateway", "redis rate limiter: connection setup failed", SL_LF_S("command", what),
                 SL_LF_S("error", rep->str));
    } else if (strcmp(what, "SCRIPT LOAD") == 0 &&
               (rep->type != REDIS_REPLY_STRING || strcmp(rep->str, c->r->sha) != 0)) {
        SL_ERROR("gateway", "redis rate limiter: unexpected SCRIPT LOAD reply",
                 SL_LF_S("expected", c->r->sha));
    }
}

/* Starts connecting; on failure the connection stays down with a backoff. */
static void conn_start(rconn_t *c, uint64_t now) {
    rl_redis_t *r = c->r;
    redisAsyncContext *ac = redisAsyncConnect(r->host, r->port);
    if (!ac || ac->err) {
        SL_WARN("gateway", "redis rate limiter: cannot connect",
                SL_LF_S("error", ac && ac->errstr ? ac->errstr : "out of memory"),
                SL_LF_S("host", r->host), SL_LF_I("port", r->port));
        if (ac) redisAsyncFree(ac);
        conn_down(c, now, true);
        return;
    }
    if (rpoll_attach(ac, c->loop) != 0) {
        redisAsyncFree(ac);
        conn_down(c, now, true);
        return;
    }
    ac->data = c;
    c->ac = ac;
    c->state = CONN_CONNECTING;
    c->connect_deadline = now + SL_MAX(CONNECT_MIN_MS, 2ull * r->timeout_ms);
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    /* Queued before any check, so Redis runs them first: every EVALSHA finds the script. */
    if (r->password[0]) {
        const char *argv[] = {"AUTH", r->password};
        size_t lens[] = {4, strlen(r->password)};
        redisAsyncCommandArgv(ac, on_setup_reply, (void *)"AUTH", 2, argv, lens);
    }
    const char *argv[] = {"SCRIPT", "LOAD", SCRIPT};
    size_t lens[] = {6, 4, sizeof SCRIPT - 1};
    redisAsyncCommandArgv(ac, on_setup_reply, (void *)"SCRIPT LOAD", 3, argv, lens);
    conn_arm(c);
}

static void on_reply(redisAsyncContext *ac, void *reply, void *priv);

static int conn_send(rconn_t *c, rcheck_t *k) {
    if (!c->ac) return SL_ECLOSED;
    if (redisAsyncCommandArgv(c->ac, on_reply, k, k->argc, k->argv, k->argvlen) != REDIS_OK)
        return SL_ECLOSED;
    if (c->inflight == 0) c->quiet_since = uv_now(c->loop);
    c->inflight++;
    k->in_redis = true;
    return 0;
}

/* Reads {allowed, tokens, fraction, quota used}; false when the reply is not that. */
static bool parse_reply(const redisReply *rep, const sl_rl__plan_t *p, bool *allowed,
                        uint64_t *bucket_u, uint64_t *used) {
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 4) return false;
    long long v[4];
    for (size_t i = 0; i < 4; i++) {
        if (rep->element[i]->type != REDIS_REPLY_INTEGER) return false;
        v[i] = rep->element[i]->integer;
        if (v[i] < 0) return false;
    }
    if (v[0] > 1 || (uint64_t)v[1] > p->cap_max_u / SL_RL__TOK || (uint64_t)v[2] >= SL_RL__TOK)
        return false;
    *allowed = v[0] == 1;
    *bucket_u = (uint64_t)v[1] * SL_RL__TOK + (uint64_t)v[2];
    *used = (uint64_t)v[3];
    return true;
}

static void on_reply(redisAsyncContext *ac, void *reply, void *priv) {
    rcheck_t *k = priv;
    rconn_t *c = k->conn;
    redisReply *rep = reply;
    k->in_redis = false;
    c->inflight--;
    if (rep) c->quiet_since = uv_now(c->loop);
    if (k->answered) {
        free(k);
        return;
    }
    if (rep && rep->type == REDIS_REPLY_ERROR && !k->eval_sent &&
        strncmp(rep->str, "NOSCRIPT", 8) == 0) {
        /* The script cache was flushed: send the source once (EVAL caches it again). */
        k->eval_sent = true;
        k->argv[0] = "EVAL";
        k->argvlen[0] = 4;
        k->argv[1] = SCRIPT;
        k->argvlen[1] = sizeof SCRIPT - 1;
        if (conn_send(c, k) == 0) return;
    }
    pending_unlink(c, k);
    bool allowed = false;
    uint64_t bucket_u = 0, used = 0;
    if (!rep) {
        answer_error(k, c->closing ? SL_ECANCELED : SL_ECLOSED);
    } else if (parse_reply(rep, &k->plan, &allowed, &bucket_u, &used)) {
        sl_rl_result_t res;
        sl_rl__result(&k->plan, allowed, bucket_u, used, &res);
        if (ac == c->ac && !c->replied) {
            c->replied = true;
            c->backoff_ms = BACKOFF_MIN_MS;
        }
        atomic_fetch_add_explicit(allowed ? &c->r->allowed : &c->r->denied, 1,
                                  memory_order_relaxed);
        k->answered = true;
        k->done(0, &res, k->arg);
    } else if (rep->type == REDIS_REPLY_ERROR) {
        SL_WARN("gateway", "redis rate limiter: check failed", SL_LF_S("error", rep->str));
        answer_error(k, SL_EIO);
    } else {
        SL_WARN("gateway", "redis rate limiter: unexpected reply to the check script",
                SL_LF_I("type", rep->type));
        answer_error(k, SL_EPROTO);
    }
    free(k);
}

static void on_timer(uv_timer_t *t) {
    rconn_t *c = t->data;
    uint64_t now = uv_now(c->loop);
    if (c->state == CONN_CONNECTING && now >= c->connect_deadline) {
        conn_drop(c, "connect timed out");
    } else if (c->state == CONN_READY && c->inflight > 0 &&
               now - c->quiet_since >= stall_ms(c->r)) {
        conn_drop(c, "no reply");
    }
    /* Detach what is due first: a done that starts a new check must not be answered here. */
    rcheck_t *due = NULL, **tail = &due;
    while (c->head && c->head->deadline <= now) {
        rcheck_t *k = c->head;
        pending_unlink(c, k);
        *tail = k;
        tail = &k->next;
    }
    while (due) {
        rcheck_t *k = due;
        due = k->next;
        k->next = NULL;
        if (!k->answered) answer_error(k, k->status);
        if (!k->in_redis) free(k);
    }
    conn_arm(c);
}

static rconn_t *conn_get(rl_redis_t *r, uv_loop_t *loop) {
    pthread_mutex_lock(&r->mu);
    rconn_t *c = r->conns;
    while (c && c->loop != loop)
        c = c->next;
    if (!c) {
        c = sl_calloc(1, sizeof *c);
        c->r = r;
        c->loop = loop;
        c->state = CONN_DOWN;
        c->backoff_ms = BACKOFF_MIN_MS;
        uv_timer_init(loop, &c->timer);
        c->timer.data = c;
        c->next = r->conns;
        r->conns = c;
    }
    pthread_mutex_unlock(&r->mu);
    return c;
}

/* ---- the interface ---- */

static char *put_num(char *p, uint64_t v, rcheck_t *k) {
    char *e = sl_fmt_u64(p, v);
    k->argv[k->argc] = p;
    k->argvlen[k->argc++] = (size_t)(e - p);
    return e;
}

/* <prefix><tag>:<len>:<id>: the length prefix keeps any bytes in an id from colliding. */
static char *put_key(char *p, const rl_redis_t *r, const char *tag, const char *id, size_t len,
                     rcheck_t *k) {
    char *s = p;
    memcpy(p, r->prefix, r->prefix_len);
    p += r->prefix_len;
    size_t tl = strlen(tag);
    memcpy(p, tag, tl);
    p += tl;
    p = sl_fmt_u64(p, len);
    *p++ = ':';
    memcpy(p, id, len);
    p += len;
    k->argv[k->argc] = s;
    k->argvlen[k->argc++] = (size_t)(p - s);
    return p;
}

static void build_command(const rl_redis_t *r, const sl_rl_request_t *req, rcheck_t *k) {
    const sl_rl__plan_t *p = &k->plan;
    char *b = k->buf;
    k->argv[0] = "EVALSHA";
    k->argvlen[0] = 7;
    k->argv[1] = r->sha;
    k->argvlen[1] = 40;
    k->argv[2] = p->use_quota ? "2" : "1";
    k->argvlen[2] = 1;
    k->argc = 3;
    char tag[SL_RL_NAME_MAX + 8];
    snprintf(tag, sizeof tag, "b:%s:", p->class_name);
    b = put_key(b, r, tag, req->key_id, p->key_len, k);
    if (p->use_quota) {
        char qtag[32];
        snprintf(qtag, sizeof qtag, "q:%lld:", (long long)p->day);
        b = put_key(b, r, qtag, p->quota_id, p->quota_len, k);
    }
    b = put_num(b, p->wall_ns / 1000000000ull, k);
    b = put_num(b, p->wall_ns % 1000000000ull, k);
    b = put_num(b, p->rate_u, k);
    b = put_num(b, p->cap_u / SL_RL__TOK, k);
    b = put_num(b, p->cost, k);
    b = put_num(b, p->use_quota ? p->quota : 0, k);
    b = put_num(b, (uint64_t)p->day_reset_s + QUOTA_MARGIN_S, k);
    b = put_num(b, p->rate_min_u, k);
    b = put_num(b, p->cap_max_u / SL_RL__TOK, k);
    b = put_num(b, p->idle_ttl_ms, k);
    SL_ASSERT(b <= k->buf + sizeof k->buf && k->argc <= ARGV_MAX);
}

static int redis_check_async(void *ctx, uv_loop_t *loop, const sl_rl_request_t *req,
                             sl_rl_done_cb done, void *arg) {
    rl_redis_t *r = ctx;
    sl_rl__plan_t plan;
    int rc = sl_rl__plan(r->conf, req, &plan);
    if (rc) return rc;
    rconn_t *c = conn_get(r, loop);
    rcheck_t *k = sl_malloc(sizeof *k);
    memset(k, 0, offsetof(rcheck_t, buf));
    k->conn = c;
    k->plan = plan;
    k->done = done;
    k->arg = arg;
    build_command(r, req, k);
    k->plan.quota_id = NULL;

    uint64_t now = uv_now(loop);
    if (c->inflight >= INFLIGHT_MAX) {
        fail_soon(c, k, SL_ELIMIT);
        return 0;
    }
    if (c->state == CONN_DOWN && now >= c->retry_at) conn_start(c, now);
    if (c->state == CONN_DOWN || conn_send(c, k) != 0) {
        fail_soon(c, k, SL_ECLOSED);
        return 0;
    }
    k->status = SL_ETIMEOUT;
    k->deadline = now + r->timeout_ms;
    bool first = c->head == NULL;
    pending_push(c, k, false);
    if (first) conn_arm(c);
    return 0;
}

static void conn_closed(uv_handle_t *h) {
    free(h->data);
}

static void redis_loop_close(void *ctx, uv_loop_t *loop) {
    rl_redis_t *r = ctx;
    pthread_mutex_lock(&r->mu);
    rconn_t **pp = &r->conns;
    while (*pp && (*pp)->loop != loop)
        pp = &(*pp)->next;
    rconn_t *c = *pp;
    if (c) *pp = c->next;
    pthread_mutex_unlock(&r->mu);
    if (!c) return;
    c->closing = true;
    if (c->ac) {
        redisAsyncContext *ac = c->ac;
        SL_ASSERT(!(ac->c.flags & REDIS_IN_CALLBACK)); /* not from inside a done callback */
        c->ac = NULL;
        c->state = CONN_DOWN;
        redisAsyncFree(ac); /* answers what it holds with SL_ECANCELED */
    }
    while (c->head) {
        rcheck_t *k = c->head;
        pending_unlink(c, k);
        if (!k->answered) answer_error(k, SL_ECANCELED);
        if (!k->in_redis) free(k);
    }
    uv_timer_stop(&c->timer);
    uv_close((uv_handle_t *)&c->timer, conn_closed);
}

static void redis_stats(void *ctx, sl_rl_stats_t *out) {
    rl_redis_t *r = ctx;
    memset(out, 0, sizeof *out);
    out->allowed = atomic_load_explicit(&r->allowed, memory_order_relaxed);
    out->denied = atomic_load_explicit(&r->denied, memory_order_relaxed);
    out->errors = atomic_load_explicit(&r->errors, memory_order_relaxed);
}

static void redis_free(void *ctx) {
    rl_redis_t *r = ctx;
    if (!r) return;
    SL_ASSERT(r->conns == NULL); /* sl_rl_loop_close on every loop first */
    pthread_mutex_destroy(&r->mu);
    free(r->conf);
    free(r);
}

/* ---- construction ---- */

static int opts_err(sl_buf_t *err, int code, const char *msg) {
    if (err) sl_buf_printf(err, "rate limits: redis: %s", msg);
    return code;
}

static int opts_load(rl_redis_t *r, const sl_rl_config_t *cfg, const sl_rl_redis_opts_t *ro,
                     sl_buf_t *err) {
    const char *host = ro->host ? ro->host : "127.0.0.1";
    size_t hl = strnlen(host, HOST_MAX + 1);
    if (hl == 0 || hl > HOST_MAX || strpbrk(host, " \t\r\n"))
        return opts_err(err, SL_EINVAL, "host must be 1..255 characters without spaces");
    memcpy(r->host, host, hl + 1);
    r->port = ro->port ? ro->port : 6379;
    const char *pw = ro->password ? ro->password : "";
    size_t pl = strnlen(pw, PASSWORD_MAX + 1);
    if (pl > PASSWORD_MAX) return opts_err(err, SL_ERANGE, "password is longer than 512 bytes");
    memcpy(r->password, pw, pl + 1);
    const char *prefix = ro->key_prefix ? ro->key_prefix : "sluice:rl:";
    r->prefix_len = strnlen(prefix, PREFIX_MAX + 1);
    if (r->prefix_len > PREFIX_MAX)
        return opts_err(err, SL_ERANGE, "key_prefix is longer than 64 bytes");
    memcpy(r->prefix, prefix, r->prefix_len + 1);
    r->timeout_ms = ro->timeout_ms ? ro->timeout_ms : 50;
    if (r->timeout_ms > TIMEOUT_MAX_MS)
        return opts_err(err, SL_ERANGE, "timeout_ms must be 1..60000");
    r->fail_open = ro->fail_open;
    for (size_t i = 0; i < cfg->n_tiers; i++) {
        if (cfg->tiers[i].daily_quota > QUOTA_MAX) {
            if (err)
                sl_buf_printf(err,
                              "rate limits: tiers[%zu]: daily_quota above 2^50 is not supported "
                              "in Redis mode",
                              i);
            return SL_ERANGE;
        }
    }
    if (cfg->idle_ttl_ms > IDLE_MAX_MS)
        return opts_err(err, SL_ERANGE, "idle_ttl_ms must be at most 30 days in Redis mode");
    return 0;
}

static void script_sha1(char out[41]) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    if (EVP_Digest(SCRIPT, sizeof SCRIPT - 1, md, &n, EVP_sha1(), NULL) != 1 || n != 20) abort();
    static const char hex[] = "0123456789abcdef";
    for (unsigned i = 0; i < 20; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 15];
    }
    out[40] = '\0';
}

int sl_rl_redis_new(const sl_rl_config_t *cfg, const sl_rl_redis_opts_t *ro, sl_ratelimiter_t *out,
                    sl_buf_t *err) {
    memset(out, 0, sizeof *out);
    sl_rl__conf_t *conf = NULL;
    int rc = sl_rl__conf_new(cfg, &conf, err);
    if (rc) return rc;
    rl_redis_t *r = sl_calloc(1, sizeof *r);
    r->conf = conf;
    sl_rl_redis_opts_t none = {0};
    rc = opts_load(r, cfg, ro ? ro : &none, err);
    if (rc) {
        free(conf);
        free(r);
        return rc;
    }
    script_sha1(r->sha);
    pthread_mutex_init(&r->mu, NULL);
    *out = (sl_ratelimiter_t){
        .name = "redis",
        .ctx = r,
        .check_async = redis_check_async,
        .loop_close = redis_loop_close,
        .stats = redis_stats,
        .free = redis_free,
    };
    return 0;
}
