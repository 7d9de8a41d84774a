"""The sluice CLI as a user runs it: version, help, config check, health, serve's targets and
its startup errors."""
import os
import socket
import subprocess

import pytest

from conftest import SLUICE_BIN, free_port


def run(*args, **kw):
    return subprocess.run([SLUICE_BIN, *args], capture_output=True, text=True, timeout=60, **kw)


def test_version():
    r = run("version")
    assert r.returncode == 0 and r.stdout.startswith("sluice ")
    assert run("--version").stdout == r.stdout


def test_help_lists_every_command():
    r = run("help")
    assert r.returncode == 0
    for cmd in ("serve", "config", "health", "version", "help"):
        assert f"  {cmd}" in r.stdout


@pytest.mark.parametrize("cmd", ["serve", "config", "health", "version", "help"])
def test_every_command_has_help(cmd):
    a = run(cmd, "--help")
    b = run("help", cmd)
    assert a.returncode == 0 and b.returncode == 0
    assert a.stdout == b.stdout and a.stdout.startswith("Usage: sluice " + cmd)


def test_unknown_command_is_a_usage_error():
    r = run("frobnicate")
    assert r.returncode == 2 and "unknown command 'frobnicate'" in r.stderr


def test_list_targets():
    r = run("serve", "--list-targets")
    assert r.returncode == 0
    names = [l.split()[0] for l in r.stdout.splitlines()[1:]]
    assert names == ["registry", "features", "inference", "worker", "gateway", "all"]


def test_unknown_target():
    r = run("serve", "--target", "gateway,teleporter")
    assert r.returncode == 2 and "unknown target 'teleporter'" in r.stderr


def test_config_check_valid(tmp_path):
    f = tmp_path / "ok.yaml"
    f.write_text("server:\n  io_threads: 2\nlog:\n  level: debug\n")
    r = run("config", "check", str(f))
    assert r.returncode == 0 and r.stdout.strip() == f"{f}: ok"


def test_config_check_reports_every_error_with_line(tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text("server:\n  io_threads: lots\nlog:\n  level: chatty\nnot_an_option: 1\n")
    r = run("config", "check", str(f))
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 3, r.stderr
    assert lines[0].startswith(f"{f}:2: ") and "server.io_threads" in lines[0]
    assert lines[1].startswith(f"{f}:4: ") and "log.level" in lines[1]
    assert lines[2].startswith(f"{f}:5: ") and "not_an_option" in lines[2]


def test_config_check_missing_file(tmp_path):
    r = run("config", "check", str(tmp_path / "nope.yaml"))
    assert r.returncode == 1 and "nope.yaml" in r.stderr


def test_config_docs_lists_options():
    r = run("config", "docs")
    assert r.returncode == 0
    for opt in ("server.io_threads", "http.max_body_bytes", "log.level", "tracing.sample_ratio"):
        assert opt in r.stdout


def test_checked_in_config_docs_are_current():
    """docs/configuration.md is generated from the option table; `make docs` refreshes it."""
    repo = os.path.join(os.path.dirname(__file__), "../..")
    with open(os.path.join(repo, "docs/configuration.md")) as f:
        assert f.read() == run("config", "docs").stdout


def test_serve_refuses_bad_config(tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text("http:\n  max_headers: -5\n")
    r = run("serve", "--config", str(f))
    assert r.returncode == 1
    assert f"{f}:2:" in r.stderr


def test_serve_reports_port_in_use(tmp_path):
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    p = blocker.getsockname()[1]
    f = tmp_path / "c.yaml"
    f.write_text(f"server:\n  bind_host: 127.0.0.1\ngateway:\n  http_port: {p}\n")
    r = run("serve", "--config", str(f), "--target", "gateway")
    blocker.close()
    assert r.returncode == 1
    assert f"cannot listen on 127.0.0.1:{p} (gateway-http): address already in use" in r.stderr


def test_health_command(sluice_factory):
    srv = sluice_factory(targets="worker")
    r = run("health", srv.url("worker", ""))
    assert r.returncode == 0 and "ready" in r.stdout
    r = run("health", srv.url("worker", "/readyz"))
    assert r.returncode == 0


def test_health_command_unreachable():
    r = run("health", "--timeout", "500", f"http://127.0.0.1:{free_port()}")
    assert r.returncode == 1 and "unreachable" in r.stderr


def test_health_command_bad_url():
    r = run("health", "ftp://example")
    assert r.returncode == 2
