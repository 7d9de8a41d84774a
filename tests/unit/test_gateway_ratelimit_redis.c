/* Unit tests for gateway/ratelimit_redis against a real redis-server started on a free loopback
 * port (killed at exit, also on failure): exact counts over a scripted clock, the same answers
 * as the local limiter for a long random sequence, the day boundary, peak hours, two "replicas"
 * sharing one limit, fail open/closed while Redis is down and recovery, timeouts, the key layout
 * and ids with odd bytes, config errors, and the async wrapper over the local limiter. */
#include "core/buf.h"
#include "core/common.h"
#include "gateway/ratelimit.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include <cmocka.h>

/* ---- the redis-server ---- */

static pid_t g_redis = -1;
static int g_port;

static void redis_kill(void) {
    if (g_redis <= 0) return;
    kill(g_redis, SIGCONT);
    kill(g_redis, SIGKILL);
    waitpid(g_redis, NULL, 0);
    g_redis = -1;
}

static int free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    SL_ASSERT(fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0);
    socklen_t len = sizeof a;
    SL_ASSERT(getsockname(fd, (struct sockaddr *)&a, &len) == 0);
    close(fd);
    return ntohs(a.sin_port);
}

static redisContext *admin(void) {
    struct timeval tv = {1, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", g_port, tv);
    if (c && c->err) {
        redisFree(c);
        return NULL;
    }
    return c;
}

/* Runs a command on a fresh connection; returns the reply (caller frees) or NULL. */
static redisReply *admin_cmd(int argc, const char **argv, const size_t *lens) {
    redisContext *c = admin();
    if (!c) return NULL;
    redisReply *r = redisCommandArgv(c, argc, argv, lens);
    redisFree(c);
    return r;
}

static void admin_simple(const char *a, const char *b) {
    const char *argv[] = {a, b};
    redisReply *r = admin_cmd(b ? 2 : 1, argv, NULL);
    assert_non_null(r);
    assert_int_not_equal(r->type, REDIS_REPLY_ERROR);
    freeReplyObject(r);
}

static bool redis_ping(void) {
    const char *argv[] = {"PING"};
    redisReply *r = admin_cmd(1, argv, NULL);
    bool ok = r && r->type == REDIS_REPLY_STATUS && strcmp(r->str, "PONG") == 0;
    if (r) freeReplyObject(r);
    return ok;
}

static double now_ms(void) {
    return (double)sl_now_ns() / 1e6;
}

/* Starts redis-server on g_port and waits for PING (10 s). It dies with this process. */
static void redis_start(void) {
    char port[16];
    snprintf(port, sizeof port, "%d", g_port);
    pid_t pid = fork();
    SL_ASSERT(pid >= 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int fd = open("/dev/null", O_WRONLY);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execlp("redis-server", "redis-server", "--port", port, "--bind", "127.0.0.1", "--save", "",
               "--appendonly", "no", (char *)NULL);
        _exit(127);
    }
    g_redis = pid;
    double deadline = now_ms() + 10000;
    while (!redis_ping()) {
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            g_redis = -1;
            fail_msg("redis-server exited at start (port %d; installed by scripts/install-deps?)",
                     g_port);
        }
        if (now_ms() > deadline) fail_msg("redis-server did not answer PING");
        struct timespec ts = {0, 5000000};
        nanosleep(&ts, NULL);
    }
}

static int group_setup(void **state) {
    signal(SIGPIPE, SIG_IGN);
    atexit(redis_kill);
    g_port = free_port();
    redis_start();
    return 0;
}

static int group_teardown(void **state) {
    redis_kill();
    return 0;
}

static int flush(void **state) {
    if (g_redis <= 0) redis_start();
    admin_simple("FLUSHALL", NULL);
    return 0;
}

/* ---- clock, loop and checks ---- */

#include "rl_test_clock.h"

static sl_rl_redis_opts_t opts(bool fail_open, uint32_t timeout_ms) {
    return (sl_rl_redis_opts_t){.host = "127.0.0.1",
                                .port = (uint16_t)g_port,
                                .timeout_ms = timeout_ms,
                                .fail_open = fail_open};
}

typedef struct waiter {
    uv_loop_t *loop; /* stopped when done runs, so that uv_run returns at once */
    bool returned;   /* sl_rl_check_async has returned */
    bool early;      /* done ran before it returned */
    int calls;
    int status;
    sl_rl_result_t res;
} waiter_t;

static void on_done(int status, const sl_rl_result_t *res, void *arg) {
    waiter_t *w = arg;
    if (!w->returned) w->early = true;
    w->calls++;
    w->status = status;
    w->res = *res;
    if (w->loop) uv_stop(w->loop);
}

/* Runs loop until every waiter has been answered (5 s deadline). */
static void wait_all(uv_loop_t *loop, waiter_t *w, size_t n) {
    double deadline = now_ms() + 5000;
    for (;;) {
        size_t done = 0;
        for (size_t i = 0; i < n; i++)
            done += w[i].calls > 0;
        if (done == n) break;
        if (now_ms() > deadline) fail_msg("checks not answered in 5 s (%zu of %zu)", done, n);
        uv_run(loop, UV_RUN_ONCE);
    }
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(w[i].calls, 1);
        assert_false(w[i].early);
    }
}

/* One check through Redis; returns done's status (or check_async's error) and fills *res. */
static int rcheck(sl_ratelimiter_t *rl, uv_loop_t *loop, const sl_rl_request_t *req,
                  sl_rl_result_t *res) {
    waiter_t w = {.loop = loop};
    int rc = sl_rl_check_async(rl, loop, req, on_done, &w);
    w.returned = true;
    if (rc) {
        assert_int_equal(w.calls, 0);
        return rc;
    }
    wait_all(loop, &w, 1);
    if (res) *res = w.res;
    return w.status;
}

static bool rpass(sl_ratelimiter_t *rl, uv_loop_t *loop, const char *key, const char *cls,
                  const char *tier, sl_rl_result_t *res) {
    sl_rl_result_t tmp;
    if (!res) res = &tmp;
    sl_rl_request_t req = {.key_id = key, .route_class = cls, .tier = tier};
    assert_int_equal(rcheck(rl, loop, &req, res), 0);
    if (!res->allowed) assert_true(res->retry_after_s >= 1);
    return res->allowed;
}

/* n checks pipelined (all sent before any answer); returns how many passed. */
static int rcount(sl_ratelimiter_t *rl, uv_loop_t *loop, const char *key, const char *cls, int n) {
    waiter_t *w = calloc((size_t)n, sizeof *w);
    sl_rl_request_t req = {.key_id = key, .route_class = cls};
    for (int i = 0; i < n; i++) {
        w[i].loop = loop;
        assert_int_equal(sl_rl_check_async(rl, loop, &req, on_done, &w[i]), 0);
        w[i].returned = true;
    }
    wait_all(loop, w, (size_t)n);
    int pass = 0;
    for (int i = 0; i < n; i++) {
        assert_int_equal(w[i].status, 0);
        pass += w[i].res.allowed;
    }
    free(w);
    return pass;
}

static void close_loop(sl_ratelimiter_t *rl, uv_loop_t *loop) {
    sl_rl_loop_close(rl, loop);
    uv_run(loop, UV_RUN_NOWAIT);
}

static void loop_done(uv_loop_t *loop) {
    uv_run(loop, UV_RUN_DEFAULT); /* closes what is left */
    assert_int_equal(uv_loop_close(loop), 0);
}

static void assert_same(const sl_rl_result_t *a, const sl_rl_result_t *b, int step) {
    if (a->allowed != b->allowed || a->retry_after_s != b->retry_after_s ||
        a->n_policies != b->n_policies || a->tightest != b->tightest)
        fail_msg("step %d: allowed %d/%d retry %u/%u n %u/%u tightest %u/%u", step, a->allowed,
                 b->allowed, a->retry_after_s, b->retry_after_s, a->n_policies, b->n_policies,
                 a->tightest, b->tightest);
    for (uint32_t i = 0; i < a->n_policies; i++) {
        const sl_rl_policy_t *p = &a->policies[i], *q = &b->policies[i];
        if (strcmp(p->name, q->name) != 0 || p->quota != q->quota || p->window_s != q->window_s ||
            p->remaining != q->remaining || p->reset_s != q->reset_s)
            fail_msg("step %d policy %u: %s/%s q %llu/%llu w %u/%u r %llu/%llu t %u/%u", step, i,
                     p->name, q->name, (unsigned long long)p->quota, (unsigned long long)q->quota,
                     p->window_s, q->window_s, (unsigned long long)p->remaining,
                     (unsigned long long)q->remaining, p->reset_s, q->reset_s);
    }
}

/* ---- tests ---- */

static void test_exact_counts(void **state) {
    static const sl_rl_class_t cls[] = {{.name = "predict", .rate = 10, .burst = 5}};
    test_clock_t clk;
    sl_rl_config_t cfg = base_cfg(&clk, cls, 1);
    sl_rl_redis_opts_t ro = opts(false, 1000);
    sl_ratelimiter_t rl;
    assert_int_equal(sl_rl_redis_new(&cfg, &ro, &rl, NULL), 0);
    assert_string_equal(rl.name, "redis");
    uv_loop_t loop;
    uv_loop_init(&loop);
    sl_rl_result_t r;

    assert_int_equal(rcount(&rl, &loop, "k", "predict", 8), 5); /* t=0: the full burst */
    assert_false(rpass(&rl, &loop, "k", "predict", NULL, &r));
    assert_int_equal(r.retry_after_s, 1);
    assert_int_equal(r.policies[0].remaining, 0);
    assert_int_equal(r.policies[0].quota, 5);
    advance_ns(&clk, 250 * 1000000ull); /* 2.5 tokens */
    assert_int_equal(rcount(&rl, &loop, "k", "predict", 10), 2);
    advance_ns(&clk, 50 * 1000000ull); /* 0.5 + 0.5 = 1 token exactly */
    assert_int_equal(rcount(&rl, &loop, "k", "predict", 10), 1);
    advance_ns(&clk, 99999999); /* 1 ns short of a token */
    assert_int_equal(rcount(&rl, &loop, "k", "predict", 10), 0);
    advance_ns(&clk, 1);
    assert_int_equal(rcount(&rl, &loop, "k", "predict", 10), 1);
    advance_ns(&clk, 60 * NS); /* refill stops at the burst */
    assert_int_equal(rcount(&rl, &loop, "k", "predict", 100), 5);
    /* 30 s at 10/s with a request every 100 ms: every one passes. */
    int n = 0;
    for (int i = 0; i < 300; i++) {
        advance_ns(&clk, 100 * 1000000ull);
        n += rpass(&rl, &loop, "k", "predict", NULL, NULL);
    }
    assert_int_equal(n, 300);
    sl_rl_stats_t st;
    sl_rl_stats(&rl, &st);
    assert_int_equal(st.allowed, 5 + 2 + 1 + 1 + 5 + 300);
    assert_int_equal(st.errors, 0);
    assert_int_equal(st.entries, 0);

    /* Redis mode has no synchronous check. */
    sl_rl_request_t req = {.key_id = "k", .route_class = "predict"};
    assert_int_equal(sl_rl_check(&rl, &req, &r), SL_EUNSUPPORTED);
    close_loop(&rl, &loop);
    sl_rl_free(&rl);
    loop_done(&loop);
}

static uint64_t rnd_state = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void) {
    rnd_state ^= rnd_state << 13;
    rnd_state ^= rnd_state >> 7;
    rnd_state ^= rnd_state << 17;
    return rnd_state;
}

static void test_same_as_local(void **state) {
    static const sl_rl_class_t cls[] = {
        {.name = "predict",
         .rate = 7.3,
         .burst = 5,
         .peak_rate = 2.125,
         .peak_burst = 3,
         .counts_quota = true},
        {.name = "oip", .rate = 1000.5, .burst = 20},
        {.name = "slow", .rate = 0.013, .burst = 2, .counts_quota = true},
        {.name = "never", .rate = 0, .burst = 3},
        {.name = "big", .rate = 999999.999, .burst = 1000000, .counts_quota = true}};
    static const sl_rl_tier_t tiers[] = {{"standard", 40}, {"gold", 300}, {"free", 0}};
    static const char long_id[129] =
        "LLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLL"
        "LLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLL";
    const char *keys[] = {"k1", "k:2", "k\n3", "\xff\xfe k", long_id};
    const char *quota_ids[] = {NULL, "tenant-a", "tenant:b"};
    const char *tier_names[] = {NULL, "standard", "gold", "free"};
    test_clock_t clk;
    sl_rl_config_t cfg = base_cfg(&clk, cls, SL_ARRAY_LEN(cls));
    cfg.tiers = tiers;
    cfg.n_tiers = SL_ARRAY_LEN(tiers);
    cfg.utc_offset_s = 5 * 3600 + 1800;
    cfg.peak_start_s = 9 * 3600;
    cfg.peak_end_s = 17 * 3600;
    set_wall_s(&clk, 24 * HOUR); /* 05:30 local */
    sl_ratelimiter_t local, redis;
    sl_rl_redis_opts_t ro = opts(false, 2000);
    assert_int_equal(sl_rl_local_new(&cfg, &local, NULL), 0);
    assert_int_equal(sl_rl_redis_new(&cfg, &ro, &redis, NULL), 0);
    uv_loop_t loop;
    uv_loop_init(&loop);

    enum { STEPS = 4000, BATCH = 4 };
    int step = 0, allowed = 0, denied = 0, errors = 0;
    while (step < STEPS) {
        uint64_t roll = rnd() % 100;
        if (roll < 2)
            advance_ns(&clk, (1 + rnd() % 3) * HOUR * NS + rnd() % NS); /* peak / day edges */
        else if (roll < 10)
            advance_ns(&clk, rnd() % (20 * NS));
        else if (roll < 80)
            advance_ns(&clk, rnd() % (400 * 1000000ull));
        /* else: the same instant */
        /* A batch at one clock value, pipelined, in the same order through both. */
        size_t n = 1 + rnd() % BATCH;
        sl_rl_request_t reqs[BATCH];
        sl_rl_result_t want[BATCH];
        int want_rc[BATCH];
        waiter_t w[BATCH];
        int rc[BATCH];
        memset(w, 0, sizeof w);
        for (size_t i = 0; i < n; i++) {
            reqs[i] =
                (sl_rl_request_t){.key_id = keys[rnd() % SL_ARRAY_LEN(keys)],
                                  .quota_id = quota_ids[rnd() % SL_ARRAY_LEN(quota_ids)],
                                  .route_class = cls[rnd() % SL_ARRAY_LEN(cls)].name,
                                  .tier = tier_names[rnd() % SL_ARRAY_LEN(tier_names)],
                                  .cost = (uint32_t)(rnd() % 10 == 0 ? rnd() % 7 : rnd() % 2)};
            want_rc[i] = sl_rl_check(&local, &reqs[i], &want[i]);
            w[i].loop = &loop;
            rc[i] = sl_rl_check_async(&redis, &loop, &reqs[i], on_done, &w[i]);
            w[i].returned = true;
            assert_int_equal(rc[i], want_rc[i]);
            if (rc[i]) w[i].calls = 1; /* never answered: nothing to wait for */
        }
        wait_all(&loop, w, n);
        for (size_t i = 0; i < n; i++, step++) {
            if (rc[i]) {
                errors++;
                continue;
            }
            assert_int_equal(w[i].status, 0);
            assert_same(&w[i].res, &want[i], step);
            if (want[i].allowed)
                allowed++;
            else
                denied++;
        }
    }
    /* The sequence exercised both answers and the request errors. */
    printf("ratelimit_redis: %d checks identical to local (%d allowed, %d denied, %d refused)\n",
           STEPS, allowed, denied, errors);
    assert_true(allowed > STEPS / 10 && denied > STEPS / 10 && errors > 0);
    sl_rl_stats_t a, b;
    sl_rl_stats(&local, &a);
    sl_rl_stats(&redis, &b);
    assert_int_equal(a.allowed, b.allowed);
    assert_int_equal(a.denied, b.denied);
    assert_int_equal(b.errors, 0);
    close_loop(&redis, &loop);
    sl_rl_free(&redis);
    sl_rl_free(&local);
    loop_done(&loop);
}

static void test_day_boundary(void **state) {
    static const sl_rl_class_t cls[] = {
        {.name = "predict", .rate = 1000, .burst = 1000, .counts_quota = true},
        {.name = "meta", .rate = 1000, .burst = 1000}};
    static const sl_rl_tier_t tiers[] = {{"standard", 3}};
    test_clock_t clk;
    sl_rl_config_t cfg = base_cfg(&clk, cls, 2);
    cfg.tiers = tiers;
    cfg.n_tiers = 1;
    sl_rl_redis_opts_t ro = opts(false, 1000);
    sl_ratelimiter_t rl;
    assert_int_equal(sl_rl_redis_new(&cfg, &ro, &rl, NULL), 0);
    uv_loop_t loop;
    uv_loop_init(&loop);
    sl_rl_result_t r;

    set_wall_s(&clk, 24 * HOUR - 10); /* 23:59:50 UTC on day 0 */
    for (int i = 0; i < 3; i++)
        assert_true(rpass(&rl, &loop, "k", "predict", "standard", &r));
    assert_int_equal(r.policies[1].remaining, 0);
    assert_false(rpass(&rl, &loop, "k", "predict", "standard", &r));
    assert_int_equal(r.retry_after_s, 10);
    assert_int_equal(r.tightest, 1);
    assert_string_equal(r.policies[1].name, "daily");
    assert_int_equal(r.policies[1].reset_s, 10);
    /* A deny by quota spends no bucket token. */
    assert_int_equal(r.policies[0].remaining, 997);
    assert_true(rpass(&rl, &loop, "k", "meta", "standard", NULL));
    /* Another key of the tenant shares the quota through quota_id. */
    sl_rl_request_t req = {
        .key_id = "k2", .quota_id = "k", .route_class = "predict", .tier = "standard"};
    assert_int_equal(rcheck(&rl, &loop, &req, &r), 0);
    assert_false(r.allowed);

    /* Today's counter is a key of its own with an expiry: old days vanish. */
    const char *argv[] = {"TTL", "sluice:rl:q:19723:1:k"};
    redisReply *rep = admin_cmd(2, argv, NULL);
    assert_non_null(rep);
    assert_int_equal(rep->type, REDIS_REPLY_INTEGER);
    assert_true(rep->integer > 0 && rep->integer <= 10 + 3600);
    freeReplyObject(rep);

    set_wall_s(&clk, 24 * HOUR - 1); /* 23:59:59: still today */
    assert_false(rpass(&rl, &loop, "k", "predict", "standard", &r));
    assert_int_equal(r.retry_after_s, 1);
    set_wall_s(&clk, 24 * HOUR); /* midnight UTC: a new day */
    for (int i = 0; i < 3; i++)
        assert_true(rpass(&rl, &loop, "k", "predict", "standard", &r));
    assert_int_equal(r.policies[1].reset_s, 86400);
    assert_false(rpass(&rl, &loop, "k", "predict", "standard", &r));
    close_loop(&rl, &loop);
    sl_rl_free(&rl);

    /* With UTC+02:00 the day ends at 22:00 UTC. */
    cfg.utc_offset_s = 2 * 3600;
    assert_int_equal(sl_rl_redis_new(&cfg, &ro, &rl, NULL), 0);
    set_wall_s(&clk, 46 * HOUR - 5);
    for (int i = 0; i < 3; i++)
        assert_true(rpass(&rl, &loop, "t", "predict", "standard", &r));
    assert_false(rpass(&rl, &loop, "t", "predict", "standard", &r));
    assert_int_equal(r.retry_after_s, 5);
    set_wall_s(&clk, 46 * HOUR);
    assert_true(rpass(&rl, &loop, "t", "predict", "standard", &r));
    close_loop(&rl, &loop);
    sl_rl_free(&rl);
    loop_done(&loop);
}

static void test_peak_hours(void **state) {
    static const sl_rl_class_t cls[] = {
        {.name = "predict", .rate = 1, .burst = 10, .peak_rate = 1, .peak_burst = 2},
        {.name = "meta", .rate = 1, .burst = 10}};
    test_clock_t clk;
    sl_rl_config_t cfg = base_cfg(&clk, cls, 2);
    cfg.peak_start_s = 9 * 3600;
    cfg.peak_end_s = 17 * 3600;
    sl_rl_redis_opts_t ro = opts(false, 1000);
    sl_ratelimiter_t rl;
    assert_int_equal(sl_rl_redis_new(&cfg, &ro, &rl, NULL), 0);
    uv_loop_t loop;
    uv_loop_init(&loop);
    sl_rl_result_t r;

    set_wall_s(&clk, 24 * HOUR + 8 * HOUR); /* 08:00 */
    assert_int_equal(rcount(&rl, &loop, "k", "predict", 20), 10);
    set_wall_s(&clk, 24 * HOUR + 9 * HOUR); /* 09:00: full again, but the peak burst is 2 */
    assert_int_equal(rcount(&rl, &loop, "k", "predict", 20), 2);
    assert_false(rpass(&rl, &loop, "k", "predict", NULL, &r));
    assert_int_equal(r.policies[0].quota, 2);
    assert_int_equal(r.policies[0].window_s, 2);
    assert_int_equal(rcount(&rl, &loop, "k", "meta", 20), 10);
    set_wall_s(&clk, 24 * HOUR + 17 * HOUR - 1); /* 16:59:59: still peak */
    assert_int_equal(rcount(&rl, &loop, "k", "predict", 20), 2);
    set_wall_s(&clk, 24 * HOUR + 17 * HOUR + 10); /* 17:00:10: off-peak, 10 s of refill */
    assert_int_equal(rcount(&rl, &loop, "k", "predict", 20), 10);
    close_loop(&rl, &loop);
    sl_rl_free(&rl);
    loop_done(&loop);
}

/* ---- two replicas ---- */

typedef struct replica {
    sl_ratelimiter_t rl;
    pthread_barrier_t *barrier;
    int tries;
    int window;
    int sent, answered, allowed, failed;
    uv_loop_t loop;
} replica_t;

static void replica_send(replica_t *rp);

static void replica_done(int status, const sl_rl_result_t *res, void *arg) {
    replica_t *rp = arg;
    rp->answered++;
    if (status != 0)
        rp->failed++;
    else if (res->allowed)
        rp->allowed++;
    if (rp->sent < rp->tries) replica_send(rp);
}

static void replica_send(replica_t *rp) {
    sl_rl_request_t req = {.key_id = "shared key", .route_class = "predict"};
    rp->sent++;
    if (sl_rl_check_async(&rp->rl, &rp->loop, &req, replica_done, rp) != 0) rp->failed++;
}

static void *replica_main(void *arg) {
    replica_t *rp = arg;
    uv_loop_init(&rp->loop);
    pthread_barrier_wait(rp->barrier);
    for (int i = 0; i < rp->window; i++)
        replica_send(rp);
    double deadline = now_ms() + 20000;
    while (rp->answered < rp->tries && now_ms() < deadline)
        uv_run(&rp->loop, UV_RUN_ONCE);
    sl_rl_loop_close(&rp->rl, &rp->loop);
    uv_run(&rp->loop, UV_RUN_DEFAULT);
    uv_loop_close(&rp->loop);
    return NULL;
}

static void test_two_replicas(void **state) {
    static const sl_rl_class_t cls[] = {{.name = "predict", .rate = 0, .burst = 250}};
    sl_rl_config_t cfg = {.classes = cls, .n_classes = 1}; /* the real clocks */
    sl_rl_redis_opts_t ro = opts(false, 2000);
    pthread_barrier_t barrier;
    pthread_barrier_init(&barrier, NULL, 2);
    replica_t rp[2];
    pthread_t th[2];
    for (int i = 0; i < 2; i++) {
        rp[i] = (replica_t){.barrier = &barrier, .tries = 1000, .window = 32};
        assert_int_equal(sl_rl_redis_new(&cfg, &ro, &rp[i].rl, NULL), 0);
        assert_int_equal(pthread_create(&th[i], NULL, replica_main, &rp[i]), 0);
    }
    int total = 0;
    for (int i = 0; i < 2; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(rp[i].answered, 1000);
        assert_int_equal(rp[i].failed, 0);
        total += rp[i].allowed;
        sl_rl_stats_t st;
        sl_rl_stats(&rp[i].rl, &st);
        assert_int_equal(st.allowed + st.denied, 1000);
        sl_rl_free(&rp[i].rl);
    }
    pthread_barrier_destroy(&barrier);
    /* Burst 250, rate 0, 2 x 1000 concurrent tries: exactly 250 pass in total. */
    printf("ratelimit_redis: two replicas allowed %d + %d\n", rp[0].allowed, rp[1].allowed);
    assert_int_equal(total, 250);
}

/* ---- failures ---- */

static void test_fail_open_closed(void **state) {
    static const sl_rl_class_t cls[] = {{.name = "predict", .rate = 100, .burst = 100}};
    test_clock_t clk;
    sl_rl_config_t cfg = base_cfg(&clk, cls, 1);
    sl_rl_redis_opts_t oo = opts(true, 500), oc = opts(false, 500);
    sl_ratelimiter_t open_rl, closed_rl;
    assert_int_equal(sl_rl_redis_new(&cfg, &oo, &open_rl, NULL), 0);
    assert_int_equal(sl_rl_redis_new(&cfg, &oc, &closed_rl, NULL), 0);
    uv_loop_t loop;
    uv_loop_init(&loop);
    sl_rl_request_t req = {.key_id = "k", .route_class = "predict"};
    sl_rl_result_t r;
    assert_int_equal(rcheck(&open_rl, &loop, &req, &r), 0);
    assert_true(r.allowed);
    assert_int_equal(rcheck(&closed_rl, &loop, &req, &r), 0);
    assert_true(r.allowed);

    redis_kill();
    /* Down: every check is an error, answered at once by the policy, both while reconnecting
     * is held back and when a reconnect is refused (60 ms apart: past the 100 ms backoff). */
    for (int i = 0; i < 5; i++) {
        struct timespec gap = {0, 60000000};
        nanosleep(&gap, NULL);
        double t0 = now_ms();
        int st = rcheck(&open_rl, &loop, &req, &r);
        assert_true(st < 0);
        assert_true(r.allowed);
        assert_int_equal(r.n_policies, 0);
        st = rcheck(&closed_rl, &loop, &req, &r);
        assert_true(st < 0);
        assert_false(r.allowed);
        assert_int_equal(r.retry_after_s, 1);
        sl_rl_headers_t h;
        assert_int_equal(sl_rl_format_headers(&r, &h), 0);
        assert_string_equal(h.retry_after, "1");
        assert_string_equal(h.policy, "");
        assert_true(now_ms() - t0 < 400); /* faster than the timeout: the failure is known */
    }
    sl_rl_stats_t st;
    sl_rl_stats(&closed_rl, &st);
    assert_int_equal(st.errors, 5);
    assert_int_equal(st.allowed, 1);

    /* Back up: both recover on their own (reconnect backoff is at most 2 s). */
    redis_start();
    double deadline = now_ms() + 10000;
    int ok_open = 0, ok_closed = 0;
    while ((!ok_open || !ok_closed) && now_ms() < deadline) {
        if (!ok_open && rcheck(&open_rl, &loop, &req, &r) == 0) ok_open = 1;
        if (!ok_closed && rcheck(&closed_rl, &loop, &req, &r) == 0) ok_closed = 1;
        struct timespec ts = {0, 20000000};
        nanosleep(&ts, NULL);
    }
    assert_true(ok_open && ok_closed);
    assert_true(r.allowed);
    assert_int_equal(r.n_policies, 1);
    close_loop(&open_rl, &loop);
    close_loop(&closed_rl, &loop);
    sl_rl_free(&open_rl);
    sl_rl_free(&closed_rl);
    loop_done(&loop);
}

/* Redis closing a healthy connection (its idle `timeout`, CLIENT KILL) costs at most the check
 * that finds it closed: the next one reconnects at once, without the failure backoff. */
static void test_server_closes_connection(void **state) {
    static const sl_rl_class_t cls[] = {{.name = "predict", .rate = 100, .burst = 100}};
    test_clock_t clk;
    sl_rl_config_t cfg = base_cfg(&clk, cls, 1);
    sl_rl_redis_opts_t ro = opts(false, 1000);
    sl_ratelimiter_t rl;
    assert_int_equal(sl_rl_redis_new(&cfg, &ro, &rl, NULL), 0);
    uv_loop_t loop;
    uv_loop_init(&loop);
    sl_rl_request_t req = {.key_id = "k", .route_class = "predict"};
    sl_rl_result_t r;
    for (int round = 0; round < 3; round++) {
        assert_int_equal(rcheck(&rl, &loop, &req, &r), 0);
        const char *argv[] = {"CLIENT", "KILL", "TYPE", "normal"};
        redisReply *rep = admin_cmd(4, argv, NULL);
        assert_non_null(rep);
        assert_int_equal(rep->type, REDIS_REPLY_INTEGER);
        assert_int_equal(rep->integer, 1); /* ours */
        freeReplyObject(rep);
        int st = rcheck(&rl, &loop, &req, &r);
        if (st != 0) {
            assert_int_equal(st, SL_ECLOSED);
            assert_int_equal(rcheck(&rl, &loop, &req, &r), 0);
        }
        assert_true(r.allowed);
    }
    sl_rl_stats_t s;
    sl_rl_stats(&rl, &s);
    assert_true(s.errors <= 3);
    close_loop(&rl, &loop);
    sl_rl_free(&rl);
    loop_done(&loop);
}

static void test_timeout(void **state) {
    static const sl_rl_class_t cls[] = {{.name = "predict", .rate = 100, .burst = 100}};
    test_clock_t clk;
    sl_rl_config_t cfg = base_cfg(&clk, cls, 1);
    sl_rl_redis_opts_t ro = opts(false, 100);
    sl_ratelimiter_t rl;
    assert_int_equal(sl_rl_redis_new(&cfg, &ro, &rl, NULL), 0);
    uv_loop_t loop;
    uv_loop_init(&loop);
    sl_rl_request_t req = {.key_id = "k", .route_class = "predict"};
    sl_rl_result_t r;
    assert_int_equal(rcheck(&rl, &loop, &req, &r), 0); /* connected */

    kill(g_redis, SIGSTOP); /* Redis hangs: connected, but no answer */
    double t0 = now_ms();
    assert_int_equal(rcheck(&rl, &loop, &req, &r), SL_ETIMEOUT);
    double dt = now_ms() - t0;
    printf("ratelimit_redis: timeout (100 ms) answered after %.1f ms\n", dt);
    assert_true(dt >= 90 && dt < 600);
    assert_false(r.allowed);
    assert_int_equal(r.retry_after_s, 1);
    kill(g_redis, SIGCONT);

    /* The late reply is dropped; the next checks are answered normally. */
    double deadline = now_ms() + 5000;
    int st = -1;
    while (st != 0 && now_ms() < deadline)
        st = rcheck(&rl, &loop, &req, &r);
    assert_int_equal(st, 0);
    assert_true(r.allowed);
    sl_rl_stats_t s;
    sl_rl_stats(&rl, &s);
    assert_true(s.errors >= 1);
    close_loop(&rl, &loop);
    sl_rl_free(&rl);
    loop_done(&loop);
}

static void test_loop_close_cancels(void **state) {
    static const sl_rl_class_t cls[] = {{.name = "predict", .rate = 100, .burst = 100}};
    test_clock_t clk;
    sl_rl_config_t cfg = base_cfg(&clk, cls, 1);
    sl_rl_redis_opts_t ro = opts(true, 1000);
    sl_ratelimiter_t rl;
    assert_int_equal(sl_rl_redis_new(&cfg, &ro, &rl, NULL), 0);
    uv_loop_t loop;
    uv_loop_init(&loop);
    sl_rl_request_t req = {.key_id = "k", .route_class = "predict"};
    waiter_t w[3] = {{0}};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(sl_rl_check_async(&rl, &loop, &req, on_done, &w[i]), 0);
        w[i].returned = true;
    }
    sl_rl_loop_close(&rl, &loop); /* before any answer arrived */
    for (int i = 0; i < 3; i++) {
        assert_int_equal(w[i].calls, 1);
        assert_int_equal(w[i].status, SL_ECANCELED);
        assert_true(w[i].res.allowed);
    }
    sl_rl_free(&rl);
    loop_done(&loop);
}

/* ---- keys ---- */

static void test_keys_and_odd_ids(void **state) {
    static const sl_rl_class_t cls[] = {
        {.name = "predict", .rate = 1, .burst = 3, .counts_quota = true}};
    static const sl_rl_tier_t tiers[] = {{"standard", 100}};
    test_clock_t clk;
    sl_rl_config_t cfg = base_cfg(&clk, cls, 1);
    cfg.tiers = tiers;
    cfg.n_tiers = 1;
    sl_rl_redis_opts_t ro = opts(false, 1000);
    ro.key_prefix = "t:";
    sl_ratelimiter_t rl;
    assert_int_equal(sl_rl_redis_new(&cfg, &ro, &rl, NULL), 0);
    uv_loop_t loop;
    uv_loop_init(&loop);

    /* Ids that a naive "prefix:class:id" layout would mix up, or that need escaping. */
    char id128[129];
    memset(id128, 'x', 128);
    id128[128] = '\0';
    const char *ids[] = {"a", "a:", "1:a", "a\n", "a b", "\x01\xff", "b:predict:1:a", id128};
    for (size_t i = 0; i < SL_ARRAY_LEN(ids); i++)
        assert_int_equal(rcount(&rl, &loop, ids[i], "predict", 5), 3);
    for (size_t i = 0; i < SL_ARRAY_LEN(ids); i++)
        assert_int_equal(rcount(&rl, &loop, ids[i], "predict", 1), 0);

    /* The layout: <prefix>b:<class>:<len>:<id> and <prefix>q:<day>:<len>:<quota id>. */
    sl_rl_request_t req = {
        .key_id = "a:b\n", .quota_id = "t\xff", .route_class = "predict", .tier = "standard"};
    sl_rl_result_t r;
    assert_int_equal(rcheck(&rl, &loop, &req, &r), 0);
    assert_true(r.allowed);
    const char *pttl[] = {"PTTL", "t:b:predict:4:a:b\n"};
    redisReply *rep = admin_cmd(2, pttl, NULL);
    assert_non_null(rep);
    assert_int_equal(rep->type, REDIS_REPLY_INTEGER);
    /* 1 token to refill at 1/s, plus the idle TTL (10 min). */
    assert_true(rep->integer > 590000 && rep->integer <= 601000);
    freeReplyObject(rep);
    const char *get[] = {"GET", "t:q:19723:2:t\xff"};
    rep = admin_cmd(2, get, NULL);
    assert_non_null(rep);
    assert_int_equal(rep->type, REDIS_REPLY_STRING);
    assert_string_equal(rep->str, "1");
    freeReplyObject(rep);

    /* An id over 128 bytes is refused before anything is sent, and done is never called. */
    char id129[130];
    memset(id129, 'y', 129);
    id129[129] = '\0';
    req = (sl_rl_request_t){.key_id = id129, .route_class = "predict"};
    assert_int_equal(rcheck(&rl, &loop, &req, NULL), SL_EINVAL);
    req = (sl_rl_request_t){.key_id = "a", .route_class = "nope"};
    assert_int_equal(rcheck(&rl, &loop, &req, NULL), SL_ENOENT);
    req = (sl_rl_request_t){.key_id = "a", .route_class = "predict", .cost = 4};
    assert_int_equal(rcheck(&rl, &loop, &req, NULL), SL_ERANGE);

    /* A flushed script cache is refilled (NOSCRIPT -> EVAL). */
    admin_simple("SCRIPT", "FLUSH");
    advance_ns(&clk, 5 * NS);
    assert_true(rpass(&rl, &loop, "a", "predict", NULL, NULL));
    close_loop(&rl, &loop);
    sl_rl_free(&rl);
    loop_done(&loop);
}

/* ---- config ---- */

static void test_config_errors(void **state) {
    static const sl_rl_class_t bad[] = {{.name = "predict", .rate = 1, .burst = 0}};
    static const sl_rl_class_t good[] = {{.name = "predict", .rate = 1, .burst = 1}};
    static const sl_rl_tier_t huge[] = {{"standard", (1ull << 50) + 1}};
    test_clock_t clk;
    sl_rl_config_t cfg = base_cfg(&clk, bad, 1);
    sl_rl_redis_opts_t ro = opts(false, 50);
    sl_ratelimiter_t rl;
    sl_buf_t e1 = SL_BUF_INIT, e2 = SL_BUF_INIT;
    /* The local limiter's validation, word for word. */
    assert_int_equal(sl_rl_local_new(&cfg, &rl, &e1), SL_ERANGE);
    assert_int_equal(sl_rl_redis_new(&cfg, &ro, &rl, &e2), SL_ERANGE);
    assert_string_equal(e1.data, e2.data);
    assert_null(rl.ctx);

    cfg = base_cfg(&clk, good, 1);
    sl_buf_reset(&e2);
    ro.key_prefix = "0123456789012345678901234567890123456789012345678901234567890123456789";
    assert_int_equal(sl_rl_redis_new(&cfg, &ro, &rl, &e2), SL_ERANGE);
    assert_non_null(strstr(e2.data, "key_prefix"));
    ro = opts(false, 60001);
    sl_buf_reset(&e2);
    assert_int_equal(sl_rl_redis_new(&cfg, &ro, &rl, &e2), SL_ERANGE);
    assert_non_null(strstr(e2.data, "timeout_ms"));
    ro = opts(false, 50);
    cfg.tiers = huge;
    cfg.n_tiers = 1;
    sl_buf_reset(&e2);
    assert_int_equal(sl_rl_redis_new(&cfg, &ro, &rl, &e2), SL_ERANGE);
    assert_non_null(strstr(e2.data, "tiers[0]"));
    cfg.n_tiers = 0;
    ro.host = "";
    sl_buf_reset(&e2);
    assert_int_equal(sl_rl_redis_new(&cfg, &ro, &rl, &e2), SL_EINVAL);
    assert_non_null(strstr(e2.data, "host"));
    /* Defaults: nothing connects at construction. */
    assert_int_equal(sl_rl_redis_new(&cfg, NULL, &rl, NULL), 0);
    sl_rl_free(&rl);
    sl_buf_free(&e1);
    sl_buf_free(&e2);
}

static void test_local_async_wrapper(void **state) {
    static const sl_rl_class_t cls[] = {{.name = "predict", .rate = 0, .burst = 2}};
    test_clock_t clk;
    sl_rl_config_t cfg = base_cfg(&clk, cls, 1);
    sl_ratelimiter_t rl;
    assert_int_equal(sl_rl_local_new(&cfg, &rl, NULL), 0);
    uv_loop_t loop;
    uv_loop_init(&loop);
    sl_rl_request_t req = {.key_id = "k", .route_class = "predict"};
    for (int i = 0; i < 3; i++) {
        waiter_t w = {0};
        assert_int_equal(sl_rl_check_async(&rl, &loop, &req, on_done, &w), 0);
        assert_true(w.early); /* done ran before the wrapper returned */
        assert_int_equal(w.calls, 1);
        assert_int_equal(w.status, 0);
        assert_int_equal(w.res.allowed, i < 2);
    }
    waiter_t w = {0};
    req.route_class = "nope";
    assert_int_equal(sl_rl_check_async(&rl, &loop, &req, on_done, &w), SL_ENOENT);
    assert_int_equal(w.calls, 0);
    sl_rl_loop_close(&rl, &loop); /* no-op */
    sl_rl_stats_t st;
    sl_rl_stats(&rl, &st);
    assert_int_equal(st.allowed, 2);
    assert_int_equal(st.errors, 0);
    sl_rl_free(&rl);
    loop_done(&loop);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_local_async_wrapper),
        cmocka_unit_test(test_config_errors),
        cmocka_unit_test_setup(test_exact_counts, flush),
        cmocka_unit_test_setup(test_same_as_local, flush),
        cmocka_unit_test_setup(test_day_boundary, flush),
        cmocka_unit_test_setup(test_peak_hours, flush),
        cmocka_unit_test_setup(test_two_replicas, flush),
        cmocka_unit_test_setup(test_keys_and_odd_ids, flush),
        cmocka_unit_test_setup(test_loop_close_cancels, flush),
        cmocka_unit_test_setup(test_server_closes_connection, flush),
        cmocka_unit_test_setup(test_timeout, flush),
        cmocka_unit_test_setup(test_fail_open_closed, flush),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
