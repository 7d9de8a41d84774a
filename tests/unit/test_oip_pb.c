/* Unit tests of the OIP gRPC codec (oip/oip_pb): ModelInferRequest decoding (raw and typed
 * contents, parameters, the errors a client can get), and the gateway's directions checked by
 * round trips through the packed bytes: request -> ModelInferRequest -> request and
 * response -> ModelInferResponse -> response. */
#include "oip/oip_pb.h"

#include "oip/oip_json.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

/* ---- helpers ---- */

/* Expects b to carry a's tensor: name, datatype, shape and bytes. */
static void expect_same_tensor(const sl_infer_input_t *a, const sl_infer_input_t *b) {
    assert_string_equal(b->name, a->name);
    assert_int_equal(b->dtype, a->dtype);
    assert_int_equal(b->ndim, a->ndim);
    assert_memory_equal(b->dims, a->dims, a->ndim * sizeof *a->dims);
    assert_int_equal(b->byte_size, a->byte_size);
    if (a->byte_size) assert_memory_equal(b->data, a->data, a->byte_size);
}

/* An output seen as an input, to compare it with expect_same_tensor. */
static sl_infer_input_t as_input(const sl_infer_output_t *o) {
    sl_infer_input_t in = {.name = o->name,
                           .dtype = o->dtype,
                           .ndim = o->ndim,
                           .data = o->data,
                           .byte_size = o->byte_size};
    memcpy(in.dims, o->dims, sizeof in.dims);
    return in;
}

/* Packs req, unpacks it as the server would, and decodes it into a new request (returned; the
 * caller frees it and *msg). */
static sl_infer_request_t *round_trip_request(const sl_infer_request_t *req,
                                              Inference__ModelInferRequest **msg) {
    sl_buf_t b = SL_BUF_INIT;
    sl_oip_pb_encode_request(req, &b);
    *msg = inference__model_infer_request__unpack(NULL, b.len, (const uint8_t *)b.data);
    sl_buf_free(&b);
    assert_non_null(*msg);
    sl_infer_request_t *back = sl_infer_request_new(NULL, NULL, NULL);
    sl_infer_error_t err = {0};
    assert_int_equal(sl_oip_pb_decode_request(*msg, back, &err), SL_INFER_OK);
    return back;
}

/* A ModelInferRequest with one FP32 input "x" of shape [2] given as raw contents of raw_len
 * bytes. The caller owns nothing: everything lives in *s. */
typedef struct one_input {
    Inference__ModelInferRequest m;
    Inference__ModelInferRequest__InferInputTensor t;
    Inference__ModelInferRequest__InferInputTensor *tp;
    Inference__InferTensorContents c;
    int64_t shape[1];
    float data[2];
    ProtobufCBinaryData raw;
} one_input_t;

static void one_input_init(one_input_t *s, const char *dtype, size_t raw_len) {
    Inference__ModelInferRequest m = INFERENCE__MODEL_INFER_REQUEST__INIT;
    Inference__ModelInferRequest__InferInputTensor t =
        INFERENCE__MODEL_INFER_REQUEST__INFER_INPUT_TENSOR__INIT;
    Inference__InferTensorContents c = INFERENCE__INFER_TENSOR_CONTENTS__INIT;
    s->m = m;
    s->t = t;
    s->c = c;
    s->shape[0] = 2;
    s->data[0] = 1.5f;
    s->data[1] = -2.0f;
    s->t.name = "x";
    s->t.datatype = (char *)dtype;
    s->t.n_shape = 1;
    s->t.shape = s->shape;
    s->tp = &s->t;
    s->m.model_name = "m";
    s->m.n_inputs = 1;
    s->m.inputs = &s->tp;
    s->raw.data = (uint8_t *)s->data;
    s->raw.len = raw_len;
    if (raw_len != (size_t)-1) {
        s->m.n_raw_input_contents = 1;
        s->m.raw_input_contents = &s->raw;
    }
}

static void expect_request_error(const Inference__ModelInferRequest *m, const char *msg) {
    sl_infer_request_t *req = sl_infer_request_new(NULL, NULL, NULL);
    sl_infer_error_t err = {0};
    assert_int_equal(sl_oip_pb_decode_request(m, req, &err), SL_INFER_INVALID);
    assert_string_equal(err.msg, msg);
    sl_infer_request_free(req);
}

/* ---- ModelInferRequest -> request ---- */

static void test_decode_raw(void **state) {
    one_input_t s;
    one_input_init(&s, "FP32", sizeof s.data);
    s.m.model_version = "2.0.0";
    s.m.id = "req-7";
    sl_infer_request_t *req = sl_infer_request_new(NULL, NULL, NULL);
    sl_infer_error_t err = {0};
    assert_int_equal(sl_oip_pb_decode_request(&s.m, req, &err), SL_INFER_OK);
    assert_string_equal(req->model_name, "m");
    assert_string_equal(req->model_version, "2.0.0");
    assert_string_equal(req->id, "req-7");
    assert_int_equal(req->n_inputs, 1);
    assert_string_equal(req->inputs[0].name, "x");
    assert_int_equal(req->inputs[0].dtype, SLUICE_DT_FP32);
    assert_int_equal(req->inputs[0].ndim, 1);
    assert_int_equal(req->inputs[0].dims[0], 2);
    assert_int_equal(req->inputs[0].byte_size, 8);
    assert_ptr_equal(req->inputs[0].data, s.data); /* raw contents are borrowed */
    assert_int_equal(req->n_outputs, 0);
    sl_infer_request_free(req);
}

static void test_decode_typed(void **state) {
    one_input_t s;
    one_input_init(&s, "INT8", (size_t)-1);
    int32_t vals[2] = {-128, 127};
    s.c.n_int_contents = 2;
    s.c.int_contents = vals;
    s.t.contents = &s.c;
    sl_infer_request_t *req = sl_infer_request_new(NULL, NULL, NULL);
    sl_infer_error_t err = {0};
    assert_int_equal(sl_oip_pb_decode_request(&s.m, req, &err), SL_INFER_OK);
    const int8_t *d = req->inputs[0].data;
    assert_int_equal(req->inputs[0].byte_size, 2);
    assert_int_equal(d[0], -128);
    assert_int_equal(d[1], 127);
    sl_infer_request_free(req);

    vals[1] = 128;
    expect_request_error(&s.m,
                         "input 'x': contents.int_contents[1] = 128 is out of range for INT8");
}

static void test_decode_errors(void **state) {
    one_input_t s;
    one_input_init(&s, "FP32", 4);
    expect_request_error(&s.m, "input 'x': raw_input_contents[0] has 4 bytes, FP32 [2] needs 8");
    one_input_init(&s, "FP33", 8);
    expect_request_error(&s.m, "input 'x': unknown datatype 'FP33'");
    one_input_init(&s, "FP32", (size_t)-1);
    expect_request_error(&s.m, "input 'x': no data: set contents.fp32_contents or "
                               "raw_input_contents");
    one_input_init(&s, "FP32", 8);
    s.m.model_name = "";
    expect_request_error(&s.m, "model_name is required");
    one_input_init(&s, "FP32", 8);
    s.m.n_raw_input_contents = 0;
    Inference__InferTensorContents wrong = INFERENCE__INFER_TENSOR_CONTENTS__INIT;
    int64_t big[2] = {1, 2};
    wrong.n_int64_contents = 2;
    wrong.int64_contents = big;
    s.t.contents = &wrong;
    expect_request_error(&s.m, "input 'x': datatype FP32 takes contents.fp32_contents, got "
                               "contents.int64_contents");
}

/* ---- request -> ModelInferRequest -> request ---- */

static void test_request_round_trip(void **state) {
    /* What the gateway does: a REST request decoded by the JSON codec, sent on as gRPC. */
    static const char body[] =
        "{\"id\": \"abc\", \"parameters\": {\"priority\": 2},"
        " \"inputs\": ["
        "  {\"name\": \"x\", \"datatype\": \"FP32\", \"shape\": [2, 3],"
        "   \"data\": [[1, 2, 3], [4, 5, 6]]},"
        "  {\"name\": \"s\", \"datatype\": \"BYTES\", \"shape\": [2], \"data\": [\"hi\", \"\"]},"
        "  {\"name\": \"empty\", \"datatype\": \"INT64\", \"shape\": [0, 4], \"data\": []}],"
        " \"outputs\": [{\"name\": \"probs\"}]}";
    sl_infer_request_t *req = sl_infer_request_new(NULL, NULL, NULL);
    sl_infer_error_t err = {0};
    assert_int_equal(sl_oip_json_parse_request((const uint8_t *)body, strlen(body), -1, req, &err),
                     SL_INFER_OK);
    req->model_name = "mlp"; /* from the path */
    req->model_version = "1.2.3";
    req->timeout_us = UINT64_MAX; /* past int64: travels as uint64_param */
    assert_int_equal(req->n_inputs, 3);

    Inference__ModelInferRequest *msg = NULL;
    sl_infer_request_t *back = round_trip_request(req, &msg);
    assert_string_equal(back->model_name, "mlp");
    assert_string_equal(back->model_version, "1.2.3");
    assert_string_equal(back->id, "abc");
    assert_int_equal(back->priority, 2);
    assert_true(back->timeout_us == UINT64_MAX);
    assert_int_equal(back->n_inputs, 3);
    for (size_t i = 0; i < 3; i++)
        expect_same_tensor(&req->inputs[i], &back->inputs[i]);
    assert_int_equal(back->n_outputs, 1);
    assert_string_equal(back->outputs[0].name, "probs");
    sl_infer_request_free(back);
    inference__model_infer_request__free_unpacked(msg, NULL);

    /* Defaults stay out of the message: no version, id or parameters. */
    req->model_version = NULL;
    req->id = NULL;
    req->priority = 0;
    req->timeout_us = 0;
    back = round_trip_request(req, &msg);
    assert_int_equal(msg->n_parameters, 0);
    assert_null(back->model_version);
    assert_null(back->id);
    assert_int_equal(back->priority, 0);
    assert_true(back->timeout_us == 0);
    sl_infer_request_free(back);
    inference__model_infer_request__free_unpacked(msg, NULL);
    sl_infer_request_free(req);
}

/* ---- response -> ModelInferResponse -> response ---- */

static sl_infer_response_t *sample_response(void) {
    const char *names[2] = {"probs", "label"};
    sl_infer_response_t *r = sl_infer_response_new("mlp", "1.2.3", 2, names, 64);
    uint8_t *d = sl_infer_response_data(r);
    const float p[3] = {0.25f, 0.5f, 0.25f};
    memcpy(d, p, sizeof p);
    sl_infer_output_t *o = &r->outputs[0];
    o->dtype = SLUICE_DT_FP32;
    o->ndim = 2;
    o->dims[0] = 1;
    o->dims[1] = 3;
    o->data = d;
    o->byte_size = sizeof p;
    const int64_t l = 1;
    memcpy(d + 16, &l, sizeof l);
    o = &r->outputs[1];
    o->dtype = SLUICE_DT_INT64;
    o->ndim = 1;
    o->dims[0] = 1;
    o->data = d + 16;
    o->byte_size = sizeof l;
    return r;
}

static Inference__ModelInferResponse *pack_unpack_response(const sl_infer_request_t *req,
                                                           const sl_infer_response_t *resp) {
    sl_buf_t b = SL_BUF_INIT;
    sl_oip_pb_encode_response(req, resp, &b);
    Inference__ModelInferResponse *m =
        inference__model_infer_response__unpack(NULL, b.len, (const uint8_t *)b.data);
    sl_buf_free(&b);
    assert_non_null(m);
    return m;
}

static void test_response_round_trip(void **state) {
    sl_infer_request_t *req = sl_infer_request_new(NULL, NULL, NULL);
    req->id = "abc";
    sl_infer_response_t *resp = sample_response();
    Inference__ModelInferResponse *m = pack_unpack_response(req, resp);
    assert_string_equal(m->id, "abc");
    assert_int_equal(m->n_raw_output_contents, 2);

    sl_infer_response_t *back = NULL;
    sl_infer_error_t err = {0};
    assert_int_equal(sl_oip_pb_decode_response(m, &back, &err), SL_INFER_OK);
    assert_string_equal(back->model_name, "mlp");
    assert_string_equal(back->model_version, "1.2.3");
    assert_int_equal(back->n_outputs, 2);
    for (size_t i = 0; i < 2; i++) {
        sl_infer_input_t a = as_input(&resp->outputs[i]), b = as_input(&back->outputs[i]);
        expect_same_tensor(&a, &b);
    }
    sl_infer_response_free(back);
    inference__model_infer_response__free_unpacked(m, NULL);
    sl_infer_response_free(resp);
    sl_infer_request_free(req);
}

static void expect_response_error(const Inference__ModelInferResponse *m, const char *msg) {
    sl_infer_response_t *back = (sl_infer_response_t *)1;
    sl_infer_error_t err = {0};
    assert_int_equal(sl_oip_pb_decode_response(m, &back, &err), SL_INFER_INVALID);
    assert_null(back);
    assert_string_equal(err.msg, msg);
}

static void test_response_errors(void **state) {
    sl_infer_response_t *resp = sample_response();
    Inference__ModelInferResponse *m = pack_unpack_response(NULL, resp);
    assert_string_equal(m->id, "");

    m->raw_output_contents[0].len = 8;
    expect_response_error(m, "output 'probs': raw_output_contents[0] has 8 bytes, FP32 [1,3] "
                             "needs 12");
    m->raw_output_contents[0].len = 12;
    m->n_raw_output_contents = 1;
    expect_response_error(m, "raw_output_contents has 1 entries, the response has 2 outputs");
    m->n_raw_output_contents = 2;
    char *dt = m->outputs[1]->datatype;
    m->outputs[1]->datatype = "INT65";
    expect_response_error(m, "output 'label': unknown datatype 'INT65'");
    m->outputs[1]->datatype = dt;
    m->outputs[1]->shape[0] = -1;
    expect_response_error(m, "output 'label': shape has a negative dimension or too many "
                             "elements");
    inference__model_infer_response__free_unpacked(m, NULL);
    sl_infer_response_free(resp);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decode_raw),          cmocka_unit_test(test_decode_typed),
        cmocka_unit_test(test_decode_errors),       cmocka_unit_test(test_request_round_trip),
        cmocka_unit_test(test_response_round_trip), cmocka_unit_test(test_response_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
