"""End-to-end serving behaviour of `sluice serve --target inference`, as an operator checks it:
dynamic batching is real (fewer executions than requests, every caller gets its own answer),
queue-full and queue-timeout answers are counted exactly and priorities are honoured, a model
version is replaced under load without one failed request (by API and by repository polling)
while a corrupt artifact is refused, XGBoost answers are bit-identical to python3-xgboost, the
quickstart repository serves every example, and `sluice models` drives a running server."""
import concurrent.futures
import json
import os
import re
import subprocess
import threading
import time

import numpy as np
import pytest
import requests

import modelrepo
from conftest import REPO, SLOW, SLUICE_BIN, Sluice, wait_until

EXAMPLES = os.path.join(REPO, "examples", "models")
QUICKSTART = os.path.join(REPO, "examples", "quickstart", "models")
FRAUD = os.path.join(EXAMPLES, "fraud_xgboost")
SIMPLE = modelrepo.CONFIGS["simple"]


def ref(model, kind, name):
    return np.load(os.path.join(EXAMPLES, model, "reference", f"{kind}.{name}.npy"))


def tensor(name, arr, dt):
    return {"name": name, "datatype": dt, "shape": list(arr.shape), "data": arr.flatten().tolist()}


def simple_body(i, rows=1, **extra):
    """A request whose answer identifies it: INPUT0 = i, INPUT1 = 1000*i + 0..15 (per row)."""
    a = np.full((rows, 16), i, dtype=np.int32)
    b = (np.arange(16, dtype=np.int32) + 1000 * i).reshape(1, 16).repeat(rows, 0)
    body = {"id": f"r{i}", "inputs": [tensor("INPUT0", a, "INT32"), tensor("INPUT1", b, "INT32")]}
    body.update(extra)
    return body, a, b


def post(s, path, body=None, timeout=30):
    data = body if body is None or isinstance(body, (str, bytes)) else json.dumps(body)
    return requests.post(s.url("inference", path), data=data, timeout=timeout * SLOW)


def get(s, path):
    return requests.get(s.url("inference", path), timeout=10 * SLOW)


def model_stats(s, model):
    r = get(s, f"/v2/models/{model}/stats")
    assert r.status_code == 200, r.text
    (st,) = r.json()["model_stats"]
    return st


def metric(s, name, **labels):
    """The value of one Prometheus sample of /metrics (None when absent)."""
    text = get(s, "/metrics").text
    for line in text.splitlines():
        m = re.match(r"^(\w+)(?:\{(.*)\})? (\S+)$", line)
        if not m or m.group(1) != name:
            continue
        got = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
        if all(got.get(k) == str(v) for k, v in labels.items()):
            return float(m.group(3))
    return None


def stop(s):
    code = s.stop()
    assert code == 0, f"sluice exited with {code}:\n{s.log_text()[-4000:]}"


# ---- batching, queue policies and priorities ----

# Execute times of the deliberately slow models (x4 under sanitizers): long enough for the test
# to queue its requests behind the executing one before it finishes.
QFULL_US, QTIMEOUT_US, PRIO_US = (us * SLOW for us in (1000000, 600000, 600000))


def slow_config(policy, delay_us, max_batch=1, levels=""):
    return SIMPLE.replace("max_batch_size: 8", f"max_batch_size: {max_batch}") + f"""dynamic_batching:
  max_queue_delay_us: 0
{levels}  default_queue_policy: {policy}
parameters: {{delay_us: "{delay_us}"}}
"""


BATCHING_MODELS = {
    "batched": SIMPLE + """dynamic_batching: {max_queue_delay_us: 2000}
parameters: {delay_us: "2000"}
""",
    "unbatched": SIMPLE + 'parameters: {delay_us: "2000"}\n',
    "qfull": slow_config("{max_queue_size: 3}", QFULL_US, max_batch=8),
    "qtimeout": slow_config(f"{{default_timeout_us: {100000 * SLOW}}}", QTIMEOUT_US),
    "prio": slow_config("{max_queue_size: 0}", PRIO_US, levels="  priority_levels: 2\n"),
}


@pytest.fixture(scope="module")
def batching_server(tmp_path_factory):
    s = modelrepo.start_inference(tmp_path_factory.mktemp("batching"), configs=BATCHING_MODELS)
    yield s
    stop(s)


def fire(s, model, n, body_of=simple_body):
    """n requests at once from n threads; returns [(i, response, a, b)]."""
    barrier = threading.Barrier(n)

    def one(i):
        body, a, b = body_of(i)
        barrier.wait()
        return i, post(s, f"/v2/models/{model}/infer", body), a, b

    with concurrent.futures.ThreadPoolExecutor(n) as ex:
        return list(ex.map(one, range(n)))


def check_own_answers(results):
    for i, r, a, b in results:
        assert r.status_code == 200, r.text
        j = r.json()
        assert j["id"] == f"r{i}"
        out = {o["name"]: np.array(o["data"], np.int32).reshape(o["shape"]) for o in j["outputs"]}
        np.testing.assert_array_equal(out["OUTPUT0"], a + b, err_msg=f"request {i}")
        np.testing.assert_array_equal(out["OUTPUT1"], a - b, err_msg=f"request {i}")


def test_dynamic_batching_is_real(batching_server):
    s = batching_server
    check_own_answers(fire(s, "batched", 64))
    st = model_stats(s, "batched")
    assert st["inference_count"] == 64
    assert st["inference_stats"]["success"]["count"] == 64
    assert st["execution_count"] < 64, st
    sizes = {b["batch_size"]: b["compute_infer"]["count"] for b in st["batch_stats"]}
    assert sum(k * v for k, v in sizes.items()) == 64 and max(sizes) > 1, sizes
    # The histogram says the same: some executions carried more than one item.
    labels = {"model": "batched", "version": "1.0.0"}
    count = metric(s, "sluice_inference_batch_size_count", **labels)
    ones = metric(s, "sluice_inference_batch_size_bucket", le="1", **labels)
    total = metric(s, "sluice_inference_batch_size_sum", **labels)
    assert count == st["execution_count"] and total == 64, (count, total)
    assert ones < count, f"every one of {count} executions had batch size 1"


def test_without_dynamic_batching_every_request_executes_alone(batching_server):
    s = batching_server
    check_own_answers(fire(s, "unbatched", 32))
    st = model_stats(s, "unbatched")
    assert st["execution_count"] == 32 and st["inference_count"] == 32, st
    assert {b["batch_size"] for b in st["batch_stats"]} == {1}


def queued(s, model):
    return metric(s, "sluice_inference_queue_depth", model=model, version="1.0.0") or 0


def executing(s, model, before):
    """Waits until the request just sent has left the queue (it is executing)."""
    wait_until(lambda: model_stats(s, model)["inference_stats"]["queue"]["count"] > before, 10,
               f"a request of {model} to start executing")


def test_queue_full_answers_503_counted_exactly(batching_server):
    """One request executing and 3 queued (max_queue_size 3): each of 5 more is refused at once
    with 503 and Retry-After; the 4 accepted all succeed; statistics count 5 failures."""
    s = batching_server
    with concurrent.futures.ThreadPoolExecutor(8) as ex:
        send = lambda i: post(s, "/v2/models/qfull/infer", simple_body(i)[0])  # noqa: E731
        first = ex.submit(send, 0)
        executing(s, "qfull", 0)
        held = [ex.submit(send, i) for i in (1, 2, 3)]
        wait_until(lambda: queued(s, "qfull") == 3, 10, "three queued requests")
        t0 = time.monotonic()
        refused = [send(i) for i in range(4, 9)]
        assert time.monotonic() - t0 < QFULL_US / 1e6, "refusals waited for the queue"
        assert not first.done(), "the machine is too slow for this test's timing"
        for r in refused:
            assert r.status_code == 503 and r.headers["Retry-After"] == "1", r.text
            assert "queue of model 'qfull' is full" in r.json()["error"]
        assert all(f.result().status_code == 200 for f in [first] + held)
    st = model_stats(s, "qfull")
    # The first alone, then the three that waited as one batch.
    assert (st["execution_count"], st["inference_count"]) == (2, 4), st
    st = st["inference_stats"]
    assert (st["success"]["count"], st["fail"]["count"]) == (4, 5), st
    assert metric(s, "sluice_inference_requests_total", model="qfull", outcome="failure") == 5


def test_queue_timeout_answers_504_counted_exactly(batching_server):
    """default_timeout_us 100 ms: the 4 requests queued behind a 600 ms execution time out with
    504; the executing one succeeds; a request after the queue drained is served."""
    s = batching_server
    with concurrent.futures.ThreadPoolExecutor(8) as ex:
        send = lambda i: post(s, "/v2/models/qtimeout/infer", simple_body(i)[0])  # noqa: E731
        first = ex.submit(send, 0)
        executing(s, "qtimeout", 0)
        late = list(ex.map(send, range(1, 5)))
        assert first.result().status_code == 200
    for r in late:
        assert r.status_code == 504, r.text
        assert "timed out in the queue of model 'qtimeout'" in r.json()["error"]
    assert post(s, "/v2/models/qtimeout/infer", simple_body(9)[0]).status_code == 200
    st = model_stats(s, "qtimeout")["inference_stats"]
    assert (st["success"]["count"], st["fail"]["count"]) == (2, 4), st


def test_priority_level_1_overtakes_queued_level_2(batching_server):
    s = batching_server
    done = []

    def send(i, level):
        r = post(s, "/v2/models/prio/infer", simple_body(i, parameters={"priority": level})[0])
        assert r.status_code == 200, r.text
        done.append(i)

    with concurrent.futures.ThreadPoolExecutor(8) as ex:
        futs = [ex.submit(send, 0, 2)]
        executing(s, "prio", 0)
        for i in (1, 2):  # two low-priority requests queue, in this order
            futs.append(ex.submit(send, i, 2))
            wait_until(lambda n=i: queued(s, "prio") == n, 10, f"{i} queued")
        futs.append(ex.submit(send, 3, 1))  # then a high-priority one
        wait_until(lambda: queued(s, "prio") == 3, 10, "3 queued")
        assert not futs[0].done(), "the machine is too slow for this test's timing"
        for f in futs:
            f.result()
    assert done == [0, 3, 1, 2]


# ---- hot reload under load ----

class Load:
    """Threads that infer mlp_digits continuously, recording every answer's version and failure."""

    def __init__(self, s, threads=4):
        self.s, self.stop_ev = s, threading.Event()
        self.x = ref("mlp_digits", "input", "pixels")[:2]
        self.want = ref("mlp_digits", "output", "logits")[:2]
        self.body = json.dumps({"inputs": [tensor("pixels", self.x, "FP32")]})
        self.versions, self.failures, self.lock = [], [], threading.Lock()
        self.threads = [threading.Thread(target=self.run) for _ in range(threads)]
        for t in self.threads:
            t.start()

    def run(self):
        sess = requests.Session()
        url = self.s.url("inference", "/v2/models/mlp_digits/infer")
        while not self.stop_ev.is_set():
            try:
                r = sess.post(url, data=self.body, timeout=30 * SLOW)
                ok = r.status_code == 200
                if ok:
                    j = r.json()
                    got = np.array(j["outputs"][0]["data"], np.float32).reshape(self.want.shape)
                    ok = np.max(np.abs(got - self.want)) <= 1e-5 * np.max(np.abs(self.want))
                with self.lock:
                    if ok:
                        self.versions.append(j["model_version"])
                    else:
                        self.failures.append(f"{r.status_code}: {r.text[:200]}")
            except requests.RequestException as e:
                with self.lock:
                    self.failures.append(repr(e))

    def count(self, version):
        with self.lock:
            return self.versions.count(version)

    def finish(self):
        self.stop_ev.set()
        for t in self.threads:
            t.join()


def index(s):
    r = post(s, "/v2/repository/index", "{}")
    assert r.status_code == 200, r.text
    return {(m["name"], m.get("version")): m for m in r.json()}


def test_hot_reload_under_load(tmp_path):
    repo = str(tmp_path / "models")
    s = modelrepo.start_inference(tmp_path, ("mlp_digits",), repo=repo)
    load = Load(s)
    try:
        wait_until(lambda: load.count("1.0.0") >= 20, 10, "answers from 1.0.0")
        modelrepo.add_version(repo, "mlp_digits", "2.0.0", modelrepo.ARTIFACTS["mlp_digits"])
        r = post(s, "/v2/repository/models/mlp_digits/load")
        assert r.status_code == 200, r.text
        # Once the load has answered, new requests go to the new version ...
        r = post(s, "/v2/models/mlp_digits/infer", load.body)
        assert r.status_code == 200 and r.json()["model_version"] == "2.0.0", r.text
        n2 = load.count("2.0.0")
        wait_until(lambda: load.count("2.0.0") >= n2 + 20, 10, "the load threads to see 2.0.0")
        # ... and the old one is gone (version_policy latest 1).
        wait_until(lambda: get(s, "/v2/models/mlp_digits/versions/1.0.0/ready").status_code
                   != 200, 10, "1.0.0 to unload")

        # A corrupt artifact is refused with the reason; 2.0.0 keeps serving.
        modelrepo.add_version(repo, "mlp_digits", "3.0.0", modelrepo.ARTIFACTS["mlp_digits"],
                              sha256="ab" * 32)
        r = post(s, "/v2/repository/models/mlp_digits/load")
        assert r.status_code == 400 and "sha256" in r.json()["error"], r.text
        assert str(tmp_path) not in r.json()["error"], "a client-visible error names a host path"
        n2 = load.count("2.0.0")
        wait_until(lambda: load.count("2.0.0") >= n2 + 20, 10, "2.0.0 to keep serving")
        idx = index(s)
        assert idx[("mlp_digits", "2.0.0")]["state"] == "READY", idx
        bad = idx.get(("mlp_digits", "3.0.0"))
        assert bad and bad["state"] != "READY" and "sha256" in bad["reason"], idx
    finally:
        load.finish()
        stop(s)
    assert not load.failures, load.failures[:5]
    assert load.count("3.0.0") == 0
    assert any("sha256" in (ln.get("msg", "") + json.dumps(ln)) for ln in s.log_lines())


def test_poll_mode_picks_up_a_new_version_without_a_load_call(tmp_path):
    repo = str(tmp_path / "models")
    s = modelrepo.start_inference(tmp_path, ("mlp_digits",), repo=repo, poll_interval="200ms")
    load = Load(s)
    try:
        wait_until(lambda: load.count("1.0.0") >= 20, 10, "answers from 1.0.0")
        # Deployed as a tool would: built elsewhere, then renamed into place in one step.
        staging = str(tmp_path / "staging")
        vdir = modelrepo.add_version(staging, "mlp_digits", "1.1.0",
                                     modelrepo.ARTIFACTS["mlp_digits"])
        os.rename(vdir, os.path.join(repo, "mlp_digits", "1.1.0"))
        wait_until(lambda: load.count("1.1.0") >= 20, 10, "answers from 1.1.0 after a poll")
        # A corrupt version dropped in is refused by the poller too; 1.1.0 keeps serving.
        vdir = modelrepo.add_version(staging, "mlp_digits", "1.2.0",
                                     modelrepo.ARTIFACTS["mlp_digits"], sha256="cd" * 32)
        os.rename(vdir, os.path.join(repo, "mlp_digits", "1.2.0"))
        wait_until(lambda: "sha256" in index(s).get(("mlp_digits", "1.2.0"), {}).get("reason", ""),
                   10, "the poller to refuse 1.2.0")
        n = load.count("1.1.0")
        wait_until(lambda: load.count("1.1.0") >= n + 20, 10, "1.1.0 to keep serving")
    finally:
        load.finish()
        stop(s)
    assert not load.failures, load.failures[:5]
    assert load.count("1.2.0") == 0


# ---- the quickstart repository: every example, XGBoost bit for bit, the CLI ----

@pytest.fixture(scope="module")
def quickstart(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("quickstart")
    t0 = time.monotonic()
    s = Sluice(targets="inference", config=modelrepo.inference_config(QUICKSTART), tmpdir=str(tmp))
    try:
        wait_until(lambda: s._ready("inference") and get(s, "/v2/health/ready").status_code == 200,
                   30, "the quickstart repository to be ready", interval=0.005)
    except BaseException:
        s.stop()
        raise
    print(f"\nquickstart: start to ready {1000 * (time.monotonic() - t0):.0f} ms")
    yield s
    stop(s)


ONNX_EXAMPLES = [("mlp_digits", "pixels", "logits"), ("lenet_digits", "image", "logits"),
                 ("logistic_breast_cancer", "features", "probability"),
                 ("transformer_sentiment", "tokens", "logits")]


def test_quickstart_serves_every_model(quickstart):
    s = quickstart
    names = {os.path.basename(d) for d in os.listdir(QUICKSTART)}
    idx = index(s)
    assert {n for n, _ in idx} == names
    assert all(m["state"] == "READY" for m in idx.values()), idx
    assert get(s, "/v2/health/ready").status_code == 200
    for name, inp, out in ONNX_EXAMPLES:
        x = ref(name, "input", inp)
        dt = "INT64" if x.dtype == np.int64 else "FP32"
        r = post(s, f"/v2/models/{name}/infer", {"inputs": [tensor(inp, x, dt)]})
        assert r.status_code == 200, r.text
        (o,) = r.json()["outputs"]
        want = ref(name, "output", out)
        got = np.array(o["data"], np.float32).reshape(o["shape"])
        assert got.shape == want.shape, name
        rel = np.max(np.abs(got - want)) / np.max(np.abs(want))
        assert rel <= 1e-5, f"{name}: max relative error {rel:.2e}"
    a, b = ref("simple", "input", "INPUT0"), ref("simple", "input", "INPUT1")
    r = post(s, "/v2/models/simple_onnx/infer",
             {"inputs": [tensor("INPUT0", a, "INT32"), tensor("INPUT1", b, "INT32")]})
    out = {o["name"]: np.array(o["data"], np.int32).reshape(o["shape"]) for o in r.json()["outputs"]}
    np.testing.assert_array_equal(out["OUTPUT0"], a + b)
    np.testing.assert_array_equal(out["OUTPUT1"], a - b)


def test_xgboost_is_bit_identical_to_python_xgboost(quickstart):
    xgb = pytest.importorskip("xgboost", reason="python3-xgboost not installed")
    s = quickstart
    x = np.load(os.path.join(FRAUD, "reference", "input.features.npy"))
    want = xgb.Booster(model_file=os.path.join(FRAUD, "model.ubj")).inplace_predict(x)
    want = np.asarray(want, np.float32)
    # Binary output: the exact float32 bits.
    header = json.dumps({"inputs": [{"name": "features", "datatype": "FP32", "shape": list(x.shape),
                                     "parameters": {"binary_data_size": x.nbytes}}],
                         "parameters": {"binary_data_output": True}}).encode()
    r = requests.post(s.url("inference", "/v2/models/fraud_xgboost/infer"),
                      data=header + x.tobytes(), timeout=30 * SLOW,
                      headers={"Inference-Header-Content-Length": str(len(header))})
    assert r.status_code == 200, r.text
    hl = int(r.headers["Inference-Header-Content-Length"])
    (o,) = json.loads(r.content[:hl])["outputs"]
    assert (o["name"], o["datatype"], o["shape"]) == ("probability", "FP32", [x.shape[0]])
    assert r.content[hl:] == want.tobytes()
    # JSON output: %.9g round-trips float32, so the parsed numbers are the same bits.
    r = post(s, "/v2/models/fraud_xgboost/infer", {"inputs": [tensor("features", x, "FP32")]})
    assert r.status_code == 200, r.text
    assert np.array(r.json()["outputs"][0]["data"], np.float32).tobytes() == want.tobytes()
    # One row per request from many threads, batched by the server: each row's own bits.
    rows = min(len(x), 32)
    res = fire(s, "fraud_xgboost", rows, lambda i: (
        {"id": f"r{i}", "inputs": [tensor("features", x[i:i + 1], "FP32")]}, None, None))
    for i, r, _, _ in res:
        assert r.status_code == 200 and r.json()["id"] == f"r{i}", r.text
        got = np.array(r.json()["outputs"][0]["data"], np.float32)
        assert got.tobytes() == want[i:i + 1].tobytes(), f"row {i}"


def cli(s, *args):
    return subprocess.run([SLUICE_BIN, "models", "--url", s.url("inference", "").rstrip("/"), *args],
                          capture_output=True, text=True, timeout=60 * SLOW)


def test_models_cli(quickstart, tmp_path):
    s = quickstart
    r = cli(s, "list")
    assert r.returncode == 0, r.stderr
    rows = [ln.split() for ln in r.stdout.splitlines()[1:]]
    assert {row[0] for row in rows} == set(os.listdir(QUICKSTART))
    assert all(row[1:3] == ["1.0.0", "READY"] for row in rows), r.stdout
    # A URL with a trailing slash names the same server.
    r2 = subprocess.run([SLUICE_BIN, "models", "--url", s.url("inference", "/"), "list"],
                        capture_output=True, text=True, timeout=60 * SLOW)
    assert r2.returncode == 0 and r2.stdout == r.stdout, r2.stderr

    pixels = os.path.join(EXAMPLES, "mlp_digits", "reference", "input.pixels.npy")
    r = cli(s, "infer", "mlp_digits", "--input", f"pixels={pixels}")
    assert r.returncode == 0, r.stderr
    j = json.loads(r.stdout)
    assert (j["model_name"], j["model_version"]) == ("mlp_digits", "1.0.0")
    want = ref("mlp_digits", "output", "logits")
    got = np.array(j["outputs"][0]["data"], np.float32).reshape(j["outputs"][0]["shape"])
    assert got.shape == want.shape
    assert np.max(np.abs(got - want)) <= 1e-5 * np.max(np.abs(want))

    r = cli(s, "unload", "simple_onnx")
    assert r.returncode == 0 and "simple_onnx" in r.stdout, r.stderr
    wait_until(lambda: get(s, "/v2/models/simple_onnx/ready").status_code == 503, 10,
               "simple_onnx to unload")
    assert {k[0]: m["state"] for k, m in index(s).items()}["simple_onnx"] != "READY"
    r = cli(s, "load", "simple_onnx")
    assert r.returncode == 0 and "simple_onnx" in r.stdout, r.stderr
    assert get(s, "/v2/models/simple_onnx/ready").status_code == 200
    assert get(s, "/v2/health/ready").status_code == 200

    # The server refuses: exit 1 with its message.
    for args in (("infer", "nope", "--input", f"pixels={pixels}"), ("load", "nope")):
        r = cli(s, *args)
        assert r.returncode == 1 and "HTTP 404" in r.stderr and "nope" in r.stderr, r.stderr
    r = cli(s, "infer", "mlp_digits", "--input", f"image={pixels}")
    assert r.returncode == 1 and "HTTP 400" in r.stderr and "'image'" in r.stderr, r.stderr
    # Bad arguments and unreadable files: exit 2, nothing sent.
    bad = tmp_path / "bad.npy"
    bad.write_bytes(b"not a numpy file")
    for args in (("frobnicate",), ("list", "extra"), ("load",), ("infer", "mlp_digits"),
                 ("infer", "mlp_digits", "--input", "pixels"),
                 ("infer", "mlp_digits", "--input", f"pixels={tmp_path / 'missing.npy'}"),
                 ("infer", "mlp_digits", "--input", f"pixels={bad}"),
                 ("infer", "bad/name", "--input", f"pixels={pixels}")):
        r = cli(s, *args)
        assert r.returncode == 2, (args, r.returncode, r.stderr)
        assert r.stderr.startswith("sluice models"), (args, r.stderr)
    r = subprocess.run([SLUICE_BIN, "models", "--url", "ftp://x", "list"], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 2 and "http://" in r.stderr
