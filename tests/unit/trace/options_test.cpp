// The options shared by `netprobe trace`, `netprobe pathloss` and /api/v1/tests (src/trace/options.h): each
// refusal names its option with the command line's message, and JSON keys map onto the same options.
#include "trace/options.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace netprobe {
namespace {

TEST(TraceOptions, RefusalsNameTheOptionWithTheCommandLinesMessage) {
  struct Row {
    std::function<void(TraceCliOptions&)> set;
    std::string option, message;
  };
  const std::vector<Row> rows = {
      {[](auto& o) { o.format = "xml"; }, "format", "--format: \"xml\" is not text, json or dot"},
      {[](auto& o) { o.first_ttl = 0; }, "first-ttl", "--first-ttl: 1 to 64"},
      {[](auto& o) { o.max_ttl = 65; }, "max-ttl", "--max-ttl: from --first-ttl to 64"},
      {[](auto& o) { o.first_ttl = 5, o.max_ttl = 4; }, "max-ttl", "--max-ttl: from --first-ttl to 64"},
      {[](auto& o) { o.rate_pps = 0.5; }, "rate", "--rate: 1 to 100000 probes per second"},
      {[](auto& o) { o.wait_s = 0; }, "wait", "--wait: above 0, at most 60 s"},
      {[](auto& o) { o.confidence = 90; }, "confidence", "--confidence: 95 or 99"},
      {[](auto& o) { o.max_flows = 4097; }, "max-flows", "--max-flows: 1 to 4096"},
      {[](auto& o) { o.ipv4 = o.ipv6 = true; }, "ipv6", "-4 and -6 exclude each other"},
      {[](auto& o) { o.target = ""; }, "target", "TARGET: a host name or an address"},
      {[](auto& o) { o.dst_port = 70000; }, "destport", "-p: 70000 is not a port"},
      {[](auto& o) { o.sport_range = "9-1"; }, "sport-range",
       "--sport-range: \"9-1\" is not A-B with 1 <= A <= B <= 65535, at most 4096 ports"},
  };
  for (const auto& row : rows) {
    TraceCliOptions o;
    o.target = "192.0.2.1";
    row.set(o);
    OptionError e;
    EXPECT_FALSE(check_trace_options(o, &e)) << row.option;
    EXPECT_EQ(e.option, row.option);
    EXPECT_EQ(e.message, row.message);
  }
}

TEST(TraceOptions, Defaults) {
  TraceCliOptions o;
  o.target = "192.0.2.1";
  auto s = check_trace_options(o, nullptr);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->type, ProbeType::kTcpSyn);
  EXPECT_EQ(s->dst_port, 80);
  EXPECT_EQ(s->sports, std::vector<uint16_t>{kTraceDefaultSport});
  EXPECT_EQ(max_probes_of(*s), 60u);  // 1 flow x 2 attempts x 30 TTLs
  o.mode = '1';
  o.mda = true;
  o.max_flows = 8;
  s = check_trace_options(o, nullptr);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->dst_port, 0);  // ICMP echo: no port
  EXPECT_EQ(s->sports.size(), 8u);
  EXPECT_EQ(max_probes_of(*s), 8u * 2 * 30);
}

TEST(PathlossOptions, RefusalsAndReferenceFlows) {
  struct Row {
    std::function<void(PathlossCliOptions&)> set;
    std::string option, message;
  };
  const std::vector<Row> rows = {
      {[](auto& o) { o.format = "dot"; }, "format", "--format: \"dot\" is not text or json"},
      {[](auto& o) { o.mode = '1'; }, "protocol",
       "-1: ICMP echo has no ports, so no flows to tell apart (use -S or -2)"},
      {[](auto& o) { o.probes_per_hop = 0; }, "probes-per-hop", "--probes-per-hop: 1 to 100000"},
      {[](auto& o) { o.compare_healthy = 65; }, "compare-healthy", "--compare-healthy: 0 to 64"},
      {[](auto& o) { o.sport_range = "1-2"; }, "sports", "one of --sports and --sport-range"},
      {[](auto& o) { o.sports = "1,x"; }, "sports", "--sports: \"1,x\" is not a list of ports (40001,40007)"},
      {[](auto& o) { o.dst_port = 0; }, "destport", "-p: 0 is not a port"},
  };
  for (const auto& row : rows) {
    PathlossCliOptions o;
    o.target = "192.0.2.1";
    o.sports = "40001,40007";
    row.set(o);
    OptionError e;
    EXPECT_FALSE(check_pathloss_options(o, &e)) << row.option;
    EXPECT_EQ(e.option, row.option);
    EXPECT_EQ(e.message, row.message);
  }
  PathlossCliOptions o;
  o.target = "192.0.2.1";
  o.sports = "40001,40007,40001";
  o.compare_healthy = 2;
  auto s = check_pathloss_options(o, nullptr);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->sports, (std::vector<uint16_t>{40001, 40007, 40008, 40009}));
  EXPECT_EQ(s->reference, (std::vector<bool>{false, false, true, true}));
  EXPECT_EQ(max_probes_of(*s), 4u * 30 * (2 + 1000));
}

TEST(TraceOptions, JsonKeysAreTheLongNames) {
  TraceCliOptions o;
  OptionError e;
  ASSERT_TRUE(apply_trace_json(
      nlohmann::json::parse(
          R"({"protocol":"udp","destport":53,"mda":true,"max-ttl":20,"first-ttl":2,"rate":5,"wait":0.5,)"
          R"("confidence":99,"max-flows":16,"sport-range":"1000-1015","ipv6":true})"),
      o, &e))
      << e.message;
  EXPECT_EQ(o.mode, '2');
  EXPECT_EQ(o.dst_port, 53);
  EXPECT_TRUE(o.mda);
  EXPECT_EQ(o.max_ttl, 20);
  EXPECT_EQ(o.first_ttl, 2);
  EXPECT_EQ(o.rate_pps, 5);
  EXPECT_EQ(o.wait_s, 0.5);
  EXPECT_EQ(o.confidence, 99);
  EXPECT_EQ(o.max_flows, 16);
  EXPECT_EQ(o.sport_range, "1000-1015");
  EXPECT_TRUE(o.ipv6);

  struct Row {
    const char* json;
    const char* option;
  };
  for (const Row& row : std::vector<Row>{{R"({"max-ttl":"20"})", "max-ttl"},
                                         {R"({"mda":1})", "mda"},
                                         {R"({"protocol":"sctp"})", "protocol"},
                                         {R"({"interface":"eth0"})", "interface"},
                                         {R"({"max-ttl":1e12})", "max-ttl"}}) {
    TraceCliOptions t;
    EXPECT_FALSE(apply_trace_json(nlohmann::json::parse(row.json), t, &e)) << row.json;
    EXPECT_EQ(e.option, row.option) << row.json;
  }
  EXPECT_FALSE(apply_trace_json(nlohmann::json::array(), o, &e));
}

TEST(PathlossOptions, JsonSportsAsAListOrTheCommandLinesText) {
  PathlossCliOptions o;
  OptionError e;
  ASSERT_TRUE(
      apply_pathloss_json(nlohmann::json::parse(R"({"sports":[40001,40007],"probes-per-hop":10})"), o, &e));
  EXPECT_EQ(o.sports, "40001,40007");
  EXPECT_EQ(o.probes_per_hop, 10);
  ASSERT_TRUE(apply_pathloss_json(nlohmann::json::parse(R"({"sports":"5,6","compare-healthy":0})"), o, &e));
  EXPECT_EQ(o.sports, "5,6");
  EXPECT_FALSE(apply_pathloss_json(nlohmann::json::parse(R"({"protocol":"icmp"})"), o, &e));
  EXPECT_EQ(e.option, "protocol");
  EXPECT_FALSE(apply_pathloss_json(nlohmann::json::parse(R"({"sports":["a"]})"), o, &e));
  EXPECT_EQ(e.option, "sports");
  EXPECT_FALSE(apply_pathloss_json(nlohmann::json::parse(R"({"mda":true})"), o, &e));
  EXPECT_EQ(e.option, "mda");
}

}  // namespace
}  // namespace netprobe
