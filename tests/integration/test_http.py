"""The HTTP/1.1 server as a client sees it: keep-alive, pipelining, bodies, Expect, limits,
timeouts and graceful drain, driven with requests and raw sockets against the real binary."""
import json
import signal
import socket
import time

import pytest
import requests

from conftest import SLOW, wait_until
from rawhttp import connect, is_closed, read_response, read_responses, read_until_close

LIMITS = {
    "http": {
        "max_request_line": 1024,
        "max_header_bytes": 2048,
        "max_headers": 20,
        "max_body_bytes": 4096,
        "header_timeout": "1s",
        "body_timeout": "1s",
        "idle_timeout": "1s",
    },
    "debug": {"echo": True},
}


@pytest.fixture
def srv(sluice_factory):
    return sluice_factory(targets="gateway", config=LIMITS)


def port(srv):
    return srv.port("gateway")


def test_keepalive_reuses_one_connection(srv):
    s = connect(port(srv))
    for _ in range(5):
        s.sendall(b"GET /livez HTTP/1.1\r\nHost: x\r\n\r\n")
        status, headers, body = read_response(s)
        assert status == 200 and body == b"ok\n"
        assert headers.get("connection") != "close"
    s.close()


def test_http10_closes_after_response(srv):
    s = connect(port(srv))
    s.sendall(b"GET /livez HTTP/1.0\r\n\r\n")
    data = read_until_close(s)
    assert data.startswith(b"HTTP/1.1 200")
    assert b"Connection: close" in data


def test_pipelined_requests_answered_in_order(srv):
    s = connect(port(srv))
    reqs = b"".join([
        b"GET /livez HTTP/1.1\r\nHost: x\r\n\r\n",
        b"POST /v1/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nfirst",
        b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n",
        b"POST /v1/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\n\r\nsecond",
    ])
    s.sendall(reqs)
    got = read_responses(s, 4)
    assert [g[0] for g in got] == [200, 200, 404, 200]
    assert got[1][2] == b"first" and got[3][2] == b"second"


def test_echo_json_with_requests(srv):
    payload = {"inputs": [{"name": "x", "data": list(range(100))}]}
    r = requests.post(srv.url("gateway", "/v1/echo"), json=payload, timeout=5)
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    assert r.json() == payload


def test_chunked_request_body(srv):
    s = connect(port(srv))
    s.sendall(b"POST /v1/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
              b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
    status, _, body = read_response(s)
    assert status == 200 and body == b"hello world"


def test_expect_100_continue(srv):
    s = connect(port(srv))
    s.sendall(b"POST /v1/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
    interim = s.recv(4096)
    assert interim.startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
    s.sendall(b"data")
    rest = interim[len(b"HTTP/1.1 100 Continue\r\n\r\n"):]
    if not rest:
        status, _, body = read_response(s)
    else:  # the final response may arrive in the same read on a fast machine
        s2 = rest + s.recv(4096)
        assert s2.startswith(b"HTTP/1.1 200")
        status, body = 200, s2.split(b"\r\n\r\n", 1)[1]
    assert status == 200 and body == b"data"


def test_expect_100_continue_too_large_gets_413_without_body(srv):
    s = connect(port(srv))
    s.sendall(b"POST /v1/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\nExpect: 100-continue\r\n\r\n")
    status, headers, body = read_response(s)
    assert status == 413
    assert json.loads(body)["error"]["code"] == "body_too_large"


def test_unknown_expectation_gets_417(srv):
    s = connect(port(srv))
    s.sendall(b"POST /v1/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nExpect: magic\r\n\r\nx")
    assert read_response(s)[0] == 417


def error_of(resp):
    status, headers, body = resp
    assert headers["content-type"] == "application/json"
    err = json.loads(body)["error"]
    assert set(err) == {"code", "message"}
    return status, err["code"]


def test_oversized_request_line_gets_414(srv):
    s = connect(port(srv))
    s.sendall(b"GET /" + b"a" * 2000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert error_of(read_response(s)) == (414, "uri_too_long")
    assert is_closed(s)


def test_oversized_headers_get_431(srv):
    s = connect(port(srv))
    s.sendall(b"GET /livez HTTP/1.1\r\nHost: x\r\nX-Big: " + b"v" * 4000 + b"\r\n\r\n")
    assert error_of(read_response(s)) == (431, "headers_too_large")


def test_too_many_headers_get_431(srv):
    s = connect(port(srv))
    hdrs = b"".join(b"X-H%d: v\r\n" % i for i in range(30))
    s.sendall(b"GET /livez HTTP/1.1\r\nHost: x\r\n" + hdrs + b"\r\n")
    assert error_of(read_response(s)) == (431, "headers_too_large")


def test_oversized_body_gets_413(srv):
    r = requests.post(srv.url("gateway", "/v1/echo"), data=b"x" * 5000, timeout=5)
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "body_too_large"


def test_oversized_chunked_body_gets_413(srv):
    s = connect(port(srv))
    s.sendall(b"POST /v1/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
    for _ in range(5):
        try:
            s.sendall(b"400\r\n" + b"y" * 1024 + b"\r\n")
        except (BrokenPipeError, ConnectionResetError):
            break
    assert error_of(read_response(s)) == (413, "body_too_large")


@pytest.mark.parametrize("garbage", [
    b"\x00\x01\x02\xff\xfe garbage\r\n\r\n",
    b"GET / HTTP/9.9\r\n\r\n",
    b"GET /livez HTTP/1.1\r\nBad Header Without Colon\r\n\r\n",
    b"POST /v1/echo HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello",
    b"POST /v1/echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
    b"POST /v1/echo HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
])
def test_malformed_requests_get_400_and_close(srv, garbage):
    s = connect(port(srv))
    s.sendall(garbage)
    resp = read_response(s)
    assert resp is not None
    assert resp[0] in (400, 505)
    assert json.loads(resp[2])["error"]["message"]
    assert is_closed(s)
    # The server is still fine.
    assert requests.get(srv.url("gateway", "/livez"), timeout=5).status_code == 200


def test_pipelined_garbage_after_good_request(srv):
    s = connect(port(srv))
    s.sendall(b"GET /livez HTTP/1.1\r\nHost: x\r\n\r\n\x16\x03\x01garbage\r\n\r\n")
    got = read_responses(s, 2)
    assert [g[0] for g in got] == [200, 400]
    assert is_closed(s)


def test_truncated_body_times_out_with_408(srv):
    s = connect(port(srv))
    s.sendall(b"POST /v1/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly-part")
    assert error_of(read_response(s)) == (408, "request_timeout")
    assert is_closed(s)


def test_slowloris_headers_get_408(srv):
    s = connect(port(srv))
    start = time.monotonic()
    s.sendall(b"GET /livez HTTP/1.1\r\n")
    resp = None
    # Trickle a header byte every 200 ms: the whole head still must arrive within 1 s.
    for _ in range(30):
        try:
            s.sendall(b"X")
        except (BrokenPipeError, ConnectionResetError):
            break
        s.settimeout(0.2)
        try:
            data = s.recv(4096)
            resp = data
            break
        except socket.timeout:
            continue
    assert resp is not None and resp.startswith(b"HTTP/1.1 408")
    assert time.monotonic() - start < 4 * SLOW


def test_idle_keepalive_connection_is_closed(srv):
    s = connect(port(srv))
    s.sendall(b"GET /livez HTTP/1.1\r\nHost: x\r\n\r\n")
    assert read_response(s)[0] == 200
    assert is_closed(s, timeout=4)


def test_silent_connection_is_closed(srv):
    s = connect(port(srv))
    assert is_closed(s, timeout=4)


def test_method_not_allowed_and_not_found(srv):
    r = requests.post(srv.url("gateway", "/livez"), timeout=5)
    assert r.status_code == 405 and r.json()["error"]["code"] == "method_not_allowed"
    r = requests.get(srv.url("gateway", "/no/such/thing"), timeout=5)
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


def test_connection_limit_answers_503(sluice_factory):
    srv = sluice_factory(targets="gateway", config={"http": {"max_connections": 4}})

    def hold_one():
        # The readiness probe's connection may still be closing on the server: retry until a
        # slot is ours and answers.
        def attempt():
            h = connect(srv.port("gateway"))
            h.sendall(b"GET /livez HTTP/1.1\r\nHost: x\r\n\r\n")
            resp = read_response(h)
            if resp and resp[0] == 200:
                return h
            h.close()
            return None
        return wait_until(attempt, 5, "a connection slot")

    held = [hold_one() for _ in range(4)]
    extra = connect(srv.port("gateway"))
    data = read_until_close(extra)
    assert data.startswith(b"HTTP/1.1 503"), data
    assert json.loads(data.split(b"\r\n\r\n", 1)[1])["error"]["code"] == "unavailable"
    for h in held:
        h.close()
    wait_until(lambda: requests.get(srv.url("gateway", "/livez"), timeout=1).status_code == 200, 5,
               "a free connection slot")


def test_graceful_drain_finishes_inflight_request(sluice_factory):
    srv = sluice_factory(targets="gateway", config=LIMITS | {"http": {"body_timeout": "10s"}})
    s = connect(srv.port("gateway"))
    # Sent right before the signal: a request that reached the socket is served, not dropped.
    s.sendall(b"POST /v1/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nhello")
    srv.proc.send_signal(signal.SIGTERM)
    # New connections are refused once the listeners close.
    wait_until(lambda: _refused(srv.port("gateway")), 5, "listener closed")
    s.sendall(b"world")
    status, headers, body = read_response(s)
    assert status == 200 and body == b"helloworld"
    assert headers.get("connection") == "close"
    assert srv.proc.wait(timeout=10 * SLOW) == 0


def _refused(p):
    try:
        socket.create_connection(("127.0.0.1", p), timeout=0.5).close()
        return False
    except OSError:
        return True


def test_drain_deadline_forces_exit(sluice_factory):
    cfg = {"server": {"drain_timeout": "500ms"}, "http": {"body_timeout": "30s"}, "debug": {"echo": True}}
    srv = sluice_factory(targets="gateway", config=cfg)
    s = connect(srv.port("gateway"))
    s.sendall(b"POST /v1/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nhel")
    start = time.monotonic()
    srv.proc.send_signal(signal.SIGTERM)
    assert srv.proc.wait(timeout=10 * SLOW) == 0
    assert time.monotonic() - start < 3 * SLOW
    assert is_closed(s, timeout=1)
    lines = srv.log_lines()
    assert any(l["msg"].startswith("drain deadline passed") for l in lines)


def test_head_gets_headers_only_and_keeps_framing(srv):
    s = connect(port(srv))
    s.sendall(b"HEAD /livez HTTP/1.1\r\nHost: x\r\n\r\nHEAD /nope HTTP/1.1\r\nHost: x\r\n\r\n"
              b"GET /livez HTTP/1.1\r\nHost: x\r\n\r\n")
    data = b""
    while data.count(b"HTTP/1.1 ") < 3 or not data.endswith(b"ok\n"):
        chunk = s.recv(65536)
        assert chunk, data
        data += chunk
    heads = data.split(b"HTTP/1.1 ")[1:]
    assert heads[0].startswith(b"200") and b"Content-Length: 3\r\n" in heads[0]
    assert heads[0].endswith(b"\r\n\r\n")  # no body after a HEAD response
    assert heads[1].startswith(b"404") and heads[1].endswith(b"\r\n\r\n")
    assert heads[2].startswith(b"200") and heads[2].endswith(b"\r\n\r\nok\n")


def test_chunked_trailers_are_accepted_and_ignored(srv):
    s = connect(port(srv))
    s.sendall(b"POST /v1/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
              b"5\r\nhello\r\n0\r\nX-Checksum: abc\r\nX-Other: " + b"y" * 300 + b"\r\n\r\n"
              b"GET /livez HTTP/1.1\r\nHost: x\r\n\r\n")
    got = read_responses(s, 2)
    assert [g[0] for g in got] == [200, 200]
    assert got[0][2] == b"hello" and got[1][2] == b"ok\n"
