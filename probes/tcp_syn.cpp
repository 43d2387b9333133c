#include "probes/tcp_syn.h"

#include <tins/tcp.h>

#include "probes/packet_util.h"
#include "wire/l4.h"

namespace netprobe {

ProbeType TcpSynProbe::type() const { return ProbeType::kTcpSyn; }

PacketTemplate TcpSynProbe::make_template(const ProbeParams& params) const {
  Tins::TCP tcp(params.dst_port, 0);
  tcp.flags(Tins::TCP::SYN);
  tcp.window(8192);  // netprobify (scapy) value
  tcp.seq(0);
  tcp.ack_seq(0);
  return detail::build_template(ProbeType::kTcpSyn, params, tcp, 20, 1);
}

size_t TcpSynProbe::craft(const PacketTemplate& tmpl, const PacketFields& fields,
                          std::span<uint8_t> out) const noexcept {
  const size_t n = detail::copy_and_patch_src(tmpl, fields, out);
  if (n == 0) return 0;
  uint8_t* pkt = out.data();
  uint8_t* tcp = pkt + tmpl.l4_offset;
  wire::store_be16(tcp, fields.src_port);
  wire::store_be32(tcp + 4, fields.token);
  if (detail::is_v4(tmpl))
    detail::patch_ipv4_id_and_checksum(pkt, tmpl.l4_offset, detail::ip_id_from_token(fields.token));
  detail::patch_l4_checksum(tmpl, pkt, wire::kProtoTcp, 20, 16, /*pseudo=*/true, /*zero_means_none=*/false);
  return n;
}

bool TcpSynProbe::proof_matches(uint32_t wire, size_t payload, const Classification& c) const noexcept {
  // Answers carry the ack; our own SYNs and quoted SYNs the seq itself.
  if (c.verdict == Verdict::kAnswer) return tcp_ack_matches(wire, payload, c.proof, c.tcp_flags);
  return c.proof == wire;
}

int TcpSynProbe::index_candidates(const Classification& c, uint32_t out[2]) const noexcept {
  if (c.verdict != Verdict::kAnswer) return Probe::index_candidates(c, out);
  return tcp_index_candidates(c.proof, c.tcp_flags, out);
}

bool TcpSynProbe::needs_follow_up(const Classification& c) const noexcept {
  return c.verdict == Verdict::kAnswer && (c.tcp_flags & wire::TcpView::kSyn);
}

size_t TcpSynProbe::craft_follow_up(const PacketTemplate& tmpl, const PacketFields& fields,
                                    std::span<uint8_t> out) const noexcept {
  return craft_rst(tmpl, fields, out);
}

size_t TcpSynProbe::craft_rst(const PacketTemplate& tmpl, const PacketFields& fields,
                              std::span<uint8_t> out) const noexcept {
  const size_t n = craft(tmpl, fields, out);
  if (n == 0) return 0;
  uint8_t* tcp = out.data() + tmpl.l4_offset;
  wire::store_be32(tcp + 4, fields.token + 1);
  tcp[13] = 0x04;                 // RST
  wire::store_be16(tcp + 14, 0);  // window
  detail::patch_l4_checksum(tmpl, out.data(), wire::kProtoTcp, 20, 16, /*pseudo=*/true,
                            /*zero_means_none=*/false);
  return n;
}

}  // namespace netprobe
