/* Shared by the OIP codec fuzzers (fuzz_oip_json, fuzz_oip_binary) and its unit test
 * (tests/unit/test_oip_json.c): a response that echoes a parsed request's inputs back as outputs,
 * and the fuzzers' parse-and-check of one input. Header-only, static inline. */
#ifndef SL_OIP_FUZZ_H
#define SL_OIP_FUZZ_H

#include "core/json.h"
#include "oip/oip_json.h"

#include <stdlib.h>
#include <string.h>

/* Builds a response (model "m", version "1.0.0") whose output i carries input i of req (dtype,
 * shape and a copy of its bytes) under the name names[i]. The caller frees it with
 * sl_infer_response_free. */
static inline sl_infer_response_t *oip_echo_response(const sl_infer_request_t *req,
                                                     const char *const *names) {
    uint64_t bytes = 0;
    for (size_t i = 0; i < req->n_inputs; i++)
        bytes += (req->inputs[i].byte_size + 15) & ~(uint64_t)15;
    sl_infer_response_t *resp = sl_infer_response_new("m", "1.0.0", req->n_inputs, names, bytes);
    uint8_t *d = sl_infer_response_data(resp);
    for (size_t i = 0; i < req->n_inputs; i++) {
        const sl_infer_input_t *in = &req->inputs[i];
        sl_infer_output_t *o = &resp->outputs[i];
        o->dtype = in->dtype;
        o->ndim = in->ndim;
        memcpy(o->dims, in->dims, sizeof o->dims);
        o->byte_size = in->byte_size;
        o->data = d;
        if (in->byte_size) memcpy(d, in->data, in->byte_size);
        d += (in->byte_size + 15) & ~(uint64_t)15;
    }
    return resp;
}

/* Checks a request the parser accepted (aborts on any inconsistency: every input named, its
 * bytes readable and matching its shape) and echoes its inputs back through the response writer,
 * whose JSON part must be valid JSON. */
static inline void oip_fuzz_check_and_echo(const sl_infer_request_t *req) {
    const char *names[64];
    uint64_t sum = 0;
    if (req->n_inputs == 0 || req->n_inputs > 64) abort();
    for (size_t i = 0; i < req->n_inputs; i++) {
        const sl_infer_input_t *in = &req->inputs[i];
        int64_t numel = sl_dims_numel(in->dims, in->ndim);
        size_t es = sluice_dtype_size(in->dtype);
        if (!in->name || numel < 0 || in->ndim > SLUICE_MAX_DIMS) abort();
        if (es && in->byte_size != (uint64_t)numel * es) abort();
        if (in->byte_size && !in->data) abort();
        const uint8_t *p = in->data;
        for (uint64_t k = 0; k < in->byte_size; k++)
            sum += p[k]; /* ASan: readable */
        names[i] = in->name;
    }
    (void)sum;
    sl_infer_response_t *resp = oip_echo_response(req, names);
    sl_buf_t out = SL_BUF_INIT;
    size_t header_len;
    sl_oip_json_write_response(req, resp, &out, &header_len);
    if (header_len > out.len) abort();
    /* cJSON itself, not sl_json_parse: BYTES outputs may hold NUL, written as \u0000, which is
     * valid JSON that our request parser refuses on purpose. */
    cJSON *root = cJSON_ParseWithLength(out.data, header_len);
    if (!root) abort();
    cJSON_Delete(root);
    sl_buf_free(&out);
    sl_infer_response_free(resp);
}

/* One fuzz input: parses a private copy of body (so that reads past its end are caught) with
 * header_len (-1: JSON only). An accepted request must pass oip_fuzz_check_and_echo and have its
 * header within the body; a refused one must be INVALID with a message. Aborts otherwise. */
static inline void oip_fuzz_parse(const uint8_t *body, size_t size, int64_t header_len) {
    uint8_t *copy = malloc(size ? size : 1);
    if (size) memcpy(copy, body, size);
    sl_infer_request_t *req = sl_infer_request_new(NULL, NULL, NULL);
    sl_infer_error_t err = {0};
    sl_infer_code_t rc = sl_oip_json_parse_request(copy, size, header_len, req, &err);
    if (rc == SL_INFER_OK) {
        if (header_len > (int64_t)size) abort();
        oip_fuzz_check_and_echo(req);
    } else if (rc != SL_INFER_INVALID || err.msg[0] == '\0') {
        abort();
    }
    sl_infer_request_free(req);
    free(copy);
}

#endif
