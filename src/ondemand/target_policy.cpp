#include "ondemand/target_policy.h"

#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <memory>
#include <string>
#include <utility>

namespace netprobe::ondemand {
namespace {

constexpr size_t kMaxTargetLength = 253;  // a DNS name's limit; an IPv6 literal is shorter

bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_hex(char c) { return is_digit(c) || (c >= 'a' && c <= 'f'); }
bool is_name_char(char c) { return is_digit(c) || (c >= 'a' && c <= 'z') || c == '-'; }

// A label inet_aton would read as a number: decimal, octal (leading 0) or hex (0x...).
bool numeric_label(std::string_view label) {
  if (label.size() >= 2 && label[0] == '0' && label[1] == 'x') {
    return std::all_of(label.begin() + 2, label.end(), is_hex);
  }
  return !label.empty() && std::all_of(label.begin(), label.end(), is_digit);
}

bool in(const IpNetwork& net, const IpAddress& a) {
  if (net.base.af != a.af) return false;
  int bits = net.prefix;
  for (size_t i = 0; i < a.size() && bits > 0; ++i, bits -= 8) {
    const uint8_t mask = bits >= 8 ? 0xff : static_cast<uint8_t>(0xff << (8 - bits));
    if ((a.bytes[i] & mask) != (net.base.bytes[i] & mask)) return false;
  }
  return true;
}

Refusal denied_v4(uint32_t a) {
  const uint32_t top = a >> 24;
  if (top == 0) return Refusal::kUnspecified;  // 0/8 "this network": Linux sends 0.x to itself
  if (top == 127) return Refusal::kLoopback;
  if ((a >> 16) == 0xa9fe) return Refusal::kLinkLocal;  // 169.254/16: cloud metadata
  if ((a >> 28) == 0xe) return Refusal::kMulticast;     // 224/4
  if ((a >> 28) == 0xf) return Refusal::kBroadcast;     // 240/4 reserved and 255.255.255.255
  return Refusal::kNone;
}

std::string describe(Refusal r, const IpAddress& a) {
  return a.to_string() + " is refused (" + std::string(to_string(r)) + ")";
}

}  // namespace

std::string_view to_string(Refusal r) {
  switch (r) {
    case Refusal::kNone:
      return "none";
    case Refusal::kSyntax:
      return "syntax";
    case Refusal::kNumericForm:
      return "numeric_form";
    case Refusal::kNotAllowedTarget:
      return "not_allowed_target";
    case Refusal::kResolveFailed:
      return "resolve_failed";
    case Refusal::kTooManyAddresses:
      return "too_many_addresses";
    case Refusal::kLoopback:
      return "loopback";
    case Refusal::kLinkLocal:
      return "link_local";
    case Refusal::kMulticast:
      return "multicast";
    case Refusal::kUnspecified:
      return "unspecified";
    case Refusal::kBroadcast:
      return "broadcast";
    case Refusal::kEmbeddedIpv4:
      return "embedded_ipv4";
    case Refusal::kOwnAddress:
      return "own_address";
    case Refusal::kNotAllowedPrefix:
      return "not_allowed_prefix";
  }
  return "unknown";
}

std::optional<ParsedTarget> parse_target(std::string_view text, Refusal* why) {
  Refusal ignored;
  Refusal& reason = why ? *why : ignored;
  reason = Refusal::kSyntax;
  if (text.empty() || text.size() > kMaxTargetLength + 2) return std::nullopt;
  std::string s(text);
  std::transform(s.begin(), s.end(), s.begin(),
                 [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; });
  if (s.front() == '[') {  // only an IPv6 literal goes in brackets
    if (s.back() != ']') return std::nullopt;
    s = s.substr(1, s.size() - 2);
    auto a = IpAddress::parse(s);
    if (!a || a->af != AddressFamily::kV6) return std::nullopt;
    reason = Refusal::kNone;
    return ParsedTarget{a->to_string(), a};
  }
  // inet_pton takes only the dotted quad with no leading zero, and IPv6 without a zone.
  if (auto a = IpAddress::parse(s)) {
    reason = Refusal::kNone;
    return ParsedTarget{a->to_string(), a};
  }
  if (s.back() == '.') s.pop_back();
  if (s.empty() || s.size() > kMaxTargetLength) return std::nullopt;
  std::string_view last;
  for (size_t start = 0; start <= s.size();) {
    size_t dot = s.find('.', start);
    if (dot == std::string::npos) dot = s.size();
    const std::string_view label(s.data() + start, dot - start);
    if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-' ||
        !std::all_of(label.begin(), label.end(), is_name_char)) {
      return std::nullopt;
    }
    last = label;
    start = dot + 1;
  }
  // A name whose last label is a number is an IPv4 address in a form inet_aton, curl or a browser would
  // read ("2130706433", "0x7f.1", "0177.0.0.1", "127.1"): refused, never resolved.
  if (numeric_label(last)) {
    reason = Refusal::kNumericForm;
    return std::nullopt;
  }
  reason = Refusal::kNone;
  return ParsedTarget{s, std::nullopt};
}

Refusal denied_category(const IpAddress& a) {
  if (a.af == AddressFamily::kV4) return denied_v4(a.v4_host_order());
  const auto& b = a.bytes;
  if (a.is_unspecified()) return Refusal::kUnspecified;
  const bool first10_zero = std::all_of(b.begin(), b.begin() + 10, [](uint8_t x) { return x == 0; });
  const uint32_t low32 = (uint32_t(b[12]) << 24) | (uint32_t(b[13]) << 16) | (uint32_t(b[14]) << 8) | b[15];
  if (first10_zero && b[10] == 0 && b[11] == 0 && low32 == 1) return Refusal::kLoopback;  // ::1
  if (b[0] == 0xff) return Refusal::kMulticast;
  if (b[0] == 0xfe && (b[1] & 0xc0) == 0x80) return Refusal::kLinkLocal;  // fe80::/10
  if (b[0] == 0xfe && (b[1] & 0xc0) == 0xc0) return Refusal::kLinkLocal;  // fec0::/10, deprecated site-local
  const bool mapped = first10_zero && b[10] == 0xff && b[11] == 0xff;     // ::ffff:0:0/96
  const bool compatible = first10_zero && b[10] == 0 && b[11] == 0;       // ::/96
  const bool nat64 = b[0] == 0 && b[1] == 0x64 && b[2] == 0xff && b[3] == 0x9b &&
                     std::all_of(b.begin() + 4, b.begin() + 12, [](uint8_t x) { return x == 0; });
  if (mapped || compatible || nat64) {
    // The embedded IPv4 address's own category says most ([::ffff:169.254.169.254] is link-local); an
    // embedded address that is fine on its own is still refused: the caller must give the IPv4 address.
    const Refusal inner = denied_v4(low32);
    return inner != Refusal::kNone ? inner : Refusal::kEmbeddedIpv4;
  }
  return Refusal::kNone;
}

Decision check_addresses(const Policy& policy, const ParsedTarget& target,
                         const std::vector<IpAddress>& addresses) {
  Decision d;
  if (addresses.empty()) {
    d.refusal = Refusal::kResolveFailed;
    d.detail = target.host + " has no address";
    return d;
  }
  if (addresses.size() > policy.max_addresses) {
    d.refusal = Refusal::kTooManyAddresses;
    d.detail = target.host + " resolves to " + std::to_string(addresses.size()) + " addresses, more than " +
               std::to_string(policy.max_addresses);
    return d;
  }
  for (const IpAddress& a : addresses) {
    Refusal r = denied_category(a);
    if (r == Refusal::kNone && std::find(policy.own_addresses.begin(), policy.own_addresses.end(), a) !=
                                   policy.own_addresses.end()) {
      r = Refusal::kOwnAddress;
    }
    if (r == Refusal::kNone && std::none_of(policy.allowed_prefixes.begin(), policy.allowed_prefixes.end(),
                                            [&](const IpNetwork& n) { return in(n, a); })) {
      r = Refusal::kNotAllowedPrefix;
    }
    if (r != Refusal::kNone) {
      d.refusal = r;
      d.detail = describe(r, a);
      if (!target.literal) d.detail = target.host + ": " + d.detail;
      d.pinned.clear();
      return d;
    }
    if (std::find(d.pinned.begin(), d.pinned.end(), a) == d.pinned.end()) d.pinned.push_back(a);
  }
  return d;
}

void check_target(const Policy& policy, std::string_view text, AddressFamily family, Resolver& resolver,
                  std::function<void(ParsedTarget, Decision)> done) {
  Refusal why;
  auto parsed = parse_target(text, &why);
  if (!parsed) {
    Decision d;
    d.refusal = why;
    d.detail = why == Refusal::kNumericForm ? "a numeric IPv4 form other than a dotted quad is refused"
                                            : "not an IP address or a valid host name";
    done(ParsedTarget{}, std::move(d));
    return;
  }
  if (!policy.allowed_targets.empty() &&
      std::find(policy.allowed_targets.begin(), policy.allowed_targets.end(), parsed->host) ==
          policy.allowed_targets.end()) {
    Decision d;
    d.refusal = Refusal::kNotAllowedTarget;
    d.detail = parsed->host + " is not one of the allowed targets";
    done(std::move(*parsed), std::move(d));
    return;
  }
  if (parsed->literal) {
    Decision d = check_addresses(policy, *parsed, {*parsed->literal});
    done(std::move(*parsed), std::move(d));
    return;
  }
  // Resolved once; the decision pins what this one answer said (no second resolution anywhere).
  auto target = std::make_shared<ParsedTarget>(std::move(*parsed));
  resolver.resolve(target->host, family, [policy, target, done = std::move(done)](Resolution r) {
    Decision d;
    if (!r.ok) {
      d.refusal = Refusal::kResolveFailed;
      d.detail = target->host + ": " + (r.error.empty() ? std::string("no answer") : r.error);
    } else {
      d = check_addresses(policy, *target, r.addresses);
    }
    done(std::move(*target), std::move(d));
  });
}

std::vector<IpAddress> local_addresses() {
  std::vector<IpAddress> out;
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) return out;
  auto add = [&out](const sockaddr* sa) {
    if (sa == nullptr) return;
    if (sa->sa_family == AF_INET) {
      const auto* in4 = reinterpret_cast<const sockaddr_in*>(sa);
      out.push_back(
          IpAddress::from_bytes(AddressFamily::kV4, reinterpret_cast<const uint8_t*>(&in4->sin_addr)));
    } else if (sa->sa_family == AF_INET6) {
      const auto* in6 = reinterpret_cast<const sockaddr_in6*>(sa);
      out.push_back(
          IpAddress::from_bytes(AddressFamily::kV6, reinterpret_cast<const uint8_t*>(&in6->sin6_addr)));
    }
  };
  for (ifaddrs* i = list; i != nullptr; i = i->ifa_next) {
    add(i->ifa_addr);
    if (i->ifa_addr && i->ifa_addr->sa_family == AF_INET && (i->ifa_flags & IFF_BROADCAST)) {
      add(i->ifa_broadaddr);
    }
  }
  freeifaddrs(list);
  return out;
}

}  // namespace netprobe::ondemand
