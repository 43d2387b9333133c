#pragma once
// Target state with hysteresis, as Defcon's checks but strictly consecutive (docs/alerting.md).
//
// Each iteration of a target (all its groups together, as one worker reports them) is Failed, Passed or
// NothingSent. NothingSent (every probe unsent: send errors, no token, cut short; or no group measured)
// neither fails nor passes: it changes no streak, since nothing was learnt about the network. A failing
// target passes again only after passing_threshold passes in a row; one failure in between restarts the
// count (Defcon let a flapping service resolve on passes that were not consecutive: not copied).
//
// Pure and single-threaded: the supervisor feeds it the reports, then copies the results to the metrics.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "core/measurement.h"

namespace netprobe {

// A target's effective `health` (config HealthConfig with the defaults and netprobify's threshold applied).
struct HealthSettings {
  static constexpr int kDefaultFailingThreshold = 3;
  static constexpr int kDefaultPassingThreshold = 3;
  static constexpr int kDefaultSiteThreshold = 2;
  static constexpr int kDefaultRttPercentile = 95;
  // Fail when the loss ratio is strictly above this; nullopt: fail only when no probe was answered.
  std::optional<double> loss_ratio_above;
  int rtt_percentile = kDefaultRttPercentile;
  std::optional<double> rtt_above_s;  // nullopt: latency never fails an iteration
  int failing_threshold = kDefaultFailingThreshold;
  int passing_threshold = kDefaultPassingThreshold;
  int site_threshold = kDefaultSiteThreshold;
  friend bool operator==(const HealthSettings&, const HealthSettings&) = default;
};

// Precedence, per key: the target's health, then (fail_if only) the target's netprobify `threshold`
// (loss read as a ratio up to 1 and a percentage above, as netprobe check does; latency in seconds), then
// global.health, then the defaults. A target's own threshold wins over global.health because it is the
// more specific setting of the two.
HealthSettings resolve_health(const GlobalConfig& global, const TargetConfig& target);

enum class Outcome : uint8_t { kPassed, kFailed, kNothingSent };
std::string_view to_string(Outcome outcome);

// One iteration of one target: sent (answered + lost), lost, and the RTTs of the answered probes.
// `rtts_s` may be reordered (the percentile sorts it).
Outcome evaluate(const HealthSettings& settings, uint64_t sent, uint64_t lost, std::vector<double>& rtts_s);

struct TargetHealth {
  bool failing = false;
  uint32_t consecutive_failures = 0;   // failed iterations in a row (0 after a pass)
  uint32_t consecutive_successes = 0;  // passed iterations in a row (0 after a failure)
  uint64_t changes = 0;                // state changes since the target was first seen
  double last_change_s = 0;            // unix time of the last change, or of the first sight before one

  // Applies one outcome; returns true when the state changed. Thresholds below 1 count as 1.
  bool advance(Outcome outcome, const HealthSettings& settings, double now_s);
  friend bool operator==(const TargetHealth&, const TargetHealth&) = default;
};

// Every target's state, by name. Kept by the supervisor: worker restarts, reloads that keep a target and
// DNS changes leave it; only a target that leaves the configuration loses it (forget()).
class HealthBook {
 public:
  struct Change {
    std::string target;
    bool failing;
  };
  // Creates the target's state (passing) if new; returns it.
  const TargetHealth& declare(const std::string& target, double now_s);
  // Evaluates every target of the report with `settings_of` (nullptr: not tracked) and advances it.
  // Returns the targets whose state changed, and fills `updated` with every target that was advanced.
  template <typename SettingsOf>
  std::vector<Change> record(const IterationReport& report, const SettingsOf& settings_of, double now_s,
                             std::vector<std::string>* updated = nullptr);
  void forget(std::string_view target);
  const TargetHealth* find(std::string_view target) const;
  size_t size() const { return targets_.size(); }

 private:
  std::map<std::string, TargetHealth, std::less<>> targets_;
};

// Sums a report's groups per target (sent, lost, RTTs), in name order.
struct TargetIteration {
  std::string target;
  uint64_t sent = 0;
  uint64_t lost = 0;
  std::vector<double> rtts_s;
};
std::vector<TargetIteration> per_target(const IterationReport& report);

template <typename SettingsOf>
std::vector<HealthBook::Change> HealthBook::record(const IterationReport& report,
                                                   const SettingsOf& settings_of, double now_s,
                                                   std::vector<std::string>* updated) {
  std::vector<Change> changes;
  for (TargetIteration& it : per_target(report)) {
    const HealthSettings* s = settings_of(it.target);
    if (!s) continue;
    auto found = targets_.find(it.target);
    if (found == targets_.end()) {
      declare(it.target, now_s);
      found = targets_.find(it.target);
    }
    const Outcome o = evaluate(*s, it.sent, it.lost, it.rtts_s);
    if (found->second.advance(o, *s, now_s)) changes.push_back({it.target, found->second.failing});
    if (updated) updated->push_back(it.target);
  }
  return changes;
}

}  // namespace netprobe
