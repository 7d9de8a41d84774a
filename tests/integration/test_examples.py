"""The example models (examples/models) through `sluice model run`, against the outputs PyTorch
computed when they were exported. Relative error is measured against each output's largest
magnitude (|got - want| / max|want|): element-wise relative error is meaningless for logits near
zero, where float32 summation order alone moves the fourth significant digit."""
import glob
import os
import subprocess

import numpy as np
import pytest

from conftest import REPO, SLUICE_BIN

MODELS = ["mlp_digits", "lenet_digits", "logistic_breast_cancer", "transformer_sentiment"]


def run_example(name, out_dir):
    """Runs examples/models/<name> on its reference inputs; returns the reference output files."""
    d = os.path.join(REPO, "examples", "models", name)
    args = [SLUICE_BIN, "model", "run", os.path.join(d, "model.onnx"), "--output-dir", str(out_dir)]
    for f in sorted(glob.glob(os.path.join(d, "reference", "input.*.npy"))):
        args += ["--input", f"{os.path.basename(f)[len('input.'):-len('.npy')]}={f}"]
    r = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    refs = sorted(glob.glob(os.path.join(d, "reference", "output.*.npy")))
    assert refs
    return refs


def test_simple_model_is_exact(tmp_path):
    """Triton's "simple" model (INT32 add and subtract): integer outputs must be exact."""
    for ref in run_example("simple", tmp_path):
        out = os.path.basename(ref)[len("output."):]
        want, got = np.load(ref), np.load(tmp_path / out)
        assert got.dtype == np.int32 and np.array_equal(got, want), out


@pytest.mark.parametrize("name", MODELS)
def test_example_matches_pytorch(name, tmp_path):
    refs = run_example(name, tmp_path)
    for ref in refs:
        out = os.path.basename(ref)[len("output."):]
        want, got = np.load(ref), np.load(tmp_path / out)
        assert got.shape == want.shape and got.dtype == want.dtype
        rel = np.max(np.abs(got - want)) / max(np.max(np.abs(want)), 1e-30)
        assert rel <= 1e-5, f"{name}/{out}: max relative error {rel:.2e}"
        if want.shape[-1] > 1:
            assert (got.argmax(-1) == want.argmax(-1)).all()
        else:
            assert ((got > 0.5) == (want > 0.5)).all()


def test_examples_are_small_and_documented():
    for name in MODELS:
        d = os.path.join(REPO, "examples", "models", name)
        assert os.path.getsize(os.path.join(d, "model.onnx")) < 1 << 20
        assert os.path.exists(os.path.join(d, "metrics.json"))
