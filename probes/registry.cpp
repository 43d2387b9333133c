// The probe types, listed explicitly (zmap's probe_modules list is the model): adding a type means adding
// a file and a line here, nothing is registered behind the reader's back.
#include <stdexcept>

#include "probes/icmp_echo.h"
#include "probes/probe.h"
#include "probes/tcp_syn.h"
#include "probes/udp_query.h"
#include "probes/udp_unreachable.h"

namespace netprobe {

const Probe& probe_for(ProbeType type) {
  static const TcpSynProbe tcp_syn;
  static const IcmpEchoProbe icmp_echo;
  static const UdpUnreachableProbe udp_unreachable;
  static const UdpQueryProbe udp_query;
  switch (type) {
    case ProbeType::kTcpSyn:
      return tcp_syn;
    case ProbeType::kIcmpPing:
      return icmp_echo;
    case ProbeType::kUdpUnreachable:
      return udp_unreachable;
    case ProbeType::kUdpQuery:
      return udp_query;
  }
  throw std::out_of_range("probe_for: unknown probe type");
}

uint32_t probe_types_mask(std::span<const ProbeType> types) {
  uint32_t mask = 0;
  for (ProbeType t : types) mask |= uint32_t(1) << unsigned(t);
  return mask;
}

std::vector<ProbeType> probe_types_of_mask(uint32_t mask) {
  std::vector<ProbeType> out;
  for (int t = 0; t < kProbeTypeCount; ++t)
    if (mask & (uint32_t(1) << unsigned(t))) out.push_back(ProbeType(t));
  return out;
}

}  // namespace netprobe
