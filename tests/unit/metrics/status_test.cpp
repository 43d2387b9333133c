// The status page's data: the history of the last iterations (StatusHistory), the worst paths and the mesh
// matrix parsed from the exposition, and their HTML and JSON (metrics/status.h).
#include "metrics/status.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>

#include "core/percentile.h"

#include <nlohmann/json.hpp>

namespace netprobe {
namespace {

GroupMeasurement measurement(const std::string& target, uint64_t sent, uint64_t lost,
                             std::vector<double> rtts, ProbeType type = ProbeType::kIcmpPing,
                             const std::string& group = "lab") {
  GroupMeasurement m;
  m.target = target;
  m.group = group;
  m.type = type;
  m.af = AddressFamily::kV4;
  m.sent = sent;
  m.lost = lost;
  m.rtts_s = std::move(rtts);
  return m;
}

IterationReport report(std::vector<GroupMeasurement> groups) {
  IterationReport r;
  r.groups = std::move(groups);
  return r;
}

const StatusHistory::Key kIcmpA{"icmp", "a", "lab", "ipv4"};

TEST(StatusHistory, KeepsTheLastIterationsOldestFirstWithLossAndPercentiles) {
  StatusHistory h;
  for (int i = 0; i < 13; ++i) {
    // Iteration i: i lost of 20, RTTs 1..10 ms (p50 5.5 ms, p95 9.55 ms by netprobify's interpolation).
    std::vector<double> rtts;
    for (int k = 1; k <= 10; ++k) rtts.push_back(k * 1e-3);
    h.record(report({measurement("a", 20, static_cast<uint64_t>(i), rtts)}), 1000 + i);
  }
  const auto points = h.points(kIcmpA);
  ASSERT_EQ(points.size(), kHistoryIterations);
  for (size_t i = 0; i < points.size(); ++i) {
    const int iteration = static_cast<int>(i) + 3;  // 0..2 were pushed out
    EXPECT_EQ(points[i].time, 1000U + iteration);
    EXPECT_EQ(points[i].sent, 20U);
    EXPECT_FLOAT_EQ(points[i].loss_ratio, iteration / 20.0f);
    EXPECT_NEAR(points[i].p50, 5.5e-3, 1e-9);
    EXPECT_NEAR(points[i].p95, 9.55e-3, 1e-9);
  }
  EXPECT_TRUE(h.points({"icmp", "b", "lab", "ipv4"}).empty());
  EXPECT_TRUE(h.points({"tcpsyn", "a", "lab", "ipv4"}).empty());  // another type is another key
}

TEST(StatusHistory, SelectedPercentilesEqualTheSortedOnes) {
  std::mt19937 random(15);
  std::uniform_real_distribution<double> rtt(1e-5, 1e-1);
  for (size_t n : {1U, 2U, 3U, 7U, 20U, 101U, 1000U}) {
    std::vector<double> values(n);
    for (auto& v : values) v = rtt(random);
    if (n == 20) std::fill(values.begin(), values.begin() + 10, 0.5);  // ties
    for (int p : {0, 1, 50, 90, 95, 99, 100}) {
      std::vector<double> a = values, b = values;
      EXPECT_EQ(percentile_select(a, p), percentile_linear(b, p)) << n << " p" << p;
    }
  }
  std::vector<double> none;
  EXPECT_EQ(percentile_select(none, 95), 0);
}

TEST(StatusHistory, NoAnswerNoRttNothingSentNoPointBadRttsIgnored) {
  StatusHistory h;
  h.record(report({measurement("a", 10, 10, {}), measurement("b", 0, 0, {})}), 50);
  auto points = h.points(kIcmpA);
  ASSERT_EQ(points.size(), 1U);
  EXPECT_EQ(points[0].loss_ratio, 1.0f);
  EXPECT_LT(points[0].p50, 0);
  EXPECT_LT(points[0].p95, 0);
  EXPECT_TRUE(h.points({"icmp", "b", "lab", "ipv4"}).empty());
  h.record(report({measurement("a", 3, 0,
                               {-1.0, std::nan(""), 2e-3, 2e-3, std::numeric_limits<double>::infinity()})}),
           51);
  points = h.points(kIcmpA);
  ASSERT_EQ(points.size(), 2U);
  EXPECT_FLOAT_EQ(points[1].p50, 2e-3f);
  EXPECT_FLOAT_EQ(points[1].p95, 2e-3f);
}

TEST(StatusHistory, ForgetsKeysThatStoppedReporting) {
  StatusHistory h;
  h.record(report({measurement("a", 1, 0, {1e-3}), measurement("b", 1, 0, {1e-3})}), 10'000);
  EXPECT_EQ(h.size(), 2U);
  h.record(report({measurement("b", 1, 0, {1e-3})}), 10'000 + StatusHistory::kForgetAfterSeconds);
  EXPECT_EQ(h.size(), 2U);  // an hour exactly: still kept
  h.record(report({measurement("b", 1, 0, {1e-3})}), 10'000 + StatusHistory::kForgetAfterSeconds + 61);
  EXPECT_EQ(h.size(), 1U);
  EXPECT_TRUE(h.points(kIcmpA).empty());
}

// Two targets of group lab, the lossy one with a flagged flow.
constexpr const char* kExposition =
    "# TYPE icmp_loss_ratio gauge\n"
    "icmp_loss_ratio{address_family=\"ipv4\",destination=\"a\",group=\"lab\",probe_name=\"p\"} 0.5\n"
    "icmp_loss_ratio{address_family=\"ipv4\",destination=\"b\",group=\"lab\",probe_name=\"p\"} 0\n"
    "icmp_sent_total{address_family=\"ipv4\",destination=\"a\",group=\"lab\",probe_name=\"p\"} 20\n"
    "icmp_loss_total{address_family=\"ipv4\",destination=\"a\",group=\"lab\",probe_name=\"p\"} 10\n"
    "tcpsyn_path_loss_ratio{address_family=\"ipv4\",destination=\"c<x>\",group=\"lab\",probe_name=\"p\","
    "src_port=\"65001\",state=\"None\"} 0.25\n"
    "tcpsyn_path_sent{address_family=\"ipv4\",destination=\"c<x>\",group=\"lab\",probe_name=\"p\","
    "src_port=\"65001\",state=\"None\"} 400\n"
    "tcpsyn_path_loss_ratio{address_family=\"ipv4\",destination=\"c<x>\",dst=\"10.0.0.2\",group=\"lab\","
    "probe_name=\"p\",src_port=\"65002\",state=\"None\"} 0.75\n"
    "tcpsyn_worst_path_loss_ratio{address_family=\"ipv4\",destination=\"c<x>\",group=\"lab\",probe_name="
    "\"p\","
    "state=\"None\"} 0.75\n";

TEST(StatusSnapshot, RowsCarryTheirHistoryAndThePageShowsIt) {
  StatusHistory h;
  h.record(report({measurement("a", 20, 0, {1e-3}), measurement("b", 20, 0, {1e-3})}), 100);
  h.record(report({measurement("a", 20, 10, {1e-3, 3e-3}), measurement("b", 20, 0, {1e-3})}), 102);
  const StatusSnapshot s = status_from_exposition(kExposition, 100, &h);
  ASSERT_GE(s.rows.size(), 2U);
  EXPECT_EQ(s.rows[0].destination, "a");  // worst first
  ASSERT_EQ(s.rows[0].history.size(), 2U);
  EXPECT_FLOAT_EQ(s.rows[0].history[1].loss_ratio, 0.5f);

  const auto json = nlohmann::json::parse(status_json(s));
  const auto& a = json["targets"][0];
  EXPECT_EQ(a["destination"], "a");
  ASSERT_EQ(a["history"].size(), 2U);
  EXPECT_EQ(a["history"][1]["time"], 102);
  EXPECT_DOUBLE_EQ(a["history"][1]["loss_ratio"].get<double>(), 0.5);
  EXPECT_NEAR(a["history"][1]["rtt_p95_seconds"].get<double>(), 2.9e-3, 1e-9);
  EXPECT_TRUE(a["history"][0]["rtt_p50_seconds"].is_number());
  EXPECT_EQ(json["history_iterations"], kHistoryIterations);

  const std::string html = status_html(s);
  EXPECT_NE(html.find(">50</i>"), std::string::npos) << "the lossy iteration's cell shows 50 (%)";
  EXPECT_NE(html.find("<svg"), std::string::npos);
  EXPECT_NE(html.find("<polyline"), std::string::npos);
  // Without a history (a unit test's exporter, a process that has not probed yet): a dash.
  const std::string bare = status_html(status_from_exposition(kExposition, 100));
  EXPECT_EQ(bare.find("<svg"), std::string::npos);
}

TEST(StatusSnapshot, WorstPathsFromTheFlaggedFlowsWorstFirstEscaped) {
  const StatusSnapshot s = status_from_exposition(kExposition, 100);
  ASSERT_EQ(s.worst_paths.size(), 2U);
  EXPECT_EQ(s.paths_total, 2U);
  EXPECT_DOUBLE_EQ(s.worst_paths[0].loss_ratio, 0.75);
  EXPECT_EQ(s.worst_paths[0].dst, "10.0.0.2");
  EXPECT_EQ(s.worst_paths[0].src_port, "65002");
  EXPECT_EQ(s.worst_paths[0].sent, -1);
  EXPECT_DOUBLE_EQ(s.worst_paths[1].loss_ratio, 0.25);
  EXPECT_EQ(s.worst_paths[1].sent, 400);
  EXPECT_EQ(s.worst_paths[1].type, "tcpsyn");
  // _path_loss_ratio is not mistaken for the row's loss ratio, nor _path_sent for its sent total.
  for (const auto& r : s.rows)
    if (r.destination == "c<x>") {
      EXPECT_EQ(r.last_loss, -1);
      EXPECT_EQ(r.sent, 0);
      EXPECT_DOUBLE_EQ(r.worst_path_loss, 0.75);
    }
  const std::string html = status_html(s);
  EXPECT_NE(html.find("Worst paths"), std::string::npos);
  EXPECT_NE(html.find("c&lt;x&gt;"), std::string::npos);
  EXPECT_EQ(html.find("c<x>"), std::string::npos);
  const auto json = nlohmann::json::parse(status_json(s));
  EXPECT_EQ(json["worst_paths"][0]["src_port"], "65002");
  EXPECT_EQ(json["lossy_paths_total"], 2);
}

TEST(StatusSnapshot, MeshMatrixForGroupsWithManyDestinations) {
  std::string text;
  // Group "mesh": 5 destinations (one with two probe types: the worse loss shows); group "few": 2.
  for (int i = 0; i < 5; ++i)
    text +=
        fmt::format("icmp_loss_ratio{{address_family=\"ipv4\",destination=\"tor{}\",group=\"mesh\"}} {}\n", i,
                    i == 3 ? 0.4 : 0.0);
  text += "tcpsyn_loss_ratio{address_family=\"ipv4\",destination=\"tor3\",group=\"mesh\"} 0.9\n";
  text += "icmp_loss_ratio{address_family=\"ipv4\",destination=\"x\",group=\"few\"} 0\n";
  text += "icmp_loss_ratio{address_family=\"ipv4\",destination=\"y\",group=\"few\"} 0\n";
  const StatusSnapshot s = status_from_exposition(text, 3);  // the rows are cut, the matrix is not
  EXPECT_EQ(s.rows.size(), 3U);
  ASSERT_EQ(s.meshes.size(), 1U);
  const StatusMesh& m = s.meshes[0];
  EXPECT_EQ(m.group, "mesh");
  EXPECT_EQ(m.destinations, 5U);
  ASSERT_EQ(m.cells.size(), 5U);
  EXPECT_EQ(m.cells[0].destination, "tor0");  // by name
  EXPECT_DOUBLE_EQ(m.cells[3].loss_ratio, 0.9);
  const std::string html = status_html(s);
  EXPECT_NE(html.find("Mesh: group <code>mesh</code>"), std::string::npos);
  EXPECT_NE(html.find("<b>tor3</b>90</div>"), std::string::npos);
  const auto json = nlohmann::json::parse(status_json(s));
  ASSERT_EQ(json["mesh"].size(), 1U);
  EXPECT_EQ(json["mesh"][0]["cells"][3]["destination"], "tor3");
  EXPECT_DOUBLE_EQ(json["mesh"][0]["cells"][3]["loss_ratio_last_iteration"].get<double>(), 0.9);
}

TEST(StatusSnapshot, MeshIsBoundedInCells) {
  std::string text;
  for (size_t i = 0; i < kMaxMeshCells + 10; ++i)
    text +=
        fmt::format("icmp_loss_ratio{{address_family=\"ipv4\",destination=\"d{:05}\",group=\"g\"}} 0\n", i);
  const StatusSnapshot s = status_from_exposition(text, 10);
  ASSERT_EQ(s.meshes.size(), 1U);
  EXPECT_EQ(s.meshes[0].cells.size(), kMaxMeshCells);
  EXPECT_EQ(s.meshes[0].destinations, kMaxMeshCells + 10);
  EXPECT_NE(status_html(s).find("the first 5000 shown"), std::string::npos);
}

}  // namespace
}  // namespace netprobe
