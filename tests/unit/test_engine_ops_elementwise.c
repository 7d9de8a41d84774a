/* Unit tests for the engine's elementwise kernels (src/engine/ops_elementwise.c, ew_*.c): each
 * op is looked up in the registry the way the executor does, its infer sets the output shape,
 * and run computes into buffers the test allocates. Values are checked against libm or
 * hand-computed answers, including NaN, infinities, negative zero, integer wrap-around and
 * division signs; broadcasting against a naive index-by-index reference; bad dtypes and shapes
 * against the error message a user would read. */
#include "engine_kernel_harness.h"
#include "engine/ew.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One-input, one-output float op on a vector. */
static void unary_f32(const char *op, int64_t opset, const sl_attr_t *attrs, int n_attrs,
                      const float *x, float *y, int n) {
    sl_tensor_t in = ten(SL_DT_FLOAT, (void *)x, 1, n), out;
    const sl_tensor_t *ins[1] = {&in};
    sl_eng_error_t err;
    assert_int_equal(run_node(op, opset, attrs, n_attrs, ins, 1, &out, 1, &err), SL_ENG_OK);
    assert_int_equal(out.dtype, SL_DT_FLOAT);
    assert_int_equal(out.ndim, 1);
    assert_int_equal(out.dims[0], n);
    memcpy(y, out.data, (size_t)n * sizeof(float));
    free_outs(&out, 1);
}

static void assert_close(double got, double want, double tol) {
    if (isnan(want)) {
        if (!isnan(got)) fail_msg("got %g, want NaN", got);
        return;
    }
    if (isinf(want)) {
        if (got != want) fail_msg("got %g, want %g", got, want);
        return;
    }
    if (fabs(got - want) > tol * (1 + fabs(want))) fail_msg("got %.9g, want %.9g", got, want);
}

/* ---- unary math ---- */

static void test_unary_math(void **state) {
    const float x[] = {-2.5f, -1.0f, -0.0f, 0.0f, 0.5f, 1.5f, 2.5f, NAN, INFINITY, -INFINITY};
    enum { N = sizeof x / sizeof x[0] };
    float y[N];
    struct {
        const char *op;
        double (*ref)(double);
    } cases[] = {{"Exp", exp},     {"Tanh", tanh}, {"Erf", erf}, {"Sin", sin},
                 {"Atan", atan},   {"Sinh", sinh}, {"Cos", cos}, {"Asinh", asinh},
                 {"Floor", floor}, {"Ceil", ceil}, {"Abs", fabs}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        unary_f32(cases[c].op, 13, NULL, 0, x, y, N);
        for (int i = 0; i < N; i++) {
            if (isinf(x[i]) && (strcmp(cases[c].op, "Sin") == 0 || strcmp(cases[c].op, "Cos") == 0))
                continue;
            assert_close(y[i], cases[c].ref(x[i]), 1e-6);
        }
    }
    /* Floor and Ceil keep the sign of zero; Neg flips it. */
    unary_f32("Floor", 13, NULL, 0, x, y, N);
    assert_true(signbit(y[2]) && !signbit(y[3]));
    unary_f32("Neg", 13, NULL, 0, x, y, N);
    assert_true(!signbit(y[2]) && signbit(y[3]));
    /* Round: halves to even. */
    unary_f32("Round", 11, NULL, 0, x, y, N);
    const float round_want[] = {-2, -1, -0.0f, 0, 0, 2, 2, NAN, INFINITY, -INFINITY};
    for (int i = 0; i < N; i++)
        assert_close(y[i], round_want[i], 0);
    /* Domain edges: sqrt(-1) is NaN, log(0) is -inf, 1/0 is inf, 1/-0 is -inf. */
    const float e[] = {-1.0f, 0.0f, -0.0f, 4.0f};
    unary_f32("Sqrt", 13, NULL, 0, e, y, 4);
    assert_true(isnan(y[0]));
    assert_close(y[3], 2.0, 0);
    unary_f32("Log", 13, NULL, 0, e, y, 4);
    assert_true(isnan(y[0]));
    assert_true(isinf(y[1]) && y[1] < 0);
    unary_f32("Reciprocal", 13, NULL, 0, e, y, 4);
    assert_true(isinf(y[1]) && y[1] > 0);
    assert_true(isinf(y[2]) && y[2] < 0);
    assert_close(y[3], 0.25, 0);
    /* Sign of NaN is NaN, of -0 is -0. */
    unary_f32("Sign", 13, NULL, 0, x, y, N);
    const float sign_want[] = {-1, -1, 0, 0, 1, 1, 1, NAN, 1, -1};
    for (int i = 0; i < N; i++)
        assert_close(y[i], sign_want[i], 0);
}

static void test_activations(void **state) {
    const float x[] = {-100.0f, -3.0f, -1.0f, -0.25f, 0.0f, 0.25f, 1.0f, 3.0f, 100.0f, NAN};
    enum { N = sizeof x / sizeof x[0] };
    float y[N];
    unary_f32("Relu", 14, NULL, 0, x, y, N);
    for (int i = 0; i < N; i++)
        assert_close(y[i], x[i] < 0 ? 0.0 : x[i], 0);
    unary_f32("Sigmoid", 13, NULL, 0, x, y, N);
    for (int i = 0; i < N; i++)
        assert_close(y[i], 1.0 / (1.0 + exp(-(double)x[i])), 1e-6);
    unary_f32("Softplus", 1, NULL, 0, x, y, N);
    for (int i = 0; i < N; i++) /* no overflow at 100: log(1+e^100) is 100 */
        assert_close(y[i], x[i] > 30 ? x[i] : log1p(exp((double)x[i])), 1e-6);
    unary_f32("Softsign", 1, NULL, 0, x, y, N);
    for (int i = 0; i < N; i++)
        assert_close(y[i], x[i] / (1.0 + fabs(x[i])), 1e-6);
    sl_attr_t a = attr_f("alpha", 0.1f);
    unary_f32("LeakyRelu", 16, &a, 1, x, y, N);
    for (int i = 0; i < N; i++)
        assert_close(y[i], x[i] < 0 ? 0.1 * x[i] : x[i], 1e-6);
    unary_f32("LeakyRelu", 16, NULL, 0, x, y, N); /* default alpha 0.01 */
    assert_close(y[1], -0.03, 1e-6);
    a = attr_f("alpha", 2.0f);
    unary_f32("Elu", 6, &a, 1, x, y, N);
    for (int i = 0; i < N; i++)
        assert_close(y[i], x[i] < 0 ? 2.0 * (exp((double)x[i]) - 1) : x[i], 1e-6);
    unary_f32("Selu", 6, NULL, 0, x, y, N);
    for (int i = 0; i < N; i++) {
        double g = 1.0507009873554805, al = 1.6732632423543772, v = x[i];
        assert_close(y[i], v > 0 ? g * v : g * (al * exp(v) - al), 1e-6);
    }
    a = attr_f("alpha", 2.0f);
    unary_f32("Celu", 12, &a, 1, x, y, N);
    for (int i = 0; i < N; i++) {
        double v = x[i];
        assert_close(y[i], fmax(0, v) + fmin(0, 2.0 * (exp(v / 2.0) - 1)), 1e-6);
    }
    unary_f32("ThresholdedRelu", 10, NULL, 0, x, y, N);
    for (int i = 0; i < N - 1; i++)
        assert_close(y[i], x[i] > 1.0f ? x[i] : 0.0, 0);
    sl_attr_t hs[2] = {attr_f("alpha", 0.5f), attr_f("beta", 0.25f)};
    unary_f32("HardSigmoid", 6, hs, 2, x, y, N);
    for (int i = 0; i < N - 1; i++)
        assert_close(y[i], fmax(0, fmin(1, 0.5 * x[i] + 0.25)), 1e-6);
    sl_attr_t sh[2] = {attr_f("lambd", 1.0f), attr_f("bias", 0.5f)};
    unary_f32("Shrink", 9, sh, 2, x, y, N);
    for (int i = 0; i < N - 1; i++)
        assert_close(y[i], x[i] < -1 ? x[i] + 0.5 : (x[i] > 1 ? x[i] - 0.5 : 0), 1e-6);
    unary_f32("HardSwish", 14, NULL, 0, x, y, N);
    for (int i = 0; i < N - 1; i++)
        assert_close(y[i], x[i] * fmax(0, fmin(1, x[i] / 6.0 + 0.5)), 1e-6);
}

/* Exp, Sigmoid and Tanh have their own vectorisable float32 code: hold them to libm's double
 * answer over the whole useful range (and past it: overflow to inf, underflow to 0). */
static void test_fast_transcendentals(void **state) {
    enum { N = 400001 };
    float *x = malloc(N * sizeof(float)), *y = malloc(N * sizeof(float));
    for (int i = 0; i < N; i++)
        x[i] = -100.0f + (float)i * 0.0005f;
    double worst[3] = {0, 0, 0};
    const char *ops[3] = {"Exp", "Sigmoid", "Tanh"};
    for (int o = 0; o < 3; o++) {
        unary_f32(ops[o], 13, NULL, 0, x, y, N);
        for (int i = 0; i < N; i++) {
            double v = x[i];
            double want = o == 0 ? exp(v) : o == 1 ? 1.0 / (1.0 + exp(-v)) : tanh(v);
            if (want > 3.4e38) { /* at float's edge: inf, or finite and accurate */
                if (isinf(y[i])) continue;
                assert_true(want < 3.41e38);
            }
            if (fabs(want) < 1.2e-38) { /* below float's normal range: 0 is what we promise */
                assert_true(fabs(y[i]) < 1.2e-38);
                continue;
            }
            double rel = fabs(y[i] - want) / fabs(want);
            if (rel > worst[o]) worst[o] = rel;
        }
    }
    free(x);
    free(y);
    for (int o = 0; o < 3; o++)
        if (worst[o] > 5e-7) fail_msg("%s: worst relative error %g", ops[o], worst[o]);
    const float sp[] = {NAN, INFINITY, -INFINITY, 0.0f, -0.0f};
    float out[5];
    unary_f32("Exp", 13, NULL, 0, sp, out, 5);
    assert_true(isnan(out[0]));
    assert_true(isinf(out[1]) && out[1] > 0);
    assert_true(out[2] == 0.0f && out[3] == 1.0f && out[4] == 1.0f);
    unary_f32("Tanh", 13, NULL, 0, sp, out, 5);
    assert_true(isnan(out[0]) && out[1] == 1.0f && out[2] == -1.0f && out[3] == 0.0f);
    assert_true(signbit(out[4]));
    unary_f32("Sigmoid", 13, NULL, 0, sp, out, 5);
    assert_true(isnan(out[0]) && out[1] == 1.0f && out[2] == 0.0f && out[3] == 0.5f);
}

static void test_isnan_isinf_not(void **state) {
    const float x[] = {1.0f, NAN, INFINITY, -INFINITY, -0.0f};
    sl_tensor_t in = ten(SL_DT_FLOAT, (void *)x, 1, 5), out;
    const sl_tensor_t *ins[1] = {&in};
    sl_eng_error_t err;
    assert_int_equal(run_node("IsNaN", 13, NULL, 0, ins, 1, &out, 1, &err), SL_ENG_OK);
    assert_int_equal(out.dtype, SL_DT_BOOL);
    assert_memory_equal(out.data, ((uint8_t[]){0, 1, 0, 0, 0}), 5);
    free_outs(&out, 1);
    assert_int_equal(run_node("IsInf", 10, NULL, 0, ins, 1, &out, 1, &err), SL_ENG_OK);
    assert_memory_equal(out.data, ((uint8_t[]){0, 0, 1, 1, 0}), 5);
    free_outs(&out, 1);
    sl_attr_t neg_off = attr_i("detect_negative", 0);
    assert_int_equal(run_node("IsInf", 10, &neg_off, 1, ins, 1, &out, 1, &err), SL_ENG_OK);
    assert_memory_equal(out.data, ((uint8_t[]){0, 0, 1, 0, 0}), 5);
    free_outs(&out, 1);
    uint8_t b[] = {0, 1, 1, 0};
    sl_tensor_t bin = ten(SL_DT_BOOL, b, 2, 2, 2);
    const sl_tensor_t *bins[1] = {&bin};
    assert_int_equal(run_node("Not", 1, NULL, 0, bins, 1, &out, 1, &err), SL_ENG_OK);
    assert_int_equal(out.ndim, 2);
    assert_memory_equal(out.data, ((uint8_t[]){1, 0, 0, 1}), 4);
    free_outs(&out, 1);
}

static void test_unary_int(void **state) {
    int32_t x[] = {INT32_MIN, -5, 0, 7, INT32_MAX};
    sl_tensor_t in = ten(SL_DT_INT32, x, 1, 5), out;
    const sl_tensor_t *ins[1] = {&in};
    sl_eng_error_t err;
    /* Abs and Neg of INT32_MIN wrap to INT32_MIN (as numpy does) instead of trapping. */
    assert_int_equal(run_node("Abs", 13, NULL, 0, ins, 1, &out, 1, &err), SL_ENG_OK);
    assert_memory_equal(out.data, ((int32_t[]){INT32_MIN, 5, 0, 7, INT32_MAX}), 20);
    free_outs(&out, 1);
    assert_int_equal(run_node("Neg", 13, NULL, 0, ins, 1, &out, 1, &err), SL_ENG_OK);
    assert_memory_equal(out.data, ((int32_t[]){INT32_MIN, 5, 0, -7, -INT32_MAX}), 20);
    free_outs(&out, 1);
    assert_int_equal(run_node("Sign", 13, NULL, 0, ins, 1, &out, 1, &err), SL_ENG_OK);
    assert_memory_equal(out.data, ((int32_t[]){-1, -1, 0, 1, 1}), 20);
    free_outs(&out, 1);
    assert_int_equal(run_node("Relu", 14, NULL, 0, ins, 1, &out, 1, &err), SL_ENG_OK);
    assert_memory_equal(out.data, ((int32_t[]){0, 0, 0, 7, INT32_MAX}), 20);
    free_outs(&out, 1);
    /* Exp has no integer kernel: a clear error naming the node and the dtype. */
    assert_int_equal(run_node("Exp", 13, NULL, 0, ins, 1, &out, 1, &err), SL_ENG_EUNSUPPORTED);
    assert_non_null(strstr(err.msg, "node 'n1' (Exp)"));
    assert_non_null(strstr(err.msg, "int32"));
    assert_non_null(strstr(err.msg, "float32"));
}

static void test_clip(void **state) {
    const float x[] = {-3.0f, -1.0f, 0.0f, 2.0f, 5.0f, NAN};
    float y[6];
    sl_attr_t mm[2] = {attr_f("min", -1.5f), attr_f("max", 2.5f)};
    unary_f32("Clip", 6, mm, 2, x, y, 6);
    const float want6[] = {-1.5f, -1.0f, 0.0f, 2.0f, 2.5f, NAN};
    for (int i = 0; i < 6; i++)
        assert_close(y[i], want6[i], 0);
    /* Opset 11: bounds as inputs; min omitted, max given. */
    float mx = 1.0f;
    sl_tensor_t in = ten(SL_DT_FLOAT, (void *)x, 1, 6), hi = ten(SL_DT_FLOAT, &mx, 0), out;
    const sl_tensor_t *ins[3] = {&in, NULL, &hi};
    sl_eng_error_t err;
    assert_int_equal(run_node("Clip", 13, NULL, 0, ins, 3, &out, 1, &err), SL_ENG_OK);
    const float want11[] = {-3.0f, -1.0f, 0.0f, 1.0f, 1.0f, NAN};
    for (int i = 0; i < 6; i++)
        assert_close(((float *)out.data)[i], want11[i], 0);
    free_outs(&out, 1);
    /* min > max: everything becomes max. */
    float lo = 3.0f;
    sl_tensor_t lot = ten(SL_DT_FLOAT, &lo, 0);
    const sl_tensor_t *ins2[3] = {&in, &lot, &hi};
    assert_int_equal(run_node("Clip", 13, NULL, 0, ins2, 3, &out, 1, &err), SL_ENG_OK);
    for (int i = 0; i < 5; i++)
        assert_close(((float *)out.data)[i], 1.0, 0);
    free_outs(&out, 1);
    /* int8 with only min. */
    int8_t xi[] = {-128, -5, 0, 127}, lo8 = -6;
    sl_tensor_t ini = ten(SL_DT_INT8, xi, 1, 4), lo8t = ten(SL_DT_INT8, &lo8, 0);
    const sl_tensor_t *ins3[2] = {&ini, &lo8t};
    assert_int_equal(run_node("Clip", 13, NULL, 0, ins3, 2, &out, 1, &err), SL_ENG_OK);
    assert_memory_equal(out.data, ((int8_t[]){-6, -5, 0, 127}), 4);
    free_outs(&out, 1);
    /* A bound that is not a scalar, or of another dtype, is refused. */
    float two[2] = {0, 1};
    sl_tensor_t vec = ten(SL_DT_FLOAT, two, 1, 2);
    const sl_tensor_t *bad[2] = {&in, &vec};
    assert_int_equal(run_node("Clip", 13, NULL, 0, bad, 2, &out, 1, &err), SL_ENG_ESHAPE);
    assert_non_null(strstr(err.msg, "min"));
    const sl_tensor_t *bad2[2] = {&in, &lo8t};
    assert_int_equal(run_node("Clip", 13, NULL, 0, bad2, 2, &out, 1, &err), SL_ENG_EINVAL);
    assert_non_null(strstr(err.msg, "int8"));
}

/* ---- broadcasting against a naive reference ---- */

static int64_t bcast_index(const sl_tensor_t *t, const sl_tensor_t *o, int64_t flat) {
    int64_t idx = 0, stride = 1;
    for (int d = o->ndim - 1; d >= 0; d--) {
        int64_t c = flat % o->dims[d];
        flat /= o->dims[d];
        int td = d - (o->ndim - t->ndim);
        if (td < 0) continue;
        if (t->dims[td] != 1) idx += c * stride;
        stride *= t->dims[td];
    }
    return idx;
}

static void check_bcast(const char *op, int na, const int64_t *da, int nb, const int64_t *db,
                        int no, const int64_t *dout) {
    sl_tensor_t a = {.dtype = SL_DT_FLOAT, .ndim = na}, b = {.dtype = SL_DT_FLOAT, .ndim = nb};
    memcpy(a.dims, da, (size_t)na * sizeof *da);
    memcpy(b.dims, db, (size_t)nb * sizeof *db);
    int64_t ca = sl_tensor_numel(&a), cb = sl_tensor_numel(&b);
    float *va = malloc((size_t)ca * sizeof(float)), *vb = malloc((size_t)cb * sizeof(float));
    for (int64_t i = 0; i < ca; i++)
        va[i] = (float)(i * 3 % 17) - 8.0f;
    for (int64_t i = 0; i < cb; i++)
        vb[i] = (float)(i * 5 % 13) + 1.0f;
    a.data = va;
    b.data = vb;
    const sl_tensor_t *ins[2] = {&a, &b};
    sl_tensor_t out;
    sl_eng_error_t err;
    if (run_node(op, 14, NULL, 0, ins, 2, &out, 1, &err) != SL_ENG_OK) fail_msg("%s", err.msg);
    assert_int_equal(out.ndim, no);
    for (int d = 0; d < no; d++)
        assert_int_equal(out.dims[d], dout[d]);
    const float *o = out.data;
    for (int64_t i = 0; i < sl_tensor_numel(&out); i++) {
        float x = va[bcast_index(&a, &out, i)], y = vb[bcast_index(&b, &out, i)];
        float want = strcmp(op, "Add") == 0 ? x + y : strcmp(op, "Sub") == 0 ? x - y : x / y;
        if (o[i] != want) fail_msg("%s at %lld: got %g, want %g", op, (long long)i, o[i], want);
    }
    free_outs(&out, 1);
    free(va);
    free(vb);
}

static void test_broadcast_shapes(void **state) {
    check_bcast("Add", 3, (int64_t[]){2, 3, 4}, 1, (int64_t[]){4}, 3, (int64_t[]){2, 3, 4});
    check_bcast("Sub", 3, (int64_t[]){2, 1, 4}, 2, (int64_t[]){3, 1}, 3, (int64_t[]){2, 3, 4});
    check_bcast("Div", 0, (int64_t[]){0}, 3, (int64_t[]){2, 3, 4}, 3, (int64_t[]){2, 3, 4});
    check_bcast("Add", 3, (int64_t[]){2, 3, 4}, 0, (int64_t[]){0}, 3, (int64_t[]){2, 3, 4});
    check_bcast("Sub", 3, (int64_t[]){2, 3, 4}, 3, (int64_t[]){2, 3, 4}, 3, (int64_t[]){2, 3, 4});
    check_bcast("Div", 2, (int64_t[]){5, 1}, 2, (int64_t[]){1, 6}, 2, (int64_t[]){5, 6});
    check_bcast("Add", 4, (int64_t[]){2, 1, 3, 1}, 4, (int64_t[]){1, 4, 3, 5}, 4,
                (int64_t[]){2, 4, 3, 5});
    check_bcast("Sub", 4, (int64_t[]){1, 3, 1, 2}, 2, (int64_t[]){4, 1}, 4,
                (int64_t[]){1, 3, 4, 2});
    check_bcast("Add", 2, (int64_t[]){3, 0}, 1, (int64_t[]){1}, 2, (int64_t[]){3, 0});
}

static void test_broadcast_errors(void **state) {
    float d[24] = {0};
    int64_t i64[4] = {0};
    sl_tensor_t a = ten(SL_DT_FLOAT, d, 2, 2, 3), b = ten(SL_DT_FLOAT, d, 1, 4);
    const sl_tensor_t *ins[2] = {&a, &b};
    sl_tensor_t out;
    sl_eng_error_t err;
    assert_int_equal(run_node("Add", 14, NULL, 0, ins, 2, &out, 1, &err), SL_ENG_ESHAPE);
    assert_non_null(strstr(err.msg, "node 'n1' (Add)"));
    assert_non_null(strstr(err.msg, "[4]"));
    assert_non_null(strstr(err.msg, "[2,3]"));
    /* Mixed dtypes. */
    sl_tensor_t c = ten(SL_DT_INT64, i64, 1, 3);
    const sl_tensor_t *mixed[2] = {&a, &c};
    assert_int_equal(run_node("Mul", 14, NULL, 0, mixed, 2, &out, 1, &err), SL_ENG_EINVAL);
    assert_non_null(strstr(err.msg, "int64"));
    assert_non_null(strstr(err.msg, "float32"));
    /* float16 and strings are not supported, and say so. */
    sl_tensor_t h = ten(SL_DT_FLOAT16, d, 1, 3);
    const sl_tensor_t *half[2] = {&h, &h};
    assert_int_equal(run_node("Add", 14, NULL, 0, half, 2, &out, 1, &err), SL_ENG_EUNSUPPORTED);
    assert_non_null(strstr(err.msg, "float16"));
    const sl_tensor_t *half1[1] = {&h};
    assert_int_equal(run_node("Relu", 14, NULL, 0, half1, 1, &out, 1, &err), SL_ENG_EUNSUPPORTED);
    /* Logic ops take bool only. */
    assert_int_equal(run_node("And", 7, NULL, 0, ins, 2, &out, 1, &err), SL_ENG_EUNSUPPORTED);
    assert_non_null(strstr(err.msg, "bool"));
    /* An output too large to count is refused before anything is allocated. */
    sl_tensor_t big1 = ten(SL_DT_FLOAT, NULL, 2, 1, 1 << 30),
                big2 = ten(SL_DT_FLOAT, NULL, 2, 1 << 30, 1);
    big1.dims[1] = (int64_t)1 << 40;
    big2.dims[0] = (int64_t)1 << 40;
    const sl_tensor_t *big[2] = {&big1, &big2};
    const sl_op_t *op = sl_op_find("", "Add", 14);
    sl_node_t node = {.name = "n1", .op_type = "Add", .domain = "", .opset = 14, .op = op};
    assert_int_equal(op->infer(&node, big, 2, &out, 1, &err), SL_ENG_ELIMIT);
    /* Wrong arity. */
    assert_int_equal(op->infer(&node, big, 1, &out, 1, &err), SL_ENG_EGRAPH);
    assert_non_null(strstr(err.msg, "expected 2"));
}

static void test_legacy_broadcast(void **state) {
    /* Opset 6: B [3] placed at axis 1 of A [2,3,2]. */
    float a[12], b[3] = {100, 200, 300};
    for (int i = 0; i < 12; i++)
        a[i] = (float)i;
    sl_tensor_t ta = ten(SL_DT_FLOAT, a, 3, 2, 3, 2), tb = ten(SL_DT_FLOAT, b, 1, 3), out;
    const sl_tensor_t *ins[2] = {&ta, &tb};
    sl_attr_t at[2] = {attr_i("broadcast", 1), attr_i("axis", 1)};
    sl_eng_error_t err;
    assert_int_equal(run_node("Add", 6, at, 2, ins, 2, &out, 1, &err), SL_ENG_OK);
    assert_int_equal(out.ndim, 3);
    for (int i = 0; i < 12; i++)
        assert_close(((float *)out.data)[i], a[i] + b[(i / 2) % 3], 0);
    free_outs(&out, 1);
    /* Without broadcast=1 the shapes must match. */
    assert_int_equal(run_node("Add", 6, NULL, 0, ins, 2, &out, 1, &err), SL_ENG_ESHAPE);
    assert_non_null(strstr(err.msg, "broadcast=0"));
}

/* ---- integer arithmetic ---- */

static void bin_i32(const char *op, const sl_attr_t *attrs, int n_attrs, const int32_t *a,
                    const int32_t *b, const int32_t *want, int n) {
    sl_tensor_t ta = ten(SL_DT_INT32, (void *)a, 1, n), tb = ten(SL_DT_INT32, (void *)b, 1, n);
    const sl_tensor_t *ins[2] = {&ta, &tb};
    sl_tensor_t out;
    sl_eng_error_t err;
    assert_int_equal(run_node(op, 13, attrs, n_attrs, ins, 2, &out, 1, &err), SL_ENG_OK);
    for (int i = 0; i < n; i++) {
        int32_t got = ((int32_t *)out.data)[i];
        if (got != want[i]) fail_msg("%s(%d, %d): got %d, want %d", op, a[i], b[i], got, want[i]);
    }
    free_outs(&out, 1);
}

static void test_int_arith(void **state) {
    const int32_t a[] = {7, -7, 7, -7, 5, INT32_MIN, INT32_MAX};
    const int32_t b[] = {2, 2, -2, -2, 0, -1, 1};
    bin_i32("Div", NULL, 0, a, b, (int32_t[]){3, -3, -3, 3, 0, INT32_MIN, INT32_MAX}, 7);
    bin_i32("Add", NULL, 0, a, b, (int32_t[]){9, -5, 5, -9, 5, INT32_MAX, INT32_MIN}, 7);
    bin_i32("Sub", NULL, 0, a, b, (int32_t[]){5, -9, 9, -5, 5, INT32_MIN + 1, INT32_MAX - 1}, 7);
    bin_i32("Mul", NULL, 0, a, b, (int32_t[]){14, -14, -14, 14, 0, INT32_MIN, INT32_MAX}, 7);
    /* Mod: the divisor's sign; with fmod=1 the dividend's. Zero divisors give 0. */
    bin_i32("Mod", NULL, 0, a, b, (int32_t[]){1, 1, -1, -1, 0, 0, 0}, 7);
    sl_attr_t fm = attr_i("fmod", 1);
    bin_i32("Mod", &fm, 1, a, b, (int32_t[]){1, -1, 1, -1, 0, 0, 0}, 7);
    bin_i32("Max", NULL, 0, a, b, (int32_t[]){7, 2, 7, -2, 5, -1, INT32_MAX}, 7);
    /* Narrow unsigned wrap and division. */
    uint8_t ua[] = {250, 10, 3}, ub[] = {10, 20, 0};
    sl_tensor_t ta = ten(SL_DT_UINT8, ua, 1, 3), tb = ten(SL_DT_UINT8, ub, 1, 3), out;
    const sl_tensor_t *ins[2] = {&ta, &tb};
    sl_eng_error_t err;
    assert_int_equal(run_node("Add", 14, NULL, 0, ins, 2, &out, 1, &err), SL_ENG_OK);
    assert_memory_equal(out.data, ((uint8_t[]){4, 30, 3}), 3);
    free_outs(&out, 1);
    assert_int_equal(run_node("Mul", 14, NULL, 0, ins, 2, &out, 1, &err), SL_ENG_OK);
    assert_memory_equal(out.data, ((uint8_t[]){196, 200, 0}), 3);
    free_outs(&out, 1);
    assert_int_equal(run_node("Div", 14, NULL, 0, ins, 2, &out, 1, &err), SL_ENG_OK);
    assert_memory_equal(out.data, ((uint8_t[]){25, 0, 0}), 3);
    free_outs(&out, 1);
    /* BitShift: shifting past the width is 0. */
    uint8_t sh[] = {1, 8, 2};
    sl_tensor_t ts = ten(SL_DT_UINT8, sh, 1, 3);
    const sl_tensor_t *sins[2] = {&ta, &ts};
    sl_attr_t left = attr_s("direction", "LEFT"), right = attr_s("direction", "RIGHT");
    assert_int_equal(run_node("BitShift", 11, &left, 1, sins, 2, &out, 1, &err), SL_ENG_OK);
    assert_memory_equal(out.data, ((uint8_t[]){244, 0, 12}), 3);
    free_outs(&out, 1);
    assert_int_equal(run_node("BitShift", 11, &right, 1, sins, 2, &out, 1, &err), SL_ENG_OK);
    assert_memory_equal(out.data, ((uint8_t[]){125, 0, 0}), 3);
    free_outs(&out, 1);
    sl_attr_t up = attr_s("direction", "UP");
    assert_int_equal(run_node("BitShift", 11, &up, 1, sins, 2, &out, 1, &err), SL_ENG_EINVAL);
    assert_non_null(strstr(err.msg, "direction"));
    /* Float Mod with fmod=1 and fmod=0. */
    float fa[] = {-7.5f, 7.5f}, fb[] = {2.0f, -2.0f};
    sl_tensor_t tfa = ten(SL_DT_FLOAT, fa, 1, 2), tfb = ten(SL_DT_FLOAT, fb, 1, 2);
    const sl_tensor_t *fins[2] = {&tfa, &tfb};
    assert_int_equal(run_node("Mod", 13, &fm, 1, fins, 2, &out, 1, &err), SL_ENG_OK);
    assert_close(((float *)out.data)[0], -1.5, 0);
    assert_close(((float *)out.data)[1], 1.5, 0);
    free_outs(&out, 1);
    assert_int_equal(run_node("Mod", 13, NULL, 0, fins, 2, &out, 1, &err), SL_ENG_OK);
    assert_close(((float *)out.data)[0], 0.5, 0);
    assert_close(((float *)out.data)[1], -0.5, 0);
    free_outs(&out, 1);
}

static void test_pow(void **state) {
    float x[] = {2.0f, -3.0f, 0.5f, 4.0f};
    float e2 = 2.0f, ev[] = {3.0f, 2.0f, -1.0f, 0.5f};
    int64_t ei[] = {3, 2, 0, 1};
    sl_tensor_t tx = ten(SL_DT_FLOAT, x, 1, 4), te2 = ten(SL_DT_FLOAT, &e2, 0),
                tev = ten(SL_DT_FLOAT, ev, 1, 4), tei = ten(SL_DT_INT64, ei, 1, 4), out;
    sl_eng_error_t err;
    const sl_tensor_t *sq[2] = {&tx, &te2};
    assert_int_equal(run_node("Pow", 15, NULL, 0, sq, 2, &out, 1, &err), SL_ENG_OK);
    for (int i = 0; i < 4; i++)
        assert_close(((float *)out.data)[i], (double)x[i] * x[i], 0);
    free_outs(&out, 1);
    const sl_tensor_t *vv[2] = {&tx, &tev};
    assert_int_equal(run_node("Pow", 15, NULL, 0, vv, 2, &out, 1, &err), SL_ENG_OK);
    for (int i = 0; i < 4; i++)
        assert_close(((float *)out.data)[i], pow(x[i], ev[i]), 1e-6);
    free_outs(&out, 1);
    /* Float base, int64 exponent (opset 12+). */
    const sl_tensor_t *fi[2] = {&tx, &tei};
    assert_int_equal(run_node("Pow", 15, NULL, 0, fi, 2, &out, 1, &err), SL_ENG_OK);
    assert_int_equal(out.dtype, SL_DT_FLOAT);
    const float want[] = {8.0f, 9.0f, 1.0f, 4.0f};
    for (int i = 0; i < 4; i++)
        assert_close(((float *)out.data)[i], want[i], 0);
    free_outs(&out, 1);
    /* Int base, int exponent, broadcast. */
    int32_t ib[] = {2, -3, 10}, ie = 3;
    sl_tensor_t tib = ten(SL_DT_INT32, ib, 1, 3), tie = ten(SL_DT_INT32, &ie, 1, 1);
    const sl_tensor_t *ii[2] = {&tib, &tie};
    assert_int_equal(run_node("Pow", 15, NULL, 0, ii, 2, &out, 1, &err), SL_ENG_OK);
    assert_int_equal(out.dtype, SL_DT_INT32);
    assert_memory_equal(out.data, ((int32_t[]){8, -27, 1000}), 12);
    free_outs(&out, 1);
    /* Before opset 12 the dtypes must match. */
    assert_int_equal(run_node("Pow", 7, NULL, 0, fi, 2, &out, 1, &err), SL_ENG_EINVAL);
}

/* ---- comparisons, logic, variadic, PRelu, Where ---- */

static void test_compare_logic(void **state) {
    float a[] = {1.0f, NAN, 3.0f, -0.0f}, b[] = {1.0f, NAN, 2.0f, 0.0f};
    sl_tensor_t ta = ten(SL_DT_FLOAT, a, 1, 4), tb = ten(SL_DT_FLOAT, b, 1, 4), out;
    const sl_tensor_t *ins[2] = {&ta, &tb};
    sl_eng_error_t err;
    assert_int_equal(run_node("Equal", 13, NULL, 0, ins, 2, &out, 1, &err), SL_ENG_OK);
    assert_int_equal(out.dtype, SL_DT_BOOL);
    assert_memory_equal(out.data, ((uint8_t[]){1, 0, 0, 1}), 4); /* NaN != NaN, -0 == 0 */
    free_outs(&out, 1);
    assert_int_equal(run_node("Greater", 13, NULL, 0, ins, 2, &out, 1, &err), SL_ENG_OK);
    assert_memory_equal(out.data, ((uint8_t[]){0, 0, 1, 0}), 4);
    free_outs(&out, 1);
    assert_int_equal(run_node("LessOrEqual", 16, NULL, 0, ins, 2, &out, 1, &err), SL_ENG_OK);
    assert_memory_equal(out.data, ((uint8_t[]){1, 0, 0, 1}), 4);
    free_outs(&out, 1);
    /* int64 against a broadcast row. */
    int64_t m[] = {1, 2, 3, 4, 5, 6}, r[] = {2, 5, 3};
    sl_tensor_t tm = ten(SL_DT_INT64, m, 2, 2, 3), tr = ten(SL_DT_INT64, r, 1, 3);
    const sl_tensor_t *mr[2] = {&tm, &tr};
    assert_int_equal(run_node("Less", 13, NULL, 0, mr, 2, &out, 1, &err), SL_ENG_OK);
    assert_int_equal(out.ndim, 2);
    assert_memory_equal(out.data, ((uint8_t[]){1, 1, 0, 0, 0, 0}), 6);
    free_outs(&out, 1);
    assert_int_equal(run_node("GreaterOrEqual", 16, NULL, 0, mr, 2, &out, 1, &err), SL_ENG_OK);
    assert_memory_equal(out.data, ((uint8_t[]){0, 0, 1, 1, 1, 1}), 6);
    free_outs(&out, 1);
    /* And/Or/Xor with [2,2] x [2,1]. */
    uint8_t p[] = {0, 1, 0, 1}, q[] = {0, 1};
    sl_tensor_t tp = ten(SL_DT_BOOL, p, 2, 2, 2), tq = ten(SL_DT_BOOL, q, 2, 2, 1);
    const sl_tensor_t *pq[2] = {&tp, &tq};
    assert_int_equal(run_node("And", 7, NULL, 0, pq, 2, &out, 1, &err), SL_ENG_OK);
    assert_memory_equal(out.data, ((uint8_t[]){0, 0, 0, 1}), 4);
    free_outs(&out, 1);
    assert_int_equal(run_node("Or", 7, NULL, 0, pq, 2, &out, 1, &err), SL_ENG_OK);
    assert_memory_equal(out.data, ((uint8_t[]){0, 1, 1, 1}), 4);
    free_outs(&out, 1);
    assert_int_equal(run_node("Xor", 7, NULL, 0, pq, 2, &out, 1, &err), SL_ENG_OK);
    assert_memory_equal(out.data, ((uint8_t[]){0, 1, 1, 0}), 4);
    free_outs(&out, 1);
}

static void test_variadic(void **state) {
    float a[] = {1, 2, 3}, b[] = {10, 20}, c = 100, n[] = {NAN, 0, 5};
    sl_tensor_t ta = ten(SL_DT_FLOAT, a, 1, 3), tb = ten(SL_DT_FLOAT, b, 2, 2, 1),
                tc = ten(SL_DT_FLOAT, &c, 0), tn = ten(SL_DT_FLOAT, n, 1, 3), out;
    const sl_tensor_t *ins[3] = {&ta, &tb, &tc};
    sl_eng_error_t err;
    assert_int_equal(run_node("Sum", 13, NULL, 0, ins, 3, &out, 1, &err), SL_ENG_OK);
    assert_int_equal(out.ndim, 2);
    assert_int_equal(out.dims[0], 2);
    assert_int_equal(out.dims[1], 3);
    const float sum[] = {111, 112, 113, 121, 122, 123};
    for (int i = 0; i < 6; i++)
        assert_close(((float *)out.data)[i], sum[i], 0);
    free_outs(&out, 1);
    assert_int_equal(run_node("Mean", 13, NULL, 0, ins, 3, &out, 1, &err), SL_ENG_OK);
    for (int i = 0; i < 6; i++)
        assert_close(((float *)out.data)[i], sum[i] / 3.0, 1e-6);
    free_outs(&out, 1);
    /* Max propagates NaN like numpy.maximum; one input is a copy. */
    const sl_tensor_t *mx[2] = {&ta, &tn};
    assert_int_equal(run_node("Max", 13, NULL, 0, mx, 2, &out, 1, &err), SL_ENG_OK);
    assert_true(isnan(((float *)out.data)[0]));
    assert_close(((float *)out.data)[1], 2, 0);
    assert_close(((float *)out.data)[2], 5, 0);
    free_outs(&out, 1);
    assert_int_equal(run_node("Min", 13, NULL, 0, mx, 2, &out, 1, &err), SL_ENG_OK);
    assert_true(isnan(((float *)out.data)[0]));
    assert_close(((float *)out.data)[1], 0, 0);
    free_outs(&out, 1);
    assert_int_equal(run_node("Min", 13, NULL, 0, ins, 1, &out, 1, &err), SL_ENG_OK);
    assert_memory_equal(out.data, a, sizeof a);
    free_outs(&out, 1);
    /* A missing input and a dtype mismatch are named. */
    int64_t i64 = 1;
    sl_tensor_t ti = ten(SL_DT_INT64, &i64, 0);
    const sl_tensor_t *mixed[2] = {&ta, &ti};
    assert_int_equal(run_node("Sum", 13, NULL, 0, mixed, 2, &out, 1, &err), SL_ENG_EINVAL);
    assert_non_null(strstr(err.msg, "input 1"));
}

static void test_prelu_where(void **state) {
    float x[12], slope[3] = {0.1f, 0.2f, 0.3f};
    for (int i = 0; i < 12; i++)
        x[i] = (float)i - 6.0f;
    /* X [2,3,2], slope [3,1]. */
    sl_tensor_t tx = ten(SL_DT_FLOAT, x, 3, 2, 3, 2), ts = ten(SL_DT_FLOAT, slope, 2, 3, 1), out;
    const sl_tensor_t *ins[2] = {&tx, &ts};
    sl_eng_error_t err;
    assert_int_equal(run_node("PRelu", 16, NULL, 0, ins, 2, &out, 1, &err), SL_ENG_OK);
    for (int i = 0; i < 12; i++)
        assert_close(((float *)out.data)[i], x[i] < 0 ? x[i] * slope[(i / 2) % 3] : x[i], 1e-7);
    free_outs(&out, 1);
    /* Opset 6: a 1-D slope of X's channel count applies along dim 1. */
    sl_tensor_t tc3 = ten(SL_DT_FLOAT, slope, 1, 3);
    const sl_tensor_t *old[2] = {&tx, &tc3};
    assert_int_equal(run_node("PRelu", 6, NULL, 0, old, 2, &out, 1, &err), SL_ENG_OK);
    for (int i = 0; i < 12; i++)
        assert_close(((float *)out.data)[i], x[i] < 0 ? x[i] * slope[(i / 2) % 3] : x[i], 1e-7);
    free_outs(&out, 1);
    /* A slope that would grow X is refused (unidirectional broadcast). */
    float big[4] = {0};
    sl_tensor_t tb = ten(SL_DT_FLOAT, big, 4, 2, 2, 3, 2);
    const sl_tensor_t *bad[2] = {&tx, &tb};
    assert_int_equal(run_node("PRelu", 16, NULL, 0, bad, 2, &out, 1, &err), SL_ENG_ESHAPE);
    assert_non_null(strstr(err.msg, "slope"));
    /* Where: cond [2,1], X [3], Y scalar, int64. */
    uint8_t cond[] = {1, 0};
    int64_t xv[] = {1, 2, 3}, yv = -1;
    sl_tensor_t tc = ten(SL_DT_BOOL, cond, 2, 2, 1), txv = ten(SL_DT_INT64, xv, 1, 3),
                tyv = ten(SL_DT_INT64, &yv, 0);
    const sl_tensor_t *w[3] = {&tc, &txv, &tyv};
    assert_int_equal(run_node("Where", 16, NULL, 0, w, 3, &out, 1, &err), SL_ENG_OK);
    assert_int_equal(out.dtype, SL_DT_INT64);
    assert_int_equal(out.ndim, 2);
    assert_memory_equal(out.data, ((int64_t[]){1, 2, 3, -1, -1, -1}), 48);
    free_outs(&out, 1);
    /* Where needs a bool condition and matching X/Y dtypes. */
    const sl_tensor_t *w2[3] = {&txv, &txv, &tyv};
    assert_int_equal(run_node("Where", 16, NULL, 0, w2, 3, &out, 1, &err), SL_ENG_EUNSUPPORTED);
    const sl_tensor_t *w3[3] = {&tc, &txv, &tx};
    assert_int_equal(run_node("Where", 16, NULL, 0, w3, 3, &out, 1, &err), SL_ENG_EINVAL);
}

/* ---- Cast, CastLike, Identity, Dropout ---- */

static void test_cast(void **state) {
    float f[] = {-1.7f, 2.9f, NAN, 1e20f, -1e20f, 300.0f, -1.0f, -0.0f};
    sl_tensor_t tf = ten(SL_DT_FLOAT, f, 1, 8), out;
    const sl_tensor_t *ins[1] = {&tf};
    sl_eng_error_t err;
    sl_attr_t to = attr_i("to", SL_DT_INT32);
    assert_int_equal(run_node("Cast", 13, &to, 1, ins, 1, &out, 1, &err), SL_ENG_OK);
    assert_int_equal(out.dtype, SL_DT_INT32);
    /* Truncation toward zero, NaN to 0, saturation. */
    assert_memory_equal(out.data, ((int32_t[]){-1, 2, 0, INT32_MAX, INT32_MIN, 300, -1, 0}), 32);
    free_outs(&out, 1);
    to = attr_i("to", SL_DT_UINT8);
    assert_int_equal(run_node("Cast", 13, &to, 1, ins, 1, &out, 1, &err), SL_ENG_OK);
    uint8_t *u = out.data;
    assert_int_equal(u[0], 255); /* -1 wraps, as numpy's astype */
    assert_int_equal(u[5], 44);  /* 300 wraps */
    free_outs(&out, 1);
    to = attr_i("to", SL_DT_BOOL);
    assert_int_equal(run_node("Cast", 13, &to, 1, ins, 1, &out, 1, &err), SL_ENG_OK);
    assert_memory_equal(out.data, ((uint8_t[]){1, 1, 1, 1, 1, 1, 1, 0}), 8);
    free_outs(&out, 1);
    to = attr_i("to", SL_DT_DOUBLE);
    assert_int_equal(run_node("Cast", 13, &to, 1, ins, 1, &out, 1, &err), SL_ENG_OK);
    assert_close(((double *)out.data)[0], (double)-1.7f, 0);
    assert_true(isnan(((double *)out.data)[2]));
    free_outs(&out, 1);
    /* int64 to narrower integers wraps; int to bool is "not zero". */
    int64_t l[] = {300, -1, INT64_MIN, 2};
    sl_tensor_t tl = ten(SL_DT_INT64, l, 1, 4);
    const sl_tensor_t *lins[1] = {&tl};
    to = attr_i("to", SL_DT_UINT8);
    assert_int_equal(run_node("Cast", 13, &to, 1, lins, 1, &out, 1, &err), SL_ENG_OK);
    assert_memory_equal(out.data, ((uint8_t[]){44, 255, 0, 2}), 4);
    free_outs(&out, 1);
    to = attr_i("to", SL_DT_INT32);
    assert_int_equal(run_node("Cast", 13, &to, 1, lins, 1, &out, 1, &err), SL_ENG_OK);
    assert_memory_equal(out.data, ((int32_t[]){300, -1, 0, 2}), 16);
    free_outs(&out, 1);
    to = attr_i("to", SL_DT_BOOL);
    assert_int_equal(run_node("Cast", 13, &to, 1, lins, 1, &out, 1, &err), SL_ENG_OK);
    assert_memory_equal(out.data, ((uint8_t[]){1, 1, 1, 1}), 4);
    free_outs(&out, 1);
    to = attr_i("to", SL_DT_FLOAT);
    assert_int_equal(run_node("Cast", 13, &to, 1, lins, 1, &out, 1, &err), SL_ENG_OK);
    assert_close(((float *)out.data)[2], -9.223372e18, 1e-6);
    free_outs(&out, 1);
    /* bool to float. */
    uint8_t bb[] = {0, 1};
    sl_tensor_t tbb = ten(SL_DT_BOOL, bb, 1, 2);
    const sl_tensor_t *bins[1] = {&tbb};
    assert_int_equal(run_node("Cast", 13, &to, 1, bins, 1, &out, 1, &err), SL_ENG_OK);
    assert_close(((float *)out.data)[1], 1.0, 0);
    free_outs(&out, 1);
    /* Unsupported targets and a missing attribute are clear errors. */
    to = attr_i("to", SL_DT_FLOAT16);
    assert_int_equal(run_node("Cast", 13, &to, 1, ins, 1, &out, 1, &err), SL_ENG_EUNSUPPORTED);
    assert_non_null(strstr(err.msg, "float16"));
    to = attr_i("to", SL_DT_STRING);
    assert_int_equal(run_node("Cast", 13, &to, 1, ins, 1, &out, 1, &err), SL_ENG_EUNSUPPORTED);
    to = attr_i("to", 999);
    assert_int_equal(run_node("Cast", 13, &to, 1, ins, 1, &out, 1, &err), SL_ENG_EUNSUPPORTED);
    assert_int_equal(run_node("Cast", 13, NULL, 0, ins, 1, &out, 1, &err), SL_ENG_EINVAL);
    assert_non_null(strstr(err.msg, "'to'"));
    /* CastLike takes the second input's dtype. */
    double like = 0;
    sl_tensor_t tlike = ten(SL_DT_DOUBLE, &like, 0);
    const sl_tensor_t *cl[2] = {&tl, &tlike};
    assert_int_equal(run_node("CastLike", 15, NULL, 0, cl, 2, &out, 1, &err), SL_ENG_OK);
    assert_int_equal(out.dtype, SL_DT_DOUBLE);
    assert_close(((double *)out.data)[0], 300.0, 0);
    free_outs(&out, 1);
}

static void test_identity_dropout(void **state) {
    int64_t l[] = {5, -6, 7};
    sl_tensor_t tl = ten(SL_DT_INT64, l, 1, 3), outs[2];
    const sl_tensor_t *ins[1] = {&tl};
    sl_eng_error_t err;
    assert_int_equal(run_node("Identity", 16, NULL, 0, ins, 1, outs, 1, &err), SL_ENG_OK);
    assert_int_equal(outs[0].dtype, SL_DT_INT64);
    assert_memory_equal(outs[0].data, l, sizeof l);
    free_outs(outs, 1);
    float x[] = {1, 2, 3, 4}, ratio = 0.5f;
    uint8_t train = 0;
    sl_tensor_t tx = ten(SL_DT_FLOAT, x, 2, 2, 2), tr = ten(SL_DT_FLOAT, &ratio, 0),
                tt = ten(SL_DT_BOOL, &train, 0);
    const sl_tensor_t *din[3] = {&tx, &tr, &tt};
    assert_int_equal(run_node("Dropout", 13, NULL, 0, din, 3, outs, 2, &err), SL_ENG_OK);
    assert_memory_equal(outs[0].data, x, sizeof x);
    assert_int_equal(outs[1].dtype, SL_DT_BOOL);
    assert_memory_equal(outs[1].data, ((uint8_t[]){1, 1, 1, 1}), 4);
    free_outs(outs, 2);
    sl_attr_t r = attr_f("ratio", 0.3f);
    assert_int_equal(run_node("Dropout", 7, &r, 1, din, 1, outs, 1, &err), SL_ENG_OK);
    assert_memory_equal(outs[0].data, x, sizeof x);
    free_outs(outs, 1);
    train = 1;
    assert_int_equal(run_node("Dropout", 13, NULL, 0, din, 3, outs, 2, &err), SL_ENG_EUNSUPPORTED);
    assert_non_null(strstr(err.msg, "training_mode"));
    ratio = 0.0f; /* training with ratio 0 is an identity */
    assert_int_equal(run_node("Dropout", 13, NULL, 0, din, 3, outs, 2, &err), SL_ENG_OK);
    assert_memory_equal(outs[0].data, x, sizeof x);
    free_outs(outs, 2);
}

static void test_registry_versions(void **state) {
    /* The opset picks the kernel: Clip's bounds moved from attributes to inputs at 11. */
    const sl_op_t *c6 = sl_op_find("", "Clip", 6), *c13 = sl_op_find("", "Clip", 13);
    assert_non_null(c6);
    assert_non_null(c13);
    assert_int_equal(c6->since, 1);
    assert_int_equal(c13->since, 11);
    assert_null(sl_op_find("", "Round", 10));
    assert_non_null(sl_op_find("ai.onnx", "Sigmoid", 13));
    assert_null(sl_op_find("", "CastLike", 13));
}

/* Large same-shape and row-broadcast inputs go through the fast paths and the plan alike. */
static void test_large_and_inplace(void **state) {
    enum { R = 37, C = 129 };
    float *a = malloc(R * C * sizeof(float)), row[C];
    for (int i = 0; i < R * C; i++)
        a[i] = (float)(i % 101) * 0.5f - 20.0f;
    for (int j = 0; j < C; j++)
        row[j] = (float)j;
    sl_tensor_t ta = ten(SL_DT_FLOAT, a, 2, R, C), tr = ten(SL_DT_FLOAT, row, 1, C), out;
    const sl_tensor_t *ins[2] = {&ta, &tr};
    sl_eng_error_t err;
    assert_int_equal(run_node("Mul", 14, NULL, 0, ins, 2, &out, 1, &err), SL_ENG_OK);
    for (int i = 0; i < R * C; i++)
        assert_close(((float *)out.data)[i], a[i] * row[i % C], 0);
    free_outs(&out, 1);
    /* In place: a kernel whose output buffer is its input's. */
    const sl_op_t *op = sl_op_find("", "Relu", 14);
    sl_node_t node = {.name = "r", .op_type = "Relu", .domain = "", .opset = 14, .op = op};
    const sl_tensor_t *one[1] = {&ta};
    sl_tensor_t o = ta;
    kh_kctx_t t = {.k = {.scratch = kh_scratch, .threads = 1, .err = &err}};
    assert_int_equal(op->run(&node, one, 1, &o, 1, &t.k), SL_ENG_OK);
    kh_scratch_free(&t);
    for (int i = 0; i < R * C; i++)
        assert_true(a[i] >= 0);
    free(a);
}

static void test_cast_helper(void **state) {
    /* Every pair of supported dtypes converts 1 to 1 and 0 to 0. */
    const sl_dtype_t dts[] = {SL_DT_FLOAT,  SL_DT_DOUBLE, SL_DT_INT8,  SL_DT_INT16,
                              SL_DT_INT32,  SL_DT_INT64,  SL_DT_UINT8, SL_DT_UINT16,
                              SL_DT_UINT32, SL_DT_UINT64, SL_DT_BOOL};
    const size_t nd = sizeof dts / sizeof dts[0];
    for (size_t i = 0; i < nd; i++) {
        for (size_t j = 0; j < nd; j++) {
            uint8_t one = 1, zero = 0, src[16], dst[16];
            double back;
            assert_true(sl_ew__cast(src, dts[i], &one, SL_DT_BOOL, 1));
            assert_true(sl_ew__cast(src + 8, dts[i], &zero, SL_DT_BOOL, 1));
            assert_true(sl_ew__cast(dst, dts[j], src, dts[i], 1));
            assert_true(sl_ew__cast(&back, SL_DT_DOUBLE, dst, dts[j], 1));
            assert_close(back, 1.0, 0);
            assert_true(sl_ew__cast(dst, dts[j], src + 8, dts[i], 1));
            assert_true(sl_ew__cast(&back, SL_DT_DOUBLE, dst, dts[j], 1));
            assert_close(back, 0.0, 0);
        }
    }
    uint8_t b[2];
    assert_false(sl_ew__cast(b, SL_DT_FLOAT16, b, SL_DT_FLOAT, 1));
    assert_false(sl_ew__cast(b, SL_DT_FLOAT, b, SL_DT_STRING, 1));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unary_math),
        cmocka_unit_test(test_activations),
        cmocka_unit_test(test_fast_transcendentals),
        cmocka_unit_test(test_isnan_isinf_not),
        cmocka_unit_test(test_unary_int),
        cmocka_unit_test(test_clip),
        cmocka_unit_test(test_broadcast_shapes),
        cmocka_unit_test(test_broadcast_errors),
        cmocka_unit_test(test_legacy_broadcast),
        cmocka_unit_test(test_int_arith),
        cmocka_unit_test(test_pow),
        cmocka_unit_test(test_compare_logic),
        cmocka_unit_test(test_variadic),
        cmocka_unit_test(test_prelu_where),
        cmocka_unit_test(test_cast),
        cmocka_unit_test(test_identity_dropout),
        cmocka_unit_test(test_registry_versions),
        cmocka_unit_test(test_large_and_inplace),
        cmocka_unit_test(test_cast_helper),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
