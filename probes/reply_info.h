#pragma once
// What a reply looked like, for the one-shot commands that print it (`netprobe ping`'s line per probe,
// `netprobe trace`'s hops): its sender, TTL, IP ID, DF, TCP flags and window, ICMP type/code and the MPLS
// label stack a router put in its ICMP extensions (RFC 4884 / RFC 4950). classify() decides whether a
// packet answers a probe; describe_reply() only reads fields for display, after the match, and is never
// on the daemon's path. The bytes are untrusted: bounds-checked reads only, nothing thrown or allocated.
#include <array>
#include <cstdint>
#include <span>

#include "core/net.h"

namespace netprobe {

struct MplsLabel {
  uint32_t label = 0;   // 20 bits
  uint8_t tc = 0;       // traffic class (3 bits)
  bool bottom = false;  // S bit
  uint8_t ttl = 0;
  friend bool operator==(const MplsLabel&, const MplsLabel&) = default;
};

struct ReplyInfo {
  static constexpr size_t kMaxLabels = 4;
  IpAddress from;              // the packet's source: the target, or the router that sent an ICMP error
  uint16_t length = 0;         // IP total length (IPv6: header + payload length)
  uint8_t ttl = 0;             // IPv4 TTL / IPv6 hop limit as received
  uint16_t ip_id = 0;          // IPv4 only
  bool dont_fragment = false;  // IPv4 only
  uint8_t tos = 0;             // IPv4 TOS / IPv6 traffic class
  uint8_t protocol = 0;        // TCP 6, UDP 17, ICMP 1, ICMPv6 58
  uint8_t tcp_flags = 0;       // TCP replies
  uint16_t tcp_window = 0;
  uint8_t icmp_type = 0;  // ICMP / ICMPv6 messages
  uint8_t icmp_code = 0;
  uint8_t mpls_count = 0;  // labels in `mpls` (an ICMP error's extension; at most kMaxLabels kept)
  std::array<MplsLabel, kMaxLabels> mpls{};
  bool valid = false;  // false: not an IPv4/IPv6 packet with a readable header (the rest is zero)
};

ReplyInfo describe_reply(std::span<const uint8_t> ip_packet) noexcept;

// hping3's spelling of TCP flags ("SA", "RA", "A", ...): F S R P A U E C in that order.
std::array<char, 9> tcp_flags_letters(uint8_t flags) noexcept;

}  // namespace netprobe
