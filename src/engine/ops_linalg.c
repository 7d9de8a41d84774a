/* CPU kernels: the matrix operators MatMul (numpy matmul semantics) and Gemm. Float32 and
 * float64 go to OpenBLAS (gemv for the single-row case that batch-1 MLPs live on, where gemm's
 * packing overhead dominates); integer types use a plain i-k-j loop the compiler vectorises.
 * Also the kernels of the nodes fuse.c builds: MatMul with a bias added through sgemm's beta,
 * and Gemm or MatMul followed by an activation applied in place on the output. */
#include "engine/la_layout.h"
#include "engine/model_internal.h"

#include <cblas.h>
#include <limits.h>
#include <string.h>

#define MAXD SL_MAX_DIMS

static bool matmul_dtype_ok(sl_dtype_t t) {
    return t == SL_DT_FLOAT || t == SL_DT_DOUBLE || t == SL_DT_INT32 || t == SL_DT_INT64 ||
           t == SL_DT_UINT32 || t == SL_DT_UINT64;
}

static sl_eng_status_t check_blas_dims(const sl_node_t *n, int64_t m, int64_t nn, int64_t k,
                                       sl_eng_error_t *err) {
    if (m > INT_MAX || nn > INT_MAX || k > INT_MAX)
        return sl_node_error(n, err, SL_ENG_ELIMIT,
                             "matrix dims %lld x %lld x %lld exceed the BLAS limit of %d",
                             (long long)m, (long long)k, (long long)nn, INT_MAX);
    return SL_ENG_OK;
}

/* ---- one matrix product, any dtype: C[m,n] = A[m,k] * B[k,n], all dense row-major ---- */

/* Integer products wrap like two's complement (computed unsigned: signed overflow is UB). */
#define INT_MM(NAME, T, U)                                                                         \
    static void NAME(const T *restrict a, const T *restrict b, T *restrict c, int64_t m,           \
                     int64_t nn, int64_t k) {                                                      \
        U *restrict cu = (U *)c;                                                                   \
        for (int64_t i = 0; i < m; i++) {                                                          \
            U *restrict row = cu + i * nn;                                                         \
            for (int64_t j = 0; j < nn; j++)                                                       \
                row[j] = 0;                                                                        \
            for (int64_t p = 0; p < k; p++) {                                                      \
                U av = (U)a[i * k + p];                                                            \
                const U *restrict brow = (const U *)(b + p * nn);                                  \
                for (int64_t j = 0; j < nn; j++)                                                   \
                    row[j] += av * brow[j];                                                        \
            }                                                                                      \
        }                                                                                          \
    }
INT_MM(mm_i32, int32_t, uint32_t)
INT_MM(mm_i64, int64_t, uint64_t)
INT_MM(mm_u32, uint32_t, uint32_t)
INT_MM(mm_u64, uint64_t, uint64_t)

/* C = A * B + beta * C: beta is 0, or 1 when C already holds a bias (fused MatMul + Add). */
static void mm_f32(const sl_kctx_t *kc, const float *a, const float *b, float *c, int64_t m,
                   int64_t nn, int64_t k, float beta) {
    sl_sgemm(kc, false, false, m, nn, k, 1.0f, a, k, b, nn, beta, c, nn);
}

static void mm_f64(const double *a, const double *b, double *c, int64_t m, int64_t nn, int64_t k) {
    if (m == 1)
        cblas_dgemv(CblasRowMajor, CblasTrans, (int)k, (int)nn, 1.0, b, (int)nn, a, 1, 0.0, c, 1);
    else if (nn == 1)
        cblas_dgemv(CblasRowMajor, CblasNoTrans, (int)m, (int)k, 1.0, a, (int)k, b, 1, 0.0, c, 1);
    else
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)m, (int)nn, (int)k, 1.0, a,
                    (int)k, b, (int)nn, 0.0, c, (int)nn);
}

/* acc: add to C (float32 only: the fused MatMul, which is float32 only). */
static void mm_any(const sl_kctx_t *kc, sl_dtype_t t, const void *a, const void *b, void *c,
                   int64_t m, int64_t nn, int64_t k, bool acc) {
    switch (t) {
    case SL_DT_FLOAT:
        mm_f32(kc, a, b, c, m, nn, k, acc ? 1.0f : 0.0f);
        break;
    case SL_DT_DOUBLE:
        mm_f64(a, b, c, m, nn, k);
        break;
    case SL_DT_INT32:
        mm_i32(a, b, c, m, nn, k);
        break;
    case SL_DT_INT64:
        mm_i64(a, b, c, m, nn, k);
        break;
    case SL_DT_UINT32:
        mm_u32(a, b, c, m, nn, k);
        break;
    default:
        mm_u64(a, b, c, m, nn, k);
    }
}

/* ---- MatMul ---- */

/* The operands seen as batches of matrices: A is [batch..., M, K], B [batch..., K, N] with 1-D
 * operands promoted (A [K] -> [1, K], B [K] -> [K, 1]) and batch dims broadcast. */
typedef struct mm_shape {
    int64_t m, n, k;
    int nb;           /* broadcast batch dims */
    int64_t bd[MAXD]; /* their sizes */
    int64_t as[MAXD]; /* A's step in matrices per batch dim (0: broadcast) */
    int64_t bs[MAXD]; /* B's */
    int64_t a_mats;   /* matrices in A, B */
    int64_t b_mats;
    int out_nd;
    int64_t out[MAXD];
} mm_shape_t;

static sl_eng_status_t mm_shape(const sl_node_t *n, const sl_tensor_t *a, const sl_tensor_t *b,
                                mm_shape_t *s, sl_eng_error_t *err) {
    char b1[160], b2[160];
    if (a->dtype != b->dtype)
        return sl_node_error(n, err, SL_ENG_EINVAL, "inputs have dtypes %s and %s, expected equal",
                             sl_dtype_name(a->dtype), sl_dtype_name(b->dtype));
    if (!matmul_dtype_ok(a->dtype))
        return sl_node_error(n, err, SL_ENG_EUNSUPPORTED, "dtype %s is not supported",
                             sl_dtype_name(a->dtype));
    if (a->ndim < 1 || b->ndim < 1)
        return sl_node_error(n, err, SL_ENG_ESHAPE, "input %c is a scalar, expected at least 1 dim",
                             a->ndim < 1 ? 'A' : 'B');
    bool a1 = a->ndim == 1, b1v = b->ndim == 1;
    s->m = a1 ? 1 : a->dims[a->ndim - 2];
    s->k = a->dims[a->ndim - 1];
    int64_t kb = b1v ? b->dims[0] : b->dims[b->ndim - 2];
    s->n = b1v ? 1 : b->dims[b->ndim - 1];
    if (kb != s->k)
        return sl_node_error(n, err, SL_ENG_ESHAPE,
                             "A %s and B %s cannot be multiplied: inner dims %lld and %lld differ",
                             sl_la__dims_str(a->ndim, a->dims, b1, sizeof b1),
                             sl_la__dims_str(b->ndim, b->dims, b2, sizeof b2), (long long)s->k,
                             (long long)kb);
    int na = a1 ? 0 : a->ndim - 2, nbb = b1v ? 0 : b->ndim - 2;
    s->nb = na > nbb ? na : nbb;
    int64_t sa = 1, sb = 1;
    for (int i = s->nb - 1; i >= 0; i--) {
        int ia = i - (s->nb - na), ib = i - (s->nb - nbb);
        int64_t da = ia >= 0 ? a->dims[ia] : 1, db = ib >= 0 ? b->dims[ib] : 1;
        if (da != db && da != 1 && db != 1)
            return sl_node_error(n, err, SL_ENG_ESHAPE,
                                 "batch dims of A %s and B %s cannot be broadcast",
                                 sl_la__dims_str(a->ndim, a->dims, b1, sizeof b1),
                                 sl_la__dims_str(b->ndim, b->dims, b2, sizeof b2));
        s->bd[i] = da == 1 ? db : da;
        s->as[i] = da == 1 ? 0 : sa;
        s->bs[i] = db == 1 ? 0 : sb;
        sa *= da;
        sb *= db;
    }
    s->a_mats = sa;
    s->b_mats = sb;
    s->out_nd = 0;
    for (int i = 0; i < s->nb; i++)
        s->out[s->out_nd++] = s->bd[i];
    if (!a1) s->out[s->out_nd++] = s->m;
    if (!b1v) s->out[s->out_nd++] = s->n;
    return check_blas_dims(n, s->m, s->n, s->k, err);
}

static sl_eng_status_t matmul_infer(const sl_node_t *n, const sl_tensor_t *const *in, int n_in,
                                    sl_tensor_t *out, int n_out, sl_eng_error_t *err) {
    sl_eng_status_t st = sl_la__arity(n, in, n_in, 2, 2, n_out, 1, 1, err);
    if (st) return st;
    mm_shape_t s;
    if ((st = mm_shape(n, in[0], in[1], &s, err))) return st;
    if ((st = sl_la__check_dims(n, s.out_nd, s.out, sl_dtype_size(in[0]->dtype), err))) return st;
    out[0].dtype = in[0]->dtype;
    out[0].ndim = s.out_nd;
    memcpy(out[0].dims, s.out, sizeof s.out);
    return SL_ENG_OK;
}

/* The products of every batch into c; acc: add to what c holds (a bias) instead. */
static void matmul_batches(const sl_kctx_t *kc, const mm_shape_t *sp, const sl_tensor_t *a,
                           const sl_tensor_t *b, void *out, bool acc) {
    const mm_shape_t s = *sp;
    size_t es = sl_dtype_size(a->dtype);
    int64_t batch = sl_la__prod(s.bd, 0, s.nb);
    size_t out_mat = (size_t)(s.m * s.n) * es;
    if (batch == 0 || out_mat == 0) return;
    if (s.k == 0) {
        if (!acc) memset(out, 0, (size_t)batch * out_mat);
        return;
    }
    /* B shared by every batch and A not broadcast: the batch is one taller matrix. */
    if (s.b_mats == 1 && s.a_mats == batch && (int64_t)batch * s.m <= INT_MAX) {
        mm_any(kc, a->dtype, a->data, b->data, out, batch * s.m, s.n, s.k, acc);
        return;
    }
    size_t a_mat = (size_t)(s.m * s.k) * es, b_mat = (size_t)(s.k * s.n) * es;
    int64_t cnt[MAXD] = {0}, ao = 0, bo = 0;
    char *c = out;
    for (int64_t it = 0; it < batch; it++, c += out_mat) {
        mm_any(kc, a->dtype, (const char *)a->data + (size_t)ao * a_mat,
               (const char *)b->data + (size_t)bo * b_mat, c, s.m, s.n, s.k, acc);
        for (int j = s.nb - 1; j >= 0; j--) {
            ao += s.as[j];
            bo += s.bs[j];
            if (++cnt[j] < s.bd[j]) break;
            ao -= s.as[j] * s.bd[j];
            bo -= s.bs[j] * s.bd[j];
            cnt[j] = 0;
        }
    }
}

static sl_eng_status_t matmul_run(const sl_node_t *n, const sl_tensor_t *const *in, int n_in,
                                  sl_tensor_t *out, int n_out, sl_kctx_t *k) {
    mm_shape_t s;
    sl_eng_status_t st = mm_shape(n, in[0], in[1], &s, k->err);
    if (st) return st;
    matmul_batches(k, &s, in[0], in[1], out[0].data, false);
    return SL_ENG_OK;
}

/* ---- Gemm: Y = alpha * op(A) * op(B) + beta * C ---- */

typedef struct gemm_shape {
    int64_t m, n, k;
    bool ta, tb;
    float alpha, beta;
    const sl_tensor_t *c; /* NULL when absent */
    int64_t c_rs, c_cs;   /* C's row and column steps when broadcast to (M, N): 0 or its stride */
} gemm_shape_t;

static sl_eng_status_t gemm_shape(const sl_node_t *n, const sl_tensor_t *const *in, int n_in,
                                  gemm_shape_t *g, sl_eng_error_t *err) {
    const sl_tensor_t *a = in[0], *b = in[1];
    char b1[160];
    if (a->dtype != b->dtype)
        return sl_node_error(n, err, SL_ENG_EINVAL, "A has dtype %s, B %s, expected equal",
                             sl_dtype_name(a->dtype), sl_dtype_name(b->dtype));
    if (!matmul_dtype_ok(a->dtype))
        return sl_node_error(n, err, SL_ENG_EUNSUPPORTED, "dtype %s is not supported",
                             sl_dtype_name(a->dtype));
    if (a->ndim != 2)
        return sl_node_error(n, err, SL_ENG_ESHAPE, "input A has %d dims, expected 2", a->ndim);
    if (b->ndim != 2)
        return sl_node_error(n, err, SL_ENG_ESHAPE, "input B has %d dims, expected 2", b->ndim);
    g->ta = sl_attr_int(n, "transA", 0) != 0;
    g->tb = sl_attr_int(n, "transB", 0) != 0;
    g->alpha = sl_attr_float(n, "alpha", 1.0f);
    g->beta = sl_attr_float(n, "beta", 1.0f);
    g->m = g->ta ? a->dims[1] : a->dims[0];
    g->k = g->ta ? a->dims[0] : a->dims[1];
    int64_t kb = g->tb ? b->dims[1] : b->dims[0];
    g->n = g->tb ? b->dims[0] : b->dims[1];
    if (kb != g->k)
        return sl_node_error(n, err, SL_ENG_ESHAPE,
                             "op(A) is %lld x %lld but op(B) is %lld x %lld (transA=%d, transB=%d)",
                             (long long)g->m, (long long)g->k, (long long)kb, (long long)g->n,
                             g->ta, g->tb);
    g->c = n_in > 2 ? in[2] : NULL;
    g->c_rs = g->c_cs = 0;
    if (g->c) {
        const sl_tensor_t *c = g->c;
        if (c->dtype != a->dtype)
            return sl_node_error(n, err, SL_ENG_EINVAL, "C has dtype %s, A %s",
                                 sl_dtype_name(c->dtype), sl_dtype_name(a->dtype));
        int64_t cr = c->ndim == 2 ? c->dims[0] : 1, cc = c->ndim >= 1 ? c->dims[c->ndim - 1] : 1;
        if (c->ndim > 2 || (cr != 1 && cr != g->m) || (cc != 1 && cc != g->n))
            return sl_node_error(
                n, err, SL_ENG_ESHAPE, "C %s cannot be broadcast to (M, N) = (%lld, %lld)",
                sl_la__dims_str(c->ndim, c->dims, b1, sizeof b1), (long long)g->m, (long long)g->n);
        g->c_cs = cc == 1 ? 0 : 1;
        g->c_rs = cr == 1 ? 0 : cc;
    }
    return check_blas_dims(n, g->m, g->n, g->k, err);
}

static sl_eng_status_t gemm_infer(const sl_node_t *n, const sl_tensor_t *const *in, int n_in,
                                  sl_tensor_t *out, int n_out, sl_eng_error_t *err) {
    sl_eng_status_t st = sl_la__arity(n, in, n_in, n->opset >= 11 ? 2 : 3, 3, n_out, 1, 1, err);
    if (st) return st;
    gemm_shape_t g;
    if ((st = gemm_shape(n, in, n_in, &g, err))) return st;
    int64_t dims[2] = {g.m, g.n};
    if ((st = sl_la__check_dims(n, 2, dims, sl_dtype_size(in[0]->dtype), err))) return st;
    out[0].dtype = in[0]->dtype;
    out[0].ndim = 2;
    out[0].dims[0] = g.m;
    out[0].dims[1] = g.n;
    return SL_ENG_OK;
}

/* Y = beta * C broadcast to (M, N); returns false (Y untouched) when there is no C term. */
#define GEMM_BIAS(NAME, T)                                                                         \
    static bool NAME(const gemm_shape_t *g, T *restrict y) {                                       \
        if (!g->c || g->beta == 0) return false;                                                   \
        const T *restrict c = g->c->data;                                                          \
        T beta = (T)g->beta;                                                                       \
        for (int64_t i = 0; i < g->m; i++) {                                                       \
            T *restrict row = y + i * g->n;                                                        \
            const T *restrict cr = c + i * g->c_rs;                                                \
            if (g->c_cs == 0) {                                                                    \
                for (int64_t j = 0; j < g->n; j++)                                                 \
                    row[j] = beta * cr[0];                                                         \
            } else if (g->beta == 1) {                                                             \
                memcpy(row, cr, sizeof(T) * (size_t)g->n);                                         \
            } else {                                                                               \
                for (int64_t j = 0; j < g->n; j++)                                                 \
                    row[j] = beta * cr[j];                                                         \
            }                                                                                      \
        }                                                                                          \
        return true;                                                                               \
    }
GEMM_BIAS(bias_f32, float)
GEMM_BIAS(bias_f64, double)

#define GEMM_BLAS(NAME, T, BIAS, GEMV, GEMM)                                                       \
    static void NAME(const gemm_shape_t *g, const T *a, const T *b, T *y) {                        \
        T beta = BIAS(g, y) ? (T)1 : (T)0;                                                         \
        int m = (int)g->m, nn = (int)g->n, k = (int)g->k;                                          \
        if (k == 0) {                                                                              \
            if (beta == 0) memset(y, 0, sizeof(T) * (size_t)g->m * (size_t)g->n);                  \
            return;                                                                                \
        }                                                                                          \
        if (m == 1) {                                                                              \
            /* op(A) is one row, contiguous whether transposed or not. */                          \
            if (g->tb)                                                                             \
                GEMV(CblasRowMajor, CblasNoTrans, nn, k, (T)g->alpha, b, k, a, 1, beta, y, 1);     \
            else                                                                                   \
                GEMV(CblasRowMajor, CblasTrans, k, nn, (T)g->alpha, b, nn, a, 1, beta, y, 1);      \
            return;                                                                                \
        }                                                                                          \
        GEMM(CblasRowMajor, g->ta ? CblasTrans : CblasNoTrans, g->tb ? CblasTrans : CblasNoTrans,  \
             m, nn, k, (T)g->alpha, a, g->ta ? m : k, b, g->tb ? k : nn, beta, y, nn);             \
    }

static void gemm_f32(const sl_kctx_t *kc, const gemm_shape_t *g, const float *a, const float *b,
                     float *y) {
    float beta = bias_f32(g, y) ? 1.0f : 0.0f;
    if (g->k == 0) {
        if (beta == 0) memset(y, 0, sizeof(float) * (size_t)g->m * (size_t)g->n);
        return;
    }
    sl_sgemm(kc, g->ta, g->tb, g->m, g->n, g->k, (float)g->alpha, a, g->ta ? g->m : g->k, b,
             g->tb ? g->k : g->n, beta, y, g->n);
}
GEMM_BLAS(gemm_f64, double, bias_f64, cblas_dgemv, cblas_dgemm)

/* Integer Gemm (opset 9+): exact integer products, then alpha and beta applied in double, as
 * the reference computes them, when they are not 1. */
#define GEMM_INT(NAME, T, U)                                                                       \
    static void NAME(const gemm_shape_t *g, const T *a, const T *b, T *y) {                        \
        int64_t m = g->m, nn = g->n, k = g->k;                                                     \
        int64_t as_i = g->ta ? 1 : k, as_p = g->ta ? m : 1;                                        \
        int64_t bs_p = g->tb ? 1 : nn, bs_j = g->tb ? k : 1;                                       \
        const T *c = g->c ? g->c->data : NULL;                                                     \
        for (int64_t i = 0; i < m; i++) {                                                          \
            for (int64_t j = 0; j < nn; j++) {                                                     \
                U acc = 0;                                                                         \
                for (int64_t p = 0; p < k; p++)                                                    \
                    acc += (U)a[i * as_i + p * as_p] * (U)b[p * bs_p + j * bs_j];                  \
                T v = (T)acc;                                                                      \
                T cv = c ? c[i * g->c_rs + j * g->c_cs] : 0;                                       \
                if (g->alpha == 1 && g->beta == 1)                                                 \
                    y[i * nn + j] = (T)((U)v + (U)cv);                                             \
                else                                                                               \
                    y[i * nn + j] = (T)(g->alpha * (double)v + g->beta * (double)cv);              \
            }                                                                                      \
        }                                                                                          \
    }
GEMM_INT(gemm_i32, int32_t, uint32_t)
GEMM_INT(gemm_i64, int64_t, uint64_t)
GEMM_INT(gemm_u32, uint32_t, uint32_t)
GEMM_INT(gemm_u64, uint64_t, uint64_t)

static sl_eng_status_t gemm_run(const sl_node_t *n, const sl_tensor_t *const *in, int n_in,
                                sl_tensor_t *out, int n_out, sl_kctx_t *k) {
    gemm_shape_t g;
    sl_eng_status_t st = gemm_shape(n, in, n_in, &g, k->err);
    if (st) return st;
    if (g.m == 0 || g.n == 0) return SL_ENG_OK;
    const void *a = in[0]->data, *b = in[1]->data;
    void *y = out[0].data;
    switch (in[0]->dtype) {
    case SL_DT_FLOAT:
        gemm_f32(k, &g, a, b, y);
        break;
    case SL_DT_DOUBLE:
        gemm_f64(&g, a, b, y);
        break;
    case SL_DT_INT32:
        gemm_i32(&g, a, b, y);
        break;
    case SL_DT_INT64:
        gemm_i64(&g, a, b, y);
        break;
    case SL_DT_UINT32:
        gemm_u32(&g, a, b, y);
        break;
    default:
        gemm_u64(&g, a, b, y);
    }
    return SL_ENG_OK;
}

/* ---- fused nodes (built by fuse.c; state: sl_fused_t) ---- */

/* ReLU in place through one pointer: no aliasing for the compiler to version the loop on, so
 * it is SIMD (-O3 -fopt-info-vec: "loop vectorized"). Same values as the Relu kernel: NaN and
 * -0 pass through. */
static void relu_inplace(float *restrict y, size_t n) {
    for (size_t i = 0; i < n; i++)
        y[i] = y[i] < 0 ? 0.0f : y[i];
}

/* The fused activation, in place on y. ReLU, the common case, has its own loop above; the others
 * run the activation's own kernel (every elementwise loop reads element i before writing it), so
 * the result is bit-identical to the unfused graph, at one indirect call per node. */
static sl_eng_status_t fused_act(const sl_fused_t *f, sl_tensor_t *y, sl_kctx_t *k) {
    if (!f->act || sl_tensor_numel(y) == 0) return SL_ENG_OK;
    if (f->act_relu && y->dtype == SL_DT_FLOAT) {
        relu_inplace(y->data, (size_t)sl_tensor_numel(y));
        return SL_ENG_OK;
    }
    const sl_tensor_t *ins[3] = {y, f->act_in[1], f->act_in[2]};
    return f->act->op->run(f->act, ins, f->act_n_in, y, 1, k);
}

/* fuse.c fuses only nodes whose B is a float constant; a different A fails here as unfused. */
static sl_eng_status_t fused_float(const sl_node_t *n, const sl_tensor_t *const *in,
                                   sl_eng_error_t *err) {
    if (in[0]->dtype != SL_DT_FLOAT || in[1]->dtype != SL_DT_FLOAT)
        return sl_node_error(n, err, SL_ENG_EINVAL, "inputs have dtypes %s and %s, expected float",
                             sl_dtype_name(in[0]->dtype), sl_dtype_name(in[1]->dtype));
    return SL_ENG_OK;
}

static sl_eng_status_t gemm_fused_infer(const sl_node_t *n, const sl_tensor_t *const *in, int n_in,
                                        sl_tensor_t *out, int n_out, sl_eng_error_t *err) {
    sl_eng_status_t st = gemm_infer(n, in, n_in, out, n_out, err);
    return st ? st : fused_float(n, in, err);
}

static sl_eng_status_t gemm_fused_run(const sl_node_t *n, const sl_tensor_t *const *in, int n_in,
                                      sl_tensor_t *out, int n_out, sl_kctx_t *k) {
    sl_eng_status_t st = gemm_run(n, in, n_in, out, n_out, k);
    return st ? st : fused_act(n->state, &out[0], k);
}

/* MatMul's shape, and with a bias (input 2) the Add's broadcast: the bias has one value or N
 * (fuse.c checked every other dim is 1); with more dims than the product it adds leading 1s. */
static sl_eng_status_t matmul_fused_shape(const sl_node_t *n, const sl_tensor_t *const *in,
                                          int n_in, int n_out, mm_shape_t *s, sl_eng_error_t *err) {
    const sl_fused_t *f = n->state;
    int want = f->bias ? 3 : 2;
    sl_eng_status_t st = sl_la__arity(n, in, n_in, want, want, n_out, 1, 1, err);
    if (st || (st = mm_shape(n, in[0], in[1], s, err)) || (st = fused_float(n, in, err))) return st;
    if (!f->bias) return SL_ENG_OK;
    const sl_tensor_t *c = in[2];
    int64_t last = c->ndim ? c->dims[c->ndim - 1] : 1;
    if (c->dtype != SL_DT_FLOAT || sl_tensor_numel(c) != last ||
        (last != 1 && (in[1]->ndim < 2 || last != s->n))) {
        char b1[160];
        return sl_node_error(n, err, SL_ENG_ESHAPE,
                             "fused bias %s cannot be broadcast over the last dim (%lld)",
                             sl_la__dims_str(c->ndim, c->dims, b1, sizeof b1), (long long)s->n);
    }
    if (c->ndim > s->out_nd) {
        int extra = c->ndim - s->out_nd;
        memmove(s->out + extra, s->out, (size_t)s->out_nd * sizeof s->out[0]);
        for (int i = 0; i < extra; i++)
            s->out[i] = 1;
        s->out_nd = c->ndim;
    }
    return SL_ENG_OK;
}

static sl_eng_status_t matmul_fused_infer(const sl_node_t *n, const sl_tensor_t *const *in,
                                          int n_in, sl_tensor_t *out, int n_out,
                                          sl_eng_error_t *err) {
    mm_shape_t s;
    sl_eng_status_t st = matmul_fused_shape(n, in, n_in, n_out, &s, err);
    if (st || (st = sl_la__check_dims(n, s.out_nd, s.out, sizeof(float), err))) return st;
    out[0].dtype = SL_DT_FLOAT;
    out[0].ndim = s.out_nd;
    memcpy(out[0].dims, s.out, sizeof s.out);
    return SL_ENG_OK;
}

/* Every row of y (rows of n) starts as the bias, which sgemm then accumulates onto (beta = 1),
 * as Gemm does with C: no second pass over the output. */
static void bias_rows(float *restrict y, const float *restrict c, int64_t n_c, int64_t total,
                      int64_t n) {
    if (n_c == 1 || n <= 1) {
        for (int64_t i = 0; i < total; i++)
            y[i] = c[0];
        return;
    }
    for (int64_t r = 0; r < total / n; r++)
        memcpy(y + r * n, c, (size_t)n * sizeof *y);
}

static sl_eng_status_t matmul_fused_run(const sl_node_t *n, const sl_tensor_t *const *in, int n_in,
                                        sl_tensor_t *out, int n_out, sl_kctx_t *k) {
    const sl_fused_t *f = n->state;
    mm_shape_t s;
    sl_eng_status_t st = matmul_fused_shape(n, in, n_in, n_out, &s, k->err);
    if (st) return st;
    if (f->bias)
        bias_rows(out[0].data, in[2]->data, sl_tensor_numel(in[2]), sl_tensor_numel(&out[0]), s.n);
    matmul_batches(k, &s, in[0], in[1], out[0].data, f->bias);
    return fused_act(f, &out[0], k);
}

const sl_op_t sl_op_gemm_fused = {
    .op_type = "Gemm", .domain = "", .since = 1, .infer = gemm_fused_infer, .run = gemm_fused_run};
const sl_op_t sl_op_matmul_fused = {.op_type = "MatMul",
                                    .domain = "",
                                    .since = 1,
                                    .infer = matmul_fused_infer,
                                    .run = matmul_fused_run};

const sl_op_t sl_ops_linalg[] = {
    {.op_type = "MatMul", .domain = "", .since = 1, .infer = matmul_infer, .run = matmul_run},
    {.op_type = "Gemm", .domain = "", .since = 1, .infer = gemm_infer, .run = gemm_run},
    {.op_type = NULL},
};
