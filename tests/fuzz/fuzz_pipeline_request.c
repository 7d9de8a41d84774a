/* Fuzzes the /v1/predict codec (gateway/pipeline) on arbitrary bodies against one fixed pipeline
 * with every datatype, an array field and an extra field. A refused body must get a client error
 * with a printable message and leave nothing behind; an accepted one must give tensors of the
 * declared shapes whose bytes match them, the same hash when decoded twice, and a response that
 * encodes to valid JSON with one entry per row, while a response of the wrong row count is refused
 * without writing anything. */
#include "core/json.h"
#include "gateway/pipeline.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_ROWS 8

static const char cfg[] = "pipelines:\n"
                          "  fuzz:\n"
                          "    model: fraud_xgboost\n"
                          "    inputs:\n"
                          "      - {tensor: features, datatype: FP32, fields: [amount, hour]}\n"
                          "      - {tensor: pixels, datatype: FP32, field: image, length: 3}\n"
                          "      - {tensor: score, datatype: FP64, fields: [score]}\n"
                          "      - {tensor: counts, datatype: INT32, fields: [n_tx]}\n"
                          "      - {tensor: ids, datatype: INT64, fields: [merchant_id]}\n"
                          "      - {tensor: flags, datatype: BOOL, fields: [is_new]}\n"
                          "      - {tensor: text, datatype: BYTES, fields: [country, note]}\n"
                          "    outputs:\n"
                          "      - {field: p, tensor: probability, index: 1}\n"
                          "      - {field: ps, tensor: probability}\n"
                          "      - {field: text, tensor: label}\n"
                          "    extra_fields: [user_id]\n";

static const int64_t row_elems[] = {2, 3, 1, 1, 1, 1, 2};

static sl_pipeline_t *pipeline(void) {
    static sl_pipeline_t *p;
    if (p) return p;
    sl_buf_t err = SL_BUF_INIT;
    sl_yaml_doc_t *doc = NULL;
    if (sl_yaml_doc_parse("fuzz.yaml", cfg, sizeof cfg - 1, NULL, &doc, &err) != 0) abort();
    sl_yaml_errors_t e = {.file = "fuzz.yaml", .out = &err};
    const sl_yaml_node_t *n = sl_yaml_map_get(sl_yaml_map_get(doc->root, "pipelines"), "fuzz");
    if (sl_pipeline_parse(&e, "fuzz", n, &p) != 0) abort();
    sl_yaml_doc_free(doc);
    sl_buf_free(&err);
    return p;
}

/* BYTES data: exactly numel elements, each a length and that many bytes. */
static void check_bytes(const sl_infer_input_t *in, int64_t numel) {
    const uint8_t *d = in->data;
    uint64_t off = 0;
    for (int64_t i = 0; i < numel; i++) {
        uint32_t n;
        if (in->byte_size - off < 4) abort();
        memcpy(&n, d + off, 4);
        if (n > in->byte_size - off - 4) abort();
        off += 4 + (uint64_t)n;
    }
    if (off != in->byte_size) abort();
}

/* A response for req: probability FP32 [rows + extra, 2] from the features' bytes, and label the
 * text input echoed (BYTES [rows, 2]). */
static sl_infer_response_t *response(const sl_infer_request_t *req, uint32_t rows, int64_t extra) {
    const sl_infer_input_t *text = &req->inputs[6];
    uint64_t pbytes = (uint64_t)(rows + extra) * 8;
    const char *names[2] = {"probability", "label"};
    sl_infer_response_t *r =
        sl_infer_response_new("fraud_xgboost", "1.0.0", 2, names, pbytes + 16 + text->byte_size);
    uint8_t *d = sl_infer_response_data(r);
    sl_infer_output_t *o = &r->outputs[0];
    o->dtype = SLUICE_DT_FP32;
    o->ndim = 2;
    o->dims[0] = rows + extra;
    o->dims[1] = 2;
    o->byte_size = pbytes;
    o->data = d;
    for (uint64_t i = 0; i < pbytes; i++)
        d[i] = ((const uint8_t *)req->inputs[0].data)[i % req->inputs[0].byte_size];
    o = &r->outputs[1];
    o->dtype = SLUICE_DT_BYTES;
    o->ndim = 2;
    o->dims[0] = rows;
    o->dims[1] = 2;
    o->byte_size = text->byte_size;
    o->data = d + ((pbytes + 15) & ~(uint64_t)15);
    memcpy(o->data, text->data, text->byte_size);
    return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const sl_pipeline_t *p = pipeline();
    sl_infer_request_t *req = sl_infer_request_new(NULL, NULL, NULL);
    sl_pipeline_input_t info = {0};
    sl_infer_error_t err = {0};
    sl_infer_code_t rc = sl_pipeline_decode(p, data, size, MAX_ROWS, req, &info, &err);
    if (rc != SL_INFER_OK) {
        /* A client error with a printable message, and nothing kept. */
        if (rc != SL_INFER_INVALID || err.code != SL_INFER_INVALID || err.msg[0] == '\0') abort();
        for (const char *c = err.msg; *c; c++)
            if ((unsigned char)*c < 0x20) abort();
        if (info.root_) abort();
        sl_infer_request_free(req);
        return 0;
    }
    if (info.rows < 1 || info.rows > MAX_ROWS || req->n_inputs != 7 || req->n_outputs != 2) abort();
    if (strcmp(req->model_name, "fraud_xgboost") != 0) abort();
    for (size_t i = 0; i < req->n_inputs; i++) {
        const sl_infer_input_t *in = &req->inputs[i];
        if (in->ndim != 2 || in->dims[0] != info.rows || in->dims[1] != row_elems[i]) abort();
        int64_t numel = in->dims[0] * in->dims[1];
        if (in->dtype == SLUICE_DT_BYTES)
            check_bytes(in, numel);
        else if (in->byte_size != (uint64_t)numel * sluice_dtype_size(in->dtype))
            abort();
    }
    sl_str_t v;
    int frc = sl_pipeline_input_field(&info, "user_id", &v);
    if (frc == 0 && v.len && !v.ptr) abort();
    if (frc != 0 && frc != SL_ENOENT && frc != SL_EINVAL) abort();

    /* Decoding is deterministic. */
    sl_infer_request_t *again = sl_infer_request_new(NULL, NULL, NULL);
    sl_pipeline_input_t info2 = {0};
    if (sl_pipeline_decode(p, data, size, MAX_ROWS, again, &info2, &err) != SL_INFER_OK) abort();
    if (info2.hash != info.hash || info2.rows != info.rows) abort();
    sl_pipeline_input_free(&info2);
    sl_infer_request_free(again);

    /* A fitting response encodes to valid JSON with one entry per row. */
    sl_infer_response_t *resp = response(req, info.rows, 0);
    sl_buf_t out = SL_BUF_INIT;
    if (sl_pipeline_encode(p, &info, resp, &out, &err) != SL_INFER_OK) abort();
    cJSON *j = NULL;
    if (sl_json_parse(out.data, out.len, &j, NULL, 0) != 0) abort();
    if (info.instances) {
        const cJSON *preds = cJSON_GetObjectItemCaseSensitive(j, "predictions");
        if (cJSON_GetArraySize(preds) != (int)info.rows) abort();
    } else if (!cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(j, "outputs"))) {
        abort();
    }
    cJSON_Delete(j);
    sl_infer_response_free(resp);

    /* One of the wrong row count is the upstream's fault, and writes nothing. */
    resp = response(req, info.rows, 1);
    size_t before = out.len;
    if (sl_pipeline_encode(p, &info, resp, &out, &err) != SL_INFER_INTERNAL) abort();
    if (out.len != before) abort();
    sl_infer_response_free(resp);

    sl_buf_free(&out);
    sl_pipeline_input_free(&info);
    sl_infer_request_free(req);
    return 0;
}
