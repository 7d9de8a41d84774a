/* Internal to the engine: the loaded model (values, nodes in topological order, declared inputs
 * and outputs), the bump arena that holds a model's load-time memory and a run's tensors, the
 * graph passes that model.c runs after conversion (ordering, constant folding, fusion) and the
 * executor's memory plan. Nothing outside src/engine (and its tests) includes this header. */
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

typedef struct sl_shapes sl_shapes_t; /* shape.c */

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
    size_t n_prepared;   /* nodes [0, n_prepared) went through op->prepare: release those */
    size_t n_fused_bn;   /* BatchNormalization nodes folded into the Conv before them (fuse.c) */
    size_t n_fused_bias; /* Add nodes folded into the MatMul before them as its bias */
    size_t n_fused_act;  /* activations folded into the Gemm or MatMul before them */
    size_t n_folded;     /* nodes constant folding ran at load and removed (fold.c) */
    sl_shapes_t *shapes; /* load-time shapes (shape.c), NULL when not inferred */
    bool runnable;       /* false only for models built for sl_model_inspect's description */
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

/* Recomputes producer, last_use and is_output of every value from m->nodes as it stands: the
 * passes that remove or replace nodes after ordering (folding, fusion) call it. */
void sl_graph_lifetimes(sl_model_t *m);

/* ---- constant folding (fold.c) ---- */

/* The largest tensor folding makes (each output of a folded node), and the most it makes in
 * all: past these a node is left to run time. */
#define SL_FOLD_MAX_TENSOR_BYTES ((size_t)64 << 20)
#define SL_FOLD_MAX_TOTAL_BYTES  ((size_t)256 << 20)

/* Runs once, at load, every node whose inputs are all constants and whose output is a pure
 * function of them (random ops and Dropout are left alone), in topological order so chains
 * fold; their outputs become constants held in m->pool and the nodes leave m->nodes
 * (m->n_folded counts them; producer and last_use are recomputed). Must run before
 * prepare_nodes: it prepares and releases each node it folds itself. A node that fails
 * (infer, run, size limits) is kept and fails again, with its message, at run time. Returns
 * SL_ENG_OK, or SL_ENG_ENOMEM with err set. */
sl_eng_status_t sl_fold_constants(sl_model_t *m, sl_eng_error_t *err);

/* ---- load-time fusions (fuse.c) ---- */

/* What fuse.c hangs on node->state of a Gemm or MatMul node that absorbed the nodes after it
 * (held in the model's pool, never released). The node keeps its name, op_type and first
 * inputs, so errors still name it; its op becomes sl_op_gemm_fused or sl_op_matmul_fused. */
typedef struct sl_fused {
    /* MatMul only: input 2 is a constant float bias with every dim 1 but the last, which is
     * 1 or N (B's columns): the Add that followed, broadcast over the output's last dim. */
    bool bias;
    /* The activation that followed (Relu, LeakyRelu, Sigmoid, Tanh or Clip), a copy of its node
     * with its op and attributes, run in place on the output; NULL when none. */
    const sl_node_t *act;
    bool act_relu;                /* act is a Relu: the kernels' own in-place loop */
    int act_n_in;                 /* its inputs: 1, or up to 3 for Clip 11+ */
    const sl_tensor_t *act_in[3]; /* [1], [2]: Clip's constant min and max (NULL: absent) */
} sl_fused_t;

/* The kernels of fused nodes (ops_linalg.c); not in any table, so no model can name them. Both
 * are float32 only, which fuse.c guarantees by fusing only nodes whose B is a float constant. */
extern const sl_op_t sl_op_gemm_fused;
extern const sl_op_t sl_op_matmul_fused;

/* Rewrites the ordered graph of a runnable model before its nodes are prepared: folds
 * Conv + BatchNormalization into the Conv's weights and bias, and MatMul + Add (constant bias)
 * and Gemm/MatMul + activation into one node, where the intermediate values have no other
 * reader and are not graph outputs. Removed nodes' memory stays in the pool; weights replaced
 * by folded copies are freed when nothing else reads them. Recomputes producer and last_use.
 * Returns SL_ENG_OK, or SL_ENG_ENOMEM (err set), after which the model may only be freed. */
sl_eng_status_t sl_fuse(sl_model_t *m, sl_eng_error_t *err);

/* ---- shape inference at load (shape.c) ---- */

/* The most distinct dynamic dims (named or not) of the graph inputs that shape inference
 * tracks; dims past it are left to run time. */
#define SL_SYM_MAX 16

/* A dim as load-time inference knows it: a constant, a product of symbols times a constant
 * ("batch", "batch*seq", "4*batch"), an affine function of one symbol ("seq-1"), or unknown. */
typedef enum sl_sdim_kind {
    SL_SDIM_UNKNOWN = 0,
    SL_SDIM_CONST,  /* c */
    SL_SDIM_MONO,   /* c * prod(sym[i] ^ exp[i]) */
    SL_SDIM_AFFINE, /* c * sym[s] + b */
} sl_sdim_kind_t;

typedef struct sl_sdim {
    uint8_t kind;
    uint8_t s;               /* AFFINE: the symbol */
    uint8_t exp[SL_SYM_MAX]; /* MONO: exponent of each symbol */
    int64_t c, b;
} sl_sdim_t;

/* A value's shape at load: ndim -1 when unknown (left to run time). */
typedef struct sl_sshape {
    sl_dtype_t dtype;
    int ndim;
    sl_sdim_t dims[SL_MAX_DIMS];
} sl_sshape_t;

/* What shape.c leaves on the model (m->shapes; NULL when inference did not run). */
struct sl_shapes {
    size_t n_syms;
    const char *sym_name[SL_SYM_MAX]; /* NULL for a dim without a name */
    int sym_input[SL_SYM_MAX];        /* where each symbol is bound: graph input index... */
    int sym_dim[SL_SYM_MAX];          /* ...and dim */
    sl_sshape_t *v;                   /* one per value id */
    size_t n_known;                   /* values whose every dim is known (not UNKNOWN) */
};

/* Propagates shapes through the prepared graph with the graph inputs' dynamic dims as symbols
 * (each kernel's own infer, run on a few probe bindings of the symbols, with the small integer
 * tensors of shape arithmetic computed along the way), then fits every dim to the forms above.
 * Declared graph outputs that lack a shape or a dim get the inferred one (dims -1 with a
 * dim_name such as "batch" or "batch*seq"). A node whose shapes fail for every binding tried
 * is a contradiction: SL_ENG_ESHAPE naming it. Whatever cannot be inferred is left to run time.
 * Returns SL_ENG_OK, SL_ENG_ESHAPE or SL_ENG_ENOMEM (err set). Memory: m->pool. */
sl_eng_status_t sl_shapes_infer(sl_model_t *m, sl_eng_error_t *err);

/* The value of d with the symbols bound to sym[]; -1 when unknown. */
int64_t sl_sdim_eval(const sl_sdim_t *d, const int64_t *sym);

/* ---- intra-op thread pool (pool.c) ---- */

/* A pool of threads - 1 workers (the caller of sl_par_for is the last thread); NULL when
 * threads < 2 or no thread could be started (kernels then run single-threaded). Free with
 * sl_pool_free, which joins the workers. */
sl_pool_t *sl_pool_new(int threads);
void sl_pool_free(sl_pool_t *p);
/* Threads a job uses: workers + 1; 1 for NULL. */
int sl_pool_threads(const sl_pool_t *p);

/* ---- executor (exec.c) ---- */

/* Blocks the run context's arena holds: after a warm-up run, a run with the same input shapes
 * must not add one. */
size_t sl_run_arena_blocks(const sl_run_t *r);
/* Bytes of tensor buffers the last run took from its arena: its high-water mark, since buffers
 * go back to the plan's free list, never to the arena, within a run (scratch not counted). */
size_t sl_run_peak_bytes(const sl_run_t *r);
/* Bytes the last run's node outputs would have taken with no reuse (one buffer each). */
size_t sl_run_demand_bytes(const sl_run_t *r);

/* ---- memory plan (plan.c) ---- */

/* Which buffers can be reused when. The static part comes from the model's final node list
 * (after folding and fusion): after node k, the values in dead[dead_start[k] ..
 * dead_start[k + 1]) are read by no later node, so their buffers go back to the free list
 * (graph outputs never do). The dynamic part is made per run from the actual sizes: a new
 * output takes the smallest free buffer that holds it, else a new one from the arena. Planning
 * is deterministic, so a run with the shapes of an earlier one makes the same choices and fits
 * the arena's kept blocks: warm runs allocate nothing. */
typedef struct sl_plan_buf {
    void *data; /* in the run's arena, valid until the arena is reset */
    size_t cap; /* bytes, a multiple of SL_ARENA_ALIGN */
} sl_plan_buf_t;

typedef struct sl_plan {
    /* static */
    int *dead;          /* value ids, grouped by the node after which they die */
    size_t *dead_start; /* n_nodes + 1 offsets into dead */
    /* per run */
    sl_arena_t *arena; /* borrowed: the run context's */
    sl_plan_buf_t *bufs;
    int n_bufs, max_bufs; /* max_bufs: every node output of a run, the most a run can make */
    int *free_ids;        /* indices into bufs of the free buffers, unordered */
    int n_free;
    int *val_buf;  /* per value id: the buffer holding it, -1 when none */
    size_t peak;   /* bytes of all bufs: the run's high-water mark */
    size_t demand; /* bytes asked for this run */
} sl_plan_t;

/* Builds p's static part from m (borrowed: m must outlive p) over arena (borrowed, the run
 * context's). SL_ENG_ENOMEM when out of memory (p is then safe to sl_plan_free). */
sl_eng_status_t sl_plan_init(sl_plan_t *p, const sl_model_t *m, sl_arena_t *arena);
void sl_plan_free(sl_plan_t *p);
/* Forgets every buffer; call right after resetting the arena, at the start of a run. */
void sl_plan_reset(sl_plan_t *p);
/* A buffer of at least bytes: its index, or -1 when out of memory. */
int sl_plan_take(sl_plan_t *p, size_t bytes);
/* Puts buffer b back on the free list. */
void sl_plan_give(sl_plan_t *p, int b);
/* Gives back the buffers of the values that die after node k. */
void sl_plan_after_node(sl_plan_t *p, size_t k);

#endif
