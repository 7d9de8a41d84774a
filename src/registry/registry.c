/* The registry component: the control plane: model versions, rollouts, flags, keys.
 * In this release it serves its health, readiness and metrics endpoints and grpc.health.v1 on its
 * gRPC port; its own endpoints arrive with the issues that build them (see docs/architecture.md).
 */
#include "app.h"

static int init(sl_app_t *app, void **state, sl_buf_t *err) {
    return sl_basic_component_init(app, "registry", app->cfg->registry.http_port, true,
                                   app->cfg->registry.grpc_port, state, err);
}

const sl_component_t sl_component_registry = {
    .name = "registry",
    .summary = "the control plane: model versions, rollouts, flags, keys",
    .init = init,
    .start = sl_basic_component_start,
    .stop = sl_basic_component_stop,
    .free = sl_basic_component_free,
    .health = sl_basic_component_health,
};
