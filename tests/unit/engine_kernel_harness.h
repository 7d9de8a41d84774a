/* A one-node executor for the engine's kernel unit tests (tests/unit/test_engine_ops_*.c): it
 * looks an op up in the registry as the executor does, drives prepare, infer and run on a
 * hand-built node with outputs and scratch from malloc, and offers the tensor and attribute
 * constructors and the asserts those tests share. Header-only: each test file is its own binary,
 * so every helper is static inline (no unused-function warnings where a test skips one). */
#ifndef SL_TEST_ENGINE_KERNEL_HARNESS_H
#define SL_TEST_ENGINE_KERNEL_HARNESS_H

#include "engine/engine.h"
#include "engine/op.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

/* ---- running one node ---- */

#define KH_MAX_IO      16
#define KH_MAX_SCRATCH 64

typedef struct kh_kctx {
    sl_kctx_t k; /* first, so that the scratch callback can cast back */
    void *blocks[KH_MAX_SCRATCH];
    int n;
} kh_kctx_t;

/* Scratch as the executor's arena gives it: 64-byte aligned, valid until the run returns. */
static inline void *kh_scratch(sl_kctx_t *k, size_t n) {
    kh_kctx_t *t = (kh_kctx_t *)k;
    assert_true(t->n < KH_MAX_SCRATCH);
    void *p = aligned_alloc(64, (n + 63) / 64 * 64 + 64);
    assert_non_null(p);
    t->blocks[t->n++] = p;
    return p;
}

/* Frees what kh_scratch handed out through t. */
static inline void kh_scratch_free(kh_kctx_t *t) {
    for (int i = 0; i < t->n; i++)
        free(t->blocks[i]);
    t->n = 0;
}

/* Runs op_type at opset on in[0..n_in) (NULL entries: omitted optional inputs) into
 * out[0..n_out): prepare (seeing every input as constant), infer, then run. out[] is zeroed
 * first; on success each out[i].data is malloc'd here, filled with garbage before the run as the
 * arena would be, and owned by the caller (free_outs). On any error the outputs hold no data and
 * *err carries the message. Fails the test when the registry has no such op. */
static inline sl_eng_status_t run_node(const char *op_type, int64_t opset, const sl_attr_t *attrs,
                                       int n_attrs, const sl_tensor_t *const *in, int n_in,
                                       sl_tensor_t *out, int n_out, sl_eng_error_t *err) {
    const sl_op_t *op = sl_op_find("", op_type, opset);
    assert_non_null(op);
    assert_true(n_in <= KH_MAX_IO && n_out <= KH_MAX_IO);
    static const int ids[KH_MAX_IO] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
    sl_node_t node = {.name = "n1",
                      .op_type = op_type,
                      .domain = "",
                      .opset = opset,
                      .n_inputs = n_in,
                      .inputs = ids,
                      .n_outputs = n_out,
                      .outputs = ids,
                      .n_attrs = n_attrs,
                      .attrs = attrs,
                      .op = op};
    memset(err, 0, sizeof *err);
    for (int i = 0; i < n_out; i++)
        out[i] = (sl_tensor_t){0};
    sl_eng_status_t s = SL_ENG_OK;
    if (op->prepare && (s = op->prepare(&node, in, err)) != SL_ENG_OK) return s;
    if ((s = op->infer(&node, in, n_in, out, n_out, err)) != SL_ENG_OK) goto done;
    for (int i = 0; i < n_out; i++) {
        size_t nb = sl_tensor_nbytes(&out[i]) + 1;
        out[i].data = malloc(nb);
        assert_non_null(out[i].data);
        memset(out[i].data, 0xAB, nb); /* not zeroed, as the executor promises */
    }
    kh_kctx_t t = {.k = {.scratch = kh_scratch, .threads = 1, .err = err}};
    s = op->run(&node, in, n_in, out, n_out, &t.k);
    kh_scratch_free(&t);
    if (s != SL_ENG_OK)
        for (int i = 0; i < n_out; i++) {
            free(out[i].data);
            out[i].data = NULL;
        }
done:
    if (op->release) op->release(&node);
    return s;
}

/* The error of the last run_op. */
static sl_eng_error_t last_err;

/* run_node on an array of tensors rather than pointers (an entry of dtype SL_DT_UNDEFINED is an
 * omitted input), with the error in last_err. */
static inline sl_eng_status_t run_op(const char *op_type, int64_t opset, const sl_attr_t *attrs,
                                     int n_attrs, const sl_tensor_t *in, int n_in, sl_tensor_t *out,
                                     int n_out) {
    assert_true(n_in <= KH_MAX_IO);
    const sl_tensor_t *ins[KH_MAX_IO];
    for (int i = 0; i < n_in; i++)
        ins[i] = in[i].dtype == SL_DT_UNDEFINED ? NULL : &in[i];
    return run_node(op_type, opset, attrs, n_attrs, ins, n_in, out, n_out, &last_err);
}

/* Frees the data run_node allocated (NULL entries are fine). */
static inline void free_outs(sl_tensor_t *out, int n) {
    for (int i = 0; i < n; i++) {
        free(out[i].data);
        out[i].data = NULL;
    }
}

/* Runs a one-output op and returns the output (data malloc'd); fails the test on an error. */
static inline sl_tensor_t ok1(const char *op, int64_t opset, const sl_attr_t *at, int na,
                              const sl_tensor_t *const *in, int n_in) {
    sl_tensor_t out;
    sl_eng_error_t err;
    sl_eng_status_t s = run_node(op, opset, at, na, in, n_in, &out, 1, &err);
    if (s) fail_msg("%s failed: %s", op, err.msg);
    return out;
}

/* Runs a one-output op that must fail with code and name the node; returns the message (a
 * static buffer, valid until the next call). */
static inline const char *fails(sl_eng_status_t code, const char *op, int64_t opset,
                                const sl_attr_t *at, int na, const sl_tensor_t *const *in,
                                int n_in) {
    static sl_eng_error_t err;
    sl_tensor_t out[4];
    sl_eng_status_t s = run_node(op, opset, at, na, in, n_in, out, 1, &err);
    if (s == SL_ENG_OK) fail_msg("%s succeeded, expected an error", op);
    assert_int_equal(s, code);
    assert_non_null(strstr(err.msg, "node 'n1'"));
    return err.msg;
}

/* ---- tensors: borrowed data, dims copied ---- */

static inline sl_tensor_t tensor(sl_dtype_t dt, int nd, const int64_t *dims, void *data) {
    assert_true(nd >= 0 && nd <= SL_MAX_DIMS);
    sl_tensor_t t = {.dtype = dt, .ndim = nd, .data = data};
    for (int i = 0; i < nd; i++)
        t.dims[i] = dims[i];
    return t;
}

static inline sl_tensor_t kh_ten(sl_dtype_t dt, void *data, const int64_t *nd_dims, size_t n) {
    assert_int_equal(n, (size_t)nd_dims[0] + 1); /* as many dims as ndim says */
    assert_true(n <= SL_MAX_DIMS + 1);
    sl_tensor_t t = {.dtype = dt, .ndim = (int)nd_dims[0], .data = data};
    for (size_t i = 1; i < n && i <= SL_MAX_DIMS; i++)
        t.dims[i - 1] = nd_dims[i];
    return t;
}

/* ten(dtype, data, ndim, dim0, dim1, ...): any integer type will do for ndim and the dims. */
#define ten(dt, data, ...)                                                                         \
    kh_ten(dt, data, (const int64_t[]){__VA_ARGS__},                                               \
           sizeof((const int64_t[]){__VA_ARGS__}) / sizeof(int64_t))
#define F32(data, ...) ten(SL_DT_FLOAT, data, __VA_ARGS__)
#define I64(data, ...) ten(SL_DT_INT64, data, __VA_ARGS__)

/* T(dtype, data, dim0, dim1, ...): ndim counted from the dims; T0 is a scalar. */
#define DIMS(...)                                                                                  \
    (int64_t[]) {                                                                                  \
        __VA_ARGS__                                                                                \
    }
#define NDIMS(...)       (int)(sizeof(int64_t[]){__VA_ARGS__} / sizeof(int64_t))
#define T(dt, data, ...) tensor(dt, NDIMS(__VA_ARGS__), DIMS(__VA_ARGS__), data)
#define T0(dt, data)     tensor(dt, 0, NULL, data)
#define INS(...)                                                                                   \
    (const sl_tensor_t *[]) {                                                                      \
        __VA_ARGS__                                                                                \
    }
#define NINS(...) (int)(sizeof(const sl_tensor_t *[]){__VA_ARGS__} / sizeof(const sl_tensor_t *))

/* 0, 1, 2, ... */
static inline float *iota(float *x, int n) {
    for (int i = 0; i < n; i++)
        x[i] = (float)i;
    return x;
}

/* ---- attributes: name and values borrowed ---- */

static inline sl_attr_t attr_i(const char *name, int64_t v) {
    return (sl_attr_t){.name = name, .type = SL_ATTR_INT, .i = v};
}
static inline sl_attr_t attr_ints(const char *name, const int64_t *v, size_t n) {
    return (sl_attr_t){.name = name, .type = SL_ATTR_INTS, .ints = v, .n = n};
}
static inline sl_attr_t attr_f(const char *name, float v) {
    return (sl_attr_t){.name = name, .type = SL_ATTR_FLOAT, .f = v};
}
static inline sl_attr_t attr_s(const char *name, const char *s) {
    return (sl_attr_t){.name = name, .type = SL_ATTR_STRING, .s = s, .s_len = strlen(s)};
}
#define INTS(name, ...)                                                                            \
    attr_ints(name, (const int64_t[]){__VA_ARGS__},                                                \
              sizeof((const int64_t[]){__VA_ARGS__}) / sizeof(int64_t))

/* ---- asserts ---- */

static inline void assert_dims(const sl_tensor_t *t, int nd, const int64_t *dims) {
    assert_int_equal(t->ndim, nd);
    for (int i = 0; i < nd; i++)
        assert_int_equal(t->dims[i], dims[i]);
}

/* Each got[i] within tol relative to want[i] (absolute near zero). */
static inline void assert_floats(const float *got, const float *want, int n, float tol) {
    for (int i = 0; i < n; i++) {
        if (fabsf(got[i] - want[i]) > tol * (1 + fabsf(want[i])))
            fail_msg("element %d: got %.7g, want %.7g", i, got[i], want[i]);
    }
}

#define ASSERT_SHAPE(t, ...) assert_dims(&(t), NDIMS(__VA_ARGS__), DIMS(__VA_ARGS__))
/* The tensor holds exactly these values (bitwise). */
#define ASSERT_F(t, ...)                                                                           \
    do {                                                                                           \
        float w_[] = {__VA_ARGS__};                                                                \
        assert_int_equal(sl_tensor_numel(&(t)), sizeof w_ / sizeof w_[0]);                         \
        assert_memory_equal((t).data, w_, sizeof w_);                                              \
    } while (0)
#define ASSERT_I64(t, ...)                                                                         \
    do {                                                                                           \
        int64_t w_[] = {__VA_ARGS__};                                                              \
        assert_int_equal(sl_tensor_numel(&(t)), sizeof w_ / sizeof w_[0]);                         \
        assert_memory_equal((t).data, w_, sizeof w_);                                              \
    } while (0)

#endif
