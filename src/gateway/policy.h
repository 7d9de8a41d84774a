/* The gateway policy: the `gateway:` section of the main config file parsed into one immutable,
 * reference-counted object that the gateway's I/O threads read without locks. It gathers what
 * the other gateway modules need (upstream pools and their resilience settings, rate limits,
 * routes per model with fallback and fault injection, pipelines, traffic policies, access log,
 * fallback cache) and checks every cross-reference, answering each problem with
 * "file:line: message". Hot reload swaps the whole object (sl_gw_policy_holder_t); the
 * equality helpers tell the gateway which stateful parts (buckets, pools) it may keep.
 *
 * Format (docs/gateway.md, "Configuration", documents every key and default):
 *
 *   gateway:
 *     upstreams: {inference: {endpoints: ["10.0.0.5:8001"], timeout: 15s, breaker: {...}}}
 *     limits:    {mode: local, classes: {predict: {rate: 100, burst: 200}},
 *                 tiers: {standard: 1000}, peak_hours: "09:00-17:00"}
 *     routes:    {"*": {upstream: inference}, fraud_xgboost: {timeout: 2s,
 *                 fallback: {last_good: true}, fault: {abort: {percent: 5, status: 503}}}}
 *     pipelines: {fraud: {model: fraud_xgboost, inputs: [...], outputs: [...],
 *                 fallback: {default: {fraud_probability: 0.0}}}}
 *     traffic: {...}            # traffic.h
 *     access_log: {...}         # accesslog.h
 *     fallback_cache: {max_entries: 10000, max_bytes: 64MiB, ttl: 10m}
 *
 * Threads: a policy never changes once built; any number of threads may read it at once. */
#ifndef SL_GATEWAY_POLICY_H
#define SL_GATEWAY_POLICY_H

#include "core/buf.h"
#include "core/common.h"
#include "core/snapshot.h"
#include "core/yaml_doc.h"
#include "gateway/accesslog.h"
#include "gateway/pipeline.h"
#include "gateway/ratelimit.h"
#include "gateway/traffic.h"
#include "gateway/upstream.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SL_GW_MAX_UPSTREAMS    64          /* upstream pools */
#define SL_GW_MAX_ROUTES       1024        /* entries under routes (with "*") */
#define SL_GW_MAX_PIPELINES    1024        /* entries under pipelines */
#define SL_GW_NAME_MAX         64          /* an upstream or pipeline name: [A-Za-z0-9_.-] */
#define SL_GW_MODEL_MAX        128         /* a model name (as traffic.h) */
#define SL_GW_DEFAULT_FIELDS   256         /* fields of one fallback.default */
#define SL_GW_DEFAULT_JSON_MAX (64u << 10) /* bytes of one fallback.default as JSON */
#define SL_GW_CONFIG_MAX       (1u << 20)  /* bytes of the config file sl_gw_policy_load reads */
#define SL_GW_FAULT_SCALE      10000       /* fault shares are basis points (1/100 %) */
#define SL_GW_DEFAULT_UPSTREAM "inference" /* the pool made when upstreams is absent */

/* The route classes a limits.classes entry may name (the gateway's routes: /v1/predict,
 * /v2 metadata and health, admin). */
#define SL_GW_CLASS_PREDICT  "predict"
#define SL_GW_CLASS_METADATA "metadata"
#define SL_GW_CLASS_ADMIN    "admin"

/* ---- upstream pools ---------------------------------------------------------------------- */

/* One pool. Every pointer is owned by the policy and lives as long as it does. */
typedef struct sl_gw_upstream {
    const char *name;
    const char *const *endpoints; /* "host:port" strings in config order; n_endpoints >= 1 */
    size_t n_endpoints;
    uint64_t resolve_interval_ms; /* re-resolve DNS names this often; 0: never */
    sl_upstream_config_t config;  /* valid (sl_upstream_config_validate passed) */
    uint32_t line;                /* config line, for messages; 0 for the implicit pool */
} sl_gw_upstream_t;

/* ---- limits ------------------------------------------------------------------------------ */

typedef enum sl_gw_limits_mode {
    SL_GW_LIMITS_NONE = 0, /* no limits section: nothing is limited */
    SL_GW_LIMITS_LOCAL,    /* in-process buckets (sl_rl_local_new) */
    SL_GW_LIMITS_REDIS,    /* buckets in Redis shared by every gateway replica */
} sl_gw_limits_mode_t;

/* rl is ready for sl_rl_local_new / sl_rl_redis_new: its class and tier arrays and their names
 * are owned by the policy; clock is NULL (the gateway may copy rl and set one). redis is
 * filled in SL_GW_LIMITS_REDIS only (zeroed otherwise), every field explicit (no 0 meaning a
 * default): its strings are owned by the policy, and the password has had its ${NAME} /
 * ${file:/path} references expanded, so it must never be logged. */
typedef struct sl_gw_limits {
    sl_gw_limits_mode_t mode;
    sl_rl_config_t rl;
    sl_rl_redis_opts_t redis;
} sl_gw_limits_t;

/* ---- routes ------------------------------------------------------------------------------ */

/* Envoy's fault filter: a share of requests is delayed, a share aborted, each decided by its
 * own draw (a request may be both: delayed, then aborted). Shares are basis points. */
typedef struct sl_gw_fault {
    uint32_t delay_bp; /* 0: no delays */
    uint64_t delay_ms;
    uint32_t abort_bp;     /* 0: no aborts */
    uint32_t abort_status; /* 400..599 */
} sl_gw_fault_t;

typedef struct sl_gw_fault_action {
    uint64_t delay_ms;     /* 0: no delay */
    uint32_t abort_status; /* 0: no abort; else answer with this HTTP status */
} sl_gw_fault_action_t;

/* What to answer when the upstream is down or its breaker open. */
typedef struct sl_gw_fallback {
    bool last_good;           /* the last good answer for the same input hash */
    const char *default_json; /* pipelines only: the default answer as JSON object text
                                 ({"fraud_probability":0.0}), or NULL */
    size_t default_len;
} sl_gw_fallback_t;

/* How requests for one model (or pipeline) reach an upstream. Owned by the policy. */
typedef struct sl_gw_route {
    const char *model; /* the routes key ("*" or a model); NULL: implicit, or a pipeline's */
    const sl_gw_upstream_t *upstream; /* never NULL */
    uint32_t timeout_ms;              /* overall deadline; the pool's retry.timeout_ms if unset */
    sl_gw_fallback_t fallback;
    sl_gw_fault_t fault;
    uint32_t line; /* config line; 0 when implicit */
} sl_gw_route_t;

/* A business pipeline (POST /v1/predict/{name}): pipeline.h's object plus its route. */
typedef struct sl_gw_pipeline_route {
    const char *name;
    const sl_pipeline_t *pipeline; /* owned by the policy */
    sl_gw_route_t route;           /* upstream: its own, else its model's route's */
} sl_gw_pipeline_route_t;

/* fallback_cache: the bounded last-good-answer cache shared by every route. */
typedef struct sl_gw_fallback_cache_cfg {
    uint32_t max_entries; /* default 10000 */
    uint64_t max_bytes;   /* default 64 MiB */
    uint64_t ttl_ms;      /* default 10 min; an older answer is not served */
} sl_gw_fallback_cache_cfg_t;

/* ---- the policy -------------------------------------------------------------------------- */

typedef struct sl_gw_policy sl_gw_policy_t;

/* Builds a policy from gateway, the value of the main config's `gateway` key (NULL or a YAML
 * null: every default). file names the config in messages. default_endpoint ("host:port",
 * the same config's inference gRPC address; may be NULL) is the one endpoint of the implicit
 * pool "inference" made when `upstreams` is absent. Returns 0 and *out (one reference, drop it
 * with sl_gw_policy_unref), or SL_EINVAL with *out NULL and "file:line: message" lines
 * appended to err (borrowed). The node tree is borrowed for the call: the policy copies all it
 * keeps. */
int sl_gw_policy_parse(const char *file, const sl_yaml_node_t *gateway,
                       const char *default_endpoint, sl_gw_policy_t **out, sl_buf_t *err);
/* The same on a whole YAML document data[0..len) (borrowed, at most SL_GW_CONFIG_MAX bytes):
 * its top-level `gateway` key (absent: every default). Adds SL_EPARSE / SL_ELIMIT for a
 * document libyaml or the tree limits refuse. */
int sl_gw_policy_parse_text(const char *file, const void *data, size_t len,
                            const char *default_endpoint, sl_gw_policy_t **out, sl_buf_t *err);
/* Reads the main config file at path (at most SL_GW_CONFIG_MAX bytes) and parses its `gateway`
 * key as above. Adds SL_EIO (message naming the file) when it cannot be read. */
int sl_gw_policy_load(const char *path, const char *default_endpoint, sl_gw_policy_t **out,
                      sl_buf_t *err);

/* References: the last unref frees the policy and all it owns. Thread-safe; ref returns p,
 * unref accepts NULL. */
sl_gw_policy_t *sl_gw_policy_ref(const sl_gw_policy_t *p);
void sl_gw_policy_unref(const sl_gw_policy_t *p);

/* Every pointer an accessor returns is owned by the policy and valid while a reference is. */

/* Pools in config order (the implicit pool when upstreams is absent). */
size_t sl_gw_policy_upstream_count(const sl_gw_policy_t *p);
const sl_gw_upstream_t *sl_gw_policy_upstream_at(const sl_gw_policy_t *p, size_t i);
/* The pool named name, or NULL. */
const sl_gw_upstream_t *sl_gw_policy_upstream_find(const sl_gw_policy_t *p, sl_str_t name);

/* Rate limits; mode SL_GW_LIMITS_NONE when the section is absent. Never NULL. */
const sl_gw_limits_t *sl_gw_policy_limits(const sl_gw_policy_t *p);

/* The route for a /v2 request on model: its own entry, else "*", else a route on the only
 * pool with every default. NULL only when the policy has no pool at all. model borrowed. */
const sl_gw_route_t *sl_gw_policy_route(const sl_gw_policy_t *p, sl_str_t model);
/* Explicit route entries in name order, "*" included (for listings). */
size_t sl_gw_policy_route_count(const sl_gw_policy_t *p);
const sl_gw_route_t *sl_gw_policy_route_at(const sl_gw_policy_t *p, size_t i);

/* The pipeline named name, or NULL. name borrowed. */
const sl_gw_pipeline_route_t *sl_gw_policy_pipeline(const sl_gw_policy_t *p, sl_str_t name);
size_t sl_gw_policy_pipeline_count(const sl_gw_policy_t *p);
const sl_gw_pipeline_route_t *sl_gw_policy_pipeline_at(const sl_gw_policy_t *p, size_t i);

/* The traffic policy set (the policy holds one reference; a caller that keeps it past the
 * policy takes its own with sl_traffic_set_ref). Never NULL (empty when absent). */
const sl_traffic_set_t *sl_gw_policy_traffic(const sl_gw_policy_t *p);
/* The access log configuration (validated; the defaults when absent). Never NULL. */
const sl_access_log_cfg_t *sl_gw_policy_access_log(const sl_gw_policy_t *p);
/* The fallback cache configuration (the defaults when absent). Never NULL. */
const sl_gw_fallback_cache_cfg_t *sl_gw_policy_fallback_cache(const sl_gw_policy_t *p);

/* Decides fault injection for one request from two uniform 64-bit random values (sl_rand64()
 * in production), independently as Envoy does: delay when r_delay falls in delay_bp / 10000,
 * abort when r_abort falls in abort_bp / 10000. f NULL: no fault. Pure. */
sl_gw_fault_action_t sl_gw_fault_decide(const sl_gw_fault_t *f, uint64_t r_delay, uint64_t r_abort);

/* Hot-reload helpers. sl_gw_limits_equal: the same mode, classes, tiers, peak hours, offset,
 * table bounds and Redis settings, so the limiter and its buckets may be kept.
 * sl_gw_upstream_same_settings: the same name, resolve interval and sl_upstream_config_t,
 * whatever the endpoints, so the pool (and its endpoints' state) may be kept and only
 * sl_upstream_pool_set_endpoints called. Both borrow their arguments; NULL equals only NULL. */
bool sl_gw_limits_equal(const sl_gw_limits_t *a, const sl_gw_limits_t *b);
bool sl_gw_upstream_same_settings(const sl_gw_upstream_t *a, const sl_gw_upstream_t *b);

/* ---- hot reload -------------------------------------------------------------------------- */

/* Holds the current policy for many I/O threads: a typed sl_snapshot_t (core/snapshot.h), as
 * traffic.h's holder. A per-thread view re-acquires only when a new policy was published, so
 * the steady-state cost of sl_gw_policy_view_get is one atomic load. */
typedef struct sl_gw_policy_holder sl_gw_policy_holder_t;

/* Creates a holder publishing initial (the caller's reference moves in; must not be NULL).
 * sl_gw_policy_holder_free drops the holder's reference; views release their own. */
sl_gw_policy_holder_t *sl_gw_policy_holder_new(sl_gw_policy_t *initial);
void sl_gw_policy_holder_free(sl_gw_policy_holder_t *h);
/* Publishes p (the caller's reference moves in; must not be NULL) and drops the holder's
 * reference to the previous policy; readers still using it keep it alive with their own. */
void sl_gw_policy_holder_publish(sl_gw_policy_holder_t *h, sl_gw_policy_t *p);
/* A new reference to the current policy (never NULL); drop it with sl_gw_policy_unref. */
sl_gw_policy_t *sl_gw_policy_holder_acquire(sl_gw_policy_holder_t *h);

/* One reader thread's cached reference; zero-initialise it ({0}). */
typedef struct sl_gw_policy_view {
    sl_snapshot_view_t snap; /* private */
} sl_gw_policy_view_t;

/* The current policy (never NULL). Borrowed from the view: valid until the next
 * sl_gw_policy_view_get or sl_gw_policy_view_release on the same view. */
const sl_gw_policy_t *sl_gw_policy_view_get(sl_gw_policy_holder_t *h, sl_gw_policy_view_t *v);
void sl_gw_policy_view_release(sl_gw_policy_view_t *v);

#endif
