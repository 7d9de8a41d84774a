/* NumPy .npy files (format versions 1.0-3.0, little-endian, C order) for FP32, FP64, INT64,
 * INT32, BOOL and UINT8 tensors: how `sluice model run` and the tests feed inputs and save
 * outputs. Part of the engine library. */
#ifndef SL_ENGINE_NPY_H
#define SL_ENGINE_NPY_H

#include "engine/engine.h"

/* Reads a .npy from memory. On success out->data is malloc'd (caller frees). Refuses, with a
 * message saying what was found: bad magic, unknown version, header over 64 KiB, big-endian,
 * Fortran order, other dtypes, more than SL_MAX_DIMS dims, data size not matching the shape,
 * or data over max_bytes (0: 1 GiB). */
sl_eng_status_t sl_npy_read_memory(const void *buf, size_t len, size_t max_bytes, sl_tensor_t *out,
                                   sl_eng_error_t *err);
sl_eng_status_t sl_npy_read_file(const char *path, size_t max_bytes, sl_tensor_t *out,
                                 sl_eng_error_t *err);
/* Writes t as a version 1.0 .npy (SL_ENG_EUNSUPPORTED for dtypes outside the list above). */
sl_eng_status_t sl_npy_write_file(const char *path, const sl_tensor_t *t, sl_eng_error_t *err);

#endif
