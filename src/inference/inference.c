/* The inference component: the model manager over the model repository, served through the
 * Open Inference Protocol on REST (inference.http_port) and gRPC (inference.grpc_port). Ready
 * when every model of the repository has loaded and warmed up. */
#include "app.h"
#include "core/log.h"
#include "inference/manager.h"
#include "inference/oip.h"

#include <stdlib.h>
#include <string.h>

typedef struct inference {
    sl_service_t *service;
    sl_mm_t *mm;
} inference_t;

static sl_health_status_t models_check(void *arg, sl_buf_t *detail) {
    inference_t *inf = arg;
    if (sl_mm_ready(inf->mm)) return SL_HEALTH_OK;
    sl_buf_puts(detail, "models loading or failed (see /v2/repository/index)");
    return SL_HEALTH_DOWN;
}

static int init(sl_app_t *app, void **state, sl_buf_t *err) {
    const sl_config_t *cfg = app->cfg;
    char *repo = sl_app_path(app->model_repository, cfg->inference.model_repository, cfg->path);
    char *backends = sl_app_path(app->backend_dir, cfg->inference.backend_dir, cfg->path);
    sl_mm_opts_t mo = {
        .repository = repo,
        .backend_dir = backends,
        .poll_interval_ms = cfg->inference.poll_interval_ms,
    };
    sl_mm_t *mm = sl_mm_new(&mo, err);
    free(repo);
    free(backends);
    if (!mm) return SL_EINVAL;
    sl_service_t *svc = sl_component_service_new(app, "inference", cfg->inference.http_port, true,
                                                 cfg->inference.grpc_port, err);
    if (!svc) {
        sl_mm_free(mm);
        return SL_EIO;
    }
    inference_t *inf = sl_calloc(1, sizeof *inf);
    inf->mm = mm;
    inf->service = svc;
    sl_health_add(sl_service_health(inf->service), "models", models_check, inf, true);
    sl_oip_rest_register(sl_service_http(inf->service), mm);
    sl_oip_grpc_register(sl_service_grpc(inf->service), mm);
    *state = inf;
    return SL_OK;
}

static void start(void *state) {
    inference_t *inf = state;
    sl_mm_start(inf->mm);
    sl_health_set_started(sl_service_health(inf->service), true);
}

static void stop(void *state) {
    inference_t *inf = state;
    sl_health_set_started(sl_service_health(inf->service), false);
}

static void destroy(void *state) {
    inference_t *inf = state;
    if (!inf) return;
    sl_service_free(inf->service);
    sl_mm_free(inf->mm);
    free(inf);
}

static sl_health_t *health(void *state) {
    inference_t *inf = state;
    return sl_service_health(inf->service);
}

const sl_component_t sl_component_inference = {
    .name = "inference",
    .summary = "model repository, backends, dynamic batching, Open Inference Protocol",
    .init = init,
    .start = start,
    .stop = stop,
    .free = destroy,
    .health = health,
};
