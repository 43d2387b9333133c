#pragma once
// A scripted target for component tests: builds the reply a real host would send to one of our probes
// (SYN-ACK, RST-ACK, echo reply, ICMP port unreachable, any ICMP error), with libtins. Test code only.
#include <cstdint>
#include <optional>
#include <span>
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

}  // namespace netprobe::testing
