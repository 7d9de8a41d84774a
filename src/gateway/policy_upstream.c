/* The `upstreams:` section of the gateway policy: named pools of inference endpoints with their
 * retry, budget, breaker, outlier-ejection and slow-start settings, filled into upstream.h's
 * sl_upstream_config_t and checked with the modules' own validate functions, each message
 * attached to the line of the block it is about. */
#include "gateway/policy_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MS_S     1000ull
#define MS_H     (3600ull * MS_S)
#define DAY_MS   (24ull * MS_H)
#define U32_MS   ((uint64_t)UINT32_MAX)
#define WHAT_MAX 160

typedef struct {
    sl_gw__pc_t *c;
    const char *name; /* the pool's */
    char what[WHAT_MAX];
} up_ctx_t;

/* "upstreams.<pool>.<key>" for messages. */
static const char *path(up_ctx_t *u, const char *key) {
    snprintf(u->what, sizeof u->what, "upstreams.%.64s.%s", u->name, key);
    return u->what;
}

static void dur32(up_ctx_t *u, const sl_yaml_node_t *m, const char *key, const char *shown,
                  uint64_t min, uint64_t max, uint32_t *out) {
    const sl_yaml_node_t *n = sl_yaml_map_get(m, key);
    uint64_t v;
    if (n && sl_gw__duration(u->c, n, path(u, shown), min, max, &v)) *out = (uint32_t)v;
}

static void dur64(up_ctx_t *u, const sl_yaml_node_t *m, const char *key, const char *shown,
                  uint64_t min, uint64_t max, uint64_t *out) {
    const sl_yaml_node_t *n = sl_yaml_map_get(m, key);
    uint64_t v;
    if (n && sl_gw__duration(u->c, n, path(u, shown), min, max, &v)) *out = v;
}

static void uint32_key(up_ctx_t *u, const sl_yaml_node_t *m, const char *key, const char *shown,
                       uint64_t min, uint64_t max, uint32_t *out) {
    const sl_yaml_node_t *n = sl_yaml_map_get(m, key);
    uint64_t v;
    if (n && sl_gw__uint(u->c, n, path(u, shown), min, max, &v)) *out = (uint32_t)v;
}

/* Reports a module validate function's message at the block's node. */
static void module_err(up_ctx_t *u, const sl_yaml_node_t *at, sl_buf_t *msg) {
    sl_gw__err(u->c, at, "upstreams.%.64s: %s", u->name, msg->data ? msg->data : "invalid");
    sl_buf_reset(msg);
}

static void parse_backoff(up_ctx_t *u, const sl_yaml_node_t *n, sl_retry_policy_t *r) {
    if (!sl_gw__want_map(u->c, n, path(u, "backoff"))) return;
    static const char *const keys[] = {"base", "cap", NULL};
    sl_yaml_check_keys(&u->c->ye, n, keys, "backoff");
    dur32(u, n, "base", "backoff.base", 1, MS_H, &r->backoff_base_ms);
    dur32(u, n, "cap", "backoff.cap", 1, MS_H, &r->backoff_cap_ms);
}

static void parse_budget(up_ctx_t *u, const sl_yaml_node_t *n, sl_retry_budget_config_t *b) {
    if (!sl_gw__want_map(u->c, n, path(u, "retry_budget"))) return;
    static const char *const keys[] = {"percent", "min_per_second", "window", NULL};
    sl_yaml_check_keys(&u->c->ye, n, keys, "retry_budget");
    const sl_yaml_node_t *v;
    double pct;
    if ((v = sl_yaml_map_get(n, "percent")) &&
        sl_gw__number(u->c, v, path(u, "retry_budget.percent"), 0, 100, &pct))
        b->ratio = pct / 100.0;
    uint32_key(u, n, "min_per_second", "retry_budget.min_per_second", 0, 1000000,
               &b->min_retries_per_sec);
    uint64_t ms;
    if ((v = sl_yaml_map_get(n, "window")) &&
        sl_gw__duration(u->c, v, path(u, "retry_budget.window"), MS_S, MS_H, &ms)) {
        if (ms % MS_S)
            sl_gw__err(u->c, v, "%s must be whole seconds", path(u, "retry_budget.window"));
        else
            b->window_s = (uint32_t)(ms / MS_S);
    }
}

static void parse_breaker(up_ctx_t *u, const sl_yaml_node_t *n, sl_breaker_config_t *b) {
    if (!sl_gw__want_map(u->c, n, path(u, "breaker"))) return;
    static const char *const keys[] = {"window_type",        "window_size",     "minimum_calls",
                                       "failure_rate",       "slow_call_rate",  "open_wait",
                                       "slow_call_duration", "half_open_calls", NULL};
    sl_yaml_check_keys(&u->c->ye, n, keys, "breaker");
    const sl_yaml_node_t *v;
    if ((v = sl_yaml_map_get(n, "window_type"))) {
        if (v->kind == SL_YAML_SCALAR && strcmp(v->value, "count") == 0)
            b->window_type = SL_BREAKER_WINDOW_COUNT;
        else if (v->kind == SL_YAML_SCALAR && strcmp(v->value, "time") == 0)
            b->window_type = SL_BREAKER_WINDOW_TIME;
        else
            sl_gw__err(u->c, v, "%s must be count or time", path(u, "breaker.window_type"));
    }
    if ((v = sl_yaml_map_get(n, "window_size"))) {
        /* Calls for a count window; seconds for a time window, also written as a duration. */
        uint64_t x;
        if (b->window_type == SL_BREAKER_WINDOW_TIME && v->kind == SL_YAML_SCALAR && v->len > 0 &&
            (v->value[v->len - 1] < '0' || v->value[v->len - 1] > '9')) {
            if (sl_gw__duration(u->c, v, path(u, "breaker.window_size"), MS_S,
                                SL_BREAKER_WINDOW_MAX * MS_S, &x)) {
                if (x % MS_S)
                    sl_gw__err(u->c, v, "%s must be whole seconds", path(u, "breaker.window_size"));
                else
                    b->window_size = (uint32_t)(x / MS_S);
            }
        } else if (sl_gw__uint(u->c, v, path(u, "breaker.window_size"), 1, SL_BREAKER_WINDOW_MAX,
                               &x)) {
            b->window_size = (uint32_t)x;
        }
    }
    uint32_key(u, n, "minimum_calls", "breaker.minimum_calls", 1, UINT32_MAX, &b->minimum_calls);
    if ((v = sl_yaml_map_get(n, "failure_rate")))
        sl_gw__number(u->c, v, path(u, "breaker.failure_rate"), 0.001, 100,
                      &b->failure_rate_threshold);
    if ((v = sl_yaml_map_get(n, "slow_call_rate")))
        sl_gw__number(u->c, v, path(u, "breaker.slow_call_rate"), 0.001, 100,
                      &b->slow_call_rate_threshold);
    dur64(u, n, "slow_call_duration", "breaker.slow_call_duration", 1, DAY_MS,
          &b->slow_call_duration_ms);
    dur64(u, n, "open_wait", "breaker.open_wait", 1, DAY_MS, &b->wait_in_open_ms);
    uint32_key(u, n, "half_open_calls", "breaker.half_open_calls", 1, SL_BREAKER_HALF_OPEN_MAX,
               &b->permitted_calls_in_half_open);
}

static void parse_outlier(up_ctx_t *u, const sl_yaml_node_t *n, sl_upstream_outlier_config_t *o) {
    if (!sl_gw__want_map(u->c, n, path(u, "outlier"))) return;
    static const char *const keys[] = {"consecutive_failures",
                                       "base_ejection",
                                       "max_ejection",
                                       "max_percent",
                                       "interval",
                                       "always_eject_one",
                                       NULL};
    sl_yaml_check_keys(&u->c->ye, n, keys, "outlier");
    uint32_key(u, n, "consecutive_failures", "outlier.consecutive_failures", 0, 1000000,
               &o->consecutive_failures);
    dur64(u, n, "base_ejection", "outlier.base_ejection", 1, DAY_MS, &o->base_ejection_ms);
    dur64(u, n, "max_ejection", "outlier.max_ejection", 1, DAY_MS, &o->max_ejection_ms);
    uint32_key(u, n, "max_percent", "outlier.max_percent", 0, 100, &o->max_ejection_percent);
    dur64(u, n, "interval", "outlier.interval", 1, DAY_MS, &o->interval_ms);
    const sl_yaml_node_t *v = sl_yaml_map_get(n, "always_eject_one");
    if (v) sl_gw__bool(u->c, v, path(u, "outlier.always_eject_one"), &o->always_eject_one);
}

static void parse_slow_start(up_ctx_t *u, const sl_yaml_node_t *n,
                             sl_upstream_slow_start_config_t *s) {
    if (!sl_gw__want_map(u->c, n, path(u, "slow_start"))) return;
    static const char *const keys[] = {"window", "min_weight_percent", NULL};
    sl_yaml_check_keys(&u->c->ye, n, keys, "slow_start");
    dur64(u, n, "window", "slow_start.window", 0, DAY_MS, &s->window_ms);
    uint32_key(u, n, "min_weight_percent", "slow_start.min_weight_percent", 1, 100,
               &s->min_weight_percent);
}

static void parse_endpoints(up_ctx_t *u, const sl_yaml_node_t *n, sl_gw_upstream_t *up) {
    if (!sl_gw__want(u->c, n, SL_YAML_SEQ, path(u, "endpoints"))) return;
    if (n->n == 0 || n->n > SL_UPSTREAM_MAX_ENDPOINTS) {
        sl_gw__err(u->c, n, "%s must list 1..%u endpoints", path(u, "endpoints"),
                   SL_UPSTREAM_MAX_ENDPOINTS);
        return;
    }
    char **eps = sl_calloc(n->n, sizeof *eps);
    size_t k = 0;
    for (size_t i = 0; i < n->n; i++) {
        const sl_yaml_node_t *e = n->items[i];
        if (e->kind != SL_YAML_SCALAR || strlen(e->value) != e->len ||
            !sl_upstream_addr_ok(e->value)) {
            sl_gw__err(u->c, e,
                       "%s: '%.64s' is not host:port (a DNS name, IPv4 or [IPv6], port 1..65535)",
                       path(u, "endpoints"), e->kind == SL_YAML_SCALAR ? e->value : "");
            continue;
        }
        bool dup = false;
        for (size_t j = 0; j < k && !dup; j++)
            dup = strcmp(eps[j], e->value) == 0;
        if (dup) {
            sl_gw__err(u->c, e, "%s: '%s' is listed twice", path(u, "endpoints"), e->value);
            continue;
        }
        eps[k++] = sl_strdup(e->value);
    }
    up->endpoints = (const char *const *)eps;
    up->n_endpoints = k;
}

/* One pool; up->name is already set. */
static void parse_pool(sl_gw__pc_t *c, const sl_yaml_node_t *m, sl_gw_upstream_t *up) {
    up_ctx_t u = {.c = c, .name = up->name};
    sl_upstream_config_t *cfg = &up->config;
    char where[WHAT_MAX];
    snprintf(where, sizeof where, "upstreams.%.64s", up->name);
    if (!sl_gw__want(c, m, SL_YAML_MAP, where)) return;
    static const char *const keys[] = {
        "endpoints", "resolve_interval", "timeout",     "per_try_timeout", "max_attempts",
        "backoff",   "retry_budget",     "max_pending", "max_concurrent",  "breaker",
        "outlier",   "slow_start",       NULL};
    sl_yaml_check_keys(&c->ye, m, keys, where);

    const sl_yaml_node_t *v;
    if ((v = sl_yaml_map_get(m, "endpoints")))
        parse_endpoints(&u, v, up);
    else
        sl_gw__err(c, m, "upstreams.%.64s needs endpoints (e.g. endpoints: [\"10.0.0.5:8001\"])",
                   up->name);
    dur64(&u, m, "resolve_interval", "resolve_interval", 0, DAY_MS, &up->resolve_interval_ms);
    dur32(&u, m, "timeout", "timeout", 1, DAY_MS, &cfg->retry.timeout_ms);
    dur32(&u, m, "per_try_timeout", "per_try_timeout", 0, DAY_MS, &cfg->retry.per_try_timeout_ms);
    uint32_key(&u, m, "max_attempts", "max_attempts", 1, SL_RETRY_MAX_ATTEMPTS,
               &cfg->retry.max_attempts);
    uint32_key(&u, m, "max_pending", "max_pending", 1, 1000000, &cfg->max_pending);
    uint32_key(&u, m, "max_concurrent", "max_concurrent", 1, 1000000, &cfg->max_concurrent);
    const sl_yaml_node_t *backoff = sl_yaml_map_get(m, "backoff");
    const sl_yaml_node_t *budget = sl_yaml_map_get(m, "retry_budget");
    const sl_yaml_node_t *breaker = sl_yaml_map_get(m, "breaker");
    const sl_yaml_node_t *outlier = sl_yaml_map_get(m, "outlier");
    const sl_yaml_node_t *slow = sl_yaml_map_get(m, "slow_start");
    if (backoff) parse_backoff(&u, backoff, &cfg->retry);
    if (budget) parse_budget(&u, budget, &cfg->retry_budget);
    if (breaker) parse_breaker(&u, breaker, &cfg->breaker);
    if (outlier) parse_outlier(&u, outlier, &cfg->outlier);
    if (slow) parse_slow_start(&u, slow, &cfg->slow_start);

    /* The modules' own checks (cross-field rules such as cap >= base), at the block's line. */
    sl_buf_t msg = SL_BUF_INIT;
    bool ok = true;
    if (sl_breaker_config_validate(&cfg->breaker, &msg) != 0) {
        module_err(&u, breaker ? breaker : m, &msg);
        ok = false;
    }
    if (sl_retry_policy_validate(&cfg->retry, &msg) != 0) {
        module_err(&u, backoff ? backoff : m, &msg);
        ok = false;
    }
    if (sl_retry_budget_config_validate(&cfg->retry_budget, &msg) != 0) {
        module_err(&u, budget ? budget : m, &msg);
        ok = false;
    }
    if (ok && sl_upstream_config_validate(cfg, &msg) != 0) {
        const sl_yaml_node_t *at = m;
        if (msg.data && strstr(msg.data, "outlier") && outlier) at = outlier;
        if (msg.data && strstr(msg.data, "slow_start") && slow) at = slow;
        module_err(&u, at, &msg);
    }
    sl_buf_free(&msg);
}

static sl_gw_upstream_t implicit_pool(const char *endpoint) {
    sl_gw_upstream_t up = {.name = sl_strdup(SL_GW_DEFAULT_UPSTREAM), .resolve_interval_ms = 5000};
    sl_upstream_config_default(&up.config);
    char **eps = sl_calloc(1, sizeof *eps);
    eps[0] = sl_strdup(endpoint);
    up.endpoints = (const char *const *)eps;
    up.n_endpoints = 1;
    return up;
}

void sl_gw__parse_upstreams(sl_gw__pc_t *c, const sl_yaml_node_t *n, const char *default_endpoint,
                            sl_gw_policy_t *p) {
    if (!n || sl_yaml_is_null(n)) {
        if (!default_endpoint) return; /* no pool at all: routes cannot name one */
        if (!sl_upstream_addr_ok(default_endpoint)) {
            /* A caller bug or a bad inference port setting; say so rather than assert. */
            sl_buf_printf(c->err, "%s: the default inference endpoint '%.64s' is not host:port\n",
                          c->ye.file, default_endpoint);
            c->failed = true;
            return;
        }
        p->upstreams = sl_calloc(1, sizeof *p->upstreams);
        p->upstreams[0] = implicit_pool(default_endpoint);
        p->n_upstreams = 1;
        return;
    }
    if (!sl_gw__want(c, n, SL_YAML_MAP, "upstreams")) return;
    if (n->n == 0 || n->n > SL_GW_MAX_UPSTREAMS) {
        sl_gw__err(c, n, "upstreams must name 1..%d pools (leave it out for the default pool)",
                   SL_GW_MAX_UPSTREAMS);
        return;
    }
    p->upstreams = sl_calloc(n->n, sizeof *p->upstreams);
    for (size_t i = 0; i < n->n; i++) {
        const sl_yaml_node_t *k = n->keys[i];
        if (!sl_gw__name_ok(k->value, k->len, SL_GW_NAME_MAX)) {
            sl_gw__err(c, k,
                       "upstream name '%.64s' must be 1..%d bytes of letters, digits, '_', '.', "
                       "'-'",
                       k->value, SL_GW_NAME_MAX);
            continue;
        }
        sl_gw_upstream_t *up = &p->upstreams[p->n_upstreams++];
        up->name = sl_strdup(k->value);
        up->line = k->line;
        up->resolve_interval_ms = 5000;
        sl_upstream_config_default(&up->config);
        parse_pool(c, n->items[i], up);
    }
}

void sl_gw__upstream_free(sl_gw_upstream_t *u) {
    free((char *)u->name);
    for (size_t i = 0; i < u->n_endpoints; i++)
        free((char *)u->endpoints[i]);
    free((char **)u->endpoints);
}
