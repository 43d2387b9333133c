#pragma once
// UDPquery (a netprobe extension, issue 18; docs/service-checks.md#udpquery): a UDP datagram carrying a
// configured payload to a service (DNS, NTP, an echo), whose answer is judged against an `expect`. When the
// protocol echoes an identifier, the target's token field carries netprobe's wire token W (the DNS ID: W's
// top 16 bits; NTP's transmit timestamp: all of W) and an answer counts only if it echoes W exactly;
// without one, the match rests on the 5-tuple and the configuration keeps one probe in flight per flow.
//
// classify() cannot read the token (its offset is per target): it reports every incoming UDP datagram as a
// UDPquery kAnswer keyed by the 5-tuple (key.target = sender, key.local_port, remote_port = sender's port),
// and the engine looks the probe up on that 5-tuple and calls match_answer() / match_quote() below.
#include <span>

#include "probes/probe.h"
#include "probes/udp_query_spec.h"

namespace netprobe {

class UdpQueryProbe final : public Probe {
 public:
  ProbeType type() const override { return ProbeType::kUdpQuery; }
  std::string_view metric_prefix() const noexcept override { return "udpquery"; }
  int token_bits(AddressFamily af) const noexcept override {
    (void)af;
    return 16;
  }
  int check_bits(AddressFamily af) const noexcept override {
    (void)af;
    return 16;
  }
  void capture_clauses(const KeySlice& slice, CaptureClauses& out) const override;
  // The payload is params.query->payload (required: throws std::invalid_argument without it), whatever
  // ip_payload_size says.
  PacketTemplate make_template(const ProbeParams& params) const override;
  // Patches the source address and port, writes W into the token field (if any), the IPv4 IP-ID (the index,
  // quoted back by ICMP errors) and the checksums. The token field's bytes are zero in the template and out
  // of l4_payload_sum, so the cost does not grow with the payload.
  size_t craft(const PacketTemplate& tmpl, const PacketFields& fields,
               std::span<uint8_t> out) const noexcept override;
};

namespace udpquery {

// A captured IPv4/IPv6 UDP datagram (`ip_packet` from its IP header) or, with `quoted`, the UDP datagram
// an ICMP/ICMPv6 error in `ip_packet` quotes (as much of it as was quoted): its UDP payload and IPv4
// identification. False if it is not that. No allocation, bounds-checked.
struct SeenDatagram {
  std::span<const uint8_t> payload;
  uint16_t ip_id = 0;  // IPv4 only
};
bool parse_datagram(std::span<const uint8_t> ip_packet, bool quoted, SeenDatagram& out) noexcept;

// How an answer datagram relates to the probe sent from `tmpl` with wire token `wire` (judge()).
Outcome match_answer(const PacketTemplate& tmpl, uint32_t wire, std::span<const uint8_t> answer) noexcept;

// Whether an ICMP error's quote (`ip_id`: the quoted IPv4 identification, ignored for IPv6; `quoted_payload`:
// the quoted UDP payload, possibly cut) is the probe sent from `tmpl` with wire token `wire`: with a token,
// the IPv4 IP-ID must be the probe's, and the token field must be W wherever the quote includes it.
bool quote_matches(const PacketTemplate& tmpl, uint32_t wire, uint16_t ip_id,
                   std::span<const uint8_t> quoted_payload) noexcept;

}  // namespace udpquery

}  // namespace netprobe
