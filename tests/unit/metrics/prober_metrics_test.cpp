// ProberMetrics rendered as /metrics serves it (its registry with prometheus-cpp's TextSerializer, then its
// target_series()): the exact series lines netprobify's dashboards query (names, label sets, values), and
// the clearing rules of docs/netprobify-compatibility.md#metrics.
// Suites of this folder are named metrics_* so that `ctest -R metrics` selects them.
#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <sstream>
#include <string>

#include <prometheus/text_serializer.h>

#include "io/packet_io.h"
#include "metrics/prober_metrics.h"
#include "tests/support/metrics_builders.h"
#include "tests/support/metrics_lines.h"

namespace netprobe {
namespace {

using testing::measurement;
using testing::target_config;

// Lines whose metric name (up to '{' or ' ') is `name`.
std::set<std::string> series_of(const std::set<std::string>& lines, const std::string& name) {
  std::set<std::string> out;
  for (const auto& l : lines) {
    if (l.compare(0, name.size(), name) == 0 && (l[name.size()] == '{' || l[name.size()] == ' '))
      out.insert(l);
  }
  return out;
}

bool has_line_containing(const std::set<std::string>& lines, const std::string& needle) {
  for (const auto& l : lines) {
    if (l.find(needle) != std::string::npos) return true;
  }
  return false;
}

class metrics_ProberMetrics : public ::testing::Test {
 protected:
  std::set<std::string> scrape() { return testing::sample_lines(*registry_, *metrics_.target_series()); }

  std::shared_ptr<prometheus::Registry> registry_ = std::make_shared<prometheus::Registry>();
  ProberMetrics metrics_{registry_, "probe1", {95, 50}, "0.1.0"};
};

TEST_F(metrics_ProberMetrics, ProcessWideSeriesExistFromTheStart) {
  const auto lines = scrape();
  EXPECT_TRUE(lines.count(R"(netprobe_info{version="0.1.0"} 1)"));
  EXPECT_TRUE(lines.count(R"(netprobify_info{scapy_version="none",version="0.1.0"} 1)"));
  EXPECT_TRUE(lines.count(R"(app_reload_conf_failed_status{probe_name="probe1"} 0)"));
  EXPECT_TRUE(lines.count(R"(app_process_timed_out_total{probe_name="probe1"} 0)"));
  EXPECT_TRUE(lines.count(R"(netprobe_capture_packets_received_total{probe_name="probe1"} 0)"));
  EXPECT_TRUE(lines.count(R"(netprobe_send_errors_total{probe_name="probe1",reason="permission"} 0)"));
  EXPECT_TRUE(
      lines.count(R"(netprobe_capture_packets_dropped_total{probe_name="probe1",source="kernel"} 0)"));
}

TEST_F(metrics_ProberMetrics, CountersRenderWithNetprobifyNamesAndTypes) {
  IterationReport report;
  report.groups.push_back(measurement("web", "g1", ProbeType::kTcpSyn, 4, 1, {0.001, 0.002, 0.003}));
  metrics_.record(report);
  const std::string text = testing::exposition_text(*registry_, *metrics_.target_series());
  // prometheus_client's form: the counter family's TYPE line carries the _total name.
  EXPECT_NE(text.find("# TYPE tcpsyn_sent_total counter\n"), std::string::npos);
  EXPECT_NE(text.find("# TYPE tcpsyn_loss_total counter\n"), std::string::npos);
  EXPECT_NE(text.find("# TYPE tcpsyn_loss_ratio gauge\n"), std::string::npos);
  EXPECT_NE(text.find("# TYPE tcpsyn_round_trip_seconds gauge\n"), std::string::npos);
  EXPECT_NE(text.find("# TYPE tcpsyn_rtt_seconds histogram\n"), std::string::npos);
  EXPECT_NE(text.find("# TYPE app_time_ooo_total counter\n"), std::string::npos);
  EXPECT_EQ(text.find("_total_total"), std::string::npos);
}

TEST_F(metrics_ProberMetrics, RecordsOneIterationExactly) {
  IterationReport report;
  auto tcp = measurement("web", "g1", ProbeType::kTcpSyn, 4, 1, {0.003, 0.001, 0.002});
  tcp.time_ooo = 2;
  tcp.late = 3;
  tcp.duplicates = 5;
  tcp.icmp_errors["3/13"] = 1;
  report.groups.push_back(tcp);
  auto icmp = measurement("pinger", "g2", ProbeType::kIcmpPing, 2, 2, {});
  icmp.af = AddressFamily::kV6;
  icmp.state = "in production";
  report.groups.push_back(icmp);
  report.groups.push_back(measurement("udp", "g1", ProbeType::kUdpUnreachable, 0, 0, {}));
  report.targets.push_back(TargetEvents{"web", ProbeType::kTcpSyn, AddressFamily::kV4, 2, 1});
  report.targets.push_back(TargetEvents{"udp", ProbeType::kUdpUnreachable, AddressFamily::kV4, 7, 3});
  report.duration_s = 1.5;
  report.capture_received = 10;
  report.send_errors = {{"unreachable", 3}, {"cut_short", 2}};
  report.capture_dropped = 1;
  report.rejected["foreign"] = 4;
  metrics_.record(report);
  const auto lines = scrape();

  const std::string m5 =
      R"(address_family="ipv4",destination="web",group="g1",probe_name="probe1",state="None")";
  EXPECT_TRUE(lines.count("tcpsyn_sent_total{" + m5 + "} 4"));
  EXPECT_TRUE(lines.count("tcpsyn_loss_total{" + m5 + "} 1"));
  EXPECT_TRUE(lines.count("tcpsyn_loss_ratio{" + m5 + "} 0.25"));
  const std::string m5_head = R"(address_family="ipv4",destination="web",group="g1",percentile=)";
  EXPECT_TRUE(lines.count("tcpsyn_round_trip_seconds{" + m5_head +
                          R"("95",probe_name="probe1",state="None"} 0.0029)"));
  EXPECT_TRUE(lines.count("tcpsyn_round_trip_seconds{" + m5_head +
                          R"("50",probe_name="probe1",state="None"} 0.002)"));
  EXPECT_EQ(series_of(lines, "tcpsyn_round_trip_seconds").size(), 2u);
  EXPECT_TRUE(lines.count("tcpsyn_rtt_seconds_count{" + m5 + "} 3"));
  EXPECT_TRUE(lines.count("tcpsyn_rtt_seconds_bucket{" + m5 + R"(,le="0.0005"} 0)"));
  EXPECT_TRUE(lines.count("tcpsyn_rtt_seconds_bucket{" + m5 + R"(,le="0.001"} 1)"));
  EXPECT_TRUE(lines.count("tcpsyn_rtt_seconds_bucket{" + m5 + R"(,le="0.0025"} 2)"));
  EXPECT_TRUE(lines.count("tcpsyn_rtt_seconds_bucket{" + m5 + R"(,le="0.005"} 3)"));
  EXPECT_TRUE(lines.count("tcpsyn_rtt_seconds_bucket{" + m5 + R"(,le="+Inf"} 3)"));
  EXPECT_EQ(series_of(lines, "tcpsyn_rtt_seconds_bucket").size(), 18u);  // 17 bounds + Inf
  EXPECT_TRUE(lines.count(
      R"(tcpsyn_icmp_errors_total{address_family="ipv4",destination="web",group="g1",icmp="3/13",probe_name="probe1",state="None"} 1)"));
  EXPECT_TRUE(lines.count(
      R"(app_time_ooo_total{address_family="ipv4",destination="web",group="g1",probe_name="probe1"} 2)"));
  EXPECT_TRUE(lines.count(
      R"(netprobe_late_replies_total{address_family="ipv4",destination="web",group="g1",probe_name="probe1",type="TCPsyn"} 3)"));
  EXPECT_TRUE(lines.count(
      R"(netprobe_duplicate_replies_total{address_family="ipv4",destination="web",group="g1",probe_name="probe1",type="TCPsyn"} 5)"));
  EXPECT_TRUE(lines.count(
      R"(tcpsyn_match_ack_fail_count{address_family="ipv4",destination="web",probe_name="probe1"} 2)"));
  EXPECT_TRUE(lines.count(
      R"(tcpsyn_port_mismatch_count{address_family="ipv4",destination="web",probe_name="probe1"} 1)"));
  // UDP has no match_ack_fail family in netprobify; ICMP has neither.
  EXPECT_TRUE(lines.count(
      R"(udp_unreachable_port_mismatch_count{address_family="ipv4",destination="udp",probe_name="probe1"} 3)"));
  EXPECT_FALSE(has_line_containing(lines, "udp_unreachable_match_ack_fail"));
  EXPECT_FALSE(has_line_containing(lines, "icmp_port_mismatch"));

  // 100% loss: RTT percentiles are 0, not NaN (docs/netprobify-compatibility.md#q2-rtt-zero); IPv6 and
  // an explicit state label.
  const std::string icmp_m5 =
      R"(address_family="ipv6",destination="pinger",group="g2",probe_name="probe1",state="in production")";
  EXPECT_TRUE(lines.count("icmp_sent_total{" + icmp_m5 + "} 2"));
  EXPECT_TRUE(lines.count("icmp_loss_total{" + icmp_m5 + "} 2"));
  EXPECT_TRUE(lines.count("icmp_loss_ratio{" + icmp_m5 + "} 1"));
  EXPECT_TRUE(lines.count(
      R"(icmp_round_trip_seconds{address_family="ipv6",destination="pinger",group="g2",percentile="95",probe_name="probe1",state="in production"} 0)"));
  EXPECT_TRUE(lines.count("icmp_rtt_seconds_count{" + icmp_m5 + "} 0"));

  // Nothing sent: ratio 0, not NaN.
  EXPECT_TRUE(lines.count(
      R"(udp_unreachable_loss_ratio{address_family="ipv4",destination="udp",group="g1",probe_name="probe1",state="None"} 0)"));

  EXPECT_TRUE(lines.count(R"(app_iteration_time_seconds{probe_name="probe1"} 1.5)"));
  EXPECT_TRUE(lines.count(R"(netprobe_capture_packets_received_total{probe_name="probe1"} 10)"));
  EXPECT_TRUE(lines.count(R"(netprobe_send_errors_total{probe_name="probe1",reason="unreachable"} 3)"));
  EXPECT_TRUE(lines.count(R"(netprobe_send_errors_total{probe_name="probe1",reason="cut_short"} 2)"));
  EXPECT_TRUE(lines.count(R"(netprobe_send_errors_total{probe_name="probe1",reason="no_buffer"} 0)"));
  EXPECT_TRUE(
      lines.count(R"(netprobe_capture_packets_dropped_total{probe_name="probe1",source="kernel"} 1)"));
  EXPECT_TRUE(
      lines.count(R"(netprobe_capture_packets_dropped_total{probe_name="probe1",source="interface"} 0)"));
  EXPECT_TRUE(lines.count(R"(netprobe_capture_rejected_total{probe_name="probe1",reason="foreign"} 4)"));
  for (const auto& l : lines) EXPECT_EQ(l.find("nan"), std::string::npos) << l;
}

// The buckets resolve a datacenter (docs/netprobify-compatibility.md#rtt-buckets): veth and intra-rack
// RTTs of a few microseconds land in buckets of their own, not in the first one (which would read every
// percentile as half its bound), and WAN RTTs of seconds still have a bound.
// netprobify's app_iteration_time_seconds is "time to finish one round of probing" (its README alerts when
// it exceeds 90 s): with workers probing in parallel, the slowest worker's latest iteration, not whichever
// reported last; netprobe_iteration_send_seconds the same for the send windows.
TEST_F(metrics_ProberMetrics, IterationTimeIsTheSlowestWorkersRound) {
  IterationReport r;
  r.duration_s = 95;
  r.send_window_s = 24;
  metrics_.record(r, 1);
  r.duration_s = 12;  // worker 0 reports last, faster: the round still takes 95 s
  r.send_window_s = 8;
  metrics_.record(r, 0);
  auto lines = scrape();
  EXPECT_TRUE(lines.count(R"(app_iteration_time_seconds{probe_name="probe1"} 95)"));
  EXPECT_TRUE(lines.count(R"(netprobe_iteration_send_seconds{probe_name="probe1"} 24)"));
  r.duration_s = 30;  // worker 1 got faster
  r.send_window_s = 7;
  metrics_.record(r, 1);
  lines = scrape();
  EXPECT_TRUE(lines.count(R"(app_iteration_time_seconds{probe_name="probe1"} 30)"));
  EXPECT_TRUE(lines.count(R"(netprobe_iteration_send_seconds{probe_name="probe1"} 8)"));
  metrics_.set_interval(60);
  EXPECT_TRUE(scrape().count(R"(netprobe_interval_seconds{probe_name="probe1"} 60)"));
  metrics_.set_worker_count(1);  // worker 1 is gone: only worker 0's round counts
  lines = scrape();
  EXPECT_TRUE(lines.count(R"(app_iteration_time_seconds{probe_name="probe1"} 12)"));
  EXPECT_TRUE(lines.count(R"(netprobe_iteration_send_seconds{probe_name="probe1"} 8)"));
}

TEST_F(metrics_ProberMetrics, RttBucketsResolveMicroseconds) {
  const auto& bounds = rtt_buckets();
  ASSERT_FALSE(bounds.empty());
  EXPECT_TRUE(std::is_sorted(bounds.begin(), bounds.end()));
  EXPECT_EQ(std::adjacent_find(bounds.begin(), bounds.end()), bounds.end());
  EXPECT_LE(bounds.front(), 3e-6);
  EXPECT_GE(bounds.back(), 2.0);
  EXPECT_LE(bounds.size(), 17u);  // no more series than before
  for (size_t i = 1; i < bounds.size(); ++i) EXPECT_LE(bounds[i] / bounds[i - 1], 3.34) << bounds[i];

  IterationReport report;
  report.groups.push_back(
      measurement("veth", "g1", ProbeType::kIcmpPing, 6, 0, {3e-6, 5e-6, 5e-6, 9e-6, 40e-6, 300e-6}));
  metrics_.record(report);
  const auto lines = scrape();
  const std::string m5 =
      R"(address_family="ipv4",destination="veth",group="g1",probe_name="probe1",state="None")";
  auto bucket = [&](const std::string& le, int count) {
    return lines.count("icmp_rtt_seconds_bucket{" + m5 + ",le=\"" + le + "\"} " + std::to_string(count)) == 1;
  };
  EXPECT_TRUE(bucket("2.5e-06", 0));  // the catch-all below a few microseconds holds nothing
  EXPECT_TRUE(bucket("5e-06", 3));    // a 5 us RTT is in (2.5 us, 5 us]
  EXPECT_TRUE(bucket("1e-05", 4));
  EXPECT_TRUE(bucket("5e-05", 5));
  EXPECT_TRUE(bucket("0.0005", 6));
  EXPECT_TRUE(bucket("+Inf", 6));
  EXPECT_EQ(series_of(lines, "icmp_rtt_seconds_bucket").size(), bounds.size() + 1);
}

TEST_F(metrics_ProberMetrics, RatioIsLastIterationWhileTotalsAccumulate) {
  IterationReport first;
  first.groups.push_back(measurement("web", "g1", ProbeType::kTcpSyn, 10, 5, {0.001}));
  first.targets.push_back(TargetEvents{"web", ProbeType::kTcpSyn, AddressFamily::kV4, 1, 0});
  metrics_.record(first);
  IterationReport second;
  second.groups.push_back(measurement("web", "g1", ProbeType::kTcpSyn, 10, 0, {}));
  second.targets.push_back(TargetEvents{"web", ProbeType::kTcpSyn, AddressFamily::kV4, 1, 0});
  metrics_.record(second);
  const auto lines = scrape();
  const std::string m5 =
      R"(address_family="ipv4",destination="web",group="g1",probe_name="probe1",state="None")";
  EXPECT_TRUE(lines.count("tcpsyn_sent_total{" + m5 + "} 20"));
  EXPECT_TRUE(lines.count("tcpsyn_loss_total{" + m5 + "} 5"));
  EXPECT_TRUE(lines.count("tcpsyn_loss_ratio{" + m5 + "} 0"));
  // The second iteration had no sample: the percentile gauge goes back to 0 (netprobify's behaviour),
  // while the histogram keeps the first iteration's sample.
  EXPECT_TRUE(lines.count(
      R"(tcpsyn_round_trip_seconds{address_family="ipv4",destination="web",group="g1",percentile="50",probe_name="probe1",state="None"} 0)"));
  EXPECT_TRUE(lines.count("tcpsyn_rtt_seconds_count{" + m5 + "} 1"));
  EXPECT_TRUE(lines.count(
      R"(tcpsyn_match_ack_fail_count{address_family="ipv4",destination="web",probe_name="probe1"} 2)"));
}

TEST_F(metrics_ProberMetrics, EventsCountedOncePerTargetNotPerGroup) {
  IterationReport report;
  report.groups.push_back(measurement("web", "g1", ProbeType::kTcpSyn, 1, 0, {0.001}));
  report.groups.push_back(measurement("web", "g2", ProbeType::kTcpSyn, 1, 0, {0.001}));
  report.targets.push_back(TargetEvents{"web", ProbeType::kTcpSyn, AddressFamily::kV4, 3, 0});
  metrics_.record(report);
  EXPECT_TRUE(scrape().count(
      R"(tcpsyn_match_ack_fail_count{address_family="ipv4",destination="web",probe_name="probe1"} 3)"));
}

TEST_F(metrics_ProberMetrics, DeclareTargetCreatesZeroSeriesAndThresholds) {
  auto t = target_config("web", ProbeType::kTcpSyn, {"g1", "g2"});
  t.threshold.latency = 0.05;
  t.threshold.loss = 0.1;
  t.alert_level = AlertLevel::kPaging;
  t.state = "validation";
  metrics_.declare_target(t, AddressFamily::kV4);
  const auto lines = scrape();
  EXPECT_TRUE(lines.count(
      R"(tcpsyn_sent_total{address_family="ipv4",destination="web",group="g1",probe_name="probe1",state="validation"} 0)"));
  EXPECT_TRUE(lines.count(
      R"(tcpsyn_loss_total{address_family="ipv4",destination="web",group="g2",probe_name="probe1",state="validation"} 0)"));
  EXPECT_EQ(series_of(lines, "tcpsyn_round_trip_seconds").size(), 4u);  // 2 groups x 2 percentiles
  EXPECT_TRUE(lines.count(
      R"(threshold{address_family="ipv4",alert_level="paging",destination="web",group="g1",probe_name="probe1",state="validation",type="latency"} 0.05)"));
  EXPECT_TRUE(lines.count(
      R"(threshold{address_family="ipv4",alert_level="paging",destination="web",group="g2",probe_name="probe1",state="validation",type="loss"} 0.1)"));
  EXPECT_EQ(series_of(lines, "threshold").size(), 4u);
  EXPECT_TRUE(lines.count(
      R"(tcpsyn_match_ack_fail_count{address_family="ipv4",destination="web",probe_name="probe1"} 0)"));
}

TEST_F(metrics_ProberMetrics, RedeclaringKeepsCountersAndDropsStaleSeries) {
  auto t = target_config("web", ProbeType::kTcpSyn, {"g1", "g2"});
  t.threshold.latency = 0.05;
  metrics_.declare_target(t, AddressFamily::kV4);
  IterationReport report;
  report.groups.push_back(measurement("web", "g1", ProbeType::kTcpSyn, 7, 1, {0.001}));
  metrics_.record(report);

  // Reload: the target leaves g2 and its alert level changes.
  t.groups = {"g1"};
  t.alert_level = AlertLevel::kSandbox;
  metrics_.declare_target(t, AddressFamily::kV4);
  const auto lines = scrape();
  EXPECT_TRUE(lines.count(
      R"(tcpsyn_sent_total{address_family="ipv4",destination="web",group="g1",probe_name="probe1",state="None"} 7)"));
  EXPECT_FALSE(has_line_containing(lines, R"(group="g2")"));
  EXPECT_FALSE(has_line_containing(lines, R"(alert_level="no_alert")"));
  EXPECT_TRUE(has_line_containing(lines, R"(alert_level="sandbox")"));

  // The target turns into an ICMP target: no tcpsyn series left for it.
  t.type = ProbeType::kIcmpPing;
  metrics_.declare_target(t, AddressFamily::kV4);
  const auto after = scrape();
  EXPECT_FALSE(has_line_containing(after, "tcpsyn_"));
  EXPECT_TRUE(has_line_containing(after, R"(icmp_sent_total{address_family="ipv4",destination="web")"));
  EXPECT_TRUE(has_line_containing(
      after,
      R"(netprobe_late_replies_total{address_family="ipv4",destination="web",group="g1",probe_name="probe1",type="ICMPping"})"));
  EXPECT_FALSE(has_line_containing(after, R"(type="TCPsyn")"));
}

TEST_F(metrics_ProberMetrics, ClearTargetIsExactAndComplete) {
  metrics_.declare_target(target_config("web", ProbeType::kTcpSyn, {"g1"}), AddressFamily::kV4);
  metrics_.declare_target(target_config("web2", ProbeType::kTcpSyn, {"g1"}), AddressFamily::kV4);
  metrics_.set_host_resolution_status("web", AddressFamily::kV4, 1);
  metrics_.inc_host_resolution_change("web", AddressFamily::kV4);
  metrics_.clear_target("web");
  const auto lines = scrape();
  EXPECT_FALSE(has_line_containing(lines, R"(destination="web")"));
  // netprobify's substring match would also have cleared "web2".
  EXPECT_TRUE(has_line_containing(lines, R"(destination="web2")"));
}

TEST_F(metrics_ProberMetrics, ClearMeasurementsKeepsResolutionAndThreshold) {
  auto t = target_config("web", ProbeType::kTcpSyn, {"g1"});
  t.threshold.loss = 0.1;
  metrics_.declare_target(t, AddressFamily::kV4);
  metrics_.set_host_resolution_status("web", AddressFamily::kV4, 0);
  metrics_.clear_target_measurements("web");
  const auto lines = scrape();
  EXPECT_FALSE(has_line_containing(lines, "tcpsyn_"));
  EXPECT_TRUE(lines.count(
      R"(app_host_resolution_status{address_family="ipv4",destination="web",probe_name="probe1"} 0)"));
  EXPECT_TRUE(has_line_containing(lines, "threshold{"));
}

TEST_F(metrics_ProberMetrics, ClearGroup) {
  metrics_.declare_target(target_config("web", ProbeType::kTcpSyn, {"g1", "g2"}), AddressFamily::kV4);
  metrics_.set_host_resolution_status("web", AddressFamily::kV4, 1);
  metrics_.clear_group("g2");
  auto lines = scrape();
  EXPECT_FALSE(has_line_containing(lines, R"(group="g2")"));
  EXPECT_TRUE(has_line_containing(lines, R"(group="g1")"));
  // A target that only lost a group keeps its host-resolution series (netprobify's test_main).
  EXPECT_TRUE(has_line_containing(lines, "app_host_resolution_status{"));
  // The group stays gone when declared targets are recreated (a probe_name change).
  metrics_.set_probe_name("probe2");
  lines = scrape();
  EXPECT_FALSE(has_line_containing(lines, R"(group="g2")"));
}

TEST_F(metrics_ProberMetrics, SetPercentilesRemovesDroppedAndAddsNew) {
  metrics_.declare_target(target_config("web", ProbeType::kIcmpPing, {"g1"}), AddressFamily::kV4);
  metrics_.set_percentiles({99, 50});
  auto lines = scrape();
  EXPECT_FALSE(has_line_containing(lines, R"(percentile="95")"));
  EXPECT_TRUE(has_line_containing(lines, R"(percentile="50")"));
  EXPECT_TRUE(has_line_containing(lines, R"(percentile="99")"));
  IterationReport report;
  report.groups.push_back(measurement("web", "g1", ProbeType::kIcmpPing, 2, 0, {0.001, 0.002}));
  metrics_.record(report);
  lines = scrape();
  EXPECT_EQ(series_of(lines, "icmp_round_trip_seconds").size(), 2u);
  EXPECT_TRUE(lines.count(
      R"(icmp_round_trip_seconds{address_family="ipv4",destination="web",group="g1",percentile="99",probe_name="probe1",state="None"} 0.00199)"));
}

TEST_F(metrics_ProberMetrics, SetProbeNameClearsOldSeries) {
  metrics_.declare_target(target_config("web", ProbeType::kUdpUnreachable, {"g1"}), AddressFamily::kV4);
  metrics_.set_host_resolution_status("web", AddressFamily::kV4, 1);
  metrics_.set_reload_failed(true);
  metrics_.inc_target_name_dup("dup");
  metrics_.set_probe_name("probe2");
  const auto lines = scrape();
  EXPECT_FALSE(has_line_containing(lines, R"(probe_name="probe1")"));
  EXPECT_TRUE(lines.count(
      R"(udp_unreachable_sent_total{address_family="ipv4",destination="web",group="g1",probe_name="probe2",state="None"} 0)"));
  EXPECT_TRUE(lines.count(R"(app_reload_conf_failed_status{probe_name="probe2"} 1)"));
  EXPECT_TRUE(lines.count(R"(netprobe_info{version="0.1.0"} 1)"));
  EXPECT_TRUE(lines.count(R"(app_target_name_dup_total{target_name="dup"} 1)"));  // no probe_name label
}

TEST_F(metrics_ProberMetrics, AppSeries) {
  metrics_.set_reload_failed(true);
  metrics_.inc_process_timed_out();
  metrics_.inc_process_timed_out();
  metrics_.set_host_resolution_status("web", AddressFamily::kV6, 1);
  metrics_.inc_host_resolution_change("web", AddressFamily::kV6);
  const auto lines = scrape();
  EXPECT_TRUE(lines.count(R"(app_reload_conf_failed_status{probe_name="probe1"} 1)"));
  EXPECT_TRUE(lines.count(R"(app_process_timed_out_total{probe_name="probe1"} 2)"));
  EXPECT_TRUE(lines.count(
      R"(app_host_resolution_status{address_family="ipv6",destination="web",probe_name="probe1"} 1)"));
  EXPECT_TRUE(lines.count(
      R"(app_host_resolution_change_total{address_family="ipv6",destination="web",probe_name="probe1"} 1)"));
  metrics_.set_reload_failed(false);
  EXPECT_TRUE(scrape().count(R"(app_reload_conf_failed_status{probe_name="probe1"} 0)"));
}

TEST_F(metrics_ProberMetrics, NonFiniteRttsAreIgnored) {
  IterationReport report;
  report.groups.push_back(measurement("web", "g1", ProbeType::kTcpSyn, 3, 0,
                                      {0.001, std::numeric_limits<double>::quiet_NaN(), -1}));
  metrics_.record(report);
  const auto lines = scrape();
  EXPECT_TRUE(lines.count(
      R"(tcpsyn_rtt_seconds_count{address_family="ipv4",destination="web",group="g1",probe_name="probe1",state="None"} 1)"));
  for (const auto& l : lines) EXPECT_EQ(l.find("nan"), std::string::npos) << l;
}

// Dynamic inventory plug-ins: both series exist at 0 once declared, follow the plug-in, survive a probe
// rename (under the new name) and go away with clear_inventory.
TEST_F(metrics_ProberMetrics, InventorySeries) {
  metrics_.declare_inventory("netbox");
  auto lines = scrape();
  EXPECT_TRUE(lines.count(R"(app_inventory_targets{inventory="netbox",probe_name="probe1"} 0)"));
  EXPECT_TRUE(lines.count(R"(app_inventory_failures_total{inventory="netbox",probe_name="probe1"} 0)"));

  metrics_.set_inventory_targets("netbox", 12);
  metrics_.inc_inventory_failure("netbox");
  metrics_.inc_inventory_failure("netbox");
  metrics_.inc_inventory_failure("csv");  // never declared: created on first use
  lines = scrape();
  EXPECT_TRUE(lines.count(R"(app_inventory_targets{inventory="netbox",probe_name="probe1"} 12)"));
  EXPECT_TRUE(lines.count(R"(app_inventory_failures_total{inventory="netbox",probe_name="probe1"} 2)"));
  EXPECT_TRUE(lines.count(R"(app_inventory_failures_total{inventory="csv",probe_name="probe1"} 1)"));

  metrics_.set_probe_name("probe2");
  lines = scrape();
  EXPECT_FALSE(has_line_containing(lines, "probe1"));
  EXPECT_TRUE(lines.count(R"(app_inventory_targets{inventory="netbox",probe_name="probe2"} 12)"));
  EXPECT_TRUE(lines.count(R"(app_inventory_failures_total{inventory="netbox",probe_name="probe2"} 0)"));

  metrics_.clear_inventory("netbox");
  lines = scrape();
  EXPECT_FALSE(has_line_containing(lines, "netbox"));
  EXPECT_TRUE(lines.count(R"(app_inventory_targets{inventory="csv",probe_name="probe2"} 0)"));
}

}  // namespace
}  // namespace netprobe

namespace netprobe {
namespace {

// The reports' source addresses: index 0 and 1.
const std::vector<IpAddress> kSources{*IpAddress::parse("192.0.2.10"), *IpAddress::parse("192.0.2.11")};

// A measurement of `ports` flows from source `src` (an index into kSources), `per_flow` probes each, `lost`
// of them lost on the ports listed.
GroupMeasurement with_flows(const std::string& target, const std::string& group, int ports, uint32_t per_flow,
                            std::vector<std::pair<uint16_t, uint32_t>> lost, uint32_t src = 0) {
  GroupMeasurement m = testing::measurement(target, group, ProbeType::kTcpSyn, 0, 0, {});
  m.flow_destinations = {*IpAddress::parse("198.51.100.1")};
  for (int i = 0; i < ports; ++i) {
    FlowMeasurement f;
    f.src = src;
    f.src_port = uint16_t(40000 + i);
    f.sent = per_flow;
    for (auto [port, n] : lost)
      if (port == f.src_port) f.lost = n;
    m.sent += f.sent;
    m.lost += f.lost;
    m.flows.push_back(f);
  }
  return m;
}

class metrics_PathFamilies : public metrics_ProberMetrics {
 protected:
  void record(std::vector<GroupMeasurement> groups) {
    IterationReport r;
    r.groups = std::move(groups);
    r.sources = kSources;
    metrics_.record(r);
  }
};

constexpr const char* kWeb =
    R"({address_family="ipv4",destination="web",group="g1",probe_name="probe1",state="None"})";

TEST_F(metrics_PathFamilies, BlackHoledFlowIsCountedAndNamed) {
  record({with_flows("web", "g1", 8, 10, {{40003, 10}})});
  const auto lines = scrape();
  EXPECT_TRUE(lines.count(std::string("tcpsyn_paths") + kWeb + " 8"));
  EXPECT_TRUE(lines.count(std::string("tcpsyn_paths_with_loss") + kWeb + " 1"));
  EXPECT_TRUE(lines.count(std::string("tcpsyn_worst_path_loss_ratio") + kWeb + " 1"));
  EXPECT_EQ(
      series_of(lines, "tcpsyn_path_loss_ratio"),
      (std::set<std::string>{R"(tcpsyn_path_loss_ratio{address_family="ipv4",destination="web",group="g1",)"
                             R"(probe_name="probe1",src_port="40003",state="None"} 1)"}));
  EXPECT_EQ(series_of(lines, "tcpsyn_path_sent"),
            (std::set<std::string>{R"(tcpsyn_path_sent{address_family="ipv4",destination="web",group="g1",)"
                                   R"(probe_name="probe1",src_port="40003",state="None"} 10)"}));
}

TEST_F(metrics_PathFamilies, HealthyFlowsGiveCountsButNoPerFlowSeries) {
  record({with_flows("web", "g1", 8, 10, {{40001, 1}})});  // one lost probe proves nothing
  const auto lines = scrape();
  EXPECT_TRUE(lines.count(std::string("tcpsyn_paths_with_loss") + kWeb + " 0"));
  EXPECT_TRUE(lines.count(std::string("tcpsyn_worst_path_loss_ratio") + kWeb + " 0.1"));
  EXPECT_TRUE(series_of(lines, "tcpsyn_path_loss_ratio").empty());
}

TEST_F(metrics_PathFamilies, PerFlowSeriesAreTheTargetsWorstAndDisappearOnRecovery) {
  metrics_.set_path_settings(2, 2);
  // g1: 40002 at 100 %, 40005 at 60 %; g2: 40001 at 80 %. The two worst of the target: 40002 (g1), 40001
  // (g2).
  record({with_flows("web", "g1", 8, 20, {{40002, 20}, {40005, 12}}),
          with_flows("web", "g2", 8, 20, {{40001, 16}})});
  auto lines = scrape();
  EXPECT_TRUE(lines.count(std::string("tcpsyn_paths_with_loss") + kWeb + " 2"));
  std::set<std::string> ports;
  for (const auto& l : series_of(lines, "tcpsyn_path_loss_ratio"))
    ports.insert(l.substr(l.find("group="), l.find(",probe_name") - l.find("group=")) + " " +
                 l.substr(l.find("src_port=")));
  EXPECT_EQ(ports, (std::set<std::string>{R"(group="g1" src_port="40002",state="None"} 1)",
                                          R"(group="g2" src_port="40001",state="None"} 0.8)"}));
  // Window of 2: one clean iteration keeps them, the second clears them.
  record({with_flows("web", "g1", 8, 20, {}), with_flows("web", "g2", 8, 20, {})});
  EXPECT_EQ(series_of(scrape(), "tcpsyn_path_loss_ratio").size(), 2u);
  record({with_flows("web", "g1", 8, 20, {}), with_flows("web", "g2", 8, 20, {})});
  lines = scrape();
  EXPECT_TRUE(series_of(lines, "tcpsyn_path_loss_ratio").empty());
  EXPECT_TRUE(series_of(lines, "tcpsyn_path_sent").empty());
  EXPECT_TRUE(lines.count(std::string("tcpsyn_paths_with_loss") + kWeb + " 0"));
}

TEST_F(metrics_PathFamilies, NoPerFlowSeriesWhenDisabled) {
  metrics_.set_path_settings(5, 0);
  record({with_flows("web", "g1", 8, 10, {{40003, 10}})});
  const auto lines = scrape();
  EXPECT_TRUE(lines.count(std::string("tcpsyn_paths_with_loss") + kWeb + " 1"));
  EXPECT_TRUE(series_of(lines, "tcpsyn_path_loss_ratio").empty());
}

TEST_F(metrics_PathFamilies, SourceLabelOnlyWhenTheGroupRotatesSources) {
  GroupMeasurement m = with_flows("web", "g1", 4, 10, {{40000, 10}});
  GroupMeasurement other = with_flows("web", "g1", 4, 10, {}, 1);
  m.flows.insert(m.flows.end(), other.flows.begin(), other.flows.end());
  m.sent += other.sent;
  record({m});
  EXPECT_EQ(
      series_of(scrape(), "tcpsyn_path_loss_ratio"),
      (std::set<std::string>{R"(tcpsyn_path_loss_ratio{address_family="ipv4",destination="web",group="g1",)"
                             R"(probe_name="probe1",src="192.0.2.10",src_port="40000",state="None"} 1)"}));
}

TEST_F(metrics_PathFamilies, StaleTargetHidesItsPathGauges) {
  record({with_flows("web", "g1", 8, 10, {{40003, 10}})});
  metrics_.mark_target_stale("web");
  const auto lines = scrape();
  EXPECT_TRUE(series_of(lines, "tcpsyn_paths").empty());
  EXPECT_TRUE(series_of(lines, "tcpsyn_path_loss_ratio").empty());
}

}  // namespace
}  // namespace netprobe

namespace netprobe {
namespace {

// The reasons created at 0 are exactly io's SendError names and the engine's own two.
TEST(metrics_SendErrorReasons, AreIosNamesAndTheEngines) {
  std::set<std::string> expected{"cut_short", "no_token"};
  for (size_t e = 0; e < size_t(SendError::kCount); ++e)
    expected.insert(std::string(to_string(SendError(e))));
  const std::set<std::string> listed(ProberMetrics::kSendErrorReasons.begin(),
                                     ProberMetrics::kSendErrorReasons.end());
  EXPECT_EQ(listed, expected);
}

// A worker inventing a new reason every iteration cannot grow the series without bound.
TEST_F(metrics_ProberMetrics, ReasonLabelsAreBounded) {
  for (int i = 0; i < 200; ++i) {
    IterationReport r;
    r.rejected["invented_" + std::to_string(i)] = 1;
    r.send_errors["invented_" + std::to_string(i)] = 1;
    metrics_.record(r);
  }
  const auto lines = scrape();
  EXPECT_EQ(series_of(lines, "netprobe_capture_rejected_total").size(), 65u) << "64 reasons and other";
  EXPECT_EQ(series_of(lines, "netprobe_send_errors_total").size(), 64u) << "\"other\" is one of them";
  EXPECT_TRUE(has_line_containing(
      lines, R"(netprobe_capture_rejected_total{probe_name="probe1",reason="other"} 136)"));
}

}  // namespace
}  // namespace netprobe
