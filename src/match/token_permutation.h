#pragma once
// Tokens as a keyed permutation of the probe's ordinal, so that a reply's token is decoded back to its
// probe by arithmetic instead of being looked up in a table: no per-probe key storage, no hash table,
// no second cache miss (docs/architecture.md#token-decoding).
//
// TokenPermutation(key, bits) is a pseudo-random bijection of [1, 2^bits) keyed by `key` (bits 1..32):
// a 4-round Feistel network over the smallest even width >= bits, cycle-walked into the domain (an
// output of 0 or >= 2^bits is encrypted again until it lands inside; since the Feistel network permutes
// the whole width, the walk stays on the cycle of its input and always returns, after 2 steps on average
// when bits is odd, 1 when it is even). Token 0 is never produced: the kernel rewrites an IPv4 IP-ID of 0.
//
// The round function is a 64-bit multiply-xorshift mix of the round key and the half block: not a
// cryptographic PRF, but keyed by a per-run secret and the iteration, so that tokens cannot be predicted
// from outside any better than the keyed hash they replace (see probes/probe.h for what else a reply
// must match: address, port, exact TCP ack).
#include <cstdint>

namespace netprobe {

class TokenPermutation {
 public:
  TokenPermutation(uint64_t key, int bits) noexcept;

  // Number of ordinals (and tokens): 2^bits - 1.
  uint64_t capacity() const noexcept { return domain_end_ - 1; }
  // ordinal in [0, capacity()) -> token in [1, 2^bits).
  uint32_t encode(uint32_t ordinal) const noexcept;
  // The inverse: the ordinal of `token`, or kNone for a token outside [1, 2^bits).
  uint32_t decode(uint32_t token) const noexcept;
  static constexpr uint32_t kNone = 0xFFFFFFFFu;

 private:
  uint64_t round_(int r, uint64_t half) const noexcept;
  uint64_t forward(uint64_t x) const noexcept;
  uint64_t backward(uint64_t x) const noexcept;

  uint64_t keys_[4];
  int half_bits_;
  uint64_t half_mask_;
  uint64_t domain_end_;  // 2^bits
};

}  // namespace netprobe
