/* Shape inference at load, with the graph inputs' dynamic dims as symbols. Rather than a second,
 * symbolic shape function per op (150 of them, each a chance to disagree with the kernel), the
 * kernels' own infer functions are run on a few probe bindings of the symbols: three bindings
 * to distinct large primes, from which every dim is fitted to a constant, a product of symbols
 * times a constant ("batch*seq") or an affine function of one symbol ("seq-1"); then all
 * symbols equal and all symbols 1, which only decide contradictions (a node whose shapes fail in
 * every binding cannot run at all). The small integer tensors of shape arithmetic (Shape,
 * Gather, Concat, ... feeding a Reshape) are computed along the way, so the transformer's
 * Reshape to [batch*seq, d] is inferred; anything that needs values the load cannot know is
 * left to run time, where every node's infer runs again anyway: load-time shapes are
 * declarations and a plan estimate, never what a run trusts. */
#include "engine/model_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N_FIT_PROBES 3  /* distinct primes: the dims are fitted on these */
#define N_PROBES     5  /* + all symbols equal + all symbols 1 */
#define MAX_DATA_EL  64 /* the largest tensor computed at load (shape arithmetic only) */

static const int64_t primes[N_FIT_PROBES][SL_SYM_MAX] = {
    {1009, 1013, 1019, 1021, 1031, 1033, 1039, 1049, 1051, 1061, 1063, 1069, 1087, 1091, 1093,
     1097},
    {1103, 1109, 1117, 1123, 1129, 1151, 1153, 1163, 1171, 1181, 1187, 1193, 1201, 1213, 1217,
     1223},
    {1229, 1231, 1237, 1249, 1259, 1277, 1279, 1283, 1289, 1291, 1297, 1301, 1303, 1307, 1319,
     1321},
};

static int64_t probe_value(int p, size_t s) {
    if (p < N_FIT_PROBES) return primes[p][s];
    return p == N_FIT_PROBES ? primes[0][0] : 1;
}

enum { V_UNKNOWN = 0, V_DIMS, V_DATA }; /* what a probe knows of a value */

typedef struct probe {
    sl_tensor_t *t;
    uint8_t *known;
    int first_fail; /* the first node whose infer failed with SL_ENG_ESHAPE, or -1 */
    sl_eng_error_t fail_err;
} probe_t;

typedef struct shaper {
    sl_model_t *m;
    sl_shapes_t *sh;
    sl_arena_t tmp; /* probe arrays and computed data, freed at the end */
    const sl_tensor_t **in;
    sl_tensor_t *out;
    probe_t pr[N_PROBES];
} shaper_t;

static void *tmp_scratch(sl_kctx_t *k, size_t n) {
    return sl_arena_alloc(k->arena, n);
}

/* Binds the graph inputs' dims to symbols (by name; each unnamed dynamic dim its own). */
static void bind_symbols(shaper_t *s) {
    sl_model_t *m = s->m;
    for (size_t i = 0; i < m->n_inputs; i++) {
        const sl_value_info_t *vi = &m->inputs[i];
        for (int d = 0; d < vi->ndim; d++) {
            if (vi->dims[d] >= 0) continue;
            size_t k = 0;
            for (; vi->dim_name[d] && k < s->sh->n_syms; k++) {
                const char *nm = s->sh->sym_name[k];
                if (nm && strcmp(nm, vi->dim_name[d]) == 0) break;
            }
            if (k == s->sh->n_syms && k < SL_SYM_MAX) {
                s->sh->sym_name[k] = vi->dim_name[d];
                s->sh->sym_input[k] = (int)i;
                s->sh->sym_dim[k] = d;
                s->sh->n_syms++;
            }
        }
    }
}

/* The symbol of input i's dim d, or -1 (over SL_SYM_MAX). */
static int symbol_of(const shaper_t *s, size_t i, int d) {
    const sl_value_info_t *vi = &s->m->inputs[i];
    for (size_t k = 0; k < s->sh->n_syms; k++) {
        if (s->sh->sym_input[k] == (int)i && s->sh->sym_dim[k] == d) return (int)k;
        const char *nm = s->sh->sym_name[k];
        if (nm && vi->dim_name[d] && strcmp(nm, vi->dim_name[d]) == 0) return (int)k;
    }
    return -1;
}

static bool small_enough(const sl_tensor_t *t) {
    if (sl_dtype_size(t->dtype) == 0 || t->ndim < 0 || t->ndim > SL_MAX_DIMS) return false;
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) {
        if (t->dims[i] < 0 || t->dims[i] > MAX_DATA_EL) return false;
        n *= t->dims[i];
        if (n > MAX_DATA_EL) return false;
    }
    return true;
}

static bool dims_ok(const sl_tensor_t *t) {
    if (t->ndim < 0 || t->ndim > SL_MAX_DIMS || sl_dtype_size(t->dtype) == 0) return false;
    for (int i = 0; i < t->ndim; i++)
        if (t->dims[i] < 0) return false;
    return true;
}

/* Ops whose outputs depend on their input's dims only, never its values. */
static bool reads_dims_only(const sl_node_t *n) {
    return n->domain[0] == '\0' && (!strcmp(n->op_type, "Shape") || !strcmp(n->op_type, "Size"));
}

/* Propagates one binding of the symbols through the graph. */
static sl_eng_status_t run_probe(shaper_t *s, int p) {
    sl_model_t *m = s->m;
    probe_t *pr = &s->pr[p];
    pr->t = sl_arena_alloc(&s->tmp, (m->n_values + 1) * sizeof *pr->t);
    pr->known = sl_arena_alloc(&s->tmp, m->n_values + 1);
    if (!pr->t || !pr->known) return SL_ENG_ENOMEM;
    memset(pr->t, 0, (m->n_values + 1) * sizeof *pr->t);
    memset(pr->known, V_UNKNOWN, m->n_values + 1);
    pr->first_fail = -1;
    for (size_t v = 0; v < m->n_values; v++) {
        if (m->values[v].kind == SL_VAL_CONST && sl_dtype_size(m->values[v].tensor.dtype)) {
            pr->t[v] = m->values[v].tensor;
            pr->known[v] = V_DATA;
        }
    }
    for (size_t i = 0; i < m->n_inputs; i++) {
        const sl_value_info_t *vi = &m->inputs[i];
        int id = m->input_ids[i];
        if (vi->ndim < 0 || sl_dtype_size(vi->dtype) == 0) continue;
        sl_tensor_t *t = &pr->t[id];
        t->dtype = vi->dtype;
        t->ndim = vi->ndim;
        bool ok = true;
        for (int d = 0; d < vi->ndim; d++) {
            int k = vi->dims[d] >= 0 ? -2 : symbol_of(s, i, d);
            if (k == -1) ok = false;
            t->dims[d] = k == -2 ? vi->dims[d] : probe_value(p, (size_t)(k < 0 ? 0 : k));
        }
        pr->known[id] = ok ? V_DIMS : V_UNKNOWN;
    }
    for (size_t k = 0; k < m->n_nodes; k++) {
        const sl_node_t *n = &m->nodes[k];
        bool have = true, data = true;
        for (int j = 0; j < n->n_inputs; j++) {
            int id = n->inputs[j];
            s->in[j] = id >= 0 ? &pr->t[id] : NULL;
            if (id < 0) continue;
            if (pr->known[id] == V_UNKNOWN) have = false;
            if (pr->known[id] != V_DATA) data = false;
        }
        if (!have) continue; /* its outputs stay unknown */
        memset(s->out, 0, (size_t)n->n_outputs * sizeof *s->out);
        sl_eng_error_t e = {0};
        sl_eng_status_t st = n->op->infer(n, s->in, n->n_inputs, s->out, n->n_outputs, &e);
        if (st != SL_ENG_OK) {
            if (st == SL_ENG_ESHAPE && pr->first_fail < 0) {
                pr->first_fail = (int)k;
                pr->fail_err = e;
            }
            continue;
        }
        bool all_ok = true, all_small = true;
        for (int j = 0; j < n->n_outputs; j++) {
            if (n->outputs[j] < 0 && s->out[j].dtype == SL_DT_UNDEFINED) continue;
            if (!dims_ok(&s->out[j])) all_ok = false;
            if (!small_enough(&s->out[j])) all_small = false;
        }
        if (!all_ok) continue;
        data = (data || (reads_dims_only(n) && n->n_inputs == 1)) && all_small;
        if (data) {
            sl_arena_mark_t mk = sl_arena_mark(&s->tmp);
            bool got = true;
            for (int j = 0; j < n->n_outputs && got; j++) {
                s->out[j].data = sl_arena_alloc(&s->tmp, sl_tensor_nbytes(&s->out[j]));
                got = s->out[j].data != NULL;
            }
            if (!got) return SL_ENG_ENOMEM;
            e.msg[0] = '\0';
            sl_kctx_t kc = {.scratch = tmp_scratch, .arena = &s->tmp, .threads = 1, .err = &e};
            if (n->op->run(n, s->in, n->n_inputs, s->out, n->n_outputs, &kc) != SL_ENG_OK) {
                sl_arena_release(&s->tmp, mk);
                data = false;
            }
        }
        for (int j = 0; j < n->n_outputs; j++) {
            int id = n->outputs[j];
            if (id < 0) continue;
            if (!data) s->out[j].data = NULL;
            pr->t[id] = s->out[j];
            pr->known[id] = data ? V_DATA : V_DIMS;
        }
    }
    return SL_ENG_OK;
}

static bool mul_ok(int64_t a, int64_t b, int64_t *r) {
    return !__builtin_mul_overflow(a, b, r);
}

/* prod(sym ^ exp) under probe p; false on overflow. */
static bool mono_value(const sl_shapes_t *sh, const uint8_t *exp, int p, int64_t c, int64_t *out) {
    int64_t v = c;
    for (size_t k = 0; k < sh->n_syms; k++) {
        for (int e = 0; e < exp[k]; e++)
            if (!mul_ok(v, probe_value(p, k), &v)) return false;
    }
    *out = v;
    return true;
}

/* Fits one dim from its values under the fitting probes. */
static sl_sdim_t fit_dim(const sl_shapes_t *sh, const int64_t *v) {
    sl_sdim_t d;
    memset(&d, 0, sizeof d);
    if (v[0] == v[1] && v[1] == v[2]) {
        d.kind = SL_SDIM_CONST;
        d.c = v[0];
        return d;
    }
    if (v[0] > 0) { /* c * prod(sym ^ e): factor the symbols' primes out of v[0] */
        int64_t rest = v[0];
        bool any = false;
        for (size_t k = 0; k < sh->n_syms; k++) {
            while (rest % primes[0][k] == 0 && d.exp[k] < 8) {
                rest /= primes[0][k];
                d.exp[k]++;
                any = true;
            }
        }
        int64_t w1, w2;
        if (any && mono_value(sh, d.exp, 1, rest, &w1) && mono_value(sh, d.exp, 2, rest, &w2) &&
            w1 == v[1] && w2 == v[2]) {
            d.kind = SL_SDIM_MONO;
            d.c = rest;
            return d;
        }
        memset(d.exp, 0, sizeof d.exp);
    }
    for (size_t k = 0; k < sh->n_syms; k++) { /* a * sym + b */
        int64_t dx = primes[1][k] - primes[0][k], dy = v[1] - v[0];
        if (dy % dx) continue;
        int64_t a = dy / dx, b = v[0] - a * primes[0][k];
        if (a != 0 && a * primes[2][k] + b == v[2]) {
            d.kind = SL_SDIM_AFFINE;
            d.s = (uint8_t)k;
            d.c = a;
            d.b = b;
            return d;
        }
    }
    return d; /* unknown */
}

int64_t sl_sdim_eval(const sl_sdim_t *d, const int64_t *sym) {
    int64_t v;
    switch (d->kind) {
    case SL_SDIM_CONST:
        return d->c;
    case SL_SDIM_MONO:
        v = d->c;
        for (size_t k = 0; k < SL_SYM_MAX; k++) {
            for (int e = 0; e < d->exp[k]; e++)
                if (!mul_ok(v, sym[k], &v)) return -1;
        }
        return v;
    case SL_SDIM_AFFINE:
        if (!mul_ok(d->c, sym[d->s], &v) || __builtin_add_overflow(v, d->b, &v)) return -1;
        return v < 0 ? -1 : v;
    default:
        return -1;
    }
}

/* "batch", "batch*seq", "4*batch", "seq-1"; NULL when a symbol in it has no name. */
static const char *dim_label(sl_model_t *m, const sl_shapes_t *sh, const sl_sdim_t *d) {
    char buf[256];
    size_t len = 0;
    buf[0] = '\0';
    if (d->kind == SL_SDIM_MONO) {
        if (d->c != 1) len += (size_t)snprintf(buf, sizeof buf, "%lld", (long long)d->c);
        for (size_t k = 0; k < sh->n_syms; k++) {
            for (int e = 0; e < d->exp[k]; e++) {
                if (!sh->sym_name[k]) return NULL;
                if (len < sizeof buf)
                    len += (size_t)snprintf(buf + len, sizeof buf - len, "%s%s", len ? "*" : "",
                                            sh->sym_name[k]);
            }
        }
    } else if (d->kind == SL_SDIM_AFFINE) {
        if (!sh->sym_name[d->s]) return NULL;
        if (d->c != 1) len += (size_t)snprintf(buf, sizeof buf, "%lld*", (long long)d->c);
        if (len < sizeof buf)
            len += (size_t)snprintf(buf + len, sizeof buf - len, "%s", sh->sym_name[d->s]);
        if (d->b && len < sizeof buf)
            snprintf(buf + len, sizeof buf - len, "%+lld", (long long)d->b);
    } else {
        return NULL;
    }
    return sl_arena_strdup(&m->pool, buf);
}

/* Fits every value seen by all fitting probes. */
static void fit_values(shaper_t *s) {
    sl_shapes_t *sh = s->sh;
    for (size_t v = 0; v < s->m->n_values; v++) {
        sl_sshape_t *out = &sh->v[v];
        out->ndim = -1;
        const sl_tensor_t *t0 = &s->pr[0].t[v];
        bool seen = true;
        for (int p = 0; p < N_FIT_PROBES; p++) {
            const sl_tensor_t *t = &s->pr[p].t[v];
            if (s->pr[p].known[v] == V_UNKNOWN || t->ndim != t0->ndim || t->dtype != t0->dtype)
                seen = false;
        }
        if (!seen) continue;
        out->dtype = t0->dtype;
        out->ndim = t0->ndim;
        bool all = true;
        for (int d = 0; d < t0->ndim; d++) {
            int64_t vals[N_FIT_PROBES];
            for (int p = 0; p < N_FIT_PROBES; p++)
                vals[p] = s->pr[p].t[v].dims[d];
            out->dims[d] = fit_dim(sh, vals);
            if (out->dims[d].kind == SL_SDIM_UNKNOWN) all = false;
        }
        if (all) sh->n_known++;
    }
}

static void fmt_sshape(const sl_model_t *m, const sl_sshape_t *x, char *buf, size_t n) {
    size_t len = (size_t)snprintf(buf, n, "[");
    for (int d = 0; d < x->ndim && len < n; d++) {
        const sl_sdim_t *sd = &x->dims[d];
        if (sd->kind == SL_SDIM_CONST)
            len += (size_t)snprintf(buf + len, n - len, "%s%lld", d ? "," : "", (long long)sd->c);
        else
            len += (size_t)snprintf(buf + len, n - len, "%s?", d ? "," : "");
    }
    if (len < n) snprintf(buf + len, n - len, "]");
    (void)m;
}

/* Fills the graph outputs' missing shapes from inference; a declared dim that contradicts a
 * constant inferred one is an error. */
static sl_eng_status_t declare_outputs(shaper_t *s, sl_eng_error_t *err) {
    sl_model_t *m = s->m;
    for (size_t i = 0; i < m->n_outputs; i++) {
        sl_value_info_t *vi = &m->outputs[i];
        const sl_sshape_t *x = &s->sh->v[m->output_ids[i]];
        if (x->ndim < 0) continue;
        if (vi->dtype == SL_DT_UNDEFINED) vi->dtype = x->dtype;
        if (vi->ndim < 0) {
            vi->ndim = x->ndim;
            for (int d = 0; d < x->ndim; d++) {
                vi->dims[d] = -1;
                vi->dim_name[d] = NULL;
            }
        } else if (vi->ndim != x->ndim) {
            char got[160];
            fmt_sshape(m, x, got, sizeof got);
            return sl_eng_set_error(err, SL_ENG_ESHAPE,
                                    "output '%.100s' is declared with %d dims, but the graph "
                                    "computes %d: %s",
                                    vi->name, vi->ndim, x->ndim, got);
        }
        for (int d = 0; d < x->ndim; d++) {
            const sl_sdim_t *sd = &x->dims[d];
            if (sd->kind == SL_SDIM_CONST && vi->dims[d] >= 0 && vi->dims[d] != sd->c) {
                return sl_eng_set_error(err, SL_ENG_ESHAPE,
                                        "output '%.100s': dim %d is declared %lld, but the graph "
                                        "computes %lld",
                                        vi->name, d, (long long)vi->dims[d], (long long)sd->c);
            }
            if (vi->dims[d] >= 0 || vi->dim_name[d]) continue; /* declared: kept */
            if (sd->kind == SL_SDIM_CONST) {
                vi->dims[d] = sd->c;
            } else if (sd->kind != SL_SDIM_UNKNOWN) {
                vi->dim_name[d] = dim_label(m, s->sh, sd);
            }
        }
    }
    return SL_ENG_OK;
}

/* A node that failed with SL_ENG_ESHAPE, first in every probe (so nothing before it was
 * unknown in one probe and not in another): it cannot run whatever the dynamic dims are. */
static sl_eng_status_t find_contradiction(shaper_t *s, sl_eng_error_t *err) {
    int k = s->pr[0].first_fail;
    if (k < 0) return SL_ENG_OK;
    for (int p = 1; p < N_PROBES; p++)
        if (s->pr[p].first_fail != k) return SL_ENG_OK;
    const sl_eng_error_t *e = &s->pr[N_PROBES - 1].fail_err;
    if (s->sh->n_syms == 0) return sl_eng_set_error(err, SL_ENG_ESHAPE, "%s", e->msg);
    return sl_eng_set_error(err, SL_ENG_ESHAPE,
                            "%.440s (with the dynamic dims set to 1; it fails for every value "
                            "tried)",
                            e->msg);
}

sl_eng_status_t sl_shapes_infer(sl_model_t *m, sl_eng_error_t *err) {
    shaper_t s;
    memset(&s, 0, sizeof s);
    s.m = m;
    sl_arena_init(&s.tmp, 64 * 1024);
    s.sh = sl_arena_alloc(&m->pool, sizeof *s.sh);
    s.in = calloc((size_t)m->max_node_inputs + 1, sizeof *s.in);
    s.out = calloc((size_t)m->max_node_outputs + 1, sizeof *s.out);
    sl_eng_status_t st = SL_ENG_ENOMEM;
    if (!s.sh || !s.in || !s.out) goto done;
    memset(s.sh, 0, sizeof *s.sh);
    s.sh->v = sl_arena_alloc(&m->pool, (m->n_values + 1) * sizeof *s.sh->v);
    if (!s.sh->v) goto done;
    bind_symbols(&s);
    /* Without symbols every probe is the same binding: one is enough. */
    int n_probes = s.sh->n_syms ? N_PROBES : 1;
    for (int p = 0; p < n_probes; p++) {
        if ((st = run_probe(&s, p)) != SL_ENG_OK) goto done;
    }
    for (int p = n_probes; p < N_PROBES; p++)
        s.pr[p] = s.pr[0];
    if ((st = find_contradiction(&s, err)) != SL_ENG_OK) goto done;
    fit_values(&s);
    if ((st = declare_outputs(&s, err)) != SL_ENG_OK) goto done;
    m->shapes = s.sh;
done:
    if (st == SL_ENG_ENOMEM)
        sl_eng_set_error(err, SL_ENG_ENOMEM, "out of memory inferring shapes at load");
    free(s.in);
    free(s.out);
    sl_arena_free(&s.tmp);
    return st;
}
