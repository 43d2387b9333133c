#!/usr/bin/env python3
"""Multiprocess engine end to end (issue 4): the real netprobe in a prober namespace probes a target namespace
with nb_proc: 4. Scenarios (argv[1]):

  processes     a supervisor, one launcher (its only child) and four workers (the launcher's children);
                CapEff/CapPrm are 0 in the supervisor and the workers, CAP_NET_RAW only in the launcher;
                the shards logged by the supervisor are the rendezvous assignment recomputed here
  kill_worker   SIGKILL one worker mid-iteration: it is restarted (app_worker_restarts_total +1), every
                *_sent_total keeps growing and never decreases, the other workers' targets keep their pace
  reload        SIGHUP with a valid changed config (a target removed, one added, nb_proc 4 -> 2): the new
                target is probed, every series of the removed one disappears, counters of the others go on
  bad_reload    SIGHUP with a broken config: old targets keep being probed, app_reload_conf_failed_status 1,
                every error logged; a good reload sets it back to 0
  shutdown      SIGTERM: supervisor, launcher and workers all gone within 1 s, exit code 0, no half-open
                connection left on the target
  unprivileged  `netprobe run` as an unprivileged user prints how to grant CAP_NET_RAW and exits 77
  rtt_histogram global.rtt_histogram: per_group by default (no destination label, the sum of the group's
                targets; veth RTTs spread over the low buckets), then SIGHUP to per_target, none and back: each
                time the old choice's series disappear and the new ones appear
"""
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
import harness  # noqa: E402
import netns  # noqa: E402

P4, T4, HOLE4 = "198.19.0.1", "198.19.0.2", "198.19.0.99"
OPEN_PORT, UDP_PORT = 8080, 33434
PORT = 9101
NB_PACKETS = 20
PREFIX = {"TCPsyn": "tcpsyn", "ICMPping": "icmp", "UDPunreachable": "udp_unreachable"}
CAP_NET_RAW = 1 << 13

LISTENER = """
import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.bind(("0.0.0.0", %d)); s.listen(4096)
time.sleep(600)
""" % OPEN_PORT

# --------------------------------------------------------------------------------------------------
# Rendezvous hashing, recomputed independently of the C++ (src/worker/sharding.cpp)

M64 = (1 << 64) - 1


def _fnv1a(s):
    h = 0xcbf29ce484222325
    for b in s.encode():
        h = ((h ^ b) * 0x100000001b3) & M64
    return h


def _splitmix(x):
    x = (x + 0x9e3779b97f4a7c15) & M64
    x = ((x ^ (x >> 30)) * 0xbf58476d1ce4e5b9) & M64
    x = ((x ^ (x >> 27)) * 0x94d049bb133111eb) & M64
    return x ^ (x >> 31)


def worker_for(name, nb):
    scores = [_splitmix(_fnv1a(name) ^ _splitmix(k + 1)) for k in range(nb)]
    return max(range(nb), key=lambda k: (scores[k], -k))


def pick_targets(nb, per_worker, prefix):
    """Names such that every worker gets `per_worker` of them (so that every worker is busy)."""
    out = {k: [] for k in range(nb)}
    i = 0
    while any(len(v) < per_worker for v in out.values()) and i < 10000:
        name = f"{prefix}{i}"
        k = worker_for(name, nb)
        if len(out[k]) < per_worker:
            out[k].append(name)
        i += 1
    return out


# Two targets per worker: one that answers (type cycled) and one blackhole that never does, so that every
# worker's iteration lasts send window + timeout, i.e. most of the interval: a kill lands mid-iteration.
def make_targets(nb=4):
    targets = {}
    kinds = [("TCPsyn", OPEN_PORT), ("ICMPping", None), ("UDPunreachable", UDP_PORT), ("TCPsyn", OPEN_PORT)]
    for k, names in pick_targets(nb, 1, "live").items():
        t, port = kinds[k % len(kinds)]
        targets[names[0]] = (t, T4, port)
    for k, names in pick_targets(nb, 1, "hole").items():
        targets[names[0]] = ("ICMPping", HOLE4, None)
    return targets


def config_text(targets, nb_proc=4, interval=2, extra_global=None):
    lines = ["global:", "  probe_name: sup", f"  interval: {interval}", f"  nb_proc: {nb_proc}",
             "  logging_level: INFO", f"  prometheus_port: {PORT}", "  prometheus_address: 127.0.0.1",
             "  dns_update_interval: 300"]
    lines += [f"  {k}: {v}" for k, v in (extra_global or {}).items()]
    lines += ["groups:", "  lab:", "    src_port_a: 65000", "    src_port_z: 65009", "targets:"]
    for name, (type_, dst, port) in sorted(targets.items()):
        lines += [f"  {name}:", f"    type: {type_}", f"    destination: \"{dst}\"", f"    nb_packets: {NB_PACKETS}",
                  "    timeout: 1"]
        if port:
            lines.append(f"    dst_port: {port}")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------------
# Processes

def children(pid):
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid and fields[0] != "Z":
                out.append(int(entry))
        except (OSError, IndexError, ValueError):
            pass
    return sorted(out)


def caps(pid):
    values = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(("CapEff:", "CapPrm:")):
                k, v = line.split(":")
                values[k] = int(v.strip(), 16)
    return values


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


class Prober:
    def __init__(self, lab, ns, targets, **cfg):
        self.lab, self.ns = lab, ns
        self.dir = tempfile.mkdtemp(prefix="netprobe-sup-")
        os.chmod(self.dir, 0o755)  # netprobe reads its configuration as an unprivileged user
        self.path = os.path.join(self.dir, "netprobe.yaml")
        self.write(config_text(targets, **cfg))
        self.log_path = os.path.join(self.dir, "netprobe.log")
        self.logf = open(self.log_path, "w")
        self.proc = lab.popen(ns, [harness.netprobe_bin(), "run", self.path], stdout=self.logf, stderr=self.logf)

    def write(self, text):
        with open(self.path + ".tmp", "w") as f:
            f.write(text)
        os.replace(self.path + ".tmp", self.path)

    def log(self):
        with open(self.log_path) as f:
            return f.read()

    def scrape(self):
        if self.proc.poll() is not None:
            raise AssertionError(f"netprobe exited with {self.proc.returncode}:\n{self.log()[-4000:]}")
        text = netns.sh("curl", "-sf", f"http://127.0.0.1:{PORT}/metrics", ns=self.ns, capture=True, check=False)
        if not text:
            raise AssertionError("no /metrics answer")
        return harness.parse_metrics(text)

    def wait(self, predicate, timeout_s, what):
        holder = {}

        def check():
            holder["m"] = self.scrape()
            return predicate(holder["m"])
        try:
            harness.wait_until(check, timeout_s, what, interval_s=0.2)
        except harness.WaitTimeout as e:
            raise AssertionError(f"{e}\n--- netprobe log ---\n{self.log()[-4000:]}")
        return holder["m"]

    def launcher(self):
        kids = children(self.proc.pid)
        assert len(kids) == 1, f"the supervisor must have exactly one child (the launcher), has {kids}"
        return kids[0]

    def workers(self):
        return children(self.launcher())

    def shards(self):
        """Latest logged shard of each worker: {index: (pid, [targets])}."""
        out = {}
        for m in re.finditer(r"shard worker=(\d+) pid=(-?\d+) generation=(\d+) targets=(\S*)", self.log()):
            out[int(m.group(1))] = (int(m.group(2)), [t for t in m.group(4).split(",") if t])
        return out


def sent(metrics, name, type_):
    return harness.value(metrics, f"{PREFIX[type_]}_sent_total", destination=name)


def all_sent(metrics, targets):
    return {n: sent(metrics, n, t[0]) for n, t in targets.items()}


def build_lab(lab):
    p, t = lab.ns("p"), lab.ns("t")
    ifp, _ = lab.link(p, t, [f"{P4}/24"], [f"{T4}/24"])
    netns.sh("ip", "neigh", "add", HOLE4, "lladdr", "02:00:00:00:00:99", "dev", ifp, "nud", "permanent", ns=p)
    lab.popen(t, ["python3", "-c", LISTENER])
    harness.wait_until(lambda: f":{OPEN_PORT} " in netns.sh("ss", "-ltnH", ns=t, capture=True), 10, "the listener")
    return p, t


def wait_running(prober, targets, iterations=1):
    return prober.wait(lambda m: all((v or 0) >= iterations * NB_PACKETS for v in all_sent(m, targets).values()),
                       40, f"{iterations} iteration(s) of every target")


# --------------------------------------------------------------------------------------------------
# Scenarios

def scenario_processes(lab, p, t):
    targets = make_targets()
    pr = Prober(lab, p, targets)
    wait_running(pr, targets)
    sup = pr.proc.pid
    launcher = pr.launcher()
    workers = pr.workers()
    print(f"  supervisor {sup}, launcher {launcher}, workers {workers}")
    assert len(workers) == 4, f"nb_proc 4 must give 4 workers, got {workers}"
    c = caps(sup)
    assert c == {"CapEff": 0, "CapPrm": 0}, f"supervisor capabilities: {c}"
    c = caps(launcher)
    assert c == {"CapEff": CAP_NET_RAW, "CapPrm": CAP_NET_RAW}, f"launcher must keep CAP_NET_RAW only: {c}"
    for w in workers:
        c = caps(w)
        assert c == {"CapEff": 0, "CapPrm": 0}, f"worker {w} capabilities: {c}"
    shards = pr.shards()
    assert sorted(shards) == [0, 1, 2, 3], shards
    for k, (pid, names) in shards.items():
        assert pid in workers, f"worker {k} pid {pid} is not a child of the launcher {workers}"
        assert sorted(names) == sorted(n for n in targets if worker_for(n, 4) == k), \
            f"worker {k}: {names} is not the rendezvous assignment"


def scenario_kill_worker(lab, p, t):
    targets = make_targets()
    pr = Prober(lab, p, targets)
    wait_running(pr, targets, 2)
    shards = pr.shards()
    victim, (victim_pid, victim_targets) = next((k, v) for k, v in sorted(shards.items()) if v[1])
    others = [n for n in targets if n not in victim_targets]
    probe = victim_targets[0]
    # Mid-iteration: just after one of its iterations was reported, the next one starts within
    # interval - duration; iterations last about 1.3 s of the 2 s interval (blackhole + 1 s timeout).
    before = sent(pr.scrape(), probe, targets[probe][0])
    pr.wait(lambda m: sent(m, probe, targets[probe][0]) > before, 10, f"an iteration of {probe}")
    time.sleep(0.9)
    m0 = pr.scrape()
    base = all_sent(m0, targets)
    restarts0 = harness.value(m0, "app_worker_restarts_total", probe_name="sup")
    os.kill(victim_pid, signal.SIGKILL)
    t_kill = time.monotonic()
    print(f"  killed worker {victim} (pid {victim_pid}) probing {victim_targets}")

    last = dict(base)
    samples = 0
    while time.monotonic() - t_kill < 7:
        m = pr.scrape()
        cur = all_sent(m, targets)
        for n, v in cur.items():
            assert v is not None and v >= last[n], f"{n}: sent_total went from {last[n]} to {v}"
        last = cur
        samples += 1
        time.sleep(0.25)
    m = pr.scrape()
    restarts = harness.value(m, "app_worker_restarts_total", probe_name="sup")
    assert restarts == restarts0 + 1, f"app_worker_restarts_total {restarts0} -> {restarts}"
    log = pr.log()
    assert re.search(rf"worker {victim} \(pid {victim_pid}\) died: killed by signal 9", log), log[-3000:]
    workers = pr.workers()
    assert len(workers) == 4 and victim_pid not in workers, f"workers after restart: {workers}"
    # 7 s at a 2 s interval: at least 3 complete iterations for every undisturbed target.
    for n in others:
        grown = (last[n] - base[n]) / NB_PACKETS
        assert grown >= 3, f"{n} (another worker) ran {grown} iterations in 7 s after the kill: disturbed"
        if targets[n][1] == T4:
            assert harness.value(m, f"{PREFIX[targets[n][0]]}_loss_ratio", destination=n) == 0.0, n
    # The victim's targets resumed after the restart (1 s backoff).
    for n in victim_targets:
        assert last[n] > base[n], f"{n} did not resume after the restart: {base[n]} -> {last[n]}"
    print(f"  {samples} scrapes, counters monotonic, restart counted, other workers undisturbed")


def scenario_stopped_worker(lab, p, t):
    """A worker that stops making progress (SIGSTOP) with netprobify's default global.timeout (3600 s) is
    noticed within seconds by its missing heartbeat: logged, counted, killed and restarted, and its targets'
    gauges go stale (absent) instead of freezing, while their counters never go backwards."""
    targets = make_targets()
    pr = Prober(lab, p, targets, extra_global={"timeout": 3600})
    wait_running(pr, targets, 2)
    victim, (victim_pid, victim_targets) = next((k, v) for k, v in sorted(pr.shards().items()) if v[1])
    probe = victim_targets[0]
    kind = PREFIX[targets[probe][0]]
    m0 = pr.scrape()
    timed_out0 = harness.value(m0, "app_process_timed_out_total", probe_name="sup") or 0
    restarts0 = harness.value(m0, "app_worker_restarts_total", probe_name="sup")
    sent0 = sent(m0, probe, targets[probe][0])
    os.kill(victim_pid, signal.SIGSTOP)
    t_stop = time.monotonic()
    print(f"  stopped worker {victim} (pid {victim_pid}) probing {victim_targets}")
    try:
        m = pr.wait(lambda m: (harness.value(m, "app_process_timed_out_total", probe_name="sup") or 0) > timed_out0,
                    15, "the stalled worker to be noticed")
        noticed = time.monotonic() - t_stop
        assert noticed < 9, f"noticed after {noticed:.1f} s"
        assert harness.value(m, f"{kind}_loss_ratio", destination=probe) is None, \
            f"{probe}: loss ratio still exported while its worker is stalled"
        assert sent(m, probe, targets[probe][0]) >= sent0, "a counter went backwards"
        log = pr.log()
        assert re.search(rf"worker {victim} \(pid {victim_pid}\): silent for [0-9.]+ s", log), log[-3000:]
        # Restarted, and measuring again.
        m = pr.wait(lambda m: harness.value(m, f"{kind}_loss_ratio", destination=probe) is not None,
                    20, f"{probe} measured again after the restart")
        assert harness.value(m, "app_worker_restarts_total", probe_name="sup") == restarts0 + 1
        assert victim_pid not in pr.workers()
        print(f"  noticed after {noticed:.1f} s, restarted, {probe} measured again")
    finally:
        try:
            os.kill(victim_pid, signal.SIGCONT)
        except ProcessLookupError:
            pass


def scenario_reload(lab, p, t):
    targets = make_targets()
    pr = Prober(lab, p, targets)
    wait_running(pr, targets)
    removed = sorted(targets)[0]
    kept = {n: v for n, v in targets.items() if n != removed}
    added = "added_target"
    new_targets = dict(kept)
    new_targets[added] = ("ICMPping", T4, None)
    base = all_sent(pr.scrape(), kept)
    pr.write(config_text(new_targets, nb_proc=2))
    os.kill(pr.proc.pid, signal.SIGHUP)

    def done(m):
        gone = not any(dict(labels).get("destination") == removed for (name, labels) in m)
        return gone and (sent(m, added, "ICMPping") or 0) >= NB_PACKETS and len(pr.workers()) == 2
    m = pr.wait(done, 30, f"{added} probed, every series of {removed} gone, 2 workers")
    for n, v in all_sent(m, kept).items():
        assert v >= base[n], f"{n}: counter went backwards over the reload ({base[n]} -> {v})"
    assert harness.value(m, "app_reload_conf_failed_status", probe_name="sup") == 0
    m = pr.wait(lambda m: all(all_sent(m, kept)[n] > base[n] for n in kept), 20, "every kept target probed again")
    workers = pr.workers()
    shards = pr.shards()
    for k, (pid, names) in shards.items():
        if k < 2:
            assert sorted(names) == sorted(n for n in new_targets if worker_for(n, 2) == k), (k, names)
    print(f"  removed {removed}, added {added}, workers now {workers}")


def rtt_series(m):
    """The *_rtt_seconds samples: [(name, labels dict, value)]."""
    return [(n, dict(ls), v) for (n, ls), v in m.items() if "_rtt_seconds_" in n]


def scenario_rtt_histogram(lab, p, t):
    targets = make_targets()
    live_tcp = [n for n, (type_, dst, _) in targets.items() if type_ == "TCPsyn" and dst == T4]
    pr = Prober(lab, p, targets)
    wait_running(pr, targets)

    def answered(m):
        return sum(sent(m, n, "TCPsyn") - harness.value(m, "tcpsyn_loss_total", destination=n) for n in live_tcp)

    # Default per_group: one histogram per (type, family, group), the sum of its targets' answered probes.
    m = pr.wait(lambda m: harness.value(m, "tcpsyn_rtt_seconds_count", group="lab") == answered(m) > 0, 15,
                "the TCPsyn group histogram equal to its targets' answered probes")
    for name, labels, _ in rtt_series(m):
        assert "destination" not in labels and "state" not in labels, (name, labels)
        assert labels["group"] == "lab" and labels["probe_name"] == "sup", (name, labels)
    count = harness.value(m, "tcpsyn_rtt_seconds_count", group="lab")
    buckets = sorted((float(labels["le"]), v) for name, labels, v in rtt_series(m)
                     if name == "tcpsyn_rtt_seconds_bucket")
    print(f"  per_group: {len(rtt_series(m))} histogram lines; veth TCPsyn RTTs, cumulative: "
          + ", ".join(f"<={le:g}: {int(v)}" for le, v in buckets[:8]))
    assert buckets[0][1] < count, f"every RTT in the first bucket (<= {buckets[0][0]}): {buckets}"

    def switch(extra, what, predicate):
        pr.write(config_text(targets, extra_global=extra))
        os.kill(pr.proc.pid, signal.SIGHUP)
        return pr.wait(predicate, 20, what)

    def per_target(m):
        series = rtt_series(m)
        return series and all("destination" in labels for _, labels, _ in series) and \
            all((harness.value(m, "tcpsyn_rtt_seconds_count", destination=n) or 0) > 0 for n in live_tcp)
    m = switch({"rtt_histogram": "per_target"}, "per-target histograms only", per_target)
    assert harness.value(m, "app_reload_conf_failed_status", probe_name="sup") == 0
    base = all_sent(m, targets)
    m = switch({"rtt_histogram": "none"}, "no histogram", lambda m: not rtt_series(m))
    m = pr.wait(lambda m: not rtt_series(m) and all(all_sent(m, targets)[n] > base[n] for n in targets), 20,
                "every target probed again, still without histogram")
    m = switch({}, "the group histograms back",
               lambda m: rtt_series(m) and all("destination" not in labels for _, labels, _ in rtt_series(m)))
    print("  per_target, none and per_group again after SIGHUP: the old series gone each time")


def scenario_bad_reload(lab, p, t):
    targets = make_targets()
    pr = Prober(lab, p, targets)
    wait_running(pr, targets)
    good = config_text(targets)
    broken = good.replace("type: ICMPping", "type: ICMPpong", 1).replace("nb_proc: 4", "nb_proc: 0")
    pr.write(broken)
    os.kill(pr.proc.pid, signal.SIGHUP)
    m = pr.wait(lambda m: harness.value(m, "app_reload_conf_failed_status", probe_name="sup") == 1, 15,
                "app_reload_conf_failed_status 1")
    base = all_sent(m, targets)
    workers = pr.workers()
    m = pr.wait(lambda m: all(v > base[n] for n, v in all_sent(m, targets).items()), 15,
                "the old targets still probed after the failed reload")
    assert pr.workers() == workers, "a failed reload must not touch the workers"
    log = pr.log()
    assert "reload rejected with 2 error(s)" in log, log[-3000:]
    assert re.search(r"reload config=.*global\.nb_proc", log) and re.search(r"reload config=.*\.type", log), \
        log[-3000:]
    # Still 1 later (until a good reload), then 0 after one.
    time.sleep(2.5)
    assert harness.value(pr.scrape(), "app_reload_conf_failed_status", probe_name="sup") == 1
    pr.write(good)
    os.kill(pr.proc.pid, signal.SIGHUP)
    pr.wait(lambda m: harness.value(m, "app_reload_conf_failed_status", probe_name="sup") == 0, 15,
            "app_reload_conf_failed_status back to 0 after a good reload")


def scenario_shutdown(lab, p, t):
    targets = make_targets()
    pr = Prober(lab, p, targets)
    wait_running(pr, targets, 2)
    sup = pr.proc.pid
    launcher = pr.launcher()
    workers = pr.workers()
    assert len(workers) == 4
    time.sleep(0.7)  # iterations in flight
    t0 = time.monotonic()
    os.kill(sup, signal.SIGTERM)
    rc = pr.proc.wait(timeout=10)
    t_sup = time.monotonic() - t0
    left = [pid for pid in [launcher] + workers if alive(pid)]
    t_all = time.monotonic() - t0
    print(f"  SIGTERM -> supervisor exit {t_sup * 1000:.0f} ms, every process gone by {t_all * 1000:.0f} ms")
    assert rc == 0, f"exit code {rc}\n{pr.log()[-2000:]}"
    assert not left, f"processes left behind: {left}"
    assert t_all < 1.0, f"shutdown took {t_all:.3f} s"
    # The target's half-open connections (our SYNs) were reset by the prober's kernel.
    harness.wait_until(lambda: netns.sh("ss", "-tnH", "state", "syn-recv", ns=t, capture=True).strip() == "", 5,
                       "no SYN-RECV connection left on the target")


def scenario_unprivileged():
    harness.require_root("setpriv to another user needs root")
    setpriv = shutil.which("setpriv")
    if not setpriv:
        harness.skip("setpriv is not installed")
    d = tempfile.mkdtemp(prefix="netprobe-unpriv-")
    try:
        os.chmod(d, 0o755)
        binary = os.path.join(d, "netprobe")
        shutil.copy(harness.netprobe_bin(), binary)
        os.chmod(binary, 0o755)
        cfg = os.path.join(d, "netprobe.yaml")
        with open(cfg, "w") as f:
            f.write(config_text({"x": ("ICMPping", "127.0.0.1", None)}))
        os.chmod(cfg, 0o644)
        p = subprocess.run([setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all",
                            binary, "run", cfg], capture_output=True, text=True, timeout=20)
        out = p.stdout + p.stderr
        print(out)
        assert p.returncode == 77, f"exit code {p.returncode}, expected 77 (EX_NOPERM)"
        for needle in ("CAP_NET_RAW", "root", f"setcap cap_net_raw+ep {binary}", "AmbientCapabilities=CAP_NET_RAW"):
            assert needle in out, f"missing {needle!r} in the message"
    finally:
        shutil.rmtree(d, ignore_errors=True)


def run(scenario):
    if scenario == "unprivileged":
        scenario_unprivileged()
        print(f"{scenario}: ok")
        return
    harness.require_root()
    fn = {"processes": scenario_processes, "kill_worker": scenario_kill_worker, "reload": scenario_reload,
          "bad_reload": scenario_bad_reload, "shutdown": scenario_shutdown,
          "stopped_worker": scenario_stopped_worker, "rtt_histogram": scenario_rtt_histogram}[scenario]
    with netns.Lab() as lab:
        p, t = build_lab(lab)
        fn(lab, p, t)
    print(f"{scenario}: ok")


if __name__ == "__main__":
    harness.main(lambda: run(sys.argv[1]))
