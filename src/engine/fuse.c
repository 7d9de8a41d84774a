/* Load-time fusions, run by model.c on the ordered graph before kernels are prepared:
 * Conv + BatchNormalization becomes one Conv with folded weights and bias, and Gemm or MatMul
 * followed by a constant-bias Add and/or an activation becomes one node whose kernel
 * (ops_linalg.c) adds the bias through sgemm's beta and applies the activation in place on the
 * output. A fusion happens only where the intermediate value has exactly one reader and is not
 * a graph output, so no other node can tell. */
#include "engine/model_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct fuse {
    sl_model_t *m;
    int *uses;  /* per value: references by the inputs of live nodes */
    bool *dead; /* per node: absorbed by an earlier node */
    sl_eng_error_t *err;
} fuse_t;

static sl_eng_status_t oom(fuse_t *f) {
    return sl_eng_set_error(f->err, SL_ENG_ENOMEM, "out of memory fusing the graph");
}

static bool is_op(const sl_node_t *n, const char *op_type) {
    return n->op && n->domain[0] == '\0' && strcmp(n->op_type, op_type) == 0;
}

/* The float constant behind value id, or NULL. */
static const sl_tensor_t *const_float(const fuse_t *f, int id) {
    if (id < 0) return NULL;
    const sl_value_t *v = &f->m->values[id];
    if (v->kind != SL_VAL_CONST || v->tensor.dtype != SL_DT_FLOAT) return NULL;
    if (!v->tensor.data && sl_tensor_numel(&v->tensor) != 0) return NULL;
    return &v->tensor;
}

/* The one live node reading value id, when it is the only reader and not a graph output; else
 * -1. last_use is the last reader, which with one reference is the only one. */
static int sole_reader(const fuse_t *f, int id) {
    if (id < 0) return -1;
    const sl_value_t *v = &f->m->values[id];
    if (v->kind != SL_VAL_NODE || v->is_output || f->uses[id] != 1 || v->last_use < 0) return -1;
    return f->dead[v->last_use] ? -1 : v->last_use;
}

static int *pool_ints(fuse_t *f, int n) {
    return sl_arena_alloc(&f->m->pool, (size_t)n * sizeof(int));
}

/* Frees the data of a constant nothing reads any more, when the model owns it alone (a Conv's
 * original weights once the folded copy replaces them). */
static void drop_use(fuse_t *f, int id) {
    sl_model_t *m = f->m;
    if (id < 0 || --f->uses[id] > 0) return;
    sl_value_t *v = &m->values[id];
    void *p = v->tensor.data;
    if (v->kind != SL_VAL_CONST || v->is_output || !p) return;
    for (size_t i = 0; i < m->n_values; i++)
        if (i != (size_t)id && m->values[i].kind == SL_VAL_CONST && m->values[i].tensor.data == p)
            return;
    for (size_t i = 0; i < m->n_owned; i++) {
        if (m->owned[i] == p) {
            free(p);
            m->owned[i] = NULL;
            v->tensor.data = NULL;
            v->tensor.ndim = 1;
            v->tensor.dims[0] = 0;
            return;
        }
    }
}

/* A new constant value named "<base>:<suffix>" holding t (its data already owned). */
static sl_eng_status_t new_const(fuse_t *f, const char *base, const char *suffix,
                                 const sl_tensor_t *t, int *id) {
    sl_model_t *m = f->m;
    size_t len = strlen(base) + strlen(suffix) + 2;
    char *name = sl_arena_alloc(&m->pool, len);
    if (!name) return oom(f);
    snprintf(name, len, "%s:%s", base, suffix);
    sl_value_t *v = &m->values[m->n_values];
    memset(v, 0, sizeof *v);
    v->name = name;
    v->kind = SL_VAL_CONST;
    v->producer = -1;
    v->input_idx = -1;
    v->last_use = -1;
    v->tensor = *t;
    f->uses[m->n_values] = 1;
    *id = (int)m->n_values++;
    return SL_ENG_OK;
}

/* Marks the value a removed node produced as produced by nothing (and read by nothing). */
static void orphan(fuse_t *f, int id) {
    f->m->values[id].kind = SL_VAL_UNSET;
    f->m->values[id].producer = -1;
    f->uses[id] = 0;
}

/* ---- Conv + BatchNormalization ---- */

/* The BN at bi reads the output of a Conv: fold when every parameter is a per-channel float
 * constant, the conv's weights are too, and the BN is the inference form with one output. */
static sl_eng_status_t fold_bn(fuse_t *f, int bi) {
    sl_model_t *m = f->m;
    sl_node_t *bn = &m->nodes[bi];
    if (bn->n_inputs != 5 || bn->n_outputs != 1 || bn->outputs[0] < 0 || bn->inputs[0] < 0)
        return SL_ENG_OK;
    if (bn->opset >= 14 && sl_attr_int(bn, "training_mode", 0) != 0) return SL_ENG_OK;
    if (bn->opset < 9 && sl_attr_int(bn, "spatial", 1) == 0) return SL_ENG_OK;
    int y = bn->inputs[0];
    if (m->values[y].kind != SL_VAL_NODE || sole_reader(f, y) != bi) return SL_ENG_OK;
    int ci = m->values[y].producer;
    sl_node_t *conv = &m->nodes[ci];
    if (f->dead[ci] || !is_op(conv, "Conv") || conv->n_outputs != 1 || conv->n_inputs < 2)
        return SL_ENG_OK;
    const sl_tensor_t *w = const_float(f, conv->inputs[1]);
    if (!w || w->ndim < 3 || w->dims[0] < 1) return SL_ENG_OK;
    int64_t M = w->dims[0], per = sl_tensor_numel(w) / M;
    const sl_tensor_t *cb = NULL;
    if (conv->n_inputs > 2 && conv->inputs[2] >= 0) {
        cb = const_float(f, conv->inputs[2]);
        if (!cb || cb->ndim != 1 || cb->dims[0] != M) return SL_ENG_OK;
    }
    const float *par[4]; /* scale, B, mean, var */
    for (int i = 0; i < 4; i++) {
        const sl_tensor_t *t = const_float(f, bn->inputs[1 + i]);
        if (!t || t->ndim != 1 || t->dims[0] != M) return SL_ENG_OK;
        par[i] = t->data;
    }
    double eps = sl_attr_float(bn, "epsilon", 1e-5f);

    float *nw = malloc((size_t)(M * per) * sizeof *nw + 1);
    float *nb = malloc((size_t)M * sizeof *nb);
    int *ins = pool_ints(f, 3), *outs = pool_ints(f, 1);
    if (!nw || !nb || !ins || !outs) {
        free(nw);
        free(nb);
        return oom(f);
    }
    const float *wd = w->data, *bd = cb ? cb->data : NULL;
    for (int64_t c = 0; c < M; c++) {
        /* W' = W * s / sqrt(var + eps); b' = (b - mean) * s / sqrt(var + eps) + B, in double. */
        double a = par[0][c] / sqrt((double)par[3][c] + eps);
        for (int64_t i = 0; i < per; i++)
            nw[c * per + i] = (float)(wd[c * per + i] * a);
        nb[c] = (float)(((bd ? bd[c] : 0.0) - par[2][c]) * a + par[1][c]);
    }
    sl_tensor_t tw = *w, tb = {.dtype = SL_DT_FLOAT, .ndim = 1, .dims = {M}};
    tw.data = nw;
    tb.data = nb;
    sl_eng_status_t st;
    int wid = -1, bid = -1;
    if (m->n_owned + 2 > m->cap_owned) {
        size_t ncap = m->cap_owned * 2 + 16;
        void **no = realloc(m->owned, ncap * sizeof *no);
        if (!no) {
            free(nw);
            free(nb);
            return oom(f);
        }
        m->owned = no;
        m->cap_owned = ncap;
    }
    m->owned[m->n_owned++] = nw; /* freed with the model */
    m->owned[m->n_owned++] = nb;
    const char *base = conv->name[0] ? conv->name : m->values[y].name;
    if ((st = new_const(f, base, "W_bn", &tw, &wid)) ||
        (st = new_const(f, base, "B_bn", &tb, &bid)))
        return st;
    ins[0] = conv->inputs[0];
    ins[1] = wid;
    ins[2] = bid;
    outs[0] = bn->outputs[0];
    int old_w = conv->inputs[1], old_b = cb ? conv->inputs[2] : -1;
    conv->inputs = ins;
    conv->n_inputs = 3;
    conv->outputs = outs;
    if (m->max_node_inputs < 3) m->max_node_inputs = 3;
    f->dead[bi] = true;
    m->values[outs[0]].producer = ci;
    orphan(f, y);
    drop_use(f, old_w);
    drop_use(f, old_b);
    for (int i = 1; i < 5; i++)
        drop_use(f, bn->inputs[i]);
    m->n_fused_bn++;
    return SL_ENG_OK;
}

/* ---- Gemm / MatMul (+ Add) (+ activation) ---- */

/* A constant the MatMul's Add may fold: every dim 1 but the last, which is 1 or n. */
static bool bias_fits(const sl_tensor_t *t, int64_t n) {
    int64_t last = t->ndim ? t->dims[t->ndim - 1] : 1;
    return sl_tensor_numel(t) == last && (last == 1 || last == n);
}

/* Whether node ai is an activation the kernels can apply in place to value y, its only input
 * that varies; Clip's bounds must then be constant float scalars. */
static bool act_fits(const fuse_t *f, int ai, int y) {
    const sl_node_t *a = &f->m->nodes[ai];
    if (a->n_outputs != 1 || a->outputs[0] < 0 || a->n_inputs < 1 || a->inputs[0] != y)
        return false;
    if (is_op(a, "Relu") || is_op(a, "LeakyRelu") || is_op(a, "Sigmoid") || is_op(a, "Tanh"))
        return a->n_inputs == 1;
    if (!is_op(a, "Clip") || a->n_inputs > 3 || (a->opset < 11 && a->n_inputs != 1)) return false;
    for (int i = 1; i < a->n_inputs; i++) {
        if (a->inputs[i] < 0) continue;
        const sl_tensor_t *t = const_float(f, a->inputs[i]);
        if (!t || sl_tensor_numel(t) != 1) return false;
    }
    return true;
}

static sl_eng_status_t fuse_linear(fuse_t *f, int i) {
    sl_model_t *m = f->m;
    sl_node_t *n = &m->nodes[i];
    bool gemm = is_op(n, "Gemm");
    if (!gemm && !is_op(n, "MatMul")) return SL_ENG_OK;
    if (n->n_inputs < 2 || n->n_outputs != 1 || n->outputs[0] < 0 || n->inputs[0] < 0)
        return SL_ENG_OK;
    /* A float constant B (the weights) makes the node float32, which the fused kernels need. */
    const sl_tensor_t *b = const_float(f, n->inputs[1]);
    if (!b || b->ndim < 2) return SL_ENG_OK;
    int y = n->outputs[0], add = -1, bias = -1, act = -1;
    int r = sole_reader(f, y);
    if (!gemm && r >= 0 && is_op(&m->nodes[r], "Add")) {
        const sl_node_t *a = &m->nodes[r];
        if (a->n_inputs == 2 && a->n_outputs == 1 && a->outputs[0] >= 0) {
            int other = a->inputs[0] == y ? a->inputs[1] : a->inputs[0];
            const sl_tensor_t *c = const_float(f, other);
            if (other != y && c && bias_fits(c, b->dims[b->ndim - 1])) {
                add = r;
                bias = other;
                y = a->outputs[0];
                r = sole_reader(f, y);
            }
        }
    }
    if (r >= 0 && act_fits(f, r, y)) act = r;
    if (add < 0 && act < 0) return SL_ENG_OK;

    sl_fused_t *st = sl_arena_alloc(&m->pool, sizeof *st);
    int *outs = pool_ints(f, 1), *ins = bias >= 0 ? pool_ints(f, 3) : NULL;
    if (!st || !outs || (bias >= 0 && !ins)) return oom(f);
    memset(st, 0, sizeof *st);
    if (bias >= 0) {
        ins[0] = n->inputs[0];
        ins[1] = n->inputs[1];
        ins[2] = bias;
        n->inputs = ins;
        n->n_inputs = 3;
        if (m->max_node_inputs < 3) m->max_node_inputs = 3;
        st->bias = true;
        orphan(f, n->outputs[0]);
        f->dead[add] = true;
        m->n_fused_bias++;
    }
    if (act >= 0) {
        /* A copy: the node array is compacted below. Attributes and op stay valid (pool). */
        sl_node_t *copy = sl_arena_alloc(&m->pool, sizeof *copy);
        if (!copy) return oom(f);
        *copy = m->nodes[act];
        st->act = copy;
        st->act_relu = strcmp(copy->op_type, "Relu") == 0;
        st->act_n_in = copy->n_inputs;
        for (int j = 1; j < copy->n_inputs; j++)
            st->act_in[j] = copy->inputs[j] >= 0 ? const_float(f, copy->inputs[j]) : NULL;
        orphan(f, copy->inputs[0]);
        y = copy->outputs[0];
        f->dead[act] = true;
        m->n_fused_act++;
    }
    outs[0] = y;
    n->outputs = outs;
    n->state = st;
    n->op = gemm ? &sl_op_gemm_fused : &sl_op_matmul_fused;
    m->values[y].producer = i;
    return SL_ENG_OK;
}

/* ---- the pass ---- */

/* Drops dead nodes (order is kept, so it stays topological) and recomputes lifetimes. */
static void compact(fuse_t *f) {
    sl_model_t *m = f->m;
    size_t w = 0;
    for (size_t k = 0; k < m->n_nodes; k++)
        if (!f->dead[k]) m->nodes[w++] = m->nodes[k];
    m->n_nodes = w;
    sl_graph_lifetimes(m);
}

sl_eng_status_t sl_fuse(sl_model_t *m, sl_eng_error_t *err) {
    /* Each folded BatchNormalization adds two constants (weights and bias): room for them. */
    size_t n_bn = 0;
    for (size_t k = 0; k < m->n_nodes; k++)
        n_bn += is_op(&m->nodes[k], "BatchNormalization");
    fuse_t f = {.m = m, .err = err};
    size_t cap = m->n_values + 2 * n_bn;
    if (n_bn) {
        sl_value_t *nv = sl_arena_alloc(&m->pool, cap * sizeof *nv);
        if (!nv) return oom(&f);
        memcpy(nv, m->values, m->n_values * sizeof *nv);
        m->values = nv;
    }
    f.uses = calloc(cap + 1, sizeof *f.uses);
    f.dead = calloc(m->n_nodes + 1, sizeof *f.dead);
    sl_eng_status_t st = SL_ENG_OK;
    if (!f.uses || !f.dead) {
        st = oom(&f);
        goto done;
    }
    for (size_t k = 0; k < m->n_nodes; k++)
        for (int j = 0; j < m->nodes[k].n_inputs; j++)
            if (m->nodes[k].inputs[j] >= 0) f.uses[m->nodes[k].inputs[j]]++;
    for (size_t k = 0; k < m->n_nodes && st == SL_ENG_OK; k++)
        if (is_op(&m->nodes[k], "BatchNormalization")) st = fold_bn(&f, (int)k);
    for (size_t k = 0; k < m->n_nodes && st == SL_ENG_OK; k++)
        if (!f.dead[k]) st = fuse_linear(&f, (int)k);
    compact(&f);
done:
    free(f.uses);
    free(f.dead);
    return st;
}
