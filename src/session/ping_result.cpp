#include "session/ping_result.h"

#include <algorithm>
#include <cmath>
#include <map>

#include "core/percentile.h"
#include "paths/significance.h"

namespace netprobe {

int PingSummary::exit_code(std::optional<double> max_loss_pct, std::optional<double> max_rtt_ms) const {
  if (sent == 0) return 1;
  // The loss is printed with two decimals: compare with a margin below that resolution.
  const bool loss_ok = max_loss_pct ? loss_pct <= *max_loss_pct + 1e-9 : received > 0;
  const bool rtt_ok = !max_rtt_ms || (!rtts_s.empty() && p99_s * 1e3 <= *max_rtt_ms);
  return loss_ok && rtt_ok ? 0 : 1;
}

PingSummary summarize_ping(std::span<const ProbeEvent> events) {
  PingSummary s;
  std::map<uint16_t, FlowTally> by_port;
  for (const ProbeEvent& e : events) {
    if (e.state == ProbeEvent::State::kUnsent) continue;
    FlowTally& t = by_port[e.src_port];
    ++s.sent;
    ++t.sent;
    if (e.state == ProbeEvent::State::kAnswered) {
      ++s.received;
      if (e.rtt_s >= 0) s.rtts_s.push_back(e.rtt_s);
    } else {
      ++t.lost;
    }
    s.late += e.state == ProbeEvent::State::kLate;
    s.icmp_errors += e.icmp_error;
  }
  if (s.sent) s.loss_pct = 100.0 * double(s.sent - s.received) / double(s.sent);
  if (!s.rtts_s.empty()) {
    const auto [lo, hi] = std::minmax_element(s.rtts_s.begin(), s.rtts_s.end());
    s.min_s = *lo;
    s.max_s = *hi;
    double sum = 0, sq = 0;
    for (double r : s.rtts_s) sum += r, sq += r * r;
    const auto n = double(s.rtts_s.size());
    s.avg_s = sum / n;
    s.mdev_s = std::sqrt(std::max(0.0, sq / n - s.avg_s * s.avg_s));
    std::vector<double> sorted = s.rtts_s;  // rtts_s keeps the probes' order
    s.p50_s = percentile_linear(sorted, 50);
    s.p90_s = percentile_linear(sorted, 90);
    s.p99_s = percentile_linear(sorted, 99);
  }
  std::vector<FlowTally> tallies;
  for (const auto& [port, t] : by_port) tallies.push_back(t);
  const std::vector<bool> lossy = lossy_flows(tallies);
  size_t k = 0;
  for (const auto& [port, t] : by_port) {
    const char* flag = !lossy[k] ? "" : t.lost == t.sent ? "black-holed" : "lossy";
    s.ports.push_back({port, t.sent, t.lost, flag});
    ++k;
  }
  return s;
}

}  // namespace netprobe
