/* CPU kernels: nn operators (see op.h for the kernel interface). */
#include "engine/op.h"

const sl_op_t sl_ops_nn[] = {
    {.op_type = NULL},
};
