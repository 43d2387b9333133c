#pragma once
// Big-endian loads and stores through memcpy: packet buffers are untrusted, unaligned byte arrays, and a
// cast to a wider integer pointer is both misaligned and a strict-aliasing violation (a checksum loop
// through a uint16_t* cast was miscompiled at -O2: docs/architecture.md#no-pointer-casts). Compilers turn
// these into single moves.
#include <bit>
#include <cstdint>
#include <cstring>

namespace netprobe::wire {

inline uint16_t load_be16(const uint8_t* p) noexcept {
  uint16_t v;
  std::memcpy(&v, p, 2);
  if constexpr (std::endian::native == std::endian::little) v = __builtin_bswap16(v);
  return v;
}

inline uint32_t load_be32(const uint8_t* p) noexcept {
  uint32_t v;
  std::memcpy(&v, p, 4);
  if constexpr (std::endian::native == std::endian::little) v = __builtin_bswap32(v);
  return v;
}

inline void store_be16(uint8_t* p, uint16_t v) noexcept {
  if constexpr (std::endian::native == std::endian::little) v = __builtin_bswap16(v);
  std::memcpy(p, &v, 2);
}

inline void store_be32(uint8_t* p, uint32_t v) noexcept {
  if constexpr (std::endian::native == std::endian::little) v = __builtin_bswap32(v);
  std::memcpy(p, &v, 4);
}

// IP protocol numbers (IPv4 protocol / IPv6 next header) that netprobe sends or reads.
inline constexpr uint8_t kProtoIcmp = 1;
inline constexpr uint8_t kProtoTcp = 6;
inline constexpr uint8_t kProtoUdp = 17;
inline constexpr uint8_t kProtoIcmpv6 = 58;

// Why a view refused its bytes; classify() turns this into a RejectReason.
enum class ParseError : uint8_t {
  kNone = 0,
  kTruncated,  // fewer bytes than the header (or its length fields) claims
  kMalformed,  // impossible values: wrong version, IHL < 5, TCP data offset < 5, total length < header
};

}  // namespace netprobe::wire
