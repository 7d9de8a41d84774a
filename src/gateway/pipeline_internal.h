/* The pipeline's representation, shared by its config parser (pipeline.c) and its request and
 * response codec (pipeline_codec.c). Nothing outside those two files includes this. */
#ifndef SL_GATEWAY_PIPELINE_INTERNAL_H
#define SL_GATEWAY_PIPELINE_INTERNAL_H

#include "gateway/pipeline.h"

/* A request field: one element of an input tensor's row, an array of `length` elements of one,
 * or an extra field that is accepted and never sent to the model. */
typedef struct sl_pipeline__field {
    char *name;
    int32_t tensor;  /* index into the model step's inputs; -1: an extra field */
    uint32_t offset; /* its first element within the tensor's row */
    uint32_t length; /* 0: one scalar element; else an array of exactly length elements */
} sl_pipeline__field_t;

/* One input tensor of the model: n elements per row, dims [rows, n]. */
typedef struct sl_pipeline__tensor {
    char *name;
    sluice_dtype_t dtype;
    uint32_t n;
} sl_pipeline__tensor_t;

/* One response field: the row of output tensor `tensor` (an index into out_tensors), or its
 * element `index` when index >= 0. */
typedef struct sl_pipeline__output {
    char *field;
    uint32_t tensor;
    int64_t index;
} sl_pipeline__output_t;

typedef struct sl_pipeline__model_step {
    char *model;
    char *version; /* NULL: the traffic policy's or the newest version */
    sl_pipeline__tensor_t *inputs;
    size_t n_inputs;
    char **out_tensors; /* the distinct tensors outputs name, in first-use order */
    size_t n_out_tensors;
    sl_pipeline__output_t *outputs;
    size_t n_outputs;
} sl_pipeline__model_step_t;

typedef struct sl_pipeline__step {
    sl_pipeline_step_kind_t kind;
    sl_pipeline__model_step_t model; /* kind SL_PIPELINE_STEP_MODEL */
} sl_pipeline__step_t;

struct sl_pipeline {
    char *name;
    uint32_t line;
    sl_pipeline__step_t *steps; /* n_steps >= 1; this issue: exactly one model step */
    size_t n_steps;
    /* Request fields in declaration order: the inputs' fields, then extra_fields. by_name holds
     * their indices sorted by name, for lookups by binary search. */
    sl_pipeline__field_t *fields;
    size_t n_fields;
    uint32_t *by_name;
};

/* The index of the field called key[0..n) (not NUL-terminated), or -1. */
int32_t sl_pipeline__find_field(const sl_pipeline_t *p, const char *key, size_t n);

/* The model step the codec works with (the first and only step in this issue). */
static inline const sl_pipeline__model_step_t *sl_pipeline__model(const sl_pipeline_t *p) {
    return &p->steps[0].model;
}

#endif
