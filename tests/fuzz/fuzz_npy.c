/* Fuzzes the .npy reader (sl_npy_read_memory) on arbitrary bytes: it must accept or refuse with
 * a message, never read outside the buffer, and what it accepts must be consistent: a shape
 * within the limits whose element count times the element size is exactly the data it copied. */
#include "engine/npy.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    sl_tensor_t t;
    sl_eng_error_t err = {0};
    sl_eng_status_t st = sl_npy_read_memory(data, size, 1u << 20, &t, &err);
    if (st != SL_ENG_OK) {
        if (t.data != NULL || err.code != st || err.msg[0] == '\0') abort();
        return 0;
    }
    if (!t.data || t.ndim < 0 || t.ndim > SL_MAX_DIMS) abort();
    for (int i = 0; i < t.ndim; i++)
        if (t.dims[i] < 0) abort();
    size_t nbytes = sl_tensor_nbytes(&t);
    if (nbytes > (1u << 20) || nbytes > size) abort();
    /* The data is the tail of the input, copied as is (bools normalised to 0/1). */
    const uint8_t *tail = data + size - nbytes, *got = t.data;
    for (size_t i = 0; i < nbytes; i++) {
        uint8_t want = t.dtype == SL_DT_BOOL ? tail[i] != 0 : tail[i];
        if (got[i] != want) abort();
    }
    free(t.data);
    return 0;
}
