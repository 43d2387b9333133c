#pragma once
// The setup the engine's component tests share: engine options for the in-memory link, a configuration
// with one group "g" and targets in it, and EngineLab, which plans those targets (each probed at its
// destination, from 192.0.2.10 or 2001:db8:ff::10) and runs engine iterations on a fake clock. Test code
// only; the scripted replies are responder.h's.
#include <gtest/gtest.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "config/config.h"
#include "engine/engine.h"
#include "io/fake_link.h"
#include "sched/plan.h"

namespace netprobe::testing {

// `o` for the fake link: no capture thread (the link delivers in the sender's thread), no grace.
inline EngineOptions fake_engine_options(EngineOptions o = {}) {
  o.capture_thread = false;
  o.capture_grace = Nanos(0);
  return o;
}

// The group "g", with source ports `sport_a` to `sport_z`.
inline void add_group(Config& config, uint16_t sport_a, uint16_t sport_z) {
  GroupConfig g;
  g.name = "g";
  g.src_port_a = sport_a;
  g.src_port_z = sport_z;
  config.groups["g"] = g;
}

// A target of the group "g": `nb_packets` probes, timeout 1 s; `port` 0 keeps the type's default.
inline TargetConfig& add_target(Config& config, const std::string& name, ProbeType type, const char* dst,
                                uint16_t port, int nb_packets) {
  TargetConfig t;
  t.name = name;
  t.type = type;
  t.destination = dst;
  if (port) t.dst_port = port;
  t.nb_packets = nb_packets;
  t.timeout_s = 1;
  t.groups = {"g"};
  return config.targets[name] = t;
}

struct EngineLab {
  FakeClock clock;
  FakeLink link{clock};
  Config config;
  std::vector<ResolvedTarget> resolved;
  Plan plan;
  bool sources_local = true;  // the prober's kernel resets half-open connections itself

  // The group "g" with these source ports, a 10 s interval, no target yet.
  EngineLab(uint16_t sport_a, uint16_t sport_z) {
    add_group(config, sport_a, sport_z);
    config.global.interval_s = 10;
  }

  // The plan of the configuration's targets as they are now.
  Result<Plan> make_plan() {
    resolved.clear();
    for (auto& [name, t] : config.targets) resolved.push_back({&t, {*IpAddress::parse(t.destination)}});
    return build_plan(
        config, resolved,
        [](const IpAddress& dst) {
          return IpAddress::parse(dst.af == AddressFamily::kV4 ? "192.0.2.10" : "2001:db8:ff::10");
        },
        [this](const IpAddress&) { return sources_local; });
  }

  // `n` iterations of one engine on a new plan (tokens change, the engine remembers the previous iteration).
  std::vector<IterationReport> runs(int n, EngineOptions options = {}) {
    auto p = make_plan();
    EXPECT_TRUE(p.ok());
    plan = std::move(p).value();
    Engine engine(clock, link.sink(), link.source(), 0x5eed, fake_engine_options(options));
    IterationSettings settings;
    settings.interval_s = config.global.interval_s;
    std::vector<IterationReport> out;
    for (int i = 0; i < n; ++i) out.push_back(engine.run_iteration(plan, settings));
    return out;
  }
};

// An iteration's measurements by target name (one group per target in these tests).
inline std::map<std::string, GroupMeasurement> by_target(const IterationReport& r) {
  std::map<std::string, GroupMeasurement> out;
  for (const auto& g : r.groups) out[g.target] = g;
  return out;
}

}  // namespace netprobe::testing
