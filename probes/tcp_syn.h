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
};

}  // namespace netprobe
