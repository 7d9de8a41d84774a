/* The gateway component: the public edge in front of inference. It owns the gateway's shared
 * state (API keys, the policy from the config's `gateway:` section, upstream pools, the rate
 * limiter, the fallback cache, per-version outcomes), keeps it fresh (keys file poll, policy
 * reload with the config file, DNS re-resolution of pool endpoints) and hands requests to
 * handlers.c. Data flow: docs/gateway.md. */
#include "app.h"
#include "core/log.h"
#include "gateway/gateway_internal.h"
#include "gateway/resolve.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SWEEP_INTERVAL_MS 10000

typedef struct gw_component gw_component_t;

/* The main loop's timer lives in its own allocation: it is closed while the component is being
 * freed, and its close callback runs after that. */
typedef struct gw_timer {
    uv_timer_t t;
    gw_component_t *c;
} gw_timer_t;

struct gw_component {
    sl_gw_t gw;
    sl_service_t *service;
    char *keys_path; /* NULL: no keys file configured */
    sl_keys_reloader_t *keys_reloader;
    bool keys_loaded;
    char default_endpoint[64];
    uint32_t reload_interval_ms;
    uint64_t next_keys_ms, next_sweep_ms;
    uint64_t *next_resolve_ms; /* per pool */
    gw_timer_t *timer;
};

sl_upstream_pool_t *sl_gw_pool_find(sl_gw_t *gw, const char *name) {
    for (size_t i = 0; i < gw->n_pools; i++) {
        if (strcmp(gw->pools[i].name, name) == 0) return gw->pools[i].pool;
    }
    return NULL;
}

sl_gw_loop_t *sl_gw_loop_here(sl_gw_t *gw) {
    sl_loop_t *l = sl_loop_current();
    SL_ASSERT(l != NULL);
    return &gw->loops[sl_loop_index(l)];
}

/* ---- keys ---- */

static void poll_keys(gw_component_t *c) {
    if (!c->keys_reloader) return;
    sl_keys_t *t = NULL;
    char err[512];
    int rc = sl_keys_reloader_poll(c->keys_reloader, &t, err, sizeof err);
    if (rc != 0) {
        SL_ERROR("gateway", "keys file not loaded; the previous keys stay in effect",
                 SL_LF_S("error", err));
        return;
    }
    if (!t) return;
    SL_INFO("gateway", "keys loaded", SL_LF_S("path", c->keys_path),
            SL_LF_U("keys", sl_keys_count(t)));
    sl_keys_holder_publish(c->gw.keys, t);
    c->keys_loaded = true;
}

/* ---- pools ---- */

static void set_endpoints(sl_upstream_pool_t *pool, const sl_gw_upstream_t *u) {
    char **addrs;
    size_t n;
    sl_buf_t err = SL_BUF_INIT;
    int rc = sl_gw_resolve_endpoints(u->endpoints, u->n_endpoints, SL_UPSTREAM_MAX_ENDPOINTS,
                                     &addrs, &n, &err);
    if (err.len) {
        SL_WARN("gateway", "upstream endpoint did not resolve", SL_LF_S("pool", u->name),
                SL_LF_S("error", err.data));
    }
    sl_buf_reset(&err);
    if (rc == 0 && sl_upstream_pool_set_endpoints(pool, (const char *const *)addrs, n, &err) != 0) {
        SL_ERROR("gateway", "upstream endpoints refused", SL_LF_S("pool", u->name),
                 SL_LF_S("error", err.data));
    }
    if (rc == 0) sl_gw_endpoints_free(addrs, n);
    sl_buf_free(&err);
}

static void pools_new(gw_component_t *c, const sl_gw_policy_t *p) {
    sl_gw_t *gw = &c->gw;
    gw->n_pools = sl_gw_policy_upstream_count(p);
    gw->pools = sl_calloc(gw->n_pools ? gw->n_pools : 1, sizeof *gw->pools);
    c->next_resolve_ms = sl_calloc(gw->n_pools ? gw->n_pools : 1, sizeof *c->next_resolve_ms);
    for (size_t i = 0; i < gw->n_pools; i++) {
        const sl_gw_upstream_t *u = sl_gw_policy_upstream_at(p, i);
        snprintf(gw->pools[i].name, sizeof gw->pools[i].name, "%s", u->name);
        gw->pools[i].pool = sl_upstream_pool_new(u->name, &u->config, NULL);
        set_endpoints(gw->pools[i].pool, u);
    }
}

/* Re-resolves the DNS names of every pool whose interval has passed (blocking getaddrinfo on the
 * main loop, which carries no requests; cluster DNS answers from a local cache). */
static void resolve_due(gw_component_t *c, uint64_t now) {
    sl_gw_policy_t *p = sl_gw_policy_holder_acquire(c->gw.policy);
    for (size_t i = 0; i < c->gw.n_pools; i++) {
        const sl_gw_upstream_t *u = sl_gw_policy_upstream_find(p, sl_str_c(c->gw.pools[i].name));
        if (!u || !u->resolve_interval_ms || now < c->next_resolve_ms[i]) continue;
        c->next_resolve_ms[i] = now + u->resolve_interval_ms;
        if (sl_gw_endpoints_need_dns(u->endpoints, u->n_endpoints))
            set_endpoints(c->gw.pools[i].pool, u);
    }
    sl_gw_policy_unref(p);
}

/* ---- policy reload ---- */

static void log_policy_errors(const char *msg, const sl_buf_t *err) {
    const char *s = err->data ? err->data : "";
    while (*s) {
        const char *nl = strchr(s, '\n');
        size_t n = nl ? (size_t)(nl - s) : strlen(s);
        char *line = sl_strndup(s, n);
        SL_ERROR("gateway", msg, SL_LF_S("error", line));
        free(line);
        s += n + (nl ? 1 : 0);
    }
}

static int load_policy(gw_component_t *c, const char *path, sl_gw_policy_t **out, sl_buf_t *err) {
    if (!path) return sl_gw_policy_parse("(defaults)", NULL, c->default_endpoint, out, err);
    return sl_gw_policy_load(path, c->default_endpoint, out, err);
}

static void default_endpoint(const sl_config_t *cfg, char out[64]) {
    snprintf(out, 64, "127.0.0.1:%u", (unsigned)cfg->inference.grpc_port);
}

static int check(const sl_config_t *cfg, sl_buf_t *err) {
    gw_component_t c = {0};
    default_endpoint(cfg, c.default_endpoint);
    sl_gw_policy_t *p;
    int rc = load_policy(&c, cfg->path, &p, err);
    sl_gw_policy_unref(rc == 0 ? p : NULL);
    return rc;
}

static void reload(void *state, const sl_config_t *cfg) {
    gw_component_t *c = state;
    sl_gw_t *gw = &c->gw;
    sl_gw_policy_t *np;
    sl_buf_t err = SL_BUF_INIT;
    if (load_policy(c, cfg->path, &np, &err) != 0) {
        log_policy_errors("gateway policy not reloaded; the previous one stays in effect", &err);
        sl_buf_free(&err);
        return;
    }
    sl_buf_free(&err);
    for (size_t i = 0; i < sl_gw_policy_upstream_count(np); i++) {
        const sl_gw_upstream_t *u = sl_gw_policy_upstream_at(np, i);
        sl_upstream_pool_t *pool = sl_gw_pool_find(gw, u->name);
        if (!pool) {
            SL_ERROR("gateway", "gateway policy not reloaded: a new upstream pool needs a restart",
                     SL_LF_S("pool", u->name));
            sl_gw_policy_unref(np);
            return;
        }
        const sl_gw_upstream_t *running =
            sl_gw_policy_upstream_find(gw->limits_policy, sl_str_c(u->name));
        if (!sl_gw_upstream_same_settings(running, u)) {
            SL_WARN("gateway", "restart required", SL_LF_S("pool", u->name),
                    SL_LF_S("reason", "upstream settings changed; endpoints are updated now, the "
                                      "rest at the next restart"));
        }
        set_endpoints(pool, u);
    }
    if (!sl_gw_limits_equal(sl_gw_policy_limits(gw->limits_policy), sl_gw_policy_limits(np))) {
        SL_WARN("gateway", "restart required", SL_LF_S("option", "gateway.limits"),
                SL_LF_S("reason", "changed in the file; the running limits stay until a restart"));
    }
    sl_gw_policy_holder_publish(gw->policy, np);
    SL_INFO("gateway", "gateway policy reloaded", SL_LF_S("path", cfg->path));
}

/* ---- the main loop's timer ---- */

static void on_tick(uv_timer_t *t) {
    gw_component_t *c = ((gw_timer_t *)t->data)->c;
    uint64_t now = sl_now_ms();
    if (now >= c->next_keys_ms) {
        c->next_keys_ms = now + c->reload_interval_ms;
        poll_keys(c);
    }
    if (now >= c->next_sweep_ms) {
        c->next_sweep_ms = now + SWEEP_INTERVAL_MS;
        if (c->gw.has_limiter) sl_rl_sweep(&c->gw.limiter);
    }
    resolve_due(c, now);
}

static void timer_closed(uv_handle_t *h) {
    free(h->data);
}

/* ---- per-loop state ---- */

static void loop_finish(sl_loop_t *loop, void *arg) {
    sl_gw_t *gw = arg;
    sl_gw_loop_t *gl = &gw->loops[sl_loop_index(loop)];
    if (gw->has_limiter) sl_rl_loop_close(&gw->limiter, sl_loop_uv(loop));
    sl_gw_clients_free(gl->clients);
    gl->clients = NULL;
    sl_gw_req_cache_free(gl);
    sl_keys_view_release(&gl->keys);
    sl_gw_policy_view_release(&gl->policy);
}

/* ---- health ---- */

static sl_health_status_t keys_check(void *arg, sl_buf_t *detail) {
    gw_component_t *c = arg;
    if (!c->keys_path) {
        /* A deliberate setup (no clients yet), said at start-up and here. */
        sl_buf_puts(detail, "gateway.keys_file is not set: every request is refused (401)");
        return SL_HEALTH_OK;
    }
    if (!c->keys_loaded) {
        sl_buf_puts(detail, "the keys file has not loaded (see the log): every request is "
                            "refused (401)");
        return SL_HEALTH_DEGRADED;
    }
    return SL_HEALTH_OK;
}

/* ---- lifecycle ---- */

static void metrics_new(sl_gw_metrics_t *m) {
    sl_metrics_t *r = sl_metrics_default();
    m->auth_failures =
        sl_metrics_counter_family(r, "sluice_gateway_auth_failures_total",
                                  "Requests refused by authentication or scope, by reason.", 1,
                                  (const char *[]){"reason"}, 16);
    m->rate_limited = sl_metrics_counter_family(r, "sluice_gateway_rate_limited_total",
                                                "Requests refused by a rate limit or quota.", 1,
                                                (const char *[]){"class"}, 16);
    m->upstream =
        sl_metrics_counter_family(r, "sluice_gateway_upstream_calls_total",
                                  "Upstream calls by pool and how their last attempt ended.", 2,
                                  (const char *[]){"pool", "outcome"}, 256);
    m->degraded = sl_metrics_counter(r, "sluice_gateway_degraded_total",
                                     "Fallback answers served (marked degraded).");
    m->faults = sl_metrics_counter_family(r, "sluice_gateway_faults_injected_total",
                                          "Faults injected by configuration.", 1,
                                          (const char *[]){"kind"}, 4);
    m->limiter_errors = sl_metrics_counter(
        r, "sluice_gateway_limiter_errors_total",
        "Rate-limit checks the limiter could not decide (answered by fail_open/closed).");
}

static int limiter_new(sl_gw_t *gw, const sl_gw_limits_t *lim, sl_buf_t *err) {
    int rc = 0;
    if (lim->mode == SL_GW_LIMITS_LOCAL) {
        rc = sl_rl_local_new(&lim->rl, &gw->limiter, err);
    } else if (lim->mode == SL_GW_LIMITS_REDIS) {
        sl_rl_redis_opts_t ro = {
            .host = lim->redis.host,
            .port = lim->redis.port,
            .password = lim->redis.password,
            .key_prefix = lim->redis.key_prefix,
            .timeout_ms = lim->redis.timeout_ms,
            .fail_open = lim->redis.fail_open,
        };
        rc = sl_rl_redis_new(&lim->rl, &ro, &gw->limiter, err);
    } else {
        return 0;
    }
    gw->has_limiter = rc == 0;
    return rc;
}

static void destroy(void *state);

static int init(sl_app_t *app, void **state, sl_buf_t *err) {
    const sl_config_t *cfg = app->cfg;
    gw_component_t *c = sl_calloc(1, sizeof *c);
    sl_gw_t *gw = &c->gw;
    gw->rt = app->rt;
    c->reload_interval_ms = cfg->gateway.reload_interval_ms;
    default_endpoint(cfg, c->default_endpoint);
    sl_gw_policy_t *policy;
    if (load_policy(c, cfg->path, &policy, err) != 0) {
        free(c);
        return SL_EINVAL;
    }
    gw->policy = sl_gw_policy_holder_new(policy);
    gw->limits_policy = sl_gw_policy_ref(policy);
    if (limiter_new(gw, sl_gw_policy_limits(policy), err) != 0) {
        destroy(c);
        return SL_EINVAL;
    }
    c->service = sl_component_service_new(app, "gateway", cfg->gateway.http_port, false, 0, err);
    if (!c->service) {
        destroy(c);
        return SL_EIO;
    }
    metrics_new(&gw->m);
    gw->outcomes = sl_outcomes_new(sl_metrics_default());
    const sl_gw_fallback_cache_cfg_t *fc = sl_gw_policy_fallback_cache(policy);
    gw->fallback = sl_fallback_cache_new(fc->max_entries, fc->max_bytes, fc->ttl_ms);
    pools_new(c, policy);
    gw->keys = sl_keys_holder_new(NULL);
    c->keys_path = sl_app_path(NULL, cfg->gateway.keys_file, cfg->path);
    if (c->keys_path) {
        c->keys_reloader = sl_keys_reloader_new(c->keys_path);
        poll_keys(c);
    } else {
        SL_WARN("gateway", "gateway.keys_file is not set: every request will be refused (401)");
    }
    gw->n_loops = sl_runtime_loop_count(app->rt);
    gw->loops = sl_calloc(gw->n_loops, sizeof *gw->loops);
    for (unsigned i = 0; i < gw->n_loops; i++) {
        gw->loops[i].clients = sl_gw_clients_new(sl_loop_uv(sl_runtime_loop(app->rt, i)), NULL);
    }
    sl_runtime_on_loop_finish(app->rt, loop_finish, gw);
    sl_health_add(sl_service_health(c->service), "keys", keys_check, c, false);
    sl_gw_handlers_register(gw, sl_service_http(c->service));
    *state = c;
    return SL_OK;
}

static void start(void *state) {
    gw_component_t *c = state;
    uint64_t now = sl_now_ms();
    c->next_keys_ms = now + c->reload_interval_ms;
    c->next_sweep_ms = now + SWEEP_INTERVAL_MS;
    for (size_t i = 0; i < c->gw.n_pools; i++) {
        const sl_gw_upstream_t *u =
            sl_gw_policy_upstream_find(c->gw.limits_policy, sl_str_c(c->gw.pools[i].name));
        c->next_resolve_ms[i] = now + (u ? u->resolve_interval_ms : 0);
    }
    c->timer = sl_calloc(1, sizeof *c->timer);
    c->timer->c = c;
    uv_timer_init(sl_runtime_main_loop(c->gw.rt), &c->timer->t);
    c->timer->t.data = c->timer;
    uint64_t period = SL_MIN(c->reload_interval_ms, 1000u);
    uv_timer_start(&c->timer->t, on_tick, period, period);
    uv_unref((uv_handle_t *)&c->timer->t);
    atomic_store(&c->gw.started, true);
    sl_health_set_started(sl_service_health(c->service), true);
}

static void stop(void *state) {
    gw_component_t *c = state;
    atomic_store(&c->gw.started, false);
    sl_health_set_started(sl_service_health(c->service), false);
}

static void destroy(void *state) {
    gw_component_t *c = state;
    if (!c) return;
    sl_gw_t *gw = &c->gw;
    if (c->timer) uv_close((uv_handle_t *)&c->timer->t, timer_closed);
    if (gw->loops) {
        /* Loops that never ran (a failed start) still hold their views and clients. */
        for (unsigned i = 0; i < gw->n_loops; i++) {
            sl_gw_clients_free(gw->loops[i].clients);
            sl_gw_req_cache_free(&gw->loops[i]);
            sl_keys_view_release(&gw->loops[i].keys);
            sl_gw_policy_view_release(&gw->loops[i].policy);
        }
        free(gw->loops);
    }
    sl_service_free(c->service);
    for (size_t i = 0; i < gw->n_pools; i++)
        sl_upstream_pool_free(gw->pools[i].pool);
    free(gw->pools);
    free(c->next_resolve_ms);
    if (gw->has_limiter) sl_rl_free(&gw->limiter);
    sl_fallback_cache_free(gw->fallback);
    sl_outcomes_free(gw->outcomes);
    if (gw->keys) sl_keys_holder_free(gw->keys);
    sl_keys_reloader_free(c->keys_reloader);
    free(c->keys_path);
    sl_gw_policy_unref(gw->limits_policy);
    if (gw->policy) sl_gw_policy_holder_free(gw->policy);
    free(c);
}

static sl_health_t *health(void *state) {
    gw_component_t *c = state;
    return sl_service_health(c->service);
}

const sl_component_t sl_component_gateway = {
    .name = "gateway",
    .summary = "the public edge: API keys, rate limits, routing, traffic splits, resilience",
    .init = init,
    .start = start,
    .stop = stop,
    .check = check,
    .reload = reload,
    .free = destroy,
    .health = health,
};
