#pragma once
// The per-path loss test (docs/paths.md#the-test): which flows of one (target, group) lose significantly
// more than the other flows of the same (target, group).
#include <cstdint>
#include <span>
#include <vector>

namespace netprobe {

struct FlowTally {
  uint64_t sent = 0;
  uint64_t lost = 0;
};

// P(X >= k) for X ~ Binomial(n, p), 0 < p < 1; 1 when k == 0.
double binomial_upper_tail(uint64_t n, uint64_t k, double p);

// The significance level of the whole (target, group): Bonferroni over its flows, so a lossless or uniformly
// lossy (target, group) flags a flow by chance at most once in 1,000 tests.
inline constexpr double kPathLossAlpha = 0.001;

// One flag per flow: true when the flow's loss is significantly above the pooled loss of the flows not
// flagged (one-sided binomial test, alpha / flows tested, the pooled rate smoothed as (lost + 1) / (sent + 2)
// so that a single loss among lossless flows is no proof). Repeated until no new flow is flagged, at most
// kPathLossPasses times: a black-holed or lossy link hashing many flows no longer hides them in the baseline.
// Flows with sent == 0 are never flagged. Cost: O(flows) binomial tails per pass.
inline constexpr int kPathLossPasses = 8;
std::vector<bool> lossy_flows(std::span<const FlowTally> flows, double alpha = kPathLossAlpha);

}  // namespace netprobe
