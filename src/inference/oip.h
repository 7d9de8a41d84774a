/* The Open Inference Protocol front ends of the inference service: REST (KServe V2 with Triton's
 * binary tensor, repository, configuration and statistics extensions) and gRPC
 * (inference.GRPCInferenceService with the published field numbers). Both only translate: the
 * model manager does the work. */
#ifndef SL_OIP_H
#define SL_OIP_H

#include "core/grpc.h"
#include "core/http.h"
#include "inference/manager.h"

/* Server metadata shared by both front ends. */
#define SL_OIP_SERVER_NAME "sluice"
/* The extensions advertised in server metadata. */
extern const char *const sl_oip_extensions[];
extern const size_t sl_oip_extensions_n;

/* Adds the /v2 routes to http; mm is borrowed for the server's life. */
void sl_oip_rest_register(sl_http_server_t *http, sl_mm_t *mm);
/* Adds inference.GRPCInferenceService's methods to grpc; mm is borrowed. */
void sl_oip_grpc_register(sl_grpc_server_t *grpc, sl_mm_t *mm);

#endif
