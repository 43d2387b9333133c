"""An ECMP lab for integration tests (root only), on top of netns.Lab (issue 12 part 5).

    prober --- router ===(next hop 1)=== link A --- target
                     \\===(next hop 2)=== link B ---/

The router reaches the target's addresses over a Linux multipath route with two equal-cost next hops, one
through each link namespace, for IPv4 and IPv6, hashing on layer 4: addresses, protocol and ports, no flow
label. By default with the custom policy (fib_multipath_hash_policy=3, fields 0x37: the 5-tuple), which
hashes every packet itself, rather than policy 1, which reuses a hash the prober's kernel attached to its
own packets (docs/testing.md#ecmp-lab); EcmpLab(policy=1) gives policy 1. The target answers over link A
only, so both links carry the forward direction (prober -> target) and A alone the return. In each link namespace nftables
  - counts the packets coming from the router, per flow (family, protocol, source and destination address
    and port): every UDP datagram and every TCP SYN without ACK, i.e. the probes; and apart, the TCP RSTs
    (the prober's kernel answers a SYN-ACK with one);
  - then drops a share of them on demand (`drop(link, percent)`): loss in the forward direction only.
The target counts what reaches its input hook with the same key: what got through.

`port_map()` finds which source ports the router hashes onto each link without netprobe: it sends a few
packets per source port from the prober namespace, crafted on a raw socket like netprobe's probes, and reads
the link counters.

Run as a script (`python3 ecmp.py send SPECS`, inside the prober namespace) it is the packet sender that
port_map() and the tests use.
"""
import collections
import json
import os
import socket
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import forge  # noqa: E402

# Addresses (test ranges 198.18.0.0/15 and fd00::/8): one /24 and one /64 per veth.
NETS4 = {"pr": "198.18.40", "ra": "198.18.41", "rb": "198.18.42", "at": "198.18.43", "bt": "198.18.44"}
NETS6 = {"pr": "fd00:40", "ra": "fd00:41", "rb": "fd00:42", "at": "fd00:43", "bt": "fd00:44"}
PROBER4, PROBER6 = "198.18.40.1", "fd00:40::1"
PROBER_NET4, PROBER_NET6 = "198.18.40.0/24", "fd00:40::/64"
# The target's addresses (on its loopback); the whole prefixes are routed over both links.
TARGET4, TARGET6 = "198.18.45.1", "fd00:45::1"
TARGET_NET4, TARGET_NET6 = "198.18.45.0/24", "fd00:45::/64"
LINKS = ("A", "B")

# net.ipv{4,6}.fib_multipath_hash_fields bits (policy 3, custom; Documentation/networking/ip-sysctl.rst).
HASH_FIELDS_L4 = 0x0037           # source/destination address, protocol, source/destination port
HASH_FIELDS_L4_FLOWLABEL = 0x003F  # the same plus the IPv6 flow label

Flow = collections.namedtuple("Flow", "family proto src dst sport dport")
Flow.__doc__ = "One flow: family 4 or 6, proto 'tcp' or 'udp', addresses as strings, ports as ints."

_PROTO_NAME = {6: "tcp", 17: "udp"}


def _sh(*args, **kw):
    import netns  # only the lab side needs it (the sender runs standalone in the prober namespace)
    return netns.sh(*args, **kw)


def _nft_apply(ns, text):
    with tempfile.NamedTemporaryFile("w", suffix=".nft", delete=False) as fh:
        fh.write(text)
    try:
        _sh("nft", "-f", fh.name, ns=ns)
    finally:
        os.unlink(fh.name)


def _nft_counting_table(stages, hook_chain):
    """Table `inet ecmp`: for each stage name in `stages`, per-flow counters in dynamic sets <stage>4 and
    <stage>6 (one counter per element) filled by the chain <stage>; `hook_chain` lines declare the base chain
    that jumps to them. A stage named "resets" counts TCP RSTs, any other the probes: UDP datagrams and TCP
    SYNs without ACK."""
    lines = ["table inet ecmp {"]
    k4 = "ip saddr . ip daddr . meta l4proto . th sport . th dport"
    k6 = "ip6 saddr . ip6 daddr . meta l4proto . th sport . th dport"
    for stage in stages:
        for fam, addr in (("4", "ipv4_addr"), ("6", "ipv6_addr")):
            lines.append(f"  set {stage}{fam} {{ type {addr} . {addr} . inet_proto . inet_service . inet_service; "
                         "flags dynamic; counter; size 65536; }")
        matches = ["tcp flags & rst == rst"] if stage == "resets" else \
            ["meta l4proto udp", "tcp flags & (syn | ack) == syn"]
        lines.append(f"  chain {stage} {{")
        for match in matches:
            lines += [f"    meta nfproto ipv4 {match} update @{stage}4 {{ {k4} }}",
                      f"    meta nfproto ipv6 {match} update @{stage}6 {{ {k6} }}"]
        lines.append("  }")
    return "\n".join(lines + hook_chain + ["}", ""])


def _parse_sets(json_text):
    """`nft -j list table inet ecmp` -> {stage: {Flow: packets}} (sets <stage>4 and <stage>6 merged)."""
    out = collections.defaultdict(dict)
    for item in json.loads(json_text).get("nftables", []):
        s = item.get("set")
        if not s:
            continue
        v6 = s.get("type", [""])[0] == "ipv6_addr"
        flows = out[s["name"][:-1]]
        for elem in s.get("elem", []):
            e = elem.get("elem", elem) if isinstance(elem, dict) else elem
            key = e.get("val", e) if isinstance(e, dict) else e
            src, dst, proto, sport, dport = key["concat"]
            proto = _PROTO_NAME.get(proto, proto)
            packets = ((e.get("counter") if isinstance(e, dict) else None) or {}).get("packets", 0)
            flows[Flow(6 if v6 else 4, proto, src, dst, int(sport), int(dport))] = packets
    return out


def delta(after, before, flow):
    """Packets of `flow` between two counter maps ({Flow: n}, e.g. snapshot()["A"])."""
    return after.get(flow, 0) - before.get(flow, 0)


class EcmpLab:
    """The lab, built by the constructor; a context manager that removes it on exit (or pass an existing
    netns.Lab, which then removes the namespaces). `policy` and `fields`: the router's multipath hash for both
    families (see hash_policy()). Attributes: prober, router, target, link_ns {"A": ns, "B": ns}."""

    def __init__(self, lab=None, policy=3, fields=HASH_FIELDS_L4):
        import netns
        self.default_policy = (policy, fields if policy == 3 else None)
        self._own = lab is None
        self.lab = lab or netns.Lab()
        self.ifaces = {}
        try:
            self._build()
        except BaseException:
            self.close()
            raise

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        if self._own:
            self.lab.close()

    # ----------------------------------------------------------------------------------------------
    # Topology

    def _build(self):
        lab = self.lab
        p, r, a, b, t = (lab.ns(x) for x in ("p", "r", "la", "lb", "t"))
        self.prober, self.router, self.target = p, r, t
        self.link_ns = {"A": a, "B": b}
        for ns in (p, r, a, b, t):
            # The target receives on B what it answers over A: no reverse-path filter (IPv4's 'all' and
            # 'default' come from the host); set before the interfaces exist, which copy 'default'.
            for key in ("net.ipv4.conf.all.rp_filter", "net.ipv4.conf.default.rp_filter"):
                _sh("sysctl", "-qw", f"{key}=0", ns=ns)
        for ns in (r, a, b):
            _sh("sysctl", "-qw", "net.ipv4.ip_forward=1", ns=ns)
            _sh("sysctl", "-qw", "net.ipv6.conf.all.forwarding=1", ns=ns)
        self.hash_policy(*self.default_policy)

        def join(x, y, net):
            n4, n6 = NETS4[net], NETS6[net]
            return lab.link(x, y, [f"{n4}.1/24", f"{n6}::1/64"], [f"{n4}.2/24", f"{n6}::2/64"])

        join(p, r, "pr")
        r_a, a_r = join(r, a, "ra")
        r_b, b_r = join(r, b, "rb")
        join(a, t, "at")
        join(b, t, "bt")
        self.ifaces = {"A": a_r, "B": b_r}
        _sh("ip", "addr", "add", f"{TARGET4}/32", "dev", "lo", ns=t)
        _sh("ip", "addr", "add", f"{TARGET6}/128", "dev", "lo", "nodad", ns=t)

        # prober: the target (and the other links, for diagnostics) through the router
        for n in ("ra", "rb", "at", "bt"):
            _sh("ip", "route", "add", f"{NETS4[n]}.0/24", "via", f"{NETS4['pr']}.2", ns=p)
            _sh("ip", "-6", "route", "add", f"{NETS6[n]}::/64", "via", f"{NETS6['pr']}::2", ns=p)
        _sh("ip", "route", "add", TARGET_NET4, "via", f"{NETS4['pr']}.2", ns=p)
        _sh("ip", "-6", "route", "add", TARGET_NET6, "via", f"{NETS6['pr']}::2", ns=p)
        # router: two equal-cost next hops to the target
        _sh("ip", "route", "add", TARGET_NET4,
            "nexthop", "via", f"{NETS4['ra']}.2", "dev", r_a, "weight", "1",
            "nexthop", "via", f"{NETS4['rb']}.2", "dev", r_b, "weight", "1", ns=r)
        _sh("ip", "-6", "route", "add", TARGET_NET6,
            "nexthop", "via", f"{NETS6['ra']}::2", "dev", r_a, "weight", "1",
            "nexthop", "via", f"{NETS6['rb']}::2", "dev", r_b, "weight", "1", ns=r)
        # links: on to the target, back to the prober through the router
        for ns, net_r, net_t in ((a, "ra", "at"), (b, "rb", "bt")):
            _sh("ip", "route", "add", TARGET_NET4, "via", f"{NETS4[net_t]}.2", ns=ns)
            _sh("ip", "-6", "route", "add", TARGET_NET6, "via", f"{NETS6[net_t]}::2", ns=ns)
            _sh("ip", "route", "add", PROBER_NET4, "via", f"{NETS4[net_r]}.1", ns=ns)
            _sh("ip", "-6", "route", "add", PROBER_NET6, "via", f"{NETS6[net_r]}::1", ns=ns)
        # target: answers over link A only
        _sh("ip", "route", "add", PROBER_NET4, "via", f"{NETS4['at']}.1", ns=t)
        _sh("ip", "-6", "route", "add", PROBER_NET6, "via", f"{NETS6['at']}::1", ns=t)

        for link in LINKS:
            # Count what enters the link (probes, and the prober kernel's RSTs apart), apply the loss (none
            # until drop()), count what passed it.
            iif = f"iifname \"{self.ifaces[link]}\""
            _nft_apply(self.link_ns[link], _nft_counting_table(("entered", "resets", "passed"), [
                "  chain loss {", "  }",
                "  chain forward_hook { type filter hook forward priority 0; policy accept;",
                f"    {iif} jump entered", f"    {iif} jump resets", f"    {iif} jump loss", f"    {iif} jump passed",
                "  }"]))
        _nft_apply(t, _nft_counting_table(
            ("delivered",), ["  chain input_hook { type filter hook input priority 0; policy accept; jump delivered; }"]))

    def hash_policy(self, policy=None, fields=None, families=(4, 6)):
        """Sets the router's net.ipv{4,6}.fib_multipath_hash_policy (0 L3, 1 L4, 3 custom with `fields`,
        e.g. HASH_FIELDS_L4_FLOWLABEL); no argument: back to the lab's default (see __init__)."""
        if policy is None:
            policy, fields = self.default_policy
        for fam in families:
            base = "net.ipv4" if fam == 4 else "net.ipv6"
            if fields is not None:
                _sh("sysctl", "-qw", f"{base}.fib_multipath_hash_fields={fields:#x}", ns=self.router)
            _sh("sysctl", "-qw", f"{base}.fib_multipath_hash_policy={int(policy)}", ns=self.router)

    def listen_tcp(self, port, timeout_s=10):
        """A TCP listener on `port` in the target (IPv4 and IPv6), stopped with the lab."""
        code = ("import socket, time\n"
                "s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)\n"
                "s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)\n"
                f"s.bind(('::', {int(port)})); s.listen(4096)\n"
                "time.sleep(3600)\n")
        self.lab.popen(self.target, ["python3", "-c", code])
        import harness
        harness.wait_until(lambda: f":{int(port)} " in _sh("ss", "-ltnH", ns=self.target, capture=True),
                           timeout_s, f"the target's TCP listener on port {port}")

    # ----------------------------------------------------------------------------------------------
    # Loss and counters

    def drop(self, link, percent, probes_only=False):
        """Drops `percent` % (0..100) of the packets that cross `link` ("A" or "B") from the router towards
        the target, after they are counted. 0 removes the loss. Counters are kept. probes_only: only UDP
        datagrams and TCP SYNs; otherwise the prober kernel's RSTs too, and a RST lost leaves the target
        half-open, so that TCPsyn probes of that flow to a listening port lose more than `percent`."""
        if link not in LINKS or not 0 <= percent <= 100:
            raise ValueError(f"drop({link!r}, {percent!r}): link A or B, percent 0..100")
        lines = ["flush chain inet ecmp loss"]
        matches = ["meta l4proto udp", "tcp flags & (syn | ack) == syn"] if probes_only else [""]
        for match in matches if percent > 0 else []:
            share = "" if percent >= 100 else f" numgen random mod 100 < {int(percent)}"
            lines.append(f"add rule inet ecmp loss {match}{share} drop".replace("  ", " "))
        _nft_apply(self.link_ns[link], "\n".join(lines) + "\n")

    def _read(self, ns):
        return _parse_sets(_sh("nft", "-j", "list", "table", "inet", "ecmp", ns=ns, capture=True))

    def counts(self, link):
        """{Flow: packets} that entered `link` from the router (before any drop)."""
        return self._read(self.link_ns[link])["entered"]

    def delivered(self):
        """{Flow: packets} that reached the target's input."""
        return self._read(self.target)["delivered"]

    def snapshot(self):
        """Every counter, each {Flow: packets}: "A"/"B" the probes that entered the link from the router,
        "A_passed"/"B_passed" those that crossed it, "A_resets"/"B_resets" the TCP RSTs that entered it,
        "target" the probes that reached the target."""
        out = {"target": self.delivered()}
        for link in LINKS:
            sets = self._read(self.link_ns[link])
            out[link] = sets["entered"]
            out[f"{link}_passed"] = sets["passed"]
            out[f"{link}_resets"] = sets["resets"]
        return out

    # ----------------------------------------------------------------------------------------------
    # Sending and the port map

    def send(self, specs, timeout_s=60):
        """Sends packets from the prober namespace; returns {Flow: packets sent}. Each spec is a dict:
        family (4|6), proto ("tcp"|"udp"), dport, sports (list), count (per source port), optional src and
        dst (default: the prober's and the target's address), method ("raw", the default: crafted packets on
        a raw socket, like netprobe's; "socket": a bound UDP socket's sendto(), UDP only), and for raw IPv6
        flow_labels (packet i of a flow carries flow_labels[i % len]; default: 0)."""
        specs = [dict(s) for s in specs]
        for s in specs:
            s.setdefault("src", PROBER6 if s["family"] == 6 else PROBER4)
            s.setdefault("dst", TARGET6 if s["family"] == 6 else TARGET4)
        out = _sh("python3", os.path.abspath(__file__), "send", json.dumps(specs), ns=self.prober, capture=True,
                  timeout=timeout_s)
        sent = collections.Counter()
        for row in json.loads(out):
            sent[Flow(*row[:6])] += row[6]
        return dict(sent)

    def wait_counts(self, before, expected, where, timeout_s=10):
        """Waits until, beyond the snapshot `before`, every flow of `expected` ({Flow: n}) has at least n
        packets summed over the counters `where` (names of snapshot(): "A", "B", "target"); returns the
        snapshot then. Bounded: raises after timeout_s naming the flows short of their count."""
        deadline = time.monotonic() + timeout_s
        while True:
            now = self.snapshot()
            short = {f: n - sum(delta(now[w], before[w], f) for w in where) for f, n in expected.items()}
            short = {f: m for f, m in short.items() if m > 0}
            if not short:
                return now
            if time.monotonic() >= deadline:
                raise AssertionError(f"after {timeout_s}s, {len(short)} flows short of their count on "
                                     f"{'+'.join(where)}, e.g. {sorted(short.items())[:4]}")
            time.sleep(0.1)

    @staticmethod
    def split(before, after, flows):
        """{Flow: {"A": n, "B": n}}: each flow's packets per link between two snapshots."""
        return {f: {link: delta(after[link], before[link], f) for link in LINKS} for f in flows}

    def port_map(self, proto, family, dst_port, sports, count=3, method="raw", flow_labels=None, timeout_s=10):
        """Which of `sports` the router hashes onto link A and which onto B, for `proto` ("tcp"/"udp") and
        `family` (4/6) from the prober's address to the target's `dst_port`: sends `count` packets per
        source port and reads the link counters (netprobe plays no part). Returns {"A": [ports], "B":
        [ports]}, sorted. Raises when a flow's packets crossed both links: then no map exists."""
        spec = {"family": family, "proto": proto, "dport": dst_port, "sports": list(sports), "count": count,
                "method": method}
        if flow_labels:
            spec["flow_labels"] = list(flow_labels)
        before = self.snapshot()
        sent = self.send([spec])
        after = self.wait_counts(before, sent, LINKS, timeout_s=timeout_s)
        out = {link: [] for link in LINKS}
        for flow, per_link in self.split(before, after, sent).items():
            on = [link for link in LINKS if per_link[link]]
            if len(on) != 1:
                raise AssertionError(f"{flow}: packets on links {per_link}, expected one link only")
            out[on[0]].append(flow.sport)
        return {link: sorted(ports) for link, ports in out.items()}


# --------------------------------------------------------------------------------------------------
# The sender (runs inside the prober namespace, as root)

def _send_main(specs):
    raw = {}
    result = []
    for s in specs:
        fam, proto, src, dst, dport = s["family"], s["proto"], s["src"], s["dst"], int(s["dport"])
        v6 = fam == 6
        af = socket.AF_INET6 if v6 else socket.AF_INET
        labels = s.get("flow_labels") or [0]
        method = s.get("method", "raw")
        n = int(s.get("count", 1))
        for sport in (int(x) for x in s["sports"]):
            if method == "raw":
                if af not in raw:
                    raw[af] = socket.socket(af, socket.SOCK_RAW, socket.IPPROTO_RAW)
                for i in range(n):
                    label = int(labels[i % len(labels)]) & 0xFFFFF
                    if proto == "udp":
                        pkt = forge.udp(src, dst, sport, dport, payload=b"ecmp-lab", v6=v6, ident=0x4000 + i,
                                        flow=label)
                    else:
                        pkt = forge.tcp(src, dst, sport, dport, 0x10000000 + i, 0, 0x02, v6)
                        if v6:
                            pkt = forge.ipv6(src, dst, 6, pkt[40:], flow=label)
                    raw[af].sendto(pkt, (dst, 0))
            elif method == "socket" and proto == "udp":
                with socket.socket(af, socket.SOCK_DGRAM) as sock:
                    sock.bind((src, sport))
                    for _ in range(n):
                        sock.sendto(b"ecmp-lab", (dst, dport))
            else:
                raise SystemExit(f"ecmp.py send: unknown method {method!r} for {proto}")
            result.append([fam, proto, src, dst, sport, dport, n])
    json.dump(result, sys.stdout)


if __name__ == "__main__" and len(sys.argv) == 3 and sys.argv[1] == "send":
    _send_main(json.loads(sys.argv[2]))
