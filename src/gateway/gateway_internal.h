/* What the gateway component's files share: the component state (gateway.c owns its life), the
 * per-I/O-loop part, and the request handlers' entry points (handlers*.c). Internal to
 * src/gateway. */
#ifndef SL_GATEWAY_INTERNAL_H
#define SL_GATEWAY_INTERNAL_H

#include "core/http.h"
#include "core/metrics.h"
#include "core/runtime.h"
#include "gateway/fallback.h"
#include "gateway/keys.h"
#include "gateway/outcomes.h"
#include "gateway/policy.h"
#include "gateway/proxy.h"
#include "gateway/ratelimit.h"

#include <stdatomic.h>

/* A running upstream pool. Pools are made at start from the first policy; a reload may change
 * their endpoints but not their names or settings (those need a restart). */
typedef struct sl_gw_pool {
    char name[SL_GW_NAME_MAX + 1];
    sl_upstream_pool_t *pool;
} sl_gw_pool_t;

/* State one I/O loop owns. */
typedef struct sl_gw_loop {
    sl_gw_clients_t *clients;
    sl_keys_view_t keys;
    sl_gw_policy_view_t policy;
    struct gw_req *req_cache; /* freed request contexts kept for reuse */
    uint8_t *scratch;         /* bump memory for unpacking one upstream answer at a time */
    size_t scratch_cap, scratch_used;
    bool scratch_overflowed; /* an answer did not fit: grow before the next one */
    unsigned n_req_cache;
    bool finished; /* the loop is shutting down: no more caching */
} sl_gw_loop_t;

typedef struct sl_gw_metrics {
    sl_metric_family_t *auth_failures; /* {reason} */
    sl_metric_family_t *rate_limited;  /* {class} */
    sl_metric_family_t *upstream;      /* {pool, outcome}: upstream call results */
    sl_counter_t *degraded;            /* fallback answers served */
    sl_metric_family_t *faults;        /* {kind}: delay, abort */
    sl_counter_t *limiter_errors;      /* limiter answered with an error (fail open/closed) */
} sl_gw_metrics_t;

typedef struct sl_gw {
    sl_runtime_t *rt;
    sl_keys_holder_t *keys;
    sl_gw_policy_holder_t *policy;
    sl_gw_pool_t *pools;
    size_t n_pools;
    sl_ratelimiter_t limiter;
    bool has_limiter;
    sl_gw_policy_t *limits_policy; /* the policy the limiter and the pools were built from */
    sl_fallback_cache_t *fallback;
    sl_outcomes_t *outcomes;
    sl_gw_loop_t *loops;
    unsigned n_loops;
    sl_gw_metrics_t m;
    atomic_bool started;
} sl_gw_t;

/* The running pool named name, or NULL. */
sl_upstream_pool_t *sl_gw_pool_find(sl_gw_t *gw, const char *name);
/* The calling I/O thread's loop state. */
sl_gw_loop_t *sl_gw_loop_here(sl_gw_t *gw);

/* Frees the loop's cached request contexts and scratch memory (on the loop's thread, or after
 * it ended). */
void sl_gw_req_cache_free(sl_gw_loop_t *gl);

/* Adds the gateway's public routes (/v2/..., /v1/predict/..., /v1/admin/...) to http. */
void sl_gw_handlers_register(sl_gw_t *gw, sl_http_server_t *http);

#endif
