#!/usr/bin/env python3
"""End-to-end rate benchmark (issue 6). Root only; Python standard library only.

    sudo python3 bench/e2e_rate.py [--quick] [--memory] [--types tcp,icmp,udp] [--rates 1000,10000,0]

Builds a namespace lab (prober namespace + target namespace over a veth pair; 64 target addresses on the
target side, a TCP listener, a closed UDP port, ICMP echo, ICMP rate limits off, static neighbours), then
for every probe type and configured rate runs the real netprobe (nb_proc 1) and the minimal reference
prober (build/bench/reference_prober) on the same lab, one after the other, and prints a table: achieved
matched probes/s, loss, capture drops, CPU seconds per million probes (sum over every netprobe process),
peak RSS (sum over the process tree), RTT p50/p99, and netprobe as a ratio of the reference.

Rate 0 means flat out. netprobe's rate is configured through max_packets_per_second with one iteration of
rate x interval packets, so that iterations follow each other without a pause; its matched probes/s are
the deltas of *_sent_total - *_loss_total between two iteration ends (the counters move once per
iteration) divided by the time between them.

--memory adds the memory and load checks of the issue: RSS with 10,000 targets x 100 packets (to
blackholed addresses), and `netprobe check-config` on 100,000 targets.

It never fails on a number: exit 0 when every run produced figures, 1 on a crash or a broken lab, 77 when
not root. Namespaces are removed on every exit path (tests/integration/lib/netns.py).
"""
import argparse
import ctypes
import http.client
import json
import math
import os
import queue
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(SOURCE, "tests", "integration", "lib"))

PROBER, TARGET_BASE, NTARGETS = "198.18.0.1", "198.18.1.", 64
HOLE_GW, HOLE_NET = "198.18.0.250", "198.19.0.0/16"
TCP_PORT, UDP_PORT = 8080, 33434
SPORT_A, SPORT_Z = 20000, 59999
METRICS_PORT = 9109
TYPES = {  # short name: (config type, metric prefix, reference --type, destination port)
    "tcp": ("TCPsyn", "tcpsyn", "tcp", TCP_PORT),
    "icmp": ("ICMPping", "icmp", "icmp", None),
    "udp": ("UDPunreachable", "udp_unreachable", "udp", UDP_PORT),
}

LISTENER = """
import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", %d)); s.listen(65535)
time.sleep(3600)
""" % TCP_PORT


def log(*a):
    print("[e2e_rate]", *a, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------------------
# Scraping from inside the prober namespace, without a process per scrape (it would cost CPU on the same
# two cores): one thread moved into the namespace with setns(2) does every HTTP request.

class NsThread:
    CLONE_NEWNET = 0x40000000

    def __init__(self, ns):
        self.q = queue.Queue()
        ready = queue.Queue(1)
        threading.Thread(target=self._run, args=(ns, ready), daemon=True).start()
        ok, err = ready.get(timeout=10)
        if not ok:
            raise RuntimeError(f"setns into {ns}: {err}")

    def _run(self, ns, ready):
        libc = ctypes.CDLL(None, use_errno=True)
        fd = os.open(f"/var/run/netns/{ns}", os.O_RDONLY)
        rc = libc.setns(fd, self.CLONE_NEWNET)
        os.close(fd)
        ready.put((rc == 0, os.strerror(ctypes.get_errno())))
        while True:
            fn, box = self.q.get()
            try:
                box.put((True, fn()))
            except Exception as e:  # noqa: BLE001 - handed back to the caller
                box.put((False, e))

    def call(self, fn, timeout=30):
        box = queue.Queue(1)
        self.q.put((fn, box))
        ok, v = box.get(timeout=timeout)
        if not ok:
            raise v
        return v


def http_metrics(port, prefixes):
    """{(name, labels-string): value} for the samples whose name starts with one of `prefixes`."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        c.request("GET", "/metrics")
        body = c.getresponse().read().decode()
    finally:
        c.close()
    out = {}
    for line in body.splitlines():
        if not line or line[0] == "#" or not line.startswith(prefixes):
            continue
        key, _, val = line.rpartition(" ")
        name, _, labels = key.partition("{")
        out[(name, labels)] = float(val)
    return out


def total(samples, name):
    return sum(v for (n, _), v in samples.items() if n == name)


def per_label(samples, name, needle):
    return [v for (n, l), v in samples.items() if n == name and needle in l]


# ---------------------------------------------------------------------------------------------------------
# Process tree accounting (the process model may have a supervisor and several workers).

def tree(root):
    children = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(d))
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children.get(p, [])
    return out


TICK = os.sysconf("SC_CLK_TCK")


def tree_cpu(root, by_name=None):
    """CPU seconds of the whole tree; `by_name` (a dict) also receives them per process name."""
    s = 0.0
    for p in tree(root):
        try:
            with open(f"/proc/{p}/stat") as f:
                head, _, rest = f.read().rpartition(")")
            fields = rest.split()
            cpu = (int(fields[11]) + int(fields[12])) / TICK  # utime, stime (all threads)
        except (OSError, IndexError, ValueError):
            continue
        s += cpu
        if by_name is not None:
            name = head.partition("(")[2]
            by_name[name] = by_name.get(name, 0.0) + cpu
    return s


def tree_rss_kb(root, field="VmHWM"):
    s = 0
    for p in tree(root):
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith(field + ":"):
                        s += int(line.split()[1])
        except (OSError, ValueError):
            pass
    return s


def memory_by_process(root):
    """Per process of the tree: name, RSS, peak RSS and PSS in MB. RSS counts pages shared between the
    supervisor, the launcher and the workers (forked: libraries, binary, copy-on-write pages) once per
    process; PSS divides each shared page between its sharers, so the PSS sum is the tree's real share."""
    out = []
    for pid in tree(root):
        row = {"pid": pid}
        try:
            with open(f"/proc/{pid}/comm") as f:
                row["name"] = f.read().strip()
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith(("VmRSS:", "VmHWM:")):
                        row[line.split(":")[0]] = int(line.split()[1]) / 1024
            with open(f"/proc/{pid}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        row["Pss"] = int(line.split()[1]) / 1024
        except (OSError, ValueError):
            continue
        out.append({"name": row.get("name"), "rss_mb": round(row.get("VmRSS", 0), 1),
                    "peak_rss_mb": round(row.get("VmHWM", 0), 1), "pss_mb": round(row.get("Pss", 0), 1)})
    return out


# ---------------------------------------------------------------------------------------------------------
# The lab

def build_lab(lab, netns):
    p, t = lab.ns("p"), lab.ns("t")
    targets = [f"{TARGET_BASE}{i + 1}" for i in range(NTARGETS)]
    ia, _ = lab.link(p, t, [f"{PROBER}/16"], ["198.18.0.2/16"] + [f"{a}/16" for a in targets])
    # The TCP listener answers SYN-ACK; the prober's kernel then resets the half-open connection.
    for key, value in (("net.core.somaxconn", "65535"), ("net.ipv4.tcp_max_syn_backlog", "262144")):
        netns.sh("sysctl", "-qw", f"{key}={value}", ns=t, check=False)
    # Blackholed destinations (memory check): a gateway that is a neighbour nobody owns.
    netns.sh("ip", "neigh", "replace", HOLE_GW, "lladdr", "02:00:00:00:00:99", "dev", ia, "nud", "permanent", ns=p)
    netns.sh("ip", "route", "add", HOLE_NET, "via", HOLE_GW, ns=p)
    lab.popen(t, [sys.executable, "-c", LISTENER])
    deadline = time.time() + 10
    while f":{TCP_PORT} " not in netns.sh("ss", "-ltnH", ns=t, capture=True):
        if time.time() > deadline:
            raise RuntimeError("the target's TCP listener did not start")
        time.sleep(0.1)
    # One probe of each kind must come back, or every figure below would be meaningless.
    netns.sh("ping", "-n", "-c", "1", "-W", "2", targets[-1], ns=p)
    return p, t, targets


# ---------------------------------------------------------------------------------------------------------
# netprobe runs

def netprobe_config(kind, rate, interval, destinations, nb_packets, timeout=0.5):
    type_, _, _, dport = TYPES[kind]
    lines = [
        "global:",
        "  probe_name: e2e",
        f"  interval: {interval}",
        "  nb_proc: 1",
        "  logging_level: WARNING",
        f"  prometheus_port: {METRICS_PORT}",
        "  prometheus_address: 127.0.0.1",
        "  dns_update_interval: 3600",
        "  percentile: [50, 99]",
    ]
    if rate > 0:
        lines.append(f"  max_packets_per_second: {rate}")
    lines += ["groups:", "  g:", f"    src_port_a: {SPORT_A}", f"    src_port_z: {SPORT_Z}", "targets:"]
    for i, dst in enumerate(destinations):
        lines += [f"  t{i}:", f"    type: {type_}", f"    destination: \"{dst}\"", f"    nb_packets: {nb_packets}",
                  f"    timeout: {timeout}"]
        if dport:
            lines.append(f"    dst_port: {dport}")
    return "\n".join(lines) + "\n"


def stop(proc):
    import harness  # the tests' one process-stopping path; imported late like netns (after the root check)
    harness.stop_process(proc)


def run_netprobe(lab, netns, scraper, binary, p, targets, kind, rate, duration, tmp):
    """Figures of netprobe at one configured rate, or {"error": ...}."""
    _, prefix, _, _ = TYPES[kind]
    interval = 1 if duration < 5 or rate == 0 else 2
    if duration >= 5 and rate > 0:
        # At least ~100 RTTs per target and iteration: netprobe's p50 is a per-target, per-iteration
        # percentile (as netprobify's), and the median of 30-sample medians sits measurably above the
        # median of all samples (the reference's figure) for a right-skewed RTT distribution.
        interval = max(interval, math.ceil(100 * len(targets) / rate / 0.8) + 1)
    if rate > 0:
        per_iteration = rate * interval
    else:
        # Flat out: far more than it can send in the 0.4 s window (always behind schedule) and than it can
        # send in the interval (a worker that finishes early waits out the interval: that would cap the
        # rate at per_iteration / interval).
        per_iteration = 50_000 if duration < 5 else 300_000
    nb = max(1, -(-per_iteration // len(targets)))
    path = os.path.join(tmp, f"{kind}_{rate}.yaml")
    with open(path, "w") as f:
        f.write(netprobe_config(kind, rate, interval, targets, nb))
    logf = open(os.path.join(tmp, f"{kind}_{rate}.log"), "w+")
    proc = lab.popen(p, [binary, "run", path], stdout=logf, stderr=logf)
    names = (f"{prefix}_sent_total", f"{prefix}_loss_total", f"{prefix}_round_trip_seconds",
             "netprobe_capture_packets_dropped_total")

    def sample():
        m = scraper.call(lambda: http_metrics(METRICS_PORT, names))
        names_cpu = {}
        return {"t": time.monotonic(), "cpu": tree_cpu(proc.pid, names_cpu), "by_name": names_cpu, "m": m,
                "sent": total(m, names[0]), "loss": total(m, names[1]), "drops": total(m, names[3])}

    changes, last, error = [], None, None
    hard = time.monotonic() + duration + 4 * interval + 20
    try:
        while time.monotonic() < hard:
            if proc.poll() is not None:
                error = f"netprobe exited with {proc.returncode}"
                break
            try:
                s = sample()
            except (OSError, http.client.HTTPException):
                time.sleep(0.2)
                continue
            if last is not None and s["sent"] != last["sent"]:
                # An iteration ended between the last two samples. The supervisor may be applying its
                # report while we scrape: take the first sample after the counters stopped moving.
                for _ in range(20):
                    time.sleep(0.02)
                    again = sample()
                    if again["sent"] == s["sent"]:
                        break
                    s = again
                changes.append(s)
                if len(changes) >= 2 and s["t"] - changes[0]["t"] >= duration:
                    break
            last = s
            time.sleep(0.1)
        rss = tree_rss_kb(proc.pid)
    finally:
        stop(proc)
        logf.seek(0)
        output = logf.read()
        logf.close()
    if error or len(changes) < 2:
        return {"error": error or "fewer than two iterations ended in time", "log": output[-2000:]}
    # Probes the kernel refused are neither sent nor lost in the metrics: the supervisor logs them.
    unsent = sum(int(m.group(1)) for m in re.finditer(r"(\d+) probe\(s\) could not be sent", output))
    a, b = changes[0], changes[-1]
    dt = b["t"] - a["t"]
    sent, loss = b["sent"] - a["sent"], b["loss"] - a["loss"]
    rtt = b["m"]
    p50 = per_label(rtt, names[2], 'percentile="50"')
    p99 = per_label(rtt, names[2], 'percentile="99"')
    return {
        "sent": sent, "matched": sent - loss, "loss": loss, "capture_drops": b["drops"] - a["drops"],
        "send_errors_whole_run": unsent,
        "window_s": dt, "matched_per_s": (sent - loss) / dt, "cpu_s": b["cpu"] - a["cpu"],
        "cpu_s_per_M": (b["cpu"] - a["cpu"]) / max(sent, 1) * 1e6, "rss_mb": rss / 1024,
        "cpu_s_by_process": {k: round(v - a["by_name"].get(k, 0.0), 3) for k, v in b["by_name"].items()},
        "rtt_p50_us": statistics.median(p50) * 1e6 if p50 else None,
        "rtt_p99_us": statistics.median(p99) * 1e6 if p99 else None,
    }


def run_reference(binary, p, netns, kind, rate, duration):
    _, _, ref_type, dport = TYPES[kind]
    cmd = ["ip", "netns", "exec", p, binary, "--type", ref_type, "--src", PROBER, "--dst-base", f"{TARGET_BASE}1",
           "--ndst", str(NTARGETS), "--dport", str(dport or 0), "--sport-base", str(SPORT_A),
           "--nsport", str(SPORT_Z - SPORT_A + 1), "--rate", str(rate), "--duration", str(duration)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 30)
    if r.returncode != 0:
        return {"error": f"reference_prober exited with {r.returncode}: {r.stderr.strip()[-500:]}"}
    out = json.loads(r.stdout)
    out["cpu_s_per_M"] = out["cpu_s"] / max(out["sent"], 1) * 1e6
    out["rss_mb"] = out.get("maxrss_kb", 0) / 1024
    return out


# ---------------------------------------------------------------------------------------------------------
# Memory and configuration load

def memory_check(lab, scraper, binary, p, tmp, ntargets=10_000, nb=100):
    """RSS (sum over the tree) once an iteration of ntargets x nb probes to blackholed addresses ended."""
    dsts = [f"198.19.{i // 250}.{i % 250 + 1}" for i in range(ntargets)]
    path = os.path.join(tmp, "memory.yaml")
    with open(path, "w") as f:
        f.write(netprobe_config("icmp", 200_000, 12, dsts, nb, timeout=1))
    logf = open(os.path.join(tmp, "memory.log"), "w+")
    proc = lab.popen(p, [binary, "run", path], stdout=logf, stderr=logf)
    want = ntargets * nb
    # Generous: with 10k targets the supervisor's start-up is slow (see bench/RESULTS.md).
    result = {"error": "the first iteration did not end within 480 s"}
    t0 = time.monotonic()
    deadline = t0 + 480
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            time.sleep(1)
            try:
                m = scraper.call(lambda: http_metrics(METRICS_PORT, ("icmp_sent_total", "icmp_loss_total")))
            except (OSError, http.client.HTTPException):
                continue
            if total(m, "icmp_sent_total") >= want:
                result = {"targets": ntargets, "packets": nb, "first_iteration_end_s": round(time.monotonic() - t0, 1),
                          "sent": total(m, "icmp_sent_total"),
                          "loss": total(m, "icmp_loss_total"), "rss_mb": tree_rss_kb(proc.pid, "VmRSS") / 1024,
                          "peak_rss_mb": tree_rss_kb(proc.pid) / 1024, "processes": len(tree(proc.pid))}
                by = memory_by_process(proc.pid)
                result["pss_mb"] = round(sum(r["pss_mb"] for r in by), 1)
                result["by_process"] = by
                break
    finally:
        stop(proc)
        logf.seek(0)
        if "error" in result:
            result["log"] = logf.read()[-1500:]
        logf.close()
    return result


def check_config_time(binary, tmp, ntargets=100_000):
    dsts = [f"198.{18 + i // 65536}.{(i // 256) % 256}.{i % 256}" for i in range(ntargets)]
    path = os.path.join(tmp, "load.yaml")
    with open(path, "w") as f:
        f.write(netprobe_config("tcp", 0, 30, dsts, 1))
    times = []
    for _ in range(3):
        t0 = time.monotonic()
        r = subprocess.run([binary, "check-config", path], capture_output=True, text=True, timeout=120)
        times.append(time.monotonic() - t0)
        if r.returncode != 0:
            return {"error": f"check-config exited {r.returncode}: {(r.stderr or r.stdout)[-500:]}"}
    return {"targets": ntargets, "seconds_min": min(times), "seconds_median": statistics.median(times)}


# ---------------------------------------------------------------------------------------------------------

def fmt(v, spec):
    return "-" if v is None else format(v, spec)


def worker_cpu_per_M(r):
    """CPU s/M of the probe workers alone (netprobe-w*): without the supervisor, whose share is mostly
    serving this benchmark's 10 scrapes per second. The reference is all 'worker'."""
    by = r.get("cpu_s_by_process")
    if by is None:
        return r["cpu_s_per_M"]
    return sum(v for k, v in by.items() if k.startswith("netprobe-w")) / max(r["sent"], 1) * 1e6


def table(rows):
    head = ("type", "rate", "prober", "matched/s", "loss", "send errors", "cap drops", "CPU s/M", "workers s/M", "RSS MB", "p50 us", "p99 us",
            "rate ratio", "CPU ratio", "p50 diff us")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for kind, rate, ref, npb in rows:
        for name, r in (("reference", ref), ("netprobe", npb)):
            if "error" in r:
                lines.append(f"| {kind} | {rate or 'flat'} | {name} | error: {r['error'][:80]} |" + " |" * 11)
                continue
            ratio = cpu = diff = None
            if name == "netprobe" and "error" not in ref:
                ratio = r["matched_per_s"] / ref["matched_per_s"] if ref["matched_per_s"] else None
                cpu = r["cpu_s_per_M"] / ref["cpu_s_per_M"] if ref["cpu_s_per_M"] else None
                if r["rtt_p50_us"] is not None:
                    diff = r["rtt_p50_us"] - ref["rtt_p50_us"]
            lines.append("| " + " | ".join([
                kind, str(rate or "flat"), name, fmt(r["matched_per_s"], ",.0f"), fmt(r["loss"], ".0f"),
                fmt(r.get("send_errors", r.get("send_errors_whole_run")), ".0f"), fmt(r["capture_drops"], ".0f"), fmt(r["cpu_s_per_M"], ".1f"), fmt(worker_cpu_per_M(r), ".1f"), fmt(r["rss_mb"], ".1f"),
                fmt(r["rtt_p50_us"], ".1f"), fmt(r["rtt_p99_us"], ".1f"), fmt(ratio, ".2f"), fmt(cpu, ".2f"),
                fmt(diff, "+.1f")]) + " |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="CI smoke run: one rate, ~2 s per run")
    ap.add_argument("--memory", action="store_true", help="also the 10k-target RSS and 100k-target load checks")
    ap.add_argument("--types", default="tcp,icmp,udp")
    ap.add_argument("--rates", default=None, help="comma-separated probes/s, 0 = flat out")
    ap.add_argument("--duration", type=float, default=None, help="seconds measured per run")
    ap.add_argument("--netprobe", default=os.path.join(SOURCE, "build", "netprobe"))
    ap.add_argument("--reference", default=os.path.join(SOURCE, "build", "bench", "reference_prober"))
    ap.add_argument("--probers", default="reference,netprobe", help="which probers to run")
    ap.add_argument("--json", help="also write every figure to this file")
    ap.add_argument("--table-from", help="print the table of a --json file and exit (no lab, no root)")
    args = ap.parse_args()
    if args.table_from:
        with open(args.table_from) as f:
            saved = json.load(f)
        print(table([(r["type"], r["rate"], r["reference"], r["netprobe"]) for r in saved["rows"]]))
        return 0
    if os.geteuid() != 0:
        print("SKIP: needs root (raw sockets, network namespaces)", file=sys.stderr)
        return 77
    for b in (args.netprobe, args.reference):
        if not os.access(b, os.X_OK):
            log(f"{b} is not built")
            return 1
    import netns  # noqa: E402 - after the root check: it installs signal handlers that clean up labs

    rates = [int(x) for x in args.rates.split(",")] if args.rates else ([10_000] if args.quick else
                                                                           [1_000, 10_000, 50_000, 100_000, 0])
    duration = args.duration or (2.0 if args.quick else 10.0)
    kinds = [k for k in args.types.split(",") if k]
    rows, extra = [], {}
    with netns.Lab() as lab, tempfile.TemporaryDirectory(prefix="e2e-rate-") as tmp:
        os.chmod(tmp, 0o755)  # netprobe reads its configuration as an unprivileged user
        p, _, targets = build_lab(lab, netns)
        scraper = NsThread(p)
        for kind in kinds:
            for rate in rates:
                ref = npb = {"error": "not run"}
                if "reference" in args.probers:
                    ref = run_reference(args.reference, p, netns, kind, rate, duration)
                    log(kind, rate or "flat", "reference", json.dumps(ref))
                if "netprobe" in args.probers:
                    npb = run_netprobe(lab, netns, scraper, args.netprobe, p, targets, kind, rate, duration, tmp)
                    log(kind, rate or "flat", "netprobe", json.dumps(npb))
                rows.append((kind, rate, ref, npb))
        if args.memory:
            extra["memory_10k_targets"] = memory_check(lab, scraper, args.netprobe, p, tmp)
            log("memory", json.dumps(extra["memory_10k_targets"]))
            extra["check_config_100k_targets"] = check_config_time(args.netprobe, tmp)
            log("check-config", json.dumps(extra["check_config_100k_targets"]))
    print(table(rows))
    for k, v in extra.items():
        print(f"{k}: {json.dumps(v)}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"rows": [dict(type=k, rate=r, reference=a, netprobe=b) for k, r, a, b in rows], **extra}, f,
                      indent=1)
    broken = [r for row in rows for r in row[2:] if "error" in r and r["error"] != "not run"] + [v for v in extra.values() if "error" in v]
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
