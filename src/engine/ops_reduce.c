/* CPU kernels: reduce operators (see op.h for the kernel interface). */
#include "engine/op.h"

const sl_op_t sl_ops_reduce[] = {
    {.op_type = NULL},
};
