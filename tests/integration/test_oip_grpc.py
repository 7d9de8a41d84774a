"""The Open Inference Protocol over gRPC as an existing client sees it: a grpcio client generated
at test time from proto/inference/grpc_service.proto talks to `sluice serve --target inference`
over a temporary model repository (the `simple` example backend and the ONNX example models).
Served outputs are checked against the reference outputs committed with the examples; every
error case is checked for its gRPC status code and for a message naming what was wrong."""
import concurrent.futures
import os
import subprocess
import sys

import grpc
import numpy as np
import pytest
import requests

import modelrepo
from conftest import REPO, SLOW, wait_until

MAX_MESSAGE = 1 << 20
EXAMPLES = os.path.join(REPO, "examples", "models")
SLOW_DELAY_US = 400000

# Which InferTensorContents field carries each datatype, and its numpy type.
CONTENTS = {
    "BOOL": ("bool_contents", np.bool_),
    "INT8": ("int_contents", np.int8),
    "INT16": ("int_contents", np.int16),
    "INT32": ("int_contents", np.int32),
    "INT64": ("int64_contents", np.int64),
    "UINT8": ("uint_contents", np.uint8),
    "UINT16": ("uint_contents", np.uint16),
    "UINT32": ("uint_contents", np.uint32),
    "UINT64": ("uint64_contents", np.uint64),
    "FP32": ("fp32_contents", np.float32),
    "FP64": ("fp64_contents", np.float64),
}
NP_DTYPE = {k: v[1] for k, v in CONTENTS.items()}


@pytest.fixture(scope="module")
def pb(tmp_path_factory):
    """grpc_service_pb2 and grpc_service_pb2_grpc generated from our proto, as top-level modules."""
    out = tmp_path_factory.mktemp("oip_stubs")
    d = os.path.join(REPO, "proto", "inference")
    subprocess.run(
        ["/usr/bin/python3", "-m", "grpc_tools.protoc", f"-I{d}", f"--python_out={out}",
         f"--grpc_python_out={out}", "grpc_service.proto"],
        check=True)
    sys.path.insert(0, str(out))
    import grpc_service_pb2
    import grpc_service_pb2_grpc
    yield grpc_service_pb2, grpc_service_pb2_grpc
    sys.path.remove(str(out))


def start_server(tmp, names=("simple", "mlp_digits", "transformer_sentiment"), slow=False):
    slow_cfg = modelrepo.CONFIGS["simple"] + f'parameters:\n  delay_us: "{SLOW_DELAY_US}"\n'
    return modelrepo.start_inference(tmp, names, configs={"slow": slow_cfg} if slow else None,
                                     extra={"grpc": {"max_message_bytes": MAX_MESSAGE}})


def stop_server(s):
    code = s.stop()
    assert code == 0, f"sluice exited with {code}:\n{s.log_text()[-4000:]}"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = start_server(str(tmp_path_factory.mktemp("oip_grpc")), slow=True)
    yield s
    stop_server(s)


@pytest.fixture(scope="module")
def stub(server, pb):
    ch = grpc.insecure_channel(f"127.0.0.1:{server.port('inference', 'grpc')}")
    yield pb[1].GRPCInferenceServiceStub(ch)
    ch.close()


def ref(model, kind, name):
    return np.load(os.path.join(EXAMPLES, model, "reference", f"{kind}.{name}.npy"))


def request(pb, model, inputs, raw=True, outputs=(), version="", rid="", params=None):
    """A ModelInferRequest; inputs is a list of (name, datatype, array)."""
    r = pb[0].ModelInferRequest(model_name=model, model_version=version, id=rid)
    for name, dt, arr in inputs:
        t = r.inputs.add(name=name, datatype=dt, shape=list(arr.shape))
        if raw:
            r.raw_input_contents.append(np.ascontiguousarray(arr).tobytes())
        else:
            getattr(t.contents, CONTENTS[dt][0]).extend(arr.flatten().tolist())
    for o in outputs:
        r.outputs.add(name=o)
    for k, v in (params or {}).items():
        r.parameters[k].int64_param = v
    return r


def outputs_of(resp):
    """{name: ndarray} from raw_output_contents, checking the two lists line up."""
    assert len(resp.raw_output_contents) == len(resp.outputs)
    got = {}
    for o, raw in zip(resp.outputs, resp.raw_output_contents):
        got[o.name] = np.frombuffer(raw, dtype=NP_DTYPE[o.datatype]).reshape(tuple(o.shape))
    return got


def expect_error(call, code, *fragments):
    with pytest.raises(grpc.RpcError) as e:
        call()
    assert e.value.code() == code, f"{e.value.code()}: {e.value.details()}"
    for f in fragments:
        assert f in (e.value.details() or ""), e.value.details()
    return e.value.details()


def close_to(got, want):
    assert got.shape == want.shape and got.dtype == want.dtype
    rel = np.max(np.abs(got - want)) / max(np.max(np.abs(want)), 1e-30)
    assert rel <= 1e-5, f"max relative error {rel:.2e}"


# ---- health and metadata ----

def test_server_live_ready_and_metadata(server, stub, pb):
    m = pb[0]
    assert stub.ServerLive(m.ServerLiveRequest()).live is True
    assert stub.ServerReady(m.ServerReadyRequest()).ready is True
    md = stub.ServerMetadata(m.ServerMetadataRequest())
    assert md.name == "sluice"
    # Both front ends describe the same server.
    rest = requests.get(server.url("inference", "/v2"), timeout=5).json()
    assert md.version == rest["version"] and md.version
    assert list(md.extensions) == rest["extensions"]
    assert "model_repository" in md.extensions


def test_model_ready(stub, pb):
    m = pb[0]
    assert stub.ModelReady(m.ModelReadyRequest(name="simple")).ready is True
    assert stub.ModelReady(m.ModelReadyRequest(name="simple", version="1.0.0")).ready is True
    expect_error(lambda: stub.ModelReady(m.ModelReadyRequest(name="nope")),
                 grpc.StatusCode.NOT_FOUND, "nope")
    expect_error(lambda: stub.ModelReady(m.ModelReadyRequest(name="simple", version="9.9.9")),
                 grpc.StatusCode.NOT_FOUND, "9.9.9")


def test_model_metadata(stub, pb):
    m = pb[0]
    for version in ("", "1.0.0"):
        md = stub.ModelMetadata(m.ModelMetadataRequest(name="simple", version=version))
        assert md.name == "simple"
        assert list(md.versions) == ["1.0.0"]
        assert [(t.name, t.datatype, list(t.shape)) for t in md.inputs] == [
            ("INPUT0", "INT32", [-1, 16]), ("INPUT1", "INT32", [-1, 16])]
        assert [(t.name, t.datatype, list(t.shape)) for t in md.outputs] == [
            ("OUTPUT0", "INT32", [-1, 16]), ("OUTPUT1", "INT32", [-1, 16])]
    md = stub.ModelMetadata(m.ModelMetadataRequest(name="transformer_sentiment"))
    assert [(t.name, t.datatype, list(t.shape)) for t in md.inputs] == [("tokens", "INT64", [-1, -1])]
    assert md.platform
    expect_error(lambda: stub.ModelMetadata(m.ModelMetadataRequest(name="nope")),
                 grpc.StatusCode.NOT_FOUND, "nope")
    expect_error(lambda: stub.ModelMetadata(m.ModelMetadataRequest(name="simple", version="2.0.0")),
                 grpc.StatusCode.NOT_FOUND, "2.0.0")


# ---- inference ----

@pytest.mark.parametrize("raw", [True, False], ids=["raw", "typed"])
def test_infer_simple_int32(stub, pb, raw):
    a, b = ref("simple", "input", "INPUT0"), ref("simple", "input", "INPUT1")
    resp = stub.ModelInfer(request(pb, "simple", [("INPUT0", "INT32", a), ("INPUT1", "INT32", b)],
                                   raw=raw, rid="req-42"))
    assert (resp.model_name, resp.model_version, resp.id) == ("simple", "1.0.0", "req-42")
    assert [(o.name, o.datatype, list(o.shape)) for o in resp.outputs] == [
        ("OUTPUT0", "INT32", [4, 16]), ("OUTPUT1", "INT32", [4, 16])]
    got = outputs_of(resp)
    np.testing.assert_array_equal(got["OUTPUT0"], ref("simple", "output", "OUTPUT0"))
    np.testing.assert_array_equal(got["OUTPUT1"], ref("simple", "output", "OUTPUT1"))


@pytest.mark.parametrize("raw", [True, False], ids=["raw", "typed"])
@pytest.mark.parametrize("model,inp,dt,out", [
    ("mlp_digits", "pixels", "FP32", "logits"),
    ("transformer_sentiment", "tokens", "INT64", "logits"),
])
def test_infer_onnx_matches_reference(stub, pb, raw, model, inp, dt, out):
    x = ref(model, "input", inp)
    resp = stub.ModelInfer(request(pb, model, [(inp, dt, x)], raw=raw, version="1.0.0"))
    got = outputs_of(resp)
    assert list(got) == [out]
    close_to(got[out], ref(model, "output", out))


def test_infer_requested_outputs_only(stub, pb):
    a, b = ref("simple", "input", "INPUT0"), ref("simple", "input", "INPUT1")
    resp = stub.ModelInfer(request(pb, "simple", [("INPUT0", "INT32", a), ("INPUT1", "INT32", b)],
                                   outputs=["OUTPUT1"]))
    got = outputs_of(resp)
    assert list(got) == ["OUTPUT1"]
    np.testing.assert_array_equal(got["OUTPUT1"], a - b)


def test_infer_concurrent_callers_get_their_own_answers(stub, pb):
    def one(i):
        a = np.full((1, 16), i, dtype=np.int32)
        b = np.arange(16, dtype=np.int32).reshape(1, 16)
        resp = stub.ModelInfer(request(pb, "simple", [("INPUT0", "INT32", a), ("INPUT1", "INT32", b)],
                                       rid=str(i)), timeout=30 * SLOW)
        got = outputs_of(resp)
        return resp.id == str(i) and (got["OUTPUT0"] == a + b).all() and (got["OUTPUT1"] == a - b).all()

    with concurrent.futures.ThreadPoolExecutor(16) as ex:
        assert all(ex.map(one, range(64)))


def test_infer_scheduling_parameters(stub, pb):
    a = np.ones((1, 16), dtype=np.int32)
    resp = stub.ModelInfer(request(pb, "simple", [("INPUT0", "INT32", a), ("INPUT1", "INT32", a)],
                                   params={"timeout": 10_000_000}))
    assert (outputs_of(resp)["OUTPUT0"] == 2).all()
    r = request(pb, "simple", [("INPUT0", "INT32", a), ("INPUT1", "INT32", a)])
    r.parameters["priority"].string_param = "high"
    expect_error(lambda: stub.ModelInfer(r), grpc.StatusCode.INVALID_ARGUMENT, "priority")


def test_cancelled_call_is_still_answered(server, stub, pb):
    """The client gives up while the slow model computes; the server must release the call
    (teardown checks a clean, leak-free exit) and keep serving."""
    a = np.ones((1, 16), dtype=np.int32)
    req = request(pb, "slow", [("INPUT0", "INT32", a), ("INPUT1", "INT32", a)])
    expect_error(lambda: stub.ModelInfer(req, timeout=SLOW_DELAY_US / 4e6),
                 grpc.StatusCode.DEADLINE_EXCEEDED)
    fut = stub.ModelInfer.future(req)
    fut.cancel()
    resp = stub.ModelInfer(req, timeout=30 * SLOW)
    assert (outputs_of(resp)["OUTPUT0"] == 2).all()


# ---- errors ----

def simple_inputs(n=1):
    a = np.arange(16 * n, dtype=np.int32).reshape(n, 16)
    return [("INPUT0", "INT32", a), ("INPUT1", "INT32", a)]


def test_unknown_model_and_version(stub, pb):
    expect_error(lambda: stub.ModelInfer(request(pb, "nope", simple_inputs())),
                 grpc.StatusCode.NOT_FOUND, "nope")
    expect_error(lambda: stub.ModelInfer(request(pb, "simple", simple_inputs(), version="3.1.4")),
                 grpc.StatusCode.NOT_FOUND, "3.1.4")
    expect_error(lambda: stub.ModelInfer(request(pb, "", simple_inputs())),
                 grpc.StatusCode.INVALID_ARGUMENT, "model_name")


def test_wrong_input_name_shape_datatype(stub, pb):
    a = np.zeros((1, 16), dtype=np.int32)
    bad = {
        "name": ([("INPUT0", "INT32", a), ("INPUTX", "INT32", a)], "INPUTX"),
        "missing": ([("INPUT0", "INT32", a)], "INPUT1"),
        "shape": ([("INPUT0", "INT32", a), ("INPUT1", "INT32", np.zeros((1, 15), np.int32))], "INPUT1"),
        "batch": ([("INPUT0", "INT32", np.zeros((9, 16), np.int32)),
                   ("INPUT1", "INT32", np.zeros((9, 16), np.int32))], "INPUT0"),
        "datatype": ([("INPUT0", "INT32", a), ("INPUT1", "FP32", a.astype(np.float32))], "INPUT1"),
    }
    for what, (inputs, frag) in bad.items():
        for raw in (True, False):
            expect_error(lambda: stub.ModelInfer(request(pb, "simple", inputs, raw=raw)),
                         grpc.StatusCode.INVALID_ARGUMENT, frag)


def test_raw_contents_errors(stub, pb):
    r = request(pb, "simple", simple_inputs())
    del r.raw_input_contents[1]
    expect_error(lambda: stub.ModelInfer(r), grpc.StatusCode.INVALID_ARGUMENT,
                 "raw_input_contents has 1 entries", "2 inputs")
    r = request(pb, "simple", simple_inputs())
    r.raw_input_contents[0] = r.raw_input_contents[0][:-4]
    expect_error(lambda: stub.ModelInfer(r), grpc.StatusCode.INVALID_ARGUMENT, "INPUT0", "60 bytes")
    r = request(pb, "simple", simple_inputs())
    r.inputs[1].contents.int_contents.extend([1] * 16)
    expect_error(lambda: stub.ModelInfer(r), grpc.StatusCode.INVALID_ARGUMENT, "INPUT1",
                 "must be empty")


def test_typed_contents_errors(stub, pb):
    r = request(pb, "simple", simple_inputs(), raw=False)
    del r.inputs[0].contents.int_contents[-1]
    expect_error(lambda: stub.ModelInfer(r), grpc.StatusCode.INVALID_ARGUMENT, "INPUT0",
                 "15 values", "[1,16]")
    r = request(pb, "simple", simple_inputs(), raw=False)
    r.inputs[1].ClearField("contents")
    r.inputs[1].contents.fp32_contents.extend([1.0] * 16)
    expect_error(lambda: stub.ModelInfer(r), grpc.StatusCode.INVALID_ARGUMENT, "INPUT1",
                 "int_contents", "fp32_contents")
    r = request(pb, "simple", simple_inputs(), raw=False)
    r.inputs[0].ClearField("contents")
    expect_error(lambda: stub.ModelInfer(r), grpc.StatusCode.INVALID_ARGUMENT, "INPUT0", "no data")
    r = request(pb, "simple", simple_inputs())
    r.inputs[0].datatype = "FLOAT"
    expect_error(lambda: stub.ModelInfer(r), grpc.StatusCode.INVALID_ARGUMENT, "FLOAT")
    r = request(pb, "simple", simple_inputs())
    r.inputs[0].shape[1] = -16
    expect_error(lambda: stub.ModelInfer(r), grpc.StatusCode.INVALID_ARGUMENT, "INPUT0", "-16")
    r = request(pb, "simple", simple_inputs())
    del r.inputs[0].shape[:]
    r.inputs[0].shape.extend([1] * 9)
    expect_error(lambda: stub.ModelInfer(r), grpc.StatusCode.INVALID_ARGUMENT, "INPUT0", "9 dimensions")


@pytest.mark.parametrize("dt,value", [("INT8", 300), ("INT8", -129), ("INT16", 40000),
                                      ("UINT8", 256), ("UINT16", 70000)])
def test_typed_contents_range_checks(stub, pb, dt, value):
    r = pb[0].ModelInferRequest(model_name="simple")
    t = r.inputs.add(name="INPUT0", datatype=dt, shape=[1, 2])
    getattr(t.contents, CONTENTS[dt][0]).extend([0, value])
    expect_error(lambda: stub.ModelInfer(r), grpc.StatusCode.INVALID_ARGUMENT,
                 f"{CONTENTS[dt][0]}[1] = {value} is out of range for {dt}")


@pytest.mark.parametrize("dt", sorted(set(CONTENTS) - {"INT32"}) + ["BYTES", "FP16", "BF16"])
def test_every_datatype_decodes_and_is_checked_against_the_model(stub, pb, dt):
    """Typed contents of every datatype are decoded; the model (INT32) then names the mismatch.
    FP16 and BF16 have no typed field and must come as raw bytes."""
    r = pb[0].ModelInferRequest(model_name="simple")
    b = r.inputs.add(name="INPUT1", datatype="INT32", shape=[1, 16])
    b.contents.int_contents.extend(range(16))
    t = r.inputs.add(name="INPUT0", datatype=dt, shape=[1, 16])
    if dt == "BYTES":
        t.contents.bytes_contents.extend([b"x" * i for i in range(16)])
    elif dt in ("FP16", "BF16"):
        t.contents.fp32_contents.extend([0.5] * 16)
        expect_error(lambda: stub.ModelInfer(r), grpc.StatusCode.INVALID_ARGUMENT, "INPUT0",
                     "raw_input_contents")
        del r.inputs[:]
        for name, d in (("INPUT0", dt), ("INPUT1", "INT32")):
            r.inputs.add(name=name, datatype=d, shape=[1, 16])
        r.raw_input_contents.extend([bytes(32), bytes(64)])
    else:
        field, npt = CONTENTS[dt]
        vals = np.arange(16).astype(npt)
        getattr(t.contents, field).extend(vals.tolist())
    expect_error(lambda: stub.ModelInfer(r), grpc.StatusCode.INVALID_ARGUMENT, "INPUT0", "INT32", dt)


def test_message_over_the_limit(stub, pb):
    big = np.zeros((8, MAX_MESSAGE // 32), dtype=np.int32)  # 1 MiB per input
    expect_error(lambda: stub.ModelInfer(request(pb, "simple", [("INPUT0", "INT32", big),
                                                                ("INPUT1", "INT32", big)])),
                 grpc.StatusCode.RESOURCE_EXHAUSTED)
    # The server keeps serving on the same channel.
    assert outputs_of(stub.ModelInfer(request(pb, "simple", simple_inputs())))["OUTPUT0"].shape == (1, 16)


def test_garbage_message_is_invalid_argument(server, pb):
    ch = grpc.insecure_channel(f"127.0.0.1:{server.port('inference', 'grpc')}")
    try:
        call = ch.unary_unary("/inference.GRPCInferenceService/ModelInfer")
        expect_error(lambda: call(b"\xff\xff\xff\xff", timeout=10), grpc.StatusCode.INVALID_ARGUMENT,
                     "ModelInferRequest")
        call = ch.unary_unary("/inference.GRPCInferenceService/ModelConfig")
        expect_error(lambda: call(b"", timeout=10), grpc.StatusCode.UNIMPLEMENTED)
    finally:
        ch.close()


# ---- statistics ----

def stats_of(stub, pb, name, version=""):
    resp = stub.ModelStatistics(pb[0].ModelStatisticsRequest(name=name, version=version))
    return {(s.name, s.version): s for s in resp.model_stats}


def test_model_statistics(stub, pb):
    before = stats_of(stub, pb, "mlp_digits")[("mlp_digits", "1.0.0")]
    x = ref("mlp_digits", "input", "pixels")[:2]
    for _ in range(3):
        stub.ModelInfer(request(pb, "mlp_digits", [("pixels", "FP32", x)]))

    def grown():
        s = stats_of(stub, pb, "mlp_digits", "1.0.0")[("mlp_digits", "1.0.0")]
        return s if s.inference_stats.success.count == before.inference_stats.success.count + 3 else None

    s = wait_until(grown, 10, "statistics to count three more requests")
    assert s.inference_count == before.inference_count + 6
    assert before.execution_count + 1 <= s.execution_count <= before.execution_count + 3
    assert s.inference_stats.success.ns > before.inference_stats.success.ns
    assert s.inference_stats.queue.count >= before.inference_stats.queue.count + 3
    assert s.inference_stats.compute_infer.ns > before.inference_stats.compute_infer.ns
    assert s.last_inference > 0
    sizes = {b.batch_size: b.compute_infer.count for b in s.batch_stats}
    assert sizes.get(2, 0) >= 1, sizes
    # No name: every ready model.
    every = stats_of(stub, pb, "")
    assert {("simple", "1.0.0"), ("mlp_digits", "1.0.0"), ("transformer_sentiment", "1.0.0")} <= set(every)
    expect_error(lambda: stats_of(stub, pb, "nope"), grpc.StatusCode.NOT_FOUND, "nope")
    expect_error(lambda: stats_of(stub, pb, "simple", "7.0.0"), grpc.StatusCode.NOT_FOUND, "7.0.0")


# ---- model repository ----

def test_repository_index_load_unload(sluice_factory, pb, tmp_path):
    repo = modelrepo.make_repository(str(tmp_path / "models"), names=("simple", "mlp_digits"))
    cfg = modelrepo.inference_config(repo)
    s = sluice_factory(targets="inference", config=cfg, wait=False)
    s.wait_ready(timeout=30)
    m = pb[0]
    with grpc.insecure_channel(f"127.0.0.1:{s.port('inference', 'grpc')}") as ch:
        stub = pb[1].GRPCInferenceServiceStub(ch)

        def index(ready=False):
            resp = stub.RepositoryIndex(m.RepositoryIndexRequest(ready=ready))
            return {mi.name: mi for mi in resp.models}

        idx = index()
        assert set(idx) == {"simple", "mlp_digits"}
        assert (idx["simple"].version, idx["simple"].state) == ("1.0.0", "READY")

        stub.RepositoryModelUnload(m.RepositoryModelUnloadRequest(model_name="simple"))
        wait_until(lambda: not stub.ModelReady(m.ModelReadyRequest(name="simple")).ready, 10,
                   "simple to unload")
        assert "simple" not in index(ready=True)
        assert "simple" in index()
        expect_error(lambda: stub.ModelInfer(request(pb, "simple", simple_inputs())),
                     grpc.StatusCode.UNAVAILABLE, "simple")
        # mlp_digits is untouched.
        assert stub.ModelReady(m.ModelReadyRequest(name="mlp_digits")).ready is True

        stub.RepositoryModelLoad(m.RepositoryModelLoadRequest(model_name="simple"), timeout=30 * SLOW)
        assert stub.ModelReady(m.ModelReadyRequest(name="simple")).ready is True
        assert index(ready=True)["simple"].state == "READY"
        got = outputs_of(stub.ModelInfer(request(pb, "simple", simple_inputs(2))))
        assert (got["OUTPUT0"] == 2 * simple_inputs(2)[0][2]).all()

        expect_error(lambda: stub.RepositoryModelLoad(m.RepositoryModelLoadRequest(model_name="nope")),
                     grpc.StatusCode.NOT_FOUND, "nope")
        expect_error(lambda: stub.RepositoryModelLoad(m.RepositoryModelLoadRequest(model_name="")),
                     grpc.StatusCode.INVALID_ARGUMENT, "model_name")
        expect_error(lambda: stub.RepositoryModelUnload(
            m.RepositoryModelUnloadRequest(model_name="../models")),
            grpc.StatusCode.INVALID_ARGUMENT, "model_name")
        req = m.RepositoryModelLoadRequest(model_name="simple")
        req.parameters["config"].string_param = "{}"
        expect_error(lambda: stub.RepositoryModelLoad(req), grpc.StatusCode.INVALID_ARGUMENT, "config")


def test_failed_load_is_reported(sluice_factory, pb, tmp_path):
    """A version whose artifact does not match its manifest's sha256 is refused with a reason."""
    repo = modelrepo.make_repository(str(tmp_path / "models"), names=("simple",))
    s = sluice_factory(targets="inference", config=modelrepo.inference_config(repo))
    m = pb[0]
    modelrepo.add_version(repo, "simple", "2.0.0", sha256="0" * 64)
    with grpc.insecure_channel(f"127.0.0.1:{s.port('inference', 'grpc')}") as ch:
        stub = pb[1].GRPCInferenceServiceStub(ch)
        details = expect_error(
            lambda: stub.RepositoryModelLoad(m.RepositoryModelLoadRequest(model_name="simple"),
                                             timeout=30 * SLOW),
            grpc.StatusCode.INVALID_ARGUMENT)
        assert "sha256" in details
        # The old version keeps serving.
        resp = stub.ModelInfer(request(pb, "simple", simple_inputs()))
        assert resp.model_version == "1.0.0"
