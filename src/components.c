/* The component table in start order: the control plane first, then the services that the
 * gateway calls, the gateway last (so it never routes to a component that is not up yet).
 * Also the shared lifecycle of components that so far only expose the standard service. */
#include "app.h"

#include <stdlib.h>
#include <string.h>

static const sl_component_t *const table[] = {
    &sl_component_registry, &sl_component_features, &sl_component_inference,
    &sl_component_worker,   &sl_component_gateway,
};

const sl_component_t *const *sl_components(size_t *n) {
    *n = sizeof table / sizeof table[0];
    return table;
}

char *sl_app_path(const char *flag, const char *option, const char *config_path) {
    if (flag && flag[0]) return sl_strdup(flag);
    if (!option || !option[0]) return NULL;
    const char *slash = config_path ? strrchr(config_path, '/') : NULL;
    if (option[0] == '/' || !slash) return sl_strdup(option);
    sl_buf_t b = SL_BUF_INIT;
    sl_buf_printf(&b, "%.*s/%s", (int)(slash - config_path), config_path, option);
    return b.data;
}

typedef struct basic_component {
    sl_service_t *service;
} basic_component_t;

sl_service_t *sl_component_service_new(sl_app_t *app, const char *name, uint16_t http_port,
                                       bool grpc, uint16_t grpc_port, sl_buf_t *err) {
    const sl_config_t *cfg = app->cfg;
    sl_grpc_limits_t glimits = {
        .max_message_bytes = cfg->grpc.max_message_bytes,
        .max_concurrent_streams = cfg->grpc.max_concurrent_streams,
        .max_connections = cfg->grpc.max_connections,
        .idle_timeout_ms = cfg->grpc.idle_timeout_ms,
    };
    sl_service_cfg_t sc = {
        .component = name,
        .host = cfg->server.bind_host,
        .http_port = http_port,
        .grpc = grpc,
        .grpc_port = grpc_port,
        .http_limits = &cfg->http,
        .grpc_limits = &glimits,
        .tracer = app->tracer,
        .echo = cfg->debug.echo,
    };
    return sl_service_new(app->rt, &sc, err);
}

int sl_basic_component_init(sl_app_t *app, const char *name, uint16_t http_port, bool grpc,
                            uint16_t grpc_port, void **state, sl_buf_t *err) {
    sl_service_t *svc = sl_component_service_new(app, name, http_port, grpc, grpc_port, err);
    if (!svc) return SL_EIO;
    basic_component_t *bc = sl_calloc(1, sizeof *bc);
    bc->service = svc;
    *state = bc;
    return SL_OK;
}

void sl_basic_component_start(void *state) {
    basic_component_t *bc = state;
    sl_health_set_started(sl_service_health(bc->service), true);
}

void sl_basic_component_stop(void *state) {
    basic_component_t *bc = state;
    sl_health_set_started(sl_service_health(bc->service), false);
}

void sl_basic_component_free(void *state) {
    basic_component_t *bc = state;
    if (!bc) return;
    sl_service_free(bc->service);
    free(bc);
}

sl_health_t *sl_basic_component_health(void *state) {
    basic_component_t *bc = state;
    return sl_service_health(bc->service);
}
