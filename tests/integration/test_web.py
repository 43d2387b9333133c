"""netprobe's web surface (issue 15; docs/http-server.md): listen addresses, the exporter-toolkit web
configuration (TLS, mutual TLS, bcrypt users), checked with curl against the real binary under its sandbox.

listen: two --web.listen-address at once, IPv4 and IPv6; the configuration's prometheus_port is not used.

Every curl call is bounded (-m); netprobe is stopped on exit (harness.Netprobe).
"""
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import harness  # noqa: E402

CURL_TIMEOUT_S = 10


def config(port):
    targets = {"loopback": {"type": "ICMPping", "destination": "127.0.0.1", "timeout": 0.5}}
    return harness.base_config(port=port, probe_name="it_web", targets=targets)


def curl(url, *args, timeout_s=CURL_TIMEOUT_S):
    """(HTTP status or 0, curl exit code, body, stderr) of one GET; never raises."""
    cmd = ["curl", "-sSg", "-m", str(timeout_s), "-w", "\n%{http_code}", *args, url]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s + 5)
    except subprocess.TimeoutExpired:
        return 0, -1, "", "timeout"
    body, _, code = p.stdout.rpartition("\n")
    return (int(code) if code.isdigit() else 0), p.returncode, body, p.stderr.strip()


def start(port, args, ready_host, ready_port, env=None):
    netprobe = harness.Netprobe(config(port), args=args, env=env)
    netprobe.host, netprobe.port = ready_host, ready_port
    return netprobe


def test_listen():
    harness.require_root("netprobe opens raw sockets to probe 127.0.0.1")
    harness.require_executable("/usr/bin/curl", "curl is not installed")
    if not os.path.exists("/proc/net/if_inet6"):
        harness.skip("no IPv6 on this host")
    unused, p4, p6 = harness.free_port(), harness.free_port(), harness.free_port()
    args = ["--web.listen-address", f"127.0.0.1:{p4}", "--web.listen-address", f"[::1]:{p6}"]
    with start(unused, args, "127.0.0.1", p4) as netprobe:
        harness.wait_for_port("::1", p6, proc=netprobe.proc)
        for url in (f"http://127.0.0.1:{p4}/metrics", f"http://[::1]:{p6}/metrics"):
            status, _, body, err = curl(url)
            assert status == 200 and "netprobe_info" in body, f"GET {url}: {status} {err}"
        # Only what was asked for: not the configuration's port, not the other family on either port.
        for url in (f"http://127.0.0.1:{unused}/metrics", f"http://[::1]:{p4}/metrics",
                    f"http://127.0.0.1:{p6}/metrics"):
            status, rc, _, _ = curl(url, timeout_s=3)
            assert status == 0 and rc != 0, f"{url} answered {status}"
    return 0


if __name__ == "__main__":
    scenario = sys.argv[1] if len(sys.argv) > 1 else "listen"
    harness.main({"listen": test_listen}[scenario])
