// `netprobe ping`'s summary and exit rule (session/ping_result.h), table-tested: loss with and without
// --max-loss, nothing sent, unsent probes skipped, ICMP errors and late answers counted, RTT statistics, and
// the per-source-port flags.
#include "session/ping_result.h"

#include <gtest/gtest.h>

namespace netprobe {
namespace {

using S = ProbeEvent::State;

ProbeEvent ev(S state, uint16_t sport = 65000, double rtt_s = -1, bool icmp = false) {
  ProbeEvent e;
  e.state = state;
  e.src_port = sport;
  e.rtt_s = rtt_s;
  e.icmp_error = icmp;
  return e;
}

TEST(session_PingResult, ExitCodes) {
  struct Case {
    const char* name;
    std::vector<ProbeEvent> events;
    std::optional<double> max_loss;
    int code;
  };
  const std::vector<Case> cases = {
      {"all answered", {ev(S::kAnswered, 1, 1e-3), ev(S::kAnswered, 2, 2e-3)}, std::nullopt, 0},
      {"one of two answered, default rule", {ev(S::kAnswered, 1, 1e-3), ev(S::kLost)}, std::nullopt, 0},
      {"none answered", {ev(S::kLost), ev(S::kLate), ev(S::kIcmpError, 1, -1, true)}, std::nullopt, 1},
      {"nothing sent", {}, std::nullopt, 1},
      {"only unsent", {ev(S::kUnsent), ev(S::kUnsent)}, std::nullopt, 1},
      {"nothing sent, any loss allowed", {}, 100.0, 1},
      {"50 % within 50", {ev(S::kAnswered, 1, 1e-3), ev(S::kLost)}, 50.0, 0},
      {"50 % above 49.99", {ev(S::kAnswered, 1, 1e-3), ev(S::kLost)}, 49.99, 1},
      {"0 % within 0", {ev(S::kAnswered, 1, 1e-3)}, 0.0, 0},
      {"33.33 % within 33.34", {ev(S::kAnswered), ev(S::kAnswered), ev(S::kLost)}, 33.34, 0},
      {"33.33 % above 33.33", {ev(S::kAnswered), ev(S::kAnswered), ev(S::kLost)}, 33.33, 1},
      {"100 % within 100", {ev(S::kLost)}, 100.0, 0},
      {"unsent not counted as lost", {ev(S::kAnswered), ev(S::kUnsent)}, 0.0, 0},
  };
  for (const Case& c : cases) EXPECT_EQ(summarize_ping(c.events).exit_code(c.max_loss), c.code) << c.name;
}

TEST(session_PingResult, SummaryCountsAndRtt) {
  const std::vector<ProbeEvent> events = {ev(S::kAnswered, 1, 1e-3), ev(S::kAnswered, 1, 3e-3),
                                          ev(S::kAnswered, 2, -1),  // answered, no usable send time
                                          ev(S::kLate, 2),           ev(S::kIcmpError, 3, -1, true),
                                          ev(S::kUnsent, 4)};
  const PingSummary s = summarize_ping(events);
  EXPECT_EQ(s.sent, 5u);
  EXPECT_EQ(s.received, 3u);
  EXPECT_DOUBLE_EQ(s.loss_pct, 40.0);
  EXPECT_EQ(s.late, 1u);
  EXPECT_EQ(s.icmp_errors, 1u);
  ASSERT_EQ(s.rtts_s.size(), 2u);
  EXPECT_DOUBLE_EQ(s.min_s, 1e-3);
  EXPECT_DOUBLE_EQ(s.max_s, 3e-3);
  EXPECT_DOUBLE_EQ(s.avg_s, 2e-3);
  EXPECT_NEAR(s.mdev_s, 1e-3, 1e-12);
  ASSERT_EQ(s.ports.size(), 3u);  // port 4 only had an unsent probe
  EXPECT_EQ(s.ports[0].sport, 1);
  EXPECT_EQ(s.ports[1].lost, 1u);
  EXPECT_EQ(s.ports[2].lost, 1u);
  EXPECT_DOUBLE_EQ(summarize_ping({}).loss_pct, 100.0);
}

// Percentiles as the metrics compute them (k = (n - 1) p / 100, linear), and --max-rtt on the p99.
TEST(session_PingResult, PercentilesAndMaxRtt) {
  std::vector<ProbeEvent> events;
  for (int i = 1; i <= 10; ++i) events.push_back(ev(S::kAnswered, 1, i * 1e-3));  // 1..10 ms
  const PingSummary s = summarize_ping(events);
  EXPECT_NEAR(s.p50_s, 5.5e-3, 1e-12);
  EXPECT_NEAR(s.p90_s, 9.1e-3, 1e-12);
  EXPECT_NEAR(s.p99_s, 9.91e-3, 1e-12);
  EXPECT_EQ(s.exit_code(std::nullopt, 10.0), 0);
  EXPECT_EQ(s.exit_code(std::nullopt, 9.91), 0);
  EXPECT_EQ(s.exit_code(std::nullopt, 9.9), 1);
  EXPECT_EQ(s.exit_code(100.0, 9.9), 1) << "both conditions hold";
  const PingSummary one = summarize_ping(std::vector<ProbeEvent>{ev(S::kAnswered, 1, 2e-3)});
  EXPECT_DOUBLE_EQ(one.p50_s, 2e-3);
  EXPECT_DOUBLE_EQ(one.p99_s, 2e-3);
  const PingSummary none = summarize_ping(std::vector<ProbeEvent>{ev(S::kLost)});
  EXPECT_EQ(none.exit_code(100.0, 1000.0), 1) << "no RTT cannot prove an RTT bound";
}

TEST(session_PingResult, FlagsTheBlackHoledAndLossyPortsOnly) {
  // 16 ports, 8 probes each: 65003 loses all, 65009 loses 6 of 8, 65011 one (chance), the rest none.
  std::vector<ProbeEvent> events;
  for (int k = 0; k < 8; ++k)
    for (uint16_t p = 65000; p < 65016; ++p) {
      const bool lost = p == 65003 || (p == 65009 && k < 6) || (p == 65011 && k == 0);
      events.push_back(lost ? ev(S::kLost, p) : ev(S::kAnswered, p, 1e-3));
    }
  const PingSummary s = summarize_ping(events);
  ASSERT_EQ(s.ports.size(), 16u);
  for (const PingPort& r : s.ports) {
    const char* want = r.sport == 65003 ? "black-holed" : r.sport == 65009 ? "lossy" : "";
    EXPECT_EQ(r.flag, want) << r.sport;
    EXPECT_EQ(r.sent, 8u);
  }
  // Uniform loss flags nothing.
  std::vector<ProbeEvent> uniform;
  for (uint16_t p = 65000; p < 65004; ++p)
    uniform.push_back(ev(S::kLost, p)), uniform.push_back(ev(S::kAnswered, p));
  for (const PingPort& r : summarize_ping(uniform).ports) EXPECT_EQ(r.flag, "") << r.sport;
}

}  // namespace
}  // namespace netprobe
