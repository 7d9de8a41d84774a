/* What `sluice serve` gives each component: the runtime, the loaded configuration and the
 * tracer; and the component interface (init/start/stop/free/health) with the table of
 * components in start order. Components include this header and core/, never each other. */
#ifndef SL_APP_H
#define SL_APP_H

#include "core/buf.h"
#include "core/config.h"
#include "core/health.h"
#include "core/runtime.h"
#include "core/service.h"

struct sl_tracer;

typedef struct sl_app {
    sl_runtime_t *rt;
    const sl_config_t *cfg;   /* as loaded at start; reloadable values reach modules by apply */
    struct sl_tracer *tracer; /* NULL when tracing is off */
    /* Command-line overrides of config options (NULL when not given). */
    const char *model_repository;
    const char *backend_dir;
} sl_app_t;

typedef struct sl_component {
    const char *name;
    const char *summary;
    /* Creates the component's state and listeners (before the I/O threads start). On failure
     * returns a negative status and writes why into err. */
    int (*init)(sl_app_t *app, void **state, sl_buf_t *err);
    /* The I/O threads run: begin serving (readiness turns on). Optional. */
    void (*start)(void *state);
    /* A graceful stop began: stop taking new work. Optional. */
    void (*stop)(void *state);
    /* `sluice config check`: validates what the component parses itself from cfg->path, appending
     * "file:line: message" lines to err. Returns 0 or a negative status. Optional. */
    int (*check)(const sl_config_t *cfg, sl_buf_t *err);
    /* The config file was reloaded (on the main loop's thread): re-read what the component
     * parses itself from cfg->path (cfg is the live config). Optional. */
    void (*reload)(void *state, const sl_config_t *cfg);
    /* After the runtime stopped. */
    void (*free)(void *state);
    sl_health_t *(*health)(void *state);
} sl_component_t;

extern const sl_component_t sl_component_gateway, sl_component_features, sl_component_inference,
    sl_component_worker, sl_component_registry;

/* All components in start order (stop order is the reverse); n receives the count. */
const sl_component_t *const *sl_components(size_t *n);

/* A path from the command line (as given: relative to the working directory) or from a config
 * option (relative to the config file's directory, so a config works from anywhere). NULL when
 * neither names one. Caller frees. */
char *sl_app_path(const char *flag, const char *option, const char *config_path);

/* A component's standard service (health, metrics, optional gRPC) from the config's server,
 * HTTP and gRPC limits. NULL with a message in err when a listener cannot open. */
sl_service_t *sl_component_service_new(sl_app_t *app, const char *name, uint16_t http_port,
                                       bool grpc, uint16_t grpc_port, sl_buf_t *err);

/* A component whose network face is just the standard service (health, metrics, optional gRPC):
 * the shared init/start/stop/free for components that have no endpoints of their own yet. */
int sl_basic_component_init(sl_app_t *app, const char *name, uint16_t http_port, bool grpc,
                            uint16_t grpc_port, void **state, sl_buf_t *err);
void sl_basic_component_start(void *state);
void sl_basic_component_stop(void *state);
void sl_basic_component_free(void *state);
sl_health_t *sl_basic_component_health(void *state);

#endif
