#!/usr/bin/env python3
"""The ECMP lab itself (tests/integration/lib/ecmp.py, issue 12 part 5), without netprobe.

For TCP SYNs and UDP datagrams over IPv4 and IPv6, over 24 source ports:
  - the router's layer-4 multipath hash spreads the ports over both links, and port_map() is stable (asked
    twice, with different packet counts: the same answer) and covers every port; kernel UDP sockets get the
    maps of the crafted packets;
  - every packet of a flow crosses one link only (IPv4: IP-ID and TCP sequence vary per packet);
  - IPv6 flow label: under the lab's policy (3, the 5-tuple) and under policy 1 the router ignores it (16
    packets per flow with 16 different labels stay on the flow's label-0 link); as controls, policy 0 (layer
    3: addresses and flow label) and policy 3 with the flow label among its fields split those same flows
    over both links, and not with a constant label: the counters see a flow label that a hash reads;
  - loss: with link B black-holed the B ports' packets are counted entering B and none reaches the target,
    while every packet of the A ports does; with 20 % on B, what B passes and the target receives agree
    exactly and the passed share is within 4.5 binomial standard deviations of 80 %; with 0 % all arrive;
  - the RSTs the prober's kernel sends after a SYN-ACK follow their flow's link (printed for policy 1).
Assertions are on counts only; every wait is bounded. docs/testing.md#ecmp-lab explains the findings.
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
import ecmp  # noqa: E402
import harness  # noqa: E402

PORTS = list(range(41000, 41024))
DPORT = {"tcp": 8080, "udp": 33434}  # closed ports
OPEN_PORT = 8081
CASES = [(proto, fam) for proto in ("tcp", "udp") for fam in (4, 6)]
SIGMAS = 4.5


def check_maps(lab):
    maps = {}
    for proto, fam in CASES:
        first = lab.port_map(proto, fam, DPORT[proto], PORTS, count=8)
        second = lab.port_map(proto, fam, DPORT[proto], PORTS, count=3)
        print(f"  {proto}/v{fam}: A {first['A']}\n  {' ' * len(proto)}     B {first['B']}", flush=True)
        assert first == second, f"{proto}/v{fam}: the map changed between two runs: {first} then {second}"
        assert first["A"] and first["B"], f"{proto}/v{fam}: the hash put every port on one link: {first}"
        assert sorted(first["A"] + first["B"]) == PORTS, f"{proto}/v{fam}: ports missing from {first}"
        maps[(proto, fam)] = first
    # Datagrams of kernel UDP sockets take the paths of the crafted ones: the router hashes each packet itself.
    for fam in (4, 6):
        kernel = lab.port_map("udp", fam, DPORT["udp"], PORTS, method="socket")
        assert kernel == maps[("udp", fam)], f"udp/v{fam}: kernel sockets {kernel}, crafted {maps[('udp', fam)]}"
    print("  udp from kernel sockets: the same maps", flush=True)
    return maps


def split_flows(lab, proto, labels):
    """Sends len(labels) IPv6 packets per port, packet i with flow label labels[i]; returns ({Flow:
    {link: n}}, the flows seen on both links)."""
    before = lab.snapshot()
    sent = lab.send([{"family": 6, "proto": proto, "dport": DPORT[proto], "sports": PORTS, "count": len(labels),
                      "flow_labels": labels}])
    after = lab.wait_counts(before, sent, ecmp.LINKS)
    per_flow = lab.split(before, after, sent)
    return per_flow, [f for f, n in per_flow.items() if n["A"] and n["B"]]


# (name, policy, fields, does the hash read the IPv6 flow label)
POLICIES = [
    ("policy 3, 5-tuple (the lab's)", 3, ecmp.HASH_FIELDS_L4, False),
    ("policy 1, layer 4", 1, None, False),
    ("policy 0, layer 3 (addresses + flow label)", 0, None, True),
    ("policy 3, 5-tuple + flow label", 3, ecmp.HASH_FIELDS_L4_FLOWLABEL, True),
]


def check_flow_label(lab, maps):
    varying = list(range(0x1001, 0x1011))  # 16 different labels per flow
    for name, policy, fields, reads_label in POLICIES:
        lab.hash_policy(policy, fields, families=(6,))
        try:
            for proto in ("tcp", "udp"):
                per_flow, both = split_flows(lab, proto, varying)
                constant, both_const = split_flows(lab, proto, [0] * 16)
                assert not both_const, f"{proto}/v6 {name}: constant label, {len(both_const)} flows on both links"
                if reads_label:
                    assert both, f"{proto}/v6 {name}: varying labels, yet every flow on one link"
                    print(f"  {name}, {proto}: {len(both)} of {len(PORTS)} flows split by varying labels, none "
                          "with a constant label", flush=True)
                    continue
                assert not both, f"{proto}/v6 {name}: {len(both)} flows crossed both links, e.g. {per_flow[both[0]]}"
                on_b = sorted(f.sport for f, n in per_flow.items() if n["B"])
                label0_b = sorted(f.sport for f, n in constant.items() if n["B"])
                assert on_b == label0_b, f"{proto}/v6 {name}: B has {on_b} with varying labels, {label0_b} with 0"
                if policy == lab.default_policy[0]:
                    assert on_b == maps[(proto, 6)]["B"], f"{proto}/v6: B has {on_b}, port_map said {maps}"
                print(f"  {name}, {proto}: 16 labels per flow, every flow on its label-0 link", flush=True)
        finally:
            lab.hash_policy(families=(6,))
    for proto in ("tcp", "udp"):
        again = lab.port_map(proto, 6, DPORT[proto], PORTS)
        assert again == maps[(proto, 6)], f"{proto}/v6: back to the lab's policy, another map: {again}"


def resets_off_path(lab, before, after, sent):
    """The flows of `sent` whose RSTs (from the prober's kernel) entered another link than their SYNs."""
    off = []
    for flow in sent:
        syn_link = "A" if ecmp.delta(after["A"], before["A"], flow) else "B"
        rst_link = "B" if syn_link == "A" else "A"
        if ecmp.delta(after[f"{rst_link}_resets"], before[f"{rst_link}_resets"], flow):
            off.append(flow)
    return off


def check_resets(lab):
    """SYNs to a listening port: the prober's kernel answers each SYN-ACK with a RST, which follows its flow
    under the lab's policy (test_paths.py relies on it: a RST lost on a black-holed link would leave the
    target half-open). Under policy 1 that RST takes whatever path the hash the kernel gave it picks: printed
    only."""
    lab.listen_tcp(OPEN_PORT)
    for name, policy, fields in (("the lab's policy", None, None), ("policy 1", 1, None)):
        lab.hash_policy(policy, fields)
        try:
            before = lab.snapshot()
            sent = lab.send([{"family": fam, "proto": "tcp", "dport": OPEN_PORT, "sports": PORTS, "count": 1}
                             for fam in (4, 6)])
            resets = {f: 1 for f in sent}
            after = lab.wait_counts(before, resets, [f"{link}_resets" for link in ecmp.LINKS])
            off = resets_off_path(lab, before, after, sent)
        finally:
            lab.hash_policy()
        v6_off = sum(1 for f in off if f.family == 6)
        print(f"  {name}: the RSTs of {len(off)} of {len(sent)} flows ({v6_off} IPv6) left their flow's link",
              flush=True)
        if policy is None:
            assert not off, f"under the lab's policy, RSTs off their flow's link: {off[:4]}"


def send_all(lab, count):
    return lab.send([{"family": fam, "proto": proto, "dport": DPORT[proto], "sports": PORTS, "count": count}
                     for proto, fam in CASES])


def check_drop(lab, maps):
    def link_of(flow):
        return "B" if flow.sport in maps[(flow.proto, flow.family)]["B"] else "A"

    # Black hole on B: everything, then the probes only.
    for probes_only in (False, True):
        lab.drop("B", 100, probes_only=probes_only)
        before = lab.snapshot()
        sent = send_all(lab, 5)
        lab.wait_counts(before, sent, ecmp.LINKS)
        on_a = {f: n for f, n in sent.items() if link_of(f) == "A"}
        after = lab.wait_counts(before, on_a, ("target",))
        for flow, n in sent.items():
            link = link_of(flow)
            entered = ecmp.delta(after[link], before[link], flow)
            got = ecmp.delta(after["target"], before["target"], flow)
            assert entered == n, f"{flow}: {entered} of {n} packets entered link {link}"
            assert got == (n if link == "A" else 0), f"{flow} (link {link}, B black-holed): {got} of {n} delivered"
        print(f"  B black-holed{' (probes only)' if probes_only else ''}: {len(on_a)} A flows all delivered, "
              f"{len(sent) - len(on_a)} B flows none", flush=True)

    # 20 % on B: what B passes reaches the target exactly; the share passed is binomial around 80 %.
    lab.drop("B", 20)
    before = lab.snapshot()
    sent = send_all(lab, 25)
    mid = lab.wait_counts(before, sent, ecmp.LINKS)
    passed = {f: ecmp.delta(mid[f"{link_of(f)}_passed"], before[f"{link_of(f)}_passed"], f) for f in sent}
    after = lab.wait_counts(before, {f: n for f, n in passed.items() if n}, ("target",))
    total_b = passed_b = 0
    for flow, n in sent.items():
        got = ecmp.delta(after["target"], before["target"], flow)
        assert got == passed[flow], f"{flow}: {passed[flow]} passed link {link_of(flow)}, {got} delivered"
        if link_of(flow) == "A":
            assert got == n, f"{flow} (link A): {got} of {n} delivered with 20 % on B"
        else:
            total_b += n
            passed_b += got
    share = passed_b / total_b
    sd = (0.8 * 0.2 / total_b) ** 0.5
    print(f"  20 % on B: {passed_b} of {total_b} B packets delivered ({share:.3f}, {(share - 0.8) / sd:+.1f} sd)",
          flush=True)
    assert abs(share - 0.8) <= SIGMAS * sd, f"20 % on B: {share:.3f} delivered, not within {SIGMAS} sd of 0.8"

    # No loss again.
    lab.drop("B", 0)
    before = lab.snapshot()
    sent = send_all(lab, 2)
    lab.wait_counts(before, sent, ("target",))
    print("  drop removed: every packet delivered", flush=True)


def run():
    harness.require_root("the ECMP lab needs root (network namespaces, nftables, raw sockets)")
    with ecmp.EcmpLab() as lab:
        print("port maps (24 source ports; policy 3, 5-tuple):", flush=True)
        maps = check_maps(lab)
        print("IPv6 flow label:", flush=True)
        check_flow_label(lab, maps)
        print("loss on link B:", flush=True)
        check_drop(lab, maps)
        print("the prober kernel's RSTs:", flush=True)
        check_resets(lab)
    print("ecmp_lab: ok")


if __name__ == "__main__":
    harness.main(run)
