/* The gateway policy object (see policy.h): the top-level parse of the `gateway:` section
 * (sections in policy_upstream.c, policy_limits.c, policy_routes.c; access log and fallback
 * cache here), loading it from the main config file, reference counting, lookups, fault
 * decisions, the hot-reload equality helpers and the holder that publishes policies to the
 * I/O threads. */
#include "gateway/policy.h"

#include "core/config.h"

#include "core/log.h"
#include "gateway/fallback.h"
#include "gateway/policy_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MS_M   60000ull
#define DAY_MS (1440ull * MS_M)

/* ---- references and lookups --------------------------------------------------------------- */

static void policy_free(sl_gw_policy_t *p) {
    for (size_t i = 0; i < p->n_upstreams; i++)
        sl_gw__upstream_free(&p->upstreams[i]);
    free(p->upstreams);
    sl_gw__limits_free(&p->limits);
    for (size_t i = 0; i < p->n_routes; i++)
        sl_gw__route_free(&p->routes[i]);
    free(p->routes);
    for (size_t i = 0; i < p->n_pipelines; i++) {
        free((char *)p->pipelines[i].name);
        sl_pipeline_free((sl_pipeline_t *)p->pipelines[i].pipeline);
        sl_gw__route_free(&p->pipelines[i].route);
    }
    free(p->pipelines);
    sl_traffic_set_unref(p->traffic);
    free(p);
}

sl_gw_policy_t *sl_gw_policy_ref(const sl_gw_policy_t *cp) {
    sl_gw_policy_t *p = (sl_gw_policy_t *)cp; /* the count is not part of the value */
    atomic_fetch_add_explicit(&p->refs, 1, memory_order_relaxed);
    return p;
}

void sl_gw_policy_unref(const sl_gw_policy_t *cp) {
    sl_gw_policy_t *p = (sl_gw_policy_t *)cp;
    if (!p) return;
    uint32_t before = atomic_fetch_sub_explicit(&p->refs, 1, memory_order_acq_rel);
    SL_ASSERT(before > 0);
    if (before == 1) policy_free(p);
}

size_t sl_gw_policy_upstream_count(const sl_gw_policy_t *p) {
    return p->n_upstreams;
}

const sl_gw_upstream_t *sl_gw_policy_upstream_at(const sl_gw_policy_t *p, size_t i) {
    SL_ASSERT(i < p->n_upstreams);
    return &p->upstreams[i];
}

const sl_gw_upstream_t *sl_gw_policy_upstream_find(const sl_gw_policy_t *p, sl_str_t name) {
    for (size_t i = 0; name.ptr && i < p->n_upstreams; i++) {
        const char *n = p->upstreams[i].name;
        if (strlen(n) == name.len && memcmp(n, name.ptr, name.len) == 0) return &p->upstreams[i];
    }
    return NULL;
}

const sl_gw_limits_t *sl_gw_policy_limits(const sl_gw_policy_t *p) {
    return &p->limits;
}

static int cmp_name(sl_str_t key, const char *name) {
    size_t n = strlen(name);
    int c = memcmp(key.ptr, name, SL_MIN(key.len, n));
    if (c) return c;
    return key.len < n ? -1 : key.len > n ? 1 : 0;
}

/* Binary search over an array of structs sorted by a string member. */
#define FIND_SORTED(arr, n, member, key)                                                           \
    do {                                                                                           \
        size_t lo_ = 0, hi_ = (n);                                                                 \
        while (lo_ < hi_) {                                                                        \
            size_t mid_ = lo_ + (hi_ - lo_) / 2;                                                   \
            int c_ = cmp_name((key), (arr)[mid_].member);                                          \
            if (c_ == 0) return &(arr)[mid_];                                                      \
            if (c_ < 0)                                                                            \
                hi_ = mid_;                                                                        \
            else                                                                                   \
                lo_ = mid_ + 1;                                                                    \
        }                                                                                          \
    } while (0)

static const sl_gw_route_t *find_route(const sl_gw_policy_t *p, sl_str_t model) {
    if (model.ptr) FIND_SORTED(p->routes, p->n_routes, model, model);
    return NULL;
}

const sl_gw_route_t *sl_gw_policy_route(const sl_gw_policy_t *p, sl_str_t model) {
    /* "*" is not a model name, so a request for model "*" cannot pick the entry by name. */
    const sl_gw_route_t *r = model.len == 1 && model.ptr[0] == '*' ? NULL : find_route(p, model);
    if (r) return r;
    if (p->star) return p->star;
    return p->has_implicit ? &p->implicit : NULL;
}

size_t sl_gw_policy_route_count(const sl_gw_policy_t *p) {
    return p->n_routes;
}

const sl_gw_route_t *sl_gw_policy_route_at(const sl_gw_policy_t *p, size_t i) {
    SL_ASSERT(i < p->n_routes);
    return &p->routes[i];
}

const sl_gw_pipeline_route_t *sl_gw_policy_pipeline(const sl_gw_policy_t *p, sl_str_t name) {
    if (name.ptr) FIND_SORTED(p->pipelines, p->n_pipelines, name, name);
    return NULL;
}

size_t sl_gw_policy_pipeline_count(const sl_gw_policy_t *p) {
    return p->n_pipelines;
}

const sl_gw_pipeline_route_t *sl_gw_policy_pipeline_at(const sl_gw_policy_t *p, size_t i) {
    SL_ASSERT(i < p->n_pipelines);
    return &p->pipelines[i];
}

const sl_traffic_set_t *sl_gw_policy_traffic(const sl_gw_policy_t *p) {
    return p->traffic;
}

const sl_access_log_cfg_t *sl_gw_policy_access_log(const sl_gw_policy_t *p) {
    return &p->access_log;
}

const sl_gw_fallback_cache_cfg_t *sl_gw_policy_fallback_cache(const sl_gw_policy_t *p) {
    return &p->fallback_cache;
}

/* ---- fault injection ---------------------------------------------------------------------- */

/* floor(r * n / 2^64): a uniform draw onto [0, n). */
static inline uint64_t scale(uint64_t r, uint64_t n) {
    return (uint64_t)(((unsigned __int128)r * n) >> 64);
}

sl_gw_fault_action_t sl_gw_fault_decide(const sl_gw_fault_t *f, uint64_t r_delay,
                                        uint64_t r_abort) {
    sl_gw_fault_action_t a = {0};
    if (!f) return a;
    if (f->delay_bp && scale(r_delay, SL_GW_FAULT_SCALE) < f->delay_bp) a.delay_ms = f->delay_ms;
    if (f->abort_bp && scale(r_abort, SL_GW_FAULT_SCALE) < f->abort_bp)
        a.abort_status = f->abort_status;
    return a;
}

/* ---- hot-reload equality ------------------------------------------------------------------ */

static bool str_eq(const char *a, const char *b) {
    return a == b || (a && b && strcmp(a, b) == 0);
}

static const sl_rl_class_t *class_named(const sl_rl_config_t *rl, const char *name) {
    for (size_t i = 0; i < rl->n_classes; i++)
        if (strcmp(rl->classes[i].name, name) == 0) return &rl->classes[i];
    return NULL;
}

static const sl_rl_tier_t *tier_named(const sl_rl_config_t *rl, const char *name) {
    for (size_t i = 0; i < rl->n_tiers; i++)
        if (strcmp(rl->tiers[i].name, name) == 0) return &rl->tiers[i];
    return NULL;
}

bool sl_gw_limits_equal(const sl_gw_limits_t *a, const sl_gw_limits_t *b) {
    if (!a || !b) return a == b;
    const sl_rl_config_t *x = &a->rl, *y = &b->rl;
    if (a->mode != b->mode || x->n_classes != y->n_classes || x->n_tiers != y->n_tiers ||
        x->utc_offset_s != y->utc_offset_s || x->peak_start_s != y->peak_start_s ||
        x->peak_end_s != y->peak_end_s || x->max_buckets != y->max_buckets ||
        x->idle_ttl_ms != y->idle_ttl_ms || x->clock != y->clock || x->clock_ctx != y->clock_ctx)
        return false;
    /* Classes and tiers compare as sets: their order in the file means nothing. */
    for (size_t i = 0; i < x->n_classes; i++) {
        const sl_rl_class_t *p = &x->classes[i], *q = class_named(y, p->name);
        if (!q || p->rate != q->rate || p->burst != q->burst || p->peak_rate != q->peak_rate ||
            p->peak_burst != q->peak_burst || p->counts_quota != q->counts_quota)
            return false;
    }
    for (size_t i = 0; i < x->n_tiers; i++) {
        const sl_rl_tier_t *q = tier_named(y, x->tiers[i].name);
        if (!q || q->daily_quota != x->tiers[i].daily_quota) return false;
    }
    const sl_rl_redis_opts_t *r = &a->redis, *s = &b->redis;
    return str_eq(r->host, s->host) && r->port == s->port && str_eq(r->password, s->password) &&
           str_eq(r->key_prefix, s->key_prefix) && r->timeout_ms == s->timeout_ms &&
           r->fail_open == s->fail_open;
}

/* Field by field: a struct compare would read padding. */
static bool upstream_config_equal(const sl_upstream_config_t *a, const sl_upstream_config_t *b) {
    const sl_breaker_config_t *x = &a->breaker, *y = &b->breaker;
    if (x->window_type != y->window_type || x->window_size != y->window_size ||
        x->minimum_calls != y->minimum_calls ||
        x->failure_rate_threshold != y->failure_rate_threshold ||
        x->slow_call_rate_threshold != y->slow_call_rate_threshold ||
        x->slow_call_duration_ms != y->slow_call_duration_ms ||
        x->wait_in_open_ms != y->wait_in_open_ms ||
        x->permitted_calls_in_half_open != y->permitted_calls_in_half_open)
        return false;
    const sl_upstream_outlier_config_t *o = &a->outlier, *p = &b->outlier;
    if (o->consecutive_failures != p->consecutive_failures ||
        o->base_ejection_ms != p->base_ejection_ms || o->max_ejection_ms != p->max_ejection_ms ||
        o->max_ejection_percent != p->max_ejection_percent || o->interval_ms != p->interval_ms ||
        o->always_eject_one != p->always_eject_one)
        return false;
    if (a->slow_start.window_ms != b->slow_start.window_ms ||
        a->slow_start.min_weight_percent != b->slow_start.min_weight_percent)
        return false;
    const sl_retry_policy_t *r = &a->retry, *s = &b->retry;
    if (r->max_attempts != s->max_attempts || r->backoff_base_ms != s->backoff_base_ms ||
        r->backoff_cap_ms != s->backoff_cap_ms || r->per_try_timeout_ms != s->per_try_timeout_ms ||
        r->timeout_ms != s->timeout_ms)
        return false;
    return a->retry_budget.ratio == b->retry_budget.ratio &&
           a->retry_budget.min_retries_per_sec == b->retry_budget.min_retries_per_sec &&
           a->retry_budget.window_s == b->retry_budget.window_s &&
           a->max_pending == b->max_pending && a->max_concurrent == b->max_concurrent;
}

bool sl_gw_upstream_same_settings(const sl_gw_upstream_t *a, const sl_gw_upstream_t *b) {
    if (!a || !b) return a == b;
    return str_eq(a->name, b->name) && a->resolve_interval_ms == b->resolve_interval_ms &&
           upstream_config_equal(&a->config, &b->config);
}

/* ---- access log and fallback cache -------------------------------------------------------- */

static void names_list(sl_gw__pc_t *c, const sl_yaml_node_t *n, const char *what,
                       sl_access_log_cfg_t *cfg,
                       int (*add)(sl_access_log_cfg_t *, const char *, char *, size_t)) {
    if (!sl_gw__want(c, n, SL_YAML_SEQ, what)) return;
    for (size_t i = 0; i < n->n; i++) {
        const sl_yaml_node_t *e = n->items[i];
        char msg[256];
        if (!sl_gw__want(c, e, SL_YAML_SCALAR, what)) continue;
        if (add(cfg, e->value, msg, sizeof msg) != 0) sl_gw__err(c, e, "%s", msg);
    }
}

static void parse_scrub(sl_gw__pc_t *c, const sl_yaml_node_t *n, sl_access_log_cfg_t *cfg) {
    if (!sl_gw__want(c, n, SL_YAML_SEQ, "access_log.scrub")) return;
    for (size_t i = 0; i < n->n; i++) {
        const sl_yaml_node_t *e = n->items[i], *name = e;
        sl_access_scrub_mode_t mode = SL_ACCESS_SCRUB_HASH;
        if (e->kind == SL_YAML_MAP) {
            static const char *const keys[] = {"name", "mode", NULL};
            sl_yaml_check_keys(&c->ye, e, keys, "access_log.scrub");
            name = sl_yaml_map_get(e, "name");
            const sl_yaml_node_t *m = sl_yaml_map_get(e, "mode");
            if (!name) {
                sl_gw__err(c, e, "access_log.scrub entries need a name");
                continue;
            }
            if (m && (m->kind != SL_YAML_SCALAR ||
                      sl_access_log_scrub_mode_parse(m->value, &mode) != 0)) {
                sl_gw__err(c, m, "access_log.scrub mode must be hash or redact");
                continue;
            }
        }
        if (!sl_gw__want(c, name, SL_YAML_SCALAR, "access_log.scrub name")) continue;
        char msg[256];
        if (sl_access_log_cfg_add_scrub(cfg, name->value, mode, msg, sizeof msg) != 0)
            sl_gw__err(c, name, "%s", msg);
    }
}

static void parse_access_log(sl_gw__pc_t *c, const sl_yaml_node_t *n, sl_access_log_cfg_t *cfg) {
    sl_access_log_cfg_init(cfg);
    if (!sl_gw__want_map(c, n, "access_log")) return;
    static const char *const keys[] = {"enabled",
                                       "sample_percent",
                                       "errors_sample_percent",
                                       "rejections_sample_percent",
                                       "fields",
                                       "headers",
                                       "scrub",
                                       "salt",
                                       NULL};
    sl_yaml_check_keys(&c->ye, n, keys, "access_log");
    int before = c->ye.n;
    const sl_yaml_node_t *v;
    if ((v = sl_yaml_map_get(n, "enabled"))) sl_gw__bool(c, v, "access_log.enabled", &cfg->enabled);
    static const struct {
        const char *key;
        size_t off;
    } pcts[] = {
        {"sample_percent", offsetof(sl_access_log_cfg_t, sample_bp)},
        {"errors_sample_percent", offsetof(sl_access_log_cfg_t, errors_sample_bp)},
        {"rejections_sample_percent", offsetof(sl_access_log_cfg_t, rejections_sample_bp)},
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(pcts); i++) {
        if (!(v = sl_yaml_map_get(n, pcts[i].key))) continue;
        uint32_t bp;
        if (v->kind != SL_YAML_SCALAR || sl_access_log_percent_parse(v->value, &bp) != 0)
            sl_gw__err(c, v,
                       "access_log.%s: expected a percent from 0 to 100 with at most two "
                       "decimals",
                       pcts[i].key);
        else
            memcpy((char *)cfg + pcts[i].off, &bp, sizeof bp);
    }
    if ((v = sl_yaml_map_get(n, "fields")) && !sl_yaml_is_null(v))
        names_list(c, v, "access_log.fields", cfg, sl_access_log_cfg_add_field);
    if ((v = sl_yaml_map_get(n, "headers")) && !sl_yaml_is_null(v))
        names_list(c, v, "access_log.headers", cfg, sl_access_log_cfg_add_header);
    if ((v = sl_yaml_map_get(n, "scrub")) && !sl_yaml_is_null(v)) parse_scrub(c, v, cfg);
    if ((v = sl_yaml_map_get(n, "salt")) && !sl_yaml_is_null(v)) {
        sl_buf_t salt = SL_BUF_INIT;
        char msg[256];
        if (sl_gw__expand(c, v, "access_log.salt", SL_ACCESS_LOG_SALT_MAX, &salt) &&
            sl_access_log_cfg_set_salt(cfg, salt.data, salt.len, msg, sizeof msg) != 0)
            sl_gw__err(c, v, "%s", msg);
        if (salt.data) memset(salt.data, 0, salt.cap);
        sl_buf_free(&salt);
    }
    char msg[256];
    if (c->ye.n == before && sl_access_log_cfg_validate(cfg, msg, sizeof msg) != 0)
        sl_gw__err(c, n, "%s", msg);
}

static void parse_fallback_cache(sl_gw__pc_t *c, const sl_yaml_node_t *n,
                                 sl_gw_fallback_cache_cfg_t *fc) {
    *fc = (sl_gw_fallback_cache_cfg_t){
        .max_entries = 10000, .max_bytes = 64ull << 20, .ttl_ms = 10 * MS_M};
    if (!sl_gw__want_map(c, n, "fallback_cache")) return;
    static const char *const keys[] = {"max_entries", "max_bytes", "ttl", NULL};
    sl_yaml_check_keys(&c->ye, n, keys, "fallback_cache");
    const sl_yaml_node_t *v;
    uint64_t u;
    if ((v = sl_yaml_map_get(n, "max_entries")) &&
        sl_gw__uint(c, v, "fallback_cache.max_entries", 0, SL_FALLBACK_MAX_ENTRIES, &u))
        fc->max_entries = (uint32_t)u;
    if ((v = sl_yaml_map_get(n, "max_bytes")) &&
        sl_gw__size(c, v, "fallback_cache.max_bytes", 0, 64ull << 30, &u))
        fc->max_bytes = u;
    if ((v = sl_yaml_map_get(n, "ttl")) &&
        sl_gw__duration(c, v, "fallback_cache.ttl", 0, 7 * DAY_MS, &u))
        fc->ttl_ms = u;
}

/* ---- parse and load ----------------------------------------------------------------------- */

int sl_gw_policy_parse(const char *file, const sl_yaml_node_t *gw, const char *default_endpoint,
                       sl_gw_policy_t **out, sl_buf_t *err) {
    *out = NULL;
    file = file ? file : "config";
    sl_gw__pc_t c = {.ye = {.file = file, .out = err, .max = SL_GW__MAX_ERRORS}, .err = err};
    sl_gw_policy_t *p = sl_calloc(1, sizeof *p);
    atomic_init(&p->refs, 1);
    if (gw && sl_yaml_is_null(gw)) gw = NULL;
    if (gw && gw->kind != SL_YAML_MAP) {
        sl_gw__want(&c, gw, SL_YAML_MAP, "gateway");
        gw = NULL;
    }
    if (gw) {
        /* Every key the config knows under gateway: the nested sections parsed here and the
         * flat options of the main config loader (core/config.c), from their tables. */
        const char *keys[64];
        size_t n = 0, n_opts, n_owned;
        const sl_config_option_t *opts = sl_config_options(&n_opts);
        const sl_config_owned_key_t *owned = sl_config_owned_keys(&n_owned);
        for (size_t i = 0; i < n_opts && n + 1 < SL_ARRAY_LEN(keys); i++) {
            if (strncmp(opts[i].name, "gateway.", 8) == 0) keys[n++] = opts[i].name + 8;
        }
        for (size_t i = 0; i < n_owned && n + 1 < SL_ARRAY_LEN(keys); i++) {
            if (strncmp(owned[i].name, "gateway.", 8) == 0) keys[n++] = owned[i].name + 8;
        }
        keys[n] = NULL;
        sl_yaml_check_keys(&c.ye, gw, keys, "gateway");
    }
    sl_gw__parse_upstreams(&c, sl_yaml_map_get(gw, "upstreams"), default_endpoint, p);
    sl_gw__parse_limits(&c, sl_yaml_map_get(gw, "limits"), &p->limits);
    sl_gw__parse_routes(&c, sl_yaml_map_get(gw, "routes"), gw, p);
    int before = c.ye.n;
    sl_gw__parse_pipelines(&c, sl_yaml_map_get(gw, "pipelines"), p);
    for (size_t i = 0; i < p->n_pipelines && c.ye.n == before; i++) {
        /* A pipeline parser that failed without saying why would otherwise pass as valid. */
        if (!p->pipelines[i].pipeline) {
            sl_gw__err(&c, gw, "pipelines.%.128s is invalid", p->pipelines[i].name);
        }
    }
    if (sl_traffic_set_parse(file, sl_yaml_map_get(gw, "traffic"), &p->traffic, err) != 0)
        c.failed = true;
    parse_access_log(&c, sl_yaml_map_get(gw, "access_log"), &p->access_log);
    parse_fallback_cache(&c, sl_yaml_map_get(gw, "fallback_cache"), &p->fallback_cache);
    if (c.ye.n > 0 || c.failed) {
        policy_free(p);
        return SL_EINVAL;
    }
    *out = p;
    return 0;
}

int sl_gw_policy_parse_text(const char *file, const void *data, size_t len,
                            const char *default_endpoint, sl_gw_policy_t **out, sl_buf_t *err) {
    *out = NULL;
    file = file ? file : "config";
    sl_yaml_limits_t lim = {.max_bytes = SL_GW_CONFIG_MAX};
    sl_yaml_doc_t *doc = NULL;
    int rc = sl_yaml_doc_parse(file, data, len, &lim, &doc, err);
    if (rc != 0) return rc;
    const sl_yaml_node_t *gw = NULL;
    if (doc->root && doc->root->kind == SL_YAML_MAP) {
        gw = sl_yaml_map_get(doc->root, "gateway");
    } else if (doc->root && !sl_yaml_is_null(doc->root)) {
        sl_buf_printf(err, "%s:%" PRIu32 ": the config must be a mapping, not %s\n", file,
                      doc->root->line, sl_yaml_kind_name(doc->root->kind));
        sl_yaml_doc_free(doc);
        return SL_EINVAL;
    }
    rc = sl_gw_policy_parse(file, gw, default_endpoint, out, err);
    sl_yaml_doc_free(doc);
    return rc;
}

int sl_gw_policy_load(const char *path, const char *default_endpoint, sl_gw_policy_t **out,
                      sl_buf_t *err) {
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) {
        sl_buf_printf(err, "%s: cannot open: %s\n", path, strerror(errno));
        return SL_EIO;
    }
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        sl_buf_printf(err, "%s: not a regular file\n", path);
        fclose(f);
        return SL_EIO;
    }
    if (st.st_size > (off_t)SL_GW_CONFIG_MAX) {
        sl_buf_printf(err, "%s: larger than %u bytes\n", path, SL_GW_CONFIG_MAX);
        fclose(f);
        return SL_ELIMIT;
    }
    char *data = sl_malloc(SL_GW_CONFIG_MAX + 1);
    size_t n = fread(data, 1, SL_GW_CONFIG_MAX + 1, f);
    int rc = 0;
    if (ferror(f)) {
        sl_buf_printf(err, "%s: read error: %s\n", path, strerror(errno));
        rc = SL_EIO;
    } else if (n > SL_GW_CONFIG_MAX) {
        sl_buf_printf(err, "%s: larger than %u bytes\n", path, SL_GW_CONFIG_MAX);
        rc = SL_ELIMIT;
    }
    fclose(f);
    if (rc == 0) rc = sl_gw_policy_parse_text(path, data, n, default_endpoint, out, err);
    free(data);
    return rc;
}

/* ---- holder -------------------------------------------------------------------------------- */

static void policy_ref_cb(void *p) {
    sl_gw_policy_ref(p);
}
static void policy_unref_cb(void *p) {
    sl_gw_policy_unref(p);
}

struct sl_gw_policy_holder {
    sl_snapshot_t *snap;
};

sl_gw_policy_holder_t *sl_gw_policy_holder_new(sl_gw_policy_t *initial) {
    SL_ASSERT(initial);
    sl_gw_policy_holder_t *h = sl_calloc(1, sizeof *h);
    h->snap = sl_snapshot_new(policy_ref_cb, policy_unref_cb, initial);
    return h;
}

void sl_gw_policy_holder_free(sl_gw_policy_holder_t *h) {
    if (!h) return;
    sl_snapshot_free(h->snap);
    free(h);
}

void sl_gw_policy_holder_publish(sl_gw_policy_holder_t *h, sl_gw_policy_t *p) {
    SL_ASSERT(p);
    /* Read before publishing: the holder may drop p once another publish replaces it. */
    size_t ups = p->n_upstreams, routes = p->n_routes, pipes = p->n_pipelines;
    sl_snapshot_publish(h->snap, p);
    SL_INFO("gateway", "gateway policy published", SL_LF_U("upstreams", ups),
            SL_LF_U("routes", routes), SL_LF_U("pipelines", pipes));
}

sl_gw_policy_t *sl_gw_policy_holder_acquire(sl_gw_policy_holder_t *h) {
    return sl_snapshot_acquire(h->snap);
}

const sl_gw_policy_t *sl_gw_policy_view_get(sl_gw_policy_holder_t *h, sl_gw_policy_view_t *v) {
    return sl_snapshot_view_get(h->snap, &v->snap);
}

void sl_gw_policy_view_release(sl_gw_policy_view_t *v) {
    sl_snapshot_view_release(&v->snap);
}
