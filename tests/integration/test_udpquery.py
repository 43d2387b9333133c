"""UDPquery in the daemon (issue 18, docs/service-checks.md#udpquery) in a namespace lab: netprobe in `p`,
services in `s`.

  dns:        dnsmasq queried with the DNS ID as token: zero loss, exact match (contains the A record);
              an on-path forger in `s` answers every query first with a wrong ID: never counted
              (netprobe_capture_rejected_total{reason="wrong_token"} grows);
  dns_forged: the same query to an address whose queries `s` drops: only the forger answers (wrong IDs):
              100 % loss, nothing unexpected;
  echo_*:     a Python UDP echo service, expect exact / contains / regex: zero loss;
  wrong:      a service answering something else: every probe unexpected, not lost;
  closed:     a port nobody listens on: every probe closed (ICMP port unreachable), not lost.
"""
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import harness  # noqa: E402
import netns  # noqa: E402

P4, S4, S4_DROPPED = "10.18.1.1", "10.18.1.2", "10.18.1.3"
PORTS = (40000, 40003)
ITERATIONS = 3
DNS = "hex:0000 0100 0001 0000 0000 0000 03737663 0474657374 00 0001 0001"  # svc.test A?, ID 0
ANSWER = "hex:0a120109"  # 10.18.1.9

TARGETS = {
    # name: (destination, port, payload, token, expect, nb_packets)
    "dns": (S4, 53, DNS, "{offset: 0, length: 2}", f"{{contains: '{ANSWER}'}}", 20),
    "dns_forged": (S4_DROPPED, 53, DNS, "{offset: 0, length: 2}", f"{{contains: '{ANSWER}'}}", 20),
    "echo_exact": (S4, 7, "ping", None, "{exact: ping}", 4),
    # Without a token the 5-tuple is the match: each target its own port (docs/service-checks.md#daemon).
    "echo_contains": (S4, 17, "ping", None, "{contains: 'hex:696e'}", 4),
    "echo_regex": (S4, 27, "ping", None, "{regex: '^p.ng$'}", 4),
    "wrong": (S4, 8, "ping", None, "{exact: ping}", 4),
    "closed": (S4, 9, "ping", None, None, 4),
}

SERVICES = """
import socket, select, time
socks = []
for port, reply in ((7, None), (17, None), (27, None), (8, b"nope")):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("%s", port))
    socks.append((s, reply))
deadline = time.time() + 300
while time.time() < deadline:
    ready, _, _ = select.select([s for s, _ in socks], [], [], 1)
    for s, reply in socks:
        if s in ready:
            data, peer = s.recvfrom(2048)
            s.sendto(reply if reply is not None else data, peer)
""" % S4

# On path in `s`: sniffs every DNS query arriving and answers it at once, before dnsmasq, from the queried
# address, with the ID flipped (never the probe's) and the very content the target expects.
FORGER = r"""
import socket, struct, time
def csum(b):
    if len(b) % 2: b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16: s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff
sniff = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(0x0800))
sniff.settimeout(1)
out = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
deadline, sent = time.time() + 300, 0
while time.time() < deadline and sent < 100000:
    try:
        pkt = sniff.recv(4096)
    except socket.timeout:
        continue
    if len(pkt) < 28 or pkt[9] != 17: continue
    ihl = (pkt[0] & 15) * 4
    src, dst = pkt[12:16], pkt[16:20]
    sport, dport = struct.unpack("!HH", pkt[ihl:ihl + 4])
    if dport != 53: continue
    q = pkt[ihl + 8:]
    if len(q) < 2: continue
    wrong_id = struct.pack("!H", struct.unpack("!H", q[:2])[0] ^ 0xffff)
    body = wrong_id + b"\x81\x80" + q[4:] + b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04\x0a\x12\x01\x09"
    udp = struct.pack("!HHHH", 53, sport, 8 + len(body), 0) + body
    c = csum(dst + src + struct.pack("!xBH", 17, len(udp)) + udp) or 0xffff
    udp = udp[:6] + struct.pack("!H", c) + udp[8:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0x1234, 0, 64, 17, 0, dst, src)
    ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
    out.sendto(ip + udp, (socket.inet_ntoa(src), 0))
    sent += 1
"""


def config_text(port):
    lines = ["global:", "  probe_name: lab", "  interval: 2", "  nb_proc: 1", "  logging_level: INFO",
             f"  prometheus_port: {port}", "  prometheus_address: 127.0.0.1", "  dns_update_interval: 300",
             "groups:", "  lab:",
             f"    src_port_a: {PORTS[0]}", f"    src_port_z: {PORTS[1]}", "targets:"]
    for name, (dst, dport, payload, token, expect, nb) in TARGETS.items():
        lines += [f"  {name}:", "    type: UDPquery", f"    destination: \"{dst}\"", f"    dst_port: {dport}",
                  f"    payload: '{payload}'", f"    nb_packets: {nb}", "    timeout: 0.5"]
        if token:
            lines.append(f"    token: {token}")
        if expect:
            lines.append(f"    expect: {expect}")
    return "\n".join(lines) + "\n"


def value(metrics, name, target):
    return harness.value(metrics, name, destination=target)


def main():
    harness.require_root()
    harness.require_executable("/usr/sbin/dnsmasq")
    with netns.Lab() as lab:
        p, s = lab.ns("p"), lab.ns("s")
        lab.link(p, s, [f"{P4}/24"], [f"{S4}/24", f"{S4_DROPPED}/24"])
        nft = "table inet lab {\n  chain in {\n    type filter hook input priority 0;\n    ip daddr %s drop\n  }\n}\n" % S4_DROPPED
        with tempfile.NamedTemporaryFile("w", suffix=".nft", delete=False) as fh:
            fh.write(nft)
        netns.sh("nft", "-f", fh.name, ns=s)
        os.unlink(fh.name)
        lab.popen(s, ["dnsmasq", "-k", "--conf-file=/dev/null", "--no-resolv", "--no-hosts", "--pid-file=",
                      "--user=root", f"--listen-address={S4}", "--bind-interfaces", "--port=53",
                      "--address=/svc.test/10.18.1.9"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        lab.popen(s, [sys.executable, "-c", SERVICES])
        harness.wait_until(lambda: all(f":{port} " in netns.sh("ss", "-Hlun", ns=s, capture=True)
                                       for port in (53, 7, 17, 27, 8)), 30, "dnsmasq and the echo services")
        lab.popen(s, [sys.executable, "-c", FORGER])

        port = 9118
        with tempfile.TemporaryDirectory() as tmp:
            os.chmod(tmp, 0o755)  # netprobe reads its configuration as an unprivileged user
            path = os.path.join(tmp, "lab.yaml")
            with open(path, "w") as fh:
                fh.write(config_text(port))
            check = subprocess.run(["ip", "netns", "exec", p, harness.netprobe_bin(), "check-config", path],
                                   capture_output=True, text=True, timeout=60)
            assert check.returncode == 0, check.stdout + check.stderr
            log = open(os.path.join(tmp, "netprobe.log"), "w+")
            proc = lab.popen(p, [harness.netprobe_bin(), "run", path], stdout=log, stderr=log)

            def scrape():
                text = netns.sh("curl", "-sf", f"http://127.0.0.1:{port}/metrics", ns=p, capture=True, check=False)
                return harness.parse_metrics(text or "")

            deadline = time.time() + 90
            metrics = {}
            while time.time() < deadline and proc.poll() is None:
                metrics = scrape()
                if all((value(metrics, "udpquery_sent_total", n) or 0) >= ITERATIONS * t[5]
                       for n, t in TARGETS.items()):
                    break
                time.sleep(0.5)
            log.seek(0)
            output = log.read()
            assert proc.poll() is None, f"netprobe exited:\n{output}"
            report = {n: {k: value(metrics, f"udpquery_{k}", n) for k in ("sent_total", "loss_total",
                                                                           "unexpected_total", "closed_total")}
                      for n in TARGETS}
            harness.log(f"udpquery: {report}")
            for name, r in report.items():
                assert r["sent_total"] and r["sent_total"] >= ITERATIONS * TARGETS[name][5], (name, r, output)
            for name in ("dns", "echo_exact", "echo_contains", "echo_regex"):
                assert report[name]["loss_total"] == 0, (name, report[name])
                assert report[name]["unexpected_total"] == 0 and report[name]["closed_total"] == 0, name
            forged = report["dns_forged"]
            assert forged["loss_total"] == forged["sent_total"], ("forged answers counted", forged)
            assert forged["unexpected_total"] == 0, forged
            wrong = report["wrong"]
            assert wrong["unexpected_total"] == wrong["sent_total"] and wrong["loss_total"] == 0, wrong
            closed = report["closed"]
            assert closed["closed_total"] == closed["sent_total"] and closed["loss_total"] == 0, closed
            rejected = harness.value(metrics, "netprobe_capture_rejected_total", reason="wrong_token") or 0
            # Every query of dns and dns_forged got a forged answer first.
            assert rejected >= report["dns"]["sent_total"] + forged["sent_total"] - 40, (rejected, report)
            rtt = harness.value(metrics, "udpquery_round_trip_seconds", destination="dns", percentile="50")
            assert rtt is not None and 0 < rtt < 1, rtt
    harness.log("udpquery: OK")


if __name__ == "__main__":
    main()
