// The window of iterations the per-path test looks at (docs/paths.md).
#include "paths/path_window.h"

#include <gtest/gtest.h>

namespace netprobe {
namespace {

const std::vector<IpAddress> kSources{*IpAddress::parse("192.0.2.10")};

GroupMeasurement iteration(uint32_t per_flow, std::vector<uint16_t> black_holed = {},
                           uint16_t first_port = 40000, int ports = 8) {
  GroupMeasurement out;
  out.flow_destinations = {*IpAddress::parse("198.51.100.1")};
  for (int i = 0; i < ports; ++i) {
    FlowMeasurement f;
    f.src_port = uint16_t(first_port + i);
    f.sent = per_flow;
    const bool hole = std::find(black_holed.begin(), black_holed.end(), f.src_port) != black_holed.end();
    f.lost = hole ? per_flow : 0;
    f.rtt_count = f.sent - f.lost;
    f.rtt_sum_s = 50e-6f * float(f.rtt_count);
    out.flows.push_back(f);
  }
  return out;
}

std::vector<uint16_t> lossy_ports(const PathSummary& s) {
  std::vector<uint16_t> out;
  for (const PathFlow& f : s.lossy) out.push_back(f.key.src_port);
  return out;
}

TEST(PathWindow, BlackHoleIsFlaggedUntilItLeavesTheWindow) {
  PathWindow w(3);
  w.add(iteration(10, {40003}), kSources);
  EXPECT_EQ(w.summary().paths, 8u);
  EXPECT_EQ(w.summary().paths_with_loss, 1u);
  EXPECT_EQ(lossy_ports(w.summary()), std::vector<uint16_t>{40003});
  EXPECT_DOUBLE_EQ(w.summary().worst_loss_ratio, 1.0);
  w.add(iteration(10), kSources);
  w.add(iteration(10), kSources);
  EXPECT_EQ(w.summary().paths_with_loss, 1u) << "still in the window of 3";
  EXPECT_NEAR(w.summary().worst_loss_ratio, 10.0 / 30, 1e-12);
  EXPECT_EQ(w.summary().lossy.at(0).sent, 30u);
  EXPECT_EQ(w.summary().lossy.at(0).rtt_count, 20u);
  w.add(iteration(10), kSources);
  EXPECT_EQ(w.summary().paths_with_loss, 0u) << "recovered: the lossy iteration left the window";
  EXPECT_EQ(w.summary().worst_loss_ratio, 0.0);
}

TEST(PathWindow, SmallIterationsAddUpOverTheWindow) {
  // Two probes per flow per iteration: one iteration of a black hole is not proof (2 of 2 lost while the
  // others lost none of 14 is p = 1/64 per flow), a window of them is.
  PathWindow w(5);
  w.add(iteration(2, {40005}), kSources);
  EXPECT_EQ(w.summary().paths_with_loss, 0u);
  for (int i = 0; i < 4; ++i) w.add(iteration(2, {40005}), kSources);
  EXPECT_EQ(lossy_ports(w.summary()), std::vector<uint16_t>{40005});
}

TEST(PathWindow, WorstFirstAndFlowsNotProbedAreForgotten) {
  PathWindow w(2);
  auto it = iteration(20, {40001, 40006});
  it.flows[1].lost = 10;  // 40001: 50 %; 40006: 100 %
  it.flows[1].rtt_count = 10;
  w.add(it, kSources);
  EXPECT_EQ(lossy_ports(w.summary()), (std::vector<uint16_t>{40006, 40001}));
  EXPECT_EQ(w.flow_count(), 8u);
  // The group's port range moved: the old flows age out of a window of 2.
  w.add(iteration(20, {}, 50000), kSources);
  EXPECT_EQ(w.summary().paths, 8u);
  EXPECT_EQ(w.flow_count(), 16u);
  w.add(iteration(20, {}, 50000), kSources);
  EXPECT_EQ(w.flow_count(), 8u);
  EXPECT_EQ(w.summary().paths_with_loss, 0u);
}

TEST(PathWindow, NewWindowLengthStartsAfresh) {
  PathWindow w(5);
  w.add(iteration(10, {40000}), kSources);
  w.set_iterations(5);
  EXPECT_EQ(w.summary().paths_with_loss, 1u) << "same length: kept";
  w.set_iterations(3);
  EXPECT_EQ(w.flow_count(), 0u);
  EXPECT_EQ(w.summary().paths, 0u);
  w.set_iterations(0);
  EXPECT_EQ(w.iterations(), 1u) << "clamped";
}

TEST(PathWindow, MemoryPerFlowIsBounded) {
  PathWindow w(5);
  for (int i = 0; i < 5; ++i) w.add(iteration(4, {}, 1000, 1000), kSources);
  EXPECT_EQ(w.flow_count(), 1000u);
  // Figure for docs/paths.md: ~16 B per flow and iteration of the window plus the key and its index entry.
  const double per_flow = double(w.memory_bytes()) / 1000;
  EXPECT_LT(per_flow, 300.0);
  RecordProperty("bytes_per_flow", std::to_string(per_flow));
}

}  // namespace
}  // namespace netprobe
