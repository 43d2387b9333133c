#include "probes/udp_query.h"

#include <tins/udp.h>

#include <cstring>
#include <stdexcept>

#include "probes/capture_util.h"
#include "probes/packet_util.h"
#include "wire/ip.h"
#include "wire/l4.h"

namespace netprobe {

PacketTemplate UdpQueryProbe::make_template(const ProbeParams& params) const {
  if (!params.query || params.query->payload.empty())
    throw std::invalid_argument("UDPquery template without a payload");
  const udpquery::Spec& q = *params.query;
  Tins::UDP udp(params.dst_port, 0);
  ProbeParams p = params;
  p.ip_payload_size = uint16_t(8 + q.payload.size());
  PacketTemplate t = detail::build_template(ProbeType::kUdpQuery, p, udp, 8, 1);
  uint8_t* payload = t.bytes.data() + t.l4_offset + 8;
  std::memcpy(payload, q.payload.data(), q.payload.size());  // the token field is zero in q.payload
  t.l4_payload_sum = wire::Checksum().add({payload, t.l4_payload_size}).sum16();
  return t;
}

size_t UdpQueryProbe::craft(const PacketTemplate& tmpl, const PacketFields& fields,
                            std::span<uint8_t> out) const noexcept {
  const size_t n = detail::copy_and_patch_src(tmpl, fields, out);
  if (n == 0 || !tmpl.params.query) return 0;
  uint8_t* pkt = out.data();
  uint8_t* udp = pkt + tmpl.l4_offset;
  wire::store_be16(udp, fields.src_port);
  if (detail::is_v4(tmpl)) {
    // The index (never 0) as IP-ID: an ICMP error quotes it even when it quotes no payload byte.
    detail::patch_ipv4_id_and_checksum(pkt, tmpl.l4_offset, static_cast<uint16_t>(fields.token >> 16));
  }
  const auto& token = tmpl.params.query->token;
  if (!token) {
    detail::patch_l4_checksum(tmpl, pkt, wire::kProtoUdp, 8, 6, /*pseudo=*/true, /*zero_means_none=*/true);
    return n;
  }
  // The token field: zero in the template (out of l4_payload_sum), written here and added to the sum.
  std::span<uint8_t> payload(udp + 8, tmpl.l4_payload_size);
  udpquery::write_token(payload, *token, fields.token);
  wire::store_be16(udp + 6, 0);
  wire::Checksum sum;
  const size_t src = detail::is_v4(tmpl) ? 12 : 8, dst = detail::is_v4(tmpl) ? 16 : 24;
  wire::add_pseudo_header(sum, tmpl.params.af, pkt + src, pkt + dst, wire::kProtoUdp,
                          static_cast<uint32_t>(tmpl.bytes.size() - tmpl.l4_offset));
  // The field summed as it sits in the payload (its parity decides which byte of a 16-bit word it fills):
  // pad it on the left with one zero byte when it starts at an odd offset.
  uint8_t field[udpquery::kMaxTokenBytes + 1] = {};
  const size_t odd = token->offset & 1u;
  std::memcpy(field + odd, payload.data() + token->offset, token->length);
  sum.add({udp, 8}).add_sum16(tmpl.l4_payload_sum).add({field, odd + token->length});
  uint16_t c = sum.finish();
  if (c == 0) c = 0xffff;
  wire::store_be16(udp + 6, c);
  return n;
}

void UdpQueryProbe::capture_clauses(const KeySlice& slice, CaptureClauses& out) const {
  using detail::both;
  using detail::field_test;
  // Own probes and answers: any UDP datagram (own probes are not told apart by classify(): the sender's
  // clock is their send time). The token sits at a per-target offset that this per-type filter
  // cannot know, so every worker receives every UDP answer and matches only its own probes in user space
  // (5-tuple, then the exact echoed token): docs/service-checks.md#udpquery.
  // Quotes: IPv4 by the quoted IP-ID; IPv6 every quoted UDP datagram.
  out.v4.push_back("ip proto 17");
  out.v6.push_back("ip6[6] = 17");
  out.quoted_v4.push_back(both("icmp[17] = 17", field_test("icmp[12:2]", 16, 0, slice)));
  out.quoted_v6.push_back("ip6[54] = 17");
}

namespace udpquery {

bool parse_datagram(std::span<const uint8_t> ip_packet, bool quoted, SeenDatagram& out) noexcept {
  if (ip_packet.empty()) return false;
  const bool v4 = (ip_packet[0] >> 4) == 4;
  std::span<const uint8_t> l4;
  uint8_t proto = 0;
  if (v4) {
    const auto ip = wire::Ipv4View::parse(ip_packet);
    if (!ip || ip->fragment_offset() != 0) return false;
    proto = ip->protocol();
    l4 = ip->payload();
    out.ip_id = uint16_t(ip->id());
  } else if ((ip_packet[0] >> 4) == 6) {
    const auto ip = wire::Ipv6View::parse(ip_packet);
    if (!ip) return false;
    proto = ip->next_header();
    l4 = ip->payload();
  } else {
    return false;
  }
  if (quoted) {
    if (proto != (v4 ? wire::kProtoIcmp : wire::kProtoIcmpv6)) return false;
    const auto icmp = wire::IcmpView::parse(l4);
    if (!icmp) return false;
    if (v4) {
      const auto in = wire::Ipv4View::parse_quoted(icmp->body());
      if (!in || in->fragment_offset() != 0) return false;
      proto = in->protocol();
      l4 = in->payload();
      out.ip_id = uint16_t(in->id());
    } else {
      const auto in = wire::Ipv6View::parse_quoted(icmp->body());
      if (!in) return false;
      proto = in->next_header();
      l4 = in->payload();
    }
  }
  if (proto != wire::kProtoUdp) return false;
  const auto udp = wire::UdpView::parse(l4);
  if (!udp) return false;
  out.payload = udp->payload();
  return true;
}

Outcome match_answer(const PacketTemplate& tmpl, uint32_t wire, std::span<const uint8_t> answer) noexcept {
  if (!tmpl.params.query) return Outcome::kNotOurs;
  const Spec& q = *tmpl.params.query;
  return judge(answer, q.token ? &*q.token : nullptr, wire, q.expect);
}

bool quote_matches(const PacketTemplate& tmpl, uint32_t wire, uint16_t ip_id,
                   std::span<const uint8_t> quoted_payload) noexcept {
  if (!tmpl.params.query) return false;
  const Spec& q = *tmpl.params.query;
  if (!q.token) return true;  // the 5-tuple alone
  if (tmpl.params.af == AddressFamily::kV4 && ip_id != uint16_t(wire >> 16)) return false;
  // The field as it left, where the quote includes it (RFC 792 guarantees only the UDP header; Linux
  // quotes up to 576 bytes over IPv4, up to 1280 over IPv6).
  if (size_t(q.token->offset) + q.token->length > quoted_payload.size())
    return tmpl.params.af == AddressFamily::kV4;  // the IP-ID above is then all there is
  uint8_t field[kMaxTokenBytes] = {};
  write_token({field, q.token->length}, TokenSpec{0, q.token->length, 0}, wire);
  return std::memcmp(quoted_payload.data() + q.token->offset, field, q.token->length) == 0;
}

}  // namespace udpquery

}  // namespace netprobe
