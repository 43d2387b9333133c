#include "match/token_permutation.h"

#include "core/hash.h"

namespace netprobe {

TokenPermutation::TokenPermutation(uint64_t key, int bits) noexcept {
  if (bits < 1) bits = 1;
  if (bits > 32) bits = 32;
  half_bits_ = (bits + 1) / 2;
  half_mask_ = (uint64_t(1) << half_bits_) - 1;
  domain_end_ = uint64_t(1) << bits;
  // Round r's key: the splitmix64 sequence started at `key` (its r-th output).
  for (int r = 0; r < 4; ++r) keys_[r] = splitmix64(key + 0x9E3779B97F4A7C15ULL * uint64_t(r));
}

inline uint64_t TokenPermutation::round_(int r, uint64_t half) const noexcept {
  uint64_t x = (half ^ keys_[r]) * 0xBF58476D1CE4E5B9ULL;
  x ^= x >> 29;
  return (x * 0x94D049BB133111EBULL) >> 40 & half_mask_;
}

uint64_t TokenPermutation::forward(uint64_t x) const noexcept {
  uint64_t l = x >> half_bits_, r = x & half_mask_;
  for (int i = 0; i < 4; ++i) {
    const uint64_t t = l ^ round_(i, r);
    l = r;
    r = t;
  }
  return (l << half_bits_) | r;
}

uint64_t TokenPermutation::backward(uint64_t x) const noexcept {
  uint64_t l = x >> half_bits_, r = x & half_mask_;
  for (int i = 3; i >= 0; --i) {
    const uint64_t t = r ^ round_(i, l);
    r = l;
    l = t;
  }
  return (l << half_bits_) | r;
}

uint32_t TokenPermutation::encode(uint32_t ordinal) const noexcept {
  uint64_t x = uint64_t(ordinal) + 1;
  if (x >= domain_end_) return 0;
  // Bounded by the width: a cycle of the Feistel permutation has at most 2^(2 * half_bits) members.
  const uint64_t width_end = uint64_t(1) << (2 * half_bits_);
  for (uint64_t step = 0; step < width_end; ++step) {
    x = forward(x);
    if (x != 0 && x < domain_end_) return uint32_t(x);
  }
  return 0;  // unreachable: x's own cycle returns into the domain
}

uint32_t TokenPermutation::decode(uint32_t token) const noexcept {
  uint64_t x = token;
  if (x == 0 || x >= domain_end_) return kNone;
  const uint64_t width_end = uint64_t(1) << (2 * half_bits_);
  for (uint64_t step = 0; step < width_end; ++step) {
    x = backward(x);
    if (x != 0 && x < domain_end_) return uint32_t(x - 1);
  }
  return kNone;  // unreachable
}

}  // namespace netprobe
