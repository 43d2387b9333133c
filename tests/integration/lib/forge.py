"""Forged packets for the integration tests' attacker namespace: raw IPv4/IPv6 packets built with struct,
sent from a raw socket (the caller must be root inside its namespace). Test code only."""
import random
import socket
import struct


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def ipv4(src, dst, proto, payload, ident=0x4242):
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), ident, 0, 64, proto, 0,
                      socket.inet_aton(src), socket.inet_aton(dst))
    hdr = hdr[:10] + struct.pack("!H", checksum(hdr)) + hdr[12:]
    return hdr + payload


def ipv6(src, dst, next_header, payload, flow=0):
    return struct.pack("!IHBB16s16s", (6 << 28) | flow, len(payload), next_header, 64,
                       socket.inet_pton(socket.AF_INET6, src), socket.inet_pton(socket.AF_INET6, dst)) + payload


def _pseudo(src, dst, proto, length, v6):
    if v6:
        return (socket.inet_pton(socket.AF_INET6, src) + socket.inet_pton(socket.AF_INET6, dst)
                + struct.pack("!IxxxB", length, proto))
    return socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!xBH", proto, length)


def tcp(src, dst, sport, dport, seq, ack, flags, v6=False):
    seg = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, 8192, 0, 0)
    c = checksum(_pseudo(src, dst, 6, len(seg), v6) + seg)
    seg = seg[:16] + struct.pack("!H", c) + seg[18:]
    return ipv6(src, dst, 6, seg) if v6 else ipv4(src, dst, 6, seg)


def udp(src, dst, sport, dport, payload=b"", v6=False, ident=0x4242, flow=0):
    seg = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    c = checksum(_pseudo(src, dst, 17, len(seg), v6) + seg) or 0xFFFF
    seg = seg[:6] + struct.pack("!H", c) + seg[8:]
    return ipv6(src, dst, 17, seg, flow=flow) if v6 else ipv4(src, dst, 17, seg, ident=ident)


def icmp(src, dst, type_, code, rest, body, v6=False):
    msg = struct.pack("!BBH", type_, code, 0) + rest + body
    if v6:
        c = checksum(_pseudo(src, dst, 58, len(msg), True) + msg)
    else:
        c = checksum(msg)
    msg = msg[:2] + struct.pack("!H", c) + msg[4:]
    return ipv6(src, dst, 58, msg) if v6 else ipv4(src, dst, 1, msg)


def echo_reply(src, dst, ident, seq, v6=False):
    return icmp(src, dst, 129 if v6 else 0, 0, struct.pack("!HH", ident, seq), b"", v6)


def icmp_error(router, dst, type_, code, quoted, v6=False):
    """An ICMP error from `router` to `dst` quoting `quoted` (IP header + 8 bytes of it)."""
    ihl = 40 if v6 else (quoted[0] & 0x0F) * 4
    return icmp(router, dst, type_, code, b"\0\0\0\0", quoted[:ihl + 8], v6)


class Sender:
    def __init__(self, v6=False):
        self.v6 = v6
        self.sock = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)

    def send(self, packet, dst):
        self.sock.sendto(packet, (dst, 0))


def forged_burst(prober, target, ports, dst_port, udp_port, v6=False, count=200, seed=1):
    """Packets claiming to answer probes we never sent: SYN-ACKs and RST-ACKs with random acks, echo
    replies with random id/seq, and ICMP errors quoting UDP/TCP/echo packets with IP-ID/flow label 0
    (never used by netprobe) or random sequence numbers."""
    rnd = random.Random(seed)
    out = []
    for _ in range(count):
        sport = rnd.choice(ports)
        out.append(tcp(target, prober, dst_port, sport, rnd.getrandbits(32), rnd.getrandbits(32), 0x12, v6))
        out.append(tcp(target, prober, dst_port, sport, 0, rnd.getrandbits(32), 0x14, v6))
        out.append(echo_reply(target, prober, rnd.getrandbits(16), rnd.getrandbits(16), v6))
        quoted_udp = udp(prober, target, sport, udp_port, v6=v6, ident=0, flow=0)
        out.append(icmp_error(target, prober, 1 if v6 else 3, 4 if v6 else 3, quoted_udp, v6))
        quoted_syn = tcp(prober, target, sport, dst_port, rnd.getrandbits(32), 0, 0x02, v6)
        out.append(icmp_error(target, prober, 1 if v6 else 3, 1 if v6 else 13, quoted_syn, v6))
    return out
