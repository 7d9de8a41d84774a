/* The gateway's other routes: model metadata and readiness (OIP REST, answered from the
 * upstream's gRPC replies), the repository extension for admin keys (index from one endpoint,
 * load and unload on every endpoint of the pool), and the admin view of per-version outcomes
 * and upstream endpoint state. */
#include "gateway/handlers_internal.h"

#include "core/json.h"
#include "core/log.h"
#include "inference/grpc_service.pb-c.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JSON_TYPE "application/json"
#define SERVICE   "/inference.GRPCInferenceService/"

static void put_str(sl_buf_t *b, const char *s) {
    sl_buf_putc(b, '"');
    sl_buf_json_escape(b, s ? s : "", s ? strlen(s) : 0);
    sl_buf_putc(b, '"');
}

/* Packs a protobuf-c message into q->msg. */
static void pack(gw_req_t *q, const ProtobufCMessage *m) {
    size_t n = protobuf_c_message_get_packed_size(m);
    sl_buf_reserve(&q->msg, n);
    protobuf_c_message_pack(m, (uint8_t *)q->msg.data);
    q->msg.len = n;
}

/* Records the call's outcome; returns false after answering when it failed. */
static bool upstream_ok(gw_req_t *q, const sl_gw_call_result_t *r) {
    q->up_ns = sl_now_ns() - q->up_start_ns;
    snprintf(q->endpoint, sizeof q->endpoint, "%s", r->endpoint ? r->endpoint : "");
    q->retries = r->attempts > 1 ? r->attempts - 1 : 0;
    if (r->code == SL_GRPC_OK) return true;
    gw_respond_upstream_error(q, r);
    return false;
}

static void bad_answer(gw_req_t *q) {
    SL_ERROR("gateway", "upstream answer unusable", SL_LF_S("endpoint", q->endpoint));
    gw_respond_error(q, 502, "the upstream's answer could not be used", "bad_upstream_answer");
}

/* ---- metadata and readiness ---- */

static void put_tensors(sl_buf_t *b, Inference__ModelMetadataResponse__TensorMetadata **t,
                        size_t n) {
    sl_buf_putc(b, '[');
    for (size_t i = 0; i < n; i++) {
        if (i) sl_buf_putc(b, ',');
        sl_buf_puts(b, "{\"name\":");
        put_str(b, t[i]->name);
        sl_buf_puts(b, ",\"datatype\":");
        put_str(b, t[i]->datatype);
        sl_buf_puts(b, ",\"shape\":[");
        for (size_t k = 0; k < t[i]->n_shape; k++) {
            if (k) sl_buf_putc(b, ',');
            sl_buf_put_i64(b, t[i]->shape[k]);
        }
        sl_buf_puts(b, "]}");
    }
    sl_buf_putc(b, ']');
}

static void metadata_done(const sl_gw_call_result_t *r, void *arg) {
    gw_req_t *q = arg;
    if (!upstream_ok(q, r)) return;
    Inference__ModelMetadataResponse *m =
        inference__model_metadata_response__unpack(NULL, r->len, r->resp);
    if (!m) {
        bad_answer(q);
        return;
    }
    sl_buf_t b = SL_BUF_INIT;
    sl_buf_puts(&b, "{\"name\":");
    put_str(&b, m->name);
    sl_buf_puts(&b, ",\"versions\":[");
    for (size_t i = 0; i < m->n_versions; i++) {
        if (i) sl_buf_putc(&b, ',');
        put_str(&b, m->versions[i]);
    }
    sl_buf_puts(&b, "],\"platform\":");
    put_str(&b, m->platform);
    sl_buf_puts(&b, ",\"inputs\":");
    put_tensors(&b, m->inputs, m->n_inputs);
    sl_buf_puts(&b, ",\"outputs\":");
    put_tensors(&b, m->outputs, m->n_outputs);
    sl_buf_putc(&b, '}');
    inference__model_metadata_response__free_unpacked(m, NULL);
    gw_respond(q, 200, &b, JSON_TYPE, "ok");
}

void gw_metadata_start(gw_req_t *q) {
    Inference__ModelMetadataRequest m = INFERENCE__MODEL_METADATA_REQUEST__INIT;
    m.name = q->model;
    m.version = q->version;
    pack(q, &m.base);
    gw_upstream(q, SERVICE "ModelMetadata", true, metadata_done);
}

static void ready_done(const sl_gw_call_result_t *r, void *arg) {
    gw_req_t *q = arg;
    if (!upstream_ok(q, r)) return;
    Inference__ModelReadyResponse *m =
        inference__model_ready_response__unpack(NULL, r->len, r->resp);
    if (!m) {
        bad_answer(q);
        return;
    }
    bool ready = m->ready;
    inference__model_ready_response__free_unpacked(m, NULL);
    sl_buf_t b = SL_BUF_INIT;
    if (ready) {
        gw_respond(q, 200, &b, NULL, "ok");
    } else {
        gw_respond_error(q, 503, "the model is not ready", "not_ready");
    }
}

void gw_ready_start(gw_req_t *q) {
    Inference__ModelReadyRequest m = INFERENCE__MODEL_READY_REQUEST__INIT;
    m.name = q->model;
    m.version = q->version;
    pack(q, &m.base);
    gw_upstream(q, SERVICE "ModelReady", true, ready_done);
}

/* ---- repository (admin) ---- */

static void index_done(const sl_gw_call_result_t *r, void *arg) {
    gw_req_t *q = arg;
    if (!upstream_ok(q, r)) return;
    Inference__RepositoryIndexResponse *m =
        inference__repository_index_response__unpack(NULL, r->len, r->resp);
    if (!m) {
        bad_answer(q);
        return;
    }
    sl_buf_t b = SL_BUF_INIT;
    sl_buf_putc(&b, '[');
    for (size_t i = 0; i < m->n_models; i++) {
        const Inference__RepositoryIndexResponse__ModelIndex *e = m->models[i];
        if (i) sl_buf_putc(&b, ',');
        sl_buf_puts(&b, "{\"name\":");
        put_str(&b, e->name);
        sl_buf_puts(&b, ",\"version\":");
        put_str(&b, e->version);
        sl_buf_puts(&b, ",\"state\":");
        put_str(&b, e->state);
        sl_buf_puts(&b, ",\"reason\":");
        put_str(&b, e->reason);
        sl_buf_putc(&b, '}');
    }
    sl_buf_putc(&b, ']');
    inference__repository_index_response__free_unpacked(m, NULL);
    gw_respond(q, 200, &b, JSON_TYPE, "ok");
}

static void index_start(gw_req_t *q) {
    bool ready = false;
    if (q->http->body_len) {
        char err[128];
        cJSON *body = NULL;
        int rc =
            sl_json_parse((const char *)q->http->body, q->http->body_len, &body, err, sizeof err);
        if (rc == 0) rc = sl_json_get_bool(body, "ready", &ready, err, sizeof err);
        cJSON_Delete(body);
        if (rc != 0 && rc != SL_ENOENT) {
            gw_respond_error(q, 400, err, "bad_request");
            return;
        }
    }
    Inference__RepositoryIndexRequest m = INFERENCE__REPOSITORY_INDEX_REQUEST__INIT;
    m.ready = ready;
    pack(q, &m.base);
    gw_upstream(q, SERVICE "RepositoryIndex", true, index_done);
}

void gw_handle_repository_index(sl_http_req_t *r, void *ctx) {
    gw_req_t *q = gw_req_new(ctx, r, GW_ADMIN, "admin");
    if (!gw_authenticate(q, SL_KEY_SCOPE_ADMIN)) return;
    q->route = sl_gw_policy_route(q->policy, SL_STR("*"));
    if (!q->route) {
        gw_respond_error(q, 503, "no upstream is configured", "no_route");
        return;
    }
    gw_limit(q, SL_GW_CLASS_ADMIN, index_start);
}

/* Load and unload go to every endpoint of the model's pool, so every replica serves the same
 * models; the answer is 200 only when all of them succeeded. */
static void fan_done(int code, const char *message, const uint8_t *resp, size_t len, void *arg) {
    gw_req_t *q = arg;
    if (code != SL_GRPC_OK && q->fan_code == SL_GRPC_OK) {
        q->fan_code = code;
        snprintf(q->fan_msg, sizeof q->fan_msg, "%s", message);
    }
    if (--q->fan_pending > 0) return;
    if (q->fan_code == SL_GRPC_OK) {
        sl_buf_t b = SL_BUF_INIT;
        gw_respond(q, 200, &b, NULL, "ok");
        return;
    }
    sl_gw_call_result_t res = {
        .code = q->fan_code,
        .message = q->fan_msg,
        .outcome = sl_gw_classify(q->fan_code),
        .endpoint = "",
    };
    gw_respond_upstream_error(q, &res);
}

static void repository_model_start(gw_req_t *q) {
    sl_upstream_pool_t *pool = sl_gw_pool_find(q->gw, q->route->upstream->name);
    sl_upstream_endpoint_info_t eps[SL_UPSTREAM_MAX_ENDPOINTS];
    size_t n = pool ? sl_upstream_pool_endpoints(pool, eps, SL_ARRAY_LEN(eps)) : 0;
    n = SL_MIN(n, SL_ARRAY_LEN(eps));
    if (n == 0) {
        gw_respond_error(q, 503, "the model is unavailable; retry later", "upstream_error");
        return;
    }
    q->fan_pending = (unsigned)n;
    q->fan_code = SL_GRPC_OK;
    uint32_t timeout_ms =
        q->route->timeout_ms ? q->route->timeout_ms : q->route->upstream->config.retry.timeout_ms;
    for (size_t i = 0; i < n; i++) {
        int rc = sl_gw_clients_call(q->gl->clients, eps[i].addr, q->method, q->msg.data, q->msg.len,
                                    timeout_ms, q->traceparent, fan_done, q);
        if (rc != 0) fan_done(SL_GRPC_UNAVAILABLE, "the upstream address is unusable", NULL, 0, q);
    }
}

void gw_handle_repository_model(sl_http_req_t *r, void *ctx) {
    gw_req_t *q = gw_req_new(ctx, r, GW_ADMIN, "admin");
    static const char prefix[] = "/v2/repository/models/";
    sl_str_t rest = {r->path.ptr + sizeof prefix - 1, r->path.len - (sizeof prefix - 1)};
    bool load;
    const char *msg;
    int status = sl_oip_parse_repository_path(rest, q->model, &load, &msg);
    if (status) {
        gw_respond_error(q, status, msg, "bad_request");
        return;
    }
    if (!gw_authenticate(q, SL_KEY_SCOPE_ADMIN)) return;
    q->route = sl_gw_policy_route(q->policy, sl_str_c(q->model));
    if (!q->route) {
        gw_respond_error(q, 503, "no upstream is configured for this model", "no_route");
        return;
    }
    if (load) {
        Inference__RepositoryModelLoadRequest m = INFERENCE__REPOSITORY_MODEL_LOAD_REQUEST__INIT;
        m.model_name = q->model;
        pack(q, &m.base);
        q->method = SERVICE "RepositoryModelLoad";
    } else {
        Inference__RepositoryModelUnloadRequest m =
            INFERENCE__REPOSITORY_MODEL_UNLOAD_REQUEST__INIT;
        m.model_name = q->model;
        pack(q, &m.base);
        q->method = SERVICE "RepositoryModelUnload";
    }
    gw_limit(q, SL_GW_CLASS_ADMIN, repository_model_start);
}

/* ---- admin: outcomes and upstream state ---- */

static void put_latency(sl_buf_t *b, const char *name, const sl_outcomes_latency_t *h) {
    sl_buf_printf(b, ",\"%s\":{\"count\":%" PRIu64 ",\"p50_ms\":%.3f,\"p99_ms\":%.3f}", name,
                  h->count, h->count ? sl_outcomes_latency_quantile(h, 0.5) * 1e3 : 0.0,
                  h->count ? sl_outcomes_latency_quantile(h, 0.99) * 1e3 : 0.0);
}

static void put_outcomes(sl_buf_t *b, sl_outcomes_t *o) {
    sl_outcomes_snapshot_t *snap;
    size_t n;
    sl_outcomes_snapshot(o, &snap, &n);
    sl_buf_puts(b, "\"versions\":[");
    for (size_t i = 0; i < n; i++) {
        const sl_outcomes_snapshot_t *s = &snap[i];
        if (i) sl_buf_putc(b, ',');
        sl_buf_puts(b, "{\"model\":");
        put_str(b, s->model);
        sl_buf_puts(b, ",\"version\":");
        put_str(b, s->version);
        sl_buf_printf(b, ",\"requests\":%" PRIu64 ",\"outcomes\":{", s->requests);
        for (int k = 0; k < SL_OUTCOME__COUNT; k++) {
            sl_buf_printf(b, "%s\"%s\":%" PRIu64, k ? "," : "", sl_outcome_name((sl_outcome_t)k),
                          s->by_outcome[k]);
        }
        sl_buf_printf(b, "},\"shadow_requests\":%" PRIu64 ",\"shadow\":{", s->shadow_requests);
        for (int k = 0; k < SL_SHADOW__COUNT; k++) {
            sl_buf_printf(b, "%s\"%s\":%" PRIu64, k ? "," : "",
                          sl_shadow_result_name((sl_shadow_result_t)k), s->shadow[k]);
        }
        sl_buf_putc(b, '}');
        put_latency(b, "latency", &s->latency);
        sl_buf_putc(b, '}');
    }
    sl_buf_putc(b, ']');
    free(snap);
}

static void put_pools(sl_buf_t *b, sl_gw_t *gw) {
    sl_buf_puts(b, "\"upstreams\":[");
    for (size_t i = 0; i < gw->n_pools; i++) {
        sl_upstream_stats_t st;
        sl_upstream_pool_stats(gw->pools[i].pool, &st);
        sl_upstream_endpoint_info_t eps[SL_UPSTREAM_MAX_ENDPOINTS];
        size_t n = sl_upstream_pool_endpoints(gw->pools[i].pool, eps, SL_ARRAY_LEN(eps));
        if (i) sl_buf_putc(b, ',');
        sl_buf_puts(b, "{\"name\":");
        put_str(b, gw->pools[i].name);
        sl_buf_printf(b,
                      ",\"requests\":%" PRIu64 ",\"retries\":%" PRIu64
                      ",\"budget_exhausted\":%" PRIu64 ",\"ejections\":%" PRIu64
                      ",\"unavailable\":%" PRIu64 ",\"rejected_pending\":%" PRIu64
                      ",\"rejected_concurrency\":%" PRIu64 ",\"endpoints\":[",
                      st.requests, st.retries, st.budget_exhausted, st.ejections, st.unavailable,
                      st.rejected_pending, st.rejected_concurrency);
        for (size_t k = 0; k < SL_MIN(n, SL_ARRAY_LEN(eps)); k++) {
            if (k) sl_buf_putc(b, ',');
            sl_buf_puts(b, "{\"address\":");
            put_str(b, eps[k].addr);
            sl_buf_printf(b,
                          ",\"in_flight\":%" PRIu32 ",\"ejected\":%s,\"breaker\":\"%s\","
                          "\"consecutive_failures\":%" PRIu32 ",\"weight\":%.3f}",
                          eps[k].in_flight, eps[k].ejected ? "true" : "false",
                          sl_breaker_state_name(eps[k].breaker), eps[k].consecutive_failures,
                          eps[k].weight);
        }
        sl_buf_puts(b, "]}");
    }
    sl_buf_putc(b, ']');
}

static void outcomes_start(gw_req_t *q) {
    sl_buf_t b = SL_BUF_INIT;
    sl_buf_putc(&b, '{');
    put_outcomes(&b, q->gw->outcomes);
    sl_buf_putc(&b, ',');
    put_pools(&b, q->gw);
    if (q->gw->has_limiter) {
        sl_rl_stats_t st;
        sl_rl_stats(&q->gw->limiter, &st);
        sl_buf_printf(&b,
                      ",\"limits\":{\"mode\":\"%s\",\"allowed\":%" PRIu64 ",\"denied\":%" PRIu64
                      ",\"errors\":%" PRIu64 ",\"entries\":%" PRIu64 "}",
                      q->gw->limiter.name, st.allowed, st.denied, st.errors, st.entries);
    }
    sl_buf_putc(&b, '}');
    gw_respond(q, 200, &b, JSON_TYPE, "ok");
}

void gw_handle_admin_outcomes(sl_http_req_t *r, void *ctx) {
    gw_req_t *q = gw_req_new(ctx, r, GW_ADMIN, "admin");
    if (!gw_authenticate(q, SL_KEY_SCOPE_ADMIN)) return;
    gw_limit(q, SL_GW_CLASS_ADMIN, outcomes_start);
}
