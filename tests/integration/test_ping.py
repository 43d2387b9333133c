#!/usr/bin/env python3
"""`netprobe ping` end to end (issue 13): the real build/netprobe in a prober namespace pings a target namespace
over a veth pair, IPv4 and IPv6. Scenarios (argv[1]):

  modes     TCPsyn to a listening port, ICMP echo, UDP to a closed port, over IPv4 and IPv6: exit 0, one line per
            probe (seq 0..N-1, the swept source ports, an RTT), the summary (0.00% loss, rtt min/avg/max/mdev);
            the JSON events; SIGINT prints the summary; usage errors (64), an unknown host (68), no CAP_NET_RAW (77)
  lossy     nftables in the target drops every packet from one source port: that port alone is flagged
            (black-holed) in the per-source-port table; the exit code follows --max-loss; a black-holed
            target (every SYN dropped): exit 1, 100.00% loss; an ICMP error per probe (IPv4, IPv6): its line
            (`icmp unreachable:13`), counted in the summary, exit 1
"""
import json
import os
import re
import signal
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
import harness  # noqa: E402
import netns  # noqa: E402

P4, T4 = "198.18.0.1", "198.18.0.2"
P6, T6 = "fd00:13::1", "fd00:13::2"
OPEN_PORT, DROPPED_PORT, REJECTED_PORT, UDP_PORT = 8080, 8082, 8083, 33434
LOSSY_SPORT = 65007  # not among the first 4 ports that the "modes" scenario sweeps

LISTENER = """
import socket, time
for af, addr in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):
    s = socket.socket(af, socket.SOCK_STREAM)
    if af == socket.AF_INET6:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    s.bind((addr, %d)); s.listen(64)
    globals()["keep_" + str(af)] = s
time.sleep(600)
""" % OPEN_PORT

RULES = f"""table inet lab {{
  chain in {{ type filter hook input priority 0;
    tcp dport {DROPPED_PORT} drop
    tcp dport {REJECTED_PORT} reject with icmpx type admin-prohibited
    tcp sport {LOSSY_SPORT} drop
  }}
}}
"""

LINE = re.compile(r"^seq=(\d+)(?: sport=(\d+))? (.*)$")
STATE = re.compile(r"^(timeout|late|unsent|icmp \S+)|.* (rtt=\d+\.\d{3} ms)(?: dup=\d+)?$")
SUMMARY = re.compile(r"^(\d+) sent, (\d+) received, (\d+\.\d\d)% loss, (\d+) late, (\d+) duplicate\(s\), "
                     r"(\d+) icmp error\(s\)$")
RTT = re.compile(r"^rtt min/avg/max/mdev = (\d+\.\d{3})/(\d+\.\d{3})/(\d+\.\d{3})/(\d+\.\d{3}) ms$")
ROW = re.compile(r"^(\d+)\s+(\d+)\s+(\d+)\s+(\d+\.\d)%\s*(\S*)$")


def build_lab(lab):
    p, t = lab.ns("p"), lab.ns("t")
    lab.link(p, t, [f"{P4}/24", f"{P6}/64"], [f"{T4}/24", f"{T6}/64"])
    lab.popen(t, ["python3", "-c", LISTENER])
    harness.wait_until(lambda: netns.sh("ss", "-ltnH", ns=t, capture=True).count(f":{OPEN_PORT} ") >= 2, 10,
                       "the target's TCP listeners")
    with tempfile.NamedTemporaryFile("w", suffix=".nft", delete=False) as fh:
        fh.write(RULES)
    netns.sh("nft", "-f", fh.name, ns=t)
    os.unlink(fh.name)
    return p, t


def ping(ns, *args):
    cmd = ["ip", "netns", "exec", ns, harness.netprobe_bin(), "ping", *args]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    print(f"$ netprobe ping {' '.join(args)}  -> {r.returncode}\n{r.stdout}{r.stderr}", flush=True)
    return r


def parse(text):
    """Per-probe lines, the summary's numbers, the RTT line's, the table rows {sport: (sent, lost, flag)}."""
    probes, summary, rtt, rows = [], None, None, {}
    for line in text.splitlines():
        if (m := LINE.match(line)) and (st := STATE.match(m[3])):
            probes.append((int(m[1]), int(m[2]) if m[2] else None, st[1] or st[2]))
        elif m := SUMMARY.match(line):
            summary = (int(m[1]), int(m[2]), float(m[3]), int(m[4]), int(m[6]))
        elif m := RTT.match(line):
            rtt = tuple(float(x) for x in m.groups())
        elif m := ROW.match(line):
            rows[int(m[1])] = (int(m[2]), int(m[3]), m[5])
    return probes, summary, rtt, rows


def scenario_modes():
    with netns.Lab() as lab:
        p, _ = build_lab(lab)
        failures = []

        def expect(cond, what):
            if not cond:
                failures.append(what)

        for name, addr, args, ports in [
            ("tcp_v4", T4, ["-S", "-p", str(OPEN_PORT)], True),
            ("tcp_v6", T6, ["-p", str(OPEN_PORT)], True),
            ("icmp_v4", T4, ["-1"], False),
            ("icmp_v6", T6, ["-1"], False),
            ("udp_v4", T4, ["-2", "-p", str(UDP_PORT)], True),
            ("udp_v6", T6, ["-2"], True),
        ]:
            r = ping(p, *args, "-c", "4", "-i", "0.1", "-W", "0.5", "--per-port", addr)
            probes, summary, rtt, rows = parse(r.stdout)
            expect(r.returncode == 0, f"{name}: exit {r.returncode}")
            expect([x[0] for x in probes] == [0, 1, 2, 3], f"{name}: probe lines {probes}")
            expect(all(x[2].startswith("rtt=") for x in probes), f"{name}: every probe answered")
            expect(all((x[1] is not None) == ports for x in probes), f"{name}: sport shown iff the type has ports")
            if ports:
                expect([x[1] for x in probes] == [65000, 65001, 65002, 65003], f"{name}: source ports swept")
                expect(set(rows) == {65000, 65001, 65002, 65003} and all(v[2] == "" for v in rows.values()),
                       f"{name}: per-port table {rows}")
            expect(summary == (4, 4, 0.0, 0, 0), f"{name}: summary {summary}")
            expect(rtt is not None and rtt[0] <= rtt[1] <= rtt[2], f"{name}: rtt {rtt}")

        # -k keeps one source port; -s moves the sweep.
        r = ping(p, "-p", str(OPEN_PORT), "-c", "3", "-i", "0.05", "-k", "-s", "61000", T4)
        probes, _, _, _ = parse(r.stdout)
        expect(r.returncode == 0 and [x[1] for x in probes] == [61000] * 3, f"-k -s: {probes}")
        r = ping(p, "-p", str(OPEN_PORT), "-c", "3", "-i", "0.05", "--sport-range", "62000-62001", T4)
        probes, _, _, _ = parse(r.stdout)
        expect(r.returncode == 0 and [x[1] for x in probes] == [62000, 62001, 62000], f"--sport-range: {probes}")

        # --max-rtt bounds the p99 RTT (lab RTTs are tens of microseconds); the percentiles line is printed.
        r = ping(p, "-p", str(OPEN_PORT), "-c", "3", "-i", "0.05", "--max-rtt", "500", T4)
        expect(r.returncode == 0 and "rtt p50/p90/p99 = " in r.stdout, f"--max-rtt 500: exit {r.returncode}")
        r = ping(p, "-p", str(OPEN_PORT), "-c", "3", "-i", "0.05", "--max-rtt", "0.0001", T4)
        expect(r.returncode == 1, f"--max-rtt 0.0001: exit {r.returncode}")

        # JSON: one object per line, start, probes, summary; numbers as numbers.
        r = ping(p, "-p", str(OPEN_PORT), "-c", "3", "-i", "0.05", "--format", "json", T6)
        try:
            events = [json.loads(x) for x in r.stdout.splitlines()]
            expect([e["event"] for e in events] == ["start", "probe", "probe", "probe", "summary"], "json: events")
            expect(events[0]["address"] == T6 and events[0]["port"] == OPEN_PORT, f"json: start {events[0]}")
            expect(all(e["state"] == "answered" and isinstance(e["rtt_ms"], float) for e in events[1:4]),
                   "json: probes")
            s = events[-1]
            expect(s["sent"] == 3 and s["received"] == 3 and s["loss_pct"] == 0 and s["exit_code"] == 0,
                   f"json: summary {s}")
            expect(len(s["ports"]) == 3 and all(x["flag"] == "" for x in s["ports"]), "json: ports")
        except (ValueError, KeyError, IndexError) as e:
            failures.append(f"json: {e!r}")
        expect(r.returncode == 0, f"json: exit {r.returncode}")

        # SIGINT (Ctrl-C) ends the run early with the summary of what was measured, as ping does.
        proc = subprocess.Popen(["ip", "netns", "exec", p, harness.netprobe_bin(), "ping", "-p", str(OPEN_PORT),
                                 "-k", "-c", "1000", "-i", "0.1", T4], stdout=subprocess.PIPE, text=True)
        first = proc.stdout.readline() + proc.stdout.readline()  # the header and the first probe's line
        proc.send_signal(signal.SIGINT)
        try:
            rest = proc.communicate(timeout=30)[0]
        except subprocess.TimeoutExpired:
            proc.kill()
            rest = proc.communicate()[0]
        print(f"$ netprobe ping (SIGINT)  -> {proc.returncode}\n{first}{rest}", flush=True)
        _, summary, _, _ = parse(first + rest)
        expect(proc.returncode == 0 and summary is not None and 1 <= summary[0] < 1000 and summary[1] == summary[0],
               f"SIGINT: exit {proc.returncode}, summary {summary}")

        # Errors: usage 64 (nothing probed), unknown host 68 (the namespace has no DNS server), no CAP_NET_RAW 77.
        for args in (["-c", "0", T4], ["-1", "-2", T4], ["--sport-range", "9-2", T4], ["-i", "x", T4],
                     ["--format", "xml", T4], ["--max-loss", "101", T4], ["--max-rtt", "0", T4], []):
            r = ping(p, *args)
            expect(r.returncode == 64 and not r.stdout.startswith("NETPROBE"), f"usage {args}: exit {r.returncode}")
        r = ping(p, "-c", "1", "ghost.invalid")
        expect(r.returncode == 68 and "unknown host" in r.stderr, f"unknown host: exit {r.returncode}")
        r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all",
                            "--bounding-set=-all", harness.netprobe_bin(), "ping", "-c", "1", "127.0.0.1"],
                           capture_output=True, text=True, timeout=60)
        expect(r.returncode == 77 and "CAP_NET_RAW" in r.stderr and not r.stdout,
               f"unprivileged: exit {r.returncode}, stderr {r.stderr!r}")

        if failures:
            sys.exit("FAIL:\n  " + "\n  ".join(failures))
        print("OK: netprobe ping modes, IPv4 and IPv6, JSON, error exit codes")


def scenario_lossy():
    with netns.Lab() as lab:
        p, _ = build_lab(lab)
        failures = []

        def expect(cond, what):
            if not cond:
                failures.append(what)

        # 16 source ports, 4 probes each: 65003's are all dropped (4 of 64 = 6.25 % loss).
        base = ["-p", str(OPEN_PORT), "-c", "64", "-i", "0.02", "-W", "0.3", "--per-port"]
        for max_loss, code in ((None, 0), ("5", 1), ("10", 0)):
            extra = ["--max-loss", max_loss] if max_loss else []
            r = ping(p, *base, *extra, T4)
            probes, summary, _, rows = parse(r.stdout)
            expect(r.returncode == code, f"--max-loss {max_loss}: exit {r.returncode}, expected {code}")
            expect(summary is not None and summary[:3] == (64, 60, 6.25), f"--max-loss {max_loss}: summary {summary}")
            expect(len(rows) == 16 and rows.get(LOSSY_SPORT) == (4, 4, "black-holed"),
                   f"table: {LOSSY_SPORT} flagged: {rows.get(LOSSY_SPORT)}")
            others = {k: v for k, v in rows.items() if k != LOSSY_SPORT}
            expect(all(v == (4, 0, "") for v in others.values()), f"table: the other ports not flagged: {others}")
            lost = [x for x in probes if x[2] == "timeout"]
            expect(len(lost) == 4 and all(x[1] == LOSSY_SPORT for x in lost), f"timeouts: {lost}")

        # A black-holed target: every SYN dropped.
        r = ping(p, "-p", str(DROPPED_PORT), "-c", "3", "-i", "0.05", "-W", "0.3", T4)
        probes, summary, rtt, rows = parse(r.stdout)
        expect(r.returncode == 1, f"black hole: exit {r.returncode}")
        expect(summary == (3, 0, 100.0, 0, 0) and rtt is None, f"black hole: summary {summary}, rtt {rtt}")
        expect([x[2] for x in probes] == ["timeout"] * 3, f"black hole: {probes}")

        # An ICMP error (administratively prohibited) quoting each probe: its line, counted, exit 1.
        for addr, label in ((T4, "icmp unreachable:13"), (T6, "icmp unreachable:1")):
            r = ping(p, "-p", str(REJECTED_PORT), "-c", "3", "-i", "0.05", "-W", "0.3", addr)
            probes, summary, _, _ = parse(r.stdout)
            expect(r.returncode == 1, f"rejected {addr}: exit {r.returncode}")
            expect([x[2] for x in probes] == [label] * 3, f"rejected {addr}: {probes}")
            expect(summary == (3, 0, 100.0, 0, 3), f"rejected {addr}: summary {summary}")

        if failures:
            sys.exit("FAIL:\n  " + "\n  ".join(failures))
        print("OK: the black-holed source port alone is flagged; --max-loss; a black-holed target exits 1")


def main():
    harness.require_root("netprobe ping needs raw sockets and network namespaces")
    scenario = sys.argv[1] if len(sys.argv) > 1 else "modes"
    {"modes": scenario_modes, "lossy": scenario_lossy}[scenario]()


if __name__ == "__main__":
    main()
