/* Internal to the engine: reading a whole file from disk into memory, with a size limit, for the
 * loaders of models (model.c), TensorProto files (tensor_proto.c) and .npy files (npy.c). One
 * place opens, checks and reads; each loader words the errors its users see. */
#ifndef SL_ENGINE_IO_H
#define SL_ENGINE_IO_H

#include "engine/engine.h"

#include <stddef.h>
#include <stdint.h>

/* What went wrong in sl_eng__read_file_raw. */
typedef enum sl_eng__read_why {
    SL_ENG__READ_OK,
    SL_ENG__READ_OPEN,     /* fopen failed: sys_errno says why */
    SL_ENG__READ_NOT_FILE, /* fstat failed or not a regular file */
    SL_ENG__READ_TOO_BIG,  /* size is over the limit */
    SL_ENG__READ_NOMEM,    /* no memory for size bytes */
    SL_ENG__READ_SHORT,    /* got of size bytes read, or a read error */
} sl_eng__read_why_t;

typedef struct sl_eng__read_info {
    sl_eng__read_why_t why;
    int sys_errno;
    uint64_t size; /* the file's size, once known */
    size_t got;    /* bytes read */
} sl_eng__read_info_t;

/* Reads the whole regular file at path into a malloc'd buffer (*out, *len; the caller frees it),
 * refusing files over limit bytes. Returns SL_ENG_OK, or SL_ENG_EIO, SL_ENG_ELIMIT or
 * SL_ENG_ENOMEM with *out NULL and *info saying what failed; sets no message. */
sl_eng_status_t sl_eng__read_file_raw(const char *path, size_t limit, uint8_t **out, size_t *len,
                                      sl_eng__read_info_t *info);

/* sl_eng__read_file_raw with the message in err, worded "PATH: what went wrong". */
sl_eng_status_t sl_eng__read_file(const char *path, size_t limit, uint8_t **out, size_t *len,
                                  sl_eng_error_t *err);

#endif
