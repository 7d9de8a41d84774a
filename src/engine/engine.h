/* Sluice's ONNX engine: a C library of its own (it depends only on libc, protobuf-c and
 * OpenBLAS, never on the rest of src/), usable alone or through the backend ABI.
 *
 * Use: load a model once (sl_model_load_file / _memory), describe its inputs and outputs, create
 * one run context per thread of execution (sl_run_new), and execute with caller-provided
 * inputs (sl_run_exec). Thread-safety: a loaded model is immutable and may be shared read-only
 * by any number of run contexts on any threads; a run context is used by one thread at a time.
 * Memory: a run context owns an arena; after the first run with given input shapes, further
 * runs with the same shapes allocate nothing. Errors: every function that can fail returns an
 * sl_eng_status_t and, when err is not NULL, a message a user can act on. */
#ifndef SL_ENGINE_H
#define SL_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Status codes (the engine does not share the runtime's codes: it stands alone). */
typedef enum sl_eng_status {
    SL_ENG_OK = 0,
    SL_ENG_EINVAL = -1,       /* bad argument: wrong input name, dtype or shape, ... */
    SL_ENG_ENOMEM = -2,       /* out of memory */
    SL_ENG_EIO = -3,          /* file unreadable */
    SL_ENG_EPARSE = -4,       /* not a valid ONNX model (truncated, corrupt protobuf) */
    SL_ENG_EUNSUPPORTED = -5, /* valid ONNX the engine cannot run: op, dtype, external data */
    SL_ENG_ELIMIT = -6,       /* over a limit: file size, node count, tensor size */
    SL_ENG_EGRAPH = -7,       /* invalid graph: cycle, missing value, duplicate name */
    SL_ENG_ESHAPE = -8,       /* shapes that contradict each other or an op's rules */
} sl_eng_status_t;

const char *sl_eng_strerror(sl_eng_status_t s);

typedef struct sl_eng_error {
    sl_eng_status_t code;
    char msg[512]; /* "node 'fc1' (Gemm): input B has 3 dims, expected 2" */
} sl_eng_error_t;

/* Element types: the values of ONNX's TensorProto.DataType. */
typedef enum sl_dtype {
    SL_DT_UNDEFINED = 0,
    SL_DT_FLOAT = 1,
    SL_DT_UINT8 = 2,
    SL_DT_INT8 = 3,
    SL_DT_UINT16 = 4,
    SL_DT_INT16 = 5,
    SL_DT_INT32 = 6,
    SL_DT_INT64 = 7,
    SL_DT_STRING = 8,
    SL_DT_BOOL = 9,
    SL_DT_FLOAT16 = 10,
    SL_DT_DOUBLE = 11,
    SL_DT_UINT32 = 12,
    SL_DT_UINT64 = 13,
} sl_dtype_t;

/* Size of one element in bytes; 0 for types the engine cannot hold (string, undefined). */
size_t sl_dtype_size(sl_dtype_t t);
/* "float32", "int64", "bool", ...; "unknown" otherwise. */
const char *sl_dtype_name(sl_dtype_t t);

#define SL_MAX_DIMS 8

/* A tensor view: dense, row-major, no strides. The struct does not own data. */
typedef struct sl_tensor {
    sl_dtype_t dtype;
    int ndim; /* 0 for a scalar */
    int64_t dims[SL_MAX_DIMS];
    void *data;
} sl_tensor_t;

/* Number of elements (1 for a scalar) and bytes of t. */
int64_t sl_tensor_numel(const sl_tensor_t *t);
size_t sl_tensor_nbytes(const sl_tensor_t *t);

/* An input or output of a model: dims[i] is -1 for a dynamic dimension (dim_name[i] then holds
 * its symbolic name, e.g. "batch", or NULL). ndim is -1 when the rank is unknown. Outputs the
 * model leaves undeclared get the shapes inferred at load, with names built from the inputs'
 * symbols where a dim follows them ("batch", "batch*seq", "seq-1"). */
typedef struct sl_value_info {
    const char *name;
    sl_dtype_t dtype;
    int ndim;
    int64_t dims[SL_MAX_DIMS];
    const char *dim_name[SL_MAX_DIMS];
} sl_value_info_t;

typedef struct sl_model sl_model_t;
typedef struct sl_run sl_run_t;

typedef struct sl_model_opts {
    size_t max_file_bytes;   /* 0: 1 GiB */
    size_t max_nodes;        /* 0: 100000 */
    size_t max_tensor_bytes; /* any one initializer or intermediate; 0: 1 GiB */
    /* 0 or 1: single-threaded kernels, no thread started (the default: the inference service
     * gets parallelism from instances). N > 1: each run context (sl_run_new) starts N - 1
     * worker threads, and large GEMMs, Conv's im2col, pooling, elementwise ops and
     * softmax / LayerNormalization rows are split across them; results do not depend on N.
     * OpenBLAS caveat: its thread count is process-wide, so the engine sets it to 1 at every
     * load (openblas_set_num_threads) and splits GEMMs itself; any other OpenBLAS user in the
     * process is then single-threaded too. */
    int intra_op_threads;
} sl_model_opts_t;

/* Loads and validates a model (opsets of ai.onnx up to 17 and ai.onnx.ml), inferring shapes
 * with the inputs' dynamic dims as symbols: a node whose shapes contradict each other whatever
 * those dims are (Gemm with K = 64 against K = 32) is SL_ENG_ESHAPE naming it, as is a declared
 * output dim that the graph contradicts. On success *out is a
 * model the caller frees with sl_model_free. opts may be NULL (defaults). A model that parses
 * but uses an op or dtype the engine cannot run is refused with SL_ENG_EUNSUPPORTED naming the
 * op, its domain and opset (sl_model_inspect reports such models without refusing them). */
sl_eng_status_t sl_model_load_file(const char *path, const sl_model_opts_t *opts, sl_model_t **out,
                                   sl_eng_error_t *err);
/* The same from memory (data is only read during the call). */
sl_eng_status_t sl_model_load_memory(const void *data, size_t len, const sl_model_opts_t *opts,
                                     sl_model_t **out, sl_eng_error_t *err);
void sl_model_free(sl_model_t *m);

size_t sl_model_num_inputs(const sl_model_t *m); /* graph inputs that are not initializers */
size_t sl_model_num_outputs(const sl_model_t *m);
const sl_value_info_t *sl_model_input(const sl_model_t *m,
                                      size_t i); /* borrowed, model's lifetime */
const sl_value_info_t *sl_model_output(const sl_model_t *m, size_t i);
/* The opset imported for domain ("" or "ai.onnx" for the default domain), -1 if none. */
int64_t sl_model_opset(const sl_model_t *m, const char *domain);
/* Model metadata: producer name and version, ir_version, doc string, metadata_props. */
const char *sl_model_producer(const sl_model_t *m);
int64_t sl_model_ir_version(const sl_model_t *m);

/* What `sluice model inspect` prints, available for any parseable model (runnable or not). */
typedef struct sl_op_count {
    const char *domain; /* "" for ai.onnx */
    const char *op_type;
    size_t count;
    bool supported;
} sl_op_count_t;

typedef struct sl_model_report {
    size_t n_ops; /* distinct (domain, op_type) pairs, sorted by domain then op_type */
    sl_op_count_t *ops;
    size_t n_nodes;
    size_t n_initializers;
    int64_t n_params; /* elements in initializers */
    bool runnable;
    char why_not[512]; /* when !runnable: the first reason (missing op with domain and opset) */
    /* The model as far as it could be read, to describe it through the accessors above
     * (inputs, outputs, opsets, producer) even when it cannot run; NULL when its graph is
     * invalid (cycle, missing value, ...). sl_run_new refuses it when !runnable. Owned by the
     * report (info_owned) unless it is also the model returned through model_or_null. */
    const sl_model_t *info;
    bool info_owned;
} sl_model_report_t;

/* Parses path without requiring that the engine can run it. Free with sl_model_report_free. */
sl_eng_status_t sl_model_inspect(const char *path, sl_model_report_t *out,
                                 sl_model_t **model_or_null, sl_eng_error_t *err);
void sl_model_report_free(sl_model_report_t *r);

/* A run context for m (borrowed: m must outlive it). */
sl_eng_status_t sl_run_new(const sl_model_t *m, sl_run_t **out, sl_eng_error_t *err);
void sl_run_free(sl_run_t *r);

/* Runs the model. inputs[i] is the model's input i (sl_model_input order); their data is read
 * during the call only. On success outputs[i] receives output i: dtype and dims set, data
 * pointing into the run context's arena, valid until the next sl_run_exec on r or sl_run_free.
 * Wrong names are impossible by construction (positional); a wrong dtype or a shape that
 * contradicts the model's declared dims is SL_ENG_EINVAL with a message naming the input. */
sl_eng_status_t sl_run_exec(sl_run_t *r, const sl_tensor_t *inputs, size_t n_inputs,
                            sl_tensor_t *outputs, size_t n_outputs, sl_eng_error_t *err);
/* The index of the input or output named name, or -1. */
int sl_model_input_index(const sl_model_t *m, const char *name);
int sl_model_output_index(const sl_model_t *m, const char *name);

#ifdef __cplusplus
}
#endif

#endif
