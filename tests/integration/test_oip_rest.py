"""The Open Inference Protocol over REST as existing clients see it: requests and curl talk to
`sluice serve --target inference` over a temporary model repository (the `simple` example
backend and the ONNX example models). JSON tensors (flat and nested) and Triton's binary tensor
extension both ways; served outputs are checked against the reference outputs committed with the
examples; every error case is checked for its status and for an {"error": "..."} body that names
what was wrong; the repository, configuration and statistics extensions."""
import concurrent.futures
import json
import os
import subprocess

import numpy as np
import pytest
import requests

import modelrepo
from conftest import REPO, SLOW, wait_until

EXAMPLES = os.path.join(REPO, "examples", "models")
MAX_BODY = 1 << 20
SLOW_DELAY_US = 400000
NP = {"BOOL": np.bool_, "INT8": np.int8, "INT16": np.int16, "INT32": np.int32, "INT64": np.int64,
      "UINT8": np.uint8, "UINT16": np.uint16, "UINT32": np.uint32, "UINT64": np.uint64,
      "FP16": np.float16, "FP32": np.float32, "FP64": np.float64}

# A slow `simple` whose queue holds one request and lets requests set their own timeout.
SLOWQ_CONFIG = modelrepo.CONFIGS["simple"] + f"""dynamic_batching:
  max_queue_delay_us: 0
  default_queue_policy:
    max_queue_size: 1
    allow_timeout_override: true
parameters:
  delay_us: "{SLOW_DELAY_US}"
"""


LIMITS = {"http": {"max_body_bytes": MAX_BODY}}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = modelrepo.start_inference(tmp_path_factory.mktemp("oip_rest"),
                                  ("simple", "mlp_digits", "lenet_digits",
                                   "logistic_breast_cancer", "transformer_sentiment"),
                                  configs={"slowq": SLOWQ_CONFIG}, extra=LIMITS)
    yield s
    code = s.stop()
    assert code == 0, f"sluice exited with {code}:\n{s.log_text()[-4000:]}"


def url(server, path):
    return server.url("inference", path)


def ref(model, kind, name):
    return np.load(os.path.join(EXAMPLES, model, "reference", f"{kind}.{name}.npy"))


def close_to(got, want):
    assert got.shape == want.shape and got.dtype == want.dtype
    rel = np.max(np.abs(got - want)) / max(np.max(np.abs(want)), 1e-30)
    assert rel <= 1e-5, f"max relative error {rel:.2e}"


# ---- request building and response decoding (what tritonclient.http does) ----

def json_input(name, arr, nested=False):
    data = arr.tolist() if nested else arr.flatten().tolist()
    return {"name": name, "datatype": dtype_name(arr), "shape": list(arr.shape), "data": data}


def dtype_name(arr):
    for k, v in NP.items():
        if arr.dtype == v:
            return k
    raise ValueError(arr.dtype)


def binary_body(inputs, json_inputs=(), outputs=None, params=None, rid=None):
    """(body, header_len): inputs is [(name, array)] sent as binary; json_inputs as JSON."""
    req = {"inputs": []}
    raw = b""
    for name, arr in inputs:
        b = np.ascontiguousarray(arr).tobytes()
        req["inputs"].append({"name": name, "datatype": dtype_name(arr), "shape": list(arr.shape),
                              "parameters": {"binary_data_size": len(b)}})
        raw += b
    req["inputs"] += list(json_inputs)
    if outputs is not None:
        req["outputs"] = outputs
    if params:
        req["parameters"] = params
    if rid is not None:
        req["id"] = rid
    header = json.dumps(req).encode()
    return header + raw, len(header)


def decode(resp):
    """{name: ndarray} from a 200 response, JSON or binary."""
    assert resp.status_code == 200, resp.text
    body = resp.content
    hl = resp.headers.get("Inference-Header-Content-Length")
    if hl is None:
        assert resp.headers["Content-Type"] == "application/json"
        header, raw = json.loads(body), b""
    else:
        assert resp.headers["Content-Type"] == "application/octet-stream"
        header, raw = json.loads(body[:int(hl)]), body[int(hl):]
    out, off = {}, 0
    for o in header["outputs"]:
        size = o.get("parameters", {}).get("binary_data_size")
        if size is None:
            out[o["name"]] = np.array(o["data"], dtype=NP[o["datatype"]]).reshape(o["shape"])
        else:
            out[o["name"]] = np.frombuffer(raw[off:off + size],
                                           dtype=NP[o["datatype"]]).reshape(o["shape"])
            off += size
    assert off == len(raw), "binary section longer than the outputs declare"
    decode.header = header
    return out


def infer(server, model, body, header_len=None, version=None, timeout=30):
    path = f"/v2/models/{model}" + (f"/versions/{version}" if version else "") + "/infer"
    headers = {}
    if header_len is not None:
        headers = {"Inference-Header-Content-Length": str(header_len),
                   "Content-Type": "application/octet-stream"}
    elif not isinstance(body, (bytes, str)):
        body = json.dumps(body)
    return requests.post(url(server, path), data=body, headers=headers, timeout=timeout * SLOW)


def expect_error(resp, status, *fragments):
    assert resp.status_code == status, f"{resp.status_code}: {resp.text}"
    assert resp.headers["Content-Type"] == "application/json"
    body = resp.json()
    assert list(body) == ["error"] and isinstance(body["error"], str), body
    for f in fragments:
        assert f in body["error"], body["error"]
    return body["error"]


def curl(*args):
    """(status, headers dict, body bytes) of a curl call."""
    r = subprocess.run(["curl", "-s", "-S", "-D", "-", "--max-time", str(30 * SLOW), *args],
                       capture_output=True, check=True)
    out = r.stdout
    while out.startswith(b"HTTP/1.1 100"):  # an interim 100 Continue precedes the response
        out = out.partition(b"\r\n\r\n")[2]
    head, _, body = out.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
    return int(lines[0].split()[1]), headers, body


SIMPLE_A = ref("simple", "input", "INPUT0")
SIMPLE_B = ref("simple", "input", "INPUT1")


# ---- health and metadata ----

def test_server_metadata_and_health(server):
    md = requests.get(url(server, "/v2"), timeout=5).json()
    assert md["name"] == "sluice" and md["version"]
    assert {"binary_tensor_data", "model_repository", "model_configuration",
            "statistics"} <= set(md["extensions"])
    for path in ("/v2/health/live", "/v2/health/ready"):
        r = requests.get(url(server, path), timeout=5)
        assert r.status_code == 200 and r.content == b""
    status, _, _ = curl(url(server, "/v2/health/ready"))
    assert status == 200


def test_model_metadata(server):
    for path in ("/v2/models/simple", "/v2/models/simple/versions/1.0.0"):
        md = requests.get(url(server, path), timeout=5).json()
        assert md["name"] == "simple" and md["versions"] == ["1.0.0"] and md["platform"]
        assert md["inputs"] == [{"name": "INPUT0", "datatype": "INT32", "shape": [-1, 16]},
                                {"name": "INPUT1", "datatype": "INT32", "shape": [-1, 16]}]
        assert md["outputs"] == [{"name": "OUTPUT0", "datatype": "INT32", "shape": [-1, 16]},
                                 {"name": "OUTPUT1", "datatype": "INT32", "shape": [-1, 16]}]
    md = requests.get(url(server, "/v2/models/transformer_sentiment"), timeout=5).json()
    assert md["inputs"] == [{"name": "tokens", "datatype": "INT64", "shape": [-1, -1]}]
    md = requests.get(url(server, "/v2/models/lenet_digits"), timeout=5).json()
    assert md["inputs"][0]["shape"] == [-1, 1, 8, 8] and md["platform"] == "onnx_onnxv1"
    expect_error(requests.get(url(server, "/v2/models/nope"), timeout=5), 404, "nope")
    expect_error(requests.get(url(server, "/v2/models/simple/versions/2.0.0"), timeout=5), 404,
                 "2.0.0")
    expect_error(requests.get(url(server, "/v2/models/bad%20name"), timeout=5), 400, "model name")
    expect_error(requests.get(url(server, "/v2/models/simple/what"), timeout=5), 404)
    expect_error(requests.get(url(server, "/v2/models/simple/versions/1.0.0/x/y"), timeout=5), 404)


def test_model_ready(server):
    for path in ("/v2/models/simple/ready", "/v2/models/simple/versions/1.0.0/ready"):
        r = requests.get(url(server, path), timeout=5)
        assert r.status_code == 200 and r.content == b""
    expect_error(requests.get(url(server, "/v2/models/nope/ready"), timeout=5), 404, "nope")
    expect_error(requests.get(url(server, "/v2/models/simple/versions/9.9.9/ready"), timeout=5),
                 404, "9.9.9")


def test_model_config(server):
    for path in ("/v2/models/simple/config", "/v2/models/simple/versions/1.0.0/config"):
        cfg = requests.get(url(server, path), timeout=5).json()
        assert cfg["name"] == "simple" and cfg["max_batch_size"] == 8
        assert [i["name"] for i in cfg["input"]] == ["INPUT0", "INPUT1"]
    expect_error(requests.get(url(server, "/v2/models/nope/config"), timeout=5), 404, "nope")


# ---- inference ----

@pytest.mark.parametrize("nested", [False, True], ids=["flat", "nested"])
def test_infer_simple_json(server, nested):
    body = {"id": "req-7", "inputs": [json_input("INPUT0", SIMPLE_A, nested),
                                      json_input("INPUT1", SIMPLE_B, nested)]}
    r = infer(server, "simple", body)
    got = decode(r)
    h = decode.header
    assert (h["model_name"], h["model_version"], h["id"]) == ("simple", "1.0.0", "req-7")
    assert [(o["name"], o["datatype"], o["shape"]) for o in h["outputs"]] == [
        ("OUTPUT0", "INT32", [4, 16]), ("OUTPUT1", "INT32", [4, 16])]
    np.testing.assert_array_equal(got["OUTPUT0"], ref("simple", "output", "OUTPUT0"))
    np.testing.assert_array_equal(got["OUTPUT1"], ref("simple", "output", "OUTPUT1"))


def test_infer_simple_binary_both_ways(server):
    body, hl = binary_body([("INPUT0", SIMPLE_A), ("INPUT1", SIMPLE_B)],
                           params={"binary_data_output": True}, rid="bin")
    r = infer(server, "simple", body, hl)
    got = decode(r)
    assert int(r.headers["Inference-Header-Content-Length"]) < len(r.content)
    assert all("data" not in o for o in decode.header["outputs"])
    np.testing.assert_array_equal(got["OUTPUT0"], SIMPLE_A + SIMPLE_B)
    np.testing.assert_array_equal(got["OUTPUT1"], SIMPLE_A - SIMPLE_B)
    # One input binary, one JSON; one output binary, one JSON, only those asked for, in order.
    body, hl = binary_body([("INPUT1", SIMPLE_B)], json_inputs=[json_input("INPUT0", SIMPLE_A)],
                           outputs=[{"name": "OUTPUT1", "parameters": {"binary_data": True}},
                                    {"name": "OUTPUT0"}])
    got = decode(infer(server, "simple", body, hl))
    assert [o["name"] for o in decode.header["outputs"]] == ["OUTPUT1", "OUTPUT0"]
    assert "data" in decode.header["outputs"][1]
    np.testing.assert_array_equal(got["OUTPUT0"], SIMPLE_A + SIMPLE_B)
    np.testing.assert_array_equal(got["OUTPUT1"], SIMPLE_A - SIMPLE_B)


def test_infer_with_curl(server, tmp_path):
    body = {"inputs": [json_input("INPUT0", SIMPLE_A), json_input("INPUT1", SIMPLE_B)],
            "outputs": [{"name": "OUTPUT0"}]}
    status, headers, out = curl("-H", "Content-Type: application/json", "-d", json.dumps(body),
                                url(server, "/v2/models/simple/infer"))
    assert status == 200 and headers["content-type"] == "application/json"
    o = json.loads(out)["outputs"]
    assert [x["name"] for x in o] == ["OUTPUT0"]
    assert o[0]["data"] == (SIMPLE_A + SIMPLE_B).flatten().tolist()
    # Binary in and out, the body from a file as a shell user would send it.
    raw, hl = binary_body([("INPUT0", SIMPLE_A), ("INPUT1", SIMPLE_B)],
                          params={"binary_data_output": True})
    f = tmp_path / "body.bin"
    f.write_bytes(raw)
    status, headers, out = curl("-H", f"Inference-Header-Content-Length: {hl}",
                                "-H", "Content-Type: application/octet-stream",
                                "--data-binary", f"@{f}", url(server, "/v2/models/simple/infer"))
    assert status == 200 and headers["content-type"] == "application/octet-stream"
    n = int(headers["inference-header-content-length"])
    h = json.loads(out[:n])
    assert [(o["name"], o["parameters"]["binary_data_size"]) for o in h["outputs"]] == [
        ("OUTPUT0", 256), ("OUTPUT1", 256)]
    np.testing.assert_array_equal(np.frombuffer(out[n:n + 256], np.int32).reshape(4, 16),
                                  SIMPLE_A + SIMPLE_B)
    np.testing.assert_array_equal(np.frombuffer(out[n + 256:], np.int32).reshape(4, 16),
                                  SIMPLE_A - SIMPLE_B)
    # curl's errors come back as OIP's {"error": ...} too.
    status, _, out = curl("-d", "{nope", url(server, "/v2/models/simple/infer"))
    assert status == 400 and "invalid JSON" in json.loads(out)["error"]


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
@pytest.mark.parametrize("model,inp,out", [
    ("mlp_digits", "pixels", "logits"),
    ("lenet_digits", "image", "logits"),
    ("logistic_breast_cancer", "features", "probability"),
    ("transformer_sentiment", "tokens", "logits"),
])
def test_infer_onnx_matches_reference(server, binary, model, inp, out):
    x = ref(model, "input", inp)
    if binary:
        body, hl = binary_body([(inp, x)], params={"binary_data_output": True})
        got = decode(infer(server, model, body, hl, version="1.0.0"))
    else:
        got = decode(infer(server, model, {"inputs": [json_input(inp, x, nested=True)]}))
    assert list(got) == [out]
    close_to(got[out], ref(model, "output", out))


def test_json_floats_round_trip_exactly(server):
    """FP32 outputs printed as JSON read back as the very floats the binary response carries."""
    x = ref("mlp_digits", "input", "pixels")
    as_json = decode(infer(server, "mlp_digits", {"inputs": [json_input("pixels", x)]}))["logits"]
    body, hl = binary_body([("pixels", x)], params={"binary_data_output": True})
    as_bin = decode(infer(server, "mlp_digits", body, hl))["logits"]
    assert as_json.tobytes() == as_bin.tobytes()


def test_concurrent_callers_get_their_own_answers(server):
    def one(i):
        a = np.full((1, 16), i, dtype=np.int32)
        b = np.arange(16, dtype=np.int32).reshape(1, 16)
        r = infer(server, "simple", {"id": str(i), "inputs": [json_input("INPUT0", a),
                                                             json_input("INPUT1", b)]})
        got = decode(r)
        return r.json()["id"] == str(i) and (got["OUTPUT0"] == a + b).all()

    with concurrent.futures.ThreadPoolExecutor(16) as ex:
        assert all(ex.map(one, range(64)))


@pytest.mark.parametrize("dt", sorted(set(NP) - {"INT32"}) + ["BYTES", "BF16"])
def test_every_datatype_decodes_and_is_checked_against_the_model(server, dt):
    """Every datatype is decoded (JSON, or binary for FP16/BF16); the model (INT32) then names the
    mismatch."""
    b = json_input("INPUT1", np.arange(16, dtype=np.int32).reshape(1, 16))
    if dt in ("FP16", "BF16"):
        a = {"name": "INPUT0", "datatype": dt, "shape": [1, 16]}
        r = infer(server, "simple", {"inputs": [dict(a, data=[0.5] * 16), b]})
        expect_error(r, 400, "INPUT0", dt, "binary")
        a["parameters"] = {"binary_data_size": 32}
        header = json.dumps({"inputs": [a, b]}).encode()
        r = infer(server, "simple", header + bytes(32), len(header))
    elif dt == "BYTES":
        a = {"name": "INPUT0", "datatype": dt, "shape": [1, 16], "data": ["x" * i for i in range(16)]}
        r = infer(server, "simple", {"inputs": [a, b]})
    else:
        vals = [True, False] * 8 if dt == "BOOL" else list(range(16))
        a = {"name": "INPUT0", "datatype": dt, "shape": [1, 16], "data": vals}
        r = infer(server, "simple", {"inputs": [a, b]})
    expect_error(r, 400, "INPUT0", "INT32", dt)


# ---- errors ----

def simple_body(**over):
    body = {"inputs": [json_input("INPUT0", SIMPLE_A), json_input("INPUT1", SIMPLE_B)]}
    body.update(over)
    return body


def test_unknown_model_and_version(server):
    expect_error(infer(server, "nope", simple_body()), 404, "nope")
    expect_error(infer(server, "simple", simple_body(), version="3.1.4"), 404, "3.1.4")
    expect_error(infer(server, "bad$name", simple_body()), 400, "model name")


def test_wrong_input_name_shape_datatype(server):
    a = np.zeros((1, 16), dtype=np.int32)
    cases = {
        "name": ([json_input("INPUT0", a), json_input("INPUTX", a)], "INPUTX"),
        "missing": ([json_input("INPUT0", a)], "INPUT1"),
        "shape": ([json_input("INPUT0", a), json_input("INPUT1", np.zeros((1, 15), np.int32))],
                  "INPUT1"),
        "batch": ([json_input("INPUT0", np.zeros((9, 16), np.int32)),
                   json_input("INPUT1", np.zeros((9, 16), np.int32))], "INPUT0"),
        "datatype": ([json_input("INPUT0", a), json_input("INPUT1", a.astype(np.float32))],
                     "INPUT1"),
    }
    for what, (inputs, frag) in cases.items():
        expect_error(infer(server, "simple", {"inputs": inputs}), 400, frag)
    expect_error(infer(server, "simple", simple_body(outputs=[{"name": "OUTPUT9"}])), 400,
                 "OUTPUT9")


def test_malformed_requests(server):
    expect_error(infer(server, "simple", "{\"inputs\": ["), 400, "invalid JSON")
    expect_error(infer(server, "simple", "[]"), 400, "JSON object")
    expect_error(infer(server, "simple", b""), 400, "invalid JSON")
    expect_error(infer(server, "simple", {"inputs": "x"}), 400, "'inputs'", "array")
    bad = simple_body()
    bad["inputs"][0]["data"] = bad["inputs"][0]["data"][:-1]
    expect_error(infer(server, "simple", bad), 400, "INPUT0", "63 elements", "[4,16]", "64")
    bad = simple_body()
    bad["inputs"][1]["data"][5] = 2 ** 31
    expect_error(infer(server, "simple", bad), 400, "INPUT1", "element 5", "out of range for INT32")
    bad = simple_body()
    bad["inputs"][0]["data"] = SIMPLE_A.tolist()[:3]
    expect_error(infer(server, "simple", bad), 400, "INPUT0", "nested data does not match",
                 "[4,16]")
    expect_error(infer(server, "simple", simple_body(parameters={"priority": "high"})), 400,
                 "priority")


def test_binary_framing_errors(server):
    body, hl = binary_body([("INPUT0", SIMPLE_A), ("INPUT1", SIMPLE_B)])
    # The header says more than the body holds.
    expect_error(infer(server, "simple", body, len(body) + 10), 400,
                 f"Inference-Header-Content-Length {len(body) + 10} is larger than the body "
                 f"({len(body)} bytes)")
    # Binary section shorter / longer than the inputs declare.
    expect_error(infer(server, "simple", body[:-4], hl), 400,
                 f"binary data is {len(body) - hl - 4} bytes, inputs declare {len(body) - hl}")
    expect_error(infer(server, "simple", body + b"xx", hl), 400,
                 f"binary data is {len(body) - hl + 2} bytes, inputs declare {len(body) - hl}")
    # The header cuts the JSON short.
    expect_error(infer(server, "simple", body, hl - 3), 400, "invalid JSON")
    # Binary data without Inference-Header-Content-Length.
    r = requests.post(url(server, "/v2/models/simple/infer"), data=body, timeout=10 * SLOW)
    expect_error(r, 400, "invalid JSON")
    header = body[:hl]
    r = requests.post(url(server, "/v2/models/simple/infer"), data=header, timeout=10 * SLOW)
    expect_error(r, 400, "binary_data_size", "no Inference-Header-Content-Length header")
    # A malformed header value.
    for v in ("abc", "-5", "1e3", "99999999999999999999"):
        r = requests.post(url(server, "/v2/models/simple/infer"), data=body, timeout=10 * SLOW,
                          headers={"Inference-Header-Content-Length": v})
        expect_error(r, 400, "Inference-Header-Content-Length must be a non-negative integer")
    # binary_data_size that disagrees with the shape.
    req = json.loads(header)
    req["inputs"][0]["parameters"]["binary_data_size"] = 100
    h2 = json.dumps(req).encode()
    expect_error(infer(server, "simple", h2 + body[hl:], len(h2)), 400, "INPUT0",
                 "binary_data_size is 100 bytes", "needs 256")


def test_oversize_body(server, tmp_path):
    """A body over http.max_body_bytes gets 413. curl asks with Expect: 100-continue, as it does
    for large bodies, so the answer cannot race the upload (a plain POST could see the
    connection reset while still sending)."""
    big = np.zeros((8, MAX_BODY // 32), dtype=np.int32)
    body, hl = binary_body([("INPUT0", big), ("INPUT1", big)])
    f = tmp_path / "big.bin"
    f.write_bytes(body)
    status, _, _ = curl("-H", f"Inference-Header-Content-Length: {hl}", "-H", "Expect: 100-continue",
                        "--data-binary", f"@{f}", url(server, "/v2/models/simple/infer"))
    assert status == 413
    # The server keeps serving.
    assert decode(infer(server, "simple", simple_body()))["OUTPUT0"].shape == (4, 16)


def test_wrong_methods(server):
    expect_error(requests.get(url(server, "/v2/models/simple/infer"), timeout=5), 405, "POST")
    expect_error(requests.post(url(server, "/v2/models/simple"), timeout=5), 405)
    assert requests.put(url(server, "/v2/models/simple/infer"), timeout=5).status_code == 405


def stats(server, path):
    r = requests.get(url(server, path), timeout=5)
    assert r.status_code == 200, r.text
    return {(s["name"], s["version"]): s for s in r.json()["model_stats"]}


def test_overload_and_queue_timeout(server):
    """With one request executing and a queue of one, extra requests are refused with 503 and
    Retry-After; a request whose own timeout passes while queued gets 504."""
    def queued_count():
        return stats(server, "/v2/models/slowq/stats")[("slowq", "1.0.0")]["inference_stats"][
            "queue"]["count"]

    def run_one(params=None):
        return infer(server, "slowq", simple_body(**({"parameters": params} if params else {})))

    with concurrent.futures.ThreadPoolExecutor(8) as ex:
        before = queued_count()
        first = ex.submit(run_one)
        wait_until(lambda: queued_count() > before, 10, "the first request to start executing")
        rest = [ex.submit(run_one) for _ in range(4)]
        codes = [f.result().status_code for f in rest]
        assert first.result().status_code == 200
        assert codes.count(503) >= 3, codes
        for f in rest:
            r = f.result()
            if r.status_code == 503:
                assert r.headers["Retry-After"] == "1"
                expect_error(r, 503)
            else:
                assert r.status_code == 200, r.text

        before = queued_count()
        first = ex.submit(run_one)
        wait_until(lambda: queued_count() > before, 10, "the first request to start executing")
        late = run_one({"timeout": 1000})
        expect_error(late, 504)
        assert first.result().status_code == 200


def test_statistics(server):
    key = ("mlp_digits", "1.0.0")
    before = stats(server, "/v2/models/mlp_digits/stats")[key]
    x = ref("mlp_digits", "input", "pixels")[:2]
    for _ in range(3):
        decode(infer(server, "mlp_digits", {"inputs": [json_input("pixels", x)]}))

    def grown():
        s = stats(server, "/v2/models/mlp_digits/versions/1.0.0/stats")[key]
        done = s["inference_stats"]["success"]["count"] == before["inference_stats"]["success"]["count"] + 3
        return s if done else None

    s = wait_until(grown, 10, "statistics to count three more requests")
    assert s["inference_count"] == before["inference_count"] + 6
    assert before["execution_count"] + 1 <= s["execution_count"] <= before["execution_count"] + 3
    assert s["last_inference"] > 0
    for k in ("success", "queue", "compute_infer"):
        assert s["inference_stats"][k]["ns"] > before["inference_stats"][k]["ns"], k
    assert {"fail", "compute_input", "compute_output", "cache_hit", "cache_miss"} <= set(
        s["inference_stats"])
    sizes = {b["batch_size"]: b["compute_infer"]["count"] for b in s["batch_stats"]}
    assert sizes.get(2, 0) >= 1, sizes
    every = stats(server, "/v2/models/stats")
    assert {("simple", "1.0.0"), key, ("transformer_sentiment", "1.0.0")} <= set(every)
    expect_error(requests.get(url(server, "/v2/models/nope/stats"), timeout=5), 404, "nope")
    expect_error(requests.get(url(server, "/v2/models/simple/versions/7.0.0/stats"), timeout=5),
                 404, "7.0.0")


# ---- the repository extension ----

def test_repository_index_load_unload(sluice_factory, tmp_path):
    repo, cfg = modelrepo.serving_config(tmp_path, ("simple", "mlp_digits"), extra=LIMITS)
    s = sluice_factory(targets="inference", config=cfg, wait=False)
    s.wait_ready(timeout=30)

    def post(path, body=None, **kw):
        return requests.post(url(s, path), data=body, timeout=30 * SLOW, **kw)

    def index(body=None):
        r = post("/v2/repository/index", body)
        assert r.status_code == 200, r.text
        return {m["name"]: m for m in r.json()}

    idx = index()
    assert idx["simple"] == {"name": "simple", "version": "1.0.0", "state": "READY", "reason": ""}
    assert set(idx) == {"simple", "mlp_digits"}

    r = post("/v2/repository/models/simple/unload")
    assert r.status_code == 200 and r.json() == {}
    wait_until(lambda: requests.get(url(s, "/v2/models/simple/ready"), timeout=5).status_code == 503,
               10, "simple to unload")
    assert "simple" not in index('{"ready": true}')
    assert "simple" in index('{"ready": false}')
    expect_error(infer(s, "simple", simple_body()), 503, "simple")
    assert requests.get(url(s, "/v2/models/mlp_digits/ready"), timeout=5).status_code == 200

    r = post("/v2/repository/models/simple/load", "{}")
    assert r.status_code == 200 and r.json() == {}
    assert requests.get(url(s, "/v2/models/simple/ready"), timeout=5).status_code == 200
    assert index('{"ready": true}')["simple"]["state"] == "READY"
    assert decode(infer(s, "simple", simple_body()))["OUTPUT0"].shape == (4, 16)

    expect_error(post("/v2/repository/models/nope/load"), 404, "nope")
    expect_error(post("/v2/repository/models/simple/load",
                      json.dumps({"parameters": {"config": "{}"}})), 400, "config")
    expect_error(post("/v2/repository/models/simple/load", "{bad"), 400, "invalid JSON")
    expect_error(post("/v2/repository/models/..%2f/unload"), 400, "model name")
    expect_error(post("/v2/repository/models/simple/reload"), 404)
    expect_error(post("/v2/repository/index", '{"ready": "yes"}'), 400, "ready")

    # A version whose artifact does not match its sha256 is refused; the old one keeps serving.
    modelrepo.add_version(repo, "simple", "2.0.0", sha256="0" * 64)
    expect_error(post("/v2/repository/models/simple/load"), 400, "sha256")
    r = infer(s, "simple", simple_body())
    assert r.status_code == 200 and r.json()["model_version"] == "1.0.0"
