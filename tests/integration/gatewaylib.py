"""Helpers for gateway tests: API keys made with the real `sluice keys` CLI, inference
processes (one per replica) serving example models, a gateway process in front of them with a
given `gateway:` policy, and request bodies for the example models."""
import json
import os
import re
import subprocess

import requests

import modelrepo
from conftest import SLUICE_BIN, Sluice, merge

KEY_RE = re.compile(r"slk_[A-Za-z0-9_-]{43}")
ID_RE = re.compile(r"key_[0-9a-f]{8}")


def create_key(keys_file, tenant="acme", tier="standard", scopes="predict", expires=None):
    """Creates a key in keys_file with `sluice keys create`; returns (key, key_id)."""
    args = [SLUICE_BIN, "keys", "create", "--file", str(keys_file), "--tenant", tenant,
            "--tier", tier, "--scopes", scopes]
    if expires:
        args += ["--expires", expires]
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    return KEY_RE.search(out).group(0), ID_RE.search(out).group(0)


def revoke_key(keys_file, key_id):
    subprocess.run([SLUICE_BIN, "keys", "revoke", "--file", str(keys_file), key_id],
                   capture_output=True, text=True, check=True)


def auth(key):
    return {"Authorization": f"Bearer {key}"}


def start_replica(tmpdir, names=("simple",), configs=None, extra=None):
    """One inference process serving the example models names (and configs: name -> config.yaml
    text); returns the Sluice (the caller stops it). Its gRPC address is replica_addr(s)."""
    os.makedirs(str(tmpdir), exist_ok=True)
    return modelrepo.start_inference(tmpdir, names=names, configs=configs, extra=extra)


def replica_addr(s):
    return f"127.0.0.1:{s.port('inference', 'grpc')}"


def gateway_config(keys_file, policy=None, upstreams=None, extra=None):
    """The config of a gateway-only process: keys file, a 100 ms keys poll, the policy dict
    (the `gateway:` section's nested keys) and, when upstreams (a list of "host:port") is given,
    one pool "inference" over them."""
    gw = {"keys_file": str(keys_file), "reload_interval": "100ms"}
    if upstreams is not None:
        gw["upstreams"] = {"inference": {"endpoints": list(upstreams)}}
    merge(gw, policy or {})
    return merge({"gateway": gw}, extra or {})


def start_gateway(tmpdir, keys_file, policy=None, upstreams=None, extra=None, wait=True):
    """A `sluice serve --target gateway` process; the caller stops it."""
    os.makedirs(str(tmpdir), exist_ok=True)
    s = Sluice(targets="gateway", config=gateway_config(keys_file, policy, upstreams, extra),
               tmpdir=str(tmpdir))
    if wait:
        try:
            s.wait_ready()
        except BaseException:
            s.stop()
            raise
    return s


def simple_body(a=None, b=None):
    """An OIP request for the example `simple` model (INT32 [1,16] INPUT0 + INPUT1)."""
    a = a if a is not None else list(range(16))
    b = b if b is not None else [1] * 16
    return {"inputs": [
        {"name": "INPUT0", "datatype": "INT32", "shape": [1, 16], "data": a},
        {"name": "INPUT1", "datatype": "INT32", "shape": [1, 16], "data": b}]}


def infer(gw, key, model="simple", body=None, headers=None, version=None, timeout=10):
    path = f"/v2/models/{model}" + (f"/versions/{version}" if version else "") + "/infer"
    h = dict(auth(key))
    h.update(headers or {})
    return requests.post(gw.url("gateway", path), data=json.dumps(body or simple_body()),
                         headers=h, timeout=timeout)


def outcomes(gw, admin_key):
    """The gateway's admin view: per-version outcomes, pools and endpoints, limiter stats."""
    r = requests.get(gw.url("gateway", "/v1/admin/outcomes"), headers=auth(admin_key), timeout=5)
    r.raise_for_status()
    return r.json()


def start_simple_replica(tmpdir, version="1.0.0", delay_us=0, models=("simple",), instances=None,
                         grpc_port=None, http_port=None):
    """An inference process serving the example `simple` model config under each name in models,
    all at one version (so a response's model_version tells which replica answered), each
    execute sleeping delay_us, with `instances` execution threads per model. grpc_port /
    http_port pin the ports (to restart a replica at the same address). The caller stops it."""
    os.makedirs(str(tmpdir), exist_ok=True)
    repo = os.path.join(str(tmpdir), "models")
    text = modelrepo.CONFIGS["simple"]
    if instances:
        text += f"instance_group: {{count: {int(instances)}}}\n"
    if delay_us:
        text += f'parameters: {{delay_us: "{int(delay_us)}"}}\n'
    for name in models:
        modelrepo.add_model(repo, name, version=version, config=text, artifact=None)
    ports = {k: v for k, v in (("grpc_port", grpc_port), ("http_port", http_port)) if v}
    return modelrepo.start_inference(tmpdir, repo=repo,
                                     extra={"inference": ports} if ports else None)


def upstream_view(gw, admin_key, pool="inference"):
    """One pool of the admin view: counters (requests, retries, budget_exhausted, ejections,
    unavailable, rejected_pending, rejected_concurrency) and its endpoints."""
    for u in outcomes(gw, admin_key)["upstreams"]:
        if u["name"] == pool:
            return u
    raise AssertionError(f"no upstream pool {pool!r} in the admin view")


def endpoint_view(pool_view, address):
    """One endpoint of upstream_view(): address, in_flight, ejected, breaker ("closed", "open",
    "half_open"), consecutive_failures, weight."""
    for e in pool_view["endpoints"]:
        if e["address"] == address:
            return e
    raise AssertionError(f"no endpoint {address} in pool {pool_view['name']}")
