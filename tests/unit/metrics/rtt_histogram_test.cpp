// global.rtt_histogram: the granularity of the <type>_rtt_seconds histograms. per_target keeps the label set
// of netprobe's earlier exposition, per_group sums the targets of each (probe type, address family, group),
// none renders no histogram; a change on reload removes the old choice's series and starts the new ones at 0.
// Also what each choice costs per scrape at 2,000 targets (docs/netprobify-compatibility.md#rtt-histogram).
#include <gtest/gtest.h>

#include <atomic>
#include <iostream>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <zlib.h>

#include "metrics/exposition.h"
#include "metrics/prober_metrics.h"
#include "tests/support/metrics_builders.h"
#include "tests/support/metrics_lines.h"

namespace netprobe {
namespace {

using testing::well_formed;

using testing::measurement;
using testing::target_config;

IterationReport report_of(std::vector<GroupMeasurement> groups) {
  IterationReport r;
  r.groups = std::move(groups);
  return r;
}

// RTTs that are binary fractions, so that sums are exact: 2^-18 s = 3.8 us, 2^-17 s = 7.6 us, 2^-10 s = 977
// us.
constexpr double k4us = 1.0 / (1 << 18);
constexpr double k8us = 1.0 / (1 << 17);
constexpr double k1ms = 1.0 / (1 << 10);

std::string value_text(double v) {
  std::string out;
  append_sample_value(out, v);
  return out;
}

// Lines of `text` that contain `needle`.
std::vector<std::string> lines_with(const std::string& text, const std::string& needle) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);)
    if (line.find(needle) != std::string::npos) out.push_back(line);
  return out;
}

class metrics_RttHistogram : public ::testing::Test {
 protected:
  std::string text() { return testing::render_text(*metrics_.target_series()); }
  std::set<std::string> lines() { return testing::sample_lines(text()); }
  bool has(const std::string& line) { return lines().count(line) == 1; }

  std::shared_ptr<prometheus::Registry> registry_ = std::make_shared<prometheus::Registry>();
  ProberMetrics metrics_{registry_, "probe1", {50}, "0.1.0"};
};

const std::string kTcpG1 = R"(address_family="ipv4",group="g1",probe_name="probe1")";
const std::string kTcpG2 = R"(address_family="ipv4",group="g2",probe_name="probe1")";

TEST_F(metrics_RttHistogram, PerGroupSumsTheTargetsOfEachGroup) {
  metrics_.set_rtt_histogram(RttHistogram::kPerGroup);
  metrics_.declare_target(target_config("web", ProbeType::kTcpSyn, {"g1", "g2"}), AddressFamily::kV4);
  metrics_.declare_target(target_config("db", ProbeType::kTcpSyn, {"g1", "g2"}), AddressFamily::kV4);
  metrics_.declare_target(target_config("ping", ProbeType::kIcmpPing, {"g1"}), AddressFamily::kV6);
  // Declared: the histograms exist at 0 before the first iteration, as the per-target ones do.
  EXPECT_TRUE(has("tcpsyn_rtt_seconds_count{" + kTcpG1 + "} 0"));
  EXPECT_TRUE(has("tcpsyn_rtt_seconds_bucket{" + kTcpG2 + R"(,le="+Inf"} 0)"));
  EXPECT_TRUE(has(R"(icmp_rtt_seconds_count{address_family="ipv6",group="g1",probe_name="probe1"} 0)"));

  metrics_.record(
      report_of({measurement("web", "g1", ProbeType::kTcpSyn, 3, 1, {k1ms, k4us}),
                 measurement("db", "g1", ProbeType::kTcpSyn, 1, 0, {k8us}),
                 measurement("web", "g2", ProbeType::kTcpSyn, 1, 0, {k1ms}),
                 measurement("db", "g2", ProbeType::kTcpSyn, 1, 1, {}),
                 measurement("ping", "g1", ProbeType::kIcmpPing, 1, 0, {k8us}, "None", AddressFamily::kV6)}));
  const std::string t = text();
  EXPECT_EQ(well_formed(t), "");
  const auto l = testing::sample_lines(t);
  EXPECT_TRUE(l.count("tcpsyn_rtt_seconds_count{" + kTcpG1 + "} 3"));
  EXPECT_TRUE(l.count("tcpsyn_rtt_seconds_sum{" + kTcpG1 + "} " + value_text(k4us + k1ms + k8us)));
  EXPECT_TRUE(l.count("tcpsyn_rtt_seconds_bucket{" + kTcpG1 + R"(,le="2.5e-06"} 0)"));
  EXPECT_TRUE(l.count("tcpsyn_rtt_seconds_bucket{" + kTcpG1 + R"(,le="5e-06"} 1)"));
  EXPECT_TRUE(l.count("tcpsyn_rtt_seconds_bucket{" + kTcpG1 + R"(,le="1e-05"} 2)"));
  EXPECT_TRUE(l.count("tcpsyn_rtt_seconds_bucket{" + kTcpG1 + R"(,le="0.0005"} 2)"));
  EXPECT_TRUE(l.count("tcpsyn_rtt_seconds_bucket{" + kTcpG1 + R"(,le="0.001"} 3)"));
  EXPECT_TRUE(l.count("tcpsyn_rtt_seconds_bucket{" + kTcpG1 + R"(,le="+Inf"} 3)"));
  EXPECT_TRUE(l.count("tcpsyn_rtt_seconds_count{" + kTcpG2 + "} 1"));
  EXPECT_TRUE(l.count("tcpsyn_rtt_seconds_sum{" + kTcpG2 + "} " + value_text(k1ms)));
  EXPECT_TRUE(l.count(
      R"(icmp_rtt_seconds_bucket{address_family="ipv6",group="g1",probe_name="probe1",le="1e-05"} 1)"));
  // Three histograms of 20 lines (count, sum, 17 bounds and +Inf), none with a destination or state.
  EXPECT_EQ(lines_with(t, "_rtt_seconds_").size(), 3u * 20u);
  for (const auto& line : lines_with(t, "_rtt_seconds_")) {
    EXPECT_EQ(line.find("destination="), std::string::npos) << line;
    EXPECT_EQ(line.find("state="), std::string::npos) << line;
  }
  EXPECT_EQ(t.find("# TYPE tcpsyn_rtt_seconds histogram\n"),
            t.rfind("# TYPE tcpsyn_rtt_seconds histogram\n"));
  EXPECT_NE(t.find("# TYPE tcpsyn_rtt_seconds histogram\n"), std::string::npos);
  // The other families stay per target.
  EXPECT_TRUE(l.count(
      R"(tcpsyn_sent_total{address_family="ipv4",destination="web",group="g1",probe_name="probe1",state="None"} 3)"));

  // A target that leaves takes none of its counts back (counters never go backwards); a removed group's
  // histograms go.
  metrics_.clear_target("web");
  metrics_.clear_target_measurements("db");
  EXPECT_TRUE(has("tcpsyn_rtt_seconds_count{" + kTcpG1 + "} 3"));
  metrics_.clear_group("g2");
  EXPECT_TRUE(has("tcpsyn_rtt_seconds_count{" + kTcpG1 + "} 3"));
  EXPECT_TRUE(lines_with(text(), kTcpG2).empty());
  // A new probe name: every series of the old one goes, declared targets' histograms restart at 0.
  metrics_.set_probe_name("probe2");
  EXPECT_TRUE(lines_with(text(), "probe1").empty());
  EXPECT_TRUE(has(R"(icmp_rtt_seconds_count{address_family="ipv6",group="g1",probe_name="probe2"} 0)"));
  // ping's, and db's: its measurements were cleared but it is still declared (set_probe_name recreates the
  // series of declared targets, target_series.h); web is gone.
  EXPECT_EQ(lines_with(text(), "_rtt_seconds_").size(), 2u * 20u);
  EXPECT_TRUE(has(R"(tcpsyn_rtt_seconds_count{address_family="ipv4",group="g1",probe_name="probe2"} 0)"));
}

// per_target is the exposition of netprobe before the key existed (target_series_test compares it with the
// prometheus-cpp one): the same text as a ProberMetrics never told about the key, after any detour.
TEST_F(metrics_RttHistogram, PerTargetKeepsTheEarlierExposition) {
  auto other_registry = std::make_shared<prometheus::Registry>();
  ProberMetrics reference(other_registry, "probe1", {50}, "0.1.0");
  metrics_.set_rtt_histogram(RttHistogram::kPerGroup);
  metrics_.set_rtt_histogram(RttHistogram::kNone);
  metrics_.set_rtt_histogram(RttHistogram::kPerTarget);
  for (ProberMetrics* m : {&metrics_, &reference}) {
    m->declare_target(target_config("web", ProbeType::kTcpSyn, {"g1", "g2"}), AddressFamily::kV4);
    m->record(report_of({measurement("web", "g1", ProbeType::kTcpSyn, 3, 0, {k1ms, k4us, 0.3}),
                         measurement("web", "g2", ProbeType::kTcpSyn, 1, 0, {k8us})}));
  }
  const std::string t = text();
  EXPECT_EQ(t, testing::render_text(*reference.target_series()));
  EXPECT_EQ(well_formed(t), "");
  EXPECT_EQ(lines_with(t, "_rtt_seconds_").size(), 2u * 20u);
  EXPECT_TRUE(testing::sample_lines(t).count(
      R"(tcpsyn_rtt_seconds_bucket{address_family="ipv4",destination="web",group="g1",probe_name="probe1",state="None",le="5e-06"} 1)"));
}

TEST_F(metrics_RttHistogram, NoneRendersNoHistogramAndChangesNothingElse) {
  auto other_registry = std::make_shared<prometheus::Registry>();
  ProberMetrics reference(other_registry, "probe1", {50}, "0.1.0");
  metrics_.set_rtt_histogram(RttHistogram::kNone);
  for (ProberMetrics* m : {&metrics_, &reference}) {
    m->declare_target(target_config("web", ProbeType::kUdpUnreachable, {"g1"}), AddressFamily::kV4);
    m->declare_target(target_config("ping", ProbeType::kIcmpPing, {"g1", "g2"}), AddressFamily::kV4);
    m->record(report_of({measurement("web", "g1", ProbeType::kUdpUnreachable, 3, 1, {k1ms, k4us}),
                         measurement("ping", "g2", ProbeType::kIcmpPing, 2, 0, {k8us, 0.01})}));
  }
  const std::string t = text();
  EXPECT_EQ(t.find("_rtt_seconds"), std::string::npos) << t;
  std::string without_histograms;
  std::istringstream in(testing::render_text(*reference.target_series()));
  for (std::string line; std::getline(in, line);)
    if (line.find("_rtt_seconds") == std::string::npos) without_histograms += line + "\n";
  EXPECT_EQ(t, without_histograms);
}

// A reload that changes the key: the old choice's series disappear at once, the new choice's start at 0
// (never from counts kept from an earlier period under it), and while a choice stays its counters only grow.
TEST_F(metrics_RttHistogram, SwitchingOnReload) {
  const std::string web_g1 =
      R"(address_family="ipv4",destination="web",group="g1",probe_name="probe1",state="None")";
  metrics_.declare_target(target_config("web", ProbeType::kTcpSyn, {"g1"}), AddressFamily::kV4);
  metrics_.declare_target(target_config("db", ProbeType::kTcpSyn, {"g1"}), AddressFamily::kV4);
  auto iteration = [&] {
    metrics_.record(report_of({measurement("web", "g1", ProbeType::kTcpSyn, 2, 0, {k4us, k8us}),
                               measurement("db", "g1", ProbeType::kTcpSyn, 1, 0, {k1ms})}));
  };
  metrics_.set_rtt_histogram(RttHistogram::kPerTarget);
  iteration();
  EXPECT_TRUE(has("tcpsyn_rtt_seconds_count{" + web_g1 + "} 2"));

  metrics_.set_rtt_histogram(RttHistogram::kPerGroup);
  EXPECT_TRUE(lines_with(text(), "destination=\"web\",group=\"g1\",probe_name=\"probe1\",state=\"None\",le=")
                  .empty());
  EXPECT_EQ(lines_with(text(), "_rtt_seconds_").size(), 20u);
  EXPECT_TRUE(has("tcpsyn_rtt_seconds_count{" + kTcpG1 + "} 0"));
  iteration();
  EXPECT_TRUE(has("tcpsyn_rtt_seconds_count{" + kTcpG1 + "} 3"));
  metrics_.set_rtt_histogram(RttHistogram::kPerGroup);  // unchanged on reload: nothing restarts
  iteration();
  EXPECT_TRUE(has("tcpsyn_rtt_seconds_count{" + kTcpG1 + "} 6"));
  EXPECT_TRUE(has("tcpsyn_rtt_seconds_bucket{" + kTcpG1 + R"(,le="1e-05"} 4)"));

  metrics_.set_rtt_histogram(RttHistogram::kNone);
  EXPECT_TRUE(lines_with(text(), "_rtt_seconds").empty());
  iteration();
  EXPECT_TRUE(lines_with(text(), "_rtt_seconds").empty());
  EXPECT_TRUE(has(R"(tcpsyn_sent_total{)" + web_g1 + "} 8"));  // the rest went on counting

  metrics_.set_rtt_histogram(RttHistogram::kPerTarget);  // not the 2 counted before the detour
  EXPECT_TRUE(has("tcpsyn_rtt_seconds_count{" + web_g1 + "} 0"));
  EXPECT_TRUE(has("tcpsyn_rtt_seconds_sum{" + web_g1 + "} 0"));
  EXPECT_TRUE(lines_with(text(), kTcpG1).empty());
  iteration();
  EXPECT_TRUE(has("tcpsyn_rtt_seconds_count{" + web_g1 + "} 2"));
  metrics_.set_rtt_histogram(RttHistogram::kPerGroup);  // nor the 6 of the earlier per_group period
  EXPECT_TRUE(has("tcpsyn_rtt_seconds_count{" + kTcpG1 + "} 0"));
  EXPECT_EQ(well_formed(text()), "");
}

// The per_group histograms render in slices too (render() holds the lock one slice at a time): the same text
// whatever the slice size, with many groups.
TEST_F(metrics_RttHistogram, PerGroupRendersInSlices) {
  metrics_.set_rtt_histogram(RttHistogram::kPerGroup);
  std::vector<std::string> groups;
  for (int g = 0; g < 200; ++g) groups.push_back("g" + std::to_string(g));
  IterationReport r;
  for (ProbeType type : {ProbeType::kTcpSyn, ProbeType::kIcmpPing, ProbeType::kUdpUnreachable}) {
    for (AddressFamily af : {AddressFamily::kV4, AddressFamily::kV6}) {
      const std::string name = std::string(metric_prefix(type)) + (af == AddressFamily::kV4 ? "4" : "6");
      metrics_.declare_target(target_config(name, type, groups), af);
      for (size_t g = 0; g < groups.size(); g += 3)
        r.groups.push_back(measurement(name, groups[g], type, 1, 0, {k4us * double(g + 1)}, "None", af));
    }
  }
  metrics_.record(r);
  const std::string whole = text();
  ASSERT_EQ(well_formed(whole), "");
  EXPECT_EQ(lines_with(whole, "_rtt_seconds_").size(), 3u * 2u * 200u * 20u);
  for (size_t flush_at : {size_t(0), size_t(1), size_t(100), size_t(4096), size_t(1) << 20}) {
    std::string out, pieces;
    EXPECT_TRUE(metrics_.target_series()->render(out, flush_at, [&](std::string_view piece) {
      pieces += piece;
      return true;
    }));
    EXPECT_EQ(pieces + out, whole) << "flush_at " << flush_at;
  }
  std::string out;
  size_t calls = 0;
  const size_t to_histograms = whole.find("_rtt_seconds") / 4096 + 2;  // stop inside the aggregate pass
  EXPECT_FALSE(
      metrics_.target_series()->render(out, 4096, [&](std::string_view) { return ++calls < to_histograms; }));
  EXPECT_EQ(calls, to_histograms);
}

// Scrapes beside a supervisor that changes the key: every text well formed (a family rendered per target
// before the change is not rendered per group after it). Bounded: the writer makes a fixed number of calls.
TEST_F(metrics_RttHistogram, ConcurrentScrapesWhileSwitching) {
  const RttHistogram choices[] = {RttHistogram::kPerGroup, RttHistogram::kPerTarget, RttHistogram::kNone};
  testing::expect_well_formed_while(*metrics_.target_series(), 256, [&] {
    for (int i = 0; i < 3000; ++i) {
      const std::string name = "target-" + std::to_string(1000 + i % 40);
      const std::string group = "g" + std::to_string(i % 7);
      switch (i % 5) {
        case 0:
          metrics_.declare_target(target_config(name, ProbeType::kIcmpPing, {group, "g0"}),
                                  AddressFamily::kV4);
          break;
        case 1:
        case 2:
          metrics_.record(report_of({measurement(name, "g0", ProbeType::kIcmpPing, 2, 1, {k4us})}));
          break;
        case 3:
          if (i % 50 == 3) metrics_.set_rtt_histogram(choices[(i / 50) % 3]);
          break;
        case 4:
          if (i % 200 == 4) metrics_.clear_group(group);
          break;
      }
    }
  });
}

// What each choice costs: 2,000 targets (a third of each probe type, IPv4) in 1 or 2 groups, percentiles 95
// and 50. per_group costs the same whatever the number of targets; the figures go to the test's output (and
// docs/netprobify-compatibility.md#rtt-histogram).
TEST(metrics_RttHistogramCost, SeriesAndBytesPerScrape) {
  struct Cost {
    size_t lines = 0, bytes = 0, histogram_lines = 0, compressed = 0;
  };
  auto cost = [](RttHistogram choice, int targets, const std::vector<std::string>& groups) {
    auto registry = std::make_shared<prometheus::Registry>();
    ProberMetrics m(registry, "par1-tor01", {95, 50}, "0.1.0");
    m.set_rtt_histogram(choice);
    IterationReport r;
    const ProbeType types[] = {ProbeType::kTcpSyn, ProbeType::kIcmpPing, ProbeType::kUdpUnreachable};
    for (int i = 0; i < targets; ++i) {
      const std::string name = "fullmesh_tor" + std::to_string(10000 + i) + ".dc1.example.net";
      const ProbeType type = types[i % 3];
      auto t = target_config(name, type, groups);
      t.threshold.loss = 0.05;
      m.declare_target(t, AddressFamily::kV4);
      for (const auto& g : groups)
        r.groups.push_back(
            measurement(name, g, type, 20, 1, std::vector<double>(19, 40e-6 + 1e-6 * (i % 50))));
    }
    m.record(r);
    const std::string text = testing::exposition_text(*registry, *m.target_series());
    Cost c;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) {
      if (line.empty() || line[0] == '#') continue;
      ++c.lines;
      if (line.find("_rtt_seconds_") != std::string::npos) ++c.histogram_lines;
    }
    c.bytes = text.size();
    // What a Prometheus server receives: /metrics is deflated at zlib's default level (exporter.cpp).
    uLongf size = compressBound(uLong(text.size()));
    std::vector<Bytef> packed(size);
    if (compress2(packed.data(), &size, reinterpret_cast<const Bytef*>(text.data()), uLong(text.size()),
                  Z_DEFAULT_COMPRESSION) == Z_OK)
      c.compressed = size;
    return c;
  };
  for (const std::vector<std::string>& groups :
       {std::vector<std::string>{"transit1"}, std::vector<std::string>{"transit1", "transit2"}}) {
    const size_t n = groups.size();
    for (RttHistogram choice : {RttHistogram::kPerTarget, RttHistogram::kPerGroup, RttHistogram::kNone}) {
      const Cost big = cost(choice, 2000, groups);
      const Cost small = cost(choice, 20, groups);
      std::cout << "rtt_histogram " << to_string(choice) << ", 2000 targets x " << n
                << " group(s): " << big.lines << " series (" << big.histogram_lines << " of histograms), "
                << big.bytes << " bytes per scrape, " << big.compressed << " deflated\n";
      switch (choice) {
        case RttHistogram::kPerTarget:
          EXPECT_EQ(big.histogram_lines, 2000u * n * 20u);
          break;
        case RttHistogram::kPerGroup:
          EXPECT_EQ(big.histogram_lines, 3u * n * 20u);  // 3 probe types x the groups
          EXPECT_EQ(big.histogram_lines, small.histogram_lines);
          break;
        case RttHistogram::kNone:
          EXPECT_EQ(big.histogram_lines, 0u);
          break;
      }
    }
  }
}

}  // namespace
}  // namespace netprobe
