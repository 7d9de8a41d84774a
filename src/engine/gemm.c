/* The engine's one float GEMM entry (MatMul, Gemm, the fused nodes, Conv, ConvTranspose): it
 * picks sgemv or sgemm per shape and does the intra-op threading itself. OpenBLAS is kept at one
 * thread (model.c sets it, process-wide, at every load): its own threads allocate on every
 * call and spin when idle, and its count is process-wide; instead, with a pool, a large
 * product is split into row blocks of C (column blocks when it has few rows), each computed
 * by a single-threaded BLAS call on one of the run context's threads. Every element of C is
 * computed by one call over the whole K, so the split changes no result.
 *
 * oneDNN's dnnl_sgemm (libdnnl-dev 2.6) was tried here and not kept: on the benchmark MLP at
 * batch 256 it was 2-4% faster than OpenBLAS, but it mallocs its packing buffers on every call
 * (breaking the zero-allocation warm run) and its first call costs 60-240 ms of JIT, over the
 * 20 ms load-to-ready budget (docs/benchmarks.md). */
#include "engine/model_internal.h"

#include <cblas.h>
#include <string.h>

/* Below this many multiply-adds per thread a product is not split. */
#define PAR_MIN_MACS ((int64_t)1 << 17)

typedef struct gemm_args {
    bool ta, tb;
    int64_t M, N, K;
    float alpha, beta;
    const float *A, *B;
    float *C;
    int64_t lda, ldb, ldc;
    bool by_cols; /* the split runs over N */
} gemm_args_t;

/* One product on this thread. */
static void gemm1(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                  int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc) {
    if (M == 0 || N == 0) return;
    if (M == 1) {
        /* op(A) is one row, contiguous whether transposed or not (ta: a column of A with
         * stride lda: contiguous when lda is 1, else left to sgemm). */
        if (!ta || lda == 1) {
            if (tb)
                cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)N, (int)K, alpha, B, (int)ldb, A, 1,
                            beta, C, 1);
            else
                cblas_sgemv(CblasRowMajor, CblasTrans, (int)K, (int)N, alpha, B, (int)ldb, A, 1,
                            beta, C, 1);
            return;
        }
    }
    if (N == 1 && !ta) { /* a matrix times one column */
        cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)M, (int)K, alpha, A, (int)lda, B,
                    tb ? 1 : (int)ldb, beta, C, (int)ldc);
        return;
    }
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                (int)M, (int)N, (int)K, alpha, A, (int)lda, B, (int)ldb, beta, C, (int)ldc);
}

static void gemm_chunk(void *ctx, int64_t b, int64_t e) {
    const gemm_args_t *g = ctx;
    if (g->by_cols) {
        const float *B = g->tb ? g->B + b * g->ldb : g->B + b;
        gemm1(g->ta, g->tb, g->M, e - b, g->K, g->alpha, g->A, g->lda, B, g->ldb, g->beta, g->C + b,
              g->ldc);
    } else {
        const float *A = g->ta ? g->A + b : g->A + b * g->lda;
        gemm1(g->ta, g->tb, e - b, g->N, g->K, g->alpha, A, g->lda, g->B, g->ldb, g->beta,
              g->C + b * g->ldc, g->ldc);
    }
}

void sl_sgemm(const sl_kctx_t *k, bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha,
              const float *A, int64_t lda, const float *B, int64_t ldb, float beta, float *C,
              int64_t ldc) {
    int threads = k && k->pool ? k->threads : 1;
    if (threads < 2 || M * N * K < 2 * PAR_MIN_MACS) {
        gemm1(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    gemm_args_t g = {.ta = ta,
                     .tb = tb,
                     .M = M,
                     .N = N,
                     .K = K,
                     .alpha = alpha,
                     .beta = beta,
                     .A = A,
                     .B = B,
                     .C = C,
                     .lda = lda,
                     .ldb = ldb,
                     .ldc = ldc,
                     /* Rows when there are enough for every thread to get a block of 16. */
                     .by_cols = M < 16 * (int64_t)threads};
    int64_t n = g.by_cols ? N : M, per = g.by_cols ? M * K : N * K;
    int64_t grain = PAR_MIN_MACS / (per > 0 ? per : 1);
    if (grain < (g.by_cols ? 16 : 4)) grain = g.by_cols ? 16 : 4;
    sl_par_for(k, n, grain, gemm_chunk, &g);
}
