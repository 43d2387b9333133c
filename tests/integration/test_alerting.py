#!/usr/bin/env python3
"""Target state with hysteresis and the shipped alerting rules, end to end (docs/alerting.md).

Scenarios (argv[1]):

  hysteresis  netprobe in a prober namespace pings a target namespace every second (health: failing after 3
              consecutive failed iterations, passing after 2 passed ones). nftables in the target drops every
              packet from the prober: netprobe_target_failing goes to 1 exactly when the third consecutive
              failed iteration is counted, never before; a worker killed meanwhile does not reset it; once the
              drop is removed it goes back to 0 exactly at the second consecutive passed iteration.
  outage      two netprobe instances (probe_name site_a and site_b, one source address each) ping the same
              target, scraped every second by a real Prometheus loaded with mixin/rules/netprobe.rules.yaml.
              nftables drops site_a's probes only: NetprobeTargetFailing fires for site_a and
              NetprobeGlobalOutage (site_threshold 2) does not; then site_b's too: NetprobeGlobalOutage
              appears in /api/v1/alerts.

Every wait is bounded; the namespaces and processes are removed on any exit (netns.Lab, harness).
"""
import json
import os
import sys
import tempfile
import time
import urllib.parse

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import harness  # noqa: E402
import netns  # noqa: E402

P4, PB4, T4 = "198.18.7.1", "198.18.7.3", "198.18.7.2"
PROMETHEUS = os.environ.get("PROMETHEUS_BIN", "/usr/bin/prometheus")
RULES = os.path.join(os.environ.get("NETPROBE_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", "..")),
                     "mixin", "rules", "netprobe.rules.yaml")
FAILING, PASSING = 3, 2


def config(port, probe_name, source, src_port, failing=FAILING, passing=PASSING):
    return {
        "global": {
            "probe_name": probe_name, "interval": 1, "nb_proc": 1, "logging_level": "INFO",
            "prometheus_port": port, "prometheus_address": "127.0.0.1", "dns_update_interval": 300,
            "health": {"fail_if": {"loss_ratio_above": 0.5}, "failing_threshold": failing,
                       "passing_threshold": passing, "site_threshold": 2},
        },
        "groups": {"g": {"src_ipv4": source, "src_port_a": src_port, "src_port_z": src_port + 3}},
        "targets": {"web": {"type": "ICMPping", "destination": T4, "nb_packets": 4, "timeout": 0.3}},
    }


def nft(ns, text):
    with tempfile.NamedTemporaryFile("w", suffix=".nft", delete=False) as fh:
        fh.write(text)
    try:
        netns.sh("nft", "-f", fh.name, ns=ns)
    finally:
        os.unlink(fh.name)


def drop_from(ns, sources):
    rules = "".join(f"    ip saddr {s} drop\n" for s in sources)
    nft(ns, "table inet alerting_it\ndelete table inet alerting_it\n"
            f"table inet alerting_it {{\n  chain input {{\n    type filter hook input priority 0;\n{rules}  }}\n}}\n")


def undrop(ns):
    nft(ns, "table inet alerting_it\ndelete table inet alerting_it\n")


def start_netprobe(lab, ns, work, cfg, name):
    path = os.path.join(work, f"{name}.yaml")
    with open(path, "w") as fh:
        json.dump(cfg, fh)
    log = open(os.path.join(work, f"{name}.log"), "w+")
    proc = lab.popen(ns, [harness.netprobe_bin(), "run", path], stdout=log, stderr=log)
    return proc, log


def scraper(ns, port):
    def scrape():
        text = netns.sh("curl", "-sf", f"http://127.0.0.1:{port}/metrics", ns=ns, capture=True, check=False)
        return harness.parse_metrics(text or "")
    return scrape


def health(samples):
    """(failing, consecutive failures, consecutive successes, changes) of target web, or None."""
    names = ("netprobe_target_failing", "netprobe_target_consecutive_failures",
             "netprobe_target_consecutive_successes", "netprobe_target_state_changes_total")
    values = [harness.value(samples, n, destination="web") for n in names]
    return None if None in values else tuple(int(v) for v in values)


def descendants(pid):
    """Pids of every process under `pid` (by /proc/*/stat parent links)."""
    children = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def worker_pid(root_pid):
    for pid in descendants(root_pid):
        try:
            with open(f"/proc/{pid}/comm") as f:
                if f.read().strip() == "netprobe-w0":
                    return pid
        except OSError:
            pass
    return None


def hysteresis():
    with netns.Lab() as lab, tempfile.TemporaryDirectory() as work:
        os.chmod(work, 0o755)  # netprobe reads its configuration as an unprivileged user
        p, t = lab.ns("p"), lab.ns("t")
        lab.link(p, t, [f"{P4}/24"], [f"{T4}/24"])
        port = harness.free_port()
        proc, log = start_netprobe(lab, p, work, config(port, "lab", P4, 65100), "netprobe")
        scrape = scraper(p, port)
        try:
            # Healthy first: passing, with a few passed iterations.
            harness.wait_until(lambda: (h := health(scrape())) and h[0] == 0 and h[2] >= 2, 30,
                               "target web passing for 2 iterations")
            drop_from(t, [P4])
            # Poll faster than the 1 s iterations: every value of the failure streak is seen.
            seen = []
            deadline = time.time() + 40
            while time.time() < deadline:
                h = health(scrape())
                if h and (not seen or seen[-1] != h):
                    seen.append(h)
                if h and h[1] >= FAILING + 1:
                    break
                time.sleep(0.1)
            print("while dropping:", seen, flush=True)
            streak = [h for h in seen if h[1] > 0]
            assert streak and streak[-1][1] >= FAILING + 1, f"no failure streak of {FAILING + 1}: {seen}"
            for failing, failures, _, _ in streak:
                assert failing == (1 if failures >= FAILING else 0), f"failing={failing} after {failures}: {seen}"
            assert any(h[1] == FAILING and h[0] == 1 for h in streak), f"failure {FAILING} not seen: {seen}"
            assert any(h[1] == FAILING - 1 and h[0] == 0 for h in streak), f"failure {FAILING - 1} not seen: {seen}"
            changes_failing = streak[-1][3]

            # The state lives in the supervisor: a worker killed now does not reset it.
            w = worker_pid(proc.pid)
            assert w, "worker process not found"
            os.kill(w, 9)
            harness.wait_until(lambda: (harness.value(scrape(), "app_worker_restarts_total") or 0) >= 1, 20,
                               "the worker restarted")
            h = health(scrape())
            assert h[0] == 1 and h[3] == changes_failing, f"state after a worker restart: {h}"

            undrop(t)
            seen = []
            deadline = time.time() + 40
            while time.time() < deadline:
                h = health(scrape())
                if h and (not seen or seen[-1] != h):
                    seen.append(h)
                if h and h[2] >= PASSING + 1:
                    break
                time.sleep(0.1)
            print("after the drop:", seen, flush=True)
            recovery = [h for h in seen if h[2] > 0]
            assert recovery and recovery[-1][2] >= PASSING + 1, f"no pass streak of {PASSING + 1}: {seen}"
            for failing, _, successes, _ in recovery:
                assert failing == (0 if successes >= PASSING else 1), f"failing={failing} after {successes}: {seen}"
            assert any(h[2] == PASSING - 1 and h[0] == 1 for h in recovery), f"pass {PASSING - 1} not seen: {seen}"
            assert recovery[-1][3] == changes_failing + 1, f"state changes: {seen}"
        except BaseException:
            log.seek(0)
            harness.log("netprobe log:\n" + log.read()[-6000:])
            raise
    print("hysteresis: ok")


def prometheus_query(ns, prom_port, path):
    text = netns.sh("curl", "-sf", f"http://127.0.0.1:{prom_port}{path}", ns=ns, capture=True, check=False)
    if not text:
        return None
    data = json.loads(text)
    return data["data"] if data.get("status") == "success" else None


def firing(ns, prom_port, alertname):
    data = prometheus_query(ns, prom_port, "/api/v1/alerts")
    if data is None:
        return None
    return [a["labels"] for a in data["alerts"] if a["labels"].get("alertname") == alertname and a["state"] == "firing"]


def value_of(ns, prom_port, promql):
    data = prometheus_query(ns, prom_port, "/api/v1/query?" + urllib.parse.urlencode({"query": promql}))
    if not data or not data["result"]:
        return None
    return float(data["result"][0]["value"][1])


def outage():
    harness.require_executable(PROMETHEUS, f"{PROMETHEUS} not installed (Debian package `prometheus`)")
    with netns.Lab() as lab, tempfile.TemporaryDirectory() as work:
        os.chmod(work, 0o755)
        p, t = lab.ns("p"), lab.ns("t")
        lab.link(p, t, [f"{P4}/24"], [f"{T4}/24"])
        ifname = json.loads(netns.sh("ip", "-j", "-4", "addr", "show", ns=p, capture=True))
        dev = next(i["ifname"] for i in ifname if i["ifname"] != "lo")
        netns.sh("ip", "addr", "add", f"{PB4}/24", "dev", dev, ns=p)
        # One site per source address; failing after 2 iterations for a shorter test.
        port_a, port_b = harness.free_port(), harness.free_port()
        while port_b == port_a:
            port_b = harness.free_port()
        procs = [start_netprobe(lab, p, work, config(port_a, "site_a", P4, 65100, 2, 2), "site_a"),
                 start_netprobe(lab, p, work, config(port_b, "site_b", PB4, 65200, 2, 2), "site_b")]
        prom_port = harness.free_port()
        while prom_port in (port_a, port_b):
            prom_port = harness.free_port()
        job = {"scrape_interval": "1s", "scrape_timeout": "1s",
               "static_configs": [{"targets": [f"127.0.0.1:{port_a}", f"127.0.0.1:{port_b}"]}]}
        prom_cfg = {"global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                    "rule_files": [os.path.abspath(RULES)],
                    "scrape_configs": [dict(job, job_name="netprobe")]}
        cfg_path = os.path.join(work, "prometheus.yml")
        with open(cfg_path, "w") as fh:
            json.dump(prom_cfg, fh)
        prom_log = open(os.path.join(work, "prometheus.log"), "w+")
        lab.popen(p, [PROMETHEUS, f"--config.file={cfg_path}", f"--storage.tsdb.path={os.path.join(work, 'tsdb')}",
                      f"--web.listen-address=127.0.0.1:{prom_port}", "--log.level=warn"],
                  stdout=prom_log, stderr=prom_log, cwd=work)
        try:
            harness.wait_until(lambda: value_of(p, prom_port, "count(netprobe_target_failing == 0)") == 2, 40,
                               "both sites report web passing in Prometheus")
            drop_from(t, [P4])  # site_a only
            harness.wait_until(lambda: firing(p, prom_port, "NetprobeTargetFailing"), 30,
                               "NetprobeTargetFailing for site_a")
            assert [a["probe_name"] for a in firing(p, prom_port, "NetprobeTargetFailing")] == ["site_a"]
            # 1 of 2 sites: several rule evaluations later, still no outage.
            harness.wait_until(lambda: value_of(p, prom_port, "netprobe:target_failing_sites:count") == 1, 20,
                               "one failing site recorded")
            for _ in range(5):
                assert firing(p, prom_port, "NetprobeGlobalOutage") == [], "outage with one failing site"
                time.sleep(1)
            drop_from(t, [P4, PB4])  # both sites
            outages = harness.wait_until(lambda: firing(p, prom_port, "NetprobeGlobalOutage"), 30,
                                         "NetprobeGlobalOutage firing in /api/v1/alerts")
            assert [a["destination"] for a in outages] == ["web"], outages
            assert value_of(p, prom_port, "netprobe:target_failing_sites:count") == 2
        except BaseException:
            for proc, log in procs:
                log.seek(0)
                harness.log(f"netprobe log:\n{log.read()[-3000:]}")
            prom_log.seek(0)
            harness.log("prometheus log:\n" + prom_log.read()[-3000:])
            raise
    print("outage: ok")


def test():
    harness.require_root("network namespaces, nftables and raw sockets")
    scenario = sys.argv[1] if len(sys.argv) > 1 else "hysteresis"
    {"hysteresis": hysteresis, "outage": outage}[scenario]()
    return 0


if __name__ == "__main__":
    harness.main(test)
