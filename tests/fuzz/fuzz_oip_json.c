/* Fuzzes the OIP REST request parser on arbitrary bytes as a JSON-only body (no
 * Inference-Header-Content-Length). What parses must be self-consistent (every input's bytes
 * readable, sizes matching shapes) and must write back as a response that is valid JSON. */
#include "oip_fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    oip_fuzz_parse(data, size, -1);
    return 0;
}
