// GET /probe's page (src/ondemand/probe_output.h) from a job's probe events.
#include "ondemand/probe_output.h"

#include <gtest/gtest.h>

namespace netprobe::ondemand {
namespace {

ProbeEvent answered(uint16_t sport, double rtt) {
  ProbeEvent e;
  e.src_port = sport;
  e.state = ProbeEvent::State::kAnswered;
  e.rtt_s = rtt;
  return e;
}
ProbeEvent lost(uint16_t sport) {
  ProbeEvent e;
  e.src_port = sport;
  e.state = ProbeEvent::State::kLost;
  return e;
}

bool has(const std::string& page, const std::string& line) {
  return page.find(line + "\n") != std::string::npos;
}

TEST(ondemand_ProbeOutput, SuccessConditionTable) {
  OnDemandModule strict;
  OnDemandModule lossy;
  lossy.fail_if_loss_ratio_above = 0.5;
  OnDemandModule fast;
  fast.fail_if_loss_ratio_above = 1;
  fast.fail_if_rtt_p99_above_s = 0.01;
  const std::vector<ProbeEvent> all_ok = {answered(1, 0.001), answered(2, 0.002)};
  const std::vector<ProbeEvent> half = {answered(1, 0.001), lost(2)};
  const std::vector<ProbeEvent> none = {lost(1), lost(2)};
  const std::vector<ProbeEvent> slow = {answered(1, 0.05)};
  EXPECT_TRUE(probe_succeeded(strict, all_ok));
  EXPECT_FALSE(probe_succeeded(strict, half));
  EXPECT_TRUE(probe_succeeded(lossy, half));
  EXPECT_FALSE(probe_succeeded(lossy, none));
  EXPECT_TRUE(probe_succeeded(fast, all_ok));
  EXPECT_FALSE(probe_succeeded(fast, slow));
  EXPECT_FALSE(probe_succeeded(fast, none));  // no RTT at all fails an RTT condition
  EXPECT_FALSE(probe_succeeded(lossy, {}));   // nothing sent
}

TEST(ondemand_ProbeOutput, Page) {
  ProbeJob job;
  job.type = ProbeType::kTcpSyn;
  job.af = AddressFamily::kV6;
  job.dst_port = 443;
  OnDemandModule m;
  ProbeEvent icmp = lost(33001);
  icmp.state = ProbeEvent::State::kIcmpError;
  icmp.icmp_error = true;
  icmp.icmp_type = 1;  // ICMPv6 destination unreachable
  icmp.icmp_code = 4;
  ProbeEvent late = lost(33002);
  late.state = ProbeEvent::State::kLate;
  const std::vector<ProbeEvent> events = {answered(33000, 0.0004), icmp, late, answered(33000, 0.003)};
  const std::string page = render_probe_metrics(job, m, events, 1.25);
  EXPECT_TRUE(has(page, "probe_success 0")) << page;
  EXPECT_TRUE(has(page, "probe_duration_seconds 1.25"));
  EXPECT_TRUE(has(page, "probe_ip_protocol 6"));
  EXPECT_TRUE(has(page, "netprobe_probe_packets_sent 4"));
  EXPECT_TRUE(has(page, "netprobe_probe_packets_received 2"));
  EXPECT_TRUE(has(page, "netprobe_probe_packets_lost 2"));
  EXPECT_TRUE(has(page, "netprobe_probe_packets_late 1"));
  EXPECT_TRUE(has(page, "netprobe_probe_loss_ratio 0.5"));
  EXPECT_NE(page.find("netprobe_probe_icmp_errors{type=\""), std::string::npos);
  EXPECT_TRUE(has(page, "netprobe_probe_rtt_seconds_bucket{le=\"0.0005\"} 1"));
  EXPECT_TRUE(has(page, "netprobe_probe_rtt_seconds_bucket{le=\"+Inf\"} 2"));
  EXPECT_TRUE(has(page, "netprobe_probe_rtt_seconds_count 2"));
  EXPECT_TRUE(has(page, "netprobe_probe_path_packets_sent{sport=\"33000\"} 2"));
  EXPECT_TRUE(has(page, "netprobe_probe_path_packets_lost{sport=\"33001\"} 1"));
  const std::string debug = render_probe_debug(job, m, events, 1.25);
  EXPECT_EQ(debug.rfind("Logs for the probe:\n", 0), 0u);
  EXPECT_NE(debug.find("seq=1 sport=33001"), std::string::npos) << debug;
  EXPECT_NE(debug.find("Metrics that would have been returned:\n# HELP probe_success"), std::string::npos);
}

}  // namespace
}  // namespace netprobe::ondemand
