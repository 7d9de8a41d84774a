/* The HTTP server object: creation, routes (exact and prefix, longest match wins, 405 when only
 * the method differs) and the per-route metrics registered with them. */
#include "core/http.h"
#include "core/http_server_internal.h"

#include <stdlib.h>
#include <string.h>

static const char *const route_labels[] = {"server", "route", "code"};
static const char *const route_hist_labels[] = {"server", "route"};
static const char *const error_labels[] = {"server", "reason"};
static const char *const conn_labels[] = {"server"};
static const char *const error_reasons[HTTP_ERR__COUNT] = {
    "bad_request",  "timeout",           "body_too_large",
    "uri_too_long", "headers_too_large", "connection_limit",
};

/* Bounds for label cardinality: routes per server times servers in one process. */
#define MAX_ROUTE_SERIES 2048

static void route_metrics_init(http_route_metrics_t *m, const char *server, const char *route) {
    sl_metrics_t *r = sl_metrics_default();
    sl_metric_family_t *req = sl_metrics_counter_family(
        r, "sluice_http_requests_total", "HTTP requests answered, by route and status class.", 3,
        route_labels, MAX_ROUTE_SERIES * 5);
    sl_metric_family_t *dur = sl_metrics_histogram_family(
        r, "sluice_http_request_duration_seconds",
        "Time from the first byte of a request to its response, by route.", 2, route_hist_labels,
        MAX_ROUTE_SERIES, sl_metrics_latency_buckets, sl_metrics_latency_buckets_n);
    static const char *const classes[5] = {"1xx", "2xx", "3xx", "4xx", "5xx"};
    for (int i = 0; i < 5; i++) {
        const char *vals[3] = {server, route, classes[i]};
        m->requests[i] = sl_metric_counter(req, vals);
    }
    const char *hv[2] = {server, route};
    m->duration = sl_metric_histogram(dur, hv);
}

sl_http_server_t *sl_http_server_new(const char *name, const sl_http_limits_t *limits) {
    sl_http_server_t *s = sl_calloc(1, sizeof *s);
    s->name = sl_strdup(name);
    s->limits = *limits;
    route_metrics_init(&s->unmatched, s->name, "unmatched");
    sl_metrics_t *r = sl_metrics_default();
    sl_metric_family_t *errs = sl_metrics_counter_family(
        r, "sluice_http_errors_total",
        "Requests or connections refused by the HTTP server's limits and parser, by reason.", 2,
        error_labels, 64 * HTTP_ERR__COUNT);
    for (int i = 0; i < HTTP_ERR__COUNT; i++) {
        const char *vals[2] = {s->name, error_reasons[i]};
        s->m_errors[i] = sl_metric_counter(errs, vals);
    }
    sl_metric_family_t *conns = sl_metrics_gauge_family(
        r, "sluice_http_connections", "Open HTTP/1.1 connections.", 1, conn_labels, 64);
    const char *cv[1] = {s->name};
    s->m_connections = sl_metric_gauge(conns, cv);
    return s;
}

void sl_http_server_free(sl_http_server_t *s) {
    if (!s) return;
    for (unsigned i = 0; i < s->n_routes; i++) {
        free(s->routes[i].method);
        free(s->routes[i].path);
    }
    free(s->routes);
    free(s->name);
    free(s);
}

void sl_http_server_route(sl_http_server_t *s, const char *method, const char *path,
                          sl_http_handler_cb cb, void *ctx, bool traced) {
    s->routes = sl_realloc(s->routes, (s->n_routes + 1) * sizeof *s->routes);
    http_route_t *r = &s->routes[s->n_routes++];
    memset(r, 0, sizeof *r);
    size_t len = strlen(path);
    r->prefix = len > 0 && path[len - 1] == '*';
    r->path = sl_strndup(path, r->prefix ? len - 1 : len);
    r->path_len = r->prefix ? len - 1 : len;
    r->method = method ? sl_strdup(method) : NULL;
    r->cb = cb;
    r->ctx = ctx;
    r->traced = traced;
    route_metrics_init(&r->metrics, s->name, path);
}

void sl_http_server_set_tracer(sl_http_server_t *s, struct sl_tracer *tracer) {
    s->tracer = tracer;
}

const http_route_t *http_router_match(const sl_http_server_t *s, const sl_http_req_t *req,
                                      bool *method_mismatch) {
    const http_route_t *best = NULL;
    size_t best_len = 0;
    bool best_exact = false;
    *method_mismatch = false;
    for (unsigned i = 0; i < s->n_routes; i++) {
        const http_route_t *r = &s->routes[i];
        bool exact = !r->prefix && req->path.len == r->path_len &&
                     memcmp(req->path.ptr, r->path, r->path_len) == 0;
        bool pre = r->prefix && req->path.len >= r->path_len &&
                   memcmp(req->path.ptr, r->path, r->path_len) == 0;
        if (!exact && !pre) continue;
        /* HEAD is answered by GET routes, without the body (RFC 9110 9.3.2). */
        bool head_as_get =
            sl_str_eq(req->method, "HEAD") && strcmp(r->method ? r->method : "", "GET") == 0;
        if (r->method && !head_as_get && !sl_str_eq(req->method, r->method)) {
            *method_mismatch = true;
            continue;
        }
        /* An exact match beats any prefix; among prefixes the longest wins. */
        if (!best || (exact && !best_exact) || (exact == best_exact && r->path_len > best_len)) {
            best = r;
            best_len = r->path_len;
            best_exact = exact;
        }
    }
    if (best) *method_mismatch = false;
    return best;
}
