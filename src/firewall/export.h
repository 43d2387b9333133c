#pragma once
// `netprobe export-fw`: the egress rules a configuration's probes need (docs/firewall.md).
#include <string>
#include <vector>

#include "config/config.h"
#include "core/result.h"
#include "firewall/rules.h"

namespace netprobe::firewall {

// Every target of the configuration, in name order: the selection when no tag option is given.
std::vector<const TargetConfig*> all_targets(const Config& config);

// The rules `targets` (a selection of config.targets) need from `from_host`, merged: per target and group,
// the probe's protocol and destination port (TCPsyn: tcp, UDPunreachable: udp, ICMPping: icmp or
// ipv6-icmp echo), the group's source ports and source address or subnet, and what must come back. Subnet
// targets are written in CIDR form, host names stay names. An error names a target whose destination
// cannot be written as a rule.
Result<std::vector<EgressRule>> export_rules(const Config& config,
                                             const std::vector<const TargetConfig*>& targets,
                                             const std::string& from_host);

// The rules TCPquery / TLS targets need (docs/service-checks.md#firewall): per check and group, tcp to
// dst_port from the group's fixed source address of the family (src_ipv4 / src_ipv6: the one the check
// binds; none when the kernel chooses) and any source port (the kernel's ephemeral one), the connection's
// own packets back (tcp-ack) and ICMP errors. Not merged: merge_rules() over both kinds of rules.
Result<std::vector<EgressRule>> export_service_check_rules(
    const Config& config, const std::vector<const ServiceCheckConfig*>& checks, const std::string& from_host);

}  // namespace netprobe::firewall
