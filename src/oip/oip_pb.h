/* The gRPC wire format of an inference: inference.GRPCInferenceService's ModelInferRequest and
 * ModelInferResponse (proto/inference/grpc_service.proto, the published field numbers) to and
 * from sl_infer_request_t / sl_infer_response_t. The inference service decodes requests and
 * encodes responses; the gateway encodes requests (from a decoded REST request) and decodes
 * responses. Protocol only: no sockets, no model knowledge. */
#ifndef SL_OIP_PB_H
#define SL_OIP_PB_H

#include "core/buf.h"
#include "oip/oip_types.h"

#include "inference/grpc_service.pb-c.h"

/* Decodes m into req: model_name (required), model_version, id, the "priority" and "timeout"
 * (microseconds) parameters (other parameters are ignored), inputs from raw_input_contents or
 * typed contents, and the requested outputs. raw_input_contents and typed contents whose
 * protobuf representation equals the tensor's (INT32, INT64, UINT32, UINT64, FP32, FP64) are
 * borrowed from m, which must outlive req; everything else is copied into req's arena. Returns
 * SL_INFER_OK, or SL_INFER_INVALID with a message naming the field in err; req may then hold a
 * partial decode and is still the caller's to free. BYTES framing in raw contents is not checked
 * here (sl_batch_validate does it against the model). */
sl_infer_code_t sl_oip_pb_decode_request(const Inference__ModelInferRequest *m,
                                         sl_infer_request_t *req, sl_infer_error_t *err);

/* Appends resp packed as a ModelInferResponse to out: model name and version from resp, id from
 * req (req or its id may be NULL: ""), every output in raw_output_contents (what Triton returns).
 * Both are borrowed for the call; resp has at most SL_OIP_MAX_TENSORS outputs. */
void sl_oip_pb_encode_response(const sl_infer_request_t *req, const sl_infer_response_t *resp,
                               sl_buf_t *out);

/* Appends req packed as a ModelInferRequest to out: model name and version, id, priority and
 * timeout as parameters when non-zero, every input in raw_input_contents (BYTES in their 4-byte
 * length-prefixed encoding) and the requested outputs by name (REST's binary flags have no
 * gRPC counterpart and are dropped). req is borrowed for the call; model_name must be set. */
void sl_oip_pb_encode_request(const sl_infer_request_t *req, sl_buf_t *out);

/* Decodes m into a new response (*out; the caller frees it with sl_infer_response_free). Each
 * output's data is copied from raw_output_contents and checked against its datatype and shape.
 * Returns SL_INFER_OK, or SL_INFER_INVALID with a message naming the field in err and *out
 * NULL (a peer that answers with a malformed response: callers map it to their own status). */
sl_infer_code_t sl_oip_pb_decode_response(const Inference__ModelInferResponse *m,
                                          sl_infer_response_t **out, sl_infer_error_t *err);

#endif
