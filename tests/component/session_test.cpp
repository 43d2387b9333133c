// The one-shot commands' seam (src/session) over the in-memory link, on a fake clock: several iterations
// of one plan, each reported once and in order, spaced by the interval; stop() cuts the run short.
#include "session/session.h"

#include <gtest/gtest.h>

#include "io/fake_link.h"
#include "lab.h"
#include "responder.h"
#include "sched/target_plan.h"

namespace netprobe {
namespace {

using std::chrono::microseconds;
using testing::fake_engine_options;

struct SessionLab {
  FakeClock clock;
  FakeLink link{clock};
  Config config;
  std::map<std::string, std::vector<IpAddress>> hosts;

  SessionLab() {
    testing::add_group(config, 65000, 65001);
    add("up", ProbeType::kTcpSyn, "198.51.100.1", 443);
    add("down", ProbeType::kUdpUnreachable, "198.51.100.2", 33434);
    add("unresolved", ProbeType::kIcmpPing, "", 0);
  }
  void add(const std::string& name, ProbeType type, const char* dst, uint16_t port) {
    testing::add_target(config, name, type, dst, port, 4);
    if (auto a = IpAddress::parse(dst)) hosts[name] = {*a};
  }
  TargetPlan plan() {
    return plan_targets(config, hosts, [](const IpAddress&) { return IpAddress::parse("192.0.2.10"); });
  }
};

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
  Session session(lab.clock, lab.link.sink(), lab.link.source(), 0x5eed, fake_engine_options());
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
  Session session(lab.clock, lab.link.sink(), lab.link.source(), 0x5eed, fake_engine_options());
  IterationSettings settings;
  settings.interval_s = 5;
  auto reports = session.run(*tp.plan, settings, 10, [&](int i, const IterationReport&) {
    if (i == 1) session.stop();
  });
  EXPECT_EQ(reports.size(), 2u);
  EXPECT_TRUE(session.capture_error().empty());
}

// Ctrl-C in the middle of an iteration (ping's chunk): no report for it, but its probes are delivered, as
// ping counts an interrupted run: answered ones answered, sent ones still waiting flagged interrupted, the
// rest unsent ("cut_short").
TEST(SessionComponent, StopDeliversTheProbesOfTheCutShortIteration) {
  SessionLab lab;
  Session* running = nullptr;
  int udp_seen = 0;
  lab.link.set_responder([&](std::span<const uint8_t> p) -> std::vector<ScriptedReply> {
    if (p[9] == 17 && ++udp_seen == 2) running->stop();
    if (p[9] == 17) return {};
    return {{testing::reply_to(p), microseconds(200)}};
  });
  TargetPlan tp = lab.plan();
  ASSERT_TRUE(tp.plan);
  Session session(lab.clock, lab.link.sink(), lab.link.source(), 0x5eed, fake_engine_options());
  running = &session;
  IterationSettings settings;
  settings.interval_s = 5;  // probes spread over the window: earlier ones are answered before the stop
  std::vector<ProbeEvent> seen;
  int calls = 0;
  auto reports = session.run(*tp.plan, settings, 1, {}, [&](int, std::span<const ProbeEvent> events) {
    ++calls;
    seen.assign(events.begin(), events.end());
  });
  EXPECT_TRUE(reports.empty());
  EXPECT_EQ(calls, 1);
  ASSERT_EQ(seen.size(), tp.plan->probes.size());
  int answered = 0, cut = 0, waiting = 0;
  for (const ProbeEvent& e : seen) {
    answered += e.state == ProbeEvent::State::kAnswered;
    waiting += e.interrupted;
    EXPECT_FALSE(e.interrupted && e.state != ProbeEvent::State::kLost);
    cut += e.state == ProbeEvent::State::kUnsent && e.send_error == 1 + IterationRunner::kUnsentCutShort;
  }
  EXPECT_GT(answered, 0);
  EXPECT_GT(cut, 0);
  EXPECT_GT(waiting, 0);  // the UDP probes sent before the stop (never answered, timeout not reached)
}

// `netprobe ping`'s line per probe: one event per probe of the plan, in plan order, after each iteration,
// with the state the report counts (answered with its RTT, lost, late, ICMP error with its type and code).
TEST(SessionComponent, ReportsOneEventPerProbeWithItsState) {
  SessionLab lab;
  lab.add("err", ProbeType::kTcpSyn, "198.51.100.3", 443);
  lab.add("late", ProbeType::kTcpSyn, "198.51.100.4", 443);
  lab.link.set_responder([](std::span<const uint8_t> p) -> std::vector<ScriptedReply> {
    if (p[9] == 17) return {};  // UDP: silently dropped
    const size_t ihl = size_t(p[0] & 0x0f) * 4;
    const uint16_t sport = uint16_t(p[ihl] << 8 | p[ihl + 1]);
    switch (p[19]) {  // the destination's last byte
      case 1:         // up: source port 65001 black-holed
        if (sport == 65001) return {};
        return {{testing::reply_to(p), microseconds(200)}};
      case 3:
        return {{testing::reply_to(p, testing::ReplyKind::kIcmpError, 3, 13), microseconds(300)}};
      case 4:
        return {{testing::reply_to(p), std::chrono::milliseconds(1500)}};  // timeout 1 s
    }
    return {};
  });
  TargetPlan tp = lab.plan();
  ASSERT_TRUE(tp.plan);
  const Plan& plan = *tp.plan;
  Session session(lab.clock, lab.link.sink(), lab.link.source(), 0x5eed, fake_engine_options());
  IterationSettings settings;
  settings.interval_s = 5;
  std::vector<std::vector<ProbeEvent>> seen;
  std::vector<int> order;  // 'e' events, 'r' report: events first
  auto reports = session.run(
      plan, settings, 2, [&](int, const IterationReport&) { order.push_back('r'); },
      [&](int i, std::span<const ProbeEvent> events) {
        EXPECT_EQ(size_t(i), seen.size());
        order.push_back('e');
        seen.emplace_back(events.begin(), events.end());
      });
  ASSERT_EQ(reports.size(), 2u);
  EXPECT_EQ(order, (std::vector<int>{'e', 'r', 'e', 'r'}));
  for (size_t it = 0; it < seen.size(); ++it) {
    const auto& events = seen[it];
    ASSERT_EQ(events.size(), plan.probes.size());
    std::map<std::string, std::map<ProbeEvent::State, int>> states;
    for (size_t k = 0; k < events.size(); ++k) {
      const ProbeEvent& e = events[k];
      EXPECT_EQ(e.slot, k);
      const PlannedProbe& p = plan.probes[e.slot];
      const std::string& target = plan.buckets[plan.bucket_of(p)].target;
      EXPECT_EQ(e.src_port, p.src_port) << target;
      ++states[target][e.state];
      if (e.state == ProbeEvent::State::kAnswered) {
        EXPECT_EQ(target, "up");
        EXPECT_NE(e.src_port, 65001);
        EXPECT_NEAR(e.rtt_s, 200e-6, 1e-6);
      } else {
        EXPECT_EQ(e.rtt_s, -1);
      }
      if (target == "err") {
        EXPECT_EQ(e.state, ProbeEvent::State::kIcmpError);
        EXPECT_TRUE(e.icmp_error);
        EXPECT_EQ(e.icmp_type, 3);
        EXPECT_EQ(e.icmp_code, 13);
      } else {
        EXPECT_FALSE(e.icmp_error) << target;
      }
      if (target == "up" && e.src_port == 65001) {
        EXPECT_EQ(e.state, ProbeEvent::State::kLost);
      }
      if (target == "down") {
        EXPECT_EQ(e.state, ProbeEvent::State::kLost);
      }
      if (target == "late") {
        EXPECT_TRUE(e.state == ProbeEvent::State::kLate || e.state == ProbeEvent::State::kLost);
      }
    }
    EXPECT_EQ(states["up"][ProbeEvent::State::kAnswered], 2) << "iteration " << it;
    EXPECT_EQ(states["up"][ProbeEvent::State::kLost], 2);
    EXPECT_EQ(states["err"][ProbeEvent::State::kIcmpError], 4);
    // Answers to the last probes come after the iteration ended; the earlier ones are late.
    EXPECT_GT(states["late"][ProbeEvent::State::kLate], 0);
    // The report counts the same.
    for (const auto& g : reports[it].groups) {
      const auto& st = states[g.target];
      EXPECT_EQ(g.sent, 4u) << g.target;
      EXPECT_EQ(
          g.lost,
          4u - uint64_t(st.count(ProbeEvent::State::kAnswered) ? st.at(ProbeEvent::State::kAnswered) : 0))
          << g.target;
      if (g.target == "late") {
        EXPECT_EQ(g.late, uint64_t(st.at(ProbeEvent::State::kLate)));
      }
    }
  }
}

// What each reply looked like (`netprobe ping`'s reply lines, `netprobe trace`'s hops): the answer's
// sender, TTL, IP ID, DF, TCP flags and window with its RTT; the ICMP error's sender and RTT; duplicates.
// With icmp_error_resolves, an ICMP error ends its probe's wait at once.
TEST(SessionComponent, EventsCarryWhatEachReplyLookedLike) {
  SessionLab lab;
  lab.config.targets.erase("unresolved");
  lab.config.targets.erase("down");
  lab.add("err", ProbeType::kTcpSyn, "198.51.100.3", 443);
  lab.config.targets["err"].timeout_s = 3;
  lab.link.set_responder([](std::span<const uint8_t> p) -> std::vector<ScriptedReply> {
    if (p[19] == 3) {
      auto e = testing::reply_to(p, testing::ReplyKind::kIcmpError, 11, 0);
      e[8] = 250;                                      // TTL
      e[12] = 203, e[13] = 0, e[14] = 113, e[15] = 9;  // from a router, 203.0.113.9
      return {{e, microseconds(700)}};
    }
    auto r = testing::reply_to(p);
    r[4] = 0x12, r[5] = 0x34;  // IP ID
    r[6] = 0x40;               // DF
    r[8] = 57;                 // TTL
    const size_t ihl = size_t(r[0] & 0x0f) * 4;
    r[ihl + 14] = 0x72, r[ihl + 15] = 0x10;  // window 29200
    auto dup = r;                            // a duplicate by another way: its own TTL and IP ID
    dup[8] = 56;
    dup[5] = 0x35;
    return {{r, microseconds(200)}, {dup, microseconds(300)}};
  });
  TargetPlan tp = lab.plan();
  ASSERT_TRUE(tp.plan);
  const Plan& plan = *tp.plan;
  std::map<bool, Nanos> took;
  for (const bool resolves : {false, true}) {
    SCOPED_TRACE(resolves ? "icmp_error_resolves" : "default");
    Session session(lab.clock, lab.link.sink(), lab.link.source(), 0x5eed, fake_engine_options());
    IterationSettings settings;
    settings.interval_s = 10;
    settings.icmp_error_resolves = resolves;
    std::vector<ProbeEvent> seen;
    const Nanos t0 = lab.clock.monotonic();
    Nanos ended{0};
    session.run(
        plan, settings, 1, [&](int, const IterationReport&) { ended = lab.clock.monotonic() - t0; },
        [&](int, std::span<const ProbeEvent> events) { seen.assign(events.begin(), events.end()); });
    ASSERT_EQ(seen.size(), plan.probes.size());
    for (const ProbeEvent& e : seen) {
      const std::string& target = plan.buckets[plan.bucket_of(plan.probes[e.slot])].target;
      SCOPED_TRACE(target);
      if (target == "up") {
        EXPECT_EQ(e.state, ProbeEvent::State::kAnswered);
        ASSERT_TRUE(e.has_reply);
        EXPECT_FALSE(e.has_error);
        EXPECT_EQ(e.reply.from, *IpAddress::parse("198.51.100.1"));
        EXPECT_EQ(e.reply.ttl, 57);
        EXPECT_EQ(e.reply.ip_id, 0x1234);
        EXPECT_TRUE(e.reply.dont_fragment);
        EXPECT_EQ(e.reply.tcp_flags, 0x12);
        EXPECT_EQ(e.reply.tcp_window, 29200);
        EXPECT_NEAR(e.reply_rtt_s, 200e-6, 1e-6);
        EXPECT_EQ(e.duplicates, 1);
        ASSERT_EQ(e.duplicate_replies.size(), 1u);
        EXPECT_EQ(e.duplicate_replies[0].reply.ttl, 56);
        EXPECT_EQ(e.duplicate_replies[0].reply.ip_id, 0x1235);
        EXPECT_NEAR(e.duplicate_replies[0].rtt_s, 300e-6, 1e-6);
      } else {
        EXPECT_EQ(e.state, ProbeEvent::State::kIcmpError);
        EXPECT_FALSE(e.has_reply);
        ASSERT_TRUE(e.has_error);
        EXPECT_EQ(e.error.from, *IpAddress::parse("203.0.113.9"));
        EXPECT_EQ(e.error.ttl, 250);
        EXPECT_EQ(e.error.icmp_type, 11);
        EXPECT_NEAR(e.error_rtt_s, 700e-6, 1e-6);
      }
    }
    took[resolves] = ended;
  }
  // Without it the last ICMP error's probe holds the iteration for its 3 s timeout; with it the iteration
  // ends with the last answer (the "up" probes, sent last, are answered within 0.3 ms): the fake clock
  // shows the 3 s less the spacing of the send window (~0.7 s between the last "err" and "up" probes).
  EXPECT_GE(took[false] - took[true], Nanos(2'000'000'000));
}

}  // namespace
}  // namespace netprobe
