// Target state with hysteresis (src/health, docs/alerting.md): tables of iteration outcomes -> state.
#include "health/target_health.h"

#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace netprobe {
namespace {

// "F" failed, "P" passed, "-" nothing sent; the expected state after each, "1" failing, "0" passing.
struct Row {
  const char* name;
  int failing_threshold;
  int passing_threshold;
  std::string outcomes;
  std::string expected;
};

Outcome outcome_of(char c) {
  return c == 'F' ? Outcome::kFailed : c == 'P' ? Outcome::kPassed : Outcome::kNothingSent;
}

TEST(health_TargetHealth, Table) {
  const std::vector<Row> rows = {
      {"fails only after the third consecutive", 3, 3, "FFPFFF", "000001"},
      {"recovers only after the third consecutive", 3, 3, "FFFPPFPPP", "001111110"},
      {"flapping never fails", 3, 3, "FFPFFPFFPFF", "00000000000"},
      {"flapping never recovers (Defcon's non-consecutive passes are not copied)", 2, 3, "FFPPFPPFPP",
       "0111111111"},
      {"threshold 1: every iteration decides", 1, 1, "FPFFPP", "101100"},
      {"nothing sent breaks no streak", 3, 3, "FF-F", "0001"},
      {"nothing sent does not count as a pass", 3, 2, "FFF--P-P", "00111110"},
      {"nothing sent at start stays passing", 3, 3, "---", "000"},
      {"asymmetric thresholds", 2, 4, "FFPPPPF", "0111100"},
      {"threshold 0 reads as 1", 0, 0, "FP", "10"},
  };
  for (const Row& row : rows) {
    SCOPED_TRACE(row.name);
    HealthSettings s;
    s.failing_threshold = row.failing_threshold;
    s.passing_threshold = row.passing_threshold;
    TargetHealth h;
    std::string got;
    uint64_t changes = 0;
    char previous = '0';
    for (size_t i = 0; i < row.outcomes.size(); ++i) {
      const bool changed = h.advance(outcome_of(row.outcomes[i]), s, double(i));
      got += h.failing ? '1' : '0';
      EXPECT_EQ(changed, got.back() != previous) << "at " << i;
      if (changed) {
        ++changes;
        EXPECT_EQ(h.last_change_s, double(i));
      }
      previous = got.back();
    }
    EXPECT_EQ(got, row.expected);
    EXPECT_EQ(h.changes, changes);
  }
}

TEST(health_TargetHealth, StreakCounters) {
  HealthSettings s;
  TargetHealth h;
  for (char c : std::string("FF-FP")) h.advance(outcome_of(c), s, 0);
  EXPECT_EQ(h.consecutive_failures, 0u);
  EXPECT_EQ(h.consecutive_successes, 1u);
  EXPECT_TRUE(h.failing);
  h.advance(Outcome::kFailed, s, 0);
  EXPECT_EQ(h.consecutive_failures, 1u);
  EXPECT_EQ(h.consecutive_successes, 0u);
}

struct EvalRow {
  const char* name;
  std::optional<double> loss_above;
  std::optional<double> rtt_above;
  int percentile;
  uint64_t sent;
  uint64_t lost;
  std::vector<double> rtts;
  Outcome expected;
};

TEST(health_Evaluate, Table) {
  const std::vector<EvalRow> rows = {
      {"nothing sent", 0.1, 0.1, 95, 0, 0, {}, Outcome::kNothingSent},
      {"default: all lost fails", std::nullopt, std::nullopt, 95, 10, 10, {}, Outcome::kFailed},
      {"default: one answer passes", std::nullopt, std::nullopt, 95, 10, 9, {0.001}, Outcome::kPassed},
      {"loss equal to the limit passes (strictly above)", 0.5, std::nullopt, 95, 10, 5, {}, Outcome::kPassed},
      {"loss above the limit fails", 0.5, std::nullopt, 95, 10, 6, {}, Outcome::kFailed},
      {"limit 0: any loss fails", 0.0, std::nullopt, 95, 100, 1, {}, Outcome::kFailed},
      {"limit 0: no loss passes", 0.0, std::nullopt, 95, 100, 0, {}, Outcome::kPassed},
      {"p95 above the RTT limit fails", 0.5, 0.010, 95, 4, 0, {0.001, 0.002, 0.003, 0.100}, Outcome::kFailed},
      {"p50 under the RTT limit passes",
       0.5,
       0.010,
       50,
       4,
       0,
       {0.001, 0.002, 0.003, 0.100},
       Outcome::kPassed},
      {"RTT equal to the limit passes", 0.5, 0.002, 100, 2, 0, {0.002, 0.001}, Outcome::kPassed},
      {"no answer: the RTT rule abstains, loss decides", 1.0, 0.001, 95, 3, 3, {}, Outcome::kPassed},
      {"lost > sent is clamped", 0.5, std::nullopt, 95, 2, 7, {}, Outcome::kFailed},
  };
  for (const EvalRow& row : rows) {
    SCOPED_TRACE(row.name);
    HealthSettings s;
    s.loss_ratio_above = row.loss_above;
    s.rtt_above_s = row.rtt_above;
    s.rtt_percentile = row.percentile;
    std::vector<double> rtts = row.rtts;
    EXPECT_EQ(evaluate(s, row.sent, row.lost, rtts), row.expected);
  }
}

TEST(health_Resolve, PrecedenceAndNetprobifyThreshold) {
  GlobalConfig g;
  TargetConfig t;
  // Nothing configured: the defaults, fail only when nothing was answered.
  HealthSettings s = resolve_health(g, t);
  EXPECT_EQ(s, HealthSettings{});
  EXPECT_FALSE(s.loss_ratio_above);
  // Global defaults.
  g.health.loss_ratio_above = 0.2;
  g.health.rtt_above_s = 0.5;
  g.health.failing_threshold = 5;
  g.health.site_threshold = 3;
  s = resolve_health(g, t);
  EXPECT_EQ(s.loss_ratio_above, 0.2);
  EXPECT_EQ(s.rtt_above_s, 0.5);
  EXPECT_EQ(s.failing_threshold, 5);
  EXPECT_EQ(s.passing_threshold, 3);
  EXPECT_EQ(s.site_threshold, 3);
  // netprobify's threshold wins over global.health: loss as a percentage above 1, as a ratio up to 1.
  t.threshold.loss = 5;
  t.threshold.latency = 0.1;
  s = resolve_health(g, t);
  EXPECT_DOUBLE_EQ(*s.loss_ratio_above, 0.05);
  EXPECT_EQ(s.rtt_above_s, 0.1);
  t.threshold.loss = 0.3;
  EXPECT_DOUBLE_EQ(*resolve_health(g, t).loss_ratio_above, 0.3);
  // The target's own health wins over everything, key by key.
  t.health.loss_ratio_above = 0.01;
  t.health.passing_threshold = 7;
  t.health.rtt_percentile = 99;
  s = resolve_health(g, t);
  EXPECT_EQ(s.loss_ratio_above, 0.01);
  EXPECT_EQ(s.rtt_above_s, 0.1);
  EXPECT_EQ(s.rtt_percentile, 99);
  EXPECT_EQ(s.failing_threshold, 5);
  EXPECT_EQ(s.passing_threshold, 7);
}

GroupMeasurement group(std::string target, std::string group, uint64_t sent, uint64_t lost,
                       std::vector<double> rtts = {}) {
  GroupMeasurement m;
  m.target = std::move(target);
  m.group = std::move(group);
  m.sent = sent;
  m.lost = lost;
  m.rtts_s = std::move(rtts);
  return m;
}

// A target's groups are one iteration together; a worker restart (a new HealthBook user, same book) keeps
// the state; a forgotten target starts again.
TEST(health_HealthBook, GroupsTogetherAndKeptAcrossReports) {
  HealthSettings s;
  s.loss_ratio_above = 0.5;
  s.failing_threshold = 2;
  s.passing_threshold = 2;
  auto settings_of = [&](const std::string& name) -> const HealthSettings* {
    return name == "untracked" ? nullptr : &s;
  };
  HealthBook book;
  IterationReport r;
  // a: 3 of 4 lost over two groups (one alone would pass): fails. b: nothing sent. untracked: ignored.
  r.groups = {group("a", "g1", 2, 2), group("a", "g2", 2, 1, {0.001}), group("b", "g1", 0, 0),
              group("untracked", "g1", 5, 5)};
  std::vector<std::string> updated;
  EXPECT_TRUE(book.record(r, settings_of, 1, &updated).empty());
  EXPECT_EQ(updated, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(book.find("a")->consecutive_failures, 1u);
  EXPECT_EQ(book.find("b")->consecutive_failures, 0u);
  EXPECT_EQ(book.find("untracked"), nullptr);
  const auto changes = book.record(r, settings_of, 2);
  ASSERT_EQ(changes.size(), 1u);
  EXPECT_EQ(changes[0].target, "a");
  EXPECT_TRUE(changes[0].failing);
  EXPECT_EQ(book.find("a")->last_change_s, 2);
  // An empty report (a worker that restarted sends nothing for the lost iteration) changes nothing.
  EXPECT_TRUE(book.record(IterationReport{}, settings_of, 3).empty());
  EXPECT_TRUE(book.find("a")->failing);
  book.forget("a");
  EXPECT_EQ(book.find("a"), nullptr);
  EXPECT_FALSE(book.declare("a", 4).failing);
  EXPECT_EQ(book.find("a")->last_change_s, 4);
}

}  // namespace
}  // namespace netprobe
