#pragma once
// A scripted target for component tests: builds the reply a real host would send to one of our probes
// (SYN-ACK, RST-ACK, echo reply, ICMP port unreachable, any ICMP error), with libtins. Test code only.
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace netprobe::testing {

enum class ReplyKind { kNatural, kRstAck, kIcmpError };

// The natural answer to `probe` (an IP packet we sent): TCP SYN -> SYN-ACK (ack = seq + 1), echo request
// -> echo reply, UDP -> port unreachable quoting the probe. `icmp_type/code` select the error for
// kIcmpError (sent from `router` if given, else from the probe's destination).
std::vector<uint8_t> reply_to(std::span<const uint8_t> probe, ReplyKind kind = ReplyKind::kNatural,
                              uint8_t icmp_type = 3, uint8_t icmp_code = 1);

// The same answer with its token damaged (ack / echo id / quoted IP-ID changed): a reply to a probe we
// never sent.
std::vector<uint8_t> foreign_reply_to(std::span<const uint8_t> probe);

// A scripted multi-hop network for `netprobe trace` / `pathloss`: hop t (1-based) is one router among
// `hops[t - 1]` (IPv4 or IPv6 literals), chosen per flow by its source port (ICMP echo: its checksum; sport %
// count: per-flow ECMP); a probe whose TTL / hop limit is t <= hops.size() gets that router's Time Exceeded
// quoting it, a probe that gets further the destination's natural answer (reply_to()).
std::vector<uint8_t> network_reply(std::span<const uint8_t> probe,
                                   const std::vector<std::vector<std::string>>& hops);
// The router network_reply() picks at `ttl` for source port `sport`.
std::string network_hop(const std::vector<std::vector<std::string>>& hops, int ttl, uint16_t sport);

}  // namespace netprobe::testing
