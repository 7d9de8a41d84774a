/* Internal to the engine: the arity of every ONNX operator version, generated at build time
 * from python3-onnx's schemas (scripts/gen_onnx_schemas.py), and the loader's check of a node
 * against it. */
#ifndef SL_ENGINE_SCHEMA_H
#define SL_ENGINE_SCHEMA_H

#include "engine/op.h"

typedef struct sl_schema {
    const char *domain; /* "" or "ai.onnx.ml" */
    const char *op_type;
    int since;
    int min_inputs, max_inputs;
    int min_outputs, max_outputs;
    unsigned required; /* bit i: formal input i may not be omitted (first 32) */
    int n_formal;      /* formal inputs; the last one may repeat when variadic */
    int last_variadic; /* the last formal input is variadic: every repeat is required */
} sl_schema_t;

/* The generated table, sorted by domain, op_type, since; ends with an op_type of NULL. */
extern const sl_schema_t sl_schemas[];

/* The schema version in force for (domain, op_type) at opset, or NULL when ONNX has none. */
const sl_schema_t *sl_schema_find(const char *domain, const char *op_type, int64_t opset);

/* Checks n's input and output counts and that no required input is omitted (inputs[i] < 0),
 * with an error naming the node and the input. SL_ENG_OK when no schema is known. */
sl_eng_status_t sl_schema_check(const sl_node_t *n, sl_eng_error_t *err);

#endif
