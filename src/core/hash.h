#pragma once
// The 64-bit mixing function the code base uses wherever it needs a fixed, well-avalanched hash (shard
// assignment, per-iteration keys, the token permutation's round keys): splitmix64 (Steele, Lea, Flood
// 2014), spelled out once so that every use stays the same across builds and machines (never std::hash).
#include <cstdint>

namespace netprobe {

constexpr uint64_t splitmix64(uint64_t x) noexcept {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

}  // namespace netprobe
