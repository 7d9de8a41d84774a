/* The OIP gRPC codec (src/oip): ModelInferRequest and ModelInferResponse to and from
 * sl_infer_request_t / sl_infer_response_t. Requests are decoded with raw or typed tensor
 * contents; everything is encoded as raw contents, as Triton does. */
#include "oip/oip_pb.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Tensor bytes are little-endian on the wire and in memory; typed contents are copied as is. */
_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "oip_pb.c assumes a little-endian host");

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
                                  sl_dims_str(in->dims, in->ndim, shape, sizeof shape), numel);
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
                                      sl_dims_str(in->dims, in->ndim, shape, sizeof shape), want);
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

sl_infer_code_t sl_oip_pb_decode_request(const Inference__ModelInferRequest *m,
                                         sl_infer_request_t *req, sl_infer_error_t *err) {
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

/* ---- ModelInferResponse ---- */

/* Appends m packed to out. */
static void pack(const ProtobufCMessage *m, sl_buf_t *out) {
    size_t n = protobuf_c_message_get_packed_size(m);
    sl_buf_reserve(out, n);
    out->len += protobuf_c_message_pack(m, (uint8_t *)out->data + out->len);
    out->data[out->len] = '\0'; /* sl_buf_t's invariant */
}

/* Every output as raw_output_contents (what Triton returns): the response's data is packed in
 * place, with no copy before protobuf-c's. */
void sl_oip_pb_encode_response(const sl_infer_request_t *req, const sl_infer_response_t *resp,
                               sl_buf_t *out) {
    size_t n = resp->n_outputs;
    SL_ASSERT(n <= SL_OIP_MAX_TENSORS);
    Inference__ModelInferResponse__InferOutputTensor outs[SL_OIP_MAX_TENSORS];
    Inference__ModelInferResponse__InferOutputTensor *outp[SL_OIP_MAX_TENSORS];
    ProtobufCBinaryData raw[SL_OIP_MAX_TENSORS];
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
    r.id = (char *)(req && req->id ? req->id : "");
    r.n_outputs = n;
    r.outputs = outp;
    r.n_raw_output_contents = n;
    r.raw_output_contents = raw;
    pack(&r.base, out);
}

/* ---- ModelInferRequest (the gateway's direction) ---- */

/* A scheduling parameter as Triton's clients send it: int64_param, or uint64_param for values
 * an int64 cannot hold. */
static void set_u64_param(Inference__InferParameter *v, uint64_t u) {
    if (u <= INT64_MAX) {
        v->parameter_choice_case = INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_INT64_PARAM;
        v->int64_param = (int64_t)u;
    } else {
        v->parameter_choice_case = INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_UINT64_PARAM;
        v->uint64_param = u;
    }
}

void sl_oip_pb_encode_request(const sl_infer_request_t *req, sl_buf_t *out) {
    SL_ASSERT(req->model_name);
    size_t ni = req->n_inputs, no = req->n_outputs;
    /* One block for the message's arrays; every string and tensor is borrowed from req. */
    Inference__ModelInferRequest__InferInputTensor *ins = sl_calloc(ni ? ni : 1, sizeof *ins);
    Inference__ModelInferRequest__InferInputTensor **inp = sl_calloc(ni ? ni : 1, sizeof *inp);
    ProtobufCBinaryData *raw = sl_calloc(ni ? ni : 1, sizeof *raw);
    Inference__ModelInferRequest__InferRequestedOutputTensor *outs =
        sl_calloc(no ? no : 1, sizeof *outs);
    Inference__ModelInferRequest__InferRequestedOutputTensor **outp =
        sl_calloc(no ? no : 1, sizeof *outp);
    for (size_t i = 0; i < ni; i++) {
        const sl_infer_input_t *in = &req->inputs[i];
        Inference__ModelInferRequest__InferInputTensor init =
            INFERENCE__MODEL_INFER_REQUEST__INFER_INPUT_TENSOR__INIT;
        ins[i] = init;
        ins[i].name = (char *)in->name;
        ins[i].datatype = (char *)sl_dtype_to_name(in->dtype);
        ins[i].n_shape = in->ndim;
        ins[i].shape = (int64_t *)in->dims;
        inp[i] = &ins[i];
        raw[i].len = in->byte_size;
        raw[i].data = (uint8_t *)in->data;
    }
    for (size_t i = 0; i < no; i++) {
        Inference__ModelInferRequest__InferRequestedOutputTensor init =
            INFERENCE__MODEL_INFER_REQUEST__INFER_REQUESTED_OUTPUT_TENSOR__INIT;
        outs[i] = init;
        outs[i].name = (char *)req->outputs[i].name;
        outp[i] = &outs[i];
    }
    Inference__InferParameter values[2] = {INFERENCE__INFER_PARAMETER__INIT,
                                           INFERENCE__INFER_PARAMETER__INIT};
    Inference__ModelInferRequest__ParametersEntry entries[2] = {
        INFERENCE__MODEL_INFER_REQUEST__PARAMETERS_ENTRY__INIT,
        INFERENCE__MODEL_INFER_REQUEST__PARAMETERS_ENTRY__INIT};
    Inference__ModelInferRequest__ParametersEntry *params[2];
    size_t np = 0;
    if (req->priority) {
        set_u64_param(&values[np], req->priority);
        entries[np].key = "priority";
        entries[np].value = &values[np];
        params[np] = &entries[np];
        np++;
    }
    if (req->timeout_us) {
        set_u64_param(&values[np], req->timeout_us);
        entries[np].key = "timeout";
        entries[np].value = &values[np];
        params[np] = &entries[np];
        np++;
    }
    Inference__ModelInferRequest m = INFERENCE__MODEL_INFER_REQUEST__INIT;
    m.model_name = (char *)req->model_name;
    m.model_version = (char *)(req->model_version ? req->model_version : "");
    m.id = (char *)(req->id ? req->id : "");
    m.n_parameters = np;
    m.parameters = params;
    m.n_inputs = ni;
    m.inputs = inp;
    m.n_outputs = no;
    m.outputs = outp;
    m.n_raw_input_contents = ni;
    m.raw_input_contents = raw;
    pack(&m.base, out);
    free(ins);
    free(inp);
    free(raw);
    free(outs);
    free(outp);
}

/* ---- ModelInferResponse (the gateway's direction) ---- */

/* Checks output i of m: a known datatype, a shape the response can hold, and raw contents of
 * the size the shape needs. */
static sl_infer_code_t check_output(const Inference__ModelInferResponse *m, size_t i,
                                    sl_infer_error_t *err) {
    const Inference__ModelInferResponse__InferOutputTensor *t = m->outputs[i];
    if (!t->name[0]) {
        return sl_infer_error_set(err, SL_INFER_INVALID, "outputs[%zu]: name is required", i);
    }
    sluice_dtype_t dt = sl_dtype_from_name(t->datatype, strlen(t->datatype));
    if (dt == SLUICE_DT_INVALID) {
        return sl_infer_error_set(err, SL_INFER_INVALID, "output '%.64s': unknown datatype '%.32s'",
                                  t->name, t->datatype);
    }
    if (t->n_shape > SLUICE_MAX_DIMS) {
        return sl_infer_error_set(
            err, SL_INFER_INVALID,
            "output '%.64s': shape has %zu dimensions, at most %d are allowed", t->name, t->n_shape,
            SLUICE_MAX_DIMS);
    }
    int64_t numel = sl_dims_numel(t->shape, (uint32_t)t->n_shape);
    if (numel < 0) {
        return sl_infer_error_set(err, SL_INFER_INVALID,
                                  "output '%.64s': shape has a negative dimension or too many "
                                  "elements",
                                  t->name);
    }
    size_t size = sluice_dtype_size(dt);
    uint64_t want = 0, got = m->raw_output_contents[i].len;
    if (size && (__builtin_mul_overflow((uint64_t)numel, size, &want) || want != got)) {
        char shape[96];
        return sl_infer_error_set(
            err, SL_INFER_INVALID,
            "output '%.64s': raw_output_contents[%zu] has %" PRIu64 " bytes, %s %s needs %" PRIu64,
            t->name, i, got, sl_dtype_to_name(dt),
            sl_dims_str(t->shape, (uint32_t)t->n_shape, shape, sizeof shape), want);
    }
    return SL_INFER_OK;
}

sl_infer_code_t sl_oip_pb_decode_response(const Inference__ModelInferResponse *m,
                                          sl_infer_response_t **out, sl_infer_error_t *err) {
    *out = NULL;
    size_t n = m->n_outputs;
    if (n > SL_OIP_MAX_TENSORS) {
        return sl_infer_error_set(err, SL_INFER_INVALID, "%zu outputs, at most %d are allowed", n,
                                  SL_OIP_MAX_TENSORS);
    }
    if (m->n_raw_output_contents != n) {
        return sl_infer_error_set(err, SL_INFER_INVALID,
                                  "raw_output_contents has %zu entries, the response has %zu "
                                  "outputs",
                                  m->n_raw_output_contents, n);
    }
    const char *names[SL_OIP_MAX_TENSORS] = {NULL};
    uint64_t bytes = 0;
    for (size_t i = 0; i < n; i++) {
        if (check_output(m, i, err) != SL_INFER_OK) return err->code;
        names[i] = m->outputs[i]->name;
        bytes += (m->raw_output_contents[i].len + 15) & ~(uint64_t)15;
    }
    sl_infer_response_t *resp =
        sl_infer_response_new(m->model_name, m->model_version, n, names, bytes);
    uint8_t *d = sl_infer_response_data(resp);
    for (size_t i = 0; i < n; i++) {
        const Inference__ModelInferResponse__InferOutputTensor *t = m->outputs[i];
        const ProtobufCBinaryData *raw = &m->raw_output_contents[i];
        sl_infer_output_t *o = &resp->outputs[i];
        o->dtype = sl_dtype_from_name(t->datatype, strlen(t->datatype));
        o->ndim = (uint32_t)t->n_shape;
        if (t->n_shape) memcpy(o->dims, t->shape, t->n_shape * sizeof *t->shape);
        o->data = d;
        o->byte_size = raw->len;
        if (raw->len) memcpy(d, raw->data, raw->len);
        d += (raw->len + 15) & ~(uint64_t)15;
    }
    *out = resp;
    return SL_INFER_OK;
}
