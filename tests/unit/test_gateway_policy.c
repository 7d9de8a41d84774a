/* Unit tests for gateway/policy: a full `gateway:` section parses to the values written, absent
 * sections give the documented defaults, every reference and limit error is reported with its
 * file:line, ${} references expand (and unset ones fail), fault decisions follow their shares,
 * the hot-reload equality helpers see exactly the changes that matter, and the holder swaps
 * policies under readers. */
#include "core/buf.h"
#include "core/common.h"
#include "core/log.h"
#include "gateway/pipeline.h"
#include "gateway/policy.h"

#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#define EP "127.0.0.1:8001"

/* ---- helpers ------------------------------------------------------------------------------- */

static sl_gw_policy_t *parse_ok(const char *yaml) {
    sl_buf_t err = SL_BUF_INIT;
    sl_gw_policy_t *p = NULL;
    int rc = sl_gw_policy_parse_text("gw.yaml", yaml, strlen(yaml), EP, &p, &err);
    if (rc != 0) fail_msg("unexpected parse failure (%d):\n%s", rc, err.data ? err.data : "");
    assert_non_null(p);
    assert_int_equal(err.len, 0);
    sl_buf_free(&err);
    return p;
}

/* Parses a config that must fail with SL_EINVAL; returns the messages (caller frees). */
static char *parse_err(const char *yaml) {
    sl_buf_t err = SL_BUF_INIT;
    sl_gw_policy_t *p = (sl_gw_policy_t *)1;
    int rc = sl_gw_policy_parse_text("gw.yaml", yaml, strlen(yaml), EP, &p, &err);
    if (rc != SL_EINVAL) fail_msg("expected SL_EINVAL, got %d for:\n%s", rc, yaml);
    assert_null(p);
    assert_non_null(err.data);
    return err.data;
}

static void assert_has(const char *hay, const char *needle) {
    if (!strstr(hay, needle)) fail_msg("expected \"%s\" in:\n%s", needle, hay);
}

/* The config must fail with a message containing needle on line `line`. */
static void expect_error(const char *yaml, int line, const char *needle) {
    char *msg = parse_err(yaml);
    char prefix[32];
    snprintf(prefix, sizeof prefix, "gw.yaml:%d: ", line);
    bool found = false;
    for (const char *l = msg; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
        const char *end = strchr(l, '\n');
        size_t n = end ? (size_t)(end - l) : strlen(l);
        char *one = strndup(l, n);
        if (strncmp(one, prefix, strlen(prefix)) == 0 && strstr(one, needle)) found = true;
        free(one);
    }
    if (!found) fail_msg("expected \"%s%s\" in:\n%s", prefix, needle, msg);
    free(msg);
}

static sl_str_t str(const char *s) {
    return (sl_str_t){s, strlen(s)};
}

/* ---- a full example ------------------------------------------------------------------------ */

static const char *const full_cfg =
    "server: {io_threads: 2}\n" /* 1 */
    "gateway:\n"                /* 2 */
    "  http_port: 8080\n"       /* 3 */
    "  keys_file: keys.json\n"  /* 4 */
    "  reload_interval: 5s\n"   /* 5 */
    "  upstreams:\n"            /* 6 */
    "    inference:\n"          /* 7 */
    "      endpoints: [\"10.0.0.5:8001\", \"inference.ns.svc:8001\"]\n"
    "      resolve_interval: 5s\n"
    "      timeout: 15s\n"
    "      per_try_timeout: 500ms\n"
    "      max_attempts: 4\n"
    "      backoff: {base: 20ms, cap: 300ms}\n"
    "      retry_budget: {percent: 25, min_per_second: 4, window: 20s}\n"
    "      max_pending: 512\n"
    "      max_concurrent: 256\n"
    "      breaker: {window_type: time, window_size: 30s, minimum_calls: 20,\n"
    "                failure_rate: 40.5, slow_call_rate: 90, slow_call_duration: 2s,\n"
    "                open_wait: 15s, half_open_calls: 5}\n"
    "      outlier: {consecutive_failures: 3, base_ejection: 10s, max_ejection: 2m,\n"
    "                max_percent: 50, interval: 5s, always_eject_one: false}\n"
    "      slow_start: {window: 20s, min_weight_percent: 25}\n"
    "    batch:\n"
    "      endpoints: [\"[::1]:9001\"]\n"
    "  limits:\n"
    "    mode: local\n"
    "    classes:\n"
    "      predict: {rate: 100, burst: 200, peak_rate: 20.5, peak_burst: 40, counts_quota: true}\n"
    "      metadata: {rate: 50, burst: 100}\n"
    "    tiers: {standard: 1000, enterprise: 10000, free: 0}\n"
    "    peak_hours: \"22:30-06:00\"\n"
    "    utc_offset: \"-05:30\"\n"
    "    max_buckets: 1000\n"
    "    idle_ttl: 2m\n"
    "  routes:\n"
    "    \"*\": {upstream: inference}\n"
    "    fraud_xgboost:\n"
    "      timeout: 2s\n"
    "      fallback: {last_good: true}\n"
    "      fault:\n"
    "        delay: {percent: 10, duration: 200ms}\n"
    "        abort: {percent: 0.25, status: 503}\n"
    "    resnet: {upstream: batch}\n"
    "  pipelines:\n"
    "    fraud:\n"
    "      model: fraud_xgboost\n"
    "      inputs:\n"
    "        - {tensor: features, datatype: FP32, fields: [amount, hour]}\n"
    "      outputs:\n"
    "        - {field: fraud_probability, tensor: probability}\n"
    "        - {field: label, tensor: label}\n"
    "      fallback: {last_good: true, default: {fraud_probability: 0.0, label: \"ok\\\"\"}}\n"
    "      fault: {abort: {percent: 100, status: 429}}\n"
    "    images:\n"
    "      model: resnet\n"
    "      inputs: [{tensor: pixels, datatype: FP32, field: image, length: 4}]\n"
    "      outputs: [{field: classes, tensor: probs}]\n"
    "      upstream: inference\n"
    "  traffic:\n"
    "    fraud_xgboost:\n"
    "      split: {\"1.4.0\": 95, \"1.5.0\": 5}\n"
    "  access_log:\n"
    "    sample_percent: 50\n"
    "    rejections_sample_percent: 0.5\n"
    "    fields: [amount]\n"
    "    headers: [User-Agent]\n"
    "    scrub: [amount, {name: user-agent, mode: redact}]\n"
    "    salt: pepper\n"
    "  fallback_cache: {max_entries: 500, max_bytes: 16MiB, ttl: 90s}\n";

static void test_full_example(void **state) {
    (void)state;
    sl_gw_policy_t *p = parse_ok(full_cfg);

    assert_int_equal(sl_gw_policy_upstream_count(p), 2);
    const sl_gw_upstream_t *u = sl_gw_policy_upstream_at(p, 0);
    assert_string_equal(u->name, "inference");
    assert_int_equal(u->line, 7);
    assert_int_equal(u->n_endpoints, 2);
    assert_string_equal(u->endpoints[0], "10.0.0.5:8001");
    assert_string_equal(u->endpoints[1], "inference.ns.svc:8001");
    assert_int_equal(u->resolve_interval_ms, 5000);
    const sl_upstream_config_t *c = &u->config;
    assert_int_equal(c->retry.timeout_ms, 15000);
    assert_int_equal(c->retry.per_try_timeout_ms, 500);
    assert_int_equal(c->retry.max_attempts, 4);
    assert_int_equal(c->retry.backoff_base_ms, 20);
    assert_int_equal(c->retry.backoff_cap_ms, 300);
    assert_true(c->retry_budget.ratio > 0.2499 && c->retry_budget.ratio < 0.2501);
    assert_int_equal(c->retry_budget.min_retries_per_sec, 4);
    assert_int_equal(c->retry_budget.window_s, 20);
    assert_int_equal(c->max_pending, 512);
    assert_int_equal(c->max_concurrent, 256);
    assert_int_equal(c->breaker.window_type, SL_BREAKER_WINDOW_TIME);
    assert_int_equal(c->breaker.window_size, 30);
    assert_int_equal(c->breaker.minimum_calls, 20);
    assert_true(c->breaker.failure_rate_threshold == 40.5);
    assert_true(c->breaker.slow_call_rate_threshold == 90.0);
    assert_int_equal(c->breaker.slow_call_duration_ms, 2000);
    assert_int_equal(c->breaker.wait_in_open_ms, 15000);
    assert_int_equal(c->breaker.permitted_calls_in_half_open, 5);
    assert_int_equal(c->outlier.consecutive_failures, 3);
    assert_int_equal(c->outlier.base_ejection_ms, 10000);
    assert_int_equal(c->outlier.max_ejection_ms, 120000);
    assert_int_equal(c->outlier.max_ejection_percent, 50);
    assert_int_equal(c->outlier.interval_ms, 5000);
    assert_false(c->outlier.always_eject_one);
    assert_int_equal(c->slow_start.window_ms, 20000);
    assert_int_equal(c->slow_start.min_weight_percent, 25);
    sl_buf_t why = SL_BUF_INIT;
    assert_int_equal(sl_upstream_config_validate(c, &why), 0);
    sl_buf_free(&why);
    const sl_gw_upstream_t *batch = sl_gw_policy_upstream_find(p, str("batch"));
    assert_non_null(batch);
    assert_string_equal(batch->endpoints[0], "[::1]:9001");
    assert_null(sl_gw_policy_upstream_find(p, str("batc")));

    const sl_gw_limits_t *l = sl_gw_policy_limits(p);
    assert_int_equal(l->mode, SL_GW_LIMITS_LOCAL);
    assert_int_equal(l->rl.n_classes, 2);
    assert_string_equal(l->rl.classes[0].name, "predict");
    assert_true(l->rl.classes[0].rate == 100.0);
    assert_int_equal(l->rl.classes[0].burst, 200);
    assert_true(l->rl.classes[0].peak_rate == 20.5);
    assert_int_equal(l->rl.classes[0].peak_burst, 40);
    assert_true(l->rl.classes[0].counts_quota);
    assert_string_equal(l->rl.classes[1].name, "metadata");
    assert_false(l->rl.classes[1].counts_quota);
    assert_int_equal(l->rl.classes[1].peak_burst, 0);
    assert_int_equal(l->rl.n_tiers, 3);
    assert_string_equal(l->rl.tiers[1].name, "enterprise");
    assert_int_equal(l->rl.tiers[1].daily_quota, 10000);
    assert_int_equal(l->rl.tiers[2].daily_quota, 0);
    assert_int_equal(l->rl.peak_start_s, 22 * 3600 + 30 * 60);
    assert_int_equal(l->rl.peak_end_s, 6 * 3600);
    assert_int_equal(l->rl.utc_offset_s, -(5 * 3600 + 30 * 60));
    assert_int_equal(l->rl.max_buckets, 1000);
    assert_int_equal(l->rl.idle_ttl_ms, 120000);
    assert_null(l->redis.host);
    /* The config is ready for the limiter as it stands. */
    sl_ratelimiter_t rl;
    assert_int_equal(sl_rl_local_new(&l->rl, &rl, NULL), 0);
    sl_rl_free(&rl);

    const sl_gw_route_t *r = sl_gw_policy_route(p, str("fraud_xgboost"));
    assert_string_equal(r->model, "fraud_xgboost");
    assert_ptr_equal(r->upstream, sl_gw_policy_upstream_at(p, 0)); /* inherited from "*" */
    assert_int_equal(r->timeout_ms, 2000);
    assert_true(r->fallback.last_good);
    assert_null(r->fallback.default_json);
    assert_int_equal(r->fault.delay_bp, 1000);
    assert_int_equal(r->fault.delay_ms, 200);
    assert_int_equal(r->fault.abort_bp, 25);
    assert_int_equal(r->fault.abort_status, 503);
    const sl_gw_route_t *other = sl_gw_policy_route(p, str("anything_else"));
    assert_string_equal(other->model, "*");
    assert_int_equal(other->timeout_ms, 0);
    assert_false(other->fallback.last_good);
    assert_ptr_equal(sl_gw_policy_route(p, str("*")), other);
    assert_ptr_equal(sl_gw_policy_route(p, str("resnet"))->upstream, batch);
    assert_int_equal(sl_gw_policy_route_count(p), 3);
    assert_string_equal(sl_gw_policy_route_at(p, 0)->model, "*");

    assert_int_equal(sl_gw_policy_pipeline_count(p), 2);
    const sl_gw_pipeline_route_t *pr = sl_gw_policy_pipeline(p, str("fraud"));
    assert_non_null(pr);
    assert_string_equal(pr->name, "fraud");
    assert_string_equal(sl_pipeline_model(pr->pipeline), "fraud_xgboost");
    assert_ptr_equal(pr->route.upstream, sl_gw_policy_upstream_at(p, 0));
    assert_int_equal(pr->route.timeout_ms, 2000); /* its model's route */
    assert_true(pr->route.fallback.last_good);
    assert_string_equal(pr->route.fallback.default_json,
                        "{\"fraud_probability\":0.0,\"label\":\"ok\\\"\"}");
    assert_int_equal(pr->route.fallback.default_len, strlen(pr->route.fallback.default_json));
    assert_int_equal(pr->route.fault.abort_bp, 10000);
    assert_int_equal(pr->route.fault.abort_status, 429);
    const sl_gw_pipeline_route_t *img = sl_gw_policy_pipeline(p, str("images"));
    /* Its model routes to "batch", but its own upstream wins. */
    assert_ptr_equal(img->route.upstream, sl_gw_policy_upstream_at(p, 0));
    assert_null(sl_gw_policy_pipeline(p, str("fraudx")));

    const sl_traffic_policy_t *tp =
        sl_traffic_set_find(sl_gw_policy_traffic(p), str("fraud_xgboost"));
    assert_non_null(tp);
    assert_int_equal(tp->n_versions, 2);

    const sl_access_log_cfg_t *al = sl_gw_policy_access_log(p);
    assert_true(al->enabled);
    assert_int_equal(al->sample_bp, 5000);
    assert_int_equal(al->errors_sample_bp, 10000);
    assert_int_equal(al->rejections_sample_bp, 50);
    assert_int_equal(al->n_fields, 1);
    assert_string_equal(al->fields[0], "amount");
    assert_int_equal(al->n_headers, 1);
    assert_string_equal(al->headers[0], "user-agent");
    assert_int_equal(al->n_scrub, 2);
    assert_int_equal(al->scrub[1].mode, SL_ACCESS_SCRUB_REDACT);
    assert_int_equal(al->salt_len, 6);
    assert_memory_equal(al->salt, "pepper", 6);

    const sl_gw_fallback_cache_cfg_t *fc = sl_gw_policy_fallback_cache(p);
    assert_int_equal(fc->max_entries, 500);
    assert_int_equal(fc->max_bytes, 16u << 20);
    assert_int_equal(fc->ttl_ms, 90000);
    sl_gw_policy_unref(p);
}

/* ---- defaults ------------------------------------------------------------------------------ */

static void test_defaults(void **state) {
    (void)state;
    const char *docs[] = {"", "server: {io_threads: 1}\n", "gateway:\n", "gateway: {}\n",
                          "gateway: {http_port: 9090}\n"};
    for (size_t d = 0; d < SL_ARRAY_LEN(docs); d++) {
        sl_gw_policy_t *p = parse_ok(docs[d]);
        assert_int_equal(sl_gw_policy_upstream_count(p), 1);
        const sl_gw_upstream_t *u = sl_gw_policy_upstream_at(p, 0);
        assert_string_equal(u->name, "inference");
        assert_int_equal(u->n_endpoints, 1);
        assert_string_equal(u->endpoints[0], EP);
        assert_int_equal(u->resolve_interval_ms, 5000);
        sl_gw_upstream_t want = *u;
        sl_upstream_config_default(&want.config);
        assert_true(sl_gw_upstream_same_settings(u, &want));
        assert_int_equal(u->config.retry.timeout_ms, 15000);
        assert_int_equal(u->config.retry.max_attempts, 3);

        assert_int_equal(sl_gw_policy_limits(p)->mode, SL_GW_LIMITS_NONE);
        assert_int_equal(sl_gw_policy_limits(p)->rl.n_classes, 0);
        const sl_gw_route_t *r = sl_gw_policy_route(p, str("any_model"));
        assert_non_null(r);
        assert_null(r->model);
        assert_ptr_equal(r->upstream, u);
        assert_int_equal(r->timeout_ms, 0);
        assert_false(r->fallback.last_good);
        assert_int_equal(r->fault.delay_bp + r->fault.abort_bp, 0);
        assert_int_equal(sl_gw_policy_route_count(p), 0);
        assert_int_equal(sl_gw_policy_pipeline_count(p), 0);
        assert_int_equal(sl_traffic_set_count(sl_gw_policy_traffic(p)), 0);
        sl_access_log_cfg_t al;
        sl_access_log_cfg_init(&al);
        assert_int_equal(sl_gw_policy_access_log(p)->sample_bp, al.sample_bp);
        assert_int_equal(sl_gw_policy_access_log(p)->rejections_sample_bp, al.rejections_sample_bp);
        const sl_gw_fallback_cache_cfg_t *fc = sl_gw_policy_fallback_cache(p);
        assert_int_equal(fc->max_entries, 10000);
        assert_int_equal(fc->max_bytes, 64u << 20);
        assert_int_equal(fc->ttl_ms, 600000);
        sl_gw_policy_unref(p);
    }

    /* Limits present: the documented defaults of each key. */
    sl_gw_policy_t *p = parse_ok("gateway:\n"
                                 "  limits:\n"
                                 "    classes: {predict: {rate: 1, burst: 1}, admin: {rate: 1, "
                                 "burst: 2}}\n");
    const sl_gw_limits_t *l = sl_gw_policy_limits(p);
    assert_int_equal(l->mode, SL_GW_LIMITS_LOCAL);
    assert_true(l->rl.classes[0].counts_quota); /* predict counts by default */
    assert_false(l->rl.classes[1].counts_quota);
    assert_int_equal(l->rl.max_buckets, 65536);
    assert_int_equal(l->rl.idle_ttl_ms, 600000);
    assert_int_equal(l->rl.utc_offset_s, 0);
    assert_int_equal(l->rl.peak_start_s, l->rl.peak_end_s);
    sl_gw_policy_unref(p);

    /* A pool with only endpoints gets every resilience default. */
    p = parse_ok("gateway: {upstreams: {a: {endpoints: [\"h:1\"]}}}\n");
    sl_gw_upstream_t want = *sl_gw_policy_upstream_at(p, 0);
    sl_upstream_config_default(&want.config);
    assert_true(sl_gw_upstream_same_settings(sl_gw_policy_upstream_at(p, 0), &want));
    assert_ptr_equal(sl_gw_policy_route(p, str("m"))->upstream, sl_gw_policy_upstream_at(p, 0));
    sl_gw_policy_unref(p);

    /* No default endpoint and no upstreams: no pool, so no route. */
    sl_buf_t err = SL_BUF_INIT;
    assert_int_equal(sl_gw_policy_parse_text("gw.yaml", "", 0, NULL, &p, &err), 0);
    assert_int_equal(sl_gw_policy_upstream_count(p), 0);
    assert_null(sl_gw_policy_route(p, str("m")));
    sl_gw_policy_unref(p);
    sl_buf_free(&err);
}

/* ---- errors -------------------------------------------------------------------------------- */

static void test_reference_errors(void **state) {
    (void)state;
    expect_error("gateway:\n"
                 "  routes:\n"
                 "    m1: {upstream: infernce}\n",
                 3, "routes.m1 names unknown upstream 'infernce' (did you mean 'inference'?)");
    expect_error("gateway:\n"
                 "  upstreams: {a: {endpoints: [\"h:1\"]}, b: {endpoints: [\"h:2\"]}}\n"
                 "  routes:\n"
                 "    m1: {upstream: zzzzzzzzz}\n",
                 4, "(upstreams: a, b)");
    /* Several pools and no "*": a model route without upstream, and the whole routes map. */
    expect_error("gateway:\n"
                 "  upstreams: {a: {endpoints: [\"h:1\"]}, b: {endpoints: [\"h:2\"]}}\n"
                 "  routes:\n"
                 "    m1: {timeout: 1s}\n",
                 4, "routes.m1 needs upstream");
    expect_error("gateway:\n"
                 "  upstreams: {a: {endpoints: [\"h:1\"]}, b: {endpoints: [\"h:2\"]}}\n",
                 2, "routes needs a \"*\" entry");
    /* A default answer on a /v2 route. */
    expect_error("gateway:\n"
                 "  routes:\n"
                 "    m1:\n"
                 "      fallback:\n"
                 "        last_good: true\n"
                 "        default: {y: 1}\n",
                 6, "default answers are for pipelines only");
    /* Pipelines: unknown upstream, default naming a non-output, pipeline.h's own errors. */
    const char *pipe_head = "gateway:\n"
                            "  pipelines:\n"
                            "    p1:\n"
                            "      model: m1\n"
                            "      inputs: [{tensor: x, datatype: FP32, fields: [a]}]\n"
                            "      outputs: [{field: score, tensor: y}]\n";
    char buf[1024];
    snprintf(buf, sizeof buf, "%s      upstream: nope\n", pipe_head);
    expect_error(buf, 7, "pipelines.p1 names unknown upstream 'nope'");
    snprintf(buf, sizeof buf, "%s      fallback: {default: {score: 0.5, scroe: 1}}\n", pipe_head);
    expect_error(buf, 7, "'scroe' is not an output field of the pipeline (outputs: score)");
    snprintf(buf, sizeof buf, "%s      fallback: {default: {score: 0x1F}}\n", pipe_head);
    expect_error(buf, 7, "'0x1F' is not a JSON number");
    snprintf(buf, sizeof buf, "%s      fallback: {default: {score: {a: 1}}}\n", pipe_head);
    expect_error(buf, 7, "must be a JSON scalar or a list of them");
    snprintf(buf, sizeof buf, "%s      fault: {abort: {percent: 5, status: 600}}\n", pipe_head);
    expect_error(buf, 7, "pipelines.p1.fault.abort.status: 600 is out of bounds (400..599)");
    snprintf(buf, sizeof buf, "%s      colour: red\n", pipe_head);
    expect_error(buf, 7, "unknown key 'colour'");
    /* Lists of scalars are fine for array outputs; every scalar type maps to JSON. */
    snprintf(buf, sizeof buf,
             "%s      fallback: {default: {score: [1, -2.5e3, true, null, \"s\", word]}}\n",
             pipe_head);
    sl_gw_policy_t *p = parse_ok(buf);
    assert_string_equal(sl_gw_policy_pipeline(p, str("p1"))->route.fallback.default_json,
                        "{\"score\":[1,-2.5e3,true,null,\"s\",\"word\"]}");
    sl_gw_policy_unref(p);
}

static void test_limits_errors(void **state) {
    (void)state;
    expect_error("gateway:\n"
                 "  limits:\n"
                 "    mode: redis\n"
                 "    classes: {predict: {rate: 1, burst: 1}}\n",
                 3, "mode redis needs a redis block with an address");
    expect_error("gateway:\n"
                 "  limits:\n"
                 "    mode: redis\n"
                 "    redis: {password: x}\n"
                 "    classes: {predict: {rate: 1, burst: 1}}\n",
                 4, "limits.redis needs an address");
    expect_error("gateway:\n"
                 "  limits:\n"
                 "    mode: redis\n"
                 "    redis: {address: \"localhost\"}\n"
                 "    classes: {predict: {rate: 1, burst: 1}}\n",
                 4, "limits.redis.address must be host:port");
    expect_error("gateway:\n"
                 "  limits:\n"
                 "    mode: memcached\n"
                 "    classes: {predict: {rate: 1, burst: 1}}\n",
                 3, "limits.mode must be local or redis");
    expect_error("gateway:\n"
                 "  limits:\n"
                 "    classes:\n"
                 "      predcit: {rate: 1, burst: 1}\n",
                 4, "unknown key 'predcit' in limits.classes (did you mean 'predict'?)");
    expect_error("gateway:\n"
                 "  limits:\n"
                 "    classes:\n"
                 "      predict: {rate: 1}\n",
                 4, "limits.classes.predict needs rate and burst");
    expect_error("gateway:\n"
                 "  limits:\n"
                 "    classes:\n"
                 "      predict: {rate: 2000000, burst: 1}\n",
                 4, "limits.classes.predict.rate: 2000000 is out of bounds");
    expect_error("gateway:\n"
                 "  limits:\n"
                 "    classes:\n"
                 "      predict: {rate: 1, burst: 1, peak_rate: 1}\n",
                 4, "needs both peak_rate and peak_burst");
    expect_error("gateway:\n"
                 "  limits: {classes: {predict: {rate: 1, burst: 1}}}\n"
                 "  limits_typo: 1\n",
                 3, "unknown key 'limits_typo' in gateway");
    expect_error("gateway:\n"
                 "  limits:\n"
                 "    classes: {predict: {rate: 1, burst: 1}}\n"
                 "    tiers:\n"
                 "      a_tier_name_that_is_much_longer_than_32: 5\n",
                 5, "tier name 'a_tier_name_that_is_much_longer_than_32' must be 1..32 bytes");
    /* 17 tiers: one over ratelimit.h's limit. */
    char buf[2048];
    int n = snprintf(buf, sizeof buf,
                     "gateway:\n  limits:\n    classes: {predict: {rate: 1, burst: 1}}\n"
                     "    tiers:\n");
    for (int i = 0; i < SL_RL_MAX_TIERS + 1; i++)
        n += snprintf(buf + n, sizeof buf - (size_t)n, "      t%d: %d\n", i, i);
    expect_error(buf, 5, "limits.tiers names 17 tiers (at most 16)");
    expect_error("gateway:\n"
                 "  limits:\n"
                 "    classes: {predict: {rate: 1, burst: 1}}\n"
                 "    peak_hours: \"9-17\"\n",
                 4, "limits.peak_hours must be \"HH:MM-HH:MM\"");
    expect_error("gateway:\n"
                 "  limits:\n"
                 "    classes: {predict: {rate: 1, burst: 1}}\n"
                 "    peak_hours: \"09:00-09:00\"\n",
                 4, "starts and ends at the same time");
    expect_error("gateway:\n"
                 "  limits:\n"
                 "    classes: {predict: {rate: 1, burst: 1}}\n"
                 "    utc_offset: \"+15:00\"\n",
                 4, "limits.utc_offset must be");
    expect_error("gateway:\n"
                 "  limits: {tiers: {standard: 1}}\n",
                 2, "limits needs classes");
    expect_error("gateway:\n"
                 "  limits:\n"
                 "    classes: {predict: {rate: 1, burst: 1}}\n"
                 "    idle_ttl: 10 minutes\n",
                 4, "limits.idle_ttl: expected a duration");
}

static void test_upstream_errors(void **state) {
    (void)state;
    expect_error("gateway:\n"
                 "  upstreams:\n"
                 "    a:\n"
                 "      endpoints: [\"h:1\", \"h:1\", \"no-port\", \"h:99999\"]\n",
                 4, "upstreams.a.endpoints: 'h:1' is listed twice");
    expect_error("gateway:\n"
                 "  upstreams:\n"
                 "    a:\n"
                 "      endpoints: [\"h:1\", \"no-port\"]\n",
                 4, "'no-port' is not host:port");
    expect_error("gateway:\n"
                 "  upstreams:\n"
                 "    a: {timeout: 1s}\n",
                 3, "upstreams.a needs endpoints");
    expect_error("gateway:\n"
                 "  upstreams: {}\n",
                 2, "upstreams must name 1..64 pools");
    expect_error("gateway:\n"
                 "  upstreams:\n"
                 "    \"bad name\": {endpoints: [\"h:1\"]}\n",
                 3, "upstream name 'bad name' must be");
    /* A cross-field rule from retry.h's validate, at the backoff block's line. */
    expect_error("gateway:\n"
                 "  upstreams:\n"
                 "    a:\n"
                 "      endpoints: [\"h:1\"]\n"
                 "      backoff: {base: 100ms, cap: 50ms}\n",
                 5, "upstreams.a: retry policy: backoff_cap_ms must be >= backoff_base_ms");
    /* upstream.h's validate, at the outlier block's line. */
    expect_error("gateway:\n"
                 "  upstreams:\n"
                 "    a:\n"
                 "      endpoints: [\"h:1\"]\n"
                 "      outlier: {base_ejection: 60s, max_ejection: 30s}\n",
                 5, "outlier max_ejection_ms must be >= base_ejection_ms");
    expect_error("gateway:\n"
                 "  upstreams:\n"
                 "    a:\n"
                 "      endpoints: [\"h:1\"]\n"
                 "      breaker: {failure_rate: 0, windw_size: 3}\n",
                 5, "unknown key 'windw_size' in breaker (did you mean 'window_size'?)");
    expect_error("gateway:\n"
                 "  upstreams:\n"
                 "    a:\n"
                 "      endpoints: [\"h:1\"]\n"
                 "      breaker: {failure_rate: 0}\n",
                 5, "upstreams.a.breaker.failure_rate: 0 is out of bounds");
    expect_error("gateway:\n"
                 "  upstreams:\n"
                 "    a:\n"
                 "      endpoints: [\"h:1\"]\n"
                 "      max_attempts: 6\n",
                 5, "upstreams.a.max_attempts: 6 is out of bounds (1..5)");
    expect_error("gateway:\n"
                 "  upstreams:\n"
                 "    a:\n"
                 "      endpoints: [\"h:1\"]\n"
                 "      retry_budget: {window: 1500ms}\n",
                 5, "upstreams.a.retry_budget.window must be whole seconds");
    expect_error("gateway:\n"
                 "  upstreams:\n"
                 "    a:\n"
                 "      endpoints: [\"h:1\"]\n"
                 "      timeout: 1.5ms\n",
                 5, "upstreams.a.timeout: expected a duration");
    expect_error("gateway:\n"
                 "  fallback_cache: {max_bytes: 64 MiBs}\n",
                 2, "fallback_cache.max_bytes: expected a size");
    expect_error("gateway:\n"
                 "  access_log:\n"
                 "    headers: [user-agent, Authorization]\n",
                 3, "authorization");
    expect_error("gateway:\n"
                 "  access_log:\n"
                 "    sample_percent: 101\n",
                 3, "access_log.sample_percent: expected a percent");
    expect_error("gateway:\n"
                 "  routes:\n"
                 "    m1:\n"
                 "      fault: {delay: {percent: 10.005, duration: 1s}}\n",
                 4, "routes.m1.fault.delay.percent: expected a percent");
    expect_error("gateway: [1, 2]\n", 1, "gateway must be a mapping, not a sequence");
    /* traffic.h's own messages come through with their lines. */
    expect_error("gateway:\n"
                 "  traffic:\n"
                 "    m1: {split: {}}\n",
                 3, "split of model 'm1' names no version");
    /* Several problems are all reported. */
    char *msg = parse_err("gateway:\n"
                          "  routes: {m1: {upstream: x}, m2: {upstream: y}}\n"
                          "  fallback_cache: {ttl: forever}\n");
    assert_has(msg, "gw.yaml:2: routes.m1 names unknown upstream 'x'");
    assert_has(msg, "gw.yaml:2: routes.m2 names unknown upstream 'y'");
    assert_has(msg, "gw.yaml:3: fallback_cache.ttl: expected a duration");
    free(msg);
}

/* ---- ${} references and loading ------------------------------------------------------------ */

static void test_references(void **state) {
    (void)state;
    const char *cfg = "gateway:\n"
                      "  limits:\n"
                      "    mode: redis\n"
                      "    redis:\n"
                      "      address: \"${SL_TEST_REDIS_HOST:-127.0.0.1}:6380\"\n"
                      "      password: \"${SL_TEST_REDIS_PASSWORD}\"\n"
                      "      key_prefix: \"t:\"\n"
                      "      timeout: 20ms\n"
                      "      fail: closed\n"
                      "    classes: {predict: {rate: 1, burst: 1}}\n";
    unsetenv("SL_TEST_REDIS_HOST");
    unsetenv("SL_TEST_REDIS_PASSWORD");
    char *msg = parse_err(cfg);
    assert_has(msg, "gw.yaml:6: limits.redis.password: environment variable "
                    "'SL_TEST_REDIS_PASSWORD' is not set");
    free(msg);

    setenv("SL_TEST_REDIS_PASSWORD", "s3cret", 1);
    sl_gw_policy_t *p = parse_ok(cfg);
    const sl_gw_limits_t *l = sl_gw_policy_limits(p);
    assert_int_equal(l->mode, SL_GW_LIMITS_REDIS);
    assert_string_equal(l->redis.host, "127.0.0.1");
    assert_int_equal(l->redis.port, 6380);
    assert_string_equal(l->redis.password, "s3cret");
    assert_string_equal(l->redis.key_prefix, "t:");
    assert_int_equal(l->redis.timeout_ms, 20);
    assert_false(l->redis.fail_open);
    sl_gw_policy_unref(p);

    /* The secret from a file (one trailing newline dropped); IPv6 addresses lose brackets. */
    char path[] = "/tmp/sl_policy_secret_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "from-file\n", 10), 10);
    close(fd);
    char doc[1024];
    snprintf(doc, sizeof doc,
             "gateway:\n  limits:\n    mode: redis\n"
             "    redis: {address: \"[::1]:6379\", password: \"${file:%s}\"}\n"
             "    classes: {predict: {rate: 1, burst: 1}}\n",
             path);
    p = parse_ok(doc);
    l = sl_gw_policy_limits(p);
    assert_string_equal(l->redis.host, "::1");
    assert_string_equal(l->redis.password, "from-file");
    assert_string_equal(l->redis.key_prefix, "sluice:rl:");
    assert_int_equal(l->redis.timeout_ms, 50);
    assert_true(l->redis.fail_open);
    sl_gw_policy_unref(p);
    unlink(path);

    /* In local mode the redis block is ignored, unset variables included. */
    unsetenv("SL_TEST_REDIS_PASSWORD");
    p = parse_ok("gateway:\n  limits:\n    mode: local\n"
                 "    redis: {password: \"${SL_TEST_REDIS_PASSWORD}\"}\n"
                 "    classes: {predict: {rate: 1, burst: 1}}\n");
    assert_null(sl_gw_policy_limits(p)->redis.password);
    sl_gw_policy_unref(p);
}

static void test_load(void **state) {
    (void)state;
    char path[] = "/tmp/sl_policy_cfg_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *cfg = "inference: {grpc_port: 8001}\n"
                      "gateway:\n"
                      "  routes:\n"
                      "    m1: {timeout: 3s}\n";
    assert_int_equal(write(fd, cfg, strlen(cfg)), (ssize_t)strlen(cfg));
    close(fd);
    sl_buf_t err = SL_BUF_INIT;
    sl_gw_policy_t *p = NULL;
    assert_int_equal(sl_gw_policy_load(path, "10.1.1.1:8001", &p, &err), 0);
    assert_int_equal(sl_gw_policy_route(p, str("m1"))->timeout_ms, 3000);
    assert_string_equal(sl_gw_policy_upstream_at(p, 0)->endpoints[0], "10.1.1.1:8001");
    sl_gw_policy_unref(p);

    /* Errors name the file. */
    fd = open(path, O_WRONLY | O_TRUNC);
    assert_true(fd >= 0);
    const char *bad = "gateway:\n  routes: {m1: {timeout: soon}}\n";
    assert_int_equal(write(fd, bad, strlen(bad)), (ssize_t)strlen(bad));
    close(fd);
    assert_int_equal(sl_gw_policy_load(path, EP, &p, &err), SL_EINVAL);
    assert_null(p);
    char want[128];
    snprintf(want, sizeof want, "%s:2: routes.m1.timeout: expected a duration", path);
    assert_has(err.data, want);
    unlink(path);

    sl_buf_reset(&err);
    assert_int_equal(sl_gw_policy_load("/nonexistent/sluice.yaml", EP, &p, &err), SL_EIO);
    assert_null(p);
    assert_has(err.data, "/nonexistent/sluice.yaml: cannot open");
    sl_buf_reset(&err);
    assert_int_equal(sl_gw_policy_parse_text("gw.yaml", "a: [", 4, EP, &p, &err), SL_EPARSE);
    assert_null(p);
    sl_buf_free(&err);
}

/* ---- faults -------------------------------------------------------------------------------- */

static uint64_t test_rand(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static void test_fault_decide(void **state) {
    (void)state;
    sl_gw_fault_t f = {.delay_bp = 1000, .delay_ms = 200, .abort_bp = 500, .abort_status = 503};
    /* Edges: a draw of 0 is always inside a positive share, the top never. */
    sl_gw_fault_action_t a = sl_gw_fault_decide(&f, 0, 0);
    assert_int_equal(a.delay_ms, 200);
    assert_int_equal(a.abort_status, 503);
    a = sl_gw_fault_decide(&f, UINT64_MAX, UINT64_MAX);
    assert_int_equal(a.delay_ms, 0);
    assert_int_equal(a.abort_status, 0);
    a = sl_gw_fault_decide(NULL, 0, 0);
    assert_int_equal(a.delay_ms + a.abort_status, 0);
    sl_gw_fault_t none = {0};
    a = sl_gw_fault_decide(&none, 0, 0);
    assert_int_equal(a.delay_ms + a.abort_status, 0);
    /* Shares over 100,000 draws, and independence: both happen about 10% x 5% of the time. */
    uint64_t seed = 42, delays = 0, aborts = 0, both = 0;
    const int n = 100000;
    for (int i = 0; i < n; i++) {
        a = sl_gw_fault_decide(&f, test_rand(&seed), test_rand(&seed));
        delays += a.delay_ms != 0;
        aborts += a.abort_status != 0;
        both += a.delay_ms && a.abort_status;
    }
    assert_true(delays > 9500 && delays < 10500);
    assert_true(aborts > 4600 && aborts < 5400);
    assert_true(both > 380 && both < 620);
    sl_gw_fault_t all = {.abort_bp = 10000, .abort_status = 429};
    for (int i = 0; i < 1000; i++)
        assert_int_equal(sl_gw_fault_decide(&all, 0, test_rand(&seed)).abort_status, 429);
}

/* ---- hot reload ---------------------------------------------------------------------------- */

static const char *const limits_a = "gateway:\n"
                                    "  upstreams:\n"
                                    "    inf: {endpoints: [\"a:1\", \"b:1\"], timeout: 5s}\n"
                                    "  limits:\n"
                                    "    classes:\n"
                                    "      predict: {rate: 10, burst: 20}\n"
                                    "      admin: {rate: 1, burst: 1}\n"
                                    "    tiers: {standard: 100, gold: 1000}\n";

static void test_equality(void **state) {
    (void)state;
    sl_gw_policy_t *a = parse_ok(limits_a);
    /* Reordered classes and tiers, other endpoints: same limits, same pool settings. */
    sl_gw_policy_t *b = parse_ok("gateway:\n"
                                 "  upstreams:\n"
                                 "    inf: {endpoints: [\"c:1\"], timeout: 5s}\n"
                                 "  limits:\n"
                                 "    classes:\n"
                                 "      admin: {rate: 1, burst: 1}\n"
                                 "      predict: {rate: 10, burst: 20}\n"
                                 "    tiers: {gold: 1000, standard: 100}\n");
    assert_true(sl_gw_limits_equal(sl_gw_policy_limits(a), sl_gw_policy_limits(b)));
    assert_true(sl_gw_upstream_same_settings(sl_gw_policy_upstream_at(a, 0),
                                             sl_gw_policy_upstream_at(b, 0)));
    sl_gw_policy_unref(b);
    /* One changed value each. */
    const char *changes[][2] = {
        {"rate: 10,", "rate: 11,"},
        {"gold: 1000", "gold: 1001"},
        {"tiers: {standard: 100, gold: 1000}", "tiers: {standard: 100}"},
        {"    tiers:", "    idle_ttl: 1m\n    tiers:"},
        {"    tiers:", "    peak_hours: \"01:00-02:00\"\n    tiers:"},
        {"    tiers:", "    utc_offset: \"+01:00\"\n    tiers:"},
        {"      admin: {rate: 1, burst: 1}\n", ""},
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(changes); i++) {
        char buf[1024];
        const char *at = strstr(limits_a, changes[i][0]);
        assert_non_null(at);
        snprintf(buf, sizeof buf, "%.*s%s%s", (int)(at - limits_a), limits_a, changes[i][1],
                 at + strlen(changes[i][0]));
        b = parse_ok(buf);
        if (sl_gw_limits_equal(sl_gw_policy_limits(a), sl_gw_policy_limits(b)))
            fail_msg("change %zu not seen:\n%s", i, buf);
        assert_true(sl_gw_upstream_same_settings(sl_gw_policy_upstream_at(a, 0),
                                                 sl_gw_policy_upstream_at(b, 0)));
        sl_gw_policy_unref(b);
    }
    b = parse_ok("gateway:\n  upstreams:\n    inf: {endpoints: [\"a:1\", \"b:1\"], timeout: 6s}\n");
    assert_false(sl_gw_upstream_same_settings(sl_gw_policy_upstream_at(a, 0),
                                              sl_gw_policy_upstream_at(b, 0)));
    assert_false(sl_gw_limits_equal(sl_gw_policy_limits(a), sl_gw_policy_limits(b)));
    sl_gw_policy_unref(b);
    b = parse_ok(
        "gateway:\n  upstreams:\n    inf2: {endpoints: [\"a:1\", \"b:1\"], timeout: 5s}\n");
    assert_false(sl_gw_upstream_same_settings(sl_gw_policy_upstream_at(a, 0),
                                              sl_gw_policy_upstream_at(b, 0)));
    sl_gw_policy_unref(b);
    b = parse_ok("gateway:\n  upstreams:\n    inf: {endpoints: [\"a:1\"], timeout: 5s, breaker: "
                 "{half_open_calls: 3}}\n");
    assert_false(sl_gw_upstream_same_settings(sl_gw_policy_upstream_at(a, 0),
                                              sl_gw_policy_upstream_at(b, 0)));
    sl_gw_policy_unref(b);
    assert_true(sl_gw_limits_equal(NULL, NULL));
    assert_false(sl_gw_limits_equal(sl_gw_policy_limits(a), NULL));
    assert_false(sl_gw_upstream_same_settings(NULL, sl_gw_policy_upstream_at(a, 0)));
    sl_gw_policy_unref(a);
}

typedef struct {
    sl_gw_policy_holder_t *h;
    atomic_bool stop;
    atomic_ulong reads;
} readers_t;

static void *reader(void *arg) {
    readers_t *r = arg;
    sl_gw_policy_view_t v = {0};
    while (!atomic_load(&r->stop)) {
        const sl_gw_policy_t *p = sl_gw_policy_view_get(r->h, &v);
        const sl_gw_route_t *rt = sl_gw_policy_route(p, str("m1"));
        if (!rt || !rt->upstream || rt->upstream->n_endpoints != 1) abort();
        atomic_fetch_add(&r->reads, 1);
    }
    sl_gw_policy_view_release(&v);
    return NULL;
}

static void test_holder(void **state) {
    (void)state;
    sl_log_level_set(SL_LOG_WARN);
    readers_t r = {.h = sl_gw_policy_holder_new(parse_ok("gateway: {routes: {m1: {timeout: "
                                                         "1ms}}}\n"))};
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, reader, &r);
    for (int i = 2; i < 200; i++) {
        char buf[128];
        snprintf(buf, sizeof buf, "gateway: {routes: {m1: {timeout: %dms}}}\n", i);
        sl_gw_policy_holder_publish(r.h, parse_ok(buf));
    }
    /* Readers saw policies; the last published one is current. */
    while (atomic_load(&r.reads) < 1000) {
        sched_yield();
    }
    atomic_store(&r.stop, true);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    sl_gw_policy_t *cur = sl_gw_policy_holder_acquire(r.h);
    assert_int_equal(sl_gw_policy_route(cur, str("m1"))->timeout_ms, 199);
    sl_gw_policy_t *extra = sl_gw_policy_ref(cur);
    sl_gw_policy_unref(cur);
    sl_gw_policy_holder_free(r.h);
    /* A reference outlives the holder. */
    assert_int_equal(sl_gw_policy_route(extra, str("m1"))->timeout_ms, 199);
    sl_gw_policy_unref(extra);
    sl_log_level_set(SL_LOG_INFO);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_example),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_reference_errors),
        cmocka_unit_test(test_limits_errors),
        cmocka_unit_test(test_upstream_errors),
        cmocka_unit_test(test_references),
        cmocka_unit_test(test_load),
        cmocka_unit_test(test_fault_decide),
        cmocka_unit_test(test_equality),
        cmocka_unit_test(test_holder),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
