/* Standard gRPC services every Sluice gRPC port can carry: grpc.health.v1.Health/Check answered
 * from the component's sl_health_t (so Kubernetes gRPC probes and grpc_health_probe agree with
 * /readyz), and sluice.v1.Echo/Echo, which returns its request for benchmarks. */
#include "core/grpc.h"

#include "core/health.h"
#include "core/log.h"

#include "grpc/health/v1/health.pb-c.h"

#include <stdlib.h>
#include <string.h>

#define HEALTH_CHECK "/grpc.health.v1.Health/Check"
#define HEALTH_WATCH "/grpc.health.v1.Health/Watch"
#define ECHO_PATH    "/sluice.v1.Echo/Echo"

static void health_check(sl_grpc_call_t *call, const uint8_t *msg, size_t len, void *ctx) {
    sl_health_t *health = ctx;
    Grpc__Health__V1__HealthCheckRequest *req =
        grpc__health__v1__health_check_request__unpack(NULL, len, msg);
    if (!req) {
        sl_grpc_fail(call, SL_GRPC_INVALID_ARGUMENT, "cannot parse HealthCheckRequest");
        return;
    }
    const char *service = req->service ? req->service : "";
    if (service[0] != '\0' && strcmp(service, sl_health_component(health)) != 0) {
        grpc__health__v1__health_check_request__free_unpacked(req, NULL);
        /* What grpc's own health server answers for a service it does not know. */
        sl_grpc_fail(call, SL_GRPC_NOT_FOUND, "unknown service");
        return;
    }
    grpc__health__v1__health_check_request__free_unpacked(req, NULL);

    Grpc__Health__V1__HealthCheckResponse resp = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
    resp.status = sl_health_ready(health, NULL)
                      ? GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING
                      : GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING;
    uint8_t out[16]; /* one enum field: at most 1 tag byte + a 10-byte varint */
    size_t n = grpc__health__v1__health_check_response__pack(&resp, out);
    sl_grpc_reply(call, out, n);
}

static void health_watch(sl_grpc_call_t *call, const uint8_t *msg, size_t len, void *ctx) {
    sl_grpc_fail(call, SL_GRPC_UNIMPLEMENTED, "Health/Watch is not implemented; poll Check");
}

int sl_grpc_health_register(sl_grpc_server_t *s, sl_health_t *health) {
    int rc = sl_grpc_server_add_method(s, HEALTH_CHECK, health_check, health);
    if (rc == 0) rc = sl_grpc_server_add_method(s, HEALTH_WATCH, health_watch, NULL);
    return rc;
}

/* EchoRequest and EchoResponse have the same single field, so the bytes are a valid response. */
static void echo(sl_grpc_call_t *call, const uint8_t *msg, size_t len, void *ctx) {
    sl_grpc_reply(call, msg, len);
}

int sl_grpc_echo_register(sl_grpc_server_t *s) {
    return sl_grpc_server_add_method(s, ECHO_PATH, echo, NULL);
}
