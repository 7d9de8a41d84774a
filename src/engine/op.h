/* Internal to the engine: the graph as the executor sees it and the interface every operator
 * kernel implements. A kernel file (ops_*.c) defines a table of sl_op_t; registry.c lists the
 * tables. Nothing outside src/engine includes this header. */
#ifndef SL_ENGINE_OP_H
#define SL_ENGINE_OP_H

#include "engine/engine.h"

#include <stdarg.h>

/* ONNX AttributeProto.AttributeType values. */
typedef enum sl_attr_type {
    SL_ATTR_UNDEFINED = 0,
    SL_ATTR_FLOAT = 1,
    SL_ATTR_INT = 2,
    SL_ATTR_STRING = 3,
    SL_ATTR_TENSOR = 4,
    SL_ATTR_GRAPH = 5,
    SL_ATTR_FLOATS = 6,
    SL_ATTR_INTS = 7,
    SL_ATTR_STRINGS = 8,
} sl_attr_type_t;

typedef struct sl_attr {
    const char *name;
    sl_attr_type_t type;
    float f;
    int64_t i;
    const char *s; /* STRING: bytes, s_len long, NUL-terminated */
    size_t s_len;
    const sl_tensor_t *t;       /* TENSOR: owned by the model */
    const float *floats;        /* FLOATS, n of them */
    const int64_t *ints;        /* INTS, n of them */
    const char *const *strings; /* STRINGS, n of them */
    size_t n;
} sl_attr_t;

typedef struct sl_node sl_node_t;
typedef struct sl_op sl_op_t;

/* Intra-op threads (pool.c): a run context's pool of workers, NULL when single-threaded. */
typedef struct sl_pool sl_pool_t;
/* A slice [begin, end) of a loop split by sl_par_for. */
typedef void (*sl_par_fn)(void *ctx, int64_t begin, int64_t end);

/* What a kernel's run gets besides its tensors: scratch memory and the thread budget. */
typedef struct sl_kctx {
    /* Scratch memory for this node's run only, 64-byte aligned, never NULL for n > 0 unless
     * out of memory (then the kernel returns SL_ENG_ENOMEM). Freed (reset) after the node. */
    void *(*scratch)(struct sl_kctx *k, size_t n);
    void *arena; /* for scratch */
    int threads; /* intra-op threads allowed (>= 1) */
    sl_eng_error_t *err;
    sl_pool_t *pool; /* the run context's workers for sl_par_for; NULL: one thread */
} sl_kctx_t;

/* Runs fn over [0, n) split into at most k->threads equal static chunks of at least grain
 * items, the calling thread taking one; returns when all are done. With no pool, or when n is
 * under 2 * grain, it is one direct call fn(ctx, 0, n): zero overhead single-threaded. Chunks
 * run concurrently: fn must write disjoint memory per item and must not use k->scratch (take
 * per-chunk scratch before the call). Allocates nothing. */
void sl_par_for(const sl_kctx_t *k, int64_t n, int64_t grain, sl_par_fn fn, void *ctx);

struct sl_node {
    const char *name;    /* may be "" */
    const char *op_type; /* "Gemm" */
    const char *domain;  /* "" for ai.onnx */
    int64_t opset;       /* the model's opset for domain */
    int n_inputs;
    const int *inputs; /* value ids; -1 for an omitted optional input */
    int n_outputs;
    const int *outputs; /* value ids; -1 for an omitted optional output */
    int n_attrs;
    const sl_attr_t *attrs;
    const sl_op_t *op;
    void *state; /* what op->prepare built, freed with op->release */
};

/* A kernel. All functions see the node; tensors are passed in input order, with NULL for an
 * omitted optional input (n_in is the node's input count). */
struct sl_op {
    const char *op_type;
    const char *domain; /* "" for ai.onnx */
    int since;          /* first opset version this kernel implements */
    /* Load time (optional): check arity and attributes, precompute state into node->state.
     * const_in[i] is the input's value when it is an initializer or a constant, else NULL:
     * kernels may use it to precompute (e.g. pack weights). Returns SL_ENG_OK or an error
     * with a message naming the node. */
    sl_eng_status_t (*prepare)(sl_node_t *node, const sl_tensor_t *const *const_in,
                               sl_eng_error_t *err);
    void (*release)(sl_node_t *node); /* optional: frees node->state */
    /* Run time: from the actual inputs (dtypes, dims and, where an op needs them such as
     * Reshape's shape, values) set each output's dtype, ndim and dims; data is left to the
     * executor, which allocates it. Errors name the node and what was expected. */
    sl_eng_status_t (*infer)(const sl_node_t *node, const sl_tensor_t *const *in, int n_in,
                             sl_tensor_t *out, int n_out, sl_eng_error_t *err);
    /* Computes: outputs have dtype, dims and data (allocated, not zeroed). */
    sl_eng_status_t (*run)(const sl_node_t *node, const sl_tensor_t *const *in, int n_in,
                           sl_tensor_t *out, int n_out, sl_kctx_t *k);
};

/* The kernel for (domain, op_type) implementing opset version `opset` (the table entry with the
 * greatest since <= opset), or NULL. */
const sl_op_t *sl_op_find(const char *domain, const char *op_type, int64_t opset);

/* Kernel tables, one per ops_*.c file, each ending with an entry whose op_type is NULL. */
extern const sl_op_t sl_ops_elementwise[];
extern const sl_op_t sl_ops_linalg[];
extern const sl_op_t sl_ops_shape[];
extern const sl_op_t sl_ops_reduce[];
extern const sl_op_t sl_ops_nn[];

/* Attribute access (all return def when the attribute is absent; a present attribute of the
 * wrong type is a load-time error reported by sl_attr_check). */
const sl_attr_t *sl_attr_get(const sl_node_t *n, const char *name);
int64_t sl_attr_int(const sl_node_t *n, const char *name, int64_t def);
float sl_attr_float(const sl_node_t *n, const char *name, float def);
const char *sl_attr_string(const sl_node_t *n, const char *name, const char *def);
/* INTS: *count receives the length; NULL (and 0) when absent. */
const int64_t *sl_attr_ints(const sl_node_t *n, const char *name, size_t *count);
const float *sl_attr_floats(const sl_node_t *n, const char *name, size_t *count);

/* C = alpha * op(A) * op(B) + beta * C for float32, row-major, op = transpose when ta / tb
 * (gemm.c): M x K times K x N with leading dims lda, ldb, ldc. Split across k's threads when
 * large (k may be NULL: one thread), on single-threaded OpenBLAS. Dims must fit in int. */
void sl_sgemm(const sl_kctx_t *k, bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha,
              const float *A, int64_t lda, const float *B, int64_t ldb, float beta, float *C,
              int64_t ldc);

/* Formats err: "node 'name' (OpType): <message>" and returns code. */
sl_eng_status_t sl_node_error(const sl_node_t *n, sl_eng_error_t *err, sl_eng_status_t code,
                              const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* Formats err without a node; returns code. */
sl_eng_status_t sl_eng_set_error(sl_eng_error_t *err, sl_eng_status_t code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Shape helpers shared by kernels. */
/* Numpy-style multidirectional broadcast of a and b into out (ndim and dims). */
sl_eng_status_t sl_shape_broadcast(const sl_tensor_t *a, const sl_tensor_t *b, sl_tensor_t *out);
/* Normalises a possibly negative axis against ndim; false when out of range. */
bool sl_axis_normalize(int64_t axis, int ndim, int *out);

#endif
