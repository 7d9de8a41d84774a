/* The Open Inference Protocol's wire types, shared by every OIP user (the inference service's
 * front ends and scheduler, the gateway): datatype names, the inference request with its arena,
 * the response, client-visible error codes, and the hand-off of a finished request back to the
 * I/O loop that took it. Datatypes are the backend ABI's (OIP names). Depends on core only. */
#ifndef SL_OIP_TYPES_H
#define SL_OIP_TYPES_H

#include "core/common.h"
#include "core/runtime.h"

#include <sluice/backend.h>

#include <stdint.h>

/* Tensors per request or response: the most inputs or outputs a model may declare, so the codecs
 * refuse more before anything is allocated for them. */
#define SL_OIP_MAX_TENSORS 64

/* Outcomes a client can see. Each maps to one HTTP status and one gRPC code. */
typedef enum sl_infer_code {
    SL_INFER_OK = 0,
    SL_INFER_INVALID,     /* 400 / INVALID_ARGUMENT: the request is wrong (names the field) */
    SL_INFER_NOT_FOUND,   /* 404 / NOT_FOUND: unknown model or version */
    SL_INFER_UNAVAILABLE, /* 503 / UNAVAILABLE: model not ready (loading, unloading) */
    SL_INFER_OVERLOADED,  /* 503 + Retry-After / RESOURCE_EXHAUSTED: queue full */
    SL_INFER_TIMEOUT,     /* 504 / DEADLINE_EXCEEDED: the request's queue timeout passed */
    SL_INFER_INTERNAL,    /* 500 / INTERNAL: generic message to the client, details logged */
} sl_infer_code_t;

int sl_infer_code_http(sl_infer_code_t c);
int sl_infer_code_grpc(sl_infer_code_t c); /* an sl_grpc_code_t */

typedef struct sl_infer_error {
    sl_infer_code_t code;
    char msg[256]; /* safe for clients */
} sl_infer_error_t;

/* Sets e and returns e->code (printf-style message, truncated). */
sl_infer_code_t sl_infer_error_set(sl_infer_error_t *e, sl_infer_code_t code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* OIP datatype names ("FP32") <-> sluice_dtype_t. Unknown names give SLUICE_DT_INVALID. */
sluice_dtype_t sl_dtype_from_name(const char *name, size_t len);
const char *sl_dtype_to_name(sluice_dtype_t t); /* "INVALID" for unknown values */
/* Triton config spellings too ("TYPE_FP32", "TYPE_STRING"): accepted by sl_dtype_from_config. */
sluice_dtype_t sl_dtype_from_config(const char *name);

/* The values an integer datatype of up to 32 bits holds (INT8, INT16, INT32, UINT8, UINT16,
 * UINT32): sets *lo and *hi and returns true. Returns false, leaving both alone, for every other
 * datatype (64-bit integers, floating point, BOOL, BYTES). */
bool sl_dtype_int_range(sluice_dtype_t t, int64_t *lo, int64_t *hi);

/* An IEEE half (FP16) as a float, exactly (subnormals, infinities and NaN included). */
float sl_half_to_float(uint16_t h);

/* Element count of dims (1 for ndim 0); -1 if any dim is negative or the product overflows
 * 2^62. */
int64_t sl_dims_numel(const int64_t *dims, uint32_t ndim);

/* Writes dims as "[2,16]" into buf of cap bytes (always terminated; a long shape is cut, which
 * is fine for messages) and returns buf. */
const char *sl_dims_str(const int64_t *dims, uint32_t ndim, char *buf, size_t cap);

/* One input as received. data points either into the request's wire buffer (binary tensors,
 * raw_input_contents: borrowed, valid until the request is completed) or into the request's
 * arena (decoded JSON / typed contents). */
typedef struct sl_infer_input {
    const char *name; /* arena */
    sluice_dtype_t dtype;
    uint32_t ndim;
    int64_t dims[SLUICE_MAX_DIMS];
    const void *data;
    uint64_t byte_size;
} sl_infer_input_t;

/* An output the client asked for (REST `outputs`, gRPC `outputs`). */
typedef struct sl_infer_output_req {
    const char *name; /* arena */
    bool binary;      /* REST: return as binary (binary_data or binary_data_output) */
} sl_infer_output_req_t;

/* One output of a response; name and data are owned by the response. */
typedef struct sl_infer_output {
    const char *name;
    sluice_dtype_t dtype;
    uint32_t ndim;
    int64_t dims[SLUICE_MAX_DIMS];
    void *data;
    uint64_t byte_size;
} sl_infer_output_t;

/* A response is one allocation: the struct, the strings, the output array and the data. */
typedef struct sl_infer_response {
    const char *model_name;
    const char *model_version;
    sl_infer_output_t *outputs;
    size_t n_outputs;
    bool cached; /* answered from the response cache */
} sl_infer_response_t;

/* Allocates a response with n_outputs outputs named output_names[i] (all strings copied) and
 * data_bytes of output data in the same block; the caller then sets each output's dtype, dims,
 * byte_size and data (pointing into sl_infer_response_data(), 16-byte aligned). */
sl_infer_response_t *sl_infer_response_new(const char *model_name, const char *model_version,
                                           size_t n_outputs, const char *const *output_names,
                                           uint64_t data_bytes);
uint8_t *sl_infer_response_data(sl_infer_response_t *resp);
/* A deep copy (for the response cache). */
sl_infer_response_t *sl_infer_response_clone(const sl_infer_response_t *resp);
void sl_infer_response_free(sl_infer_response_t *resp);

typedef struct sl_infer_request sl_infer_request_t;

/* Completion: runs exactly once on the loop the request was created on (req->loop), with resp
 * (owned by the callee, free with sl_infer_response_free) on success or err otherwise. The
 * callee then frees req with sl_infer_request_free. */
typedef void (*sl_infer_done_cb)(sl_infer_request_t *req, sl_infer_response_t *resp,
                                 const sl_infer_error_t *err, void *arg);

struct sl_infer_request {
    /* Set by the front end. Strings live in the request's arena (sl_infer_request_strdup). */
    const char *model_name;
    const char *model_version; /* NULL or "": the version policy's newest ready version */
    const char *id;            /* echoed back; may be NULL */
    sl_infer_input_t *inputs;
    size_t n_inputs;
    sl_infer_output_req_t *outputs; /* n_outputs 0: every output of the model */
    size_t n_outputs;
    bool binary_default; /* REST binary_data_output */
    uint32_t priority;   /* 0: the model's default level; 1 is the highest */
    bool warmup;         /* the server's own warm-up request: kept out of the statistics */
    uint64_t timeout_us; /* 0: the model's default queue timeout */

    sl_loop_t *loop; /* where done runs */
    sl_infer_done_cb done;
    void *done_arg;

    /* Timestamps (sl_now_ns clock) filled along the way, for metrics and statistics. */
    uint64_t t_received_ns, t_queued_ns, t_compute_start_ns, t_compute_end_ns;

    /* Internal to oip_types.c: the arena and the completion hand-off. */
    struct sl_infer_arena *arena_;
    bool holds_loop_;
    sl_infer_response_t *resp_;
    sl_infer_error_t err_;
};

/* A request bound to loop (the calling I/O thread's). Free with sl_infer_request_free. */
sl_infer_request_t *sl_infer_request_new(sl_loop_t *loop, sl_infer_done_cb done, void *arg);
void sl_infer_request_free(sl_infer_request_t *req);
/* Arena memory that lives as long as the request (16-byte aligned, never NULL: OOM aborts). */
void *sl_infer_request_alloc(sl_infer_request_t *req, size_t n);
const char *sl_infer_request_strndup(sl_infer_request_t *req, const char *s, size_t n);
/* Appends an input / requested output slot (zeroed) and returns it. The arrays move as they
 * grow: a returned pointer is valid only until the next add of the same kind (keep indices). */
sl_infer_input_t *sl_infer_request_add_input(sl_infer_request_t *req);
sl_infer_output_req_t *sl_infer_request_add_output(sl_infer_request_t *req);

/* Completes req from any thread: hands resp (ownership passes) or err (copied; resp NULL) to
 * req->done on req->loop (always later, through sl_loop_post, even from that loop's thread).
 * If that loop has stopped, resp and req are freed here. A request with loop NULL (warm-up,
 * tests) has done called directly on the completing thread. */
void sl_infer_request_complete(sl_infer_request_t *req, sl_infer_response_t *resp,
                               const sl_infer_error_t *err);

#endif
