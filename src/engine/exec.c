/* The executor: a run context holds one tensor per value id and an arena for every tensor a
 * run computes. A run checks the caller's inputs against the model's declared value infos, then
 * asks each node's kernel (in topological order) for its output shapes, takes the outputs from
 * the memory plan (plan.c: buffers of values no later node reads are reused) and runs the
 * kernel. The arena is reset, not freed, between runs, so a warm run with the same input shapes
 * makes no heap allocation at all. */
#include "engine/model_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RUN_BLOCK_SIZE ((size_t)1 << 20)

struct sl_run {
    const sl_model_t *m;
    sl_arena_t arena;
    sl_plan_t plan;
    sl_tensor_t *vals;      /* one per value id; constants bound once at creation */
    const sl_tensor_t **in; /* a node's inputs, max_node_inputs of them */
    sl_tensor_t *out;       /* a node's outputs, max_node_outputs of them */
    int *out_buf;           /* the plan's buffer of each of a node's outputs, -1 for none */
    sl_pool_t *pool;        /* intra-op workers when intra_op_threads > 1, else NULL */
};

sl_eng_status_t sl_run_new(const sl_model_t *m, sl_run_t **out, sl_eng_error_t *err) {
    *out = NULL;
    if (!m->runnable) {
        return sl_eng_set_error(err, SL_ENG_EUNSUPPORTED, "the model cannot run: %s", m->why_not);
    }
    sl_run_t *r = calloc(1, sizeof *r);
    if (!r) return sl_eng_set_error(err, SL_ENG_ENOMEM, "out of memory creating a run context");
    r->m = m;
    sl_arena_init(&r->arena, RUN_BLOCK_SIZE);
    r->vals = calloc(m->n_values + 1, sizeof *r->vals);
    r->in = calloc((size_t)m->max_node_inputs + 1, sizeof *r->in);
    r->out = calloc((size_t)m->max_node_outputs + 1, sizeof *r->out);
    r->out_buf = calloc((size_t)m->max_node_outputs + 1, sizeof *r->out_buf);
    if (!r->vals || !r->in || !r->out || !r->out_buf ||
        sl_plan_init(&r->plan, m, &r->arena) != SL_ENG_OK) {
        sl_run_free(r);
        return sl_eng_set_error(err, SL_ENG_ENOMEM, "out of memory creating a run context");
    }
    for (size_t i = 0; i < m->n_values; i++) {
        if (m->values[i].kind == SL_VAL_CONST) r->vals[i] = m->values[i].tensor;
    }
    /* Without its threads the run context still works, single-threaded. */
    if (m->opts.intra_op_threads > 1) r->pool = sl_pool_new(m->opts.intra_op_threads);
    *out = r;
    return SL_ENG_OK;
}

void sl_run_free(sl_run_t *r) {
    if (!r) return;
    sl_pool_free(r->pool);
    sl_plan_free(&r->plan);
    sl_arena_free(&r->arena);
    free(r->vals);
    free(r->in);
    free(r->out);
    free(r->out_buf);
    free(r);
}

size_t sl_run_arena_blocks(const sl_run_t *r) {
    return r->arena.n_blocks;
}

size_t sl_run_peak_bytes(const sl_run_t *r) {
    return r->plan.peak;
}

size_t sl_run_demand_bytes(const sl_run_t *r) {
    return r->plan.demand;
}

/* "float32[-1,64]" */
static void fmt_type(char *buf, size_t n, sl_dtype_t dt, int ndim, const int64_t *dims) {
    size_t len = (size_t)snprintf(buf, n, "%s", dt == SL_DT_UNDEFINED ? "any" : sl_dtype_name(dt));
    if (ndim < 0) {
        snprintf(buf + len, n - len, "[...]");
        return;
    }
    len += (size_t)snprintf(buf + len, n - len, "[");
    for (int i = 0; i < ndim && len < n; i++)
        len += (size_t)snprintf(buf + len, n - len, "%s%lld", i ? "," : "", (long long)dims[i]);
    if (len < n) snprintf(buf + len, n - len, "]");
}

/* Element count and bytes of t, refusing negative dims and overflow. */
static bool tensor_size(const sl_tensor_t *t, size_t *bytes) {
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

static sl_eng_status_t check_input(const sl_model_t *m, size_t i, const sl_tensor_t *t,
                                   sl_eng_error_t *err) {
    const sl_value_info_t *vi = &m->inputs[i];
    bool ok = t->ndim >= 0 && t->ndim <= SL_MAX_DIMS && sl_dtype_size(t->dtype) > 0;
    if (ok && vi->dtype != SL_DT_UNDEFINED && vi->dtype != t->dtype) ok = false;
    if (ok && vi->ndim >= 0 && vi->ndim != t->ndim) ok = false;
    for (int d = 0; ok && d < t->ndim; d++) {
        if (t->dims[d] < 0) ok = false;
        if (vi->ndim >= 0 && vi->dims[d] >= 0 && vi->dims[d] != t->dims[d]) ok = false;
    }
    if (!ok) {
        char want[160], got[160];
        fmt_type(want, sizeof want, vi->dtype, vi->ndim, vi->dims);
        fmt_type(got, sizeof got, t->dtype, t->ndim < 0 || t->ndim > SL_MAX_DIMS ? -1 : t->ndim,
                 t->dims);
        return sl_eng_set_error(err, SL_ENG_EINVAL, "input '%.100s': expected %s, got %s", vi->name,
                                want, got);
    }
    size_t bytes;
    if (!tensor_size(t, &bytes) || bytes > m->opts.max_tensor_bytes) {
        return sl_eng_set_error(err, SL_ENG_ELIMIT,
                                "input '%.100s' is over the limit of %zu bytes (max_tensor_bytes)",
                                vi->name, m->opts.max_tensor_bytes);
    }
    if (bytes && !t->data)
        return sl_eng_set_error(err, SL_ENG_EINVAL, "input '%.100s' has no data", vi->name);
    return SL_ENG_OK;
}

static void *kctx_scratch(sl_kctx_t *k, size_t n) {
    return sl_arena_alloc(k->arena, n);
}

/* A kernel that failed without a message still gets one naming its node. */
static sl_eng_status_t kernel_failed(const sl_node_t *n, sl_eng_status_t st, const char *stage,
                                     sl_eng_error_t *err) {
    if (err && (!err->msg[0] || err->code != st))
        sl_node_error(n, err, st, "%s failed: %s", stage, sl_eng_strerror(st));
    return st;
}

static sl_eng_status_t alloc_outputs(sl_run_t *r, const sl_node_t *n, sl_eng_error_t *err) {
    const sl_model_t *m = r->m;
    for (int j = 0; j < n->n_outputs; j++) {
        sl_tensor_t *t = &r->out[j];
        t->data = NULL;
        r->out_buf[j] = -1;
        if (n->outputs[j] < 0 && t->dtype == SL_DT_UNDEFINED) continue; /* omitted, not made */
        const char *oname = n->outputs[j] >= 0 ? m->values[n->outputs[j]].name : "(omitted)";
        size_t bytes;
        if (!tensor_size(t, &bytes)) {
            char got[160];
            fmt_type(got, sizeof got, t->dtype, t->ndim < 0 || t->ndim > SL_MAX_DIMS ? -1 : t->ndim,
                     t->dims);
            return sl_node_error(
                n, err, sl_dtype_size(t->dtype) ? SL_ENG_ESHAPE : SL_ENG_EUNSUPPORTED,
                "output '%.100s' would be %s, which the engine cannot hold", oname, got);
        }
        if (bytes > m->opts.max_tensor_bytes) {
            return sl_node_error(n, err, SL_ENG_ELIMIT,
                                 "output '%.100s' would be %zu bytes, over the limit of %zu "
                                 "(max_tensor_bytes)",
                                 oname, bytes, m->opts.max_tensor_bytes);
        }
        int b = sl_plan_take(&r->plan, bytes);
        if (b < 0) return sl_node_error(n, err, SL_ENG_ENOMEM, "out of memory for outputs");
        r->out_buf[j] = b;
        t->data = r->plan.bufs[b].data;
    }
    return SL_ENG_OK;
}

static sl_eng_status_t run_node(sl_run_t *r, size_t k_idx, sl_eng_error_t *err) {
    const sl_node_t *n = &r->m->nodes[k_idx];
    for (int j = 0; j < n->n_inputs; j++)
        r->in[j] = n->inputs[j] >= 0 ? &r->vals[n->inputs[j]] : NULL;
    memset(r->out, 0, (size_t)n->n_outputs * sizeof *r->out);
    if (err) err->msg[0] = '\0';
    sl_eng_status_t st = n->op->infer(n, r->in, n->n_inputs, r->out, n->n_outputs, err);
    if (st != SL_ENG_OK) return kernel_failed(n, st, "shape inference", err);
    if ((st = alloc_outputs(r, n, err)) != SL_ENG_OK) return st;
    sl_arena_mark_t mark = sl_arena_mark(&r->arena);
    sl_kctx_t k = {
        .scratch = kctx_scratch,
        .arena = &r->arena,
        .threads = sl_pool_threads(r->pool),
        .err = err,
        .pool = r->pool,
    };
    st = n->op->run(n, r->in, n->n_inputs, r->out, n->n_outputs, &k);
    sl_arena_release(&r->arena, mark); /* scratch lives for this node only */
    if (st != SL_ENG_OK) return kernel_failed(n, st, "run", err);
    for (int j = 0; j < n->n_outputs; j++) {
        if (n->outputs[j] >= 0) {
            r->vals[n->outputs[j]] = r->out[j];
            r->plan.val_buf[n->outputs[j]] = r->out_buf[j];
        } else {
            sl_plan_give(&r->plan, r->out_buf[j]); /* made but omitted: dead already */
        }
    }
    sl_plan_after_node(&r->plan, k_idx);
    return SL_ENG_OK;
}

sl_eng_status_t sl_run_exec(sl_run_t *r, const sl_tensor_t *inputs, size_t n_inputs,
                            sl_tensor_t *outputs, size_t n_outputs, sl_eng_error_t *err) {
    const sl_model_t *m = r->m;
    if (n_inputs != m->n_inputs || (n_inputs && !inputs)) {
        return sl_eng_set_error(err, SL_ENG_EINVAL, "the model takes %zu inputs, got %zu",
                                m->n_inputs, n_inputs);
    }
    if (n_outputs < m->n_outputs || (n_outputs && !outputs)) {
        return sl_eng_set_error(err, SL_ENG_EINVAL, "the model has %zu outputs, room for %zu given",
                                m->n_outputs, n_outputs);
    }
    sl_arena_reset(&r->arena);
    sl_plan_reset(&r->plan);
    for (size_t i = 0; i < n_inputs; i++) {
        sl_eng_status_t st = check_input(m, i, &inputs[i], err);
        if (st != SL_ENG_OK) return st;
        r->vals[m->input_ids[i]] = inputs[i]; /* bound, not copied: read during this call */
    }
    for (size_t k = 0; k < m->n_nodes; k++) {
        sl_eng_status_t st = run_node(r, k, err);
        if (st != SL_ENG_OK) return st;
    }
    for (size_t i = 0; i < m->n_outputs; i++) {
        int id = m->output_ids[i];
        outputs[i] = r->vals[id];
        if (m->values[id].kind == SL_VAL_INPUT) {
            /* The caller's input is only borrowed for the call: the output needs its own copy. */
            size_t bytes = sl_tensor_nbytes(&outputs[i]);
            void *p = sl_arena_alloc(&r->arena, bytes);
            if (!p) return sl_eng_set_error(err, SL_ENG_ENOMEM, "out of memory for outputs");
            if (bytes) memcpy(p, r->vals[id].data, bytes);
            outputs[i].data = p;
        }
    }
    return SL_ENG_OK;
}
