/* Unit tests of the engine's load-time fusions (src/engine/fuse.c and the fused kernels in
 * ops_linalg.c): each model is loaded twice, once as is and once with the intermediate value
 * also exported as a graph output, which must block the fusion; the fused model must have fewer
 * nodes and give the unfused model's answer. Also the cases that must not fuse and the errors
 * a fused node reports. */
#include "engine/engine.h"
#include "engine/model_internal.h"
#include "engine_model_builder.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void attr_i(Onnx__NodeProto *n, const char *name, int64_t v) {
    Onnx__AttributeProto *a = attr_new(n, name, SL_ATTR_INT);
    a->has_i = 1;
    a->i = v;
}

static void attr_f(Onnx__NodeProto *n, const char *name, float v) {
    Onnx__AttributeProto *a = attr_new(n, name, SL_ATTR_FLOAT);
    a->has_f = 1;
    a->f = v;
}

static sl_tensor_t ftensor(float *data, int ndim, const int64_t *dims) {
    sl_tensor_t t = {.dtype = SL_DT_FLOAT, .ndim = ndim, .data = data};
    memcpy(t.dims, dims, (size_t)ndim * sizeof *dims);
    return t;
}

/* Runs m on x (twice: the second, warm run must not add an arena block) and copies output 0
 * into out, which holds n floats; returns its dims through dims/ndim when not NULL. */
static void run(sl_model_t *m, const sl_tensor_t *x, float *out, size_t n, int *ndim,
                int64_t *dims) {
    sl_run_t *r;
    sl_eng_error_t err;
    assert_int_equal(sl_run_new(m, &r, &err), SL_ENG_OK);
    sl_tensor_t y[2];
    size_t n_out = sl_model_num_outputs(m);
    assert_true(n_out <= 2);
    for (int pass = 0; pass < 2; pass++) {
        size_t blocks = sl_run_arena_blocks(r);
        if (sl_run_exec(r, x, 1, y, n_out, &err) != SL_ENG_OK) {
            print_error("run: %s\n", err.msg);
            fail();
        }
        if (pass == 1) assert_int_equal(sl_run_arena_blocks(r), blocks);
    }
    assert_int_equal(y[0].dtype, SL_DT_FLOAT);
    assert_int_equal((size_t)sl_tensor_numel(&y[0]), n);
    memcpy(out, y[0].data, n * sizeof *out);
    if (ndim) *ndim = y[0].ndim;
    if (dims) memcpy(dims, y[0].dims, (size_t)y[0].ndim * sizeof *dims);
    sl_run_free(r);
}

/* max|a - b| / max|b| <= tol (and exact agreement on NaN positions). */
static void assert_close(const float *a, const float *b, size_t n, double tol) {
    double err = 0, ref = 0;
    for (size_t i = 0; i < n; i++) {
        assert_true(isnan(a[i]) == isnan(b[i]));
        if (isnan(b[i])) continue;
        err = fmax(err, fabs((double)a[i] - b[i]));
        ref = fmax(ref, fabs((double)b[i]));
    }
    if (err > tol * (ref > 0 ? ref : 1)) {
        print_error("max|err| %g, max|ref| %g\n", err, ref);
        fail();
    }
}

/* Deterministic values in [-2, 2]. */
static void fill(float *v, size_t n, unsigned seed) {
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        v[i] = (float)((seed >> 8) % 4001) / 1000.0f - 2.0f;
    }
}

/* ---- Gemm + activation ---- */

static const int64_t dN4[] = {-1, 4}, d34[] = {3, 4}, d3[] = {3}, d0[] = {0};

/* y = act(Gemm(x[N,4], W[3,4]^T, c[3])); block: "h" (the Gemm's output) is a graph output. */
static sl_model_t *gemm_act(const char *act, int64_t opset, bool block) {
    static float w[12], c[3];
    fill(w, 12, 1);
    fill(c, 3, 2);
    spec_t s = {.opset = opset};
    s.inputs[s.n_inputs++] = vinfo("x", SL_DT_FLOAT, 2, dN4);
    s.inits[s.n_inits++] = tensor_f("W", 2, d34, w, 12);
    s.inits[s.n_inits++] = tensor_f("c", 1, d3, c, 3);
    Onnx__NodeProto *g = node("Gemm", "fc1", "x,W,c", "h");
    attr_i(g, "transB", 1);
    s.nodes[s.n_nodes++] = g;
    Onnx__NodeProto *a;
    if (strcmp(act, "Clip") == 0 && opset >= 11) {
        static const float lo = -0.5f, hi = 1.25f;
        s.inits[s.n_inits++] = tensor_f("lo", 0, d0, &lo, 1);
        s.inits[s.n_inits++] = tensor_f("hi", 0, d0, &hi, 1);
        a = node("Clip", "act", "h,lo,hi", "y");
    } else {
        a = node(act, "act", "h", "y");
    }
    if (strcmp(act, "LeakyRelu") == 0) attr_f(a, "alpha", 0.2f);
    if (strcmp(act, "Clip") == 0 && opset < 11) {
        attr_f(a, "min", -0.25f);
        attr_f(a, "max", 0.75f);
    }
    s.nodes[s.n_nodes++] = a;
    s.outputs[s.n_outputs++] = vinfo("y", SL_DT_FLOAT, 2, (const int64_t[]){-1, 3});
    if (block) s.outputs[s.n_outputs++] = vinfo("h", SL_DT_FLOAT, 2, (const int64_t[]){-1, 3});
    return spec_load_ok(&s, NULL);
}

static void test_gemm_activations(void **state) {
    static const struct {
        const char *op;
        int64_t opset;
    } cases[] = {{"Relu", 13}, {"LeakyRelu", 13}, {"Sigmoid", 13}, {"Tanh", 13},
                 {"Clip", 13}, {"Clip", 6},       {"Relu", 6}};
    float xs[5 * 4], got[15], want[15];
    fill(xs, 20, 3);
    const int64_t dims[] = {5, 4};
    sl_tensor_t x = ftensor(xs, 2, dims);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        sl_model_t *fused = gemm_act(cases[i].op, cases[i].opset, false);
        sl_model_t *plain = gemm_act(cases[i].op, cases[i].opset, true);
        assert_int_equal(fused->n_nodes, 1);
        assert_int_equal(fused->n_fused_act, 1);
        assert_int_equal(plain->n_nodes, 2);
        assert_int_equal(plain->n_fused_act, 0);
        run(fused, &x, got, 15, NULL, NULL);
        run(plain, &x, want, 15, NULL, NULL);
        /* Same sgemm, same activation kernel: the same bits. */
        assert_memory_equal(got, want, sizeof got);
        sl_model_free(fused);
        sl_model_free(plain);
    }
}

/* Against values computed here, so that fused and unfused cannot agree on a wrong answer. */
static void test_gemm_relu_values(void **state) {
    float w[12], c[3], xs[5 * 4], got[15];
    fill(w, 12, 1);
    fill(c, 3, 2);
    fill(xs, 20, 3);
    sl_model_t *m = gemm_act("Relu", 13, false);
    const int64_t dims[] = {5, 4};
    sl_tensor_t x = ftensor(xs, 2, dims);
    run(m, &x, got, 15, NULL, NULL);
    int negatives = 0;
    for (int r = 0; r < 5; r++)
        for (int j = 0; j < 3; j++) {
            double acc = c[j];
            for (int p = 0; p < 4; p++)
                acc += (double)xs[r * 4 + p] * w[j * 4 + p];
            negatives += acc < 0;
            assert_float_equal(got[r * 3 + j], acc < 0 ? 0.0 : acc, 1e-5);
        }
    assert_true(negatives > 0); /* the data exercises the activation */
    /* Batch 1 takes the gemv path. */
    sl_tensor_t x1 = ftensor(xs, 2, (const int64_t[]){1, 4});
    float one[3];
    run(m, &x1, one, 3, NULL, NULL);
    assert_close(one, got, 3, 1e-6);
    sl_model_free(m);
}

/* ---- MatMul + Add (+ activation) ---- */

typedef enum { BIAS_RIGHT, BIAS_LEFT, BIAS_ROW, BIAS_SCALAR, BIAS_RANK3, BIAS_FULL } bias_kind_t;

/* y = act(MatMul(x[2,3,4], W[4,5]) + b); act NULL: none. block: "h" is also an output. */
static sl_model_t *matmul_add(bias_kind_t bk, const char *act, bool block) {
    static float w[20], b[15];
    fill(w, 20, 4);
    fill(b, 15, 5);
    spec_t s = {0};
    s.inputs[s.n_inputs++] = vinfo("x", SL_DT_FLOAT, -1, NULL);
    s.inits[s.n_inits++] = tensor_f("W", 2, (const int64_t[]){4, 5}, w, 20);
    switch (bk) {
    case BIAS_ROW:
        s.inits[s.n_inits++] = tensor_f("b", 2, (const int64_t[]){1, 5}, b, 5);
        break;
    case BIAS_SCALAR:
        s.inits[s.n_inits++] = tensor_f("b", 1, (const int64_t[]){1}, b, 1);
        break;
    case BIAS_RANK3:
        s.inits[s.n_inits++] = tensor_f("b", 4, (const int64_t[]){1, 1, 1, 5}, b, 5);
        break;
    case BIAS_FULL: /* [3, 5]: varies over rows, not a bias over the last dim */
        s.inits[s.n_inits++] = tensor_f("b", 2, (const int64_t[]){3, 5}, b, 15);
        break;
    default:
        s.inits[s.n_inits++] = tensor_f("b", 1, (const int64_t[]){5}, b, 5);
    }
    s.nodes[s.n_nodes++] = node("MatMul", "proj", "x,W", "h");
    const char *y = act ? "z" : "y";
    s.nodes[s.n_nodes++] = node("Add", "bias", bk == BIAS_LEFT ? "b,h" : "h,b", y);
    if (act) s.nodes[s.n_nodes++] = node(act, "act", "z", "y");
    s.outputs[s.n_outputs++] = vinfo("y", SL_DT_FLOAT, -1, NULL);
    if (block) s.outputs[s.n_outputs++] = vinfo("h", SL_DT_FLOAT, -1, NULL);
    return spec_load_ok(&s, NULL);
}

static void test_matmul_bias(void **state) {
    float xs[24], got[30], want[30];
    fill(xs, 24, 6);
    sl_tensor_t x = ftensor(xs, 3, (const int64_t[]){2, 3, 4});
    static const bias_kind_t kinds[] = {BIAS_RIGHT, BIAS_LEFT, BIAS_ROW, BIAS_SCALAR, BIAS_RANK3};
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        for (int with_act = 0; with_act < 2; with_act++) {
            const char *act = with_act ? "Relu" : NULL;
            sl_model_t *fused = matmul_add(kinds[i], act, false);
            sl_model_t *plain = matmul_add(kinds[i], act, true);
            assert_int_equal(fused->n_nodes, 1);
            assert_int_equal(fused->n_fused_bias, 1);
            assert_int_equal(fused->n_fused_act, (size_t)with_act);
            assert_int_equal(plain->n_nodes, 2 + with_act);
            int nd_f, nd_p;
            int64_t dims_f[SL_MAX_DIMS], dims_p[SL_MAX_DIMS];
            run(fused, &x, got, 30, &nd_f, dims_f);
            run(plain, &x, want, 30, &nd_p, dims_p);
            assert_int_equal(nd_f, kinds[i] == BIAS_RANK3 ? 4 : 3);
            assert_int_equal(nd_f, nd_p);
            assert_memory_equal(dims_f, dims_p, (size_t)nd_f * sizeof *dims_f);
            assert_close(got, want, 30, 1e-6);
            sl_model_free(fused);
            sl_model_free(plain);
        }
    }
    /* 2-D and 1-D A (the gemv paths) through the same fused node. */
    sl_model_t *fused = matmul_add(BIAS_RIGHT, "Relu", false);
    sl_model_t *plain = matmul_add(BIAS_RIGHT, "Relu", true);
    sl_tensor_t x2 = ftensor(xs, 2, (const int64_t[]){6, 4});
    run(fused, &x2, got, 30, NULL, NULL);
    run(plain, &x2, want, 30, NULL, NULL);
    assert_close(got, want, 30, 1e-6);
    sl_tensor_t x1 = ftensor(xs, 1, (const int64_t[]){4});
    run(fused, &x1, got, 5, NULL, NULL);
    run(plain, &x1, want, 5, NULL, NULL);
    assert_close(got, want, 5, 1e-6);
    /* An empty batch and K = 0 are valid. */
    sl_tensor_t x0 = ftensor(xs, 2, (const int64_t[]){0, 4});
    run(fused, &x0, got, 0, NULL, NULL);
    sl_model_free(fused);
    sl_model_free(plain);
}

static void test_not_fused(void **state) {
    /* A bias that varies over rows is not a bias over the last dim: the Add stays. */
    sl_model_t *m = matmul_add(BIAS_FULL, NULL, false);
    assert_int_equal(m->n_nodes, 2);
    assert_int_equal(m->n_fused_bias, 0);
    sl_model_free(m);

    /* The MatMul's output read twice; B not a constant; an activation the kernels do not fuse. */
    static float w[20];
    fill(w, 20, 8);
    spec_t s = {0};
    s.inputs[s.n_inputs++] = vinfo("x", SL_DT_FLOAT, -1, NULL);
    s.inputs[s.n_inputs++] = vinfo("B", SL_DT_FLOAT, -1, NULL);
    s.inits[s.n_inits++] = tensor_f("W", 2, (const int64_t[]){4, 5}, w, 20);
    s.nodes[s.n_nodes++] = node("MatMul", "mm1", "x,W", "h");
    s.nodes[s.n_nodes++] = node("Relu", "r1", "h", "h1");
    s.nodes[s.n_nodes++] = node("Add", "a1", "h,h1", "y");
    s.nodes[s.n_nodes++] = node("MatMul", "mm2", "x,B", "g");
    s.nodes[s.n_nodes++] = node("Relu", "r2", "g", "y2");
    s.nodes[s.n_nodes++] = node("MatMul", "mm3", "x,W", "k");
    s.nodes[s.n_nodes++] = node("Softsign", "s3", "k", "y3");
    s.outputs[s.n_outputs++] = vinfo("y", SL_DT_FLOAT, -1, NULL);
    s.outputs[s.n_outputs++] = vinfo("y2", SL_DT_FLOAT, -1, NULL);
    s.outputs[s.n_outputs++] = vinfo("y3", SL_DT_FLOAT, -1, NULL);
    m = spec_load_ok(&s, NULL);
    assert_int_equal(m->n_nodes, 7);
    assert_int_equal(m->n_fused_act + m->n_fused_bias, 0);
    sl_model_free(m);
}

/* ---- Conv + BatchNormalization ---- */

/* y = BN(Conv(x[1,2,5,5], W[3,2,3,3] (+ c)), ...); block: "h" (the conv output) is exported.
 * A second Conv reads the same W when shared, so the folded copy must not change it. */
static sl_model_t *conv_bn(bool conv_bias, bool block, bool shared, int64_t training) {
    static float w[54], c[3], sc[3], bb[3], mean[3], var[3];
    fill(w, 54, 9);
    fill(c, 3, 10);
    fill(sc, 3, 11);
    fill(bb, 3, 12);
    fill(mean, 3, 13);
    fill(var, 3, 14);
    for (int i = 0; i < 3; i++)
        var[i] = fabsf(var[i]) + 0.1f;
    spec_t s = {.opset = training >= 0 ? 15 : 13};
    s.inputs[s.n_inputs++] = vinfo("x", SL_DT_FLOAT, 4, (const int64_t[]){-1, 2, 5, 5});
    s.inits[s.n_inits++] = tensor_f("W", 4, (const int64_t[]){3, 2, 3, 3}, w, 54);
    s.inits[s.n_inits++] = tensor_f("c", 1, d3, c, 3);
    s.inits[s.n_inits++] = tensor_f("scale", 1, d3, sc, 3);
    s.inits[s.n_inits++] = tensor_f("B", 1, d3, bb, 3);
    s.inits[s.n_inits++] = tensor_f("mean", 1, d3, mean, 3);
    s.inits[s.n_inits++] = tensor_f("var", 1, d3, var, 3);
    Onnx__NodeProto *cv = node("Conv", "conv1", conv_bias ? "x,W,c" : "x,W", "h");
    Onnx__AttributeProto *pads = attr_new(cv, "pads", SL_ATTR_INTS);
    static int64_t p[] = {1, 1, 1, 1};
    pads->ints = p;
    pads->n_ints = 4;
    s.nodes[s.n_nodes++] = cv;
    Onnx__NodeProto *bn = node("BatchNormalization", "bn1", "h,scale,B,mean,var", "y");
    attr_f(bn, "epsilon", 1e-3f);
    if (training >= 0) attr_i(bn, "training_mode", training);
    s.nodes[s.n_nodes++] = bn;
    s.outputs[s.n_outputs++] = vinfo("y", SL_DT_FLOAT, -1, NULL);
    if (block) s.outputs[s.n_outputs++] = vinfo("h", SL_DT_FLOAT, -1, NULL);
    if (shared) {
        s.nodes[s.n_nodes++] = node("Conv", "conv2", "x,W", "y2");
        s.outputs[s.n_outputs++] = vinfo("y2", SL_DT_FLOAT, -1, NULL);
    }
    return spec_load_ok(&s, NULL);
}

static void test_conv_bn(void **state) {
    float xs[2 * 2 * 25], got[150], want[150];
    fill(xs, 100, 15);
    sl_tensor_t x = ftensor(xs, 4, (const int64_t[]){2, 2, 5, 5});
    for (int cb = 0; cb < 2; cb++) {
        sl_model_t *fused = conv_bn(cb, false, false, -1);
        sl_model_t *plain = conv_bn(cb, true, false, -1);
        assert_int_equal(fused->n_nodes, 1);
        assert_int_equal(fused->n_fused_bn, 1);
        assert_int_equal(plain->n_nodes, 2);
        assert_int_equal(plain->n_fused_bn, 0);
        run(fused, &x, got, 150, NULL, NULL);
        run(plain, &x, want, 150, NULL, NULL);
        assert_close(got, want, 150, 1e-5);
        sl_model_free(fused);
        sl_model_free(plain);
    }
    /* training_mode = 0 at opset 15 still folds; 1 does not (it computes batch statistics). */
    sl_model_t *m = conv_bn(true, false, false, 0);
    assert_int_equal(m->n_fused_bn, 1);
    sl_model_free(m);
    m = conv_bn(true, false, false, 1);
    assert_int_equal(m->n_fused_bn, 0);
    assert_int_equal(m->n_nodes, 2);
    sl_model_free(m);
}

static void test_conv_bn_shared_weights(void **state) {
    float xs[100];
    fill(xs, 100, 16);
    sl_tensor_t x = ftensor(xs, 4, (const int64_t[]){2, 2, 5, 5});
    sl_model_t *fused = conv_bn(true, false, true, -1);
    sl_model_t *plain = conv_bn(true, true, true, -1);
    assert_int_equal(fused->n_fused_bn, 1);
    assert_int_equal(fused->n_nodes, 2);
    /* The second Conv still reads the original W: its output (output 1 / 2) must agree. */
    sl_run_t *rf, *rp;
    sl_eng_error_t err;
    assert_int_equal(sl_run_new(fused, &rf, &err), SL_ENG_OK);
    assert_int_equal(sl_run_new(plain, &rp, &err), SL_ENG_OK);
    sl_tensor_t yf[2], yp[3];
    assert_int_equal(sl_run_exec(rf, &x, 1, yf, 2, &err), SL_ENG_OK);
    assert_int_equal(sl_run_exec(rp, &x, 1, yp, 3, &err), SL_ENG_OK);
    assert_close(yf[0].data, yp[0].data, 150, 1e-5);
    assert_int_equal(sl_tensor_numel(&yf[1]), 2 * 3 * 3 * 3);
    assert_int_equal(sl_tensor_numel(&yp[2]), 2 * 3 * 3 * 3);
    assert_memory_equal(yf[1].data, yp[2].data, 54 * sizeof(float));
    sl_run_free(rf);
    sl_run_free(rp);
    sl_model_free(fused);
    sl_model_free(plain);
}

/* ---- errors ---- */

/* A fused node still reports errors under the first node's name and op type. */
static void test_fused_errors_name_the_node(void **state) {
    sl_model_t *m = matmul_add(BIAS_RIGHT, "Relu", false);
    assert_int_equal(m->n_nodes, 1);
    sl_run_t *r;
    sl_eng_error_t err;
    assert_int_equal(sl_run_new(m, &r, &err), SL_ENG_OK);
    float xs[6] = {0};
    sl_tensor_t x = ftensor(xs, 2, (const int64_t[]){2, 3}), y;
    assert_int_equal(sl_run_exec(r, &x, 1, &y, 1, &err), SL_ENG_ESHAPE);
    assert_non_null(strstr(err.msg, "node 'proj' (MatMul)"));
    assert_non_null(strstr(err.msg, "inner dims"));
    sl_run_free(r);
    sl_model_free(m);

    m = gemm_act("Sigmoid", 13, false);
    assert_int_equal(sl_run_new(m, &r, &err), SL_ENG_OK);
    float x3[3] = {0};
    sl_tensor_t xb = ftensor(x3, 2, (const int64_t[]){1, 3});
    /* Declared [N, 4]: the run refuses it before the kernel. */
    assert_int_equal(sl_run_exec(r, &xb, 1, &y, 1, &err), SL_ENG_EINVAL);
    sl_run_free(r);
    sl_model_free(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gemm_activations),
        cmocka_unit_test(test_gemm_relu_values),
        cmocka_unit_test(test_matmul_bias),
        cmocka_unit_test(test_not_fused),
        cmocka_unit_test(test_conv_bn),
        cmocka_unit_test(test_conv_bn_shared_weights),
        cmocka_unit_test(test_fused_errors_name_the_node),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
