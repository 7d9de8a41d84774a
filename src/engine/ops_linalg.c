/* CPU kernels: linalg operators (see op.h for the kernel interface). */
#include "engine/op.h"

const sl_op_t sl_ops_linalg[] = {
    {.op_type = NULL},
};
