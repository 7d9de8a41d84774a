/* The REST wire format of an inference: a JSON request (tensors as flat or nested JSON arrays)
 * optionally followed by binary tensor data (Triton's binary tensor extension, announced by the
 * Inference-Header-Content-Length header), and the response written the same way. Parsing has
 * limits and every error names the offending field; fuzzed by tests/fuzz/fuzz_oip_json.c and
 * fuzz_oip_binary.c. */
#ifndef SL_OIP_JSON_H
#define SL_OIP_JSON_H

#include "core/buf.h"
#include "oip/oip_types.h"

/* Parses body[0..len) into req (model name/version are set by the caller from the path).
 * header_len: the Inference-Header-Content-Length value, or -1 when the header is absent (the
 * whole body is JSON). Binary inputs point into body (which must outlive req); JSON data is
 * decoded into the request's arena as little-endian row-major bytes. Returns SL_INFER_OK or
 * SL_INFER_INVALID with the message in err ("input 'x': data has 3 elements, shape [2,2] needs
 * 4"; "binary data is 10 bytes, inputs declare 16"; "Inference-Header-Content-Length 500 is
 * larger than the body (120 bytes)"). */
sl_infer_code_t sl_oip_json_parse_request(const uint8_t *body, size_t len, int64_t header_len,
                                          sl_infer_request_t *req, sl_infer_error_t *err);

/* Writes resp for req: JSON only, or when any output is binary the JSON header followed by the
 * binary outputs in order; *header_len receives the JSON part's length (== out->len when
 * nothing is binary, so the caller omits Inference-Header-Content-Length then). */
void sl_oip_json_write_response(const sl_infer_request_t *req, const sl_infer_response_t *resp,
                                sl_buf_t *out, size_t *header_len);

#endif
