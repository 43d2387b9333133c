#!/usr/bin/env python3
"""GET /probe served by the on-demand worker, end to end (issue 17, docs/on-demand.md).

The real build/netprobe runs in a prober namespace with an `on_demand:` section and one scheduled TCPsyn target;
a target namespace listens on OPEN_PORT and drops HOLE_PORT (nftables). Scenarios (argv[1]):

  prometheus  a real Prometheus (Debian `prometheus`) in the prober namespace scrapes /probe with blackbox's
              relabelling (__param_target, __param_module, a bearer token): probe_success 1 for the listening
              port, 0 for the black-holed one; netprobe_api_requests_total counts the requests on /metrics
  concurrent  50 callers at once against one destination: the target (a kernel-timestamped sniffer and an
              nftables counter) never sees more on-demand SYNs than max_packets_per_second_per_destination in
              any one-second window (every two of them at least 1/cap apart); meanwhile the scheduled
              target's probes keep going, with no loss
  refusals    refused targets (blackbox issue 1639's forms, the prober's own address, outside the prefixes) are
              403 with the reason, bad credentials 401, an unknown module 400, and counted by reason on /metrics
  reload      on_demand removed by a reload: /probe is a 404 and netprobe-od stops; put back: served again
  worker      the on-demand worker (netprobe-od) holds no capability, has no-new-privs and a seccomp filter,
              runs as the unprivileged user; killed: /probe still answers at once (probe_success 0, nothing
              sent, never a hang), the worker comes back with backoff, /probe succeeds again
  names       through dnsmasq in the prober namespace: names of 127.0.0.1, 169.254.169.254, and of an allowed address
              with 169.254.169.254, refused (403 on /probe, a failed test on /api/v1/tests); DNS rebinding (a
              server answering the target's address once, then 127.0.0.1): every SYN goes to the first answer and
              none to loopback (nftables counters), the next request is refused
  debug       /probe?debug=true: netprobe ping's line per probe (answered, black-holed) above the page
  ipv6        /probe and /api/v1/tests pings to an IPv6 target (listening, black-holed), probe_ip_protocol 6, an
              IP literal reported in its own family; the refused IPv6 forms (::1, fe80::, ff02::1, ::ffff:...) 403

Every wait is bounded; namespaces and processes are removed on any exit (netns.Lab, harness).
"""
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
import urllib.parse

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import harness  # noqa: E402
import netns  # noqa: E402

P4, T4 = "198.18.9.1", "198.18.9.2"
P6, T6 = "fd00:19::1", "fd00:19::2"
OPEN_PORT, HOLE_PORT, SCHED_PORT = 8443, 9999, 8444
TOKEN = "od-it-token-7f3a"
PER_DEST_PPS = 10
PROMETHEUS = os.environ.get("PROMETHEUS_BIN", "/usr/bin/prometheus")

LISTENER = """
import socket, time
socks = []
for port in (%d, %d):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port)); s.listen(1024); socks.append(s)
time.sleep(600)
""" % (OPEN_PORT, SCHED_PORT)

# On-demand SYNs reach the target from the modules' source ports (33000-33003); the counter totals them.
RULES = f"""table inet od_it {{
  counter od_syns {{ }}
  counter od_ttl1_nodf {{ }}
  chain in {{ type filter hook input priority 0;
    tcp dport {OPEN_PORT} tcp sport 33000-33003 tcp flags & (syn | ack) == syn counter name od_syns
    tcp dport {OPEN_PORT} ip ttl 1 ip frag-off & 0x4000 == 0 counter name od_ttl1_nodf
    tcp dport {HOLE_PORT} drop
  }}
}}
"""

# Kernel-stamped arrival times of on-demand SYNs to OPEN_PORT, one per line, on an AF_PACKET socket.
SNIFFER = r"""
import socket, struct, sys
out = open(sys.argv[1], "w", buffering=1)
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0800))
s.setsockopt(socket.SOL_SOCKET, 35, 1)  # SO_TIMESTAMPNS
while True:
    data, anc, _, addr = s.recvmsg(2048, 64)
    if addr[2] == socket.PACKET_OUTGOING or len(data) < 14 + 20 + 20:
        continue
    ip = data[14:]
    ihl = (ip[0] & 15) * 4
    if ip[9] != 6:
        continue
    sport, dport = struct.unpack("!HH", ip[ihl:ihl + 4])
    flags = ip[ihl + 13]
    if dport != %d or not (33000 <= sport <= 33003) or flags & 0x12 != 0x02:
        continue
    for level, kind, value in anc:
        if level == socket.SOL_SOCKET and kind == 35:
            sec, nsec = struct.unpack("qq", value[:16])
            out.write("%%d.%%09d\n" %% (sec, nsec))
""" % OPEN_PORT

# Runs inside the prober namespace: N concurrent GET requests, the outcome of each as JSON lines.
CALLERS = r"""
import json, sys, threading, urllib.request, urllib.error
url, n, token = sys.argv[1], int(sys.argv[2]), sys.argv[3]
results = [None] * n
barrier = threading.Barrier(n)
def call(i):
    req = urllib.request.Request(url, headers={"Authorization": "Bearer " + token} if token else {})
    barrier.wait(timeout=30)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            results[i] = (r.status, r.read().decode())
    except urllib.error.HTTPError as e:
        results[i] = (e.code, e.read().decode())
    except Exception as e:
        results[i] = (0, repr(e))
threads = [threading.Thread(target=call, args=(i,)) for i in range(n)]
for t in threads: t.start()
for t in threads: t.join(60)
print(json.dumps(results))
"""


def config(port):
    return {
        "global": {"probe_name": "od_it", "interval": 1, "nb_proc": 1, "logging_level": "INFO",
                   "prometheus_port": port, "prometheus_address": "127.0.0.1", "dns_update_interval": 300,
                   "max_packets_per_second": 1000},
        "groups": {"lab": {"src_ipv4": P4, "src_port_a": 65100, "src_port_z": 65103}},
        "targets": {"sched": {"type": "TCPsyn", "destination": T4, "dst_port": SCHED_PORT, "nb_packets": 20,
                              "timeout": 0.5}},
        "on_demand": {
            "allowed_prefixes": ["198.18.9.0/24", "fd00:19::/64"],
            "modules": {
                "tcp_open": {"type": "TCPsyn", "dst_port": OPEN_PORT, "nb_packets": 3, "timeout": 2},
                "tcp_hole": {"type": "TCPsyn", "dst_port": HOLE_PORT, "nb_packets": 3, "timeout": 1},
                "tcp6_open": {"type": "TCPsyn", "address_family": "ipv6", "dst_port": OPEN_PORT, "nb_packets": 3,
                              "timeout": 2},
                "tcp6_hole": {"type": "TCPsyn", "address_family": "ipv6", "dst_port": HOLE_PORT, "nb_packets": 3,
                              "timeout": 1},
            },
            "credentials": {"prom": {"token_sha256": hashlib.sha256(TOKEN.encode()).hexdigest()}},
            "budgets": {"max_concurrent_tests": 64, "max_concurrent_tests_per_credential": 64,
                        "max_packets_per_second_per_destination": PER_DEST_PPS, "max_packets_per_second": 50},
        },
    }


class Setup:
    def __init__(self, lab, work, prepare=None):
        self.lab, self.work = lab, work
        self.p, self.t = lab.ns("p"), lab.ns("t")
        lab.link(self.p, self.t, [f"{P4}/24", f"{P6}/64"], [f"{T4}/24", f"{T6}/64"])
        lab.popen(self.t, ["python3", "-c", LISTENER])
        harness.wait_until(lambda: f":{OPEN_PORT} " in netns.sh("ss", "-ltnH", ns=self.t, capture=True), 10,
                           "the target's TCP listener")
        with tempfile.NamedTemporaryFile("w", suffix=".nft", delete=False) as fh:
            fh.write(RULES)
        netns.sh("nft", "-f", fh.name, ns=self.t)
        os.unlink(fh.name)
        if prepare:  # what netprobe must find when it starts (a resolv.conf, a DNS server)
            prepare(self)
        self.port = harness.free_port()
        path = os.path.join(work, "netprobe.yaml")
        with open(path, "w") as fh:
            json.dump(config(self.port), fh)
        self.log = open(os.path.join(work, "netprobe.log"), "w+")
        self.proc = lab.popen(self.p, [harness.netprobe_bin(), "run", path], stdout=self.log, stderr=self.log)
        harness.wait_until(lambda: self.get("/metrics")[0] == 200, 30, "netprobe's /metrics")

    def get(self, path, token=TOKEN, headers=None, method=None, data=None):
        """(status, body) of a request from inside the prober namespace."""
        args = ["curl", "-s", "-o", "-", "-w", "\n%{http_code}", "--max-time", "20"]
        if method:
            args += ["-X", method]
        if data is not None:
            args += ["-H", "Content-Type: application/json", "--data-binary", data]
        if token:
            args += ["-H", f"Authorization: Bearer {token}"]
        for h in headers or []:
            args += ["-H", h]
        out = netns.sh(*args, f"http://127.0.0.1:{self.port}{path}", ns=self.p, capture=True, check=False) or "\n0"
        body, _, code = out.rpartition("\n")
        return int(code or 0), body

    def probe(self, target, module, **extra):
        q = urllib.parse.urlencode(dict(target=target, module=module, **extra))
        return self.get(f"/probe?{q}")

    def metrics(self):
        status, body = self.get("/metrics", token=None)
        return harness.parse_metrics(body if status == 200 else "")

    def dump_log(self):
        self.log.seek(0)
        harness.log("netprobe log:\n" + self.log.read()[-8000:])


def run(scenario):
    with netns.Lab() as lab, tempfile.TemporaryDirectory() as work:
        os.chmod(work, 0o755)  # netprobe reads its configuration as an unprivileged user
        s = Setup(lab, work, getattr(scenario, "prepare", None))
        try:
            scenario(s)
        except BaseException:
            s.dump_log()
            raise


def sample(text, name):
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


# ---- prometheus ----

def prometheus_config(port):
    def job(name, module):
        return {
            "job_name": name, "metrics_path": "/probe", "params": {"module": [module]},
            "scrape_interval": "3s", "scrape_timeout": "2500ms",
            "authorization": {"type": "Bearer", "credentials": TOKEN},
            "static_configs": [{"targets": [T4]}],
            "relabel_configs": [
                {"source_labels": ["__address__"], "target_label": "__param_target"},
                {"source_labels": ["__param_target"], "target_label": "instance"},
                {"target_label": "__address__", "replacement": f"127.0.0.1:{port}"},
            ],
        }
    return {"global": {"scrape_interval": "3s", "evaluation_interval": "3s"},
            "scrape_configs": [job("od_open", "tcp_open"), job("od_hole", "tcp_hole")]}


def prometheus(s):
    harness.require_executable(PROMETHEUS, f"{PROMETHEUS} not installed (Debian package `prometheus`)")
    # The endpoint itself first.
    status, body = s.probe(T4, "tcp_open")
    assert status == 200 and sample(body, "probe_success") == 1, f"{status}: {body}"
    assert sample(body, "netprobe_probe_packets_sent") == 3, body
    status, body = s.probe(T4, "tcp_hole")
    assert status == 200 and sample(body, "probe_success") == 0, f"{status}: {body}"
    assert sample(body, "netprobe_probe_packets_lost") == 3, body

    prom_port = harness.free_port()
    prom_config = os.path.join(s.work, "prometheus.yml")
    with open(prom_config, "w") as fh:
        json.dump(prometheus_config(s.port), fh)
    plog = open(os.path.join(s.work, "prometheus.log"), "w+")
    s.lab.popen(s.p, [PROMETHEUS, f"--config.file={prom_config}", f"--storage.tsdb.path={s.work}/tsdb",
                      f"--web.listen-address=127.0.0.1:{prom_port}", "--log.level=warn"],
                stdout=plog, stderr=plog, cwd=s.work)

    def value(promql):
        url = f"http://127.0.0.1:{prom_port}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        text = netns.sh("curl", "-sf", url, ns=s.p, capture=True, check=False)
        if not text:
            return None
        result = json.loads(text).get("data", {}).get("result", [])
        return float(result[0]["value"][1]) if len(result) == 1 else None

    try:
        harness.wait_until(lambda: value(f'probe_success{{job="od_open",instance="{T4}"}}') == 1, 60,
                           "probe_success 1 for the listening port in Prometheus")
        harness.wait_until(lambda: value(f'probe_success{{job="od_hole",instance="{T4}"}}') == 0, 60,
                           "probe_success 0 for the black-holed port in Prometheus")
        assert value('up{job="od_open"}') == 1 and value('up{job="od_hole"}') == 1
        assert value(f'netprobe_probe_packets_received{{job="od_open"}}') == 3
    except BaseException:
        plog.seek(0)
        harness.log("prometheus log:\n" + plog.read()[-4000:])
        raise
    m = s.metrics()
    ok = harness.value(m, "netprobe_api_requests_total", endpoint="/probe", code="200") or 0
    assert ok >= 4, f"netprobe_api_requests_total 200: {ok}"
    assert (harness.value(m, "netprobe_api_packets_total") or 0) >= 12
    print(f"prometheus: ok ({int(ok)} /probe requests answered 200)")


# ---- concurrent ----

def busiest_window(stamps, width=1.0):
    best, j = 0, 0
    for i in range(len(stamps)):
        while stamps[i] - stamps[j] >= width:
            j += 1
        best = max(best, i - j + 1)
    return best


def sched_counters(s):
    m = s.metrics()
    sent = harness.value(m, "tcpsyn_sent_total", destination="sched") or 0
    lost = harness.value(m, "tcpsyn_loss_total", destination="sched") or 0
    return sent, lost


def sched_rtt(s):
    """(sum, count) of the scheduled target's RTT histogram (group "lab" has that one target; on-demand
    probes never count in a group's histogram)."""
    m = s.metrics()
    return (harness.value(m, "tcpsyn_rtt_seconds_sum", group="lab", address_family="ipv4") or 0,
            harness.value(m, "tcpsyn_rtt_seconds_count", group="lab", address_family="ipv4") or 0)


def concurrent(s):
    stamps_path = os.path.join(s.work, "stamps.txt")
    s.lab.popen(s.t, ["python3", "-c", SNIFFER, stamps_path])
    harness.wait_until(lambda: sched_counters(s)[0] >= 40, 30, "the scheduled target probed")
    # The scheduled target's mean RTT with the on-demand worker idle, then busy (reported, not asserted:
    # no timed assertions; the loss and the count of measured probes are).
    rtt_idle0 = sched_rtt(s)
    time.sleep(3)
    rtt_idle1 = sched_rtt(s)
    sent0, lost0 = sched_counters(s)
    n = 50
    q = urllib.parse.urlencode({"target": T4, "module": "tcp_open"})
    out = netns.sh("python3", "-c", CALLERS, f"http://127.0.0.1:{s.port}/probe?{q}", str(n), TOKEN, ns=s.p,
                   capture=True, timeout=120)
    results = json.loads(out)
    codes = {}
    for status, _ in results:
        codes[status] = codes.get(status, 0) + 1
    served = [body for status, body in results if status == 200]
    print(f"50 callers: {codes}", flush=True)
    assert set(codes) <= {200, 429}, f"unexpected answers: {codes}"
    assert served, "no caller was served"
    for body in served:
        assert sample(body, "probe_success") == 1, body
    # Let the rest of the scheduled iterations and the sniffer catch up.
    time.sleep(2.5)
    sent1, lost1 = sched_counters(s)
    rtt_busy = sched_rtt(s)
    idle_n, busy_n = rtt_idle1[1] - rtt_idle0[1], rtt_busy[1] - rtt_idle1[1]
    assert idle_n > 0 and busy_n > 0, (idle_n, busy_n)
    assert busy_n == sent1 - sent0, f"every scheduled probe answered and measured: {busy_n} of {sent1 - sent0}"
    idle_mean = (rtt_idle1[0] - rtt_idle0[0]) / idle_n
    busy_mean = (rtt_busy[0] - rtt_idle1[0]) / busy_n
    print(f"scheduled target's mean RTT: idle {idle_mean * 1e6:.0f} us ({idle_n} probes), on-demand busy "
          f"{busy_mean * 1e6:.0f} us ({busy_n} probes), ratio {busy_mean / idle_mean:.2f}", flush=True)
    nft = json.loads(netns.sh("nft", "-j", "list", "counter", "inet", "od_it", "od_syns", ns=s.t, capture=True))
    counted = next(x["counter"]["packets"] for x in nft["nftables"] if "counter" in x)
    with open(stamps_path) as fh:
        stamps = sorted(float(x) for x in fh.read().split())
    sent_by_callers = sum(int(sample(b, "netprobe_probe_packets_sent") or 0) for b in served)
    gaps = [b - a for a, b in zip(stamps, stamps[1:])]
    busiest = busiest_window(stamps)
    print(f"on-demand SYNs at the target: nft {counted}, sniffed {len(stamps)}, reported sent {sent_by_callers}; "
          f"busiest 1 s window {busiest} (cap {PER_DEST_PPS}); smallest gap {min(gaps) * 1000 if gaps else 0:.1f} ms; "
          f"scheduled: sent +{sent1 - sent0}, lost +{lost1 - lost0}", flush=True)
    assert counted == sent_by_callers == len(stamps), (counted, sent_by_callers, len(stamps))
    # The budget spaces one destination's send times 1/cap apart, the worker never sends early and keeps
    # 1/cap + 1 ms after the previous packet to the destination whatever its lateness: never more than the
    # cap in any one-second window at the target.
    assert not gaps or min(gaps) >= 1.0 / PER_DEST_PPS, f"two on-demand packets {min(gaps)} s apart"
    assert busiest <= PER_DEST_PPS, f"{busiest} on-demand packets in one second (cap {PER_DEST_PPS})"
    # Scheduled probing went on, undisturbed: probes sent all along, none lost.
    assert sent1 - sent0 >= 40, f"scheduled probes sent meanwhile: {sent1 - sent0}"
    assert lost1 == lost0, f"scheduled probes lost meanwhile: {lost1 - lost0}"
    print("concurrent: ok")


# ---- refusals ----

def refusals(s):
    cases = [
        ("169.254.169.254", 403, "link_local"),
        ("[::ffff:169.254.169.254]", 403, "link_local"),
        ("127.0.0.1", 403, "loopback"),
        ("2130706433", 403, "numeric_form"),
        ("0x7f.1", 403, "numeric_form"),
        ("0177.0.0.1", 403, "numeric_form"),
        (P4, 403, "own_address"),
        ("10.1.2.3", 403, "not_allowed_prefix"),
        ("http://198.18.9.2/", 403, "syntax"),
    ]
    for target, want, reason in cases:
        status, body = s.probe(target, "tcp_open")
        assert status == want, f"{target}: {status} {body!r}"
    status, body = s.probe(T4, "nope")
    assert status == 400, f"unknown module: {status} {body!r}"
    status, body = s.probe(T4, "tcp_open", nb_packets="5")
    assert status == 400, f"an override the module does not list: {status} {body!r}"
    for token, reason in ((None, "auth_missing"), ("wrong-token", "auth_wrong")):
        status, body = s.get("/probe?" + urllib.parse.urlencode({"target": T4, "module": "tcp_open"}), token=token)
        assert status == 401, f"token {token}: {status} {body!r}"
    m = s.metrics()
    for _, _, reason in cases:
        assert (harness.value(m, "netprobe_api_rejections_total", reason=reason) or 0) >= 1, f"reason {reason}"
    for reason in ("auth_missing", "auth_wrong", "bad_request"):
        assert (harness.value(m, "netprobe_api_rejections_total", reason=reason) or 0) >= 1, f"reason {reason}"
    assert (harness.value(m, "netprobe_api_requests_total", endpoint="/probe", code="403") or 0) == len(cases)
    assert (harness.value(m, "netprobe_api_packets_total") or 0) == 0, "a refused request sent packets"
    print("refusals: ok")


# ---- /api/v1/tests ----

def api(s):
    """The asynchronous API end to end: a ping and a trace run by the on-demand worker, read back by receipt
    (both forms), refused to another credential, deleted; refusals counted on /metrics."""
    tests = {"tests": [
        {"type": "ping", "target": T4, "options": {"destport": OPEN_PORT, "count": 3, "interval": 0.2}},
        {"type": "ping", "target": T4, "options": {"destport": HOLE_PORT, "count": 2, "interval": 0.2,
                                                   "timeout": 0.5}},
        {"type": "trace", "target": T4, "options": {"destport": OPEN_PORT, "max-ttl": 3}},
        # The CLI's -t and --no-df: counted at the target by TTL and DF bit.
        {"type": "ping", "target": T4, "options": {"destport": OPEN_PORT, "count": 2, "interval": 0.2,
                                                   "ttl": 1, "no-df": True}},
    ]}
    status, body = s.get("/api/v1/tests", method="POST", data=json.dumps(tests))
    assert status == 202, f"POST: {status} {body!r}"
    receipt = json.loads(body)["receipt"]
    doc = None

    def finished():
        nonlocal doc
        code, text = s.get(f"/api/v1/tests/{receipt}")
        doc = json.loads(text) if code == 200 else None
        return doc is not None and doc["state"] == "done"
    harness.wait_until(finished, 60, "the tests to finish")
    print(json.dumps(doc, indent=1)[:3000], flush=True)
    ping_open, ping_hole, trace, ping_ttl = doc["tests"]
    # Every probe leaves although a trace to the same destination runs beside the pings (its batches are
    # sent at the times they reserved, so the worker's floors never push a ping probe out of its time);
    # every one to the open port is answered, none to the black hole.
    assert ping_open["state"] == "done" and ping_open["result"]["sent"] == 3, ping_open
    assert ping_open["result"]["received"] == 3, ping_open
    assert ping_hole["state"] == "done" and ping_hole["result"]["received"] == 0, ping_hole
    assert ping_hole["result"]["sent"] == 2, ping_hole
    assert trace["state"] == "done", trace
    assert T4 in json.dumps(trace["result"]), f"the trace reaches the target: {trace}"
    assert ping_ttl["state"] == "done" and ping_ttl["result"]["received"] == 2, ping_ttl
    nft = json.loads(netns.sh("nft", "-j", "list", "counter", "inet", "od_it", "od_ttl1_nodf", ns=s.t,
                              capture=True))
    ttl1 = next(o["counter"]["packets"] for o in nft["nftables"] if "counter" in o)
    assert ttl1 == 2, f"{ttl1} packets with TTL 1 and DF clear at the target, 2 expected"
    # Scouter's form reads the same receipt; another credential (or none) cannot.
    code, text = s.get(f"/api/v1/tests?receipt={receipt}")
    assert code == 200 and json.loads(text)["tests"][0] == ping_open, (code, text)
    assert s.get(f"/api/v1/tests/{receipt}", token="wrong-token")[0] == 401
    # Refused before anything runs: a denied target, a body too large, an option a caller may not use.
    for body, want in ((json.dumps({"tests": [{"type": "ping", "target": "169.254.169.254"}]}), 403),
                       ("x" * 20000, 413),
                       (json.dumps({"tests": [{"type": "ping", "target": T4, "options": {"interface": "lo"}}]}),
                        400)):
        code, text = s.get("/api/v1/tests", method="POST", data=body)
        assert code == want, f"{body[:60]}: {code} {text!r}"
    assert s.get(f"/api/v1/tests/{receipt}", method="DELETE")[0] in (200, 204)
    assert s.get(f"/api/v1/tests/{receipt}")[0] == 404
    m = s.metrics()
    assert (harness.value(m, "netprobe_api_requests_total", endpoint="/api/v1/tests", code="202") or 0) == 1
    assert (harness.value(m, "netprobe_api_rejections_total", reason="link_local") or 0) >= 1
    assert (harness.value(m, "netprobe_api_packets_total") or 0) >= 5, "the tests' packets"
    print("api: ok")


# ---- worker ----

def od_worker_pid(s):
    for pid in netns.sh("ip", "netns", "pids", s.p, capture=True).split():
        try:
            with open(f"/proc/{pid}/comm") as f:
                if f.read().strip() == "netprobe-od":
                    return int(pid)
        except OSError:
            pass
    return None


def worker(s):
    harness.wait_until(lambda: od_worker_pid(s), 20, "the on-demand worker (netprobe-od)")
    status, body = s.probe(T4, "tcp_open")
    assert status == 200 and sample(body, "probe_success") == 1, body
    pid = od_worker_pid(s)
    # Confined like the workers: no capability left, no-new-privs, a seccomp filter, not root.
    with open(f"/proc/{pid}/status") as f:
        status = dict(line.split(":", 1) for line in f.read().splitlines() if ":" in line)
    for key, want in (("CapEff", "0000000000000000"), ("CapPrm", "0000000000000000"), ("NoNewPrivs", "1"),
                      ("Seccomp", "2")):
        assert status[key].strip() == want, f"netprobe-od {key}: {status[key].strip()}"
    assert status["Uid"].split()[0] != "0", "netprobe-od runs as root"
    os.kill(pid, 9)
    # At once: nothing sent, probe_success 0, never a hang (curl gives up after 20 s).
    start = time.time()
    status, body = s.probe(T4, "tcp_open")
    took = time.time() - start
    print(f"while the worker is down: {status}, probe_success {sample(body, 'probe_success')}, "
          f"sent {sample(body, 'netprobe_probe_packets_sent')}, {took:.2f} s", flush=True)
    assert status == 200 and sample(body, "probe_success") == 0, body
    # Back after its backoff (1 s), with another pid.
    harness.wait_until(lambda: (p := od_worker_pid(s)) and p != pid, 20, "the on-demand worker restarted")
    harness.wait_until(lambda: sample(s.probe(T4, "tcp_open")[1], "probe_success") == 1, 20,
                       "/probe served again")
    m = s.metrics()
    assert (harness.value(m, "app_worker_restarts_total") or 0) >= 1
    # Its CPU and memory are reported like the workers' (netprobe_process_*{process="ondemand"}).
    assert harness.select(m, "netprobe_process_cpu_seconds_total", process="ondemand"), "no process series"
    print("worker: ok")


# ---- reload ----

def reload(s):
    harness.wait_until(lambda: od_worker_pid(s), 20, "the on-demand worker (netprobe-od)")
    cfg = config(s.port)
    off = dict(cfg)
    del off["on_demand"]
    path = os.path.join(s.work, "netprobe.yaml")
    with open(path, "w") as fh:
        json.dump(off, fh)
    netns.sh("kill", "-HUP", str(netprobe_pid(s)), ns=s.p)
    harness.wait_until(lambda: s.probe(T4, "tcp_open")[0] == 404, 20, "/probe gone (404) after the reload")
    harness.wait_until(lambda: od_worker_pid(s) is None, 20, "netprobe-od stopped")
    with open(path, "w") as fh:
        json.dump(cfg, fh)
    netns.sh("kill", "-HUP", str(netprobe_pid(s)), ns=s.p)
    harness.wait_until(lambda: sample(s.probe(T4, "tcp_open")[1], "probe_success") == 1, 30,
                       "/probe served again after the reload")
    # The scheduled target kept being measured through both changes of the key slices.
    harness.wait_until(lambda: sched_counters(s)[0] >= 40, 20, "the scheduled target probed")
    print("reload: ok")


def netprobe_pid(s):
    for pid in netns.sh("ip", "netns", "pids", s.p, capture=True).split():
        try:
            with open(f"/proc/{pid}/comm") as f:
                if f.read().strip() == "netprobe":
                    return int(pid)
        except OSError:
            pass
    return None


# ---- names ----

DNSMASQ = "/usr/sbin/dnsmasq"
DOMAIN = "netprobe.test"
# dnsmasq's hosts: the name forms of the refused-target table, and a good name as a control.
NAME_HOSTS = [(T4, "web"), ("127.0.0.1", "lo"), ("169.254.169.254", "meta"), (T4, "mixed"),
              ("169.254.169.254", "mixed")]
REBIND_PORT = 5353

# A DNS server whose answer changes (rebinding), behind dnsmasq (--server=/rebind.netprobe.test/...): the
# first A query of each name is answered with the allowed target, every later one with 127.0.0.1, TTL 0;
# AAAA gets no answer. Every query is logged ("name type answer"), so the test counts the resolutions.
REBINDER = r"""
import socket, struct, sys
first, later, log = sys.argv[2], "127.0.0.1", open(sys.argv[3], "w", buffering=1)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", int(sys.argv[1])))
seen = {}
while True:
    q, peer = s.recvfrom(4096)
    if len(q) < 12:
        continue
    i, labels = 12, []
    while i < len(q) and q[i]:
        labels.append(q[i + 1:i + 1 + q[i]].decode("ascii", "replace").lower())
        i += 1 + q[i]
    i += 1
    qtype = struct.unpack("!H", q[i:i + 2])[0]
    question = q[12:i + 4]
    name = ".".join(labels)
    answers = b""
    if qtype == 1:
        seen[name] = seen.get(name, 0) + 1
        addr = first if seen[name] == 1 else later
        answers = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 0, 4) + socket.inet_aton(addr)
    log.write("%s %d %s\n" % (name, qtype, addr if qtype == 1 else "-"))
    flags = 0x8400 | (struct.unpack("!H", q[2:4])[0] & 0x0100)  # response, authoritative, RD copied
    s.sendto(q[:2] + struct.pack("!HHHHH", flags, 1, 1 if answers else 0, 0, 0) + question + answers, peer)
"""

# Packets the prober's kernel sends (raw sockets included: output hook): the on-demand SYNs to the allowed
# target's listening port, and anything TCP or ICMP echo to loopback other than the HTTP requests of the test.
# (Two rules that accept the HTTP port, not `tcp sport != P tcp dport != P`: nft 1.0.6 merges those into one
# 4-byte `!=` on both ports together, which counts the HTTP packets.)
def prober_rules(http_port):
    return f"""table inet od_names {{
  counter to_target {{ }}
  counter to_loopback {{ }}
  chain out {{ type filter hook output priority 0;
    ip daddr {T4} tcp dport {OPEN_PORT} tcp flags & (syn | ack) == syn counter name to_target
    ip daddr 127.0.0.0/8 tcp dport {http_port} accept
    ip daddr 127.0.0.0/8 tcp sport {http_port} accept
    ip daddr 127.0.0.0/8 meta l4proto tcp counter name to_loopback
    ip daddr 127.0.0.0/8 icmp type echo-request counter name to_loopback
  }}
}}
"""


# One TCP SYN from a raw socket (the kernel adds the IP header), as the prober's workers send them.
RAW_SYN = r"""
import socket, struct, sys
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)
s.sendto(struct.pack("!HHIIBBHHH", 33000, int(sys.argv[2]), 1, 0, 5 << 4, 0x02, 1024, 0, 0), (sys.argv[1], 0))
"""


def nft_counter(ns, table, name):
    out = json.loads(netns.sh("nft", "-j", "list", "counter", "inet", table, name, ns=ns, capture=True))
    return next(x["counter"]["packets"] for x in out["nftables"] if "counter" in x)


def names_prepare(s):
    harness.require_executable(DNSMASQ, "dnsmasq is not installed (apt-get install dnsmasq-base)")
    # `ip netns exec` bind-mounts /etc/netns/<ns>/* over /etc: the prober's resolv.conf names dnsmasq.
    etc = f"/etc/netns/{s.p}"
    os.makedirs(etc, exist_ok=True)
    harness.register_cleanup(lambda: shutil.rmtree(etc, ignore_errors=True))
    with open(os.path.join(etc, "resolv.conf"), "w") as fh:
        fh.write("nameserver 127.0.0.1\noptions timeout:1 attempts:2\n")
    hosts = os.path.join(s.work, "hosts")
    with open(hosts, "w") as fh:
        fh.write("".join(f"{addr} {name}.{DOMAIN}\n" for addr, name in NAME_HOSTS))
    s.rebind_log = os.path.join(s.work, "rebinder.log")
    s.lab.popen(s.p, ["python3", "-c", REBINDER, str(REBIND_PORT), T4, s.rebind_log])
    s.dns_log = open(os.path.join(s.work, "dnsmasq.log"), "w+")
    # No cache (--cache-size=0): every query of a rebinding name reaches the rebinder.
    s.lab.popen(s.p, [DNSMASQ, "--keep-in-foreground", "--conf-file=/dev/null", "--pid-file=", "--user=root",
                      "--no-resolv", "--no-hosts", "--listen-address=127.0.0.1", "--bind-interfaces", "--port=53",
                      f"--local=/{DOMAIN}/", f"--server=/rebind.{DOMAIN}/127.0.0.1#{REBIND_PORT}",
                      f"--addn-hosts={hosts}", "--cache-size=0", "--no-negcache", "--log-queries",
                      "--log-facility=-"], stdout=s.dns_log, stderr=s.dns_log)
    harness.wait_until(lambda: all(f"127.0.0.1:{port} " in netns.sh("ss", "-lunH", ns=s.p, capture=True)
                                   for port in (53, REBIND_PORT)), 10, "dnsmasq and the rebinding server")


def rebind_queries(s, name):
    """(qtype 1 answers) the rebinding server gave for `name`, in order."""
    with open(s.rebind_log) as fh:
        rows = [line.split() for line in fh.read().splitlines()]
    return [r[2] for r in rows if len(r) == 3 and r[0] == name and r[1] == "1"]


def post_tests(s, tests):
    status, body = s.get("/api/v1/tests", method="POST", data=json.dumps({"tests": tests}))
    return status, (json.loads(body) if body.startswith("{") else body)


def wait_tests(s, receipt, what, timeout_s=20):
    doc = {}

    def finished():
        code, text = s.get(f"/api/v1/tests/{receipt}")
        doc["v"] = json.loads(text) if code == 200 else None
        return doc["v"] is not None and doc["v"]["state"] == "done"
    harness.wait_until(finished, timeout_s, what, interval_s=0.2)
    return doc["v"]["tests"]


def names(s):
    """The name forms of the refused-target table through a real DNS server (dnsmasq), and DNS rebinding."""
    try:
        names_body(s)
    except BaseException:
        s.dns_log.seek(0)
        harness.log("dnsmasq log:\n" + "\n".join(s.dns_log.read().splitlines()[-40:]))
        with open(s.rebind_log) as fh:
            harness.log("rebinding server log:\n" + fh.read())
        raise


def names_body(s):
    with tempfile.NamedTemporaryFile("w", suffix=".nft", delete=False) as fh:
        fh.write(prober_rules(s.port))
    netns.sh("nft", "-f", fh.name, ns=s.p)
    os.unlink(fh.name)
    web, nx = f"web.{DOMAIN}", f"nx.{DOMAIN}"
    # The control: a name of an allowed address is probed, a name that does not resolve is blackbox's failed
    # probe (200, probe_success 0, nothing sent), not a refusal.
    status, body = s.probe(web, "tcp_open")
    assert status == 200 and sample(body, "probe_success") == 1, f"{web}: {status} {body!r}"
    status, body = s.probe(nx, "tcp_open")
    assert status == 200 and sample(body, "probe_success") == 0, f"{nx}: {status} {body!r}"
    assert sample(body, "netprobe_probe_packets_sent") == 0, body
    # (a) Names of refused addresses: 403 with the policy's reason, the name and the address in the body. A name
    # with one allowed and one refused address is refused as a whole.
    refused = [(f"lo.{DOMAIN}", "127.0.0.1", "loopback"), (f"meta.{DOMAIN}", "169.254.169.254", "link_local"),
               (f"mixed.{DOMAIN}", "169.254.169.254", "link_local")]
    sent_before = nft_counter(s.p, "od_names", "to_target")
    for name, addr, reason in refused:
        status, body = s.probe(name, "tcp_open")
        assert status == 403, f"/probe {name}: {status} {body!r}"
        assert body.strip() == f"{name}: {addr} is refused ({reason})", f"/probe {name}: {body!r}"
    # /api/v1/tests: a name is resolved on the test's thread (not by the POST): 202, then the test fails with
    # the reason, and nothing is sent.
    status, doc = post_tests(s, [{"type": "ping", "target": name, "options": {"destport": OPEN_PORT, "count": 2}}
                                 for name, _, _ in refused])
    assert status == 202, f"POST: {status} {doc!r}"
    runs = wait_tests(s, doc["receipt"], "the refused names' tests to end")
    for run, (name, addr, reason) in zip(runs, refused):
        assert run["state"] == "failed", run
        assert run["error"] == f"target refused ({reason}): {name}: {addr} is refused ({reason})", run
        assert "result" not in run, run
    assert nft_counter(s.p, "od_names", "to_target") == sent_before, "a refused name was probed"
    m = s.metrics()
    assert (harness.value(m, "netprobe_api_rejections_total", reason="loopback") or 0) == 2, "loopback x2"
    assert (harness.value(m, "netprobe_api_rejections_total", reason="link_local") or 0) == 4, "link_local x4"
    print("names: refused names ok", flush=True)

    # (b) DNS rebinding: the rebinding server answers the target's address once, then 127.0.0.1. The service
    # resolves once, checks and pins: every probe goes to the first answer, none to loopback. The next request
    # resolves anew, gets loopback and is refused.
    netns.sh("nft", "reset", "counters", "table", "inet", "od_names", ns=s.p, capture=True)
    netns.sh("nft", "reset", "counters", "table", "inet", "od_it", ns=s.t, capture=True)
    rb = f"probe.rebind.{DOMAIN}"
    status, body = s.probe(rb, "tcp_open")
    assert status == 200 and sample(body, "probe_success") == 1, f"{rb}: {status} {body!r}"
    assert sample(body, "netprobe_probe_packets_sent") == 3, body
    assert rebind_queries(s, rb) == [T4], f"one resolution: {rebind_queries(s, rb)}"
    status, body = s.probe(rb, "tcp_open")
    assert status == 403 and body.strip() == f"{rb}: 127.0.0.1 is refused (loopback)", f"{status} {body!r}"
    assert rebind_queries(s, rb) == [T4, "127.0.0.1"], rebind_queries(s, rb)
    probe_sent = (nft_counter(s.p, "od_names", "to_target"), nft_counter(s.t, "od_it", "od_syns"))
    assert probe_sent == (3, 3), f"/probe's SYNs at the prober's output and at the target: {probe_sent}"

    rb = f"api.rebind.{DOMAIN}"
    status, doc = post_tests(s, [{"type": "ping", "target": rb,
                                  "options": {"destport": OPEN_PORT, "count": 3, "interval": 0.2}}])
    assert status == 202, f"POST: {status} {doc!r}"
    (run,) = wait_tests(s, doc["receipt"], "the rebinding name's ping")
    assert run["state"] == "done" and run["address"] == T4, run
    assert run["result"]["sent"] == 3 and run["result"]["received"] == 3, run
    assert rebind_queries(s, rb) == [T4], f"one resolution: {rebind_queries(s, rb)}"
    status, doc = post_tests(s, [{"type": "ping", "target": rb, "options": {"destport": OPEN_PORT, "count": 2}}])
    assert status == 202, f"POST: {status} {doc!r}"
    (run,) = wait_tests(s, doc["receipt"], "the rebound name's ping")
    assert run["state"] == "failed" and "target refused (loopback)" in run["error"], run
    assert rebind_queries(s, rb) == [T4, "127.0.0.1"], rebind_queries(s, rb)
    to_target, to_loopback = nft_counter(s.p, "od_names", "to_target"), nft_counter(s.p, "od_names", "to_loopback")
    print(f"rebinding: SYNs to {T4}:{OPEN_PORT} {to_target} (/probe 3 + ping 3), to loopback {to_loopback}",
          flush=True)
    assert to_target == 6, f"SYNs to the first answer: {to_target}"
    assert to_loopback == 0, f"{to_loopback} packets to loopback"
    # The counter does see a raw socket's SYN to loopback (what a probe to the rebound answer would be).
    netns.sh("python3", "-c", RAW_SYN, "127.0.0.1", str(OPEN_PORT), ns=s.p)
    assert nft_counter(s.p, "od_names", "to_loopback") >= 1, "the loopback counter missed a raw SYN"
    # Both rebound requests' refusals on /metrics, beside the two of lo.netprobe.test.
    got = harness.value(s.metrics(), "netprobe_api_rejections_total", reason="loopback")
    assert got == 4, f"loopback refusals on /metrics: {got}"
    print("names: ok")


names.prepare = names_prepare


# ---- debug ----

def probe_log(body):
    """The lines of the debug page's log and the metrics it would have returned."""
    head, sep, metrics = body.partition("\n\n\n\nMetrics that would have been returned:\n")
    assert sep and head.startswith("Logs for the probe:\n"), f"not blackbox's debug layout: {body!r}"
    return head.splitlines()[1:], metrics


def debug(s):
    """GET /probe?debug=true: the log of every probe (netprobe ping's line) above the metrics."""
    status, body = s.probe(T4, "tcp_open", debug="true")
    assert status == 200, f"{status} {body!r}"
    lines, metrics = probe_log(body)
    print("answered:\n  " + "\n  ".join(lines), flush=True)
    assert len(lines) == 3, lines
    for seq, line in enumerate(lines):
        # seq=0 sport=33000 from=198.18.9.2 ttl=64 id=0 DF flags=SA win=64240 len=44 rtt=0.041 ms
        f = line.split()
        assert f[0] == f"seq={seq}" and f[1] == f"sport={33000 + seq}", line
        assert f[2] == f"from={T4}" and f[3] == "ttl=64" and f[4].startswith("id="), line
        assert "flags=SA" in f and any(x.startswith("win=") for x in f) and any(x.startswith("len=") for x in f), line
        assert f[-1] == "ms" and f[-2].startswith("rtt=") and float(f[-2][4:]) > 0, line
    assert sample(metrics, "probe_success") == 1 and sample(metrics, "netprobe_probe_packets_received") == 3, metrics

    status, body = s.probe(T4, "tcp_hole", debug="true")
    assert status == 200, f"{status} {body!r}"
    lines, metrics = probe_log(body)
    print("black hole:\n  " + "\n  ".join(lines), flush=True)
    assert lines == [f"seq={i} sport={33000 + i} timeout" for i in range(3)], lines
    assert sample(metrics, "probe_success") == 0 and sample(metrics, "netprobe_probe_packets_lost") == 3, metrics

    # The log is plain text (as blackbox's), the page the exposition format.
    def content_type(flag):
        url = f"http://127.0.0.1:{s.port}/probe?target={T4}&module=tcp_open&debug={flag}"
        return netns.sh("curl", "-s", "-o", "/dev/null", "-w", "%{content_type}", "-H",
                        f"Authorization: Bearer {TOKEN}", url, ns=s.p, capture=True).strip()
    assert content_type("true") == "text/plain; charset=utf-8", content_type("true")
    assert "version=0.0.4" in content_type("false"), content_type("false")

    # debug=false is the plain page; anything else is a 400. No module or credential rule restricts debug
    # (probe_request.cpp): every module accepts it.
    status, body = s.probe(T4, "tcp_open", debug="false")
    assert status == 200 and not body.startswith("Logs") and sample(body, "probe_success") == 1, body
    for bad in ("1", "yes", ""):
        status, body = s.probe(T4, "tcp_open", debug=bad)
        assert status == 400 and "debug must be true or false" in body, f"debug={bad!r}: {status} {body!r}"
    # A refusal stays a refusal with debug.
    status, body = s.probe("127.0.0.1", "tcp_open", debug="true")
    assert status == 403 and "loopback" in body, f"{status} {body!r}"
    print("debug: ok")


# ---- ipv6 ----

LISTENER6 = """
import socket, time
s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("::", %d)); s.listen(1024)
time.sleep(600)
""" % OPEN_PORT


def ipv6(s):
    """/probe and an /api/v1/tests ping over IPv6, and the refused IPv6 forms."""
    s.lab.popen(s.t, ["python3", "-c", LISTENER6])
    harness.wait_until(lambda: f"[::]:{OPEN_PORT} " in netns.sh("ss", "-6ltnH", ns=s.t, capture=True), 10,
                       "the target's IPv6 listener")
    for target in (T6, f"[{T6}]"):
        status, body = s.probe(target, "tcp6_open")
        assert status == 200, f"{target}: {status} {body!r}"
        assert sample(body, "probe_success") == 1 and sample(body, "probe_ip_protocol") == 6, body
        assert sample(body, "netprobe_probe_packets_received") == 3, body
    status, body = s.probe(T6, "tcp6_hole")
    assert status == 200 and sample(body, "probe_success") == 0 and sample(body, "probe_ip_protocol") == 6, body
    assert sample(body, "netprobe_probe_packets_lost") == 3, body
    # The debug log's fields are IPv6's (no IPv4 id, no DF), also when the module is IPv4's: an IP literal is
    # probed, and reported, in its own family; and an IPv4 literal in an IPv6 module is IPv4.
    for target, module, proto in ((T6, "tcp6_open", 6), (T6, "tcp_open", 6), (T4, "tcp6_open", 4)):
        status, body = s.probe(target, module, debug="true")
        lines, metrics = probe_log(body)
        assert status == 200 and sample(metrics, "probe_ip_protocol") == proto, f"{target} {module}: {body!r}"
        assert len(lines) == 3, lines
        for line in lines:
            assert f" from={target} " in line and "flags=SA" in line, line
            assert (" id=" in line) == (proto == 4) and (" DF " in line) == (proto == 4), line

    status, doc = post_tests(s, [
        {"type": "ping", "target": T6, "options": {"destport": OPEN_PORT, "count": 3, "interval": 0.2}},
        {"type": "ping", "target": T6, "options": {"destport": HOLE_PORT, "count": 2, "interval": 0.2,
                                                   "timeout": 0.5}}])
    assert status == 202, f"POST: {status} {doc!r}"
    ping_open, ping_hole = wait_tests(s, doc["receipt"], "the IPv6 pings")
    print(json.dumps([ping_open, ping_hole])[:1500], flush=True)
    assert ping_open["state"] == "done" and ping_open["address"] == T6, ping_open
    assert ping_open["result"]["sent"] == 3 and ping_open["result"]["received"] == 3, ping_open
    assert ping_hole["state"] == "done" and ping_hole["result"]["sent"] == 2, ping_hole
    assert ping_hole["result"]["received"] == 0, ping_hole

    refused = [("::1", "loopback"), ("[::1]", "loopback"), ("fe80::1", "link_local"), ("ff02::1", "multicast"),
               ("::ffff:127.0.0.1", "loopback"), ("[::ffff:198.18.9.2]", "embedded_ipv4"), ("::", "unspecified"),
               (P6, "own_address"), ("2001:db8::1", "not_allowed_prefix"), ("fe80::1%eth0", "syntax")]
    for target, reason in refused:
        status, body = s.probe(target, "tcp6_open")
        assert status == 403, f"/probe {target}: {status} {body!r}"
        status, body = s.get("/api/v1/tests", method="POST",
                             data=json.dumps({"tests": [{"type": "ping", "target": target}]}))
        assert status == 403 and json.loads(body)["reason"] == reason, f"POST {target}: {status} {body!r}"
    m = s.metrics()
    for reason in {r for _, r in refused}:
        n = sum(1 for _, r in refused if r == reason)
        got = harness.value(m, "netprobe_api_rejections_total", reason=reason) or 0
        assert got == 2 * n, f"rejections {reason}: {got}, want {2 * n}"
    print("ipv6: ok")


SCENARIOS = {"prometheus": prometheus, "concurrent": concurrent, "refusals": refusals, "worker": worker,
             "reload": reload, "api": api, "names": names, "debug": debug, "ipv6": ipv6}


def test():
    harness.require_root("netprobe opens raw sockets; the lab needs network namespaces")
    name = sys.argv[1] if len(sys.argv) > 1 else "prometheus"
    run(SCENARIOS[name])
    return 0


if __name__ == "__main__":
    harness.main(test)
