#include "paths/significance.h"

#include <boost/math/policies/policy.hpp>
#include <boost/math/special_functions/beta.hpp>

#include <cmath>

namespace netprobe {

namespace {
// Errors as NaN, never exceptions: the supervisor's loop must not throw out of a metric update.
using NoThrow = boost::math::policies::policy<
    boost::math::policies::domain_error<boost::math::policies::ignore_error>,
    boost::math::policies::overflow_error<boost::math::policies::ignore_error>,
    boost::math::policies::evaluation_error<boost::math::policies::ignore_error>>;
}  // namespace

double binomial_upper_tail(uint64_t n, uint64_t k, double p) {
  if (k == 0) return 1.0;
  if (k > n) return 0.0;
  if (!(p > 0.0)) return 0.0;
  if (!(p < 1.0)) return 1.0;
  // P(X >= k) = I_p(k, n - k + 1), the regularised incomplete beta function.
  const double tail = boost::math::ibeta(double(k), double(n - k + 1), p, NoThrow());
  return std::isfinite(tail) ? tail : 1.0;  // on a numerical failure: no evidence
}

std::vector<bool> lossy_flows(std::span<const FlowTally> flows, double alpha) {
  std::vector<bool> flagged(flows.size(), false);
  uint64_t pool_sent = 0, pool_lost = 0, tested = 0;
  for (const FlowTally& f : flows) {
    pool_sent += f.sent;
    pool_lost += std::min(f.lost, f.sent);
    tested += f.sent > 0;
  }
  if (tested < 2) return flagged;  // nothing to compare with
  const double level = alpha / double(tested);
  std::vector<size_t> fresh;
  for (int pass = 0; pass < kPathLossPasses; ++pass) {
    fresh.clear();
    for (size_t i = 0; i < flows.size(); ++i) {
      const uint64_t sent = flows[i].sent, lost = std::min(flows[i].lost, flows[i].sent);
      if (flagged[i] || sent == 0) continue;
      const uint64_t others_sent = pool_sent - sent, others_lost = pool_lost - lost;
      if (others_sent == 0) continue;
      const double p0 = (double(others_lost) + 1.0) / (double(others_sent) + 2.0);
      if (double(lost) <= p0 * double(sent)) continue;  // not above the others: no test needed
      if (binomial_upper_tail(sent, lost, p0) < level) fresh.push_back(i);
    }
    if (fresh.empty()) break;
    for (size_t i : fresh) {
      flagged[i] = true;
      pool_sent -= flows[i].sent;
      pool_lost -= std::min(flows[i].lost, flows[i].sent);
    }
  }
  return flagged;
}

}  // namespace netprobe
