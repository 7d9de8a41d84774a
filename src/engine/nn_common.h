/* Internal to the engine's reduce and nn kernels (ops_reduce.c, ops_nn.c and nn_*.c): small
 * shape helpers they share and the kernels that the two tables in ops_reduce.c and ops_nn.c
 * list but that live in the nn_*.c files. Nothing outside src/engine includes this header. */
#ifndef SL_ENGINE_NN_COMMON_H
#define SL_ENGINE_NN_COMMON_H

#include "engine/op.h"

/* Splits t's dims around axis: outer = prod(dims[:axis]), len = dims[axis], inner =
 * prod(dims[axis+1:]). axis must be valid for t. */
static inline void sl_nn__split(const sl_tensor_t *t, int axis, int64_t *outer, int64_t *len,
                                int64_t *inner) {
    int64_t o = 1, i = 1;
    for (int d = 0; d < axis; d++)
        o *= t->dims[d];
    for (int d = axis + 1; d < t->ndim; d++)
        i *= t->dims[d];
    *outer = o;
    *len = t->ndim > 0 ? t->dims[axis] : 1;
    *inner = i;
}

/* Reads the values of an int32 or int64 tensor of at most max elements into out. Returns the
 * count, or -1 when t has another dtype or too many elements. */
int sl_nn__read_ints(const sl_tensor_t *t, int64_t *out, int max);

/* Floor division for pad arithmetic that may go negative (Python's //). */
static inline int64_t sl_nn__floordiv(int64_t a, int64_t b) {
    int64_t q = a / b;
    return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

/* Kernel functions the tables list (prepare may be NULL). */
#define SL_NN_KERNEL(name)                                                                         \
    sl_eng_status_t sl_nn__##name##_infer(const sl_node_t *node, const sl_tensor_t *const *in,     \
                                          int n_in, sl_tensor_t *out, int n_out,                   \
                                          sl_eng_error_t *err);                                    \
    sl_eng_status_t sl_nn__##name##_run(const sl_node_t *node, const sl_tensor_t *const *in,       \
                                        int n_in, sl_tensor_t *out, int n_out, sl_kctx_t *k)

/* nn_softmax.c: Softmax, LogSoftmax, Hardmax, TopK, CumSum. */
SL_NN_KERNEL(softmax);
SL_NN_KERNEL(topk);
SL_NN_KERNEL(cumsum);
/* nn_pool.c: MaxPool, AveragePool, GlobalAveragePool, GlobalMaxPool, LRN. */
SL_NN_KERNEL(pool);
SL_NN_KERNEL(global_pool);
SL_NN_KERNEL(lrn);
/* nn_norm.c: BatchNormalization, InstanceNormalization, LayerNormalization. */
SL_NN_KERNEL(batchnorm);
SL_NN_KERNEL(instancenorm);
SL_NN_KERNEL(layernorm);
/* nn_resize.c: Resize, Upsample. */
SL_NN_KERNEL(resize);

/* Spatial geometry shared by Conv, ConvTranspose and the pools (ops_nn.c): kernel, strides,
 * dilations and begin/end pads per spatial axis, read from the node's attributes. */
typedef struct sl_nn_geom {
    int nsp; /* spatial dims: X has nsp + 2 */
    int64_t kernel[SL_MAX_DIMS];
    int64_t stride[SL_MAX_DIMS];
    int64_t dilation[SL_MAX_DIMS];
    int64_t pad_begin[SL_MAX_DIMS];
    int64_t pad_end[SL_MAX_DIMS];
    int64_t in[SL_MAX_DIMS];  /* input spatial sizes */
    int64_t out[SL_MAX_DIMS]; /* output spatial sizes */
} sl_nn_geom_t;

/* Fills g for a Conv or a pool over x (N, C, spatial...): kernel from kernel_shape (or, when
 * kernel is not NULL, from those dims: a Conv's weight), strides, dilations, pads or auto_pad,
 * and ceil_mode when ceil_ok. Validates every value and the output sizes (>= 1). */
sl_eng_status_t sl_nn__geom(const sl_node_t *node, const sl_tensor_t *x, const int64_t *kernel,
                            bool ceil_ok, sl_nn_geom_t *g, sl_eng_error_t *err);

/* A geometry with 1 to 3 spatial axes seen as 3-D: leading unit axes (kernel, stride and
 * dilation 1, no padding) in front, so one loop nest serves Conv1d/2d/3d and the pools. */
typedef struct sl_nn_view3 {
    int64_t k[3], s[3], d[3], p[3], pe[3], in[3], out[3]; /* p: begin pads, pe: end pads */
} sl_nn_view3_t;

static inline void sl_nn__view3(const sl_nn_geom_t *g, sl_nn_view3_t *t) {
    int lead = 3 - g->nsp;
    for (int i = 0; i < 3; i++) {
        int j = i - lead;
        t->k[i] = j < 0 ? 1 : g->kernel[j];
        t->s[i] = j < 0 ? 1 : g->stride[j];
        t->d[i] = j < 0 ? 1 : g->dilation[j];
        t->p[i] = j < 0 ? 0 : g->pad_begin[j];
        t->pe[i] = j < 0 ? 0 : g->pad_end[j];
        t->in[i] = j < 0 ? 1 : g->in[j];
        t->out[i] = j < 0 ? 1 : g->out[j];
    }
}

#endif
