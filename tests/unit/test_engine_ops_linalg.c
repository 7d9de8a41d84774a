/* Unit tests for the engine's matrix kernels (src/engine/ops_linalg.c): MatMul and Gemm run
 * through the registry's kernels the way the executor drives them (infer, then run), checked
 * against a naive triple loop in double, plus the errors a user sees for shapes that do not fit. */
#include "engine_kernel_harness.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static float *randf(int64_t n, unsigned seed) {
    float *p = malloc(sizeof *p * (size_t)(n ? n : 1));
    srand(seed);
    for (int64_t i = 0; i < n; i++)
        p[i] = (float)(rand() % 2001 - 1000) / 500.0f;
    return p;
}

/* Reference: C[m][n] = sum_k A[m*ars + k*acs] * B[k*brs + n*bcs]. */
static double ref_dot(const float *a, const float *b, int64_t i, int64_t j, int64_t k, int64_t ars,
                      int64_t acs, int64_t brs, int64_t bcs) {
    double s = 0;
    for (int64_t p = 0; p < k; p++)
        s += (double)a[i * ars + p * acs] * b[p * brs + j * bcs];
    return s;
}

static void assert_close(double got, double want) {
    if (fabs(got - want) > 1e-4 * fabs(want) + 1e-4) fail_msg("got %g, want %g", got, want);
}

/* ---- MatMul ---- */

static void check_matmul_2d(int64_t m, int64_t n, int64_t k) {
    float *a = randf(m * k, 1), *b = randf(k * n, 2);
    sl_tensor_t A = tensor(SL_DT_FLOAT, 2, (int64_t[]){m, k}, a);
    sl_tensor_t B = tensor(SL_DT_FLOAT, 2, (int64_t[]){k, n}, b);
    const sl_tensor_t *in[] = {&A, &B};
    sl_tensor_t out;
    sl_eng_error_t err;
    assert_int_equal(run_node("MatMul", 13, NULL, 0, in, 2, &out, 1, &err), SL_ENG_OK);
    assert_int_equal(out.ndim, 2);
    assert_int_equal(out.dims[0], m);
    assert_int_equal(out.dims[1], n);
    const float *y = out.data;
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++)
            assert_close(y[i * n + j], ref_dot(a, b, i, j, k, k, 1, n, 1));
    free(out.data);
    free(a);
    free(b);
}

static void test_matmul_2d_shapes(void **state) {
    check_matmul_2d(3, 4, 5);
    check_matmul_2d(1, 256, 64); /* batch-1 MLP row: the gemv path */
    check_matmul_2d(7, 1, 9);    /* a column */
    check_matmul_2d(1, 1, 1);
    check_matmul_2d(33, 17, 65);
}

static void test_matmul_batch_broadcast(void **state) {
    /* A [2, 1, 3, 4] x B [3, 4, 5] -> [2, 3, 3, 5]: A's dim 1 and B's missing dim broadcast. */
    float *a = randf(2 * 3 * 4, 3), *b = randf(3 * 4 * 5, 4);
    sl_tensor_t A = tensor(SL_DT_FLOAT, 4, (int64_t[]){2, 1, 3, 4}, a);
    sl_tensor_t B = tensor(SL_DT_FLOAT, 3, (int64_t[]){3, 4, 5}, b);
    const sl_tensor_t *in[] = {&A, &B};
    sl_tensor_t out;
    sl_eng_error_t err;
    assert_int_equal(run_node("MatMul", 13, NULL, 0, in, 2, &out, 1, &err), SL_ENG_OK);
    assert_int_equal(out.ndim, 4);
    int64_t want[] = {2, 3, 3, 5};
    assert_memory_equal(out.dims, want, sizeof want);
    const float *y = out.data;
    for (int x = 0; x < 2; x++)
        for (int z = 0; z < 3; z++)
            for (int i = 0; i < 3; i++)
                for (int j = 0; j < 5; j++)
                    assert_close(y[((x * 3 + z) * 3 + i) * 5 + j],
                                 ref_dot(a + x * 12, b + z * 20, i, j, 4, 4, 1, 5, 1));
    free(out.data);
    free(a);
    free(b);
}

static void test_matmul_shared_b_batch(void **state) {
    /* [4, 2, 3] x [3, 6]: one tall product (the contiguous-batch fast path). */
    float *a = randf(24, 5), *b = randf(18, 6);
    sl_tensor_t A = tensor(SL_DT_FLOAT, 3, (int64_t[]){4, 2, 3}, a);
    sl_tensor_t B = tensor(SL_DT_FLOAT, 2, (int64_t[]){3, 6}, b);
    const sl_tensor_t *in[] = {&A, &B};
    sl_tensor_t out;
    sl_eng_error_t err;
    assert_int_equal(run_node("MatMul", 9, NULL, 0, in, 2, &out, 1, &err), SL_ENG_OK);
    assert_int_equal(out.ndim, 3);
    const float *y = out.data;
    for (int i = 0; i < 8; i++)
        for (int j = 0; j < 6; j++)
            assert_close(y[i * 6 + j], ref_dot(a, b, i, j, 3, 3, 1, 6, 1));
    free(out.data);
    free(a);
    free(b);
}

static void test_matmul_vectors(void **state) {
    float a[] = {1, 2, 3}, b[] = {4, 5, 6}, m[] = {1, 0, 0, 1, 2, 2}; /* m is [3, 2] */
    sl_tensor_t A = tensor(SL_DT_FLOAT, 1, (int64_t[]){3}, a);
    sl_tensor_t B = tensor(SL_DT_FLOAT, 1, (int64_t[]){3}, b);
    sl_tensor_t M = tensor(SL_DT_FLOAT, 2, (int64_t[]){3, 2}, m);
    sl_tensor_t out;
    sl_eng_error_t err;
    /* [3] x [3] -> scalar 32 */
    assert_int_equal(
        run_node("MatMul", 13, NULL, 0, (const sl_tensor_t *[]){&A, &B}, 2, &out, 1, &err),
        SL_ENG_OK);
    assert_int_equal(out.ndim, 0);
    assert_close(((float *)out.data)[0], 32);
    free(out.data);
    /* [3] x [3, 2] -> [2] = {1*1+2*0+3*2, 1*0+2*1+3*2} */
    assert_int_equal(
        run_node("MatMul", 13, NULL, 0, (const sl_tensor_t *[]){&A, &M}, 2, &out, 1, &err),
        SL_ENG_OK);
    assert_int_equal(out.ndim, 1);
    assert_int_equal(out.dims[0], 2);
    assert_close(((float *)out.data)[0], 7);
    assert_close(((float *)out.data)[1], 8);
    free(out.data);
}

static void test_matmul_int_and_double(void **state) {
    int64_t a[] = {1, 2, 3, 4, 5, 6}, b[] = {7, 8, 9, 10, 11, 12};
    sl_tensor_t A = tensor(SL_DT_INT64, 2, (int64_t[]){2, 3}, a);
    sl_tensor_t B = tensor(SL_DT_INT64, 2, (int64_t[]){3, 2}, b);
    sl_tensor_t out;
    sl_eng_error_t err;
    assert_int_equal(
        run_node("MatMul", 13, NULL, 0, (const sl_tensor_t *[]){&A, &B}, 2, &out, 1, &err),
        SL_ENG_OK);
    int64_t want[] = {58, 64, 139, 154};
    assert_memory_equal(out.data, want, sizeof want);
    free(out.data);

    int32_t a32[] = {1, 2, 3, 4, 5, 6}, b32[] = {7, 8, 9, 10, 11, 12};
    A = tensor(SL_DT_INT32, 2, (int64_t[]){2, 3}, a32);
    B = tensor(SL_DT_INT32, 2, (int64_t[]){3, 2}, b32);
    assert_int_equal(
        run_node("MatMul", 13, NULL, 0, (const sl_tensor_t *[]){&A, &B}, 2, &out, 1, &err),
        SL_ENG_OK);
    int32_t want32[] = {58, 64, 139, 154};
    assert_memory_equal(out.data, want32, sizeof want32);
    free(out.data);

    double ad[] = {1, 2, 3, 4, 5, 6}, bd[] = {7, 8, 9, 10, 11, 12};
    A = tensor(SL_DT_DOUBLE, 2, (int64_t[]){2, 3}, ad);
    B = tensor(SL_DT_DOUBLE, 2, (int64_t[]){3, 2}, bd);
    assert_int_equal(
        run_node("MatMul", 13, NULL, 0, (const sl_tensor_t *[]){&A, &B}, 2, &out, 1, &err),
        SL_ENG_OK);
    double wantd[] = {58, 64, 139, 154};
    assert_memory_equal(out.data, wantd, sizeof wantd);
    free(out.data);
}

static void test_matmul_zero_sizes(void **state) {
    float dummy[1] = {0};
    /* K = 0: the output is all zeros (not the arena's garbage). */
    sl_tensor_t A = tensor(SL_DT_FLOAT, 2, (int64_t[]){2, 0}, dummy);
    sl_tensor_t B = tensor(SL_DT_FLOAT, 2, (int64_t[]){0, 3}, dummy);
    sl_tensor_t out;
    sl_eng_error_t err;
    assert_int_equal(
        run_node("MatMul", 13, NULL, 0, (const sl_tensor_t *[]){&A, &B}, 2, &out, 1, &err),
        SL_ENG_OK);
    assert_int_equal(out.dims[0], 2);
    assert_int_equal(out.dims[1], 3);
    for (int i = 0; i < 6; i++)
        assert_true(((float *)out.data)[i] == 0.0f);
    free(out.data);
    /* A zero-size batch: [0, 2, 3] x [3, 4] -> [0, 2, 4]. */
    A = tensor(SL_DT_FLOAT, 3, (int64_t[]){0, 2, 3}, dummy);
    B = tensor(SL_DT_FLOAT, 2, (int64_t[]){3, 4}, randf(12, 1));
    assert_int_equal(
        run_node("MatMul", 13, NULL, 0, (const sl_tensor_t *[]){&A, &B}, 2, &out, 1, &err),
        SL_ENG_OK);
    assert_int_equal(out.ndim, 3);
    assert_int_equal(out.dims[0], 0);
    assert_int_equal(out.dims[2], 4);
    free(out.data);
    free(B.data);
}

static void test_matmul_errors(void **state) {
    float d[64] = {0};
    sl_tensor_t out;
    sl_eng_error_t err;
    sl_tensor_t A = tensor(SL_DT_FLOAT, 2, (int64_t[]){2, 3}, d);
    sl_tensor_t B = tensor(SL_DT_FLOAT, 2, (int64_t[]){4, 5}, d);
    assert_int_equal(
        run_node("MatMul", 13, NULL, 0, (const sl_tensor_t *[]){&A, &B}, 2, &out, 1, &err),
        SL_ENG_ESHAPE);
    assert_non_null(strstr(err.msg, "node 'n1' (MatMul)"));
    assert_non_null(strstr(err.msg, "inner dims 3 and 4 differ"));

    sl_tensor_t A3 = tensor(SL_DT_FLOAT, 3, (int64_t[]){2, 2, 3}, d);
    sl_tensor_t B3 = tensor(SL_DT_FLOAT, 3, (int64_t[]){3, 3, 2}, d);
    assert_int_equal(
        run_node("MatMul", 13, NULL, 0, (const sl_tensor_t *[]){&A3, &B3}, 2, &out, 1, &err),
        SL_ENG_ESHAPE);
    assert_non_null(strstr(err.msg, "cannot be broadcast"));

    sl_tensor_t Bi = tensor(SL_DT_INT64, 2, (int64_t[]){3, 2}, d);
    assert_int_equal(
        run_node("MatMul", 13, NULL, 0, (const sl_tensor_t *[]){&A, &Bi}, 2, &out, 1, &err),
        SL_ENG_EINVAL);
    assert_non_null(strstr(err.msg, "float32 and int64"));

    sl_tensor_t S = tensor(SL_DT_FLOAT, 0, NULL, d);
    assert_int_equal(
        run_node("MatMul", 13, NULL, 0, (const sl_tensor_t *[]){&S, &B}, 2, &out, 1, &err),
        SL_ENG_ESHAPE);
    sl_tensor_t H = tensor(SL_DT_FLOAT16, 2, (int64_t[]){2, 3}, d);
    sl_tensor_t H2 = tensor(SL_DT_FLOAT16, 2, (int64_t[]){3, 2}, d);
    assert_int_equal(
        run_node("MatMul", 13, NULL, 0, (const sl_tensor_t *[]){&H, &H2}, 2, &out, 1, &err),
        SL_ENG_EUNSUPPORTED);
    assert_non_null(strstr(err.msg, "float16"));
}

/* ---- Gemm ---- */

/* Y = alpha * op(A) op(B) + beta * C with C of dims cd[cnd] (cnd -1: no C). */
static void check_gemm(int64_t m, int64_t n, int64_t k, int ta, int tb, float alpha, float beta,
                       int cnd, const int64_t *cd) {
    float *a = randf(m * k, 7), *b = randf(k * n, 8);
    int64_t cn = 1;
    for (int i = 0; i < cnd; i++)
        cn *= cd[i];
    float *c = randf(cn, 9);
    sl_tensor_t A = tensor(SL_DT_FLOAT, 2, ta ? (int64_t[]){k, m} : (int64_t[]){m, k}, a);
    sl_tensor_t B = tensor(SL_DT_FLOAT, 2, tb ? (int64_t[]){n, k} : (int64_t[]){k, n}, b);
    sl_tensor_t C = tensor(SL_DT_FLOAT, cnd < 0 ? 0 : cnd, cd, c);
    sl_attr_t at[] = {attr_i("transA", ta), attr_i("transB", tb), attr_f("alpha", alpha),
                      attr_f("beta", beta)};
    const sl_tensor_t *in[] = {&A, &B, &C};
    sl_tensor_t out;
    sl_eng_error_t err;
    assert_int_equal(run_node("Gemm", 13, at, 4, in, cnd < 0 ? 2 : 3, &out, 1, &err), SL_ENG_OK);
    assert_int_equal(out.ndim, 2);
    assert_int_equal(out.dims[0], m);
    assert_int_equal(out.dims[1], n);
    int64_t crs = cnd == 2 && cd[0] != 1 ? cd[1] : 0;
    int64_t ccs = cnd >= 1 && cd[cnd - 1] != 1 ? 1 : 0;
    const float *y = out.data;
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++) {
            double want =
                alpha * ref_dot(a, b, i, j, k, ta ? 1 : k, ta ? m : 1, tb ? 1 : n, tb ? k : 1);
            if (cnd >= 0) want += beta * c[i * crs + j * ccs];
            assert_close(y[i * n + j], want);
        }
    free(out.data);
    free(a);
    free(b);
    free(c);
}

static void test_gemm_variants(void **state) {
    int64_t mn[] = {3, 5}, row[] = {5}, col[] = {3, 1}, one[] = {1}, r1n[] = {1, 5};
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            check_gemm(3, 5, 4, ta, tb, 1.0f, 1.0f, 2, mn);
            check_gemm(3, 5, 4, ta, tb, 0.5f, 2.0f, 1, row);
            check_gemm(1, 5, 4, ta, tb, 1.0f, 1.0f, 1, row); /* M = 1: the gemv path */
            check_gemm(1, 5, 4, ta, tb, 0.25f, 0.0f, 1, row);
        }
    check_gemm(3, 5, 4, 0, 0, 1.0f, 1.0f, 2, col);
    check_gemm(3, 5, 4, 0, 1, 1.0f, 3.0f, 0, one); /* scalar C */
    check_gemm(3, 5, 4, 0, 1, 1.0f, 1.0f, 1, one);
    check_gemm(3, 5, 4, 0, 1, 1.0f, 1.0f, 2, r1n);
    check_gemm(3, 5, 4, 1, 0, 2.0f, 1.0f, -1, NULL); /* no C (opset 11+) */
    check_gemm(64, 256, 64, 0, 1, 1.0f, 1.0f, 1, (int64_t[]){256});
}

static void test_gemm_int64_and_k0(void **state) {
    int64_t a[] = {1, 2, 3, 4}, b[] = {5, 6, 7, 8}, c[] = {100, 200};
    sl_tensor_t A = tensor(SL_DT_INT64, 2, (int64_t[]){2, 2}, a);
    sl_tensor_t B = tensor(SL_DT_INT64, 2, (int64_t[]){2, 2}, b);
    sl_tensor_t C = tensor(SL_DT_INT64, 1, (int64_t[]){2}, c);
    sl_tensor_t out;
    sl_eng_error_t err;
    assert_int_equal(
        run_node("Gemm", 11, NULL, 0, (const sl_tensor_t *[]){&A, &B, &C}, 3, &out, 1, &err),
        SL_ENG_OK);
    int64_t want[] = {119, 222, 143, 250};
    assert_memory_equal(out.data, want, sizeof want);
    free(out.data);

    /* K = 0: Y = beta * C. */
    float f[1] = {0}, cf[] = {1.5f, -2.0f};
    sl_tensor_t Af = tensor(SL_DT_FLOAT, 2, (int64_t[]){2, 0}, f);
    sl_tensor_t Bf = tensor(SL_DT_FLOAT, 2, (int64_t[]){0, 2}, f);
    sl_tensor_t Cf = tensor(SL_DT_FLOAT, 1, (int64_t[]){2}, cf);
    assert_int_equal(
        run_node("Gemm", 13, NULL, 0, (const sl_tensor_t *[]){&Af, &Bf, &Cf}, 3, &out, 1, &err),
        SL_ENG_OK);
    float wantf[] = {1.5f, -2.0f, 1.5f, -2.0f};
    assert_memory_equal(out.data, wantf, sizeof wantf);
    free(out.data);
}

static void test_gemm_errors(void **state) {
    float d[64] = {0};
    sl_tensor_t out;
    sl_eng_error_t err;
    sl_tensor_t A = tensor(SL_DT_FLOAT, 2, (int64_t[]){2, 3}, d);
    sl_tensor_t B = tensor(SL_DT_FLOAT, 2, (int64_t[]){3, 4}, d);
    sl_tensor_t C = tensor(SL_DT_FLOAT, 1, (int64_t[]){3}, d);
    assert_int_equal(
        run_node("Gemm", 13, NULL, 0, (const sl_tensor_t *[]){&A, &B, &C}, 3, &out, 1, &err),
        SL_ENG_ESHAPE);
    assert_non_null(
        strstr(err.msg, "node 'n1' (Gemm): C [3] cannot be broadcast to (M, N) = (2, 4)"));

    sl_tensor_t A3 = tensor(SL_DT_FLOAT, 3, (int64_t[]){1, 2, 3}, d);
    assert_int_equal(
        run_node("Gemm", 13, NULL, 0, (const sl_tensor_t *[]){&A3, &B}, 2, &out, 1, &err),
        SL_ENG_ESHAPE);
    assert_non_null(strstr(err.msg, "input A has 3 dims, expected 2"));

    sl_attr_t tb = attr_i("transB", 1);
    assert_int_equal(
        run_node("Gemm", 13, &tb, 1, (const sl_tensor_t *[]){&A, &B}, 2, &out, 1, &err),
        SL_ENG_ESHAPE);
    assert_non_null(strstr(err.msg, "transB=1"));
    /* Before opset 11, C is required. */
    assert_int_equal(
        run_node("Gemm", 9, NULL, 0, (const sl_tensor_t *[]){&A, &B}, 2, &out, 1, &err),
        SL_ENG_EGRAPH);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matmul_2d_shapes),      cmocka_unit_test(test_matmul_batch_broadcast),
        cmocka_unit_test(test_matmul_shared_b_batch), cmocka_unit_test(test_matmul_vectors),
        cmocka_unit_test(test_matmul_int_and_double), cmocka_unit_test(test_matmul_zero_sizes),
        cmocka_unit_test(test_matmul_errors),         cmocka_unit_test(test_gemm_variants),
        cmocka_unit_test(test_gemm_int64_and_k0),     cmocka_unit_test(test_gemm_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
