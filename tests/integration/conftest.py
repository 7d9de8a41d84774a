"""Shared fixtures for integration tests: start the real `sluice` binary on free loopback ports
with a generated config, wait until it is ready, and on teardown stop it with SIGTERM and check
that it exited cleanly (exit 0, no sanitizer report)."""
import json
import os
import signal
import socket
import subprocess
import tempfile
import time

import pytest
import requests

SLUICE_BIN = os.environ.get("SLUICE_BIN", os.path.join(os.path.dirname(__file__), "../../build/sluice"))
REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "../.."))
SANITIZED = os.environ.get("SLUICE_SANITIZE", "OFF") in ("ON", "1", "TRUE", "true")
# Sanitized builds are several times slower; scale deadlines, never the assertions.
SLOW = 4 if SANITIZED else 1

COMPONENT_PORTS = {
    "gateway": ["http_port"],
    "inference": ["http_port", "grpc_port"],
    "features": ["http_port", "grpc_port"],
    "registry": ["http_port", "grpc_port"],
    "worker": ["http_port"],
}


_given_ports = set()


def free_port():
    """A loopback port that is free right now (the kernel picks it) and that this process has
    not handed out before: the kernel may pick a just-released port again, and two components
    of one config given the same port made a test fail once."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _given_ports:
            _given_ports.add(port)
            return port


def wait_until(pred, timeout, what, interval=0.02):
    """Polls pred() until it returns a truthy value or the deadline passes."""
    deadline = time.monotonic() + timeout * SLOW
    last_exc = None
    while time.monotonic() < deadline:
        try:
            v = pred()
            if v:
                return v
        except Exception as e:  # noqa: BLE001 - keep polling, report the last error
            last_exc = e
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}" + (f": {last_exc}" if last_exc else ""))


def yaml_dump(d, indent=0):
    """A tiny YAML writer for nested dicts of scalars; lists are written in flow style (JSON is
    valid YAML) and keys quoted (so "*" is a key, not an alias), enough for our configs."""
    out = []
    for k, v in d.items():
        key = " " * indent + json.dumps(str(k)) + ":"
        if isinstance(v, (list, tuple)):
            out.append(f"{key} {json.dumps(list(v))}")
        elif isinstance(v, dict) and not v:
            out.append(f"{key} {{}}")
        elif isinstance(v, dict):
            out.append(key)
            out.append(yaml_dump(v, indent + 2))
        elif isinstance(v, bool):
            out.append(f"{key} {'true' if v else 'false'}")
        elif isinstance(v, str):
            out.append(f"{key} {json.dumps(v)}")
        else:
            out.append(f"{key} {v}")
    return "\n".join(out)


def merge(a, b):
    for k, v in b.items():
        if isinstance(v, dict) and isinstance(a.get(k), dict):
            merge(a[k], v)
        else:
            a[k] = v
    return a


class Sluice:
    """A running `sluice serve` process."""

    def __init__(self, targets="all", config=None, tmpdir=None, env=None, extra_args=()):
        self.tmpdir = tmpdir or tempfile.mkdtemp(prefix="sluice-it-")
        self.targets = targets
        self.ports = {}
        cfg = {"server": {"bind_host": "127.0.0.1", "io_threads": 2, "drain_timeout": "5s"}}
        for comp, keys in COMPONENT_PORTS.items():
            cfg[comp] = {}
            for key in keys:
                p = free_port()
                cfg[comp][key] = p
                self.ports[(comp, key.split("_")[0])] = p
        merge(cfg, config or {})
        # Ports given explicitly by the test win.
        for comp, keys in COMPONENT_PORTS.items():
            for key in keys:
                self.ports[(comp, key.split("_")[0])] = cfg[comp][key]
        self.config = cfg
        self.config_path = os.path.join(self.tmpdir, "sluice.yaml")
        with open(self.config_path, "w") as f:
            f.write(yaml_dump(cfg) + "\n")
        self.stderr_path = os.path.join(self.tmpdir, "stderr.log")
        self.stderr = open(self.stderr_path, "wb")
        full_env = dict(os.environ)
        full_env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=1")
        full_env.update(env or {})
        self.proc = subprocess.Popen(
            [SLUICE_BIN, "serve", "--config", self.config_path, "--target", targets, *extra_args],
            stdout=subprocess.DEVNULL, stderr=self.stderr, env=full_env)

    def url(self, component="gateway", path="/"):
        return f"http://127.0.0.1:{self.ports[(component, 'http')]}{path}"

    def port(self, component, kind="http"):
        return self.ports[(component, kind)]

    def running_components(self):
        if self.targets == "all":
            return list(COMPONENT_PORTS)
        return self.targets.split(",")

    def wait_ready(self, timeout=10):
        for comp in self.running_components():
            wait_until(lambda c=comp: self._ready(c), timeout, f"{comp} ready")
        return self

    def _ready(self, comp):
        if self.proc.poll() is not None:
            raise AssertionError(f"sluice exited early with {self.proc.returncode}:\n{self.log_text()}")
        return requests.get(self.url(comp, "/readyz"), timeout=1).status_code == 200

    def log_text(self):
        if not self.stderr.closed:
            self.stderr.flush()
        with open(self.stderr_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def log_lines(self):
        """Parsed JSON log lines (sanitizer output and other non-JSON lines are skipped)."""
        lines = []
        for line in self.log_text().splitlines():
            if line.startswith("{"):
                lines.append(json.loads(line))
        return lines

    def rewrite_config(self, changes):
        merge(self.config, changes)
        tmp = self.config_path + ".tmp"
        with open(tmp, "w") as f:
            f.write(yaml_dump(self.config) + "\n")
        os.replace(tmp, self.config_path)

    def stop(self, sig=signal.SIGTERM, timeout=15):
        """Stops the process and returns its exit code; asserts no sanitizer report."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout * SLOW)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("sluice did not stop within the deadline:\n" + self.log_text()[-4000:])
        self.stderr.close()
        text = self.log_text()
        for marker in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:"):
            assert marker not in text, f"sanitizer report:\n{text[-6000:]}"
        return self.proc.returncode


@pytest.fixture
def sluice_factory(tmp_path):
    started = []

    def start(targets="all", config=None, wait=True, **kw):
        d = tmp_path / f"s{len(started)}"
        d.mkdir()
        s = Sluice(targets=targets, config=config, tmpdir=str(d), **kw)
        started.append(s)
        if wait:
            s.wait_ready()
        return s

    yield start
    for s in started:
        code = s.stop()
        assert code == 0, f"sluice exited with {code}:\n{s.log_text()[-4000:]}"


@pytest.fixture
def sluice(sluice_factory):
    """All components in one process, on free loopback ports."""
    return sluice_factory()
