#pragma once
// Test packet builders. Replies and foreign traffic are built with libtins, an implementation independent
// of the code under test; our own probes come from probe_for(type).craft().
#include <tins/icmp.h>
#include <tins/icmpv6.h>
#include <tins/ip.h>
#include <tins/ipv6.h>
#include <tins/rawpdu.h>
#include <tins/tcp.h>
#include <tins/udp.h>

#include <cstdint>
#include <vector>

#include "probes/probe.h"

namespace netprobe::testing {

using Bytes = std::vector<uint8_t>;

inline IpAddress addr(const char* s) { return *IpAddress::parse(s); }

// IPv4: 10.0.0.1 is us, 10.0.0.2 the target, 10.9.9.9 a router on the path. IPv6 likewise.
inline IpAddress local_addr(AddressFamily af) {
  return addr(af == AddressFamily::kV4 ? "10.0.0.1" : "fd00::1");
}
inline IpAddress target_addr(AddressFamily af) {
  return addr(af == AddressFamily::kV4 ? "10.0.0.2" : "fd00::2");
}
inline IpAddress router_addr(AddressFamily af) {
  return addr(af == AddressFamily::kV4 ? "10.9.9.9" : "fd00::99");
}

// Wraps an L4 PDU into an IP header from `src` to `dst` and serializes (libtins computes the checksums).
inline Bytes ip_packet(const IpAddress& src, const IpAddress& dst, const Tins::PDU& l4, uint8_t ttl = 64) {
  if (src.af == AddressFamily::kV4) {
    Tins::IP ip(Tins::IPv4Address(dst.to_string()), Tins::IPv4Address(src.to_string()));
    ip.ttl(ttl);
    ip.id(4321);
    ip.inner_pdu(l4.clone());
    return ip.serialize();
  }
  Tins::IPv6 ip(Tins::IPv6Address(dst.bytes.data()), Tins::IPv6Address(src.bytes.data()));
  ip.hop_limit(ttl);
  ip.inner_pdu(l4.clone());
  return ip.serialize();
}

inline Bytes tcp_packet(const IpAddress& src, const IpAddress& dst, uint16_t sport, uint16_t dport,
                        uint8_t flags, uint32_t seq, uint32_t ack, size_t payload = 0) {
  Tins::TCP tcp(dport, sport);
  tcp.flags(flags);
  tcp.seq(seq);
  tcp.ack_seq(ack);
  if (payload) tcp.inner_pdu(Tins::RawPDU(Bytes(payload, 0xab)));
  return ip_packet(src, dst, tcp);
}

inline Bytes udp_packet(const IpAddress& src, const IpAddress& dst, uint16_t sport, uint16_t dport) {
  Tins::UDP udp(dport, sport);
  udp.inner_pdu(Tins::RawPDU(Bytes(12, 0x11)));
  return ip_packet(src, dst, udp);
}

// An ICMP/ICMPv6 message of any type with id/seq (echo) and optional body (the quote for errors).
inline Bytes icmp_packet(const IpAddress& src, const IpAddress& dst, uint8_t type, uint8_t code, uint16_t id,
                         uint16_t seq, const Bytes& body = {}) {
  if (src.af == AddressFamily::kV4) {
    Tins::ICMP icmp(static_cast<Tins::ICMP::Flags>(type));
    icmp.code(code);
    if (type == 0 || type == 8) {
      icmp.id(id);
      icmp.sequence(seq);
    }
    if (!body.empty()) icmp.inner_pdu(Tins::RawPDU(body));
    return ip_packet(src, dst, icmp);
  }
  Tins::ICMPv6 icmp(static_cast<Tins::ICMPv6::Types>(type));
  icmp.code(code);
  if (type == 128 || type == 129) {
    icmp.identifier(id);
    icmp.sequence(seq);
  }
  if (!body.empty()) icmp.inner_pdu(Tins::RawPDU(body));
  return ip_packet(src, dst, icmp);
}

inline Bytes echo_packet(const IpAddress& src, const IpAddress& dst, bool reply, uint32_t token) {
  const bool v4 = src.af == AddressFamily::kV4;
  const uint8_t type = v4 ? (reply ? 0 : 8) : (reply ? 129 : 128);
  return icmp_packet(src, dst, type, 0, uint16_t(token >> 16), uint16_t(token), Bytes(16, 0x5a));
}

// An ICMP error from `router` to us quoting the first `quote_len` bytes of `quoted`.
inline Bytes icmp_error(AddressFamily af, uint8_t type, uint8_t code, const Bytes& quoted,
                        size_t quote_len = SIZE_MAX) {
  Bytes q(quoted.begin(), quoted.begin() + std::min(quote_len, quoted.size()));
  return icmp_packet(router_addr(af), local_addr(af), type, code, 0, 0, q);
}

inline ProbeParams params_for(ProbeType type, AddressFamily af, uint16_t ip_payload_size = 0) {
  ProbeParams p;
  p.af = af;
  p.src = local_addr(af);
  p.dst = target_addr(af);
  p.dst_port = type == ProbeType::kIcmpPing ? 0 : 443;
  p.dscp = 8;
  p.dont_fragment = true;
  p.ip_payload_size = ip_payload_size;
  return p;
}

// The wire token of a probe whose index is `index`, with fixed check bits (the engine draws them).
inline uint32_t wire_token(ProbeType type, AddressFamily af, uint32_t index) {
  const int cb = check_bits(type, af);
  if (cb == 0) return index;
  return index << cb | ((0x5a5u & ((1u << cb) - 1)) | 1);
}

// Our own probe, as craft() writes it, carrying index `token`.
inline Bytes crafted(ProbeType type, AddressFamily af, uint16_t sport, uint32_t token,
                     uint16_t ip_payload_size = 0) {
  const Probe& probe = probe_for(type);
  const PacketTemplate t = probe.make_template(params_for(type, af, ip_payload_size));
  Bytes out(t.bytes.size() + 16);
  const size_t n = probe.craft(t, PacketFields{local_addr(af), sport, wire_token(type, af, token)}, out);
  out.resize(n);
  return out;
}

}  // namespace netprobe::testing
