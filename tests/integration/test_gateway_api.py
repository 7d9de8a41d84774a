"""The gateway as an API client meets it: API keys (wrong, expired, revoked within one reload,
rotation, admin scope, no plaintext on disk), the OIP routes it forwards (infer, metadata,
ready) and bad input refused with a clear 4xx before anything reaches inference (malformed
JSON, wrong types, oversize bodies, header injection, path tricks)."""
import json
import os
import secrets
import time

import pytest
import requests

import gatewaylib as gl
import rawhttp
from conftest import wait_until

MAX_BODY = 64 * 1024


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    d = tmp_path_factory.mktemp("gwapi")
    keys = d / "keys.json"
    user, user_id = gl.create_key(keys, tenant="acme", scopes="predict")
    admin, _ = gl.create_key(keys, tenant="ops", scopes="predict,admin")
    replica = gl.start_replica(d / "inf", names=("simple", "mlp_digits"))
    gw = None
    try:
        gw = gl.start_gateway(d / "gw", keys, upstreams=[gl.replica_addr(replica)],
                              extra={"http": {"max_body_bytes": MAX_BODY}})
        yield {"dir": d, "keys": keys, "user": user, "user_id": user_id, "admin": admin,
               "gw": gw, "replica": replica}
    finally:
        codes = [s.stop() for s in (gw, replica) if s]
        assert codes == [0] * len(codes)


def upstream_requests(env):
    return gl.outcomes(env["gw"], env["admin"])["upstreams"][0]["requests"]


def test_infer_metadata_and_ready_through_the_gateway(env):
    r = gl.infer(env["gw"], env["user"])
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model_name"] == "simple"
    out = {o["name"]: o["data"] for o in body["outputs"]}
    assert out["OUTPUT0"] == [i + 1 for i in range(16)]
    assert out["OUTPUT1"] == [i - 1 for i in range(16)]
    h = gl.auth(env["user"])
    meta = requests.get(env["gw"].url("gateway", "/v2/models/simple"), headers=h, timeout=5)
    assert meta.status_code == 200
    assert [t["name"] for t in meta.json()["inputs"]] == ["INPUT0", "INPUT1"]
    ready = requests.get(env["gw"].url("gateway", "/v2/models/simple/ready"), headers=h, timeout=5)
    assert ready.status_code == 200
    missing = requests.get(env["gw"].url("gateway", "/v2/models/nope"), headers=h, timeout=5)
    assert missing.status_code == 404 and "nope" in missing.json()["error"]
    # Health and server metadata need no key (probes).
    assert requests.get(env["gw"].url("gateway", "/v2/health/ready"), timeout=5).status_code == 200
    assert requests.get(env["gw"].url("gateway", "/v2"), timeout=5).json()["name"] == "sluice-gateway"


def test_bad_keys_get_one_generic_401(env):
    url = env["gw"].url("gateway", "/v2/models/simple/infer")
    body = json.dumps(gl.simple_body())
    before = upstream_requests(env)
    unknown = "slk_" + secrets.token_urlsafe(32)[:43]
    variants = [{}, {"Authorization": ""}, {"Authorization": "Bearer nonsense"},
                {"Authorization": f"Basic {env['user']}"}, {"Authorization": f"Bearer {unknown}"},
                {"Authorization": f"Bearer {env['user'][:-1]}"}]
    bodies = set()
    for h in variants:
        r = requests.post(url, data=body, headers=h, timeout=5)
        assert r.status_code == 401, (h, r.text)
        assert r.headers["WWW-Authenticate"].startswith("Bearer")
        bodies.add(r.text)
    assert len(bodies) == 1, "every refusal must look the same to the client"
    assert "slk_" not in bodies.pop()
    assert upstream_requests(env) == before, "a refused request reached inference"


def test_keys_file_holds_no_plaintext(env):
    text = env["keys"].read_text()
    assert env["user"] not in text and env["admin"] not in text
    assert env["user"][4:] not in text
    assert len(json.loads(text)["keys"][0]["sha256"]) == 64
    assert oct(os.stat(env["keys"]).st_mode & 0o777) == "0o600"


def test_rotation_and_revocation_within_one_reload(env):
    old, old_id = gl.create_key(env["keys"], tenant="rotating")
    new, _ = wait_for_key(env, gl.create_key(env["keys"], tenant="rotating"))
    wait_for_key(env, (old, old_id))
    # Both keys of the tenant work during the overlap.
    assert gl.infer(env["gw"], old).status_code == 200
    assert gl.infer(env["gw"], new).status_code == 200
    gl.revoke_key(env["keys"], old_id)
    t0 = time.monotonic()
    wait_until(lambda: gl.infer(env["gw"], old).status_code == 401, 5, "revoked key refused")
    # The reload interval is 100 ms: one reload, plus scheduling slack.
    assert time.monotonic() - t0 < 3
    assert gl.infer(env["gw"], new).status_code == 200


def wait_for_key(env, created):
    key, key_id = created
    wait_until(lambda: gl.infer(env["gw"], key).status_code == 200, 5, f"key {key_id} loaded")
    return key, key_id


def test_expired_key_is_refused(env):
    key, key_id = wait_for_key(env, gl.create_key(env["keys"], tenant="temp"))
    doc = json.loads(env["keys"].read_text())
    for k in doc["keys"]:
        if k["id"] == key_id:
            k["expires_at"] = "2001-01-01T00:00:00Z"
    tmp = str(env["keys"]) + ".tmp"
    with open(tmp, "w") as f:
        json.dump(doc, f)
    os.chmod(tmp, 0o600)
    os.replace(tmp, env["keys"])
    wait_until(lambda: gl.infer(env["gw"], key).status_code == 401, 5, "expired key refused")
    assert gl.infer(env["gw"], env["user"]).status_code == 200


def test_admin_routes_need_the_admin_scope(env):
    for method, path in (("GET", "/v1/admin/outcomes"), ("POST", "/v2/repository/index")):
        url = env["gw"].url("gateway", path)
        r = requests.request(method, url, headers=gl.auth(env["user"]), timeout=5)
        assert r.status_code == 403 and "admin" in r.json()["error"]
        r = requests.request(method, url, headers=gl.auth(env["admin"]), timeout=5)
        assert r.status_code == 200, r.text
    index = requests.post(env["gw"].url("gateway", "/v2/repository/index"),
                          headers=gl.auth(env["admin"]), timeout=5).json()
    assert {m["name"] for m in index} == {"simple", "mlp_digits"}
    # Load and unload go to every replica of the pool.
    r = requests.post(env["gw"].url("gateway", "/v2/repository/models/mlp_digits/unload"),
                      headers=gl.auth(env["admin"]), timeout=10)
    assert r.status_code == 200, r.text
    r = requests.post(env["gw"].url("gateway", "/v2/repository/models/mlp_digits/load"),
                      headers=gl.auth(env["admin"]), timeout=10)
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("body, needle", [
    (b"{", "JSON"),
    (b"[]", "object"),
    (json.dumps({"inputs": [{"name": "INPUT0", "datatype": "FP33", "shape": [1, 16],
                             "data": [0] * 16}]}).encode(), "FP33"),
    (json.dumps({"inputs": [{"name": "INPUT0", "datatype": "INT32", "shape": [1, 16],
                             "data": ["x"] * 16}]}).encode(), "INPUT0"),
    (json.dumps({"inputs": [{"name": "INPUT0", "datatype": "INT32", "shape": [1, 16],
                             "data": [1] * 15}]}).encode(), "INPUT0"),
])
def test_malformed_requests_are_refused_before_forwarding(env, body, needle):
    before = upstream_requests(env)
    r = requests.post(env["gw"].url("gateway", "/v2/models/simple/infer"), data=body,
                      headers=gl.auth(env["user"]), timeout=5)
    assert r.status_code == 400, r.text
    assert needle in r.json()["error"]
    assert upstream_requests(env) == before


def test_oversize_body_is_413(env):
    before = upstream_requests(env)
    r = requests.post(env["gw"].url("gateway", "/v2/models/simple/infer"),
                      data=b"x" * (MAX_BODY + 1), headers=gl.auth(env["user"]), timeout=5)
    assert r.status_code == 413
    assert upstream_requests(env) == before


@pytest.mark.parametrize("path", [
    "/v2/models/../infer",
    "/v2/models/%2e%2e/infer",
    "/v2/models/..%2Fetc%2Fpasswd/infer",
    "/v2/models/simple%2F..%2Fmlp_digits/infer",
    "/v2/models/simple/versions/..%2F1/infer",
    "/v2/models/./infer",
    "/v2/models//infer",
    "/v2/models/sim%00ple/infer",
    "/v1/predict/..",
    "/v1/predict/%2e%2e%2fadmin",
])
def test_path_tricks_never_reach_inference(env, path):
    before = upstream_requests(env)
    s = rawhttp.connect(env["gw"].port("gateway"))
    body = json.dumps(gl.simple_body()).encode()
    s.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {env['user']}\r\n"
              f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    status, _, resp = rawhttp.read_response(s)
    s.close()
    assert status in (400, 404), (path, status, resp)
    assert json.loads(resp)["error"]
    assert upstream_requests(env) == before


@pytest.mark.parametrize("header", [
    b"X-User-Id: a\rInjected: 1",
    b"X-User-Id: a\nInjected: 1",
    b"X-User-Id: a\x00b",
    b"X-User-Id\x01: a",
])
def test_header_injection_is_refused(env, header):
    before = upstream_requests(env)
    s = rawhttp.connect(env["gw"].port("gateway"))
    body = json.dumps(gl.simple_body()).encode()
    s.sendall(b"POST /v2/models/simple/infer HTTP/1.1\r\nHost: x\r\n" + header + b"\r\n" +
              f"Authorization: Bearer {env['user']}\r\nContent-Length: {len(body)}\r\n\r\n"
              .encode() + body)
    res = rawhttp.read_response(s)
    s.close()
    assert res is None or res[0] == 400, res
    assert upstream_requests(env) == before


def test_wrong_method_and_unknown_actions(env):
    h = gl.auth(env["user"])
    r = requests.get(env["gw"].url("gateway", "/v2/models/simple/infer"), headers=h, timeout=5)
    assert r.status_code == 405
    r = requests.get(env["gw"].url("gateway", "/v2/models/simple/config"), headers=h, timeout=5)
    assert r.status_code == 404
    r = requests.post(env["gw"].url("gateway", "/v1/predict/nope"), data="{}", headers=h,
                      timeout=5)
    assert r.status_code == 404 and "pipeline" in r.json()["error"]


def test_dns_endpoints_are_resolved(env):
    """An endpoint given by DNS name is resolved to the addresses the pool balances over (here
    `localhost`, which /etc/hosts answers without a network)."""
    port = env["replica"].port("inference", "grpc")
    gw = gl.start_gateway(env["dir"] / "gw-dns", env["keys"],
                          policy={"upstreams": {"inference": {
                              "endpoints": [f"localhost:{port}"], "resolve_interval": "1s"}}})
    try:
        assert gl.infer(gw, env["user"]).status_code == 200
        eps = [e["address"] for e in gl.outcomes(gw, env["admin"])["upstreams"][0]["endpoints"]]
        assert f"127.0.0.1:{port}" in eps, eps
        assert all(not a.startswith("localhost") for a in eps), eps
    finally:
        assert gw.stop() == 0


@pytest.mark.parametrize("body, needle", [(b"{", "JSON"), (b'{"ready": "yes"}', "ready")])
def test_repository_index_body_is_validated(env, body, needle):
    r = requests.post(env["gw"].url("gateway", "/v2/repository/index"), data=body,
                      headers=gl.auth(env["admin"]), timeout=5)
    assert r.status_code == 400 and needle in r.json()["error"], r.text
