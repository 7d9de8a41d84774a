"""Gateway resilience with real inference processes (issue 5, "Tests"): kill -9 of one replica
under steady load fails no client request; a slow replica is avoided; the circuit breaker opens
and recovers through half-open; outlier ejection and slow start show in the admin view; retries
stay within the retry budget; per-try timeouts are retried on the other replica and the overall
deadline holds; max_concurrent / max_pending fail fast with 503; fallbacks are marked degraded;
fault injection aborts and delays the configured share.

Replicas serve the example `simple` model at different versions, so a response's model_version
says which replica answered. An endpoint "where nothing listens" is a free loopback port that no
process binds. Windows (breaker open wait, ejection time) are kept small so the file runs fast,
and deadlines are scaled by SLOW under sanitizers, never the assertions."""
import collections
import concurrent.futures
import json
import threading
import time

import pytest
import requests

import gatewaylib as gl
from conftest import SLOW, free_port, wait_until

A_VERSION, B_VERSION = "1.0.0", "2.0.0"

# The brief's small windows: 5 calls decide, half the calls failing opens, 500 ms open, 2 trials.
SMALL_BREAKER = {"window_size": 10, "minimum_calls": 5, "failure_rate": 50, "open_wait": "500ms",
                 "half_open_calls": 2}
# A breaker that never opens in these tests, and ejection off: to isolate one mechanism.
NO_BREAKER = {"window_size": 10000, "minimum_calls": 10000}
NO_EJECTION = {"consecutive_failures": 0}
FAST_BACKOFF = {"base": "1ms", "cap": "5ms"}


def ms(seconds):
    return f"{int(seconds * 1000)}ms"


def addr(s):
    return gl.replica_addr(s)


def dead_addr():
    """A loopback address where nothing listens: connects are refused at once."""
    return f"127.0.0.1:{free_port()}"


class Stack:
    """The processes of one test: an admin+predict key, replicas and gateways; stop_all() stops
    every one (the gateway first) and checks the clean exit of each not killed on purpose."""

    def __init__(self, tmp_path):
        self.tmp = tmp_path
        self.procs = []
        self.killed = set()
        self.keys = tmp_path / "keys.json"
        self.key, _ = gl.create_key(self.keys, scopes="predict,admin")

    def replica(self, name, **kw):
        s = gl.start_simple_replica(self.tmp / name, **kw)
        self.procs.append(s)
        return s

    def gateway(self, policy):
        s = gl.start_gateway(self.tmp / f"gw{len(self.procs)}", self.keys, policy=policy)
        self.procs.append(s)
        return s

    def kill(self, s):
        s.proc.kill()
        s.proc.wait()
        self.killed.add(s)

    def stop(self, s):
        code = s.stop()
        assert code == 0, f"sluice exited with {code}:\n{s.log_text()[-4000:]}"

    def stop_all(self):
        gateways = [s for s in self.procs if s.targets == "gateway"]
        problems = []
        for s in gateways + [s for s in self.procs if s not in gateways]:
            try:
                code = s.stop()
                if s not in self.killed and code != 0:
                    problems.append(f"{s.targets} exited with {code}:\n{s.log_text()[-3000:]}")
            except AssertionError as e:
                problems.append(str(e))
        assert not problems, "\n".join(problems)


@pytest.fixture
def stack(tmp_path):
    st = Stack(tmp_path)
    try:
        yield st
    finally:
        st.stop_all()


def until(step, timeout, what):
    """Calls step() (which sends a request and asserts on it) until it returns True. Unlike
    wait_until, an assertion failing inside step fails the test at once instead of being retried
    away."""
    deadline = time.monotonic() + timeout * SLOW
    while time.monotonic() < deadline:
        if step():
            return
    raise AssertionError(f"timed out waiting for {what}")


def infer(gw, key, model="simple", body=None, timeout=30):
    """POST one infer through the gateway; returns (response, seconds)."""
    t0 = time.monotonic()
    r = gl.infer(gw, key, model=model, body=body, timeout=timeout)
    return r, time.monotonic() - t0


def version_of(r):
    assert r.status_code == 200, f"{r.status_code}: {r.text}"
    return r.json()["model_version"]


Result = collections.namedtuple("Result", "start end status version error")


class Load:
    """threads clients sending the same infer back to back through the gateway (keep-alive),
    recording every answer, until stop()."""

    def __init__(self, gw, key, threads=4, model="simple"):
        self.url = gw.url("gateway", f"/v2/models/{model}/infer")
        self.headers = gl.auth(key)
        self.body = json.dumps(gl.simple_body())
        self.results = []
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def _run(self):
        with requests.Session() as s:
            while not self.done.is_set():
                t0 = time.monotonic()
                try:
                    r = s.post(self.url, data=self.body, headers=self.headers, timeout=30)
                    version = r.json().get("model_version") if r.status_code == 200 else None
                    res = Result(t0, time.monotonic(), r.status_code, version,
                                 None if r.status_code == 200 else r.text[:300])
                except (requests.RequestException, ValueError) as e:
                    res = Result(t0, time.monotonic(), None, None, repr(e))
                with self.lock:
                    self.results.append(res)

    def start(self):
        for t in self.threads:
            t.start()
        return self

    def snapshot(self):
        with self.lock:
            return list(self.results)

    def stop(self):
        self.done.set()
        for t in self.threads:
            t.join(timeout=60 * SLOW)
        assert not any(t.is_alive() for t in self.threads), "a load thread hung"
        return self.snapshot()


# ---- kill -9 under load ---------------------------------------------------------------------


def test_kill_9_of_one_replica_under_steady_load_fails_no_client_request(stack):
    a = stack.replica("a", version=A_VERSION)
    b = stack.replica("b", version=B_VERSION)
    gw = stack.gateway({"upstreams": {"inference": {
        "endpoints": [addr(a), addr(b)], "breaker": SMALL_BREAKER,
        "outlier": {"consecutive_failures": 3, "base_ejection": "1s"}}}})
    load = Load(gw, stack.key, threads=4).start()
    seen = set()
    try:
        wait_until(lambda: len(load.snapshot()) >= 200
                   and {r.version for r in load.snapshot()} >= {A_VERSION, B_VERSION},
                   15, "steady load served by both replicas")
        stack.kill(b)
        killed_at = time.monotonic()
        after_kill = len(load.snapshot())

        def b_taken_out():
            ep = gl.endpoint_view(gl.upstream_view(gw, stack.key), addr(b))
            if ep["ejected"]:
                seen.add("ejected")
            seen.add(ep["breaker"])
            return len(load.snapshot()) >= after_kill + 600 and seen & {"ejected", "open"}

        wait_until(b_taken_out, 30, "600 more answers and the dead replica ejected or open")
    finally:
        results = load.stop()
    failed = [r for r in results if r.status != 200]
    assert not failed, f"{len(failed)} of {len(results)} client requests failed: {failed[:5]}"
    # Every request sent once the replica was dead was answered by the live one.
    late = collections.Counter(r.version for r in results if r.start > killed_at)
    assert set(late) == {A_VERSION} and sum(late.values()) >= 600, late
    pool = gl.upstream_view(gw, stack.key)
    assert pool["retries"] >= 1, pool  # failures happened, and retries hid them
    assert pool["requests"] == len(results), pool


# ---- a slow replica -----------------------------------------------------------------------------


def test_slow_replica_is_avoided(stack):
    delay_s = 0.2 * SLOW
    a = stack.replica("a", version=A_VERSION)
    b = stack.replica("b", version=B_VERSION, delay_us=int(delay_s * 1e6), instances=8)
    gw = stack.gateway({"upstreams": {"inference": {"endpoints": [addr(a), addr(b)]}}})
    # The slow replica is in the pool and answers (an idle pool picks either at random).
    until(lambda: version_of(infer(gw, stack.key)[0]) == B_VERSION, 10,
          "the slow replica answering once")
    load = Load(gw, stack.key, threads=4).start()
    try:
        wait_until(lambda: len(load.snapshot()) >= 400, 30, "400 answers under load")
    finally:
        results = load.stop()
    assert all(r.status == 200 for r in results), [r for r in results if r.status != 200][:5]
    by_version = collections.Counter(r.version for r in results)
    # Round robin or random choice would send half to the slow replica; least-in-flight sends
    # it only what the fast one cannot take at once (measured about 2%).
    assert by_version[B_VERSION] <= 0.10 * len(results), by_version
    latencies = sorted(r.end - r.start for r in results)
    assert latencies[len(latencies) // 2] < delay_s / 2, latencies[len(latencies) // 2]


# ---- circuit breaker ----------------------------------------------------------------------------


def test_breaker_opens_on_failures_and_recovers_through_half_open(stack):
    a = stack.replica("a", version=A_VERSION)
    b = stack.replica("b", version=B_VERSION)
    b_grpc, b_http = b.port("inference", "grpc"), b.port("inference", "http")
    gw = stack.gateway({"upstreams": {"inference": {
        "endpoints": [addr(a), addr(b)], "breaker": SMALL_BREAKER, "outlier": NO_EJECTION,
        "backoff": FAST_BACKOFF}}})

    def b_state():
        pool = gl.upstream_view(gw, stack.key)
        return pool["retries"], gl.endpoint_view(pool, addr(b))["breaker"]

    # 1. Exactly one success on B in its window: stop at B's first answer.
    until(lambda: version_of(infer(gw, stack.key)[0]) == B_VERSION, 10, "B answering")
    retries0, state = b_state()
    assert state == "closed"

    # 2. B goes away. Each request that tries B first fails there once and is retried on A (so
    # the client sees 200); the breaker opens at exactly the 4th failure: 1 success + 4
    # failures = 5 calls (minimum_calls) at 80% >= 50%, while 1 + 3 is still under 5 calls.
    stack.stop(b)
    stack.procs.remove(b)
    history = []

    def b_opened():
        assert version_of(infer(gw, stack.key)[0]) == A_VERSION
        retries, st = b_state()
        failures = retries - retries0
        history.append((failures, st))
        assert failures <= 4 and st == ("open" if failures == 4 else "closed"), history
        return st == "open"

    until(b_opened, 15, "B's breaker opening")

    # 3. B comes back at the same address. Nothing is sent meanwhile, so the breaker is still
    # OPEN with no trial made; after open_wait the next pick of B goes HALF_OPEN (a trial), the
    # second successful trial closes it. Requests answered by A in between leave it as it is.
    b2 = stack.replica("b2", version=B_VERSION, grpc_port=b_grpc, http_port=b_http)
    trials = []

    def recovered():
        v = version_of(infer(gw, stack.key)[0])
        retries, st = b_state()
        assert retries == retries0 + 4, "a request failed after B came back"
        if v == B_VERSION:
            trials.append(st)
        expected = ["half_open", "closed"][:len(trials)]
        assert trials == expected, trials
        if not trials:
            assert st == "open", st
        return len(trials) == 2

    until(recovered, 15, "B's breaker closing after two half-open trials")
    assert gl.endpoint_view(gl.upstream_view(gw, stack.key), addr(b2))["breaker"] == "closed"


# ---- outlier ejection ---------------------------------------------------------------------------


def test_outlier_ejection_and_slow_start_show_in_the_admin_view(stack):
    eject_s = 1.0 * SLOW
    a = stack.replica("a", version=A_VERSION)
    dead = dead_addr()
    gw = stack.gateway({"upstreams": {"inference": {
        "endpoints": [addr(a), dead], "breaker": NO_BREAKER, "backoff": FAST_BACKOFF,
        "outlier": {"consecutive_failures": 3, "base_ejection": ms(eject_s)},
        "slow_start": {"window": ms(2 * SLOW)}}}})

    def view():
        pool = gl.upstream_view(gw, stack.key)
        return pool, gl.endpoint_view(pool, dead)

    def eject_round(nth):
        """Requests until the dead endpoint is ejected for the nth time: each failure there is
        retried on A (one retry per request) and counted as consecutive, exactly 3 eject."""
        pool0, _ = view()
        history = []

        def ejected():
            r, _ = infer(gw, stack.key)
            assert version_of(r) == A_VERSION
            pool, ep = view()
            failures = pool["retries"] - pool0["retries"]
            history.append((failures, ep["consecutive_failures"], ep["ejected"]))
            if failures < 3:
                assert ep == {**ep, "ejected": False, "consecutive_failures": failures}, history
                assert pool["ejections"] == nth - 1
                return False
            assert failures == 3 and ep["ejected"] and ep["consecutive_failures"] == 0, history
            assert pool["ejections"] == nth and ep["breaker"] == "closed", pool
            return True

        until(ejected, 20, f"ejection number {nth}")

    eject_round(1)
    # While ejected, nothing is sent to it: no more failures, hence no retries.
    retries = view()[0]["retries"]
    for _ in range(10):
        assert version_of(infer(gw, stack.key)[0]) == A_VERSION
    pool, ep = view()
    assert ep["ejected"], "the ejection ended too early for this check (machine too slow?)"
    assert pool["retries"] == retries, pool
    # It comes back in slow start: a reduced weight that grows back to 1.
    ep = wait_until(lambda: (lambda e: e if not e["ejected"] else None)(view()[1]),
                    eject_s + 5, "the ejection to end")
    assert 0 < ep["weight"] < 1.0, ep
    # Still failing: ejected again after 3 more consecutive failures (multiplier 2).
    eject_round(2)


# ---- retry budget --------------------------------------------------------------------------------


def test_retries_stay_within_the_budget(stack):
    a = stack.replica("a", version=A_VERSION)
    window_s, ratio, floor_per_s = 30, 0.20, 1
    gw = stack.gateway({"upstreams": {"inference": {
        "endpoints": [dead_addr(), addr(a)], "breaker": NO_BREAKER, "outlier": NO_EJECTION,
        "backoff": FAST_BACKOFF,
        "retry_budget": {"percent": int(ratio * 100), "min_per_second": floor_per_s,
                         "window": f"{window_s}s"}}}})
    # Half the first tries go to the dead endpoint and need a retry: twice what 20% allows.
    n = 300
    statuses = collections.Counter()
    bodies = set()
    t0 = time.monotonic()
    for _ in range(n):
        r, _ = infer(gw, stack.key)
        statuses[r.status_code] += 1
        if r.status_code != 200:
            bodies.add(r.text)
    elapsed = time.monotonic() - t0
    pool = gl.upstream_view(gw, stack.key)
    assert set(statuses) <= {200, 503}, statuses
    assert pool["requests"] == n, pool
    # The budget counts requests and retries in one-second buckets over the last window_s
    # seconds; a run shorter than the window has every request and retry in the window at each
    # withdrawal, and requests only grow, so the bound is exact: no slack (the check and the
    # withdrawal are one step under the budget's mutex, so concurrency adds none either).
    assert elapsed < window_s - 1, f"run of {elapsed:.1f} s too long for the bound below"
    assert pool["retries"] <= ratio * n + floor_per_s * window_s, pool
    # The budget did bind (demand was about 150 retries), and each request it refused is exactly
    # one client failure: its first try failed and nothing else was allowed.
    assert pool["budget_exhausted"] > 0, pool
    assert statuses[503] == pool["budget_exhausted"], (statuses, pool)
    # The client never sees internal details (addresses, gRPC messages).
    assert bodies <= {'{"error":"the model is unavailable; retry later"}'}, bodies


# ---- per-try timeout and deadline ----------------------------------------------------------------


def test_per_try_timeout_retries_on_the_other_replica_and_the_deadline_holds(stack):
    per_try, slow_delay = 0.2 * SLOW, 1.0 * SLOW
    d_per_try, d_deadline = 0.6 * SLOW, 1.5 * SLOW
    a = stack.replica("a", version=A_VERSION)
    s = stack.replica("s", version=B_VERSION, delay_us=int(slow_delay * 1e6), instances=16,
                      models=("simple", "simple_d"))
    gw = stack.gateway({
        "upstreams": {
            "mixed": {"endpoints": [addr(a), addr(s)], "per_try_timeout": ms(per_try),
                      "timeout": ms(10 * per_try), "breaker": NO_BREAKER,
                      "outlier": NO_EJECTION, "backoff": FAST_BACKOFF},
            "slowonly": {"endpoints": [addr(s)], "per_try_timeout": ms(d_per_try),
                         "max_attempts": 3, "breaker": NO_BREAKER, "outlier": NO_EJECTION,
                         "backoff": FAST_BACKOFF}},
        "routes": {"*": {"upstream": "mixed"},
                   "simple_d": {"upstream": "slowonly", "timeout": ms(d_deadline)}}})

    # S never answers within the per-try timeout, so every answer is A's. A request that tried
    # S first waited one per-try timeout and was retried exactly once (on A, the untried one).
    retried = []

    def three_retried():
        before = gl.upstream_view(gw, stack.key, "mixed")["retries"]
        r, took = infer(gw, stack.key)
        assert version_of(r) == A_VERSION
        assert took < slow_delay * 0.75, took
        extra = gl.upstream_view(gw, stack.key, "mixed")["retries"] - before
        assert extra in (0, 1), extra
        if extra:
            assert took >= per_try, took
            retried.append(took)
        return len(retried) >= 3

    until(three_retried, 30, "three requests retried after a per-try timeout")

    # Only the slow replica: tries of 600 ms at 0 and 600 ms, the third cut to 300 ms by the
    # 1.5 s deadline: 504 at the deadline (not at 3 x 600 ms); S itself never answers in time.
    r, took = infer(gw, stack.key, model="simple_d")
    assert r.status_code == 504, r.text
    assert r.json() == {"error": "the model did not answer in time"}
    assert d_deadline * 0.95 <= took < 3 * d_per_try, took
    pool = gl.upstream_view(gw, stack.key, "slowonly")
    assert pool["requests"] == 1 and pool["retries"] == 2, pool

    # S got exactly those attempts: one per retried request, three for the deadline request. It
    # keeps executing after the gateway gave up; waiting for the executions to finish also
    # keeps the teardown clear of the shutdown bug pinned by the next test.
    def executed(model):
        stats = requests.get(s.url("inference", f"/v2/models/{model}/stats"), timeout=5).json()
        st = stats["model_stats"][0]["inference_stats"]
        return st["success"]["count"] + st["fail"]["count"]

    wait_until(lambda: (executed("simple"), executed("simple_d")) == (len(retried), 3),
               slow_delay + 10, "S to finish the attempts the gateway gave up on")


def test_replica_stops_promptly_after_a_per_try_timeout(stack):
    delay = 1.0 * SLOW
    s = stack.replica("s", version=B_VERSION, delay_us=int(delay * 1e6))
    gw = stack.gateway({"upstreams": {"inference": {
        "endpoints": [addr(s)], "per_try_timeout": ms(0.2 * SLOW), "max_attempts": 1}}})
    r, _ = infer(gw, stack.key)
    assert r.status_code == 504, r.text
    stack.procs.remove(s)  # stopped (and checked) here, not again at teardown
    t0 = time.monotonic()
    code = s.stop()  # SIGTERM while the backend still executes the abandoned request
    took = time.monotonic() - t0
    assert code == 0
    # Draining waits for that execution (under 1 s left), not for the 5 s drain timeout.
    assert took < delay + 2 * SLOW, took
    assert "still referencing" not in s.log_text()


# ---- admission limits ----------------------------------------------------------------------------


def test_max_concurrent_and_max_pending_fail_fast_with_503(stack):
    delay = 1.0 * SLOW
    s = stack.replica("s", version=B_VERSION, delay_us=int(delay * 1e6), instances=4)
    backoff = 1.0 * SLOW
    gw = stack.gateway({
        "upstreams": {
            "slow": {"endpoints": [addr(s)], "max_concurrent": 1},
            # A request whose first try is refused waits a full-jitter backoff in [0, 1 s]
            # before its second: it is then "pending" (admitted, not in an attempt).
            "dead": {"endpoints": [dead_addr()], "max_pending": 1, "max_attempts": 2,
                     "timeout": "30s", "backoff": {"base": ms(backoff), "cap": ms(backoff)},
                     "breaker": NO_BREAKER, "outlier": NO_EJECTION}},
        "routes": {"*": {"upstream": "slow"}, "held": {"upstream": "dead"}}})

    with concurrent.futures.ThreadPoolExecutor(2) as ex:
        # max_concurrent 1: with one attempt in flight, the next request is refused at once.
        first = ex.submit(infer, gw, stack.key)
        wait_until(lambda: gl.endpoint_view(gl.upstream_view(gw, stack.key, "slow"),
                                            addr(s))["in_flight"] == 1, 10, "one request in flight")
        r, took = infer(gw, stack.key)
        assert r.status_code == 503, r.text
        assert r.json() == {"error": "the model is unavailable; retry later"}
        assert took < delay / 2, took
        r, took = first.result()
        assert r.status_code == 200 and took >= delay, (r.status_code, took)
        pool = gl.upstream_view(gw, stack.key, "slow")
        assert (pool["requests"], pool["rejected_concurrency"]) == (2, 1), pool

        # max_pending 1: with one request waiting for its retry, the next is refused at once.
        # A round is valid when the waiting one was still unanswered after the second's answer
        # (else its backoff happened to end first: about 3% of rounds; try again).
        for attempt in range(3):
            before = gl.upstream_view(gw, stack.key, "dead")

            def held():
                r, _ = infer(gw, stack.key, model="held")
                return r, time.monotonic()

            waiting = ex.submit(held)
            wait_until(lambda: gl.upstream_view(gw, stack.key, "dead")["retries"]
                       == before["retries"] + 1, 10, "a request waiting in backoff")
            r, took = infer(gw, stack.key, model="held")
            answered = time.monotonic()
            r1, r1_answered = waiting.result()
            assert r1.status_code == 503, r1.text
            if r1_answered < answered:
                continue
            assert r.status_code == 503, r.text
            assert took < 0.5 * SLOW, took
            pool = gl.upstream_view(gw, stack.key, "dead")
            assert pool["rejected_pending"] == before["rejected_pending"] + 1, pool
            assert pool["requests"] == before["requests"] + 1, pool  # the refused one never began
            break
        else:
            pytest.fail("no round had a request waiting in backoff long enough")


# ---- fallbacks -----------------------------------------------------------------------------------


def test_fallback_answers_are_marked_degraded(stack):
    a = stack.replica("a", version=A_VERSION)
    pipeline = {
        "model": "simple",
        "inputs": [{"tensor": "INPUT0", "datatype": "INT32", "field": "a", "length": 16},
                   {"tensor": "INPUT1", "datatype": "INT32", "field": "b", "length": 16}],
        "outputs": [{"field": "sum", "tensor": "OUTPUT0"}],
        "fallback": {"last_good": True, "default": {"sum": [0] * 16}},
    }
    gw = stack.gateway({
        "upstreams": {"inference": {"endpoints": [addr(a)], "backoff": FAST_BACKOFF}},
        "routes": {"simple": {"fallback": {"last_good": True}}},
        "pipelines": {"sum": pipeline}})
    x = gl.simple_body(a=list(range(16)), b=[7] * 16)
    y = gl.simple_body(a=list(range(100, 116)), b=[7] * 16)
    good = infer(gw, stack.key, body=x)[0]
    assert good.status_code == 200 and "X-Sluice-Degraded" not in good.headers
    good = good.json()
    assert "degraded" not in good
    predict = gw.url("gateway", "/v1/predict/sum")
    fields = {"a": list(range(16)), "b": [1] * 16}
    p_good = requests.post(predict, json=fields, headers=gl.auth(stack.key), timeout=10)
    assert p_good.status_code == 200, p_good.text
    assert p_good.json()["outputs"]["sum"] == [i + 1 for i in range(16)]

    stack.stop(a)
    # The same input: the last good answer, marked degraded (body and header).
    r = infer(gw, stack.key, body=x)[0]
    assert r.status_code == 200, r.text
    assert r.headers.get("X-Sluice-Degraded") == "true"
    body = r.json()
    assert body.pop("degraded") is True
    assert body == good
    # An input never answered: no fallback for /v2, a generic 503.
    r = infer(gw, stack.key, body=y)[0]
    assert r.status_code == 503
    assert r.json() == {"error": "the model is unavailable; retry later"}
    # The pipeline: its last good answer for the same fields, the default for new ones.
    r = requests.post(predict, json=fields, headers=gl.auth(stack.key), timeout=10)
    assert r.status_code == 200 and r.headers.get("X-Sluice-Degraded") == "true", r.text
    body = r.json()
    assert body.pop("degraded") is True and body == p_good.json()
    r = requests.post(predict, json={"a": [5] * 16, "b": [5] * 16}, headers=gl.auth(stack.key),
                      timeout=10)
    assert r.status_code == 200 and r.headers.get("X-Sluice-Degraded") == "true", r.text
    assert r.json() == {"degraded": True, "model": "simple", "outputs": {"sum": [0] * 16}}


# ---- fault injection -----------------------------------------------------------------------------


def test_fault_injection_aborts_and_delays_the_configured_share(stack):
    delay = 0.3
    a = stack.replica("a", version=A_VERSION, models=("simple", "f_share", "f_delay"))
    gw = stack.gateway({"routes": {
        "simple": {"fault": {"abort": {"percent": 0, "status": 503}}},
        "f_abort": {"fault": {"abort": {"percent": 100, "status": 418}}},
        "f_share": {"fault": {"abort": {"percent": 25, "status": 429}}},
        "f_delay": {"fault": {"delay": {"percent": 100, "duration": ms(delay)}}}},
        "upstreams": {"inference": {"endpoints": [addr(a)]}}})

    def forwarded():
        return gl.upstream_view(gw, stack.key)["requests"]

    # 100%: every answer is the configured status, and nothing reaches inference.
    for _ in range(40):
        r = infer(gw, stack.key, model="f_abort")[0]
        assert r.status_code == 418, r.text
        assert r.json() == {"error": "fault injected by the gateway's configuration"}
    assert forwarded() == 0
    # 0%: none.
    for _ in range(40):
        assert infer(gw, stack.key)[0].status_code == 200
    assert forwarded() == 40
    # 25% of 400: binomial, mean 100, sd 8.7; +-5 sd. The others are all forwarded and answered.
    with concurrent.futures.ThreadPoolExecutor(4) as ex:
        codes = collections.Counter(
            ex.map(lambda _: infer(gw, stack.key, model="f_share")[0].status_code, range(400)))
    assert set(codes) <= {200, 429}, codes
    assert 57 <= codes[429] <= 143, codes
    assert forwarded() == 40 + codes[200]
    # A delay adds at least its duration, then the request is served.
    base = min(infer(gw, stack.key)[1] for _ in range(3))
    for _ in range(4):
        r, took = infer(gw, stack.key, model="f_delay")
        assert r.status_code == 200 and version_of(r) == A_VERSION
        assert delay <= took < delay + base + 0.5 * SLOW, took
    assert forwarded() == 40 + codes[200] + 3 + 4
