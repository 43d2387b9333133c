#!/usr/bin/env python3
"""Confinement of a running netprobe started as root (issue 10, defect 8; docs/architecture.md#confinement),
and the cost of its whole process tree. Scenarios (argv[1]):

  confined      nb_proc 2 in a prober namespace, with an inventory plug-in: every process (supervisor,
                launcher, workers, the plug-in) runs with a non-zero uid, no supplementary group, NoNewPrivs 1
                and Seccomp 2; CAP_NET_RAW is in the launcher only; the launcher's and workers' root is an
                empty directory (no /etc/shadow there); the plug-in, which runs with the supervisor's
                credentials and filter, can neither read /etc/shadow nor write in /etc; probing still
                works end to end (static and plug-in targets answered, no loss) and /metrics is served;
                netprobe_process_* have one series per live process, and follow a worker's restart
  bad_user      `--user root`, `--user nosuchuser` and `--user ''` exit 64 (EX_USAGE) before starting anything
  ambient       started as uid 65534 with an ambient CAP_NET_RAW (packaging/netprobe.service's way): it stays that
                user, the launcher alone keeps CAP_NET_RAW, every process has NoNewPrivs 1 and Seccomp 2
  default       `make run`'s configuration (config/default.yaml, in a namespace of its own so that its port
                8000 is free): every loopback target answered, every process non-root
"""
import os
import shutil
import signal
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import netns  # noqa: E402
import test_supervisor as sup  # noqa: E402  (its lab, Prober and /proc helpers)

CAP_NET_RAW = 1 << 13

# Runs with the supervisor's credentials and seccomp filter (inherited): reports what it could do in the
# hostname of the one target it contributes (plug-in output is logged, the target name is in /metrics).
PLUGIN = """#!/bin/sh
if cat /etc/shadow >/dev/null 2>&1; then shadow=readable; else shadow=denied; fi
if touch /etc/netprobe-sandbox-probe 2>/dev/null; then etc=writable; rm -f /etc/netprobe-sandbox-probe; \
else etc=readonly; fi
uid=$(id -u)
nnp=$(awk '/^NoNewPrivs:/ {print $2}' /proc/self/status)
sec=$(awk '/^Seccomp:/ {print $2}' /proc/self/status)
printf '{"targets": [{"hostname": "uid%s-nnp%s-seccomp%s-shadow-%s-etc-%s", "destination": "%s", \
"type": "ICMPping", "groups": ["lab"], "timeout": 1, "nb_packets": 5}]}\\n---\\n' \
  "$uid" "$nnp" "$sec" "$shadow" "$etc" "@DST@"
exec sleep 600
"""


def status(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k] = v.strip()
    return out


def comm(pid):
    with open(f"/proc/{pid}/comm") as f:
        return f.read().strip()


def launcher_of(supervisor):
    found = [c for c in sup.children(supervisor) if comm(c) == "netprobe-launch"]
    assert len(found) == 1, f"the supervisor must have exactly one launcher child, has {found}"
    return found[0]


def assert_confined(pid, what, net_raw=False):
    s = status(pid)
    uids = [int(x) for x in s["Uid"].split()]
    gids = [int(x) for x in s["Gid"].split()]
    assert all(u != 0 for u in uids), f"{what} (pid {pid}) runs with uid {uids}: root stays root"
    assert all(g != 0 for g in gids), f"{what} (pid {pid}) runs with gid {gids}"
    assert s.get("Groups", "") == "", f"{what} (pid {pid}) keeps supplementary groups {s['Groups']!r}"
    assert s["NoNewPrivs"] == "1", f"{what} (pid {pid}): NoNewPrivs {s['NoNewPrivs']}"
    assert s["Seccomp"] == "2", f"{what} (pid {pid}): Seccomp {s['Seccomp']} (2 = filter)"
    caps = sup.caps(pid)
    want = CAP_NET_RAW if net_raw else 0
    assert caps == {"CapEff": want, "CapPrm": want}, f"{what} (pid {pid}) capabilities {caps}"
    return uids[0]


def assert_empty_root(pid, what):
    root = f"/proc/{pid}/root"
    entries = os.listdir(root)
    assert entries == [], f"{what} (pid {pid}) sees {sorted(entries)[:10]} at its root, expected an empty one"
    assert not os.path.exists(f"{root}/etc/shadow"), f"{what} (pid {pid}) can reach /etc/shadow"


def series_keys(metrics, family):
    """{(process, worker)} of a netprobe_process_* family."""
    keys = set()
    for name, labels in metrics:
        if name == family:
            d = dict(labels)
            keys.add((d.get("process"), d.get("worker")))
    return keys


def scenario_confined(lab, p, t):
    inv = harness.tmpdir("netprobe-sandbox-inv-")
    plugin = os.path.join(inv, "probe")
    with open(plugin, "w") as f:
        f.write(PLUGIN.replace("@DST@", sup.T4))
    os.chmod(plugin, 0o755)
    targets = {"live_icmp": ("ICMPping", sup.T4, None), "live_tcp": ("TCPsyn", sup.T4, sup.OPEN_PORT),
               "live_udp": ("UDPunreachable", sup.T4, sup.UDP_PORT)}
    pr = sup.Prober(lab, p, targets, nb_proc=2, extra_global={"inventory_dir": inv})

    def plugin_target(m):
        names = {dict(ls).get("destination") for (n, ls) in m if n == "icmp_sent_total"}
        return next((n for n in names if n and n.startswith("probe_")), None)

    m = pr.wait(lambda m: all((sup.sent(m, n, tt[0]) or 0) >= sup.NB_PACKETS for n, tt in targets.items())
                and plugin_target(m) and (harness.value(m, "icmp_sent_total", destination=plugin_target(m)) or 0) > 0,
                40, "static and plug-in targets probed")

    # What the plug-in (the supervisor's credentials and filter) could do.
    name = plugin_target(m)
    print(f"  plug-in reports: {name}")
    assert "-shadow-denied" in name, f"a plug-in of the supervisor read /etc/shadow: {name}"
    assert "-etc-readonly" in name, f"a plug-in of the supervisor wrote in /etc: {name}"
    assert "-nnp1-" in name and "-seccomp2-" in name, f"a plug-in is not confined: {name}"
    assert not name.startswith("probe_uid0-"), f"a plug-in runs as root: {name}"

    # Every process: user, no-new-privs, seccomp, capabilities; launcher and workers: an empty root.
    supervisor = pr.proc.pid
    launcher = launcher_of(supervisor)
    workers = sup.children(launcher)
    assert len(workers) == 2, f"nb_proc 2 must give 2 workers, got {workers}"
    uid = assert_confined(supervisor, "supervisor")
    assert assert_confined(launcher, "launcher", net_raw=True) == uid
    assert_empty_root(launcher, "launcher")
    for w in workers:
        assert assert_confined(w, "worker") == uid
        assert_empty_root(w, "worker")
    plugins = [c for c in sup.children(supervisor) if c != launcher]
    assert plugins, "the inventory plug-in is not running"
    for c in plugins:
        assert_confined(c, "inventory plug-in")
    assert os.listdir(f"/proc/{supervisor}/root"), "the supervisor keeps the host's filesystem (configuration, plug-ins)"
    print(f"  uid {uid}: supervisor {supervisor}, launcher {launcher}, workers {workers}, plug-ins {plugins}")

    # End to end: answers matched, no loss, /metrics served.
    prefix = sup.PREFIX
    for n, (type_, _, _) in targets.items():
        assert harness.value(m, f"{prefix[type_]}_loss_total", destination=n) == 0, f"{n}: loss"

    # The cost of the whole tree: one series per live process, in both families.
    want = {("supervisor", None), ("launcher", None), ("worker", "0"), ("worker", "1")}
    for family in ("netprobe_process_cpu_seconds_total", "netprobe_process_resident_memory_bytes"):
        got = series_keys(m, family)
        assert got == want, f"{family}: {sorted(got, key=str)}, expected {sorted(want, key=str)}"
    for w in ("0", "1"):
        rss = harness.value(m, "netprobe_process_resident_memory_bytes", process="worker", worker=w)
        assert rss and rss > 1 << 20, f"worker {w} resident memory {rss}"
    assert harness.value(m, "process_cpu_seconds_total") is not None, "the standard process_* family is gone"

    # A killed worker is replaced; its series follows the new process.
    victim = workers[0]
    os.kill(victim, signal.SIGKILL)
    harness.wait_until(lambda: len(sup.children(launcher)) == 2 and victim not in sup.children(launcher), 20,
                       "the worker restarted")
    # A new worker holds CAP_NET_RAW until its sockets are open: wait for that before checking it.
    harness.wait_until(lambda: all(sup.caps(w)["CapEff"] == 0 for w in sup.children(launcher)), 20,
                       "the new worker's sockets open")
    for w in sup.children(launcher):
        assert_confined(w, "restarted worker")
        assert_empty_root(w, "restarted worker")
    pr.wait(lambda m: series_keys(m, "netprobe_process_cpu_seconds_total") == want, 20,
            "one series per live process after the restart")
    rc = harness.stop_process(pr.proc)
    assert rc == 0, f"exit code {rc}"


def scenario_bad_user():
    binary = harness.netprobe_bin()
    cfg = harness.write_config(sup.config_text({"x": ("ICMPping", "127.0.0.1", None)}))
    for user, reason in (("root", "refusing to run as root"), ("nosuchuser", "no such user"),
                         ("", "needs a user name")):
        p = subprocess.run([binary, "run", "--user", user, cfg], capture_output=True, text=True, timeout=20)
        out = p.stdout + p.stderr
        print(f"  --user {user!r}: exit {p.returncode}: {out.strip()}")
        assert p.returncode == 64, f"--user {user!r}: exit code {p.returncode}, expected 64 (EX_USAGE)"
        assert reason in out, f"--user {user!r}: the message does not say {reason!r}: {out!r}"


def scenario_default(lab):
    ns = lab.ns("d")
    config = os.path.join(harness.SOURCE_DIR, "config", "default.yaml")
    log_path = os.path.join(harness.tmpdir(), "netprobe.log")
    logf = open(log_path, "w")
    proc = lab.popen(ns, [harness.netprobe_bin(), "run", config], stdout=logf, stderr=logf)

    def log():
        with open(log_path) as f:
            return f.read()[-4000:]

    def scrape():
        if proc.poll() is not None:
            raise AssertionError(f"netprobe exited with {proc.returncode}:\n{log()}")
        text = netns.sh("curl", "-sf", "http://127.0.0.1:8000/metrics", ns=ns, capture=True, check=False)
        return harness.parse_metrics(text) if text else []

    names = {"loopback_tcp": "tcpsyn", "loopback_icmp": "icmp", "loopback_udp": "udp_unreachable"}
    holder = {}

    def answered():
        holder["m"] = m = scrape()
        return all((harness.value(m, f"{p}_sent_total", destination=n) or 0) > 0 for n, p in names.items())
    try:
        harness.wait_until(answered, 40, "every default target probed")  # interval 10 s: the first iteration
    except harness.WaitTimeout as e:
        raise AssertionError(f"{e}\n{log()}")
    m = holder["m"]
    for n, p in names.items():
        assert harness.value(m, f"{p}_loss_total", destination=n) == 0, f"{n}: loss\n{log()}"
    launcher = sup.children(proc.pid)
    assert len(launcher) == 1, launcher
    for pid in [proc.pid] + launcher + sup.children(launcher[0]):
        assert_confined(pid, f"process {pid}", net_raw=(pid == launcher[0]))


def scenario_ambient(lab, p, t):
    """As under packaging/netprobe.service: started as an unprivileged user with an ambient CAP_NET_RAW."""
    setpriv = shutil.which("setpriv")
    if not setpriv:
        harness.skip("setpriv is not installed")
    d = harness.tmpdir("netprobe-ambient-")
    binary = os.path.join(d, "netprobe")
    shutil.copy(harness.netprobe_bin(), binary)
    os.chmod(binary, 0o755)
    targets = {"live_icmp": ("ICMPping", sup.T4, None), "live_tcp": ("TCPsyn", sup.T4, sup.OPEN_PORT)}
    cfg = harness.write_config(sup.config_text(targets, nb_proc=2), d)
    logf = open(os.path.join(d, "netprobe.log"), "w")
    proc = lab.popen(p, [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=+net_raw",
                         "--ambient-caps=+net_raw", binary, "run", cfg], stdout=logf, stderr=logf)

    def scrape():
        if proc.poll() is not None:
            raise AssertionError(f"netprobe exited with {proc.returncode}:\n{open(logf.name).read()[-4000:]}")
        text = netns.sh("curl", "-sf", f"http://127.0.0.1:{sup.PORT}/metrics", ns=p, capture=True, check=False)
        return harness.parse_metrics(text) if text else {}
    harness.wait_until(lambda: all((sup.sent(scrape(), n, tt[0]) or 0) >= sup.NB_PACKETS for n, tt in targets.items()),
                       40, "every target probed")
    m = scrape()
    for n, (type_, _, _) in targets.items():
        assert harness.value(m, f"{sup.PREFIX[type_]}_loss_total", destination=n) == 0, f"{n}: loss"
    launcher = launcher_of(proc.pid)
    assert assert_confined(proc.pid, "supervisor") == 65534
    assert assert_confined(launcher, "launcher", net_raw=True) == 65534
    for w in sup.children(launcher):
        assert assert_confined(w, "worker") == 65534
    assert status(launcher)["CapAmb"] == "0000000000000000", "the launcher keeps an ambient capability"


def run(scenario):
    if scenario == "bad_user":
        scenario_bad_user()
    else:
        harness.require_root()
        with netns.Lab() as lab:
            if scenario == "confined":
                p, t = sup.build_lab(lab)
                scenario_confined(lab, p, t)
            elif scenario == "ambient":
                p, t = sup.build_lab(lab)
                scenario_ambient(lab, p, t)
            elif scenario == "default":
                scenario_default(lab)
            else:
                raise SystemExit(f"unknown scenario {scenario}")
    print(f"{scenario}: ok")


if __name__ == "__main__":
    harness.main(lambda: run(sys.argv[1]))
