#pragma once
// Shared by the probe implementations (not part of the public interface): template building with libtins
// (control plane) and the patch/checksum steps of craft() (data plane, noexcept, no allocation).
#include <cstring>
#include <span>

#include "probes/probe.h"
#include "wire/bytes.h"
#include "wire/checksum.h"

namespace Tins {
class PDU;
}

namespace netprobe::detail {

// Fixed payload byte pattern: recognisable in a capture ("what is this traffic?") and free of per-packet
// randomness, so that its checksum is computed once per template.
inline constexpr char kPayloadPattern[] = "netprobe";

// Wraps `l4` (a libtins TCP/UDP/ICMP/ICMPv6 with no inner PDU) in an IPv4/IPv6 header built from `params`
// plus `payload_size` bytes of the pattern, serializes it and fills the template. `ip_id` is the IPv4
// identification of the template. Throws std::invalid_argument on inconsistent address families.
PacketTemplate build_template(ProbeType type, const ProbeParams& params, Tins::PDU& l4, size_t l4_header_size,
                              uint16_t ip_id);

// Payload bytes after an L4 header of `l4_header_size` for a configured ip_payload_size.
inline size_t payload_size_for(const ProbeParams& p, size_t l4_header_size) {
  return p.ip_payload_size > l4_header_size ? p.ip_payload_size - l4_header_size : 0;
}

inline bool is_v4(const PacketTemplate& t) noexcept { return t.params.af == AddressFamily::kV4; }

// Copies the template into `out` and writes the source address. Returns the packet length, or 0 if `out`
// is too small or the source is of the other address family.
inline size_t copy_and_patch_src(const PacketTemplate& t, const PacketFields& f,
                                 std::span<uint8_t> out) noexcept {
  const size_t n = t.bytes.size();
  if (n == 0 || out.size() < n) return 0;
  std::memcpy(out.data(), t.bytes.data(), n);
  if (!f.src.is_unspecified()) {
    if (f.src.af != t.params.af) return 0;
    std::memcpy(out.data() + (is_v4(t) ? 12 : 8), f.src.bytes.data(), f.src.size());
  }
  return n;
}

// A nonzero IPv4 identification derived from the token: the kernel replaces an IP-ID of 0 under
// IP_HDRINCL, and a per-packet value keeps reassembly safe when DF is off.
inline uint16_t ip_id_from_token(uint32_t token) noexcept {
  const auto id = static_cast<uint16_t>(token ^ (token >> 16));
  return id != 0 ? id : 1;
}

inline void patch_ipv4_id_and_checksum(uint8_t* pkt, size_t ip_header_len, uint16_t id) noexcept {
  wire::store_be16(pkt + 4, id);
  wire::store_be16(pkt + 10, 0);
  wire::store_be16(pkt + 10, wire::internet_checksum({pkt, ip_header_len}));
}

// Recomputes the L4 checksum at `checksum_offset` (relative to the L4 header) over the pseudo header (if
// `pseudo`), the L4 header and the template's precomputed payload sum.
inline void patch_l4_checksum(const PacketTemplate& t, uint8_t* pkt, uint8_t protocol, size_t l4_header_len,
                              size_t checksum_offset, bool pseudo, bool zero_means_none) noexcept {
  uint8_t* l4 = pkt + t.l4_offset;
  wire::store_be16(l4 + checksum_offset, 0);
  wire::Checksum sum;
  if (pseudo) {
    const size_t src = is_v4(t) ? 12 : 8, dst = is_v4(t) ? 16 : 24;
    wire::add_pseudo_header(sum, t.params.af, pkt + src, pkt + dst, protocol,
                            static_cast<uint32_t>(t.bytes.size() - t.l4_offset));
  }
  sum.add({l4, l4_header_len}).add_sum16(t.l4_payload_sum);
  uint16_t c = sum.finish();
  // UDP: 0 means "no checksum" (and is forbidden over IPv6), so a computed 0 is sent as 0xffff.
  if (zero_means_none && c == 0) c = 0xffff;
  wire::store_be16(l4 + checksum_offset, c);
}

}  // namespace netprobe::detail
