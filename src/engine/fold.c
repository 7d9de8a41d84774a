/* Constant folding, a graph pass of model loading (model.c calls it after graph.c has ordered
 * the nodes, before kernels prepare): a node whose inputs are all constants is run once, with
 * its kernel's own infer and run, and its outputs become constants of the model. Shape
 * arithmetic on initializers (Shape -> Gather -> Unsqueeze -> Concat chains of exported
 * transformers, weight transposes, ...) then costs nothing per run. */
#include "engine/model_internal.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Ops whose outputs are not a function of their inputs alone. Dropout is pure in inference
 * mode, but its training_mode input may be a constant true: leaving it to run time is simpler
 * than deciding. */
static bool is_pure(const sl_node_t *n) {
    static const char *const impure[] = {
        "RandomNormal", "RandomNormalLike", "RandomUniform", "RandomUniformLike",
        "Bernoulli",    "Multinomial",      "Dropout",
    };
    if (n->domain[0] != '\0') return true; /* ai.onnx.ml: deterministic ops only */
    for (size_t i = 0; i < sizeof impure / sizeof impure[0]; i++) {
        if (strcmp(n->op_type, impure[i]) == 0) return false;
    }
    return true;
}

static bool all_inputs_const(const sl_model_t *m, const sl_node_t *n) {
    for (int j = 0; j < n->n_inputs; j++) {
        int id = n->inputs[j];
        if (id < 0) continue; /* an omitted optional input */
        const sl_value_t *v = &m->values[id];
        if (v->kind != SL_VAL_CONST || sl_dtype_size(v->tensor.dtype) == 0) return false;
    }
    return true;
}

/* Bytes of t, refusing negative dims and overflow; false when it cannot be held. */
static bool out_bytes(const sl_tensor_t *t, size_t *bytes) {
    size_t es = sl_dtype_size(t->dtype);
    if (es == 0 || t->ndim < 0 || t->ndim > SL_MAX_DIMS) return false;
    uint64_t n = 1;
    for (int i = 0; i < t->ndim; i++) {
        if (t->dims[i] < 0) return false;
        uint64_t d = (uint64_t)t->dims[i];
        if (d && n > UINT64_MAX / d) return false;
        n *= d;
    }
    if (n > SIZE_MAX / es) return false;
    *bytes = (size_t)(n * es);
    return true;
}

static void *scratch(sl_kctx_t *k, size_t n) {
    return sl_arena_alloc(k->arena, n);
}

/* What a fold needs besides the model: reusable arrays and the scratch arena. */
typedef struct folder {
    sl_model_t *m;
    sl_arena_t tmp; /* the node's outputs and its kernel's scratch, reset per node */
    const sl_tensor_t **in;
    sl_tensor_t *out;
    size_t total; /* bytes folded so far */
} folder_t;

typedef enum fold_result { FOLDED, KEPT, NOMEM } fold_result_t;

/* Runs n on constant inputs. Every failure but running out of memory for the model's own copy
 * keeps the node: run time then reports it as it would have without folding. */
static fold_result_t fold_node(folder_t *f, sl_node_t *n) {
    sl_model_t *m = f->m;
    sl_eng_error_t e = {0}; /* a failure here is not the load's error */
    for (int j = 0; j < n->n_inputs; j++)
        f->in[j] = n->inputs[j] >= 0 ? &m->values[n->inputs[j]].tensor : NULL;
    if (n->op->prepare && n->op->prepare(n, f->in, &e) != SL_ENG_OK) return KEPT;
    fold_result_t res = KEPT;
    sl_arena_reset(&f->tmp);
    memset(f->out, 0, (size_t)n->n_outputs * sizeof *f->out);
    if (n->op->infer(n, f->in, n->n_inputs, f->out, n->n_outputs, &e) != SL_ENG_OK) goto done;
    size_t limit = SL_FOLD_MAX_TENSOR_BYTES;
    if (m->opts.max_tensor_bytes < limit) limit = m->opts.max_tensor_bytes;
    size_t sum = 0;
    for (int j = 0; j < n->n_outputs; j++) {
        sl_tensor_t *t = &f->out[j];
        t->data = NULL;
        if (n->outputs[j] < 0 && t->dtype == SL_DT_UNDEFINED) continue;
        size_t bytes;
        if (!out_bytes(t, &bytes) || bytes > limit) goto done;
        sum += bytes;
        if (sum > SL_FOLD_MAX_TOTAL_BYTES - f->total) goto done;
        t->data = sl_arena_alloc(&f->tmp, bytes);
        if (!t->data) goto done;
    }
    sl_kctx_t k = {
        .scratch = scratch,
        .arena = &f->tmp,
        .threads = m->opts.intra_op_threads,
        .err = &e,
    };
    if (n->op->run(n, f->in, n->n_inputs, f->out, n->n_outputs, &k) != SL_ENG_OK) goto done;
    /* The outputs become the model's: copied into its pool, freed with it. */
    for (int j = 0; j < n->n_outputs; j++) {
        int id = n->outputs[j];
        if (id < 0) continue;
        size_t bytes = sl_tensor_nbytes(&f->out[j]);
        void *p = sl_arena_alloc(&m->pool, bytes);
        if (!p) {
            res = NOMEM;
            goto done;
        }
        if (bytes) memcpy(p, f->out[j].data, bytes);
        sl_value_t *v = &m->values[id];
        v->tensor = f->out[j];
        v->tensor.data = p;
    }
    for (int j = 0; j < n->n_outputs; j++) {
        if (n->outputs[j] >= 0) m->values[n->outputs[j]].kind = SL_VAL_CONST;
    }
    f->total += sum;
    res = FOLDED;
done:
    if (n->op->prepare && n->op->release) n->op->release(n);
    n->state = NULL;
    return res;
}

sl_eng_status_t sl_fold_constants(sl_model_t *m, sl_eng_error_t *err) {
    folder_t f = {.m = m};
    sl_arena_init(&f.tmp, 1 << 20);
    f.in = calloc((size_t)m->max_node_inputs + 1, sizeof *f.in);
    f.out = calloc((size_t)m->max_node_outputs + 1, sizeof *f.out);
    bool *folded = calloc(m->n_nodes + 1, sizeof *folded);
    sl_eng_status_t st = SL_ENG_OK;
    if (!f.in || !f.out || !folded) {
        st = sl_eng_set_error(err, SL_ENG_ENOMEM, "out of memory folding constants");
        goto out;
    }
    /* In topological order, so that a node whose inputs were folded just before folds too. */
    size_t n_folded = 0;
    for (size_t k = 0; k < m->n_nodes; k++) {
        sl_node_t *n = &m->nodes[k];
        if (!n->op || !n->op->infer || !n->op->run || !is_pure(n) || !all_inputs_const(m, n))
            continue;
        fold_result_t r = fold_node(&f, n);
        if (r == NOMEM) {
            st = sl_eng_set_error(err, SL_ENG_ENOMEM, "out of memory folding constants");
            goto out;
        }
        if (r == FOLDED) {
            folded[k] = true;
            n_folded++;
        }
    }
    if (n_folded) {
        size_t w = 0;
        for (size_t k = 0; k < m->n_nodes; k++) {
            if (!folded[k]) m->nodes[w++] = m->nodes[k];
        }
        m->n_nodes = w;
        m->n_folded += n_folded;
        sl_graph_lifetimes(m);
    }
out:
    sl_arena_free(&f.tmp);
    free(f.in);
    free(f.out);
    free(folded);
    return st;
}
