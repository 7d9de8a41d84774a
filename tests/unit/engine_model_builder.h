/* An in-memory ONNX model builder for the engine's unit tests (test_engine_model.c, _exec.c,
 * _fuse.c, _plan.c, _shape.c): value infos, nodes, attributes and float and int64 initializers
 * built with protobuf-c, gathered in a spec_t, packed and loaded (or expected to fail). Every
 * allocation is tracked and freed by builder_reset, so a test calls that once it no longer needs
 * the protobuf objects (a loaded sl_model_t does not point into them). Header-only, static inline:
 * each test is its own binary. */
#ifndef SL_TEST_ENGINE_MODEL_BUILDER_H
#define SL_TEST_ENGINE_MODEL_BUILDER_H

#include "engine/engine.h"
#include "onnx-ml.pb-c.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

/* What builder_reset frees. */
static void *tracked[4096];
static size_t n_tracked;

/* Records p (fails the test on NULL) and returns it. */
static inline void *track(void *p) {
    assert_non_null(p);
    assert_true(n_tracked < sizeof tracked / sizeof tracked[0]);
    tracked[n_tracked++] = p;
    return p;
}

static inline void builder_reset(void) {
    while (n_tracked)
        free(tracked[--n_tracked]);
}

static inline char *str(const char *s) {
    return track(strdup(s));
}

/* ndim -1: no shape; dims[i] -1: a symbolic dim named "N". */
static inline Onnx__ValueInfoProto *vinfo(const char *name, int dtype, int ndim,
                                          const int64_t *dims) {
    Onnx__ValueInfoProto *v = track(malloc(sizeof *v));
    *v = (Onnx__ValueInfoProto)ONNX__VALUE_INFO_PROTO__INIT;
    v->name = str(name);
    Onnx__TypeProto *t = track(malloc(sizeof *t));
    *t = (Onnx__TypeProto)ONNX__TYPE_PROTO__INIT;
    Onnx__TypeProto__Tensor *tt = track(malloc(sizeof *tt));
    *tt = (Onnx__TypeProto__Tensor)ONNX__TYPE_PROTO__TENSOR__INIT;
    tt->has_elem_type = 1;
    tt->elem_type = dtype;
    if (ndim >= 0) {
        Onnx__TensorShapeProto *sh = track(malloc(sizeof *sh));
        *sh = (Onnx__TensorShapeProto)ONNX__TENSOR_SHAPE_PROTO__INIT;
        sh->n_dim = (size_t)ndim;
        sh->dim = track(calloc((size_t)ndim + 1, sizeof *sh->dim));
        for (int i = 0; i < ndim; i++) {
            Onnx__TensorShapeProto__Dimension *d = track(malloc(sizeof *d));
            *d = (Onnx__TensorShapeProto__Dimension)ONNX__TENSOR_SHAPE_PROTO__DIMENSION__INIT;
            if (dims[i] < 0) {
                d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
                d->dim_param = str("N");
            } else {
                d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
                d->dim_value = dims[i];
            }
            sh->dim[i] = d;
        }
        tt->shape = sh;
    }
    t->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    t->tensor_type = tt;
    v->type = t;
    return v;
}

/* Splits "a,b,,c" into a tracked array ("" kept: an omitted optional input). */
static inline char **names(const char *csv, size_t *n) {
    *n = 0;
    if (!csv) return NULL;
    char **out = track(calloc(strlen(csv) + 2, sizeof *out));
    const char *p = csv;
    for (;;) {
        const char *c = strchr(p, ',');
        size_t len = c ? (size_t)(c - p) : strlen(p);
        char *s = track(malloc(len + 1));
        memcpy(s, p, len);
        s[len] = '\0';
        out[(*n)++] = s;
        if (!c) break;
        p = c + 1;
    }
    return out;
}

/* A node; ins and outs are comma-separated names (NULL: none). */
static inline Onnx__NodeProto *node(const char *op, const char *name, const char *ins,
                                    const char *outs) {
    Onnx__NodeProto *n = track(malloc(sizeof *n));
    *n = (Onnx__NodeProto)ONNX__NODE_PROTO__INIT;
    n->op_type = str(op);
    n->name = str(name);
    n->input = names(ins, &n->n_input);
    n->output = names(outs, &n->n_output);
    return n;
}

/* Appends an attribute of that type to n; the caller fills in its value. */
static inline Onnx__AttributeProto *attr_new(Onnx__NodeProto *n, const char *name, int type) {
    Onnx__AttributeProto *a = track(malloc(sizeof *a));
    *a = (Onnx__AttributeProto)ONNX__ATTRIBUTE_PROTO__INIT;
    a->name = str(name);
    a->has_type = 1;
    a->type = (Onnx__AttributeProto__AttributeType)type;
    Onnx__AttributeProto **arr = track(calloc(n->n_attribute + 1, sizeof *arr));
    if (n->n_attribute) memcpy(arr, n->attribute, n->n_attribute * sizeof *arr);
    arr[n->n_attribute++] = a;
    n->attribute = arr;
    return a;
}

/* An initializer of that data type and shape; the caller fills in its data. */
static inline Onnx__TensorProto *tensor_new(const char *name, int data_type, int ndim,
                                            const int64_t *dims) {
    Onnx__TensorProto *t = track(malloc(sizeof *t));
    *t = (Onnx__TensorProto)ONNX__TENSOR_PROTO__INIT;
    t->name = str(name);
    t->has_data_type = 1;
    t->data_type = data_type;
    t->n_dims = (size_t)ndim;
    t->dims = track(malloc(((size_t)ndim + 1) * sizeof *t->dims));
    if (ndim) memcpy(t->dims, dims, (size_t)ndim * sizeof *dims);
    return t;
}

/* A float initializer (data copied). */
static inline Onnx__TensorProto *tensor_f(const char *name, int ndim, const int64_t *dims,
                                          const float *data, size_t count) {
    Onnx__TensorProto *t = tensor_new(name, SL_DT_FLOAT, ndim, dims);
    t->n_float_data = count;
    t->float_data = track(malloc((count + 1) * sizeof(float)));
    if (count) memcpy(t->float_data, data, count * sizeof(float));
    return t;
}

/* An int64 initializer (data copied). */
static inline Onnx__TensorProto *tensor_i64(const char *name, int ndim, const int64_t *dims,
                                            const int64_t *data, size_t count) {
    Onnx__TensorProto *t = tensor_new(name, SL_DT_INT64, ndim, dims);
    t->n_int64_data = count;
    t->int64_data = track(malloc((count + 1) * sizeof(int64_t)));
    if (count) memcpy(t->int64_data, data, count * sizeof(int64_t));
    return t;
}

/* A graph: opset 0 means 13, ir_version 0 means 8. */
typedef struct spec {
    Onnx__ValueInfoProto *inputs[8];
    size_t n_inputs;
    Onnx__ValueInfoProto *outputs[8];
    size_t n_outputs;
    Onnx__NodeProto *nodes[16];
    size_t n_nodes;
    Onnx__TensorProto *inits[8];
    size_t n_inits;
    int64_t opset;
    const char *extra_domain; /* imported with version 1 when set */
    int64_t ir_version;
} spec_t;

/* The serialized ModelProto (tracked: freed by builder_reset); *len gets its size. */
static inline uint8_t *spec_pack(const spec_t *s, size_t *len) {
    Onnx__GraphProto g = ONNX__GRAPH_PROTO__INIT;
    g.name = "g";
    g.node = (Onnx__NodeProto **)s->nodes;
    g.n_node = s->n_nodes;
    g.input = (Onnx__ValueInfoProto **)s->inputs;
    g.n_input = s->n_inputs;
    g.output = (Onnx__ValueInfoProto **)s->outputs;
    g.n_output = s->n_outputs;
    g.initializer = (Onnx__TensorProto **)s->inits;
    g.n_initializer = s->n_inits;
    Onnx__OperatorSetIdProto os[2] = {ONNX__OPERATOR_SET_ID_PROTO__INIT,
                                      ONNX__OPERATOR_SET_ID_PROTO__INIT};
    Onnx__OperatorSetIdProto *osp[2] = {&os[0], &os[1]};
    os[0].domain = "";
    os[0].has_version = 1;
    os[0].version = s->opset ? s->opset : 13;
    os[1].domain = (char *)s->extra_domain;
    os[1].has_version = 1;
    os[1].version = 1;
    Onnx__ModelProto m = ONNX__MODEL_PROTO__INIT;
    m.has_ir_version = 1;
    m.ir_version = s->ir_version ? s->ir_version : 8;
    m.producer_name = "unit-test";
    m.producer_version = "1.0";
    m.graph = &g;
    m.opset_import = osp;
    m.n_opset_import = s->extra_domain ? 2 : 1;
    *len = onnx__model_proto__get_packed_size(&m);
    uint8_t *buf = track(malloc(*len + 1));
    assert_int_equal(onnx__model_proto__pack(&m, buf), *len);
    return buf;
}

/* Packs s and loads it with sl_model_load_memory (opts may be NULL); *m is the caller's. */
static inline sl_eng_status_t spec_load(const spec_t *s, const sl_model_opts_t *opts,
                                        sl_model_t **m, sl_eng_error_t *err) {
    size_t len;
    uint8_t *buf = spec_pack(s, &len);
    memset(err, 0, sizeof *err);
    return sl_model_load_memory(buf, len, opts, m, err);
}

/* Loads s, failing the test with the engine's message on an error, then frees the builder's
 * memory (the model does not borrow it). */
static inline sl_model_t *spec_load_ok(const spec_t *s, const sl_model_opts_t *opts) {
    sl_model_t *model = NULL;
    sl_eng_error_t err;
    if (spec_load(s, opts, &model, &err) != SL_ENG_OK) {
        print_error("load: %s\n", err.msg);
        fail();
    }
    builder_reset();
    return model;
}

/* Loads s, expecting it to fail with code and a message containing needle (the test fails
 * otherwise, printing what came instead), then frees the builder's memory. */
static inline void spec_load_fail(const spec_t *s, sl_eng_status_t code, const char *needle) {
    sl_model_t *m = (sl_model_t *)1;
    sl_eng_error_t err;
    sl_eng_status_t st = spec_load(s, NULL, &m, &err);
    if (st != code || !strstr(err.msg, needle)) {
        print_error("want %d with '%s', got %d '%s'\n", code, needle, st, err.msg);
        fail();
    }
    assert_null(m);
    builder_reset();
}

#endif
