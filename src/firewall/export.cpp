#include "firewall/export.h"

#include <fmt/format.h>

#include <algorithm>

namespace netprobe::firewall {

std::vector<const TargetConfig*> all_targets(const Config& config) {
  std::vector<const TargetConfig*> out;
  out.reserve(config.targets.size());
  for (const auto& [name, target] : config.targets) out.push_back(&target);
  return out;
}

namespace {

// The source addresses a group sends from in a family (plan.cpp's configured_sources: the subnet wins
// over the fixed address); nothing when the kernel chooses.
std::optional<IpNetwork> group_source(const GroupConfig& g, AddressFamily af) {
  const auto& subnet = af == AddressFamily::kV4 ? g.src_subnet_ipv4 : g.src_subnet_ipv6;
  const auto& fixed = af == AddressFamily::kV4 ? g.src_ipv4 : g.src_ipv6;
  if (subnet) return subnet;
  if (fixed) return IpNetwork{*fixed, af == AddressFamily::kV4 ? 32 : 128};
  return std::nullopt;
}

}  // namespace

Result<std::vector<EgressRule>> export_rules(const Config& config,
                                             const std::vector<const TargetConfig*>& targets,
                                             const std::string& from_host) {
  if (!is_valid_host_name(from_host) && !IpAddress::parse(from_host))
    return Error(fmt::format("from_host \"{}\" is not a valid host name", from_host));
  std::vector<EgressRule> rules;
  for (const TargetConfig* t : targets) {
    if (!t) continue;
    EgressRule base;
    base.from_host = from_host;
    base.targets = {t->name};
    const auto af = t->family();
    std::vector<AddressFamily> families{af};
    if (t->is_subnet) {
      const auto net = IpNetwork::parse(t->destination);
      if (!net)
        return Error::for_target(t->name,
                                 fmt::format("target {}: {} is not a subnet", t->name, t->destination));
      base.to_host = net->to_string();
    } else if (const auto a = IpAddress::parse(t->destination)) {
      base.to_host = a->to_string();
    } else {
      if (!is_valid_host_name(t->destination))
        return Error::for_target(
            t->name,
            fmt::format("target {}: destination \"{}\" is not a valid host name", t->name, t->destination));
      base.to_host = t->destination;
      // A name without an explicit family: convert-fw allows every A and AAAA record, so both families'
      // sources are listed (netprobe itself probes its IPv4 address).
      base.address_family = t->address_family;
      if (!t->address_family) families = {AddressFamily::kV4, AddressFamily::kV6};
    }
    switch (t->type) {
      case ProbeType::kTcpSyn:
        base.protocol = Protocol::kTcp;
        base.returning = kTcpAck | kIcmpErrors;
        break;
      case ProbeType::kUdpUnreachable:
        base.protocol = Protocol::kUdp;
        base.returning = kPortUnreachable | kIcmpErrors;
        break;
      case ProbeType::kUdpQuery:  // the service answers in UDP, or with a port unreachable when closed
        base.protocol = Protocol::kUdp;
        base.returning = kUdpAnswer | kPortUnreachable | kIcmpErrors;
        break;
      case ProbeType::kIcmpPing:
        base.protocol = af == AddressFamily::kV4 ? Protocol::kIcmp : Protocol::kIcmpV6;
        base.returning = kEchoReply | kIcmpErrors;
        families = {af};
        break;
    }
    const bool ported = t->type != ProbeType::kIcmpPing;
    if (ported && t->dst_port) base.ports = {{*t->dst_port, *t->dst_port}};
    for (const auto& group_name : t->groups) {
      const auto git = config.groups.find(group_name);
      if (git == config.groups.end()) continue;
      const GroupConfig& g = git->second;
      EgressRule r = base;
      for (const auto f : families)
        if (const auto src = group_source(g, f)) r.from_cidr.push_back(*src);
      if (ported)
        r.src_ports = {{std::min(g.src_port_a, g.src_port_z), std::max(g.src_port_a, g.src_port_z)}};
      rules.push_back(std::move(r));
    }
  }
  return merge_rules(std::move(rules));
}

Result<std::vector<EgressRule>> export_service_check_rules(
    const Config& config, const std::vector<const ServiceCheckConfig*>& checks,
    const std::string& from_host) {
  std::vector<EgressRule> rules;
  for (const ServiceCheckConfig* c : checks) {
    if (!c) continue;
    EgressRule base;
    base.from_host = from_host;
    base.targets = {c->name};
    base.protocol = Protocol::kTcp;
    base.ports = {{c->dst_port, c->dst_port}};
    base.returning = kTcpAck | kIcmpErrors;
    const AddressFamily af = c->family();
    if (const auto a = IpAddress::parse(c->destination)) {
      base.to_host = a->to_string();
    } else {
      if (!is_valid_host_name(c->destination))
        return Error::for_target(
            c->name,
            fmt::format("target {}: destination \"{}\" is not a valid host name", c->name, c->destination));
      base.to_host = c->destination;
      base.address_family = af;  // the check resolves in its family only
    }
    for (const auto& group_name : c->groups) {
      const auto git = config.groups.find(group_name);
      if (git == config.groups.end()) continue;
      const auto& fixed = af == AddressFamily::kV4 ? git->second.src_ipv4 : git->second.src_ipv6;
      EgressRule r = base;
      if (fixed) r.from_cidr.push_back(IpNetwork{*fixed, af == AddressFamily::kV4 ? 32 : 128});
      rules.push_back(std::move(r));
    }
  }
  return rules;
}

}  // namespace netprobe::firewall
