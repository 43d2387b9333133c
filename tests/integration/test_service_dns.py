"""Name resolution of the daemon's TCPquery targets (docs/service-checks.md#name-resolution), in a namespace lab:
the prober namespace's resolv.conf (`ip netns exec` bind-mounts /etc/netns/<ns>/) names a DNS server that reads
every query and never answers, with resolv.conf timeouts that would hold a blocking resolver 5 s x 3 attempts.

  a TCPquery target whose name only that server could answer (timeout 1 s, interval 2 s) fails with
  probe_failed_due_to{reason="resolve"}, run after run, with no turn skipped: each run ends at its timeout;
  the query did reach the server (c-ares, not a shortcut);
  a target named in the namespace's /etc/hosts, and one given as an IP literal, keep passing meanwhile;
  `netprobe check` on the same configuration: the same verdicts through the same code, exit 2.
Every wait is bounded; namespaces, /etc/netns/<ns> and processes are removed on any exit (netns.Lab, harness).
"""
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import harness  # noqa: E402
import netns  # noqa: E402

P, T = "10.19.0.1", "10.19.0.2"
INTERVAL, TIMEOUT = 2, 1

BANNER = ("import socket\n"
          "s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
          f"s.bind(('{T}', 2525)); s.listen(16)\n"
          "for _ in range(2000):\n"
          "    c, _ = s.accept(); c.sendall(b'220 ready\\r\\n'); c.close()\n")

# Reads DNS queries on 127.0.0.1:53 and drops them; appends one line per query to argv[1] (bounded).
BLACK_HOLE = ("import socket, sys\n"
              "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('127.0.0.1', 53))\n"
              "for _ in range(100000):\n"
              "    data, _ = s.recvfrom(4096)\n"
              "    with open(sys.argv[1], 'a') as f: f.write(f'{len(data)}\\n')\n")


def config(port):
    tcp = {"type": "TCPquery", "dst_port": 2525, "timeout": TIMEOUT, "query_response": [{"expect": "^220"}]}
    return {
        "global": {"probe_name": "lab", "interval": INTERVAL, "nb_proc": 1, "logging_level": "INFO",
                   "prometheus_port": port, "prometheus_address": "127.0.0.1", "dns_update_interval": 300},
        "groups": {"g": {"src_ipv4": P}},
        "targets": {
            "blackholed": dict(tcp, destination="svc.blackhole.test"),
            "by_hosts": dict(tcp, destination="svc.hosts.test"),
            "literal": dict(tcp, destination=T),
        },
    }


def main():
    harness.require_root()
    with netns.Lab() as lab, tempfile.TemporaryDirectory() as work:
        os.chmod(work, 0o755)  # the daemon reads its configuration as an unprivileged user
        p, t = lab.ns("p"), lab.ns("t")
        lab.link(p, t, [f"{P}/24"], [f"{T}/24"])
        etc = f"/etc/netns/{p}"
        os.makedirs(etc, exist_ok=True)
        harness.register_cleanup(lambda: shutil.rmtree(etc, ignore_errors=True))
        with open(os.path.join(etc, "resolv.conf"), "w") as fh:
            fh.write("nameserver 127.0.0.1\noptions timeout:5 attempts:3\n")
        with open(os.path.join(etc, "hosts"), "w") as fh:
            fh.write(f"127.0.0.1 localhost\n{T} svc.hosts.test\n")
        queries = os.path.join(work, "queries.log")
        lab.popen(p, [sys.executable, "-c", BLACK_HOLE, queries])
        lab.popen(t, [sys.executable, "-c", BANNER])
        harness.wait_until(lambda: "127.0.0.1:53 " in netns.sh("ss", "-lunH", ns=p, capture=True), 10,
                           "the black-hole DNS server")
        harness.wait_until(lambda: netns.sh("ss", "-Hltn", "sport = :2525", ns=t, capture=True,
                                            check=False).strip() != "", 30, "the banner server")

        port = harness.free_port()
        cfg = config(port)
        path = harness.write_config(cfg, work)
        os.chmod(path, 0o644)
        log = open(os.path.join(work, "netprobe.log"), "w+")
        lab.popen(p, [harness.netprobe_bin(), "run", path], stdout=log, stderr=log)

        def scrape():
            text = netns.sh("curl", "-sf", f"http://127.0.0.1:{port}/metrics", ns=p, capture=True, check=False)
            return harness.parse_metrics(text or "")

        def v(samples, name, dest, **labels):
            return harness.value(samples, name, destination=dest, **labels)

        s = {}
        try:
            def three_runs():
                s["v"] = scrape()
                return all((v(s["v"], "netprobe_service_check_runs_total", n) or 0) >= 3 for n in cfg["targets"])
            harness.wait_until(three_runs, 60, "three runs of every service check")
        except BaseException:
            log.seek(0)
            harness.log(log.read()[-4000:])
            raise
        s = s["v"]
        harness.log("\n".join(f"{n}: success={v(s, 'probe_success', n)} duration={v(s, 'probe_duration_seconds', n)}"
                              f" dns={v(s, 'probe_dns_lookup_time_seconds', n)}" for n in cfg["targets"]))

        runs = v(s, "netprobe_service_check_runs_total", "blackholed")
        assert v(s, "probe_success", "blackholed") == 0, s
        assert v(s, "probe_failed_due_to", "blackholed", reason="resolve") == 1, s
        assert v(s, "netprobe_service_check_failures_total", "blackholed", reason="resolve") == runs, s
        # Each run ended at its timeout, within its interval: no turn was skipped (a resolver that waited for
        # resolv.conf's 5 s x 3 attempts would skip several of the 2 s turns per run).
        assert v(s, "netprobe_service_check_skipped_total", "blackholed") == 0, s
        assert v(s, "probe_duration_seconds", "blackholed") < INTERVAL, s
        with open(queries) as fh:
            assert fh.read().strip() != "", "the black-hole server saw no query"

        for ok in ("by_hosts", "literal"):
            assert v(s, "probe_success", ok) == 1, (ok, s)
            assert v(s, "netprobe_service_check_failures_total", ok, reason="resolve") is None, (ok, s)
        assert v(s, "probe_dns_lookup_time_seconds", "literal") == 0, s
        assert v(s, "probe_dns_lookup_time_seconds", "by_hosts") is not None, s

        # netprobe check: the same code, one shot, exit 2 with the resolve failure named.
        r = subprocess.run(["ip", "netns", "exec", p, harness.netprobe_bin(), "check", path], capture_output=True,
                           text=True, timeout=120)
        harness.log(f"check -> {r.returncode}\n{r.stdout}{r.stderr}")
        assert r.returncode == 2, r
        assert "FAILED resolve: svc.blackhole.test: timeout after" in r.stdout and "[blackholed/g]" in r.stdout, \
            r.stdout
        assert "TCPquery svc.hosts.test:2525 OK" in r.stdout and f"TCPquery {T}:2525 OK" in r.stdout, r.stdout
        assert "3 check(s), 2 OK, 1 FAILED" in r.stdout, r.stdout
    harness.log("service checks, name resolution: OK")


if __name__ == "__main__":
    harness.main(main)
