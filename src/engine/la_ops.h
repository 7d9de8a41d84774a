/* Private to the engine: kernels of the shape table (sl_ops_shape in ops_shape.c) that live in
 * their own files by concern: generators (la_gen.c: Constant, ConstantOfShape, Range, Pad) and
 * indexing (la_index.c: Gather, GatherElements, ScatterElements, OneHot, NonZero, Trilu). Each
 * pair follows the infer/run contract of op.h (tensors borrowed for the call, errors naming the
 * node). Nothing outside src/engine includes this header. */
#ifndef SL_ENGINE_LA_OPS_H
#define SL_ENGINE_LA_OPS_H

#include "engine/op.h"

#define SL_LA_KERNEL(name)                                                                         \
    sl_eng_status_t sl_la__##name##_infer(const sl_node_t *node, const sl_tensor_t *const *in,     \
                                          int n_in, sl_tensor_t *out, int n_out,                   \
                                          sl_eng_error_t *err);                                    \
    sl_eng_status_t sl_la__##name##_run(const sl_node_t *node, const sl_tensor_t *const *in,       \
                                        int n_in, sl_tensor_t *out, int n_out, sl_kctx_t *k)

SL_LA_KERNEL(constant);
SL_LA_KERNEL(constant_of_shape);
SL_LA_KERNEL(range);
SL_LA_KERNEL(pad);
SL_LA_KERNEL(gather);
SL_LA_KERNEL(gather_elements);
SL_LA_KERNEL(scatter_elements);
SL_LA_KERNEL(onehot);
SL_LA_KERNEL(nonzero);
SL_LA_KERNEL(trilu);

#endif
