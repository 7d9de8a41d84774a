"""Traffic policies through a real gateway in front of one real inference process (issue 5,
"Traffic"): a 95/5 split lands within +/-1 percentage point over 20,000 requests and the admin
view's per-version outcomes match what the clients saw; sticky assignment (by header on /v2, by
body field on /v1/predict) never flips for a key and follows the frozen hash; the override
header picks a version; shadow traffic never changes a client's answer and is counted as
agree / disagree / error; a hot reload changes the split without a restart; /v1/predict
validates its fields before anything is forwarded.

The inference process serves `simple` in three versions (every version computes the same sums,
so a shadow agrees), `digits` (mlp_digits) in two versions whose answers differ (2.0.0 adds 1 to
every logit bias, so a shadow disagrees) and `lonely`, a simple model with one version (a shadow
to a version nobody serves is an error)."""
import concurrent.futures
import contextlib
import http.client
import json
import os
import random
import threading

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

import gatewaylib as gl
import modelrepo
from conftest import SLOW, wait_until

ALL_VERSIONS = "version_policy: all\n"
OVERRIDE = "x-sluice-version"


# ---- the stack: one inference process, one keys file ---------------------------------------


def _digits_variant(path):
    """mlp_digits with 1.0 added to every bias of its last layer: every logit differs."""
    m = onnx.load(modelrepo.ARTIFACTS["mlp_digits"])
    for init in m.graph.initializer:
        if init.name == "net.4.bias":
            b = numpy_helper.to_array(init).astype(np.float32) + np.float32(1.0)
            init.CopyFrom(numpy_helper.from_array(b, init.name))
    onnx.save(m, path)
    with open(path, "rb") as f:
        return f.read()


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    d = tmp_path_factory.mktemp("traffic")
    repo = str(d / "models")
    modelrepo.add_model(repo, "simple", config=modelrepo.CONFIGS["simple"] + ALL_VERSIONS,
                        artifact=None)
    modelrepo.add_version(repo, "simple", "2.0.0")
    modelrepo.add_version(repo, "simple", "3.0.0")
    modelrepo.add_model(repo, "digits", config=modelrepo.CONFIGS["mlp_digits"] + ALL_VERSIONS,
                        artifact=modelrepo.ARTIFACTS["mlp_digits"])
    modelrepo.add_version(repo, "digits", "2.0.0", artifact=_digits_variant(str(d / "v2.onnx")),
                          artifact_name="model.onnx")
    modelrepo.add_model(repo, "lonely", config=modelrepo.CONFIGS["simple"], artifact=None)
    os.makedirs(str(d / "replica"))
    replica = modelrepo.start_inference(str(d / "replica"), repo=repo)
    try:
        keys = d / "keys.json"
        admin, _ = gl.create_key(keys, tenant="ops", scopes="predict,admin")
        user, _ = gl.create_key(keys, tenant="acme", scopes="predict")
        yield {"dir": d, "replica": replica, "addr": gl.replica_addr(replica), "keys": keys,
               "admin": admin, "user": user, "n": 0}
    finally:
        code = replica.stop()
        assert code == 0, f"inference exited with {code}:\n{replica.log_text()[-4000:]}"


@contextlib.contextmanager
def gateway(stack, policy):
    stack["n"] += 1
    gw = gl.start_gateway(stack["dir"] / f"gw{stack['n']}", stack["keys"], policy=policy,
                          upstreams=[stack["addr"]])
    try:
        yield gw
    finally:
        code = gw.stop()
        assert code == 0, f"gateway exited with {code}:\n{gw.log_text()[-4000:]}"


# ---- a fast keep-alive client ---------------------------------------------------------------


class Client:
    """Many requests from a thread pool, each thread on its own keep-alive connection.
    http.client rather than requests: 20,000 requests take ~4 s instead of ~25 s here."""

    def __init__(self, gw, key, threads=8):
        self.port = gw.port("gateway")
        self.headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        self.threads = threads
        self.local = threading.local()
        self.conns = []
        self.lock = threading.Lock()

    def _conn(self, fresh=False):
        c = getattr(self.local, "c", None)
        if c is None or fresh:
            if c is not None:
                c.close()
            c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10 * SLOW)
            self.local.c = c
            with self.lock:
                self.conns.append(c)
        return c

    def one(self, method, path, body=None, headers=None):
        """Returns (status, headers with lower-case names, parsed JSON body or None)."""
        h = dict(self.headers)
        h.update(headers or {})
        data = json.dumps(body) if body is not None and not isinstance(body, (str, bytes)) else body
        c = self._conn()
        try:
            c.request(method, path, body=data, headers=h)
            r = c.getresponse()
        except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
            # The server closed an idle keep-alive connection: send again on a new one.
            c = self._conn(fresh=True)
            c.request(method, path, body=data, headers=h)
            r = c.getresponse()
        raw = r.read()
        hdrs = {k.lower(): v for k, v in r.getheaders()}
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = raw
        return r.status, hdrs, parsed

    def many(self, reqs):
        """reqs: (method, path, body, headers) tuples; the answers in the same order."""
        with concurrent.futures.ThreadPoolExecutor(self.threads) as ex:
            return list(ex.map(lambda q: self.one(*q), reqs))

    def close(self):
        for c in self.conns:
            c.close()


@contextlib.contextmanager
def client(gw, key, threads=8):
    c = Client(gw, key, threads)
    try:
        yield c
    finally:
        c.close()


def body_simple(seed):
    a = [(seed * 7 + i) % 1000 for i in range(16)]
    b = [(seed * 13 + 3 * i) % 500 - 250 for i in range(16)]
    return gl.simple_body(a, b), [x + y for x, y in zip(a, b)], [x - y for x, y in zip(a, b)]


def output(resp, name):
    return next(o for o in resp["outputs"] if o["name"] == name)["data"]


def infer_req(model="simple", body=None, headers=None, version=None):
    path = f"/v2/models/{model}" + (f"/versions/{version}" if version else "") + "/infer"
    return ("POST", path, body if body is not None else gl.simple_body(), headers)


def per_version(gw, admin, model):
    """{version: admin view entry} for model."""
    return {v["version"]: v for v in gl.outcomes(gw, admin)["versions"] if v["model"] == model}


def pool_requests(gw, admin):
    return sum(u["requests"] for u in gl.outcomes(gw, admin)["upstreams"])


# ---- the frozen sticky hash (src/gateway/traffic.h), re-implemented ---------------------------

M64 = (1 << 64) - 1


def _fnv64(h, data):
    for byte in data:
        h = ((h ^ byte) * 0x100000001B3) & M64
    return h


def _mix64(h):
    h ^= h >> 33
    h = (h * 0xFF51AFD7ED558CCD) & M64
    h ^= h >> 33
    h = (h * 0xC4CEB9FE1A85EC53) & M64
    h ^= h >> 33
    return h


def sticky_version(model, key, split):
    """The version a sticky key lands on: split is [(version, weight)] in config order."""
    h = _mix64(_fnv64(_fnv64(0xCBF29CE484222325, model.encode()), b"\0" + key.encode()))
    total = sum(w for _, w in split)
    point = (h * total) >> 64
    cum = 0
    for v, w in split:
        cum += w
        if point < cum:
            return v
    raise AssertionError("point outside the split")


# ---- tests ------------------------------------------------------------------------------------


def test_split_95_5_over_20000_requests_and_outcomes_match(stack):
    n = 20000
    policy = {"traffic": {"simple": {"split": {"1.0.0": 95, "2.0.0": 5}}}}
    with gateway(stack, policy) as gw, client(gw, stack["user"]) as c:
        bodies = [body_simple(i) for i in range(64)]
        answers = c.many([infer_req(body=bodies[i % 64][0]) for i in range(n)])
        seen = {}
        for i, (status, _, resp) in enumerate(answers):
            assert status == 200, resp
            _, want_sum, want_diff = bodies[i % 64]
            assert output(resp, "OUTPUT0") == want_sum
            assert output(resp, "OUTPUT1") == want_diff
            seen[resp["model_version"]] = seen.get(resp["model_version"], 0) + 1
        assert set(seen) == {"1.0.0", "2.0.0"}, seen
        share = seen["2.0.0"] / n
        assert 0.04 <= share <= 0.06, f"canary share {share:.4f} (counts {seen})"

        # The admin view counted exactly what the clients saw, all successes, nothing else.
        view = per_version(gw, stack["admin"], "simple")
        assert set(view) == {"1.0.0", "2.0.0"}, view
        for v, count in seen.items():
            assert view[v]["requests"] == count, (v, view[v], count)
            assert view[v]["outcomes"]["success"] == count, view[v]
            assert view[v]["latency"]["count"] == count, view[v]
            assert view[v]["shadow_requests"] == 0
        assert pool_requests(gw, stack["admin"]) == n


def test_sticky_header_never_flips_and_follows_the_hash(stack):
    split = [("1.0.0", 50), ("2.0.0", 50)]
    policy = {"traffic": {"simple": {"split": dict(split), "sticky": {"header": "x-user-id"}}}}
    users = [f"user-{i}" for i in range(200)]
    with gateway(stack, policy) as gw, client(gw, stack["user"]) as c:
        reqs = [infer_req(headers={"x-user-id": u}) for u in users for _ in range(5)]
        random.Random(5).shuffle(reqs)
        answers = c.many(reqs)
        got = {}
        for (_, _, _, h), (status, _, resp) in zip(reqs, answers):
            assert status == 200, resp
            got.setdefault(h["x-user-id"], set()).add(resp["model_version"])
        flipped = {u: v for u, v in got.items() if len(v) != 1}
        assert not flipped, f"sticky assignment flipped for {flipped}"
        # Exactly the version the frozen hash gives, so every replica and restart agrees.
        wrong = {u: v for u, v in got.items() if v != {sticky_version("simple", u, split)}}
        assert not wrong, wrong
        on_canary = sum(1 for v in got.values() if v == {"2.0.0"})
        assert 60 <= on_canary <= 140, on_canary

        # Without the header (or with an empty one) the pick is random: both versions answer.
        answers = c.many([infer_req() for _ in range(100)] +
                         [infer_req(headers={"x-user-id": ""}) for _ in range(100)])
        for part in (answers[:100], answers[100:]):
            assert {r["model_version"] for s, _, r in part if s == 200} == {"1.0.0", "2.0.0"}

    # A second gateway process (a replica, or a restart) assigns every user alike.
    with gateway(stack, policy) as gw, client(gw, stack["user"]) as c:
        answers = c.many([infer_req(headers={"x-user-id": u}) for u in users])
        assert {u: {r["model_version"]} for u, (_, _, r) in zip(users, answers)} == got


PIPELINE = {
    "model": "simple",
    "inputs": [{"tensor": "INPUT0", "datatype": "INT32", "field": "left", "length": 16},
               {"tensor": "INPUT1", "datatype": "INT32", "field": "right", "length": 16}],
    "outputs": [{"field": "sum", "tensor": "OUTPUT0"}, {"field": "diff", "tensor": "OUTPUT1"}],
    "extra_fields": ["user_id"],
}


def predict_body(seed, user=None):
    a = [(seed + i) % 100 for i in range(16)]
    b = [(seed * 3 + i) % 50 for i in range(16)]
    body = {"left": a, "right": b}
    if user is not None:
        body["user_id"] = user
    return body, [x + y for x, y in zip(a, b)], [x - y for x, y in zip(a, b)]


def test_sticky_field_on_predict_never_flips(stack):
    split = [("1.0.0", 30), ("2.0.0", 30), ("3.0.0", 40)]
    policy = {"pipelines": {"adder": PIPELINE},
              "traffic": {"simple": {"split": dict(split), "sticky": "user_id"}}}
    users = [f"u{i:03d}" for i in range(150)]
    with gateway(stack, policy) as gw, client(gw, stack["user"]) as c:
        reqs, want = [], []
        for k, u in enumerate(users * 4):
            body, s, d = predict_body(k, u)
            reqs.append(("POST", "/v1/predict/adder", body, None))
            want.append((u, s, d))
        answers = c.many(reqs)
        got = {}
        for (u, s, d), (status, _, resp) in zip(want, answers):
            assert status == 200, resp
            assert resp["model"] == "simple"
            assert resp["outputs"] == {"sum": s, "diff": d}
            got.setdefault(u, set()).add(resp["version"])
        assert all(len(v) == 1 for v in got.values()), got
        wrong = {u: v for u, v in got.items() if v != {sticky_version("simple", u, split)}}
        assert not wrong, wrong
        assert {next(iter(v)) for v in got.values()} == {"1.0.0", "2.0.0", "3.0.0"}

        # A number is hashed as its JSON text: 4711 and "4711" are one user; an instances
        # request is routed by the user_id next to its rows.
        want_v = sticky_version("simple", "4711", split)
        for uid in (4711, "4711"):
            body, _, _ = predict_body(1, uid)
            status, _, resp = c.one("POST", "/v1/predict/adder", body)
            assert status == 200 and resp["version"] == want_v, resp
        rows = [predict_body(k)[0] for k in range(3)]
        status, _, resp = c.one("POST", "/v1/predict/adder",
                                {"instances": rows, "user_id": "4711"})
        assert status == 200 and resp["version"] == want_v, resp
        assert resp["predictions"] == [{"sum": predict_body(k)[1], "diff": predict_body(k)[2]}
                                       for k in range(3)]

        view = per_version(gw, stack["admin"], "simple")
        assert sum(v["requests"] for v in view.values()) == len(reqs) + 3


def test_override_header_picks_a_version(stack):
    policy = {"traffic": {"simple": {"split": {"1.0.0": 100, "2.0.0": 0},
                                     "sticky": {"header": "x-user-id"},
                                     "override_header": OVERRIDE}}}
    with gateway(stack, policy) as gw, client(gw, stack["user"]) as c:
        def versions(headers, n=40):
            answers = c.many([infer_req(headers=headers) for _ in range(n)])
            assert all(s == 200 for s, _, _ in answers), answers[:3]
            return {r["model_version"] for _, _, r in answers}

        assert versions({}) == {"1.0.0"}  # weight 0: reachable only by override
        assert versions({OVERRIDE: "2.0.0"}) == {"2.0.0"}
        # The override beats the sticky key.
        assert versions({OVERRIDE: "2.0.0", "x-user-id": "alice"}) == {"2.0.0"}
        # A version outside the policy (even one inference serves) is ignored, not forwarded.
        assert versions({OVERRIDE: "3.0.0"}) == {"1.0.0"}
        assert versions({OVERRIDE: "9.9.9"}) == {"1.0.0"}
        # An explicit version in the path bypasses the policy.
        status, _, resp = c.one(*infer_req(version="3.0.0"))
        assert status == 200 and resp["model_version"] == "3.0.0", resp

        view = per_version(gw, stack["admin"], "simple")
        assert {v: e["requests"] for v, e in view.items()} == {"1.0.0": 120, "2.0.0": 80,
                                                               "3.0.0": 1}


def test_override_header_off_unless_configured(stack):
    policy = {"traffic": {"simple": {"split": {"1.0.0": 100, "2.0.0": 0}}}}
    with gateway(stack, policy) as gw, client(gw, stack["user"]) as c:
        answers = c.many([infer_req(headers={OVERRIDE: "2.0.0"}) for _ in range(20)])
        assert {r["model_version"] for _, _, r in answers} == {"1.0.0"}


def digits_body(rng):
    pixels = [float(rng.randrange(17)) for _ in range(64)]
    return {"inputs": [{"name": "pixels", "datatype": "FP32", "shape": [1, 64], "data": pixels}]}


def test_shadow_never_changes_the_answer_and_counts_agreement(stack):
    policy = {"traffic": {
        "digits": {"split": {"1.0.0": 100}, "shadow": {"version": "2.0.0", "percent": 100}},
        "simple": {"split": {"1.0.0": 70, "2.0.0": 30},
                   "shadow": {"version": "3.0.0", "percent": 100}},
        "lonely": {"split": {"1.0.0": 100}, "shadow": {"version": "4.0.0", "percent": 100}},
    }}
    n = 60
    rng = random.Random(7)
    bodies = [digits_body(rng) for _ in range(n)]
    with gateway(stack, policy) as gw, client(gw, stack["user"]) as c:
        # What each version answers on its own (an explicit version bypasses the policy).
        ref = c.many([infer_req("digits", b, version="1.0.0") for b in bodies])
        alt = c.many([infer_req("digits", b, version="2.0.0") for b in bodies])
        for (s1, _, r1), (s2, _, r2) in zip(ref, alt):
            assert s1 == 200 and s2 == 200, (r1, r2)
            assert output(r1, "logits") != output(r2, "logits")  # the shadow really differs

        # Through the policy: always the primary's answer, never the shadow's.
        got = c.many([infer_req("digits", b) for b in bodies])
        for (s, _, r), (_, _, want) in zip(got, ref):
            assert s == 200, r
            assert r["model_version"] == "1.0.0"
            assert output(r, "logits") == output(want, "logits")
        simple = c.many([infer_req("simple", body_simple(i)[0]) for i in range(n)])
        for i, (s, _, r) in enumerate(simple):
            assert s == 200 and r["model_version"] in ("1.0.0", "2.0.0"), r
            assert output(r, "OUTPUT0") == body_simple(i)[1]
        lonely = c.many([infer_req("lonely") for _ in range(n)])
        assert all(s == 200 and r["model_version"] == "1.0.0" for s, _, r in lonely), lonely[:2]

        # Shadow answers are compared after the client's answer: wait for all of them.
        def settled():
            out = {}
            for model, version in (("digits", "2.0.0"), ("simple", "3.0.0"),
                                   ("lonely", "4.0.0")):
                e = per_version(gw, stack["admin"], model).get(version)
                if not e or e["shadow_requests"] < n:
                    return None
                out[model] = e
            return out

        view = wait_until(settled, 10, "shadow results")
        assert view["digits"]["shadow"] == {"agree": 0, "disagree": n, "error": 0}
        assert view["simple"]["shadow"] == {"agree": n, "disagree": 0, "error": 0}
        assert view["lonely"]["shadow"] == {"agree": 0, "disagree": 0, "error": n}
        assert view["digits"]["shadow_requests"] == n
        # Shadow calls are not client requests: 2.0.0 served only the n explicit ones.
        assert view["digits"]["requests"] == n
        assert view["simple"]["requests"] == 0 and view["lonely"]["requests"] == 0
        digits = per_version(gw, stack["admin"], "digits")
        assert digits["1.0.0"]["requests"] == 2 * n
        assert digits["1.0.0"]["shadow_requests"] == 0


def reload_count(gw, what="gateway policy reloaded"):
    return sum(1 for line in gw.log_lines() if line.get("msg") == what)


def test_hot_reload_changes_the_split_without_restart(stack):
    before = [("1.0.0", 95), ("2.0.0", 5)]
    after = [("1.0.0", 50), ("2.0.0", 50)]
    policy = {"traffic": {"simple": {"split": dict(before), "sticky": {"header": "x-user-id"}}}}
    users = [f"r{i}" for i in range(300)]
    with gateway(stack, policy) as gw, client(gw, stack["user"]) as c:
        pid = gw.proc.pid

        def share():
            answers = c.many([infer_req() for _ in range(2000)])
            assert all(s == 200 for s, _, _ in answers)
            return sum(r["model_version"] == "2.0.0" for _, _, r in answers) / len(answers)

        def assigned():
            answers = c.many([infer_req(headers={"x-user-id": u}) for u in users])
            return {u: r["model_version"] for u, (_, _, r) in zip(users, answers)}

        assert 0.02 <= share() <= 0.08
        first = assigned()
        assert first == {u: sticky_version("simple", u, before) for u in users}

        # No traffic until the reload landed: every access-log line written to stderr.log,
        # next to sluice.yaml, restarts the config watcher's debounce (core/config_reload.c),
        # so under steady traffic the change would never be applied.
        gw.rewrite_config({"gateway": {"traffic": {"simple": {"split": dict(after)}}}})
        wait_until(lambda: reload_count(gw) == 1, 10, "the policy reload")

        assert 0.45 <= share() <= 0.55
        second = assigned()
        assert second == {u: sticky_version("simple", u, after) for u in users}
        # Growing the canary (listed last) only moves users onto it, never back.
        back = [u for u in users if first[u] == "2.0.0" and second[u] != "2.0.0"]
        assert not back, back
        assert sum(first[u] != second[u] for u in users) > 0
        assert gw.proc.poll() is None and gw.proc.pid == pid

        # A broken policy is refused and the running one stays.
        gw.rewrite_config({"gateway": {"traffic": {"simple": {"split": {"1.0.0": "lots"}}}}})
        wait_until(lambda: "gateway policy not reloaded" in gw.log_text(), 10,
                   "the refused reload")
        assert reload_count(gw) == 1
        assert assigned() == second


def test_predict_validates_fields_before_forwarding(stack):
    policy = {"pipelines": {"adder": PIPELINE}}
    with gateway(stack, policy) as gw, client(gw, stack["user"]) as c:
        good, s, d = predict_body(3)
        status, _, resp = c.one("POST", "/v1/predict/adder", good)
        assert status == 200, resp
        assert resp["outputs"] == {"sum": s, "diff": d} and resp["model"] == "simple"
        forwarded = pool_requests(gw, stack["admin"])
        assert forwarded == 1

        bad = [
            (dict(good, rigt=good["right"]), "unknown field 'rigt' (did you mean 'right'?)"),
            (dict(good, colour="red"), "unknown field 'colour'"),
            ({"left": good["left"]}, "missing field 'right'"),
            (dict(good, left="seven"), "field 'left': expected an array of 16 integers, got a "
                                       "string"),
            (dict(good, left=good["left"][:15]), "field 'left': expected an array of 16 "
                                                 "integers, got 15"),
            (dict(good, right=[1.5] + good["right"][1:]), "field 'right': element 0: expected "
                                                           "an integer, got 1.5"),
            (dict(good, right=[None] + good["right"][1:]), "field 'right': element 0: expected "
                                                            "an integer, got null"),
            (dict(good, left=[2 ** 31] + good["left"][1:]), "out of range for INT32"),
            ({"instances": [good, {"left": good["left"]}]}, "instances[1]: missing field 'right'"),
            ({"instances": [good, dict(good, lfet=1)]},
             "instances[1]: unknown field 'lfet'"),
            ({"instances": []}, "field 'instances' must not be empty"),
            ({"instances": {"left": 1}}, "field 'instances' must be an array of objects, got an "
                                         "object"),
            ({"instances": [good], "left": good["left"]},
             "field 'left' belongs in each row of 'instances', not next to it"),
            ([good], "the request must be a JSON object"),
            ('{"left": [1, 2', None),
        ]
        for body, msg in bad:
            status, _, resp = c.one("POST", "/v1/predict/adder", body)
            assert status == 400, (body, resp)
            assert isinstance(resp, dict) and isinstance(resp.get("error"), str), resp
            if msg:
                assert msg in resp["error"], (msg, resp)

        # Instances: one row per instance, in order; extra fields accepted, never sent.
        rows = [predict_body(k, user=f"x{k}") for k in range(4)]
        status, _, resp = c.one("POST", "/v1/predict/adder",
                                {"instances": [r[0] for r in rows]})
        assert status == 200, resp
        assert resp["predictions"] == [{"sum": r[1], "diff": r[2]} for r in rows]

        status, _, resp = c.one("POST", "/v1/predict/nosuch", good)
        assert status == 404, resp
        # Nothing bad was forwarded: only the two good requests reached inference.
        assert pool_requests(gw, stack["admin"]) == forwarded + 1
