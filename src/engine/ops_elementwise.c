/* CPU kernels: elementwise operators (see op.h for the kernel interface). The kernels live in
 * ew_unary.c (one input), ew_binary.c (broadcasting), ew_cast.c (copies and conversions), with
 * the broadcast plan in ew_bcast.c; this file is their table. Every entry needs no load-time
 * preparation: attributes are read when the node runs (a few string compares per call). */
#include "engine/ew.h"

#define EW_ENTRY(op, since_, name)                                                                 \
    {.op_type = #op,                                                                               \
     .domain = "",                                                                                 \
     .since = since_,                                                                              \
     .infer = sl_ew__infer_##name,                                                                 \
     .run = sl_ew__run_##name},

const sl_op_t sl_ops_elementwise[] = {
    EW_UNARY_OPS(EW_ENTRY) EW_BINARY_OPS(EW_ENTRY) EW_COPY_OPS(EW_ENTRY){.op_type = NULL},
};
