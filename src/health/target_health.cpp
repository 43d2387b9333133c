#include "health/target_health.h"

#include <algorithm>
#include <cmath>

#include "core/percentile.h"

namespace netprobe {

HealthSettings resolve_health(const GlobalConfig& global, const TargetConfig& target) {
  const HealthConfig& g = global.health;
  const HealthConfig& t = target.health;
  HealthSettings s;
  if (t.loss_ratio_above) {
    s.loss_ratio_above = t.loss_ratio_above;
  } else if (target.threshold.loss) {
    const double l = *target.threshold.loss;
    s.loss_ratio_above = l <= 1 ? l : l / 100;  // netprobify's README gives it as a percentage
  } else {
    s.loss_ratio_above = g.loss_ratio_above;
  }
  if (t.rtt_above_s)
    s.rtt_above_s = t.rtt_above_s;
  else if (target.threshold.latency)
    s.rtt_above_s = target.threshold.latency;
  else
    s.rtt_above_s = g.rtt_above_s;
  s.rtt_percentile =
      t.rtt_percentile.value_or(g.rtt_percentile.value_or(HealthSettings::kDefaultRttPercentile));
  s.failing_threshold =
      t.failing_threshold.value_or(g.failing_threshold.value_or(HealthSettings::kDefaultFailingThreshold));
  s.passing_threshold =
      t.passing_threshold.value_or(g.passing_threshold.value_or(HealthSettings::kDefaultPassingThreshold));
  s.site_threshold =
      t.site_threshold.value_or(g.site_threshold.value_or(HealthSettings::kDefaultSiteThreshold));
  return s;
}

std::string_view to_string(Outcome outcome) {
  switch (outcome) {
    case Outcome::kPassed:
      return "passed";
    case Outcome::kFailed:
      return "failed";
    case Outcome::kNothingSent:
      return "nothing_sent";
  }
  return "unknown";
}

Outcome evaluate(const HealthSettings& s, uint64_t sent, uint64_t lost, std::vector<double>& rtts_s) {
  if (sent == 0) return Outcome::kNothingSent;
  lost = std::min(lost, sent);
  const double ratio = double(lost) / double(sent);
  if (s.loss_ratio_above ? ratio > *s.loss_ratio_above : lost == sent) return Outcome::kFailed;
  // The percentile of the answered probes' RTTs; none answered leaves it to the loss rule above.
  if (s.rtt_above_s && !rtts_s.empty() &&
      percentile_linear(rtts_s, std::clamp(s.rtt_percentile, 0, 100)) > *s.rtt_above_s)
    return Outcome::kFailed;
  return Outcome::kPassed;
}

bool TargetHealth::advance(Outcome outcome, const HealthSettings& s, double now_s) {
  switch (outcome) {
    case Outcome::kNothingSent:
      return false;
    case Outcome::kFailed:
      consecutive_successes = 0;
      if (consecutive_failures < UINT32_MAX) ++consecutive_failures;
      break;
    case Outcome::kPassed:
      consecutive_failures = 0;
      if (consecutive_successes < UINT32_MAX) ++consecutive_successes;
      break;
  }
  const bool next = failing ? consecutive_successes < uint32_t(std::max(1, s.passing_threshold))
                            : consecutive_failures >= uint32_t(std::max(1, s.failing_threshold));
  if (next == failing) return false;
  failing = next;
  ++changes;
  last_change_s = now_s;
  return true;
}

const TargetHealth& HealthBook::declare(const std::string& target, double now_s) {
  auto [it, inserted] = targets_.try_emplace(target);
  if (inserted) it->second.last_change_s = now_s;
  return it->second;
}

void HealthBook::forget(std::string_view target) {
  if (auto it = targets_.find(target); it != targets_.end()) targets_.erase(it);
}

const TargetHealth* HealthBook::find(std::string_view target) const {
  auto it = targets_.find(target);
  return it == targets_.end() ? nullptr : &it->second;
}

std::vector<TargetIteration> per_target(const IterationReport& report) {
  std::map<std::string_view, TargetIteration> by_name;
  for (const GroupMeasurement& g : report.groups) {
    TargetIteration& t = by_name[g.target];
    t.target = g.target;
    t.sent += g.sent;
    t.lost += std::min(g.lost, g.sent);
    t.rtts_s.insert(t.rtts_s.end(), g.rtts_s.begin(), g.rtts_s.end());
  }
  std::vector<TargetIteration> out;
  out.reserve(by_name.size());
  for (auto& [name, t] : by_name) out.push_back(std::move(t));
  return out;
}

}  // namespace netprobe
