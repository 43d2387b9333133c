// `netprobe check`'s verdict and line per (target, group) (session/check_result.h), as tables.
#include "session/check_result.h"

#include <gtest/gtest.h>

namespace netprobe {
namespace {

TargetConfig target(ProbeType type, const std::string& destination, std::optional<uint16_t> port,
                    std::optional<double> threshold_loss = {}) {
  TargetConfig t;
  t.name = "t";
  t.type = type;
  t.destination = destination;
  t.dst_port = port;
  t.threshold.loss = threshold_loss;
  return t;
}

CheckResult result(const TargetConfig& t, uint64_t sent, uint64_t lost, std::vector<double> rtts = {}) {
  CheckResult r{&t, "g"};
  GroupMeasurement m;
  m.sent = sent;
  m.lost = lost;
  m.rtts_s = std::move(rtts);
  r.add(m);
  return r;
}

TEST(session_CheckResult, OkRule) {
  struct Row {
    std::optional<double> threshold;
    uint64_t sent, lost;
    bool ok;
  };
  const std::vector<Row> rows = {
      // No threshold: at least one answer.
      {{}, 4, 0, true},
      {{}, 4, 3, true},
      {{}, 4, 4, false},
      {{}, 0, 0, false},  // nothing sent (every send refused): not a pass
      // A ratio up to 1: loss strictly below it.
      {0.25, 4, 0, true},
      {0.25, 8, 1, true},
      {0.25, 4, 1, false},
      {1, 4, 3, true},
      {1, 4, 4, false},
      // Above 1: a percentage.
      {5, 100, 4, true},
      {5, 100, 5, false},
      {50, 4, 1, true},
      {100, 4, 4, false},
      // 0: no loss at all.
      {0, 4, 0, true},
      {0, 4, 1, false},
  };
  for (const auto& r : rows) {
    const auto t = target(ProbeType::kTcpSyn, "192.0.2.1", 443, r.threshold);
    EXPECT_EQ(result(t, r.sent, r.lost).ok(), r.ok)
        << "threshold " << r.threshold.value_or(-1) << " sent " << r.sent << " lost " << r.lost;
  }
}

TEST(session_CheckResult, Lines) {
  const auto tcp = target(ProbeType::kTcpSyn, "web.example.net", 443);
  const auto tcp6 = target(ProbeType::kTcpSyn, "2001:db8::1", 443, 5);
  const auto icmp = target(ProbeType::kIcmpPing, "192.0.2.1", {});
  const auto udp = target(ProbeType::kUdpUnreachable, "192.0.2.2", 33434);
  EXPECT_EQ(result(tcp, 3, 0, {0.0004, 0.0005, 0.0001}).line(),
            "TCPsyn web.example.net:443 OK 0.40 ms [t/g]");
  EXPECT_EQ(result(tcp, 4, 4).line(), "TCPsyn web.example.net:443 FAILED 100 % loss [t/g]");
  EXPECT_EQ(result(tcp, 3, 1, {0.001, 0.002}).line(),
            "TCPsyn web.example.net:443 OK 1.50 ms, 33.33 % loss [t/g]");
  EXPECT_EQ(result(tcp6, 10, 1, {0.001}).line(),
            "TCPsyn [2001:db8::1]:443 FAILED 10 % loss (threshold 5 %) [t/g]");
  EXPECT_EQ(result(icmp, 1, 0, {0.00002}).line(), "ICMPping 192.0.2.1 OK 0.02 ms [t/g]");
  CheckResult errors = result(udp, 2, 2);
  errors.icmp_errors = {{"unreachable:1", 2}};
  EXPECT_EQ(errors.line(), "UDPunreachable 192.0.2.2:33434 FAILED 100 % loss, ICMP unreachable:1 x2 [t/g]");
  CheckResult ghost{&tcp, "g"};
  ghost.not_probed = "unresolved: NXDOMAIN";
  EXPECT_FALSE(ghost.ok());
  EXPECT_EQ(ghost.line(), "TCPsyn web.example.net:443 FAILED not probed: unresolved: NXDOMAIN [t/g]");
}

TEST(session_CheckResult, IterationsAddUp) {
  const auto t = target(ProbeType::kIcmpPing, "192.0.2.1", {});
  CheckResult r{&t, "g"};
  for (int i = 0; i < 3; ++i) {
    GroupMeasurement m;
    m.sent = 4;
    m.lost = i == 0 ? 4 : 0;
    m.rtts_s = i == 0 ? std::vector<double>{} : std::vector<double>{0.001, 0.003, 0.002, 0.004};
    m.icmp_errors = {{"unreachable:3", 1}};
    r.add(m);
  }
  EXPECT_EQ(r.sent, 12u);
  EXPECT_EQ(r.lost, 4u);
  EXPECT_EQ(r.rtts_s.size(), 8u);
  EXPECT_DOUBLE_EQ(r.median_rtt_s(), 0.0025);
  EXPECT_EQ(r.icmp_errors.at("unreachable:3"), 3u);
  EXPECT_TRUE(r.ok());
}

}  // namespace
}  // namespace netprobe

namespace netprobe {
namespace {

// UDPquery: a wrong answer or a closed port fails the check even without loss, and the line says which.
TEST(session_CheckResult, UdpQueryUnexpectedAndClosedFail) {
  const auto t = target(ProbeType::kUdpQuery, "192.0.2.53", 53);
  struct Row {
    uint64_t sent, lost, unexpected, closed;
    bool ok;
    const char* says;
  };
  const Row rows[] = {
      {4, 0, 0, 0, true, "OK"},
      {4, 0, 1, 0, false, "1 unexpected"},
      {4, 0, 0, 4, false, "4 closed"},
      {4, 2, 2, 0, false, "2 unexpected"},
  };
  for (const auto& r : rows) {
    CheckResult c{&t, "g"};
    GroupMeasurement m;
    m.sent = r.sent;
    m.lost = r.lost;
    m.unexpected = r.unexpected;
    m.closed = r.closed;
    m.rtts_s.assign(r.sent - r.lost - r.unexpected - r.closed, 0.001);
    c.add(m);
    EXPECT_EQ(c.ok(), r.ok) << c.line();
    EXPECT_NE(c.line().find(r.says), std::string::npos) << c.line();
    EXPECT_EQ(c.line().rfind("UDPquery 192.0.2.53:53 ", 0), 0u) << c.line();
  }
}

}  // namespace
}  // namespace netprobe
