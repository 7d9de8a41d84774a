"""Inference for every datatype the engine runs, through both protocols and every encoding: an
ONNX model built here (one Identity per datatype, batching on) is served, and each tensor must
come back bit for bit over REST (JSON and binary) and gRPC (typed contents and raw)."""
import os

import grpc
import numpy as np
import onnx
import pytest
import requests
from onnx import TensorProto, helper

import modelrepo
from conftest import Sluice, merge
from test_oip_grpc import NP_DTYPE, outputs_of, pb, request  # noqa: F401 (pb is a fixture)

# OIP datatype -> ONNX element type, for the datatypes the engine runs.
ONNX_TYPES = {
    "BOOL": TensorProto.BOOL, "UINT8": TensorProto.UINT8, "INT8": TensorProto.INT8,
    "UINT16": TensorProto.UINT16, "INT16": TensorProto.INT16, "INT32": TensorProto.INT32,
    "UINT32": TensorProto.UINT32, "INT64": TensorProto.INT64, "UINT64": TensorProto.UINT64,
    "FP32": TensorProto.FLOAT, "FP64": TensorProto.DOUBLE,
}
ROWS, COLS = 3, 5


def sample(dt, json=False):
    """Values that exercise each type's range: extremes, signs, fractions. JSON numbers are
    exact only below 2^53 (64-bit extremes go as binary: the server says so)."""
    t = NP_DTYPE[dt]
    if dt == "BOOL":
        return (np.arange(ROWS * COLS) % 3 == 0).reshape(ROWS, COLS)
    if dt in ("FP32", "FP64"):
        v = np.linspace(-1e3, 1e3, ROWS * COLS).astype(t)
        v[0], v[1] = np.finfo(t).tiny, -np.finfo(t).max
        return v.reshape(ROWS, COLS)
    info = np.iinfo(t)
    v = np.arange(ROWS * COLS, dtype=np.int64) * 7 - 20
    v = np.clip(v, info.min, info.max).astype(t)
    v[0], v[1] = info.min, info.max
    if json and dt == "INT64":
        v[0], v[1] = -(2 ** 53) + 1, 2 ** 53 - 1
    elif json and dt == "UINT64":
        v[1] = 2 ** 53 - 1
    return v.reshape(ROWS, COLS)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("dtypes")
    nodes, ins, outs, cfg_in, cfg_out = [], [], [], [], []
    for dt, et in ONNX_TYPES.items():
        x, y = f"x_{dt.lower()}", f"y_{dt.lower()}"
        nodes.append(helper.make_node("Identity", [x], [y]))
        ins.append(helper.make_tensor_value_info(x, et, ["batch", COLS]))
        outs.append(helper.make_tensor_value_info(y, et, ["batch", COLS]))
        cfg_in.append(f"  - {{name: {x}, datatype: {dt}, dims: [{COLS}]}}")
        cfg_out.append(f"  - {{name: {y}, datatype: {dt}, dims: [{COLS}]}}")
    model = helper.make_model(helper.make_graph(nodes, "dtypes", ins, outs),
                              opset_imports=[helper.make_opsetid("", 17)])
    path = os.path.join(tmp, "identity.onnx")
    onnx.save(model, path)
    config = ("backend: onnx\nmax_batch_size: 8\ninputs:\n" + "\n".join(cfg_in) +
              "\noutputs:\n" + "\n".join(cfg_out) + "\n")
    repo = os.path.join(tmp, "models")
    modelrepo.add_model(repo, "dtypes", config=config, artifact=path)
    s = Sluice(targets="inference", config=merge({}, modelrepo.inference_config(repo)),
               tmpdir=str(tmp))
    s.wait_ready()
    yield s
    assert s.stop() == 0, s.log_text()[-3000:]


def rest(server, body, headers=None):
    r = requests.post(server.url("inference", "/v2/models/dtypes/infer"), data=body,
                      headers=headers or {"Content-Type": "application/json"}, timeout=30)
    assert r.status_code == 200, r.text
    return r


def test_rest_json_every_datatype(server):
    import json
    inputs = [{"name": f"x_{dt.lower()}", "datatype": dt, "shape": [ROWS, COLS],
               "data": sample(dt, json=True).flatten().tolist()} for dt in ONNX_TYPES]
    out = {o["name"]: o for o in rest(server, json.dumps({"inputs": inputs})).json()["outputs"]}
    for dt in ONNX_TYPES:
        o = out[f"y_{dt.lower()}"]
        assert o["datatype"] == dt and o["shape"] == [ROWS, COLS]
        got = np.array(o["data"], dtype=NP_DTYPE[dt]).reshape(ROWS, COLS)
        assert np.array_equal(got, sample(dt, json=True)), dt


def test_rest_binary_every_datatype(server):
    import json
    inputs, blobs = [], []
    for dt in ONNX_TYPES:
        raw = sample(dt).tobytes()
        inputs.append({"name": f"x_{dt.lower()}", "datatype": dt, "shape": [ROWS, COLS],
                       "parameters": {"binary_data_size": len(raw)}})
        blobs.append(raw)
    header = json.dumps({"inputs": inputs, "parameters": {"binary_data_output": True}}).encode()
    r = rest(server, header + b"".join(blobs),
             {"Content-Type": "application/octet-stream",
              "Inference-Header-Content-Length": str(len(header))})
    hlen = int(r.headers["Inference-Header-Content-Length"])
    meta, data = json.loads(r.content[:hlen]), r.content[hlen:]
    off = 0
    for o in meta["outputs"]:
        n = o["parameters"]["binary_data_size"]
        got = np.frombuffer(data[off:off + n], dtype=NP_DTYPE[o["datatype"]]).reshape(o["shape"])
        off += n
        assert np.array_equal(got, sample(o["datatype"])), o["name"]
    assert off == len(data) and len(meta["outputs"]) == len(ONNX_TYPES)


@pytest.mark.parametrize("raw", [True, False], ids=["raw", "typed"])
def test_grpc_every_datatype(server, pb, raw):  # noqa: F811
    stub = pb[1].GRPCInferenceServiceStub(
        grpc.insecure_channel(f"127.0.0.1:{server.port('inference', 'grpc')}"))
    req = request(pb, "dtypes", [(f"x_{dt.lower()}", dt, sample(dt)) for dt in ONNX_TYPES],
                  raw=raw)
    got = outputs_of(stub.ModelInfer(req, timeout=30))
    for dt in ONNX_TYPES:
        assert np.array_equal(got[f"y_{dt.lower()}"], sample(dt)), dt
