/* The features component: feature transforms and the online feature store.
 * In this release it serves its health, readiness and metrics endpoints and grpc.health.v1 on its
 * gRPC port; its own endpoints arrive with the issues that build them (see docs/architecture.md).
 */
#include "app.h"

static int init(sl_app_t *app, void **state, sl_buf_t *err) {
    return sl_basic_component_init(app, "features", app->cfg->features.http_port, true,
                                   app->cfg->features.grpc_port, state, err);
}

const sl_component_t sl_component_features = {
    .name = "features",
    .summary = "feature transforms and the online feature store",
    .init = init,
    .start = sl_basic_component_start,
    .stop = sl_basic_component_stop,
    .free = sl_basic_component_free,
    .health = sl_basic_component_health,
};
