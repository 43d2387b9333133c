#include "sched/plan.h"

#include <gtest/gtest.h>

#include <map>
#include <set>
#include <tuple>

namespace netprobe {
namespace {

IpAddress ip(const char* s) { return *IpAddress::parse(s); }

std::vector<std::string> to_strings(const std::vector<IpAddress>& v) {
  std::vector<std::string> out;
  for (const auto& a : v) out.push_back(a.to_string());
  return out;
}

TEST(UsableSources, SkipNetworkAndBroadcastAcceptSinglePrefixes) {
  using V = std::vector<std::string>;
  EXPECT_EQ(to_strings(source_addresses(*IpNetwork::parse("10.0.0.0/30"))), (V{"10.0.0.1", "10.0.0.2"}));
  EXPECT_EQ(to_strings(source_addresses(*IpNetwork::parse("10.0.0.0/31"))), (V{"10.0.0.0", "10.0.0.1"}));
  EXPECT_EQ(to_strings(source_addresses(*IpNetwork::parse("10.0.0.7/32"))), (V{"10.0.0.7"}));
  EXPECT_EQ(to_strings(source_addresses(*IpNetwork::parse("fd00::/126"))),
            (V{"fd00::1", "fd00::2", "fd00::3"}));
  EXPECT_EQ(to_strings(source_addresses(*IpNetwork::parse("fd00::5/128"))), (V{"fd00::5"}));
  EXPECT_EQ(host_addresses(*IpNetwork::parse("10.0.0.0/8"), 100).size(), 100u);
}

struct Fixture {
  Config config;
  std::vector<ResolvedTarget> resolved;

  Fixture() {
    GroupConfig g1;
    g1.name = "g1";
    g1.src_port_a = 65000;
    g1.src_port_z = 65002;
    GroupConfig g2;
    g2.name = "g2";
    g2.src_port_a = 65100;
    g2.src_port_z = 65101;
    g2.dscp = 11;
    config.groups = {{"g1", g1}, {"g2", g2}};
    config.global.interval_s = 30;
  }
  TargetConfig& add(const std::string& name, ProbeType type, const char* dst, int nb) {
    TargetConfig t;
    t.name = name;
    t.type = type;
    t.destination = dst;
    t.dst_port = 80;
    t.nb_packets = nb;
    t.groups = {"g1", "g2"};
    return config.targets[name] = t;
  }
  Plan plan() {
    resolved.clear();
    for (auto& [name, t] : config.targets) {
      if (t.is_subnet)
        resolved.push_back({&t, host_addresses(*IpNetwork::parse(t.destination))});
      else
        resolved.push_back({&t, {ip(t.destination.c_str())}});
    }
    auto p = build_plan(config, resolved, [](const IpAddress&) { return std::optional(ip("192.0.2.1")); });
    EXPECT_TRUE(p.ok());
    return std::move(p).value();
  }
};

TEST(BuildPlan, NbPacketsPerGroupPortsRoundRobinGroupsInterleaved) {
  Fixture f;
  f.add("web", ProbeType::kTcpSyn, "198.51.100.1", 6);
  const Plan plan = f.plan();
  ASSERT_EQ(plan.buckets.size(), 2u);
  ASSERT_EQ(plan.probes.size(), 12u);  // nb_packets per group
  std::vector<uint16_t> g1_ports, g2_ports;
  for (size_t i = 0; i < plan.probes.size(); ++i) {
    const auto& p = plan.probes[i];
    EXPECT_EQ(plan.buckets[plan.bucket_of(p)].group, i % 2 == 0 ? "g1" : "g2")
        << "groups alternate within a target";
    (plan.buckets[plan.bucket_of(p)].group == "g1" ? g1_ports : g2_ports).push_back(p.src_port);
    EXPECT_EQ(plan.source_of(p).to_string(), "192.0.2.1") << "kernel-chosen source";
  }
  EXPECT_EQ(g1_ports, (std::vector<uint16_t>{65000, 65001, 65002, 65000, 65001, 65002}));
  EXPECT_EQ(g2_ports, (std::vector<uint16_t>{65100, 65101, 65100, 65101, 65100, 65101}));
  EXPECT_EQ(plan.templates[plan.probes[1].tmpl].params.dscp, 11);
}

TEST(BuildPlan, SourceSubnetCoversEveryAddressPortPair) {
  Fixture f;
  f.config.groups["g1"].src_subnet_ipv4 = IpNetwork::parse("192.0.2.0/29");  // 6 usable addresses
  f.config.groups["g1"].src_port_z = 65001;                                  // 2 ports
  f.add("web", ProbeType::kUdpUnreachable, "198.51.100.1", 12).groups = {"g1"};
  const Plan plan = f.plan();
  std::set<std::pair<std::string, uint16_t>> pairs;
  for (const auto& p : plan.probes) pairs.insert({plan.source_of(p).to_string(), p.src_port});
  EXPECT_EQ(pairs.size(), 12u) << "netprobify's rotation repeated port 65000 here "
                                  "(docs/netprobify-compatibility.md#q8-source-subnet-rotation)";
  EXPECT_FALSE(pairs.count({"192.0.2.7", 65000})) << "broadcast never used";
}

TEST(BuildPlan, SubnetTargetProbesEveryHostInOneTarget) {
  Fixture f;
  auto& t = f.add("rack", ProbeType::kIcmpPing, "198.51.100.0/30", 3);
  t.is_subnet = true;
  t.groups = {"g1"};
  const Plan plan = f.plan();
  EXPECT_EQ(plan.targets.size(), 1u);
  EXPECT_EQ(plan.templates.size(), 2u);  // .1 and .2
  EXPECT_EQ(plan.probes.size(), 6u);     // nb_packets per host per group
  std::set<std::string> dsts;
  for (const auto& p : plan.probes) dsts.insert(plan.templates[p.tmpl].params.dst.to_string());
  EXPECT_EQ(dsts, (std::set<std::string>{"198.51.100.1", "198.51.100.2"}));
}

// A flow (docs/paths.md) is one (template, source address, source port), or (template, source address) for
// ICMPping: every probe FlowCursor maps to it carries that pair, and two flows never share one.
TEST(BuildPlan, FlowsAreTheDistinctSourcePairsOfEachTemplate) {
  struct Case {
    const char* name;
    ProbeType type;
    const char* dst;
    int nb_packets;
    const char* src_subnet;  // of g1, or null
    size_t flows;            // expected Plan::flow_count
    uint16_t g1_ports = 3;
  };
  // g1: 3 ports, g2: 2 ports (Fixture).
  const Case cases[] = {
      {"ports only", ProbeType::kTcpSyn, "198.51.100.1", 7, nullptr, 3 + 2},
      {"fewer probes than ports", ProbeType::kUdpUnreachable, "198.51.100.1", 2, nullptr, 2 + 2},
      {"subnet sources x ports", ProbeType::kTcpSyn, "198.51.100.1", 40, "192.0.2.0/29", 6 * 3 + 2},
      {"icmp: one flow per source", ProbeType::kIcmpPing, "198.51.100.1", 40, "192.0.2.0/29", 6 + 1},
      {"subnet target: per host", ProbeType::kTcpSyn, "198.51.100.0/30", 9, nullptr, 2 * (3 + 2)},
      {"1,000 ports: the first 256 flows tracked", ProbeType::kTcpSyn, "198.51.100.1", 3000, nullptr,
       kMaxTrackedFlows + 2, 1000},
      {"more ports than probes: half the probes' flows", ProbeType::kTcpSyn, "198.51.100.1", 100, nullptr,
       50 + 2, 1000},
      {"few probes: at least 16 flows", ProbeType::kTcpSyn, "198.51.100.1", 20, nullptr, 16 + 2, 1000},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    Fixture f;
    if (c.src_subnet) f.config.groups["g1"].src_subnet_ipv4 = IpNetwork::parse(c.src_subnet);
    f.config.groups["g1"].src_port_a = 40000;
    f.config.groups["g1"].src_port_z = uint16_t(40000 - 1 + c.g1_ports);
    auto& t = f.add("t", c.type, c.dst, c.nb_packets);
    t.is_subnet = std::string(c.dst).find('/') != std::string::npos;
    const Plan plan = f.plan();
    ASSERT_EQ(plan.template_flows.size(), plan.templates.size());
    EXPECT_EQ(plan.flow_count, c.flows);
    std::map<uint32_t, std::tuple<uint32_t, std::string, uint16_t>> pair_of_flow;
    FlowCursor cursor(plan);
    for (const PlannedProbe& p : plan.probes) {
      const uint32_t flow = cursor.next(p);
      if (flow == kUntrackedFlow) {
        EXPECT_GE(p.src_port, 40000 + plan.template_flows[p.tmpl].count)
            << "only flows beyond the tracked ones";
        continue;
      }
      ASSERT_LT(flow, plan.flow_count);
      const uint16_t port = c.type == ProbeType::kIcmpPing ? 0 : p.src_port;
      const auto pair = std::tuple(p.tmpl, plan.source_of(p).to_string(), port);
      auto [it, added] = pair_of_flow.emplace(flow, pair);
      EXPECT_EQ(it->second, pair) << "flow " << flow << " changed its 5-tuple";
    }
    EXPECT_EQ(pair_of_flow.size(), c.flows) << "every flow probed";
    std::set<std::tuple<uint32_t, std::string, uint16_t>> distinct;
    for (const auto& [flow, pair] : pair_of_flow) distinct.insert(pair);
    EXPECT_EQ(distinct.size(), c.flows) << "two flows share a 5-tuple";
  }
}

TEST(BuildPlan, TargetsRoundRobinAndInactiveOnesSkipped) {
  Fixture f;
  f.add("a", ProbeType::kTcpSyn, "198.51.100.1", 2).groups = {"g1"};
  f.add("b", ProbeType::kTcpSyn, "198.51.100.2", 2).groups = {"g1"};
  f.add("lonely", ProbeType::kTcpSyn, "198.51.100.3", 2).groups = {};
  const Plan plan = f.plan();
  ASSERT_EQ(plan.probes.size(), 4u);
  std::vector<std::string> order;
  for (const auto& p : plan.probes) order.push_back(plan.buckets[plan.bucket_of(p)].target);
  EXPECT_EQ(order, (std::vector<std::string>{"a", "b", "a", "b"}));
}

// A target without a route to one of its addresses is left out whole, named in Error::target (the worker
// reports it as inactive from that field, it never parses the message), and the others are planned.
TEST(BuildPlan, UnroutableTargetIsSkippedWholeAndNamed) {
  Fixture f;
  f.add("web", ProbeType::kTcpSyn, "198.51.100.1", 2);
  f.add("lost", ProbeType::kTcpSyn, "203.0.113.9", 2);
  f.add("also-web", ProbeType::kIcmpPing, "198.51.100.2", 2);
  f.resolved.clear();
  for (auto& [name, t] : f.config.targets) f.resolved.push_back({&t, {ip(t.destination.c_str())}});
  auto p = build_plan(f.config, f.resolved, [](const IpAddress& dst) -> std::optional<IpAddress> {
    if (dst == ip("203.0.113.9")) return std::nullopt;
    return ip("192.0.2.1");
  });
  ASSERT_TRUE(p.ok()) << p.error().message;
  ASSERT_EQ(p->skipped_targets.size(), 1u);
  EXPECT_EQ(p->skipped_targets[0].target, "lost");
  EXPECT_NE(p->skipped_targets[0].message.find("no route to 203.0.113.9"), std::string::npos);
  EXPECT_EQ(p->active_targets, 2u);
  EXPECT_EQ(p->probes.size(), 8u);  // 2 targets x 2 groups x nb_packets 2
  for (const auto& b : p->buckets) EXPECT_NE(b.target, "lost");
}

TEST(Schedule, SpreadsEvenlyCapsRateAndHonoursIntervalPackets) {
  Fixture f;
  f.add("a", ProbeType::kTcpSyn, "198.51.100.1", 5).groups = {"g1"};
  f.add("b", ProbeType::kTcpSyn, "198.51.100.2", 5).groups = {"g1"};
  Plan plan = f.plan();
  using std::chrono::milliseconds;
  auto at = schedule(plan, milliseconds(1000), 0);
  ASSERT_EQ(at.size(), 10u);
  for (size_t i = 0; i < at.size(); ++i) EXPECT_EQ(at[i], milliseconds(100 * i));

  at = schedule(plan, milliseconds(1000), 5);  // 5 packets/s cap beats the window
  EXPECT_EQ(at[9], milliseconds(1800));

  plan.interval_packets_s = 0.5;  // a and b alternate: each target's packets >= 500 ms apart
  at = schedule(plan, milliseconds(1000), 0);
  for (size_t i = 2; i < at.size(); ++i) EXPECT_GE(at[i] - at[i - 2], milliseconds(500));
  for (size_t i = 1; i < at.size(); ++i) EXPECT_GE(at[i], at[i - 1]);
}

TEST(SendWindow, ShareOfIntervalLeftAfterLongestTimeout) {
  Plan plan;
  plan.max_timeout = std::chrono::seconds(1);
  EXPECT_EQ(send_window(plan, 11), std::chrono::seconds(8));
  EXPECT_EQ(send_window(plan, 1), Nanos(0));
}

}  // namespace
}  // namespace netprobe
