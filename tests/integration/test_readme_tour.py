"""The README's inference tour, run as written: every command of the block after
<!-- tour:inference --> against `sluice serve` with the quickstart config (examples/quickstart),
on free ports instead of 8000/8001. A command that fails or answers an error fails the test, so
the README cannot drift from the code."""
import os
import re
import subprocess

from conftest import REPO, SLUICE_BIN

README = os.path.join(REPO, "README.md")


def tour_commands():
    text = open(README).read()
    block = text.split("<!-- tour:inference -->", 1)[1]
    block = block.split("```sh\n", 1)[1].split("```", 1)[0]
    cmds, cur = [], ""
    for line in block.splitlines():
        if not cur and (not line.strip() or line.lstrip().startswith("#")):
            continue
        cur += line + "\n"
        # A command ends when its quotes are balanced and it does not continue with '\'.
        if cur.count("'") % 2 == 0 and not line.rstrip().endswith("\\"):
            cmds.append(cur.strip())
            cur = ""
    assert not cur, f"unterminated command in the README tour: {cur}"
    return cmds


def test_readme_inference_tour_runs_as_written(sluice_factory):
    quick = os.path.join(REPO, "examples", "quickstart")
    s = sluice_factory(targets="inference", config={
        "inference": {"model_repository": os.path.join(quick, "models")}})
    port = s.port("inference")
    cmds = tour_commands()
    assert len(cmds) >= 10
    env = dict(os.environ, SLUICE_URL=f"http://127.0.0.1:{port}")
    for cmd in cmds:
        cmd = cmd.replace("127.0.0.1:8000", f"127.0.0.1:{port}").replace("./build/sluice", SLUICE_BIN)
        r = subprocess.run(["bash", "-o", "pipefail", "-c", cmd], cwd=REPO, env=env,
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, f"{cmd}\nexit {r.returncode}\n{r.stdout}\n{r.stderr}"
        out = r.stdout
        if "/nope/" in cmd:
            assert out.startswith('{"error":') and out.rstrip().endswith("404"), out
        elif "/infer" in cmd:
            assert '"outputs"' in out and '"error"' not in out, out
        if "fraud_xgboost/infer" in cmd:
            probs = [float(x) for x in re.search(r'"data":\[([^\]]*)\]', out).group(1).split(",")]
            assert probs[0] > 0.9 and probs[1] < 0.1, probs  # the README's rows: fraud, then not
        if "simple_onnx/infer" in cmd:
            assert '"data":[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16]' in out, out
        if "health/ready" in cmd:
            assert out.strip() == "200", out
        if "models list" in cmd:
            assert out.count("READY") == 6, out
