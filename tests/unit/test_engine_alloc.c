/* After warm-up, a run of the same shapes must not touch the heap: this binary replaces malloc
 * and friends with counting versions (forwarding to glibc) and runs each example model.
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

static void run_example(const char *name, const char *input) {
    char path[512], in_path[512];
    snprintf(path, sizeof path, "%s/examples/models/%s/model.onnx", SOURCE_DIR, name);
    snprintf(in_path, sizeof in_path, "%s/examples/models/%s/reference/input.%s.npy", SOURCE_DIR,
             name, input);
    sl_eng_error_t err = {0};
    sl_model_t *m = NULL;
    assert_int_equal(sl_model_load_file(path, NULL, &m, &err), SL_ENG_OK);
    sl_tensor_t in;
    assert_int_equal(sl_npy_read_file(in_path, 0, &in, &err), SL_ENG_OK);
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
    if (allocs != 0) fprintf(stderr, "%s: %ld heap allocations in a warm run\n", name, allocs);
    assert_int_equal(allocs, 0);
#endif
    assert_int_equal(s, SL_ENG_OK);
    assert_true(out[0].ndim >= 1 && out[0].dims[0] == in.dims[0]);
    free(in.data);
    sl_run_free(r);
    sl_model_free(m);
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
