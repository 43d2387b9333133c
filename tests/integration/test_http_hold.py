"""/metrics under a connection flood, and on IPv6 (issue 10 defect 4, issue 15; docs/http-server.md).

hold: netprobe serves /metrics on 127.0.0.1 with basic auth. The test opens IDLE connections that never send a
byte and DRIP connections that send one byte of an endless request header every second, from other loopback
addresses (127.0.1.x, 127.0.2.x: PER_SOURCE per address, under the server's per-address limit), and holds them
all (reopening, as an attacker would, the idle ones the server closes after its idle timeout) while a client
with a 10 s timeout (curl -m 10, like a Prometheus scrape_timeout of 10 s) scrapes from
127.0.0.1 SCRAPES times. Every scrape must succeed with netprobe_info in the body, and the flood must really
be held (most of the connections still open at the end), or the test proves nothing.

ipv6: `prometheus_address: "::1"` serves /metrics on [::1].

hold_tls: the same over HTTPS (--web.config.file with a certificate made by openssl, bcrypt users): the 1,000
idle connections (which never start a handshake) are held while every scrape succeeds. No slow-drip ones: the
drip bytes are not a TLS record, so GnuTLS drops those connections at their first byte.

Bounded: connections are opened within OPEN_DEADLINE_S, each curl call ends within 10 s, the drip thread
stops with the test; every socket is closed on exit.
"""
import os
import resource
import select
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import harness  # noqa: E402

USER, PASSWORD = "prom_it", "s3cr3t-it"
IDLE, DRIP = 1000, 1000
PER_SOURCE = 100  # connections per source address (the server allows more per address, docs/http-server.md)
SCRAPES, SCRAPE_EVERY_S, SCRAPE_TIMEOUT_S = 6, 2.0, 10
OPEN_DEADLINE_S = 20
DRIP_HEADER = b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 100000


def config(port, address="127.0.0.1"):
    targets = {"loopback": {"type": "ICMPping", "destination": "127.0.0.1", "timeout": 0.5}}
    return harness.base_config(port=port, address=address, probe_name="it_hold", targets=targets)


CURL_EXTRA = []  # hold_tls: --cacert


def curl(url, timeout_s=SCRAPE_TIMEOUT_S, source=None):
    """(HTTP status or 0, seconds, body) of one GET with basic auth; never raises."""
    cmd = ["curl", "-sg", "-m", str(timeout_s), "-u", f"{USER}:{PASSWORD}", "-w", "\n%{http_code} %{time_total}",
           *CURL_EXTRA, url]
    if source:
        cmd[1:1] = ["--interface", source]
    started = time.monotonic()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s + 5)
    except subprocess.TimeoutExpired:
        return 0, time.monotonic() - started, ""
    body, _, tail = p.stdout.rpartition("\n")
    parts = tail.split()
    status = int(parts[0]) if parts and parts[0].isdigit() else 0
    seconds = float(parts[1]) if len(parts) > 1 else time.monotonic() - started
    return status, seconds, body


def open_flood(port, count, subnet, sources):
    """`count` non-blocking connections to 127.0.0.1:port from 127.0.<subnet>.1 to .<sources>, in turn;
    returns (sockets connected, attempts) once all connected or OPEN_DEADLINE_S passed."""
    pending = []
    for i in range(count):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        s.bind((f"127.0.{subnet}.{1 + i % sources}", 0))
        s.connect_ex(("127.0.0.1", port))
        pending.append(s)
    connected = []
    deadline = time.monotonic() + OPEN_DEADLINE_S
    while pending and time.monotonic() < deadline:
        poller = select.poll()  # not select(): the descriptors go past FD_SETSIZE
        by_fd = {s.fileno(): s for s in pending}
        for fd in by_fd:
            poller.register(fd, select.POLLOUT)
        for fd, _ in poller.poll(500):
            s = by_fd[fd]
            pending.remove(s)
            if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
                connected.append(s)
            else:
                s.close()
    for s in pending:
        s.close()
    return connected, count


def is_open(s):
    """The server has not closed it (nothing to read and no EOF)."""
    try:
        return s.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) != b""
    except BlockingIOError:
        return True  # open and silent
    except OSError:
        return False  # reset


def still_open(sockets):
    return sum(1 for s in sockets if is_open(s))


def replenish(port, idle):
    """As an attacker would: replaces the idle connections the server closed (idle timeout). Returns
    (the idle sockets, how many were replaced)."""
    alive = [s for s in idle if is_open(s)]
    for s in idle:
        if s not in alive:
            s.close()
    fresh, _ = open_flood(port, len(idle) - len(alive), 1, IDLE // PER_SOURCE) if len(alive) < len(idle) else ([], 0)
    return alive + fresh, len(idle) - len(alive)


def drip(sockets, stop):
    """One more header byte per connection every second until `stop` (the header never ends)."""
    at = 0
    while not stop.wait(1.0) and at < len(DRIP_HEADER):
        for s in sockets:
            try:
                s.send(DRIP_HEADER[at:at + 1], socket.MSG_DONTWAIT)
            except OSError:
                pass
        at += 1


def test_hold(tls=False):
    harness.require_root("netprobe opens raw sockets to probe 127.0.0.1")
    harness.require_executable("/usr/bin/curl", "curl is not installed")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < IDLE + DRIP + 100:
        harness.skip(f"RLIMIT_NOFILE hard limit {hard} is too low for {IDLE + DRIP} connections")
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    port = harness.free_port()
    drip_count, args, auth, scheme = DRIP, [], (USER, PASSWORD), "http"
    if tls:
        import test_web  # noqa: E402 (same directory): certificates and bcrypt hashes
        work, files, web = test_web.tls_lab()
        CURL_EXTRA[:] = ["--cacert", files["ca"]]
        drip_count, args, auth, scheme = 0, ["--web.config.file", web], None, "https"
    with harness.Netprobe(config(port), auth=auth, args=args) as netprobe:
        url = f"{scheme}://127.0.0.1:{port}/metrics"
        status, seconds, body = curl(url)
        assert status == 200 and "netprobe_info" in body, f"baseline scrape: {status} after {seconds:.2f}s"

        stop = threading.Event()
        idle, drips, dripper = [], [], None
        try:
            idle, idle_tried = open_flood(port, IDLE, 1, IDLE // PER_SOURCE)
            drips, drip_tried = open_flood(port, drip_count, 2, DRIP // PER_SOURCE) if drip_count else ([], 0)
            harness.log(f"connected: {len(idle)}/{idle_tried} idle, {len(drips)}/{drip_tried} slow-drip")
            dripper = threading.Thread(target=drip, args=(drips, stop), daemon=True)
            dripper.start()

            results = []
            for i in range(SCRAPES):
                time.sleep(SCRAPE_EVERY_S)
                idle, replaced = replenish(port, idle)
                held_idle, held_drip = still_open(idle), still_open(drips)
                status, seconds, body = curl(url)
                ok = status == 200 and "netprobe_info" in body
                results.append((status, seconds, ok, held_idle, held_drip))
                harness.log(f"scrape {i + 1}/{SCRAPES} with {held_idle} idle ({replaced} reopened after the server's "
                            f"idle timeout) and {held_drip} slow-drip connections held: HTTP {status} in {seconds:.2f}s")
            assert netprobe.proc.poll() is None, f"netprobe exited:\n{netprobe.log()}"
            good = sum(1 for r in results if r[2])
            assert good == SCRAPES, f"only {good} of {SCRAPES} scrapes succeeded within {SCRAPE_TIMEOUT_S}s: {results}"
            # The flood was really applied: the connections were open while each scrape ran.
            for status, seconds, ok, held_idle, held_drip in results:
                assert held_idle >= IDLE * 9 // 10, f"only {held_idle} of {IDLE} idle connections held"
                assert held_drip >= drip_count * 9 // 10, f"only {held_drip} of {drip_count} slow-drip connections held"
        finally:
            stop.set()
            if dripper:
                dripper.join(5)
            for s in idle + drips:
                s.close()
        # And the server is still fine once they are gone.
        status, _, body = curl(url)
        assert status == 200 and "netprobe_info" in body, f"scrape after the flood: {status}"
    return 0


def test_ipv6():
    harness.require_root("netprobe opens raw sockets to probe 127.0.0.1")
    harness.require_executable("/usr/bin/curl", "curl is not installed")
    if not os.path.exists("/proc/net/if_inet6"):
        harness.skip("no IPv6 on this host")
    port = harness.free_port()
    with harness.Netprobe(config(port, address="::1"), auth=(USER, PASSWORD)):
        status, seconds, body = curl(f"http://[::1]:{port}/metrics")
        assert status == 200 and "netprobe_info" in body, f"GET http://[::1]:{port}/metrics: {status}"
        # Only the address asked for: nothing on IPv4 loopback.
        status, _, _ = curl(f"http://127.0.0.1:{port}/metrics", timeout_s=3)
        assert status == 0, f"127.0.0.1:{port} answered {status} although only ::1 was configured"
    return 0


if __name__ == "__main__":
    scenario = sys.argv[1] if len(sys.argv) > 1 else "hold"
    harness.main({"hold": test_hold, "ipv6": test_ipv6, "hold_tls": lambda: test_hold(tls=True)}[scenario])
