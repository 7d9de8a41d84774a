/* Unit tests for inference/batch: request validation (every error a client can get), batches of
 * one request (zero copy) and of several (inputs concatenated along dimension 0, outputs split
 * back so that each caller gets its own rows and only the outputs it asked for), the host
 * functions' checks on what a backend produces, and failures reaching every request once. */
#include "inference/batch.h"

#include "core/log.h"

#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "inference_test_util.h"

/* ---- fixtures ---- */

static void result_clear(result_t *r) {
    sl_infer_response_free(r->resp);
    memset(r, 0, sizeof *r);
}

/* Model "m": inputs a FP32 [3] and b INT64 [-1]; outputs y FP32 [3], s INT64 [1] and t BYTES
 * [1]; max_batch_size 4 (0 when batching is false, then dims are full shapes). */
static void make_cfg(sl_model_config_t *cfg, bool batching) {
    memset(cfg, 0, sizeof *cfg);
    cfg->name = (char *)"m";
    cfg->max_batch_size = batching ? 4 : 0;
    if (batching) {
        set_tensor_desc(&cfg->inputs[0], "a", SLUICE_DT_FP32, 1, (int64_t[]){3});
        set_tensor_desc(&cfg->inputs[1], "b", SLUICE_DT_INT64, 1, (int64_t[]){-1});
        set_tensor_desc(&cfg->outputs[0], "y", SLUICE_DT_FP32, 1, (int64_t[]){3});
        set_tensor_desc(&cfg->outputs[1], "s", SLUICE_DT_INT64, 1, (int64_t[]){1});
        set_tensor_desc(&cfg->outputs[2], "t", SLUICE_DT_BYTES, 1, (int64_t[]){1});
    } else {
        set_tensor_desc(&cfg->inputs[0], "a", SLUICE_DT_FP32, 2, (int64_t[]){-1, 3});
        set_tensor_desc(&cfg->inputs[1], "b", SLUICE_DT_INT64, 1, (int64_t[]){-1});
        set_tensor_desc(&cfg->outputs[0], "y", SLUICE_DT_FP32, 2, (int64_t[]){-1, 3});
        set_tensor_desc(&cfg->outputs[1], "s", SLUICE_DT_INT64, 1, (int64_t[]){1});
        set_tensor_desc(&cfg->outputs[2], "t", SLUICE_DT_BYTES, 1, (int64_t[]){1});
    }
    cfg->n_inputs = 2;
    cfg->n_outputs = 3;
}

static sl_infer_input_t *add_input(sl_infer_request_t *req, const char *name, sluice_dtype_t dt,
                                   uint32_t ndim, const int64_t *dims, const void *data,
                                   uint64_t bytes) {
    sl_infer_input_t *in = sl_infer_request_add_input(req);
    in->name = sl_infer_request_strndup(req, name, strlen(name));
    in->dtype = dt;
    in->ndim = ndim;
    memcpy(in->dims, dims, ndim * sizeof *dims);
    void *copy = sl_infer_request_alloc(req, bytes ? bytes : 1);
    if (bytes) memcpy(copy, data, bytes);
    in->data = copy;
    in->byte_size = bytes;
    return in;
}

static void add_output(sl_infer_request_t *req, const char *name) {
    sl_infer_output_req_t *o = sl_infer_request_add_output(req);
    o->name = sl_infer_request_strndup(req, name, strlen(name));
}

/* A valid request for the batching model with `rows` rows: a[r] = {base+r, base+r+.25,
 * base+r+.5}, b[r] = {base+r, -(base+r)}. */
static sl_infer_request_t *good_request(result_t *res, int rows, int base) {
    sl_infer_request_t *req = sl_infer_request_new(NULL, on_done, res);
    float a[4 * 3];
    int64_t b[4 * 2];
    for (int r = 0; r < rows; r++) {
        for (int k = 0; k < 3; k++)
            a[r * 3 + k] = (float)(base + r) + 0.25f * (float)k;
        b[r * 2] = base + r;
        b[r * 2 + 1] = -(base + r);
    }
    add_input(req, "a", SLUICE_DT_FP32, 2, (int64_t[]){rows, 3}, a, (uint64_t)rows * 12);
    add_input(req, "b", SLUICE_DT_INT64, 2, (int64_t[]){rows, 2}, b, (uint64_t)rows * 16);
    return req;
}

/* Validates req (which must fail) and checks the message, then frees it. */
static void expect_invalid(const sl_model_config_t *cfg, sl_infer_request_t *req, const char *msg) {
    sl_infer_error_t err = {0};
    assert_int_equal(sl_batch_validate(cfg, req, &err), SL_INFER_INVALID);
    assert_int_equal(err.code, SL_INFER_INVALID);
    assert_string_equal(err.msg, msg);
    sl_infer_request_free(req);
}

static int quiet_logs(void **state) {
    int fd = open("/dev/null", O_WRONLY);
    if (fd >= 0) sl_log_set_fd(fd);
    return 0;
}

/* ---- validation ---- */

static void test_validate_ok_reorders_inputs(void **state) {
    sl_model_config_t cfg;
    make_cfg(&cfg, true);
    result_t res = {0};
    sl_infer_request_t *req = sl_infer_request_new(NULL, on_done, &res);
    int64_t b[2] = {7, 8};
    float a[3] = {1, 2, 3};
    add_input(req, "b", SLUICE_DT_INT64, 2, (int64_t[]){1, 2}, b, 16);
    add_input(req, "a", SLUICE_DT_FP32, 2, (int64_t[]){1, 3}, a, 12);
    add_output(req, "t");
    add_output(req, "y");
    sl_infer_error_t err = {0};
    assert_int_equal(sl_batch_validate(&cfg, req, &err), SL_INFER_OK);
    assert_string_equal(req->inputs[0].name, "a");
    assert_string_equal(req->inputs[1].name, "b");
    assert_memory_equal(req->inputs[0].data, a, 12);
    assert_memory_equal(req->inputs[1].data, b, 16);
    assert_int_equal(sl_batch_request_size(&cfg, req), 1);
    sl_infer_request_free(req);

    /* A three-row request; BYTES accepted when the prefixes are right. */
    req = good_request(&res, 3, 0);
    assert_int_equal(sl_batch_validate(&cfg, req, &err), SL_INFER_OK);
    assert_int_equal(sl_batch_request_size(&cfg, req), 3);
    sl_infer_request_free(req);
}

static void test_validate_names(void **state) {
    sl_model_config_t cfg;
    make_cfg(&cfg, true);
    float a[3] = {0};
    int64_t b[2] = {0};

    sl_infer_request_t *req = good_request(NULL, 1, 0);
    add_input(req, "c", SLUICE_DT_FP32, 2, (int64_t[]){1, 3}, a, 12);
    expect_invalid(&cfg, req, "model 'm' has no input 'c'");

    req = sl_infer_request_new(NULL, on_done, NULL);
    add_input(req, "a", SLUICE_DT_FP32, 2, (int64_t[]){1, 3}, a, 12);
    add_input(req, "a", SLUICE_DT_FP32, 2, (int64_t[]){1, 3}, a, 12);
    expect_invalid(&cfg, req, "input 'a' is given more than once");

    req = sl_infer_request_new(NULL, on_done, NULL);
    add_input(req, "a", SLUICE_DT_FP32, 2, (int64_t[]){1, 3}, a, 12);
    expect_invalid(&cfg, req, "missing input 'b' (model 'm' expects 2 inputs)");

    req = sl_infer_request_new(NULL, on_done, NULL);
    expect_invalid(&cfg, req, "missing input 'a' (model 'm' expects 2 inputs)");

    req = good_request(NULL, 1, 0);
    add_output(req, "nope");
    expect_invalid(&cfg, req, "model 'm' has no output 'nope' (requested in outputs)");

    req = good_request(NULL, 1, 0);
    add_output(req, "y");
    add_output(req, "s");
    add_output(req, "y");
    expect_invalid(&cfg, req, "output 'y' is requested more than once");
    (void)b;
}

static void test_validate_types_and_shapes(void **state) {
    sl_model_config_t cfg;
    make_cfg(&cfg, true);
    float a[5 * 4] = {0};
    int64_t b[5 * 2] = {0};
    sl_infer_request_t *req;

#define REQ_B(rows)                                                                                \
    add_input(req, "b", SLUICE_DT_INT64, 2, (int64_t[]){rows, 2}, b, (uint64_t)(rows)*16)

    req = sl_infer_request_new(NULL, on_done, NULL);
    add_input(req, "a", SLUICE_DT_INT64, 2, (int64_t[]){1, 3}, b, 24);
    REQ_B(1);
    expect_invalid(&cfg, req, "input 'a': expected datatype FP32, got INT64");

    req = sl_infer_request_new(NULL, on_done, NULL);
    add_input(req, "a", SLUICE_DT_FP32, 1, (int64_t[]){3}, a, 12);
    REQ_B(1);
    expect_invalid(&cfg, req, "input 'a': expected shape [-1,3], got [3]");

    req = sl_infer_request_new(NULL, on_done, NULL);
    add_input(req, "a", SLUICE_DT_FP32, 2, (int64_t[]){2, 4}, a, 32);
    REQ_B(2);
    expect_invalid(&cfg, req, "input 'a': expected shape [-1,3], got [2,4]");

    req = sl_infer_request_new(NULL, on_done, NULL);
    add_input(req, "a", SLUICE_DT_FP32, 2, (int64_t[]){1, -3}, a, 12);
    REQ_B(1);
    expect_invalid(&cfg, req, "input 'a': dimension 1 of shape [1,-3] is negative");

    req = sl_infer_request_new(NULL, on_done, NULL);
    add_input(req, "a", SLUICE_DT_FP32, 2, (int64_t[]){0, 3}, a, 0);
    REQ_B(1);
    expect_invalid(&cfg, req,
                   "input 'a': batch size (first dimension) 0 is outside 1..4 (max_batch_size)");

    req = sl_infer_request_new(NULL, on_done, NULL);
    add_input(req, "a", SLUICE_DT_FP32, 2, (int64_t[]){5, 3}, a, 60);
    REQ_B(5);
    expect_invalid(&cfg, req,
                   "input 'a': batch size (first dimension) 5 is outside 1..4 (max_batch_size)");

    req = sl_infer_request_new(NULL, on_done, NULL);
    add_input(req, "a", SLUICE_DT_FP32, 2, (int64_t[]){2, 3}, a, 24);
    REQ_B(3);
    expect_invalid(&cfg, req, "input 'b': batch size 3 differs from input 'a' (2)");

    req = sl_infer_request_new(NULL, on_done, NULL);
    add_input(req, "a", SLUICE_DT_FP32, 2, (int64_t[]){2, 3}, a, 20);
    REQ_B(2);
    expect_invalid(&cfg, req, "input 'a': shape [2,3] of FP32 needs 24 bytes, got 20");

    req = sl_infer_request_new(NULL, on_done, NULL);
    add_input(req, "a", SLUICE_DT_FP32, 2, (int64_t[]){1, 3}, a, 12);
    add_input(req, "b", SLUICE_DT_INT64, 2, (int64_t[]){1, INT64_C(1) << 62}, b, 16);
    expect_invalid(&cfg, req, "input 'b': shape [1,4611686018427387904] is too large");

    /* Non-batching: the declared dims are the whole shape. */
    make_cfg(&cfg, false);
    req = sl_infer_request_new(NULL, on_done, NULL);
    add_input(req, "a", SLUICE_DT_FP32, 2, (int64_t[]){5, 3}, a, 60);
    add_input(req, "b", SLUICE_DT_INT64, 1, (int64_t[]){2}, b, 16);
    sl_infer_error_t err = {0};
    assert_int_equal(sl_batch_validate(&cfg, req, &err), SL_INFER_OK);
    assert_int_equal(sl_batch_request_size(&cfg, req), 1);
    sl_infer_request_free(req);

    req = sl_infer_request_new(NULL, on_done, NULL);
    add_input(req, "a", SLUICE_DT_FP32, 3, (int64_t[]){1, 5, 3}, a, 60);
    add_input(req, "b", SLUICE_DT_INT64, 1, (int64_t[]){2}, b, 16);
    expect_invalid(&cfg, req, "input 'a': expected shape [-1,3], got [1,5,3]");
#undef REQ_B
}

static void test_validate_bytes(void **state) {
    sl_model_config_t cfg = {0};
    cfg.name = (char *)"txt";
    cfg.max_batch_size = 0;
    set_tensor_desc(&cfg.inputs[0], "text", SLUICE_DT_BYTES, 1, (int64_t[]){-1});
    set_tensor_desc(&cfg.outputs[0], "len", SLUICE_DT_INT32, 1, (int64_t[]){-1});
    cfg.n_inputs = 1;
    cfg.n_outputs = 1;
    /* Two elements: "hi" and "". */
    const uint8_t good[] = {2, 0, 0, 0, 'h', 'i', 0, 0, 0, 0};
    sl_infer_error_t err = {0};
    sl_infer_request_t *req = sl_infer_request_new(NULL, on_done, NULL);
    add_input(req, "text", SLUICE_DT_BYTES, 1, (int64_t[]){2}, good, sizeof good);
    assert_int_equal(sl_batch_validate(&cfg, req, &err), SL_INFER_OK);
    sl_infer_request_free(req);

    req = sl_infer_request_new(NULL, on_done, NULL);
    add_input(req, "text", SLUICE_DT_BYTES, 1, (int64_t[]){3}, good, sizeof good);
    expect_invalid(&cfg, req,
                   "input 'text': BYTES data (10 bytes for shape [3]) ends inside the length "
                   "prefix of element 2");

    const uint8_t long_claim[] = {9, 0, 0, 0, 'h', 'i'};
    req = sl_infer_request_new(NULL, on_done, NULL);
    add_input(req, "text", SLUICE_DT_BYTES, 1, (int64_t[]){1}, long_claim, sizeof long_claim);
    expect_invalid(&cfg, req,
                   "input 'text': BYTES data (6 bytes for shape [1]) element 0 claims 9 bytes, "
                   "only 2 remain");

    req = sl_infer_request_new(NULL, on_done, NULL);
    add_input(req, "text", SLUICE_DT_BYTES, 1, (int64_t[]){1}, good, sizeof good);
    expect_invalid(&cfg, req,
                   "input 'text': BYTES data (10 bytes for shape [1]) has 4 bytes after its last "
                   "element");

    /* A huge element count with little data fails fast instead of looping. */
    req = sl_infer_request_new(NULL, on_done, NULL);
    add_input(req, "text", SLUICE_DT_BYTES, 1, (int64_t[]){INT64_C(1) << 60}, good, sizeof good);
    expect_invalid(&cfg, req,
                   "input 'text': BYTES data (10 bytes for shape [1152921504606846976]) ends "
                   "inside the length prefix of element 2");
}

/* ---- batches ---- */

/* A test backend's execute: y = 2a, s = sum(b row), t = "r<b[row][0]>" as BYTES. Only wanted
 * outputs are produced. */
static sluice_status_t *fake_execute(sluice_batch_t *b) {
    const sluice_host_t *h = sl_backend_host();
    const sluice_tensor_t *a = h->batch_input(b, 0), *bi = h->batch_input(b, 1);
    assert_null(h->batch_input(b, 2));
    uint64_t rows = h->batch_size(b);
    assert_int_equal(a->dims[0], rows);
    assert_int_equal(bi->dims[0], rows);
    const float *av = a->data;
    const int64_t *bv = bi->data;
    sluice_status_t *st;
    void *data;
    if (h->batch_output_wanted(b, 0)) {
        st = h->output_alloc(b, 0, SLUICE_DT_FP32, 2, (int64_t[]){(int64_t)rows, 3}, 0, &data);
        assert_null(st);
        for (uint64_t i = 0; i < rows * 3; i++)
            ((float *)data)[i] = 2 * av[i];
    }
    if (h->batch_output_wanted(b, 1)) {
        st = h->output_alloc(b, 1, SLUICE_DT_INT64, 2, (int64_t[]){(int64_t)rows, 1}, 0, &data);
        assert_null(st);
        for (uint64_t r = 0; r < rows; r++)
            ((int64_t *)data)[r] = bv[2 * r] + 1000 * bv[2 * r];
    }
    if (h->batch_output_wanted(b, 2)) {
        char buf[4096];
        size_t n = 0;
        for (uint64_t r = 0; r < rows; r++) {
            char s[32];
            uint32_t len = (uint32_t)snprintf(s, sizeof s, "r%lld", (long long)bv[2 * r]);
            memcpy(buf + n, &len, 4);
            memcpy(buf + n + 4, s, len);
            n += 4 + len;
        }
        st = h->output_alloc(b, 2, SLUICE_DT_BYTES, 2, (int64_t[]){(int64_t)rows, 1}, n, &data);
        assert_null(st);
        memcpy(data, buf, n);
    }
    return NULL;
}

static void test_batch_of_one_is_zero_copy(void **state) {
    sl_model_config_t cfg;
    make_cfg(&cfg, true);
    result_t res = {0};
    sl_infer_request_t *req = good_request(&res, 2, 10);
    sl_infer_error_t err = {0};
    assert_int_equal(sl_batch_validate(&cfg, req, &err), SL_INFER_OK);
    const void *a_data = req->inputs[0].data;
    sluice_batch_t *b = sl_batch_new(&cfg, "m", "1.0.0", &req, 1);
    const sluice_host_t *h = sl_backend_host();
    assert_int_equal(h->api_major, SLUICE_BACKEND_API_MAJOR);
    assert_int_equal(h->batch_request_count(b), 1);
    assert_int_equal(h->batch_size(b), 2);
    assert_ptr_equal(h->batch_input(b, 0)->data, a_data);
    assert_string_equal(h->batch_input(b, 0)->name, "a");
    assert_true(h->batch_output_wanted(b, 0) && h->batch_output_wanted(b, 2));
    sl_batch_finish(b, fake_execute(b));
    sl_batch_free(b);

    assert_int_equal(res.calls, 1);
    assert_int_equal(res.code, SL_INFER_OK);
    sl_infer_response_t *resp = res.resp;
    assert_string_equal(resp->model_name, "m");
    assert_string_equal(resp->model_version, "1.0.0");
    assert_int_equal(resp->n_outputs, 3); /* none named: all, config order */
    assert_string_equal(resp->outputs[0].name, "y");
    assert_string_equal(resp->outputs[1].name, "s");
    assert_string_equal(resp->outputs[2].name, "t");
    float want_y[6] = {20, 20.5f, 21, 22, 22.5f, 23};
    assert_int_equal(resp->outputs[0].byte_size, sizeof want_y);
    assert_memory_equal(resp->outputs[0].data, want_y, sizeof want_y);
    assert_int_equal(resp->outputs[0].ndim, 2);
    assert_int_equal(resp->outputs[0].dims[0], 2);
    assert_int_equal(resp->outputs[0].dims[1], 3);
    assert_memory_equal(resp->outputs[2].data, "\x03\0\0\0r10\x03\0\0\0r11", 14);
    assert_true(res.t_start > 0 && res.t_end >= res.t_start);
    result_clear(&res);
}

static void test_batch_of_three_splits_rows(void **state) {
    sl_model_config_t cfg;
    make_cfg(&cfg, true);
    result_t res[3] = {{0}};
    /* Batch sizes 1, 3 and 2; each request asks for different outputs. */
    sl_infer_request_t *reqs[3] = {good_request(&res[0], 1, 100), good_request(&res[1], 3, 200),
                                   good_request(&res[2], 2, 300)};
    add_output(reqs[1], "s");
    add_output(reqs[2], "t");
    add_output(reqs[2], "y");
    sl_infer_error_t err = {0};
    for (int i = 0; i < 3; i++)
        assert_int_equal(sl_batch_validate(&cfg, reqs[i], &err), 0);
    assert_true(sl_batch_can_join(&cfg, reqs[0], reqs[1]));
    sluice_batch_t *b = sl_batch_new(&cfg, "m", "2.1.0", reqs, 3);
    const sluice_host_t *h = sl_backend_host();
    assert_int_equal(h->batch_request_count(b), 3);
    assert_int_equal(h->batch_size(b), 6);
    const sluice_tensor_t *a = h->batch_input(b, 0);
    assert_int_equal(a->dims[0], 6);
    assert_int_equal(a->byte_size, 6 * 12);
    const float *av = a->data;
    float want_rows[6] = {100, 200, 201, 202, 300, 301};
    for (int r = 0; r < 6; r++)
        assert_true(av[r * 3] == want_rows[r]);
    const int64_t *bv = h->batch_input(b, 1)->data;
    assert_int_equal(bv[2 * 3], 202);
    assert_int_equal(bv[2 * 3 + 1], -202);
    sl_batch_finish(b, fake_execute(b));
    sl_batch_free(b);

    for (int i = 0; i < 3; i++) {
        assert_int_equal(res[i].calls, 1);
        assert_int_equal(res[i].code, SL_INFER_OK);
    }
    /* Request 0: every output, its one row. */
    sl_infer_response_t *r0 = res[0].resp;
    assert_int_equal(r0->n_outputs, 3);
    assert_int_equal(r0->outputs[0].dims[0], 1);
    assert_true(((float *)r0->outputs[0].data)[2] == 201.0f);
    assert_int_equal(((int64_t *)r0->outputs[1].data)[0], 100100);
    assert_memory_equal(r0->outputs[2].data, "\x04\0\0\0r100", 8);
    assert_int_equal(r0->outputs[2].byte_size, 8);
    /* Request 1: only s, rows 200..202. */
    sl_infer_response_t *r1 = res[1].resp;
    assert_int_equal(r1->n_outputs, 1);
    assert_string_equal(r1->outputs[0].name, "s");
    assert_int_equal(r1->outputs[0].dims[0], 3);
    assert_int_equal(r1->outputs[0].dims[1], 1);
    assert_int_equal(r1->outputs[0].byte_size, 24);
    int64_t want_s[3] = {200200, 201201, 202202};
    assert_memory_equal(r1->outputs[0].data, want_s, sizeof want_s);
    /* Request 2: t then y, in its order, rows 300..301. */
    sl_infer_response_t *r2 = res[2].resp;
    assert_int_equal(r2->n_outputs, 2);
    assert_string_equal(r2->outputs[0].name, "t");
    assert_string_equal(r2->outputs[1].name, "y");
    assert_int_equal(r2->outputs[0].dtype, SLUICE_DT_BYTES);
    assert_memory_equal(r2->outputs[0].data, "\x04\0\0\0r300\x04\0\0\0r301", 16);
    float want_y[6] = {600, 600.5f, 601, 602, 602.5f, 603};
    assert_memory_equal(r2->outputs[1].data, want_y, sizeof want_y);
    assert_int_equal(r2->outputs[1].dims[0], 2);
    for (int i = 0; i < 3; i++)
        result_clear(&res[i]);
}

static void test_outputs_nobody_wants_are_skipped(void **state) {
    sl_model_config_t cfg;
    make_cfg(&cfg, true);
    result_t res[2] = {{0}};
    sl_infer_request_t *reqs[2] = {good_request(&res[0], 1, 1), good_request(&res[1], 1, 2)};
    add_output(reqs[0], "y");
    add_output(reqs[1], "y");
    sl_infer_error_t err = {0};
    for (int i = 0; i < 2; i++)
        assert_int_equal(sl_batch_validate(&cfg, reqs[i], &err), 0);
    sluice_batch_t *b = sl_batch_new(&cfg, "m", "1.0.0", reqs, 2);
    const sluice_host_t *h = sl_backend_host();
    assert_true(h->batch_output_wanted(b, 0));
    assert_false(h->batch_output_wanted(b, 1));
    assert_false(h->batch_output_wanted(b, 2));
    assert_false(h->batch_output_wanted(b, 3));
    sl_batch_finish(b, fake_execute(b));
    sl_batch_free(b);
    assert_int_equal(res[1].code, SL_INFER_OK);
    assert_int_equal(res[1].resp->n_outputs, 1);
    assert_true(((float *)res[1].resp->outputs[0].data)[0] == 4.0f);
    for (int i = 0; i < 2; i++)
        result_clear(&res[i]);
}

static void test_can_join_needs_equal_inner_dims(void **state) {
    sl_model_config_t cfg;
    make_cfg(&cfg, true);
    /* b is declared [-1]: requests with 2 and 3 columns cannot share a batch. */
    sl_infer_request_t *x = good_request(NULL, 1, 0);
    sl_infer_request_t *y = sl_infer_request_new(NULL, on_done, NULL);
    float a[3] = {0};
    int64_t b[3] = {0};
    add_input(y, "a", SLUICE_DT_FP32, 2, (int64_t[]){1, 3}, a, 12);
    add_input(y, "b", SLUICE_DT_INT64, 2, (int64_t[]){1, 3}, b, 24);
    sl_infer_error_t err = {0};
    assert_int_equal(sl_batch_validate(&cfg, x, &err), 0);
    assert_int_equal(sl_batch_validate(&cfg, y, &err), 0);
    assert_false(sl_batch_can_join(&cfg, x, y));
    assert_true(sl_batch_can_join(&cfg, x, x));
    sl_infer_request_free(x);
    sl_infer_request_free(y);
}

/* ---- failures ---- */

static void run_failing(sluice_status_t *(*exec)(sluice_batch_t *), sl_infer_code_t code,
                        const char *msg) {
    sl_model_config_t cfg;
    make_cfg(&cfg, true);
    result_t res[2] = {{0}};
    sl_infer_request_t *reqs[2] = {good_request(&res[0], 1, 1), good_request(&res[1], 2, 2)};
    sl_infer_error_t err = {0};
    for (int i = 0; i < 2; i++)
        assert_int_equal(sl_batch_validate(&cfg, reqs[i], &err), 0);
    sluice_batch_t *b = sl_batch_new(&cfg, "m", "1.0.0", reqs, 2);
    sl_batch_finish(b, exec(b));
    sl_batch_free(b);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(res[i].calls, 1);
        assert_null(res[i].resp);
        assert_int_equal(res[i].code, code);
        assert_string_equal(res[i].msg, msg);
    }
}

static sluice_status_t *exec_invalid(sluice_batch_t *b) {
    return sl_backend_host()->status_new(SLUICE_STATUS_INVALID_ARGUMENT, "input 'a': %s",
                                         "values must be positive");
}

static sluice_status_t *exec_internal(sluice_batch_t *b) {
    return sl_backend_host()->status_new(SLUICE_STATUS_INTERNAL, "segfault avoided at %s",
                                         "/secret/path");
}

static sluice_status_t *exec_missing_output(sluice_batch_t *b) {
    return NULL; /* produces nothing */
}

static sluice_status_t *exec_bad_bytes(sluice_batch_t *b) {
    const sluice_host_t *h = sl_backend_host();
    void *data;
    assert_null(h->output_alloc(b, 0, SLUICE_DT_FP32, 2, (int64_t[]){3, 3}, 0, &data));
    assert_null(h->output_alloc(b, 1, SLUICE_DT_INT64, 2, (int64_t[]){3, 1}, 0, &data));
    /* Room for 3 prefixes, but the first claims 100 bytes. */
    assert_null(h->output_alloc(b, 2, SLUICE_DT_BYTES, 2, (int64_t[]){3, 1}, 12, &data));
    ((uint8_t *)data)[0] = 100;
    return NULL;
}

static void test_failures_reach_every_request(void **state) {
    run_failing(exec_invalid, SL_INFER_INVALID, "input 'a': values must be positive");
    run_failing(exec_internal, SL_INFER_INTERNAL, "internal error while executing model 'm'");
    run_failing(exec_missing_output, SL_INFER_INTERNAL, "internal error while executing model 'm'");
}

static void test_output_alloc_checks(void **state) {
    sl_model_config_t cfg;
    make_cfg(&cfg, true);
    result_t res = {0};
    sl_infer_request_t *req = good_request(&res, 2, 0);
    sl_infer_error_t err = {0};
    assert_int_equal(sl_batch_validate(&cfg, req, &err), 0);
    sluice_batch_t *b = sl_batch_new(&cfg, "m", "1.0.0", &req, 1);
    const sluice_host_t *h = sl_backend_host();
    void *data = (void *)1;
    sluice_status_t *st;

    st = h->output_alloc(b, 0, SLUICE_DT_FP64, 2, (int64_t[]){2, 3}, 0, &data);
    assert_non_null(st);
    assert_null(data);
    assert_int_equal(sl_status_code(st), SLUICE_STATUS_INVALID_ARGUMENT);
    assert_string_equal(sl_status_message(st),
                        "output 'y': the model produced datatype FP64, its config declares FP32");
    sl_status_free(st);

    st = h->output_alloc(b, 0, SLUICE_DT_FP32, 2, (int64_t[]){3, 3}, 0, &data);
    assert_string_equal(sl_status_message(st), "output 'y': the model produced shape [3,3] for a "
                                               "batch of 2, its config declares [-1,3]");
    sl_status_free(st);

    st = h->output_alloc(b, 0, SLUICE_DT_FP32, 1, (int64_t[]){6}, 0, &data);
    assert_string_equal(sl_status_message(st), "output 'y': the model produced shape [6] for a "
                                               "batch of 2, its config declares [-1,3]");
    sl_status_free(st);

    st = h->output_alloc(b, 0, SLUICE_DT_FP32, 2, (int64_t[]){2, 4}, 0, &data);
    assert_non_null(st);
    sl_status_free(st);

    st = h->output_alloc(b, 7, SLUICE_DT_FP32, 2, (int64_t[]){2, 3}, 0, &data);
    assert_int_equal(sl_status_code(st), SLUICE_STATUS_INTERNAL);
    assert_string_equal(sl_status_message(st),
                        "output_alloc: output index 7 out of range (model has 3)");
    sl_status_free(st);

    st = h->output_alloc(b, 2, SLUICE_DT_BYTES, 2, (int64_t[]){2, 1}, 7, &data);
    assert_string_equal(sl_status_message(st),
                        "output 't': 7 bytes cannot hold [2,1] BYTES elements");
    sl_status_free(st);

    st = h->output_alloc(b, 0, SLUICE_DT_FP32, 2, (int64_t[]){2, 3}, 0, &data);
    assert_null(st);
    assert_non_null(data);
    float zero[6] = {0};
    assert_memory_equal(data, zero, sizeof zero); /* zeroed */
    st = h->output_alloc(b, 0, SLUICE_DT_FP32, 2, (int64_t[]){2, 3}, 0, &data);
    assert_string_equal(sl_status_message(st), "output 'y' allocated twice");
    sl_status_free(st);

    /* Outputs the request wants but the backend never produced fail it as an internal error;
     * so does a malformed BYTES output. */
    sl_batch_finish(b, NULL);
    sl_batch_free(b);
    assert_int_equal(res.calls, 1);
    assert_int_equal(res.code, SL_INFER_INTERNAL);
    result_clear(&res);

    run_failing(exec_bad_bytes, SL_INFER_INTERNAL, "internal error while executing model 'm'");
}

static void test_non_batching_model(void **state) {
    sl_model_config_t cfg;
    make_cfg(&cfg, false);
    result_t res = {0};
    sl_infer_request_t *req = sl_infer_request_new(NULL, on_done, &res);
    float a[6] = {1, 2, 3, 4, 5, 6};
    int64_t b[2] = {5, 6};
    add_input(req, "a", SLUICE_DT_FP32, 2, (int64_t[]){2, 3}, a, 24);
    add_input(req, "b", SLUICE_DT_INT64, 1, (int64_t[]){2}, b, 16);
    add_output(req, "s");
    sl_infer_error_t err = {0};
    assert_int_equal(sl_batch_validate(&cfg, req, &err), 0);
    sluice_batch_t *bt = sl_batch_new(&cfg, "m", "1.0.0", &req, 1);
    const sluice_host_t *h = sl_backend_host();
    assert_int_equal(h->batch_size(bt), 1);
    void *data;
    /* The whole shape is checked against the declared dims: [1] for s. */
    sluice_status_t *st = h->output_alloc(bt, 1, SLUICE_DT_INT64, 1, (int64_t[]){2}, 0, &data);
    assert_string_equal(sl_status_message(st),
                        "output 's': the model produced shape [2] for a batch of 1, its config "
                        "declares [1]");
    sl_status_free(st);
    assert_null(h->output_alloc(bt, 1, SLUICE_DT_INT64, 1, (int64_t[]){1}, 0, &data));
    *(int64_t *)data = 11;
    sl_batch_finish(bt, NULL);
    sl_batch_free(bt);
    assert_int_equal(res.code, SL_INFER_OK);
    assert_int_equal(res.resp->outputs[0].dims[0], 1);
    assert_int_equal(*(int64_t *)res.resp->outputs[0].data, 11);
    result_clear(&res);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_validate_ok_reorders_inputs),
        cmocka_unit_test(test_validate_names),
        cmocka_unit_test(test_validate_types_and_shapes),
        cmocka_unit_test(test_validate_bytes),
        cmocka_unit_test(test_batch_of_one_is_zero_copy),
        cmocka_unit_test(test_batch_of_three_splits_rows),
        cmocka_unit_test(test_outputs_nobody_wants_are_skipped),
        cmocka_unit_test(test_can_join_needs_equal_inner_dims),
        cmocka_unit_test(test_failures_reach_every_request),
        cmocka_unit_test(test_output_alloc_checks),
        cmocka_unit_test(test_non_batching_model),
    };
    return cmocka_run_group_tests(tests, quiet_logs, NULL);
}
