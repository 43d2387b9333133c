#!/usr/bin/env python3
"""Writes the seed corpus of the packet_classify fuzz target: probes of each type and family as netprobe
crafts them, their answers, and ICMP errors quoting them (fuzz/corpus/packet_classify/, one file each).
Checksums are computed so that the seeds are valid packets; the fuzzer mutates them from there."""
import os
import struct
import sys

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "packet_classify")
L4, T4 = bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2])
R4 = bytes([10, 9, 9, 9])
L6 = bytes.fromhex("fd000000000000000000000000000001")
T6 = bytes.fromhex("fd000000000000000000000000000002")
R6 = bytes.fromhex("fd000000000000000000000000000099")


def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def ip4(src, dst, proto, l4, ident=0x1234):
    h = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), ident, 0x4000, 64, proto, 0, src, dst)
    h = h[:10] + struct.pack("!H", csum(h)) + h[12:]
    return h + l4


def ip6(src, dst, nh, l4, flow=0x12345):
    return struct.pack("!IHBB16s16s", (6 << 28) | flow, len(l4), nh, 64, src, dst) + l4


def with_l4_csum(v6, src, dst, proto, l4, off):
    pseudo = (src + dst + struct.pack("!I3xB", len(l4), proto)) if v6 else (
        src + dst + struct.pack("!xBH", proto, len(l4)))
    c = csum(pseudo + l4)
    return l4[:off] + struct.pack("!H", c) + l4[off + 2:]


def tcp(sport, dport, seq, ack, flags, payload=b""):
    return struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, 8192, 0, 0) + payload


def udp(sport, dport, payload=b""):
    return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


def icmp(typ, code, rest, body=b""):
    return struct.pack("!BBHI", typ, code, 0, rest) + body


def pkt(v6, src, dst, proto, l4, csum_off, pseudo=True):
    if csum_off is not None:
        l4 = with_l4_csum(v6, src, dst, proto, l4, csum_off) if pseudo else (
            l4[:csum_off] + struct.pack("!H", csum(l4)) + l4[csum_off + 2:])
    return ip6(src, dst, proto, l4) if v6 else ip4(src, dst, proto, l4)


def main():
    os.makedirs(OUT, exist_ok=True)
    seeds = {}
    for v6 in (False, True):
        fam = "v6" if v6 else "v4"
        L, T, R = (L6, T6, R6) if v6 else (L4, T4, R4)
        ic = 58 if v6 else 1
        req, rep = (128, 129) if v6 else (8, 0)
        unreach, port_code = (1, 4) if v6 else (3, 3)
        seq = 0xA5C3F00D
        syn = pkt(v6, L, T, 6, tcp(33000, 443, seq, 0, 0x02), 16)
        seeds[f"tcp_syn_{fam}"] = syn
        seeds[f"tcp_synack_{fam}"] = pkt(v6, T, L, 6, tcp(443, 33000, 0x1111, seq + 1, 0x12), 16)
        seeds[f"tcp_rstack_{fam}"] = pkt(v6, T, L, 6, tcp(443, 33000, 0, seq + 1, 0x14), 16)
        seeds[f"tcp_syn_payload_{fam}"] = pkt(v6, L, T, 6, tcp(33000, 443, seq, 0, 0x02, b"netprobe" * 2), 16)
        echo = pkt(v6, L, T, ic, icmp(req, 0, 0xBEEF0042, b"netprobe"), 2, pseudo=v6)
        seeds[f"icmp_echo_request_{fam}"] = echo
        seeds[f"icmp_echo_reply_{fam}"] = pkt(v6, T, L, ic, icmp(rep, 0, 0xBEEF0042, b"netprobe"), 2, pseudo=v6)
        probe = pkt(v6, L, T, 17, udp(33000, 33434, b"\x12\x34netprobe"), 6)
        seeds[f"udp_probe_{fam}"] = probe
        # ICMP errors: what is quoted is the IP header + the first 8 bytes (IPv4) or as much as fits (IPv6).
        for name, quoted in (("udp", probe), ("tcp", syn), ("icmp", echo)):
            q = quoted if v6 else quoted[:28]
            code = port_code if name == "udp" else 1
            seeds[f"icmp_error_unreach_{name}_{fam}"] = pkt(v6, T if name == "udp" else R, L, ic,
                                                            icmp(unreach, code, 0, q), 2, pseudo=v6)
            seeds[f"icmp_error_ttl_{name}_{fam}"] = pkt(v6, R, L, ic, icmp(3 if v6 else 11, 0, 0, q), 2,
                                                        pseudo=v6)
        seeds[f"icmp_error_truncated_{fam}"] = pkt(v6, R, L, ic, icmp(unreach, 1, 0, probe[:24]), 2, pseudo=v6)
    seeds["v4_fragment"] = ip4(T4, L4, 1, icmp(0, 0, 0))[:6] + b"\x20\x10" + ip4(T4, L4, 1, icmp(0, 0, 0))[8:]
    seeds["empty"] = b""
    for name, data in seeds.items():
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data)
    print(f"{len(seeds)} seeds in {OUT}", file=sys.stderr)


if __name__ == "__main__":
    main()
