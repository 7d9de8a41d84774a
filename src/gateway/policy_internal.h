/* Internal to policy*.c: the policy object's layout, the parse context and the scalar helpers
 * (durations, sizes, percents, names, ${} references) shared by the section parsers
 * (policy_upstream.c, policy_limits.c, policy_routes.c). Not for other modules. */
#ifndef SL_GATEWAY_POLICY_INTERNAL_H
#define SL_GATEWAY_POLICY_INTERNAL_H

#include "gateway/policy.h"

#include <stdarg.h>
#include <stdatomic.h>

#define SL_GW__MAX_ERRORS 20

struct sl_gw_policy {
    _Atomic uint32_t refs;
    sl_gw_upstream_t *upstreams; /* config order */
    size_t n_upstreams;
    sl_gw_limits_t limits;
    sl_gw_route_t *routes; /* sorted by model (strcmp), "*" included */
    size_t n_routes;
    const sl_gw_route_t *star; /* into routes, or NULL */
    sl_gw_route_t implicit;    /* used when there is no "*" and exactly one pool */
    bool has_implicit;
    sl_gw_pipeline_route_t *pipelines; /* sorted by name */
    size_t n_pipelines;
    sl_traffic_set_t *traffic; /* one reference */
    sl_access_log_cfg_t access_log;
    sl_gw_fallback_cache_cfg_t fallback_cache;
};

/* The parse context: the errors collected so far (file:line each) and the err buffer. */
typedef struct sl_gw__pc {
    sl_yaml_errors_t ye;
    sl_buf_t *err;
    bool failed; /* a module parser (traffic) reported into err by itself */
} sl_gw__pc_t;

void sl_gw__err(sl_gw__pc_t *c, const sl_yaml_node_t *at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* True when n is of kind; else reports "<what> must be <kind>, not <kind>". */
bool sl_gw__want(sl_gw__pc_t *c, const sl_yaml_node_t *n, sl_yaml_kind_t kind, const char *what);
/* A mapping (true), or a YAML null / absent (false, no error), or anything else (false, an
 * error). For optional sub-sections. */
bool sl_gw__want_map(sl_gw__pc_t *c, const sl_yaml_node_t *n, const char *what);

/* Scalar readers: each returns true and sets *out, or reports a message naming what (a dotted
 * key path) at n and returns false (*out untouched). */
bool sl_gw__duration(sl_gw__pc_t *c, const sl_yaml_node_t *n, const char *what, uint64_t min_ms,
                     uint64_t max_ms, uint64_t *out);
bool sl_gw__size(sl_gw__pc_t *c, const sl_yaml_node_t *n, const char *what, uint64_t min,
                 uint64_t max, uint64_t *out);
bool sl_gw__uint(sl_gw__pc_t *c, const sl_yaml_node_t *n, const char *what, uint64_t min,
                 uint64_t max, uint64_t *out);
/* A plain decimal number (no exponent, inf or nan) within [min, max]. */
bool sl_gw__number(sl_gw__pc_t *c, const sl_yaml_node_t *n, const char *what, double min,
                   double max, double *out);
/* A percent 0..100 with at most two decimals, as basis points 0..10000. */
bool sl_gw__percent_bp(sl_gw__pc_t *c, const sl_yaml_node_t *n, const char *what, uint32_t *out);
bool sl_gw__bool(sl_gw__pc_t *c, const sl_yaml_node_t *n, const char *what, bool *out);
/* A scalar string of 1..max bytes; into *out (borrowed from n). */
bool sl_gw__string(sl_gw__pc_t *c, const sl_yaml_node_t *n, const char *what, size_t max,
                   const char **out);
/* A scalar string with ${NAME}, ${NAME:-default}, ${file:/abs/path} expanded and $${ meaning
 * a literal ${ (the main config's syntax), appended to out (at most max bytes after expansion).
 * Messages name the reference, never an expanded value. */
bool sl_gw__expand(sl_gw__pc_t *c, const sl_yaml_node_t *n, const char *what, size_t max,
                   sl_buf_t *out);

/* Names: upstreams, pipelines and route classes are 1..max bytes of [A-Za-z0-9_.-]; models the
 * same, not starting with '.'. */
bool sl_gw__name_ok(const char *s, size_t n, size_t max);
bool sl_gw__model_ok(const char *s, size_t n);

/* Section parsers, filling p. */
void sl_gw__parse_upstreams(sl_gw__pc_t *c, const sl_yaml_node_t *n, const char *default_endpoint,
                            sl_gw_policy_t *p);
void sl_gw__parse_limits(sl_gw__pc_t *c, const sl_yaml_node_t *n, sl_gw_limits_t *out);
void sl_gw__limits_free(sl_gw_limits_t *l);
/* routes and pipelines (need the upstreams parsed first). */
void sl_gw__parse_routes(sl_gw__pc_t *c, const sl_yaml_node_t *routes,
                         const sl_yaml_node_t *gateway, sl_gw_policy_t *p);
void sl_gw__parse_pipelines(sl_gw__pc_t *c, const sl_yaml_node_t *pipelines, sl_gw_policy_t *p);
void sl_gw__route_free(sl_gw_route_t *r);
void sl_gw__upstream_free(sl_gw_upstream_t *u);

#endif
