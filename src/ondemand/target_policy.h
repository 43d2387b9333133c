#pragma once
// The on-demand target policy (docs/on-demand.md#target-policy): what a caller may make netprobe probe.
//
// 1. parse_target(): the target exactly as the caller gave it must be an IPv4 dotted quad, an IPv6 literal
//    (optionally in brackets) or a valid host name. Anything else is refused, in particular the numeric forms
//    inet_aton and browsers accept and that hide an address from a naive allowlist: "2130706433",
//    "0x7f.1", "0177.0.0.1", "127.1" (blackbox_exporter issue 1639).
// 2. check_addresses(): applied to EVERY address a name resolves to (one refused address refuses the
//    target: a resolver that mixes a public address with 169.254.169.254 must not get through). Denied
//    whatever the allowed prefixes say: loopback, link-local (169.254/16 holds the cloud metadata service,
//    fe80::/10), multicast, unspecified (0/8, ::), broadcast and reserved 240/4, IPv6 that embeds an IPv4
//    (mapped ::ffff:0:0/96, compatible ::/96, NAT64 64:ff9b::/96: [::ffff:169.254.169.254]), and the prober's
//    own addresses. Then an address must lie in one of the allowed prefixes (none configured: nothing is
//    allowed) and, when allowed targets are configured, the target must be one of them.
// 3. The addresses that passed are pinned: the probe job carries them, never the name, so a resolver that
//    changes its answer between the check and the probe (DNS rebinding) cannot redirect the probe.
#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/net.h"
#include "dns/resolver.h"

namespace netprobe::ondemand {

// Why a target was refused; to_string() gives the metric label value (netprobe_api_rejections_total).
enum class Refusal {
  kNone,
  kSyntax,            // neither a literal nor a valid host name
  kNumericForm,       // decimal, hex, octal or shortened IPv4 ("2130706433", "0x7f.1", "0177.0.0.1")
  kNotAllowedTarget,  // allowed targets are configured and this is not one
  kResolveFailed,     // NXDOMAIN, timeout, no address of the family
  kTooManyAddresses,  // more than Policy::max_addresses
  kLoopback,
  kLinkLocal,
  kMulticast,
  kUnspecified,
  kBroadcast,     // 255.255.255.255, reserved 240/4, a local broadcast address
  kEmbeddedIpv4,  // IPv4-mapped, -compatible or NAT64 IPv6
  kOwnAddress,
  kNotAllowedPrefix,  // in no allowed prefix
};
std::string_view to_string(Refusal r);

struct ParsedTarget {
  std::string host;                  // lower case, no brackets, no trailing dot
  std::optional<IpAddress> literal;  // set when the target is an IP literal
};

// Parses the target as a caller gives it (step 1). Bounded: at most 253 characters.
std::optional<ParsedTarget> parse_target(std::string_view text, Refusal* why = nullptr);

struct Policy {
  std::vector<IpNetwork> allowed_prefixes;   // empty: nothing is allowed (off by default)
  std::vector<std::string> allowed_targets;  // empty: any target in the prefixes; else only these (as parsed)
  std::vector<IpAddress> own_addresses;      // the prober's addresses and its interfaces' broadcast addresses
  size_t max_addresses = 16;                 // a name resolving to more is refused
};

struct Decision {
  Refusal refusal = Refusal::kNone;
  std::string detail;             // readable: which address, why
  std::vector<IpAddress> pinned;  // when allowed: the addresses to probe, exactly these
  bool allowed() const { return refusal == Refusal::kNone; }
};

// The category that denies `a` regardless of the allowed prefixes, or kNone.
Refusal denied_category(const IpAddress& a);

// Steps 2 and 3 on the addresses `target` resolved to (its literal for a literal).
Decision check_addresses(const Policy& policy, const ParsedTarget& target,
                         const std::vector<IpAddress>& addresses);

// The whole check: parse, the allowed-targets list, one resolution (skipped for a literal) of `family`, the
// address checks. `done` runs once, from `resolver.poll()` for a name, at once for a literal or a refusal.
void check_target(const Policy& policy, std::string_view text, AddressFamily family, Resolver& resolver,
                  std::function<void(ParsedTarget, Decision)> done);

// The addresses of this host's interfaces and their broadcast addresses (getifaddrs), for own_addresses.
std::vector<IpAddress> local_addresses();

}  // namespace netprobe::ondemand
