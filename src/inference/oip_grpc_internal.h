/* Private to the gRPC front end (oip_grpc.c, oip_grpc_infer.c): the reply helpers both use and
 * the ModelInfer handler that oip_grpc.c registers. Not part of the inference service's API. */
#ifndef SL_OIP_GRPC_INTERNAL_H
#define SL_OIP_GRPC_INTERNAL_H

#include "core/grpc.h"
#include "oip/oip_types.h"

#include <protobuf-c/protobuf-c.h>

#include <stddef.h>
#include <stdint.h>

/* Packs m and answers call with it; m stays the caller's (small messages need no heap). */
void sl_oip_grpc__reply_msg(sl_grpc_call_t *call, const ProtobufCMessage *m);
/* Fails call with the gRPC status for err->code and err->msg; err is borrowed. */
void sl_oip_grpc__fail_infer(sl_grpc_call_t *call, const sl_infer_error_t *err);
/* Unpacks msg (len bytes, borrowed) as a message of type desc. Returns the message (the caller
 * frees it with protobuf_c_message_free_unpacked) or NULL after failing call with
 * INVALID_ARGUMENT "cannot parse <desc's short name>". */
void *sl_oip_grpc__unpack(sl_grpc_call_t *call, const ProtobufCMessageDescriptor *desc,
                          const uint8_t *msg, size_t len);

/* The ModelInfer handler (an sl_grpc_handler_cb; ctx is the sl_mm_t, borrowed). It unpacks the
 * request, hands it to the manager and answers from the completion callback; the unpacked
 * message and the request are freed once the answer is sent. */
void sl_oip_grpc__model_infer(sl_grpc_call_t *call, const uint8_t *msg, size_t len, void *ctx);

#endif
