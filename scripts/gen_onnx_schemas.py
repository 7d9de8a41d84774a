#!/usr/bin/python3
"""Generates src/engine's table of ONNX operator arities from the schemas that Debian's
python3-onnx ships: for every (domain, op, since_version), the allowed input and output counts
and which inputs are required. The engine's loader checks every node against it, so a kernel
never sees fewer inputs than its op requires or a NULL where an input is not optional.
Run by the build (CMake); the output is never committed."""
import sys

import onnx.defs

HEADER = """/* Generated at build time by scripts/gen_onnx_schemas.py from python3-onnx's operator schemas.
 * Do not edit. */
#include "engine/schema.h"

const sl_schema_t sl_schemas[] = {
"""


def main(out_path):
    rows = []
    for s in onnx.defs.get_all_schemas_with_history():
        if s.domain not in ("", "ai.onnx", "ai.onnx.ml"):
            continue
        required = 0
        for i, p in enumerate(s.inputs[:32]):
            if p.option != onnx.defs.OpSchema.FormalParameterOption.Optional:
                required |= 1 << i
        variadic_required = bool(s.inputs) and (
            s.inputs[-1].option == onnx.defs.OpSchema.FormalParameterOption.Variadic)
        max_in = min(s.max_input, 1 << 30)
        max_out = min(s.max_output, 1 << 30)
        rows.append((s.domain if s.domain != "ai.onnx" else "", s.name, s.since_version,
                     s.min_input, max_in, s.min_output, max_out, required, len(s.inputs),
                     int(variadic_required)))
    rows.sort()
    with open(out_path, "w") as f:
        f.write(HEADER)
        for r in rows:
            f.write('    {"%s", "%s", %d, %d, %d, %d, %d, 0x%xu, %d, %d},\n' % r)
        f.write("    {NULL, NULL, 0, 0, 0, 0, 0, 0, 0, 0},\n};\n")


if __name__ == "__main__":
    main(sys.argv[1])
