#include "supervisor/sharding.h"

#include "config/loader.h"
#include "core/hash.h"

namespace netprobe {
namespace {

uint64_t fnv1a(std::string_view s) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : s) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  return h;
}

}  // namespace

uint64_t rendezvous_score(std::string_view target, uint32_t index) {
  // Mixing the name hash with the index through a full avalanche keeps the scores of one name on
  // different workers independent, which is what makes the assignment uniform.
  return splitmix64(fnv1a(target) ^ splitmix64(uint64_t(index) + 1));
}

uint32_t worker_for(std::string_view target, uint32_t nb_workers) {
  if (nb_workers <= 1) return 0;
  uint32_t best = 0;
  uint64_t best_score = rendezvous_score(target, 0);
  for (uint32_t k = 1; k < nb_workers; ++k) {
    const uint64_t s = rendezvous_score(target, k);
    if (s > best_score) {  // ties (never seen with 64-bit scores) go to the lowest index
      best_score = s;
      best = k;
    }
  }
  return best;
}

std::vector<std::vector<std::string>> shard_targets(const std::vector<std::string>& targets,
                                                    uint32_t nb_workers) {
  std::vector<std::vector<std::string>> out(std::max<uint32_t>(1, nb_workers));
  for (const auto& t : targets) out[worker_for(t, nb_workers)].push_back(t);
  return out;
}

KeySlice key_slice_for(uint32_t index, uint32_t nb_workers) {
  return KeySlice{key_slice_bits(int(nb_workers)), index};
}

}  // namespace netprobe
