/* Fuzzes the gateway policy parser (sl_gw_policy_parse_text) on arbitrary bytes: YAML syntax and
 * limits, every section (upstreams, limits, routes, pipelines, traffic, access log, fallback
 * cache) and their cross-references. A failure must explain itself in file:line lines; a policy
 * that parses must hold together: every route and pipeline on one of its pools, every pool and
 * limit config accepted by its module, every default answer a JSON object. */
#include "gateway/fallback.h"
#include "gateway/policy.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool owns_pool(const sl_gw_policy_t *p, const sl_gw_upstream_t *u) {
    for (size_t i = 0; i < sl_gw_policy_upstream_count(p); i++)
        if (sl_gw_policy_upstream_at(p, i) == u) return true;
    return false;
}

static void check_route(const sl_gw_policy_t *p, const sl_gw_route_t *r, bool pipeline) {
    if (!r || !owns_pool(p, r->upstream)) abort();
    if (r->fault.delay_bp > SL_GW_FAULT_SCALE || r->fault.abort_bp > SL_GW_FAULT_SCALE) abort();
    if (r->fault.abort_bp && (r->fault.abort_status < 400 || r->fault.abort_status > 599)) abort();
    if (r->fallback.default_json) {
        if (!pipeline || r->fallback.default_len != strlen(r->fallback.default_json)) abort();
        sl_buf_t out = SL_BUF_INIT;
        if (sl_fallback_mark_degraded(r->fallback.default_json, r->fallback.default_len, &out))
            abort();
        sl_buf_free(&out);
    }
    sl_gw_fault_action_t a = sl_gw_fault_decide(&r->fault, 0, 0);
    if ((r->fault.delay_bp && a.delay_ms != r->fault.delay_ms) ||
        (r->fault.abort_bp && a.abort_status != r->fault.abort_status))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    sl_gw_policy_t *p = NULL;
    sl_buf_t err = SL_BUF_INIT;
    int rc = sl_gw_policy_parse_text("fuzz.yaml", data, size, "127.0.0.1:8001", &p, &err);
    if (rc != 0) {
        if (p != NULL || err.len == 0 || err.data[err.len - 1] != '\n') abort();
        if (rc != SL_EINVAL && rc != SL_EPARSE && rc != SL_ELIMIT) abort();
        sl_buf_free(&err);
        return 0;
    }
    if (!p || err.len != 0) abort();
    size_t n_up = sl_gw_policy_upstream_count(p);
    if (n_up < 1 || n_up > SL_GW_MAX_UPSTREAMS) abort();
    sl_buf_t why = SL_BUF_INIT;
    for (size_t i = 0; i < n_up; i++) {
        const sl_gw_upstream_t *u = sl_gw_policy_upstream_at(p, i);
        if (u->n_endpoints < 1 || u->n_endpoints > SL_UPSTREAM_MAX_ENDPOINTS) abort();
        if (sl_upstream_config_validate(&u->config, &why) != 0) abort();
        if (!sl_gw_upstream_same_settings(u, u)) abort();
        if (sl_gw_policy_upstream_find(p, (sl_str_t){u->name, strlen(u->name)}) != u) abort();
    }
    const sl_gw_limits_t *l = sl_gw_policy_limits(p);
    if (!sl_gw_limits_equal(l, l)) abort();
    if (l->mode != SL_GW_LIMITS_NONE) {
        sl_rl_config_t small = l->rl;
        small.max_buckets = 2; /* the table size is not what is being checked */
        sl_ratelimiter_t rl;
        if (sl_rl_local_new(&small, &rl, &why) != 0) abort();
        sl_rl_free(&rl);
        if (l->mode == SL_GW_LIMITS_REDIS) {
            if (!l->redis.host || !l->redis.port || !l->redis.password) abort();
            if (sl_rl_redis_new(&small, &l->redis, &rl, &why) != 0) abort();
            sl_rl_free(&rl);
        }
    }
    /* Routes: every explicit one, then lookups of names from the input itself. */
    for (size_t i = 0; i < sl_gw_policy_route_count(p); i++) {
        const sl_gw_route_t *r = sl_gw_policy_route_at(p, i);
        check_route(p, r, false);
        if (sl_gw_policy_route(p, (sl_str_t){r->model, strlen(r->model)}) != r) abort();
    }
    sl_str_t head = {(const char *)data, SL_MIN(size, 16)};
    check_route(p, sl_gw_policy_route(p, head), false);
    check_route(p, sl_gw_policy_route(p, SL_STR("*")), false);
    for (size_t i = 0; i < sl_gw_policy_pipeline_count(p); i++) {
        const sl_gw_pipeline_route_t *pr = sl_gw_policy_pipeline_at(p, i);
        if (!pr->pipeline || strcmp(sl_pipeline_name(pr->pipeline), pr->name) != 0) abort();
        check_route(p, &pr->route, true);
        if (sl_gw_policy_pipeline(p, (sl_str_t){pr->name, strlen(pr->name)}) != pr) abort();
    }
    if (sl_gw_policy_pipeline(p, head) && !head.len) abort();
    if (!sl_gw_policy_traffic(p)) abort();
    char msg[256];
    if (sl_access_log_cfg_validate(sl_gw_policy_access_log(p), msg, sizeof msg) != 0) abort();
    if (sl_gw_policy_fallback_cache(p)->max_entries > SL_FALLBACK_MAX_ENTRIES) abort();
    sl_buf_free(&why);
    sl_gw_policy_unref(p);
    sl_buf_free(&err);
    return 0;
}
