#pragma once
// `netprobe convert-fw`: merged egress rules -> firewall commands for one backend (docs/firewall.md).
// Host names are resolved to every A and AAAA record through the Resolver interface (tests script it).
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.h"
#include "core/net.h"
#include "dns/resolver.h"
#include "firewall/rules.h"

namespace netprobe::firewall {

enum class Backend : uint8_t { kIptables, kNftables, kUfw, kAws, kNeutron };
std::optional<Backend> backend_from_string(std::string_view s);  // also conn-check's aliases: ec2, openstack

struct Resolved {
  std::map<std::string, std::vector<IpAddress>> addresses;  // per host name: sorted, IPv4 first, unique
  std::vector<std::string> errors;                          // "name: why", one per name that failed
};

// The families a rule's to_host needs: its address_family, the one an ICMP protocol implies, else both.
std::vector<AddressFamily> wanted_families(const EgressRule& rule);

// Resolves every host name of `rules` (addresses and CIDRs need nothing) for the families they need,
// waiting at most `timeout` in all. A name fails when it has no usable address at all, or when a query
// failed for another reason than "no such name / no such record" (a timeout, SERVFAIL): rules built
// from half an answer would silently miss addresses.
Resolved resolve_names(const std::vector<EgressRule>& rules, Resolver& resolver, Nanos timeout);

struct ConvertOptions {
  Backend backend = Backend::kIptables;
  // aws / neutron: the security group. The default is a shell variable, as conn-check printed it.
  std::string group = "$SECGROUP";
  // nftables: the table (family inet) whose `input` and `output` chains get the rules.
  std::string nft_table = "filter";
};

// Valid values of ConvertOptions::group and nft_table (they are printed into shell commands).
bool is_valid_group(std::string_view s);
bool is_valid_nft_table(std::string_view s);

// The commands, one per line, with `#` comments; `rules` merged, every host name in `resolved`.
std::string render_commands(const std::vector<EgressRule>& rules, const Resolved& resolved,
                            const ConvertOptions& options);

}  // namespace netprobe::firewall
