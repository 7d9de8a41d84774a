/* The OIP wire types (src/oip): datatype names, client-visible codes, the per-request arena, and
 * the hand-off of a finished request back to the I/O thread that took it. */
#include "oip/oip_types.h"

#include "core/grpc.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int sl_infer_code_http(sl_infer_code_t c) {
    switch (c) {
    case SL_INFER_OK:
        return 200;
    case SL_INFER_INVALID:
        return 400;
    case SL_INFER_NOT_FOUND:
        return 404;
    case SL_INFER_UNAVAILABLE:
        return 503;
    case SL_INFER_OVERLOADED:
        return 503;
    case SL_INFER_TIMEOUT:
        return 504;
    case SL_INFER_INTERNAL:
        return 500;
    }
    return 500;
}

int sl_infer_code_grpc(sl_infer_code_t c) {
    switch (c) {
    case SL_INFER_OK:
        return SL_GRPC_OK;
    case SL_INFER_INVALID:
        return SL_GRPC_INVALID_ARGUMENT;
    case SL_INFER_NOT_FOUND:
        return SL_GRPC_NOT_FOUND;
    case SL_INFER_UNAVAILABLE:
        return SL_GRPC_UNAVAILABLE;
    case SL_INFER_OVERLOADED:
        return SL_GRPC_RESOURCE_EXHAUSTED;
    case SL_INFER_TIMEOUT:
        return SL_GRPC_DEADLINE_EXCEEDED;
    case SL_INFER_INTERNAL:
        return SL_GRPC_INTERNAL;
    }
    return SL_GRPC_INTERNAL;
}

sl_infer_code_t sl_infer_error_set(sl_infer_error_t *e, sl_infer_code_t code, const char *fmt,
                                   ...) {
    e->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    return code;
}

static const char *const dtype_names[] = {
    [SLUICE_DT_INVALID] = "INVALID", [SLUICE_DT_BOOL] = "BOOL",     [SLUICE_DT_UINT8] = "UINT8",
    [SLUICE_DT_UINT16] = "UINT16",   [SLUICE_DT_UINT32] = "UINT32", [SLUICE_DT_UINT64] = "UINT64",
    [SLUICE_DT_INT8] = "INT8",       [SLUICE_DT_INT16] = "INT16",   [SLUICE_DT_INT32] = "INT32",
    [SLUICE_DT_INT64] = "INT64",     [SLUICE_DT_FP16] = "FP16",     [SLUICE_DT_FP32] = "FP32",
    [SLUICE_DT_FP64] = "FP64",       [SLUICE_DT_BYTES] = "BYTES",   [SLUICE_DT_BF16] = "BF16",
};

sluice_dtype_t sl_dtype_from_name(const char *name, size_t len) {
    for (size_t i = 1; i < SL_ARRAY_LEN(dtype_names); i++) {
        if (strlen(dtype_names[i]) == len && memcmp(dtype_names[i], name, len) == 0) {
            return (sluice_dtype_t)i;
        }
    }
    return SLUICE_DT_INVALID;
}

const char *sl_dtype_to_name(sluice_dtype_t t) {
    if ((size_t)t >= SL_ARRAY_LEN(dtype_names)) return "INVALID";
    return dtype_names[t];
}

sluice_dtype_t sl_dtype_from_config(const char *name) {
    if (strncmp(name, "TYPE_", 5) == 0) {
        name += 5;
        if (strcmp(name, "STRING") == 0) return SLUICE_DT_BYTES;
    }
    return sl_dtype_from_name(name, strlen(name));
}

bool sl_dtype_int_range(sluice_dtype_t t, int64_t *lo, int64_t *hi) {
    switch (t) {
    case SLUICE_DT_INT8:
        *lo = INT8_MIN, *hi = INT8_MAX;
        return true;
    case SLUICE_DT_INT16:
        *lo = INT16_MIN, *hi = INT16_MAX;
        return true;
    case SLUICE_DT_INT32:
        *lo = INT32_MIN, *hi = INT32_MAX;
        return true;
    case SLUICE_DT_UINT8:
        *lo = 0, *hi = UINT8_MAX;
        return true;
    case SLUICE_DT_UINT16:
        *lo = 0, *hi = UINT16_MAX;
        return true;
    case SLUICE_DT_UINT32:
        *lo = 0, *hi = UINT32_MAX;
        return true;
    default:
        return false;
    }
}

int64_t sl_dims_numel(const int64_t *dims, uint32_t ndim) {
    int64_t n = 1;
    for (uint32_t i = 0; i < ndim; i++) {
        if (dims[i] < 0) return -1;
        if (dims[i] != 0 && n > (INT64_C(1) << 62) / dims[i]) return -1;
        n *= dims[i];
    }
    return n;
}

const char *sl_dims_str(const int64_t *dims, uint32_t ndim, char *buf, size_t cap) {
    size_t n = (size_t)snprintf(buf, cap, "[");
    for (uint32_t i = 0; i < ndim && n < cap; i++) {
        n += (size_t)snprintf(buf + n, cap - n, i ? ",%" PRId64 : "%" PRId64, dims[i]);
    }
    if (n < cap) snprintf(buf + n, cap - n, "]");
    return buf;
}

/* ---- the request arena: a chain of blocks, freed in one call ---- */

typedef struct sl_infer_arena {
    struct sl_infer_arena *next;
    size_t used, cap;
    _Alignas(16) uint8_t data[];
} arena_t;

#define ARENA_BLOCK 4096u

void *sl_infer_request_alloc(sl_infer_request_t *req, size_t n) {
    n = (n + 15) & ~(size_t)15;
    arena_t *a = req->arena_;
    if (!a || a->cap - a->used < n) {
        size_t cap = n > ARENA_BLOCK ? n : ARENA_BLOCK;
        arena_t *b = sl_malloc(sizeof *b + cap);
        b->used = 0;
        b->cap = cap;
        b->next = a;
        req->arena_ = a = b;
    }
    void *p = a->data + a->used;
    a->used += n;
    memset(p, 0, n);
    return p;
}

const char *sl_infer_request_strndup(sl_infer_request_t *req, const char *s, size_t n) {
    char *p = sl_infer_request_alloc(req, n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

/* Request arrays live in the arena with capacities 4, 8, 16, ...: a full array (n == 4, 8, ...)
 * moves to one twice its size (the old copy stays in the arena until the request is freed). */
static void *slot(sl_infer_request_t *req, void *arr, size_t n, size_t elem) {
    if (n == 0) return sl_infer_request_alloc(req, 4 * elem);
    if (n < 4 || (n & (n - 1)) != 0) return arr;
    void *p = sl_infer_request_alloc(req, 2 * n * elem);
    memcpy(p, arr, n * elem);
    return p;
}

sl_infer_input_t *sl_infer_request_add_input(sl_infer_request_t *req) {
    req->inputs = slot(req, req->inputs, req->n_inputs, sizeof *req->inputs);
    return &req->inputs[req->n_inputs++]; /* zeroed by the arena */
}

sl_infer_output_req_t *sl_infer_request_add_output(sl_infer_request_t *req) {
    req->outputs = slot(req, req->outputs, req->n_outputs, sizeof *req->outputs);
    return &req->outputs[req->n_outputs++];
}

sl_infer_request_t *sl_infer_request_new(sl_loop_t *loop, sl_infer_done_cb done, void *arg) {
    sl_infer_request_t *req = sl_calloc(1, sizeof *req);
    req->loop = loop;
    req->done = done;
    req->done_arg = arg;
    req->t_received_ns = sl_now_ns();
    /* A request that will complete on loop keeps it from finishing a graceful stop until it
     * is freed, so its answer is never dropped (and its call never leaked) mid-drain. */
    if (loop && done) {
        sl_loop_hold(loop);
        req->holds_loop_ = true;
    }
    return req;
}

void sl_infer_request_free(sl_infer_request_t *req) {
    if (!req) return;
    if (req->holds_loop_) sl_loop_release(req->loop);
    arena_t *a = req->arena_;
    while (a) {
        arena_t *next = a->next;
        free(a);
        a = next;
    }
    free(req);
}

static void deliver(void *arg) {
    sl_infer_request_t *req = arg;
    sl_infer_response_t *resp = req->resp_;
    req->resp_ = NULL;
    req->done(req, resp, resp ? NULL : &req->err_, req->done_arg);
}

void sl_infer_request_complete(sl_infer_request_t *req, sl_infer_response_t *resp,
                               const sl_infer_error_t *err) {
    SL_ASSERT(resp || err);
    req->resp_ = resp;
    if (!resp) req->err_ = *err;
    if (!req->loop) {
        deliver(req);
        return;
    }
    if (sl_loop_post(req->loop, deliver, req) != 0) {
        sl_infer_response_free(resp);
        sl_infer_request_free(req);
    }
}

/* ---- responses: one block ---- */

typedef struct resp_block {
    sl_infer_response_t resp;
    size_t data_off;
} resp_block_t;

sl_infer_response_t *sl_infer_response_new(const char *model_name, const char *model_version,
                                           size_t n_outputs, const char *const *output_names,
                                           uint64_t data_bytes) {
    size_t strings = strlen(model_name) + 1 + strlen(model_version) + 1;
    for (size_t i = 0; i < n_outputs; i++)
        strings += strlen(output_names[i]) + 1;
    size_t outs_off = (sizeof(resp_block_t) + 15) & ~(size_t)15;
    size_t str_off = outs_off + n_outputs * sizeof(sl_infer_output_t);
    size_t data_off = (str_off + strings + 15) & ~(size_t)15;
    resp_block_t *b = sl_calloc(1, data_off + data_bytes);
    b->data_off = data_off;
    uint8_t *base = (uint8_t *)b;
    b->resp.outputs = (sl_infer_output_t *)(base + outs_off);
    b->resp.n_outputs = n_outputs;
    char *s = (char *)base + str_off;
    size_t n = strlen(model_name) + 1;
    memcpy(s, model_name, n);
    b->resp.model_name = s;
    s += n;
    n = strlen(model_version) + 1;
    memcpy(s, model_version, n);
    b->resp.model_version = s;
    s += n;
    for (size_t i = 0; i < n_outputs; i++) {
        n = strlen(output_names[i]) + 1;
        memcpy(s, output_names[i], n);
        b->resp.outputs[i].name = s;
        s += n;
    }
    return &b->resp;
}

uint8_t *sl_infer_response_data(sl_infer_response_t *resp) {
    resp_block_t *b = SL_CONTAINER_OF(resp, resp_block_t, resp);
    return (uint8_t *)b + b->data_off;
}

sl_infer_response_t *sl_infer_response_clone(const sl_infer_response_t *resp) {
    uint64_t bytes = 0;
    const char *names[resp->n_outputs ? resp->n_outputs : 1];
    for (size_t i = 0; i < resp->n_outputs; i++) {
        bytes += (resp->outputs[i].byte_size + 15) & ~(uint64_t)15;
        names[i] = resp->outputs[i].name;
    }
    sl_infer_response_t *c =
        sl_infer_response_new(resp->model_name, resp->model_version, resp->n_outputs, names, bytes);
    uint8_t *d = sl_infer_response_data(c);
    for (size_t i = 0; i < resp->n_outputs; i++) {
        const sl_infer_output_t *o = &resp->outputs[i];
        sl_infer_output_t *co = &c->outputs[i];
        co->dtype = o->dtype;
        co->ndim = o->ndim;
        memcpy(co->dims, o->dims, sizeof co->dims);
        co->byte_size = o->byte_size;
        co->data = d;
        if (o->byte_size) memcpy(d, o->data, o->byte_size);
        d += (o->byte_size + 15) & ~(uint64_t)15;
    }
    c->cached = resp->cached;
    return c;
}

void sl_infer_response_free(sl_infer_response_t *resp) {
    if (!resp) return;
    free(SL_CONTAINER_OF(resp, resp_block_t, resp));
}

float sl_half_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h >> 15) << 31, exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
    uint32_t bits;
    if (exp == 0) {
        if (mant == 0) {
            bits = sign;
        } else { /* subnormal: renormalise */
            exp = 127 - 15 + 1;
            while (!(mant & 0x400)) {
                mant <<= 1;
                exp--;
            }
            bits = sign | (exp << 23) | ((mant & 0x3ff) << 13);
        }
    } else if (exp == 0x1f) {
        bits = sign | 0x7f800000u | (mant << 13);
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}
