#pragma once
// What the metrics tests feed ProberMetrics with: a measurement of one (target, group) and a target's
// configuration, with the fields the metrics read and neutral values elsewhere.
#include <string>
#include <utility>
#include <vector>

#include "config/config.h"
#include "core/measurement.h"

namespace netprobe::testing {

inline GroupMeasurement measurement(const std::string& target, const std::string& group, ProbeType type,
                                    uint64_t sent, uint64_t lost, std::vector<double> rtts,
                                    const std::string& state = "None",
                                    AddressFamily af = AddressFamily::kV4) {
  GroupMeasurement m;
  m.target = target;
  m.group = group;
  m.type = type;
  m.af = af;
  m.state = state;
  m.sent = sent;
  m.lost = lost;
  m.rtts_s = std::move(rtts);
  return m;
}

inline TargetConfig target_config(const std::string& name, ProbeType type, std::vector<std::string> groups) {
  TargetConfig t;
  t.name = name;
  t.description = name;
  t.type = type;
  t.destination = "192.0.2.1";
  t.groups = std::move(groups);
  return t;
}

}  // namespace netprobe::testing
