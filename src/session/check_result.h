#pragma once
// What `netprobe check` says about one (target, group) after its iterations: the totals, the OK rule and
// the text line. Pure (no I/O, no clock), so that the rule and the wording are table-tested.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "config/config.h"
#include "core/measurement.h"

namespace netprobe {

struct CheckResult {
  CheckResult() = default;
  CheckResult(const TargetConfig* t, std::string g) : target(t), group(std::move(g)) {}

  const TargetConfig* target = nullptr;
  std::string group;
  uint64_t sent = 0;
  uint64_t lost = 0;
  uint64_t unexpected = 0;  // UDPquery: answers not what expect says, port unreachables
  uint64_t closed = 0;
  std::vector<double> rtts_s;
  std::map<std::string, uint64_t> icmp_errors;
  std::string not_probed;  // why the target could not be probed at all (DNS, route)

  // Adds one iteration's measurement of this (target, group).
  void add(const GroupMeasurement& m);
  double loss_ratio() const { return sent ? double(lost) / double(sent) : 1.0; }
  // The target's threshold.loss, read as a ratio up to 1 and as a percentage above (the schema allows
  // either, "as your alert rules expect"); nullopt without one.
  std::optional<double> max_loss() const;
  // OK: probed, no UDPquery answer unexpected or closed, and its loss below the threshold when the target has
  // one (0: no loss at all), else at least one answer.
  bool ok() const;
  double median_rtt_s() const;  // 0 without RTT
  // "TCPsyn web.example.net:443 OK 0.41 ms [web/g]", "... FAILED 100 % loss [web/g]".
  std::string line() const;
};

}  // namespace netprobe
