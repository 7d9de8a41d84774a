/* The inference component: model repository, backends, dynamic batching, Open Inference Protocol.
 * In this release it serves its health, readiness and metrics endpoints and grpc.health.v1 on its
 * gRPC port; its own endpoints arrive with the issues that build them (see docs/architecture.md).
 */
#include "app.h"

static int init(sl_app_t *app, void **state, sl_buf_t *err) {
    return sl_basic_component_init(app, "inference", app->cfg->inference.http_port, true,
                                   app->cfg->inference.grpc_port, state, err);
}

const sl_component_t sl_component_inference = {
    .name = "inference",
    .summary = "model repository, backends, dynamic batching, Open Inference Protocol",
    .init = init,
    .start = sl_basic_component_start,
    .stop = sl_basic_component_stop,
    .free = sl_basic_component_free,
    .health = sl_basic_component_health,
};
