#pragma once
// TCPsyn (netprobify 4.1): a bare SYN, window 8192, no options, seq = token << kTcpSeqShift, so that
// both the SYN-ACK (ack = seq+1) and the RST-ACK (ack = seq+1[+payload]) give the token back.
#include "probes/probe.h"

namespace netprobe {

class TcpSynProbe final : public Probe {
 public:
  ProbeType type() const override;
  PacketTemplate make_template(const ProbeParams& params) const override;
  size_t craft(const PacketTemplate& tmpl, const PacketFields& fields,
               std::span<uint8_t> out) const noexcept override;
  // The RST that closes the half-open connection a SYN-ACK opened on the target (decision 12): same
  // addresses and ports as the probe, seq = ISN + 1 (what the target expects), no ACK. Needed only
  // when the probe's source address is not local: otherwise our kernel sends that RST itself.
  size_t craft_rst(const PacketTemplate& tmpl, const PacketFields& fields,
                   std::span<uint8_t> out) const noexcept;
};

}  // namespace netprobe
