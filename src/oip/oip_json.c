/* The Open Inference Protocol's REST request decoder: a JSON inference request (tensors as flat or
 * nested arrays, or as binary sections after the JSON: Triton's binary tensor extension) into an
 * sl_infer_request_t. oip_rest.c calls it on the I/O thread; the fuzzers call it on arbitrary
 * bytes. The response writer is oip_json_write.c. */
#include "oip/oip_json.h"

#include "core/json.h"

#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the OIP codec copies tensors in host order, which must be little-endian"
#endif

/* Limits beyond those of the JSON parser and the HTTP body: tensors per request, name and id
 * lengths, and elements per tensor (so shape arithmetic never overflows). */
#define OIP_MAX_TENSORS  SL_OIP_MAX_TENSORS
#define OIP_MAX_NAME     256
#define OIP_MAX_ID       1024
#define OIP_MAX_ELEMENTS (INT64_C(1) << 32)
/* Integers above this are not exact in a double, which is all cJSON keeps of a number. */
#define OIP_EXACT_LIMIT 9007199254740992.0 /* 2^53 */

/* Every parse error is the client's: 400 with a message naming the field. */
#define invalid(err, ...) sl_infer_error_set((err), SL_INFER_INVALID, __VA_ARGS__)

/* ---- decoding one input's JSON data ---- */

typedef struct decoder {
    const sl_infer_input_t *in;
    uint8_t *out;    /* fixed-size types: numel * size bytes; BYTES: prefixes + strings */
    size_t index;    /* flat index of the next element */
    size_t nbytes;   /* BYTES: bytes written (or counted, when out is NULL) */
    bool shape_only; /* a first pass over nested data: check its structure, decode nothing */
    sl_infer_error_t *err;
} decoder_t;

static sl_infer_code_t int_element(decoder_t *d, const cJSON *v) {
    const char *dt = sl_dtype_to_name(d->in->dtype);
    if (!cJSON_IsNumber(v)) {
        return invalid(d->err, "input '%s': element %zu must be an integer (%s)", d->in->name,
                       d->index, dt);
    }
    double x = v->valuedouble;
    if (!isfinite(x) || x != floor(x)) {
        return invalid(d->err, "input '%s': element %zu (%.17g) must be an integer (%s)",
                       d->in->name, d->index, x, dt);
    }
    if (d->in->dtype == SLUICE_DT_INT64 || d->in->dtype == SLUICE_DT_UINT64) {
        if (d->in->dtype == SLUICE_DT_UINT64 && x < 0) {
            return invalid(d->err,
                           "input '%s': element %zu (%.17g) is out of range for UINT64 (0 to "
                           "18446744073709551615)",
                           d->in->name, d->index, x);
        }
        if (fabs(x) >= OIP_EXACT_LIMIT) {
            return invalid(d->err,
                           "input '%s': element %zu (%.17g) cannot be exact as a JSON number "
                           "(magnitude must be below 2^53); send %s data as binary",
                           d->in->name, d->index, x, dt);
        }
    } else {
        int64_t lo, hi;
        bool known = sl_dtype_int_range(d->in->dtype, &lo, &hi);
        SL_ASSERT(known); /* element() sends only integer datatypes here */
        if (x < (double)lo || x > (double)hi) {
            return invalid(d->err,
                           "input '%s': element %zu (%.17g) is out of range for %s (%" PRId64
                           " to %" PRId64 ")",
                           d->in->name, d->index, x, dt, lo, hi);
        }
    }
    uint8_t *p = d->out + d->index * sluice_dtype_size(d->in->dtype);
    switch (d->in->dtype) {
    case SLUICE_DT_INT8:
        *(int8_t *)p = (int8_t)x;
        break;
    case SLUICE_DT_UINT8:
        *p = (uint8_t)x;
        break;
    case SLUICE_DT_INT16: {
        int16_t t = (int16_t)x;
        memcpy(p, &t, sizeof t);
        break;
    }
    case SLUICE_DT_UINT16: {
        uint16_t t = (uint16_t)x;
        memcpy(p, &t, sizeof t);
        break;
    }
    case SLUICE_DT_INT32: {
        int32_t t = (int32_t)x;
        memcpy(p, &t, sizeof t);
        break;
    }
    case SLUICE_DT_UINT32: {
        uint32_t t = (uint32_t)x;
        memcpy(p, &t, sizeof t);
        break;
    }
    case SLUICE_DT_INT64: {
        int64_t t = (int64_t)x;
        memcpy(p, &t, sizeof t);
        break;
    }
    default: {
        uint64_t t = (uint64_t)x;
        memcpy(p, &t, sizeof t);
        break;
    }
    }
    return SL_INFER_OK;
}

static sl_infer_code_t element(decoder_t *d, const cJSON *v) {
    const sl_infer_input_t *in = d->in;
    if (d->shape_only) return SL_INFER_OK;
    switch (in->dtype) {
    case SLUICE_DT_BOOL:
        if (!cJSON_IsBool(v)) {
            return invalid(d->err, "input '%s': element %zu must be true or false (BOOL)", in->name,
                           d->index);
        }
        d->out[d->index] = cJSON_IsTrue(v) ? 1 : 0;
        break;
    case SLUICE_DT_FP32:
    case SLUICE_DT_FP64: {
        const char *dt = sl_dtype_to_name(in->dtype);
        if (!cJSON_IsNumber(v)) {
            return invalid(d->err, "input '%s': element %zu must be a number (%s)", in->name,
                           d->index, dt);
        }
        double x = v->valuedouble;
        if (!isfinite(x) || (in->dtype == SLUICE_DT_FP32 && fabs(x) > FLT_MAX)) {
            return invalid(d->err, "input '%s': element %zu is out of range for %s", in->name,
                           d->index, dt);
        }
        if (in->dtype == SLUICE_DT_FP32) {
            float f = (float)x;
            memcpy(d->out + d->index * 4, &f, 4);
        } else {
            memcpy(d->out + d->index * 8, &x, 8);
        }
        break;
    }
    case SLUICE_DT_BYTES: {
        if (!cJSON_IsString(v) || !v->valuestring) {
            return invalid(d->err, "input '%s': element %zu must be a string (BYTES)", in->name,
                           d->index);
        }
        size_t n = strlen(v->valuestring);
        if (n > UINT32_MAX) {
            return invalid(d->err, "input '%s': element %zu is too long", in->name, d->index);
        }
        if (d->out) {
            uint32_t len32 = (uint32_t)n;
            memcpy(d->out + d->nbytes, &len32, 4);
            memcpy(d->out + d->nbytes + 4, v->valuestring, n);
        }
        d->nbytes += 4 + n;
        break;
    }
    default: {
        sl_infer_code_t rc = int_element(d, v);
        if (rc != SL_INFER_OK) return rc;
        break;
    }
    }
    d->index++;
    return SL_INFER_OK;
}

/* Visits the leaves of nested data in row-major order, checking that level l has exactly
 * dims[l] entries. */
static sl_infer_code_t walk_nested(decoder_t *d, const cJSON *node, uint32_t level) {
    const sl_infer_input_t *in = d->in;
    if (level == in->ndim) {
        if (cJSON_IsArray(node)) {
            char s[96];
            return invalid(d->err, "input '%s': data is nested deeper than shape %s", in->name,
                           sl_dims_str(in->dims, in->ndim, s, sizeof s));
        }
        return element(d, node);
    }
    char s[96];
    if (!cJSON_IsArray(node)) {
        return invalid(d->err,
                       "input '%s': nested data does not match shape %s (a value where "
                       "dimension %u needs an array of %" PRId64 ")",
                       in->name, sl_dims_str(in->dims, in->ndim, s, sizeof s), level,
                       in->dims[level]);
    }
    int64_t count = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, node) {
        count++;
    }
    if (count != in->dims[level]) {
        return invalid(d->err,
                       "input '%s': nested data does not match shape %s (dimension %u has %" PRId64
                       " entries, expected %" PRId64 ")",
                       in->name, sl_dims_str(in->dims, in->ndim, s, sizeof s), level, count,
                       in->dims[level]);
    }
    cJSON_ArrayForEach(c, node) {
        sl_infer_code_t rc = walk_nested(d, c, level + 1);
        if (rc != SL_INFER_OK) return rc;
    }
    return SL_INFER_OK;
}

static sl_infer_code_t walk(decoder_t *d, const cJSON *data, bool nested) {
    d->index = 0;
    d->nbytes = 0;
    if (nested) return walk_nested(d, data, 0);
    const cJSON *c;
    cJSON_ArrayForEach(c, data) {
        sl_infer_code_t rc = element(d, c);
        if (rc != SL_INFER_OK) return rc;
    }
    return SL_INFER_OK;
}

static sl_infer_code_t decode_json_data(sl_infer_request_t *req, sl_infer_input_t *in,
                                        const cJSON *data, int64_t numel, sl_infer_error_t *err) {
    char s[96];
    if (!cJSON_IsArray(data)) {
        return invalid(err, "input '%s': field 'data' must be an array", in->name);
    }
    if (in->dtype == SLUICE_DT_FP16 || in->dtype == SLUICE_DT_BF16) {
        return invalid(err,
                       "input '%s': %s data cannot be sent as JSON numbers; send it as binary "
                       "data (parameters.binary_data_size)",
                       in->name, sl_dtype_to_name(in->dtype));
    }
    /* Nested when the first entry is an array; then every level must match the shape. A flat
     * array must hold exactly numel values and no arrays. */
    bool nested = data->child && cJSON_IsArray(data->child) && in->ndim > 0;
    if (nested) {
        /* The structure first, then the allocation the shape implies: a small body must never
         * make the server allocate for a huge declared shape. */
        decoder_t check = {.in = in, .err = err, .shape_only = true};
        sl_infer_code_t rc = walk(&check, data, true);
        if (rc != SL_INFER_OK) return rc;
    } else {
        int64_t count = 0;
        const cJSON *c;
        cJSON_ArrayForEach(c, data) {
            if (cJSON_IsArray(c)) {
                return invalid(err, "input '%s': data mixes arrays and values", in->name);
            }
            count++;
        }
        if (count != numel) {
            return invalid(err,
                           "input '%s': data has %" PRId64 " elements, shape %s needs %" PRId64,
                           in->name, count, sl_dims_str(in->dims, in->ndim, s, sizeof s), numel);
        }
    }
    decoder_t d = {.in = in, .err = err};
    size_t esize = sluice_dtype_size(in->dtype);
    if (in->dtype == SLUICE_DT_BYTES) {
        /* First pass checks and sizes, second writes. */
        sl_infer_code_t rc = walk(&d, data, nested);
        if (rc != SL_INFER_OK) return rc;
        d.out = sl_infer_request_alloc(req, d.nbytes);
    } else {
        d.out = sl_infer_request_alloc(req, (size_t)numel * esize);
    }
    sl_infer_code_t rc = walk(&d, data, nested);
    if (rc != SL_INFER_OK) return rc;
    in->data = d.out;
    in->byte_size = esize ? (uint64_t)numel * esize : d.nbytes;
    return SL_INFER_OK;
}

/* Checks a binary BYTES tensor: length prefixes that tile the data exactly, numel of them. */
static sl_infer_code_t check_binary_bytes(const sl_infer_input_t *in, int64_t numel,
                                          sl_infer_error_t *err) {
    const uint8_t *p = in->data;
    uint64_t off = 0, count = 0;
    while (off < in->byte_size) {
        if (in->byte_size - off < 4) {
            return invalid(err,
                           "input '%s': binary BYTES data is malformed (element %" PRIu64
                           "'s 4-byte length is cut off)",
                           in->name, count);
        }
        uint32_t n;
        memcpy(&n, p + off, 4);
        off += 4;
        if (n > in->byte_size - off) {
            return invalid(err,
                           "input '%s': binary BYTES data is malformed (element %" PRIu64
                           " declares %" PRIu32 " bytes, %" PRIu64 " remain)",
                           in->name, count, n, in->byte_size - off);
        }
        off += n;
        count++;
    }
    if ((int64_t)count != numel) {
        char s[96];
        return invalid(err,
                       "input '%s': binary BYTES data holds %" PRIu64
                       " elements, shape %s needs %" PRId64,
                       in->name, count, sl_dims_str(in->dims, in->ndim, s, sizeof s), numel);
    }
    return SL_INFER_OK;
}

/* ---- the request ---- */

static sl_infer_code_t parse_shape(sl_infer_input_t *in, const cJSON *shape, int64_t *numel,
                                   sl_infer_error_t *err) {
    if (!shape) return invalid(err, "input '%s': missing field 'shape'", in->name);
    if (!cJSON_IsArray(shape)) {
        return invalid(err, "input '%s': field 'shape' must be an array of integers", in->name);
    }
    const cJSON *c;
    cJSON_ArrayForEach(c, shape) {
        if (in->ndim == SLUICE_MAX_DIMS) {
            return invalid(err, "input '%s': shape has more than %d dimensions", in->name,
                           SLUICE_MAX_DIMS);
        }
        double x = cJSON_IsNumber(c) ? c->valuedouble : -1;
        if (!(x >= 0) || x != floor(x) || x >= OIP_EXACT_LIMIT) {
            return invalid(err, "input '%s': shape must hold non-negative integers (dimension %u)",
                           in->name, in->ndim);
        }
        in->dims[in->ndim++] = (int64_t)x;
    }
    int64_t n = sl_dims_numel(in->dims, in->ndim);
    if (n < 0 || n > OIP_MAX_ELEMENTS) {
        char s[96];
        return invalid(err, "input '%s': shape %s has too many elements (at most %" PRId64 ")",
                       in->name, sl_dims_str(in->dims, in->ndim, s, sizeof s), OIP_MAX_ELEMENTS);
    }
    *numel = n;
    return SL_INFER_OK;
}

/* A name field: a non-empty string of at most OIP_MAX_NAME bytes, copied into the arena. */
static sl_infer_code_t get_name(sl_infer_request_t *req, const cJSON *obj, const char *what,
                                size_t index, const char **out, sl_infer_error_t *err) {
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(obj, "name");
    if (!n) return invalid(err, "%s %zu: missing field 'name'", what, index);
    if (!cJSON_IsString(n) || !n->valuestring || !n->valuestring[0]) {
        return invalid(err, "%s %zu: field 'name' must be a non-empty string", what, index);
    }
    size_t len = strlen(n->valuestring);
    if (len > OIP_MAX_NAME) {
        return invalid(err, "%s %zu: name is longer than %d bytes", what, index, OIP_MAX_NAME);
    }
    *out = sl_infer_request_strndup(req, n->valuestring, len);
    return SL_INFER_OK;
}

/* Binary inputs waiting for their slice of the binary section. */
typedef struct pending {
    size_t input; /* index into req->inputs (the array moves as inputs are added) */
    int64_t numel;
} pending_t;

static sl_infer_code_t parse_input(sl_infer_request_t *req, const cJSON *jin, size_t index,
                                   pending_t *pend, size_t *n_pend, sl_infer_error_t *err) {
    if (!cJSON_IsObject(jin)) return invalid(err, "input %zu must be an object", index);
    sl_infer_input_t *in = sl_infer_request_add_input(req);
    sl_infer_code_t rc = get_name(req, jin, "input", index, &in->name, err);
    if (rc != SL_INFER_OK) return rc;

    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(jin, "datatype");
    if (!dt) return invalid(err, "input '%s': missing field 'datatype'", in->name);
    if (!cJSON_IsString(dt) || !dt->valuestring) {
        return invalid(err, "input '%s': field 'datatype' must be a string", in->name);
    }
    in->dtype = sl_dtype_from_name(dt->valuestring, strlen(dt->valuestring));
    if (in->dtype == SLUICE_DT_INVALID) {
        return invalid(err, "input '%s': unknown datatype '%.32s'", in->name, dt->valuestring);
    }
    int64_t numel = 0;
    rc = parse_shape(in, cJSON_GetObjectItemCaseSensitive(jin, "shape"), &numel, err);
    if (rc != SL_INFER_OK) return rc;

    const cJSON *params = cJSON_GetObjectItemCaseSensitive(jin, "parameters");
    const cJSON *bsize = NULL;
    if (params) {
        if (!cJSON_IsObject(params)) {
            return invalid(err, "input '%s': field 'parameters' must be an object", in->name);
        }
        bsize = cJSON_GetObjectItemCaseSensitive(params, "binary_data_size");
    }
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(jin, "data");
    if (!bsize) {
        if (!data) {
            return invalid(err, "input '%s': missing field 'data' (or parameters.binary_data_size)",
                           in->name);
        }
        return decode_json_data(req, in, data, numel, err);
    }
    if (data) {
        return invalid(err, "input '%s': has both 'data' and parameters.binary_data_size",
                       in->name);
    }
    double x = cJSON_IsNumber(bsize) ? bsize->valuedouble : -1;
    if (!(x >= 0) || x != floor(x) || x >= OIP_EXACT_LIMIT) {
        return invalid(err,
                       "input '%s': parameters.binary_data_size must be a non-negative integer",
                       in->name);
    }
    in->byte_size = (uint64_t)x;
    size_t esize = sluice_dtype_size(in->dtype);
    if (esize && in->byte_size != (uint64_t)numel * esize) {
        char s[96];
        return invalid(err,
                       "input '%s': binary_data_size is %" PRIu64 " bytes, shape %s of %s needs "
                       "%" PRIu64,
                       in->name, in->byte_size, sl_dims_str(in->dims, in->ndim, s, sizeof s),
                       sl_dtype_to_name(in->dtype), (uint64_t)numel * esize);
    }
    pend[*n_pend].input = req->n_inputs - 1;
    pend[*n_pend].numel = numel;
    (*n_pend)++;
    return SL_INFER_OK;
}

static sl_infer_code_t parse_outputs(sl_infer_request_t *req, const cJSON *outs,
                                     sl_infer_error_t *err) {
    if (!cJSON_IsArray(outs)) return invalid(err, "field 'outputs' must be an array");
    size_t i = 0;
    const cJSON *jo;
    cJSON_ArrayForEach(jo, outs) {
        if (i == OIP_MAX_TENSORS) {
            return invalid(err, "too many outputs requested (at most %d)", OIP_MAX_TENSORS);
        }
        if (!cJSON_IsObject(jo)) return invalid(err, "output %zu must be an object", i);
        sl_infer_output_req_t *o = sl_infer_request_add_output(req);
        sl_infer_code_t rc = get_name(req, jo, "output", i, &o->name, err);
        if (rc != SL_INFER_OK) return rc;
        o->binary = req->binary_default;
        const cJSON *params = cJSON_GetObjectItemCaseSensitive(jo, "parameters");
        if (params) {
            if (!cJSON_IsObject(params)) {
                return invalid(err, "output '%s': field 'parameters' must be an object", o->name);
            }
            const cJSON *b = cJSON_GetObjectItemCaseSensitive(params, "binary_data");
            if (b) {
                if (!cJSON_IsBool(b)) {
                    return invalid(err, "output '%s': parameters.binary_data must be true or false",
                                   o->name);
                }
                o->binary = cJSON_IsTrue(b);
            }
        }
        i++;
    }
    return SL_INFER_OK;
}

/* The request-level parameters: binary_data_output and the schedule policy (priority, timeout
 * in microseconds). Others are ignored, as OIP allows. */
static sl_infer_code_t parse_params(sl_infer_request_t *req, const cJSON *params,
                                    sl_infer_error_t *err) {
    if (!cJSON_IsObject(params)) return invalid(err, "field 'parameters' must be an object");
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(params, "binary_data_output");
    if (b) {
        if (!cJSON_IsBool(b)) {
            return invalid(err, "parameters.binary_data_output must be true or false");
        }
        req->binary_default = cJSON_IsTrue(b);
    }
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(params, "priority");
    if (p) {
        double x = cJSON_IsNumber(p) ? p->valuedouble : -1;
        if (!(x >= 0) || x != floor(x) || x > UINT32_MAX) {
            return invalid(err, "parameters.priority must be a non-negative integer");
        }
        req->priority = (uint32_t)x;
    }
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(params, "timeout");
    if (t) {
        double x = cJSON_IsNumber(t) ? t->valuedouble : -1;
        if (!(x >= 0) || x != floor(x) || x >= OIP_EXACT_LIMIT) {
            return invalid(err, "parameters.timeout must be a non-negative integer (microseconds)");
        }
        req->timeout_us = (uint64_t)x;
    }
    return SL_INFER_OK;
}

static sl_infer_code_t parse_root(const cJSON *root, const uint8_t *bin, size_t bin_len,
                                  bool has_header, sl_infer_request_t *req, sl_infer_error_t *err) {
    if (!cJSON_IsObject(root)) return invalid(err, "the request must be a JSON object");
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(root, "id");
    if (id) {
        if (!cJSON_IsString(id) || !id->valuestring) {
            return invalid(err, "field 'id' must be a string");
        }
        size_t n = strlen(id->valuestring);
        if (n > OIP_MAX_ID) return invalid(err, "field 'id' is longer than %d bytes", OIP_MAX_ID);
        req->id = sl_infer_request_strndup(req, id->valuestring, n);
    }
    const cJSON *params = cJSON_GetObjectItemCaseSensitive(root, "parameters");
    if (params) {
        sl_infer_code_t rc = parse_params(req, params, err);
        if (rc != SL_INFER_OK) return rc;
    }

    const cJSON *inputs = cJSON_GetObjectItemCaseSensitive(root, "inputs");
    if (!inputs) return invalid(err, "missing field 'inputs'");
    if (!cJSON_IsArray(inputs)) return invalid(err, "field 'inputs' must be an array");
    pending_t pend[OIP_MAX_TENSORS];
    size_t n_pend = 0, i = 0;
    const cJSON *jin;
    cJSON_ArrayForEach(jin, inputs) {
        if (i == OIP_MAX_TENSORS)
            return invalid(err, "too many inputs (at most %d)", OIP_MAX_TENSORS);
        sl_infer_code_t rc = parse_input(req, jin, i, pend, &n_pend, err);
        if (rc != SL_INFER_OK) return rc;
        i++;
    }
    if (i == 0) return invalid(err, "field 'inputs' must not be empty");

    const cJSON *outs = cJSON_GetObjectItemCaseSensitive(root, "outputs");
    if (outs) {
        sl_infer_code_t rc = parse_outputs(req, outs, err);
        if (rc != SL_INFER_OK) return rc;
    }

    /* The binary section: the binary inputs' slices in input order, covering it exactly. */
    if (n_pend > 0 && !has_header) {
        return invalid(err,
                       "input '%s' has parameters.binary_data_size but the request has no "
                       "Inference-Header-Content-Length header",
                       req->inputs[pend[0].input].name);
    }
    uint64_t declared = 0;
    for (size_t k = 0; k < n_pend; k++)
        declared += req->inputs[pend[k].input].byte_size; /* each < 2^53 */
    if (declared != bin_len) {
        return invalid(err, "binary data is %zu bytes, inputs declare %" PRIu64, bin_len, declared);
    }
    size_t off = 0;
    for (size_t k = 0; k < n_pend; k++) {
        sl_infer_input_t *in = &req->inputs[pend[k].input];
        const uint8_t *p = bin + off;
        off += in->byte_size;
        size_t align = sluice_dtype_size(in->dtype);
        /* Tensors start at any offset of the body; copy the misaligned ones so that backends
         * can read them as their element type. */
        if (align > 1 && ((uintptr_t)p % align) != 0) {
            uint8_t *copy = sl_infer_request_alloc(req, in->byte_size);
            memcpy(copy, p, in->byte_size);
            p = copy;
        }
        in->data = p;
        if (in->dtype == SLUICE_DT_BYTES) {
            sl_infer_code_t rc = check_binary_bytes(in, pend[k].numel, err);
            if (rc != SL_INFER_OK) return rc;
        }
    }
    return SL_INFER_OK;
}

sl_infer_code_t sl_oip_json_parse_request(const uint8_t *body, size_t len, int64_t header_len,
                                          sl_infer_request_t *req, sl_infer_error_t *err) {
    size_t json_len = len;
    if (header_len != -1) {
        if (header_len < 0) {
            return invalid(err, "Inference-Header-Content-Length must be a non-negative integer");
        }
        if ((uint64_t)header_len > len) {
            return invalid(err,
                           "Inference-Header-Content-Length %" PRId64
                           " is larger than the body (%zu bytes)",
                           header_len, len);
        }
        json_len = (size_t)header_len;
    }
    cJSON *root = NULL;
    char jerr[160];
    if (sl_json_parse((const char *)body, json_len, &root, jerr, sizeof jerr) != 0) {
        return invalid(err, "%s", jerr); /* "invalid JSON: ... at byte N" */
    }
    sl_infer_code_t rc =
        parse_root(root, body + json_len, len - json_len, header_len != -1, req, err);
    cJSON_Delete(root);
    return rc;
}
