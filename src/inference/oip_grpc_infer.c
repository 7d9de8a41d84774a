/* ModelInfer for the gRPC front end: a ModelInferRequest decoded into an sl_infer_request_t by
 * the OIP codec (oip/oip_pb.h), handed to the model manager, and its response encoded back.
 * oip_grpc.c registers the handler. */
#include "inference/oip_grpc_internal.h"

#include "core/log.h"
#include "inference/manager.h"
#include "oip/oip_pb.h"

#include <stdlib.h>

#define LOG_C "inference"

/* An inference in flight (in the request's arena): the call to answer and the unpacked request,
 * which raw_input_contents and in-place typed contents point into. */
typedef struct infer_call {
    sl_grpc_call_t *call;
    Inference__ModelInferRequest *msg;
} infer_call_t;

/* Runs on the call's loop; answers even when the call was cancelled (that releases it). */
static void infer_done(sl_infer_request_t *req, sl_infer_response_t *resp,
                       const sl_infer_error_t *err, void *arg) {
    infer_call_t *ic = arg;
    sl_grpc_call_t *call = ic->call;
    Inference__ModelInferRequest *msg = ic->msg;
    if (resp) {
        sl_buf_t out = SL_BUF_INIT;
        sl_oip_pb_encode_response(req, resp, &out);
        sl_grpc_reply(call, out.data, out.len);
        sl_buf_free(&out);
    } else {
        sl_oip_grpc__fail_infer(call, err);
    }
    sl_infer_response_free(resp);
    sl_infer_request_free(req);
    inference__model_infer_request__free_unpacked(msg, NULL);
}

void sl_oip_grpc__model_infer(sl_grpc_call_t *call, const uint8_t *msg, size_t len, void *ctx) {
    sl_loop_t *loop = sl_loop_current();
    if (!loop) { /* handlers run on I/O loops; without one the answer could not come back */
        SL_ERROR(LOG_C, "ModelInfer called outside an I/O loop");
        sl_grpc_fail(call, SL_GRPC_INTERNAL, "internal error");
        return;
    }
    Inference__ModelInferRequest *m =
        sl_oip_grpc__unpack(call, &inference__model_infer_request__descriptor, msg, len);
    if (!m) return;
    sl_infer_request_t *req = sl_infer_request_new(loop, infer_done, NULL);
    infer_call_t *ic = sl_infer_request_alloc(req, sizeof *ic);
    ic->call = call;
    ic->msg = m;
    req->done_arg = ic;
    sl_infer_error_t err;
    if (sl_oip_pb_decode_request(m, req, &err) != SL_INFER_OK) {
        sl_oip_grpc__fail_infer(call, &err);
        sl_infer_request_free(req);
        inference__model_infer_request__free_unpacked(m, NULL);
        return;
    }
    sl_mm_infer(ctx, req);
}
