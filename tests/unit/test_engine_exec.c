/* Unit tests of the engine's executor (src/engine/exec.c): runs of small models built in memory
 * and of ONNX node test models, input validation messages, outputs that are inputs or
 * initializers, limits at run time and arena reuse (a warm run adds no block). */
#include "engine/engine.h"
#include "engine/model_internal.h"
#include "engine/tensor_proto.h"
#include "engine_model_builder.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const int64_t dN3[] = {-1, 3};
static const int64_t d3[] = {3};
static const float bias[] = {1, 2, 3};

/* y = x[N,3] + b[3]; extra outputs: the input x itself and the initializer b. */
static sl_model_t *add_model(bool extra_outputs, const sl_model_opts_t *opts) {
    spec_t s = {0};
    s.inputs[s.n_inputs++] = vinfo("x", SL_DT_FLOAT, 2, dN3);
    s.inits[s.n_inits++] = tensor_f("b", 1, d3, bias, 3);
    s.nodes[s.n_nodes++] = node("Add", "add0", "x,b", "y");
    s.outputs[s.n_outputs++] = vinfo("y", SL_DT_FLOAT, 2, dN3);
    if (extra_outputs) {
        s.outputs[s.n_outputs++] = vinfo("x", SL_DT_FLOAT, 2, dN3);
        s.outputs[s.n_outputs++] = vinfo("b", SL_DT_FLOAT, 1, d3);
    }
    sl_model_t *m = spec_load_ok(&s, opts);
    builder_reset();
    return m;
}

static sl_tensor_t ftensor(float *data, int ndim, int64_t d0, int64_t d1) {
    sl_tensor_t t = {.dtype = SL_DT_FLOAT, .ndim = ndim, .data = data};
    t.dims[0] = d0;
    t.dims[1] = d1;
    return t;
}

/* ---- tests ---- */

static void test_run_and_arena_reuse(void **state) {
    sl_model_t *m = add_model(false, NULL);
    sl_run_t *r;
    sl_eng_error_t err;
    assert_int_equal(sl_run_new(m, &r, &err), SL_ENG_OK);
    float xs[6] = {0, 1, 2, 3, 4, 5};
    sl_tensor_t x = ftensor(xs, 2, 2, 3), y;
    assert_int_equal(sl_run_exec(r, &x, 1, &y, 1, &err), SL_ENG_OK);
    assert_int_equal(y.dtype, SL_DT_FLOAT);
    assert_int_equal(y.ndim, 2);
    assert_int_equal(y.dims[0], 2);
    assert_int_equal(y.dims[1], 3);
    const float want[6] = {1, 3, 5, 4, 6, 8};
    assert_memory_equal(y.data, want, sizeof want);
    assert_int_equal((uintptr_t)y.data % 64, 0);
    size_t blocks = sl_run_arena_blocks(r);
    assert_true(blocks >= 1);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(sl_run_exec(r, &x, 1, &y, 1, &err), SL_ENG_OK);
        assert_int_equal(sl_run_arena_blocks(r), blocks);
    }
    /* A batch too large for the first block adds one, which later runs keep using. */
    size_t n = 200000;
    float *big = calloc(n * 3, sizeof *big);
    assert_non_null(big);
    big[n * 3 - 1] = 7;
    sl_tensor_t xb = ftensor(big, 2, (int64_t)n, 3);
    assert_int_equal(sl_run_exec(r, &xb, 1, &y, 1, &err), SL_ENG_OK);
    assert_int_equal(y.dims[0], (int64_t)n);
    assert_true(((float *)y.data)[n * 3 - 1] == 10.0f);
    size_t grown = sl_run_arena_blocks(r);
    assert_true(grown > blocks);
    assert_int_equal(sl_run_exec(r, &x, 1, &y, 1, &err), SL_ENG_OK);
    assert_memory_equal(y.data, want, sizeof want);
    assert_int_equal(sl_run_exec(r, &xb, 1, &y, 1, &err), SL_ENG_OK);
    assert_int_equal(sl_run_arena_blocks(r), grown);
    free(big);
    /* Zero rows is a valid batch. */
    sl_tensor_t x0 = ftensor(xs, 2, 0, 3);
    assert_int_equal(sl_run_exec(r, &x0, 1, &y, 1, &err), SL_ENG_OK);
    assert_int_equal(y.dims[0], 0);
    sl_run_free(r);
    sl_model_free(m);
}

static void expect_input_error(sl_run_t *r, const sl_tensor_t *x, size_t n, sl_eng_status_t code,
                               const char *msg) {
    sl_tensor_t y[3];
    sl_eng_error_t err = {0};
    sl_eng_status_t st = sl_run_exec(r, x, n, y, 3, &err);
    if (st != code || strcmp(err.msg, msg) != 0) {
        print_error("want %d '%s', got %d '%s'\n", code, msg, st, err.msg);
        fail();
    }
}

static void test_input_validation(void **state) {
    sl_model_t *m = add_model(false, NULL);
    sl_run_t *r;
    sl_eng_error_t err;
    assert_int_equal(sl_run_new(m, &r, &err), SL_ENG_OK);
    float xs[8] = {0};
    int64_t xi[6] = {0};
    sl_tensor_t x = ftensor(xs, 2, 2, 4);
    expect_input_error(r, &x, 1, SL_ENG_EINVAL,
                       "input 'x': expected float32[-1,3], got float32[2,4]");
    x = ftensor(xs, 1, 3, 0);
    expect_input_error(r, &x, 1, SL_ENG_EINVAL,
                       "input 'x': expected float32[-1,3], got float32[3]");
    x = (sl_tensor_t){.dtype = SL_DT_INT64, .ndim = 2, .dims = {2, 3}, .data = xi};
    expect_input_error(r, &x, 1, SL_ENG_EINVAL,
                       "input 'x': expected float32[-1,3], got int64[2,3]");
    x = ftensor(xs, 2, -2, 3);
    expect_input_error(r, &x, 1, SL_ENG_EINVAL,
                       "input 'x': expected float32[-1,3], got float32[-2,3]");
    x = ftensor(NULL, 2, 2, 3);
    expect_input_error(r, &x, 1, SL_ENG_EINVAL, "input 'x' has no data");
    x = ftensor(xs, 2, 2, 3);
    expect_input_error(r, &x, 0, SL_ENG_EINVAL, "the model takes 1 inputs, got 0");
    expect_input_error(r, &x, 2, SL_ENG_EINVAL, "the model takes 1 inputs, got 2");
    x = ftensor(xs, 2, INT64_MAX / 2, 3);
    expect_input_error(r, &x, 1, SL_ENG_ELIMIT,
                       "input 'x' is over the limit of 1073741824 bytes (max_tensor_bytes)");
    /* After all that the context still runs. */
    x = ftensor(xs, 2, 2, 3);
    sl_tensor_t y;
    assert_int_equal(sl_run_exec(r, &x, 1, &y, 1, &err), SL_ENG_OK);
    assert_int_equal(sl_run_exec(r, &x, 1, &y, 0, &err), SL_ENG_EINVAL);
    sl_run_free(r);
    sl_model_free(m);
}

static void test_outputs_that_are_inputs_or_initializers(void **state) {
    sl_model_t *m = add_model(true, NULL);
    assert_int_equal(sl_model_num_outputs(m), 3);
    sl_run_t *r;
    sl_eng_error_t err;
    assert_int_equal(sl_run_new(m, &r, &err), SL_ENG_OK);
    float xs[3] = {5, 6, 7};
    sl_tensor_t x = ftensor(xs, 2, 1, 3), y[3];
    assert_int_equal(sl_run_exec(r, &x, 1, y, 3, &err), SL_ENG_OK);
    /* x comes back as a copy: the caller's buffer is only borrowed for the call. */
    assert_true(y[1].data != (void *)xs);
    assert_memory_equal(y[1].data, xs, sizeof xs);
    assert_int_equal(y[1].ndim, 2);
    assert_int_equal(y[2].ndim, 1);
    assert_int_equal(y[2].dims[0], 3);
    assert_memory_equal(y[2].data, bias, sizeof bias);
    const float want[3] = {6, 8, 10};
    assert_memory_equal(y[0].data, want, sizeof want);
    sl_run_free(r);
    sl_model_free(m);
}

static void test_limits_and_kernel_errors(void **state) {
    /* x[N,1] + b[1,3] broadcasts to [N,3]: an intermediate over max_tensor_bytes. */
    spec_t s = {0};
    static const int64_t dN1[] = {-1, 1}, d13[] = {1, 3};
    s.inputs[s.n_inputs++] = vinfo("x", SL_DT_FLOAT, 2, dN1);
    s.inits[s.n_inits++] = tensor_f("b", 2, d13, bias, 3);
    s.nodes[s.n_nodes++] = node("Add", "widen", "x,b", "y");
    s.outputs[s.n_outputs++] = vinfo("y", SL_DT_FLOAT, 2, dN3);
    sl_model_opts_t o = {.max_tensor_bytes = 1000};
    sl_model_t *m = spec_load_ok(&s, &o);
    builder_reset();
    sl_run_t *r;
    sl_eng_error_t err;
    assert_int_equal(sl_run_new(m, &r, &err), SL_ENG_OK);
    float xs[100] = {0};
    sl_tensor_t x = ftensor(xs, 2, 100, 1), y;
    assert_int_equal(sl_run_exec(r, &x, 1, &y, 1, &err), SL_ENG_ELIMIT);
    assert_string_equal(err.msg, "node 'widen' (Add): output 'y' would be 1200 bytes, over the "
                                 "limit of 1000 (max_tensor_bytes)");
    x = ftensor(xs, 2, 10, 1);
    assert_int_equal(sl_run_exec(r, &x, 1, &y, 1, &err), SL_ENG_OK);
    assert_int_equal(y.dims[1], 3);
    sl_run_free(r);
    sl_model_free(m);

    /* An input without a declared shape reaches the kernel, whose error names the node. */
    memset(&s, 0, sizeof s);
    s.inputs[s.n_inputs++] = vinfo("x", SL_DT_FLOAT, -1, NULL);
    s.inits[s.n_inits++] = tensor_f("b", 1, d3, bias, 3);
    s.nodes[s.n_nodes++] = node("Add", "add0", "x,b", "y");
    s.outputs[s.n_outputs++] = vinfo("y", SL_DT_FLOAT, -1, NULL);
    m = spec_load_ok(&s, NULL);
    builder_reset();
    assert_int_equal(sl_run_new(m, &r, &err), SL_ENG_OK);
    x = ftensor(xs, 2, 2, 4);
    assert_int_not_equal(sl_run_exec(r, &x, 1, &y, 1, &err), SL_ENG_OK);
    assert_non_null(strstr(err.msg, "node 'add0' (Add)"));
    sl_run_free(r);
    sl_model_free(m);
}

/* Runs an ONNX node test's model on its test_data_set_0 and compares with the expected outputs. */
static void run_node_test(const char *name) {
    char path[512];
    snprintf(path, sizeof path, "/usr/share/libonnx-testdata/data/node/%s/model.onnx", name);
    sl_model_t *m;
    sl_eng_error_t err = {0};
    if (sl_model_load_file(path, NULL, &m, &err) != SL_ENG_OK) {
        print_error("%s: %s\n", name, err.msg);
        fail();
    }
    size_t ni = sl_model_num_inputs(m), no = sl_model_num_outputs(m);
    sl_tensor_t in[4], out[4], want[4];
    assert_true(ni <= 4 && no <= 4);
    for (size_t i = 0; i < ni; i++) {
        snprintf(path, sizeof path,
                 "/usr/share/libonnx-testdata/data/node/%s/test_data_set_0/input_%zu.pb", name, i);
        assert_int_equal(sl_tensor_read_pb(path, 0, &in[i], NULL, &err), SL_ENG_OK);
    }
    sl_run_t *r;
    assert_int_equal(sl_run_new(m, &r, &err), SL_ENG_OK);
    if (sl_run_exec(r, in, ni, out, no, &err) != SL_ENG_OK) {
        print_error("%s: %s\n", name, err.msg);
        fail();
    }
    for (size_t i = 0; i < no; i++) {
        snprintf(path, sizeof path,
                 "/usr/share/libonnx-testdata/data/node/%s/test_data_set_0/output_%zu.pb", name, i);
        assert_int_equal(sl_tensor_read_pb(path, 0, &want[i], NULL, &err), SL_ENG_OK);
        assert_int_equal(out[i].dtype, want[i].dtype);
        assert_int_equal(out[i].ndim, want[i].ndim);
        for (int d = 0; d < out[i].ndim; d++)
            assert_int_equal(out[i].dims[d], want[i].dims[d]);
        assert_int_equal(out[i].dtype, SL_DT_FLOAT);
        const float *a = out[i].data, *b = want[i].data;
        for (int64_t k = 0; k < sl_tensor_numel(&out[i]); k++) {
            if (fabsf(a[k] - b[k]) > 1e-5f + 1e-4f * fabsf(b[k])) {
                print_error("%s: output %zu[%lld] = %g, want %g\n", name, i, (long long)k, a[k],
                            b[k]);
                fail();
            }
        }
        free(want[i].data);
    }
    for (size_t i = 0; i < ni; i++)
        free(in[i].data);
    sl_run_free(r);
    sl_model_free(m);
}

static void test_onnx_node_models(void **state) {
    run_node_test("test_relu");
    run_node_test("test_add");
    run_node_test("test_add_bcast");
    run_node_test("test_matmul_2d");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_run_and_arena_reuse),
        cmocka_unit_test(test_input_validation),
        cmocka_unit_test(test_outputs_that_are_inputs_or_initializers),
        cmocka_unit_test(test_limits_and_kernel_errors),
        cmocka_unit_test(test_onnx_node_models),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
