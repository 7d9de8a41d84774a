"""Raw-socket HTTP helpers for tests that must send what no well-behaved client would."""
import socket
import time

from conftest import SLOW


def connect(port, timeout=5):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout * SLOW)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def read_until_close(s, limit=1 << 22):
    """Reads until the peer closes; returns the bytes (or what came before a reset)."""
    data = b""
    try:
        while len(data) < limit:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    except (ConnectionResetError, socket.timeout):
        pass
    return data


def read_response(s):
    """Reads one response (head + content-length body). Returns (status, headers, body) or None
    when the connection closed before a response."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(65536)
        if not chunk:
            return None
        buf += chunk
    head, rest = buf.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {}
    for line in lines[1:]:
        k, v = line.split(":", 1)
        headers[k.strip().lower()] = v.strip()
    n = int(headers.get("content-length", "0"))
    while len(rest) < n:
        chunk = s.recv(65536)
        if not chunk:
            break
        rest += chunk
    return status, headers, rest[:n]


def read_responses(s, count):
    """Reads count pipelined responses from one connection."""
    out = []
    buf = b""
    while len(out) < count:
        while b"\r\n\r\n" not in buf:
            chunk = s.recv(65536)
            if not chunk:
                return out
            buf += chunk
        head, rest = buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, v in (l.split(":", 1) for l in lines[1:])}
        n = int(headers.get("content-length", "0"))
        while len(rest) < n:
            chunk = s.recv(65536)
            if not chunk:
                break
            rest += chunk
        out.append((int(lines[0].split(" ")[1]), headers, rest[:n]))
        buf = rest[n:]
    return out


def is_closed(s, timeout=5):
    """True when the peer closes the connection within timeout (reading anything it sends)."""
    s.settimeout(timeout * SLOW)
    deadline = time.monotonic() + timeout * SLOW
    try:
        while time.monotonic() < deadline:
            if not s.recv(65536):
                return True
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False
    return False
