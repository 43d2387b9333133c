#pragma once
// UDPunreachable (netprobify 4.3): a UDP datagram to a closed port whose answer is an ICMP port
// unreachable. The token travels in the IPv4 IP-ID / IPv6 flow label, which the ICMP error quotes back
// (the UDP header alone has no room for it besides the ports).
#include "probes/probe.h"

namespace netprobe {

class UdpUnreachableProbe final : public Probe {
 public:
  ProbeType type() const override;
  PacketTemplate make_template(const ProbeParams& params) const override;
  size_t craft(const PacketTemplate& tmpl, const PacketFields& fields,
               std::span<uint8_t> out) const noexcept override;
};

}  // namespace netprobe
