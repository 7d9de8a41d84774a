/* Unit tests for the backend registry and the built-in backends: ABI checks (a backend built for
 * another MAJOR, or a newer MINOR, is refused with a clear message), the registry's built-ins
 * and shared objects (the in-tree `simple` example loaded with dlopen from <build>/backends),
 * the onnx backend on examples/models/mlp_digits against PyTorch's outputs, and the xgboost
 * backend against XGBoost's own predictions (bit-identical) on models this test trains with the
 * C API and saves as UBJ and JSON. Models run through the real data path: validated requests,
 * sl_batch_new, execute, sl_batch_finish. */
#include "engine/npy.h"
#include "inference/backends.h"
#include "inference/batch.h"

#include "core/common.h"
#include "core/log.h"

#include <fcntl.h>
#include <libgen.h>
#include <math.h>
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
#include <xgboost/c_api.h>

/* ---- fixtures ---- */

/* A model as the manager would hand it over: its config and the desc built from it. */
typedef struct model {
    sl_model_config_t cfg;
    sluice_model_desc_t desc;
    const char *keys[4], *values[4];
} model_t;

static void model_init(model_t *m, const char *name, const char *path, uint32_t max_batch) {
    memset(m, 0, sizeof *m);
    m->cfg.name = (char *)name;
    m->cfg.max_batch_size = max_batch;
    m->desc.struct_size = sizeof m->desc;
    m->desc.name = name;
    m->desc.version = "1.0.0";
    m->desc.artifact_path = path;
    m->desc.version_dir = "/nonexistent";
    m->desc.max_batch_size = max_batch;
    m->desc.inputs = m->cfg.inputs;
    m->desc.outputs = m->cfg.outputs;
    m->desc.param_keys = m->keys;
    m->desc.param_values = m->values;
}

static void model_input(model_t *m, const char *name, sluice_dtype_t dt, uint32_t ndim,
                        const int64_t *dims) {
    set_tensor_desc(&m->cfg.inputs[m->cfg.n_inputs++], name, dt, ndim, dims);
    m->desc.n_inputs = m->cfg.n_inputs;
}

static void model_output(model_t *m, const char *name, sluice_dtype_t dt, uint32_t ndim,
                         const int64_t *dims) {
    set_tensor_desc(&m->cfg.outputs[m->cfg.n_outputs++], name, dt, ndim, dims);
    m->desc.n_outputs = m->cfg.n_outputs;
}

static void model_param(model_t *m, const char *key, const char *value) {
    m->keys[m->desc.n_params] = key;
    m->values[m->desc.n_params++] = value;
}

static sl_infer_request_t *request(result_t *res) {
    memset(res, 0, sizeof *res);
    return sl_infer_request_new(NULL, on_done, res);
}

static void request_input(sl_infer_request_t *req, const char *name, sluice_dtype_t dt,
                          uint32_t ndim, const int64_t *dims, const void *data, uint64_t bytes) {
    sl_infer_input_t *in = sl_infer_request_add_input(req);
    in->name = sl_infer_request_strndup(req, name, strlen(name));
    in->dtype = dt;
    in->ndim = ndim;
    memcpy(in->dims, dims, ndim * sizeof *dims);
    in->data = data; /* borrowed, as a wire buffer would be */
    in->byte_size = bytes;
}

/* Validates and runs n requests as one batch on instance inst of backend be. */
static void run_batch(const sluice_backend_iface_t *be, void *inst, const model_t *m,
                      sl_infer_request_t **reqs, size_t n) {
    sl_infer_error_t err = {0};
    for (size_t i = 0; i < n; i++) {
        sl_infer_code_t code = sl_batch_validate(&m->cfg, reqs[i], &err);
        if (code != SL_INFER_OK) fail_msg("validate: %s", err.msg);
    }
    sluice_batch_t *b = sl_batch_new(&m->cfg, m->cfg.name, "1.0.0", reqs, n);
    sl_batch_finish(b, be->execute(inst, b));
    sl_batch_free(b);
}

/* Loads m on be and expects msg (prefix) as the refusal. */
static void expect_load_error(const sluice_backend_iface_t *be, void *be_state, const model_t *m,
                              sluice_status_code_t code, const char *msg) {
    void *ms = (void *)1;
    sluice_status_t *st = be->model_load(be_state, &m->desc, &ms);
    assert_non_null(st);
    assert_null(ms);
    if (strncmp(sl_status_message(st), msg, strlen(msg)) != 0) {
        fail_msg("got \"%s\", expected \"%s...\"", sl_status_message(st), msg);
    }
    assert_int_equal(sl_status_code(st), code);
    sl_status_free(st);
}

static char tmpdir[64];

static int setup(void **state) {
    int fd = open("/dev/null", O_WRONLY);
    if (fd >= 0) sl_log_set_fd(fd);
    snprintf(tmpdir, sizeof tmpdir, "/tmp/sl-test-backends-XXXXXX");
    assert_non_null(mkdtemp(tmpdir));
    return 0;
}

static int teardown(void **state) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

/* <build>/backends, from this executable's path (<build>/test_inference_backends). */
static void backend_dir(char *out, size_t cap) {
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    assert_true(n > 0);
    exe[n] = '\0';
    snprintf(out, cap, "%s/backends", dirname(exe));
}

/* ---- ABI checks ---- */

static sluice_status_t *fake_load(void *bs, const sluice_model_desc_t *d, void **ms) {
    return NULL;
}
static void fake_unload(void *ms) {}
static sluice_status_t *fake_inst(void *ms, const sluice_instance_desc_t *d, void **is) {
    return NULL;
}
static void fake_inst_free(void *is) {}
static sluice_status_t *fake_exec(void *is, sluice_batch_t *b) {
    return NULL;
}

static void test_check_iface(void **state) {
    sluice_backend_iface_t f = {
        .api_major = SLUICE_BACKEND_API_MAJOR,
        .api_minor = SLUICE_BACKEND_API_MINOR,
        .name = "fake",
        .model_load = fake_load,
        .model_unload = fake_unload,
        .instance_new = fake_inst,
        .instance_free = fake_inst_free,
        .execute = fake_exec,
    };
    sl_buf_t err = SL_BUF_INIT;
    assert_int_equal(sl_backends__check_iface(&f, &err), 0);
    assert_int_equal(err.len, 0);

    f.api_major = 2;
    assert_int_equal(sl_backends__check_iface(&f, &err), SL_EINVAL);
    assert_string_equal(err.data, "backend 'fake' was built for ABI 2.0, this server speaks 1.0");
    sl_buf_reset(&err);

    f.api_major = 1;
    f.api_minor = SLUICE_BACKEND_API_MINOR + 1;
    assert_int_equal(sl_backends__check_iface(&f, &err), SL_EINVAL);
    assert_string_equal(err.data, "backend 'fake' was built for ABI 1.1, this server speaks 1.0");
    sl_buf_reset(&err);

    f.api_minor = 0;
    f.execute = NULL;
    assert_int_equal(sl_backends__check_iface(&f, &err), SL_EINVAL);
    assert_string_equal(err.data, "backend 'fake' lacks the required entry execute");
    sl_buf_reset(&err);

    f.execute = fake_exec;
    f.name = NULL;
    assert_int_equal(sl_backends__check_iface(&f, &err), SL_EINVAL);
    assert_string_equal(err.data, "the backend's interface has no name");
    sl_buf_reset(&err);

    assert_int_equal(sl_backends__check_iface(NULL, &err), SL_EINVAL);
    sl_buf_free(&err);

    /* The built-ins pass their own check. */
    sl_buf_t e2 = SL_BUF_INIT;
    assert_int_equal(sl_backends__check_iface(sl_backend_onnx_entry(), &e2), 0);
    assert_int_equal(sl_backends__check_iface(sl_backend_xgboost_entry(), &e2), 0);
    sl_buf_free(&e2);
}

/* ---- the registry ---- */

static void test_registry_builtins_and_errors(void **state) {
    sl_backends_t *reg = sl_backends_new(NULL);
    sl_buf_t err = SL_BUF_INIT;
    void *st = (void *)1;
    const sluice_backend_iface_t *onnx = sl_backends_get(reg, "onnx", &st, &err);
    assert_non_null(onnx);
    assert_string_equal(onnx->name, "onnx");
    assert_ptr_equal(sl_backends_get(reg, "onnx", &st, &err), onnx); /* initialised once */
    assert_non_null(sl_backends_get(reg, "xgboost", &st, &err));
    assert_int_equal(err.len, 0);

    assert_null(sl_backends_get(reg, "nope", &st, &err));
    assert_string_equal(err.data, "backend 'nope' not found (built-in: onnx, xgboost; no backend "
                                  "directory configured)");
    sl_buf_reset(&err);
    sl_backends_free(reg);

    /* A directory: names are never paths; a file that is no shared object is reported. */
    reg = sl_backends_new(tmpdir);
    assert_null(sl_backends_get(reg, "../x", &st, &err));
    assert_string_equal(err.data,
                        "backend name '../x' is invalid (1-64 letters, digits, '_' or '-')");
    sl_buf_reset(&err);
    assert_null(sl_backends_get(reg, "nope", &st, &err));
    char want[512];
    snprintf(want, sizeof want, "backend 'nope' not found (built-in: onnx, xgboost; searched %s)",
             tmpdir);
    assert_string_equal(err.data, want);
    sl_buf_reset(&err);

    char path[256];
    snprintf(path, sizeof path, "%s/libsluice_backend_junk.so", tmpdir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("not an ELF file\n", f);
    fclose(f);
    assert_null(sl_backends_get(reg, "junk", &st, &err));
    snprintf(want, sizeof want, "backend 'junk': cannot load %s: ", path);
    assert_memory_equal(err.data, want, strlen(want));
    sl_buf_free(&err);
    sl_backends_free(reg);
}

/* ---- the simple example backend, from its shared object ---- */

static void test_simple_backend_so(void **state) {
    char dir[4096];
    backend_dir(dir, sizeof dir);
    char so[4200];
    snprintf(so, sizeof so, "%s/libsluice_backend_simple.so", dir);
    if (access(so, R_OK) != 0) fail_msg("%s is missing: build target sluice_backend_simple", so);

    sl_backends_t *reg = sl_backends_new(dir);
    sl_buf_t err = SL_BUF_INIT;
    void *bs = NULL;
    const sluice_backend_iface_t *be = sl_backends_get(reg, "simple", &bs, &err);
    if (!be) fail_msg("%s", err.data);
    assert_string_equal(be->name, "simple");
    assert_non_null(bs); /* backend_init ran */
    assert_non_null(be->backend_fini);

    model_t m;
    model_init(&m, "simple", "/nonexistent/none", 8);
    model_input(&m, "INPUT0", SLUICE_DT_INT32, 1, (int64_t[]){16});
    model_input(&m, "INPUT1", SLUICE_DT_INT32, 1, (int64_t[]){16});
    model_output(&m, "OUTPUT0", SLUICE_DT_INT32, 1, (int64_t[]){16});
    model_output(&m, "OUTPUT1", SLUICE_DT_INT32, 1, (int64_t[]){16});
    model_param(&m, "delay_us", "20000");
    void *ms = NULL, *inst = NULL;
    assert_null(be->model_load(bs, &m.desc, &ms));
    sluice_instance_desc_t idesc = {.struct_size = sizeof idesc, .threads = 1};
    assert_null(be->instance_new(ms, &idesc, &inst));

    /* Two requests in one batch: rows 1 and 2; the second asks only for OUTPUT1. */
    int32_t a0[16], b0[16], a1[32], b1[32];
    for (int i = 0; i < 16; i++) {
        a0[i] = i;
        b0[i] = 1;
    }
    for (int i = 0; i < 32; i++) {
        a1[i] = 100 * i;
        b1[i] = i;
    }
    a1[5] = INT32_MAX; /* wraps instead of overflowing */
    result_t r0, r1;
    sl_infer_request_t *reqs[2] = {request(&r0), request(&r1)};
    request_input(reqs[0], "INPUT0", SLUICE_DT_INT32, 2, (int64_t[]){1, 16}, a0, sizeof a0);
    request_input(reqs[0], "INPUT1", SLUICE_DT_INT32, 2, (int64_t[]){1, 16}, b0, sizeof b0);
    request_input(reqs[1], "INPUT1", SLUICE_DT_INT32, 2, (int64_t[]){2, 16}, b1, sizeof b1);
    request_input(reqs[1], "INPUT0", SLUICE_DT_INT32, 2, (int64_t[]){2, 16}, a1, sizeof a1);
    sl_infer_output_req_t *o = sl_infer_request_add_output(reqs[1]);
    o->name = "OUTPUT1";
    uint64_t t0 = sl_now_ns();
    run_batch(be, inst, &m, reqs, 2);
    uint64_t elapsed_us = (sl_now_ns() - t0) / 1000;
    assert_true(elapsed_us >= 20000); /* delay_us honoured */

    assert_int_equal(r0.calls, 1);
    assert_int_equal(r0.code, SL_INFER_OK);
    assert_int_equal(r0.resp->n_outputs, 2);
    const int32_t *sum = r0.resp->outputs[0].data, *diff = r0.resp->outputs[1].data;
    for (int i = 0; i < 16; i++) {
        assert_int_equal(sum[i], i + 1);
        assert_int_equal(diff[i], i - 1);
    }
    assert_int_equal(r1.calls, 1);
    assert_int_equal(r1.resp->n_outputs, 1);
    assert_string_equal(r1.resp->outputs[0].name, "OUTPUT1");
    assert_int_equal(r1.resp->outputs[0].dims[0], 2);
    diff = r1.resp->outputs[0].data;
    for (int i = 0; i < 32; i++)
        assert_int_equal(diff[i], (int32_t)((uint32_t)a1[i] - (uint32_t)i));
    sl_infer_response_free(r0.resp);
    sl_infer_response_free(r1.resp);
    be->instance_free(inst);
    be->model_unload(ms);

    /* Config errors are the backend's to report. */
    m.values[0] = "soon";
    expect_load_error(be, bs, &m, SLUICE_STATUS_INVALID_ARGUMENT,
                      "model 'simple': parameter delay_us must be an integer in 0..60000000, got "
                      "'soon'");
    m.cfg.inputs[1].name = "INPUTX";
    expect_load_error(be, bs, &m, SLUICE_STATUS_INVALID_ARGUMENT,
                      "model 'simple': the simple backend needs a tensor named INPUT1");
    sl_buf_free(&err);
    sl_backends_free(reg); /* backend_fini, dlclose */
}

/* ---- onnx ---- */

static void test_onnx_mlp_digits(void **state) {
    const sluice_backend_iface_t *be = sl_backend_onnx_entry();
    model_t m;
    model_init(&m, "mlp_digits", SOURCE_DIR "/examples/models/mlp_digits/model.onnx", 16);
    model_input(&m, "pixels", SLUICE_DT_FP32, 1, (int64_t[]){64});
    model_output(&m, "logits", SLUICE_DT_FP32, 1, (int64_t[]){10});
    void *ms = NULL;
    sluice_status_t *st = be->model_load(NULL, &m.desc, &ms);
    if (st) fail_msg("%s", sl_status_message(st));

    sl_tensor_t x, y;
    sl_eng_error_t eerr = {0};
    assert_int_equal(sl_npy_read_file(SOURCE_DIR "/examples/models/mlp_digits/reference/"
                                                 "input.pixels.npy",
                                      0, &x, &eerr),
                     SL_ENG_OK);
    assert_int_equal(sl_npy_read_file(SOURCE_DIR "/examples/models/mlp_digits/reference/"
                                                 "output.logits.npy",
                                      0, &y, &eerr),
                     SL_ENG_OK);
    assert_int_equal(x.dims[0], 16);
    assert_int_equal(x.dims[1], 64);

    /* One instance single-threaded, one with two intra-op threads; rows split 5/5/6. */
    for (uint32_t threads = 1; threads <= 2; threads++) {
        void *inst = NULL;
        sluice_instance_desc_t idesc = {.struct_size = sizeof idesc, .threads = threads};
        st = be->instance_new(ms, &idesc, &inst);
        if (st) fail_msg("%s", sl_status_message(st));
        result_t res[3];
        sl_infer_request_t *reqs[3];
        const int64_t rows[3] = {5, 5, 6};
        const float *px = x.data;
        for (int i = 0, at = 0; i < 3; at += (int)rows[i], i++) {
            reqs[i] = request(&res[i]);
            request_input(reqs[i], "pixels", SLUICE_DT_FP32, 2, (int64_t[]){rows[i], 64},
                          px + at * 64, (uint64_t)rows[i] * 64 * 4);
        }
        run_batch(be, inst, &m, reqs, 3);
        const float *want = y.data;
        for (int i = 0, at = 0; i < 3; at += (int)rows[i], i++) {
            assert_int_equal(res[i].calls, 1);
            if (res[i].code != SL_INFER_OK) fail_msg("%s", res[i].msg);
            const sl_infer_output_t *out = &res[i].resp->outputs[0];
            assert_string_equal(out->name, "logits");
            assert_int_equal(out->dims[0], rows[i]);
            assert_int_equal(out->dims[1], 10);
            const float *got = out->data;
            for (int k = 0; k < rows[i] * 10; k++) {
                float w = want[at * 10 + k];
                assert_true(fabsf(got[k] - w) <= 1e-5f * fmaxf(1.0f, fabsf(w)));
            }
            sl_infer_response_free(res[i].resp);
        }
        be->instance_free(inst);
    }
    free(x.data);
    free(y.data);
    be->model_unload(ms);
}

static void test_onnx_config_checks(void **state) {
    const sluice_backend_iface_t *be = sl_backend_onnx_entry();
    const char *path = SOURCE_DIR "/examples/models/mlp_digits/model.onnx";
    model_t m;

    model_init(&m, "d", path, 16);
    model_input(&m, "image", SLUICE_DT_FP32, 1, (int64_t[]){64});
    model_output(&m, "logits", SLUICE_DT_FP32, 1, (int64_t[]){10});
    expect_load_error(be, NULL, &m, SLUICE_STATUS_INVALID_ARGUMENT,
                      "input 'image' of config.yaml is not an input of the ONNX model");

    model_init(&m, "d", path, 16);
    model_input(&m, "pixels", SLUICE_DT_FP64, 1, (int64_t[]){64});
    model_output(&m, "logits", SLUICE_DT_FP32, 1, (int64_t[]){10});
    expect_load_error(be, NULL, &m, SLUICE_STATUS_INVALID_ARGUMENT,
                      "input 'pixels': config.yaml declares FP64, the ONNX model has FP32");

    model_init(&m, "d", path, 16);
    model_input(&m, "pixels", SLUICE_DT_FP32, 1, (int64_t[]){63});
    model_output(&m, "logits", SLUICE_DT_FP32, 1, (int64_t[]){10});
    expect_load_error(be, NULL, &m, SLUICE_STATUS_INVALID_ARGUMENT,
                      "input 'pixels': config.yaml declares shape [-1,63], the ONNX model has "
                      "[-1,64]");

    /* Without batching the declared dims are the full shape. */
    model_init(&m, "d", path, 0);
    model_input(&m, "pixels", SLUICE_DT_FP32, 1, (int64_t[]){64});
    model_output(&m, "logits", SLUICE_DT_FP32, 2, (int64_t[]){-1, 10});
    expect_load_error(be, NULL, &m, SLUICE_STATUS_INVALID_ARGUMENT,
                      "input 'pixels': config.yaml declares shape [64], the ONNX model has "
                      "[-1,64]");

    model_init(&m, "d", path, 16);
    model_input(&m, "pixels", SLUICE_DT_FP32, 1, (int64_t[]){64});
    model_output(&m, "probs", SLUICE_DT_FP32, 1, (int64_t[]){10});
    expect_load_error(be, NULL, &m, SLUICE_STATUS_INVALID_ARGUMENT,
                      "output 'probs' of config.yaml is not an output of the ONNX model");

    model_init(&m, "d", path, 16);
    model_output(&m, "logits", SLUICE_DT_FP32, 1, (int64_t[]){10});
    expect_load_error(be, NULL, &m, SLUICE_STATUS_INVALID_ARGUMENT,
                      "the ONNX model's input 'pixels' is not declared in config.yaml");

    model_init(&m, "d", "/nonexistent/model.onnx", 16);
    model_input(&m, "pixels", SLUICE_DT_FP32, 1, (int64_t[]){64});
    expect_load_error(be, NULL, &m, SLUICE_STATUS_NOT_FOUND, "cannot load the ONNX model of 'd': ");

    /* A non-batching config that matches loads, and a wrong shape at run time is the client's
     * error (INVALID_ARGUMENT with the engine's message), not an internal one. */
    model_init(&m, "d", path, 0);
    model_input(&m, "pixels", SLUICE_DT_FP32, 2, (int64_t[]){-1, 64});
    model_output(&m, "logits", SLUICE_DT_FP32, 2, (int64_t[]){-1, 10});
    void *ms = NULL, *inst = NULL;
    assert_null(be->model_load(NULL, &m.desc, &ms));
    sluice_instance_desc_t idesc = {.struct_size = sizeof idesc, .threads = 1};
    assert_null(be->instance_new(ms, &idesc, &inst));
    float px[2 * 64] = {0};
    result_t res;
    sl_infer_request_t *req = request(&res);
    request_input(req, "pixels", SLUICE_DT_FP32, 2, (int64_t[]){2, 64}, px, sizeof px);
    run_batch(be, inst, &m, &req, 1);
    assert_int_equal(res.code, SL_INFER_OK);
    assert_int_equal(res.resp->outputs[0].dims[0], 2);
    sl_infer_response_free(res.resp);
    be->instance_free(inst);
    be->model_unload(ms);
}

/* ---- xgboost ---- */

#define XGB_ROWS 64
#define XGB_COLS 4

#define XGB_OK(call)                                                                               \
    do {                                                                                           \
        if ((call) != 0) fail_msg("%s: %s", #call, XGBGetLastError());                             \
    } while (0)

static const char predict_cfg[] = "{\"type\":0,\"training\":false,\"iteration_begin\":0,"
                                  "\"iteration_end\":0,\"strict_shape\":false,\"missing\":NaN,"
                                  "\"cache_id\":0}";

/* Deterministic features with real signal; labels by objective. */
static void make_data(float *X, float *y, int n_class) {
    uint32_t s = 12345;
    for (int r = 0; r < XGB_ROWS; r++) {
        for (int c = 0; c < XGB_COLS; c++) {
            s = s * 1664525u + 1013904223u;
            X[r * XGB_COLS + c] = (float)(s >> 8) / (float)(1u << 24);
        }
        float v = X[r * XGB_COLS] + 0.5f * X[r * XGB_COLS + 1];
        y[r] = n_class > 1    ? (float)((int)(v * (float)n_class / 1.5f) % n_class)
               : n_class == 1 ? (v > 0.75f ? 1.0f : 0.0f)
                              : 3.0f * v - X[r * XGB_COLS + 2];
    }
}

/* Trains a few rounds with a fixed seed and saves the model as <tmpdir>/<stem>.ubj and .json.
 * Returns the booster for reference predictions. */
static BoosterHandle train(const char *objective, int n_class, const char *stem, float *X) {
    float y[XGB_ROWS];
    make_data(X, y, n_class);
    DMatrixHandle d;
    XGB_OK(XGDMatrixCreateFromMat(X, XGB_ROWS, XGB_COLS, NAN, &d));
    XGB_OK(XGDMatrixSetFloatInfo(d, "label", y, XGB_ROWS));
    BoosterHandle b;
    XGB_OK(XGBoosterCreate(&d, 1, &b));
    XGB_OK(XGBoosterSetParam(b, "objective", objective));
    if (n_class > 1) {
        char nc[16];
        snprintf(nc, sizeof nc, "%d", n_class);
        XGB_OK(XGBoosterSetParam(b, "num_class", nc));
    }
    XGB_OK(XGBoosterSetParam(b, "seed", "7"));
    XGB_OK(XGBoosterSetParam(b, "nthread", "1"));
    XGB_OK(XGBoosterSetParam(b, "max_depth", "3"));
    XGB_OK(XGBoosterSetParam(b, "eta", "0.3"));
    for (int i = 0; i < 5; i++)
        XGB_OK(XGBoosterUpdateOneIter(b, i, d));
    char path[256];
    snprintf(path, sizeof path, "%s/%s.ubj", tmpdir, stem);
    XGB_OK(XGBoosterSaveModel(b, path));
    snprintf(path, sizeof path, "%s/%s.json", tmpdir, stem);
    XGB_OK(XGBoosterSaveModel(b, path));
    XGB_OK(XGDMatrixFree(d));
    return b;
}

/* Loads <stem>.<ext> through the backend and checks three requests (2, 1 and 5 rows) against
 * XGBoost's own prediction on the same rows, bit for bit. */
static void check_xgb(BoosterHandle ref, const float *X, const char *stem, const char *ext,
                      int per_row, const int64_t *out_dims, uint32_t out_ndim) {
    const sluice_backend_iface_t *be = sl_backend_xgboost_entry();
    char path[256];
    snprintf(path, sizeof path, "%s/%s.%s", tmpdir, stem, ext);
    model_t m;
    model_init(&m, stem, path, 8);
    model_input(&m, "features", SLUICE_DT_FP32, 1, (int64_t[]){XGB_COLS});
    model_output(&m, "score", SLUICE_DT_FP32, out_ndim, out_dims);
    void *ms = NULL, *inst = NULL;
    sluice_status_t *st = be->model_load(NULL, &m.desc, &ms);
    if (st) fail_msg("%s", sl_status_message(st));
    sluice_instance_desc_t idesc = {.struct_size = sizeof idesc, .threads = 2};
    st = be->instance_new(ms, &idesc, &inst);
    if (st) fail_msg("%s", sl_status_message(st));

    const int rows[3] = {2, 1, 5}, total = 8;
    char arr[256];
    snprintf(arr, sizeof arr,
             "{\"data\":[%llu,true],\"shape\":[%d,%d],\"typestr\":\"<f4\",\"version\":3}",
             (unsigned long long)(uintptr_t)X, total, XGB_COLS);
    const bst_ulong *shape;
    bst_ulong dim;
    const float *want;
    XGB_OK(XGBoosterPredictFromDense(ref, arr, predict_cfg, NULL, &shape, &dim, &want));
    assert_int_equal(shape[0], total);
    float expect[8 * 8];
    memcpy(expect, want, (size_t)total * (size_t)per_row * sizeof(float));

    result_t res[3];
    sl_infer_request_t *reqs[3];
    for (int i = 0, at = 0; i < 3; at += rows[i], i++) {
        reqs[i] = request(&res[i]);
        request_input(reqs[i], "features", SLUICE_DT_FP32, 2, (int64_t[]){rows[i], XGB_COLS},
                      X + at * XGB_COLS, (uint64_t)rows[i] * XGB_COLS * 4);
    }
    run_batch(be, inst, &m, reqs, 3);
    for (int i = 0, at = 0; i < 3; at += rows[i], i++) {
        if (res[i].code != SL_INFER_OK) fail_msg("%s", res[i].msg);
        const sl_infer_output_t *o = &res[i].resp->outputs[0];
        assert_int_equal(o->ndim, out_ndim + 1);
        assert_int_equal(o->dims[0], rows[i]);
        assert_int_equal(o->byte_size, (uint64_t)rows[i] * (uint64_t)per_row * 4);
        assert_memory_equal(o->data, expect + at * per_row, o->byte_size);
        sl_infer_response_free(res[i].resp);
    }
    be->instance_free(inst);
    be->model_unload(ms);
}

static void test_xgboost_matches_xgboost(void **state) {
    float X[XGB_ROWS * XGB_COLS];
    BoosterHandle bin = train("binary:logistic", 1, "binary", X);
    check_xgb(bin, X, "binary", "ubj", 1, NULL, 0);
    check_xgb(bin, X, "binary", "json", 1, NULL, 0);
    check_xgb(bin, X, "binary", "ubj", 1, (int64_t[]){1}, 1);
    XGBoosterFree(bin);

    BoosterHandle multi = train("multi:softprob", 3, "multi", X);
    check_xgb(multi, X, "multi", "ubj", 3, (int64_t[]){3}, 1);
    check_xgb(multi, X, "multi", "json", 3, (int64_t[]){-1}, 1);
    XGBoosterFree(multi);

    BoosterHandle reg = train("reg:squarederror", 0, "reg", X);
    check_xgb(reg, X, "reg", "json", 1, NULL, 0);
    XGBoosterFree(reg);
}

static void test_xgboost_config_checks(void **state) {
    float X[XGB_ROWS * XGB_COLS];
    XGBoosterFree(train("multi:softprob", 3, "m3", X));
    const sluice_backend_iface_t *be = sl_backend_xgboost_entry();
    char path[256];
    snprintf(path, sizeof path, "%s/m3.ubj", tmpdir);
    model_t m;

    model_init(&m, "m3", path, 8);
    model_input(&m, "features", SLUICE_DT_FP32, 1, (int64_t[]){5});
    model_output(&m, "probs", SLUICE_DT_FP32, 1, (int64_t[]){3});
    expect_load_error(be, NULL, &m, SLUICE_STATUS_INVALID_ARGUMENT,
                      "input 'features': config.yaml declares 5 features, the XGBoost model was "
                      "trained on 4");

    model_init(&m, "m3", path, 8);
    model_input(&m, "features", SLUICE_DT_FP32, 1, (int64_t[]){4});
    model_output(&m, "probs", SLUICE_DT_FP32, 0, NULL);
    expect_load_error(be, NULL, &m, SLUICE_STATUS_INVALID_ARGUMENT,
                      "output 'probs': objective multi:softprob gives 3 value(s) per row, so "
                      "declare dims [3], got []");

    model_init(&m, "m3", path, 8);
    model_input(&m, "features", SLUICE_DT_INT64, 1, (int64_t[]){4});
    model_output(&m, "probs", SLUICE_DT_FP32, 1, (int64_t[]){3});
    expect_load_error(be, NULL, &m, SLUICE_STATUS_INVALID_ARGUMENT,
                      "input 'features': the xgboost backend takes FP32 [n_features], config.yaml "
                      "declares INT64 [4]");

    model_init(&m, "m3", path, 8);
    model_input(&m, "features", SLUICE_DT_FP32, 1, (int64_t[]){4});
    model_output(&m, "probs", SLUICE_DT_FP32, 1, (int64_t[]){3});
    model_output(&m, "extra", SLUICE_DT_FP32, 1, (int64_t[]){3});
    expect_load_error(be, NULL, &m, SLUICE_STATUS_INVALID_ARGUMENT,
                      "model 'm3': the xgboost backend takes one input and one output, "
                      "config.yaml declares 1 inputs and 2 outputs");

    char bad[256];
    snprintf(bad, sizeof bad, "%s/model.bin", tmpdir);
    model_init(&m, "m3", bad, 8);
    model_input(&m, "features", SLUICE_DT_FP32, 1, (int64_t[]){4});
    model_output(&m, "probs", SLUICE_DT_FP32, 1, (int64_t[]){3});
    expect_load_error(be, NULL, &m, SLUICE_STATUS_INVALID_ARGUMENT,
                      "model 'm3': an XGBoost artifact must be a .json or .ubj file, got "
                      "'model.bin'");

    snprintf(bad, sizeof bad, "%s/corrupt.json", tmpdir);
    FILE *f = fopen(bad, "w");
    assert_non_null(f);
    fputs("{\"learner\": 3", f);
    fclose(f);
    m.desc.artifact_path = bad;
    expect_load_error(be, NULL, &m, SLUICE_STATUS_INVALID_ARGUMENT,
                      "model 'm3': cannot load the XGBoost model 'corrupt.json': ");

    /* Non-batching: [rows, n_features] in, [rows, k] out. */
    model_init(&m, "m3", path, 0);
    model_input(&m, "features", SLUICE_DT_FP32, 2, (int64_t[]){-1, 4});
    model_output(&m, "probs", SLUICE_DT_FP32, 2, (int64_t[]){-1, 3});
    void *ms = NULL, *inst = NULL;
    sluice_status_t *st = be->model_load(NULL, &m.desc, &ms);
    if (st) fail_msg("%s", sl_status_message(st));
    sluice_instance_desc_t idesc = {.struct_size = sizeof idesc, .threads = 1};
    assert_null(be->instance_new(ms, &idesc, &inst));
    result_t res;
    sl_infer_request_t *req = request(&res);
    request_input(req, "features", SLUICE_DT_FP32, 2, (int64_t[]){3, 4}, X, 3 * 4 * 4);
    run_batch(be, inst, &m, &req, 1);
    if (res.code != SL_INFER_OK) fail_msg("%s", res.msg);
    assert_int_equal(res.resp->outputs[0].dims[0], 3);
    assert_int_equal(res.resp->outputs[0].dims[1], 3);
    const float *p = res.resp->outputs[0].data;
    for (int r = 0; r < 3; r++) {
        float s = p[r * 3] + p[r * 3 + 1] + p[r * 3 + 2];
        assert_true(fabsf(s - 1.0f) < 1e-5f); /* probabilities */
    }
    sl_infer_response_free(res.resp);
    be->instance_free(inst);
    be->model_unload(ms);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_check_iface),
        cmocka_unit_test(test_registry_builtins_and_errors),
        cmocka_unit_test(test_simple_backend_so),
        cmocka_unit_test(test_onnx_mlp_digits),
        cmocka_unit_test(test_onnx_config_checks),
        cmocka_unit_test(test_xgboost_matches_xgboost),
        cmocka_unit_test(test_xgboost_config_checks),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
