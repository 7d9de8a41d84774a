/* Times a rate-limit check: (a) the local limiter, synchronously on one thread, and (b) the
 * Redis limiter on one uv loop with a window of K checks in flight (pipelined on its one
 * connection), both over N distinct keys with a bucket and a daily quota per check. Prints one
 * JSON line:
 *   {"local_ns":..,"local_per_s":..,"redis_per_s":..,"redis_ratio":..,"window":K,...}
 * where redis_ratio = local_per_s / redis_per_s (how many times slower Redis mode is; the issue's
 * target is <= 1.3). Needs a running redis-server (--redis HOST:PORT). Links sl_gateway. */
#include "core/common.h"
#include "gateway/ratelimit.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

typedef struct bench {
    sl_ratelimiter_t rl;
    uv_loop_t loop;
    char (*keys)[32];
    char (*tenants)[32];
    long nkeys, total, sent, answered, errors, allowed;
} bench_t;

static void usage(void) {
    fprintf(stderr, "usage: ratelimit_bench --redis HOST:PORT [--keys N] [--window K] "
                    "[--checks M] [--password P]\n");
    exit(2);
}

static sl_rl_request_t request(const bench_t *b, long i) {
    long k = i % b->nkeys;
    return (sl_rl_request_t){.key_id = b->keys[k],
                             .quota_id = b->tenants[k],
                             .route_class = "predict",
                             .tier = "standard"};
}

static void send_next(bench_t *b);

static void on_done(int status, const sl_rl_result_t *res, void *arg) {
    bench_t *b = arg;
    b->answered++;
    if (status != 0)
        b->errors++;
    else if (res->allowed)
        b->allowed++;
    if (b->sent < b->total) send_next(b);
}

static void send_next(bench_t *b) {
    sl_rl_request_t req = request(b, b->sent++);
    int rc = sl_rl_check_async(&b->rl, &b->loop, &req, on_done, b);
    if (rc) {
        fprintf(stderr, "ratelimit_bench: check refused: %s\n", sl_strerror(rc));
        exit(1);
    }
}

/* Runs `total` checks with `window` in flight; returns the elapsed ns. */
static uint64_t run_redis(bench_t *b, long total, long window) {
    b->total = total;
    b->sent = b->answered = b->errors = b->allowed = 0;
    uint64_t t0 = sl_now_ns();
    for (long i = 0; i < window && b->sent < b->total; i++)
        send_next(b);
    while (b->answered < b->total)
        uv_run(&b->loop, UV_RUN_ONCE);
    return sl_now_ns() - t0;
}

int main(int argc, char **argv) {
    const char *addr = NULL, *password = NULL;
    long nkeys = 1000, window = 64, checks = 200000;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (i + 1 >= argc) usage();
        const char *v = argv[++i];
        if (strcmp(a, "--redis") == 0)
            addr = v;
        else if (strcmp(a, "--keys") == 0)
            nkeys = atol(v);
        else if (strcmp(a, "--window") == 0)
            window = atol(v);
        else if (strcmp(a, "--checks") == 0)
            checks = atol(v);
        else if (strcmp(a, "--password") == 0)
            password = v;
        else
            usage();
    }
    if (!addr || nkeys < 1 || window < 1 || checks < 1) usage();
    char host[256];
    const char *colon = strrchr(addr, ':');
    long port = colon ? atol(colon + 1) : 0;
    size_t hl = colon ? (size_t)(colon - addr) : 0;
    if (hl >= 2 && addr[0] == '[' && addr[hl - 1] == ']') { /* [::1]:6379 */
        addr++;
        hl -= 2;
    }
    if (hl == 0 || hl >= sizeof host || port < 1 || port > 65535) usage();
    memcpy(host, addr, hl);
    host[hl] = '\0';
    signal(SIGPIPE, SIG_IGN);

    /* Every check passes: the cost measured is the whole check, not an early deny. */
    static const sl_rl_class_t cls[] = {
        {.name = "predict", .rate = 1000000, .burst = 1000000, .counts_quota = true}};
    static const sl_rl_tier_t tiers[] = {{"standard", 1000000000000000ull}};
    sl_rl_config_t cfg = {.classes = cls,
                          .n_classes = 1,
                          .tiers = tiers,
                          .n_tiers = 1,
                          .max_buckets = (size_t)nkeys * 2 + 16,
                          .idle_ttl_ms = 60000};
    bench_t b = {.nkeys = nkeys};
    b.keys = calloc((size_t)nkeys, sizeof *b.keys);
    b.tenants = calloc((size_t)nkeys, sizeof *b.tenants);
    for (long i = 0; i < nkeys; i++) {
        snprintf(b.keys[i], sizeof b.keys[i], "key_%08lx", (unsigned long)i);
        snprintf(b.tenants[i], sizeof b.tenants[i], "tenant_%ld", i / 4);
    }

    /* (a) local, synchronous: a warm-up pass over the keys, then the timed run. */
    sl_buf_t err = SL_BUF_INIT;
    if (sl_rl_local_new(&cfg, &b.rl, &err) != 0) {
        fprintf(stderr, "ratelimit_bench: %s\n", err.data);
        return 1;
    }
    sl_rl_result_t res;
    for (long i = 0; i < nkeys; i++) {
        sl_rl_request_t req = request(&b, i);
        sl_rl_check(&b.rl, &req, &res);
    }
    long local_checks = SL_MAX(checks, 1000000L);
    uint64_t t0 = sl_now_ns();
    long pass = 0;
    for (long i = 0; i < local_checks; i++) {
        sl_rl_request_t req = request(&b, i);
        if (sl_rl_check(&b.rl, &req, &res) == 0 && res.allowed) pass++;
    }
    double local_ns = (double)(sl_now_ns() - t0) / (double)local_checks;
    sl_rl_free(&b.rl);
    if (pass != local_checks) {
        fprintf(stderr, "ratelimit_bench: local denied %ld checks\n", local_checks - pass);
        return 1;
    }

    /* (b) Redis, K in flight on one loop; a key prefix of its own per run. */
    char prefix[64];
    snprintf(prefix, sizeof prefix, "sluice:bench:%ld:", (long)getpid());
    sl_rl_redis_opts_t ro = {.host = host,
                             .port = (uint16_t)port,
                             .password = password,
                             .key_prefix = prefix,
                             .timeout_ms = 2000,
                             .fail_open = false};
    if (sl_rl_redis_new(&cfg, &ro, &b.rl, &err) != 0) {
        fprintf(stderr, "ratelimit_bench: %s\n", err.data);
        return 1;
    }
    uv_loop_init(&b.loop);
    run_redis(&b, 1, 1);                          /* connect */
    run_redis(&b, SL_MIN(nkeys, checks), window); /* creates the keys */
    if (b.errors) {
        fprintf(stderr, "ratelimit_bench: cannot reach redis at %s:%ld\n", host, port);
        return 1;
    }
    uint64_t dt = run_redis(&b, checks, window);
    if (b.errors || b.allowed != checks) {
        fprintf(stderr, "ratelimit_bench: %ld errors, %ld denied\n", b.errors,
                checks - b.allowed - b.errors);
        return 1;
    }
    sl_rl_loop_close(&b.rl, &b.loop);
    uv_run(&b.loop, UV_RUN_DEFAULT);
    uv_loop_close(&b.loop);
    sl_rl_free(&b.rl);

    double local_per_s = 1e9 / local_ns;
    double redis_per_s = (double)checks * 1e9 / (double)dt;
    printf("{\"local_ns\":%.1f,\"local_per_s\":%.0f,\"redis_per_s\":%.0f,\"redis_ratio\":%.2f,"
           "\"window\":%ld,\"keys\":%ld,\"checks\":%ld}\n",
           local_ns, local_per_s, redis_per_s, local_per_s / redis_per_s, window, nkeys, checks);
    sl_buf_free(&err);
    free(b.keys);
    free(b.tenants);
    return 0;
}
