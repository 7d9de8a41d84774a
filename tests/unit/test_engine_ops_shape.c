/* Unit tests for the engine's shape and data-movement kernels (src/engine/ops_shape.c, la_gen.c,
 * la_index.c): each op run through the registry's kernel the way the executor drives it (infer,
 * then run), checked against values worked out by hand from the ONNX spec, plus the errors a
 * user sees for hostile inputs (count mismatches, indexes out of range, zero steps). */
#include "engine_kernel_harness.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static float x24[24] = {0,  1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11,
                        12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23};

/* ---- Reshape, Flatten, Squeeze, Unsqueeze ---- */

static void test_reshape(void **state) {
    sl_tensor_t x = T(SL_DT_FLOAT, x24, 2, 3, 4);
    int64_t s1[] = {0, -1}, s2[] = {4, 0, 2}, s3[] = {0, 4};
    sl_tensor_t sh = T(SL_DT_INT64, s1, 2);
    sl_tensor_t o = ok1("Reshape", 13, NULL, 0, INS(&x, &sh), 2);
    ASSERT_SHAPE(o, 2, 12);
    assert_memory_equal(o.data, x24, sizeof x24);
    free(o.data);
    sh = T(SL_DT_INT64, s2, 3);
    o = ok1("Reshape", 13, NULL, 0, INS(&x, &sh), 2);
    ASSERT_SHAPE(o, 4, 3, 2);
    free(o.data);
    /* allowzero=1 (opset 14): 0 is a real zero-size dim. */
    int64_t z[] = {0, 4};
    sl_tensor_t empty = T(SL_DT_FLOAT, x24, 2, 0);
    sl_tensor_t shz = T(SL_DT_INT64, z, 2);
    sl_attr_t az = attr_i("allowzero", 1);
    o = ok1("Reshape", 14, &az, 1, INS(&empty, &shz), 2);
    ASSERT_SHAPE(o, 0, 4);
    free(o.data);
    /* Errors: count mismatch, two -1, 0 past the input's rank. */
    sh = T(SL_DT_INT64, s3, 2);
    const char *m = fails(SL_ENG_ESHAPE, "Reshape", 13, NULL, 0, INS(&x, &sh), 2);
    assert_non_null(strstr(m, "shape [2, 4] has 8 elements, input shape [2, 3, 4] has 24"));
    int64_t s4[] = {-1, -1}, s5[] = {6, 2, 2, 0};
    sh = T(SL_DT_INT64, s4, 2);
    assert_non_null(
        strstr(fails(SL_ENG_ESHAPE, "Reshape", 13, NULL, 0, INS(&x, &sh), 2), "at most one"));
    sh = T(SL_DT_INT64, s5, 4);
    fails(SL_ENG_ESHAPE, "Reshape", 13, NULL, 0, INS(&x, &sh), 2);
    int64_t s6[] = {5, -1};
    sh = T(SL_DT_INT64, s6, 2);
    fails(SL_ENG_ESHAPE, "Reshape", 13, NULL, 0, INS(&x, &sh), 2);
    float fs[] = {2, 12};
    sh = T(SL_DT_FLOAT, fs, 2);
    fails(SL_ENG_EINVAL, "Reshape", 13, NULL, 0, INS(&x, &sh), 2);
}

static void test_flatten_squeeze_unsqueeze(void **state) {
    sl_tensor_t x = T(SL_DT_FLOAT, x24, 2, 3, 4);
    sl_attr_t ax = attr_i("axis", -1);
    sl_tensor_t o = ok1("Flatten", 13, &ax, 1, INS(&x), 1);
    ASSERT_SHAPE(o, 6, 4);
    free(o.data);
    ax = attr_i("axis", 0);
    o = ok1("Flatten", 13, &ax, 1, INS(&x), 1);
    ASSERT_SHAPE(o, 1, 24);
    free(o.data);
    ax = attr_i("axis", 4);
    fails(SL_ENG_EINVAL, "Flatten", 13, &ax, 1, INS(&x), 1);

    sl_tensor_t y = T(SL_DT_FLOAT, x24, 1, 6, 1, 4);
    o = ok1("Squeeze", 13, NULL, 0, INS(&y), 1); /* no axes: every 1 goes */
    ASSERT_SHAPE(o, 6, 4);
    assert_memory_equal(o.data, x24, sizeof x24);
    free(o.data);
    int64_t axes[] = {-2};
    sl_tensor_t at = T(SL_DT_INT64, axes, 1);
    o = ok1("Squeeze", 13, NULL, 0, INS(&y, &at), 2);
    ASSERT_SHAPE(o, 1, 6, 4);
    free(o.data);
    sl_attr_t aa = attr_ints("axes", DIMS(0, 2), 2); /* opset 11: attribute */
    o = ok1("Squeeze", 11, &aa, 1, INS(&y), 1);
    ASSERT_SHAPE(o, 6, 4);
    free(o.data);
    int64_t bad[] = {1};
    at = T(SL_DT_INT64, bad, 1);
    assert_non_null(strstr(fails(SL_ENG_ESHAPE, "Squeeze", 13, NULL, 0, INS(&y, &at), 2),
                           "its size is 6, expected 1"));

    int64_t ua[] = {0, -1};
    at = T(SL_DT_INT64, ua, 2);
    o = ok1("Unsqueeze", 13, NULL, 0, INS(&x, &at), 2);
    ASSERT_SHAPE(o, 1, 2, 3, 4, 1);
    free(o.data);
    aa = attr_ints("axes", DIMS(1, 3), 2);
    o = ok1("Unsqueeze", 11, &aa, 1, INS(&x), 1);
    ASSERT_SHAPE(o, 2, 1, 3, 1, 4);
    free(o.data);
    int64_t dup[] = {1, -4};
    at = T(SL_DT_INT64, dup, 2);
    assert_non_null(
        strstr(fails(SL_ENG_EINVAL, "Unsqueeze", 13, NULL, 0, INS(&x, &at), 2), "twice"));
    float s = 3;
    sl_tensor_t sc = T0(SL_DT_FLOAT, &s);
    int64_t z0[] = {0};
    at = T(SL_DT_INT64, z0, 1);
    o = ok1("Unsqueeze", 13, NULL, 0, INS(&sc, &at), 2);
    ASSERT_SHAPE(o, 1);
    ASSERT_F(o, 3);
    free(o.data);
}

/* ---- Transpose ---- */

static void test_transpose(void **state) {
    sl_tensor_t x = T(SL_DT_FLOAT, x24, 2, 3, 4);
    sl_tensor_t o = ok1("Transpose", 13, NULL, 0, INS(&x), 1); /* default: reversed */
    ASSERT_SHAPE(o, 4, 3, 2);
    const float *y = o.data;
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 3; j++)
            for (int k = 0; k < 2; k++)
                assert_true(y[(i * 3 + j) * 2 + k] == x24[(k * 3 + j) * 4 + i]);
    free(o.data);
    /* Every permutation of 3 dims against the index formula. */
    static const int64_t perms[6][3] = {{0, 1, 2}, {0, 2, 1}, {1, 0, 2},
                                        {1, 2, 0}, {2, 0, 1}, {2, 1, 0}};
    for (int p = 0; p < 6; p++) {
        sl_attr_t a = attr_ints("perm", perms[p], 3);
        o = ok1("Transpose", 13, &a, 1, INS(&x), 1);
        int64_t st[3] = {12, 4, 1}, cnt = 0;
        y = o.data;
        for (int64_t i = 0; i < o.dims[0]; i++)
            for (int64_t j = 0; j < o.dims[1]; j++)
                for (int64_t k = 0; k < o.dims[2]; k++)
                    assert_true(
                        y[cnt++] ==
                        x24[i * st[perms[p][0]] + j * st[perms[p][1]] + k * st[perms[p][2]]]);
        free(o.data);
    }
    /* A large int64 2-D transpose (the blocked path) and a uint8 one. */
    int64_t R = 70, C = 45;
    int64_t *big = malloc(sizeof *big * (size_t)(R * C));
    uint8_t *b8 = malloc((size_t)(R * C));
    for (int64_t i = 0; i < R * C; i++) {
        big[i] = i * 7;
        b8[i] = (uint8_t)(i * 13);
    }
    sl_tensor_t bt = T(SL_DT_INT64, big, R, C);
    o = ok1("Transpose", 13, NULL, 0, INS(&bt), 1);
    ASSERT_SHAPE(o, C, R);
    for (int64_t i = 0; i < C; i++)
        for (int64_t j = 0; j < R; j++)
            assert_int_equal(((int64_t *)o.data)[i * R + j], big[j * C + i]);
    free(o.data);
    bt = T(SL_DT_UINT8, b8, R, C);
    o = ok1("Transpose", 13, NULL, 0, INS(&bt), 1);
    for (int64_t i = 0; i < C; i++)
        for (int64_t j = 0; j < R; j++)
            assert_int_equal(((uint8_t *)o.data)[i * R + j], b8[j * C + i]);
    free(o.data);
    free(big);
    free(b8);
    sl_attr_t bad = attr_ints("perm", DIMS(0, 0, 1), 3);
    assert_non_null(
        strstr(fails(SL_ENG_EINVAL, "Transpose", 13, &bad, 1, INS(&x), 1), "not a permutation"));
}

/* ---- Concat, Split ---- */

static void test_concat_split(void **state) {
    int64_t a[] = {1, 2, 3, 4}, b[] = {5, 6};
    sl_tensor_t A = T(SL_DT_INT64, a, 2, 2), B = T(SL_DT_INT64, b, 2, 1),
                E = T(SL_DT_INT64, b, 2, 0);
    sl_attr_t ax = attr_i("axis", -1);
    sl_tensor_t o = ok1("Concat", 13, &ax, 1, INS(&A, &B, &E), 3);
    ASSERT_SHAPE(o, 2, 3);
    ASSERT_I64(o, 1, 2, 5, 3, 4, 6);
    free(o.data);
    ax = attr_i("axis", 0);
    sl_tensor_t B2 = T(SL_DT_INT64, b, 1, 2);
    o = ok1("Concat", 13, &ax, 1, INS(&A, &B2), 2);
    ASSERT_SHAPE(o, 3, 2);
    ASSERT_I64(o, 1, 2, 3, 4, 5, 6);
    free(o.data);
    assert_non_null(strstr(fails(SL_ENG_ESHAPE, "Concat", 13, &ax, 1, INS(&A, &B), 2),
                           "input 1 has size 1 in dim 1, input 0 has 2"));
    fails(SL_ENG_EINVAL, "Concat", 13, NULL, 0, INS(&A, &B), 2); /* axis required */

    sl_tensor_t x = T(SL_DT_FLOAT, x24, 2, 6);
    sl_tensor_t outs[4];
    sl_eng_error_t err;
    sl_attr_t a1 = attr_i("axis", 1);
    assert_int_equal(run_node("Split", 13, &a1, 1, INS(&x), 1, outs, 3, &err), SL_ENG_OK);
    for (int i = 0; i < 3; i++) {
        ASSERT_SHAPE(outs[i], 2, 2);
        float *p = outs[i].data;
        assert_true(p[0] == 2 * i && p[1] == 2 * i + 1 && p[2] == 6 + 2 * i);
        free(outs[i].data);
    }
    int64_t sp[] = {1, 5};
    sl_tensor_t split = T(SL_DT_INT64, sp, 2);
    assert_int_equal(run_node("Split", 13, &a1, 1, INS(&x, &split), 2, outs, 2, &err), SL_ENG_OK);
    ASSERT_SHAPE(outs[0], 2, 1);
    ASSERT_SHAPE(outs[1], 2, 5);
    ASSERT_F(outs[0], 0, 6);
    free(outs[0].data);
    free(outs[1].data);
    sl_attr_t at2[] = {a1, attr_ints("split", DIMS(4, 0, 2), 3)}; /* opset 11: attribute */
    assert_int_equal(run_node("Split", 11, at2, 2, INS(&x), 1, outs, 3, &err), SL_ENG_OK);
    ASSERT_SHAPE(outs[1], 2, 0);
    ASSERT_F(outs[2], 4, 5, 10, 11);
    for (int i = 0; i < 3; i++)
        free(outs[i].data);
    int64_t bad[] = {2, 2};
    split = T(SL_DT_INT64, bad, 2);
    assert_int_equal(run_node("Split", 13, &a1, 1, INS(&x, &split), 2, outs, 2, &err),
                     SL_ENG_ESHAPE);
    assert_non_null(strstr(err.msg, "sum to 4"));
    assert_int_equal(run_node("Split", 13, &a1, 1, INS(&x), 1, outs, 4, &err), SL_ENG_ESHAPE);
}

/* ---- Slice ---- */

static sl_tensor_t slice(int64_t opset, sl_tensor_t *x, int n, const int64_t *st, const int64_t *en,
                         const int64_t *ax, const int64_t *sp, sl_eng_status_t *code) {
    sl_tensor_t S = T(SL_DT_INT64, (void *)st, n), E = T(SL_DT_INT64, (void *)en, n),
                A = T(SL_DT_INT64, (void *)ax, n), P = T(SL_DT_INT64, (void *)sp, n);
    sl_tensor_t out = {0};
    sl_eng_error_t err;
    *code = run_node("Slice", opset, NULL, 0, INS(x, &S, &E, ax ? &A : NULL, sp ? &P : NULL), 5,
                     &out, 1, &err);
    return out;
}

static void test_slice(void **state) {
    sl_tensor_t x = T(SL_DT_FLOAT, x24, 4, 6);
    sl_eng_status_t c;
    /* rows 1..3, columns 0..6 step 2 */
    sl_tensor_t o = slice(13, &x, 2, DIMS(1, 0), DIMS(3, 1000), NULL, DIMS(1, 2), &c);
    assert_int_equal(c, SL_ENG_OK);
    ASSERT_SHAPE(o, 2, 3);
    ASSERT_F(o, 6, 8, 10, 12, 14, 16);
    free(o.data);
    /* negative steps: the last column reversed, from the end (INT64_MIN end clamps to -1) */
    o = slice(13, &x, 1, DIMS(-1), DIMS(INT64_MIN), DIMS(0), DIMS(-1), &c);
    assert_int_equal(c, SL_ENG_OK);
    ASSERT_SHAPE(o, 4, 6);
    assert_true(((float *)o.data)[0] == 18 && ((float *)o.data)[23] == 5);
    free(o.data);
    o = slice(13, &x, 1, DIMS(5), DIMS(0), DIMS(-1), DIMS(-2), &c);
    ASSERT_SHAPE(o, 4, 3);
    assert_true(((float *)o.data)[0] == 5 && ((float *)o.data)[1] == 3 &&
                ((float *)o.data)[2] == 1);
    free(o.data);
    /* start beyond the end: empty */
    o = slice(13, &x, 1, DIMS(10), DIMS(20), DIMS(1), NULL, &c);
    assert_int_equal(c, SL_ENG_OK);
    ASSERT_SHAPE(o, 4, 0);
    free(o.data);
    /* step 0, repeated axis, axis out of range */
    slice(13, &x, 1, DIMS(0), DIMS(2), DIMS(0), DIMS(0), &c);
    assert_int_equal(c, SL_ENG_EINVAL);
    slice(13, &x, 2, DIMS(0, 0), DIMS(2, 2), DIMS(1, -1), NULL, &c);
    assert_int_equal(c, SL_ENG_EINVAL);
    slice(13, &x, 1, DIMS(0), DIMS(2), DIMS(2), NULL, &c);
    assert_int_equal(c, SL_ENG_EINVAL);
    /* opset 1: attributes */
    sl_attr_t at[] = {attr_ints("starts", DIMS(1), 1), attr_ints("ends", DIMS(-1), 1),
                      attr_ints("axes", DIMS(1), 1)};
    o = ok1("Slice", 1, at, 3, INS(&x), 1);
    ASSERT_SHAPE(o, 4, 4);
    assert_true(((float *)o.data)[0] == 1 && ((float *)o.data)[4] == 7);
    free(o.data);
}

/* ---- Gather, GatherElements, ScatterElements ---- */

static void test_gather(void **state) {
    sl_tensor_t x = T(SL_DT_FLOAT, x24, 4, 3, 2); /* an embedding table */
    int64_t idx[] = {3, -4, 1};
    sl_tensor_t I = T(SL_DT_INT64, idx, 3);
    sl_tensor_t o = ok1("Gather", 13, NULL, 0, INS(&x, &I), 2);
    ASSERT_SHAPE(o, 3, 3, 2);
    ASSERT_F(o, 18, 19, 20, 21, 22, 23, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11);
    free(o.data);
    int32_t i2[] = {2, 0, 1, 1};
    I = T(SL_DT_INT32, i2, 2, 2);
    sl_attr_t ax = attr_i("axis", 1);
    o = ok1("Gather", 13, &ax, 1, INS(&x, &I), 2);
    ASSERT_SHAPE(o, 4, 2, 2, 2);
    assert_true(((float *)o.data)[0] == 4 && ((float *)o.data)[2] == 0 &&
                ((float *)o.data)[8] == 10);
    free(o.data);
    int64_t s = -1;
    I = T0(SL_DT_INT64, &s); /* scalar index: the dim goes away */
    o = ok1("Gather", 13, NULL, 0, INS(&x, &I), 2);
    ASSERT_SHAPE(o, 3, 2);
    ASSERT_F(o, 18, 19, 20, 21, 22, 23);
    free(o.data);
    int64_t bad[] = {0, 4};
    I = T(SL_DT_INT64, bad, 2);
    assert_non_null(strstr(fails(SL_ENG_EINVAL, "Gather", 13, NULL, 0, INS(&x, &I), 2),
                           "index 4 (at position 1 of 'indices') is out of range for axis 0 of "
                           "size 4"));
    bad[1] = -5;
    fails(SL_ENG_EINVAL, "Gather", 13, NULL, 0, INS(&x, &I), 2);
    float fi[] = {0};
    I = T(SL_DT_FLOAT, fi, 1);
    fails(SL_ENG_EINVAL, "Gather", 13, NULL, 0, INS(&x, &I), 2);
}

static void test_gather_scatter_elements(void **state) {
    float d[] = {1, 2, 3, 4};
    sl_tensor_t D = T(SL_DT_FLOAT, d, 2, 2);
    int64_t idx[] = {0, 0, 1, 0};
    sl_tensor_t I = T(SL_DT_INT64, idx, 2, 2);
    sl_attr_t ax = attr_i("axis", 1);
    sl_tensor_t o = ok1("GatherElements", 13, &ax, 1, INS(&D, &I), 2);
    ASSERT_F(o, 1, 1, 4, 3);
    free(o.data);
    int64_t idx2[] = {1, 2, 0, 2, 0, 0};
    float d3[] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
    sl_tensor_t D3 = T(SL_DT_FLOAT, d3, 3, 3);
    I = T(SL_DT_INT64, idx2, 2, 3);
    ax = attr_i("axis", 0);
    o = ok1("GatherElements", 13, &ax, 1, INS(&D3, &I), 2);
    ASSERT_F(o, 4, 8, 3, 7, 2, 3);
    free(o.data);
    idx2[1] = 3;
    fails(SL_ENG_EINVAL, "GatherElements", 13, &ax, 1, INS(&D3, &I), 2);

    /* ScatterElements: the spec's example with axis 1 and negative index, then reduction add. */
    float data[] = {1, 2, 3, 4, 5}, upd[] = {1.1f, 2.1f};
    int64_t si[] = {1, -2};
    sl_tensor_t X = T(SL_DT_FLOAT, data, 1, 5), S = T(SL_DT_INT64, si, 1, 2),
                U = T(SL_DT_FLOAT, upd, 1, 2);
    ax = attr_i("axis", 1);
    o = ok1("ScatterElements", 13, &ax, 1, INS(&X, &S, &U), 3);
    ASSERT_F(o, 1, 1.1f, 3, 2.1f, 5);
    free(o.data);
    si[1] = 1;
    sl_attr_t at[] = {ax, attr_s("reduction", "add")};
    o = ok1("ScatterElements", 16, at, 2, INS(&X, &S, &U), 3);
    ASSERT_F(o, 1, 2 + 1.1f + 2.1f, 3, 4, 5);
    free(o.data);
    si[1] = 5;
    fails(SL_ENG_EINVAL, "ScatterElements", 13, &ax, 1, INS(&X, &S, &U), 3);
}

/* ---- Expand, Tile, Shape, Size ---- */

static void test_expand_tile_shape_size(void **state) {
    float v[] = {1, 2, 3};
    sl_tensor_t x = T(SL_DT_FLOAT, v, 3, 1);
    int64_t sh[] = {2, 1, 2};
    sl_tensor_t S = T(SL_DT_INT64, sh, 3);
    sl_tensor_t o = ok1("Expand", 13, NULL, 0, INS(&x, &S), 2);
    ASSERT_SHAPE(o, 2, 3, 2);
    ASSERT_F(o, 1, 1, 2, 2, 3, 3, 1, 1, 2, 2, 3, 3);
    free(o.data);
    int64_t bad[] = {2, 2};
    S = T(SL_DT_INT64, bad, 2);
    assert_non_null(strstr(fails(SL_ENG_ESHAPE, "Expand", 13, NULL, 0, INS(&x, &S), 2),
                           "[3, 1] cannot be broadcast to [2, 2]"));

    float t[] = {1, 2, 3, 4};
    sl_tensor_t X = T(SL_DT_FLOAT, t, 2, 2);
    int64_t rep[] = {2, 3};
    sl_tensor_t R = T(SL_DT_INT64, rep, 2);
    o = ok1("Tile", 13, NULL, 0, INS(&X, &R), 2);
    ASSERT_SHAPE(o, 4, 6);
    ASSERT_F(o, 1, 2, 1, 2, 1, 2, 3, 4, 3, 4, 3, 4, 1, 2, 1, 2, 1, 2, 3, 4, 3, 4, 3, 4);
    free(o.data);
    rep[0] = 0;
    o = ok1("Tile", 13, NULL, 0, INS(&X, &R), 2);
    ASSERT_SHAPE(o, 0, 6);
    free(o.data);
    rep[0] = -1;
    fails(SL_ENG_EINVAL, "Tile", 13, NULL, 0, INS(&X, &R), 2);

    sl_tensor_t big = T(SL_DT_FLOAT, x24, 2, 3, 4);
    o = ok1("Shape", 13, NULL, 0, INS(&big), 1);
    ASSERT_I64(o, 2, 3, 4);
    free(o.data);
    sl_attr_t se[] = {attr_i("start", -2), attr_i("end", 100)};
    o = ok1("Shape", 15, se, 2, INS(&big), 1);
    ASSERT_I64(o, 3, 4);
    free(o.data);
    o = ok1("Size", 13, NULL, 0, INS(&big), 1);
    assert_int_equal(o.ndim, 0);
    ASSERT_I64(o, 24);
    free(o.data);
}

/* ---- ConstantOfShape, Range, Constant ---- */

static void test_generators(void **state) {
    int64_t sh[] = {2, 3};
    sl_tensor_t S = T(SL_DT_INT64, sh, 2);
    sl_tensor_t o = ok1("ConstantOfShape", 9, NULL, 0, INS(&S), 1);
    ASSERT_SHAPE(o, 2, 3);
    ASSERT_F(o, 0, 0, 0, 0, 0, 0);
    free(o.data);
    int64_t seven = 7;
    sl_tensor_t val = T(SL_DT_INT64, &seven, 1);
    sl_attr_t va = {.name = "value", .type = SL_ATTR_TENSOR, .t = &val};
    o = ok1("ConstantOfShape", 9, &va, 1, INS(&S), 1);
    ASSERT_I64(o, 7, 7, 7, 7, 7, 7);
    free(o.data);
    sh[0] = -1;
    fails(SL_ENG_ESHAPE, "ConstantOfShape", 9, NULL, 0, INS(&S), 1);

    float fs = 1, fl = 2.2f, fd = 0.5f;
    sl_tensor_t a = T0(SL_DT_FLOAT, &fs), b = T0(SL_DT_FLOAT, &fl), c = T0(SL_DT_FLOAT, &fd);
    o = ok1("Range", 11, NULL, 0, INS(&a, &b, &c), 3);
    ASSERT_SHAPE(o, 3);
    ASSERT_F(o, 1, 1.5f, 2);
    free(o.data);
    int32_t is = 10, il = 4, id = -3;
    a = T0(SL_DT_INT32, &is), b = T0(SL_DT_INT32, &il), c = T0(SL_DT_INT32, &id);
    o = ok1("Range", 11, NULL, 0, INS(&a, &b, &c), 3);
    ASSERT_SHAPE(o, 2);
    assert_int_equal(((int32_t *)o.data)[0], 10);
    assert_int_equal(((int32_t *)o.data)[1], 7);
    free(o.data);
    int64_t ls = INT64_MIN, ll = INT64_MAX, ld = 0;
    a = T0(SL_DT_INT64, &ls), b = T0(SL_DT_INT64, &ll), c = T0(SL_DT_INT64, &ld);
    fails(SL_ENG_EINVAL, "Range", 11, NULL, 0, INS(&a, &b, &c), 3);
    ld = 1; /* 2^64 elements: refused, not overflowed */
    fails(SL_ENG_ELIMIT, "Range", 11, NULL, 0, INS(&a, &b, &c), 3);

    float cv[] = {1, 2, 3, 4};
    sl_tensor_t cval = T(SL_DT_FLOAT, cv, 2, 2);
    sl_attr_t ca = {.name = "value", .type = SL_ATTR_TENSOR, .t = &cval};
    o = ok1("Constant", 13, &ca, 1, NULL, 0);
    ASSERT_SHAPE(o, 2, 2);
    ASSERT_F(o, 1, 2, 3, 4);
    free(o.data);
    sl_attr_t ci = attr_ints("value_ints", DIMS(5, 6), 2);
    o = ok1("Constant", 13, &ci, 1, NULL, 0);
    ASSERT_I64(o, 5, 6);
    free(o.data);
}

/* ---- Pad ---- */

static void test_pad(void **state) {
    float v[] = {1, 2, 3, 4, 5, 6};
    sl_tensor_t x = T(SL_DT_FLOAT, v, 2, 3);
    int64_t pads[] = {0, 2, 0, 1}; /* columns: 2 before, 1 after */
    sl_tensor_t P = T(SL_DT_INT64, pads, 4);
    float cv = 9;
    sl_tensor_t C = T0(SL_DT_FLOAT, &cv);
    sl_tensor_t o = ok1("Pad", 13, NULL, 0, INS(&x, &P, &C), 3);
    ASSERT_SHAPE(o, 2, 6);
    ASSERT_F(o, 9, 9, 1, 2, 3, 9, 9, 9, 4, 5, 6, 9);
    free(o.data);
    sl_attr_t m = attr_s("mode", "reflect");
    o = ok1("Pad", 13, &m, 1, INS(&x, &P), 2);
    ASSERT_F(o, 3, 2, 1, 2, 3, 2, 6, 5, 4, 5, 6, 5);
    free(o.data);
    m = attr_s("mode", "edge");
    int64_t p2[] = {1, 0, 0, 1};
    P = T(SL_DT_INT64, p2, 4);
    o = ok1("Pad", 13, &m, 1, INS(&x, &P), 2);
    ASSERT_SHAPE(o, 3, 4);
    ASSERT_F(o, 1, 2, 3, 3, 1, 2, 3, 3, 4, 5, 6, 6);
    free(o.data);
    /* negative pads crop (constant mode); opset 2 takes pads and value as attributes */
    sl_attr_t at[] = {attr_ints("pads", DIMS(0, -1, 1, 0), 4),
                      {.name = "value", .type = SL_ATTR_FLOAT, .f = -1}};
    o = ok1("Pad", 2, at, 2, INS(&x), 1);
    ASSERT_SHAPE(o, 3, 2);
    ASSERT_F(o, 2, 3, 5, 6, -1, -1);
    free(o.data);
    int64_t p3[] = {0, -4, 0, 0};
    P = T(SL_DT_INT64, p3, 4);
    fails(SL_ENG_ESHAPE, "Pad", 13, NULL, 0, INS(&x, &P), 2);
    P = T(SL_DT_INT64, p3, 2);
    assert_non_null(strstr(fails(SL_ENG_EINVAL, "Pad", 13, NULL, 0, INS(&x, &P), 2),
                           "pads has 2 values, expected 4"));
    m = attr_s("mode", "wrap");
    P = T(SL_DT_INT64, p2, 4);
    fails(SL_ENG_EUNSUPPORTED, "Pad", 13, &m, 1, INS(&x, &P), 2);
}

/* ---- OneHot, NonZero, Trilu, DepthToSpace, SpaceToDepth ---- */

static void test_index_misc(void **state) {
    int64_t idx[] = {0, 2, -1, 5};
    float depth = 3, vals[] = {0, 1};
    sl_tensor_t I = T(SL_DT_INT64, idx, 4), D = T0(SL_DT_FLOAT, &depth),
                V = T(SL_DT_FLOAT, vals, 2);
    sl_tensor_t o = ok1("OneHot", 11, NULL, 0, INS(&I, &D, &V), 3);
    ASSERT_SHAPE(o, 4, 3);
    ASSERT_F(o, 1, 0, 0, 0, 0, 1, 0, 0, 1, 0, 0, 0); /* 5 is out of range: all off */
    free(o.data);
    sl_attr_t ax = attr_i("axis", 0);
    o = ok1("OneHot", 11, &ax, 1, INS(&I, &D, &V), 3);
    ASSERT_SHAPE(o, 3, 4);
    ASSERT_F(o, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0);
    free(o.data);

    int32_t nz[] = {1, 0, 0, 3, 0, 5};
    sl_tensor_t N = T(SL_DT_INT32, nz, 2, 3);
    o = ok1("NonZero", 13, NULL, 0, INS(&N), 1);
    ASSERT_SHAPE(o, 2, 3);
    ASSERT_I64(o, 0, 1, 1, 0, 0, 2);
    free(o.data);

    float t9[] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
    sl_tensor_t X = T(SL_DT_FLOAT, t9, 3, 3);
    o = ok1("Trilu", 14, NULL, 0, INS(&X), 1);
    ASSERT_F(o, 1, 2, 3, 0, 5, 6, 0, 0, 9);
    free(o.data);
    int64_t k = -1;
    sl_tensor_t K = T0(SL_DT_INT64, &k);
    sl_attr_t lo = attr_i("upper", 0);
    o = ok1("Trilu", 14, &lo, 1, INS(&X, &K), 2);
    ASSERT_F(o, 0, 0, 0, 4, 0, 0, 7, 8, 0);
    free(o.data);

    /* DepthToSpace then SpaceToDepth is the identity (DCR); CRD against the spec's formula. */
    sl_tensor_t x = T(SL_DT_FLOAT, x24, 1, 8, 1, 3);
    sl_attr_t bs = attr_i("blocksize", 2);
    o = ok1("DepthToSpace", 13, &bs, 1, INS(&x), 1);
    ASSERT_SHAPE(o, 1, 2, 2, 6);
    /* out[0][c][h*2+i][w*2+j] = in[0][(i*2+j)*2+c][h][w] */
    for (int c = 0; c < 2; c++)
        for (int i = 0; i < 2; i++)
            for (int w = 0; w < 3; w++)
                for (int j = 0; j < 2; j++)
                    assert_true(((float *)o.data)[(c * 2 + i) * 6 + w * 2 + j] ==
                                x24[((i * 2 + j) * 2 + c) * 3 + w]);
    sl_tensor_t back = ok1("SpaceToDepth", 13, &bs, 1, INS(&o), 1);
    ASSERT_SHAPE(back, 1, 8, 1, 3);
    assert_memory_equal(back.data, x24, sizeof x24);
    free(back.data);
    free(o.data);
    sl_attr_t crd[] = {bs, attr_s("mode", "CRD")};
    o = ok1("DepthToSpace", 13, crd, 2, INS(&x), 1);
    for (int c = 0; c < 2; c++)
        for (int i = 0; i < 2; i++)
            for (int w = 0; w < 3; w++)
                for (int j = 0; j < 2; j++)
                    assert_true(((float *)o.data)[(c * 2 + i) * 6 + w * 2 + j] ==
                                x24[(c * 4 + i * 2 + j) * 3 + w]);
    free(o.data);
    sl_attr_t b3 = attr_i("blocksize", 3);
    fails(SL_ENG_ESHAPE, "DepthToSpace", 13, &b3, 1, INS(&x), 1);
}

static void test_unsupported_dtypes(void **state) {
    uint16_t h[4] = {0};
    sl_tensor_t x = T(SL_DT_FLOAT16, h, 2, 2);
    assert_non_null(
        strstr(fails(SL_ENG_EUNSUPPORTED, "Transpose", 13, NULL, 0, INS(&x), 1), "float16"));
    sl_tensor_t s = T(SL_DT_STRING, h, 2, 2);
    fails(SL_ENG_EUNSUPPORTED, "Flatten", 13, NULL, 0, INS(&s), 1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reshape),
        cmocka_unit_test(test_flatten_squeeze_unsqueeze),
        cmocka_unit_test(test_transpose),
        cmocka_unit_test(test_concat_split),
        cmocka_unit_test(test_slice),
        cmocka_unit_test(test_gather),
        cmocka_unit_test(test_gather_scatter_elements),
        cmocka_unit_test(test_expand_tile_shape_size),
        cmocka_unit_test(test_generators),
        cmocka_unit_test(test_pad),
        cmocka_unit_test(test_index_misc),
        cmocka_unit_test(test_unsupported_dtypes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
