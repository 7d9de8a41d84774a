/* The graph pass of model loading: a name table for value ids, the checks that every value is
 * produced exactly once, topological order (Kahn) with cycle detection, and each value's last
 * use, which the executor's memory plan (plan.c) uses to reuse buffers by lifetime. */
#include "engine/model_internal.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ---- name -> id table (open addressing, linear probing) ---- */

typedef struct name_slot {
    const char *name; /* NULL: empty */
    int id;
} name_slot_t;

struct sl_name_map {
    name_slot_t *slots;
    size_t cap; /* a power of two */
    size_t len;
};

static uint64_t hash_str(const char *s) {
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ULL;
    }
    return h;
}

sl_name_map_t *sl_name_map_new(size_t expected) {
    sl_name_map_t *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    size_t cap = 16;
    while (cap < expected * 2 && cap < ((size_t)1 << 40))
        cap <<= 1;
    m->slots = calloc(cap, sizeof *m->slots);
    if (!m->slots) {
        free(m);
        return NULL;
    }
    m->cap = cap;
    return m;
}

void sl_name_map_free(sl_name_map_t *m) {
    if (!m) return;
    free(m->slots);
    free(m);
}

static name_slot_t *find_slot(name_slot_t *slots, size_t cap, const char *name) {
    size_t i = (size_t)hash_str(name) & (cap - 1);
    while (slots[i].name && strcmp(slots[i].name, name) != 0)
        i = (i + 1) & (cap - 1);
    return &slots[i];
}

int sl_name_map_get(const sl_name_map_t *m, const char *name) {
    const name_slot_t *s = find_slot(m->slots, m->cap, name);
    return s->name ? s->id : -1;
}

sl_eng_status_t sl_name_map_put(sl_name_map_t *m, const char *name, int id) {
    if ((m->len + 1) * 2 > m->cap) {
        size_t ncap = m->cap * 2;
        name_slot_t *ns = calloc(ncap, sizeof *ns);
        if (!ns) return SL_ENG_ENOMEM;
        for (size_t i = 0; i < m->cap; i++) {
            if (m->slots[i].name) *find_slot(ns, ncap, m->slots[i].name) = m->slots[i];
        }
        free(m->slots);
        m->slots = ns;
        m->cap = ncap;
    }
    name_slot_t *s = find_slot(m->slots, m->cap, name);
    if (!s->name) m->len++;
    s->name = name;
    s->id = id;
    return SL_ENG_OK;
}

/* ---- ordering ---- */

static const char *kind_name(sl_value_kind_t k) {
    switch (k) {
    case SL_VAL_INPUT:
        return "a graph input";
    case SL_VAL_CONST:
        return "an initializer or constant";
    case SL_VAL_NODE:
        return "the output of another node";
    case SL_VAL_UNSET:
        break;
    }
    return "unset";
}

/* Assigns producers: every node output must be new. */
static sl_eng_status_t assign_producers(sl_model_t *m, sl_eng_error_t *err) {
    for (size_t i = 0; i < m->n_values; i++)
        m->values[i].producer = -1;
    for (size_t i = 0; i < m->n_nodes; i++) {
        const sl_node_t *n = &m->nodes[i];
        for (int j = 0; j < n->n_outputs; j++) {
            int o = n->outputs[j];
            if (o < 0) continue;
            sl_value_t *v = &m->values[o];
            if (v->kind != SL_VAL_UNSET) {
                return sl_node_error(n, err, SL_ENG_EGRAPH,
                                     "output '%.100s' is already %s (each value must be "
                                     "produced exactly once)",
                                     v->name,
                                     v->kind == SL_VAL_NODE && v->producer == (int)i
                                         ? "an output of this node"
                                         : kind_name(v->kind));
            }
            v->kind = SL_VAL_NODE;
            v->producer = (int)i;
        }
    }
    for (size_t i = 0; i < m->n_nodes; i++) {
        const sl_node_t *n = &m->nodes[i];
        for (int j = 0; j < n->n_inputs; j++) {
            int id = n->inputs[j];
            if (id >= 0 && m->values[id].kind == SL_VAL_UNSET) {
                return sl_node_error(n, err, SL_ENG_EGRAPH,
                                     "input '%.100s' is not a graph input, an initializer, a "
                                     "constant or the output of any node",
                                     m->values[id].name);
            }
        }
    }
    for (size_t i = 0; i < m->n_outputs; i++) {
        if (m->values[m->output_ids[i]].kind == SL_VAL_UNSET) {
            return sl_eng_set_error(err, SL_ENG_EGRAPH,
                                    "graph output '%.100s' is not produced by any node and is "
                                    "neither an input nor an initializer",
                                    m->values[m->output_ids[i]].name);
        }
    }
    return SL_ENG_OK;
}

/* Called with nodes left over by Kahn's algorithm: walks producer links among them, which
 * must end up going around a cycle; returns a node on it. */
static size_t node_on_cycle(const sl_model_t *m, const int *indeg) {
    size_t cur = 0;
    while (indeg[cur] == 0)
        cur++;
    for (size_t step = 0; step < m->n_nodes; step++) {
        const sl_node_t *n = &m->nodes[cur];
        for (int j = 0; j < n->n_inputs; j++) {
            int id = n->inputs[j];
            if (id < 0 || m->values[id].kind != SL_VAL_NODE) continue;
            int p = m->values[id].producer;
            if (indeg[p] > 0) {
                cur = (size_t)p;
                break;
            }
        }
    }
    return cur;
}

void sl_graph_lifetimes(sl_model_t *m) {
    for (size_t i = 0; i < m->n_values; i++) {
        m->values[i].producer = -1;
        m->values[i].last_use = -1;
        m->values[i].is_output = false;
    }
    for (size_t k = 0; k < m->n_nodes; k++) {
        const sl_node_t *nd = &m->nodes[k];
        for (int j = 0; j < nd->n_outputs; j++) {
            if (nd->outputs[j] >= 0) m->values[nd->outputs[j]].producer = (int)k;
        }
        for (int j = 0; j < nd->n_inputs; j++) {
            if (nd->inputs[j] >= 0) m->values[nd->inputs[j]].last_use = (int)k;
        }
    }
    for (size_t i = 0; i < m->n_outputs; i++)
        m->values[m->output_ids[i]].is_output = true;
}

sl_eng_status_t sl_graph_order(sl_model_t *m, sl_eng_error_t *err) {
    sl_eng_status_t st = assign_producers(m, err);
    if (st != SL_ENG_OK) return st;
    size_t n = m->n_nodes;
    int *indeg = calloc(n + 1, sizeof *indeg);
    size_t *estart = calloc(n + 2, sizeof *estart);
    size_t n_edges = 0;
    for (size_t i = 0; i < n; i++)
        n_edges += (size_t)m->nodes[i].n_inputs;
    int *edges = malloc((n_edges + 1) * sizeof *edges);
    int *order = malloc((n + 1) * sizeof *order);
    sl_node_t *sorted = n ? sl_arena_alloc(&m->pool, n * sizeof *sorted) : NULL;
    if (!indeg || !estart || !edges || !order || (n && !sorted)) {
        st = sl_eng_set_error(err, SL_ENG_ENOMEM, "out of memory ordering the graph");
        goto done;
    }
    /* Edges producer -> consumer in CSR form, one per input reference. */
    for (size_t i = 0; i < n; i++) {
        const sl_node_t *nd = &m->nodes[i];
        for (int j = 0; j < nd->n_inputs; j++) {
            int id = nd->inputs[j];
            if (id < 0 || m->values[id].kind != SL_VAL_NODE) continue;
            estart[m->values[id].producer + 1]++;
            indeg[i]++;
        }
    }
    for (size_t i = 0; i < n; i++)
        estart[i + 1] += estart[i];
    size_t *fill = calloc(n + 1, sizeof *fill);
    if (!fill) {
        st = sl_eng_set_error(err, SL_ENG_ENOMEM, "out of memory ordering the graph");
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        const sl_node_t *nd = &m->nodes[i];
        for (int j = 0; j < nd->n_inputs; j++) {
            int id = nd->inputs[j];
            if (id < 0 || m->values[id].kind != SL_VAL_NODE) continue;
            int p = m->values[id].producer;
            edges[estart[p] + fill[p]++] = (int)i;
        }
    }
    free(fill);
    /* Kahn with a FIFO queue seeded in file order. */
    size_t head = 0, tail = 0;
    for (size_t i = 0; i < n; i++) {
        if (indeg[i] == 0) order[tail++] = (int)i;
    }
    while (head < tail) {
        int u = order[head++];
        for (size_t e = estart[u]; e < estart[u + 1]; e++) {
            if (--indeg[edges[e]] == 0) order[tail++] = edges[e];
        }
    }
    if (tail < n) {
        const sl_node_t *c = &m->nodes[node_on_cycle(m, indeg)];
        st = sl_node_error(c, err, SL_ENG_EGRAPH,
                           "is on a cycle (the graph must be acyclic; %zu nodes cannot be "
                           "ordered)",
                           n - tail);
        goto done;
    }
    /* Reorder the nodes and re-point producers at the new positions. */
    for (size_t k = 0; k < n; k++)
        sorted[k] = m->nodes[order[k]];
    m->nodes = sorted;
    sl_graph_lifetimes(m);
done:
    free(indeg);
    free(estart);
    free(edges);
    free(order);
    return st;
}
