#pragma once
// TCPsyn (netprobify's type; matching: docs/matching.md): a bare SYN, window 8192, no options, seq = the wire
// token W (index << 14 | 14 keyed check bits), so that both the SYN-ACK (ack = seq+1) and the RST-ACK (ack =
// seq+1[+payload]) give the index back (tcp_index_candidates()) and are then checked exactly
// (tcp_ack_matches()).
#include "probes/probe.h"

namespace netprobe {

class TcpSynProbe final : public Probe {
 public:
  ProbeType type() const override;
  std::string_view metric_prefix() const noexcept override { return "tcpsyn"; }
  int token_bits(AddressFamily af) const noexcept override {
    (void)af;
    return 32 - kTcpSeqShift;
  }
  int check_bits(AddressFamily af) const noexcept override {
    (void)af;
    return kTcpSeqShift;
  }
  bool counts_unmatched_answers() const noexcept override { return true; }
  void capture_clauses(const KeySlice& slice, CaptureClauses& out) const override;
  PacketTemplate make_template(const ProbeParams& params) const override;
  size_t craft(const PacketTemplate& tmpl, const PacketFields& fields,
               std::span<uint8_t> out) const noexcept override;
  // The RST that closes the half-open connection a SYN-ACK opened on the target
  // (docs/netprobify-compatibility.md#d12-half-open-rst): same addresses and ports as the probe, seq = ISN +
  // 1 (what the target expects), no ACK. Needed only when the probe's source address is not local: otherwise
  // our kernel sends that RST itself.
  bool proof_matches(uint32_t wire, size_t payload, const Classification& c) const noexcept override;
  int index_candidates(const Classification& c, uint32_t out[2]) const noexcept override;
  // A SYN-ACK to a probe whose source is not local: craft_rst().
  bool has_follow_ups() const noexcept override { return true; }
  bool needs_follow_up(const Classification& c) const noexcept override;
  size_t craft_follow_up(const PacketTemplate& tmpl, const PacketFields& fields,
                         std::span<uint8_t> out) const noexcept override;
  size_t craft_rst(const PacketTemplate& tmpl, const PacketFields& fields,
                   std::span<uint8_t> out) const noexcept;
};

}  // namespace netprobe
