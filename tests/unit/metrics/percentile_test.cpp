// percentile_linear against netprobify's recipe (external.py, the ActiveState "percentile" function):
// k = (n-1) * p/100, linear interpolation between floor(k) and ceil(k), None (exported 0) when empty.
// Expected values were computed with that Python function.
#include <gtest/gtest.h>

#include <vector>

#include "metrics/prober_metrics.h"

namespace netprobe {
namespace {

struct PercentileCase {
  const char* description;
  std::vector<double> values;
  int p;
  double expected;
};

TEST(metrics_PercentileLinear, MatchesNetprobifyRecipe) {
  const std::vector<PercentileCase> cases = {
      {"empty -> 0 (netprobify compat: q2-rtt-zero)", {}, 95, 0.0},
      {"single sample, any percentile", {0.004}, 95, 0.004},
      {"single sample, p50", {0.004}, 50, 0.004},
      {"two samples p50 interpolates", {1, 3}, 50, 2.0},
      {"two samples p95", {1, 3}, 95, 2.9},
      {"exact index: n=5 p50 -> k=2", {5, 1, 4, 2, 3}, 50, 3.0},
      {"n=5 p95 -> k=3.8", {1, 2, 3, 4, 5}, 95, 4.8},
      {"n=4 p95 -> k=2.85", {10, 20, 30, 40}, 95, 38.5},
      {"p100 is the max", {3, 1, 2}, 100, 3.0},
      {"p1 near the min", {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}, 1, 1.1},
      {"unsorted input is sorted first", {0.3, 0.1, 0.2}, 50, 0.2},
      {"duplicates", {2, 2, 2, 2}, 95, 2.0},
  };
  for (const auto& c : cases) {
    std::vector<double> v = c.values;
    EXPECT_NEAR(percentile_linear(v, c.p), c.expected, 1e-12) << c.description;
  }
}

TEST(metrics_PercentileLinear, SortsInPlace) {
  std::vector<double> v{3, 1, 2};
  percentile_linear(v, 50);
  EXPECT_EQ(v, (std::vector<double>{1, 2, 3}));
}

TEST(metrics_PercentileLinear, SameFloatingPointStepsAsPython) {
  // Python: percentile([0.001*i for i in range(1, 101)], 0.95) == 0.09505 (bit pattern below).
  std::vector<double> v;
  for (int i = 1; i <= 100; ++i) v.push_back(0.001 * i);
  const double k = 99 * 0.95;  // 94.05
  const double expected = v[94] * (95 - k) + v[95] * (k - 94);
  EXPECT_EQ(percentile_linear(v, 95), expected);
}

}  // namespace
}  // namespace netprobe
