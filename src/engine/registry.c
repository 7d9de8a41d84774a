/* The operator registry: every kernel table, searched by domain, op type and opset version. */
#include "engine/op.h"

#include <string.h>

static const sl_op_t *const tables[] = {
    sl_ops_elementwise, sl_ops_linalg, sl_ops_shape, sl_ops_reduce, sl_ops_nn,
};

const sl_op_t *sl_op_find(const char *domain, const char *op_type, int64_t opset) {
    if (strcmp(domain, "ai.onnx") == 0) domain = "";
    const sl_op_t *best = NULL;
    for (size_t t = 0; t < sizeof tables / sizeof tables[0]; t++) {
        for (const sl_op_t *op = tables[t]; op->op_type; op++) {
            if (strcmp(op->op_type, op_type) != 0 || strcmp(op->domain, domain) != 0) continue;
            if (op->since <= opset && (!best || op->since > best->since)) best = op;
        }
    }
    return best;
}
