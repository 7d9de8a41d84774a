/* One gateway request's context and the steps the handlers share (handlers.c drives a request
 * through authentication, limits, traffic, faults, the upstream call and the answer;
 * handlers_oip.c adds the metadata, readiness, repository and admin routes). Internal. */
#ifndef SL_GATEWAY_HANDLERS_INTERNAL_H
#define SL_GATEWAY_HANDLERS_INTERNAL_H

#include "core/buf.h"
#include "core/trace.h"
#include "gateway/gateway_internal.h"
#include "gateway/pipeline.h"
#include "oip/oip_path.h"
#include "oip/oip_types.h"

typedef enum gw_kind {
    GW_INFER = 0, /* POST /v2/models/{m}[/versions/{v}]/infer */
    GW_PIPELINE,  /* POST /v1/predict/{name} */
    GW_METADATA,  /* GET /v2/models/{m}[/versions/{v}] */
    GW_READY,     /* GET /v2/models/{m}[/versions/{v}]/ready */
    GW_ADMIN,     /* repository and outcomes routes */
} gw_kind_t;

typedef struct gw_shadow gw_shadow_t;

typedef struct gw_req {
    sl_gw_t *gw;
    sl_gw_loop_t *gl;
    sl_http_req_t *http;
    sl_gw_policy_t *policy; /* a reference for the request's life */
    gw_kind_t kind;
    const char *route_label; /* "oip", "predict", "admin" (access log) */
    char model[SL_OIP_NAME_MAX + 1];
    char version[SL_OIP_NAME_MAX + 1]; /* the version asked for or picked; "" = newest */
    char key_id[SL_KEYS_ID_MAX + 1];
    char tenant[SL_KEYS_TENANT_MAX + 1];
    char tier[SL_KEYS_TIER_MAX + 1];
    const sl_gw_route_t *route;
    const sl_gw_pipeline_route_t *pipeline;
    sl_infer_request_t *ireq;
    sl_pipeline_input_t pin;
    uint32_t cost;
    void (*limit_next)(struct gw_req *q); /* the step after the rate limit */
    const char *limit_class;
    struct gw_req *cache_next; /* in the loop's cache of free contexts */
    sl_buf_t msg;              /* the upstream request message */
    const char *method;
    uint64_t t0_ns, up_start_ns, up_ns;
    sl_rl_headers_t rlh;
    bool has_rlh;
    char fb_route[SL_OIP_NAME_MAX + 16]; /* the fallback cache's route key; "" = no fallback */
    uint64_t fb_hash;
    gw_shadow_t *shadow;
    uv_timer_t timer;
    bool timer_ready;
    const char *outcome;
    bool degraded;
    uint32_t retries;
    char endpoint[SL_UPSTREAM_ADDR_MAX];
    char traceparent[SL_TRACEPARENT_LEN + 1]; /* sent upstream; "" when none */
    char trace_id[33], span_id[17];           /* for logs; "" when none */
    /* The admin fan-out (repository load/unload on every endpoint). */
    unsigned fan_pending;
    int fan_code;
    char fan_msg[256];
} gw_req_t;

/* Creates a request context with a reference to the current policy. */
gw_req_t *gw_req_new(sl_gw_t *gw, sl_http_req_t *http, gw_kind_t kind, const char *route_label);
/* Answers and frees q: status, body (taken; may be an empty buffer), RateLimit headers when the
 * limiter ran, and the access log line. */
void gw_respond(gw_req_t *q, int status, sl_buf_t *body, const char *content_type,
                const char *outcome);
/* Answers {"error": msg} (client-safe messages only). */
void gw_respond_error(gw_req_t *q, int status, const char *msg, const char *outcome);
/* Authenticates q's Authorization header and checks scopes; answers 401/403 and returns false
 * on failure. */
bool gw_authenticate(gw_req_t *q, unsigned scopes);
/* Applies the rate limit of class (NULL: none) with q->cost, then calls next(q) (answers 429
 * itself when denied). */
void gw_limit(gw_req_t *q, const char *class, void (*next)(gw_req_t *q));
/* Starts an upstream call of q->msg on q->route's pool to method; done gets the result. On an
 * immediate refusal, done is called with a synthesised result before this returns. */
void gw_upstream(gw_req_t *q, const char *method, bool idempotent, sl_gw_call_cb done);
/* Maps a failed upstream result to the client's answer (never leaking upstream internals). */
void gw_respond_upstream_error(gw_req_t *q, const sl_gw_call_result_t *r);
/* Writes {"error": msg} into b. */
void gw_error_body(sl_buf_t *b, const char *msg);

/* handlers_oip.c: the non-inference /v2 routes and the admin routes. */
void gw_metadata_start(gw_req_t *q);
void gw_ready_start(gw_req_t *q);
void gw_handle_repository_index(sl_http_req_t *r, void *ctx);
void gw_handle_repository_model(sl_http_req_t *r, void *ctx);
void gw_handle_admin_outcomes(sl_http_req_t *r, void *ctx);

#endif
