#pragma once
// Internet checksum (RFC 1071) and the TCP/UDP/ICMPv6 pseudo header, for IPv4 and IPv6.
//
// Words are loaded with memcpy in machine byte order and summed 64 bits at a time with end-around carry;
// the one's-complement sum is byte-order independent (RFC 1071 section 2(B)), so the result is swapped to
// network order only once, at the end. No casts of the byte buffer (strict aliasing, see
// docs/architecture.md#no-pointer-casts).
#include <cstddef>
#include <cstdint>
#include <span>

#include "core/net.h"

namespace netprobe::wire {

class Checksum {
 public:
  // Adds `bytes` as 16-bit big-endian words. Every span but the last one added must have an even length
  // (an odd tail is padded with a zero byte, which is only right at the very end of the data).
  Checksum& add(std::span<const uint8_t> bytes) noexcept;
  // Adds one 16-bit word given in host order (e.g. a length or a protocol number).
  Checksum& add16(uint16_t host_order) noexcept;
  // Adds a partial sum returned by sum16() of another Checksum (e.g. a precomputed constant payload).
  Checksum& add_sum16(uint16_t folded) noexcept { return add16(folded); }
  // Folded one's-complement sum, host order, not complemented.
  uint16_t sum16() const noexcept;
  // The checksum to store (host order; write it with store_be16).
  uint16_t finish() const noexcept { return static_cast<uint16_t>(~sum16()); }

 private:
  uint64_t acc_ = 0;  // machine byte order, unfolded
};

// RFC 1071 checksum of `bytes` (host order). A buffer whose checksum field is filled in verifies as 0.
uint16_t internet_checksum(std::span<const uint8_t> bytes) noexcept;

// Adds the pseudo header (RFC 793 / RFC 8200 section 8.1) for an upper-layer packet of `l4_length` bytes.
// `src` and `dst` point to 4 (kV4) or 16 (kV6) bytes in network order.
void add_pseudo_header(Checksum& sum, AddressFamily af, const uint8_t* src, const uint8_t* dst,
                       uint8_t protocol, uint32_t l4_length) noexcept;

// Checksum of a TCP, UDP or ICMPv6 segment `l4` including its pseudo header (the checksum field inside
// `l4` must be zero to compute it, or filled in to verify: then the result is 0).
uint16_t l4_checksum(AddressFamily af, const uint8_t* src, const uint8_t* dst, uint8_t protocol,
                     std::span<const uint8_t> l4) noexcept;

}  // namespace netprobe::wire
