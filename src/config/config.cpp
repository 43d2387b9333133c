#include "config/config.h"

#include <algorithm>

namespace netprobe {

std::string_view to_string(AlertLevel level) {
  switch (level) {
    case AlertLevel::kPaging:
      return "paging";
    case AlertLevel::kPagingValidation:
      return "paging_validation";
    case AlertLevel::kSandbox:
      return "sandbox";
    case AlertLevel::kNoAlert:
      return "no_alert";
  }
  return "no_alert";
}

std::optional<AlertLevel> alert_level_from_string(std::string_view s) {
  if (s == "paging") return AlertLevel::kPaging;
  if (s == "paging_validation") return AlertLevel::kPagingValidation;
  if (s == "sandbox") return AlertLevel::kSandbox;
  if (s == "no_alert") return AlertLevel::kNoAlert;
  return std::nullopt;
}

std::string_view to_string(RttHistogram granularity) {
  switch (granularity) {
    case RttHistogram::kPerTarget:
      return "per_target";
    case RttHistogram::kPerGroup:
      return "per_group";
    case RttHistogram::kNone:
      return "none";
  }
  return "none";
}

std::optional<RttHistogram> rtt_histogram_from_string(std::string_view s) {
  if (s == "per_target") return RttHistogram::kPerTarget;
  if (s == "per_group") return RttHistogram::kPerGroup;
  if (s == "none") return RttHistogram::kNone;
  return std::nullopt;
}

AddressFamily TargetConfig::family() const {
  if (address_family) return *address_family;
  // An IP literal, or a CIDR network (netprobify did not detect IPv6 subnets and crashed:
  // docs/netprobify-compatibility.md#q10-ipv6-subnets).
  if (auto addr = IpAddress::parse(destination)) return addr->af;
  if (destination.find('/') != std::string::npos)
    if (auto net = IpNetwork::parse(destination)) return net->base.af;
  return AddressFamily::kV4;
}

int l4_header_size(ProbeType type) { return type == ProbeType::kTcpSyn ? 20 : 8; }

int effective_ip_payload_size(const TargetConfig& target, const GroupConfig& group) {
  const int header = l4_header_size(target.type);
  int size = header;
  if (target.ip_payload_size) {
    size = *target.ip_payload_size;
  } else if (target.type == ProbeType::kIcmpPing && group.ip_payload_size && *group.ip_payload_size != 0) {
    size = *group.ip_payload_size;
  }
  return std::max(size, header);
}

}  // namespace netprobe

namespace netprobe {

std::string_view to_string(ServiceCheckType t) { return t == ServiceCheckType::kTls ? "TLS" : "TCPquery"; }

AddressFamily ServiceCheckConfig::family() const {
  if (address_family) return *address_family;
  if (auto addr = IpAddress::parse(destination)) return addr->af;
  return AddressFamily::kV4;
}

}  // namespace netprobe
