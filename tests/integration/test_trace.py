#!/usr/bin/env python3
"""`netprobe trace` and `netprobe pathloss` end to end (issue 14, "What must be shown"), on the ECMP lab
(lib/ecmp.py): prober - router (hop 1) = two equal-cost next hops, link namespaces A and B (hop 2) - target
(hop 3). argv[1] is the family, 4 or 6. In order:

  golden    one flow, `trace --format json` and `pathloss --format json` without loss, compared with
            golden/trace_v<family>.json and golden/pathloss_v<family>.json once the fields that vary from
            run to run are masked (RTTs, probe counts, which link a port hashes onto, the flows counted
            through a hop); NETPROBE_UPDATE_GOLDEN=1 rewrites them
  mda       `trace --mda` over 128 source ports finds both next hops at hop 2, and every port's path is the
            link whose nftables counters saw that flow's probes (the router's choice, seen by the link); the
            same for 8 UDP flows (-2); ICMP echo flows (-1) reach the target through the router and a link
  loss      link A drops 20 % of the probes towards the target: `pathloss` on three ports of A and three of B
            (and two reference flows) names the link A -> target for every A flow and nothing for B flows
  ratelimit the router of link A rate-limits its ICMP errors (icmp_ratelimit 1000 ms, Time Exceeded in the
            ratemask; IPv6 icmp.ratelimit): pathloss reports hop 2 of the A flows as rate-limited, no loss

Assertions are on verdicts, addresses and counters; every run is bounded.
"""
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
import ecmp  # noqa: E402
import harness  # noqa: E402

GOLDEN_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden")
DPORT = 80


def netprobe(lab, *args, timeout_s=120):
    cmd = ["ip", "netns", "exec", lab.prober, harness.netprobe_bin()] + list(args)
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
    harness.log("$", " ".join(args), "->", r.returncode)
    if r.stderr.strip():
        harness.log(r.stderr.strip()[-2000:])
    return r


def mask(doc, link_addrs):
    """The JSON with what varies between runs masked: RTTs, probe counts, the hop-2 address (the router's
    hash decides A or B), the healthy flows counted through a hop, p-values."""
    if isinstance(doc, dict):
        out = {}
        for k, v in doc.items():
            if k in ("rtt_ms", "probes_sent", "healthy_through", "p_value"):
                out[k] = "<masked>"
            else:
                out[k] = mask(v, link_addrs)
        return out
    if isinstance(doc, list):
        return [mask(v, link_addrs) for v in doc]
    if isinstance(doc, str) and doc in link_addrs:
        return "<link A or B>"
    return doc


def check_golden(name, doc, link_addrs):
    path = os.path.join(GOLDEN_DIR, name)
    got = json.dumps(mask(doc, link_addrs), indent=1, sort_keys=True) + "\n"
    if os.environ.get("NETPROBE_UPDATE_GOLDEN") == "1":
        os.makedirs(GOLDEN_DIR, exist_ok=True)
        with open(path, "w") as f:
            f.write(got)
        harness.log("golden rewritten:", path)
        return
    with open(path) as f:
        want = f.read()
    assert got == want, f"{name} differs from the golden file:\n{got}"


def main():
    harness.require_root()
    family = int(sys.argv[1]) if len(sys.argv) > 1 else 4
    target = ecmp.TARGET4 if family == 4 else ecmp.TARGET6
    prober = ecmp.PROBER4 if family == 4 else ecmp.PROBER6
    hop = (lambda net: f"{ecmp.NETS4[net]}.2") if family == 4 else (lambda net: f"{ecmp.NETS6[net]}::2")
    link_hop = {"A": hop("ra"), "B": hop("rb")}
    router_hop = f"{ecmp.NETS4['pr']}.2" if family == 4 else f"{ecmp.NETS6['pr']}::2"
    fam = f"-{family}"
    with ecmp.EcmpLab() as lab:
        # ---- golden: one flow, no loss.
        r = netprobe(lab, "trace", target, "-n", "--sport-range", "39000-39000", "--format", "json")
        assert r.returncode == 0, r.stdout
        check_golden(f"trace_v{family}.json", json.loads(r.stdout), set(link_hop.values()))
        r = netprobe(lab, "pathloss", target, "--sports", "39000", "--compare-healthy", "1", "--probes-per-hop",
                     "20", "--format", "json")
        assert r.returncode == 0, r.stdout
        check_golden(f"pathloss_v{family}.json", json.loads(r.stdout), set(link_hop.values()))

        # ---- mda: every port's path against the links' counters.
        before = lab.snapshot()
        r = netprobe(lab, "trace", target, "-n", "--mda", "--sport-range", "41000-41127", "--format", "json")
        assert r.returncode == 0, r.stdout
        doc = json.loads(r.stdout)
        assert doc["mda"]["complete"], doc["mda"]
        hop2 = {h["address"] for f in doc["flows"] for h in f["hops"] if h["ttl"] == 2}
        assert hop2 == set(link_hop.values()), f"hop 2: {hop2}"
        assert {h["address"] for f in doc["flows"] for h in f["hops"] if h["ttl"] == 1} == {router_hop}
        after = lab.snapshot()
        side = {}
        for f in doc["flows"]:
            assert f["reached"], f
            flow = ecmp.Flow(family, "tcp", prober, target, f["sport"], DPORT)
            seen = {link for link in ecmp.LINKS if ecmp.delta(after[link], before[link], flow) > 0}
            path_link = [link for link, a in link_hop.items() if f["hops"][1]["address"] == a]
            assert seen == set(path_link), f"sport {f['sport']}: trace says {path_link}, counters say {seen}"
            side[f["sport"]] = path_link[0]
        # UDP flows too (-2, to a closed port): each port's hop 2 is the link that counted it.
        before = lab.snapshot()
        r = netprobe(lab, "trace", target, "-n", "-2", "--sport-range", "43000-43007", "--format", "json")
        assert r.returncode == 0, r.stdout
        after = lab.snapshot()
        for f in json.loads(r.stdout)["flows"]:
            assert f["reached"] and len(f["hops"]) == 3, f
            flow = ecmp.Flow(family, "udp", prober, target, f["sport"], 33434)
            seen = {link for link in ecmp.LINKS if ecmp.delta(after[link], before[link], flow) > 0}
            assert seen == {link for link, a in link_hop.items() if f["hops"][1]["address"] == a}, (f, seen)
        # ICMP echo (-1, Paris checksums): reaches the target through the router and one of the links.
        r = netprobe(lab, "trace", target, "-n", "-1", "--sport-range", "1-4", "--format", "json")
        assert r.returncode == 0, r.stdout
        for f in json.loads(r.stdout)["flows"]:
            assert [h["address"] for h in f["hops"]][0::2] == [router_hop, target], f
            assert f["hops"][1]["address"] in link_hop.values(), f
        a_ports = sorted(p for p, l in side.items() if l == "A")
        b_ports = sorted(p for p, l in side.items() if l == "B")
        harness.log(f"MDA: {len(doc['flows'])} flows, {len(a_ports)} on A, {len(b_ports)} on B")
        assert len(a_ports) >= 3 and len(b_ports) >= 3
        chosen = a_ports[:3] + b_ports[:3]

        def pathloss(extra=()):
            r = netprobe(lab, "pathloss", target, "--sports", ",".join(map(str, chosen)), "--compare-healthy", "2",
                         "--probes-per-hop", "200", "--rate", "2000", "--format", "json", *extra)
            doc = json.loads(r.stdout)
            return r.returncode, doc

        # ---- loss: 20 % on link A, forward direction, probes only.
        lab.drop("A", 20, probes_only=True)
        before = lab.snapshot()
        code, doc = pathloss()
        after = lab.snapshot()
        lab.drop("A", 0)
        assert code == 1, doc
        for f in doc["flows"]:
            flow = ecmp.Flow(family, "tcp", prober, target, f["sport"], DPORT)
            on_a = ecmp.delta(after["A"], before["A"], flow) > 0
            if on_a:
                assert f["verdict"] == "lossy", f
                assert f["suspect"]["ttl"] == 3 and f["suspect"]["from"] == link_hop["A"], f
                assert f["suspect"]["to"] == target and f["suspect"]["blame"] == "link", f
            else:
                assert f["verdict"] == "clean" and f["rate_limited_ttls"] == [], f
        assert len(doc["suspects"]) == 1, doc["suspects"]
        s = doc["suspects"][0]
        assert (s["from"], s["to"], s["ttl"]) == (link_hop["A"], target, 3), s
        assert set(a_ports[:3]) <= set(s["sports"]) and not set(b_ports[:3]) & set(s["sports"]), s

        # ---- ratelimit: the router of link A limits its ICMP errors; nothing is lost.
        ns = lab.link_ns["A"]
        if family == 4:
            for key, value in (("net.ipv4.icmp_ratelimit", "1000"), ("net.ipv4.icmp_ratemask", "6168")):
                harness_sysctl(ns, key, value)
        else:
            harness_sysctl(ns, "net.ipv6.icmp.ratelimit", "1000")
        before = lab.snapshot()
        code, doc = pathloss()
        after = lab.snapshot()
        assert code == 0 and doc["suspects"] == [], doc["suspects"]
        for f in doc["flows"]:
            assert f["verdict"] == "clean", f
            flow = ecmp.Flow(family, "tcp", prober, target, f["sport"], DPORT)
            if ecmp.delta(after["A"], before["A"], flow) > 0:  # hop 2 may not have answered at all
                assert f["rate_limited_ttls"] == [2], f
                assert f["hops"][1]["received"] < f["hops"][1]["sent"] // 2, f
            else:
                assert f["rate_limited_ttls"] == [], f
    harness.log("OK")


def harness_sysctl(ns, key, value):
    subprocess.run(["ip", "netns", "exec", ns, "sysctl", "-qw", f"{key}={value}"], check=True)


if __name__ == "__main__":
    main()
