"""Builds model repositories for tests: models/<name>/config.yaml plus <semver>/manifest.json with
the artifact's sha256 and the artifact itself (a symlink to a committed example, or a file)."""
import hashlib
import json
import os

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "../.."))
EXAMPLES = os.path.join(REPO, "examples", "models")
BACKEND_DIR = os.environ.get("SLUICE_BACKEND_DIR", os.path.join(REPO, "build", "backends"))

# config.yaml bodies of the example models (name and version are added by add_model).
CONFIGS = {
    "simple": """backend: simple
max_batch_size: 8
inputs:
  - {name: INPUT0, datatype: INT32, dims: [16]}
  - {name: INPUT1, datatype: INT32, dims: [16]}
outputs:
  - {name: OUTPUT0, datatype: INT32, dims: [16]}
  - {name: OUTPUT1, datatype: INT32, dims: [16]}
""",
    "mlp_digits": """backend: onnx
max_batch_size: 256
inputs:
  - {name: pixels, datatype: FP32, dims: [64]}
outputs:
  - {name: logits, datatype: FP32, dims: [10]}
""",
    "lenet_digits": """backend: onnx
max_batch_size: 64
inputs:
  - {name: image, datatype: FP32, dims: [1, 8, 8]}
outputs:
  - {name: logits, datatype: FP32, dims: [10]}
""",
    "logistic_breast_cancer": """backend: onnx
max_batch_size: 256
inputs:
  - {name: features, datatype: FP32, dims: [30]}
outputs:
  - {name: probability, datatype: FP32, dims: [1]}
""",
    "transformer_sentiment": """backend: onnx
max_batch_size: 32
inputs:
  - {name: tokens, datatype: INT64, dims: [-1]}
outputs:
  - {name: logits, datatype: FP32, dims: [2]}
""",
}

# The artifact of each example model (None: the backend needs no file; a placeholder is written).
ARTIFACTS = {
    "simple": None,
    "mlp_digits": os.path.join(EXAMPLES, "mlp_digits", "model.onnx"),
    "lenet_digits": os.path.join(EXAMPLES, "lenet_digits", "model.onnx"),
    "logistic_breast_cancer": os.path.join(EXAMPLES, "logistic_breast_cancer", "model.onnx"),
    "transformer_sentiment": os.path.join(EXAMPLES, "transformer_sentiment", "model.onnx"),
}


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def add_version(repo, name, version, artifact=None, sha256=None, artifact_name=None):
    """Adds models/<name>/<version>/ with the artifact (symlinked when it is a path, written when
    it is bytes) and a manifest; sha256 overrides the computed digest (to test mismatches)."""
    vdir = os.path.join(repo, name, version)
    os.makedirs(vdir, exist_ok=True)
    if artifact is None:
        artifact = b"simple backend: no weights\n"
    if isinstance(artifact, bytes):
        artifact_name = artifact_name or "model.bin"
        path = os.path.join(vdir, artifact_name)
        with open(path, "wb") as f:
            f.write(artifact)
    else:
        artifact_name = artifact_name or os.path.basename(artifact)
        path = os.path.join(vdir, artifact_name)
        if os.path.lexists(path):
            os.unlink(path)
        os.symlink(os.path.abspath(artifact), path)
    manifest = {
        "artifact": artifact_name,
        "sha256": sha256 or sha256_file(path),
        "semver": version,
        "trained_at": "2026-11-01T00:00:00Z",
        "metrics": {},
    }
    with open(os.path.join(vdir, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=2)
    return vdir


def add_model(repo, name, version="1.0.0", config=None, extra_config="", artifact="example", **kw):
    """Adds an example model (config from CONFIGS unless given) with one version."""
    os.makedirs(os.path.join(repo, name), exist_ok=True)
    with open(os.path.join(repo, name, "config.yaml"), "w") as f:
        f.write((config if config is not None else CONFIGS[name]) + extra_config)
    if artifact == "example":
        artifact = ARTIFACTS.get(name)
    return add_version(repo, name, version, artifact, **kw)


def make_repository(path, names=("simple", "mlp_digits")):
    os.makedirs(path, exist_ok=True)
    for n in names:
        add_model(path, n)
    return path


def inference_config(repo, poll_interval=None):
    """The `inference:` config section that serves repo with the example backends."""
    cfg = {"inference": {"model_repository": str(repo), "backend_dir": BACKEND_DIR}}
    if poll_interval is not None:
        cfg["inference"]["poll_interval"] = poll_interval
    return cfg


def serving_config(tmpdir, names=(), configs=None, extra=None, repo=None, poll_interval=None):
    """Builds the repository repo (default <tmpdir>/models) with the example models in names and
    one model per configs entry (name: config.yaml text, served by a placeholder artifact), and
    returns (repo, config): inference_config(repo, poll_interval) with extra merged into it."""
    from conftest import merge  # here, not at the top: bench/ imports this module without pytest

    repo = str(repo or os.path.join(str(tmpdir), "models"))
    make_repository(repo, names)
    for name, text in (configs or {}).items():
        add_model(repo, name, config=text, artifact=None)
    return repo, merge(inference_config(repo, poll_interval), extra or {})


def start_inference(tmpdir, names=(), configs=None, extra=None, repo=None, poll_interval=None,
                    timeout=30):
    """Builds a repository as serving_config does and starts `sluice serve --target inference`
    on it (in tmpdir); returns the Sluice once ready (stopped again if it does not get there in
    timeout seconds). The caller stops it."""
    from conftest import Sluice

    repo, cfg = serving_config(tmpdir, names, configs, extra, repo, poll_interval)
    s = Sluice(targets="inference", config=cfg, tmpdir=str(tmpdir))
    try:
        s.wait_ready(timeout=timeout)
    except BaseException:
        s.stop()
        raise
    return s
