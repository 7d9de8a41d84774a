"""The README's inference tour, run as written: every command of the block after
<!-- tour:inference --> against `sluice serve` with the quickstart config (examples/quickstart),
on free ports instead of 8000/8001. A command that fails or answers an error fails the test, so
the README cannot drift from the code."""
import os
import re
import subprocess

import requests

from conftest import REPO, SLUICE_BIN, free_port, wait_until

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



def test_readme_gateway_tour_runs_as_written(tmp_path):
    """The block after <!-- tour:gateway --> as one bash script against inference + gateway with
    the quickstart config, copied to a temporary directory (own ports, own keys file) so the
    repository stays untouched."""
    import shutil
    import signal

    text = open(README).read()
    block = text.split("<!-- tour:gateway -->", 1)[1].split("```sh\n", 1)[1].split("```", 1)[0]
    quick = os.path.join(REPO, "examples", "quickstart")
    copy = tmp_path / "quickstart"
    copy.mkdir()
    shutil.copy(os.path.join(quick, "transaction.json"), copy / "transaction.json")
    os.symlink(os.path.join(quick, "models"), copy / "models")
    gw, http, grpc = free_port(), free_port(), free_port()
    cfg = open(os.path.join(quick, "sluice.yaml")).read()
    cfg = cfg.replace("\ngateway:\n", f"\ngateway:\n  http_port: {gw}\n  reload_interval: 100ms\n")
    cfg = cfg.replace("\ninference:\n", f"\ninference:\n  http_port: {http}\n  grpc_port: {grpc}\n")
    (copy / "sluice.yaml").write_text(cfg)
    key = subprocess.run([os.path.join(REPO, "scripts", "quickstart-key"), SLUICE_BIN, str(copy)],
                         capture_output=True, text=True, check=True).stdout.strip()
    assert key.startswith("slk_")
    log = open(tmp_path / "stderr.log", "wb")
    proc = subprocess.Popen([SLUICE_BIN, "serve", "--config", str(copy / "sluice.yaml"),
                             "--target", "inference,gateway"], stdout=subprocess.DEVNULL,
                            stderr=log)
    try:
        for port in (gw, http):
            wait_until(lambda p=port: requests.get(f"http://127.0.0.1:{p}/readyz",
                                                   timeout=1).status_code == 200, 20, "ready")
        script = (block.replace("127.0.0.1:8080", f"127.0.0.1:{gw}")
                  .replace("examples/quickstart/", f"{copy}/")
                  .replace("./build/sluice", SLUICE_BIN))
        r = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", script], cwd=REPO,
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, f"exit {r.returncode}\n{r.stdout}\n{r.stderr}"
        out = r.stdout
        assert re.search(r'"fraud_probability":0\.99', out), out
        assert '"platform":"xgboost"' in out
        assert re.search(r"(?i)ratelimit-policy: .*\"predict\"", out), out
        assert re.search(r"unauthorized.* 401", out), out
        assert re.search(r"'amount'.* 400", out), out
        assert "slk_" in out and "acme" in out
        assert '"versions":[' in out and '"upstreams":[' in out
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        log.close()
