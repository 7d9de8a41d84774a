/* Fuzzes the OIP binary tensor framing (Triton's binary extension): the first two bytes give the
 * Inference-Header-Content-Length (0xffff: absent; it may exceed the body), the rest is the body:
 * a JSON header followed by binary tensors. What parses must be self-consistent (every input's
 * bytes readable, sizes matching shapes) and must write back as a response whose JSON part is
 * valid JSON. */
#include "oip_fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 2) return 0;
    unsigned h = (unsigned)data[0] | (unsigned)data[1] << 8;
    oip_fuzz_parse(data + 2, size - 2, h == 0xffff ? -1 : (int64_t)h);
    return 0;
}
