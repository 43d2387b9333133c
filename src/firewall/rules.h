#pragma once
// Egress firewall rules in conn-check-export-fw's YAML shape (`egress: [{from_host, to_host, ports,
// protocol}]`), plus what a raw prober needs and conn-check never listed: the source ports and addresses of
// its probes and the traffic that must come back (docs/firewall.md). The YAML is read back from untrusted
// files (conn-check's or ours, merged from many hosts), so parse_rules() bounds everything it reads.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/net.h"

namespace netprobe::firewall {

enum class Protocol : uint8_t { kTcp, kUdp, kIcmp, kIcmpV6 };
std::string_view to_string(Protocol p);  // "tcp", "udp", "icmp", "ipv6-icmp" (/etc/protocols' names)
std::optional<Protocol> protocol_from_string(std::string_view s);  // also "icmpv6"

struct PortRange {
  uint16_t first = 0, last = 0;
  std::string to_string(char sep = '-') const;  // "443" or "65000-65001"
  friend auto operator<=>(const PortRange&, const PortRange&) = default;
};
// Sorted, overlapping and adjacent ranges joined: {80, 443, 444} -> {80, 443-444}.
std::vector<PortRange> coalesce(std::vector<PortRange> ranges);

// What must come back to the prober for a rule's probes to be measured (the `returning` list).
enum Returning : uint8_t {
  kTcpAck = 1,           // "tcp-ack": SYN-ACK, RST-ACK and pure ACK from to_host's ports to the source ports
  kEchoReply = 2,        // "echo-reply": ICMP / ICMPv6 echo reply from to_host
  kPortUnreachable = 4,  // "port-unreachable": ICMP / ICMPv6 port unreachable from to_host
  kIcmpErrors = 8,       // "icmp-errors": destination unreachable, time exceeded, parameter problem
  kUdpAnswer = 16,       // "udp-answer": UDP from to_host's ports to the source ports (UDPquery)
                         // (ICMPv6: and packet too big), from any router on the path
};
inline constexpr uint8_t kAllReturning = kTcpAck | kEchoReply | kPortUnreachable | kIcmpErrors | kUdpAnswer;
std::vector<std::string_view> returning_names(uint8_t bits);  // in the order above

struct EgressRule {
  std::string from_host;  // the prober's host name
  std::string to_host;    // host name, address or CIDR (subnet target), as written
  Protocol protocol = Protocol::kTcp;
  std::vector<PortRange> ports;                 // destination ports (coalesced); empty for ICMP
  std::optional<AddressFamily> address_family;  // set: resolve to_host for that family only
  std::vector<IpNetwork> from_cidr;             // the group's source address or subnet, per family
  std::vector<PortRange> src_ports;             // the group's source ports; empty = any
  uint8_t returning = 0;                        // Returning bits
  std::vector<std::string> targets;             // netprobe targets that need the rule (sorted; audit only)
  // Where it was read (parse_rules), for messages: "file:line".
  std::string origin;
};

// The YAML document of `rules` (no trailing comment; `header` lines are written first as `# ` comments).
std::string render_yaml(const std::vector<EgressRule>& rules, const std::vector<std::string>& header = {});

struct ParseLimits {
  size_t max_bytes = size_t(16) << 20;  // per file
  size_t max_rules = 100'000;           // per file
  size_t max_list = 65'536;             // items of one list (ports, targets, ...)
  size_t max_nodes = 4'000'000;         // nodes visited, aliases expanded: a billion laughs stops here
  size_t max_errors = 100;
};

struct ParseResult {
  std::vector<EgressRule> rules;
  std::vector<std::string> errors;  // "file:line: message"; any error means the file is refused
};

// Reads one document. Strict: unknown keys, wrong types, out-of-range ports, host names that are neither
// an address, a CIDR nor a valid DNS name (they end up in shell commands) are errors.
ParseResult parse_rules(std::string_view text, const std::string& source_name,
                        const ParseLimits& limits = {});

// Merges rules that differ only in their destination ports, returning traffic and targets (as conn-check
// merged by protocol and destination, but keeping the source side apart: a rule never allows a source
// port range with a destination port it was not exported with). Output sorted, duplicates gone.
std::vector<EgressRule> merge_rules(std::vector<EgressRule> rules);

// A valid host name for to_host/from_host: 1-253 characters, labels of [A-Za-z0-9_-] (1-63), dots between.
bool is_valid_host_name(std::string_view s);

}  // namespace netprobe::firewall
