"""Rate limits and daily quotas through a real gateway in front of a real inference process
(issue 5, "Exact limits"): with rate r and burst b exactly the expected number of requests pass
and the rest get 429 with a correct Retry-After and the IETF RateLimit / RateLimit-Policy
headers; buckets are separate per key and per route class; a tier's daily quota is shared by a
tenant's keys and only predictions spend it; peak hours apply a stricter bucket; and in Redis
mode two gateway processes enforce one limit exactly, failing open or closed as configured when
Redis is gone.

Counts are made exact under real time by rate 0 (a bucket that never refills); the tests with a
positive rate bound the expected value by the time the client measured."""
import concurrent.futures
import math
import re
import signal
import subprocess
import time

import pytest
import requests

import gatewaylib as gl
from conftest import SLOW, free_port, wait_until

SF_ITEM = re.compile(r'^"([^"]*)"((?:;[a-z]+=\d+)*)$')


def parse_sf_list(value):
    """A Structured Field list of strings with integer parameters, as the gateway writes
    RateLimit-Policy and RateLimit: [(name, {param: int})]. Anything else fails the test."""
    out = []
    for item in value.split(","):
        m = SF_ITEM.match(item.strip())
        assert m, f"not a structured field item: {item!r} in {value!r}"
        params = {}
        for p in filter(None, m.group(2).split(";")):
            k, v = p.split("=")
            assert k not in params, value
            params[k] = int(v)
        out.append((m.group(1), params))
    return out


def limit_headers(r):
    """(RateLimit-Policy items, RateLimit items, Retry-After or None) of a response."""
    pol = r.headers.get("RateLimit-Policy")
    rl = r.headers.get("RateLimit")
    assert pol is not None and rl is not None, dict(r.headers)
    return parse_sf_list(pol), parse_sf_list(rl), r.headers.get("Retry-After")


def seconds_to_utc_midnight():
    now = time.time()
    return 86400 - int(now) % 86400


# ---- processes --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def replica(tmp_path_factory):
    s = gl.start_replica(tmp_path_factory.mktemp("replica"), names=("simple",))
    try:
        yield gl.replica_addr(s)
    finally:
        code = s.stop()
        assert code == 0, f"inference exited with {code}:\n{s.log_text()[-4000:]}"


@pytest.fixture
def gateways(tmp_path, replica):
    """start(policy, keys_file) -> a gateway in front of the replica; all stopped at the end."""
    started = []

    def start(policy, keys_file):
        gw = gl.start_gateway(tmp_path / f"gw{len(started)}", keys_file, policy=policy,
                              upstreams=[replica])
        started.append(gw)
        return gw

    yield start
    for gw in started:
        code = gw.stop()
        assert code == 0, f"gateway exited with {code}:\n{gw.log_text()[-4000:]}"


def infer(gw, key):
    return gl.infer(gw, key, timeout=10 * SLOW)


def metadata(gw, key):
    return requests.get(gw.url("gateway", "/v2/models/simple"), headers=gl.auth(key),
                        timeout=10 * SLOW)


PIPELINE = {
    "model": "simple",
    "inputs": [{"tensor": "INPUT0", "datatype": "INT32", "field": "left", "length": 16},
               {"tensor": "INPUT1", "datatype": "INT32", "field": "right", "length": 16}],
    "outputs": [{"field": "sum", "tensor": "OUTPUT0"}],
}


def predict(gw, key, rows=None):
    row = {"left": list(range(16)), "right": [2] * 16}
    body = row if rows is None else {"instances": [row] * rows}
    return requests.post(gw.url("gateway", "/v1/predict/adder"), json=body, headers=gl.auth(key),
                         timeout=10 * SLOW)


def concurrently(calls, threads=8):
    """Runs the zero-argument callables at once; their results in order."""
    with concurrent.futures.ThreadPoolExecutor(threads) as ex:
        return list(ex.map(lambda f: f(), calls))


def statuses(responses):
    return [r.status_code for r in responses]


def limiter_stats(gw, admin):
    return gl.outcomes(gw, admin)["limits"]


def forwarded(gw, admin):
    return sum(u["requests"] for u in gl.outcomes(gw, admin)["upstreams"])


# ---- local mode ---------------------------------------------------------------------------------


def test_burst_passes_exactly_then_429_with_headers(tmp_path, gateways):
    keys = tmp_path / "keys.json"
    admin, _ = gl.create_key(keys, tenant="ops", scopes="predict,admin")
    a, b, c, d, e = (gl.create_key(keys, tenant="acme")[0] for _ in range(5))
    gw = gateways({"pipelines": {"adder": PIPELINE},
                   "limits": {"classes": {"predict": {"rate": 0, "burst": 5},
                                          "metadata": {"rate": 0, "burst": 3}}}}, keys)
    allowed = denied = 0

    # 24 at once on one key (two I/O threads): exactly the burst passes.
    rs = concurrently([lambda: infer(gw, a)] * 24)
    assert sorted(statuses(rs)) == [200] * 5 + [429] * 19, statuses(rs)
    remaining = []
    for r in rs:
        policy, rl, retry = limit_headers(r)
        assert policy == [("predict", {"q": 5})]  # no w: a rate-0 bucket never refills
        assert len(rl) == 1 and rl[0][0] == "predict" and set(rl[0][1]) == {"r"}, rl
        if r.status_code == 200:
            assert retry is None
            remaining.append(rl[0][1]["r"])
        else:
            assert retry == "86400", retry  # never refills: capped at a day
            assert rl[0][1]["r"] == 0
            assert r.json() == {"error": "rate limit exceeded: retry after 86400 s"}
    assert sorted(remaining) == [0, 1, 2, 3, 4]
    allowed, denied = allowed + 5, denied + 19

    # Another key of the same tenant has its own bucket.
    assert statuses(infer(gw, b) for _ in range(7)) == [200] * 5 + [429] * 2
    allowed, denied = allowed + 5, denied + 2

    # Metadata is its own class: a's spent predict bucket does not touch it, and using it
    # does not refill predict.
    rs = [metadata(gw, a) for _ in range(4)]
    assert statuses(rs) == [200, 200, 200, 429]
    assert rs[0].json()["name"] == "simple"
    assert limit_headers(rs[0])[0] == [("metadata", {"q": 3})]
    assert limit_headers(rs[3])[2] == "86400"
    assert infer(gw, a).status_code == 429
    allowed, denied = allowed + 3, denied + 2
    # ...and the other way round: c spends metadata first, then still has its 5 predictions.
    assert statuses(metadata(gw, c) for _ in range(4)) == [200, 200, 200, 429]
    assert statuses(infer(gw, c) for _ in range(6)) == [200] * 5 + [429]
    allowed, denied = allowed + 8, denied + 2

    # /v2 infer and /v1/predict are one class: one bucket.
    assert statuses([infer(gw, d), predict(gw, d), infer(gw, d), predict(gw, d), infer(gw, d),
                     predict(gw, d), infer(gw, d)]) == [200] * 5 + [429] * 2
    allowed, denied = allowed + 5, denied + 2

    # A prediction of n rows spends n tokens; more rows than the burst can never pass.
    r = predict(gw, e, rows=3)
    assert r.status_code == 200 and len(r.json()["predictions"]) == 3, r.text
    assert limit_headers(r)[1] == [("predict", {"r": 2})]
    r = predict(gw, e, rows=3)
    assert r.status_code == 429 and r.headers["Retry-After"] == "86400", r.text
    assert statuses([predict(gw, e, rows=2), predict(gw, e)]) == [200, 429]
    r = predict(gw, e, rows=6)
    assert r.status_code == 400 and "burst" in r.json()["error"], r.text
    allowed, denied = allowed + 2, denied + 2

    st = limiter_stats(gw, admin)  # admin is not a limited class here
    assert st["mode"] == "local"
    assert (st["allowed"], st["denied"]) == (allowed, denied)
    # Nothing refused was forwarded: every upstream call is one allowed request.
    assert forwarded(gw, admin) == allowed


def test_retry_after_is_the_refill_time(tmp_path, gateways):
    keys = tmp_path / "keys.json"
    k, _ = gl.create_key(keys, tenant="acme")
    gw = gateways({"limits": {"classes": {"predict": {"rate": 0.1, "burst": 2},
                                          "metadata": {"rate": 2, "burst": 1}}}}, keys)
    # 0.1 token/s: after two requests the next token is 10 s minus the time they took away.
    t0 = time.monotonic()
    first = infer(gw, k)
    second = infer(gw, k)
    third = infer(gw, k)
    took = time.monotonic() - t0
    assert statuses([first, second, third]) == [200, 200, 429]
    assert limit_headers(first)[0] == [("predict", {"q": 2, "w": 20})]
    assert limit_headers(first)[1][0][1]["r"] == 1
    policy, rl, retry = limit_headers(third)
    assert policy == [("predict", {"q": 2, "w": 20})]
    assert math.ceil(10 - took) <= int(retry) <= 10, (retry, took)
    assert rl[0][0] == "predict" and rl[0][1]["r"] == 0
    assert math.ceil(20 - took) <= rl[0][1]["t"] <= 20, (rl, took)

    # 2 tokens/s, burst 1: denied with Retry-After 1 (0.5 s rounded up), and a request passes
    # again once half a second has refilled a token, not before.
    t0 = time.monotonic()
    assert metadata(gw, k).status_code == 200
    t_spent = t0
    r = metadata(gw, k)
    assert r.status_code == 429 and r.headers["Retry-After"] == "1", r.headers
    assert limit_headers(r)[0] == [("metadata", {"q": 1, "w": 1})]
    wait_until(lambda: metadata(gw, k).status_code == 200, 3, "a refilled token",
               interval=0.02)
    waited = time.monotonic() - t_spent
    assert waited >= 0.5, waited
    assert waited <= 1.0 * SLOW + 0.5, waited


def test_daily_quota_is_shared_by_a_tenants_keys(tmp_path, gateways):
    keys = tmp_path / "keys.json"
    admin, _ = gl.create_key(keys, tenant="ops", scopes="predict,admin")
    k1, _ = gl.create_key(keys, tenant="acme", tier="standard")
    k2, _ = gl.create_key(keys, tenant="acme", tier="standard")
    other, _ = gl.create_key(keys, tenant="globex", tier="standard")
    big, _ = gl.create_key(keys, tenant="bigco", tier="enterprise")
    gw = gateways({"limits": {"classes": {"predict": {"rate": 0, "burst": 1000},
                                          "metadata": {"rate": 0, "burst": 1000}},
                              "tiers": {"standard": 10, "enterprise": 0}}}, keys)

    # Metadata calls do not spend the quota (and do not report it).
    for r in concurrently([lambda: metadata(gw, k1), lambda: metadata(gw, k2)] * 6):
        assert r.status_code == 200
        assert limit_headers(r)[0] == [("metadata", {"q": 1000})]

    # 10 predictions a day for acme, whichever of its keys sends them.
    rs = concurrently([lambda: infer(gw, k1), lambda: infer(gw, k2)] * 8)
    midnight = seconds_to_utc_midnight()
    assert sorted(statuses(rs)) == [200] * 10 + [429] * 6, statuses(rs)
    left = []
    for r in rs:
        policy, rl, retry = limit_headers(r)
        assert policy == [("predict", {"q": 1000}), ("daily", {"q": 10, "w": 86400})]
        assert len(rl) == 1 and rl[0][0] == "daily", rl  # the tightest
        assert abs(rl[0][1]["t"] - midnight) <= 2, (rl, midnight)
        if r.status_code == 200:
            left.append(rl[0][1]["r"])
        else:
            assert rl[0][1]["r"] == 0
            assert abs(int(retry) - midnight) <= 2, (retry, midnight)
    assert sorted(left) == list(range(10))
    assert infer(gw, k2).status_code == 429
    assert infer(gw, k1).status_code == 429

    # Still no effect on metadata; another tenant has its own quota; quota 0 is unlimited.
    assert metadata(gw, k1).status_code == 200
    assert infer(gw, other).status_code == 200
    rs = [infer(gw, big) for _ in range(12)]
    assert statuses(rs) == [200] * 12
    assert limit_headers(rs[-1])[0] == [("predict", {"q": 1000})]
    st = limiter_stats(gw, admin)
    assert (st["allowed"], st["denied"]) == (12 + 10 + 1 + 1 + 12, 6 + 2)


def _hhmm(t):
    return time.strftime("%H:%M", time.gmtime(t))


def test_peak_hours_use_the_peak_bucket(tmp_path, gateways):
    keys = tmp_path / "keys.json"
    k, _ = gl.create_key(keys, tenant="acme")
    now = time.time()
    cls = {"predict": {"rate": 0, "burst": 6, "peak_rate": 0, "peak_burst": 2}}
    # A window around now (it may wrap midnight), then one that excludes now.
    peak = gateways({"limits": {"classes": cls, "utc_offset": "+00:00",
                                "peak_hours": f"{_hhmm(now - 3600)}-{_hhmm(now + 3600)}"}}, keys)
    rs = [infer(peak, k) for _ in range(4)]
    assert statuses(rs) == [200, 200, 429, 429]
    assert limit_headers(rs[0])[0] == [("predict", {"q": 2})]
    off = gateways({"limits": {"classes": cls, "utc_offset": "+00:00",
                               "peak_hours": f"{_hhmm(now + 7200)}-{_hhmm(now + 10800)}"}}, keys)
    rs = [infer(off, k) for _ in range(8)]
    assert statuses(rs) == [200] * 6 + [429] * 2
    assert limit_headers(rs[0])[0] == [("predict", {"q": 6})]


# ---- Redis mode ---------------------------------------------------------------------------------


class Redis:
    """A throwaway redis-server on a free loopback port, no persistence."""

    def __init__(self, tmp_path):
        self.port = free_port()
        self.dir = tmp_path
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.dir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(lambda: self.proc.poll() is None and self.cli("PING") == "PONG", 10,
                   "redis-server")

    def cli(self, *args):
        return subprocess.run(["redis-cli", "-p", str(self.port), *args], capture_output=True,
                              text=True, timeout=5).stdout.strip()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


@pytest.fixture
def redis(tmp_path):
    r = Redis(tmp_path)
    r.start()
    try:
        yield r
    finally:
        r.stop()


def redis_limits(redis, fail, classes, tiers=None):
    lim = {"mode": "redis", "classes": classes,
           "redis": {"address": f"127.0.0.1:{redis.port}", "fail": fail, "timeout": "2s"}}
    if tiers:
        lim["tiers"] = tiers
    return {"limits": lim}


def test_redis_two_gateways_enforce_one_limit(tmp_path, gateways, redis):
    keys = tmp_path / "keys.json"
    admin, _ = gl.create_key(keys, tenant="ops", scopes="predict,admin")
    a, _ = gl.create_key(keys, tenant="acme", tier="standard")
    b1, _ = gl.create_key(keys, tenant="globex", tier="standard")
    b2, _ = gl.create_key(keys, tenant="globex", tier="standard")
    classes = {"predict": {"rate": 0, "burst": 10}}
    tiers = {"standard": 12}
    gw1 = gateways(redis_limits(redis, "closed", classes, tiers), keys)
    gw2 = gateways(redis_limits(redis, "open", classes, tiers), keys)

    # One key, 40 requests spread over both gateways at once: the burst passes, once.
    rs = concurrently([lambda: infer(gw1, a), lambda: infer(gw2, a)] * 20)
    assert sorted(statuses(rs)) == [200] * 10 + [429] * 30, statuses(rs)
    left = []
    for r in rs:
        policy, rl, retry = limit_headers(r)
        assert policy == [("predict", {"q": 10}), ("daily", {"q": 12, "w": 86400})]
        if r.status_code == 200:
            assert retry is None
            left.append(rl[0][1]["r"])
        else:
            assert retry == "86400" and rl == [("predict", {"r": 0})], (retry, rl)
    assert sorted(left) == list(range(10))

    # One tenant's two keys on the two gateways: the daily quota (12) binds before the keys'
    # buckets (10 each) do.
    rs = concurrently([lambda: infer(gw1, b1), lambda: infer(gw2, b2)] * 15)
    assert sorted(statuses(rs)) == [200] * 12 + [429] * 18, statuses(rs)
    midnight = seconds_to_utc_midnight()
    for r in rs:
        if r.status_code == 429:
            _, rl, retry = limit_headers(r)
            assert rl[0][0] == "daily" and rl[0][1]["r"] == 0, rl
            assert abs(int(retry) - midnight) <= 2, (retry, midnight)

    # The state lives in Redis, under the default prefix.
    stored = redis.cli("--scan", "--pattern", "sluice:rl:*").split()
    assert stored, redis.cli("KEYS", "*")
    s1, s2 = limiter_stats(gw1, admin), limiter_stats(gw2, admin)
    assert s1["mode"] == s2["mode"] == "redis"
    assert s1["allowed"] + s2["allowed"] == 22 and s1["denied"] + s2["denied"] == 48
    assert forwarded(gw1, admin) + forwarded(gw2, admin) == 22

    # Redis gone: the fail-closed gateway refuses (429, Retry-After 1, no RateLimit fields),
    # the fail-open one lets even the spent key through.
    redis.stop()
    wait_until(lambda: infer(gw1, a).headers.get("Retry-After") == "1", 10,
               "gw1 failing closed")
    r = infer(gw1, b1)
    assert r.status_code == 429 and r.headers["Retry-After"] == "1", (r.status_code, r.headers)
    assert "RateLimit" not in r.headers and "RateLimit-Policy" not in r.headers, r.headers
    r = infer(gw2, a)
    assert r.status_code == 200, r.text
    assert "RateLimit" not in r.headers
    m = requests.get(gw1.url("gateway", "/metrics"), timeout=5).text
    errors = re.search(r"^sluice_gateway_limiter_errors_total (\d+)", m, re.M)
    assert errors and int(errors.group(1)) >= 2, m[-2000:]

    # Redis back (empty: nothing persisted): the closed gateway reconnects and allows again.
    redis.start()
    fresh, _ = gl.create_key(keys, tenant="initech", tier="standard")
    # Each I/O thread has its own Redis connection and reconnects on its own (with a backoff of
    # up to 2 s), so wait until answers through both carry the limiter's fields again.
    def limited_by_redis():
        r = infer(gw1, fresh)
        _, rl, _ = limit_headers(r)
        return r.status_code == 200 and rl and rl[0][0] in ("predict", "daily")

    wait_until(lambda: all(limited_by_redis() for _ in range(4)), 15, "gw1 reconnecting to Redis")
