/* Unit tests of the reduction kernels (src/engine/ops_reduce.c, nn_softmax.c): each op is found
 * through the registry as the executor would, given a hand-built node, and run on small inputs
 * whose results are worked out by hand: Reduce* with keepdims, non-adjacent axes, the opset 13
 * axes input and noop_with_empty_axes; ArgMax/ArgMin ties; Softmax before and after opset 13;
 * TopK ties and k; CumSum; and the errors a bad node gets. */
#include "engine_kernel_harness.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- reductions ---- */

static void test_reduce_mean_middle_axis(void **state) {
    float x[24];
    iota(x, 24); /* [2, 3, 4] */
    int64_t axes[] = {1};
    sl_attr_t at[] = {attr_ints("axes", axes, 1)};
    sl_tensor_t in[] = {F32(x, 3, INT64_C(2), INT64_C(3), INT64_C(4))}, out[1];
    assert_int_equal(run_op("ReduceMean", 13, at, 1, in, 1, out, 1), SL_ENG_OK);
    assert_dims(&out[0], 3, (int64_t[]){2, 1, 4});
    /* mean of x[b, 0..2, j] = 12b + j + 4 */
    float want[] = {4, 5, 6, 7, 16, 17, 18, 19};
    assert_floats(out[0].data, want, 8, 1e-6f);
    free_outs(out, 1);
}

static void test_reduce_max_non_adjacent_axes_no_keepdims(void **state) {
    float x[12] = {1, -5, 3, 9, 0, 2, -1, -2, 8, 4, 7, 6}; /* [2, 3, 2] */
    int64_t axes[] = {0, -1};
    sl_attr_t at[] = {attr_ints("axes", axes, 2), attr_i("keepdims", 0)};
    sl_tensor_t in[] = {F32(x, 3, INT64_C(2), INT64_C(3), INT64_C(2))}, out[1];
    assert_int_equal(run_op("ReduceMax", 13, at, 2, in, 1, out, 1), SL_ENG_OK);
    assert_dims(&out[0], 1, (int64_t[]){3});
    float want[] = {1, 9, 7}; /* max over {x[0,j,:], x[1,j,:]} */
    assert_floats(out[0].data, want, 3, 0);
    free_outs(out, 1);
}

static void test_reduce_sum_axes_input_and_noop(void **state) {
    float x[6] = {1, 2, 3, 4, 5, 6}; /* [2, 3] */
    int64_t ax[] = {1};
    sl_tensor_t in[] = {F32(x, 2, INT64_C(2), INT64_C(3)), I64(ax, 1, INT64_C(1))}, out[1];
    assert_int_equal(run_op("ReduceSum", 13, NULL, 0, in, 2, out, 1), SL_ENG_OK);
    assert_dims(&out[0], 2, (int64_t[]){2, 1});
    assert_floats(out[0].data, (float[]){6, 15}, 2, 0);
    free_outs(out, 1);

    /* Empty axes: every axis, unless noop_with_empty_axes. */
    in[1].dims[0] = 0;
    assert_int_equal(run_op("ReduceSum", 13, NULL, 0, in, 2, out, 1), SL_ENG_OK);
    assert_dims(&out[0], 2, (int64_t[]){1, 1});
    assert_floats(out[0].data, (float[]){21}, 1, 0);
    free_outs(out, 1);
    sl_attr_t noop[] = {attr_i("noop_with_empty_axes", 1)};
    assert_int_equal(run_op("ReduceSum", 13, noop, 1, in, 2, out, 1), SL_ENG_OK);
    assert_dims(&out[0], 2, (int64_t[]){2, 3});
    assert_floats(out[0].data, x, 6, 0);
    free_outs(out, 1);
}

static void test_reduce_family_values(void **state) {
    float x[4] = {1, -2, 3, -4}; /* [1, 4], reduced over axis 1 */
    int64_t axes[] = {1};
    sl_attr_t at[] = {attr_ints("axes", axes, 1), attr_i("keepdims", 0)};
    struct {
        const char *op;
        float want;
    } cases[] = {
        {"ReduceL1", 10},        {"ReduceL2", sqrtf(30)},
        {"ReduceSumSquare", 30}, {"ReduceProd", 24},
        {"ReduceMin", -4},       {"ReduceLogSumExp", logf(expf(1) + expf(-2) + expf(3) + expf(-4))},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        sl_tensor_t in[] = {F32(x, 2, INT64_C(1), INT64_C(4))}, out[1];
        assert_int_equal(run_op(cases[i].op, 11, at, 2, in, 1, out, 1), SL_ENG_OK);
        assert_dims(&out[0], 1, (int64_t[]){1});
        assert_floats(out[0].data, &cases[i].want, 1, 1e-6f);
        free_outs(out, 1);
    }
    float y[3] = {1, 2, 5};
    sl_tensor_t in[] = {F32(y, 1, INT64_C(3))}, out[1];
    assert_int_equal(run_op("ReduceLogSum", 11, NULL, 0, in, 1, out, 1), SL_ENG_OK);
    assert_floats(out[0].data, (float[]){logf(8)}, 1, 1e-6f);
    free_outs(out, 1);
}

static void test_reduce_int64(void **state) {
    int64_t x[6] = {1, 2, 3, 4, 5, 6}; /* [3, 2], over axis 0 */
    int64_t axes[] = {0};
    sl_attr_t at[] = {attr_ints("axes", axes, 1)};
    sl_tensor_t in[] = {I64(x, 2, INT64_C(3), INT64_C(2))}, out[1];
    assert_int_equal(run_op("ReduceProd", 13, at, 1, in, 1, out, 1), SL_ENG_OK);
    assert_int_equal(out[0].dtype, SL_DT_INT64);
    int64_t *y = out[0].data;
    assert_int_equal(y[0], 15);
    assert_int_equal(y[1], 48);
    free_outs(out, 1);
    assert_int_equal(run_op("ReduceSum", 11, at, 1, in, 1, out, 1), SL_ENG_OK);
    y = out[0].data;
    assert_int_equal(y[0], 9);
    assert_int_equal(y[1], 12);
    free_outs(out, 1);
}

static void test_reduce_bad_axes(void **state) {
    float x[6] = {0};
    int64_t axes[] = {2};
    sl_attr_t at[] = {attr_ints("axes", axes, 1)};
    sl_tensor_t in[] = {F32(x, 2, INT64_C(2), INT64_C(3))}, out[1];
    assert_int_equal(run_op("ReduceMean", 13, at, 1, in, 1, out, 1), SL_ENG_EINVAL);
    assert_non_null(strstr(last_err.msg, "node 'n1' (ReduceMean)"));
    assert_non_null(strstr(last_err.msg, "out of range"));
    int64_t dup[] = {1, -1};
    sl_attr_t at2[] = {attr_ints("axes", dup, 2)};
    assert_int_equal(run_op("ReduceMean", 13, at2, 1, in, 1, out, 1), SL_ENG_EINVAL);
    assert_non_null(strstr(last_err.msg, "twice"));
    sl_tensor_t s[] = {ten(SL_DT_STRING, x, 1, INT64_C(1))};
    assert_int_equal(run_op("ReduceSum", 11, NULL, 0, s, 1, out, 1), SL_ENG_EUNSUPPORTED);
}

/* ---- ArgMax / ArgMin ---- */

static void test_argmax_ties_and_last_index(void **state) {
    float x[6] = {2, 7, 7, 5, 1, 5}; /* [2, 3], along axis 1 */
    sl_attr_t at[] = {attr_i("axis", 1), attr_i("keepdims", 0)};
    sl_tensor_t in[] = {F32(x, 2, INT64_C(2), INT64_C(3))}, out[1];
    assert_int_equal(run_op("ArgMax", 13, at, 2, in, 1, out, 1), SL_ENG_OK);
    assert_dims(&out[0], 1, (int64_t[]){2});
    int64_t *y = out[0].data;
    assert_int_equal(y[0], 1);
    assert_int_equal(y[1], 0);
    free_outs(out, 1);
    sl_attr_t last[] = {attr_i("axis", 1), attr_i("keepdims", 0), attr_i("select_last_index", 1)};
    assert_int_equal(run_op("ArgMax", 13, last, 3, in, 1, out, 1), SL_ENG_OK);
    y = out[0].data;
    assert_int_equal(y[0], 2);
    assert_int_equal(y[1], 2);
    free_outs(out, 1);
    /* ArgMin along axis 0 (inner > 1), keepdims. */
    sl_attr_t a0[] = {attr_i("axis", 0)};
    assert_int_equal(run_op("ArgMin", 13, a0, 1, in, 1, out, 1), SL_ENG_OK);
    assert_dims(&out[0], 2, (int64_t[]){1, 3});
    y = out[0].data;
    assert_int_equal(y[0], 0);
    assert_int_equal(y[1], 1);
    assert_int_equal(y[2], 1);
    free_outs(out, 1);
}

/* ---- Softmax family ---- */

static void test_softmax_axis_and_coercion(void **state) {
    float x[6] = {1, 2, 3, 1, 2, 3}; /* [1, 2, 3] */
    sl_tensor_t in[] = {F32(x, 3, INT64_C(1), INT64_C(2), INT64_C(3))}, out[1];
    float e1 = expf(1), e2 = expf(2), e3 = expf(3), s = e1 + e2 + e3;
    /* Opset 13, default axis -1: each row of 3. */
    assert_int_equal(run_op("Softmax", 13, NULL, 0, in, 1, out, 1), SL_ENG_OK);
    float want13[] = {e1 / s, e2 / s, e3 / s, e1 / s, e2 / s, e3 / s};
    assert_floats(out[0].data, want13, 6, 1e-6f);
    free_outs(out, 1);
    /* Opset 11, default axis 1: coerced to [1, 6], one softmax over all six. */
    assert_int_equal(run_op("Softmax", 11, NULL, 0, in, 1, out, 1), SL_ENG_OK);
    float want11[] = {e1 / (2 * s), e2 / (2 * s), e3 / (2 * s),
                      e1 / (2 * s), e2 / (2 * s), e3 / (2 * s)};
    assert_floats(out[0].data, want11, 6, 1e-6f);
    free_outs(out, 1);
    /* Opset 13 along axis 1 (inner 3): pairs (x[0,0,j], x[0,1,j]) are equal, so 0.5 each. */
    sl_attr_t ax[] = {attr_i("axis", 1)};
    assert_int_equal(run_op("Softmax", 13, ax, 1, in, 1, out, 1), SL_ENG_OK);
    float half[] = {0.5f, 0.5f, 0.5f, 0.5f, 0.5f, 0.5f};
    assert_floats(out[0].data, half, 6, 1e-6f);
    free_outs(out, 1);
}

static void test_logsoftmax_large_numbers(void **state) {
    float x[4] = {10000, 10001, 10002, 10003};
    sl_tensor_t in[] = {F32(x, 2, INT64_C(1), INT64_C(4))}, out[1];
    assert_int_equal(run_op("LogSoftmax", 13, NULL, 0, in, 1, out, 1), SL_ENG_OK);
    float l = logf(1 + expf(-1) + expf(-2) + expf(-3));
    float want[] = {-3 - l, -2 - l, -1 - l, -l};
    assert_floats(out[0].data, want, 4, 1e-6f);
    free_outs(out, 1);
}

static void test_hardmax_first_of_ties(void **state) {
    float x[8] = {1, 3, 3, 0, /* tie: first wins */ -1, -2, -3, -4};
    sl_tensor_t in[] = {F32(x, 2, INT64_C(2), INT64_C(4))}, out[1];
    assert_int_equal(run_op("Hardmax", 13, NULL, 0, in, 1, out, 1), SL_ENG_OK);
    float want[] = {0, 1, 0, 0, 1, 0, 0, 0};
    assert_floats(out[0].data, want, 8, 0);
    free_outs(out, 1);
}

/* ---- TopK ---- */

static void test_topk_stable_ties(void **state) {
    float x[6] = {3, 1, 3, 2, 3, 0};
    int64_t k[] = {3};
    sl_tensor_t in[] = {F32(x, 2, INT64_C(1), INT64_C(6)), I64(k, 1, INT64_C(1))}, out[2];
    assert_int_equal(run_op("TopK", 11, NULL, 0, in, 2, out, 2), SL_ENG_OK);
    assert_dims(&out[0], 2, (int64_t[]){1, 3});
    assert_floats(out[0].data, (float[]){3, 3, 3}, 3, 0);
    int64_t *idx = out[1].data;
    assert_int_equal(idx[0], 0);
    assert_int_equal(idx[1], 2);
    assert_int_equal(idx[2], 4);
    free_outs(out, 2);
    sl_attr_t small[] = {attr_i("largest", 0)};
    assert_int_equal(run_op("TopK", 11, small, 1, in, 2, out, 2), SL_ENG_OK);
    assert_floats(out[0].data, (float[]){0, 1, 2}, 3, 0);
    idx = out[1].data;
    assert_int_equal(idx[0], 5);
    assert_int_equal(idx[1], 1);
    assert_int_equal(idx[2], 3);
    free_outs(out, 2);
    k[0] = 7;
    assert_int_equal(run_op("TopK", 11, NULL, 0, in, 2, out, 2), SL_ENG_EINVAL);
    assert_non_null(strstr(last_err.msg, "k = 7"));
}

static void test_topk_axis0(void **state) {
    float x[6] = {1, 9, 5, 4, 3, 8}; /* [3, 2], k = 1 along axis 0 */
    int64_t k[] = {1};
    sl_attr_t at[] = {attr_i("axis", 0)};
    sl_tensor_t in[] = {F32(x, 2, INT64_C(3), INT64_C(2)), I64(k, 1, INT64_C(1))}, out[2];
    assert_int_equal(run_op("TopK", 11, at, 1, in, 2, out, 2), SL_ENG_OK);
    assert_dims(&out[0], 2, (int64_t[]){1, 2});
    assert_floats(out[0].data, (float[]){5, 9}, 2, 0);
    int64_t *idx = out[1].data;
    assert_int_equal(idx[0], 1);
    assert_int_equal(idx[1], 0);
    free_outs(out, 2);
}

/* ---- CumSum ---- */

static void test_cumsum_modes(void **state) {
    float x[6] = {1, 2, 3, 4, 5, 6}; /* [2, 3] */
    int64_t axis[] = {1};
    sl_tensor_t in[] = {F32(x, 2, INT64_C(2), INT64_C(3)), I64(axis, 0)}, out[1];
    assert_int_equal(run_op("CumSum", 14, NULL, 0, in, 2, out, 1), SL_ENG_OK);
    assert_floats(out[0].data, (float[]){1, 3, 6, 4, 9, 15}, 6, 0);
    free_outs(out, 1);
    sl_attr_t er[] = {attr_i("exclusive", 1), attr_i("reverse", 1)};
    assert_int_equal(run_op("CumSum", 14, er, 2, in, 2, out, 1), SL_ENG_OK);
    assert_floats(out[0].data, (float[]){5, 3, 0, 11, 6, 0}, 6, 0);
    free_outs(out, 1);
    axis[0] = 0;
    assert_int_equal(run_op("CumSum", 14, NULL, 0, in, 2, out, 1), SL_ENG_OK);
    assert_floats(out[0].data, (float[]){1, 2, 3, 5, 7, 9}, 6, 0);
    free_outs(out, 1);
    axis[0] = 5;
    assert_int_equal(run_op("CumSum", 14, NULL, 0, in, 2, out, 1), SL_ENG_EINVAL);
}

/* A larger ReduceSum / ReduceMean against a naive double loop, every axis subset of a 4-D
 * tensor: exercises the pass planner (1 to 2 passes, inner and outer layouts). */
static void test_reduce_every_axis_subset(void **state) {
    enum { A = 3, B = 4, C = 5, D = 6 };
    static float x[A * B * C * D];
    for (int i = 0; i < A * B * C * D; i++)
        x[i] = (float)((i * 37) % 101) / 10.0f - 5.0f;
    const int64_t dims[4] = {A, B, C, D};
    for (int mask = 1; mask < 16; mask++) {
        int64_t axes[4];
        size_t na = 0;
        for (int d = 0; d < 4; d++)
            if (mask & (1 << d)) axes[na++] = d;
        sl_attr_t at[] = {attr_ints("axes", axes, na)};
        sl_tensor_t in[] = {F32(x, 4, (int64_t)A, (int64_t)B, (int64_t)C, (int64_t)D)}, out[1];
        assert_int_equal(run_op("ReduceMean", 13, at, 1, in, 1, out, 1), SL_ENG_OK);
        int64_t od[4], cnt = 1;
        for (int d = 0; d < 4; d++) {
            od[d] = (mask & (1 << d)) ? 1 : dims[d];
            if (mask & (1 << d)) cnt *= dims[d];
        }
        static double ref[A * B * C * D];
        memset(ref, 0, sizeof ref);
        for (int a = 0; a < A; a++)
            for (int b = 0; b < B; b++)
                for (int c = 0; c < C; c++)
                    for (int d = 0; d < D; d++) {
                        int i[4] = {a, b, c, d};
                        int64_t o = 0;
                        for (int q = 0; q < 4; q++)
                            o = o * od[q] + ((mask & (1 << q)) ? 0 : i[q]);
                        ref[o] += x[((a * B + b) * C + c) * D + d];
                    }
        int64_t n = od[0] * od[1] * od[2] * od[3];
        const float *y = out[0].data;
        for (int64_t i = 0; i < n; i++) {
            if (fabs(y[i] - ref[i] / (double)cnt) > 1e-4)
                fail_msg("mask %d element %lld: got %g want %g", mask, (long long)i, y[i],
                         ref[i] / (double)cnt);
        }
        free_outs(out, 1);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reduce_mean_middle_axis),
        cmocka_unit_test(test_reduce_max_non_adjacent_axes_no_keepdims),
        cmocka_unit_test(test_reduce_sum_axes_input_and_noop),
        cmocka_unit_test(test_reduce_family_values),
        cmocka_unit_test(test_reduce_int64),
        cmocka_unit_test(test_reduce_bad_axes),
        cmocka_unit_test(test_reduce_every_axis_subset),
        cmocka_unit_test(test_argmax_ties_and_last_index),
        cmocka_unit_test(test_softmax_axis_and_coercion),
        cmocka_unit_test(test_logsoftmax_large_numbers),
        cmocka_unit_test(test_hardmax_first_of_ties),
        cmocka_unit_test(test_topk_stable_ties),
        cmocka_unit_test(test_topk_axis0),
        cmocka_unit_test(test_cumsum_modes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
