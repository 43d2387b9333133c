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
  golden    text, hping and json outputs against a listening port, one whose replies come twice, a closed port, a filtered port (ICMP
            error), a dropped port, ICMP echo and a closed UDP port, IPv4 and IPv6, equal to
            tests/fixtures/ping/*.golden once the unstable fields (RTTs, IP IDs, the veth's name) are masked
            (NETPROBE_UPDATE_GOLDEN=1 rewrites them)
  options   the exit codes in a table (0, 1, 64, 68); -t, --dscp, -d and --no-df as the target sees them
            (an nftables counter matching exactly those header fields); --fast, --faster, --flood --rate; a
            lost probe does not hold the next ones back (20 probes at --fast with -W 1 all lost, in one run)
  late      a responder in the target answers SYNs 0.6 s late: with -W 1.5 they are answered; with -W 0.3
            those that come while their chunk still waits are `late` with their RTT, counted late and not
            received, the others timeouts
  ttl       through a router namespace: -t 1 gets the router's Time Exceeded on every probe (its line, the
            hping3 wording, exit 1), -t 2 reaches the target (a reply with TTL 63), IPv4 and IPv6
  forger    a process in the target namespace floods the prober's source ports with SYN-ACKs and echo
            replies from a silent address, with random sequence numbers, ids and payloads, while ping runs:
            none counts (0 received, exit 1)
"""
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
import harness  # noqa: E402
import netns  # noqa: E402

P4, T4 = "198.18.0.1", "198.18.0.2"
P6, T6 = "fd00:13::1", "fd00:13::2"
OPEN_PORT, DROPPED_PORT, REJECTED_PORT, UDP_PORT = 8080, 8082, 8083, 33434
DUP_PORT = 8084  # listening, and the target's nftables sends each of its SYN-ACKs twice
SLOW_PORT = 8085  # dropped by the target's kernel; SLOW_RESPONDER answers its SYNs 0.6 s late
LOSSY_SPORT = 65007  # not among the first 4 ports that the "modes" scenario sweeps
SILENT4, SILENT6 = "198.18.0.3", "fd00:13::3"  # the target's addresses that drop everything (forger)
GOLDEN_DIR = os.path.join(os.path.dirname(__file__), "..", "fixtures", "ping")

LISTENER = """
import socket, time
keep = []
for port in (%d, %d):
    for af, addr in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):
        s = socket.socket(af, socket.SOCK_STREAM)
        if af == socket.AF_INET6:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        s.bind((addr, port)); s.listen(64)
        keep.append(s)
time.sleep(600)
""" % (OPEN_PORT, DUP_PORT)

RULES = f"""table inet lab {{
  chain in {{ type filter hook input priority 0;
    tcp dport {DROPPED_PORT} drop
    tcp dport {REJECTED_PORT} reject with icmpx type admin-prohibited
    tcp dport {SLOW_PORT} drop
    tcp sport {LOSSY_SPORT} drop
    ip daddr {SILENT4} counter drop
    ip6 daddr {SILENT6} counter drop
  }}
}}
table ip wire {{
  chain in {{ type filter hook input priority -10;
    tcp dport {OPEN_PORT} ip ttl 3 ip dscp 10 ip length 140 ip frag-off & 0x4000 == 0 counter
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
    _, veth = lab.link(p, t, [f"{P4}/24", f"{P6}/64"], [f"{T4}/24", f"{T6}/64", f"{SILENT4}/24", f"{SILENT6}/64"])
    lab.popen(t, ["python3", "-c", LISTENER])
    harness.wait_until(lambda: netns.sh("ss", "-ltnH", ns=t, capture=True).count(f":{DUP_PORT} ") >= 2, 10,
                       "the target's TCP listeners")
    # Duplicated replies: every SYN-ACK from DUP_PORT sent twice.
    dup = "".join(f"table {fam} dupl {{\n  chain out {{ type filter hook output priority 0;\n"
                  f"    {fam} daddr {addr} tcp sport {DUP_PORT} dup to {addr} device {veth}\n  }}\n}}\n"
                  for fam, addr in (("ip", P4), ("ip6", P6)))
    with tempfile.NamedTemporaryFile("w", suffix=".nft", delete=False) as fh:
        fh.write(RULES + dup)
    netns.sh("nft", "-f", fh.name, ns=t)
    os.unlink(fh.name)
    return p, t


def ping(ns, *args):
    return harness.netprobe_in(ns, "ping", *args)


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
        expect = harness.Checks()

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
            expect(False, f"json: {e!r}")
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

        expect.done("OK: netprobe ping modes, IPv4 and IPv6, JSON, error exit codes")


def scenario_lossy():
    with netns.Lab() as lab:
        p, _ = build_lab(lab)
        expect = harness.Checks()

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

        # Without --per-port the text names the flagged port in one line; JSON always has the table.
        r = ping(p, *[a for a in base if a != "--per-port"], T4)
        expect(f"flagged source port(s): {LOSSY_SPORT} black-holed" in r.stdout and "sport  sent" not in r.stdout,
               "text without --per-port: the flagged port's line only")
        r = ping(p, *[a for a in base if a != "--per-port"], "--format", "json", T4)
        try:
            ports = json.loads(r.stdout.splitlines()[-1])["ports"]
            flagged = {x["sport"]: x["flag"] for x in ports if x["flag"]}
            expect(len(ports) == 16 and flagged == {LOSSY_SPORT: "black-holed"}, f"json ports: {flagged}")
        except (ValueError, KeyError, IndexError) as e:
            expect(False, f"json ports: {e!r}")

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

        expect.done("OK: the black-holed source port alone is flagged; --max-loss; a black-holed target exits 1")


GOLDEN_CASES = [  # name, address, arguments
    ("tcp_open_v4", T4, ["-p", str(OPEN_PORT)]),
    ("tcp_open_v6", T6, ["-p", str(OPEN_PORT)]),
    ("tcp_duplicated_v4", T4, ["-p", str(DUP_PORT)]),
    ("tcp_duplicated_v6", T6, ["-p", str(DUP_PORT)]),
    ("tcp_closed_v4", T4, ["-p", "8081"]),
    ("tcp_closed_v6", T6, ["-p", "8081"]),
    ("tcp_filtered_v4", T4, ["-p", str(REJECTED_PORT)]),
    ("tcp_filtered_v6", T6, ["-p", str(REJECTED_PORT)]),
    ("tcp_dropped_v4", T4, ["-p", str(DROPPED_PORT)]),
    ("icmp_v4", T4, ["-1"]),
    ("icmp_v6", T6, ["-1"]),
    ("udp_closed_v4", T4, ["-2", "-p", str(UDP_PORT)]),
    ("udp_closed_v6", T6, ["-2", "-p", str(UDP_PORT)]),
]

MASKS = [  # the fields that change from run to run
    (re.compile(r"rtt=\d+\.\d+ ms"), "rtt=* ms"),
    (re.compile(r"\bid=\d+"), "id=*"),
    (re.compile(r"^(HPING \S+ \()\S+", re.M), r"\1IFACE"),
    (re.compile(r"= [\d./]+ ms$", re.M), "= * ms"),
]
JSON_MASKED = {"rtt_ms", "icmp_rtt_ms", "ip_id"}


def mask(fmt, stdout, stderr):
    if fmt == "json":
        def clean(x):
            if isinstance(x, dict):
                return {k: ("*" if k in JSON_MASKED and v is not None else clean(v)) for k, v in x.items()}
            return x
        lines = [json.dumps(clean(json.loads(x)), sort_keys=True) for x in stdout.splitlines()]
        return "\n".join(lines) + "\n"
    text = stdout + ("--- stderr ---\n" + stderr if stderr else "")
    for pattern, repl in MASKS:
        text = pattern.sub(repl, text)
    return text


def scenario_golden():
    update = os.environ.get("NETPROBE_UPDATE_GOLDEN") == "1"
    with netns.Lab() as lab:
        p, _ = build_lab(lab)
        expect = harness.Checks()
        for name, addr, args in GOLDEN_CASES:
            for fmt in ("text", "hping", "json"):
                r = ping(p, *args, "-c", "3", "-i", "0.05", "-W", "0.3", "--format", fmt, addr)
                got = mask(fmt, r.stdout, r.stderr) + f"exit {r.returncode}\n"
                path = os.path.join(GOLDEN_DIR, f"{name}.{fmt}.golden")
                if update:
                    os.makedirs(GOLDEN_DIR, exist_ok=True)
                    with open(path, "w") as fh:
                        fh.write(got)
                    continue
                try:
                    with open(path) as fh:
                        want = fh.read()
                except OSError as e:
                    expect(False, f"{name}.{fmt}: {e}")
                    continue
                if got != want:
                    expect(False, f"{name}.{fmt}: differs from {path}:\n{got}")
        expect.done("OK: text, hping and json outputs equal their golden files" + (" (rewritten)" if update else ""))


def scenario_options():
    with netns.Lab() as lab:
        p, t = build_lab(lab)
        expect = harness.Checks()

        ok = ["-p", str(OPEN_PORT), "-k", "-c", "2", "-i", "0.05", "-W", "0.3"]
        veth = next(x.split()[1].split("@")[0] for x in netns.sh("ip", "-o", "-4", "addr", "show", ns=p,
                                                                    capture=True).splitlines() if f" {P4}/" in x)
        dropped = ["-p", str(DROPPED_PORT), "-c", "2", "-i", "0.05", "-W", "0.3"]
        cases = [  # arguments, exit code
            (ok + [T4], 0),
            (ok + ["-1", T6], 0),
            (dropped + [T4], 1),
            (dropped + ["--max-loss", "100", T4], 0),
            (ok + ["--max-rtt", "0.0001", T4], 1),
            (ok + ["--format", "hping", T4], 0),
            (dropped + ["--format", "hping", T4], 1),
            (ok + ["-a", P4, T4], 0),
            (ok + ["-I", veth, T4], 0),
            (ok + ["-I", veth, "-a", P4, T6], 64),  # -a not of the target's family
            (ok + ["-I", "lo", "-a", P4, T4], 64),  # -a not on -I's interface
            (ok + ["-n", "-y", "--dscp", "46", "-t", "64", "-d", "0", T4], 0),
            (ok + ["--fast", T4], 64),
            (["--fast", "--flood", T4], 64),
            (["-t", "0", T4], 64),
            (["-t", "256", T4], 64),
            (["-o", "0x11", T4], 64),
            (["-o", "zz", T4], 64),
            (["-o", "0x10", "--dscp", "4", T4], 64),
            (["--dscp", "64", T4], 64),
            (["-d", "-1", T4], 64),
            (["-d", "70000", T4], 64),
            (["-y", "--no-df", T4], 64),
            (["-a", "10.9.9.9", T4], 64),
            (["-a", "not-an-address", T4], 64),
            (["-a", P6, T4], 64),
            (["-I", "nosuchif0", T4], 64),
            (["--rate", "0", T4], 64),
            (["--format", "xml", T4], 64),
            (["-c", "1", "ghost.invalid"], 68),
        ]
        for args, code in cases:
            r = ping(p, *args)
            expect(r.returncode == code, f"{args}: exit {r.returncode}, expected {code}")
            if code == 64:
                expect(not r.stdout and r.stderr.startswith("netprobe ping:") or "Run with --help" in r.stderr,
                       f"{args}: a usage error says why on stderr: {r.stderr!r}")

        # -t, --dscp, -d and --no-df on the wire: the target's counter matches TTL 3, DSCP 10, 140 bytes
        # (20 IP + 20 TCP + 100 data), DF clear. The replies still come back (TTL 3 is enough on one link).
        r = ping(p, "-p", str(OPEN_PORT), "-c", "3", "-i", "0.05", "-t", "3", "--dscp", "10", "-d", "100",
                 "--no-df", T4)
        counted = netns.sh("nft", "list", "table", "ip", "wire", ns=t, capture=True)
        m = re.search(r"counter packets (\d+)", counted)
        expect(r.returncode == 0 and m and int(m[1]) == 3, f"-t -d --dscp --no-df on the wire: {counted}")
        r = ping(p, "-p", str(OPEN_PORT), "-c", "2", "-i", "0.05", "-t", "3", "--dscp", "10", "-d", "100", T4)
        m = re.search(r"counter packets (\d+)", netns.sh("nft", "list", "table", "ip", "wire", ns=t, capture=True))
        expect(r.returncode == 0 and m and int(m[1]) == 3, "DF set by default: not counted by the DF-clear rule")
        r = ping(p, "-p", str(OPEN_PORT), "-c", "2", "-i", "0.05", "-o", "28", "-d", "100", "--no-df", "-t", "3",
                 T4)
        m = re.search(r"counter packets (\d+)", netns.sh("nft", "list", "table", "ip", "wire", ns=t, capture=True))
        expect(r.returncode == 0 and m and int(m[1]) == 5, "-o 28 (hex TOS) is DSCP 10")

        # The rates: every probe answered at --fast, --faster and --flood capped by --rate.
        for args in (["--fast", "-c", "10"], ["--faster", "-c", "50"], ["--flood", "--rate", "2000", "-c", "400"],
                     ["--flood", "-c", "300"]):
            r = ping(p, "-p", str(OPEN_PORT), "-k", "-q", *args, T4)
            _, summary, _, _ = parse(r.stdout)
            n = int(args[-1])
            expect(r.returncode == 0 and summary is not None and summary[:2] == (n, n), f"{args}: {summary}")

        # 20 probes at --fast (0.1 s apart) with -W 1, all dropped: every one reported lost. They go in one
        # iteration (ping_chunk_size(), table-tested in tests/unit/session), not 20 waits of a second each:
        # the log shows the run's duration (a figure, not an assertion).
        started = time.monotonic()
        r = ping(p, "-p", str(DROPPED_PORT), "--fast", "-c", "20", "-W", "1", T4)
        print(f"--fast -c 20 -W 1 against a black hole took {time.monotonic() - started:.2f} s", flush=True)
        probes, summary, _, _ = parse(r.stdout)
        expect(r.returncode == 1 and summary is not None and summary[:2] == (20, 0) and len(probes) == 20,
               f"--fast against a black hole: {summary}")

        expect.done("OK: exit codes, header fields on the wire, rates")


FORGER = """
import os, random, socket, struct, sys, time
src, dst, dport, seconds = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
v6 = ":" in src
af = socket.AF_INET6 if v6 else socket.AF_INET
S, D = socket.inet_pton(af, src), socket.inet_pton(af, dst)
def csum(b):
    if len(b) % 2: b += bytes(1)
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b)); s = (s >> 16) + (s & 0xffff); s += s >> 16
    return ~s & 0xffff
def pseudo(proto, n):
    return S + D + (struct.pack("!IxxxB", n, proto) if v6 else struct.pack("!BBH", 0, proto, n))
def ip(proto, payload):
    if v6:
        return struct.pack("!IHBB", 6 << 28, len(payload), proto, 64) + S + D + payload
    h = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), random.getrandbits(16), 0x4000, 64, proto, 0, S, D)
    return h[:10] + struct.pack("!H", csum(h)) + h[12:] + payload
def synack(sport):
    t = struct.pack("!HHIIBBHHH", dport, sport, random.getrandbits(32), random.getrandbits(32), 5 << 4, 0x12,
                    64240, 0, 0)
    return ip(6, t[:16] + struct.pack("!H", csum(pseudo(6, len(t)) + t)) + t[18:])
def echo_reply():
    body = os.urandom(random.choice((0, 8, 16, 56)))
    i = struct.pack("!BBHHH", 129 if v6 else 0, 0, 0, random.getrandbits(16), random.getrandbits(16)) + body
    c = csum((pseudo(58, len(i)) if v6 else b"") + i)
    return ip(58 if v6 else 1, i[:2] + struct.pack("!H", c) + i[4:])
s = socket.socket(af, socket.SOCK_RAW, socket.IPPROTO_RAW)
end, sent = time.monotonic() + seconds, 0
while time.monotonic() < end and sent < 200000:
    for sport in range(65000, 65016):
        s.sendto(synack(sport), (dst, 0)); s.sendto(echo_reply(), (dst, 0)); sent += 2
    time.sleep(0.002)
print("forged", sent, flush=True)
"""


SLOW_RESPONDER = """
import heapq, socket, struct, sys, time
ifname, port, delay, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
def csum(b):
    if len(b) % 2: b += bytes(1)
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b)); s = (s >> 16) + (s & 0xffff); s += s >> 16
    return ~s & 0xffff
def synack(src, dst, sport, dport, seq):
    t = struct.pack("!HHIIBBHHH", sport, dport, 12345, (seq + 1) & 0xffffffff, 5 << 4, 0x12, 1000, 0, 0)
    t = t[:16] + struct.pack("!H", csum(src + dst + struct.pack("!BBH", 0, 6, len(t)) + t)) + t[18:]
    h = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 40, 0, 0x4000, 64, 6, 0, src, dst)
    return h[:10] + struct.pack("!H", csum(h)) + h[12:] + t
rx = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(0x0800))
rx.bind((ifname, 0x0800))
tx = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
end, due, answered = time.monotonic() + seconds, [], 0
while time.monotonic() < end:
    now = time.monotonic()
    while due and due[0][0] <= now:
        _, packet, dst = heapq.heappop(due)
        tx.sendto(packet, (dst, 0)); answered += 1
    rx.settimeout(max(0.001, min(0.05, due[0][0] - now if due else 0.05)))
    try:
        p = rx.recv(2048)
    except socket.timeout:
        continue
    ihl = (p[0] & 15) * 4
    if len(p) < ihl + 20 or p[9] != 6:
        continue
    sport, dport, seq = struct.unpack("!HHI", p[ihl:ihl + 8])
    if dport == port and p[ihl + 13] & 0x12 == 0x02:
        heapq.heappush(due, (time.monotonic() + delay, synack(p[16:20], p[12:16], dport, sport, seq), socket.inet_ntoa(p[12:16])))
print("answered late", answered, flush=True)
"""


def scenario_late():
    with netns.Lab() as lab:
        p, t = build_lab(lab)
        expect = harness.Checks()

        veth = next(x.split()[1].split("@")[0] for x in netns.sh("ip", "-o", "-4", "addr", "show", ns=t,
                                                                    capture=True).splitlines() if f" {T4}/" in x)
        slow = lab.popen(t, ["python3", "-c", SLOW_RESPONDER, veth, str(SLOW_PORT), "0.6", "6"],
                         stdout=subprocess.PIPE, text=True)
        time.sleep(0.5)  # its packet socket open (a probe sent before would only be lost, not late)
        r = ping(p, "-p", str(SLOW_PORT), "-c", "3", "-i", "0.1", "-W", "1.5", T4)
        probes, _, _, _ = parse(r.stdout)
        expect(r.returncode == 0 and len(probes) == 3 and all(x[2].startswith("rtt=") for x in probes),
               f"answered within -W 1.5: {probes}")
        # 20 probes 50 ms apart, -W 0.3: one iteration, which waits until the last probe's deadline (1.25 s);
        # the replies to the first ones (0.6 s after each) come while it waits: `late`, with their RTT. The
        # last ones' come after it ended: timeouts (README: late replies are seen while their chunk waits).
        r = ping(p, "-p", str(SLOW_PORT), "-c", "20", "-i", "0.05", "-W", "0.3", T4)
        out = slow.communicate(timeout=30)[0]
        print(out, flush=True)
        probes, summary, rtt, _ = parse(r.stdout)
        states = [x[2] for x in probes]
        late_rtts = [float(m[1]) for m in re.finditer(r"^seq=\d+ sport=\d+ late from=\S+ .* rtt=(\d+\.\d{3}) ms$",
                                                      r.stdout, re.M)]
        n_late = states.count("late")
        expect(r.returncode == 1 and summary is not None and summary[:2] == (20, 0) and summary[3] == n_late
               and rtt is None, f"late: summary {summary}")
        expect(n_late >= 1 and states == ["late"] * n_late + ["timeout"] * (20 - n_late), f"late: {states}")
        expect(len(late_rtts) == n_late and all(550 <= x < 5000 for x in late_rtts), f"late RTTs: {late_rtts}")
        expect.done("OK: late answers: their line and RTT, counted late, not received")


def scenario_forger():
    with netns.Lab() as lab:
        p, t = build_lab(lab)
        expect = harness.Checks()

        seen = {}
        for silent, prober, args in ((SILENT4, P4, ["-p", str(OPEN_PORT)]), (SILENT4, P4, ["-1"]),
                                     (SILENT6, P6, ["-p", str(OPEN_PORT)]), (SILENT6, P6, ["-1"])):
            forger = lab.popen(t, ["python3", "-c", FORGER, silent, prober, str(OPEN_PORT), "6"],
                               stdout=subprocess.PIPE, text=True)
            r = ping(p, *args, "-c", "40", "-i", "0.1", "-W", "0.5", "--per-port", silent)
            out = forger.communicate(timeout=30)[0]
            print(out, flush=True)
            probes, summary, rtt, _ = parse(r.stdout)
            what = f"{silent} {args}"
            if args[0] == "-p":
                # The forged SYN-ACKs reached the prober's host: its kernel answered them with RSTs, which
                # the target's drop rule counts (with the 40 probes).
                rules = netns.sh("nft", "list", "chain", "inet", "lab", "in", ns=t, capture=True)
                m = re.search(rf"daddr {re.escape(silent)} counter packets (\d+)", rules)
                dropped = int(m[1]) if m else 0
                expect(dropped > 500 + seen.get(silent, 0), f"{what}: the prober got the forgeries: {rules}")
                seen[silent] = dropped
            expect(out.startswith("forged ") and int(out.split()[1]) > 1000, f"{what}: the forger ran: {out!r}")
            expect(r.returncode == 1 and summary is not None and summary[:2] == (40, 0) and rtt is None,
                   f"{what}: forged replies counted: {summary}")
            expect(all(x[2] == "timeout" for x in probes), f"{what}: {probes}")
        expect.done("OK: forged SYN-ACKs and echo replies never count (IPv4 and IPv6)")


def scenario_ttl():
    with netns.Lab() as lab:
        p, r, t = lab.ns("p"), lab.ns("r"), lab.ns("t")
        lab.link(p, r, ["198.19.1.1/24", "fd00:14:1::1/64"], ["198.19.1.2/24", "fd00:14:1::2/64"])
        lab.link(r, t, ["198.19.2.1/24", "fd00:14:2::1/64"], ["198.19.2.2/24", "fd00:14:2::2/64"])
        for key in ("net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding"):
            netns.sh("sysctl", "-qw", f"{key}=1", ns=r)
        for ns, v4, v6, gw4, gw6 in ((p, "198.19.2.0/24", "fd00:14:2::/64", "198.19.1.2", "fd00:14:1::2"),
                                     (t, "198.19.1.0/24", "fd00:14:1::/64", "198.19.2.1", "fd00:14:2::1")):
            netns.sh("ip", "route", "add", v4, "via", gw4, ns=ns)
            netns.sh("ip", "-6", "route", "add", v6, "via", gw6, ns=ns)
        expect = harness.Checks()

        for target, router, label in (("198.19.2.2", "198.19.1.2", "icmp time_exceeded:0"),
                                      ("fd00:14:2::2", "fd00:14:1::2", "icmp time_exceeded:0")):
            base = ["-p", "81", "-c", "3", "-i", "0.05", "-W", "0.5"]
            res = ping(p, *base, "-t", "1", target)
            probes, summary, _, _ = parse(res.stdout)
            expect(res.returncode == 1 and [x[2] for x in probes] == [label] * 3, f"-t 1 {target}: {probes}")
            expect(all(f"from={router} " in line for line in res.stdout.splitlines() if line.startswith("seq=")),
                   f"-t 1 {target}: the router is the sender")
            expect(summary == (3, 0, 100.0, 0, 3), f"-t 1 {target}: summary {summary}")
            res = ping(p, *base, "-t", "1", "--format", "hping", target)
            expect(res.stdout.count(f"TTL 0 during transit from ip={router}\n") == 3, f"-t 1 {target}: hping lines")
            res = ping(p, *base, "-t", "2", target)
            probes, summary, _, _ = parse(res.stdout)
            expect(res.returncode == 0 and summary is not None and summary[:2] == (3, 3), f"-t 2 {target}: {summary}")
            expect(all(" ttl=63 " in line and "flags=RA" in line for line in res.stdout.splitlines()
                       if line.startswith("seq=")), f"-t 2 {target}: replies routed back (TTL 63), RST-ACK")
        expect.done("OK: -t 1 gets the router's Time Exceeded, -t 2 the target's answer (IPv4 and IPv6)")


def main():
    harness.require_root("netprobe ping needs raw sockets and network namespaces")
    scenario = sys.argv[1] if len(sys.argv) > 1 else "modes"
    {"modes": scenario_modes, "lossy": scenario_lossy, "golden": scenario_golden, "options": scenario_options,
     "forger": scenario_forger, "ttl": scenario_ttl,
     "late": scenario_late}[scenario]()


if __name__ == "__main__":
    main()
