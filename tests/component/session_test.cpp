// The one-shot commands' seam (src/session) over the in-memory link, on a fake clock: several iterations
// of one plan, each reported once and in order, spaced by the interval; stop() cuts the run short.
#include "session/session.h"

#include <gtest/gtest.h>

#include "io/fake_link.h"
#include "responder.h"
#include "sched/target_plan.h"

namespace netprobe {
namespace {

using std::chrono::microseconds;

struct SessionLab {
  FakeClock clock;
  FakeLink link{clock};
  Config config;
  std::map<std::string, std::vector<IpAddress>> hosts;

  SessionLab() {
    GroupConfig g;
    g.name = "g";
    g.src_port_a = 65000;
    g.src_port_z = 65001;
    config.groups["g"] = g;
    add("up", ProbeType::kTcpSyn, "198.51.100.1", 443);
    add("down", ProbeType::kUdpUnreachable, "198.51.100.2", 33434);
    add("unresolved", ProbeType::kIcmpPing, "", 0);
  }
  void add(const std::string& name, ProbeType type, const char* dst, uint16_t port) {
    TargetConfig t;
    t.name = name;
    t.type = type;
    t.destination = dst;
    if (port) t.dst_port = port;
    t.nb_packets = 4;
    t.timeout_s = 1;
    t.groups = {"g"};
    config.targets[name] = t;
    if (auto a = IpAddress::parse(dst)) hosts[name] = {*a};
  }
  TargetPlan plan() {
    return plan_targets(config, hosts, [](const IpAddress&) { return IpAddress::parse("192.0.2.10"); });
  }
};

EngineOptions fake_options() {
  EngineOptions o;
  o.capture_thread = false;
  o.capture_grace = Nanos(0);
  return o;
}

TEST(SessionComponent, RunsEachIterationOnceInOrderAndReportsThem) {
  SessionLab lab;
  lab.link.set_responder([](std::span<const uint8_t> p) -> std::vector<ScriptedReply> {
    if (p[9] == 17) return {};  // UDP: silently dropped
    return {{testing::reply_to(p), microseconds(200)}};
  });
  TargetPlan tp = lab.plan();
  ASSERT_TRUE(tp.plan);
  EXPECT_EQ(tp.inactive_targets, std::vector<std::string>{"unresolved"});
  EXPECT_EQ(tp.why, (std::map<std::string, std::string>{{"unresolved", "no address to probe"}}));
  Session session(lab.clock, lab.link.sink(), lab.link.source(), 0x5eed, fake_options());
  IterationSettings settings;
  settings.interval_s = 5;
  std::vector<int> seen;
  std::vector<Nanos> started;
  const Nanos t0 = lab.clock.monotonic();
  auto reports = session.run(*tp.plan, settings, 3, [&](int i, const IterationReport&) {
    seen.push_back(i);
    started.push_back(lab.clock.monotonic());
  });
  ASSERT_EQ(reports.size(), 3u);
  EXPECT_EQ(seen, (std::vector<int>{0, 1, 2}));
  // One iteration every interval: the third one cannot end before two intervals have passed.
  EXPECT_GE(started[2] - t0, Nanos(10'000'000'000));
  for (const auto& r : reports) {
    ASSERT_EQ(r.groups.size(), 2u);
    for (const auto& g : r.groups) {
      EXPECT_EQ(g.sent, 4u) << g.target;
      EXPECT_EQ(g.lost, g.target == "down" ? 4u : 0u) << g.target;
    }
  }
}

TEST(SessionComponent, StopEndsTheRunWithoutTheCutShortIteration) {
  SessionLab lab;
  lab.link.set_responder([](std::span<const uint8_t> p) -> std::vector<ScriptedReply> {
    return {{testing::reply_to(p), microseconds(200)}};
  });
  TargetPlan tp = lab.plan();
  ASSERT_TRUE(tp.plan);
  Session session(lab.clock, lab.link.sink(), lab.link.source(), 0x5eed, fake_options());
  IterationSettings settings;
  settings.interval_s = 5;
  auto reports = session.run(*tp.plan, settings, 10, [&](int i, const IterationReport&) {
    if (i == 1) session.stop();
  });
  EXPECT_EQ(reports.size(), 2u);
  EXPECT_TRUE(session.capture_error().empty());
}

}  // namespace
}  // namespace netprobe
