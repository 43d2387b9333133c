// The per-target series left prometheus-cpp for TargetSeries (target_series.h says why). These tests hold the
// exposition to what it was: the same operations applied to ProberMetrics and to the old, prometheus-cpp-only
// implementation (legacy_prober_metrics.*, test only) must render the same lines, HELP and TYPE included,
// first for a table of scenarios, then for a long seeded random sequence of what a supervisor does. Then:
// the text is well formed (no series twice, a family's lines together), rendering in slices gives the same
// text as in one piece, a sink can stop it, and scrapes running beside a writer see well-formed text.
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <functional>
#include <limits>
#include <map>
#include <random>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <prometheus/text_serializer.h>

#include "metrics/prober_metrics.h"
#include "metrics/target_series.h"
#include "tests/support/metrics_builders.h"
#include "tests/support/metrics_lines.h"
#include "tests/unit/metrics/legacy_prober_metrics.h"

namespace netprobe {
namespace {

using testing::well_formed;

using testing::measurement;
using testing::target_config;

std::vector<std::string> all_lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

std::set<std::string> line_set(const std::string& text) {
  const auto lines = all_lines(text);
  return {lines.begin(), lines.end()};
}

// The same calls on both implementations.
class Both {
 public:
  explicit Both(std::vector<int> percentiles = {95, 50})
      : now_(now_registry_, "probe1", percentiles, "0.1.0"),
        old_(old_registry_, "probe1", percentiles, "0.1.0") {
    now_.set_rtt_histogram(RttHistogram::kPerTarget);  // the old exposition's histograms
  }

  void record(const IterationReport& r) { now_.record(r), old_.record(r); }
  void declare(const TargetConfig& t, AddressFamily af) {
    now_.declare_target(t, af), old_.declare_target(t, af);
  }
  void clear_target(const std::string& t) { now_.clear_target(t), old_.clear_target(t); }
  void clear_measurements(const std::string& t) {
    now_.clear_target_measurements(t), old_.clear_target_measurements(t);
  }
  void clear_group(const std::string& g) { now_.clear_group(g), old_.clear_group(g); }
  void set_percentiles(const std::vector<int>& p) { now_.set_percentiles(p), old_.set_percentiles(p); }
  void set_probe_name(const std::string& p) { now_.set_probe_name(p), old_.set_probe_name(p); }
  void status(const std::string& t, AddressFamily af, int v) {
    now_.set_host_resolution_status(t, af, v), old_.set_host_resolution_status(t, af, v);
  }
  void change(const std::string& t, AddressFamily af) {
    now_.inc_host_resolution_change(t, af), old_.inc_host_resolution_change(t, af);
  }

  std::string now_text() { return testing::exposition_text(*now_registry_, *now_.target_series()); }
  std::string old_text() {
    std::ostringstream out;
    prometheus::TextSerializer().Serialize(out, old_registry_->Collect());
    return out.str();
  }

  // Same set of lines, the new text well formed; gtest failure otherwise, naming the differing lines.
  void expect_same(const std::string& where) {
    const std::string now = now_text();
    auto now_lines = line_set(now);
    EXPECT_EQ(all_lines(now).size(), now_lines.size()) << where << ": a line twice";
    // The per-path families (docs/paths.md) are netprobe's own, with no prometheus-cpp counterpart in the
    // legacy implementation: tested by metrics_PathFamilies (prober_metrics_test.cpp).
    static const std::regex path_family(
        "(tcpsyn|icmp|udp_unreachable)_(paths|paths_with_loss|"
        "worst_path_loss_ratio|path_loss_ratio|path_sent)[{ ]");
    std::erase_if(now_lines, [](const std::string& l) { return std::regex_search(l, path_family); });
    const auto old_lines = line_set(old_text());
    EXPECT_EQ(well_formed(now), "") << where;
    std::string missing, extra;
    for (const auto& l : old_lines)
      if (!now_lines.count(l)) missing += "  " + l + "\n";
    for (const auto& l : now_lines)
      if (!old_lines.count(l)) extra += "  " + l + "\n";
    EXPECT_TRUE(missing.empty() && extra.empty()) << where << "\nonly in the old exposition:\n"
                                                  << missing << "only in the new one:\n"
                                                  << extra;
  }

  ProberMetrics& now() { return now_; }

 private:
  std::shared_ptr<prometheus::Registry> now_registry_ = std::make_shared<prometheus::Registry>();
  std::shared_ptr<prometheus::Registry> old_registry_ = std::make_shared<prometheus::Registry>();
  ProberMetrics now_;
  legacy::ProberMetrics old_;
};

IterationReport report_of(std::vector<GroupMeasurement> groups, std::vector<TargetEvents> targets = {}) {
  IterationReport r;
  r.groups = std::move(groups);
  r.targets = std::move(targets);
  r.duration_s = 0.25;
  return r;
}

TEST(metrics_TargetSeries, SameExpositionAsPrometheusCpp) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  struct Scenario {
    const char* description;
    std::function<void(Both&)> run;
  };
  const std::vector<Scenario> scenarios = {
      {"nothing but the process-wide series", [](Both&) {}},
      {"declared targets of each type, thresholds, both families",
       [](Both& b) {
         auto t = target_config("web", ProbeType::kTcpSyn, {"g1", "g2"});
         t.threshold.latency = 0.05;
         t.threshold.loss = 0.1;
         t.alert_level = AlertLevel::kPaging;
         t.state = "in production";
         b.declare(t, AddressFamily::kV4);
         b.declare(target_config("ping6", ProbeType::kIcmpPing, {"g1"}), AddressFamily::kV6);
         b.declare(target_config("udp", ProbeType::kUdpUnreachable, {"g2"}), AddressFamily::kV4);
         b.declare(target_config("lonely", ProbeType::kTcpSyn, {}), AddressFamily::kV4);
       }},
      {"one iteration: counters, ratios, percentiles, buckets on their bounds, ICMP errors, events",
       [=](Both& b) {
         auto web = measurement("web", "g1", ProbeType::kTcpSyn, 7, 3,
                                {0.001, 25e-6, 5, 5.5, 0.0025, 1e-9, 0.3, nan, -1, inf, 0.1 + 0.2});
         web.time_ooo = 2;
         web.late = 3;
         web.duplicates = 4;
         web.icmp_errors = {{"3/13", 2}, {"11/0", 1}};
         auto ping = measurement("ping", "g1", ProbeType::kIcmpPing, 3, 3, {});
         b.record(report_of({web, ping, measurement("udp", "g2", ProbeType::kUdpUnreachable, 0, 0, {})},
                            {TargetEvents{"web", ProbeType::kTcpSyn, AddressFamily::kV4, 5, 6},
                             TargetEvents{"udp", ProbeType::kUdpUnreachable, AddressFamily::kV4, 7, 8},
                             TargetEvents{"ping", ProbeType::kIcmpPing, AddressFamily::kV4, 9, 9}}));
         b.record(report_of({measurement("web", "g1", ProbeType::kTcpSyn, 7, 0, {0.0042, 1.0 / 3})}));
       }},
      {"label values that need escaping",
       [](Both& b) {
         auto t = target_config("we\"b\\x\ny", ProbeType::kTcpSyn, {"g\"1", "g\\2"});
         t.state = "in \"prod\"\n";
         t.threshold.loss = 1e-7;
         b.declare(t, AddressFamily::kV4);
         auto m = measurement("we\"b\\x\ny", "g\\2", ProbeType::kTcpSyn, 1, 0, {0.5}, "in \"prod\"\n");
         m.icmp_errors = {{"3/\"1\"", 1}};
         b.record(report_of({m}));
         b.status("we\"b\\x\ny", AddressFamily::kV4, 1);
       }},
      {"values: thresholds and sums in every float format",
       [](Both& b) {
         auto t = target_config("fmt", ProbeType::kIcmpPing, {"g1"});
         t.threshold.latency = 123456789012345.678;
         t.threshold.loss = 1e20;
         b.declare(t, AddressFamily::kV4);
         auto u = target_config("fmt2", ProbeType::kIcmpPing, {"g1"});
         u.threshold.latency = 1.0 / 3;
         u.threshold.loss = -0.0;
         b.declare(u, AddressFamily::kV6);
         b.record(report_of({measurement("fmt", "g1", ProbeType::kIcmpPing, 3, 1, {1e-5, 2e-5})}));
         for (int i = 0; i < 5; ++i)
           b.record(report_of({measurement("fmt2", "g1", ProbeType::kIcmpPing, 1000000007, 999999937,
                                           {0.1, 0.2, 0.7, 3.3}, "None", AddressFamily::kV6)}));
       }},
      {"host resolution, on declared and undeclared targets",
       [](Both& b) {
         b.declare(target_config("web", ProbeType::kTcpSyn, {"g1"}), AddressFamily::kV4);
         b.status("web", AddressFamily::kV4, 1);
         b.change("web", AddressFamily::kV4);
         b.change("web", AddressFamily::kV4);
         b.status("gone", AddressFamily::kV6, 0);
         b.change("other", AddressFamily::kV4);
       }},
      {"redeclaring: groups left, new state, new type, new address family, alert level",
       [](Both& b) {
         auto t = target_config("web", ProbeType::kTcpSyn, {"g1", "g2"});
         t.threshold.latency = 0.05;
         b.declare(t, AddressFamily::kV4);
         b.status("web", AddressFamily::kV4, 1);
         auto m = measurement("web", "g1", ProbeType::kTcpSyn, 5, 1, {0.001});
         m.time_ooo = 1;
         m.late = 2;
         m.icmp_errors = {{"3/3", 1}};
         b.record(report_of({m}, {TargetEvents{"web", ProbeType::kTcpSyn, AddressFamily::kV4, 1, 1}}));
         t.groups = {"g1"};
         t.alert_level = AlertLevel::kSandbox;
         b.declare(t, AddressFamily::kV4);
         b.expect_same("left g2");
         t.state = "validation";
         b.declare(t, AddressFamily::kV4);  // measurement series restart; time_ooo, late replies count on
         b.expect_same("new state");
         t.type = ProbeType::kUdpUnreachable;
         b.declare(t, AddressFamily::kV4);  // late replies restart too (type label); time_ooo still counts
         b.expect_same("new type");
         t.groups = {};
         b.declare(t, AddressFamily::kV4);
         b.expect_same("no group");
         t.groups = {"g1", "g3"};
         b.declare(t, AddressFamily::kV6);  // everything labelled ipv4 goes, host resolution included
       }},
      {"clearing a target, its measurements, a group",
       [](Both& b) {
         for (const char* name : {"web", "web2", "we"}) {
           auto t = target_config(name, ProbeType::kTcpSyn, {"g1", "g2"});
           t.threshold.loss = 0.2;
           b.declare(t, AddressFamily::kV4);
           b.status(name, AddressFamily::kV4, 1);
           b.record(report_of({measurement(name, "g2", ProbeType::kTcpSyn, 2, 1, {0.01})},
                              {TargetEvents{name, ProbeType::kTcpSyn, AddressFamily::kV4, 1, 0}}));
         }
         b.clear_target("web");
         b.clear_measurements("web2");
         b.expect_same("after clearing");
         b.clear_group("g2");
         b.clear_group("never-seen");
       }},
      {"percentiles: changed, duplicated, none, and the quirk of re-created cleared measurements",
       [](Both& b) {
         b.declare(target_config("web", ProbeType::kIcmpPing, {"g1"}), AddressFamily::kV4);
         b.declare(target_config("quiet", ProbeType::kIcmpPing, {"g1"}), AddressFamily::kV4);
         b.record(report_of({measurement("web", "g1", ProbeType::kIcmpPing, 3, 0, {0.001, 0.002, 0.004})}));
         b.clear_measurements("quiet");
         b.set_percentiles({99, 50, 50});
         b.expect_same("99, 50, 50");
         b.record(report_of({measurement("web", "g1", ProbeType::kIcmpPing, 3, 0, {0.001, 0.002, 0.004})}));
         b.expect_same("recorded with 99, 50");
         b.set_percentiles({});
         b.expect_same("none");
         b.set_percentiles({0, 100});
       }},
      {"a new probe name: everything of the old one goes, declared targets restart at 0",
       [](Both& b) {
         auto t = target_config("web", ProbeType::kTcpSyn, {"g1"});
         t.threshold.latency = 0.5;
         b.declare(t, AddressFamily::kV4);
         b.status("web", AddressFamily::kV4, 1);
         b.status("undeclared", AddressFamily::kV4, 1);
         b.record(report_of({measurement("web", "g1", ProbeType::kTcpSyn, 9, 1, {0.2})}));
         b.record(report_of({measurement("undeclared", "g1", ProbeType::kTcpSyn, 9, 1, {0.2})}));
         b.clear_measurements("web");
         b.set_probe_name("probe\"2");
         b.expect_same("renamed");
         b.set_probe_name("probe\"2");
       }},
  };
  for (const auto& s : scenarios) {
    Both both;
    s.run(both);
    both.expect_same(s.description);
  }
}

// What the supervisor does, at random: reports only for declared targets as declared (it drops the others,
// Supervisor::on_report), every other call with any argument. Compared after every step.
TEST(metrics_TargetSeries, SameExpositionAsPrometheusCppForARandomSupervisor) {
  std::mt19937 rng(20261121);
  auto pick = [&](size_t n) {
    return static_cast<size_t>(std::uniform_int_distribution<size_t>(0, n - 1)(rng));
  };
  auto chance = [&](double p) { return std::uniform_real_distribution<double>(0, 1)(rng) < p; };
  const std::vector<std::string> names = {"a", "b", "ab", "c\"d", "e\\f", "web-01", "web-02", "x\ny"};
  const std::vector<std::string> groups = {"g1", "g2", "g3"};
  const std::vector<std::string> states = {"None", "in production", "validation"};
  const std::vector<ProbeType> types = {ProbeType::kTcpSyn, ProbeType::kIcmpPing, ProbeType::kUdpUnreachable};
  const std::vector<AddressFamily> afs = {AddressFamily::kV4, AddressFamily::kV6};
  const std::vector<double> rtts = {0,     1e-6, 25e-6, 3e-5, 0.001, 0.0012, 0.0025, 0.05,    0.1,
                                    0.123, 0.2,  1,     2.5,  4.9,   5,      7,      1e-3 / 3};

  struct Declared {
    TargetConfig config;
    AddressFamily af;
  };
  std::map<std::string, Declared> declared;
  Both both;
  for (int step = 0; step < 600; ++step) {
    const std::string& name = names[pick(names.size())];
    const size_t op = pick(100);
    std::string what;
    if (op < 25) {
      auto t = target_config(name, types[pick(types.size())], {});
      for (const auto& g : groups)
        if (chance(0.5)) t.groups.push_back(g);
      if (chance(0.7)) t.state = states[pick(states.size())];
      if (chance(0.5)) t.threshold.latency = rtts[pick(rtts.size())];
      if (chance(0.5)) t.threshold.loss = std::uniform_real_distribution<double>(0, 1)(rng);
      t.alert_level = static_cast<AlertLevel>(pick(4));
      const AddressFamily af = chance(0.8) ? AddressFamily::kV4 : AddressFamily::kV6;
      both.declare(t, af);
      declared[name] = Declared{t, af};
      what = "declare " + name;
    } else if (op < 60) {
      IterationReport r;
      for (const auto& [target, d] : declared) {
        if (!chance(0.7)) continue;
        for (const auto& g : d.config.groups) {
          auto m = measurement(target, g, d.config.type, 0, 0, {}, d.config.state_label(), d.af);
          m.sent = pick(6);
          m.lost = pick(m.sent + 1);
          for (uint64_t i = m.lost; i < m.sent; ++i) m.rtts_s.push_back(rtts[pick(rtts.size())]);
          m.time_ooo = pick(2);
          m.late = pick(2);
          m.duplicates = pick(2);
          if (chance(0.2)) m.icmp_errors[chance(0.5) ? "3/13" : "11/0"] = 1 + pick(3);
          r.groups.push_back(m);
        }
        if (chance(0.5)) r.targets.push_back(TargetEvents{target, d.config.type, d.af, pick(3), pick(3)});
      }
      r.capture_received = pick(100);
      r.rejected["foreign"] = pick(3);
      both.record(r);
      what = "record";
    } else if (op < 68) {
      both.clear_target(name);
      declared.erase(name);
      what = "clear_target " + name;
    } else if (op < 76) {
      both.clear_measurements(name);
      what = "clear_measurements " + name;
    } else if (op < 80) {
      const std::string& g = groups[pick(groups.size())];
      both.clear_group(g);
      for (auto& [n, d] : declared) std::erase(d.config.groups, g);
      what = "clear_group " + g;
    } else if (op < 85) {
      std::vector<int> p;
      for (size_t i = pick(4); i > 0; --i) p.push_back(std::vector<int>{50, 90, 95, 99, 100, 0}[pick(6)]);
      both.set_percentiles(p);
      what = "set_percentiles";
    } else if (op < 88) {
      both.set_probe_name(chance(0.5) ? "probe1" : "probe2");
      what = "set_probe_name";
    } else if (op < 95) {
      both.status(name, afs[pick(2)], int(pick(2)));
      what = "status " + name;
    } else {
      both.change(name, afs[pick(2)]);
      what = "change " + name;
    }
    both.expect_same("step " + std::to_string(step) + ": " + what);
    if (::testing::Test::HasFailure()) break;  // the first difference is the informative one
  }
}

// A tiny fixture of ProberMetrics for the rendering tests below: `n` targets with a little of everything.
void populate(ProberMetrics& m, int n) {
  IterationReport r;
  for (int i = 0; i < n; ++i) {
    const std::string name = "target-" + std::to_string(1000 + i);
    auto t = target_config(name, i % 3 == 0 ? ProbeType::kTcpSyn : ProbeType::kIcmpPing, {"g1", "g2"});
    t.threshold.loss = 0.1;
    m.declare_target(t, AddressFamily::kV4);
    m.set_host_resolution_status(name, AddressFamily::kV4, 1);
    r.groups.push_back(measurement(name, "g1", t.type, 10, 1, {0.001, 0.002, 0.0005 * i}));
  }
  m.record(r);
}

TEST(metrics_TargetSeries, RenderingInSlicesGivesTheSameText) {
  auto registry = std::make_shared<prometheus::Registry>();
  ProberMetrics m(registry, "probe1", {95, 50}, "0.1.0");
  populate(m, 50);
  const std::string whole = testing::render_text(*m.target_series());
  ASSERT_EQ(well_formed(whole), "");
  for (size_t flush_at : {size_t(0), size_t(1), size_t(100), size_t(4096), size_t(1) << 20}) {
    std::string out, pieces;
    size_t calls = 0;
    const bool complete = m.target_series()->render(out, flush_at, [&](std::string_view piece) {
      EXPECT_GE(piece.size(), std::max<size_t>(flush_at, 1));
      pieces += piece;
      ++calls;
      return true;
    });
    EXPECT_TRUE(complete);
    EXPECT_LT(out.size(), std::max<size_t>(flush_at, 1)) << "left over above flush_at " << flush_at;
    EXPECT_EQ(pieces + out, whole) << "flush_at " << flush_at;
    if (flush_at == 4096) {
      EXPECT_GE(calls, whole.size() / (4096 + 8192));
    }
  }
}

TEST(metrics_TargetSeries, ASinkCanStopTheRendering) {
  auto registry = std::make_shared<prometheus::Registry>();
  ProberMetrics m(registry, "probe1", {95, 50}, "0.1.0");
  populate(m, 50);
  std::string out;
  size_t calls = 0;
  EXPECT_FALSE(m.target_series()->render(out, 1000, [&](std::string_view) { return ++calls < 2; }));
  EXPECT_EQ(calls, 2u);
}

TEST(metrics_TargetSeries, EmptyTargetsAreForgotten) {
  TargetSeries s("p", {50});
  s.declare(target_config("a", ProbeType::kIcmpPing, {"g"}), AddressFamily::kV4);
  s.set_resolution_status("b", AddressFamily::kV4, 1);
  s.record(measurement("c", "g", ProbeType::kIcmpPing, 1, 0, {0.001}));
  EXPECT_EQ(s.target_count(), 3u);
  s.clear_target("a");
  s.clear_measurements("b");  // keeps its host resolution
  s.clear_measurements("c");  // nothing else: gone
  EXPECT_EQ(s.target_count(), 1u);
  s.set_probe_name("q");  // b's resolution series carried the old name
  EXPECT_EQ(s.target_count(), 0u);
  EXPECT_EQ(testing::render_text(s), "");
}

// A target whose worker died or stalled: its gauges go (stale in Prometheus) instead of repeating the
// last values, its counters and histogram stay (they never go backwards), and a new report brings all back.
TEST(metrics_TargetSeries, AStaleTargetKeepsItsCountersButNotItsGauges) {
  TargetSeries s("p", {50});
  s.declare(target_config("a", ProbeType::kIcmpPing, {"g"}), AddressFamily::kV4);
  s.record(measurement("a", "g", ProbeType::kIcmpPing, 10, 2, {0.001, 0.002}));
  const std::string fresh = testing::render_text(s);
  ASSERT_NE(fresh.find("icmp_loss_ratio{"), std::string::npos);
  ASSERT_NE(fresh.find("icmp_round_trip_seconds{"), std::string::npos);
  s.mark_stale("a");
  s.mark_stale("unknown");  // no effect, no series created
  const std::string stale = testing::render_text(s);
  EXPECT_EQ(stale.find("icmp_loss_ratio{"), std::string::npos) << stale;
  EXPECT_EQ(stale.find("icmp_round_trip_seconds{"), std::string::npos);
  EXPECT_NE(stale.find("icmp_sent_total{"), std::string::npos);
  EXPECT_NE(stale.find("icmp_loss_total{"), std::string::npos);
  EXPECT_NE(stale.find("icmp_rtt_seconds_bucket{"), std::string::npos);
  EXPECT_EQ(s.target_count(), 1u);
  s.record(measurement("a", "g", ProbeType::kIcmpPing, 10, 0, {0.001}));
  const std::string back = testing::render_text(s);
  EXPECT_NE(back.find("icmp_loss_ratio{"), std::string::npos);
  EXPECT_NE(back.find("icmp_round_trip_seconds{"), std::string::npos);
}

// Scrapes beside a writer (run it under ThreadSanitizer, see tests/unit/metrics/CMakeLists.txt): every
// text well formed. Bounded: the writer makes a fixed number of calls, readers stop with it.
TEST(metrics_TargetSeries, ConcurrentScrapesSeeWellFormedText) {
  auto registry = std::make_shared<prometheus::Registry>();
  ProberMetrics m(registry, "probe1", {95, 50}, "0.1.0");
  populate(m, 30);
  testing::expect_well_formed_while(*m.target_series(), 512, [&] {
    for (int i = 0; i < 3000; ++i) {
      const std::string name = "target-" + std::to_string(1000 + i % 40);
      switch (i % 6) {
        case 0:
          m.declare_target(target_config(name, ProbeType::kIcmpPing, {"g1", "g2"}), AddressFamily::kV4);
          break;
        case 1:
          m.record(report_of({measurement(name, "g2", ProbeType::kIcmpPing, 2, 1, {0.001})}));
          break;
        case 2:
          m.clear_target_measurements(name);
          break;
        case 3:
          m.set_host_resolution_status(name, AddressFamily::kV4, i % 2);
          break;
        case 4:
          if (i % 300 == 4) m.set_percentiles(i % 600 == 4 ? std::vector<int>{50} : std::vector<int>{99, 50});
          break;
        case 5:
          if (i % 120 == 5) m.clear_target(name);
          break;
      }
    }
  });
}

}  // namespace
}  // namespace netprobe

namespace netprobe {
namespace {

std::vector<std::string> info_lines(const TargetSeries& s) {
  std::vector<std::string> out;
  for (const auto& l : all_lines(testing::render_text(s)))
    if (l.rfind("netprobe_target_info{", 0) == 0) out.push_back(l);
  return out;
}

// netprobe_target_info: one series per declared target carrying its tags, with the target's lifecycle
// (replaced on a new declaration, kept when only measurements go, gone with the target).
TEST(metrics_TargetSeries, TargetInfoFollowsTheDeclaredTarget) {
  TargetSeries s("p", {50});
  TargetConfig a = target_config("a", ProbeType::kTcpSyn, {"g1", "g2"});
  a.tags = {"db", "web"};
  s.declare(a, AddressFamily::kV4);
  s.declare(target_config("b\"x", ProbeType::kIcmpPing, {}), AddressFamily::kV6);
  EXPECT_EQ(
      info_lines(s),
      (std::vector<std::string>{
          R"(netprobe_target_info{address_family="ipv4",destination="a",probe_name="p",tags="db,web",type="TCPsyn"} 1)",
          R"(netprobe_target_info{address_family="ipv6",destination="b\"x",probe_name="p",tags="",type="ICMPping"} 1)"}));
  const std::string text = testing::render_text(s);
  EXPECT_NE(text.find("# TYPE netprobe_target_info gauge\n"), std::string::npos);
  size_t tags_labels = 0;
  for (size_t at = text.find("tags="); at != std::string::npos; at = text.find("tags=", at + 1))
    ++tags_labels;
  EXPECT_EQ(tags_labels, 2u) << "tags only on the info series";
  a.tags = {"web"};
  s.declare(a, AddressFamily::kV4);
  s.clear_measurements("a");
  s.set_probe_name("q");
  EXPECT_EQ(
      info_lines(s).front(),
      R"(netprobe_target_info{address_family="ipv4",destination="a",probe_name="q",tags="web",type="TCPsyn"} 1)");
  s.clear_target("a");
  s.clear_target("b\"x");
  EXPECT_TRUE(info_lines(s).empty());
}

// The target state families (src/health, docs/alerting.md): per declared target, in label order, kept by
// clear_measurements() and mark_stale(), gone with clear_target().
TEST(metrics_TargetSeries, TargetHealthFamilies) {
  TargetSeries s("p", {50});
  s.declare(target_config("a", ProbeType::kTcpSyn, {"g"}), AddressFamily::kV4);
  TargetHealth h;
  h.failing = true;
  h.consecutive_failures = 4;
  h.changes = 1;
  h.last_change_s = 1700000000;
  HealthSettings settings;
  settings.loss_ratio_above = 0.25;
  settings.rtt_above_s = 0.1;
  settings.rtt_percentile = 99;
  s.set_health("a", h, settings);
  s.set_health("undeclared", h, settings);  // no series until declared
  auto lines_of = [&] {
    std::vector<std::string> out;
    for (const auto& line : all_lines(testing::render_text(s)))
      if (line.rfind("netprobe_target_", 0) == 0 && line.rfind("netprobe_target_info", 0) != 0)
        out.push_back(line);
    return out;
  };
  const std::vector<std::string> expected{
      R"(netprobe_target_failing{address_family="ipv4",destination="a",probe_name="p"} 1)",
      R"(netprobe_target_consecutive_failures{address_family="ipv4",destination="a",probe_name="p"} 4)",
      R"(netprobe_target_consecutive_successes{address_family="ipv4",destination="a",probe_name="p"} 0)",
      R"(netprobe_target_state_changes_total{address_family="ipv4",destination="a",probe_name="p"} 1)",
      R"(netprobe_target_last_change_timestamp_seconds{address_family="ipv4",destination="a",probe_name="p"} 1700000000)",
      R"(netprobe_target_health_threshold{address_family="ipv4",destination="a",probe_name="p",threshold="failing_iterations"} 3)",
      R"(netprobe_target_health_threshold{address_family="ipv4",destination="a",probe_name="p",threshold="loss_ratio"} 0.25)",
      R"(netprobe_target_health_threshold{address_family="ipv4",destination="a",probe_name="p",threshold="passing_iterations"} 3)",
      R"(netprobe_target_health_threshold{address_family="ipv4",destination="a",probe_name="p",threshold="rtt_percentile"} 99)",
      R"(netprobe_target_health_threshold{address_family="ipv4",destination="a",probe_name="p",threshold="rtt_seconds"} 0.1)",
      R"(netprobe_target_health_threshold{address_family="ipv4",destination="a",probe_name="p",threshold="sites"} 2)",
  };
  EXPECT_EQ(lines_of(), expected);
  EXPECT_EQ(well_formed(testing::render_text(s)), "");
  s.mark_stale("a");
  s.clear_measurements("a");
  EXPECT_EQ(lines_of(), expected);
  s.clear_target("a");
  EXPECT_TRUE(lines_of().empty());
}

}  // namespace
}  // namespace netprobe
