"""The gRPC port as real clients see it: grpcio (stubs generated from proto/ at test time) for
health, echo, deadlines, unknown methods, size limits and concurrency; raw sockets for input no
well-behaved client sends (garbage, corrupt frames, a lying length prefix), after which the
server must still answer the next good call."""
import concurrent.futures
import os
import socket
import struct
import subprocess
import sys

import grpc
import pytest
import requests

from conftest import REPO, SLOW, wait_until

MAX_MESSAGE = 64 * 1024
CONFIG = {
    "grpc": {"max_message_bytes": MAX_MESSAGE, "idle_timeout": "2s"},
    "debug": {"echo": True},
}


@pytest.fixture(scope="module")
def stubs(tmp_path_factory):
    """health_pb2(_grpc) and echo_pb2(_grpc) generated from the repo's protos. Each proto is
    compiled from its own directory so the modules are top-level (a generated "grpc" package
    would shadow grpcio)."""
    out = tmp_path_factory.mktemp("stubs")
    for rel in ("grpc/health/v1/health.proto", "sluice/v1/echo.proto"):
        d, name = os.path.split(os.path.join(REPO, "proto", rel))
        subprocess.run(
            ["/usr/bin/python3", "-m", "grpc_tools.protoc", f"-I{d}", f"--python_out={out}",
             f"--grpc_python_out={out}", name],
            check=True)
    sys.path.insert(0, str(out))
    import echo_pb2
    import echo_pb2_grpc
    import health_pb2
    import health_pb2_grpc
    yield {"health": health_pb2, "health_grpc": health_pb2_grpc, "echo": echo_pb2,
           "echo_grpc": echo_pb2_grpc}
    sys.path.remove(str(out))


@pytest.fixture
def srv(sluice_factory):
    return sluice_factory(targets="inference", config=CONFIG)


@pytest.fixture
def channel(srv):
    ch = grpc.insecure_channel(f"127.0.0.1:{srv.port('inference', 'grpc')}")
    yield ch
    ch.close()


def echo(channel, stubs, payload, timeout=10):
    stub = stubs["echo_grpc"].EchoStub(channel)
    return stub.Echo(stubs["echo"].EchoRequest(payload=payload), timeout=timeout * SLOW).payload


def test_health_check_serving(channel, stubs):
    h = stubs["health"]
    stub = stubs["health_grpc"].HealthStub(channel)
    resp = stub.Check(h.HealthCheckRequest(), timeout=5 * SLOW)
    assert resp.status == h.HealthCheckResponse.SERVING
    resp = stub.Check(h.HealthCheckRequest(service="inference"), timeout=5 * SLOW)
    assert resp.status == h.HealthCheckResponse.SERVING
    with pytest.raises(grpc.RpcError) as e:
        stub.Check(h.HealthCheckRequest(service="no-such-service"), timeout=5 * SLOW)
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as e:
        list(stub.Watch(h.HealthCheckRequest(), timeout=5 * SLOW))
    assert e.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_echo_round_trip(channel, stubs):
    assert echo(channel, stubs, b"hello") == b"hello"
    assert echo(channel, stubs, b"") == b""
    blob = os.urandom(MAX_MESSAGE - 16)  # field tag and length fit in the rest
    assert echo(channel, stubs, blob) == blob


def test_generous_deadline_succeeds(channel, stubs):
    # The deadline travels as grpc-timeout (its parsing is unit-tested); a generous one passes.
    stub = stubs["echo_grpc"].EchoStub(channel)
    resp, call = stub.Echo.with_call(stubs["echo"].EchoRequest(payload=b"x" * 1000), timeout=30)
    assert resp.payload == b"x" * 1000
    assert call.code() == grpc.StatusCode.OK


def test_unknown_method_unimplemented(channel):
    call = channel.unary_unary("/no.such.Service/Nope")
    with pytest.raises(grpc.RpcError) as e:
        call(b"", timeout=5 * SLOW)
    assert e.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert "/no.such.Service/Nope" in e.value.details()


def test_message_over_limit_resource_exhausted(channel, stubs):
    with pytest.raises(grpc.RpcError) as e:
        echo(channel, stubs, b"z" * (MAX_MESSAGE + 1))
    assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    # Same channel, same connection: the next call is fine.
    assert echo(channel, stubs, b"after") == b"after"


def test_many_concurrent_calls(channel, stubs):
    stub = stubs["echo_grpc"].EchoStub(channel)
    req = stubs["echo"].EchoRequest
    futures = [stub.Echo.future(req(payload=b"%d" % i), timeout=20 * SLOW) for i in range(300)]
    for i, f in enumerate(futures):
        assert f.result().payload == b"%d" % i


def test_metrics_count_calls(srv, channel, stubs):
    echo(channel, stubs, b"count me")
    with pytest.raises(grpc.RpcError):
        channel.unary_unary("/no.such.Service/Nope")(b"", timeout=5 * SLOW)
    text = requests.get(srv.url("inference", "/metrics"), timeout=5).text
    assert ('sluice_grpc_requests_total{server="inference-grpc",'
            'method="/sluice.v1.Echo/Echo",code="OK"}') in text
    assert ('sluice_grpc_requests_total{server="inference-grpc",'
            'method="unknown",code="UNIMPLEMENTED"}') in text
    assert "sluice_grpc_request_duration_seconds_bucket" in text


# ---- raw HTTP/2 ----

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, RST_STREAM, SETTINGS, GOAWAY, WINDOW_UPDATE = 0, 1, 3, 4, 7, 8
END_STREAM, END_HEADERS = 0x1, 0x4


def frame(ftype, flags, stream, payload):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + struct.pack(">I", stream) + payload


def hpack_literal(name, value):
    """A literal header field without indexing, no Huffman (RFC 7541 6.2.2); short strings."""
    assert len(name) < 127 and len(value) < 127
    return b"\x00" + bytes([len(name)]) + name + bytes([len(value)]) + value


def request_headers(path):
    fields = [(b":method", b"POST"), (b":scheme", b"http"), (b":path", path),
              (b":authority", b"test"), (b"content-type", b"application/grpc"), (b"te", b"trailers")]
    return b"".join(hpack_literal(n, v) for n, v in fields)


def read_frames(s, until):
    """Reads frames until until(frames) is true or the peer closes; returns (frames, closed)."""
    buf, frames = b"", []
    while True:
        while len(buf) >= 9:
            length = int.from_bytes(buf[:3], "big")
            if len(buf) < 9 + length:
                break
            frames.append((buf[3], buf[4], int.from_bytes(buf[5:9], "big") & 0x7FFFFFFF,
                           buf[9:9 + length]))
            buf = buf[9 + length:]
        if until(frames):
            return frames, False
        try:
            chunk = s.recv(65536)
        except ConnectionResetError:
            return frames, True
        if not chunk:
            return frames, True
        buf += chunk


def raw_connect(srv):
    s = socket.create_connection(("127.0.0.1", srv.port("inference", "grpc")), timeout=5 * SLOW)
    return s


def test_garbage_instead_of_preface_closes(srv, channel, stubs):
    s = raw_connect(srv)
    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" + os.urandom(200))
    frames, closed = read_frames(s, lambda f: False)
    assert closed
    s.close()
    assert echo(channel, stubs, b"still up") == b"still up"


def test_corrupt_frame_after_preface_gets_goaway(srv, channel, stubs):
    s = raw_connect(srv)
    # A WINDOW_UPDATE must be 4 bytes long: a connection error (FRAME_SIZE_ERROR).
    s.sendall(PREFACE + frame(SETTINGS, 0, 0, b"") + frame(WINDOW_UPDATE, 0, 0, b"\x00\x01\x00"))
    frames, closed = read_frames(s, lambda f: False)
    assert closed
    assert any(t == GOAWAY for t, _, _, _ in frames)
    s.close()

    # An HPACK block that does not decode: COMPRESSION_ERROR, GOAWAY.
    s = raw_connect(srv)
    s.sendall(PREFACE + frame(SETTINGS, 0, 0, b"")
              + frame(HEADERS, END_HEADERS | END_STREAM, 1, b"\xff\xff\xff\xff\xff\xff"))
    frames, closed = read_frames(s, lambda f: False)
    assert closed
    assert any(t == GOAWAY for t, _, _, _ in frames)
    s.close()
    assert echo(channel, stubs, b"still up") == b"still up"


def test_lying_length_prefix_answered_with_trailers(srv, channel, stubs):
    s = raw_connect(srv)
    # The message prefix announces 100 bytes, 3 follow, then the stream ends.
    msg = b"\x00" + struct.pack(">I", 100) + b"abc"
    s.sendall(PREFACE + frame(SETTINGS, 0, 0, b"")
              + frame(HEADERS, END_HEADERS, 1, request_headers(b"/sluice.v1.Echo/Echo"))
              + frame(DATA, END_STREAM, 1, msg))

    def answered(frames):
        return any(t == HEADERS and sid == 1 and fl & END_STREAM for t, fl, sid, _ in frames)

    frames, closed = read_frames(s, answered)
    assert answered(frames), frames  # a trailers-only error response, no DATA
    assert not any(t == DATA and sid == 1 for t, _, sid, _ in frames)
    # The connection stays usable: a correct request on stream 3 gets the echo back.
    good = b"\x00" + struct.pack(">I", 4) + b"\x0a\x02hi"
    s.sendall(frame(HEADERS, END_HEADERS, 3, request_headers(b"/sluice.v1.Echo/Echo"))
              + frame(DATA, END_STREAM, 3, good))
    frames, closed = read_frames(
        s, lambda f: any(t == DATA and sid == 3 for t, _, sid, _ in f))
    data = b"".join(p for t, _, sid, p in frames if t == DATA and sid == 3)
    assert data == good
    s.close()
    assert echo(channel, stubs, b"still up") == b"still up"


def test_oversized_prefix_answered_before_body(srv):
    s = raw_connect(srv)
    # 1 GiB announced; nothing more is sent, yet the server answers at once.
    s.sendall(PREFACE + frame(SETTINGS, 0, 0, b"")
              + frame(HEADERS, END_HEADERS, 1, request_headers(b"/sluice.v1.Echo/Echo"))
              + frame(DATA, 0, 1, b"\x00" + struct.pack(">I", 1 << 30)))
    frames, closed = read_frames(
        s, lambda f: any(t == RST_STREAM and sid == 1 for t, _, sid, _ in f))
    assert any(t == HEADERS and sid == 1 and fl & END_STREAM for t, fl, sid, _ in frames)
    rst = [p for t, _, sid, p in frames if t == RST_STREAM and sid == 1]
    assert rst and int.from_bytes(rst[0], "big") == 0  # NO_ERROR: "stop sending"
    s.close()


def test_idle_connection_closed(srv):
    s = raw_connect(srv)
    s.sendall(PREFACE + frame(SETTINGS, 0, 0, b""))
    s.settimeout(10 * SLOW)
    frames, closed = read_frames(s, lambda f: False)  # idle_timeout_ms is 2 s
    assert closed
    assert any(t == GOAWAY for t, _, _, _ in frames)
    s.close()
