/* Sluice's model backend ABI: the C interface between the inference service and the code that
 * executes a model (the built-in `onnx` engine and `xgboost`, or a backend in a shared object).
 * Modelled on Triton's tritonbackend.h: opaque handles, a backend -> model -> instance
 * lifecycle, one required `execute` over a batch of requests, and a version checked at load.
 *
 * Versioning: a backend reports the SLUICE_BACKEND_API_MAJOR/MINOR it was compiled against in
 * its interface struct. The server refuses a backend whose MAJOR differs from its own or whose
 * MINOR is newer than its own; MINOR bumps only add entries at the end of the structs below
 * (taken from their reserved space), so a backend built for 1.0 keeps working on a 1.x server.
 *
 * Errors: every fallible entry returns a sluice_status_t*, NULL meaning success. A status is
 * created with host->status_new() and its ownership passes to whoever receives it (the server
 * frees the statuses backends return). Messages reach API clients as-is for INVALID_ARGUMENT
 * and are replaced by a generic message (and logged) for INTERNAL: write them accordingly.
 *
 * Concurrency: backend_init/fini, model_load/unload and instance_new/free are called from one
 * control thread at a time. execute is called from the instance's own thread, never twice
 * concurrently on one instance; different instances of one model execute in parallel, so model
 * state must be read-only after model_load (or locked by the backend).
 *
 * Loading: a backend in a shared object exports one symbol, SLUICE_BACKEND_ENTRY_SYMBOL, of type
 * sluice_backend_entry_fn; built-in backends provide the same function, linked in. */
#ifndef SLUICE_BACKEND_H
#define SLUICE_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SLUICE_BACKEND_API_MAJOR 1
#define SLUICE_BACKEND_API_MINOR 0

#if defined(__GNUC__)
#define SLUICE_EXPORT __attribute__((visibility("default")))
#else
#define SLUICE_EXPORT
#endif

#define SLUICE_MAX_DIMS 8

/* Element types: the Open Inference Protocol's datatypes. */
typedef enum sluice_dtype {
    SLUICE_DT_INVALID = 0,
    SLUICE_DT_BOOL,
    SLUICE_DT_UINT8,
    SLUICE_DT_UINT16,
    SLUICE_DT_UINT32,
    SLUICE_DT_UINT64,
    SLUICE_DT_INT8,
    SLUICE_DT_INT16,
    SLUICE_DT_INT32,
    SLUICE_DT_INT64,
    SLUICE_DT_FP16,
    SLUICE_DT_FP32,
    SLUICE_DT_FP64,
    SLUICE_DT_BYTES, /* each element: a 4-byte little-endian length, then that many bytes */
    SLUICE_DT_BF16,
} sluice_dtype_t;

typedef enum sluice_status_code {
    SLUICE_STATUS_INVALID_ARGUMENT = 1, /* the request or the model's config is wrong */
    SLUICE_STATUS_NOT_FOUND = 2,        /* an artifact or a named tensor does not exist */
    SLUICE_STATUS_UNSUPPORTED = 3,      /* valid, but this backend cannot do it */
    SLUICE_STATUS_UNAVAILABLE = 4,      /* transient: a device or resource is busy */
    SLUICE_STATUS_INTERNAL = 5,         /* a bug or an unexpected failure */
} sluice_status_code_t;

typedef struct sluice_status sluice_status_t; /* opaque; see host->status_new */

typedef enum sluice_device_kind {
    SLUICE_DEVICE_CPU = 0,
    SLUICE_DEVICE_GPU = 1,
} sluice_device_kind_t;

/* A dense, row-major tensor. dims[0] is the batch dimension for models with max_batch_size > 0.
 * data/byte_size: for fixed-size types byte_size = product(dims) * element size. */
typedef struct sluice_tensor {
    const char *name;
    sluice_dtype_t dtype;
    uint32_t ndim;
    int64_t dims[SLUICE_MAX_DIMS];
    const void *data;
    uint64_t byte_size;
} sluice_tensor_t;

/* A tensor a model declares in its config: dims may hold -1 (any size). For batching models the
 * batch dimension is NOT included (as in Triton: dims [16] with max_batch_size 8 means [-1,16]). */
typedef struct sluice_tensor_desc {
    const char *name;
    sluice_dtype_t dtype;
    uint32_t ndim;
    int64_t dims[SLUICE_MAX_DIMS];
} sluice_tensor_desc_t;

/* What model_load receives. Every pointer is borrowed for the duration of model_load only:
 * copy what you keep. */
typedef struct sluice_model_desc {
    uint32_t struct_size; /* sizeof(sluice_model_desc_t) as the server compiled it */
    const char *name;
    const char *version;       /* semver, "1.2.0" */
    const char *artifact_path; /* absolute path of the verified artifact file */
    const char *version_dir;   /* the directory holding it */
    uint32_t max_batch_size;   /* 0: the model does not batch */
    size_t n_inputs, n_outputs;
    const sluice_tensor_desc_t *inputs;
    const sluice_tensor_desc_t *outputs;
    /* config.yaml's `parameters:` map, as n_params key/value strings. */
    size_t n_params;
    const char *const *param_keys;
    const char *const *param_values;
    void *reserved[8];
} sluice_model_desc_t;

typedef struct sluice_instance_desc {
    uint32_t struct_size;
    uint32_t index; /* 0 .. count-1 within the model */
    sluice_device_kind_t device;
    int32_t device_id; /* GPU ordinal; 0 for CPU */
    uint32_t threads;  /* intra-op threads the instance may use (>= 1) */
    void *reserved[8];
} sluice_instance_desc_t;

/* A batch handed to execute: one or more requests whose inputs the server has already
 * concatenated along dimension 0 (for max_batch_size 0, exactly one request, inputs as sent).
 * inputs[i] is the model's config input i (config order), dims[0] = batch_size when batching.
 * The backend produces each output it is asked for with host->output_alloc, in any order. */
typedef struct sluice_batch sluice_batch_t; /* opaque */

typedef struct sluice_host sluice_host_t;

/* The functions the server gives a backend (valid from backend_init to backend_fini). */
struct sluice_host {
    uint32_t api_major, api_minor;
    /* Creates a status (message copied, printf-style). Never returns NULL. */
    sluice_status_t *(*status_new)(sluice_status_code_t code, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));
    /* Logs a line under the backend's name (level: 0 debug, 1 info, 2 warn, 3 error). */
    void (*log)(int level, const char *msg);

    /* The batch: the number of requests in it, the total batch size (sum of the requests'
     * dims[0]; 1 for non-batching models), and input i (config order, borrowed until execute
     * returns). */
    uint32_t (*batch_request_count)(const sluice_batch_t *b);
    uint64_t (*batch_size)(const sluice_batch_t *b);
    const sluice_tensor_t *(*batch_input)(const sluice_batch_t *b, size_t i);
    /* Whether output i (config order) was requested by any request in the batch; a backend may
     * skip computing outputs nobody asked for. */
    bool (*batch_output_wanted)(const sluice_batch_t *b, size_t i);
    /* Allocates output i (config order) with the given dtype and dims (dims[0] = batch size when
     * batching) and stores a writable buffer of byte_size bytes in *data, owned by the server
     * and valid until execute returns. For BYTES give byte_size explicitly; for fixed-size types
     * pass 0 and it is computed. Returns NULL or an INVALID_ARGUMENT status when dtype or dims
     * contradict the config. */
    sluice_status_t *(*output_alloc)(sluice_batch_t *b, size_t i, sluice_dtype_t dtype,
                                     uint32_t ndim, const int64_t *dims, uint64_t byte_size,
                                     void **data);
    void *reserved[16];
};

/* The backend's entries, filled with designated initialisers. */
typedef struct sluice_backend_iface {
    uint32_t api_major, api_minor; /* SLUICE_BACKEND_API_MAJOR / _MINOR at compile time */
    const char *name;              /* "onnx"; what config.yaml's `backend:` names */

    /* Optional (NULL: no backend-wide state). Called once before any model loads. */
    sluice_status_t *(*backend_init)(const sluice_host_t *host, void **backend_state);
    /* Optional. Called after every model has been unloaded. */
    void (*backend_fini)(void *backend_state);

    /* Required. Loads a model version (read and verify the artifact, check it against the
     * declared inputs/outputs). *model_state is the backend's; freed by model_unload. */
    sluice_status_t *(*model_load)(void *backend_state, const sluice_model_desc_t *desc,
                                   void **model_state);
    /* Required. Called once every instance of the model has been freed. */
    void (*model_unload)(void *model_state);

    /* Required. Creates an instance (a run context: arenas, device handles). Called on the
     * control thread; the instance is then only used from its own execution thread. */
    sluice_status_t *(*instance_new)(void *model_state, const sluice_instance_desc_t *desc,
                                     void **instance_state);
    void (*instance_free)(void *instance_state);

    /* Required. Executes a batch. On success every wanted output has been allocated and
     * written. A returned status fails every request in the batch. */
    sluice_status_t *(*execute)(void *instance_state, sluice_batch_t *batch);

    void *reserved[8];
} sluice_backend_iface_t;

/* The one exported symbol of a backend: returns its interface (static storage). */
typedef const sluice_backend_iface_t *(*sluice_backend_entry_fn)(void);
#define SLUICE_BACKEND_ENTRY_SYMBOL "sluice_backend_entry"

/* Size in bytes of one element; 0 for BYTES and INVALID. */
static inline size_t sluice_dtype_size(sluice_dtype_t t) {
    switch (t) {
    case SLUICE_DT_BOOL:
    case SLUICE_DT_UINT8:
    case SLUICE_DT_INT8:
        return 1;
    case SLUICE_DT_UINT16:
    case SLUICE_DT_INT16:
    case SLUICE_DT_FP16:
    case SLUICE_DT_BF16:
        return 2;
    case SLUICE_DT_UINT32:
    case SLUICE_DT_INT32:
    case SLUICE_DT_FP32:
        return 4;
    case SLUICE_DT_UINT64:
    case SLUICE_DT_INT64:
    case SLUICE_DT_FP64:
        return 8;
    default:
        return 0;
    }
}

#ifdef __cplusplus
}
#endif

#endif
