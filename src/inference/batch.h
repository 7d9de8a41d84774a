/* The data path between requests and a backend: validating a request against its model's
 * config, forming a batch (inputs concatenated along dimension 0), the host functions a backend
 * calls on the batch (sluice_host_t), and splitting outputs back into one response per request.
 * The scheduler decides when and which requests form a batch; this file does the bytes. */
#ifndef SL_BATCH_H
#define SL_BATCH_H

#include "oip/oip_types.h"
#include "inference/model_config.h"

#include <sluice/backend.h>

/* Checks req against cfg (run on the I/O thread before queueing): every input named once and
 * known, datatype as declared, shape matching the declared dims (with the batch dimension first
 * when max_batch_size > 0, 1..max_batch_size), byte_size equal to what the shape implies (BYTES:
 * well-formed length prefixes), requested outputs known. Reorders req->inputs into config order.
 * Returns SL_INFER_OK or SL_INFER_INVALID with a message naming the input and what was expected
 * ("input 'x': expected datatype FP32, got INT64"). */
sl_infer_code_t sl_batch_validate(const sl_model_config_t *cfg, sl_infer_request_t *req,
                                  sl_infer_error_t *err);

/* The batch dimension of a validated request: inputs[0].dims[0] when batching, else 1. */
uint64_t sl_batch_request_size(const sl_model_config_t *cfg, const sl_infer_request_t *req);

/* Whether b may share a batch with a (both validated for cfg): their inputs have the same
 * non-batch dimensions, so they concatenate along dimension 0. Always true for non-batching
 * models' single requests and for models whose declared dims are all fixed; a config dim of -1
 * lets requests differ, and those must go into different batches. (Added by the data path.) */
bool sl_batch_can_join(const sl_model_config_t *cfg, const sl_infer_request_t *a,
                       const sl_infer_request_t *b);

/* Forms a batch from n validated requests (borrowed until sl_batch_free) of the model version
 * name/version with config cfg (borrowed). n == 1 uses the request's inputs in place (no copy);
 * otherwise inputs are concatenated into a buffer the batch owns. Every request must be
 * joinable with reqs[0] (sl_batch_can_join; asserted), and n is 1 when max_batch_size is 0. */
sluice_batch_t *sl_batch_new(const sl_model_config_t *cfg, const char *name, const char *version,
                             sl_infer_request_t *const *reqs, size_t n);

/* The host function table given to every backend (static; status_new, log, batch accessors,
 * output_alloc). */
const sluice_host_t *sl_backend_host(void);

/* After execute returned st (NULL: success; st is consumed): on success splits every output
 * into one response per request (only the outputs each request asked for, in its order) and
 * completes the requests; on failure (or an output the backend did not produce) completes them
 * all with an error (INVALID_ARGUMENT statuses keep their message; the others become a generic
 * INTERNAL message and are logged). Every request is completed exactly once. */
void sl_batch_finish(sluice_batch_t *b, sluice_status_t *st);
void sl_batch_free(sluice_batch_t *b);

/* Status objects (sluice_status_t) as the server implements them. */
sluice_status_code_t sl_status_code(const sluice_status_t *st);
const char *sl_status_message(const sluice_status_t *st);
void sl_status_free(sluice_status_t *st);

#endif
