// describe_reply(): display fields of a matched reply (probes/reply_info.h). Untrusted bytes: every read
// goes through the bounds-checked wire views or an explicit size check.
#include "probes/reply_info.h"

#include "wire/checksum.h"
#include "wire/ip.h"
#include "wire/l4.h"

namespace netprobe {

namespace {

using wire::IcmpView;

// RFC 4884 section 7 / RFC 4950: the extension structure after the quoted datagram of an ICMP Time
// Exceeded, Destination Unreachable (and v4 Parameter Problem) message. Version 2 header (4 bytes, with a
// checksum over the whole structure when non-zero), then objects {length, class, c-type, data}; class 1
// c-type 1 is the MPLS label stack, 4 bytes per entry.
void read_mpls(std::span<const uint8_t> icmp, bool v4, ReplyInfo& out) noexcept {
  if (icmp.size() < IcmpView::kHeader) return;
  const uint8_t type = icmp[0];
  const bool carries_length =
      v4 ? (type == IcmpView::kV4DestUnreachable || type == IcmpView::kV4TimeExceeded ||
            type == IcmpView::kV4ParameterProblem)
         : (type == IcmpView::kV6DestUnreachable || type == IcmpView::kV6TimeExceeded);
  if (!carries_length) return;
  // The original datagram's length, in 32-bit words (ICMPv4, byte 5) or 64-bit words (ICMPv6, byte 4).
  const size_t words = v4 ? icmp[5] : icmp[4];
  size_t offset = IcmpView::kHeader + words * (v4 ? 4 : 8);
  // Non-compliant routers (RFC 4884 section 5.4) leave the length at 0 and quote exactly 128 bytes.
  if (words == 0) offset = IcmpView::kHeader + 128;
  if (offset + 4 > icmp.size()) return;
  const auto ext = icmp.subspan(offset);
  if ((ext[0] >> 4) != 2) return;
  if (wire::load_be16(ext.data() + 2) != 0 && wire::internet_checksum(ext) != 0) return;
  size_t at = 4;
  while (at + 4 <= ext.size()) {
    const size_t length = wire::load_be16(ext.data() + at);
    if (length < 4 || at + length > ext.size()) return;  // a malformed object ends the walk
    const uint8_t class_num = ext[at + 2], c_type = ext[at + 3];
    if (class_num == 1 && c_type == 1) {
      for (size_t e = at + 4; e + 4 <= at + length && out.mpls_count < ReplyInfo::kMaxLabels; e += 4) {
        const uint32_t v = wire::load_be32(ext.data() + e);
        out.mpls[out.mpls_count++] = {v >> 12, uint8_t((v >> 9) & 7), ((v >> 8) & 1) != 0, uint8_t(v & 0xff)};
      }
      return;
    }
    at += length;
  }
}

void read_l4(std::span<const uint8_t> l4, bool v4, ReplyInfo& out) noexcept {
  switch (out.protocol) {
    case wire::kProtoTcp:
      if (auto tcp = wire::TcpView::parse(l4)) {
        out.tcp_flags = tcp->flags();
        out.tcp_window = tcp->window();
      }
      return;
    case wire::kProtoIcmp:
    case wire::kProtoIcmpv6:
      if ((out.protocol == wire::kProtoIcmp) != v4) return;
      if (auto icmp = IcmpView::parse(l4)) {
        out.icmp_type = icmp->type();
        out.icmp_code = icmp->code();
        read_mpls(l4, v4, out);
      }
      return;
    default:
      return;
  }
}

}  // namespace

ReplyInfo describe_reply(std::span<const uint8_t> ip_packet) noexcept {
  ReplyInfo out;
  if (ip_packet.empty()) return out;
  if ((ip_packet[0] >> 4) == 4) {
    auto ip = wire::Ipv4View::parse(ip_packet);
    if (!ip) return out;
    out.valid = true;
    out.from = ip->src();
    out.length = ip->total_length();
    out.ttl = ip->ttl();
    out.ip_id = ip->id();
    out.dont_fragment = ip->dont_fragment();
    out.tos = ip->tos();
    out.protocol = ip->protocol();
    if (ip->fragment_offset() == 0) read_l4(ip->payload(), true, out);
    return out;
  }
  auto ip = wire::Ipv6View::parse(ip_packet);
  if (!ip) return out;
  out.valid = true;
  out.from = ip->src();
  out.length = uint16_t(std::min<size_t>(0xffff, wire::Ipv6View::kHeader + ip->payload_length()));
  out.ttl = ip->hop_limit();
  out.tos = ip->traffic_class();
  out.protocol = ip->next_header();
  read_l4(ip->payload(), false, out);
  return out;
}

std::array<char, 9> tcp_flags_letters(uint8_t flags) noexcept {
  // hping3's order (waitpacket.c), so that --format hping prints what its parsers expect.
  static constexpr struct {
    uint8_t bit;
    char letter;
  } kOrder[] = {{0x04, 'R'}, {0x02, 'S'}, {0x10, 'A'}, {0x01, 'F'},
                {0x08, 'P'}, {0x20, 'U'}, {0x40, 'X'}, {0x80, 'Y'}};
  std::array<char, 9> out{};
  size_t n = 0;
  for (const auto& f : kOrder)
    if (flags & f.bit) out[n++] = f.letter;
  return out;
}

}  // namespace netprobe
