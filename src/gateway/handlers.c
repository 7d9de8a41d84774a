/* The gateway's request path: authenticate, validate, limit, pick a version, inject faults,
 * call inference over gRPC through the pool, and answer (with a fallback when the upstream is
 * down). Inference (POST /v2/models/{m}/infer) and pipelines (POST /v1/predict/{name}) take
 * this path; handlers_oip.c has the other routes. */
#include "gateway/handlers_internal.h"

#include "core/json.h"
#include "core/log.h"
#include "gateway/accesslog.h"
#include "inference/grpc_service.pb-c.h"
#include "oip/oip_json.h"
#include "oip/oip_pb.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JSON_TYPE    "application/json"
#define METHOD_INFER "/inference.GRPCInferenceService/ModelInfer"

/* ---- request contexts ---- */

/* Copies src into dst[cap], cut to fit (the hot path's snprintf("%s") without the formatter). */
static void copy_str(char *dst, size_t cap, const char *src) {
    size_t n = src ? strnlen(src, cap - 1) : 0;
    memcpy(dst, src ? src : "", n);
    dst[n] = '\0';
}

#define COPY(dst, src) copy_str((dst), sizeof(dst), (src))

/* Request contexts are a few KiB: each loop keeps some freed ones for reuse instead of going
 * through malloc's large-chunk path on every request. */
#define REQ_CACHE 64

gw_req_t *gw_req_new(sl_gw_t *gw, sl_http_req_t *http, gw_kind_t kind, const char *route_label) {
    sl_gw_loop_t *gl = sl_gw_loop_here(gw);
    gw_req_t *q = gl->req_cache;
    if (q) {
        gl->req_cache = q->cache_next;
        gl->n_req_cache--;
        memset(q, 0, sizeof *q);
    } else {
        q = sl_calloc(1, sizeof *q);
    }
    q->gw = gw;
    q->gl = gl;
    q->http = http;
    q->kind = kind;
    q->route_label = route_label;
    q->cost = 1;
    q->t0_ns = sl_now_ns();
    q->policy = sl_gw_policy_ref(sl_gw_policy_view_get(gw->policy, &q->gl->policy));
    /* Inference's span becomes a child of the gateway's; with tracing off, a client's own
     * (valid) traceparent still travels on, so its trace spans both services. */
    const sl_trace_ctx_t *tc = sl_http_req_trace(http);
    sl_trace_ctx_t client;
    if (!tc && sl_traceparent_parse(sl_http_req_header(http, "traceparent"), &client) == 0)
        tc = &client;
    if (tc) {
        sl_traceparent_format(tc, q->traceparent);
        sl_trace_id_hex(tc, q->trace_id);
        sl_span_id_hex(tc, q->span_id);
    }
    return q;
}

static void req_release(gw_req_t *q) {
    sl_gw_loop_t *gl = q->gl;
    if (!gl->finished && gl->n_req_cache < REQ_CACHE) {
        q->cache_next = gl->req_cache;
        gl->req_cache = q;
        gl->n_req_cache++;
    } else {
        free(q);
    }
}

static void req_free_cb(uv_handle_t *h) {
    req_release(h->data);
}

void sl_gw_req_cache_free(sl_gw_loop_t *gl) {
    gl->finished = true; /* contexts released from here on (timer closes) are freed at once */
    free(gl->scratch);
    gl->scratch = NULL;
    gl->scratch_cap = 0;
    while (gl->req_cache) {
        gw_req_t *q = gl->req_cache;
        gl->req_cache = q->cache_next;
        free(q);
    }
    gl->n_req_cache = 0;
}

static void req_free(gw_req_t *q) {
    if (q->ireq) sl_infer_request_free(q->ireq);
    sl_pipeline_input_free(&q->pin);
    sl_buf_free(&q->msg);
    sl_gw_policy_unref(q->policy);
    if (q->timer_ready) {
        q->timer.data = q;
        uv_close((uv_handle_t *)&q->timer, req_free_cb);
    } else {
        req_release(q);
    }
}

/* ---- answers ---- */

void gw_error_body(sl_buf_t *b, const char *msg) {
    sl_buf_puts(b, "{\"error\":\"");
    sl_buf_json_escape(b, msg, strlen(msg));
    sl_buf_puts(b, "\"}");
}

static bool lookup_header(void *ctx, const char *name, sl_str_t *out) {
    gw_req_t *q = ctx;
    sl_str_t v = sl_http_req_header(q->http, name);
    if (!v.ptr) return false;
    *out = v;
    return true;
}

static bool lookup_field(void *ctx, const char *name, sl_str_t *out) {
    gw_req_t *q = ctx;
    if (q->kind != GW_PIPELINE) return false;
    return sl_pipeline_input_field(&q->pin, name, out) == 0;
}

static void access_log(gw_req_t *q, int status, size_t bytes_out) {
    const sl_access_log_cfg_t *cfg = sl_gw_policy_access_log(q->policy);
    uint64_t rnd = sl_rand64();
    if (!sl_access_log_sampled(cfg, status, rnd)) return;
    uint64_t now = sl_now_ns();
    char method[16];
    snprintf(method, sizeof method, "%.*s", (int)q->http->method.len, q->http->method.ptr);
    sl_access_entry_t e = {
        .method = method,
        .path = q->http->path.ptr,
        .path_len = q->http->path.len,
        .status = status,
        .duration_us = (now - q->t0_ns) / 1000,
        .upstream_us = q->up_ns / 1000,
        .bytes_in = q->http->body_len,
        .bytes_out = bytes_out,
        .key_id = q->key_id[0] ? q->key_id : NULL,
        .tenant = q->tenant[0] ? q->tenant : NULL,
        .model = q->model[0] ? q->model : NULL,
        .version = q->version[0] ? q->version : NULL,
        .endpoint = q->endpoint[0] ? q->endpoint : NULL,
        .route = q->route_label,
        .outcome = q->outcome,
        .degraded = q->degraded,
        .retries = q->retries,
        .trace_id = q->trace_id[0] ? q->trace_id : NULL,
        .span_id = q->span_id[0] ? q->span_id : NULL,
        .field_cb = lookup_field,
        .header_cb = lookup_header,
        .cb_ctx = q,
    };
    sl_access_log_write(cfg, &e, rnd);
}

void gw_respond(gw_req_t *q, int status, sl_buf_t *body, const char *content_type,
                const char *outcome) {
    q->outcome = outcome;
    if (q->has_rlh) {
        sl_http_resp_header(q->http, "RateLimit-Policy", q->rlh.policy);
        sl_http_resp_header(q->http, "RateLimit", q->rlh.ratelimit);
        if (q->rlh.retry_after[0]) sl_http_resp_header(q->http, "Retry-After", q->rlh.retry_after);
    }
    if (!body->data) sl_buf_puts(body, "");
    access_log(q, status, body->len);
    sl_http_respond_take(q->http, status, body->len ? content_type : NULL, body->data, body->len);
    *body = (sl_buf_t)SL_BUF_INIT;
    req_free(q);
}

void gw_respond_error(gw_req_t *q, int status, const char *msg, const char *outcome) {
    sl_buf_t b = SL_BUF_INIT;
    gw_error_body(&b, msg);
    gw_respond(q, status, &b, JSON_TYPE, outcome);
}

/* ---- authentication ---- */

bool gw_authenticate(gw_req_t *q, unsigned scopes) {
    const sl_keys_t *keys = sl_keys_view_get(q->gw->keys, &q->gl->keys);
    sl_keys_auth_t res;
    sl_str_t header = sl_http_req_header(q->http, "authorization");
    sl_keys_authenticate(keys, header, (int64_t)(sl_wall_time_ns() / 1000000000u), &res);
    if (res.outcome != SL_KEYS_AUTH_OK) {
        const char *reason = sl_keys_auth_outcome_name(res.outcome);
        sl_counter_inc(sl_metric_counter(q->gw->m.auth_failures, (const char *[]){reason}));
        if (res.key) COPY(q->key_id, res.key->id);
        sl_http_resp_header(q->http, "WWW-Authenticate", "Bearer realm=\"sluice\"");
        gw_respond_error(q, 401,
                         "unauthorized: send a valid API key as 'Authorization: Bearer <key>'",
                         "unauthorized");
        return false;
    }
    COPY(q->key_id, res.key->id);
    COPY(q->tenant, res.key->tenant);
    COPY(q->tier, res.key->tier);
    if (!sl_keys_has_scope(res.key, scopes)) {
        sl_counter_inc(sl_metric_counter(q->gw->m.auth_failures, (const char *[]){"scope"}));
        gw_respond_error(q, 403,
                         scopes & SL_KEY_SCOPE_ADMIN ? "forbidden: this route needs an admin key"
                                                     : "forbidden: this key may not predict",
                         "forbidden");
        return false;
    }
    return true;
}

/* ---- rate limits ---- */

static bool limits_have(const sl_rl_config_t *rl, const char *class, const char *tier,
                        bool *tier_known) {
    bool class_known = false;
    *tier_known = false;
    for (size_t i = 0; i < rl->n_classes; i++) {
        if (strcmp(rl->classes[i].name, class) == 0) class_known = true;
    }
    for (size_t i = 0; i < rl->n_tiers; i++) {
        if (strcmp(rl->tiers[i].name, tier) == 0) *tier_known = true;
    }
    return class_known;
}

static void limit_done(int status, const sl_rl_result_t *res, void *arg) {
    gw_req_t *q = arg;
    void (*next)(gw_req_t *) = q->limit_next;
    const char *class = q->limit_class;
    /* A limiter that could not decide (Redis down or slow) says so in its own logs and hands
     * back what its fail-open / fail-closed setting decided. */
    if (status != 0) sl_counter_inc(q->gw->m.limiter_errors);
    if (!res) {
        gw_respond_error(q, 503, "rate limiter unavailable; retry later", "limiter_error");
        return;
    }
    q->has_rlh = res->n_policies > 0 && sl_rl_format_headers(res, &q->rlh) == 0;
    if (!res->allowed) {
        sl_counter_inc(sl_metric_counter(q->gw->m.rate_limited, (const char *[]){class}));
        char msg[128];
        snprintf(msg, sizeof msg, "rate limit exceeded: retry after %" PRIu32 " s",
                 res->retry_after_s);
        if (!q->has_rlh) {
            char ra[16];
            snprintf(ra, sizeof ra, "%" PRIu32, res->retry_after_s ? res->retry_after_s : 1);
            sl_http_resp_header(q->http, "Retry-After", ra);
        }
        gw_respond_error(q, 429, msg, "rate_limited");
        return;
    }
    next(q);
}

void gw_limit(gw_req_t *q, const char *class, void (*next)(gw_req_t *q)) {
    /* The limiter's own configuration decides which classes and tiers it knows (a reload that
     * changes limits needs a restart). */
    const sl_gw_limits_t *lim = sl_gw_policy_limits(q->gw->limits_policy);
    bool tier_known;
    if (!q->gw->has_limiter || !class || !limits_have(&lim->rl, class, q->tier, &tier_known)) {
        next(q);
        return;
    }
    sl_rl_request_t rq = {
        .key_id = q->key_id,
        .quota_id = q->tenant,
        .route_class = class,
        .tier = tier_known ? q->tier : NULL,
        .cost = q->cost,
    };
    q->limit_next = next;
    q->limit_class = class;
    int rc = sl_rl_check_async(&q->gw->limiter, sl_loop_uv(sl_loop_current()), &rq, limit_done, q);
    if (rc == SL_ERANGE) {
        /* The cost can never pass: a batch bigger than the bucket. Nothing was decided. */
        gw_respond_error(q, 400,
                         "the request's rows exceed this key's burst limit; send fewer rows",
                         "bad_request");
    } else if (rc != 0) {
        sl_counter_inc(q->gw->m.limiter_errors);
        gw_respond_error(q, 503, "rate limiter unavailable; retry later", "limiter_error");
    }
}

/* ---- upstream ---- */

void gw_upstream(gw_req_t *q, const char *method, bool idempotent, sl_gw_call_cb done) {
    sl_upstream_pool_t *pool = sl_gw_pool_find(q->gw, q->route->upstream->name);
    sl_gw_call_opts_t o = {
        .method = method,
        .client_deadline_ms = q->route->timeout_ms ? sl_now_ms() + q->route->timeout_ms : 0,
        .idempotent = idempotent,
        .traceparent = q->traceparent[0] ? q->traceparent : NULL,
    };
    sl_upstream_reason_t why = SL_UPSTREAM_NO_ENDPOINTS;
    q->up_start_ns = sl_now_ns();
    int rc =
        pool ? sl_gw_call_start(q->gl->clients, pool, &o, q->msg.data, q->msg.len, done, q, &why)
             : SL_ENOENT;
    if (rc != 0) {
        sl_gw_call_result_t r = {
            .code = why == SL_UPSTREAM_DEADLINE ? SL_GRPC_DEADLINE_EXCEEDED : SL_GRPC_UNAVAILABLE,
            .message = sl_upstream_reason_name(why),
            .outcome = SL_RETRY_OUTCOME_CONNECT_FAILURE,
            .reason = why,
            .endpoint = "",
        };
        done(&r, q);
    }
}

static void count_upstream(gw_req_t *q, const sl_gw_call_result_t *r) {
    q->up_ns = sl_now_ns() - q->up_start_ns;
    q->retries = r->attempts > 1 ? r->attempts - 1 : 0;
    COPY(q->endpoint, r->endpoint ? r->endpoint : "");
    const char *what = r->reason != SL_UPSTREAM_OK ? sl_upstream_reason_name(r->reason)
                                                   : sl_retry_outcome_name(r->outcome);
    sl_counter_inc(
        sl_metric_counter(q->gw->m.upstream, (const char *[]){q->route->upstream->name, what}));
}

/* Failures that a fallback may hide: the upstream is down, slow, broken or shedding load; not
 * the request's own fault. */
static bool upstream_down(const sl_gw_call_result_t *r) {
    return r->reason != SL_UPSTREAM_OK || r->outcome != SL_RETRY_OUTCOME_CLIENT_ERROR;
}

void gw_respond_upstream_error(gw_req_t *q, const sl_gw_call_result_t *r) {
    if (r->reason == SL_UPSTREAM_OK && r->outcome == SL_RETRY_OUTCOME_CLIENT_ERROR) {
        /* Inference refused the request itself; its messages are written for clients. */
        int status = r->code == SL_GRPC_NOT_FOUND ? 404 : 400;
        gw_respond_error(q, status, r->message,
                         r->code == SL_GRPC_NOT_FOUND ? "not_found" : "bad_request");
        return;
    }
    SL_WARN("gateway", "upstream failed", SL_LF_S("pool", q->route->upstream->name),
            SL_LF_S("endpoint", q->endpoint), SL_LF_S("grpc_status", sl_grpc_code_name(r->code)),
            SL_LF_S("message", r->message), SL_LF_S("reason", sl_upstream_reason_name(r->reason)),
            SL_LF_U("attempts", r->attempts), SL_LF_S("trace_id", q->trace_id));
    if (r->outcome == SL_RETRY_OUTCOME_RATE_LIMITED && r->reason == SL_UPSTREAM_OK) {
        sl_http_resp_header(q->http, "Retry-After", "1");
        gw_respond_error(q, 503, "the model is overloaded; retry later", "upstream_overloaded");
    } else if (r->code == SL_GRPC_DEADLINE_EXCEEDED) {
        gw_respond_error(q, 504, "the model did not answer in time", "upstream_timeout");
    } else {
        gw_respond_error(q, 503, "the model is unavailable; retry later", "upstream_error");
    }
}

/* ---- fallbacks ---- */

/* Serves the last good answer or the configured default, marked degraded. Returns false (and
 * answers nothing) when the route has neither for this request. */
static bool serve_fallback(gw_req_t *q) {
    const sl_gw_fallback_t *fb = &q->route->fallback;
    sl_buf_t cached = SL_BUF_INIT, body = SL_BUF_INIT;
    bool ok = false;
    if (fb->last_good && q->fb_route[0] &&
        sl_fallback_get(q->gw->fallback, q->fb_route, q->fb_hash, sl_now_ms(), &cached, NULL)) {
        ok = sl_fallback_mark_degraded(cached.data, cached.len, &body) == 0;
    }
    if (!ok && fb->default_json && q->kind == GW_PIPELINE) {
        sl_buf_puts(&body, "{\"degraded\":true,\"model\":\"");
        sl_buf_json_escape(&body, q->model, strlen(q->model));
        if (q->pin.instances) {
            sl_buf_puts(&body, "\",\"predictions\":[");
            for (uint32_t i = 0; i < q->pin.rows; i++) {
                if (i) sl_buf_putc(&body, ',');
                sl_buf_append(&body, fb->default_json, fb->default_len);
            }
            sl_buf_puts(&body, "]}");
        } else {
            sl_buf_puts(&body, "\",\"outputs\":");
            sl_buf_append(&body, fb->default_json, fb->default_len);
            sl_buf_putc(&body, '}');
        }
        ok = true;
    }
    sl_buf_free(&cached);
    if (!ok) {
        sl_buf_free(&body);
        return false;
    }
    q->degraded = true;
    sl_counter_inc(q->gw->m.degraded);
    sl_http_resp_header(q->http, "X-Sluice-Degraded", "true");
    gw_respond(q, 200, &body, JSON_TYPE, "degraded");
    return true;
}

/* ---- shadow traffic ---- */

struct gw_shadow {
    sl_gw_t *gw;
    sl_gw_loop_t *gl;
    sl_outcomes_version_t *ov;
    uint64_t t0_ns;
    sl_buf_t msg;
    int pending; /* the primary and the shadow call */
    bool primary_ok, shadow_ok, shadow_done;
    double shadow_latency_s;
    sl_infer_response_t *primary, *answer;
};

static bool outputs_agree(const sl_infer_response_t *a, const sl_infer_response_t *b) {
    if (a->n_outputs != b->n_outputs) return false;
    for (size_t i = 0; i < a->n_outputs; i++) {
        const sl_infer_output_t *x = &a->outputs[i], *y = NULL;
        for (size_t j = 0; j < b->n_outputs; j++) {
            if (strcmp(x->name, b->outputs[j].name) == 0) y = &b->outputs[j];
        }
        if (!y || x->dtype != y->dtype || x->ndim != y->ndim || x->byte_size != y->byte_size ||
            memcmp(x->dims, y->dims, x->ndim * sizeof x->dims[0]) != 0)
            return false;
        if (x->dtype == SLUICE_DT_FP32) {
            const float *p = x->data, *r = y->data;
            for (uint64_t k = 0; k < x->byte_size / 4; k++) {
                float d = p[k] - r[k], m = (p[k] < 0 ? -p[k] : p[k]) * 1e-4f + 1e-6f;
                if (d > m || d < -m) return false;
            }
        } else if (x->dtype == SLUICE_DT_FP64) {
            const double *p = x->data, *r = y->data;
            for (uint64_t k = 0; k < x->byte_size / 8; k++) {
                double d = p[k] - r[k], m = (p[k] < 0 ? -p[k] : p[k]) * 1e-9 + 1e-12;
                if (d > m || d < -m) return false;
            }
        } else if (memcmp(x->data, y->data, x->byte_size) != 0) {
            return false;
        }
    }
    return true;
}

static void shadow_settle(gw_shadow_t *s) {
    if (--s->pending > 0) return;
    if (s->primary_ok) {
        sl_shadow_result_t res = !s->shadow_ok                          ? SL_SHADOW_ERROR
                                 : outputs_agree(s->primary, s->answer) ? SL_SHADOW_AGREE
                                                                        : SL_SHADOW_DISAGREE;
        sl_outcomes_record_shadow(s->ov, res, s->shadow_latency_s);
    }
    sl_infer_response_free(s->primary);
    sl_infer_response_free(s->answer);
    sl_buf_free(&s->msg);
    free(s);
}

/* protobuf-c allocates every field of an unpacked message separately; an answer is unpacked,
 * converted and dropped within one callback, so it takes bump memory from its loop instead and
 * gives it all back at once. What does not fit comes from malloc (and the scratch grows for
 * the next answer, up to SCRATCH_MAX). */
#define SCRATCH_MIN (16u << 10)
#define SCRATCH_MAX (1u << 20)

static void *scratch_alloc(void *data, size_t size) {
    sl_gw_loop_t *gl = data;
    size_t at = (gl->scratch_used + 15) & ~(size_t)15;
    if (gl->scratch && at + size <= gl->scratch_cap) {
        gl->scratch_used = at + size;
        return gl->scratch + at;
    }
    gl->scratch_overflowed = true;
    return sl_malloc(size ? size : 1);
}

static void scratch_free(void *data, void *ptr) {
    sl_gw_loop_t *gl = data;
    uint8_t *p = ptr;
    if (p && !(gl->scratch && p >= gl->scratch && p < gl->scratch + gl->scratch_cap)) free(p);
}

static sl_infer_response_t *decode_infer_response(sl_gw_loop_t *gl, const uint8_t *msg, size_t len,
                                                  sl_infer_error_t *err) {
    if (!gl->scratch || gl->scratch_overflowed) {
        size_t cap = gl->scratch ? SL_MIN(2 * gl->scratch_cap, SCRATCH_MAX) : SCRATCH_MIN;
        if (cap != gl->scratch_cap) {
            free(gl->scratch);
            gl->scratch = sl_malloc(cap);
            gl->scratch_cap = cap;
        }
        gl->scratch_overflowed = false;
    }
    gl->scratch_used = 0;
    ProtobufCAllocator alloc = {.alloc = scratch_alloc, .free = scratch_free, .allocator_data = gl};
    Inference__ModelInferResponse *m = inference__model_infer_response__unpack(&alloc, len, msg);
    if (!m) {
        sl_infer_error_set(err, SL_INFER_INTERNAL, "the upstream sent a malformed response");
        return NULL;
    }
    sl_infer_response_t *resp = NULL;
    sl_oip_pb_decode_response(m, &resp, err);
    inference__model_infer_response__free_unpacked(m, &alloc);
    return resp;
}

static void shadow_done(const sl_gw_call_result_t *r, void *arg) {
    gw_shadow_t *s = arg;
    s->shadow_latency_s = (double)(sl_now_ns() - s->t0_ns) / 1e9;
    if (r->code == SL_GRPC_OK) {
        sl_infer_error_t err;
        s->answer = decode_infer_response(s->gl, r->resp, r->len, &err);
        s->shadow_ok = s->answer != NULL;
    }
    shadow_settle(s);
}

/* Mirrors q's request to the shadow version: one attempt, no retries, its answer only compared. */
static void shadow_start(gw_req_t *q, const char *version) {
    gw_shadow_t *s = sl_calloc(1, sizeof *s);
    s->gw = q->gw;
    s->gl = q->gl;
    s->t0_ns = sl_now_ns();
    s->ov = sl_outcomes_version(q->gw->outcomes, sl_str_c(q->model), sl_str_c(version));
    const char *primary = q->ireq->model_version;
    q->ireq->model_version = version;
    sl_oip_pb_encode_request(q->ireq, &s->msg);
    q->ireq->model_version = primary;
    sl_upstream_pool_t *pool = sl_gw_pool_find(q->gw, q->route->upstream->name);
    sl_gw_call_opts_t o = {.method = METHOD_INFER, .no_retry = true};
    sl_upstream_reason_t why;
    if (!pool || sl_gw_call_start(q->gl->clients, pool, &o, s->msg.data, s->msg.len, shadow_done, s,
                                  &why) != 0) {
        sl_outcomes_record_shadow(s->ov, SL_SHADOW_ERROR, 0);
        sl_buf_free(&s->msg);
        free(s);
        return;
    }
    s->pending = 2;
    q->shadow = s;
}

/* ---- inference and pipelines ---- */

static void infer_done(const sl_gw_call_result_t *r, void *arg) {
    gw_req_t *q = arg;
    count_upstream(q, r);
    double latency_s = (double)(sl_now_ns() - q->t0_ns) / 1e9;
    gw_shadow_t *shadow = q->shadow;
    q->shadow = NULL;
    if (r->code != SL_GRPC_OK) {
        sl_outcomes_version_t *ov =
            sl_outcomes_version(q->gw->outcomes, sl_str_c(q->model), sl_str_c(q->version));
        sl_outcome_t o = r->outcome == SL_RETRY_OUTCOME_CLIENT_ERROR ? SL_OUTCOME_CLIENT_ERROR
                         : r->code == SL_GRPC_DEADLINE_EXCEEDED      ? SL_OUTCOME_TIMEOUT
                         : r->reason != SL_UPSTREAM_OK               ? SL_OUTCOME_UNAVAILABLE
                                                                     : SL_OUTCOME_SERVER_ERROR;
        sl_outcomes_record(ov, o, latency_s);
        if (shadow) shadow_settle(shadow);
        if (upstream_down(r) && serve_fallback(q)) return;
        gw_respond_upstream_error(q, r);
        return;
    }
    sl_infer_error_t err;
    sl_infer_response_t *resp = decode_infer_response(q->gl, r->resp, r->len, &err);
    /* Outcomes count under the version that answered (the newest, when none was asked for). */
    if (resp && !q->version[0]) COPY(q->version, resp->model_version);
    sl_outcomes_version_t *ov =
        sl_outcomes_version(q->gw->outcomes, sl_str_c(q->model), sl_str_c(q->version));
    sl_buf_t body = SL_BUF_INIT;
    size_t header_len = 0;
    if (resp && q->kind == GW_PIPELINE) {
        if (sl_pipeline_encode(q->pipeline->pipeline, &q->pin, resp, &body, &err) != SL_INFER_OK) {
            sl_infer_response_free(resp);
            resp = NULL;
        }
        header_len = body.len;
    } else if (resp) {
        sl_oip_json_write_response(q->ireq, resp, &body, &header_len);
    }
    if (!resp) {
        sl_outcomes_record(ov, SL_OUTCOME_SERVER_ERROR, latency_s);
        if (shadow) shadow_settle(shadow);
        SL_ERROR("gateway", "upstream answer unusable", SL_LF_S("model", q->model),
                 SL_LF_S("endpoint", q->endpoint), SL_LF_S("error", err.msg));
        sl_buf_free(&body);
        gw_respond_error(q, 502, "the model's answer could not be used", "bad_upstream_answer");
        return;
    }
    sl_outcomes_record(ov, SL_OUTCOME_SUCCESS, latency_s);
    if (shadow) {
        shadow->primary = resp;
        shadow->primary_ok = true;
        resp = NULL;
        shadow_settle(shadow);
    }
    sl_infer_response_free(resp);
    bool binary = header_len != body.len;
    if (binary) {
        char hl[24];
        snprintf(hl, sizeof hl, "%zu", header_len);
        sl_http_resp_header(q->http, "Inference-Header-Content-Length", hl);
    } else if (q->route->fallback.last_good && q->fb_route[0]) {
        sl_fallback_put(q->gw->fallback, q->fb_route, q->fb_hash, 0, body.data, body.len,
                        sl_now_ms());
    }
    gw_respond(q, 200, &body, binary ? "application/octet-stream" : JSON_TYPE, "ok");
}

static void send_infer(gw_req_t *q) {
    if (q->version[0])
        q->ireq->model_version = sl_infer_request_strndup(q->ireq, q->version, strlen(q->version));
    sl_oip_pb_encode_request(q->ireq, &q->msg);
    gw_upstream(q, METHOD_INFER, true, infer_done);
}

static void on_fault_delay(uv_timer_t *t) {
    send_infer(t->data);
}

/* Picks the version (traffic policy), mirrors to the shadow, injects faults, then sends. */
static void dispatch_infer(gw_req_t *q) {
    const sl_traffic_policy_t *tp =
        q->version[0] ? NULL
                      : sl_traffic_set_find(sl_gw_policy_traffic(q->policy), sl_str_c(q->model));
    const char *shadow = NULL;
    if (tp) {
        sl_str_t sticky = {NULL, 0}, override = {NULL, 0};
        if (tp->sticky_source == SL_TRAFFIC_STICKY_HEADER) {
            sticky = sl_http_req_header(q->http, tp->sticky_name);
        } else if (tp->sticky_source == SL_TRAFFIC_STICKY_FIELD && q->kind == GW_PIPELINE) {
            if (sl_pipeline_input_field(&q->pin, tp->sticky_name, &sticky) != 0)
                sticky = (sl_str_t){NULL, 0};
        }
        if (tp->override_header) override = sl_http_req_header(q->http, tp->override_header);
        sl_traffic_decision_t d;
        sl_traffic_pick(tp, sticky, override, &d);
        COPY(q->version, d.version);
        shadow = d.shadow;
    }
    sl_gw_fault_action_t f = sl_gw_fault_decide(&q->route->fault, sl_rand64(), sl_rand64());
    if (f.abort_status) {
        sl_counter_inc(sl_metric_counter(q->gw->m.faults, (const char *[]){"abort"}));
        gw_respond_error(q, (int)f.abort_status, "fault injected by the gateway's configuration",
                         "fault_abort");
        return;
    }
    if (shadow) shadow_start(q, shadow);
    if (f.delay_ms) {
        sl_counter_inc(sl_metric_counter(q->gw->m.faults, (const char *[]){"delay"}));
        uv_timer_init(sl_loop_uv(sl_loop_current()), &q->timer);
        q->timer.data = q;
        q->timer_ready = true;
        uv_timer_start(&q->timer, on_fault_delay, f.delay_ms, 0);
        return;
    }
    send_infer(q);
}

/* The fallback key: the route and a hash of what the model sees (never the request id). */
static uint64_t inputs_hash(const sl_infer_request_t *req) {
    uint64_t h = sl_fnv64(SL_FNV64_INIT, req->model_name, strlen(req->model_name) + 1);
    for (size_t i = 0; i < req->n_inputs; i++) {
        const sl_infer_input_t *in = &req->inputs[i];
        h = sl_fnv64(h, in->name, strlen(in->name) + 1);
        h = sl_fnv64(h, &in->dtype, sizeof in->dtype);
        h = sl_fnv64(h, in->dims, in->ndim * sizeof in->dims[0]);
        h = sl_fnv64(h, in->data, in->byte_size);
    }
    return h;
}

static void infer_start(gw_req_t *q) {
    q->ireq = sl_infer_request_new(sl_loop_current(), NULL, NULL);
    q->ireq->model_name = sl_infer_request_strndup(q->ireq, q->model, strlen(q->model));
    sl_str_t hcl = sl_http_req_header(q->http, "inference-header-content-length");
    int64_t header_len = -1;
    if (hcl.ptr) {
        char tmp[24];
        char *end;
        snprintf(tmp, sizeof tmp, "%.*s", (int)SL_MIN(hcl.len, sizeof tmp - 1), hcl.ptr);
        long long v = strtoll(tmp, &end, 10);
        if (*end || v < 0 || hcl.len >= sizeof tmp) {
            gw_respond_error(q, 400, "Inference-Header-Content-Length must be a byte count",
                             "bad_request");
            return;
        }
        header_len = v;
    }
    sl_infer_error_t err;
    if (sl_oip_json_parse_request(q->http->body, q->http->body_len, header_len, q->ireq, &err) !=
        SL_INFER_OK) {
        gw_respond_error(q, 400, err.msg, "bad_request");
        return;
    }
    q->route = sl_gw_policy_route(q->policy, sl_str_c(q->model));
    if (!q->route) {
        gw_respond_error(q, 503, "no upstream is configured for this model", "no_route");
        return;
    }
    if (q->route->fallback.last_good) {
        snprintf(q->fb_route, sizeof q->fb_route, "v2:%s", q->model);
        q->fb_hash = inputs_hash(q->ireq);
    }
    gw_limit(q, SL_GW_CLASS_PREDICT, dispatch_infer);
}

static void handle_models(sl_http_req_t *r, void *ctx) {
    sl_gw_t *gw = ctx;
    sl_oip_model_path_t p;
    const char *msg;
    static const char prefix[] = "/v2/models/";
    sl_str_t rest = {r->path.ptr + sizeof prefix - 1, r->path.len - (sizeof prefix - 1)};
    int status = sl_oip_parse_model_path(rest, &p, &msg);
    bool post = sl_str_eq(r->method, "POST");
    gw_kind_t kind = sl_str_eq(p.action, "infer")   ? GW_INFER
                     : sl_str_eq(p.action, "ready") ? GW_READY
                                                    : GW_METADATA;
    gw_req_t *q = gw_req_new(gw, r, kind, "oip");
    if (status) {
        gw_respond_error(q, status, msg, "bad_request");
        return;
    }
    if (p.action.len && kind == GW_METADATA) {
        /* config and stats belong to the operators of inference, not to API clients. */
        gw_respond_error(q, 404, "not found: the gateway serves infer, ready and metadata",
                         "not_found");
        return;
    }
    if (post != (kind == GW_INFER)) {
        sl_http_resp_header(r, "Allow", kind == GW_INFER ? "POST" : "GET");
        gw_respond_error(q, 405, "method not allowed", "bad_request");
        return;
    }
    COPY(q->model, p.model);
    COPY(q->version, p.version);
    if (!gw_authenticate(q, SL_KEY_SCOPE_PREDICT)) return;
    if (kind == GW_INFER) {
        infer_start(q);
    } else {
        q->route = sl_gw_policy_route(q->policy, sl_str_c(q->model));
        if (!q->route) {
            gw_respond_error(q, 503, "no upstream is configured for this model", "no_route");
            return;
        }
        gw_limit(q, SL_GW_CLASS_METADATA, kind == GW_READY ? gw_ready_start : gw_metadata_start);
    }
}

static void handle_predict(sl_http_req_t *r, void *ctx) {
    sl_gw_t *gw = ctx;
    gw_req_t *q = gw_req_new(gw, r, GW_PIPELINE, "predict");
    static const char prefix[] = "/v1/predict/";
    sl_str_t name = {r->path.ptr + sizeof prefix - 1, r->path.len - (sizeof prefix - 1)};
    if (!sl_oip_name_ok(name, false)) {
        gw_respond_error(q, 400,
                         "pipeline name must be 1-255 characters of letters, digits, '_', '.' "
                         "and '-' (not '.' or '..')",
                         "bad_request");
        return;
    }
    if (!gw_authenticate(q, SL_KEY_SCOPE_PREDICT)) return;
    q->pipeline = sl_gw_policy_pipeline(q->policy, name);
    if (!q->pipeline) {
        gw_respond_error(q, 404, "not found: no such pipeline", "not_found");
        return;
    }
    const sl_pipeline_t *pl = q->pipeline->pipeline;
    COPY(q->model, sl_pipeline_model(pl));
    const char *v = sl_pipeline_version(pl);
    COPY(q->version, v ? v : "");
    q->route = &q->pipeline->route;
    q->ireq = sl_infer_request_new(sl_loop_current(), NULL, NULL);
    sl_infer_error_t err;
    if (sl_pipeline_decode(pl, r->body, r->body_len, 0, q->ireq, &q->pin, &err) != SL_INFER_OK) {
        gw_respond_error(q, 400, err.msg, "bad_request");
        return;
    }
    q->cost = q->pin.rows;
    if (q->route->fallback.last_good) {
        snprintf(q->fb_route, sizeof q->fb_route, "v1:%s", q->pipeline->name);
        q->fb_hash = q->pin.hash;
    }
    gw_limit(q, SL_GW_CLASS_PREDICT, dispatch_infer);
}

static void handle_live(sl_http_req_t *r, void *ctx) {
    sl_http_respond(r, 200, NULL, "", 0);
}

static void handle_ready(sl_http_req_t *r, void *ctx) {
    sl_gw_t *gw = ctx;
    sl_http_respond(r, atomic_load(&gw->started) && !sl_runtime_draining(gw->rt) ? 200 : 503, NULL,
                    "", 0);
}

static void handle_server_metadata(sl_http_req_t *r, void *ctx) {
    static const char body[] = "{\"name\":\"sluice-gateway\",\"version\":\"" SL_VERSION
                               "\",\"extensions\":[\"binary_tensor_data\",\"model_repository\"]}";
    sl_http_respond(r, 200, JSON_TYPE, body, sizeof body - 1);
}

void sl_gw_handlers_register(sl_gw_t *gw, sl_http_server_t *http) {
    sl_http_server_route(http, "GET", "/v2", handle_server_metadata, gw, true);
    sl_http_server_route(http, "GET", "/v2/health/live", handle_live, gw, false);
    sl_http_server_route(http, "GET", "/v2/health/ready", handle_ready, gw, false);
    sl_http_server_route(http, NULL, "/v2/models/*", handle_models, gw, true);
    sl_http_server_route(http, "POST", "/v1/predict/*", handle_predict, gw, true);
    sl_http_server_route(http, "POST", "/v2/repository/index", gw_handle_repository_index, gw,
                         true);
    sl_http_server_route(http, "POST", "/v2/repository/models/*", gw_handle_repository_model, gw,
                         true);
    sl_http_server_route(http, "GET", "/v1/admin/outcomes", gw_handle_admin_outcomes, gw, true);
}
