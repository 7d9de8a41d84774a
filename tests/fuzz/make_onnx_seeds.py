#!/usr/bin/python3
"""Writes the seed corpus of fuzz_onnx_load: a few tiny ONNX models built with onnx.helper, each
under 4 KiB, covering initializers, Constant nodes, symbolic dims, shape ops, a CNN block, a
missing op and a node whose input nothing produces. Run: /usr/bin/python3 make_onnx_seeds.py"""
import os

import numpy as np
from onnx import TensorProto, helper, numpy_helper

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "fuzz_onnx_load")
F = TensorProto.FLOAT


def model(nodes, inputs, outputs, inits=(), opset=13):
    g = helper.make_graph(nodes, "seed", inputs, outputs, initializer=list(inits))
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], producer_name="seed")
    m.ir_version = 8
    return m.SerializeToString()


def vi(name, dims, t=F):
    return helper.make_tensor_value_info(name, t, dims)


def arr(name, a):
    return numpy_helper.from_array(np.asarray(a), name)


SEEDS = {
    "seed-add": model([helper.make_node("Add", ["x", "b"], ["y"], name="add")],
                      [vi("x", [2, 3])], [vi("y", [2, 3])],
                      [arr("b", np.arange(3, dtype=np.float32))]),
    "seed-mlp": model(
        [helper.make_node("Gemm", ["x", "w1", "b1"], ["h"], transB=1),
         helper.make_node("Relu", ["h"], ["r"]),
         helper.make_node("MatMul", ["r", "w2"], ["o"]),
         helper.make_node("Softmax", ["o"], ["y"], axis=-1)],
        [vi("x", ["batch", 4])], [vi("y", ["batch", 2])],
        [arr("w1", np.ones((8, 4), np.float32)), arr("b1", np.zeros(8, np.float32)),
         arr("w2", np.full((8, 2), 0.5, np.float32))]),
    "seed-shape": model(
        [helper.make_node("Constant", [], ["shape"],
                          value=helper.make_tensor("v", TensorProto.INT64, [2], [3, -1])),
         helper.make_node("Reshape", ["x", "shape"], ["r"]),
         helper.make_node("Transpose", ["r"], ["t"], perm=[1, 0]),
         helper.make_node("Shape", ["t"], ["s"]),
         helper.make_node("Cast", ["s"], ["y"], to=F),
         helper.make_node("Unsqueeze", ["t", "axes"], ["u"])],
        [vi("x", [2, 3])], [vi("y", [2]), vi("u", None)],
        [arr("axes", np.array([0], np.int64))]),
    "seed-cnn": model(
        [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1], strides=[1, 1]),
         helper.make_node("BatchNormalization", ["c", "s", "bb", "m", "v"], ["n"]),
         helper.make_node("MaxPool", ["n"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
         helper.make_node("Flatten", ["p"], ["y"])],
        [vi("x", [1, 1, 4, 4])], [vi("y", [1, 8])],
        [arr("w", np.ones((2, 1, 3, 3), np.float32)), arr("b", np.zeros(2, np.float32)),
         arr("s", np.ones(2, np.float32)), arr("bb", np.zeros(2, np.float32)),
         arr("m", np.zeros(2, np.float32)), arr("v", np.ones(2, np.float32))]),
    "seed-int-where": model(
        [helper.make_node("Equal", ["a", "b"], ["e"]),
         helper.make_node("Where", ["e", "a", "b"], ["y"]),
         helper.make_node("ReduceSum", ["y"], ["z"], keepdims=0)],
        [vi("a", [4], TensorProto.INT64), vi("b", [4], TensorProto.INT64)],
        [vi("z", [], TensorProto.INT64)], opset=11),
    "seed-unsupported": model([helper.make_node("NoSuchOp", ["x"], ["y"])],
                              [vi("x", [2])], [vi("y", [2])]),
    "seed-missing": model([helper.make_node("Relu", ["ghost"], ["y"])],
                          [vi("x", [2])], [vi("y", [2])]),
}

os.makedirs(OUT, exist_ok=True)
for name, data in SEEDS.items():
    assert len(data) < 4096, name
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)
    print(f"{name}: {len(data)} bytes")
