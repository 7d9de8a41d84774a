/* The business route's pipelines (POST /v1/predict/{name}): named JSON fields in, a model's input
 * tensors out to inference, its output tensors back as named JSON fields. A pipeline is a list of
 * steps; this issue has one kind, `model` (the next adds feature lookup and post-processing).
 * Pipelines are parsed from `gateway.pipelines` (the policy parser calls sl_pipeline_parse once
 * per entry), are immutable once built and owned by the policy that holds them, so any number of
 * I/O threads may decode and encode with one at once.
 *
 * Config (one entry of gateway.pipelines; the keys fallback, fault and upstream belong to the
 * policy parser and are accepted and ignored here):
 *
 *   fraud:
 *     model: fraud_xgboost          # required; [A-Za-z0-9_.-], not starting with '.'
 *     version: ""                   # optional; "" or absent: the traffic policy / newest
 *     inputs:                       # required, 1..64 tensors
 *       - tensor: features          # the model's input tensor
 *         datatype: FP32            # FP32 FP64 INT32 INT64 BOOL BYTES
 *         fields: [amount, hour]    # one element each, in order: dims [rows, 2]
 *       - tensor: pixels
 *         datatype: FP32
 *         field: image              # one field holding an array of exactly `length` values
 *         length: 64                # dims [rows, 64]
 *     outputs:                      # required, 1..64
 *       - {field: fraud_probability, tensor: probability}    # the whole row (scalar if 1 element)
 *       - {field: malignant, tensor: probability, index: 0}  # one element of the row
 *     extra_fields: [user_id]       # optional: accepted in requests, never sent to the model
 *
 * Field names are [A-Za-z0-9_.-] (at most SL_PIPELINE_NAME_MAX bytes), unique across inputs and
 * extra_fields; "instances" is reserved.
 *
 * Requests: one object of fields ({"amount": 12.5, "hour": 3}, one row) or
 * {"instances": [{...}, ...]} (1..max_rows rows; extra fields may also sit next to
 * "instances"). Every declared field is required in every row; unknown fields are refused. Types:
 * FP32/FP64 finite JSON numbers (FP32 range checked), INT32/INT64 integers (no fraction; INT64
 * below 2^53 in magnitude, as JSON numbers are doubles), BOOL true/false, BYTES strings.
 *
 * Responses: {"model":"m","version":"v","outputs":{"field":value,...}} for a single object,
 * {"model":"m","version":"v","predictions":[{...},...]} for instances. A row of one element is a
 * scalar, else an array; FP32/FP64 print shortest round-trip, NaN and infinities as null. */
#ifndef SL_GATEWAY_PIPELINE_H
#define SL_GATEWAY_PIPELINE_H

#include "core/buf.h"
#include "core/common.h"
#include "core/yaml_doc.h"
#include "oip/oip_types.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SL_PIPELINE_MAX_TENSORS  SL_OIP_MAX_TENSORS /* input tensors; outputs likewise */
#define SL_PIPELINE_MAX_FIELDS   1024               /* input fields + extra_fields */
#define SL_PIPELINE_MAX_LENGTH   65536              /* elements of one array field */
#define SL_PIPELINE_NAME_MAX     128                /* bytes of a field, model or pipeline name */
#define SL_PIPELINE_TENSOR_MAX   256                /* bytes of a tensor name */
#define SL_PIPELINE_VERSION_MAX  64                 /* bytes of a version */
#define SL_PIPELINE_DEFAULT_ROWS 256                /* max_rows 0 means this */
#define SL_PIPELINE_MAX_ROWS     65536              /* max_rows is clamped to this */
#define SL_PIPELINE_MAX_DEPTH    8                  /* JSON nesting of a request body */

typedef struct sl_pipeline sl_pipeline_t;

typedef enum sl_pipeline_step_kind {
    SL_PIPELINE_STEP_MODEL = 0, /* named fields -> one model's input tensors -> named fields */
} sl_pipeline_step_kind_t;

/* --- Config --------------------------------------------------------------------------------- */

/* Builds the pipeline called name (the route's {name}: [A-Za-z0-9_.-], not starting with '.')
 * from node, its mapping under gateway.pipelines. Returns 0 and *out (free with
 * sl_pipeline_free), or SL_EINVAL with *out NULL after reporting every problem found to e (one
 * "file:line: message" line each). name and node are borrowed for the call only: the pipeline
 * copies what it keeps. */
int sl_pipeline_parse(sl_yaml_errors_t *e, const char *name, const sl_yaml_node_t *node,
                      sl_pipeline_t **out);
/* Frees p (NULL is fine). No decode or encode may be running with it. */
void sl_pipeline_free(sl_pipeline_t *p);

/* Accessors; every string is owned by p and lives as long as it does. */
const char *sl_pipeline_name(const sl_pipeline_t *p);
const char *sl_pipeline_model(const sl_pipeline_t *p);
const char *sl_pipeline_version(const sl_pipeline_t *p); /* NULL when none is configured */
uint32_t sl_pipeline_line(const sl_pipeline_t *p);       /* config line, for messages */
size_t sl_pipeline_step_count(const sl_pipeline_t *p);   /* 1 in this issue */
sl_pipeline_step_kind_t sl_pipeline_step_kind(const sl_pipeline_t *p, size_t i);
/* The response's output field names in config order (the policy parser checks a fallback
 * default against them): i < sl_pipeline_output_count(p). */
size_t sl_pipeline_output_count(const sl_pipeline_t *p);
const char *sl_pipeline_output_field(const sl_pipeline_t *p, size_t i);
/* Whether field is one of the output field names. */
bool sl_pipeline_has_output_field(const sl_pipeline_t *p, const char *field);

/* --- Requests ------------------------------------------------------------------------------- */

/* What decoding learnt about a request, for routing, the fallback cache and the encoder.
 * Zero-initialise it ({0}) before decoding; release it with sl_pipeline_input_free. */
typedef struct sl_pipeline_input {
    uint32_t rows;  /* rows sent to the model: dims[0] of every input tensor */
    bool instances; /* the body was {"instances": [...]}; else a single object */
    /* 64-bit FNV-1a over the model inputs only (per tensor in config order: name, dtype, dims,
     * bytes), so it ignores extra fields and JSON key order: the fallback cache's key. */
    uint64_t hash;
    /* private */
    struct cJSON *root_;
    const struct cJSON *first_row_;
    char num_[32];
} sl_pipeline_input_t;

/* Decodes the request body body[0..len) (borrowed; its size limit is the caller's) against p
 * into req, which the caller created and which must have no inputs or outputs yet: model_name
 * (and model_version when p has one) set, one input per tensor with dims [rows, n] and its data
 * (little-endian, row-major) in req's arena, and the outputs p names as requested outputs.
 * max_rows bounds the rows of an instances request (0: SL_PIPELINE_DEFAULT_ROWS; at most
 * SL_PIPELINE_MAX_ROWS). Returns SL_INFER_OK and fills info (which then holds the parsed body
 * until sl_pipeline_input_free), or SL_INFER_INVALID with a client-safe message in err naming the
 * field and row ("instances[3]: missing field 'hour'"); then req may hold part of the request
 * (the caller frees it as usual) and info holds nothing. */
sl_infer_code_t sl_pipeline_decode(const sl_pipeline_t *p, const uint8_t *body, size_t len,
                                   uint32_t max_rows, sl_infer_request_t *req,
                                   sl_pipeline_input_t *info, sl_infer_error_t *err);

/* The text of the request's top-level field name when it is a string or a number (for sticky
 * routing by e.g. user_id): the body's own field, or for an instances request without one, the
 * first instance's. Numbers are written as JSON would (integers without a fraction). Returns 0
 * and *out, SL_ENOENT when absent, SL_EINVAL when it is neither string nor number. out->ptr is
 * borrowed from info: valid until the next call with info or sl_pipeline_input_free. */
int sl_pipeline_input_field(sl_pipeline_input_t *info, const char *name, sl_str_t *out);

/* Frees what decode kept in info (safe on a zeroed or already freed info) and zeroes it. */
void sl_pipeline_input_free(sl_pipeline_input_t *info);

/* --- Responses ------------------------------------------------------------------------------ */

/* Appends the response body for resp (borrowed) to out, shaped by info (the decoded request:
 * single object or instances, rows). Returns SL_INFER_OK, or SL_INFER_INTERNAL with out untouched
 * when resp does not fit the pipeline (an output tensor missing, dims[0] other than rows, a byte
 * size that does not match its dims, an `index` beyond the row): that is the upstream's fault, so
 * the gateway answers 502 Bad Gateway with a generic body and logs err->msg (which names the
 * tensor and is not meant for clients). */
sl_infer_code_t sl_pipeline_encode(const sl_pipeline_t *p, const sl_pipeline_input_t *info,
                                   const sl_infer_response_t *resp, sl_buf_t *out,
                                   sl_infer_error_t *err);

#endif
