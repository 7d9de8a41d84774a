/* The executor's memory plan: reuse of tensor buffers by lifetime inside a run's arena. The
 * static part (which values die after which node) is computed once per run context from the
 * model's final node list; the sizes are only known per run (infer computes them), so buffers
 * are handed out per run, best fit from a free list before the arena grows. Used by exec.c. */
#include "engine/model_internal.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static size_t align_up(size_t n) {
    return (n + (SL_ARENA_ALIGN - 1)) & ~(size_t)(SL_ARENA_ALIGN - 1);
}

sl_eng_status_t sl_plan_init(sl_plan_t *p, const sl_model_t *m, sl_arena_t *arena) {
    memset(p, 0, sizeof *p);
    p->arena = arena;
    size_t n = m->n_nodes, nv = m->n_values;
    /* The last node reading each value, from the nodes as they are now: folding and fusion
     * may have changed them since graph.c computed last_use, and a stale index here would
     * hand a live buffer to another value. */
    int *last = malloc((nv + 1) * sizeof *last);
    bool *made = calloc(nv + 1, sizeof *made); /* produced by a node of the run */
    p->dead_start = calloc(n + 2, sizeof *p->dead_start);
    p->val_buf = malloc((nv + 1) * sizeof *p->val_buf);
    if (!last || !made || !p->dead_start || !p->val_buf) goto oom;
    size_t outs = 0;
    for (size_t v = 0; v < nv; v++) {
        last[v] = -1;
        p->val_buf[v] = -1;
    }
    for (size_t k = 0; k < n; k++) {
        const sl_node_t *nd = &m->nodes[k];
        outs += (size_t)nd->n_outputs;
        for (int j = 0; j < nd->n_inputs; j++) {
            if (nd->inputs[j] >= 0) last[nd->inputs[j]] = (int)k;
        }
        for (int j = 0; j < nd->n_outputs; j++) {
            int o = nd->outputs[j];
            if (o < 0) continue;
            made[o] = true;
            /* An output nobody reads dies right after its node (optional outputs such as a
             * pool's indices); one read later is overwritten by the loop above. */
            if (last[o] < (int)k) last[o] = (int)k;
        }
    }
    for (size_t i = 0; i < m->n_outputs; i++)
        made[m->output_ids[i]] = false; /* returned to the caller: never reused */
    size_t n_dead = 0;
    for (size_t v = 0; v < nv; v++) {
        if (made[v] && last[v] >= 0) {
            p->dead_start[last[v] + 1]++;
            n_dead++;
        }
    }
    for (size_t k = 0; k < n; k++)
        p->dead_start[k + 1] += p->dead_start[k];
    p->dead = malloc((n_dead + 1) * sizeof *p->dead);
    size_t *fill = calloc(n + 1, sizeof *fill);
    if (!p->dead || !fill) {
        free(fill);
        goto oom;
    }
    for (size_t v = 0; v < nv; v++) {
        if (made[v] && last[v] >= 0) {
            size_t k = (size_t)last[v];
            p->dead[p->dead_start[k] + fill[k]++] = (int)v;
        }
    }
    free(fill);
    free(last);
    free(made);
    /* A run takes at most one buffer per node output, each new or reused: the arrays are
     * sized once here so that planning never allocates. */
    if (outs > INT32_MAX / 2) goto oom_arrays;
    p->max_bufs = (int)outs;
    p->bufs = malloc((outs + 1) * sizeof *p->bufs);
    p->free_ids = malloc((outs + 1) * sizeof *p->free_ids);
    if (!p->bufs || !p->free_ids) goto oom_arrays;
    return SL_ENG_OK;
oom:
    free(last);
    free(made);
oom_arrays:
    return SL_ENG_ENOMEM;
}

void sl_plan_free(sl_plan_t *p) {
    if (!p) return;
    free(p->dead);
    free(p->dead_start);
    free(p->bufs);
    free(p->free_ids);
    free(p->val_buf);
    memset(p, 0, sizeof *p);
}

void sl_plan_reset(sl_plan_t *p) {
    /* val_buf is not cleared: a value's entry is written when its producer runs and read (by
     * sl_plan_after_node) only after its last reader, later in the same run, so an entry left
     * by an earlier run is never read. */
    p->n_bufs = 0;
    p->n_free = 0;
    p->peak = 0;
    p->demand = 0;
}

int sl_plan_take(sl_plan_t *p, size_t bytes) {
    if (bytes > SIZE_MAX / 2) return -1;
    size_t need = align_up(bytes ? bytes : 1);
    p->demand += need;
    /* Best fit: the smallest free buffer that holds need. Ties go to the earliest on the free
     * list, which keeps the choice deterministic from run to run. */
    int best = -1;
    size_t best_cap = SIZE_MAX;
    for (int i = 0; i < p->n_free; i++) {
        size_t cap = p->bufs[p->free_ids[i]].cap;
        if (cap >= need && cap < best_cap) {
            best = i;
            best_cap = cap;
            if (cap == need) break;
        }
    }
    if (best >= 0) {
        int b = p->free_ids[best];
        p->free_ids[best] = p->free_ids[--p->n_free];
        return b;
    }
    if (p->n_bufs >= p->max_bufs) return -1; /* cannot happen: one take per node output */
    void *data = sl_arena_alloc(p->arena, need);
    if (!data) return -1;
    int b = p->n_bufs++;
    p->bufs[b].data = data;
    p->bufs[b].cap = need;
    p->peak += need;
    return b;
}

void sl_plan_give(sl_plan_t *p, int b) {
    if (b < 0) return;
    p->free_ids[p->n_free++] = b;
}

void sl_plan_after_node(sl_plan_t *p, size_t k) {
    for (size_t i = p->dead_start[k]; i < p->dead_start[k + 1]; i++) {
        int v = p->dead[i];
        sl_plan_give(p, p->val_buf[v]);
        p->val_buf[v] = -1;
    }
}
