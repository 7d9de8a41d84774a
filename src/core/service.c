/* Standard endpoints every component serves: health, readiness, liveness and metrics over
 * HTTP, grpc.health.v1 over gRPC, plus the opt-in echo endpoints for benchmarks. */
#include "core/service.h"

#include "core/log.h"
#include "core/metrics.h"

#include <stdlib.h>
#include <string.h>

struct sl_service {
    char *component;
    sl_http_server_t *http;
    sl_grpc_server_t *grpc;
    sl_health_t *health;
    sl_listener_t *http_listener;
    sl_listener_t *grpc_listener;
};

static void handle_livez(sl_http_req_t *req, void *ctx) {
    sl_http_respond(req, 200, "text/plain; charset=utf-8", "ok\n", 3);
}

static void handle_readyz(sl_http_req_t *req, void *ctx) {
    sl_service_t *s = ctx;
    sl_buf_t reason = SL_BUF_INIT;
    if (sl_health_ready(s->health, &reason)) {
        sl_http_respond(req, 200, "text/plain; charset=utf-8", "ready\n", 6);
    } else {
        sl_buf_t body = SL_BUF_INIT;
        sl_buf_printf(&body, "not ready: %s\n", reason.len ? reason.data : "unknown");
        sl_http_respond(req, 503, "text/plain; charset=utf-8", body.data, body.len);
        sl_buf_free(&body);
    }
    sl_buf_free(&reason);
}

static void handle_healthz(sl_http_req_t *req, void *ctx) {
    sl_service_t *s = ctx;
    sl_buf_t body = SL_BUF_INIT;
    sl_health_status_t st = sl_health_evaluate(s->health, &body);
    sl_http_respond(req, st == SL_HEALTH_DOWN ? 503 : 200, "application/json", body.data, body.len);
    sl_buf_free(&body);
}

static void handle_metrics(sl_http_req_t *req, void *ctx) {
    sl_buf_t body = SL_BUF_INIT;
    sl_metrics_render(sl_metrics_default(), &body);
    sl_http_respond_take(req, 200, "text/plain; version=0.0.4; charset=utf-8", body.data, body.len);
}

static void handle_echo(sl_http_req_t *req, void *ctx) {
    sl_str_t ct = sl_http_req_header(req, "content-type");
    char type[128] = "application/octet-stream";
    if (ct.ptr && ct.len < sizeof type) {
        memcpy(type, ct.ptr, ct.len);
        type[ct.len] = '\0';
    }
    sl_http_respond(req, 200, type, req->body, req->body_len);
}

static bool listen_on(sl_runtime_t *rt, const sl_service_cfg_t *cfg, const char *kind,
                      uint16_t port, uint32_t max_conns, const sl_proto_t *proto, void *ctx,
                      sl_listener_t **out, sl_buf_t *err) {
    char name[64];
    snprintf(name, sizeof name, "%s-%s", cfg->component, kind);
    sl_listener_cfg_t lc = {
        .name = name, .host = cfg->host, .port = port, .max_connections = max_conns};
    int rc = sl_runtime_listen(rt, &lc, proto, ctx, out);
    if (rc != 0) {
        sl_buf_printf(err, "cannot listen on %s:%u (%s): %s", cfg->host, (unsigned)port, name,
                      rc == SL_EINVAL ? "not a valid IP address" : sl_strerror(rc));
        return false;
    }
    SL_INFO("service", "listening", SL_LF_S("listener", name), SL_LF_S("host", cfg->host),
            SL_LF_U("port", sl_listener_port(*out)));
    return true;
}

sl_service_t *sl_service_new(sl_runtime_t *rt, const sl_service_cfg_t *cfg, sl_buf_t *err) {
    sl_service_t *s = sl_calloc(1, sizeof *s);
    s->component = sl_strdup(cfg->component);
    s->health = sl_health_new(cfg->component, rt);

    char name[64];
    snprintf(name, sizeof name, "%s-http", cfg->component);
    s->http = sl_http_server_new(name, cfg->http_limits);
    sl_http_server_set_tracer(s->http, cfg->tracer);
    sl_http_server_route(s->http, "GET", "/livez", handle_livez, s, false);
    sl_http_server_route(s->http, "GET", "/readyz", handle_readyz, s, false);
    sl_http_server_route(s->http, "GET", "/healthz", handle_healthz, s, false);
    sl_http_server_route(s->http, "GET", "/metrics", handle_metrics, s, false);
    if (cfg->echo) sl_http_server_route(s->http, "POST", "/v1/echo", handle_echo, s, true);
    if (!listen_on(rt, cfg, "http", cfg->http_port, cfg->http_limits->max_connections,
                   sl_http_proto(), s->http, &s->http_listener, err)) {
        sl_service_free(s);
        return NULL;
    }
    if (cfg->grpc) {
        snprintf(name, sizeof name, "%s-grpc", cfg->component);
        s->grpc = sl_grpc_server_new(name, cfg->grpc_limits);
        sl_grpc_server_set_tracer(s->grpc, cfg->tracer);
        sl_grpc_health_register(s->grpc, s->health);
        if (cfg->echo) sl_grpc_echo_register(s->grpc);
        if (!listen_on(rt, cfg, "grpc", cfg->grpc_port, cfg->grpc_limits->max_connections,
                       sl_grpc_proto(), s->grpc, &s->grpc_listener, err)) {
            sl_service_free(s);
            return NULL;
        }
    }
    return s;
}

void sl_service_free(sl_service_t *s) {
    if (!s) return;
    sl_http_server_free(s->http);
    sl_grpc_server_free(s->grpc);
    sl_health_free(s->health);
    free(s->component);
    free(s);
}

sl_http_server_t *sl_service_http(sl_service_t *s) {
    return s->http;
}

sl_grpc_server_t *sl_service_grpc(sl_service_t *s) {
    return s->grpc;
}

sl_health_t *sl_service_health(sl_service_t *s) {
    return s->health;
}

uint16_t sl_service_http_port(const sl_service_t *s) {
    return s->http_listener ? sl_listener_port(s->http_listener) : 0;
}

uint16_t sl_service_grpc_port(const sl_service_t *s) {
    return s->grpc_listener ? sl_listener_port(s->grpc_listener) : 0;
}
