/* The gateway component: the public edge: API keys, rate limits, routing, traffic splits,
 * resilience. In this release it serves its health, readiness and metrics endpoints; its own
 * endpoints arrive with the issues that build them (see docs/architecture.md). */
#include "app.h"

static int init(sl_app_t *app, void **state, sl_buf_t *err) {
    return sl_basic_component_init(app, "gateway", app->cfg->gateway.http_port, false, 0, state,
                                   err);
}

const sl_component_t sl_component_gateway = {
    .name = "gateway",
    .summary = "the public edge: API keys, rate limits, routing, traffic splits, resilience",
    .init = init,
    .start = sl_basic_component_start,
    .stop = sl_basic_component_stop,
    .free = sl_basic_component_free,
    .health = sl_basic_component_health,
};
