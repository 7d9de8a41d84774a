/* ModelInfer for the gRPC front end: a ModelInferRequest unpacked into an sl_infer_request_t
 * (raw or typed tensor contents, scheduling parameters), handed to the model manager, and its
 * response packed back as raw_output_contents. oip_grpc.c registers the handler. */
#include "inference/oip_grpc_internal.h"

#include "core/log.h"
#include "inference/manager.h"
#include "inference/model_config.h"

#include "inference/grpc_service.pb-c.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

/* Tensor bytes are little-endian on the wire and in memory; typed contents are copied as is. */
_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
               "oip_grpc_infer.c assumes a little-endian host");

#define LOG_C "inference"

/* "[2,16]" into buf (truncated to fit). */
static const char *fmt_shape(char *buf, size_t cap, const int64_t *dims, size_t ndim) {
    size_t o = 0;
    o += (size_t)snprintf(buf, cap, "[");
    for (size_t i = 0; i < ndim && o < cap; i++) {
        o += (size_t)snprintf(buf + o, cap - o, "%s%" PRId64, i ? "," : "", dims[i]);
    }
    if (o < cap) snprintf(buf + o, cap - o, "]");
    return buf;
}

/* ---- ModelInfer: request ---- */

/* The typed-contents field each datatype travels in (NULL: raw only). */
static const char *contents_field(sluice_dtype_t t) {
    switch (t) {
    case SLUICE_DT_BOOL:
        return "bool_contents";
    case SLUICE_DT_INT8:
    case SLUICE_DT_INT16:
    case SLUICE_DT_INT32:
        return "int_contents";
    case SLUICE_DT_INT64:
        return "int64_contents";
    case SLUICE_DT_UINT8:
    case SLUICE_DT_UINT16:
    case SLUICE_DT_UINT32:
        return "uint_contents";
    case SLUICE_DT_UINT64:
        return "uint64_contents";
    case SLUICE_DT_FP32:
        return "fp32_contents";
    case SLUICE_DT_FP64:
        return "fp64_contents";
    case SLUICE_DT_BYTES:
        return "bytes_contents";
    default:
        return NULL;
    }
}

static const char *const contents_names[] = {"bool_contents", "int_contents",    "int64_contents",
                                             "uint_contents", "uint64_contents", "fp32_contents",
                                             "fp64_contents", "bytes_contents"};

/* Value count of the named field of c (0 for NULL). */
static size_t contents_count(const Inference__InferTensorContents *c, const char *field) {
    const size_t counts[] = {c->n_bool_contents, c->n_int_contents,    c->n_int64_contents,
                             c->n_uint_contents, c->n_uint64_contents, c->n_fp32_contents,
                             c->n_fp64_contents, c->n_bytes_contents};
    for (size_t i = 0; field && i < SL_ARRAY_LEN(contents_names); i++) {
        if (strcmp(field, contents_names[i]) == 0) return counts[i];
    }
    return 0;
}

/* The first non-empty field of c other than `except` (NULL when there is none). */
static const char *contents_other(const Inference__InferTensorContents *c, const char *except) {
    for (size_t i = 0; i < SL_ARRAY_LEN(contents_names); i++) {
        const char *f = contents_names[i];
        if ((!except || strcmp(f, except) != 0) && contents_count(c, f) > 0) return f;
    }
    return NULL;
}

/* Narrows int_contents / uint_contents into 1- or 2-byte elements, range-checked. */
static sl_infer_code_t narrow(sl_infer_request_t *req, sl_infer_input_t *in, const void *src,
                              bool is_signed, size_t n, sl_infer_error_t *err) {
    size_t size = sluice_dtype_size(in->dtype);
    int64_t lo = 0, hi = 0;
    bool known = sl_dtype_int_range(in->dtype, &lo, &hi);
    SL_ASSERT(known && size <= 2); /* only INT8, INT16, UINT8 and UINT16 are narrowed */
    uint8_t *dst = sl_infer_request_alloc(req, n * size);
    for (size_t i = 0; i < n; i++) {
        int64_t v =
            is_signed ? (int64_t)((const int32_t *)src)[i] : (int64_t)((const uint32_t *)src)[i];
        if (v < lo || v > hi) {
            return sl_infer_error_set(
                err, SL_INFER_INVALID,
                "input '%s': contents.%s[%zu] = %" PRId64 " is out of range for %s", in->name,
                is_signed ? "int_contents" : "uint_contents", i, v, sl_dtype_to_name(in->dtype));
        }
        if (size == 1) {
            dst[i] = (uint8_t)v;
        } else {
            uint16_t u = (uint16_t)v;
            memcpy(dst + 2 * i, &u, 2);
        }
    }
    in->data = dst;
    in->byte_size = n * size;
    return SL_INFER_OK;
}

/* BYTES elements to the 4-byte-length-prefix encoding in the request's arena. */
static sl_infer_code_t encode_bytes(sl_infer_request_t *req, sl_infer_input_t *in,
                                    const ProtobufCBinaryData *v, size_t n, sl_infer_error_t *err) {
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++) {
        if (v[i].len > UINT32_MAX) {
            return sl_infer_error_set(err, SL_INFER_INVALID,
                                      "input '%s': bytes_contents[%zu] is over 4 GiB", in->name, i);
        }
        total += 4 + v[i].len;
    }
    uint8_t *dst = sl_infer_request_alloc(req, total);
    uint8_t *p = dst;
    for (size_t i = 0; i < n; i++) {
        uint32_t l = (uint32_t)v[i].len;
        memcpy(p, &l, 4);
        if (l) memcpy(p + 4, v[i].data, l);
        p += 4 + l;
    }
    in->data = dst;
    in->byte_size = total;
    return SL_INFER_OK;
}

/* Typed contents of one input. Types whose protobuf representation equals the tensor's
 * (INT32, INT64, UINT32, UINT64, FP32, FP64) are used in place: the unpacked message lives
 * until the request completes. */
static sl_infer_code_t decode_contents(sl_infer_request_t *req, sl_infer_input_t *in,
                                       const Inference__InferTensorContents *c, int64_t numel,
                                       sl_infer_error_t *err) {
    const char *field = contents_field(in->dtype);
    const char *dt = sl_dtype_to_name(in->dtype);
    if (!field) {
        return sl_infer_error_set(err, SL_INFER_INVALID,
                                  "input '%s': %s data can only be sent in raw_input_contents",
                                  in->name, dt);
    }
    const char *other = contents_other(c, field);
    if (other) {
        return sl_infer_error_set(err, SL_INFER_INVALID,
                                  "input '%s': datatype %s takes contents.%s, got contents.%s",
                                  in->name, dt, field, other);
    }
    size_t n = contents_count(c, field);
    if ((uint64_t)numel != n) {
        char shape[96];
        return sl_infer_error_set(err, SL_INFER_INVALID,
                                  "input '%s': contents.%s has %zu values, shape %s needs %" PRId64,
                                  in->name, field, n,
                                  fmt_shape(shape, sizeof shape, in->dims, in->ndim), numel);
    }
    size_t size = sluice_dtype_size(in->dtype);
    switch (in->dtype) {
    case SLUICE_DT_BOOL: {
        uint8_t *dst = sl_infer_request_alloc(req, n);
        for (size_t i = 0; i < n; i++)
            dst[i] = c->bool_contents[i] ? 1 : 0;
        in->data = dst;
        in->byte_size = n;
        return SL_INFER_OK;
    }
    case SLUICE_DT_INT8:
    case SLUICE_DT_INT16:
        return narrow(req, in, c->int_contents, true, n, err);
    case SLUICE_DT_UINT8:
    case SLUICE_DT_UINT16:
        return narrow(req, in, c->uint_contents, false, n, err);
    case SLUICE_DT_INT32:
        in->data = c->int_contents;
        break;
    case SLUICE_DT_INT64:
        in->data = c->int64_contents;
        break;
    case SLUICE_DT_UINT32:
        in->data = c->uint_contents;
        break;
    case SLUICE_DT_UINT64:
        in->data = c->uint64_contents;
        break;
    case SLUICE_DT_FP32:
        in->data = c->fp32_contents;
        break;
    case SLUICE_DT_FP64:
        in->data = c->fp64_contents;
        break;
    case SLUICE_DT_BYTES:
        return encode_bytes(req, in, c->bytes_contents, n, err);
    default:
        SL_ASSERT(!"datatype without a contents field");
    }
    in->byte_size = n * size;
    return SL_INFER_OK;
}

static sl_infer_code_t parse_input(sl_infer_request_t *req, size_t idx,
                                   const Inference__ModelInferRequest__InferInputTensor *t,
                                   const ProtobufCBinaryData *raw, sl_infer_error_t *err) {
    if (!t->name[0]) {
        return sl_infer_error_set(err, SL_INFER_INVALID, "inputs[%zu]: name is required", idx);
    }
    sl_infer_input_t *in = sl_infer_request_add_input(req);
    in->name = sl_infer_request_strndup(req, t->name, strlen(t->name));
    in->dtype = sl_dtype_from_name(t->datatype, strlen(t->datatype));
    if (in->dtype == SLUICE_DT_INVALID) {
        return sl_infer_error_set(err, SL_INFER_INVALID, "input '%s': unknown datatype '%.32s'",
                                  in->name, t->datatype);
    }
    if (t->n_shape > SLUICE_MAX_DIMS) {
        return sl_infer_error_set(err, SL_INFER_INVALID,
                                  "input '%s': shape has %zu dimensions, at most %d are allowed",
                                  in->name, t->n_shape, SLUICE_MAX_DIMS);
    }
    for (size_t d = 0; d < t->n_shape; d++) {
        if (t->shape[d] < 0) {
            return sl_infer_error_set(err, SL_INFER_INVALID,
                                      "input '%s': shape[%zu] is %" PRId64 ", must be >= 0",
                                      in->name, d, t->shape[d]);
        }
        in->dims[d] = t->shape[d];
    }
    in->ndim = (uint32_t)t->n_shape;
    int64_t numel = sl_dims_numel(in->dims, in->ndim);
    if (numel < 0) {
        return sl_infer_error_set(err, SL_INFER_INVALID, "input '%s': shape has too many elements",
                                  in->name);
    }

    const Inference__InferTensorContents *c = t->contents;
    if (raw) {
        const char *other = c ? contents_other(c, NULL) : NULL;
        if (other) {
            return sl_infer_error_set(err, SL_INFER_INVALID,
                                      "input '%s': contents.%s must be empty when "
                                      "raw_input_contents is used",
                                      in->name, other);
        }
        size_t size = sluice_dtype_size(in->dtype);
        uint64_t want = 0;
        if (size && __builtin_mul_overflow((uint64_t)numel, size, &want)) {
            return sl_infer_error_set(err, SL_INFER_INVALID,
                                      "input '%s': shape has too many elements", in->name);
        }
        if (size && want != raw->len) {
            char shape[96];
            return sl_infer_error_set(err, SL_INFER_INVALID,
                                      "input '%s': raw_input_contents[%zu] has %zu bytes, %s %s "
                                      "needs %" PRIu64,
                                      in->name, idx, raw->len, sl_dtype_to_name(in->dtype),
                                      fmt_shape(shape, sizeof shape, in->dims, in->ndim), want);
        }
        /* BYTES framing is checked by sl_batch_validate. */
        in->data = raw->data;
        in->byte_size = raw->len;
        return SL_INFER_OK;
    }
    if (c && contents_other(c, NULL)) return decode_contents(req, in, c, numel, err);
    if (numel == 0) return SL_INFER_OK; /* an empty tensor needs no data */
    const char *field = contents_field(in->dtype);
    return sl_infer_error_set(err, SL_INFER_INVALID, "input '%s': no data: set %s%s%s", in->name,
                              field ? "contents." : "", field ? field : "",
                              field ? " or raw_input_contents" : "raw_input_contents");
}

/* Triton's scheduling parameters: "priority" and "timeout" (microseconds), int64 or uint64. */
static sl_infer_code_t parse_param(sl_infer_request_t *req,
                                   const Inference__ModelInferRequest__ParametersEntry *p,
                                   sl_infer_error_t *err) {
    const char *key = p->key ? p->key : "";
    bool prio = strcmp(key, "priority") == 0;
    if (!prio && strcmp(key, "timeout") != 0) return SL_INFER_OK; /* others are ignored */
    const Inference__InferParameter *v = p->value;
    uint64_t u;
    if (v && v->parameter_choice_case == INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_INT64_PARAM &&
        v->int64_param >= 0) {
        u = (uint64_t)v->int64_param;
    } else if (v && v->parameter_choice_case ==
                        INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_UINT64_PARAM) {
        u = v->uint64_param;
    } else {
        return sl_infer_error_set(err, SL_INFER_INVALID,
                                  "parameter '%s': expected a non-negative int64_param or "
                                  "uint64_param",
                                  key);
    }
    if (prio) {
        if (u > UINT32_MAX) {
            return sl_infer_error_set(err, SL_INFER_INVALID,
                                      "parameter 'priority': %" PRIu64 " is out of range", u);
        }
        req->priority = (uint32_t)u;
    } else {
        req->timeout_us = u;
    }
    return SL_INFER_OK;
}

static sl_infer_code_t build_request(sl_infer_request_t *req, const Inference__ModelInferRequest *m,
                                     sl_infer_error_t *err) {
    if (!m->model_name[0]) {
        return sl_infer_error_set(err, SL_INFER_INVALID, "model_name is required");
    }
    req->model_name = sl_infer_request_strndup(req, m->model_name, strlen(m->model_name));
    if (m->model_version[0]) {
        req->model_version =
            sl_infer_request_strndup(req, m->model_version, strlen(m->model_version));
    }
    if (m->id[0]) req->id = sl_infer_request_strndup(req, m->id, strlen(m->id));
    for (size_t i = 0; i < m->n_parameters; i++) {
        if (parse_param(req, m->parameters[i], err) != SL_INFER_OK) return err->code;
    }
    if (m->n_raw_input_contents && m->n_raw_input_contents != m->n_inputs) {
        return sl_infer_error_set(err, SL_INFER_INVALID,
                                  "raw_input_contents has %zu entries, the request has %zu inputs",
                                  m->n_raw_input_contents, m->n_inputs);
    }
    for (size_t i = 0; i < m->n_inputs; i++) {
        const ProtobufCBinaryData *raw = m->n_raw_input_contents ? &m->raw_input_contents[i] : NULL;
        if (parse_input(req, i, m->inputs[i], raw, err) != SL_INFER_OK) return err->code;
    }
    for (size_t i = 0; i < m->n_outputs; i++) {
        const Inference__ModelInferRequest__InferRequestedOutputTensor *o = m->outputs[i];
        if (!o->name[0]) {
            return sl_infer_error_set(err, SL_INFER_INVALID, "outputs[%zu]: name is required", i);
        }
        for (size_t k = 0; k < o->n_parameters; k++) {
            if (o->parameters[k]->key && strcmp(o->parameters[k]->key, "classification") == 0) {
                return sl_infer_error_set(err, SL_INFER_INVALID,
                                          "output '%.64s': parameter 'classification' is not "
                                          "supported",
                                          o->name);
            }
        }
        sl_infer_output_req_t *out = sl_infer_request_add_output(req);
        out->name = sl_infer_request_strndup(req, o->name, strlen(o->name));
    }
    return SL_INFER_OK;
}

/* ---- ModelInfer: response ---- */

/* An inference in flight (in the request's arena): the call to answer and the unpacked request,
 * which raw_input_contents and in-place typed contents point into. */
typedef struct infer_call {
    sl_grpc_call_t *call;
    Inference__ModelInferRequest *msg;
} infer_call_t;

/* Every output as raw_output_contents (what Triton returns): the response's data is packed in
 * place, with no copy before protobuf-c's. */
static void reply_infer(sl_grpc_call_t *call, const sl_infer_request_t *req,
                        const sl_infer_response_t *resp) {
    size_t n = resp->n_outputs;
    SL_ASSERT(n <= SL_MODEL_MAX_TENSORS);
    Inference__ModelInferResponse__InferOutputTensor outs[SL_MODEL_MAX_TENSORS];
    Inference__ModelInferResponse__InferOutputTensor *outp[SL_MODEL_MAX_TENSORS];
    ProtobufCBinaryData raw[SL_MODEL_MAX_TENSORS];
    for (size_t i = 0; i < n; i++) {
        const sl_infer_output_t *o = &resp->outputs[i];
        Inference__ModelInferResponse__InferOutputTensor init =
            INFERENCE__MODEL_INFER_RESPONSE__INFER_OUTPUT_TENSOR__INIT;
        outs[i] = init;
        outs[i].name = (char *)o->name;
        outs[i].datatype = (char *)sl_dtype_to_name(o->dtype);
        outs[i].n_shape = o->ndim;
        outs[i].shape = (int64_t *)o->dims;
        outp[i] = &outs[i];
        raw[i].len = o->byte_size;
        raw[i].data = o->data;
    }
    Inference__ModelInferResponse r = INFERENCE__MODEL_INFER_RESPONSE__INIT;
    r.model_name = (char *)resp->model_name;
    r.model_version = (char *)resp->model_version;
    r.id = (char *)(req->id ? req->id : "");
    r.n_outputs = n;
    r.outputs = outp;
    r.n_raw_output_contents = n;
    r.raw_output_contents = raw;
    sl_oip_grpc__reply_msg(call, &r.base);
}

/* Runs on the call's loop; answers even when the call was cancelled (that releases it). */
static void infer_done(sl_infer_request_t *req, sl_infer_response_t *resp,
                       const sl_infer_error_t *err, void *arg) {
    infer_call_t *ic = arg;
    sl_grpc_call_t *call = ic->call;
    Inference__ModelInferRequest *msg = ic->msg;
    if (resp) {
        reply_infer(call, req, resp);
    } else {
        sl_oip_grpc__fail_infer(call, err);
    }
    sl_infer_response_free(resp);
    sl_infer_request_free(req);
    inference__model_infer_request__free_unpacked(msg, NULL);
}

void sl_oip_grpc__model_infer(sl_grpc_call_t *call, const uint8_t *msg, size_t len, void *ctx) {
    sl_loop_t *loop = sl_loop_current();
    if (!loop) { /* handlers run on I/O loops; without one the answer could not come back */
        SL_ERROR(LOG_C, "ModelInfer called outside an I/O loop");
        sl_grpc_fail(call, SL_GRPC_INTERNAL, "internal error");
        return;
    }
    Inference__ModelInferRequest *m =
        sl_oip_grpc__unpack(call, &inference__model_infer_request__descriptor, msg, len);
    if (!m) return;
    sl_infer_request_t *req = sl_infer_request_new(loop, infer_done, NULL);
    infer_call_t *ic = sl_infer_request_alloc(req, sizeof *ic);
    ic->call = call;
    ic->msg = m;
    req->done_arg = ic;
    sl_infer_error_t err;
    if (build_request(req, m, &err) != SL_INFER_OK) {
        sl_oip_grpc__fail_infer(call, &err);
        sl_infer_request_free(req);
        inference__model_infer_request__free_unpacked(m, NULL);
        return;
    }
    sl_mm_infer(ctx, req);
}
