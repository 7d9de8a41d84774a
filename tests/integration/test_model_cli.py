"""`sluice model inspect` and `sluice model run` as a user runs them: on ONNX node test models
with inputs written by numpy and outputs compared with the test data's expected outputs, on
models built here with onnx.helper, and their exit statuses (2: bad arguments or files,
3: a model Sluice cannot run)."""
import json
import os
import subprocess

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from conftest import SLUICE_BIN

DATA = "/usr/share/libonnx-testdata/data"


def run(*args):
    return subprocess.run([SLUICE_BIN, "model", *args], capture_output=True, text=True, timeout=120)


def load_pb(path):
    tp = TensorProto()
    with open(path, "rb") as f:
        tp.ParseFromString(f.read())
    return numpy_helper.to_array(tp)


def model_inputs(model_path):
    m = onnx.load(model_path)
    init = {i.name for i in m.graph.initializer}
    return [i.name for i in m.graph.input if i.name not in init], [o.name for o in m.graph.output]


def write_inputs(tmp_path, test_dir):
    """--input arguments for test_data_set_0 of an ONNX test, as .npy files."""
    names, outs = model_inputs(f"{test_dir}/model.onnx")
    args = []
    for k, name in enumerate(names):
        f = tmp_path / f"in{k}.npy"
        np.save(f, load_pb(f"{test_dir}/test_data_set_0/input_{k}.pb"))
        args += ["--input", f"{name}={f}"]
    expected = [load_pb(f"{test_dir}/test_data_set_0/output_{k}.pb") for k in range(len(outs))]
    return args, outs, expected


def save_model(tmp_path, nodes, inputs, outputs, initializers=(), opset=13, name="m.onnx"):
    g = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(initializers))
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], producer_name="pytest")
    m.ir_version = 8
    path = tmp_path / name
    onnx.save(m, str(path))
    return str(path)


def test_help_and_registration():
    r = run("--help")
    assert r.returncode == 0 and r.stdout.startswith("Usage: sluice model inspect")
    top = subprocess.run([SLUICE_BIN, "help"], capture_output=True, text=True, timeout=30)
    assert "  model" in top.stdout
    r = run()
    assert r.returncode == 2 and "Usage: sluice model" in r.stderr
    r = run("frob")
    assert r.returncode == 2 and "unknown subcommand 'frob'" in r.stderr


def test_inspect_testdata_model():
    r = run("inspect", f"{DATA}/node/test_add/model.onnx")
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "  x: float32[3,4,5]" in out and "  y: float32[3,4,5]" in out
    assert "  sum: float32[3,4,5]" in out
    assert "ir_version: 7" in out and "ai.onnx=14" in out
    assert "nodes: 1" in out
    assert out.rstrip().endswith("runnable: yes")


def test_inspect_json_with_symbolic_dims_and_params(tmp_path):
    w = numpy_helper.from_array(np.ones((4, 2), np.float32), "w")
    path = save_model(
        tmp_path,
        [helper.make_node("MatMul", ["x", "w"], ["h"], name="mm"),
         helper.make_node("Relu", ["h"], ["y"], name="act")],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 2])],
        [w])
    r = run("inspect", path)
    assert r.returncode == 0, r.stderr
    assert "  x: float32[batch,4]" in r.stdout and "producer: pytest" in r.stdout
    assert "params: 8" in r.stdout and "initializers: 1" in r.stdout
    r = run("inspect", "--json", path)
    assert r.returncode == 0
    j = json.loads(r.stdout)
    assert j["inputs"] == [{"name": "x", "dtype": "float32", "shape": ["batch", 4]}]
    assert j["outputs"][0]["name"] == "y"
    assert j["opsets"] == {"ai.onnx": 13}
    assert j["runnable"] is True and j["nodes"] == 2 and j["params"] == 8
    assert {(o["op_type"], o["count"], o["supported"]) for o in j["ops"]} == {
        ("MatMul", 1, True), ("Relu", 1, True)}


def test_unsupported_op_is_reported_and_refused(tmp_path):
    path = save_model(
        tmp_path,
        [helper.make_node("Relu", ["x"], ["a"]),
         helper.make_node("FancyNewOp", ["a"], ["y"], name="fancy")],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
    r = run("inspect", path)
    assert r.returncode == 3
    # The report is complete although the model cannot run.
    assert "  x: float32[2]" in r.stdout
    assert "FancyNewOp" in r.stdout and "unsupported" in r.stdout
    assert "runnable: no (op 'FancyNewOp' (domain '', opset 13) is not supported)" in r.stdout
    j = json.loads(run("inspect", "--json", path).stdout)
    assert j["runnable"] is False and "FancyNewOp" in j["why_not"]
    x = tmp_path / "x.npy"
    np.save(x, np.zeros(2, np.float32))
    r = run("run", path, "--input", f"x={x}")
    assert r.returncode == 3
    assert "op 'FancyNewOp' (domain '', opset 13) is not supported" in r.stderr


def test_opset_too_new_exits_3(tmp_path):
    path = save_model(tmp_path, [helper.make_node("Relu", ["x"], ["y"])],
                      [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                      [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])], opset=18)
    x = tmp_path / "x.npy"
    np.save(x, np.zeros(2, np.float32))
    r = run("run", path, "--input", f"x={x}")
    assert r.returncode == 3 and "opset 18" in r.stderr


@pytest.mark.parametrize("test", [
    "node/test_add", "node/test_relu", "node/test_matmul_2d", "node/test_add_bcast",
    "node/test_softmax_example", "node/test_gemm_default_single_elem_vector_bias",
    "pytorch-converted/test_Linear", "pytorch-operator/test_operator_addmm",
])
def test_run_matches_expected_outputs(tmp_path, test):
    test_dir = f"{DATA}/{test}"
    args, outs, expected = write_inputs(tmp_path, test_dir)
    out_dir = tmp_path / "out"
    r = run("run", f"{test_dir}/model.onnx", *args, "--output-dir", str(out_dir))
    assert r.returncode == 0, r.stderr
    for name, want in zip(outs, expected):
        fn = "".join(c if c.isalnum() or c in "._-" else "_" for c in name)
        got = np.load(out_dir / f"{fn}.npy")
        assert got.dtype == want.dtype and got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    # The same run printed as JSON.
    r = run("run", f"{test_dir}/model.onnx", *args)
    assert r.returncode == 0, r.stderr
    j = json.loads(r.stdout)
    assert [o["name"] for o in j["outputs"]] == outs
    for o, want in zip(j["outputs"], expected):
        assert o["shape"] == list(want.shape) and o["dtype"] == "float32"
        np.testing.assert_allclose(np.array(o["data"], np.float32).reshape(want.shape), want,
                                   rtol=1e-4, atol=1e-5)


def test_run_int64_and_bool_json(tmp_path):
    path = save_model(
        tmp_path,
        [helper.make_node("Add", ["a", "b"], ["s"]), helper.make_node("Greater", ["a", "b"], ["g"])],
        [helper.make_tensor_value_info("a", TensorProto.INT64, [3]),
         helper.make_tensor_value_info("b", TensorProto.INT64, [3])],
        [helper.make_tensor_value_info("s", TensorProto.INT64, [3]),
         helper.make_tensor_value_info("g", TensorProto.BOOL, [3])])
    np.save(tmp_path / "a.npy", np.array([1, 2**40, -3], np.int64))
    np.save(tmp_path / "b.npy", np.array([2, 1, -5], np.int64))
    r = run("run", path, f"--input=a={tmp_path / 'a.npy'}", "--input", f"b={tmp_path / 'b.npy'}")
    assert r.returncode == 0, r.stderr
    j = json.loads(r.stdout)["outputs"]
    assert j[0] == {"name": "s", "dtype": "int64", "shape": [3], "data": [3, 2**40 + 1, -8]}
    assert j[1]["dtype"] == "bool" and j[1]["data"] == [False, True, True]


def test_bad_arguments_and_files_exit_2(tmp_path):
    model = f"{DATA}/node/test_relu/model.onnx"
    x = tmp_path / "x.npy"
    np.save(x, np.zeros((3, 4, 5), np.float32))
    r = run("run", str(tmp_path / "missing.onnx"), "--input", f"x={x}")
    assert r.returncode == 2 and "missing.onnx" in r.stderr
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\xff" * 64)
    r = run("run", str(garbage), "--input", f"x={x}")
    assert r.returncode == 2 and "not a valid ONNX model" in r.stderr
    r = run("inspect", str(garbage))
    assert r.returncode == 2 and "not a valid ONNX model" in r.stderr
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(open(f"{DATA}/node/test_relu/model.onnx", "rb").read()[:-9])
    assert run("inspect", str(truncated)).returncode == 2
    r = run("run", model)
    assert r.returncode == 2 and "input 'x' is missing" in r.stderr and "--input x=" in r.stderr
    r = run("run", model, "--input", f"nope={x}")
    assert r.returncode == 2 and "no input 'nope'" in r.stderr and "x float32[3,4,5]" in r.stderr
    r = run("run", model, "--input", f"x={x}", "--input", f"x={x}")
    assert r.returncode == 2 and "given twice" in r.stderr
    r = run("run", model, "--input", str(x))
    assert r.returncode == 2 and "NAME=FILE.npy" in r.stderr
    r = run("run", model, "--input", f"x={tmp_path / 'nothere.npy'}")
    assert r.returncode == 2 and "nothere.npy" in r.stderr
    notnpy = tmp_path / "bad.npy"
    notnpy.write_bytes(b"hello")
    r = run("run", model, "--input", f"x={notnpy}")
    assert r.returncode == 2 and "input 'x'" in r.stderr
    wrong = tmp_path / "wrong.npy"
    np.save(wrong, np.zeros((3, 4), np.float32))
    r = run("run", model, "--input", f"x={wrong}")
    assert r.returncode == 2
    assert "input 'x': expected float32[3,4,5], got float32[3,4]" in r.stderr
    np.save(wrong, np.zeros((3, 4, 5), np.float64))
    r = run("run", model, "--input", f"x={wrong}")
    assert r.returncode == 2 and "got float64[3,4,5]" in r.stderr
    r = run("run", model, "--input", f"x={x}", "--output-dir", str(x))
    assert r.returncode == 2 and "not a directory" in r.stderr
    r = run("run", model, "--bogus")
    assert r.returncode == 2 and "unexpected argument '--bogus'" in r.stderr
