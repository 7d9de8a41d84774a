/* A component's network face: its HTTP listener with the standard endpoints (/metrics,
 * /livez, /readyz, /healthz), optionally a gRPC listener with grpc.health.v1, and the debug echo
 * endpoints used by benchmarks. Components add their own routes and methods to the servers it
 * returns before the runtime starts. */
#ifndef SL_SERVICE_H
#define SL_SERVICE_H

#include "core/buf.h"
#include "core/grpc.h"
#include "core/health.h"
#include "core/http.h"
#include "core/runtime.h"

struct sl_tracer;

typedef struct sl_service_cfg {
    const char *component; /* "inference"; names the listeners "inference-http"/"-grpc" */
    const char *host;
    uint16_t http_port;
    bool grpc; /* open a gRPC listener too */
    uint16_t grpc_port;
    const sl_http_limits_t *http_limits;
    const sl_grpc_limits_t *grpc_limits;
    struct sl_tracer *tracer; /* borrowed, may be NULL */
    bool echo;                /* POST /v1/echo and sluice.v1.Echo/Echo */
} sl_service_cfg_t;

typedef struct sl_service sl_service_t;

/* Creates the servers and binds the listeners. On failure returns NULL and writes a message a
 * user can act on ("cannot listen on 0.0.0.0:8000 (inference-http): address already in use")
 * into err. Free with sl_service_free after the runtime stopped. */
sl_service_t *sl_service_new(sl_runtime_t *rt, const sl_service_cfg_t *cfg, sl_buf_t *err);
void sl_service_free(sl_service_t *s);

sl_http_server_t *sl_service_http(sl_service_t *s);
sl_grpc_server_t *sl_service_grpc(sl_service_t *s); /* NULL without a gRPC listener */
sl_health_t *sl_service_health(sl_service_t *s);
uint16_t sl_service_http_port(const sl_service_t *s);
uint16_t sl_service_grpc_port(const sl_service_t *s);

#endif
