#!/usr/bin/python3
"""Builds Triton's "simple" example model as ONNX: two INT32 inputs INPUT0 and INPUT1 of shape
[batch, 16], outputs OUTPUT0 = INPUT0 + INPUT1 and OUTPUT1 = INPUT0 - INPUT1. It has no weights;
it measures a server's own overhead (bench/inference) and is the model Triton's client examples
call. Writes model.onnx and reference/{input,output}.<name>.npy (a batch of 4) next to this
script. Needs python3-onnx and python3-numpy (Debian).

    /usr/bin/python3 make_simple.py
"""
import os

import numpy as np
import onnx
from onnx import TensorProto, helper

HERE = os.path.dirname(os.path.abspath(__file__))
OPSET = 17


def build():
    def tensor(name):
        return helper.make_tensor_value_info(name, TensorProto.INT32, ["batch", 16])

    graph = helper.make_graph(
        [helper.make_node("Add", ["INPUT0", "INPUT1"], ["OUTPUT0"], name="add"),
         helper.make_node("Sub", ["INPUT0", "INPUT1"], ["OUTPUT1"], name="sub")],
        "simple",
        [tensor("INPUT0"), tensor("INPUT1")],
        [tensor("OUTPUT0"), tensor("OUTPUT1")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="sluice-examples",
                              doc_string="Triton's simple model: OUTPUT0 = INPUT0 + INPUT1, "
                                         "OUTPUT1 = INPUT0 - INPUT1 (INT32 [batch, 16])")
    onnx.checker.check_model(model, full_check=True)
    return model


def main():
    model = build()
    path = os.path.join(HERE, "model.onnx")
    onnx.save(model, path)
    # Triton's client example sends INPUT0 = 0..15 and INPUT1 = ones; add a few more rows with
    # negative values and values near the INT32 limits (no overflow).
    rng = np.random.default_rng(20261126)
    in0 = np.stack([np.arange(16), np.full(16, -7),
                    rng.integers(-1000, 1000, 16), np.full(16, 2**30)]).astype(np.int32)
    in1 = np.stack([np.ones(16), np.arange(16) * 3,
                    rng.integers(-1000, 1000, 16), np.full(16, -(2**30))]).astype(np.int32)
    ref = os.path.join(HERE, "reference")
    os.makedirs(ref, exist_ok=True)
    np.save(os.path.join(ref, "input.INPUT0.npy"), in0)
    np.save(os.path.join(ref, "input.INPUT1.npy"), in1)
    np.save(os.path.join(ref, "output.OUTPUT0.npy"), (in0 + in1).astype(np.int32))
    np.save(os.path.join(ref, "output.OUTPUT1.npy"), (in0 - in1).astype(np.int32))
    print(f"simple: {os.path.getsize(path)} bytes")


if __name__ == "__main__":
    main()
