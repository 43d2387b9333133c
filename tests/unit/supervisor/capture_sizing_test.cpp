// The capture ring of a worker follows the configured rate of its targets.
#include "supervisor/capture_sizing.h"

#include <gtest/gtest.h>

#include "config/loader.h"

namespace netprobe {
namespace {

Config config_of(const std::string& yaml) {
  auto r = load_config_string(yaml, "t.yaml");
  EXPECT_TRUE(r.ok()) << (r.diagnostics.errors.empty() ? "" : r.diagnostics.errors[0]);
  return *r.config;
}

std::string header(int interval, double max_pps = 0) {
  std::string h =
      "global:\n  probe_name: p\n  interval: " + std::to_string(interval) +
      "\n  nb_proc: 2\n  logging_level: INFO\n  prometheus_port: 8000\n  dns_update_interval: 300\n";
  if (max_pps > 0) h += "  max_packets_per_second: " + std::to_string(max_pps) + "\n";
  return h + "groups:\n  g: {}\n  h: {}\ntargets:\n";
}

const auto kAll = [](const std::string&) { return true; };

TEST(worker_CaptureSizing, RateIsTheProbesOfTheWorkersTargetsOverTheSendWindow) {
  // 100 packets x 2 groups + a /30 (2 hosts) x 50 packets x 2 groups = 400 probes; the window is 80 % of
  // 11 s - 1 s (the longest timeout).
  const Config c = config_of(
      header(11) +
      "  a: {type: ICMPping, destination: 192.0.2.1, nb_packets: 100, timeout: 0.5}\n"
      "  b: {type: ICMPping, destination: 192.0.2.4/30, is_subnet: true, nb_packets: 50, timeout: 1}\n");
  EXPECT_DOUBLE_EQ(planned_probe_rate(c, 2, kAll), 400 / 8.0);
  // Only the worker's own targets count, for the rate and for the longest timeout.
  EXPECT_DOUBLE_EQ(planned_probe_rate(c, 2, [](const std::string& n) { return n == "a"; }),
                   200 / (0.8 * 10.5));
  EXPECT_DOUBLE_EQ(planned_probe_rate(c, 2, [](const std::string&) { return false; }), 0);
}

TEST(worker_CaptureSizing, GlobalCapIsSharedByTheWorkers) {
  const Config c =
      config_of(header(11, 1000) + "  a: {type: ICMPping, destination: 192.0.2.1, nb_packets: 100000}\n");
  EXPECT_DOUBLE_EQ(planned_probe_rate(c, 2, kAll), 500);
}

TEST(worker_CaptureSizing, NoWindowMeansFlatOut) {
  const Config c = config_of(header(1) + "  a: {type: ICMPping, destination: 192.0.2.1, timeout: 1}\n");
  EXPECT_EQ(capture_buffer_bytes(planned_probe_rate(c, 2, kAll)), kMaxCaptureBuffer);
}

TEST(worker_CaptureSizing, RingHoldsOneHundredMillisecondsBetweenTheBounds) {
  EXPECT_EQ(capture_buffer_bytes(0), kMinCaptureBuffer);
  EXPECT_EQ(capture_buffer_bytes(10'000), kMinCaptureBuffer);  // 0.5 MB of capture
  EXPECT_EQ(capture_buffer_bytes(100'000), size_t(5) << 20);   // 5.12 MB -> 5 MiB
  EXPECT_EQ(capture_buffer_bytes(120'000), size_t(6) << 20);   // 6.1 MB -> 6 MiB
  EXPECT_EQ(capture_buffer_bytes(2'000'000), kMaxCaptureBuffer);
  EXPECT_EQ(capture_buffer_bytes(std::numeric_limits<double>::infinity()), kMaxCaptureBuffer);
}

}  // namespace
}  // namespace netprobe
