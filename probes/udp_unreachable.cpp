#include "probes/udp_unreachable.h"

#include <tins/udp.h>

#include <cstring>

#include <fmt/format.h>

#include <string>

#include "probes/capture_util.h"
#include "probes/packet_util.h"

namespace netprobe {

ProbeType UdpUnreachableProbe::type() const { return ProbeType::kUdpUnreachable; }

namespace {
// Payload bytes the token needs: IPv4 the word that makes the checksum what we choose, IPv6 W itself.
size_t token_bytes(AddressFamily af) { return af == AddressFamily::kV4 ? 2 : 4; }
}  // namespace

PacketTemplate UdpUnreachableProbe::make_template(const ProbeParams& params) const {
  Tins::UDP udp(params.dst_port, 0);
  ProbeParams p = params;
  const size_t min_size = 8 + token_bytes(params.af);
  if (p.ip_payload_size < min_size) p.ip_payload_size = uint16_t(min_size);
  // Unlike netprobify, dont_fragment is honoured (docs/netprobify-compatibility.md#d7-udp-dont-fragment).
  PacketTemplate t = detail::build_template(ProbeType::kUdpUnreachable, p, udp, 8, 1);
  // The token bytes are written per packet: zero in the template, so the payload sum leaves them out.
  std::memset(t.bytes.data() + t.l4_offset + 8, 0, token_bytes(params.af));
  t.l4_payload_sum = wire::Checksum().add({t.bytes.data() + t.l4_offset + 8, t.l4_payload_size}).sum16();
  return t;
}

size_t UdpUnreachableProbe::craft(const PacketTemplate& tmpl, const PacketFields& fields,
                                  std::span<uint8_t> out) const noexcept {
  const size_t n = detail::copy_and_patch_src(tmpl, fields, out);
  if (n == 0) return 0;
  uint8_t* pkt = out.data();
  wire::store_be16(pkt + tmpl.l4_offset, fields.src_port);
  uint8_t* udp = pkt + tmpl.l4_offset;
  if (detail::is_v4(tmpl)) {
    // The index is the IP-ID (never 0: the kernel would replace it), the check the UDP checksum (never
    // 0: "no checksum"). The first payload word is chosen so that the checksum comes out as the check.
    detail::patch_ipv4_id_and_checksum(pkt, tmpl.l4_offset, static_cast<uint16_t>(fields.token >> 16));
    const auto check = static_cast<uint16_t>(fields.token);
    wire::store_be16(udp + 8, 0);
    wire::store_be16(udp + 6, 0);
    wire::Checksum sum;
    wire::add_pseudo_header(sum, AddressFamily::kV4, pkt + 12, pkt + 16, wire::kProtoUdp,
                            static_cast<uint32_t>(tmpl.bytes.size() - tmpl.l4_offset));
    sum.add({udp, 8}).add_sum16(tmpl.l4_payload_sum);
    // Want ~(S + X) = check, i.e. X = ~check - S = ~check + ~S in one's complement.
    const uint16_t x = wire::Checksum()
                           .add16(static_cast<uint16_t>(~check))
                           .add16(static_cast<uint16_t>(~sum.sum16()))
                           .sum16();
    wire::store_be16(udp + 8, x);
    wire::store_be16(udp + 6, check);
    return n;
  }
  wire::store_be32(udp + 8, fields.token);
  detail::patch_l4_checksum(tmpl, pkt, wire::kProtoUdp, 12, 6, /*pseudo=*/true, /*zero_means_none=*/true);
  return n;
}

void UdpUnreachableProbe::capture_clauses(const KeySlice& slice, CaptureClauses& out) const {
  using detail::both;
  using detail::field_test;
  // IPv4: the IP-ID (own probe) / the quoted IP-ID; IPv6: the first UDP payload word / the quoted one.
  // Incoming UDP cannot be told from our probes here: the worker ANDs its slice (docs/matching.md).
  const int ip_id_top = token_bits(AddressFamily::kV4);
  out.v4.push_back(both("ip proto 17", field_test("ip[4:2]", ip_id_top, 0, slice)));
  out.v6.push_back(both("ip6[6] = 17", field_test("ip6[48:4]", 32, 0, slice)));
  out.quoted_v4.push_back(both("icmp[17] = 17", field_test("icmp[12:2]", ip_id_top, 0, slice)));
  out.quoted_v6.push_back(both("ip6[54] = 17", field_test("ip6[96:4]", 32, 0, slice)));
}

}  // namespace netprobe
