#include "probes/udp_unreachable.h"

#include <tins/udp.h>

#include "probes/packet_util.h"

namespace netprobe {

ProbeType UdpUnreachableProbe::type() const { return ProbeType::kUdpUnreachable; }

PacketTemplate UdpUnreachableProbe::make_template(const ProbeParams& params) const {
  Tins::UDP udp(params.dst_port, 0);
  // Decision 7: unlike netprobify, dont_fragment is honoured (build_template applies it).
  return detail::build_template(ProbeType::kUdpUnreachable, params, udp, 8, 1);
}

size_t UdpUnreachableProbe::craft(const PacketTemplate& tmpl, const PacketFields& fields,
                                  std::span<uint8_t> out) const noexcept {
  const size_t n = detail::copy_and_patch_src(tmpl, fields, out);
  if (n == 0) return 0;
  uint8_t* pkt = out.data();
  wire::store_be16(pkt + tmpl.l4_offset, fields.src_port);
  if (detail::is_v4(tmpl)) {
    // The token is the IP-ID itself; tokens are never 0 (the kernel would replace it).
    detail::patch_ipv4_id_and_checksum(pkt, tmpl.l4_offset, static_cast<uint16_t>(fields.token));
  } else {
    const uint32_t w = wire::load_be32(pkt);
    wire::store_be32(pkt, (w & 0xfff00000u) | (fields.token & 0xfffffu));
  }
  detail::patch_l4_checksum(tmpl, pkt, wire::kProtoUdp, 8, 6, /*pseudo=*/true, /*zero_means_none=*/true);
  return n;
}

}  // namespace netprobe
