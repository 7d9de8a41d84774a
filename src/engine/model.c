/* Model loading: a serialized ModelProto (protobuf-c, generated at build time from onnx-ml.proto)
 * becomes an sl_model_t: metadata, opsets, initializers and Constant nodes as constant values,
 * declared inputs and outputs, and nodes with converted attributes and their kernels, ordered by
 * graph.c. Also the inspect report, which describes models the engine cannot run. */
#include "engine/model_internal.h"
#include "engine/schema.h"
#include "engine/io.h"

#include <cblas.h>
#include "engine/tensor_proto.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_MAX_FILE   ((size_t)1 << 30)
#define DEFAULT_MAX_NODES  100000
#define DEFAULT_MAX_TENSOR ((size_t)1 << 30)
#define MAX_IR_VERSION     10
#define MAX_AI_ONNX_OPSET  17
#define MAX_NODE_ARITY     65535 /* inputs, outputs or attributes of one node */

/* Loading state. In inspect mode (lenient) an unsupported feature is noted in why_not and
 * loading goes on, so that the model can still be described; in load mode it fails. */
typedef struct build {
    sl_model_t *m;
    sl_name_map_t *map;
    bool lenient;
    bool runnable;
    char why_not[512];
    sl_eng_error_t e; /* the error being built; copied to the caller's at the end */
} build_t;

/* Turns an EUNSUPPORTED outcome into a note in inspect mode. */
static sl_eng_status_t note(build_t *b, sl_eng_status_t st) {
    if (st != SL_ENG_EUNSUPPORTED || !b->lenient) return st;
    if (b->runnable) snprintf(b->why_not, sizeof b->why_not, "%s", b->e.msg);
    b->runnable = false;
    return SL_ENG_OK;
}

static sl_eng_status_t oom(build_t *b) {
    return sl_eng_set_error(&b->e, SL_ENG_ENOMEM, "out of memory loading the model");
}

static sl_eng_status_t own(sl_model_t *m, void *p) {
    if (m->n_owned == m->cap_owned) {
        size_t ncap = m->cap_owned ? m->cap_owned * 2 : 16;
        void **n = realloc(m->owned, ncap * sizeof *n);
        if (!n) {
            free(p);
            return SL_ENG_ENOMEM;
        }
        m->owned = n;
        m->cap_owned = ncap;
    }
    m->owned[m->n_owned++] = p;
    return SL_ENG_OK;
}

static const char *norm_domain(const char *d) {
    if (!d || strcmp(d, "ai.onnx") == 0) return "";
    return d;
}

/* Element types the engine holds in tensors (FP16, strings and the rest are refused). */
static bool dtype_ok(int32_t dt) {
    switch (dt) {
    case SL_DT_FLOAT:
    case SL_DT_UINT8:
    case SL_DT_INT8:
    case SL_DT_UINT16:
    case SL_DT_INT16:
    case SL_DT_INT32:
    case SL_DT_INT64:
    case SL_DT_BOOL:
    case SL_DT_DOUBLE:
    case SL_DT_UINT32:
    case SL_DT_UINT64:
        return true;
    default:
        return false;
    }
}

static const char *dtype_label(int32_t dt, char *buf, size_t n) {
    const char *s = sl_dtype_name((sl_dtype_t)dt);
    if (strcmp(s, "unknown") == 0) {
        snprintf(buf, n, "type %d", (int)dt);
        return buf;
    }
    return s;
}

/* ---- value ids ---- */

static sl_eng_status_t value_id(build_t *b, const char *name, int *id) {
    sl_model_t *m = b->m;
    int found = sl_name_map_get(b->map, name);
    if (found >= 0) {
        *id = found;
        return SL_ENG_OK;
    }
    /* n_values never exceeds the bound the array was sized with (see build_graph). */
    sl_value_t *v = &m->values[m->n_values];
    memset(v, 0, sizeof *v);
    v->name = sl_arena_strdup(&m->pool, name);
    if (!v->name) return oom(b);
    v->producer = -1;
    v->input_idx = -1;
    v->last_use = -1;
    if (sl_name_map_put(b->map, v->name, (int)m->n_values) != SL_ENG_OK) return oom(b);
    *id = (int)m->n_values++;
    return SL_ENG_OK;
}

/* ---- value infos (graph inputs and outputs) ---- */

static sl_eng_status_t convert_value_info(build_t *b, const Onnx__ValueInfoProto *vi,
                                          const char *what, sl_value_info_t *out) {
    memset(out, 0, sizeof *out);
    out->name = sl_arena_strdup(&b->m->pool, vi->name);
    if (!out->name) return oom(b);
    out->ndim = -1;
    const Onnx__TypeProto *tp = vi->type;
    if (!tp) return SL_ENG_OK; /* type unknown: anything goes */
    if (tp->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE || !tp->tensor_type) {
        const char *k = tp->value_case == ONNX__TYPE_PROTO__VALUE_SEQUENCE_TYPE   ? "a sequence"
                        : tp->value_case == ONNX__TYPE_PROTO__VALUE_MAP_TYPE      ? "a map"
                        : tp->value_case == ONNX__TYPE_PROTO__VALUE_OPTIONAL_TYPE ? "an optional"
                        : tp->value_case == ONNX__TYPE_PROTO__VALUE_SPARSE_TENSOR_TYPE
                            ? "a sparse tensor"
                            : "not a tensor";
        return note(b, sl_eng_set_error(&b->e, SL_ENG_EUNSUPPORTED,
                                        "%s '%.100s' is %s; the engine supports only dense "
                                        "tensors",
                                        what, out->name, k));
    }
    const Onnx__TypeProto__Tensor *tt = tp->tensor_type;
    int32_t dt = tt->has_elem_type ? tt->elem_type : 0;
    out->dtype = (sl_dtype_t)dt;
    if (dt != SL_DT_UNDEFINED && !dtype_ok(dt)) {
        char buf[32];
        out->dtype = dt >= 0 && dt <= SL_DT_UINT64 ? (sl_dtype_t)dt : SL_DT_UNDEFINED;
        sl_eng_status_t st =
            note(b, sl_eng_set_error(&b->e, SL_ENG_EUNSUPPORTED,
                                     "%s '%.100s' has element type %s, which "
                                     "the engine does not support",
                                     what, out->name, dtype_label(dt, buf, sizeof buf)));
        if (st != SL_ENG_OK) return st;
    }
    if (!tt->shape) return SL_ENG_OK;
    if (tt->shape->n_dim > SL_MAX_DIMS) {
        return note(b, sl_eng_set_error(&b->e, SL_ENG_EUNSUPPORTED,
                                        "%s '%.100s' has %zu dims; the engine supports at most %d",
                                        what, out->name, tt->shape->n_dim, SL_MAX_DIMS));
    }
    out->ndim = (int)tt->shape->n_dim;
    for (int i = 0; i < out->ndim; i++) {
        const Onnx__TensorShapeProto__Dimension *d = tt->shape->dim[i];
        out->dims[i] = -1;
        if (d->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE) {
            if (d->dim_value < 0) {
                return sl_eng_set_error(&b->e, SL_ENG_EGRAPH,
                                        "%s '%.100s': dim %d is %lld; dims must be >= 0", what,
                                        out->name, i, (long long)d->dim_value);
            }
            out->dims[i] = d->dim_value;
        } else if (d->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM &&
                   d->dim_param && d->dim_param[0]) {
            out->dim_name[i] = sl_arena_strdup(&b->m->pool, d->dim_param);
            if (!out->dim_name[i]) return oom(b);
        }
    }
    return SL_ENG_OK;
}

/* ---- attributes ---- */

static const char *attr_type_name(int t) {
    static const char *const names[] = {
        "UNDEFINED",      "FLOAT",      "INT",        "STRING",  "TENSOR", "GRAPH",
        "FLOATS",         "INTS",       "STRINGS",    "TENSORS", "GRAPHS", "SPARSE_TENSOR",
        "SPARSE_TENSORS", "TYPE_PROTO", "TYPE_PROTOS"};
    static const int ids[] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14};
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
        if (ids[i] == t) return names[i];
    }
    return "unknown";
}

/* Older exporters leave AttributeProto.type unset: infer it from the field that is present. */
static int attr_type_of(const Onnx__AttributeProto *a) {
    if (a->has_type && a->type != ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__UNDEFINED)
        return (int)a->type;
    if (a->has_f) return SL_ATTR_FLOAT;
    if (a->has_i) return SL_ATTR_INT;
    if (a->has_s) return SL_ATTR_STRING;
    if (a->t) return SL_ATTR_TENSOR;
    if (a->g) return SL_ATTR_GRAPH;
    if (a->n_floats) return SL_ATTR_FLOATS;
    if (a->n_ints) return SL_ATTR_INTS;
    if (a->n_strings) return SL_ATTR_STRINGS;
    return SL_ATTR_UNDEFINED;
}

static char *pool_bytes(sl_arena_t *pool, const ProtobufCBinaryData *d) {
    char *p = sl_arena_alloc(pool, d->len + 1);
    if (!p) return NULL;
    if (d->len) memcpy(p, d->data, d->len);
    p[d->len] = '\0';
    return p;
}

static sl_eng_status_t convert_attr(build_t *b, const sl_node_t *n, const Onnx__AttributeProto *a,
                                    sl_attr_t *out) {
    sl_model_t *m = b->m;
    memset(out, 0, sizeof *out);
    if (!a->name || !a->name[0])
        return sl_node_error(n, &b->e, SL_ENG_EGRAPH, "an attribute has no name");
    out->name = sl_arena_strdup(&m->pool, a->name);
    if (!out->name) return oom(b);
    int t = attr_type_of(a);
    out->type = (sl_attr_type_t)t;
    switch (t) {
    case SL_ATTR_FLOAT:
        out->f = a->f;
        return SL_ENG_OK;
    case SL_ATTR_INT:
        out->i = a->i;
        return SL_ENG_OK;
    case SL_ATTR_STRING:
        out->s = pool_bytes(&m->pool, &a->s);
        out->s_len = a->s.len;
        return out->s ? SL_ENG_OK : oom(b);
    case SL_ATTR_TENSOR: {
        if (!a->t) {
            return sl_node_error(n, &b->e, SL_ENG_EGRAPH,
                                 "attribute '%.64s' is a TENSOR but holds no tensor", out->name);
        }
        sl_tensor_t *tv = sl_arena_alloc(&m->pool, sizeof *tv);
        if (!tv) return oom(b);
        sl_eng_error_t te = {0};
        sl_eng_status_t st = sl_tensor_from_proto(a->t, m->opts.max_tensor_bytes, tv, &te);
        if (st != SL_ENG_OK) {
            sl_node_error(n, &b->e, st, "attribute '%.64s': %s", out->name, te.msg);
            return st;
        }
        if (own(m, tv->data) != SL_ENG_OK) return oom(b);
        out->t = tv;
        return SL_ENG_OK;
    }
    case SL_ATTR_FLOATS: {
        float *f = sl_arena_alloc(&m->pool, a->n_floats * sizeof *f);
        if (!f) return oom(b);
        if (a->n_floats) memcpy(f, a->floats, a->n_floats * sizeof *f);
        out->floats = f;
        out->n = a->n_floats;
        return SL_ENG_OK;
    }
    case SL_ATTR_INTS: {
        int64_t *v = sl_arena_alloc(&m->pool, a->n_ints * sizeof *v);
        if (!v) return oom(b);
        if (a->n_ints) memcpy(v, a->ints, a->n_ints * sizeof *v);
        out->ints = v;
        out->n = a->n_ints;
        return SL_ENG_OK;
    }
    case SL_ATTR_STRINGS: {
        const char **v = sl_arena_alloc(&m->pool, a->n_strings * sizeof *v);
        if (!v) return oom(b);
        for (size_t i = 0; i < a->n_strings; i++) {
            v[i] = pool_bytes(&m->pool, &a->strings[i]);
            if (!v[i]) return oom(b);
        }
        out->strings = v;
        out->n = a->n_strings;
        return SL_ENG_OK;
    }
    case SL_ATTR_GRAPH:
    case 10: /* GRAPHS */
        return sl_node_error(n, &b->e, SL_ENG_EUNSUPPORTED,
                             "attribute '%.64s' is a subgraph; control flow (If, Loop, Scan) is "
                             "not supported",
                             out->name);
    case SL_ATTR_UNDEFINED:
        return sl_node_error(n, &b->e, SL_ENG_EGRAPH, "attribute '%.64s' has no type and no value",
                             out->name);
    default:
        return sl_node_error(n, &b->e, SL_ENG_EUNSUPPORTED,
                             "attribute '%.64s' has type %s, which the engine does not support",
                             out->name, attr_type_name(t));
    }
}

/* ---- nodes ---- */

static int64_t opset_for(const sl_model_t *m, const char *domain) {
    for (size_t i = 0; i < m->n_opsets; i++) {
        if (strcmp(m->opsets[i].domain, domain) == 0) return m->opsets[i].version;
    }
    return -1;
}

/* A Constant node's value as a constant tensor (owned by the model). */
static sl_eng_status_t fold_constant(build_t *b, const sl_node_t *n, sl_tensor_t *out) {
    sl_model_t *m = b->m;
    memset(out, 0, sizeof *out);
    if (n->n_attrs != 1) {
        return sl_node_error(n, &b->e, SL_ENG_EGRAPH,
                             "has %d attributes; a Constant needs exactly one value attribute",
                             n->n_attrs);
    }
    const sl_attr_t *a = &n->attrs[0];
    const void *src = NULL;
    size_t count = 1, esize = 0;
    if (strcmp(a->name, "value") == 0 && a->type == SL_ATTR_TENSOR) {
        *out = *a->t; /* the attribute's data is already owned by the model */
        return SL_ENG_OK;
    } else if (strcmp(a->name, "value_float") == 0 && a->type == SL_ATTR_FLOAT) {
        out->dtype = SL_DT_FLOAT;
        src = &a->f;
        esize = sizeof(float);
    } else if (strcmp(a->name, "value_int") == 0 && a->type == SL_ATTR_INT) {
        out->dtype = SL_DT_INT64;
        src = &a->i;
        esize = sizeof(int64_t);
    } else if (strcmp(a->name, "value_floats") == 0 && a->type == SL_ATTR_FLOATS) {
        out->dtype = SL_DT_FLOAT;
        out->ndim = 1;
        out->dims[0] = (int64_t)a->n;
        src = a->floats;
        count = a->n;
        esize = sizeof(float);
    } else if (strcmp(a->name, "value_ints") == 0 && a->type == SL_ATTR_INTS) {
        out->dtype = SL_DT_INT64;
        out->ndim = 1;
        out->dims[0] = (int64_t)a->n;
        src = a->ints;
        count = a->n;
        esize = sizeof(int64_t);
    } else if (strncmp(a->name, "value_string", 12) == 0 || strcmp(a->name, "sparse_value") == 0) {
        return sl_node_error(n, &b->e, SL_ENG_EUNSUPPORTED,
                             "attribute '%.64s': string and sparse constants are not supported",
                             a->name);
    } else {
        return sl_node_error(n, &b->e, SL_ENG_EGRAPH,
                             "attribute '%.64s' (%s) is not a Constant value attribute", a->name,
                             attr_type_name(a->type));
    }
    void *data = malloc(count * esize > 0 ? count * esize : 1);
    if (!data || own(m, data) != SL_ENG_OK) return oom(b);
    if (count) memcpy(data, src, count * esize);
    out->data = data;
    return SL_ENG_OK;
}

static sl_eng_status_t convert_node(build_t *b, size_t idx, const Onnx__NodeProto *np) {
    sl_model_t *m = b->m;
    sl_node_t tmp = {.name = np->name ? np->name : "", .op_type = np->op_type ? np->op_type : "?"};
    if (!np->op_type || !np->op_type[0])
        return sl_node_error(&tmp, &b->e, SL_ENG_EGRAPH, "node #%zu has no op_type", idx);
    if (np->n_input > MAX_NODE_ARITY || np->n_output > MAX_NODE_ARITY ||
        np->n_attribute > MAX_NODE_ARITY) {
        return sl_node_error(&tmp, &b->e, SL_ENG_ELIMIT,
                             "has %zu inputs, %zu outputs and %zu attributes (limit %d each)",
                             np->n_input, np->n_output, np->n_attribute, MAX_NODE_ARITY);
    }
    sl_node_t *n = &m->nodes[m->n_nodes];
    memset(n, 0, sizeof *n);
    n->name = sl_arena_strdup(&m->pool, np->name);
    n->op_type = sl_arena_strdup(&m->pool, np->op_type);
    n->domain = sl_arena_strdup(&m->pool, norm_domain(np->domain));
    int *ins = sl_arena_alloc(&m->pool, np->n_input * sizeof *ins);
    int *outs = sl_arena_alloc(&m->pool, np->n_output * sizeof *outs);
    sl_attr_t *attrs = sl_arena_alloc(&m->pool, np->n_attribute * sizeof *attrs);
    if (!n->name || !n->op_type || !n->domain || !ins || !outs || !attrs) return oom(b);
    n->inputs = ins;
    n->outputs = outs;
    n->attrs = attrs;
    n->n_inputs = (int)np->n_input;
    n->n_outputs = (int)np->n_output;
    n->opset = opset_for(m, n->domain);
    if (n->opset < 0) {
        return sl_node_error(n, &b->e, SL_ENG_EGRAPH,
                             "uses domain '%.64s', which the model does not import (no "
                             "opset_import entry)",
                             n->domain);
    }
    for (size_t i = 0; i < np->n_input; i++) {
        ins[i] = -1;
        const char *s = np->input[i];
        if (s && s[0]) {
            sl_eng_status_t st = value_id(b, s, &ins[i]);
            if (st != SL_ENG_OK) return st;
        }
    }
    for (size_t i = 0; i < np->n_output; i++) {
        outs[i] = -1;
        const char *s = np->output[i];
        if (s && s[0]) {
            sl_eng_status_t st = value_id(b, s, &outs[i]);
            if (st != SL_ENG_OK) return st;
        }
    }
    /* Trailing omitted optionals ("x", "") mean the same as leaving them out; trimming them lets
     * the arity check below (sl_schema_check) see what is really there. */
    while (n->n_inputs > 0 && ins[n->n_inputs - 1] < 0)
        n->n_inputs--;
    while (n->n_outputs > 0 && outs[n->n_outputs - 1] < 0)
        n->n_outputs--;
    if (n->n_outputs == 0)
        return sl_node_error(n, &b->e, SL_ENG_EGRAPH, "has no outputs (every op has at least one)");
    bool attrs_ok = true;
    for (size_t i = 0; i < np->n_attribute; i++) {
        sl_attr_t *a = &attrs[n->n_attrs];
        sl_eng_status_t st = convert_attr(b, n, np->attribute[i], a);
        if (st == SL_ENG_EUNSUPPORTED && b->lenient) {
            attrs_ok = false;
            note(b, st);
            continue;
        }
        if (st != SL_ENG_OK) return st;
        for (int j = 0; j < n->n_attrs; j++) {
            if (strcmp(attrs[j].name, a->name) == 0) {
                return sl_node_error(n, &b->e, SL_ENG_EGRAPH, "attribute '%.64s' is given twice",
                                     a->name);
            }
        }
        n->n_attrs++;
    }
    if (strcmp(n->op_type, "Constant") == 0 && n->domain[0] == '\0') {
        /* Folded at load: its output becomes a constant value and the node is dropped. */
        if (n->n_outputs != 1 || outs[0] < 0)
            return sl_node_error(n, &b->e, SL_ENG_EGRAPH, "needs exactly one named output");
        sl_value_t *v = &m->values[outs[0]];
        if (v->kind != SL_VAL_UNSET) {
            return sl_node_error(n, &b->e, SL_ENG_EGRAPH,
                                 "output '%.100s' is already defined (each value must be "
                                 "produced exactly once)",
                                 v->name);
        }
        v->kind = SL_VAL_CONST;
        if (!attrs_ok) return SL_ENG_OK;
        sl_eng_status_t st = fold_constant(b, n, &v->tensor);
        return st == SL_ENG_OK ? st : note(b, st);
    }
    n->op = sl_op_find(n->domain, n->op_type, n->opset);
    if (!n->op || !n->op->infer || !n->op->run) {
        n->op = NULL;
        sl_eng_status_t st = sl_eng_set_error(
            &b->e, SL_ENG_EUNSUPPORTED, "op '%.64s' (domain '%.64s', opset %lld) is not supported",
            n->op_type, n->domain, (long long)n->opset);
        if (note(b, st) != SL_ENG_OK) return st;
    } else {
        /* Kernels trust their required inputs to be there: hold every node to its schema. */
        sl_eng_status_t st = sl_schema_check(n, &b->e);
        if (st != SL_ENG_OK) return st;
    }
    if (n->n_inputs > m->max_node_inputs) m->max_node_inputs = n->n_inputs;
    if (n->n_outputs > m->max_node_outputs) m->max_node_outputs = n->n_outputs;
    m->n_nodes++;
    return SL_ENG_OK;
}

/* ---- the whole model ---- */

static sl_eng_status_t convert_header(build_t *b, const Onnx__ModelProto *mp) {
    sl_model_t *m = b->m;
    if (!mp->has_ir_version || mp->ir_version < 1) {
        return sl_eng_set_error(&b->e, SL_ENG_EPARSE,
                                "not a valid ONNX model (no ir_version; is this an .onnx file?)");
    }
    if (!mp->graph) {
        return sl_eng_set_error(&b->e, SL_ENG_EPARSE, "not a valid ONNX model (it has no graph)");
    }
    m->ir_version = mp->ir_version;
    m->model_version = mp->has_model_version ? mp->model_version : 0;
    m->producer_name = sl_arena_strdup(&m->pool, mp->producer_name);
    m->producer_version = sl_arena_strdup(&m->pool, mp->producer_version);
    m->domain = sl_arena_strdup(&m->pool, mp->domain);
    m->doc_string = sl_arena_strdup(&m->pool, mp->doc_string);
    m->opsets = sl_arena_alloc(&m->pool, mp->n_opset_import * sizeof *m->opsets);
    m->meta_keys = sl_arena_alloc(&m->pool, mp->n_metadata_props * sizeof *m->meta_keys);
    m->meta_values = sl_arena_alloc(&m->pool, mp->n_metadata_props * sizeof *m->meta_values);
    if (!m->producer_name || !m->producer_version || !m->domain || !m->doc_string || !m->opsets ||
        !m->meta_keys || !m->meta_values)
        return oom(b);
    for (size_t i = 0; i < mp->n_metadata_props; i++) {
        m->meta_keys[i] = sl_arena_strdup(&m->pool, mp->metadata_props[i]->key);
        m->meta_values[i] = sl_arena_strdup(&m->pool, mp->metadata_props[i]->value);
        if (!m->meta_keys[i] || !m->meta_values[i]) return oom(b);
    }
    m->n_meta = mp->n_metadata_props;
    for (size_t i = 0; i < mp->n_opset_import; i++) {
        const Onnx__OperatorSetIdProto *os = mp->opset_import[i];
        const char *d = norm_domain(os->domain);
        if (!os->has_version || os->version < 1) {
            return sl_eng_set_error(&b->e, SL_ENG_EGRAPH,
                                    "opset_import for domain '%.64s' has no valid version", d);
        }
        if (opset_for(m, d) >= 0) {
            return sl_eng_set_error(&b->e, SL_ENG_EGRAPH, "domain '%.64s' is imported twice", d);
        }
        m->opsets[m->n_opsets].domain = sl_arena_strdup(&m->pool, d);
        if (!m->opsets[m->n_opsets].domain) return oom(b);
        m->opsets[m->n_opsets++].version = os->version;
        if (d[0] == '\0' && os->version > MAX_AI_ONNX_OPSET) {
            sl_eng_status_t st = note(
                b, sl_eng_set_error(&b->e, SL_ENG_EUNSUPPORTED,
                                    "the model imports ai.onnx opset %lld; the engine supports "
                                    "opsets up to %d (re-export with opset_version=%d)",
                                    (long long)os->version, MAX_AI_ONNX_OPSET, MAX_AI_ONNX_OPSET));
            if (st != SL_ENG_OK) return st;
        }
    }
    if (m->ir_version > MAX_IR_VERSION) {
        return note(b, sl_eng_set_error(&b->e, SL_ENG_EUNSUPPORTED,
                                        "the model has IR version %lld; the engine reads IR "
                                        "versions up to %d",
                                        (long long)m->ir_version, MAX_IR_VERSION));
    }
    return SL_ENG_OK;
}

static sl_eng_status_t convert_initializers(build_t *b, const Onnx__GraphProto *g) {
    sl_model_t *m = b->m;
    if (g->n_sparse_initializer) {
        sl_eng_status_t st = note(b, sl_eng_set_error(&b->e, SL_ENG_EUNSUPPORTED,
                                                      "the model has %zu sparse initializers, "
                                                      "which the engine does not support",
                                                      g->n_sparse_initializer));
        if (st != SL_ENG_OK) return st;
    }
    for (size_t i = 0; i < g->n_initializer; i++) {
        const Onnx__TensorProto *tp = g->initializer[i];
        if (!tp->name || !tp->name[0]) {
            return sl_eng_set_error(&b->e, SL_ENG_EGRAPH, "initializer #%zu has no name", i);
        }
        if (sl_name_map_get(b->map, tp->name) >= 0) {
            return sl_eng_set_error(&b->e, SL_ENG_EGRAPH, "initializer '%.100s' is defined twice",
                                    tp->name);
        }
        int id;
        sl_eng_status_t st = value_id(b, tp->name, &id);
        if (st != SL_ENG_OK) return st;
        sl_value_t *v = &m->values[id];
        v->kind = SL_VAL_CONST;
        st = sl_tensor_from_proto(tp, m->opts.max_tensor_bytes, &v->tensor, &b->e);
        if (st != SL_ENG_OK) {
            memset(&v->tensor, 0, sizeof v->tensor);
            st = note(b, st);
            if (st != SL_ENG_OK) return st;
            continue;
        }
        if (own(m, v->tensor.data) != SL_ENG_OK) return oom(b);
        m->n_params += sl_tensor_numel(&v->tensor);
    }
    m->n_initializers = g->n_initializer;
    return SL_ENG_OK;
}

static sl_eng_status_t convert_io(build_t *b, const Onnx__GraphProto *g) {
    sl_model_t *m = b->m;
    m->inputs = sl_arena_alloc(&m->pool, g->n_input * sizeof *m->inputs);
    m->input_ids = sl_arena_alloc(&m->pool, g->n_input * sizeof *m->input_ids);
    m->outputs = sl_arena_alloc(&m->pool, g->n_output * sizeof *m->outputs);
    m->output_ids = sl_arena_alloc(&m->pool, g->n_output * sizeof *m->output_ids);
    if (!m->inputs || !m->input_ids || !m->outputs || !m->output_ids) return oom(b);
    for (size_t i = 0; i < g->n_input; i++) {
        const Onnx__ValueInfoProto *vi = g->input[i];
        if (!vi->name || !vi->name[0])
            return sl_eng_set_error(&b->e, SL_ENG_EGRAPH, "graph input #%zu has no name", i);
        int id = sl_name_map_get(b->map, vi->name);
        if (id >= 0 && m->values[id].kind == SL_VAL_CONST) continue; /* an overridable default */
        if (id >= 0) {
            return sl_eng_set_error(&b->e, SL_ENG_EGRAPH, "graph input '%.100s' is listed twice",
                                    vi->name);
        }
        sl_eng_status_t st = value_id(b, vi->name, &id);
        if (st == SL_ENG_OK) st = convert_value_info(b, vi, "input", &m->inputs[m->n_inputs]);
        if (st != SL_ENG_OK) return st;
        m->values[id].kind = SL_VAL_INPUT;
        m->values[id].input_idx = (int)m->n_inputs;
        m->input_ids[m->n_inputs++] = id;
    }
    return SL_ENG_OK;
}

static sl_eng_status_t convert_outputs(build_t *b, const Onnx__GraphProto *g) {
    sl_model_t *m = b->m;
    for (size_t i = 0; i < g->n_output; i++) {
        const Onnx__ValueInfoProto *vi = g->output[i];
        if (!vi->name || !vi->name[0])
            return sl_eng_set_error(&b->e, SL_ENG_EGRAPH, "graph output #%zu has no name", i);
        int id;
        sl_eng_status_t st = value_id(b, vi->name, &id);
        if (st == SL_ENG_OK) st = convert_value_info(b, vi, "output", &m->outputs[i]);
        if (st != SL_ENG_OK) return st;
        m->output_ids[i] = id;
    }
    m->n_outputs = g->n_output;
    return SL_ENG_OK;
}

/* Lets each kernel check its node and precompute, with the values of constant inputs. */
static sl_eng_status_t prepare_nodes(build_t *b) {
    sl_model_t *m = b->m;
    const sl_tensor_t **cin = calloc((size_t)m->max_node_inputs + 1, sizeof *cin);
    if (!cin) return oom(b);
    sl_eng_status_t st = SL_ENG_OK;
    for (size_t i = 0; i < m->n_nodes && st == SL_ENG_OK; i++) {
        sl_node_t *n = &m->nodes[i];
        for (int j = 0; j < n->n_inputs; j++) {
            int id = n->inputs[j];
            cin[j] = id >= 0 && m->values[id].kind == SL_VAL_CONST ? &m->values[id].tensor : NULL;
        }
        if (n->op->prepare) {
            b->e.msg[0] = '\0';
            st = n->op->prepare(n, cin, &b->e);
            if (st != SL_ENG_OK && !b->e.msg[0])
                sl_node_error(n, &b->e, st, "%s", sl_eng_strerror(st));
            b->e.code = st;
        }
        if (st == SL_ENG_OK) m->n_prepared = i + 1;
    }
    free(cin);
    return st;
}

static sl_eng_status_t build_graph(build_t *b, const Onnx__ModelProto *mp) {
    sl_model_t *m = b->m;
    sl_eng_status_t st = convert_header(b, mp);
    if (st != SL_ENG_OK) return st;
    const Onnx__GraphProto *g = mp->graph;
    if (g->n_node > m->opts.max_nodes) {
        return sl_eng_set_error(&b->e, SL_ENG_ELIMIT,
                                "the model has %zu nodes, over the limit of %zu", g->n_node,
                                m->opts.max_nodes);
    }
    /* Every value is named by an initializer, a graph input or output or a node's input or
     * output: their sum bounds the value table, allocated once. */
    size_t bound = g->n_initializer + g->n_input + g->n_output + 1;
    for (size_t i = 0; i < g->n_node; i++) {
        if (g->node[i]->n_input > MAX_NODE_ARITY || g->node[i]->n_output > MAX_NODE_ARITY) {
            return sl_eng_set_error(&b->e, SL_ENG_ELIMIT,
                                    "node #%zu has %zu inputs and %zu outputs (limit %d each)", i,
                                    g->node[i]->n_input, g->node[i]->n_output, MAX_NODE_ARITY);
        }
        bound += g->node[i]->n_input + g->node[i]->n_output;
    }
    if (bound > INT_MAX / 2) return sl_eng_set_error(&b->e, SL_ENG_ELIMIT, "too many values");
    m->values = sl_arena_alloc(&m->pool, bound * sizeof *m->values);
    m->nodes = sl_arena_alloc(&m->pool, (g->n_node + 1) * sizeof *m->nodes);
    b->map = sl_name_map_new(bound);
    if (!m->values || !m->nodes || !b->map) return oom(b);

    if ((st = convert_initializers(b, g)) != SL_ENG_OK) return st;
    if ((st = convert_io(b, g)) != SL_ENG_OK) return st;
    for (size_t i = 0; i < g->n_node; i++) {
        if ((st = convert_node(b, i, g->node[i])) != SL_ENG_OK) return st;
    }
    if ((st = convert_outputs(b, g)) != SL_ENG_OK) return st;
    if ((st = sl_graph_order(m, &b->e)) != SL_ENG_OK) return st;
    if (b->runnable && (st = sl_fold_constants(m, &b->e)) != SL_ENG_OK) return st;
    if (b->runnable && (st = sl_fuse(m, &b->e)) != SL_ENG_OK) return st;
    if (b->runnable && (st = prepare_nodes(b)) != SL_ENG_OK) {
        if (!b->lenient) return st;
        snprintf(b->why_not, sizeof b->why_not, "%s", b->e.msg);
        b->runnable = false;
    }
    if (b->runnable && (st = sl_shapes_infer(m, &b->e)) != SL_ENG_OK) {
        if (!b->lenient || st == SL_ENG_ENOMEM) return st;
        snprintf(b->why_not, sizeof b->why_not, "%s", b->e.msg);
        b->runnable = false;
    }
    return SL_ENG_OK;
}

static void fill_opts(sl_model_opts_t *o, const sl_model_opts_t *in) {
    if (in)
        *o = *in;
    else
        memset(o, 0, sizeof *o);
    if (!o->max_file_bytes) o->max_file_bytes = DEFAULT_MAX_FILE;
    if (!o->max_nodes) o->max_nodes = DEFAULT_MAX_NODES;
    if (!o->max_tensor_bytes) o->max_tensor_bytes = DEFAULT_MAX_TENSOR;
    if (o->intra_op_threads < 1) o->intra_op_threads = 1;
    /* OpenBLAS runs single-threaded: the engine splits GEMMs across a run context's own
     * threads (gemm.c), since OpenBLAS's thread count is process-wide, its threads allocate on
     * every call and spin when idle. Process-wide too: any OpenBLAS user in the process gets
     * one thread from the first model load on. */
    openblas_set_num_threads(1);
}

/* Builds a model from a parsed proto. lenient: describe what cannot run instead of failing. */
static sl_eng_status_t model_from_proto(const Onnx__ModelProto *mp, const sl_model_opts_t *opts,
                                        bool lenient, sl_model_t **out, sl_eng_error_t *err) {
    *out = NULL;
    sl_model_t *m = calloc(1, sizeof *m);
    if (!m) return sl_eng_set_error(err, SL_ENG_ENOMEM, "out of memory loading the model");
    fill_opts(&m->opts, opts);
    sl_arena_init(&m->pool, 64 * 1024);
    build_t b = {.m = m, .lenient = lenient, .runnable = true};
    sl_eng_status_t st = build_graph(&b, mp);
    sl_name_map_free(b.map);
    if (st != SL_ENG_OK) {
        if (err) *err = b.e;
        if (err) err->code = st;
        sl_model_free(m);
        return st;
    }
    m->runnable = b.runnable;
    snprintf(m->why_not, sizeof m->why_not, "%s", b.why_not);
    *out = m;
    return SL_ENG_OK;
}

static sl_eng_status_t parse(const void *data, size_t len, Onnx__ModelProto **mp,
                             sl_eng_error_t *err) {
    *mp = onnx__model_proto__unpack(NULL, len, data);
    if (!*mp) {
        return sl_eng_set_error(err, SL_ENG_EPARSE,
                                "not a valid ONNX model (protobuf parse failed: truncated or "
                                "corrupt file?)");
    }
    return SL_ENG_OK;
}

sl_eng_status_t sl_model_load_memory(const void *data, size_t len, const sl_model_opts_t *opts,
                                     sl_model_t **out, sl_eng_error_t *err) {
    *out = NULL;
    sl_model_opts_t o;
    fill_opts(&o, opts);
    if (len > o.max_file_bytes) {
        return sl_eng_set_error(err, SL_ENG_ELIMIT,
                                "the model is %zu bytes, over the limit of %zu (max_file_bytes)",
                                len, o.max_file_bytes);
    }
    Onnx__ModelProto *mp;
    sl_eng_status_t st = parse(data, len, &mp, err);
    if (st != SL_ENG_OK) return st;
    st = model_from_proto(mp, &o, false, out, err);
    onnx__model_proto__free_unpacked(mp, NULL);
    return st;
}

/* sl_eng__read_file_raw, with the messages a model's user reads (the limit is max_file_bytes). */
static sl_eng_status_t read_file(const char *path, size_t limit, uint8_t **out, size_t *len,
                                 sl_eng_error_t *err) {
    sl_eng__read_info_t in;
    sl_eng_status_t st = sl_eng__read_file_raw(path, limit, out, len, &in);
    switch (in.why) {
    case SL_ENG__READ_OK:
        break;
    case SL_ENG__READ_OPEN:
        return sl_eng_set_error(err, st, "cannot open '%.200s': %s", path, strerror(in.sys_errno));
    case SL_ENG__READ_NOT_FILE:
        return sl_eng_set_error(err, st, "cannot read '%.200s': not a regular file", path);
    case SL_ENG__READ_TOO_BIG:
        return sl_eng_set_error(err, st,
                                "'%.200s' is %lld bytes, over the limit of %zu (max_file_bytes)",
                                path, (long long)in.size, limit);
    case SL_ENG__READ_NOMEM:
        return sl_eng_set_error(err, st, "out of memory reading '%.200s'", path);
    case SL_ENG__READ_SHORT:
        return sl_eng_set_error(err, st, "cannot read '%.200s': short read", path);
    }
    return st;
}

sl_eng_status_t sl_model_load_file(const char *path, const sl_model_opts_t *opts, sl_model_t **out,
                                   sl_eng_error_t *err) {
    *out = NULL;
    sl_model_opts_t o;
    fill_opts(&o, opts);
    uint8_t *buf;
    size_t len;
    sl_eng_status_t st = read_file(path, o.max_file_bytes, &buf, &len, err);
    if (st != SL_ENG_OK) return st;
    st = sl_model_load_memory(buf, len, &o, out, err);
    free(buf);
    return st;
}

void sl_model_free(sl_model_t *m) {
    if (!m) return;
    for (size_t i = 0; i < m->n_prepared; i++) {
        if (m->nodes[i].op && m->nodes[i].op->release) m->nodes[i].op->release(&m->nodes[i]);
    }
    for (size_t i = 0; i < m->n_owned; i++)
        free(m->owned[i]);
    free(m->owned);
    sl_arena_free(&m->pool);
    free(m);
}

/* ---- accessors ---- */

size_t sl_model_num_inputs(const sl_model_t *m) {
    return m->n_inputs;
}

size_t sl_model_num_outputs(const sl_model_t *m) {
    return m->n_outputs;
}

const sl_value_info_t *sl_model_input(const sl_model_t *m, size_t i) {
    return i < m->n_inputs ? &m->inputs[i] : NULL;
}

const sl_value_info_t *sl_model_output(const sl_model_t *m, size_t i) {
    return i < m->n_outputs ? &m->outputs[i] : NULL;
}

int64_t sl_model_opset(const sl_model_t *m, const char *domain) {
    return opset_for(m, norm_domain(domain));
}

const char *sl_model_producer(const sl_model_t *m) {
    return m->producer_name;
}

int64_t sl_model_ir_version(const sl_model_t *m) {
    return m->ir_version;
}

int sl_model_input_index(const sl_model_t *m, const char *name) {
    for (size_t i = 0; i < m->n_inputs; i++) {
        if (strcmp(m->inputs[i].name, name) == 0) return (int)i;
    }
    return -1;
}

int sl_model_output_index(const sl_model_t *m, const char *name) {
    for (size_t i = 0; i < m->n_outputs; i++) {
        if (strcmp(m->outputs[i].name, name) == 0) return (int)i;
    }
    return -1;
}

/* ---- inspect ---- */

typedef struct op_key {
    const char *domain;
    const char *op_type;
    size_t first; /* index of the first node using it: why_not names the first missing op */
} op_key_t;

static int cmp_op_key(const void *a, const void *b) {
    const op_key_t *x = a, *y = b;
    int c = strcmp(x->domain, y->domain);
    return c ? c : strcmp(x->op_type, y->op_type);
}

/* The histogram, from the proto so that it exists for any parseable model. */
static sl_eng_status_t report_ops(const Onnx__ModelProto *mp, sl_model_report_t *r,
                                  size_t *first_missing, sl_eng_error_t *err) {
    const Onnx__GraphProto *g = mp->graph;
    size_t n = g->n_node;
    op_key_t *keys = malloc((n + 1) * sizeof *keys);
    if (!keys) return sl_eng_set_error(err, SL_ENG_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        keys[i].domain = norm_domain(g->node[i]->domain);
        keys[i].op_type = g->node[i]->op_type ? g->node[i]->op_type : "";
        keys[i].first = i;
    }
    qsort(keys, n, sizeof *keys, cmp_op_key);
    size_t distinct = 0, strbytes = 0;
    for (size_t i = 0; i < n; i++) {
        if (i == 0 || cmp_op_key(&keys[i], &keys[i - 1]) != 0) {
            distinct++;
            strbytes += strlen(keys[i].domain) + strlen(keys[i].op_type) + 2;
        }
    }
    /* One allocation: the array, then its strings; sl_model_report_free frees it. */
    char *blob = malloc(distinct * sizeof(sl_op_count_t) + strbytes + 1);
    if (!blob) {
        free(keys);
        return sl_eng_set_error(err, SL_ENG_ENOMEM, "out of memory");
    }
    sl_op_count_t *ops = (sl_op_count_t *)blob;
    char *s = blob + distinct * sizeof(sl_op_count_t);
    size_t k = 0;
    *first_missing = SIZE_MAX;
    for (size_t i = 0; i < n; i++) {
        if (i > 0 && cmp_op_key(&keys[i], &keys[i - 1]) == 0) {
            ops[k - 1].count++;
            if (!ops[k - 1].supported && keys[i].first < *first_missing)
                *first_missing = keys[i].first;
            continue;
        }
        sl_op_count_t *o = &ops[k++];
        size_t dl = strlen(keys[i].domain) + 1, tl = strlen(keys[i].op_type) + 1;
        memcpy(s, keys[i].domain, dl);
        o->domain = s;
        s += dl;
        memcpy(s, keys[i].op_type, tl);
        o->op_type = s;
        s += tl;
        o->count = 1;
        int64_t opset = -1;
        for (size_t j = 0; j < mp->n_opset_import; j++) {
            if (strcmp(norm_domain(mp->opset_import[j]->domain), o->domain) == 0) {
                opset = mp->opset_import[j]->version;
                break;
            }
        }
        if (o->domain[0] == '\0' && strcmp(o->op_type, "Constant") == 0)
            o->supported = opset >= 1; /* folded at load */
        else
            o->supported = opset >= 1 && sl_op_find(o->domain, o->op_type, opset) != NULL;
        if (!o->supported && keys[i].first < *first_missing) *first_missing = keys[i].first;
    }
    free(keys);
    r->n_ops = distinct;
    r->ops = ops;
    return SL_ENG_OK;
}

sl_eng_status_t sl_model_inspect(const char *path, sl_model_report_t *out,
                                 sl_model_t **model_or_null, sl_eng_error_t *err) {
    memset(out, 0, sizeof *out);
    if (model_or_null) *model_or_null = NULL;
    sl_model_opts_t o;
    fill_opts(&o, NULL);
    uint8_t *buf;
    size_t len;
    sl_eng_status_t st = read_file(path, o.max_file_bytes, &buf, &len, err);
    if (st != SL_ENG_OK) return st;
    Onnx__ModelProto *mp;
    st = parse(buf, len, &mp, err);
    free(buf);
    if (st != SL_ENG_OK) return st;
    if (!mp->graph) {
        onnx__model_proto__free_unpacked(mp, NULL);
        return sl_eng_set_error(err, SL_ENG_EPARSE, "not a valid ONNX model (it has no graph)");
    }
    size_t first_missing = SIZE_MAX;
    st = report_ops(mp, out, &first_missing, err);
    if (st != SL_ENG_OK) {
        onnx__model_proto__free_unpacked(mp, NULL);
        return st;
    }
    const Onnx__GraphProto *g = mp->graph;
    out->n_nodes = g->n_node;
    out->n_initializers = g->n_initializer;
    for (size_t i = 0; i < g->n_initializer; i++) {
        int64_t e = 1;
        for (size_t d = 0; d < g->initializer[i]->n_dims; d++) {
            int64_t v = g->initializer[i]->dims[d];
            if (v < 0 || (v > 0 && e > INT64_MAX / v)) {
                e = 0;
                break;
            }
            e *= v;
        }
        if (out->n_params <= INT64_MAX - e) out->n_params += e;
    }
    char missing[512] = "";
    if (first_missing != SIZE_MAX) {
        /* The first missing op is what a user has to act on: it goes before other reasons. */
        const Onnx__NodeProto *np = g->node[first_missing];
        const char *d = norm_domain(np->domain);
        int64_t opset = -1;
        for (size_t j = 0; j < mp->n_opset_import; j++) {
            if (strcmp(norm_domain(mp->opset_import[j]->domain), d) == 0) {
                opset = mp->opset_import[j]->version;
                break;
            }
        }
        if (opset < 0) {
            snprintf(missing, sizeof missing,
                     "op '%.64s' uses domain '%.64s', which the model does not import",
                     np->op_type ? np->op_type : "", d);
        } else {
            snprintf(missing, sizeof missing,
                     "op '%.64s' (domain '%.64s', opset %lld) is not supported",
                     np->op_type ? np->op_type : "", d, (long long)opset);
        }
    }
    sl_model_t *m = NULL;
    sl_eng_error_t e = {0};
    st = model_from_proto(mp, &o, true, &m, &e);
    onnx__model_proto__free_unpacked(mp, NULL);
    out->runnable = st == SL_ENG_OK && m->runnable && !missing[0];
    if (missing[0])
        snprintf(out->why_not, sizeof out->why_not, "%s", missing);
    else if (st != SL_ENG_OK)
        snprintf(out->why_not, sizeof out->why_not, "%s", e.msg);
    else if (!out->runnable)
        snprintf(out->why_not, sizeof out->why_not, "%s", m->why_not);
    out->info = m;
    out->info_owned = true;
    if (out->runnable && model_or_null) {
        *model_or_null = m;
        out->info_owned = false;
    }
    return SL_ENG_OK;
}

void sl_model_report_free(sl_model_report_t *r) {
    if (!r) return;
    free(r->ops);
    if (r->info_owned) sl_model_free((sl_model_t *)r->info);
    memset(r, 0, sizeof *r);
}
