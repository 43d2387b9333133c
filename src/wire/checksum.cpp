#include "wire/checksum.h"

#include <bit>
#include <cstring>

namespace netprobe::wire {

namespace {

inline void add_carry(uint64_t& acc, uint64_t v) noexcept {
  acc += v;
  acc += (acc < v);  // end-around carry
}

inline uint16_t to_native16(uint16_t host_order) noexcept {
  // The accumulator holds words as loaded from memory; a host-order value is stored big-endian on the wire.
  if constexpr (std::endian::native == std::endian::little) return __builtin_bswap16(host_order);
  return host_order;
}

}  // namespace

Checksum& Checksum::add(std::span<const uint8_t> bytes) noexcept {
  const uint8_t* p = bytes.data();
  size_t n = bytes.size();
  uint64_t acc = acc_;
  // Four independent 64-bit loads per round would be faster on big buffers; probes are small, and this
  // loop already runs at several bytes per cycle.
  while (n >= 8) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    add_carry(acc, w);
    p += 8;
    n -= 8;
  }
  while (n >= 2) {
    uint16_t w;
    std::memcpy(&w, p, 2);
    add_carry(acc, w);
    p += 2;
    n -= 2;
  }
  if (n == 1) {
    // The odd byte is the high half of a big-endian word padded with zero.
    const uint8_t pad[2] = {*p, 0};
    uint16_t w;
    std::memcpy(&w, pad, 2);
    add_carry(acc, w);
  }
  acc_ = acc;
  return *this;
}

Checksum& Checksum::add16(uint16_t host_order) noexcept {
  add_carry(acc_, to_native16(host_order));
  return *this;
}

uint16_t Checksum::sum16() const noexcept {
  // 2^16 = 1 (mod 2^16 - 1), so folding 64 -> 16 bits adds the four 16-bit lanes.
  uint64_t s = acc_;
  s = (s & 0xffffffffULL) + (s >> 32);
  s = (s & 0xffffULL) + (s >> 16);
  s = (s & 0xffffULL) + (s >> 16);
  s = (s & 0xffffULL) + (s >> 16);
  return to_native16(static_cast<uint16_t>(s));  // the swap is its own inverse
}

uint16_t internet_checksum(std::span<const uint8_t> bytes) noexcept { return Checksum().add(bytes).finish(); }

void add_pseudo_header(Checksum& sum, AddressFamily af, const uint8_t* src, const uint8_t* dst,
                       uint8_t protocol, uint32_t l4_length) noexcept {
  const size_t n = af == AddressFamily::kV4 ? 4 : 16;
  sum.add({src, n}).add({dst, n});
  // IPv4: zero, protocol, 16-bit length. IPv6: 32-bit length, three zero bytes, next header. Both sum to
  // the same words when the length fits in 16 bits; the IPv6 form also covers jumbo lengths.
  sum.add16(static_cast<uint16_t>(l4_length >> 16)).add16(static_cast<uint16_t>(l4_length));
  sum.add16(protocol);
}

uint16_t l4_checksum(AddressFamily af, const uint8_t* src, const uint8_t* dst, uint8_t protocol,
                     std::span<const uint8_t> l4) noexcept {
  Checksum sum;
  add_pseudo_header(sum, af, src, dst, protocol, static_cast<uint32_t>(l4.size()));
  sum.add(l4);
  return sum.finish();
}

}  // namespace netprobe::wire
