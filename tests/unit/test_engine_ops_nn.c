/* Unit tests of the nn kernels (src/engine/ops_nn.c, nn_pool.c, nn_norm.c, nn_resize.c): each op
 * is found through the registry as the executor would, given a hand-built node, and run on small
 * inputs with results worked out by hand (a 3x3 conv with padding and stride, a grouped conv,
 * pooling with ceil_mode and pads, batchnorm, layernorm, resize) or, for larger random shapes,
 * against a naive direct convolution written here; and the errors bad nodes get. */
#include "engine_kernel_harness.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- Conv ---- */

static void test_conv_3x3_pad_stride(void **state) {
    float x[25], w[9];
    iota(x, 25);
    for (int i = 0; i < 9; i++)
        w[i] = 1;
    sl_tensor_t in[] = {F32(x, 4, INT64_C(1), INT64_C(1), INT64_C(5), INT64_C(5)),
                        F32(w, 4, INT64_C(1), INT64_C(1), INT64_C(3), INT64_C(3))},
                out[1];
    sl_attr_t at[] = {INTS("kernel_shape", 3, 3), INTS("pads", 1, 1, 1, 1), INTS("strides", 2, 2)};
    assert_int_equal(run_op("Conv", 11, at, 3, in, 2, out, 1), SL_ENG_OK);
    assert_dims(&out[0], 4, (int64_t[]){1, 1, 3, 3});
    float want[] = {12, 27, 24, 63, 108, 81, 72, 117, 84};
    assert_floats(out[0].data, want, 9, 0);
    free_outs(out, 1);
    /* No padding, stride 1. */
    assert_int_equal(run_op("Conv", 11, NULL, 0, in, 2, out, 1), SL_ENG_OK);
    assert_dims(&out[0], 4, (int64_t[]){1, 1, 3, 3});
    float want2[] = {54, 63, 72, 99, 108, 117, 144, 153, 162};
    assert_floats(out[0].data, want2, 9, 0);
    free_outs(out, 1);
}

static void test_conv_grouped_with_bias(void **state) {
    float x[8] = {1, 2, 3, 4, 5, 6, 7, 8}, w[2] = {2, 3}, b[2] = {1, -1};
    sl_tensor_t in[] = {F32(x, 4, INT64_C(1), INT64_C(2), INT64_C(2), INT64_C(2)),
                        F32(w, 4, INT64_C(2), INT64_C(1), INT64_C(1), INT64_C(1)),
                        F32(b, 1, INT64_C(2))},
                out[1];
    sl_attr_t at[] = {attr_i("group", 2)};
    assert_int_equal(run_op("Conv", 11, at, 1, in, 3, out, 1), SL_ENG_OK);
    float want[] = {3, 5, 7, 9, 14, 17, 20, 23};
    assert_floats(out[0].data, want, 8, 0);
    free_outs(out, 1);
}

typedef struct {
    int nsp;
    int64_t N, C, M, group, in[3], k[3], s[3], d[3], pb[3], pe[3];
    const char *auto_pad;
} conv_case_t;

static float rnd(unsigned *seed) {
    *seed = *seed * 1103515245u + 12345u;
    return (float)((*seed >> 8) % 2001) / 1000.0f - 1.0f;
}

/* Direct convolution over explicit pads: the reference for the im2col + sgemm path. */
static void naive_conv(const conv_case_t *c, const int64_t *out, const float *x, const float *w,
                       const float *b, float *y) {
    int64_t in3[3] = {1, 1, 1}, o3[3] = {1, 1, 1}, k3[3] = {1, 1, 1}, s3[3] = {1, 1, 1},
            d3[3] = {1, 1, 1}, p3[3] = {0, 0, 0};
    int lead = 3 - c->nsp;
    for (int i = 0; i < c->nsp; i++) {
        in3[lead + i] = c->in[i];
        o3[lead + i] = out[i];
        k3[lead + i] = c->k[i];
        s3[lead + i] = c->s[i];
        d3[lead + i] = c->d[i];
        p3[lead + i] = c->pb[i];
    }
    int64_t Cg = c->C / c->group, Mg = c->M / c->group;
    int64_t isp = in3[0] * in3[1] * in3[2], osp = o3[0] * o3[1] * o3[2];
    int64_t ksp = k3[0] * k3[1] * k3[2];
    for (int64_t n = 0; n < c->N; n++)
        for (int64_t m = 0; m < c->M; m++) {
            int64_t g = m / Mg;
            for (int64_t o0 = 0; o0 < o3[0]; o0++)
                for (int64_t o1 = 0; o1 < o3[1]; o1++)
                    for (int64_t o2 = 0; o2 < o3[2]; o2++) {
                        double acc = b ? b[m] : 0;
                        for (int64_t ci = 0; ci < Cg; ci++)
                            for (int64_t a = 0; a < k3[0]; a++)
                                for (int64_t bb = 0; bb < k3[1]; bb++)
                                    for (int64_t cc = 0; cc < k3[2]; cc++) {
                                        int64_t i0 = o0 * s3[0] - p3[0] + a * d3[0];
                                        int64_t i1 = o1 * s3[1] - p3[1] + bb * d3[1];
                                        int64_t i2 = o2 * s3[2] - p3[2] + cc * d3[2];
                                        if (i0 < 0 || i0 >= in3[0] || i1 < 0 || i1 >= in3[1] ||
                                            i2 < 0 || i2 >= in3[2])
                                            continue;
                                        float xv = x[(n * c->C + g * Cg + ci) * isp +
                                                     (i0 * in3[1] + i1) * in3[2] + i2];
                                        float wv =
                                            w[(m * Cg + ci) * ksp + (a * k3[1] + bb) * k3[2] + cc];
                                        acc += (double)xv * wv;
                                    }
                        y[(n * c->M + m) * osp + (o0 * o3[1] + o1) * o3[2] + o2] = (float)acc;
                    }
        }
}

static void check_conv_case(const conv_case_t *c) {
    unsigned seed = 42;
    int64_t isp = 1, ksp = 1;
    for (int i = 0; i < c->nsp; i++) {
        isp *= c->in[i];
        ksp *= c->k[i];
    }
    int64_t nx = c->N * c->C * isp, nw = c->M * (c->C / c->group) * ksp;
    float *x = malloc((size_t)nx * sizeof *x), *w = malloc((size_t)nw * sizeof *w);
    float b[64];
    for (int64_t i = 0; i < nx; i++)
        x[i] = rnd(&seed);
    for (int64_t i = 0; i < nw; i++)
        w[i] = rnd(&seed);
    for (int i = 0; i < 64; i++)
        b[i] = rnd(&seed);
    sl_tensor_t in[3] = {{.dtype = SL_DT_FLOAT, .ndim = c->nsp + 2, .data = x},
                         {.dtype = SL_DT_FLOAT, .ndim = c->nsp + 2, .data = w},
                         F32(b, 1, c->M)},
                out[1];
    in[0].dims[0] = c->N;
    in[0].dims[1] = c->C;
    in[1].dims[0] = c->M;
    in[1].dims[1] = c->C / c->group;
    for (int i = 0; i < c->nsp; i++) {
        in[0].dims[2 + i] = c->in[i];
        in[1].dims[2 + i] = c->k[i];
    }
    int64_t pads[6];
    for (int i = 0; i < c->nsp; i++) {
        pads[i] = c->pb[i];
        pads[c->nsp + i] = c->pe[i];
    }
    sl_attr_t at[] = {attr_i("group", c->group), attr_ints("strides", c->s, (size_t)c->nsp),
                      attr_ints("dilations", c->d, (size_t)c->nsp),
                      c->auto_pad ? attr_s("auto_pad", c->auto_pad)
                                  : attr_ints("pads", pads, 2 * (size_t)c->nsp)};
    assert_int_equal(run_op("Conv", 11, at, 4, in, 3, out, 1), SL_ENG_OK);
    int64_t osp = 1, od[3];
    conv_case_t eff = *c;
    for (int i = 0; i < c->nsp; i++) {
        od[i] = out[0].dims[2 + i];
        osp *= od[i];
        if (c->auto_pad) { /* SAME_UPPER: total pad split, the odd one at the end */
            int64_t e = (c->k[i] - 1) * c->d[i] + 1;
            int64_t want = (c->in[i] + c->s[i] - 1) / c->s[i];
            assert_int_equal(od[i], want);
            int64_t tp = (want - 1) * c->s[i] + e - c->in[i];
            eff.pb[i] = tp > 0 ? tp / 2 : 0;
        }
    }
    float *ref = malloc((size_t)(c->N * c->M * osp) * sizeof *ref);
    naive_conv(&eff, od, x, w, b, ref);
    assert_floats(out[0].data, ref, (int)(c->N * c->M * osp), 1e-4f);
    free(ref);
    free_outs(out, 1);
    free(x);
    free(w);
}

static void test_conv_against_naive(void **state) {
    const conv_case_t cases[] = {
        /* groups, strides, dilations, asymmetric pads */
        {2, 2, 4, 6, 2, {7, 6}, {3, 2}, {2, 1}, {1, 2}, {1, 0}, {2, 1}, NULL},
        /* depthwise 3x3, pad 1 */
        {2, 1, 3, 3, 3, {5, 5}, {3, 3}, {1, 1}, {1, 1}, {1, 1}, {1, 1}, NULL},
        /* 1x1: the direct path */
        {2, 2, 3, 5, 1, {4, 3}, {1, 1}, {1, 1}, {1, 1}, {0, 0}, {0, 0}, NULL},
        /* 1-D and 3-D */
        {1, 1, 2, 3, 1, {9}, {4}, {2}, {1}, {2}, {1}, NULL},
        {3, 1, 2, 2, 1, {3, 4, 5}, {2, 2, 3}, {1, 2, 1}, {1, 1, 1}, {0, 1, 1}, {1, 0, 1}, NULL},
        /* auto_pad SAME_UPPER with stride 2 */
        {2, 1, 1, 2, 1, {5, 6}, {3, 3}, {2, 2}, {1, 1}, {0, 0}, {0, 0}, "SAME_UPPER"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        check_conv_case(&cases[i]);
}

static void test_conv_errors(void **state) {
    float x[32] = {0}, w[32] = {0};
    sl_tensor_t in[] = {F32(x, 4, INT64_C(1), INT64_C(3), INT64_C(2), INT64_C(2)),
                        F32(w, 4, INT64_C(2), INT64_C(2), INT64_C(1), INT64_C(1))},
                out[1];
    assert_int_equal(run_op("Conv", 11, NULL, 0, in, 2, out, 1), SL_ENG_ESHAPE);
    assert_non_null(strstr(last_err.msg, "node 'n1' (Conv)"));
    assert_non_null(strstr(last_err.msg, "channels"));
    /* A kernel larger than the input. */
    sl_tensor_t in2[] = {F32(x, 4, INT64_C(1), INT64_C(1), INT64_C(2), INT64_C(2)),
                         F32(w, 4, INT64_C(1), INT64_C(1), INT64_C(3), INT64_C(3))};
    assert_int_equal(run_op("Conv", 11, NULL, 0, in2, 2, out, 1), SL_ENG_ESHAPE);
    assert_non_null(strstr(last_err.msg, "larger than"));
    sl_attr_t neg[] = {INTS("pads", -1, 0, 0, 0)};
    assert_int_equal(run_op("Conv", 11, neg, 1, in2, 2, out, 1), SL_ENG_EINVAL);
    assert_non_null(strstr(last_err.msg, "pads"));
    sl_tensor_t bad[] = {ten(SL_DT_INT64, x, 4, INT64_C(1), INT64_C(1), INT64_C(2), INT64_C(2)),
                         F32(w, 4, INT64_C(1), INT64_C(1), INT64_C(1), INT64_C(1))};
    assert_int_equal(run_op("Conv", 11, NULL, 0, bad, 2, out, 1), SL_ENG_EUNSUPPORTED);
}

/* ---- ConvTranspose ---- */

static void test_convtranspose_1d_stride(void **state) {
    float x[2] = {1, 2}, w[3] = {1, 1, 1};
    sl_tensor_t in[] = {F32(x, 3, INT64_C(1), INT64_C(1), INT64_C(2)),
                        F32(w, 3, INT64_C(1), INT64_C(1), INT64_C(3))},
                out[1];
    sl_attr_t at[] = {INTS("strides", 2)};
    assert_int_equal(run_op("ConvTranspose", 11, at, 1, in, 2, out, 1), SL_ENG_OK);
    assert_dims(&out[0], 3, (int64_t[]){1, 1, 5});
    assert_floats(out[0].data, (float[]){1, 1, 3, 2, 2}, 5, 0);
    free_outs(out, 1);
    /* pads 1 and 1 trim one on each side; output_padding 1 adds one at the end. */
    sl_attr_t at2[] = {INTS("strides", 2), INTS("pads", 1, 1), INTS("output_padding", 1)};
    assert_int_equal(run_op("ConvTranspose", 11, at2, 3, in, 2, out, 1), SL_ENG_OK);
    assert_dims(&out[0], 3, (int64_t[]){1, 1, 4});
    assert_floats(out[0].data, (float[]){1, 3, 2, 2}, 4, 0);
    free_outs(out, 1);
    /* output_shape gives the same through computed pads. */
    sl_attr_t at3[] = {INTS("strides", 2), INTS("output_shape", 5)};
    assert_int_equal(run_op("ConvTranspose", 11, at3, 2, in, 2, out, 1), SL_ENG_OK);
    assert_dims(&out[0], 3, (int64_t[]){1, 1, 5});
    free_outs(out, 1);
}

/* A 2-D grouped ConvTranspose against a direct scatter. */
static void test_convtranspose_grouped_against_scatter(void **state) {
    enum { N = 1, C = 4, H = 3, W = 2, G = 2, MG = 3, KH = 2, KW = 3, S = 2, P = 1 };
    unsigned seed = 7;
    float x[N * C * H * W], w[C * MG * KH * KW], b[G * MG];
    for (size_t i = 0; i < sizeof x / sizeof x[0]; i++)
        x[i] = rnd(&seed);
    for (size_t i = 0; i < sizeof w / sizeof w[0]; i++)
        w[i] = rnd(&seed);
    for (size_t i = 0; i < sizeof b / sizeof b[0]; i++)
        b[i] = rnd(&seed);
    sl_tensor_t in[] = {F32(x, 4, (int64_t)N, (int64_t)C, (int64_t)H, (int64_t)W),
                        F32(w, 4, (int64_t)C, (int64_t)MG, (int64_t)KH, (int64_t)KW),
                        F32(b, 1, (int64_t)(G * MG))},
                out[1];
    sl_attr_t at[] = {attr_i("group", G), INTS("strides", S, S), INTS("pads", P, P, P, P)};
    assert_int_equal(run_op("ConvTranspose", 11, at, 3, in, 3, out, 1), SL_ENG_OK);
    int64_t OH = S * (H - 1) + KH - 2 * P, OW = S * (W - 1) + KW - 2 * P;
    assert_dims(&out[0], 4, (int64_t[]){N, G * MG, OH, OW});
    float ref[G * MG * 16];
    for (int m = 0; m < G * MG; m++)
        for (int i = 0; i < OH * OW; i++)
            ref[m * OH * OW + i] = b[m];
    for (int c = 0; c < C; c++) {
        int g = c / (C / G);
        for (int h = 0; h < H; h++)
            for (int ww = 0; ww < W; ww++)
                for (int m = 0; m < MG; m++)
                    for (int kh = 0; kh < KH; kh++)
                        for (int kw = 0; kw < KW; kw++) {
                            int oh = h * S - P + kh, ow = ww * S - P + kw;
                            if (oh < 0 || oh >= OH || ow < 0 || ow >= OW) continue;
                            ref[((g * MG + m) * OH + oh) * OW + ow] +=
                                x[(c * H + h) * W + ww] * w[((c * MG + m) * KH + kh) * KW + kw];
                        }
    }
    assert_floats(out[0].data, ref, (int)(G * MG * OH * OW), 1e-5f);
    free_outs(out, 1);
}

/* ---- pools ---- */

static void test_maxpool_ceil_and_indices(void **state) {
    float x[16];
    iota(x, 16);
    sl_tensor_t in[] = {F32(x, 4, INT64_C(1), INT64_C(1), INT64_C(4), INT64_C(4))}, out[2];
    sl_attr_t at[] = {INTS("kernel_shape", 3, 3), INTS("strides", 2, 2), attr_i("ceil_mode", 1)};
    assert_int_equal(run_op("MaxPool", 12, at, 3, in, 1, out, 2), SL_ENG_OK);
    assert_dims(&out[0], 4, (int64_t[]){1, 1, 2, 2});
    assert_floats(out[0].data, (float[]){10, 11, 14, 15}, 4, 0);
    int64_t *idx = out[1].data;
    assert_int_equal(idx[0], 10);
    assert_int_equal(idx[3], 15);
    free_outs(out, 2);
    /* Without ceil_mode one window fits; column-major indices. */
    sl_attr_t at2[] = {INTS("kernel_shape", 3, 3), INTS("strides", 2, 2),
                       attr_i("storage_order", 1)};
    assert_int_equal(run_op("MaxPool", 12, at2, 3, in, 1, out, 2), SL_ENG_OK);
    assert_dims(&out[0], 4, (int64_t[]){1, 1, 1, 1});
    assert_floats(out[0].data, (float[]){10}, 1, 0);
    idx = out[1].data;
    assert_int_equal(idx[0], 2 + 4 * 2); /* h = 2, w = 2 */
    free_outs(out, 2);
    sl_attr_t big[] = {INTS("kernel_shape", 5, 5)};
    assert_int_equal(run_op("MaxPool", 12, big, 1, in, 1, out, 1), SL_ENG_ESHAPE);
    sl_attr_t none[] = {INTS("strides", 1, 1)};
    assert_int_equal(run_op("MaxPool", 12, none, 1, in, 1, out, 1), SL_ENG_EINVAL);
    assert_non_null(strstr(last_err.msg, "kernel_shape"));
}

static void test_averagepool_pads(void **state) {
    float x[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
    sl_tensor_t in[] = {F32(x, 4, INT64_C(1), INT64_C(1), INT64_C(3), INT64_C(3))}, out[1];
    sl_attr_t at[] = {INTS("kernel_shape", 3, 3), INTS("pads", 1, 1, 1, 1)};
    assert_int_equal(run_op("AveragePool", 11, at, 2, in, 1, out, 1), SL_ENG_OK);
    assert_floats(out[0].data, x, 9, 1e-6f);
    free_outs(out, 1);
    sl_attr_t inc[] = {INTS("kernel_shape", 3, 3), INTS("pads", 1, 1, 1, 1),
                       attr_i("count_include_pad", 1)};
    assert_int_equal(run_op("AveragePool", 11, inc, 3, in, 1, out, 1), SL_ENG_OK);
    float q = 4.0f / 9, e = 6.0f / 9;
    assert_floats(out[0].data, (float[]){q, e, q, e, 1, e, q, e, q}, 9, 1e-6f);
    free_outs(out, 1);
    /* SAME_UPPER, stride 2 on 3: output 2, extra pad at the end. */
    float y[9];
    iota(y, 9);
    sl_tensor_t in2[] = {F32(y, 4, INT64_C(1), INT64_C(1), INT64_C(3), INT64_C(3))};
    sl_attr_t su[] = {INTS("kernel_shape", 2, 2), INTS("strides", 2, 2),
                      attr_s("auto_pad", "SAME_UPPER")};
    assert_int_equal(run_op("AveragePool", 11, su, 3, in2, 1, out, 1), SL_ENG_OK);
    assert_dims(&out[0], 4, (int64_t[]){1, 1, 2, 2});
    assert_floats(out[0].data, (float[]){2, 3.5f, 6.5f, 8}, 4, 1e-6f);
    free_outs(out, 1);
}

static void test_global_pools(void **state) {
    float x[8] = {1, 2, 3, 6, -1, -2, -3, -4};
    sl_tensor_t in[] = {F32(x, 4, INT64_C(1), INT64_C(2), INT64_C(2), INT64_C(2))}, out[1];
    assert_int_equal(run_op("GlobalAveragePool", 11, NULL, 0, in, 1, out, 1), SL_ENG_OK);
    assert_dims(&out[0], 4, (int64_t[]){1, 2, 1, 1});
    assert_floats(out[0].data, (float[]){3, -2.5f}, 2, 1e-6f);
    free_outs(out, 1);
    assert_int_equal(run_op("GlobalMaxPool", 11, NULL, 0, in, 1, out, 1), SL_ENG_OK);
    assert_floats(out[0].data, (float[]){6, -1}, 2, 0);
    free_outs(out, 1);
}

/* ---- normalizations ---- */

static void test_batchnorm_inference(void **state) {
    float x[4] = {1, 2, 3, 4}, sc[2] = {1, 2}, b[2] = {0, 1}, mean[2] = {1, 3}, var[2] = {4, 1};
    sl_tensor_t in[] = {F32(x, 4, INT64_C(1), INT64_C(2), INT64_C(1), INT64_C(2)),
                        F32(sc, 1, INT64_C(2)), F32(b, 1, INT64_C(2)), F32(mean, 1, INT64_C(2)),
                        F32(var, 1, INT64_C(2))},
                out[3];
    sl_attr_t at[] = {attr_f("epsilon", 0)};
    assert_int_equal(run_op("BatchNormalization", 15, at, 1, in, 5, out, 1), SL_ENG_OK);
    assert_floats(out[0].data, (float[]){0, 0.5f, 1, 3}, 4, 1e-6f);
    free_outs(out, 1);
    /* Training mode: batch statistics, running ones updated with momentum. */
    sl_attr_t tr[] = {attr_f("epsilon", 0), attr_i("training_mode", 1), attr_f("momentum", 0.5f)};
    assert_int_equal(run_op("BatchNormalization", 15, tr, 3, in, 5, out, 3), SL_ENG_OK);
    /* ch0: batch mean 1.5, var 0.25 -> y = (x - 1.5) / 0.5 */
    assert_floats(out[0].data, (float[]){-1, 1, -1, 3}, 4, 1e-6f);
    assert_floats(out[1].data, (float[]){1.25f, 3.25f}, 2, 1e-6f);
    assert_floats(out[2].data, (float[]){2.125f, 0.625f}, 2, 1e-6f);
    free_outs(out, 3);
    float bad[3] = {1, 1, 1};
    in[1] = F32(bad, 1, INT64_C(3));
    assert_int_equal(run_op("BatchNormalization", 15, at, 1, in, 5, out, 1), SL_ENG_ESHAPE);
    assert_non_null(strstr(last_err.msg, "scale"));
}

static void test_layernorm_outputs(void **state) {
    float x[8] = {1, 2, 3, 4, 2, 2, 2, 2}, sc[4] = {1, 2, 1, 2}, b[4] = {0, 0, 1, 1};
    sl_tensor_t in[] = {F32(x, 2, INT64_C(2), INT64_C(4)), F32(sc, 1, INT64_C(4)),
                        F32(b, 1, INT64_C(4))},
                out[3];
    assert_int_equal(run_op("LayerNormalization", 17, NULL, 0, in, 3, out, 3), SL_ENG_OK);
    assert_dims(&out[1], 2, (int64_t[]){2, 1});
    float inv = 1.0f / sqrtf(1.25f + 1e-5f);
    float want[] = {-1.5f * inv, -1.0f * inv, 0.5f * inv + 1, 3.0f * inv + 1, 0, 0, 1, 1};
    assert_floats(out[0].data, want, 8, 1e-5f);
    assert_floats(out[1].data, (float[]){2.5f, 2}, 2, 1e-6f);
    assert_floats(out[2].data, (float[]){inv, 1.0f / sqrtf(1e-5f)}, 2, 1e-4f);
    free_outs(out, 3);
    sl_attr_t ax[] = {attr_i("axis", 2)};
    assert_int_equal(run_op("LayerNormalization", 17, ax, 1, in, 3, out, 1), SL_ENG_EINVAL);
}

static void test_instancenorm_and_lrn(void **state) {
    float x[4] = {1, 2, 3, 4}, sc[1] = {2}, b[1] = {1};
    sl_tensor_t in[] = {F32(x, 3, INT64_C(1), INT64_C(1), INT64_C(4)), F32(sc, 1, INT64_C(1)),
                        F32(b, 1, INT64_C(1))},
                out[1];
    assert_int_equal(run_op("InstanceNormalization", 6, NULL, 0, in, 3, out, 1), SL_ENG_OK);
    float inv = 1.0f / sqrtf(1.25f + 1e-5f);
    float want[] = {-3 * inv + 1, -inv + 1, inv + 1, 3 * inv + 1};
    assert_floats(out[0].data, want, 4, 1e-5f);
    free_outs(out, 1);

    float y[3] = {1, 2, 3};
    sl_tensor_t lin[] = {F32(y, 4, INT64_C(1), INT64_C(3), INT64_C(1), INT64_C(1))};
    sl_attr_t at[] = {attr_i("size", 3), attr_f("alpha", 3), attr_f("beta", 1), attr_f("bias", 1)};
    assert_int_equal(run_op("LRN", 13, at, 4, lin, 1, out, 1), SL_ENG_OK);
    assert_floats(out[0].data, (float[]){1.0f / 6, 2.0f / 15, 3.0f / 14}, 3, 1e-6f);
    free_outs(out, 1);
}

/* ---- Resize / Upsample ---- */

static void test_resize_linear_and_nearest(void **state) {
    float x[4] = {1, 2, 3, 4};
    float sc[4] = {1, 1, 2, 2};
    sl_tensor_t in[] = {F32(x, 4, INT64_C(1), INT64_C(1), INT64_C(2), INT64_C(2)),
                        F32(NULL, 1, INT64_C(0)), F32(sc, 1, INT64_C(4))},
                out[1];
    sl_attr_t lin[] = {attr_s("mode", "linear")};
    assert_int_equal(run_op("Resize", 13, lin, 1, in, 3, out, 1), SL_ENG_OK);
    assert_dims(&out[0], 4, (int64_t[]){1, 1, 4, 4});
    float want[] = {1,    1.25f, 1.75f, 2,    1.5f, 1.75f, 2.25f, 2.5f,
                    2.5f, 2.75f, 3.25f, 3.5f, 3,    3.25f, 3.75f, 4};
    assert_floats(out[0].data, want, 16, 1e-6f);
    free_outs(out, 1);
    /* Nearest (round_prefer_floor, half_pixel), scales 2 x 3. */
    float sc2[4] = {1, 1, 2, 3};
    in[2] = F32(sc2, 1, INT64_C(4));
    sl_attr_t nn[] = {attr_s("coordinate_transformation_mode", "half_pixel")};
    assert_int_equal(run_op("Resize", 13, nn, 1, in, 3, out, 1), SL_ENG_OK);
    assert_dims(&out[0], 4, (int64_t[]){1, 1, 4, 6});
    float wn[] = {1, 1, 1, 2, 2, 2, 1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4, 3, 3, 3, 4, 4, 4};
    assert_floats(out[0].data, wn, 24, 0);
    free_outs(out, 1);
    /* sizes with align_corners. */
    int64_t sizes[4] = {1, 1, 3, 3};
    sl_tensor_t in3[] = {in[0], F32(NULL, 1, INT64_C(0)), F32(NULL, 1, INT64_C(0)),
                         I64(sizes, 1, INT64_C(4))};
    sl_attr_t ac[] = {attr_s("mode", "linear"),
                      attr_s("coordinate_transformation_mode", "align_corners")};
    assert_int_equal(run_op("Resize", 13, ac, 2, in3, 4, out, 1), SL_ENG_OK);
    assert_dims(&out[0], 4, (int64_t[]){1, 1, 3, 3});
    assert_floats(out[0].data, (float[]){1, 1.5f, 2, 2, 2.5f, 3, 3, 3.5f, 4}, 9, 1e-6f);
    free_outs(out, 1);
    /* Both scales and sizes: an error. */
    sl_tensor_t in4[] = {in[0], F32(NULL, 1, INT64_C(0)), F32(sc, 1, INT64_C(4)),
                         I64(sizes, 1, INT64_C(4))};
    assert_int_equal(run_op("Resize", 13, ac, 2, in4, 4, out, 1), SL_ENG_EINVAL);
    assert_non_null(strstr(last_err.msg, "exactly one"));
    float sc3[3] = {1, 1, 2};
    in[2] = F32(sc3, 1, INT64_C(3));
    assert_int_equal(run_op("Resize", 13, nn, 1, in, 3, out, 1), SL_ENG_EINVAL);
}

static void test_upsample_nearest(void **state) {
    float x[4] = {1, 2, 3, 4}, sc[4] = {1, 1, 2, 2};
    sl_tensor_t in[] = {F32(x, 4, INT64_C(1), INT64_C(1), INT64_C(2), INT64_C(2)),
                        F32(sc, 1, INT64_C(4))},
                out[1];
    assert_int_equal(run_op("Upsample", 9, NULL, 0, in, 2, out, 1), SL_ENG_OK);
    float want[] = {1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4};
    assert_floats(out[0].data, want, 16, 0);
    free_outs(out, 1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conv_3x3_pad_stride),
        cmocka_unit_test(test_conv_grouped_with_bias),
        cmocka_unit_test(test_conv_against_naive),
        cmocka_unit_test(test_conv_errors),
        cmocka_unit_test(test_convtranspose_1d_stride),
        cmocka_unit_test(test_convtranspose_grouped_against_scatter),
        cmocka_unit_test(test_maxpool_ceil_and_indices),
        cmocka_unit_test(test_averagepool_pads),
        cmocka_unit_test(test_global_pools),
        cmocka_unit_test(test_batchnorm_inference),
        cmocka_unit_test(test_layernorm_outputs),
        cmocka_unit_test(test_instancenorm_and_lrn),
        cmocka_unit_test(test_resize_linear_and_nearest),
        cmocka_unit_test(test_upsample_nearest),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
