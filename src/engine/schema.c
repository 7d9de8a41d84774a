/* Node arity checks against the ONNX operator schemas (see schema.h). */
#include "engine/schema.h"

#include <string.h>

const sl_schema_t *sl_schema_find(const char *domain, const char *op_type, int64_t opset) {
    if (strcmp(domain, "ai.onnx") == 0) domain = "";
    const sl_schema_t *best = NULL;
    for (const sl_schema_t *s = sl_schemas; s->op_type; s++) {
        if (strcmp(s->op_type, op_type) != 0 || strcmp(s->domain, domain) != 0) continue;
        if (s->since <= opset && (!best || s->since > best->since)) best = s;
    }
    return best;
}

sl_eng_status_t sl_schema_check(const sl_node_t *n, sl_eng_error_t *err) {
    const sl_schema_t *s = sl_schema_find(n->domain, n->op_type, n->opset);
    if (!s) return SL_ENG_OK;
    if (n->n_inputs < s->min_inputs || n->n_inputs > s->max_inputs) {
        return sl_node_error(n, err, SL_ENG_EGRAPH, "has %d inputs; opset %lld allows %d to %d",
                             n->n_inputs, (long long)n->opset, s->min_inputs, s->max_inputs);
    }
    if (n->n_outputs < s->min_outputs || n->n_outputs > s->max_outputs) {
        return sl_node_error(n, err, SL_ENG_EGRAPH, "has %d outputs; opset %lld allows %d to %d",
                             n->n_outputs, (long long)n->opset, s->min_outputs, s->max_outputs);
    }
    for (int i = 0; i < n->n_inputs; i++) {
        bool required = i < s->n_formal ? (i < 32 && ((s->required >> i) & 1)) : s->last_variadic;
        if (required && n->inputs[i] < 0) {
            return sl_node_error(n, err, SL_ENG_EGRAPH,
                                 "input %d is required by the operator but its name is empty", i);
        }
    }
    return SL_ENG_OK;
}
