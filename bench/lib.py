"""Shared helpers for Sluice's benchmarks (bench/*/run): process control with guaranteed cleanup,
free loopback ports, the common 1 KB payload, config files for sluice and nginx, running and
parsing wrk and h2load, /proc memory readings and Markdown tables.

Every benchmark script imports this module; nothing here runs on import except defining names.
All servers bind 127.0.0.1 only, every external command runs under a timeout, and every process
started through spawn() is stopped on exit, on SIGINT/SIGTERM/SIGHUP, or when the script fails.
"""
import atexit
import http.client
import json
import math
import os
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCH_DIR)
HOST = "127.0.0.1"



def env_int(name, default, lo, hi):
    """An integer knob from the environment, within [lo, hi]; a bad value stops with a clear
    message (benchmarks must stay bounded in time)."""
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        v = int(raw)
    except ValueError:
        v = None
    if v is None or not lo <= v <= hi:
        print(f"[bench] error: {name}={raw!r}: expected an integer from {lo} to {hi}",
              file=sys.stderr)
        sys.exit(2)
    return v


# Knobs shared by all benchmarks (environment variables, so `make bench` needs no arguments).
DURATION = env_int("BENCH_DURATION", 3, 1, 120)  # seconds per measured run
WARMUP = env_int("BENCH_WARMUP", 1, 0, 60)  # seconds of warm-up per server and request
REPEAT = env_int("BENCH_REPEAT", 7, 1, 15)  # measured runs per cell; the median is kept
CONNECTIONS = env_int("BENCH_CONNECTIONS", 50, 1, 10000)
PAYLOAD_BYTES = 1024

_procs = []  # (Popen, name) started by spawn(), stopped by cleanup()
_tmpdirs = []


def log(msg):
    """Progress goes to stderr so that stdout carries only the Markdown result."""
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def die(msg, code=1):
    log(f"error: {msg}")
    sys.exit(code)


# ---- process control ---------------------------------------------------------------------------


def cleanup():
    """Stops every process spawn() started (SIGTERM to its process group, SIGKILL after 5 s) and
    removes temporary directories. Safe to call more than once."""
    while _procs:
        p, name = _procs.pop()
        stop(p, name)
    while _tmpdirs:
        shutil.rmtree(_tmpdirs.pop(), ignore_errors=True)


def _on_signal(signum, frame):
    log(f"signal {signum}: stopping servers")
    cleanup()
    sys.exit(128 + signum)


def install_cleanup():
    """Call once at the start of a benchmark script: cleanup runs at exit and on signals."""
    atexit.register(cleanup)
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, _on_signal)


def tmpdir(prefix):
    d = tempfile.mkdtemp(prefix=f"sluice-bench-{prefix}-")
    os.chmod(d, 0o755)  # nginx workers drop to 'nobody' when started as root
    _tmpdirs.append(d)
    return d


def spawn(argv, name, cpus=None, log_path=None):
    """Starts argv in its own process group (pinned to cpus, e.g. "0" or "0-1", via taskset) with
    stdout/stderr to log_path. The process is stopped by cleanup() unless stop() ran first."""
    if cpus is not None:
        argv = ["taskset", "-c", cpus] + list(argv)
    out = open(log_path, "wb") if log_path else subprocess.DEVNULL
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                         start_new_session=True)
    if log_path:
        out.close()
    p.log_path = log_path
    _procs.append((p, name))
    return p


def stop(p, name="process", timeout=5.0):
    """SIGTERM to p's process group, then SIGKILL if it has not exited within timeout seconds.
    Returns the exit status."""
    if p.poll() is None:
        try:
            os.killpg(p.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            log(f"{name} (pid {p.pid}) ignored SIGTERM for {timeout:.0f}s: SIGKILL")
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait(timeout)
    for i, (q, _) in enumerate(_procs):
        if q is p:
            del _procs[i]
            break
    return p.returncode


def log_tail(p, n=20):
    if not getattr(p, "log_path", None):
        return ""
    try:
        with open(p.log_path, "rb") as f:
            lines = f.read().decode(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(lines[-n:])


def run_cmd(argv, timeout, cpus=None, env=None):
    """Runs a client command to completion (bounded by timeout) and returns its stdout; dies
    with the command's output when it fails."""
    if cpus is not None:
        argv = ["taskset", "-c", cpus] + list(argv)
    try:
        r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout,
                           env=env)
    except subprocess.TimeoutExpired:
        die(f"{' '.join(argv)} did not finish within {timeout}s")
    if r.returncode != 0:
        die(f"{' '.join(argv)} exited {r.returncode}:\n{r.stdout.decode()}{r.stderr.decode()}")
    return r.stdout.decode(errors="replace")


# ---- environment ------------------------------------------------------------------------------


def need(*tools):
    """Dies with an install hint when one of the client/server tools is missing."""
    missing = [t for t in tools if not shutil.which(t)]
    if missing:
        die(f"missing tool(s): {', '.join(missing)} (Debian: apt-get install wrk nghttp2-client "
            f"nginx libnginx-mod-http-echo util-linux)", 2)


def sluice_bin():
    b = os.environ.get("SLUICE_BIN", os.path.join(REPO, "build", "sluice"))
    if not (os.path.isfile(b) and os.access(b, os.X_OK)):
        die(f"sluice binary not found at {b}: run `make build` or set SLUICE_BIN", 2)
    return b


def nginx_bin():
    return shutil.which("nginx") or "/usr/sbin/nginx"


def ncpus():
    return len(os.sched_getaffinity(0))


def free_port():
    """A loopback TCP port that is free right now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


# ---- HTTP helpers -----------------------------------------------------------------------------


def http_request(port, method, path, body=None, headers=None, timeout=2.0):
    """One request on a fresh connection; returns (status, headers dict lower-cased, body)."""
    c = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        c.close()


def wait_http(port, path, proc, timeout=15.0, what="server"):
    """Polls GET path until it answers 200, the process exits, or the deadline passes."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            die(f"{what} exited with status {proc.returncode} before it was ready:\n"
                f"{log_tail(proc)}")
        try:
            status, _, _ = http_request(port, "GET", path, timeout=0.5)
            if status == 200:
                return
            last = f"status {status}"
        except OSError as e:
            last = str(e)
        time.sleep(0.05)
    die(f"{what} not ready on port {port} within {timeout:.0f}s ({last}):\n{log_tail(proc)}")


# ---- payloads ---------------------------------------------------------------------------------


def payload_json(size=PAYLOAD_BYTES):
    """A deterministic JSON document of exactly `size` bytes (a feature-vector-like request)."""
    head = '{"model":"bench","inputs":{"user_id":"u42","amount":125.0,"values":['
    tail = ']},"pad":"'
    nums, i = [], 0
    body = head
    while len(body) + len(tail) + 2 < size - 64:
        nums.append(f"{(i * 37 % 1000) / 1000:.3f}")
        body = head + ",".join(nums)
        i += 1
    body += tail
    body += "x" * (size - len(body) - 2) + '"}'
    assert len(body) == size, len(body)
    json.loads(body)
    return body.encode()


def _varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def echo_request(payload):
    """Serialised sluice.v1.EchoRequest{bytes payload = 1}."""
    return b"\x0a" + _varint(len(payload)) + payload


def grpc_frame(message):
    """One gRPC length-prefixed message: flag 0 (uncompressed), 4-byte big-endian length."""
    return b"\x00" + len(message).to_bytes(4, "big") + message


# ---- server configs ---------------------------------------------------------------------------

COMPONENT_PORTS = {
    "gateway": ["http_port"],
    "inference": ["http_port", "grpc_port"],
    "features": ["http_port", "grpc_port"],
    "registry": ["http_port", "grpc_port"],
    "worker": ["http_port"],
}


def sluice_config(d, io_threads=None, components=("gateway", "inference")):
    """Writes d/sluice.yaml binding 127.0.0.1 with a free port for each listener of the given
    components (debug echo on, log level warn); io_threads None keeps the default (one per
    CPU). Returns (path, {(component, "http"|"grpc"): port})."""
    ports = {}
    lines = ["server:", f"  bind_host: {HOST}"]
    if io_threads is not None:
        lines.append(f"  io_threads: {io_threads}")
    for comp in components:
        lines.append(f"{comp}:")
        for key in COMPONENT_PORTS[comp]:
            p = free_port()
            ports[(comp, key.split("_")[0])] = p
            lines.append(f"  {key}: {p}")
    lines += ["debug:", "  echo: true", "log:", "  level: warn"]
    path = os.path.join(d, "sluice.yaml")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path, ports


def start_sluice(d, io_threads, target, components, cpus=None, extra_args=()):
    """Starts `sluice serve` on free loopback ports and waits until /livez answers on each HTTP
    port. Returns (Popen, ports). The config gets a directory of its own (d/sluice-config):
    Sluice watches that directory for reloads, and client logs written beside it would wake
    the server during a measurement. extra_args are appended to the command line (e.g.
    ["--model-repository", DIR])."""
    cdir = os.path.join(d, "sluice-config")
    os.makedirs(cdir, exist_ok=True)
    cfg, ports = sluice_config(cdir, io_threads, components)
    p = spawn([sluice_bin(), "serve", "--config", cfg, "--target", target] + list(extra_args),
              "sluice", cpus, os.path.join(d, "sluice.log"))
    for (comp, kind), port in ports.items():
        if kind == "http":
            wait_http(port, "/livez", p, what=f"sluice {comp}")
    return p, ports


def nginx_config(d, workers, port, template=None, subst=None):
    """Writes d/nginx.conf from a template (default bench/http/nginx.conf.in) with @WORKERS@,
    @PORT@, @PREFIX@, @HOST@ and the extra {"@KEY@": value} pairs of subst filled in. Returns
    its path."""
    with open(template or os.path.join(BENCH_DIR, "http", "nginx.conf.in")) as f:
        text = f.read()
    for k, v in dict({"@WORKERS@": str(workers), "@PORT@": str(port), "@PREFIX@": d,
                      "@HOST@": HOST}, **(subst or {})).items():
        text = text.replace(k, v)
    path = os.path.join(d, "nginx.conf")
    with open(path, "w") as f:
        f.write(text)
    os.makedirs(os.path.join(d, "logs"), exist_ok=True)
    return path


def start_nginx(d, workers, cpus=None, template=None, subst=None):
    """Starts nginx in the foreground (master + `workers` workers) on a free loopback port and
    waits until GET /livez answers (a template must keep that location; see nginx_config for
    template and subst). Returns (Popen, port)."""
    port = free_port()
    conf = nginx_config(d, workers, port, template, subst)
    p = spawn([nginx_bin(), "-p", d, "-c", conf, "-e", os.path.join(d, "logs", "error.log"),
               "-g", "daemon off; master_process on;"], "nginx", cpus,
              os.path.join(d, "nginx.out"))
    wait_http(port, "/livez", p, what="nginx")
    return p, port


# ---- clients ----------------------------------------------------------------------------------

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


def _ms(text):
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text.strip())
    if not m:
        raise ValueError(f"unparsable latency '{text}'")
    return float(m.group(1)) * _UNITS[m.group(2)]


def parse_wrk(out):
    """wrk --latency output -> {rps, p50, p99, mean, requests, errors}; latencies in ms."""
    r = {}
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if not m:
        raise ValueError(f"no Requests/sec in wrk output:\n{out}")
    r["rps"] = float(m.group(1))
    m = re.search(r"^\s+Latency\s+(\S+)", out, re.M)
    r["mean"] = _ms(m.group(1)) if m else float("nan")
    # wrk --latency prints 50/75/90/99%; a 95% line appears only when a script's done() prints
    # one in the same format (bench/inference/post_infer.lua does).
    for pct in ("50", "95", "99"):
        m = re.search(rf"^\s+{pct}%\s+(\S+)", out, re.M)
        r[f"p{pct}"] = _ms(m.group(1)) if m else float("nan")
    m = re.search(r"(\d+) requests in", out)
    r["requests"] = int(m.group(1)) if m else 0
    errors = 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        errors += sum(int(x) for x in m.groups())
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if m:
        errors += int(m.group(1))
    r["errors"] = errors
    return r


def run_wrk(url, threads, conns, duration, cpus=None, script=None, env=None):
    """One wrk run (keep-alive, --latency), pinned to cpus; returns parse_wrk()'s dict."""
    argv = ["wrk", f"-t{threads}", f"-c{conns}", f"-d{duration}s", "--timeout", "5s", "--latency"]
    if script:
        argv += ["-s", script]
    argv.append(url)
    full_env = dict(os.environ, **(env or {}))
    return parse_wrk(run_cmd(argv, duration + 30, cpus, full_env))


def percentile(sorted_vals, pct):
    """Nearest-rank percentile of an already sorted list."""
    if not sorted_vals:
        return float("nan")
    k = max(0, min(len(sorted_vals) - 1, math.ceil(pct / 100 * len(sorted_vals)) - 1))
    return sorted_vals[k]


def run_h2load(url, conns, streams, duration, data=None, headers=(), h1=False, cpus=None,
               threads=1, log_dir=None):
    """One timed h2load run (no warm-up phase, so that every request the server handled is
    counted); latency percentiles come from its per-request --log-file (h2load itself prints
    only min/max/mean). Returns {rps, p50, p99, mean, requests, errors}."""
    log_file = os.path.join(log_dir or tmpdir("h2load"), "h2load.log")
    argv = ["h2load", "-t", str(threads), "-c", str(conns), "-m", str(streams),
            "-D", str(duration), "--log-file", log_file]
    if h1:
        argv.append("--h1")
    if data:
        argv += ["-d", data]
    for h in headers:
        argv += ["-H", h]
    argv.append(url)
    out = run_cmd(argv, duration + 30, cpus)
    r = {}
    m = re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", out)
    if not m:
        raise ValueError(f"no req/s in h2load output:\n{out}")
    r["rps"] = float(m.group(1))
    m = re.search(r"requests: (\d+) total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed, "
                  r"(\d+) errored, (\d+) timeout", out)
    r["requests"] = int(m.group(2)) if m else 0
    r["errors"] = sum(int(x) for x in m.groups()[2:]) if m else -1
    m = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out)
    if m:
        r["errors"] += int(m.group(3)) + int(m.group(4))
    lat = []
    with open(log_file) as f:
        for line in f:  # start time (us), status, elapsed (us)
            parts = line.split()
            if len(parts) >= 3 and parts[1].startswith("2"):
                lat.append(int(parts[2]) / 1000.0)
    lat.sort()
    r["p50"] = percentile(lat, 50)
    r["p99"] = percentile(lat, 99)
    r["mean"] = statistics.fmean(lat) if lat else float("nan")
    os.unlink(log_file)
    return r


def median_run(runs):
    """The median of repeated runs per metric (req/s and each latency separately); errors are
    summed so that any failed request stays visible."""
    out = {}
    for k in ("rps", "p50", "p99", "mean"):
        out[k] = statistics.median(r[k] for r in runs)
    for k in ("srv_us_per_req", "srv_busy"):
        if all(k in r for r in runs):
            out[k] = statistics.median(r[k] for r in runs)
    out["foreign"] = max((r.get("foreign", 0.0) for r in runs), default=0.0)
    out["errors"] = sum(r["errors"] for r in runs)
    out["requests"] = sum(r["requests"] for r in runs)
    out["runs"] = [round(r["rps"]) for r in runs]
    return out


# ---- /proc memory -----------------------------------------------------------------------------


def proc_status_kb(pid, field):
    """The number in a field of /proc/PID/status (VmRSS and VmHWM are in kB; Threads is a
    count), or None if the process is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def pss_kb(pid):
    """Proportional set size from /proc/PID/smaps_rollup (shared pages split between sharers)."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def child_pids(pid):
    """Direct children of pid (from each thread's children list)."""
    kids = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                kids += [int(x) for x in f.read().split()]
    except OSError:
        pass
    return kids


_TICK = os.sysconf("SC_CLK_TCK")


def proc_cpu_s(pids):
    """User + system CPU seconds used so far by pids (all their threads). taskset execs the
    server, so a Popen's pid is the server's own."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        except (OSError, IndexError, ValueError):
            pass
    return total / _TICK


def system_busy_s():
    """Busy CPU seconds of the whole machine (all CPUs, steal included) from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:9]]
    user, nice, system, idle, iowait, irq, softirq, steal = v
    return (user + nice + system + irq + softirq + steal) / _TICK


def measured(server_pids, fn):
    """Runs fn() (one client run returning a dict with "requests") and adds what the CPUs did
    meanwhile: srv_us_per_req (server CPU per request), srv_busy (server CPU / wall, in CPUs)
    and foreign (share of all CPUs used by neither the server nor the client: other processes
    on the box and hypervisor steal, i.e. noise)."""
    s0, b0, t0 = proc_cpu_s(server_pids), system_busy_s(), time.monotonic()
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    r = fn()
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    s1, b1, t1 = proc_cpu_s(server_pids), system_busy_s(), time.monotonic()
    srv = s1 - s0
    cli = (ru1.ru_utime + ru1.ru_stime) - (ru0.ru_utime + ru0.ru_stime)
    wall = t1 - t0
    r["srv_us_per_req"] = srv * 1e6 / r["requests"] if r["requests"] else float("nan")
    r["srv_busy"] = srv / wall
    r["foreign"] = max(0.0, (b1 - b0) - srv - cli) / (wall * ncpus())
    return r


# ---- formatting -------------------------------------------------------------------------------


def fmt_rps(v):
    return f"{v:,.0f}"


def fmt_ms(v):
    if v != v:  # NaN
        return "n/a"
    return f"{v:.2f} ms" if v < 100 else f"{v:.0f} ms"


def fmt_mb(kb):
    return "n/a" if kb is None else f"{kb / 1024:.1f} MB"


def md_table(headers, rows):
    """A GitHub Markdown table; numeric-looking columns are right-aligned."""
    def is_num(s):
        return bool(re.match(r"^[\d.,]+( ?(ms|us|MB|x|%))?( \(.*\))?$", s))
    align = ["---:" if rows and all(is_num(str(r[i])) for r in rows) else "---"
             for i in range(len(headers))]
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def fmt_us(v):
    return "n/a" if v != v else f"{v:.1f} us"


def noise_note(worst):
    """One line on background load (the worst run's share of CPU used by other processes)."""
    if worst >= 0.05:
        return (f"- **Noisy machine:** up to {worst:.0%} of the CPUs went to other processes or "
                f"hypervisor steal during a run; the numbers are less trustworthy than usual.")
    return (f"- Background load stayed under 5% of the CPUs in every run (worst {worst:.1%}).")


def verdict(ok):
    return "yes" if ok else "**NO**"
