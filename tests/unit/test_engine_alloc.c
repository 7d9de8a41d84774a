/* After warm-up, a run of the same shapes must not touch the heap: this binary replaces malloc
 * and friends with counting versions (forwarding to glibc) and runs each example model, with
 * one and with four intra-op threads (whose outputs must agree).
 * Under AddressSanitizer, which owns malloc, only the outputs are checked; the release build of
 * the suite checks the counts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "engine/engine.h"
#include "engine/npy.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef SOURCE_DIR
#define SOURCE_DIR "."
#endif

#if defined(__SANITIZE_ADDRESS__)
#define COUNTING 0
#else
#define COUNTING 1
extern void *__libc_malloc(size_t n);
extern void *__libc_calloc(size_t n, size_t size);
extern void *__libc_realloc(void *p, size_t n);
extern void *__libc_memalign(size_t align, size_t n);
extern void __libc_free(void *p);

static atomic_long g_allocs;
static atomic_int g_counting;

static void note(void) {
    if (atomic_load_explicit(&g_counting, memory_order_relaxed)) atomic_fetch_add(&g_allocs, 1);
}

void *malloc(size_t n) {
    note();
    return __libc_malloc(n);
}

void *calloc(size_t n, size_t size) {
    note();
    return __libc_calloc(n, size);
}

void *realloc(void *p, size_t n) {
    note();
    return __libc_realloc(p, n);
}

void *aligned_alloc(size_t align, size_t n) {
    note();
    return __libc_memalign(align, n);
}

int posix_memalign(void **out, size_t align, size_t n) {
    note();
    void *p = __libc_memalign(align, n);
    if (!p) return 12; /* ENOMEM */
    *out = p;
    return 0;
}

void free(void *p) {
    __libc_free(p);
}
#endif

/* in repeated `times` times along dim 0 (a bigger batch, so that kernels split across
 * threads); the caller frees the data. */
static sl_tensor_t tile(const sl_tensor_t *in, int times) {
    sl_tensor_t t = *in;
    size_t bytes = sl_tensor_nbytes(in);
    t.dims[0] *= times;
    t.data = malloc(bytes * (size_t)times + 1);
    assert_non_null(t.data);
    for (int i = 0; i < times; i++)
        memcpy((char *)t.data + (size_t)i * bytes, in->data, bytes);
    return t;
}

/* Runs the example on the input tiled `times` times with `threads` intra-op threads: the
 * third run must allocate nothing; out receives copies of the float outputs (freed by the
 * caller). */
static size_t run_threads(const char *name, const char *input, int threads, int times, float **outs,
                          size_t *counts) {
    char path[512], in_path[512];
    snprintf(path, sizeof path, "%s/examples/models/%s/model.onnx", SOURCE_DIR, name);
    snprintf(in_path, sizeof in_path, "%s/examples/models/%s/reference/input.%s.npy", SOURCE_DIR,
             name, input);
    sl_eng_error_t err = {0};
    sl_model_t *m = NULL;
    sl_model_opts_t opts = {.intra_op_threads = threads};
    assert_int_equal(sl_model_load_file(path, &opts, &m, &err), SL_ENG_OK);
    sl_tensor_t in1;
    assert_int_equal(sl_npy_read_file(in_path, 0, &in1, &err), SL_ENG_OK);
    sl_tensor_t in = tile(&in1, times);
    free(in1.data);
    sl_run_t *r = NULL;
    assert_int_equal(sl_run_new(m, &r, &err), SL_ENG_OK);
    sl_tensor_t out[4];
    size_t n_out = sl_model_num_outputs(m);
    assert_true(n_out <= 4);
    for (int warm = 0; warm < 2; warm++) {
        assert_int_equal(sl_run_exec(r, &in, 1, out, n_out, &err), SL_ENG_OK);
    }
#if COUNTING
    atomic_store(&g_allocs, 0);
    atomic_store(&g_counting, 1);
#endif
    sl_eng_status_t s = sl_run_exec(r, &in, 1, out, n_out, &err);
#if COUNTING
    atomic_store(&g_counting, 0);
    long allocs = atomic_load(&g_allocs);
    if (allocs != 0)
        fprintf(stderr, "%s (%d threads): %ld heap allocations in a warm run\n", name, threads,
                allocs);
    assert_int_equal(allocs, 0);
#endif
    assert_int_equal(s, SL_ENG_OK);
    assert_true(out[0].ndim >= 1 && out[0].dims[0] == in.dims[0]);
    for (size_t i = 0; i < n_out; i++) {
        counts[i] = out[i].dtype == SL_DT_FLOAT ? (size_t)sl_tensor_numel(&out[i]) : 0;
        outs[i] = malloc(counts[i] * sizeof(float) + 1);
        assert_non_null(outs[i]);
        if (counts[i]) memcpy(outs[i], out[i].data, counts[i] * sizeof(float));
    }
    free(in.data);
    sl_run_free(r);
    sl_model_free(m);
    return n_out;
}

/* Warm runs allocate nothing with 1 and with 4 threads, and both give the same outputs (up to
 * rounding: OpenBLAS may split a GEMM differently). */
static void run_example(const char *name, const char *input) {
    float *o1[4], *o4[4];
    size_t c1[4], c4[4];
    size_t n = run_threads(name, input, 1, 1, o1, c1);
    for (size_t i = 0; i < n; i++)
        free(o1[i]);
    n = run_threads(name, input, 1, 64, o1, c1);
    assert_int_equal(run_threads(name, input, 4, 64, o4, c4), n);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(c1[i], c4[i]);
        float scale = 0, diff = 0;
        for (size_t j = 0; j < c1[i]; j++) {
            float a = o1[i][j] < 0 ? -o1[i][j] : o1[i][j], d = o1[i][j] - o4[i][j];
            scale = a > scale ? a : scale;
            d = d < 0 ? -d : d;
            diff = d > diff ? d : diff;
        }
        if (diff > 1e-6f * scale) fprintf(stderr, "%s: 1 vs 4 threads differ by %g\n", name, diff);
        assert_true(diff <= 1e-6f * scale);
        free(o1[i]);
        free(o4[i]);
    }
}

static void test_mlp(void **state) {
    run_example("mlp_digits", "pixels");
}

static void test_lenet(void **state) {
    run_example("lenet_digits", "image");
}

static void test_logistic(void **state) {
    run_example("logistic_breast_cancer", "features");
}

static void test_transformer(void **state) {
    run_example("transformer_sentiment", "tokens");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mlp),
        cmocka_unit_test(test_lenet),
        cmocka_unit_test(test_logistic),
        cmocka_unit_test(test_transformer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
