/* Internal to the engine: the loaded model (values, nodes in topological order, declared inputs
 * and outputs), the bump arena that holds a model's load-time memory and a run's tensors, and
 * the graph pass that model.c runs after conversion. Nothing outside src/engine (and its tests)
 * includes this header. */
#ifndef SL_ENGINE_MODEL_INTERNAL_H
#define SL_ENGINE_MODEL_INTERNAL_H

#include "engine/engine.h"
#include "engine/op.h"

/* ---- arena (arena.c) ---- */

/* A chain of large blocks with 64-byte aligned bump allocation. Reset keeps every block, so a
 * sequence of allocations that fitted once fits again without touching the heap. */
typedef struct sl_arena_block sl_arena_block_t;

typedef struct sl_arena {
    sl_arena_block_t *first;
    sl_arena_block_t *cur;
    size_t block_size; /* the size of a new block unless an allocation needs more */
    size_t n_blocks;   /* blocks ever added and still held: what the arena-reuse test reads */
    size_t bytes;      /* bytes held in all blocks */
} sl_arena_t;

/* A position to come back to (scratch memory released after a node). */
typedef struct sl_arena_mark {
    sl_arena_block_t *block;
    size_t used;
} sl_arena_mark_t;

#define SL_ARENA_ALIGN 64

void sl_arena_init(sl_arena_t *a, size_t block_size);
/* n bytes, 64-byte aligned, valid until the next reset or free; NULL when out of memory. n = 0
 * still returns a distinct valid pointer. */
void *sl_arena_alloc(sl_arena_t *a, size_t n);
/* A NUL-terminated copy of s (NULL is copied as ""), or NULL when out of memory. */
char *sl_arena_strdup(sl_arena_t *a, const char *s);
/* Forgets every allocation but keeps the blocks. */
void sl_arena_reset(sl_arena_t *a);
sl_arena_mark_t sl_arena_mark(const sl_arena_t *a);
/* Forgets the allocations made after m (m must come from this arena since its last reset). */
void sl_arena_release(sl_arena_t *a, sl_arena_mark_t m);
/* Frees every block; the arena may be initialised again. */
void sl_arena_free(sl_arena_t *a);

/* ---- model ---- */

typedef enum sl_value_kind {
    SL_VAL_UNSET = 0, /* named by a node input but produced by nothing (an error at load) */
    SL_VAL_INPUT,     /* a model input */
    SL_VAL_CONST,     /* an initializer or a Constant node's value: tensor holds the data */
    SL_VAL_NODE,      /* the output of a node */
} sl_value_kind_t;

typedef struct sl_value {
    const char *name;
    sl_value_kind_t kind;
    int producer;       /* SL_VAL_NODE: index into model->nodes (topological order), else -1 */
    int input_idx;      /* SL_VAL_INPUT: index into model->inputs, else -1 */
    int last_use;       /* index of the last node reading it; -1 when no node reads it */
    bool is_output;     /* a graph output: lives to the end of the run */
    sl_tensor_t tensor; /* SL_VAL_CONST: dtype, dims and data (owned by the model) */
} sl_value_t;

typedef struct sl_opset {
    const char *domain; /* "" for ai.onnx */
    int64_t version;
} sl_opset_t;

struct sl_model {
    sl_model_opts_t opts; /* with defaults filled in */
    sl_arena_t pool;      /* every string and array of the model, freed in one call */
    void **owned;         /* malloc'd tensor data (initializers, constants, tensor attrs) */
    size_t n_owned, cap_owned;

    int64_t ir_version;
    int64_t model_version;
    const char *producer_name;
    const char *producer_version;
    const char *domain;
    const char *doc_string;
    size_t n_opsets;
    sl_opset_t *opsets;
    size_t n_meta;
    const char **meta_keys;
    const char **meta_values;

    size_t n_values;
    sl_value_t *values;
    size_t n_nodes; /* Constant nodes are folded away: these are the nodes that run */
    sl_node_t *nodes;
    size_t n_inputs;
    sl_value_info_t *inputs;
    int *input_ids;
    size_t n_outputs;
    sl_value_info_t *outputs;
    int *output_ids;
    size_t n_initializers;
    int64_t n_params;
    int max_node_inputs; /* the largest n_inputs of any node: sizes the executor's arrays */
    int max_node_outputs;
    size_t n_prepared; /* nodes [0, n_prepared) went through op->prepare: release those */
    bool runnable;     /* false only for models built for sl_model_inspect's description */
    char why_not[512];
};

/* ---- graph (graph.c) ---- */

/* A name -> value id table used while loading. */
typedef struct sl_name_map sl_name_map_t;

sl_name_map_t *sl_name_map_new(size_t expected);
void sl_name_map_free(sl_name_map_t *m);
/* The id stored for name, or -1. */
int sl_name_map_get(const sl_name_map_t *m, const char *name);
/* Stores name -> id (name is borrowed and must outlive the map). SL_ENG_ENOMEM on failure. */
sl_eng_status_t sl_name_map_put(sl_name_map_t *m, const char *name, int id);

/* Orders m->nodes topologically (Kahn; stable: ties keep file order), checks that every value a
 * node reads is produced and that every graph output is, and computes producer and last_use
 * of every value. m->values must have kind set; producer is filled in here. A cycle is
 * SL_ENG_EGRAPH naming a node on it. */
sl_eng_status_t sl_graph_order(sl_model_t *m, sl_eng_error_t *err);

/* ---- executor (exec.c) ---- */

/* Blocks the run context's arena holds: after a warm-up run, a run with the same input shapes
 * must not add one. */
size_t sl_run_arena_blocks(const sl_run_t *r);

#endif
