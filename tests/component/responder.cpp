#include "responder.h"

#include <tins/tins.h>

#include <string>

namespace netprobe::testing {
namespace {

std::vector<uint8_t> quote_of(std::span<const uint8_t> probe, bool v6) {
  // RFC 792: the IP header + 8 bytes; RFC 4443: as much as fits in 1280 bytes (what Linux does).
  const size_t ihl = v6 ? 40 : size_t(probe[0] & 0x0f) * 4;
  const size_t n = std::min(probe.size(), v6 ? size_t(1232) : ihl + 8);
  return {probe.begin(), probe.begin() + long(n)};
}

std::vector<uint8_t> icmp_error(std::span<const uint8_t> probe, uint8_t type, uint8_t code) {
  const bool v6 = (probe[0] >> 4) == 6;
  const auto quote = quote_of(probe, v6);
  if (!v6) {
    Tins::IP in(probe.data(), uint32_t(probe.size()));
    Tins::ICMP icmp;
    icmp.type(Tins::ICMP::Flags(type));
    icmp.code(code);
    Tins::IP out =
        Tins::IP(in.src_addr(), in.dst_addr()) / icmp / Tins::RawPDU(quote.data(), uint32_t(quote.size()));
    return out.serialize();
  }
  Tins::IPv6 in(probe.data(), uint32_t(probe.size()));
  Tins::ICMPv6 icmp{static_cast<Tins::ICMPv6::Types>(type)};
  icmp.code(code);
  Tins::IPv6 out =
      Tins::IPv6(in.src_addr(), in.dst_addr()) / icmp / Tins::RawPDU(quote.data(), uint32_t(quote.size()));
  return out.serialize();
}

}  // namespace

std::vector<uint8_t> reply_to(std::span<const uint8_t> probe, ReplyKind kind, uint8_t icmp_type,
                              uint8_t icmp_code) {
  const bool v6 = (probe[0] >> 4) == 6;
  if (kind == ReplyKind::kIcmpError) return icmp_error(probe, icmp_type, icmp_code);
  if (!v6) {
    Tins::IP in(probe.data(), uint32_t(probe.size()));
    if (auto* tcp = in.find_pdu<Tins::TCP>()) {
      Tins::TCP r(tcp->sport(), tcp->dport());
      r.flags(kind == ReplyKind::kRstAck ? (Tins::TCP::RST | Tins::TCP::ACK)
                                         : (Tins::TCP::SYN | Tins::TCP::ACK));
      r.seq(12345);
      r.ack_seq(tcp->seq() + 1);
      Tins::IP out = Tins::IP(in.src_addr(), in.dst_addr()) / r;
      return out.serialize();
    }
    if (auto* icmp = in.find_pdu<Tins::ICMP>()) {
      Tins::ICMP r(Tins::ICMP::ECHO_REPLY);
      r.id(icmp->id());
      r.sequence(icmp->sequence());
      Tins::IP out = Tins::IP(in.src_addr(), in.dst_addr()) / r;
      return out.serialize();
    }
    return icmp_error(probe, 3, 3);  // UDP: port unreachable
  }
  Tins::IPv6 in(probe.data(), uint32_t(probe.size()));
  if (auto* tcp = in.find_pdu<Tins::TCP>()) {
    Tins::TCP r(tcp->sport(), tcp->dport());
    r.flags(kind == ReplyKind::kRstAck ? (Tins::TCP::RST | Tins::TCP::ACK)
                                       : (Tins::TCP::SYN | Tins::TCP::ACK));
    r.ack_seq(tcp->seq() + 1);
    Tins::IPv6 out = Tins::IPv6(in.src_addr(), in.dst_addr()) / r;
    return out.serialize();
  }
  if (auto* icmp = in.find_pdu<Tins::ICMPv6>()) {
    Tins::ICMPv6 r(Tins::ICMPv6::ECHO_REPLY);
    r.identifier(icmp->identifier());
    r.sequence(icmp->sequence());
    Tins::IPv6 out = Tins::IPv6(in.src_addr(), in.dst_addr()) / r;
    return out.serialize();
  }
  return icmp_error(probe, 1, 4);
}

std::vector<uint8_t> foreign_reply_to(std::span<const uint8_t> probe) {
  std::vector<uint8_t> copy(probe.begin(), probe.end());
  const bool v6 = (copy[0] >> 4) == 6;
  const size_t l4 = v6 ? 40 : size_t(copy[0] & 0x0f) * 4;
  const uint8_t proto = v6 ? copy[6] : copy[9];
  if (proto == 6)
    copy[l4 + 4] ^= 0x5a;  // TCP seq: the ack will not fit
  else if (proto == 1 || proto == 58)
    copy[l4 + 4] ^= 0x5a;  // echo id
  else if (v6)
    copy[l4 + 8] ^= 0x5a;  // the token word in the UDP payload
  else
    copy[4] ^= 0x5a;  // IP-ID
  return reply_to(copy);
}

std::string network_hop(const std::vector<std::vector<std::string>>& hops, int ttl, uint16_t sport) {
  const auto& routers = hops[size_t(ttl) - 1];
  return routers[sport % routers.size()];
}

std::vector<uint8_t> network_reply(std::span<const uint8_t> probe,
                                   const std::vector<std::vector<std::string>>& hops) {
  const bool v6 = (probe[0] >> 4) == 6;
  const int ttl = v6 ? probe[7] : probe[8];
  if (ttl < 1 || size_t(ttl) > hops.size()) return reply_to(probe);
  const size_t l4 = v6 ? 40 : size_t(probe[0] & 0x0f) * 4;
  const uint8_t proto = v6 ? probe[6] : probe[9];
  // ICMP echo: the flow is its checksum (Paris traceroute), else the source port.
  const size_t at = proto == 1 || proto == 58 ? l4 + 2 : l4;
  const uint16_t sport = uint16_t(probe[at] << 8 | probe[at + 1]);
  auto e = icmp_error(probe, v6 ? 3 : 11, 0);
  const std::string from = network_hop(hops, ttl, sport);
  if (!v6) {
    Tins::IP ip(e.data(), uint32_t(e.size()));
    ip.src_addr(Tins::IPv4Address(from));
    ip.ttl(uint8_t(65 - ttl));
    return ip.serialize();
  }
  Tins::IPv6 ip(e.data(), uint32_t(e.size()));
  ip.src_addr(Tins::IPv6Address(from));
  ip.hop_limit(uint8_t(65 - ttl));
  return ip.serialize();
}

}  // namespace netprobe::testing
