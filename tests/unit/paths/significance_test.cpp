// The per-path loss test on tables of (sent, lost) per flow (docs/paths.md#the-test).
#include "paths/significance.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <random>
#include <string>

namespace netprobe {
namespace {

TEST(BinomialUpperTail, KnownValues) {
  EXPECT_DOUBLE_EQ(binomial_upper_tail(10, 0, 0.3), 1.0);
  EXPECT_NEAR(binomial_upper_tail(10, 10, 0.5), 1.0 / 1024, 1e-15);
  EXPECT_NEAR(binomial_upper_tail(5, 1, 0.1), 1 - std::pow(0.9, 5), 1e-12);
  EXPECT_NEAR(binomial_upper_tail(3, 2, 0.5), 0.5, 1e-12);  // 3/8 + 1/8
  EXPECT_DOUBLE_EQ(binomial_upper_tail(3, 4, 0.5), 0.0);
  EXPECT_GT(binomial_upper_tail(4000000000ull, 1, 1e-12), 0.0);  // large counts stay finite
}

// "x" = flagged. Flows are (sent, lost).
struct Case {
  const char* name;
  std::vector<FlowTally> flows;
  std::string expected;
};

std::vector<FlowTally> repeat(FlowTally f, size_t n) { return std::vector<FlowTally>(n, f); }
std::vector<FlowTally> join(std::vector<FlowTally> a, const std::vector<FlowTally>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}
std::string flags(const std::vector<bool>& v) {
  std::string s;
  for (bool b : v) s += b ? 'x' : '.';
  return s;
}

TEST(LossyFlows, Table) {
  const Case cases[] = {
      {"no loss anywhere", repeat({6, 0}, 16), "................"},
      {"one black hole among 16, 6 probes each", join(repeat({6, 0}, 5), join({{6, 6}}, repeat({6, 0}, 10))),
       ".....x.........."},
      {"a single lost probe proves nothing", join({{6, 1}}, repeat({6, 0}, 15)), "................"},
      {"two of two lost while 15 flows lost none of 30", join({{2, 2}}, repeat({30, 0}, 15)),
       "x..............."},
      {"the same two under 1% loss elsewhere", join({{2, 2}}, repeat({100, 1}, 15)), "................"},
      {"uniform 10% loss",
       {{100, 7}, {100, 14}, {100, 10}, {100, 9}, {100, 12}, {100, 8}, {100, 11}, {100, 10}},
       "........"},
      {"20% on half the flows, none on the others", join(repeat({200, 40}, 8), repeat({200, 0}, 8)),
       "xxxxxxxx........"},
      // Lossy flows are part of every other flow's baseline: a majority of them needs more probes to show.
      {"30% on a majority (9 of 16), 100 probes each", join(repeat({100, 30}, 9), repeat({100, 0}, 7)),
       "................"},
      {"30% on a majority (9 of 16), 200 probes each", join(repeat({200, 60}, 9), repeat({200, 0}, 7)),
       "xxxxxxxxx......."},
      {"every flow black-holed: nothing to compare with", repeat({6, 6}, 4), "...."},
      {"a single flow", {{50, 50}}, "."},
      {"two flows, one probe each", {{1, 1}, {1, 0}}, ".."},
      {"flows never sent are ignored", {{0, 0}, {20, 20}, {20, 0}, {20, 0}, {0, 0}}, ".x..."},
      {"lost above sent (hostile) is clamped", {{10, 1000}, {10, 0}, {10, 0}, {10, 0}}, "x..."},
      {"empty", {}, ""},
  };
  for (const Case& c : cases) EXPECT_EQ(flags(lossy_flows(c.flows)), c.expected) << c.name;
}

// Uniform random loss (the same on every flow): the family-wise false-alarm rate stays near alpha. 2,000
// seeded trials of 16 flows x 30 probes at 5% loss: expected ~2 flagged trials, bounded generously.
TEST(LossyFlows, UniformLossRarelyFlagsAnything) {
  std::mt19937_64 rng(12);
  std::binomial_distribution<uint64_t> lost(30, 0.05);
  int trials_flagged = 0;
  for (int trial = 0; trial < 2000; ++trial) {
    std::vector<FlowTally> flows(16);
    for (auto& f : flows) f = {30, lost(rng)};
    const auto flagged = lossy_flows(flows);
    trials_flagged += std::find(flagged.begin(), flagged.end(), true) != flagged.end();
  }
  EXPECT_LE(trials_flagged, 10);
}

// The power figures of docs/paths.md#the-test: 20% loss on the 8 flows of one link of two (the other link
// lossless), N probes per flow over the window.
TEST(LossyFlows, TwentyPercentOnOneLinkOfTwo) {
  for (auto [probes, min_found_percent] : {std::pair{60, 15}, std::pair{100, 90}, std::pair{150, 99}}) {
    std::mt19937_64 rng(3);
    std::binomial_distribution<uint64_t> lossy(probes, 0.2);
    int found = 0, false_flags = 0;
    for (int trial = 0; trial < 200; ++trial) {
      std::vector<FlowTally> flows(16);
      for (size_t i = 0; i < 16; ++i) flows[i] = {uint64_t(probes), i % 2 ? lossy(rng) : 0};
      const auto flagged = lossy_flows(flows);
      for (size_t i = 0; i < 16; ++i) (i % 2 ? found : false_flags) += flagged[i];
    }
    EXPECT_EQ(false_flags, 0) << probes;
    EXPECT_GE(found, 200 * 8 * min_found_percent / 100) << probes;
    std::printf("20%% on 8 of 16 flows, %d probes per flow: %.1f%% of lossy flows found\n", probes,
                100.0 * found / (200 * 8));
  }
}

}  // namespace
}  // namespace netprobe
