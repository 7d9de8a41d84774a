/* Upstream calls through a pool: attempts, retries and the per-loop gRPC clients. */
#include "gateway/proxy.h"

#include "core/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- per-loop clients ---- */

typedef struct client_slot {
    char *addr;
    sl_grpc_client_t *client;
} client_slot_t;

struct sl_gw_clients {
    uv_loop_t *loop;
    sl_grpc_client_opts_t opts;
    client_slot_t *slots;
    size_t n, cap;
};

sl_gw_clients_t *sl_gw_clients_new(uv_loop_t *loop, const sl_grpc_client_opts_t *opts) {
    sl_gw_clients_t *c = sl_calloc(1, sizeof *c);
    c->loop = loop;
    if (opts) c->opts = *opts;
    return c;
}

void sl_gw_clients_free(sl_gw_clients_t *c) {
    if (!c) return;
    for (size_t i = 0; i < c->n; i++) {
        sl_grpc_client_free(c->slots[i].client);
        free(c->slots[i].addr);
    }
    free(c->slots);
    free(c);
}

static sl_grpc_client_t *client_for(sl_gw_clients_t *c, const char *addr) {
    for (size_t i = 0; i < c->n; i++) {
        if (strcmp(c->slots[i].addr, addr) == 0) return c->slots[i].client;
    }
    char host[SL_UPSTREAM_ADDR_MAX];
    uint16_t port;
    if (!sl_upstream_addr_split(addr, host, sizeof host, &port)) return NULL;
    if (c->n == c->cap) {
        c->cap = c->cap ? 2 * c->cap : 8;
        c->slots = sl_realloc(c->slots, c->cap * sizeof *c->slots);
    }
    sl_grpc_client_t *client = sl_grpc_client_new(c->loop, host, port, &c->opts);
    c->slots[c->n++] = (client_slot_t){sl_strdup(addr), client};
    return client;
}

int sl_gw_clients_call(sl_gw_clients_t *c, const char *addr, const char *method, const void *msg,
                       size_t len, uint32_t timeout_ms, const char *traceparent,
                       sl_grpc_client_cb cb, void *arg) {
    sl_grpc_client_t *client = client_for(c, addr);
    if (!client) return SL_EINVAL;
    return sl_grpc_client_call(client, method, msg, len, timeout_ms,
                               traceparent && traceparent[0] ? traceparent : NULL, cb, arg);
}

/* ---- classification ---- */

sl_retry_outcome_t sl_gw_classify(int code) {
    switch (code) {
    case SL_GRPC_OK:
        return SL_RETRY_OUTCOME_OK;
    case SL_GRPC_UNAVAILABLE:
        return SL_RETRY_OUTCOME_UNAVAILABLE;
    case SL_GRPC_DEADLINE_EXCEEDED:
        return SL_RETRY_OUTCOME_PER_TRY_TIMEOUT;
    case SL_GRPC_CANCELLED:
        return SL_RETRY_OUTCOME_RESET_BEFORE_RESPONSE;
    case SL_GRPC_RESOURCE_EXHAUSTED:
        return SL_RETRY_OUTCOME_RATE_LIMITED;
    case SL_GRPC_INTERNAL:
    case SL_GRPC_UNKNOWN:
    case SL_GRPC_DATA_LOSS:
    case SL_GRPC_UNIMPLEMENTED:
        return SL_RETRY_OUTCOME_SERVER_ERROR;
    default:
        return SL_RETRY_OUTCOME_CLIENT_ERROR;
    }
}

/* ---- calls ---- */

typedef struct gw_call {
    sl_gw_clients_t *clients;
    sl_upstream_request_t ureq;
    uint8_t *msg;
    size_t len;
    const char *method;
    char traceparent[64];
    bool has_traceparent;
    bool no_retry;
    sl_gw_call_cb cb;
    void *arg;
    uv_timer_t timer;
    bool timer_ready;
    uint32_t attempts;
    char endpoint[SL_UPSTREAM_ADDR_MAX];
    /* A result waiting for the timer to deliver it (a failure found synchronously). */
    sl_upstream_reason_t pending_reason;
    sl_retry_outcome_t last_outcome;
    int last_code;
} gw_call_t;

static void call_free_cb(uv_handle_t *h) {
    gw_call_t *call = h->data;
    free(call->msg);
    free(call);
}

static void call_release(gw_call_t *call) {
    sl_upstream_request_end(&call->ureq);
    if (call->timer_ready) {
        uv_close((uv_handle_t *)&call->timer, call_free_cb);
    } else {
        free(call->msg);
        free(call);
    }
}

static void finish(gw_call_t *call, int code, const char *message, const uint8_t *resp, size_t len,
                   sl_upstream_reason_t reason) {
    sl_gw_call_result_t r = {
        .code = code,
        .message = message ? message : "",
        .resp = code == SL_GRPC_OK ? resp : NULL,
        .len = code == SL_GRPC_OK ? len : 0,
        .outcome = call->last_outcome,
        .reason = reason,
        .attempts = call->attempts,
        .endpoint = call->endpoint,
    };
    call->cb(&r, call->arg);
    call_release(call);
}

static void ensure_timer(gw_call_t *call) {
    if (call->timer_ready) return;
    uv_timer_init(call->clients->loop, &call->timer);
    call->timer.data = call;
    call->timer_ready = true;
}

static void on_reply(int code, const char *message, const uint8_t *resp, size_t len, void *arg);
static void on_deferred_finish(uv_timer_t *t);

/* Picks an endpoint and sends one attempt. Returns 0, or the pick's status with *why set when
 * no endpoint could take it (nothing was sent). */
static int attempt(gw_call_t *call, sl_upstream_reason_t *why) {
    sl_upstream_endpoint_t *ep;
    int rc = sl_upstream_request_pick(&call->ureq, &ep, why);
    if (rc != 0) return rc;
    uint32_t timeout_ms;
    if (sl_upstream_request_try_timeout_ms(&call->ureq, &timeout_ms) != 0) {
        sl_upstream_request_attempt_done(&call->ureq, SL_RETRY_OUTCOME_PER_TRY_TIMEOUT);
        *why = SL_UPSTREAM_DEADLINE;
        return SL_ETIMEOUT;
    }
    call->attempts++;
    snprintf(call->endpoint, sizeof call->endpoint, "%s", sl_upstream_endpoint_addr(ep));
    sl_grpc_client_t *client = client_for(call->clients, call->endpoint);
    rc = client
             ? sl_grpc_client_call(client, call->method, call->msg, call->len, timeout_ms,
                                   call->has_traceparent ? call->traceparent : NULL, on_reply, call)
             : SL_EINVAL;
    if (rc != 0) {
        /* The client refused at once (it is being freed, or the address is unusable): count it
         * as a connect failure and deliver the result from the loop, never re-entrantly. */
        call->last_outcome = SL_RETRY_OUTCOME_CONNECT_FAILURE;
        call->last_code = SL_GRPC_UNAVAILABLE;
        sl_upstream_request_attempt_done(&call->ureq, SL_RETRY_OUTCOME_CONNECT_FAILURE);
        call->pending_reason = SL_UPSTREAM_OK;
        ensure_timer(call);
        uv_timer_start(&call->timer, on_deferred_finish, 0, 0);
    }
    return 0;
}

static void on_deferred_finish(uv_timer_t *t) {
    gw_call_t *call = t->data;
    finish(call, call->last_code,
           call->pending_reason != SL_UPSTREAM_OK ? sl_upstream_reason_name(call->pending_reason)
                                                  : "upstream connection failed",
           NULL, 0, call->pending_reason);
}

static void on_backoff(uv_timer_t *t) {
    gw_call_t *call = t->data;
    sl_upstream_reason_t why = SL_UPSTREAM_OK;
    if (attempt(call, &why) != 0) {
        /* No endpoint for the retry: the client gets the last attempt's answer. */
        finish(call, call->last_code, sl_upstream_reason_name(why), NULL, 0, why);
    }
}

static void on_reply(int code, const char *message, const uint8_t *resp, size_t len, void *arg) {
    gw_call_t *call = arg;
    sl_retry_outcome_t o = sl_gw_classify(code);
    call->last_outcome = o;
    call->last_code = code;
    sl_retry_decision_t d = sl_upstream_request_attempt_done(&call->ureq, o);
    if (d.verdict == SL_RETRY_YES && !call->no_retry) {
        SL_DEBUG("gateway", "retrying upstream call", SL_LF_S("endpoint", call->endpoint),
                 SL_LF_S("outcome", sl_retry_outcome_name(o)), SL_LF_U("backoff_ms", d.backoff_ms));
        ensure_timer(call);
        uv_timer_start(&call->timer, on_backoff, d.backoff_ms, 0);
        return;
    }
    finish(call, code, message, resp, len, SL_UPSTREAM_OK);
}

int sl_gw_call_start(sl_gw_clients_t *clients, sl_upstream_pool_t *pool,
                     const sl_gw_call_opts_t *opts, const void *msg, size_t len, sl_gw_call_cb cb,
                     void *arg, sl_upstream_reason_t *why) {
    gw_call_t *call = sl_calloc(1, sizeof *call);
    *why = SL_UPSTREAM_OK;
    int rc = sl_upstream_request_begin(pool, &call->ureq, opts->client_deadline_ms,
                                       opts->idempotent, why);
    if (rc != 0) {
        free(call);
        return rc;
    }
    call->clients = clients;
    call->method = opts->method;
    call->no_retry = opts->no_retry;
    call->cb = cb;
    call->arg = arg;
    call->msg = sl_malloc(len ? len : 1);
    if (len) memcpy(call->msg, msg, len);
    call->len = len;
    call->last_code = SL_GRPC_UNAVAILABLE;
    call->last_outcome = SL_RETRY_OUTCOME_CONNECT_FAILURE;
    if (opts->traceparent && strlen(opts->traceparent) < sizeof call->traceparent) {
        strcpy(call->traceparent, opts->traceparent);
        call->has_traceparent = true;
    }
    rc = attempt(call, why);
    if (rc != 0) {
        call_release(call);
        return rc;
    }
    return 0;
}
