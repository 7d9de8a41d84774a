/* Unit tests of the OIP REST codec (oip/oip_json): every datatype from JSON and back,
 * nested and flat data, binary tensors in and out, request parameters, and every error message
 * a client can get from the parser. */
#include "oip/oip_json.h"

#include "../fuzz/oip_fuzz.h"
#include "core/json.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Parses json (+ bin as the binary section when header is true). The body buffer is kept in
 * *body (free it after the request: binary inputs point into it). */
static sl_infer_code_t parse_full(const char *json, const void *bin, size_t bin_len, bool header,
                                  sl_infer_request_t **out, sl_infer_error_t *err, uint8_t **body) {
    size_t jl = strlen(json);
    *body = malloc(jl + bin_len + 1);
    memcpy(*body, json, jl);
    if (bin_len) memcpy(*body + jl, bin, bin_len);
    *out = sl_infer_request_new(NULL, NULL, NULL);
    memset(err, 0, sizeof *err);
    return sl_oip_json_parse_request(*body, jl + bin_len, header ? (int64_t)jl : -1, *out, err);
}

typedef struct parsed {
    sl_infer_request_t *req;
    uint8_t *body;
} parsed_t;

static parsed_t parse_ok(const char *json) {
    parsed_t p;
    sl_infer_error_t err;
    sl_infer_code_t rc = parse_full(json, NULL, 0, false, &p.req, &err, &p.body);
    if (rc != SL_INFER_OK) {
        print_error("parse of %s failed: %s\n", json, err.msg);
        fail();
    }
    return p;
}

static void parsed_free(parsed_t *p) {
    sl_infer_request_free(p->req);
    free(p->body);
}

static void expect_error_bin(const char *json, const void *bin, size_t bin_len, bool header,
                             const char *want) {
    sl_infer_request_t *req;
    sl_infer_error_t err;
    uint8_t *body;
    sl_infer_code_t rc = parse_full(json, bin, bin_len, header, &req, &err, &body);
    if (rc != SL_INFER_INVALID || err.code != SL_INFER_INVALID || strcmp(err.msg, want) != 0) {
        print_error("request %s:\n  want '%s'\n  got  %d '%s'\n", json, want, rc, err.msg);
        fail();
    }
    sl_infer_request_free(req);
    free(body);
}

static void expect_error(const char *json, const char *want) {
    expect_error_bin(json, NULL, 0, false, want);
}

/* Builds a response whose outputs are the request's inputs (same names), writes it and
 * parses the JSON part. */
static cJSON *echo_response(const sl_infer_request_t *req, sl_buf_t *out, size_t *header_len) {
    const char *names[16];
    for (size_t i = 0; i < req->n_inputs; i++)
        names[i] = req->inputs[i].name;
    sl_infer_response_t *resp = oip_echo_response(req, names);
    sl_oip_json_write_response(req, resp, out, header_len);
    sl_infer_response_free(resp);
    cJSON *root = NULL;
    char err[128];
    if (sl_json_parse(out->data, *header_len, &root, err, sizeof err) != 0) {
        print_error("response is not JSON (%s): %.*s\n", err, (int)*header_len, out->data);
        fail();
    }
    return root;
}

static const cJSON *output_named(const cJSON *root, const char *name) {
    const cJSON *o;
    cJSON_ArrayForEach(o, cJSON_GetObjectItem(root, "outputs")) {
        if (strcmp(cJSON_GetObjectItem(o, "name")->valuestring, name) == 0) return o;
    }
    fail_msg("no output %s", name);
    return NULL;
}

static void test_every_dtype(void **state) {
    parsed_t p = parse_ok(
        "{\"id\":\"r1\",\"inputs\":["
        "{\"name\":\"b\",\"datatype\":\"BOOL\",\"shape\":[2,2],\"data\":[true,false,false,true]},"
        "{\"name\":\"u8\",\"datatype\":\"UINT8\",\"shape\":[2],\"data\":[0,255]},"
        "{\"name\":\"i8\",\"datatype\":\"INT8\",\"shape\":[2],\"data\":[-128,127]},"
        "{\"name\":\"u16\",\"datatype\":\"UINT16\",\"shape\":[2],\"data\":[0,65535]},"
        "{\"name\":\"i16\",\"datatype\":\"INT16\",\"shape\":[2],\"data\":[-32768,32767]},"
        "{\"name\":\"u32\",\"datatype\":\"UINT32\",\"shape\":[2],\"data\":[0,4294967295]},"
        "{\"name\":\"i32\",\"datatype\":\"INT32\",\"shape\":[2],\"data\":[-2147483648,2147483647]},"
        "{\"name\":\"u64\",\"datatype\":\"UINT64\",\"shape\":[2],\"data\":[0,9007199254740991]},"
        "{\"name\":\"i64\",\"datatype\":\"INT64\",\"shape\":[2],"
        "\"data\":[-9007199254740991,9007199254740991]},"
        "{\"name\":\"f32\",\"datatype\":\"FP32\",\"shape\":[3],\"data\":[0.1,-3.4e38,1e-45]},"
        "{\"name\":\"f64\",\"datatype\":\"FP64\",\"shape\":[2],\"data\":[0.1,-1."
        "7976931348623157e308]},"
        "{\"name\":\"s\",\"datatype\":\"BYTES\",\"shape\":[3],\"data\":[\"ab\",\"\",\"h\\u00e9\"]}"
        "]}");
    sl_infer_request_t *req = p.req;
    assert_int_equal(req->n_inputs, 12);
    assert_string_equal(req->id, "r1");
    const sl_infer_input_t *in = req->inputs;
    assert_int_equal(in[0].dtype, SLUICE_DT_BOOL);
    assert_int_equal(in[0].ndim, 2);
    assert_int_equal(in[0].byte_size, 4);
    assert_memory_equal(in[0].data, "\1\0\0\1", 4);
    assert_memory_equal(in[1].data, "\0\xff", 2);
    assert_memory_equal(in[2].data, "\x80\x7f", 2);
    uint16_t u16[2] = {0, 65535};
    int16_t i16[2] = {-32768, 32767};
    uint32_t u32[2] = {0, 4294967295u};
    int32_t i32[2] = {INT32_MIN, INT32_MAX};
    uint64_t u64[2] = {0, 9007199254740991ull};
    int64_t i64[2] = {-9007199254740991ll, 9007199254740991ll};
    float f32[3] = {0.1f, -3.4e38f, 1e-45f};
    double f64[2] = {0.1, -1.7976931348623157e308};
    assert_memory_equal(in[3].data, u16, sizeof u16);
    assert_memory_equal(in[4].data, i16, sizeof i16);
    assert_memory_equal(in[5].data, u32, sizeof u32);
    assert_memory_equal(in[6].data, i32, sizeof i32);
    assert_memory_equal(in[7].data, u64, sizeof u64);
    assert_memory_equal(in[8].data, i64, sizeof i64);
    assert_int_equal(in[9].byte_size, 12);
    assert_memory_equal(in[9].data, f32, sizeof f32);
    assert_memory_equal(in[10].data, f64, sizeof f64);
    assert_int_equal(in[11].dtype, SLUICE_DT_BYTES);
    assert_int_equal(in[11].byte_size, 4 + 2 + 4 + 4 + 3);
    assert_memory_equal(in[11].data, "\2\0\0\0ab\0\0\0\0\3\0\0\0h\xc3\xa9", 17);

    /* Back to JSON: the same values, exactly. */
    sl_buf_t out = SL_BUF_INIT;
    size_t hl;
    cJSON *root = echo_response(req, &out, &hl);
    assert_int_equal(hl, out.len);
    assert_string_equal(cJSON_GetObjectItem(root, "model_name")->valuestring, "m");
    assert_string_equal(cJSON_GetObjectItem(root, "model_version")->valuestring, "1.0.0");
    assert_string_equal(cJSON_GetObjectItem(root, "id")->valuestring, "r1");
    assert_non_null(strstr(out.data, "\"name\":\"b\",\"datatype\":\"BOOL\",\"shape\":[2,2],"
                                     "\"data\":[true,false,false,true]"));
    assert_non_null(strstr(out.data, "\"data\":[-128,127]"));
    assert_non_null(strstr(out.data, "\"data\":[0,4294967295]"));
    assert_non_null(strstr(out.data, "\"data\":[-2147483648,2147483647]"));
    assert_non_null(strstr(out.data, "\"data\":[-9007199254740991,9007199254740991]"));
    assert_non_null(strstr(out.data, "\"data\":[\"ab\",\"\",\"h\xc3\xa9\"]"));
    /* Floats: each printed value reads back as the same float / double. */
    const cJSON *v;
    int i = 0;
    cJSON_ArrayForEach(v, cJSON_GetObjectItem(output_named(root, "f32"), "data")) {
        assert_true((float)v->valuedouble == f32[i++]);
    }
    assert_int_equal(i, 3);
    i = 0;
    cJSON_ArrayForEach(v, cJSON_GetObjectItem(output_named(root, "f64"), "data")) {
        assert_true(v->valuedouble == f64[i++]);
    }
    assert_int_equal(i, 2);
    const cJSON *shape = cJSON_GetObjectItem(output_named(root, "i8"), "shape");
    assert_int_equal(cJSON_GetArraySize(shape), 1);
    assert_int_equal(cJSON_GetArrayItem(shape, 0)->valueint, 2);
    assert_string_equal(cJSON_GetObjectItem(output_named(root, "u64"), "datatype")->valuestring,
                        "UINT64");
    cJSON_Delete(root);
    sl_buf_free(&out);
    parsed_free(&p);
}

static void test_nested_and_flat(void **state) {
    parsed_t a = parse_ok("{\"inputs\":[{\"name\":\"x\",\"datatype\":\"INT32\",\"shape\":[2,3],"
                          "\"data\":[[1,2,3],[4,5,6]]}]}");
    parsed_t b = parse_ok("{\"inputs\":[{\"name\":\"x\",\"datatype\":\"INT32\",\"shape\":[2,3],"
                          "\"data\":[1,2,3,4,5,6]}]}");
    assert_int_equal(a.req->inputs[0].byte_size, 24);
    assert_memory_equal(a.req->inputs[0].data, b.req->inputs[0].data, 24);
    parsed_free(&a);
    parsed_free(&b);
    /* Three levels, and a zero-sized dimension. */
    a = parse_ok("{\"inputs\":[{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[1,2,2],"
                 "\"data\":[[[1,2],[3,4]]]},"
                 "{\"name\":\"e\",\"datatype\":\"FP32\",\"shape\":[0,4],\"data\":[]},"
                 "{\"name\":\"s\",\"datatype\":\"BYTES\",\"shape\":[1,2],\"data\":[[\"a\",\"b\"]]},"
                 "{\"name\":\"scalar\",\"datatype\":\"INT64\",\"shape\":[],\"data\":[7]}]}");
    float want[4] = {1, 2, 3, 4};
    assert_memory_equal(a.req->inputs[0].data, want, sizeof want);
    assert_int_equal(a.req->inputs[1].byte_size, 0);
    assert_int_equal(a.req->inputs[1].ndim, 2);
    assert_int_equal(a.req->inputs[2].byte_size, 10);
    assert_int_equal(a.req->inputs[3].ndim, 0);
    assert_int_equal(*(const int64_t *)a.req->inputs[3].data, 7);
    parsed_free(&a);
}

static void test_parameters_and_outputs(void **state) {
    parsed_t p = parse_ok("{\"id\":\"\",\"parameters\":{\"priority\":2,\"timeout\":5000,"
                          "\"binary_data_output\":true,\"other\":\"ignored\"},"
                          "\"inputs\":[{\"name\":\"x\",\"datatype\":\"INT8\",\"shape\":[1],"
                          "\"data\":[1],\"parameters\":{\"extra\":1}}],"
                          "\"outputs\":[{\"name\":\"y\"},"
                          "{\"name\":\"z\",\"parameters\":{\"binary_data\":false}}]}");
    sl_infer_request_t *req = p.req;
    assert_int_equal(req->priority, 2);
    assert_int_equal(req->timeout_us, 5000);
    assert_true(req->binary_default);
    assert_string_equal(req->id, "");
    assert_int_equal(req->n_outputs, 2);
    assert_string_equal(req->outputs[0].name, "y");
    assert_true(req->outputs[0].binary);
    assert_string_equal(req->outputs[1].name, "z");
    assert_false(req->outputs[1].binary);
    parsed_free(&p);

    p = parse_ok("{\"inputs\":[{\"name\":\"x\",\"datatype\":\"INT8\",\"shape\":[1],\"data\":[1]}],"
                 "\"outputs\":[{\"name\":\"y\",\"parameters\":{\"binary_data\":true}}]}");
    assert_null(p.req->id);
    assert_int_equal(p.req->priority, 0);
    assert_int_equal(p.req->timeout_us, 0);
    assert_false(p.req->binary_default);
    assert_true(p.req->outputs[0].binary);
    parsed_free(&p);
}

static void test_binary_inputs(void **state) {
    const char *json = "{\"inputs\":[{\"name\":\"a\",\"datatype\":\"UINT32\",\"shape\":[2,2],"
                       "\"parameters\":{\"binary_data_size\":16}},"
                       "{\"name\":\"j\",\"datatype\":\"BOOL\",\"shape\":[1],\"data\":[true]},"
                       "{\"name\":\"b\",\"datatype\":\"BOOL\",\"shape\":[3],\"parameters\":{"
                       "\"binary_data_size\":3}},"
                       "{\"name\":\"s\",\"datatype\":\"BYTES\",\"shape\":[2],"
                       "\"parameters\":{\"binary_data_size\":11}}]}";
    uint8_t bin[16 + 3 + 11];
    uint32_t u[4] = {1, 2, 3, 0xdeadbeef};
    memcpy(bin, u, 16);
    memcpy(bin + 16, "\1\0\1", 3);
    memcpy(bin + 19, "\3\0\0\0abc\0\0\0\0", 11);
    sl_infer_request_t *req;
    sl_infer_error_t err;
    uint8_t *body;
    assert_int_equal(parse_full(json, bin, sizeof bin, true, &req, &err, &body), SL_INFER_OK);
    assert_int_equal(req->n_inputs, 4);
    assert_int_equal(req->inputs[0].byte_size, 16);
    assert_memory_equal(req->inputs[0].data, u, 16);
    assert_int_equal(((uintptr_t)req->inputs[0].data) % 4, 0); /* copied when misaligned */
    assert_memory_equal(req->inputs[1].data, "\1", 1);
    assert_int_equal(req->inputs[2].byte_size, 3);
    assert_memory_equal(req->inputs[2].data, "\1\0\1", 3);
    assert_ptr_equal(req->inputs[2].data, body + strlen(json) + 16); /* bytes: in place */
    assert_int_equal(req->inputs[3].byte_size, 11);
    assert_memory_equal(req->inputs[3].data, "\3\0\0\0abc\0\0\0\0", 11);
    sl_infer_request_free(req);
    free(body);

    /* A header length with no binary inputs and no binary bytes is fine. */
    const char *plain = "{\"inputs\":[{\"name\":\"x\",\"datatype\":\"INT8\",\"shape\":[1],"
                        "\"data\":[1]}]}";
    assert_int_equal(parse_full(plain, NULL, 0, true, &req, &err, &body), SL_INFER_OK);
    sl_infer_request_free(req);
    free(body);
    /* FP16 and BF16 only come as binary. */
    const char *half = "{\"inputs\":[{\"name\":\"h\",\"datatype\":\"FP16\",\"shape\":[2],"
                       "\"parameters\":{\"binary_data_size\":4}},"
                       "{\"name\":\"g\",\"datatype\":\"BF16\",\"shape\":[1],"
                       "\"parameters\":{\"binary_data_size\":2}}]}";
    assert_int_equal(parse_full(half, "\x00\x3c\x00\xc0\x80\x3f", 6, true, &req, &err, &body),
                     SL_INFER_OK);
    assert_int_equal(req->inputs[0].dtype, SLUICE_DT_FP16);
    assert_int_equal(req->inputs[1].byte_size, 2);
    /* and go back as JSON numbers: FP16 1, -2; BF16 1. */
    sl_buf_t out = SL_BUF_INIT;
    size_t hl;
    cJSON *root = echo_response(req, &out, &hl);
    assert_non_null(strstr(out.data, "\"datatype\":\"FP16\",\"shape\":[2],\"data\":[1,-2]"));
    assert_non_null(strstr(out.data, "\"datatype\":\"BF16\",\"shape\":[1],\"data\":[1]"));
    cJSON_Delete(root);
    sl_buf_free(&out);
    sl_infer_request_free(req);
    free(body);
}

static void test_binary_outputs(void **state) {
    /* binary_data_output makes every output binary unless the output says otherwise. */
    parsed_t p = parse_ok("{\"parameters\":{\"binary_data_output\":true},\"inputs\":["
                          "{\"name\":\"a\",\"datatype\":\"INT16\",\"shape\":[2],\"data\":[1,-1]},"
                          "{\"name\":\"b\",\"datatype\":\"UINT8\",\"shape\":[1],\"data\":[9]},"
                          "{\"name\":\"c\",\"datatype\":\"FP64\",\"shape\":[1],\"data\":[2.5]}],"
                          "\"outputs\":[{\"name\":\"a\"},{\"name\":\"b\",\"parameters\":"
                          "{\"binary_data\":false}},{\"name\":\"c\"}]}");
    sl_buf_t out = SL_BUF_INIT;
    size_t hl;
    cJSON *root = echo_response(p.req, &out, &hl);
    assert_int_equal(out.len, hl + 4 + 8);
    const cJSON *a = output_named(root, "a");
    assert_null(cJSON_GetObjectItem(a, "data"));
    assert_int_equal(
        cJSON_GetObjectItem(cJSON_GetObjectItem(a, "parameters"), "binary_data_size")->valueint, 4);
    assert_int_equal(
        cJSON_GetArrayItem(cJSON_GetObjectItem(output_named(root, "b"), "data"), 0)->valueint, 9);
    int16_t a_data[2] = {1, -1};
    double c_data = 2.5;
    assert_memory_equal(out.data + hl, a_data, 4);
    assert_memory_equal(out.data + hl + 4, &c_data, 8);
    cJSON_Delete(root);
    sl_buf_free(&out);
    parsed_free(&p);

    /* Without outputs listed, binary_data_output applies to all of them. */
    p = parse_ok("{\"parameters\":{\"binary_data_output\":true},\"inputs\":["
                 "{\"name\":\"s\",\"datatype\":\"BYTES\",\"shape\":[1],\"data\":[\"xy\"]}]}");
    sl_buf_t out2 = SL_BUF_INIT;
    root = echo_response(p.req, &out2, &hl);
    assert_int_equal(out2.len, hl + 6);
    assert_memory_equal(out2.data + hl, "\2\0\0\0xy", 6);
    cJSON_Delete(root);
    sl_buf_free(&out2);
    parsed_free(&p);
}

static void test_output_special_values(void **state) {
    const char *names[] = {"f", "s"};
    sl_infer_response_t *resp = sl_infer_response_new("m\"q", "2.0.0", 2, names, 64);
    float f[3] = {NAN, INFINITY, -0.0f};
    uint8_t *d = sl_infer_response_data(resp);
    memcpy(d, f, sizeof f);
    resp->outputs[0] = (sl_infer_output_t){.name = resp->outputs[0].name,
                                           .dtype = SLUICE_DT_FP32,
                                           .ndim = 1,
                                           .dims = {3},
                                           .data = d,
                                           .byte_size = 12};
    /* A string with control characters and invalid UTF-8 is escaped / replaced. */
    memcpy(d + 16, "\4\0\0\0a\n\xff\"", 8);
    resp->outputs[1] = (sl_infer_output_t){.name = resp->outputs[1].name,
                                           .dtype = SLUICE_DT_BYTES,
                                           .ndim = 1,
                                           .dims = {1},
                                           .data = d + 16,
                                           .byte_size = 8};
    sl_infer_request_t *req = sl_infer_request_new(NULL, NULL, NULL);
    sl_buf_t out = SL_BUF_INIT;
    size_t hl;
    sl_oip_json_write_response(req, resp, &out, &hl);
    assert_string_equal(
        out.data, "{\"model_name\":\"m\\\"q\",\"model_version\":\"2.0.0\",\"outputs\":["
                  "{\"name\":\"f\",\"datatype\":\"FP32\",\"shape\":[3],\"data\":[null,null,-0]},"
                  "{\"name\":\"s\",\"datatype\":\"BYTES\",\"shape\":[1],"
                  "\"data\":[\"a\\n\\ufffd\\\"\"]}]}");
    assert_int_equal(hl, out.len);
    cJSON *root;
    assert_int_equal(sl_json_parse(out.data, out.len, &root, NULL, 0), 0);
    cJSON_Delete(root);
    sl_buf_free(&out);
    sl_infer_request_free(req);
    sl_infer_response_free(resp);
}

static void test_structure_errors(void **state) {
    expect_error("", "invalid JSON: empty input");
    expect_error("[1]", "the request must be a JSON object");
    expect_error("{}", "missing field 'inputs'");
    expect_error("{\"inputs\":{}}", "field 'inputs' must be an array");
    expect_error("{\"inputs\":[]}", "field 'inputs' must not be empty");
    expect_error("{\"inputs\":[1]}", "input 0 must be an object");
    expect_error("{\"inputs\":[{}]}", "input 0: missing field 'name'");
    expect_error("{\"inputs\":[{\"name\":\"\"}]}",
                 "input 0: field 'name' must be a non-empty string");
    expect_error("{\"inputs\":[{\"name\":\"x\"}]}", "input 'x': missing field 'datatype'");
    expect_error("{\"inputs\":[{\"name\":\"x\",\"datatype\":1}]}",
                 "input 'x': field 'datatype' must be a string");
    expect_error("{\"inputs\":[{\"name\":\"x\",\"datatype\":\"FP33\"}]}",
                 "input 'x': unknown datatype 'FP33'");
    expect_error("{\"inputs\":[{\"name\":\"x\",\"datatype\":\"FP32\"}]}",
                 "input 'x': missing field 'shape'");
    expect_error("{\"inputs\":[{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":2}]}",
                 "input 'x': field 'shape' must be an array of integers");
    expect_error("{\"inputs\":[{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[2,-1]}]}",
                 "input 'x': shape must hold non-negative integers (dimension 1)");
    expect_error("{\"inputs\":[{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[1.5]}]}",
                 "input 'x': shape must hold non-negative integers (dimension 0)");
    expect_error(
        "{\"inputs\":[{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[1,1,1,1,1,1,1,1,1]}]}",
        "input 'x': shape has more than 8 dimensions");
    expect_error("{\"inputs\":[{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[65536,65536,2]}]}",
                 "input 'x': shape [65536,65536,2] has too many elements (at most 4294967296)");
    expect_error("{\"inputs\":[{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[1]}]}",
                 "input 'x': missing field 'data' (or parameters.binary_data_size)");
    expect_error("{\"inputs\":[{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[1],\"data\":1}]}",
                 "input 'x': field 'data' must be an array");
    expect_error("{\"inputs\":[{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[1],\"data\":[1],"
                 "\"parameters\":[]}]}",
                 "input 'x': field 'parameters' must be an object");
    expect_error("{\"id\":5,\"inputs\":[]}", "field 'id' must be a string");
    expect_error("{\"parameters\":1,\"inputs\":[]}", "field 'parameters' must be an object");
    expect_error("{\"parameters\":{\"priority\":-1},\"inputs\":[]}",
                 "parameters.priority must be a non-negative integer");
    expect_error("{\"parameters\":{\"timeout\":\"1s\"},\"inputs\":[]}",
                 "parameters.timeout must be a non-negative integer (microseconds)");
    expect_error("{\"parameters\":{\"binary_data_output\":1},\"inputs\":[]}",
                 "parameters.binary_data_output must be true or false");
    const char *x =
        "{\"inputs\":[{\"name\":\"x\",\"datatype\":\"INT8\",\"shape\":[1],\"data\":[1]}],";
    char buf[512];
    snprintf(buf, sizeof buf, "%s\"outputs\":{}}", x);
    expect_error(buf, "field 'outputs' must be an array");
    snprintf(buf, sizeof buf, "%s\"outputs\":[\"y\"]}", x);
    expect_error(buf, "output 0 must be an object");
    snprintf(buf, sizeof buf, "%s\"outputs\":[{\"name\":7}]}", x);
    expect_error(buf, "output 0: field 'name' must be a non-empty string");
    snprintf(buf, sizeof buf,
             "%s\"outputs\":[{\"name\":\"y\",\"parameters\":{\"binary_data\":1}}]}", x);
    expect_error(buf, "output 'y': parameters.binary_data must be true or false");
    snprintf(buf, sizeof buf, "%s\"outputs\":[{\"name\":\"y\",\"parameters\":5}]}", x);
    expect_error(buf, "output 'y': field 'parameters' must be an object");
    /* Limits: names, ids, tensor counts. */
    char longname[300];
    memset(longname, 'n', 257);
    longname[257] = '\0';
    snprintf(buf, sizeof buf, "{\"inputs\":[{\"name\":\"%s\"}]}", longname);
    expect_error(buf, "input 0: name is longer than 256 bytes");
    sl_buf_t big = SL_BUF_INIT;
    sl_buf_puts(&big, "{\"inputs\":[");
    for (int i = 0; i < 65; i++) {
        sl_buf_printf(&big, "%s{\"name\":\"i%d\",\"datatype\":\"INT8\",\"shape\":[1],\"data\":[1]}",
                      i ? "," : "", i);
    }
    sl_buf_puts(&big, "]}");
    expect_error(big.data, "too many inputs (at most 64)");
    sl_buf_reset(&big);
    sl_buf_printf(&big, "%s\"outputs\":[", x);
    for (int i = 0; i < 65; i++)
        sl_buf_printf(&big, "%s{\"name\":\"o%d\"}", i ? "," : "", i);
    sl_buf_puts(&big, "]}");
    expect_error(big.data, "too many outputs requested (at most 64)");
    sl_buf_reset(&big);
    sl_buf_puts(&big, "{\"id\":\"");
    for (int i = 0; i < 1025; i++)
        sl_buf_putc(&big, 'i');
    sl_buf_puts(&big, "\",\"inputs\":[]}");
    expect_error(big.data, "field 'id' is longer than 1024 bytes");
    sl_buf_free(&big);
}

static void test_data_errors(void **state) {
    /* Found by fuzzing: a huge declared shape with small nested data must be refused before
     * anything is allocated for it. */
    expect_error("{\"inputs\":[{\"name\":\"x\",\"datatype\":\"UINT16\","
                 "\"shape\":[890397518,2,2],\"data\":[[[1,2],[3,4]],[[5,8]]]}]}",
                 "input 'x': nested data does not match shape [890397518,2,2] (dimension 0 has 2 "
                 "entries, expected 890397518)");
    expect_error(
        "{\"inputs\":[{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[2,2],\"data\":[1,2,3]}]}",
        "input 'x': data has 3 elements, shape [2,2] needs 4");
    expect_error("{\"inputs\":[{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[2,2],"
                 "\"data\":[[1,2],[3]]}]}",
                 "input 'x': nested data does not match shape [2,2] (dimension 1 has 1 entries, "
                 "expected 2)");
    expect_error("{\"inputs\":[{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[2,2],"
                 "\"data\":[[1,2],[3,4],[5,6]]}]}",
                 "input 'x': nested data does not match shape [2,2] (dimension 0 has 3 entries, "
                 "expected 2)");
    expect_error("{\"inputs\":[{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[2,2],"
                 "\"data\":[[1,2],3]}]}",
                 "input 'x': nested data does not match shape [2,2] (a value where dimension 1 "
                 "needs an array of 2)");
    expect_error("{\"inputs\":[{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[1,2],"
                 "\"data\":[[[1],[2]]]}]}",
                 "input 'x': data is nested deeper than shape [1,2]");
    expect_error("{\"inputs\":[{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[2],"
                 "\"data\":[1,[2]]}]}",
                 "input 'x': data mixes arrays and values");
    expect_error("{\"inputs\":[{\"name\":\"x\",\"datatype\":\"INT8\",\"shape\":[3],"
                 "\"data\":[1,2,300]}]}",
                 "input 'x': element 2 (300) is out of range for INT8 (-128 to 127)");
    expect_error(
        "{\"inputs\":[{\"name\":\"x\",\"datatype\":\"UINT8\",\"shape\":[1],\"data\":[-1]}]}",
        "input 'x': element 0 (-1) is out of range for UINT8 (0 to 255)");
    expect_error(
        "{\"inputs\":[{\"name\":\"x\",\"datatype\":\"INT16\",\"shape\":[1],\"data\":[32768]}]}",
        "input 'x': element 0 (32768) is out of range for INT16 (-32768 to 32767)");
    expect_error(
        "{\"inputs\":[{\"name\":\"x\",\"datatype\":\"UINT16\",\"shape\":[1],\"data\":[65536]}]}",
        "input 'x': element 0 (65536) is out of range for UINT16 (0 to 65535)");
    expect_error("{\"inputs\":[{\"name\":\"x\",\"datatype\":\"INT32\",\"shape\":[1],"
                 "\"data\":[-2147483649]}]}",
                 "input 'x': element 0 (-2147483649) is out of range for INT32 (-2147483648 to "
                 "2147483647)");
    expect_error("{\"inputs\":[{\"name\":\"x\",\"datatype\":\"UINT32\",\"shape\":[1],"
                 "\"data\":[4294967296]}]}",
                 "input 'x': element 0 (4294967296) is out of range for UINT32 (0 to 4294967295)");
    expect_error(
        "{\"inputs\":[{\"name\":\"x\",\"datatype\":\"UINT64\",\"shape\":[1],\"data\":[-1]}]}",
        "input 'x': element 0 (-1) is out of range for UINT64 (0 to 18446744073709551615)");
    expect_error("{\"inputs\":[{\"name\":\"x\",\"datatype\":\"UINT64\",\"shape\":[1],"
                 "\"data\":[18446744073709551615]}]}",
                 "input 'x': element 0 (1.8446744073709552e+19) cannot be exact as a JSON number "
                 "(magnitude must be below 2^53); send UINT64 data as binary");
    expect_error("{\"inputs\":[{\"name\":\"x\",\"datatype\":\"INT64\",\"shape\":[1],"
                 "\"data\":[-9007199254740992]}]}",
                 "input 'x': element 0 (-9007199254740992) cannot be exact as a JSON number "
                 "(magnitude must be below 2^53); send INT64 data as binary");
    expect_error(
        "{\"inputs\":[{\"name\":\"x\",\"datatype\":\"INT32\",\"shape\":[1],\"data\":[1.5]}]}",
        "input 'x': element 0 (1.5) must be an integer (INT32)");
    expect_error(
        "{\"inputs\":[{\"name\":\"x\",\"datatype\":\"INT32\",\"shape\":[1],\"data\":[\"1\"]}]}",
        "input 'x': element 0 must be an integer (INT32)");
    expect_error(
        "{\"inputs\":[{\"name\":\"x\",\"datatype\":\"BOOL\",\"shape\":[2],\"data\":[true,1]}]}",
        "input 'x': element 1 must be true or false (BOOL)");
    expect_error(
        "{\"inputs\":[{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[1],\"data\":[null]}]}",
        "input 'x': element 0 must be a number (FP32)");
    expect_error(
        "{\"inputs\":[{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[1],\"data\":[\"NaN\"]}]}",
        "input 'x': element 0 must be a number (FP32)");
    expect_error(
        "{\"inputs\":[{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[1],\"data\":[1e39]}]}",
        "input 'x': element 0 is out of range for FP32");
    expect_error(
        "{\"inputs\":[{\"name\":\"x\",\"datatype\":\"FP64\",\"shape\":[1],\"data\":[1e999]}]}",
        "input 'x': element 0 is out of range for FP64");
    expect_error(
        "{\"inputs\":[{\"name\":\"x\",\"datatype\":\"BYTES\",\"shape\":[2],\"data\":[\"a\",2]}]}",
        "input 'x': element 1 must be a string (BYTES)");
    expect_error("{\"inputs\":[{\"name\":\"x\",\"datatype\":\"FP16\",\"shape\":[1],\"data\":[1]}]}",
                 "input 'x': FP16 data cannot be sent as JSON numbers; send it as binary data "
                 "(parameters.binary_data_size)");
    expect_error("{\"inputs\":[{\"name\":\"x\",\"datatype\":\"BF16\",\"shape\":[1],\"data\":[1]}]}",
                 "input 'x': BF16 data cannot be sent as JSON numbers; send it as binary data "
                 "(parameters.binary_data_size)");
}

static void test_binary_errors(void **state) {
    const char *one = "{\"inputs\":[{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[2,2],"
                      "\"parameters\":{\"binary_data_size\":16}}]}";
    uint8_t bin[32] = {0};
    expect_error_bin(one, bin, 10, true, "binary data is 10 bytes, inputs declare 16");
    expect_error_bin(one, bin, 20, true, "binary data is 20 bytes, inputs declare 16");
    expect_error_bin(one, NULL, 0, false,
                     "input 'x' has parameters.binary_data_size but the request has no "
                     "Inference-Header-Content-Length header");
    expect_error_bin("{\"inputs\":[{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[2,2],"
                     "\"parameters\":{\"binary_data_size\":12}}]}",
                     bin, 12, true,
                     "input 'x': binary_data_size is 12 bytes, shape [2,2] of FP32 needs 16");
    expect_error_bin("{\"inputs\":[{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[1],"
                     "\"parameters\":{\"binary_data_size\":-4}}]}",
                     bin, 4, true,
                     "input 'x': parameters.binary_data_size must be a non-negative integer");
    expect_error_bin(
        "{\"inputs\":[{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[1],\"data\":[1],"
        "\"parameters\":{\"binary_data_size\":4}}]}",
        bin, 4, true, "input 'x': has both 'data' and parameters.binary_data_size");
    const char *plain = "{\"inputs\":[{\"name\":\"x\",\"datatype\":\"INT8\",\"shape\":[1],"
                        "\"data\":[1]}]}";
    expect_error_bin(plain, bin, 3, true, "binary data is 3 bytes, inputs declare 0");
    /* Binary bytes without the header: the JSON has trailing garbage. */
    expect_error_bin(one, "\1\2\3\4", 4, false,
                     "invalid JSON: unexpected data after the value at byte 94");
    /* BYTES framing. */
    const char *s2 = "{\"inputs\":[{\"name\":\"s\",\"datatype\":\"BYTES\",\"shape\":[2],"
                     "\"parameters\":{\"binary_data_size\":%d}}]}";
    char json[256];
    snprintf(json, sizeof json, s2, 6);
    expect_error_bin(json, "\1\0\0\0a\0", 6, true,
                     "input 's': binary BYTES data is malformed (element 1's 4-byte length is cut "
                     "off)");
    snprintf(json, sizeof json, s2, 9);
    expect_error_bin(json, "\1\0\0\0a\x09\0\0\0", 9, true,
                     "input 's': binary BYTES data is malformed (element 1 declares 9 bytes, 0 "
                     "remain)");
    snprintf(json, sizeof json, s2, 5);
    expect_error_bin(json, "\1\0\0\0a", 5, true,
                     "input 's': binary BYTES data holds 1 elements, shape [2] needs 2");

    /* The header length itself. */
    sl_infer_request_t *req = sl_infer_request_new(NULL, NULL, NULL);
    sl_infer_error_t err;
    assert_int_equal(sl_oip_json_parse_request((const uint8_t *)"{}", 2, 500, req, &err),
                     SL_INFER_INVALID);
    assert_string_equal(err.msg,
                        "Inference-Header-Content-Length 500 is larger than the body (2 bytes)");
    assert_int_equal(sl_oip_json_parse_request((const uint8_t *)"{}", 2, -7, req, &err),
                     SL_INFER_INVALID);
    assert_string_equal(err.msg, "Inference-Header-Content-Length must be a non-negative integer");
    assert_int_equal(sl_oip_json_parse_request((const uint8_t *)"{}", 2, 0, req, &err),
                     SL_INFER_INVALID);
    assert_string_equal(err.msg, "invalid JSON: empty input");
    sl_infer_request_free(req);
}

/* ---- the JSON tokenizer (oip_json_scan.c): the language of core/json's sl_json_parse ---- */

/* The one input of a one-input request whose data is data (and shape [n]). */
static parsed_t parse_data(const char *dtype, int n, const char *data) {
    char buf[1024];
    snprintf(buf, sizeof buf,
             "{\"inputs\":[{\"name\":\"x\",\"datatype\":\"%s\",\"shape\":[%d],\"data\":[%s]}]}",
             dtype, n, data);
    return parse_ok(buf);
}

static void expect_data_error(const char *dtype, int n, const char *data, const char *want) {
    char buf[1024];
    snprintf(buf, sizeof buf,
             "{\"inputs\":[{\"name\":\"x\",\"datatype\":\"%s\",\"shape\":[%d],\"data\":[%s]}]}",
             dtype, n, data);
    expect_error(buf, want);
}

static void test_json_strings(void **state) {
    /* Every escape, \u in both cases, a surrogate pair, raw UTF-8, into BYTES as UTF-8. */
    parsed_t p = parse_data("BYTES", 3,
                            "\"\\\"\\\\\\/\\b\\f\\n\\r\\t\",\"\\u00e9\\u20AC\\ud83d\\ude00\","
                            "\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"");
    const sl_infer_input_t *in = &p.req->inputs[0];
    assert_int_equal(in->byte_size, 4 + 8 + 4 + 9 + 4 + 9);
    assert_memory_equal(in->data, "\x08\0\0\0\"\\/\b\f\n\r\t", 12);
    assert_memory_equal((const uint8_t *)in->data + 12,
                        "\x09\0\0\0\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 13);
    assert_memory_equal((const uint8_t *)in->data + 25, (const uint8_t *)in->data + 12, 13);
    parsed_free(&p);
    /* A \u escape with a non-hex digit decodes to a NUL byte (cJSON's parse_hex4), and a
     * string is what comes before its first NUL: for BYTES, names and keys alike. */
    p = parse_ok("{\"inputs\":[{\"n\\u0061me\\uzzzz\":\"ab\\u00zzcd\",\"datatype\":\"BYTES\","
                 "\"shape\":[1],\"data\":[\"xy\\uqqqqz\"]}]}");
    assert_string_equal(p.req->inputs[0].name, "ab");
    assert_int_equal(p.req->inputs[0].byte_size, 4 + 2);
    assert_memory_equal(p.req->inputs[0].data, "\2\0\0\0xy", 6);
    parsed_free(&p);
    expect_error("{\"inputs\":[{\"name\":\"\\uzzzzx\"}]}",
                 "input 0: field 'name' must be a non-empty string");
    /* Refused: a lone low surrogate, a high one without its low half, an unknown escape,
     * \u0000, raw control bytes, invalid UTF-8. */
    expect_error("{\"inputs\":[{\"name\":\"x\\udc00\"}]}", "invalid JSON at byte 21");
    expect_error("{\"inputs\":[{\"name\":\"x\\ud800y\"}]}", "invalid JSON at byte 21");
    expect_error("{\"inputs\":[{\"name\":\"x\\ud800\\u0041\"}]}", "invalid JSON at byte 21");
    expect_error("{\"inputs\":[{\"name\":\"x\\q\"}]}", "invalid JSON at byte 21");
    expect_error("{\"inputs\":[{\"name\":\"x\\u0000\"}]}",
                 "JSON strings must not contain \\u0000 (byte 21)");
    expect_error("{\"inputs\":[{\"name\":\"x\x01\"}]}",
                 "invalid JSON: control character in a string at byte 21");
    expect_error("{\"inputs\":[{\"name\":\"x\xc3\"}]}", "invalid JSON: invalid UTF-8 at byte 21");
    expect_error("{\"inputs\":[{\"name\":\"x\xed\xa0\x80\"}]}",
                 "invalid JSON: invalid UTF-8 at byte 21");
    expect_error("{\"inputs\":[{\"name\":\"x", "invalid JSON at byte 20");
    /* Duplicate keys: the first one counts, later ones are only checked as JSON. */
    p = parse_ok("{\"inputs\":[{\"name\":\"x\",\"datatype\":\"INT8\",\"shape\":[1],\"data\":[1],"
                 "\"data\":\"no\",\"name\":7}],\"inputs\":5}");
    assert_string_equal(p.req->inputs[0].name, "x");
    parsed_free(&p);
    expect_error("{\"inputs\":5,\"inputs\":[]}", "field 'inputs' must be an array");
}

static void test_json_numbers(void **state) {
    /* -0 is 0 for integers and keeps its sign for floating point. */
    parsed_t p = parse_data("INT32", 2, "-0,-2147483648");
    int32_t i32[2] = {0, INT32_MIN};
    assert_memory_equal(p.req->inputs[0].data, i32, sizeof i32);
    parsed_free(&p);
    p = parse_data("FP32", 1, "-0");
    assert_true(signbit(*(const float *)p.req->inputs[0].data));
    parsed_free(&p);
    p = parse_data("FP64", 2, "-0.0,1e-400");
    const double *f64 = p.req->inputs[0].data;
    assert_true(signbit(f64[0]) && f64[0] == 0);
    assert_true(f64[1] == 0); /* underflows to 0, as strtod reads it */
    parsed_free(&p);
    /* Out of range: 1e400 is infinite. */
    expect_data_error("FP64", 1, "1e400", "input 'x': element 0 is out of range for FP64");
    expect_data_error("FP32", 1, "-1e400", "input 'x': element 0 is out of range for FP32");
    expect_data_error("INT32", 1, "1e400", "input 'x': element 0 (inf) must be an integer (INT32)");
    /* FP32 takes what rounds from a double no larger than FLT_MAX. */
    expect_data_error("FP32", 1, "3.4028235677973366e38",
                      "input 'x': element 0 is out of range for FP32");
    p = parse_data("FP32", 1, "3.4028234663852886e38");
    assert_true(*(const float *)p.req->inputs[0].data == FLT_MAX);
    parsed_free(&p);
    /* Every double is the one strtod gives: short decimals, long ones, halfway cases,
     * subnormals, integers past 2^53. */
    const char *fp[] = {"0.1",
                        "-123.456e-7",
                        "3.141592653589793238462643383279",
                        "9007199254740993",
                        "2.2250738585072011e-308",
                        "4.9e-324",
                        "1.7976931348623157e308",
                        "123456789012345678901234567890e-20",
                        "0.000000000000000000000000001",
                        "1e22",
                        "1e23"};
    for (size_t k = 0; k < SL_ARRAY_LEN(fp); k++) {
        p = parse_data("FP64", 1, fp[k]);
        double want = strtod(fp[k], NULL);
        if (memcmp(p.req->inputs[0].data, &want, 8) != 0) fail_msg("%s", fp[k]);
        parsed_free(&p);
    }
    /* Huge integers: exact up to int64, doubles beyond, and always the 2^53 rule for 64-bit
     * data (the value a JSON reader with doubles would see). */
    p = parse_data("INT64", 2, "9007199254740991,-9007199254740991");
    int64_t i64[2] = {9007199254740991LL, -9007199254740991LL};
    assert_memory_equal(p.req->inputs[0].data, i64, sizeof i64);
    parsed_free(&p);
    expect_data_error("INT64", 1, "9007199254740993",
                      "input 'x': element 0 (9007199254740992) cannot be exact as a JSON number "
                      "(magnitude must be below 2^53); send INT64 data as binary");
    char huge[128] = "1"; /* 10^100: 101 digits */
    memset(huge + 1, '0', 100);
    huge[101] = '\0';
    expect_data_error("INT64", 1, huge,
                      "input 'x': element 0 (1e+100) cannot be exact as a JSON "
                      "number (magnitude must be below 2^53); send INT64 data as binary");
    expect_data_error("UINT8", 1, "-9223372036854775809",
                      "input 'x': element 0 (-9.2233720368547758e+18) is out of range for UINT8 (0 "
                      "to 255)");
    /* Integral values written as decimals count as integers, as their double does. */
    p = parse_data("UINT32", 4, "1.0,1e3,0.5e1,4294967295.0000000000000001");
    uint32_t u32[4] = {1, 1000, 5, 4294967295u};
    assert_memory_equal(p.req->inputs[0].data, u32, sizeof u32);
    parsed_free(&p);
    expect_data_error("INT16", 1, "2.5", "input 'x': element 0 (2.5) must be an integer (INT16)");
    /* What strtod reads whole is a number, so these pass; these do not. */
    p = parse_data("FP32", 4, "01,1.,-.5,1E+1");
    float f32[4] = {1, 1, -0.5f, 10};
    assert_memory_equal(p.req->inputs[0].data, f32, sizeof f32);
    parsed_free(&p);
    expect_error("{\"inputs\":[+1]}", "invalid JSON at byte 11");
    expect_error("{\"inputs\":[.5]}", "invalid JSON at byte 11");
    expect_error("{\"inputs\":[1e]}", "invalid JSON at byte 12");
    expect_error("{\"inputs\":[0x1]}", "invalid JSON at byte 12");
    /* Shapes and sizes read the same numbers. */
    expect_error("{\"inputs\":[{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[1e16]}]}",
                 "input 'x': shape must hold non-negative integers (dimension 0)");
    expect_error("{\"parameters\":{\"priority\":4294967296},\"inputs\":[]}",
                 "parameters.priority must be a non-negative integer");
    p = parse_ok(
        "{\"parameters\":{\"priority\":4294967295,\"timeout\":1.5e3},\"inputs\":[{\"name\":"
        "\"x\",\"datatype\":\"INT8\",\"shape\":[2e0,-0],\"data\":[]}]}");
    assert_int_equal(p.req->priority, 4294967295u);
    assert_int_equal(p.req->timeout_us, 1500);
    assert_int_equal(p.req->inputs[0].dims[0], 2);
    parsed_free(&p);
}

static void test_json_structure(void **state) {
    /* 64 levels of nesting pass (anywhere, even in an ignored field); 65 do not. Three are
     * the request's own: the root, inputs and the input. */
    sl_buf_t b = SL_BUF_INIT;
    for (int depth = 61; depth <= 62; depth++) {
        sl_buf_reset(&b);
        sl_buf_puts(&b, "{\"inputs\":[{\"name\":\"x\",\"datatype\":\"INT8\",\"shape\":[1],"
                        "\"data\":[1],\"z\":");
        for (int i = 0; i < depth; i++)
            sl_buf_putc(&b, '[');
        for (int i = 0; i < depth; i++)
            sl_buf_putc(&b, ']');
        sl_buf_puts(&b, "}]}");
        if (depth == 61) {
            parsed_t p = parse_ok(b.data);
            parsed_free(&p);
        } else {
            expect_error(b.data, "JSON nested deeper than 64 levels at byte 129");
        }
    }
    /* Whitespace between tokens is any byte up to 0x20 (cJSON's rule); after the value only
     * space, tab, CR and LF; a UTF-8 byte order mark may lead. */
    parsed_t p = parse_ok("\xef\xbb\xbf \x01{\"inputs\"\x1f:\x0b[{\"name\":\"x\",\"datatype\":"
                          "\"INT8\",\"shape\":[1],\"data\":[\x1f 1]}]} \t\r\n");
    assert_int_equal(*(const int8_t *)p.req->inputs[0].data, 1);
    parsed_free(&p);
    const char with_nul[] = "{\"inputs\":[]}\0";
    sl_infer_request_t *req = sl_infer_request_new(NULL, NULL, NULL);
    sl_infer_error_t err;
    assert_int_equal(
        sl_oip_json_parse_request((const uint8_t *)with_nul, sizeof with_nul - 1, -1, req, &err),
        SL_INFER_INVALID);
    assert_string_equal(err.msg, "invalid JSON: unexpected data after the value at byte 13");
    sl_infer_request_free(req);
    expect_error("{\"inputs\":[1,]}", "invalid JSON at byte 13");
    expect_error("{\"inputs\":[1 2]}", "invalid JSON at byte 13");
    expect_error("{\"inputs\":[tru]}", "invalid JSON at byte 11");
    expect_error(" ", "invalid JSON at byte 0");
    expect_error("\"inputs\"", "the request must be a JSON object");
    /* Past the containers whose ends the tokenizer remembers (SL_OIP_JSON_SPANS), skipping
     * scans: 40 inputs of nested data, every other one named in outputs. */
    sl_buf_reset(&b);
    sl_buf_puts(&b, "{\"id\":\"many\",\"inputs\":[");
    for (int i = 0; i < 40; i++) {
        sl_buf_printf(&b,
                      "%s{\"shape\":[2,2],\"data\":[[%d,1],[2,3]],\"name\":\"i%d\",\"datatype\":"
                      "\"INT16\",\"parameters\":{\"a\":[{}]}}",
                      i ? "," : "", i, i);
    }
    sl_buf_puts(&b, "],\"outputs\":[");
    for (int i = 0; i < 20; i++)
        sl_buf_printf(&b, "%s{\"name\":\"i%d\"}", i ? "," : "", 2 * i);
    sl_buf_puts(&b, "]}");
    p = parse_ok(b.data);
    assert_int_equal(p.req->n_inputs, 40);
    assert_int_equal(p.req->n_outputs, 20);
    assert_string_equal(p.req->id, "many");
    for (int i = 0; i < 40; i++) {
        int16_t want[4] = {(int16_t)i, 1, 2, 3};
        assert_memory_equal(p.req->inputs[i].data, want, sizeof want);
    }
    assert_string_equal(p.req->outputs[19].name, "i38");
    parsed_free(&p);
    sl_buf_free(&b);
}

/* ---- cost ---- */

/* Not a pass/fail check: prints what one parse costs on the gateway benchmark's request
 * (bench/gateway/run: two INT32 [1,16] inputs, compact JSON) and on an FP32 [1,64] request. Each
 * call is timed on its own (the clock read, some 20 ns, included); the request is made and freed
 * outside, as a server does per request, so the arena's first block is malloc'd warm. */
static double ns_per_parse(const char *json, int n) {
    size_t len = strlen(json);
    uint64_t total = 0;
    for (int i = 0; i < n; i++) {
        sl_infer_request_t *req = sl_infer_request_new(NULL, NULL, NULL);
        sl_infer_error_t err;
        uint64_t t0 = sl_now_ns();
        sl_infer_code_t rc = sl_oip_json_parse_request((const uint8_t *)json, len, -1, req, &err);
        total += sl_now_ns() - t0;
        if (rc != SL_INFER_OK) fail_msg("%s", err.msg);
        sl_infer_request_free(req);
    }
    return (double)total / n;
}

static void test_parse_timing(void **state) {
    sl_buf_t b = SL_BUF_INIT;
    sl_buf_puts(&b, "{\"inputs\":[{\"name\":\"INPUT0\",\"shape\":[1,16],\"datatype\":\"INT32\","
                    "\"data\":[");
    for (int i = 0; i < 16; i++)
        sl_buf_printf(&b, "%s%d", i ? "," : "", i);
    sl_buf_puts(&b, "]},{\"name\":\"INPUT1\",\"shape\":[1,16],\"datatype\":\"INT32\",\"data\":[");
    for (int i = 0; i < 16; i++)
        sl_buf_printf(&b, "%s1", i ? "," : "");
    sl_buf_puts(&b, "]}]}");
    sl_buf_t f = SL_BUF_INIT;
    sl_buf_puts(&f,
                "{\"inputs\":[{\"name\":\"x\",\"shape\":[1,64],\"datatype\":\"FP32\",\"data\":[");
    for (int i = 0; i < 64; i++)
        sl_buf_printf(&f, "%s%.6g", i ? "," : "", (i - 32) * 0.173);
    sl_buf_puts(&f, "]}]}");
    ns_per_parse(b.data, 5000); /* warm up */
    printf("oip_json: %.0f ns per parse of the gateway request (%zu bytes)\n",
           ns_per_parse(b.data, 100000), b.len);
    printf("oip_json: %.0f ns per parse of an FP32 [1,64] request (%zu bytes)\n",
           ns_per_parse(f.data, 50000), f.len);
    sl_buf_free(&b);
    sl_buf_free(&f);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_dtype),
        cmocka_unit_test(test_nested_and_flat),
        cmocka_unit_test(test_parameters_and_outputs),
        cmocka_unit_test(test_binary_inputs),
        cmocka_unit_test(test_binary_outputs),
        cmocka_unit_test(test_output_special_values),
        cmocka_unit_test(test_structure_errors),
        cmocka_unit_test(test_data_errors),
        cmocka_unit_test(test_binary_errors),
        cmocka_unit_test(test_json_strings),
        cmocka_unit_test(test_json_numbers),
        cmocka_unit_test(test_json_structure),
        cmocka_unit_test(test_parse_timing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
