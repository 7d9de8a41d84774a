/* Fuzzes the OIP REST request parser on arbitrary bytes as a JSON-only body (no
 * Inference-Header-Content-Length). What parses must be self-consistent (every input's bytes
 * readable, sizes matching shapes) and must write back as a response that is valid JSON. */
#include "core/json.h"
#include "inference/oip_json.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static size_t elem_size(sluice_dtype_t t) {
    switch (t) {
    case SLUICE_DT_BOOL:
    case SLUICE_DT_UINT8:
    case SLUICE_DT_INT8:
        return 1;
    case SLUICE_DT_UINT16:
    case SLUICE_DT_INT16:
    case SLUICE_DT_FP16:
    case SLUICE_DT_BF16:
        return 2;
    case SLUICE_DT_UINT32:
    case SLUICE_DT_INT32:
    case SLUICE_DT_FP32:
        return 4;
    case SLUICE_DT_UINT64:
    case SLUICE_DT_INT64:
    case SLUICE_DT_FP64:
        return 8;
    default:
        return 0;
    }
}

/* Checks a parsed request and echoes its inputs back through the response writer. */
static void check_and_echo(const sl_infer_request_t *req) {
    const char *names[64];
    uint64_t bytes = 0, sum = 0;
    if (req->n_inputs == 0 || req->n_inputs > 64) abort();
    for (size_t i = 0; i < req->n_inputs; i++) {
        const sl_infer_input_t *in = &req->inputs[i];
        int64_t numel = sl_dims_numel(in->dims, in->ndim);
        size_t es = elem_size(in->dtype);
        if (!in->name || numel < 0 || in->ndim > SLUICE_MAX_DIMS) abort();
        if (es && in->byte_size != (uint64_t)numel * es) abort();
        if (in->byte_size && !in->data) abort();
        const uint8_t *p = in->data;
        for (uint64_t k = 0; k < in->byte_size; k++)
            sum += p[k]; /* ASan: readable */
        names[i] = in->name;
        bytes += (in->byte_size + 15) & ~(uint64_t)15;
    }
    (void)sum;
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* A private copy, so that reads past the end are caught. */
    uint8_t *body = malloc(size ? size : 1);
    if (size) memcpy(body, data, size);
    sl_infer_request_t *req = sl_infer_request_new(NULL, NULL, NULL);
    sl_infer_error_t err = {0};
    sl_infer_code_t rc = sl_oip_json_parse_request(body, size, -1, req, &err);
    if (rc == SL_INFER_OK) {
        check_and_echo(req);
    } else if (rc != SL_INFER_INVALID || err.msg[0] == '\0') {
        abort();
    }
    sl_infer_request_free(req);
    free(body);
    return 0;
}
