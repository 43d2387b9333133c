// Rendezvous sharding: a target keeps its worker when other targets or workers come and go, and the
// assignment is the same in every process and every build (no std::hash).
#include <gtest/gtest.h>

#include <fmt/format.h>

#include <map>
#include <set>

#include "config/loader.h"
#include "supervisor/sharding.h"

namespace netprobe {
namespace {

std::vector<std::string> names(int n, const std::string& prefix = "target-") {
  std::vector<std::string> out;
  for (int i = 0; i < n; ++i) out.push_back(fmt::format("{}{}", prefix, i));
  return out;
}

TEST(worker_Sharding, OneWorkerTakesEverything) {
  for (const auto& n : names(50)) {
    EXPECT_EQ(worker_for(n, 1), 0u);
    EXPECT_EQ(worker_for(n, 0), 0u);
  }
}

TEST(worker_Sharding, AssignmentIsAPureFunctionOfNameAndCount) {
  // Golden values: a change here moves targets between workers on upgrade; make it on purpose only.
  EXPECT_EQ(rendezvous_score("web", 0), rendezvous_score("web", 0));
  std::vector<uint32_t> got;
  for (const auto& n : {"web", "dns", "tor1.par", "tor2.par", "backbone-1"}) got.push_back(worker_for(n, 4));
  std::vector<uint32_t> again;
  for (const auto& n : {"web", "dns", "tor1.par", "tor2.par", "backbone-1"})
    again.push_back(worker_for(n, 4));
  EXPECT_EQ(got, again);
  for (uint32_t w : got) EXPECT_LT(w, 4u);
}

TEST(worker_Sharding, AddingOrRemovingTargetsMovesNoOtherTarget) {
  const auto base = names(500);
  std::map<std::string, uint32_t> before;
  for (const auto& n : base) before[n] = worker_for(n, 6);
  auto more = base;
  for (const auto& n : names(100, "new-")) more.push_back(n);
  const auto shards = shard_targets(more, 6);
  for (uint32_t k = 0; k < shards.size(); ++k)
    for (const auto& n : shards[k])
      if (before.count(n)) {
        EXPECT_EQ(before[n], k) << n;
      }
  // Removing half of them: the rest stay put.
  std::vector<std::string> fewer(base.begin(), base.begin() + 250);
  const auto shards2 = shard_targets(fewer, 6);
  for (uint32_t k = 0; k < shards2.size(); ++k)
    for (const auto& n : shards2[k]) EXPECT_EQ(before[n], k) << n;
}

TEST(worker_Sharding, RemovingTheLastWorkerMovesOnlyItsTargets) {
  const auto all = names(1000);
  size_t moved = 0;
  for (const auto& n : all) {
    const uint32_t with5 = worker_for(n, 5), with4 = worker_for(n, 4);
    if (with5 != 4) {
      EXPECT_EQ(with4, with5) << n << " moved although its worker stayed";
    } else {
      ++moved;
      EXPECT_LT(with4, 4u);
    }
  }
  // About a fifth of the targets were on worker 4.
  EXPECT_GT(moved, 1000 / 5 / 2);
  EXPECT_LT(moved, 1000 / 5 * 2);
}

TEST(worker_Sharding, AddingAWorkerMovesTargetsOnlyToIt) {
  for (uint32_t nb = 1; nb < 9; ++nb) {
    size_t moved = 0;
    for (const auto& n : names(800)) {
      const uint32_t a = worker_for(n, nb), b = worker_for(n, nb + 1);
      if (a != b) {
        EXPECT_EQ(b, nb) << n;
        ++moved;
      }
    }
    // Expected share 1/(nb+1): within a factor of two.
    const double share = double(moved) / 800;
    EXPECT_GT(share, 0.5 / (nb + 1)) << nb;
    EXPECT_LT(share, 2.0 / (nb + 1)) << nb;
  }
}

TEST(worker_Sharding, SpreadsTargetsEvenly) {
  const auto shards = shard_targets(names(4000), 4);
  ASSERT_EQ(shards.size(), 4u);
  for (const auto& s : shards) {
    EXPECT_GT(s.size(), 800u);
    EXPECT_LT(s.size(), 1200u);
  }
}

TEST(worker_Sharding, KeySlices) {
  EXPECT_EQ(key_slice_bits(1), 0);
  EXPECT_EQ(key_slice_bits(2), 1);
  EXPECT_EQ(key_slice_bits(3), 2);
  EXPECT_EQ(key_slice_bits(4), 2);
  EXPECT_EQ(key_slice_bits(5), 3);
  EXPECT_EQ(key_slice_bits(8), 3);
  EXPECT_EQ(key_slice_bits(9), 4);
  EXPECT_EQ(key_slice_for(0, 1), (KeySlice{0, 0}));
  EXPECT_EQ(key_slice_for(3, 4), (KeySlice{2, 3}));
  EXPECT_EQ(key_slice_for(4, 5), (KeySlice{3, 4}));
  // Disjoint token sets: the top bits of a sliced token are the worker index.
  std::set<uint32_t> tops;
  for (uint32_t k = 0; k < 5; ++k) tops.insert(apply_slice(0xffff, 16, key_slice_for(k, 5)) >> 13);
  EXPECT_EQ(tops.size(), 5u);
}

}  // namespace
}  // namespace netprobe
