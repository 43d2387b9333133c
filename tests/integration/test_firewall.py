#!/usr/bin/env python3
"""export-fw and convert-fw end to end (issue 13), in a namespace of the test's own:

  - the real build/netprobe exports the rules of a configuration with every probe type, IPv4 and IPv6, a
    subnet target, host names and source-subnet groups;
  - convert-fw resolves the names through dnsmasq inside the namespace (its /etc/netns/<ns>/resolv.conf;
    no query leaves the lab): every A and AAAA record of a name is in the rules;
  - the nftables output is checked (`nft -c -f`) and then loaded (`nft -f`) into an `inet filter` table with
    default-drop input and output chains, the iptables/ip6tables output passes `iptables-restore --test` /
    `ip6tables-restore --test`, and so do the unit tests' golden files (tests/fixtures/firewall);
  - exit codes: 0, 64 (unknown type), 65 (invalid file), 66 (no such file), 68 (a name does not resolve).

Scenario `enforced`: the rules are not only valid, they are enough. A prober namespace whose nftables input
and output chains drop everything but loopback gets convert-fw's rules for its configuration (every probe
type, IPv4 and IPv6, a listening and a closed TCP port); netprobe then measures zero loss on every target,
while a target added to the configuration after the export (so without rules) is refused by the output
chain (its probes fail with EPERM: netprobe_send_errors_total{reason="permission"}) and reads 100 % loss.

Scenario `enforced_iptables`: the same with the iptables/ip6tables commands and DROP policies.

Usage: test_firewall.py [parse|enforced|enforced_iptables]
"""
import os
import shutil
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
import harness  # noqa: E402
import netns  # noqa: E402

DNSMASQ = "/usr/sbin/dnsmasq"
FIXTURES = os.path.join(harness.SOURCE_DIR, "tests", "fixtures", "firewall")
API = ["198.18.7.1", "198.18.7.2", "fd00:7::1"]

CONFIG = """\
global:
  probe_name: fw_lab
  interval: 10
  nb_proc: 1
  logging_level: INFO
  prometheus_port: 9100
  dns_update_interval: 300
groups:
  fabric:
    src_port_a: 40000
    src_port_z: 40015
    src_subnet_ipv4: 198.51.100.0/28
    src_subnet_ipv6: 2001:db8:51::/124
  plain:
    src_port_a: 65000
    src_port_z: 65000
targets:
  web: {type: TCPsyn, destination: 203.0.113.10, dst_port: 443, tags: [front]}
  web6: {type: TCPsyn, destination: "2001:db8:113::10", dst_port: 443}
  udp: {type: UDPunreachable, destination: 203.0.113.53, dst_port: 33434}
  udp6: {type: UDPunreachable, destination: "2001:db8:113::53", dst_port: 33434}
  rack: {type: ICMPping, destination: 203.0.113.64/29, is_subnet: true}
  ping6: {type: ICMPping, destination: "2001:db8:113::1"}
  api: {type: TCPsyn, destination: api.fw.test, dst_port: 8443}
  v6ping: {type: ICMPping, destination: v6.fw.test, address_family: ipv6}
"""

BASE_NFT = """\
table inet filter {
  chain input { type filter hook input priority 0; policy drop; }
  chain output { type filter hook output priority 0; policy drop; }
}
"""


def restore_files(text, work, tag):
    """iptables commands -> one iptables-restore file per family."""
    paths = {}
    for cmd in ("iptables", "ip6tables"):
        rules = [line[len(cmd) + 1:] for line in text.splitlines() if line.startswith(cmd + " ")]
        path = os.path.join(work, f"{tag}.{cmd}")
        with open(path, "w") as f:
            f.write("*filter\n" + "\n".join(rules) + "\nCOMMIT\n")
        paths[cmd] = (path, len(rules))
    return paths


def run_parse():
    harness.require_root()
    for tool in ("nft", "iptables-restore", "ip6tables-restore"):
        if not shutil.which(tool):
            harness.skip(f"{tool} is not installed (packaging/install-deps.sh installs nftables and iptables)")
    harness.require_executable(DNSMASQ, "dnsmasq is not installed (apt-get install dnsmasq-base)")
    work = harness.tmpdir()
    netns_etc = None
    try:
        with netns.Lab() as lab:
            p = lab.ns("p")
            netns_etc = f"/etc/netns/{p}"
            os.makedirs(netns_etc, exist_ok=True)
            with open(os.path.join(netns_etc, "resolv.conf"), "w") as f:
                f.write("nameserver 127.0.0.1\noptions timeout:1 attempts:2\n")
            hosts = os.path.join(work, "hosts")
            with open(hosts, "w") as f:
                f.write("".join(f"{a} api.fw.test\n" for a in API) + "fd00:7::6 v6.fw.test\n")
            dns_log = open(os.path.join(work, "dnsmasq.log"), "w")
            lab.popen(p, [DNSMASQ, "--keep-in-foreground", "--conf-file=/dev/null", "--pid-file=", "--user=root",
                          "--no-resolv", "--no-hosts", "--listen-address=127.0.0.1", "--bind-interfaces",
                          "--port=53", "--local=/fw.test/", f"--addn-hosts={hosts}", "--log-facility=-"],
                      stdout=dns_log, stderr=dns_log)
            harness.wait_until(lambda: ":53 " in netns.sh("ss", "-lunH", ns=p, capture=True), 10, "dnsmasq")

            def netprobe(*args):
                return netns.sh(harness.netprobe_bin(), *args, ns=p, check=False, timeout=60)

            config = os.path.join(work, "lab.yaml")
            with open(config, "w") as f:
                f.write(CONFIG)
            rules = os.path.join(work, "rules.yaml")
            r = netprobe("export-fw", "--from-host", "prober.fw.test", "-o", rules, config)
            assert r.returncode == 0, f"export-fw: {r.returncode} {r.stderr}"
            with open(rules) as f:
                exported = f.read()
            assert "to_host: api.fw.test" in exported and "to_host: 203.0.113.64/29" in exported, exported
            # Tag selection, as on `netprobe check`: only `web` carries the tag.
            r = netprobe("export-fw", "--from-host", "prober.fw.test", "--include-tags", "front", config)
            assert r.returncode == 0, f"export-fw --include-tags: {r.returncode} {r.stderr}"
            assert "203.0.113.10" in r.stdout and "api.fw.test" not in r.stdout, r.stdout
            r = netprobe("export-fw", "--from-host", "prober.fw.test", "--exclude-tags", "front", config)
            assert "203.0.113.10" not in r.stdout and "api.fw.test" in r.stdout, r.stdout
            # The dynamic inventory's targets need rules too: its plug-ins run once (unless --no-inventory);
            # a plug-in that gives nothing is an error (69), not a smaller rule set.
            plugins = os.path.join(work, "inventories")
            os.makedirs(plugins)
            plugin = os.path.join(plugins, "cmdb")
            with open(plugin, "w") as f:
                f.write("#!/bin/sh\nprintf '%s\\n---\\n' '{\"targets\": [{\"hostname\": \"db1\", "
                        "\"destination\": \"198.51.100.77\", \"type\": \"TCPsyn\", \"dst_port\": 5432, "
                        "\"groups\": [\"plain\"]}]}'\n")
            os.chmod(plugin, 0o755)
            r = netprobe("export-fw", "--from-host", "prober.fw.test", config)
            assert r.returncode == 0 and "to_host: 198.51.100.77" in r.stdout, f"inventory: {r.returncode} {r.stderr}"
            r = netprobe("export-fw", "--from-host", "prober.fw.test", "--no-inventory", config)
            assert r.returncode == 0 and "198.51.100.77" not in r.stdout, f"--no-inventory: {r.stdout}"
            with open(plugin, "w") as f:
                f.write("#!/bin/sh\nexit 2\n")
            r = netprobe("export-fw", "--from-host", "prober.fw.test", config)
            assert r.returncode == 69 and "inventory cmdb" in r.stderr, f"failing plug-in: {r.returncode} {r.stderr}"
            shutil.rmtree(plugins)
            print("export-fw: the inventory plug-in's target exported, --no-inventory leaves it out, a failing "
                  "plug-in is an error")

            outputs = {}
            for backend in ("nftables", "iptables", "ufw", "aws", "neutron"):
                r = netprobe("convert-fw", "-t", backend, rules)
                assert r.returncode == 0, f"convert-fw -t {backend}: {r.returncode} {r.stderr}"
                outputs[backend] = r.stdout
            # Every A and AAAA record of api.fw.test, in every backend.
            for backend, text in outputs.items():
                for a in API:
                    assert a in text, f"{backend}: {a} of api.fw.test missing:\n{text}"
                assert "fd00:7::6" in text, f"{backend}: v6.fw.test's AAAA missing"
            print("convert-fw: every A and AAAA record of api.fw.test in all five backends")

            # nftables: check mode, then really loaded into default-drop chains.
            base = os.path.join(work, "base.nft")
            with open(base, "w") as f:
                f.write(BASE_NFT)
            netns.sh("nft", "-f", base, ns=p)
            candidates = {"lab": outputs["nftables"]}
            with open(os.path.join(FIXTURES, "convert.nftables.golden")) as f:
                candidates["golden"] = f.read()
            for tag, text in candidates.items():
                path = os.path.join(work, f"{tag}.nft")
                with open(path, "w") as f:
                    f.write(text)
                r = netns.sh("nft", "-c", "-f", path, ns=p, check=False)
                assert r.returncode == 0, f"nft -c -f ({tag}): {r.stderr}\n{text}"
                commands = sum(1 for line in text.splitlines() if line.startswith("add rule"))
                print(f"nft -c -f: {tag} output parses ({commands} rules)")
            netns.sh("nft", "-f", os.path.join(work, "lab.nft"), ns=p)
            listed = netns.sh("nft", "list", "ruleset", ns=p, capture=True)
            loaded = sum(1 for line in listed.splitlines() if line.strip().endswith("accept"))
            expected = sum(1 for line in outputs["nftables"].splitlines() if line.startswith("add rule"))
            assert loaded == expected, f"{loaded} rules loaded, {expected} printed:\n{listed}"
            assert "tcp sport 40000-40015 tcp dport 443" in listed, listed
            print(f"nft -f: the lab's {loaded} rules loaded into inet filter")
            # Default-drop chains drop this namespace's DNS too (the rules only allow the probes).
            netns.sh("nft", "flush", "ruleset", ns=p)

            # iptables / ip6tables: restore files in test mode (nothing is committed).
            texts = {"lab": outputs["iptables"]}
            with open(os.path.join(FIXTURES, "convert.iptables.golden")) as f:
                texts["golden"] = f.read()
            for tag, text in texts.items():
                for cmd, (path, count) in restore_files(text, work, tag).items():
                    assert count > 0, f"{tag}: no {cmd} command"
                    r = netns.sh(f"{cmd}-restore", "--test", path, ns=p, check=False)
                    assert r.returncode == 0, f"{cmd}-restore --test ({tag}): {r.stderr}\n{open(path).read()}"
                    print(f"{cmd}-restore --test: {tag} output parses ({count} rules)")

            # Exit codes.
            missing = os.path.join(work, "missing.yaml")
            with open(missing, "w") as f:
                f.write("egress:\n- {to_host: nowhere.fw.test, protocol: tcp, ports: [1]}\n")
            hostile = os.path.join(work, "hostile.yaml")
            with open(hostile, "w") as f:
                f.write("egress:\n- {to_host: \"x; reboot\", protocol: tcp, ports: [1]}\n")
            cases = [
                (["convert-fw", "-t", "iptables", rules], 0, ""),
                (["convert-fw", "-t", "pf", rules], 64, "unknown type"),
                (["convert-fw", "-t", "aws", "--group", "sg;id", rules], 64, "--group"),
                (["convert-fw", "-t", "iptables", hostile], 65, f"{hostile}:2: egress[0].to_host"),
                (["convert-fw", "-t", "iptables", os.path.join(work, "nope.yaml")], 66, "nope.yaml"),
                (["convert-fw", "-t", "iptables", missing], 68, "nowhere.fw.test: does not resolve"),
                (["export-fw", os.path.join(work, "nope.yaml")], 65, ""),
                (["export-fw"], 64, ""),
                (["export-fw", "--from-host", "a b", config], 64, "--from-host"),
                (["export-fw", "--include-tags", "a", "--exclude-tags", "b", config], 64, ""),
            ]
            for args, code, text in cases:
                r = netprobe(*args)
                assert r.returncode == code, f"{args}: exit {r.returncode}, expected {code}: {r.stderr}"
                assert text in r.stderr, f"{args}: {text!r} not in {r.stderr!r}"
            print(f"exit codes: {len(cases)} cases ok")
    finally:
        if netns_etc:
            shutil.rmtree(netns_etc, ignore_errors=True)


P4, T4, P6, T6 = "198.18.8.1", "198.18.8.2", "fd00:8::1", "fd00:8::2"
OPEN_PORT, CLOSED_PORT, UNLISTED_PORT, UDP_PORT = 8080, 8081, 8082, 33434
ENFORCED_TARGETS = {
    "tcp_open_v4": ("TCPsyn", T4, OPEN_PORT), "tcp_closed_v4": ("TCPsyn", T4, CLOSED_PORT),
    "icmp_v4": ("ICMPping", T4, None), "udp_v4": ("UDPunreachable", T4, UDP_PORT),
    "tcp_open_v6": ("TCPsyn", T6, OPEN_PORT), "tcp_closed_v6": ("TCPsyn", T6, CLOSED_PORT),
    "icmp_v6": ("ICMPping", T6, None), "udp_v6": ("UDPunreachable", T6, UDP_PORT),
}
LISTENER = f"""
import socket, time
s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
s.bind(("::", {OPEN_PORT})); s.listen(4096)
time.sleep(600)
"""
# Default drop, loopback allowed (netprobe's /metrics and its processes talk over it).
DROP_ALL_NFT = """\
table inet filter {
  chain input { type filter hook input priority 0; policy drop; iif lo accept; }
  chain output { type filter hook output priority 0; policy drop; oif lo accept; }
}
"""


def enforced_config(port, targets):
    lines = ["global:", "  probe_name: fw_enforced", "  interval: 2", "  nb_proc: 1", "  logging_level: INFO",
             f"  prometheus_port: {port}", "  prometheus_address: 127.0.0.1", "  dns_update_interval: 300",
             "groups:", "  lab:", "    src_port_a: 41000", "    src_port_z: 41007", f"    src_ipv4: {P4}",
             f"    src_ipv6: \"{P6}\"", "targets:"]
    for name, (type_, dst, dport) in targets.items():
        lines += [f"  {name}:", f"    type: {type_}", f"    destination: \"{dst}\"", "    nb_packets: 20",
                  "    timeout: 0.5"]
        if dport:
            lines.append(f"    dst_port: {dport}")
    return "\n".join(lines) + "\n"


def run_enforced(backend):
    harness.require_root()
    tool = "nft" if backend == "nftables" else "iptables"
    if not shutil.which(tool):
        harness.skip(f"{tool} is not installed (packaging/install-deps.sh)")
    work = harness.tmpdir()
    port = 9101
    with netns.Lab() as lab:
        p, t = lab.ns("p"), lab.ns("t")
        lab.link(p, t, [f"{P4}/24", f"{P6}/64"], [f"{T4}/24", f"{T6}/64"])
        lab.popen(t, ["python3", "-c", LISTENER])
        harness.wait_until(lambda: f":{OPEN_PORT} " in netns.sh("ss", "-ltnH", ns=t, capture=True), 10,
                           "the target's TCP listener")
        config = os.path.join(work, "lab.yaml")
        with open(config, "w") as f:
            f.write(enforced_config(port, ENFORCED_TARGETS))
        rules = os.path.join(work, "rules.yaml")
        r = netns.sh(harness.netprobe_bin(), "export-fw", "--from-host", "p", "-o", rules, config, check=False)
        assert r.returncode == 0, r.stderr
        r = netns.sh(harness.netprobe_bin(), "convert-fw", "-t", backend, rules, check=False)
        assert r.returncode == 0, r.stderr
        if backend == "nftables":
            generated = os.path.join(work, "rules.nft")
            with open(generated, "w") as f:
                f.write(r.stdout)
            base = os.path.join(work, "drop.nft")
            with open(base, "w") as f:
                f.write(DROP_ALL_NFT)
            netns.sh("nft", "-f", base, ns=p)
            netns.sh("nft", "-f", generated, ns=p)
        else:
            for cmd in ("iptables", "ip6tables"):
                netns.sh(cmd, "-P", "INPUT", "DROP", ns=p)
                netns.sh(cmd, "-P", "OUTPUT", "DROP", ns=p)
                netns.sh(cmd, "-A", "INPUT", "-i", "lo", "-j", "ACCEPT", ns=p)
                netns.sh(cmd, "-A", "OUTPUT", "-o", "lo", "-j", "ACCEPT", ns=p)
            commands = [line.split() for line in r.stdout.splitlines() if line and not line.startswith("#")]
            assert commands and all(c[0] in ("iptables", "ip6tables") for c in commands), r.stdout
            for c in commands:
                netns.sh(*c, ns=p)

        # The configuration netprobe runs has one target more than what was exported: it must be dropped.
        targets = dict(ENFORCED_TARGETS, unlisted_v4=("TCPsyn", T4, UNLISTED_PORT))
        with open(config, "w") as f:
            f.write(enforced_config(port, targets))
        log_path = os.path.join(work, "netprobe.log")
        log = open(log_path, "w")
        proc = lab.popen(p, [harness.netprobe_bin(), "run", config], stdout=log, stderr=log)

        def output():
            with open(log_path) as f:
                return f.read()[-4000:]

        def scrape():
            text = netns.sh("curl", "-sf", f"http://127.0.0.1:{port}/metrics", ns=p, capture=True, check=False)
            return harness.parse_metrics(text or "")

        prefix = {"TCPsyn": "tcpsyn", "ICMPping": "icmp", "UDPunreachable": "udp_unreachable"}
        holder = {}

        def three_iterations():
            assert proc.poll() is None, f"netprobe exited:\n{output()}"
            holder["m"] = m = scrape()
            sent = [harness.value(m, f"{prefix[ty]}_sent_total", destination=n) or 0
                    for n, (ty, _, _) in ENFORCED_TARGETS.items()]
            refused = harness.value(m, "netprobe_send_errors_total", reason="permission") or 0
            return min(sent) >= 60 and refused >= 60
        harness.wait_until(three_iterations, 60, "three iterations of every target")
        m = holder["m"]
        for name, (type_, _, _) in ENFORCED_TARGETS.items():
            loss = harness.value(m, f"{prefix[type_]}_loss_ratio", destination=name)
            assert loss == 0.0, f"{name}: loss {loss} behind convert-fw's rules\n{output()}"
        # The control: the output chain refuses the unlisted target's probes (EPERM at sendmmsg), and a
        # refusal about the destination reads as loss: the target is unreachable from here.
        assert harness.value(m, "tcpsyn_sent_total", destination="unlisted_v4"), output()
        assert harness.value(m, "tcpsyn_loss_ratio", destination="unlisted_v4") == 1.0, output()
        print(f"enforced ({backend}): {len(ENFORCED_TARGETS)} targets lose nothing behind default-drop chains with "
              f"convert-fw's rules; the unlisted target's probes are refused by the output chain")
        proc.terminate()
        proc.wait(timeout=10)


if __name__ == "__main__":
    scenario = sys.argv[1] if len(sys.argv) > 1 else "parse"
    harness.main({"parse": run_parse, "enforced": lambda: run_enforced("nftables"),
                  "enforced_iptables": lambda: run_enforced("iptables")}[scenario])
