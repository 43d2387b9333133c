#!/usr/bin/env python3
"""DNS end to end: the real build/netprobe in a prober namespace resolves its hostname targets with c-ares
through dnsmasq (Debian's dnsmasq-base) listening on 127.0.0.1:53 inside that namespace, which the
namespace's own /etc/netns/<ns>/resolv.conf names: netprobe reads the system resolver settings as in
production, and no query can leave the lab (the namespace has no route anywhere else).

Checked through /metrics, with dns_update_interval 0 (re-resolve every iteration, netprobify's behaviour):
  - v4 and v6 hostnames resolve: app_host_resolution_status 1, app_host_resolution_change_total 1, probed;
  - an unknown name (NXDOMAIN): status 0, never probed, no measurement series;
  - a record that changes (to a blackhole address): change_total 2 and the loss ratio turns to 1, i.e. the
    probes moved to the new address;
  - a record that disappears (NXDOMAIN): status 0 and the target's measurement series are removed; when it
    comes back, status 1, change_total +1 and its series return;
  - an IP-literal target keeps being probed throughout;
  - with a DNS server that never answers, the IP-literal target is probed from the first iteration while
    the hostnames are still pending; they then fail (status 0, no series) within resolv.conf's timeout.
"""
import os
import shutil
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
import harness  # noqa: E402
import netns  # noqa: E402

DNSMASQ = "/usr/sbin/dnsmasq"
P4, T4, HOLE4 = "198.18.0.1", "198.18.0.2", "198.18.0.99"
P6, T6 = "fd00:18::1", "fd00:18::2"
PORT = 9100

SILENT_SERVER = """
import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.2", 53))
while True:
    s.recvfrom(512)  # and never answer
"""

TARGETS = {
    # name: (destination, address_family or None)
    "web_v4": ("web.netprobe.test", None),
    "web_v6": ("web.netprobe.test", "ipv6"),
    "moving": ("moving.netprobe.test", None),
    "flaky": ("flaky.netprobe.test", None),
    "missing": ("missing.netprobe.test", None),
    "literal": (T4, None),
}


def hosts_file(path, moving, flaky_present):
    lines = [f"{T4} web.netprobe.test", f"{T6} web.netprobe.test", f"{moving} moving.netprobe.test"]
    if flaky_present:
        lines.append(f"{T4} flaky.netprobe.test")
    with open(path + ".tmp", "w") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(path + ".tmp", path)


def config_text():
    lines = [
        "global:",
        "  probe_name: lab",
        "  interval: 1",
        "  nb_proc: 1",
        "  logging_level: INFO",
        f"  prometheus_port: {PORT}",
        "  prometheus_address: 127.0.0.1",
        "  dns_update_interval: 0",
        "groups:",
        "  lab:",
        "    src_port_a: 65000",
        "    src_port_z: 65001",
        "targets:",
    ]
    for name, (dst, af) in TARGETS.items():
        lines += [f"  {name}:", "    type: ICMPping", f"    destination: \"{dst}\"", "    nb_packets: 5",
                  "    timeout: 0.3"]
        if af:
            lines.append(f"    address_family: {af}")
    return "\n".join(lines) + "\n"


def run():
    harness.require_root()
    harness.require_executable(DNSMASQ, "dnsmasq is not installed (apt-get install dnsmasq-base)")
    work = harness.tmpdir()
    netns_etc = None
    try:
        with netns.Lab() as lab:
            p, t = lab.ns("p"), lab.ns("t")
            ip_pt, _ = lab.link(p, t, [f"{P4}/24", f"{P6}/64"], [f"{T4}/24", f"{T6}/64"])
            # The address `moving` moves to: a neighbour nobody owns, so every probe to it is lost.
            netns.sh("ip", "neigh", "add", HOLE4, "lladdr", "02:00:00:00:00:99", "dev", ip_pt, "nud", "permanent",
                     ns=p)
            # `ip netns exec` bind-mounts /etc/netns/<ns>/* over /etc: this is the prober's resolv.conf.
            netns_etc = f"/etc/netns/{p}"
            os.makedirs(netns_etc, exist_ok=True)
            with open(os.path.join(netns_etc, "resolv.conf"), "w") as f:
                f.write("nameserver 127.0.0.1\noptions timeout:1 attempts:2\n")

            hosts = os.path.join(work, "hosts")
            hosts_file(hosts, T4, True)
            dns_log = open(os.path.join(work, "dnsmasq.log"), "w")
            dnsmasq = lab.popen(p, [DNSMASQ, "--keep-in-foreground", "--conf-file=/dev/null", "--pid-file=",
                                    "--user=root", "--no-resolv", "--no-hosts", "--listen-address=127.0.0.1",
                                    "--bind-interfaces", "--port=53", "--local=/netprobe.test/",
                                    f"--addn-hosts={hosts}", "--no-negcache", "--log-queries",
                                    "--log-facility=-"], stdout=dns_log, stderr=dns_log)
            harness.wait_until(lambda: ":53 " in netns.sh("ss", "-lunH", ns=p, capture=True), 10, "dnsmasq")

            config = os.path.join(work, "lab.yaml")
            with open(config, "w") as f:
                f.write(config_text())
            log_path = os.path.join(work, "netprobe.log")
            log = open(log_path, "w")
            proc = lab.popen(p, [harness.netprobe_bin(), "run", config], stdout=log, stderr=log)

            def output():
                with open(log_path) as f:
                    text = f.read()
                with open(os.path.join(work, "dnsmasq.log")) as f:
                    return text + "\n--- dnsmasq ---\n" + "\n".join(f.read().splitlines()[-30:])

            def scrape():
                assert proc.poll() is None, f"netprobe exited:\n{output()}"
                text = netns.sh("curl", "-sf", f"http://127.0.0.1:{PORT}/metrics", ns=p, capture=True, check=False)
                return harness.parse_metrics(text or "")

            def val(m, name, target, **labels):
                return harness.value(m, name, destination=target, **labels)

            def wait(predicate, what, timeout_s=30):
                holder = {}

                def check():
                    holder["m"] = scrape()
                    return predicate(holder["m"])
                try:
                    harness.wait_until(check, timeout_s, what, interval_s=0.3)
                except harness.WaitTimeout as e:
                    raise AssertionError(f"{e}\n{output()}") from None
                return holder["m"]

            # 1. Start: every resolvable name is resolved and probed; the unknown one is not.
            def started(m):
                return all((val(m, "icmp_sent_total", n) or 0) >= 10
                           for n in ("web_v4", "web_v6", "moving", "flaky", "literal"))
            m = wait(started, "every resolvable target probed")
            for n, af in (("web_v4", "ipv4"), ("web_v6", "ipv6"), ("moving", "ipv4"), ("flaky", "ipv4"),
                          ("literal", "ipv4")):
                assert val(m, "app_host_resolution_status", n, address_family=af) == 1, (n, output())
                assert val(m, "app_host_resolution_change_total", n, address_family=af) == 1, (n, output())
                assert val(m, "icmp_loss_ratio", n) == 0, (n, val(m, "icmp_loss_ratio", n))
            assert val(m, "app_host_resolution_status", "missing") == 0, output()
            assert not harness.select(m, "icmp_sent_total", destination="missing"), "an unresolved target was probed"
            print("start: ok")

            # 2. `moving` moves to the blackhole, `flaky` disappears.
            hosts_file(hosts, HOLE4, False)
            dnsmasq.send_signal(1)  # SIGHUP: dnsmasq re-reads --addn-hosts
            m = wait(lambda m: val(m, "app_host_resolution_change_total", "moving") == 2
                     and val(m, "icmp_loss_ratio", "moving") == 1
                     and val(m, "app_host_resolution_status", "flaky") == 0
                     and not harness.select(m, "icmp_sent_total", destination="flaky"),
                     "the change of `moving` and the NXDOMAIN of `flaky`")
            assert val(m, "app_host_resolution_status", "moving") == 1
            assert not harness.select(m, "icmp_loss_ratio", destination="flaky")
            assert not harness.select(m, "icmp_round_trip_seconds", destination="flaky")
            # Kept, as netprobify: only the measurement series go.
            assert val(m, "app_host_resolution_change_total", "flaky") == 1
            # Nothing else moved.
            for n in ("web_v4", "web_v6", "literal"):
                assert val(m, "app_host_resolution_change_total", n) == 1, n
                assert val(m, "icmp_loss_ratio", n) == 0, n
            print("change and NXDOMAIN: ok")

            # 3. `flaky` comes back: a new resolution, probed again.
            before = val(m, "icmp_sent_total", "literal")
            hosts_file(hosts, HOLE4, True)
            dnsmasq.send_signal(1)
            m = wait(lambda m: val(m, "app_host_resolution_status", "flaky") == 1
                     and (val(m, "icmp_sent_total", "flaky") or 0) > 0, "`flaky` back")
            assert val(m, "app_host_resolution_change_total", "flaky") == 2
            assert val(m, "icmp_sent_total", "literal") > before, "the literal target stopped being probed"
            print("recovery: ok")
            proc.terminate()
            proc.wait(timeout=10)

            # 4. A DNS server that never answers: the literal target is probed at once, long before the
            #    hostnames fail (resolv.conf: 1 s then 2 s), and they fail with status 0 and no series.
            lab.popen(p, ["python3", "-c", SILENT_SERVER])
            harness.wait_until(lambda: "127.0.0.2:53 " in netns.sh("ss", "-lunH", ns=p, capture=True), 10,
                               "the silent DNS server")
            with open(os.path.join(netns_etc, "resolv.conf"), "w") as f:
                f.write("nameserver 127.0.0.2\noptions timeout:1 attempts:2\n")
            log.close()
            log = open(log_path, "w")
            started = time.monotonic()
            proc = lab.popen(p, [harness.netprobe_bin(), "run", config], stdout=log, stderr=log)
            m = wait(lambda m: (val(m, "icmp_sent_total", "literal") or 0) >= 5, "the literal target probed", 10)
            first_report = time.monotonic() - started
            assert not harness.select(m, "app_host_resolution_status", destination="web_v4"), \
                f"the literal target waited for DNS ({first_report:.1f} s):\n{output()}"
            print(f"silent DNS: literal probed after {first_report:.2f} s, hostnames still pending")
            m = wait(lambda m: all(val(m, "app_host_resolution_status", n) == 0
                                   for n in ("web_v4", "web_v6", "moving", "flaky", "missing")),
                     "every hostname failed on the silent server", 20)
            for n in ("web_v4", "web_v6", "moving", "flaky", "missing"):
                assert not harness.select(m, "icmp_sent_total", destination=n), n
            assert val(m, "icmp_loss_ratio", "literal") == 0
            print(f"silent DNS: hostnames inactive after {time.monotonic() - started:.1f} s: ok")
            proc.terminate()
            proc.wait(timeout=10)
    finally:
        if netns_etc:
            shutil.rmtree(netns_etc, ignore_errors=True)


if __name__ == "__main__":
    harness.main(run)
