// `netprobe trace` and `netprobe pathloss` over the in-memory link (src/trace over a Session): a scripted
// multi-hop network answers Time Exceeded per TTL from a router chosen by the flow's source port, and the
// destination answers beyond. Every probe of a flow keeps its 5-tuple, so each source port shows its path.
#include <gtest/gtest.h>

#include <map>

#include "io/fake_link.h"
#include "lab.h"
#include "responder.h"
#include "session/session.h"
#include "trace/pathloss.h"
#include "trace/trace.h"

namespace netprobe {
namespace {

using std::chrono::microseconds;
using testing::fake_engine_options;

struct Case {
  const char* name;
  ProbeType type;
  const char* dst;
  const char* src;
  std::vector<std::vector<std::string>> hops;
};

std::vector<Case> cases() {
  const std::vector<std::vector<std::string>> v4 = {{"192.0.2.1"}, {"192.0.2.21", "192.0.2.22"}};
  const std::vector<std::vector<std::string>> v6 = {{"2001:db8::1"}, {"2001:db8::21", "2001:db8::22"}};
  return {{"tcp_v4", ProbeType::kTcpSyn, "198.51.100.1", "192.0.2.100", v4},
          {"udp_v4", ProbeType::kUdpUnreachable, "198.51.100.1", "192.0.2.100", v4},
          {"tcp_v6", ProbeType::kTcpSyn, "2001:db8:1::1", "2001:db8:2::100", v6},
          {"udp_v6", ProbeType::kUdpUnreachable, "2001:db8:1::1", "2001:db8:2::100", v6},
          // ICMP echo: the flow's id is its checksum (Paris traceroute), which the network hashes here.
          {"icmp_v4", ProbeType::kIcmpPing, "198.51.100.1", "192.0.2.100", v4},
          {"icmp_v6", ProbeType::kIcmpPing, "2001:db8:1::1", "2001:db8:2::100", v6}};
}

struct TraceLab {
  FakeClock clock;
  FakeLink link{clock};
  Session session{clock, link.sink(), link.source(), 0x7ace, fake_engine_options()};
  TraceTarget target;
  explicit TraceLab(const Case& c) {
    target.name = c.name;
    target.type = c.type;
    target.dst = *IpAddress::parse(c.dst);
    target.src = *IpAddress::parse(c.src);
    target.dst_port = c.type == ProbeType::kUdpUnreachable ? 33434 : c.type == ProbeType::kTcpSyn ? 80 : 0;
  }
};

TEST(TraceComponent, EachFlowFollowsItsOwnPathToTheDestination) {
  for (const Case& c : cases()) {
    SCOPED_TRACE(c.name);
    TraceLab lab(c);
    const auto hops = c.hops;
    lab.link.set_responder([&](std::span<const uint8_t> p) -> std::vector<ScriptedReply> {
      return {{testing::network_reply(p, hops), microseconds(100)}};
    });
    SessionProber prober(lab.session, lab.target, 1, 1000);
    const std::vector<uint16_t> sports = {40000, 40001, 40002, 40003};
    const auto flows = trace_flows(prober, sports, TraceOptions{});
    ASSERT_EQ(flows.size(), sports.size());
    for (const FlowTrace& f : flows) {
      SCOPED_TRACE(f.sport);
      EXPECT_TRUE(f.reached);
      ASSERT_EQ(f.end_ttl, 3);
      ASSERT_EQ(f.hops.size(), 3u);
      for (int ttl = 1; ttl <= 2; ++ttl) {
        EXPECT_EQ(f.hops[size_t(ttl) - 1].kind, HopReply::Kind::kTimeExceeded);
        EXPECT_EQ(f.hops[size_t(ttl) - 1].from.to_string(), testing::network_hop(hops, ttl, f.sport));
        EXPECT_NEAR(f.hops[size_t(ttl) - 1].rtt_s, 100e-6, 1e-6);
      }
      EXPECT_EQ(f.hops[2].kind, HopReply::Kind::kDestination);
      EXPECT_EQ(f.hops[2].from, lab.target.dst);
    }
    // Every probe left with its flow's source port, at the TTL it was meant for: 8 TTLs in the first
    // round (one window), nothing after the destination answered.
    EXPECT_EQ(prober.sent(), 8u * sports.size());
    const TraceGraph g = build_graph(flows, 1);
    ASSERT_EQ(g.links.size(), 4u);
    EXPECT_EQ(g.links[0].sports, (std::vector<uint16_t>{40000, 40002}));
    EXPECT_EQ(g.links[1].sports, (std::vector<uint16_t>{40001, 40003}));
    EXPECT_EQ(g.paths.size(), 2u);
  }
}

TEST(TraceComponent, MdaFindsEveryNextHopAndAssignsEachPortToItsPath) {
  for (const Case& c : cases()) {
    SCOPED_TRACE(c.name);
    TraceLab lab(c);
    auto hops = c.hops;
    const bool v4 = lab.target.dst.af == AddressFamily::kV4;
    hops.push_back(
        v4 ? std::vector<std::string>{"192.0.2.31", "192.0.2.32", "192.0.2.33", "192.0.2.34"}
           : std::vector<std::string>{"2001:db8::31", "2001:db8::32", "2001:db8::33", "2001:db8::34"});
    lab.link.set_responder([&](std::span<const uint8_t> p) -> std::vector<ScriptedReply> {
      return {{testing::network_reply(p, hops), microseconds(100)}};
    });
    SessionProber prober(lab.session, lab.target, 1, 1000);
    std::vector<uint16_t> pool;
    for (uint16_t p = 50000; p < 50256; ++p) pool.push_back(p);
    const MdaResult r = run_mda(prober, pool, TraceOptions{}, 0.95, 256);
    EXPECT_TRUE(r.complete) << r.stop_reason;
    const TraceGraph g = build_graph(r.flows, 1);
    std::map<int, size_t> per_ttl;
    for (const auto& n : g.nodes) ++per_ttl[n.ttl];
    EXPECT_EQ(per_ttl, (std::map<int, size_t>{{1, 1}, {2, 2}, {3, 4}, {4, 1}}));
    // Each of the 4 hop-3 routers was seen through its hop-2 parent by enough flows: 2 next hops each
    // (sport % 4 under sport % 2), so MDA needs 11 continuing flows through each hop-2 router.
    for (const FlowTrace& f : r.flows)
      for (int ttl = 1; ttl <= 3; ++ttl)
        EXPECT_EQ(f.hops[size_t(ttl) - 1].from.to_string(), testing::network_hop(hops, ttl, f.sport));
    EXPECT_GE(r.flows.size(), 22u);
    EXPECT_LE(r.flows.size(), 64u);
  }
}

// Pathloss over the scripted network: the flows of one hop-2 router lose 20 % of what goes beyond it (the
// link into the destination), the other router's hop-2 answers are rate limited (1 in 4) but nothing beyond
// it is lost.
TEST(TraceComponent, PathlossNamesTheLossyLinkAndTellsRateLimitingApart) {
  for (const Case& c : cases()) {
    if (c.type == ProbeType::kIcmpPing) continue;  // pathloss takes -S or -2 (flows with ports)
    SCOPED_TRACE(c.name);
    TraceLab lab(c);
    const auto hops = c.hops;
    uint64_t beyond = 0, limited = 0;
    lab.link.set_responder([&](std::span<const uint8_t> p) -> std::vector<ScriptedReply> {
      const bool v6 = (p[0] >> 4) == 6;
      const int ttl = v6 ? p[7] : p[8];
      const size_t l4 = v6 ? 40 : size_t(p[0] & 0x0f) * 4;
      const uint16_t sport = uint16_t(p[l4] << 8 | p[l4 + 1]);
      if (sport % 2 == 1 && ttl >= 3 && beyond++ % 5 == 0) return {};   // 20 % lost after hop 2
      if (sport % 2 == 0 && ttl == 2 && limited++ % 4 != 0) return {};  // hop 2 answers 1 in 4
      return {{testing::network_reply(p, hops), microseconds(100)}};
    });
    SessionProber prober(lab.session, lab.target, 0.5, 10000);
    const std::vector<uint16_t> sports = {40000, 40001, 40002, 40003, 40004, 40005};
    const std::vector<bool> reference = {false, false, false, false, true, true};
    PathlossOptions o;
    o.probes_per_hop = 200;
    const auto flows = measure_pathloss(prober, sports, reference, o);
    ASSERT_EQ(flows.size(), sports.size());
    std::vector<PathlossVerdict> verdicts;
    for (const auto& f : flows) verdicts.push_back(judge_flow(f));
    compare_healthy(flows, verdicts);
    for (size_t i = 0; i < flows.size(); ++i) {
      SCOPED_TRACE(flows[i].sport);
      ASSERT_EQ(flows[i].hops.size(), 3u);
      for (const auto& h : flows[i].hops) EXPECT_EQ(h.sent, 200u);
      if (flows[i].sport % 2 == 1) {
        EXPECT_EQ(verdicts[i].kind, PathlossVerdict::Kind::kLossy);
        EXPECT_EQ(verdicts[i].suspect_ttl, 3);
        EXPECT_EQ(verdicts[i].from.to_string(), testing::network_hop(hops, 2, flows[i].sport));
        EXPECT_EQ(verdicts[i].to, lab.target.dst);
        EXPECT_EQ(verdicts[i].blame, "link");  // the even flows reach the destination clean
        EXPECT_TRUE(verdicts[i].rate_limited_ttls.empty());
      } else {
        EXPECT_EQ(verdicts[i].kind, PathlossVerdict::Kind::kClean);
        EXPECT_EQ(verdicts[i].rate_limited_ttls, std::vector<int>{2});
      }
    }
    const auto suspects = suspects_of(flows, verdicts);
    ASSERT_EQ(suspects.size(), 1u);
    EXPECT_EQ(suspects[0].sports, (std::vector<uint16_t>{40001, 40003, 40005}));
  }
}

}  // namespace
}  // namespace netprobe
