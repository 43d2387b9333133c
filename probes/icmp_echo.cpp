#include "probes/icmp_echo.h"

#include <tins/icmp.h>
#include <tins/icmpv6.h>

#include <fmt/format.h>

#include <string>

#include "probes/capture_util.h"
#include "probes/packet_util.h"

namespace netprobe {

ProbeType IcmpEchoProbe::type() const { return ProbeType::kIcmpPing; }

PacketTemplate IcmpEchoProbe::make_template(const ProbeParams& params) const {
  if (params.af == AddressFamily::kV4) {
    Tins::ICMP icmp(Tins::ICMP::ECHO_REQUEST);
    icmp.id(0);
    icmp.sequence(0);
    return detail::build_template(ProbeType::kIcmpPing, params, icmp, 8, 1);
  }
  Tins::ICMPv6 icmp(Tins::ICMPv6::ECHO_REQUEST);
  icmp.identifier(0);
  icmp.sequence(0);
  return detail::build_template(ProbeType::kIcmpPing, params, icmp, 8, 1);
}

size_t IcmpEchoProbe::craft(const PacketTemplate& tmpl, const PacketFields& fields,
                            std::span<uint8_t> out) const noexcept {
  const size_t n = detail::copy_and_patch_src(tmpl, fields, out);
  if (n == 0) return 0;
  uint8_t* pkt = out.data();
  uint8_t* icmp = pkt + tmpl.l4_offset;
  wire::store_be16(icmp + 4, static_cast<uint16_t>(fields.token >> 16));
  wire::store_be16(icmp + 6, static_cast<uint16_t>(fields.token));
  if (detail::is_v4(tmpl)) {
    detail::patch_ipv4_id_and_checksum(pkt, tmpl.l4_offset, detail::ip_id_from_token(fields.token));
    detail::patch_l4_checksum(tmpl, pkt, wire::kProtoIcmp, 8, 2, /*pseudo=*/false, /*zero_means_none=*/false);
  } else {
    detail::patch_l4_checksum(tmpl, pkt, wire::kProtoIcmpv6, 8, 2, /*pseudo=*/true,
                              /*zero_means_none=*/false);
  }
  if (tmpl.paris_checksum && tmpl.l4_payload_size >= 2) {
    // The checksum computed with the word at 0 is ~S; want ~(S + X) = id, i.e. X = ~id + ~S.
    const uint16_t computed = wire::load_be16(icmp + 2);
    const uint16_t x =
        wire::Checksum().add16(static_cast<uint16_t>(~fields.src_port)).add16(computed).sum16();
    wire::store_be16(icmp + 8, x);
    wire::store_be16(icmp + 2, fields.src_port);
  }
  return n;
}

bool make_paris_checksum(PacketTemplate& t) {
  if (t.type != ProbeType::kIcmpPing || t.l4_payload_size < 2) return false;
  uint8_t* payload = t.bytes.data() + t.l4_offset + 8;
  payload[0] = payload[1] = 0;
  t.l4_payload_sum = wire::Checksum().add({payload, t.l4_payload_size}).sum16();
  t.paris_checksum = true;
  return true;
}

void IcmpEchoProbe::capture_clauses(const KeySlice& slice, CaptureClauses& out) const {
  using detail::both;
  using detail::field_test;
  // The echo id holds the top 16 token bits; a wider slice reaches into the echo seq after it.
  const bool wide = slice.bits > 16;
  const std::string size = wide ? ":4" : ":2";
  const int top = wide ? 32 : 16;
  const std::string s4 = field_test("icmp[4" + size + "]", top, 0, slice);
  const std::string s6 = field_test("ip6[44" + size + "]", top, 0, slice);
  const bool sliced = slice.bits > 0;
  out.v4.push_back("(ip proto 1 and (icmp[0] = 0 or icmp[0] = 8)" + (sliced ? " and " + s4 : "") + ")");
  out.v6.push_back("(ip6[6] = 58 and (ip6[40] = 128 or ip6[40] = 129)" + (sliced ? " and " + s6 : "") + ")");
  out.quoted_v4.push_back(both("icmp[17] = 1", field_test("icmp[32" + size + "]", top, 0, slice)));
  out.quoted_v6.push_back(both("ip6[54] = 58", field_test("ip6[92" + size + "]", top, 0, slice)));
}

}  // namespace netprobe
