"""Shared helpers for the integration tests (Python 3 standard library only).

A test script typically reads:

    import harness
    def test():
        harness.require_root("netprobe needs raw sockets")
        with harness.Netprobe(harness.base_config(port=harness.free_port())) as np:
            np.wait_for_metrics(lambda s: harness.select(s, "netprobe_info"), what="netprobe_info")
    if __name__ == "__main__":
        harness.main(test)

Contracts kept by every helper:
- every wait is bounded in time and says what it waited for when it gives up;
- every process started here is stopped (SIGTERM, then SIGKILL) when the test ends, also on failure,
  on SIGTERM/SIGINT (ctest timeout) and, through PR_SET_PDEATHSIG, when the test itself is killed;
- every temporary file lives under one directory removed at the end (kept with NETPROBE_KEEP_TMP=1);
- exit codes follow ctest: 0 pass, 1 fail, 77 skipped (with the reason on stderr).
"""
import atexit
import base64
import ctypes
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.error
import urllib.parse
import urllib.request

SKIP = 77

SOURCE_DIR = os.environ.get("NETPROBE_SOURCE_DIR") or os.path.abspath(
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", ".."))


def netprobe_bin():
    """The binary under test: $NETPROBE_BIN (set by ctest), else <source>/build/netprobe."""
    return os.environ.get("NETPROBE_BIN") or os.path.join(SOURCE_DIR, "build", "netprobe")


def netprobe_in(ns, command, *args, timeout_s=120):
    """Runs `netprobe COMMAND ARGS` in namespace `ns` (as root, with its capabilities), prints the command
    line, exit code and output for the CI log, and returns the CompletedProcess."""
    cmd = ["ip", "netns", "exec", ns, netprobe_bin(), command, *args]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
    print(f"$ netprobe {command} {' '.join(args)}  -> {r.returncode}\n{r.stdout}{r.stderr}", flush=True)
    return r


class Checks:
    """Collects failed expectations so that a scenario reports all of them at once:
    `check(cond, "what was wrong")` ..., then `check.done("OK: what was shown")` exits with every failure."""

    def __init__(self):
        self.failures = []

    def __call__(self, cond, what):
        if not cond:
            self.failures.append(what)
        return cond

    def done(self, ok_message):
        if self.failures:
            sys.exit("FAIL:\n  " + "\n  ".join(self.failures))
        print(ok_message, flush=True)


def log(*args):
    print("[harness]", *args, file=sys.stderr, flush=True)


def skip(reason):
    """Ends the test as skipped (ctest SKIP_RETURN_CODE 77), printing why."""
    print(f"SKIP: {reason}", file=sys.stderr, flush=True)
    sys.exit(SKIP)


def require_root(why="this test needs root (raw sockets, network namespaces)"):
    if os.geteuid() != 0:
        skip(why)


def require_executable(path, why=None):
    """Skips when a third-party tool (e.g. /usr/bin/prometheus) is not installed."""
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        skip(why or f"{path} is not installed")


def free_port(host="127.0.0.1"):
    """A TCP port free on `host` right now. Another process may still take it before use; tests
    tolerate that by failing with a clear 'address in use' from the server they start."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------------------------------
# Cleanup: processes and temporary directories

_processes = []
_tmpdirs = []
_cleanups = []


def register_cleanup(fn):
    """Runs fn() at the end of the test, on exit, SIGTERM or SIGINT, after the processes are stopped
    (netns.py registers the removal of its namespaces here)."""
    _cleanups.append(fn)


def _cleanup():
    for proc in reversed(list(_processes)):
        stop_process(proc)
    for fn in list(_cleanups):
        try:
            fn()
        except Exception as e:  # noqa: BLE001 - one failed cleanup must not skip the others
            log(f"cleanup {fn.__name__} failed: {e}")
    if os.environ.get("NETPROBE_KEEP_TMP") != "1":
        for d in list(_tmpdirs):
            shutil.rmtree(d, ignore_errors=True)
            _tmpdirs.remove(d)
    else:
        for d in _tmpdirs:
            log(f"kept temporary directory {d}")


atexit.register(_cleanup)


def _install_signal_handlers():
    for sig in (signal.SIGTERM, signal.SIGINT):
        previous = signal.getsignal(sig)

        def handler(signum, frame, previous=previous):
            _cleanup()
            if callable(previous):
                previous(signum, frame)
            os._exit(128 + signum)

        signal.signal(sig, handler)


_install_signal_handlers()


def tmpdir(prefix="netprobe-it-"):
    d = tempfile.mkdtemp(prefix=prefix)
    # Started as root, netprobe runs as `nobody` (or `netprobe`) and reads its configuration and inventory
    # plug-ins as that user: mkdtemp's 0700 would lock it out.
    os.chmod(d, 0o755)
    _tmpdirs.append(d)
    return d


def _die_with_parent():
    # Runs in the child between fork and exec: if the test process dies, even by SIGKILL, the kernel
    # kills the child too, so no prober or Prometheus outlives its test.
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        PR_SET_PDEATHSIG = 1
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except Exception:
        pass


def start_process(cmd, env=None, log_path=None, cwd=None):
    """Starts `cmd` with its stdout+stderr in `log_path` (or a temp file). Stopped at test end."""
    if log_path is None:
        log_path = os.path.join(tmpdir(), os.path.basename(cmd[0]) + ".log")
    full_env = dict(os.environ)
    if env:
        full_env.update({k: v for k, v in env.items() if v is not None})
        for k, v in env.items():
            if v is None:
                full_env.pop(k, None)
    logf = open(log_path, "wb")
    log("starting:", " ".join(cmd))
    proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=full_env,
                            cwd=cwd, preexec_fn=_die_with_parent)
    proc.log_path = log_path
    proc.log_file = logf
    _processes.append(proc)
    return proc


def stop_process(proc, grace_s=5.0):
    """SIGTERM, wait up to grace_s, then SIGKILL. Returns the exit code. Idempotent."""
    if proc.poll() is None:
        try:
            proc.terminate()
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            log(f"pid {proc.pid} ignored SIGTERM for {grace_s}s: SIGKILL")
            proc.kill()
            proc.wait(timeout=grace_s)
        except ProcessLookupError:
            pass
    try:
        proc.log_file.close()
    except Exception:
        pass
    if proc in _processes:
        _processes.remove(proc)
    return proc.returncode


def log_tail(proc, lines=40):
    try:
        with open(proc.log_path, "rb") as f:
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


# --------------------------------------------------------------------------------------------------
# Waiting

class WaitTimeout(AssertionError):
    pass


def wait_until(predicate, timeout_s, what, interval_s=0.2):
    """Calls predicate() until it returns a truthy value (returned) or timeout_s passes (WaitTimeout
    naming `what` and the last value or exception)."""
    deadline = time.monotonic() + timeout_s
    last = None
    while True:
        try:
            result = predicate()
            if result:
                return result
            last = result
        except Exception as e:  # noqa: BLE001 - the last error is reported on timeout
            last = e
        if time.monotonic() >= deadline:
            raise WaitTimeout(f"timed out after {timeout_s}s waiting for {what}; last: {last!r}")
        time.sleep(interval_s)


def wait_for_port(host, port, timeout_s=30, proc=None):
    """Waits until host:port accepts a TCP connection; fails at once if `proc` exits meanwhile."""
    def ready():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"process exited with {proc.returncode} before listening on {host}:{port}:\n"
                                 f"{log_tail(proc)}")
        try:
            with socket.create_connection((host, port), timeout=1):
                return True
        except OSError:
            return False
    deadline = time.monotonic() + timeout_s
    while True:
        if ready():
            return
        if time.monotonic() >= deadline:
            tail = f"\n{log_tail(proc)}" if proc is not None else ""
            raise WaitTimeout(f"{host}:{port} not listening after {timeout_s}s{tail}")
        time.sleep(0.1)


# --------------------------------------------------------------------------------------------------
# HTTP and the Prometheus text format

def http_get(url, auth=None, timeout_s=10, headers=None):
    """GET url; returns (status, headers dict with lower-case names, body str). Never raises on an
    HTTP error status. `auth` is (user, password) for basic auth."""
    req = urllib.request.Request(url, headers=dict(headers or {}))
    if auth is not None:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        req.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as resp:
            return resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        body = e.read().decode("utf-8", "replace") if e.fp else ""
        return e.code, {k.lower(): v for k, v in e.headers.items()}, body


_SAMPLE_RE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+(-?\d+))?\s*$')
_LABEL_RE = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*(?:,|$)')


def _unescape(value):
    return re.sub(r'\\(.)', lambda m: {"n": "\n", "\\": "\\", '"': '"'}.get(m.group(1), "\\" + m.group(1)), value)


def parse_metrics(text):
    """Prometheus text format -> {(name, frozenset(labels.items())): float}. Raises ValueError on a
    malformed sample line (a malformed exposition is a bug worth failing on)."""
    samples = {}
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE_RE.match(line)
        if not m:
            raise ValueError(f"line {lineno}: not a sample: {line!r}")
        name, label_text, value_text = m.group(1), m.group(2) or "", m.group(3)
        labels = {}
        pos = 0
        while pos < len(label_text):
            lm = _LABEL_RE.match(label_text, pos)
            if not lm:
                raise ValueError(f"line {lineno}: bad labels: {label_text!r}")
            labels[lm.group(1)] = _unescape(lm.group(2))
            pos = lm.end()
        samples[(name, frozenset(labels.items()))] = float(value_text)  # float() accepts +Inf, NaN
    return samples


def select(samples, name, **labels):
    """The samples named `name` whose labels include `labels`: [(labels dict, value)]."""
    out = []
    for (n, ls), v in samples.items():
        if n == name:
            d = dict(ls)
            if all(d.get(k) == str(val) for k, val in labels.items()):
                out.append((d, v))
    return out


def value(samples, name, **labels):
    """The value of the one sample matching name/labels, None when there is none; raises when several match."""
    found = select(samples, name, **labels)
    if len(found) > 1:
        raise AssertionError(f"{len(found)} samples match {name} {labels}: {found}")
    return found[0][1] if found else None


# --------------------------------------------------------------------------------------------------
# netprobe

def base_config(port, probe_name="it_probe", address="127.0.0.1", targets=None, groups=None, **global_overrides):
    """A minimal netprobify-compatible configuration (as a dict): one group, the given targets."""
    g = {
        "probe_name": probe_name,
        "interval": 1,
        "nb_proc": 1,
        "logging_level": "INFO",
        "prometheus_port": port,
        "prometheus_address": address,
        "dns_update_interval": 300,
    }
    g.update(global_overrides)
    return {
        "global": g,
        "groups": groups if groups is not None else {"it_group": {"src_port_a": 65000, "src_port_z": 65001}},
        "targets": targets if targets is not None else {},
    }


def write_config(config, directory=None, name="netprobe.yaml"):
    """Writes `config` (a dict, emitted as JSON, which is valid YAML, or a YAML string) and returns its path."""
    path = os.path.join(directory or tmpdir(), name)
    with open(path, "w") as f:
        f.write(config if isinstance(config, str) else json.dumps(config, indent=2))
    return path


class Netprobe:
    """`netprobe run CONFIG` as a context manager: started on enter (and waited for until /metrics
    listens), stopped on exit. `auth` = (user, password) sets PROM_USER/PROM_PASSWORD."""

    def __init__(self, config, auth=None, env=None, ready_timeout_s=30, args=None):
        self.config = config
        self.auth = auth
        self.env = dict(env or {})
        if auth is not None:
            self.env.update({"PROM_USER": auth[0], "PROM_PASSWORD": auth[1]})
        self.ready_timeout_s = ready_timeout_s
        self.args = list(args or [])
        g = config["global"] if isinstance(config, dict) else {}
        self.host = g.get("prometheus_address", "127.0.0.1")
        if self.host in ("0.0.0.0", "", None):
            self.host = "127.0.0.1"
        self.port = g.get("prometheus_port")
        self.proc = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def start(self):
        binary = netprobe_bin()
        if not os.path.isfile(binary):
            raise AssertionError(f"netprobe binary not found at {binary} (build it, or set NETPROBE_BIN)")
        work = tmpdir()
        self.config_path = write_config(self.config, work)
        self.proc = start_process([binary, "run", self.config_path] + self.args, env=self.env,
                                  log_path=os.path.join(work, "netprobe.log"))
        if self.port is not None:
            wait_for_port(self.host, self.port, self.ready_timeout_s, proc=self.proc)
        return self

    def stop(self):
        if self.proc is not None:
            return stop_process(self.proc)
        return None

    @property
    def url(self):
        return f"http://{self.host}:{self.port}/metrics"

    def scrape(self, auth="default"):
        """(status, headers, body) of GET /metrics; auth defaults to this instance's credentials."""
        return http_get(self.url, auth=self.auth if auth == "default" else auth)

    def metrics(self):
        status, _, body = self.scrape()
        if status != 200:
            raise AssertionError(f"GET {self.url} returned {status}: {body[:200]}")
        return parse_metrics(body)

    def wait_for_metrics(self, predicate, timeout_s=30, what="metrics condition"):
        """Scrapes until predicate(samples) is truthy; returns the samples."""
        holder = {}

        def check():
            if self.proc.poll() is not None:
                raise AssertionError(f"netprobe exited with {self.proc.returncode}:\n{log_tail(self.proc)}")
            holder["s"] = self.metrics()
            return predicate(holder["s"])
        wait_until(check, timeout_s, what)
        return holder["s"]

    def log(self):
        return log_tail(self.proc, 200) if self.proc else ""


# --------------------------------------------------------------------------------------------------
# Entry point

def main(test):
    """Runs test() and exits with its status: 0 pass, 1 failure (traceback printed), 77 skip.
    Processes and temporary files are cleaned up in every case."""
    code = 0
    try:
        result = test()
        code = result if isinstance(result, int) else 0
    except SystemExit as e:
        if isinstance(e.code, str):
            print(e.code, file=sys.stderr, flush=True)  # sys.exit("FAIL: why"): say why
        code = e.code if isinstance(e.code, int) else 1
    except BaseException:  # noqa: BLE001 - any failure is reported, then cleaned up
        traceback.print_exc()
        code = 1
    finally:
        _cleanup()
    print("PASS" if code == 0 else ("SKIPPED" if code == SKIP else "FAIL"), file=sys.stderr, flush=True)
    sys.exit(code)
