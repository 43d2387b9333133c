#include "probes/tcp_syn.h"

#include <tins/tcp.h>

#include <fmt/format.h>

#include <string>

#include "probes/capture_util.h"
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

void TcpSynProbe::capture_clauses(const KeySlice& slice, CaptureClauses& out) const {
  using detail::both;
  using detail::field_test;
  // flags & (SYN|ACK) == SYN: our SYN; == SYN|ACK: SYN-ACK; flags & (RST|ACK) == RST|ACK: RST-ACK;
  // flags & (FIN|SYN|RST|PSH|ACK) == ACK: a pure ACK of an earlier SYN (docs/architecture.md#two-way-loss).
  // A RST-ACK acking seq+1+P may have carried into the index: its slice is that of ack-1 or ack-1-2^14.
  for (bool v6_family : {false, true}) {
    const std::string flags = v6_family ? "ip6[53]" : "tcp[13]";
    const std::string seq = v6_family ? "ip6[44:4]" : "tcp[4:4]";
    const std::string ack = v6_family ? "ip6[48:4]" : "tcp[8:4]";
    const std::string ack1 = "(" + ack + " - 1)";
    const std::string proto = v6_family ? "ip6[6] = 6" : "ip proto 6";
    std::string rst = flags + " & 0x14 = 0x14";
    if (slice.bits > 0)
      rst = fmt::format("({} and ({} or {}))", rst, field_test(ack1, 32, 0, slice),
                        field_test(fmt::format("({} - {:#x})", ack, (1u << kTcpSeqShift) + 1), 32, 0, slice));
    (v6_family ? out.v6 : out.v4)
        .push_back(fmt::format("({} and ({} or {} or {}))", proto,
                               both(flags + " & 0x12 = 0x02", field_test(seq, 32, 0, slice)),
                               both("(" + flags + " & 0x12 = 0x12 or " + flags + " & 0x1f = 0x10)",
                                    field_test(ack1, 32, 0, slice)),
                               rst));
  }
  // The quoted SYN's seq.
  out.quoted_v4.push_back(both("icmp[17] = 6", field_test("icmp[32:4]", 32, 0, slice)));
  out.quoted_v6.push_back(both("ip6[54] = 6", field_test("ip6[92:4]", 32, 0, slice)));
}

}  // namespace netprobe
