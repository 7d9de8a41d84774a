"""Static checks of the quickstart model repository (examples/quickstart/models) and the fraud
example: every version's manifest matches its artifact (sha256, semver = directory name), the
artifacts are symlinks that resolve inside the repo, every config.yaml is valid YAML with the
fields the server needs, and the fraud model's committed reference outputs are exactly what
python3-xgboost predicts on the reference inputs. No server is started."""
import glob
import hashlib
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "../.."))
QUICKSTART = os.path.join(REPO, "examples", "quickstart", "models")
FRAUD = os.path.join(REPO, "examples", "models", "fraud_xgboost")
MODEL_MANIFEST = os.path.join(REPO, "scripts", "model-manifest")
SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$")

EXPECTED_MODELS = {"mlp_digits", "lenet_digits", "logistic_breast_cancer",
                   "transformer_sentiment", "fraud_xgboost", "simple_onnx"}
DATATYPES = {"BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64",
             "FP16", "FP32", "FP64", "BYTES", "BF16"}


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        h.update(f.read())
    return h.hexdigest()


def versions():
    out = []
    for mdir in sorted(glob.glob(os.path.join(QUICKSTART, "*"))):
        for vdir in sorted(glob.glob(os.path.join(mdir, "*"))):
            if os.path.isdir(vdir):
                out.append(vdir)
    return out


def rel(p):
    return os.path.relpath(p, REPO)


def test_repository_has_every_model_at_1_0_0():
    names = {os.path.basename(d) for d in glob.glob(os.path.join(QUICKSTART, "*"))}
    assert names == EXPECTED_MODELS
    for n in names:
        assert os.path.isfile(os.path.join(QUICKSTART, n, "config.yaml")), n
        assert os.path.isdir(os.path.join(QUICKSTART, n, "1.0.0")), n


@pytest.mark.parametrize("vdir", versions(), ids=rel)
def test_manifest_matches_artifact(vdir):
    with open(os.path.join(vdir, "manifest.json")) as f:
        m = json.load(f)
    assert m["semver"] == os.path.basename(vdir)
    assert SEMVER.match(m["semver"])
    art = m["artifact"]
    assert "/" not in art and art not in (".", "..")
    path = os.path.join(vdir, art)
    assert os.path.isfile(path), f"{rel(path)}: artifact missing or dangling"
    assert re.fullmatch(r"[0-9a-f]{64}", m["sha256"])
    assert m["sha256"] == sha256_file(path), f"{rel(vdir)}: stale sha256 (run scripts/model-manifest)"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)", m["trained_at"])
    assert isinstance(m.get("metrics", {}), dict)
    # The only file besides the manifest is the artifact.
    assert sorted(os.listdir(vdir)) == sorted(["manifest.json", art])


@pytest.mark.parametrize("vdir", versions(), ids=rel)
def test_artifact_symlink_is_relative_and_inside_repo(vdir):
    with open(os.path.join(vdir, "manifest.json")) as f:
        art = os.path.join(vdir, json.load(f)["artifact"])
    assert os.path.islink(art), f"{rel(art)}: expected a symlink to examples/models"
    target = os.readlink(art)
    assert not os.path.isabs(target), f"{rel(art)} -> {target}: must be relative"
    real = os.path.realpath(art)
    assert real.startswith(os.path.join(REPO, "examples", "models") + os.sep), real
    assert os.path.getsize(real) < 1 << 20


def test_manifest_metrics_are_the_training_metrics():
    for name in EXPECTED_MODELS - {"simple_onnx"}:
        src = "fraud_xgboost" if name == "fraud_xgboost" else name
        with open(os.path.join(REPO, "examples", "models", src, "metrics.json")) as f:
            want = json.load(f)
        with open(os.path.join(QUICKSTART, name, "1.0.0", "manifest.json")) as f:
            assert json.load(f)["metrics"] == want, name


def test_fraud_feature_schema_matches_features_json_and_config():
    with open(os.path.join(FRAUD, "features.json")) as f:
        names = json.load(f)
    assert isinstance(names, list) and len(names) == len(set(names)) >= 10
    with open(os.path.join(QUICKSTART, "fraud_xgboost", "1.0.0", "manifest.json")) as f:
        assert json.load(f)["feature_schema"] == names
    x = np.load(os.path.join(FRAUD, "reference", "input.features.npy"))
    assert x.shape[1] == len(names)
    cfg = open(os.path.join(QUICKSTART, "fraud_xgboost", "config.yaml")).read()
    assert f"dims: [{len(names)}]" in cfg


def load_configs():
    yaml = pytest.importorskip("yaml", reason="python3-yaml not installed")
    out = {}
    for path in sorted(glob.glob(os.path.join(QUICKSTART, "*", "config.yaml"))):
        with open(path) as f:
            out[os.path.basename(os.path.dirname(path))] = yaml.safe_load(f)
    return out


def test_configs_parse_and_declare_tensors():
    configs = load_configs()
    assert set(configs) == EXPECTED_MODELS
    for name, c in configs.items():
        assert isinstance(c, dict), name
        assert c["backend"] in ("onnx", "xgboost"), name
        assert isinstance(c["max_batch_size"], int) and c["max_batch_size"] >= 0, name
        for key in ("inputs", "outputs"):
            assert c[key], f"{name}: no {key}"
            for t in c[key]:
                assert set(t) == {"name", "datatype", "dims"}, (name, t)
                assert t["datatype"] in DATATYPES, (name, t)
                assert all(isinstance(d, int) and (d > 0 or d == -1) for d in t["dims"]), (name, t)
        with open(os.path.join(QUICKSTART, name, "1.0.0", "manifest.json")) as f:
            art = json.load(f)["artifact"]
        assert art.endswith(".ubj" if c["backend"] == "xgboost" else ".onnx"), name


def test_fraud_config_batches_caches_and_warms_up():
    c = load_configs()["fraud_xgboost"]
    assert c["backend"] == "xgboost"
    assert c["inputs"] == [{"name": "features", "datatype": "FP32", "dims": [c["inputs"][0]["dims"][0]]}]
    assert c["outputs"] == [{"name": "probability", "datatype": "FP32", "dims": []}]
    assert c["dynamic_batching"]["max_queue_delay_us"] == 200
    assert c["response_cache"]["enable"] is True
    assert c["warmup"] and c["warmup"][0]["batch_size"] >= 1


def test_onnx_configs_match_the_models():
    """Declared ONNX tensors equal the graph's (names, element types, non-batch dims)."""
    onnx = pytest.importorskip("onnx", reason="python3-onnx not installed")
    elem = {1: "FP32", 6: "INT32", 7: "INT64"}
    for name, c in load_configs().items():
        if c["backend"] != "onnx":
            continue
        g = onnx.load(os.path.join(QUICKSTART, name, "1.0.0", "model.onnx")).graph
        inits = {i.name for i in g.initializer}
        for key, vis in (("inputs", [v for v in g.input if v.name not in inits]),
                         ("outputs", list(g.output))):
            got = []
            for v in vis:
                dims = [d.dim_value if d.HasField("dim_value") else -1
                        for d in v.type.tensor_type.shape.dim]
                got.append({"name": v.name, "datatype": elem[v.type.tensor_type.elem_type],
                            "dims": dims[1:] if c["max_batch_size"] > 0 else dims})
            assert got == c[key], (name, key)


def test_fraud_reference_outputs_equal_xgboost_bit_for_bit():
    xgb = pytest.importorskip("xgboost", reason="python3-xgboost not installed")
    x = np.load(os.path.join(FRAUD, "reference", "input.features.npy"))
    want = np.load(os.path.join(FRAUD, "reference", "output.probability.npy"))
    assert x.dtype == np.float32 and x.ndim == 2 and 32 <= x.shape[0] <= 256
    assert want.dtype == np.float32 and want.shape == (x.shape[0],)
    booster = xgb.Booster(model_file=os.path.join(FRAUD, "model.ubj"))
    got = booster.inplace_predict(x).astype(np.float32)
    assert got.tobytes() == want.tobytes()
    # The references are useful: both classes, and confident scores at both ends.
    assert (want > 0.5).any() and (want < 0.05).any()
    assert booster.num_features() == x.shape[1]


def test_fraud_model_has_real_signal():
    with open(os.path.join(FRAUD, "metrics.json")) as f:
        m = json.load(f)
    assert 0.01 <= m["fraud_rate"] <= 0.03
    assert m["test_auc"] >= 0.9 and m["test_pr_auc"] > 10 * m["test_fraud_rate"]
    assert os.path.getsize(os.path.join(FRAUD, "model.ubj")) < 1 << 20


def test_model_manifest_script_refreshes_and_checks(tmp_path):
    vdir = tmp_path / "fraud" / "2.1.0"
    vdir.mkdir(parents=True)
    (vdir / "model.ubj").write_bytes(b"not really a model")
    (vdir / "manifest.json").write_text(json.dumps(
        {"artifact": "model.ubj", "sha256": "0" * 64, "semver": "2.1.0",
         "trained_at": "2026-01-01T00:00:00Z", "metrics": {"auc": 0.5},
         "feature_schema": ["a", "b"]}))

    def run(*args):
        return subprocess.run([sys.executable, MODEL_MANIFEST, *args], capture_output=True,
                              text=True, timeout=60)

    r = run("--check", str(vdir))
    assert r.returncode == 1 and "sha256" in r.stderr
    r = run(str(vdir))
    assert r.returncode == 0, r.stderr
    m = json.loads((vdir / "manifest.json").read_text())
    assert m["sha256"] == hashlib.sha256(b"not really a model").hexdigest()
    assert m["metrics"] == {"auc": 0.5} and m["feature_schema"] == ["a", "b"]
    assert m["trained_at"] == "2026-01-01T00:00:00Z"
    assert run("--check", str(vdir)).returncode == 0
    bad = tmp_path / "fraud" / "latest"
    bad.mkdir()
    r = run(str(bad), "--artifact", "model.ubj")
    assert r.returncode == 2 and "semver" in r.stderr
