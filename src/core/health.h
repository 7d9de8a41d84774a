/* Health of one component: named checks evaluated on demand, served as /livez (the process
 * answers), /readyz (started, not draining, no required check down) and /healthz (JSON:
 * overall ok/degraded/down and a detail per check), and as grpc.health.v1 on gRPC ports. */
#ifndef SL_HEALTH_H
#define SL_HEALTH_H

#include "core/buf.h"
#include "core/runtime.h"

#include <stdbool.h>

typedef enum sl_health_status {
    SL_HEALTH_OK = 0,
    SL_HEALTH_DEGRADED = 1,
    SL_HEALTH_DOWN = 2,
} sl_health_status_t;

/* A check writes a short human-readable detail (optional) and returns its status. It runs on
 * whichever I/O thread serves the probe, so it must be thread-safe and must not block. */
typedef sl_health_status_t (*sl_health_check_cb)(void *arg, sl_buf_t *detail);

typedef struct sl_health sl_health_t;

/* component is copied; rt (borrowed, may be NULL) makes readiness fail while draining. */
sl_health_t *sl_health_new(const char *component, sl_runtime_t *rt);
void sl_health_free(sl_health_t *h);

/* Adds a check (name copied, arg borrowed). A required check that is down makes the component
 * not ready; any check down or degraded shows in /healthz. Call before serving starts. */
void sl_health_add(sl_health_t *h, const char *name, sl_health_check_cb cb, void *arg,
                   bool required);

/* Marks the component started (ready once its required checks pass); any thread. */
void sl_health_set_started(sl_health_t *h, bool started);

/* Evaluates every check and returns the overall status: down if a required check is down,
 * degraded if any check is degraded or an optional one is down, else ok. json (may be NULL)
 * receives {"status":"ok","component":"...","ready":true,"checks":{"name":{"status":"ok",
 * "detail":"..."}}}, with "reason" next to "ready":false and no "detail" when a check wrote
 * none (details are cut at 512 bytes). A check returning an unknown status counts as down. */
sl_health_status_t sl_health_evaluate(sl_health_t *h, sl_buf_t *json);
/* Ready: started, not draining, and no required check down (only required checks run).
 * reason (may be NULL) gets why not: "draining", "starting" or "required check down: a, b". */
bool sl_health_ready(sl_health_t *h, sl_buf_t *reason);
const char *sl_health_status_name(sl_health_status_t s);
const char *sl_health_component(const sl_health_t *h);

#endif
