#!/usr/bin/env python3
"""TCPsyn loss stays exact when the network also drops the prober's RSTs (issue 11 part 1).

The target namespace drops a share of *every* packet sent to one of its addresses (probes and the prober
kernel's RSTs alike) with nftables. A lost RST leaves a half-open connection (request sock in SYN_RECV) on
the target; the next SYN on the same 4-tuple is out of its window and is answered by a pure ACK that
acknowledges the *earlier* SYN (docs/architecture.md#two-way-loss). netprobe must count that ACK as the new
probe's answer (it proves the SYN arrived) and reset the half-open state, so that the exported loss equals
the injected loss within binomial error, with fast 4-tuple reuse (16 source ports, a packet every ~4.7 ms:
reused every 75 ms, inside the target's 500 ms rate limit of such ACKs) and slow reuse (256 ports: ~1.2 s).

All cases run at once, one target address per case (IPv4 and IPv6, 10 % and 30 %, fast and slow), while a
forger in the target namespace sprays pure ACKs with random acknowledgements (half of them shaped like an
answer to one of our sequence numbers) at the prober's source ports from every target address: they must
change nothing. Assertions are on counts only (no timing).
"""
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
import harness  # noqa: E402
import netns  # noqa: E402

P4, P6 = "198.18.2.1", "fd00:1a::1"
OPEN_PORT = 8080
FAST = (42000, 42015)   # 16 source ports
SLOW = (43000, 43255)   # 256 source ports
NB_PACKETS = 600
ITERATIONS = 4
SIGMAS = 4.0

# name: (address, drop percent, group)
CASES = {
    "v4_10_fast": ("198.18.2.10", 10, "fast"),
    "v4_30_fast": ("198.18.2.11", 30, "fast"),
    "v4_10_slow": ("198.18.2.12", 10, "slow"),
    "v4_30_slow": ("198.18.2.13", 30, "slow"),
    "v6_10_fast": ("fd00:1a::10", 10, "fast"),
    "v6_30_fast": ("fd00:1a::11", 30, "fast"),
    "v6_10_slow": ("fd00:1a::12", 10, "slow"),
    "v6_30_slow": ("fd00:1a::13", 30, "slow"),
}

LISTENER = """
import socket, time
s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
s.bind(("::", %d)); s.listen(4096)
time.sleep(600)
""" % OPEN_PORT

FORGER = f"""
import random, sys, time
sys.path.insert(0, {os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib")!r})
import forge
s4, s6 = forge.Sender(), forge.Sender(v6=True)
rnd = random.Random(7)
ports = list(range({FAST[0]}, {FAST[1] + 1})) + list(range({SLOW[0]}, {SLOW[1] + 1}))
targets = {[(addr, ":" in addr) for addr, _, _ in CASES.values()]!r}
end = time.time() + 120
while time.time() < end:
    for _ in range(10):
        for addr, v6 in targets:
            # Half fully random, half shaped like the answer to one of our SYNs (ack - 1 with zero low bits).
            ack = rnd.getrandbits(32) if rnd.random() < 0.5 else ((rnd.getrandbits(18) << 14) + 1) & 0xFFFFFFFF
            pkt = forge.tcp(addr, {P6!r} if v6 else {P4!r}, {OPEN_PORT}, rnd.choice(ports),
                            rnd.getrandbits(32), ack, 0x10, v6)
            (s6 if v6 else s4).send(pkt, {P6!r} if v6 else {P4!r})
    time.sleep(0.01)
"""


def nft_rules():
    lines = ["table inet twoway {", "  chain in { type filter hook input priority 0;"]
    for addr, pct, _ in CASES.values():
        fam = "ip6" if ":" in addr else "ip"
        src = P6 if ":" in addr else P4
        # Every packet of the prober to this address: SYN probes and the kernel's RSTs alike.
        lines.append(f"    {fam} saddr {src} {fam} daddr {addr} numgen random mod 100 < {pct} drop")
    lines += ["  }", "}"]
    return "\n".join(lines) + "\n"


def config_text(port):
    lines = [
        "global:",
        "  probe_name: twoway",
        "  interval: 4",
        "  interval_packets: 0.004",
        "  nb_proc: 1",
        "  logging_level: INFO",
        f"  prometheus_port: {port}",
        "  prometheus_address: 127.0.0.1",
        "  dns_update_interval: 300",
        "groups:",
    ]
    for name, (a, z) in (("fast", FAST), ("slow", SLOW)):
        lines += [f"  {name}:", f"    src_port_a: {a}", f"    src_port_z: {z}", "    permit_target_auto_register: false"]
    lines.append("targets:")
    for name, (addr, _, group) in CASES.items():
        lines += [f"  {name}:", "    type: TCPsyn", f"    destination: \"{addr}\"", f"    dst_port: {OPEN_PORT}",
                  f"    nb_packets: {NB_PACKETS}", "    timeout: 0.5", "    auto_register_to_groups: false",
                  "    explicit_groups:", f"      register_to: [{group}]"]
    return "\n".join(lines) + "\n"


def run():
    harness.require_root()
    with netns.Lab() as lab:
        p, t = lab.ns("p"), lab.ns("t")
        lab.link(p, t, [f"{P4}/24", f"{P6}/64"], [f"{a}/24" if ":" not in a else f"{a}/64"
                                                   for a, _, _ in CASES.values()])
        lab.popen(t, ["python3", "-c", LISTENER])
        harness.wait_until(lambda: f":{OPEN_PORT} " in netns.sh("ss", "-ltnH", ns=t, capture=True), 10,
                           "the target's TCP listener")
        with tempfile.NamedTemporaryFile("w", suffix=".nft", delete=False) as fh:
            fh.write(nft_rules())
        netns.sh("nft", "-f", fh.name, ns=t)
        os.unlink(fh.name)

        port = 9100
        work = harness.tmpdir()
        path = os.path.join(work, "twoway.yaml")
        with open(path, "w") as fh:
            fh.write(config_text(port))
        log = open(os.path.join(work, "netprobe.log"), "w+")
        proc = lab.popen(p, [harness.netprobe_bin(), "run", path], stdout=log, stderr=log)
        lab.popen(t, ["python3", "-c", FORGER])

        def scrape():
            text = netns.sh("curl", "-sf", f"http://127.0.0.1:{port}/metrics", ns=p, capture=True, check=False)
            return harness.parse_metrics(text or "")

        def sent_of(metrics, name):
            return harness.value(metrics, "tcpsyn_sent_total", destination=name) or 0

        # ITERATIONS complete iterations of every case (bounded wait).
        deadline = time.time() + 90
        metrics = {}
        while time.time() < deadline and proc.poll() is None:
            metrics = scrape()
            if all(sent_of(metrics, n) >= ITERATIONS * NB_PACKETS for n in CASES):
                break
            time.sleep(0.5)
        log.seek(0)
        output = log.read()
        assert proc.poll() is None, f"netprobe exited:\n{output[-4000:]}"

        failures = []
        for name, (addr, pct, group) in CASES.items():
            sent = sent_of(metrics, name)
            lost = harness.value(metrics, "tcpsyn_loss_total", destination=name) or 0
            ack_fail = harness.value(metrics, "tcpsyn_match_ack_fail_count", destination=name) or 0
            expected = pct / 100.0
            share = lost / sent if sent else float("nan")
            sd = (expected * (1 - expected) / sent) ** 0.5 if sent else 0
            print(f"  {name:11} drop={expected:.2f} sent={sent:.0f} lost={lost:.0f} loss={share:.4f} "
                  f"({(share - expected) / sd if sd else 0:+.1f} sd) match_ack_fail={ack_fail:.0f}", flush=True)
            if sent < ITERATIONS * NB_PACKETS:
                failures.append(f"{name}: only {sent} probes sent in 90 s")
            elif abs(share - expected) > SIGMAS * sd:
                failures.append(f"{name}: loss {share:.4f} not within {SIGMAS} sd ({sd:.4f}) of {expected}")
        rejected = {dict(ls).get("reason"): v for (n, ls), v in metrics.items()
                    if n == "netprobe_capture_rejected_total"}
        print(f"  capture rejects: {rejected}", flush=True)
        if not rejected.get("unproven_ack"):
            failures.append("no forged ACK reached the prober's matching: the forger proved nothing")
        assert not failures, "\n".join(failures) + "\n--- netprobe log ---\n" + output[-4000:]
    print("two_way_loss: ok")


if __name__ == "__main__":
    harness.main(run)
