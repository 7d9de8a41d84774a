/* ONNX TensorProto to sl_tensor_t: initializers in raw_data or typed fields, and the serialized
 * TensorProto files (.pb) of the ONNX test data. Part of the engine library. */
#ifndef SL_ENGINE_TENSOR_PROTO_H
#define SL_ENGINE_TENSOR_PROTO_H

#include "engine/engine.h"

#include "onnx-ml.pb-c.h"

/* Converts tp into out (out->data malloc'd, caller frees; a zero-size tensor still gets a
 * non-NULL allocation). Refuses with a message naming the tensor: external data
 * (SL_ENG_EUNSUPPORTED), string and other unsupported dtypes, negative dims, more than
 * SL_MAX_DIMS dims, element count overflow, data size not matching the dims, or more than
 * max_bytes (0: 1 GiB; SL_ENG_ELIMIT). */
sl_eng_status_t sl_tensor_from_proto(const Onnx__TensorProto *tp, size_t max_bytes,
                                     sl_tensor_t *out, sl_eng_error_t *err);

/* Reads a file holding one serialized TensorProto. *name (optional) receives a malloc'd copy of
 * its name ("" when unnamed). */
sl_eng_status_t sl_tensor_read_pb(const char *path, size_t max_bytes, sl_tensor_t *out, char **name,
                                  sl_eng_error_t *err);

#endif
