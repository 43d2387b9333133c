#pragma once
// UDPunreachable (netprobify's type; matching: docs/matching.md): a UDP datagram to a closed port whose
// answer is an ICMP port unreachable. The token travels where the ICMP error quotes it back: IPv4 in the
// IP-ID (index) and the UDP checksum (check, set through the first payload word), IPv6 in the first 4 payload
// bytes (ICMPv6 errors quote up to 1232 bytes). The IPv6 flow label stays constant: ECMP hashes read it.
#include "probes/probe.h"

namespace netprobe {

class UdpUnreachableProbe final : public Probe {
 public:
  ProbeType type() const override;
  std::string_view metric_prefix() const noexcept override { return "udp_unreachable"; }
  int token_bits(AddressFamily af) const noexcept override {
    (void)af;
    return af == AddressFamily::kV4 ? 16 : 20;
  }
  int check_bits(AddressFamily af) const noexcept override {
    (void)af;
    return af == AddressFamily::kV4 ? 16 : 12;
  }
  bool answer_quotes_probe() const noexcept override { return true; }
  void capture_clauses(const KeySlice& slice, CaptureClauses& out) const override;
  PacketTemplate make_template(const ProbeParams& params) const override;
  size_t craft(const PacketTemplate& tmpl, const PacketFields& fields,
               std::span<uint8_t> out) const noexcept override;
};

}  // namespace netprobe
