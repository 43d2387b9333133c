// src/trace's pure logic: the MDA stopping points, the hops/links graph, the per-flow pathloss verdict
// (table-driven), the reports' layouts, and trace_flows() over a scripted HopProber (no packets).
#include <gtest/gtest.h>

#include <cstdio>
#include <functional>
#include <random>

#include "trace/pathloss.h"
#include "trace/report.h"
#include "trace/trace.h"

namespace netprobe {
namespace {

IpAddress ip(const char* s) { return *IpAddress::parse(s); }

TEST(Mda, StoppingPointsAt95And99Percent) {
  // The MDA's published table at 95 % (k = 2..17 next hops: flows needed after seeing k - 1).
  const std::vector<int> at95 = {6, 11, 16, 21, 27, 33, 38, 44, 51, 57, 63, 70, 76, 83, 90, 96};
  const std::vector<int> at99 = {8, 15, 21, 28, 36, 43, 51, 58, 66, 74, 82, 90, 98, 106, 115, 123};
  for (int seen = 1; seen <= 16; ++seen) {
    EXPECT_EQ(mda_flows_needed(seen, 0.95), at95[size_t(seen) - 1]) << seen;
    EXPECT_EQ(mda_flows_needed(seen, 0.99), at99[size_t(seen) - 1]) << seen;
  }
  EXPECT_EQ(mda_flows_needed(0, 0.95), 0);
  EXPECT_EQ(mda_flows_needed(65, 0.95), 0);
  EXPECT_EQ(mda_flows_needed(1, 1.0), 0);
}

// A network of routers per TTL, picked by sport % count; the destination beyond. Silent where `silent`
// says so.
class ScriptedNetwork final : public HopProber {
 public:
  std::vector<std::vector<std::string>> hops;
  IpAddress dst = ip("198.51.100.1");
  std::function<bool(const ProbeSpec&)> silent = [](const ProbeSpec&) { return false; };
  size_t probes = 0, batches = 0;
  std::vector<HopReply> probe(std::span<const ProbeSpec> specs) override {
    ++batches;
    std::vector<HopReply> out(specs.size());
    for (size_t i = 0; i < specs.size(); ++i) {
      ++probes;
      if (silent(specs[i])) continue;
      HopReply& h = out[i];
      h.rtt_s = 0.001 * specs[i].ttl;
      if (size_t(specs[i].ttl) <= hops.size()) {
        const auto& r = hops[specs[i].ttl - 1];
        h.kind = HopReply::Kind::kTimeExceeded;
        h.from = ip(r[specs[i].sport % r.size()].c_str());
        h.icmp_type = 11;
      } else {
        h.kind = HopReply::Kind::kDestination;
        h.from = dst;
      }
    }
    return out;
  }
};

TEST(TraceFlows, RetriesSilentHopsOnceAndStopsAtTheDestination) {
  ScriptedNetwork net;
  net.hops = {{"192.0.2.1"}, {"192.0.2.2"}, {"192.0.2.3"}};
  int asked_ttl2 = 0;
  net.silent = [&](const ProbeSpec& s) { return s.ttl == 2 && asked_ttl2++ == 0; };  // lost once
  const std::vector<uint16_t> sports = {1000};
  const auto flows = trace_flows(net, sports, TraceOptions{});
  ASSERT_EQ(flows.size(), 1u);
  EXPECT_TRUE(flows[0].reached);
  EXPECT_EQ(flows[0].end_ttl, 4);
  EXPECT_EQ(flows[0].hops[1].from, ip("192.0.2.2"));
  EXPECT_EQ(net.probes, 8u + 1u);  // one window of 8 TTLs, then TTL 2 again
}

TEST(TraceFlows, GivesUpAfterTheGapLimitAndIsBounded) {
  ScriptedNetwork net;
  net.hops = {{"192.0.2.1"}};
  net.silent = [](const ProbeSpec& s) { return s.ttl >= 2; };  // a black hole after hop 1
  TraceOptions o;
  o.max_ttl = 30;
  const std::vector<uint16_t> sports = {1000, 1001};
  const auto flows = trace_flows(net, sports, o);
  for (const auto& f : flows) {
    EXPECT_FALSE(f.reached);
    EXPECT_EQ(f.end_ttl, 0);
    EXPECT_TRUE(f.hops[0].answered());
  }
  // First window (TTL 1-8) leaves 7 silent hops >= the gap limit: no second window; one retry of TTL 2-8.
  EXPECT_EQ(net.probes, 2u * (8 + 7));
}

TEST(TraceMda, AddsFlowsUntilEveryHopHasEnoughAndStopsAtTheBudget) {
  ScriptedNetwork net;
  net.hops = {{"192.0.2.1"}, {"192.0.2.21", "192.0.2.22", "192.0.2.23"}};
  std::vector<uint16_t> pool;
  for (uint16_t p = 2000; p < 2100; ++p) pool.push_back(p);
  const auto r = run_mda(net, pool, TraceOptions{}, 0.95, 100);
  EXPECT_TRUE(r.complete);
  // Hop 1 has 3 next hops: it needs 16 continuing flows (mda_flows_needed(3)).
  EXPECT_GE(r.flows.size(), 16u);
  const auto budget = run_mda(net, pool, TraceOptions{}, 0.95, 8);
  EXPECT_FALSE(budget.complete);
  EXPECT_EQ(budget.stop_reason, "flow budget");
  EXPECT_EQ(budget.flows.size(), 8u);
}

PathlossFlow flow_of(std::vector<std::pair<uint64_t, uint64_t>> sent_received) {
  PathlossFlow f;
  f.sport = 40001;
  const char* addrs[] = {"192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4", "192.0.2.5"};
  for (size_t i = 0; i < sent_received.size(); ++i)
    f.hops.push_back({sent_received[i].first, sent_received[i].second, true, ip(addrs[i])});
  return f;
}

TEST(PathlossVerdict, FirstHopAfterWhichEveryLaterHopAnswersLess) {
  struct Row {
    const char* name;
    std::vector<std::pair<uint64_t, uint64_t>> hops;
    PathlossVerdict::Kind kind;
    int suspect_ttl;
    std::vector<int> rate_limited;
  };
  const std::vector<Row> rows = {
      {"clean", {{300, 300}, {300, 299}, {300, 300}}, PathlossVerdict::Kind::kClean, 0, {}},
      {"20% after hop 2",
       {{300, 300}, {300, 300}, {300, 240}, {300, 238}},
       PathlossVerdict::Kind::kLossy,
       3,
       {}},
      {"lossy from the first hop", {{300, 200}, {300, 199}}, PathlossVerdict::Kind::kLossy, 1, {}},
      {"black hole after hop 1", {{300, 300}, {300, 0}, {300, 0}}, PathlossVerdict::Kind::kLossy, 2, {}},
      // Hop 2 answers 10 %, hop 3 everything: rate limiting, never loss.
      {"rate limited hop", {{300, 300}, {300, 30}, {300, 300}}, PathlossVerdict::Kind::kClean, 0, {2}},
      // Rate limited at 2, and real 20 % loss into hop 4 (hop 3 clean): the link 3 -> 4.
      {"rate limited then lossy",
       {{300, 300}, {300, 30}, {300, 300}, {300, 240}},
       PathlossVerdict::Kind::kLossy,
       4,
       {2}},
      // 1 % loss at 300 probes is no proof against a clean hop (3 of 300).
      {"chance", {{300, 300}, {300, 297}}, PathlossVerdict::Kind::kClean, 0, {}},
      {"nothing answers", {{300, 0}, {300, 0}}, PathlossVerdict::Kind::kNoAnswer, 0, {}},
  };
  for (const Row& r : rows) {
    SCOPED_TRACE(r.name);
    const auto v = judge_flow(flow_of(r.hops));
    EXPECT_EQ(v.kind, r.kind);
    EXPECT_EQ(v.suspect_ttl, r.suspect_ttl);
    EXPECT_EQ(v.rate_limited_ttls, r.rate_limited);
    if (v.kind == PathlossVerdict::Kind::kLossy) {
      EXPECT_EQ(v.from_known, r.suspect_ttl > 1);
      EXPECT_LT(v.p_value, 0.001);
    }
  }
}

TEST(PathlossVerdict, BlamesTheLinkWhenHealthyFlowsCrossTheSameNextHop) {
  auto lossy = flow_of({{300, 300}, {300, 300}, {300, 240}});
  auto clean = flow_of({{300, 300}, {300, 300}, {300, 300}});
  clean.sport = 40002;
  auto elsewhere = flow_of({{300, 300}, {300, 300}, {300, 300}});
  elsewhere.sport = 40003;
  elsewhere.hops[2].address = ip("192.0.2.99");
  struct Row {
    const char* name;
    std::vector<PathlossFlow> flows;
    std::string blame;
  };
  const std::vector<Row> rows = {{"healthy through it", {lossy, clean}, "link"},
                                 {"only lossy through it", {lossy, lossy}, "router"},
                                 {"nobody else", {lossy, elsewhere}, "unknown"}};
  for (const Row& r : rows) {
    SCOPED_TRACE(r.name);
    std::vector<PathlossVerdict> v;
    for (const auto& f : r.flows) v.push_back(judge_flow(f));
    compare_healthy(r.flows, v);
    EXPECT_EQ(v[0].blame, r.blame);
  }
}

TEST(TraceReport, JsonTextAndDotLayouts) {
  ScriptedNetwork net;
  net.hops = {{"192.0.2.1"}, {"192.0.2.21", "192.0.2.22"}};
  TraceReport r;
  r.target = {"target", ProbeType::kTcpSyn, ip("198.51.100.1"), ip("192.0.2.100"), 80};
  r.options.max_ttl = 5;
  const std::vector<uint16_t> sports = {40000, 40001};
  r.flows = trace_flows(net, sports, r.options);
  r.probes_sent = net.probes;
  EXPECT_EQ(
      trace_json(r),
      R"({"address":"198.51.100.1","first_ttl":1,"flows":[{"hops":[{"address":"192.0.2.1","icmp":"time_exceeded:0","kind":"time_exceeded","reply_ttl":0,"rtt_ms":1.0,"ttl":1},{"address":"192.0.2.21","icmp":"time_exceeded:0","kind":"time_exceeded","reply_ttl":0,"rtt_ms":2.0,"ttl":2},{"address":"198.51.100.1","kind":"destination","reply_ttl":0,"rtt_ms":3.0,"ttl":3}],"reached":true,"sport":40000},{"hops":[{"address":"192.0.2.1","icmp":"time_exceeded:0","kind":"time_exceeded","reply_ttl":0,"rtt_ms":1.0,"ttl":1},{"address":"192.0.2.22","icmp":"time_exceeded:0","kind":"time_exceeded","reply_ttl":0,"rtt_ms":2.0,"ttl":2},{"address":"198.51.100.1","kind":"destination","reply_ttl":0,"rtt_ms":3.0,"ttl":3}],"reached":true,"sport":40001}],"links":[{"from":"192.0.2.1","sports":[40000],"to":"192.0.2.21","ttl":1},{"from":"192.0.2.1","sports":[40001],"to":"192.0.2.22","ttl":1},{"from":"192.0.2.21","sports":[40000],"to":"198.51.100.1","ttl":2},{"from":"192.0.2.22","sports":[40001],"to":"198.51.100.1","ttl":2}],"max_ttl":5,"paths":[{"hops":["192.0.2.1","192.0.2.21","198.51.100.1"],"sports":[40000]},{"hops":["192.0.2.1","192.0.2.22","198.51.100.1"],"sports":[40001]}],"port":80,"probes_sent":10,"target":"target","type":"TCPsyn"}
)");
  const std::string text = trace_text(r);
  EXPECT_NE(text.find("path 2: 1 flow(s), source port(s) 40001\n"), std::string::npos) << text;
  EXPECT_NE(text.find("   2  192.0.2.22  2.000 ms  time_exceeded:0\n"), std::string::npos) << text;
  EXPECT_NE(text.find("   1 192.0.2.1 ->  2 192.0.2.21: 1 flow(s), source port(s) 40000\n"),
            std::string::npos)
      << text;
  const std::string dot = trace_dot(r);
  EXPECT_NE(dot.find("\"1/192.0.2.1\" -> \"2/192.0.2.22\" [label=\"1\"];"), std::string::npos) << dot;
}

// MPLS labels from a router's ICMP extensions (RFC 4950) reach the hop, the JSON, the text and the DOT label.
TEST(TraceReport, MplsLabelsOfAHop) {
  ScriptedNetwork net;
  net.hops = {{"192.0.2.1"}};
  TraceReport r;
  r.target = {"target", ProbeType::kUdpUnreachable, ip("198.51.100.1"), ip("192.0.2.100"), 33434};
  const std::vector<uint16_t> sports = {40000};
  r.flows = trace_flows(net, sports, r.options);
  HopReply& h = r.flows[0].hops[0];
  h.mpls_count = 2;
  h.mpls[0] = {16004, 0, false, 1};
  h.mpls[1] = {24001, 5, true, 1};
  r.names["192.0.2.1"] = "core1.example.net";
  EXPECT_NE(
      trace_json(r).find(
          R"("mpls":[{"bottom":false,"label":16004,"tc":0,"ttl":1},{"bottom":true,"label":24001,"tc":5,"ttl":1}])"),
      std::string::npos);
  EXPECT_NE(trace_json(r).find(R"("name":"core1.example.net")"), std::string::npos);
  const std::string text = trace_text(r);
  EXPECT_NE(text.find("   1  core1.example.net (192.0.2.1)  1.000 ms  time_exceeded:0  "
                      "[MPLS L=16004,TC=0,S=0,TTL=1 L=24001,TC=5,S=1,TTL=1]\n"),
            std::string::npos)
      << text;
  EXPECT_NE(trace_dot(r).find("MPLS L=16004"), std::string::npos);
}

TEST(PathlossReport, JsonListsTheSuspects) {
  PathlossReport r;
  r.target = {"target", ProbeType::kTcpSyn, ip("198.51.100.1"), ip("192.0.2.100"), 80};
  r.probes_per_hop = 300;
  r.flows = {flow_of({{300, 300}, {300, 240}}), flow_of({{300, 300}, {300, 300}})};
  r.flows[1].sport = 40002;
  r.flows[1].reference = true;
  for (const auto& f : r.flows) r.verdicts.push_back(judge_flow(f));
  compare_healthy(r.flows, r.verdicts);
  const std::string j = pathloss_json(r);
  EXPECT_NE(
      j.find(R"("suspects":[{"blame":"link","from":"192.0.2.1","sports":[40001],"to":"192.0.2.2","ttl":2}])"),
      std::string::npos)
      << j;
  const std::string text = pathloss_text(r);
  EXPECT_NE(text.find("suspect: link 1 192.0.2.1 -> 2 192.0.2.2 (blame link), source port(s) 40001"),
            std::string::npos)
      << text;
}

// The power of the verdict (docs/trace.md#power): flows of 4 hops whose link into hop 3 loses `loss`, the
// hops before it clean, N probes per hop, 200 seeded trials each; and how often a clean flow is called lossy.
TEST(PathlossVerdict, PowerAndFalseAlarms) {
  std::mt19937_64 rng(14);
  const auto found = [&](int n, double loss) {
    int hits = 0;
    for (int trial = 0; trial < 200; ++trial) {
      std::binomial_distribution<uint64_t> lost(uint64_t(n), loss);
      const uint64_t l3 = lost(rng), l4 = std::min<uint64_t>(uint64_t(n), l3 + 0);
      const auto v = judge_flow(flow_of({{uint64_t(n), uint64_t(n)},
                                         {uint64_t(n), uint64_t(n)},
                                         {uint64_t(n), uint64_t(n) - l3},
                                         {uint64_t(n), uint64_t(n) - l4}}));
      hits += v.kind == PathlossVerdict::Kind::kLossy && v.suspect_ttl == 3;
    }
    return hits;
  };
  // Found in 200 trials (measured, seed 14): the floor each row must keep.
  struct Row {
    int n;
    double loss;
    int at_least;
  };
  for (const Row& r :
       std::vector<Row>{{300, 0.05, 190}, {300, 0.02, 70}, {1000, 0.02, 195}, {1000, 0.01, 150}}) {
    const int hits = found(r.n, r.loss);
    std::printf("N=%d loss=%.0f%%: %d/200\n", r.n, r.loss * 100, hits);
    EXPECT_GE(hits, r.at_least) << r.n << " " << r.loss;
  }
  // A clean path whose hops each lose ~0.5 % of their answers on the way back: never lossy.
  int alarms = 0;
  std::binomial_distribution<uint64_t> noise(1000, 0.005);
  for (int trial = 0; trial < 500; ++trial) {
    std::vector<std::pair<uint64_t, uint64_t>> hops;
    for (int h = 0; h < 4; ++h) hops.push_back({1000, 1000 - noise(rng)});
    alarms += judge_flow(flow_of(hops)).kind == PathlossVerdict::Kind::kLossy;
  }
  std::printf("false alarms: %d/500\n", alarms);
  EXPECT_LE(alarms, 2);
}

}  // namespace
}  // namespace netprobe
