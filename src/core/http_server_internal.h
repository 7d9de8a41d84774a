/* Private to the HTTP/1.1 server: the server object, its routes and their metrics, shared by
 * http_server.c (connections) and http_router.c (routes, server lifecycle). */
#ifndef SL_HTTP_SERVER_INTERNAL_H
#define SL_HTTP_SERVER_INTERNAL_H

#include "core/http.h"
#include "core/metrics.h"

typedef enum {
    HTTP_ERR_BAD_REQUEST,
    HTTP_ERR_TIMEOUT,
    HTTP_ERR_TOO_LARGE,
    HTTP_ERR_URI_TOO_LONG,
    HTTP_ERR_HEADERS_TOO_LARGE,
    HTTP_ERR_CONN_LIMIT,
    HTTP_ERR__COUNT
} http_err_t;

typedef struct http_route_metrics {
    sl_counter_t *requests[5]; /* by status class 1xx..5xx */
    sl_histogram_t *duration;
} http_route_metrics_t;

typedef struct http_route {
    char *method; /* NULL: any */
    char *path;   /* exact, or prefix when prefix is true (without the '*') */
    size_t path_len;
    bool prefix;
    bool traced;
    sl_http_handler_cb cb;
    void *ctx;
    http_route_metrics_t metrics;
} http_route_t;

struct sl_http_server {
    char *name;
    sl_http_limits_t limits;
    http_route_t *routes;
    unsigned n_routes;
    struct sl_tracer *tracer;
    http_route_metrics_t unmatched;
    sl_counter_t *m_errors[HTTP_ERR__COUNT];
    sl_gauge_t *m_connections;
};

/* The best route for req (longest path match with a matching method), or NULL; sets
 * *method_mismatch when some route matched the path but not the method. */
const http_route_t *http_router_match(const sl_http_server_t *s, const sl_http_req_t *req,
                                      bool *method_mismatch);

#endif
