"""What an operator sees: health endpoints, Prometheus metrics, JSON logs, config hot reload
and OTLP traces (a small in-test collector receives them)."""
import json
import os
import re
import signal
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests

from conftest import wait_until


def parse_prometheus(text):
    """A strict-enough parser of the text format: returns {(name, labels): value} and the
    TYPE of each family; raises on malformed lines."""
    samples, types = {}, {}
    line_re = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$')
    for line in text.splitlines():
        if not line:
            continue
        if line.startswith("# TYPE "):
            _, _, name, typ = line.split(" ", 3)
            types[name] = typ
            continue
        if line.startswith("#"):
            continue
        m = line_re.match(line)
        assert m, f"bad exposition line: {line!r}"
        labels = tuple(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(3) or ""))
        samples[(m.group(1), labels)] = float(m.group(4))
    return samples, types


def test_health_endpoints(sluice):
    for comp in ("gateway", "inference", "features", "registry", "worker"):
        assert requests.get(sluice.url(comp, "/livez"), timeout=5).status_code == 200
        r = requests.get(sluice.url(comp, "/readyz"), timeout=5)
        assert r.status_code == 200
        h = requests.get(sluice.url(comp, "/healthz"), timeout=5).json()
        assert h["status"] == "ok" and h["component"] == comp and h["ready"] is True


def test_metrics_exposition(sluice):
    for _ in range(3):
        requests.get(sluice.url("gateway", "/livez"), timeout=5)
    text = requests.get(sluice.url("gateway", "/metrics"), timeout=5).text
    samples, types = parse_prometheus(text)
    assert types["sluice_http_requests_total"] == "counter"
    assert types["sluice_http_request_duration_seconds"] == "histogram"
    key = ("sluice_http_requests_total", (("server", "gateway-http"), ("route", "/livez"), ("code", "2xx")))
    assert samples[key] >= 3
    assert samples[("process_resident_memory_bytes", ())] > 0
    assert ("sluice_config_last_reload_success", ()) in samples
    # Histogram buckets are cumulative and end in +Inf == count.
    buckets = sorted(((float(dict(l)["le"]), v) for (n, l), v in samples.items()
                      if n == "sluice_http_request_duration_seconds_bucket"
                      and dict(l).get("route") == "/livez" and dict(l).get("server") == "gateway-http"), key=lambda x: x[0])
    values = [v for _, v in buckets]
    assert values == sorted(values) and buckets[-1][0] == float("inf")


def test_logs_are_json_lines(sluice):
    requests.get(sluice.url("gateway", "/livez"), timeout=5)
    lines = sluice.log_lines()
    assert lines, "no log lines"
    for l in lines:
        assert {"ts", "level", "component", "msg"} <= set(l)
    listening = [l for l in lines if l["msg"] == "listening"]
    assert {l["listener"] for l in listening} >= {"gateway-http", "inference-http", "inference-grpc"}


def test_config_reload_applies_log_level_and_reports_failure(sluice_factory):
    srv = sluice_factory(targets="worker")
    metrics = lambda: parse_prometheus(requests.get(srv.url("worker", "/metrics"), timeout=5).text)[0]
    assert metrics()[("sluice_config_last_reload_success", ())] == 1
    srv.rewrite_config({"log": {"level": "debug"}})
    wait_until(lambda: any(l["msg"] == "config reloaded" for l in srv.log_lines()), 10, "reload")
    # A broken file keeps the old config and says so.
    with open(srv.config_path, "a") as f:
        f.write("log:\n  level: [oops\n")
    wait_until(lambda: metrics()[("sluice_config_last_reload_success", ())] == 0, 10, "failed reload")
    assert any(l["msg"] == "config reload failed" for l in srv.log_lines())
    assert requests.get(srv.url("worker", "/readyz"), timeout=5).status_code == 200


class Collector(ThreadingHTTPServer):
    def __init__(self):
        super().__init__(("127.0.0.1", 0), CollectorHandler)
        self.bodies = []


class CollectorHandler(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 - http.server's naming
        n = int(self.headers["Content-Length"])
        body = self.rfile.read(n)
        self.server.bodies.append((self.path, self.headers["Content-Type"], json.loads(body)))
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *a):
        pass


def test_traces_exported_as_otlp_json(sluice_factory):
    col = Collector()
    threading.Thread(target=col.serve_forever, daemon=True).start()
    try:
        srv = sluice_factory(targets="gateway", config={
            "tracing": {"endpoint": f"http://127.0.0.1:{col.server_address[1]}/v1/traces",
                        "sample_ratio": 1.0, "flush_interval": "100ms", "service_name": "it-test"},
            "debug": {"echo": True}})
        parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        r = requests.post(srv.url("gateway", "/v1/echo"), data=b"{}", timeout=5,
                          headers={"traceparent": parent, "content-type": "application/json"})
        assert r.status_code == 200
        wait_until(lambda: col.bodies, 10, "an OTLP export")
        path, ctype, body = col.bodies[0]
        assert path == "/v1/traces" and ctype.startswith("application/json")
        rs = body["resourceSpans"][0]
        attrs = {a["key"]: a["value"] for a in rs["resource"]["attributes"]}
        assert attrs["service.name"] == {"stringValue": "it-test"}
        span = rs["scopeSpans"][0]["spans"][0]
        assert span["traceId"] == "0af7651916cd43dd8448eb211c80319c"
        assert span["parentSpanId"] == "b7ad6b7169203331"
        assert re.fullmatch(r"[0-9a-f]{16}", span["spanId"]) and span["spanId"] != "b7ad6b7169203331"
        assert span["kind"] == 2 and span["name"] == "POST /v1/echo"
        assert isinstance(span["startTimeUnixNano"], str) and int(span["endTimeUnixNano"]) >= int(span["startTimeUnixNano"])
        sattrs = {a["key"]: a["value"] for a in span["attributes"]}
        assert sattrs["http.response.status_code"] == {"intValue": "200"}
        # Untraced routes (health, metrics) make no spans.
        requests.get(srv.url("gateway", "/livez"), timeout=5)
    finally:
        col.shutdown()


def test_sighup_reloads_and_restart_only_options_are_kept(sluice_factory):
    srv = sluice_factory(targets="worker")
    port_before = srv.port("worker")
    srv.rewrite_config({"worker": {"http_port": port_before + 1}, "log": {"rate_limit": 50}})
    wait_until(lambda: any(l["msg"] == "config reloaded" for l in srv.log_lines()), 10, "reload")
    warn = [l for l in srv.log_lines() if "restart" in l["msg"]]
    assert warn and "worker.http_port" in json.dumps(warn[0])
    # The port that needs a restart did not move.
    assert requests.get(f"http://127.0.0.1:{port_before}/readyz", timeout=5).status_code == 200
    srv.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: any("SIGHUP" in l["msg"] for l in srv.log_lines()), 10, "SIGHUP logged")
    assert srv.proc.poll() is None


def test_gateway_trace_continues_into_inference(sluice_factory, tmp_path):
    """The gateway continues the client's trace and propagates it to inference over gRPC: both
    services' server spans share the trace id, inference's span is the gateway span's child,
    and the access log line carries the trace id."""
    import gatewaylib as gl
    import modelrepo

    col = Collector()
    threading.Thread(target=col.serve_forever, daemon=True).start()
    try:
        keys = tmp_path / "keys.json"
        key, _ = gl.create_key(keys)
        repo = modelrepo.make_repository(str(tmp_path / "models"), names=("simple",))
        cfg = modelrepo.inference_config(repo)
        cfg.update({
            "tracing": {"endpoint": f"http://127.0.0.1:{col.server_address[1]}/v1/traces",
                        "sample_ratio": 1.0, "flush_interval": "100ms"},
            "gateway": {"keys_file": str(keys)}})
        srv = sluice_factory(targets="inference,gateway", config=cfg)
        trace = "4bf92f3577b34da6a3ce929d0e0e4736"
        r = gl.infer(srv, key, headers={"traceparent": f"00-{trace}-00f067aa0ba902b7-01"})
        assert r.status_code == 200, r.text

        def spans():
            out = []
            for _, _, body in list(col.bodies):
                for rs in body["resourceSpans"]:
                    for ss in rs["scopeSpans"]:
                        out += [s for s in ss["spans"] if s["traceId"] == trace]
            return out

        wait_until(lambda: len(spans()) >= 2, 10, "gateway and inference spans")
        by_name = {s["name"]: s for s in spans()}
        gw_span = next(s for n, s in by_name.items() if n.startswith("POST /v2/models"))
        inf_span = next(s for n, s in by_name.items() if "ModelInfer" in n)
        assert gw_span["parentSpanId"] == "00f067aa0ba902b7"
        assert inf_span["parentSpanId"] == gw_span["spanId"]
        access = [line for line in srv.log_lines() if line.get("component") == "access"]
        assert access and access[-1]["trace_id"] == trace
    finally:
        col.shutdown()
