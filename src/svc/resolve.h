#pragma once
// Name resolution of a service check (docs/service-checks.md#name-resolution): part of the check and
// bounded by its deadline. TCP / TLS checks of the daemon and of `netprobe check`, and `netprobe query`
// (tcp, tls, udp) all resolve through resolve_host(), over a Resolver (c-ares in production, one per
// thread; a scripted one in tests). An IP literal never reaches the resolver.
#include <chrono>
#include <optional>
#include <string>

#include "core/net.h"
#include "dns/resolver.h"

namespace netprobe::svc {

struct HostResolution {
  std::optional<IpAddress> address;  // the first usable answer of the wanted family; nullopt: error says why
  std::string error;                 // "timeout after 1000 ms", "NXDOMAIN", "no IPv6 address", ...
  bool queried = false;              // false for an IP literal (no DNS at all)
  double seconds = 0;                // time spent resolving (0 for a literal)
};

// Resolves `host` for `family` (AF_INET, AF_INET6, or 0: IPv4 when the name has an IPv4 address, else
// IPv6) before `deadline`: the resolver is polled for at most the time left, never longer; a query still
// unanswered at the deadline is abandoned (its late answer, if any, is dropped). Answers of another family
// than asked, and answers that are no destination (unspecified, multicast, broadcast), are discarded:
// DNS answers are untrusted input. A null `resolver` fails any name ("no resolver").
HostResolution resolve_host(Resolver* resolver, const std::string& host, int family,
                            std::chrono::steady_clock::time_point deadline);

// Why `ip` is no check destination ("unspecified", "multicast", "broadcast"), or nullptr.
const char* unusable_destination(const IpAddress& ip);

}  // namespace netprobe::svc
