/* One gateway -> upstream gRPC call driven through an upstream pool (upstream.h): admission,
 * power-of-two-choices pick, per-try timeout sent as grpc-timeout, classification of the answer,
 * retries with full-jitter backoff within the pool's budget, and the per-loop gRPC clients the
 * attempts use (one multiplexed HTTP/2 connection per endpoint per I/O loop).
 *
 * Threads: a clients table and every call started on it belong to one I/O loop; start calls and
 * receive their results on that loop's thread. */
#ifndef SL_GATEWAY_PROXY_H
#define SL_GATEWAY_PROXY_H

#include "core/common.h"
#include "core/grpc.h"
#include "gateway/retry.h"
#include "gateway/upstream.h"

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

/* The gRPC clients of one I/O loop, by endpoint address ("host:port"). */
typedef struct sl_gw_clients sl_gw_clients_t;

/* opts may be NULL (defaults); copied. */
sl_gw_clients_t *sl_gw_clients_new(uv_loop_t *loop, const sl_grpc_client_opts_t *opts);
/* Frees every client (their pending calls complete with CANCELLED first, so every call's
 * callback has run when this returns); the loop must keep running until the handles closed.
 * On the loop's thread. NULL is fine. */
void sl_gw_clients_free(sl_gw_clients_t *c);

/* One call straight to the endpoint at addr ("host:port"), outside any pool's accounting (the
 * admin fan-out to every replica). traceparent may be NULL or "". Returns 0 (cb runs later,
 * exactly once) or SL_EINVAL for an unusable address or method (cb is not called). */
int sl_gw_clients_call(sl_gw_clients_t *c, const char *addr, const char *method, const void *msg,
                       size_t len, uint32_t timeout_ms, const char *traceparent,
                       sl_grpc_client_cb cb, void *arg);

/* How an upstream call ended, as the caller sees it. */
typedef struct sl_gw_call_result {
    int code;            /* sl_grpc_code_t of the last attempt; UNAVAILABLE when none ran */
    const char *message; /* grpc-message of the last attempt, or the pool's reason */
    const uint8_t *resp; /* the response message when code is OK, else NULL */
    size_t len;
    sl_retry_outcome_t outcome;  /* the last attempt's classification */
    sl_upstream_reason_t reason; /* != OK: no endpoint could be picked for the (last) try */
    uint32_t attempts;           /* attempts made (0: none could start) */
    const char *endpoint;        /* the last attempt's "host:port", "" when none */
} sl_gw_call_result_t;

/* Everything in the result is borrowed for the duration of the callback. */
typedef void (*sl_gw_call_cb)(const sl_gw_call_result_t *r, void *arg);

typedef struct sl_gw_call_opts {
    const char *method;          /* "/inference.GRPCInferenceService/ModelInfer" (borrowed) */
    uint64_t client_deadline_ms; /* on sl_now_ms()'s clock; 0: the pool's timeout only */
    bool idempotent;             /* may be retried after the server saw it */
    bool no_retry;               /* one attempt only (shadow traffic) */
    const char *traceparent;     /* W3C traceparent to send, or NULL (copied) */
} sl_gw_call_opts_t;

/* Starts a call of msg[0..len) (copied) on pool through clients. cb runs exactly once, later,
 * on the clients' loop, unless this returns an error: SL_ELIMIT / SL_ENOENT / SL_EAGAIN /
 * SL_ETIMEOUT when the pool refused the request outright (admission or no endpoint for the
 * first try; *why says which, cb is not called). */
int sl_gw_call_start(sl_gw_clients_t *clients, sl_upstream_pool_t *pool,
                     const sl_gw_call_opts_t *opts, const void *msg, size_t len, sl_gw_call_cb cb,
                     void *arg, sl_upstream_reason_t *why);

/* The classification of a gRPC status as an attempt outcome (retry.h). */
sl_retry_outcome_t sl_gw_classify(int grpc_code);

#endif
