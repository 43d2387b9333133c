// Inventory documents: framing-free parsing and validation (one bad target rejected, the rest kept), target
// naming, lifetimes and dates, and the schema staying in step with the configuration's target definition.
#include <algorithm>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "inventory/document.h"

namespace netprobe {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using namespace std::chrono_literals;

nlohmann::json read_json(const std::string& relative) {
  std::ifstream in(std::string(NETPROBE_SOURCE_DIR) + "/" + relative);
  std::stringstream s;
  s << in.rdbuf();
  return nlohmann::json::parse(s.str());
}

TEST(inventory_document, OneBadTargetIsRejectedTheRestIsKept) {
  const auto doc = parse_inventory_document(R"({"targets": [
    {"hostname": "tor-01", "destination": "10.0.0.1", "type": "UDPunreachable", "dst_port": 33434, "groups": ["mesh"]},
    {"hostname": "tor-02", "destination": "10.0.0.2", "type": "TCPsyn", "groups": ["mesh"]},
    {"hostname": "tor-03", "destination": "10.0.0.3", "type": "ICMPping", "groups": ["mesh", "b"], "nb_pakets": 3},
    {"hostname": "tor-04", "destination": "2001:db8::4", "type": "ICMPping", "groups": ["mesh"], "state": "in production",
     "nb_packets": 5, "threshold": {"loss": 0.1}, "alert_level": "paging", "timeout": 0.5}
  ]})",
                                            "netbox");
  ASSERT_TRUE(doc.ok()) << doc.error().message;
  EXPECT_THAT(
      doc->rejected,
      ElementsAre(
          "netbox: targets[1] (hostname tor-02): dst_port: required for TCPsyn",
          R"(netbox: targets[2] (hostname tor-03): nb_pakets: unknown key (did you mean "nb_packets"?))"));
  ASSERT_EQ(doc->targets.size(), 2u);
  const TargetConfig& a = doc->targets[0].config;
  EXPECT_EQ(a.name, "netbox_tor-01");
  EXPECT_EQ(a.description, "from_netbox");
  EXPECT_TRUE(a.is_dynamic);
  EXPECT_EQ(a.type, ProbeType::kUdpUnreachable);
  EXPECT_EQ(a.destination, "10.0.0.1");
  EXPECT_EQ(a.dst_port, 33434);
  EXPECT_THAT(a.groups, ElementsAre("mesh"));
  EXPECT_FALSE(a.auto_register_to_groups);
  EXPECT_EQ(doc->targets[0].hostname, "tor-01");
  EXPECT_FALSE(doc->targets[0].lifetime);
  const TargetConfig& d = doc->targets[1].config;
  EXPECT_EQ(d.name, "netbox_tor-04");
  EXPECT_EQ(d.family(), AddressFamily::kV6);
  EXPECT_EQ(d.nb_packets, 5);
  EXPECT_EQ(d.state_label(), "in production");
  EXPECT_EQ(d.threshold.loss, 0.1);
  EXPECT_EQ(d.alert_level, AlertLevel::kPaging);
  EXPECT_EQ(d.timeout_s, 0.5);
}

TEST(inventory_document, YamlDocumentsAreRead) {
  const auto doc = parse_inventory_document(R"(# written by a shell script
targets:
  - hostname: web
    destination: example.com
    type: TCPsyn
    dst_port: 443
    groups: [g1, g2]
    lifetime: 1d2h
    dont_fragment: off
)",
                                            "cmdb", DocumentOptions{300});
  ASSERT_TRUE(doc.ok()) << doc.error().message;
  ASSERT_EQ(doc->targets.size(), 1u);
  EXPECT_TRUE(doc->rejected.empty());
  const DynamicTarget& t = doc->targets[0];
  EXPECT_EQ(t.config.name, "cmdb_web");
  EXPECT_THAT(t.config.groups, ElementsAre("g1", "g2"));
  EXPECT_FALSE(t.config.dont_fragment);
  EXPECT_EQ(t.config.dns_update_interval_s, 300);  // inherited from global.dns_update_interval
  EXPECT_EQ(t.lifetime, Nanos(26h));
}

TEST(inventory_document, GarbageIsAnErrorForTheWholeDocument) {
  for (const char* text : {"hello world", "[1, 2]", R"({"targets": 3})", R"({"target": []})",
                           "{\"targets\": [", "targets: [a, b", "null"}) {
    const auto doc = parse_inventory_document(text, "p");
    EXPECT_FALSE(doc.ok()) << text;
  }
  EXPECT_EQ(parse_inventory_document("hello", "p").error().message,
            "expected a mapping with a `targets` list, got a string");
  EXPECT_EQ(parse_inventory_document(R"({"targets": 3})", "p").error().message,
            "targets: expected a list, got 3");
}

TEST(inventory_document, EmptyListAndEveryTargetBad) {
  auto doc = parse_inventory_document(R"({"targets": []})", "p");
  ASSERT_TRUE(doc.ok());
  EXPECT_TRUE(doc->targets.empty());
  doc = parse_inventory_document(R"({"targets": [3, {"hostname": "x"}]})", "p");
  ASSERT_TRUE(doc.ok());
  EXPECT_TRUE(doc->targets.empty());
  EXPECT_THAT(doc->rejected,
              ElementsAre("p: targets[0]: expected a mapping, got 3",
                          "p: targets[1] (hostname x): destination: required key missing; type: required key "
                          "missing; groups: required key missing"));
}

TEST(inventory_document, TargetRules) {
  const auto doc = parse_inventory_document(R"({"targets": [
    {"hostname": "a", "destination": "10.0.0.1", "type": "ICMPping", "groups": []},
    {"hostname": "b b", "destination": "10.0.0.1", "type": "ICMPping", "groups": ["g"]},
    {"hostname": "c", "destination": "10.0.0.0/24", "type": "ICMPping", "groups": ["g"]},
    {"hostname": "d", "destination": "10.0.0.1", "type": "ICMPping", "groups": ["G"]},
    {"hostname": "e", "destination": "10.0.0.1", "type": "ICMPping", "groups": ["g"], "lifetime": "2x"},
    {"hostname": "f", "destination": "10.0.0.1", "type": "ICMPping", "groups": ["g"], "creation_date": "2026-02-31T00:00:00Z", "lifetime": 60},
    {"hostname": "g", "destination": "10.0.0.1", "type": "ICMPping", "groups": ["g"], "description": "x"},
    {"hostname": "h", "destination": "10.0.0.1", "type": "ICMPping", "groups": ["g"]},
    {"hostname": "h", "destination": "10.0.0.2", "type": "ICMPping", "groups": ["g"]}
  ]})",
                                            "p");
  ASSERT_TRUE(doc.ok()) << doc.error().message;
  ASSERT_EQ(doc->targets.size(), 1u);
  EXPECT_EQ(doc->targets[0].config.name, "p_h");
  EXPECT_THAT(
      doc->rejected,
      ElementsAre(
          "p: targets[0] (hostname a): groups: expected at least 1 item(s), got 0",
          R"(p: targets[1] (hostname b b): hostname: "b b" does not match ^[!-~]+$)",
          R"(p: targets[2] (hostname c): destination: "10.0.0.0/24" is a network: set is_subnet: true to probe its addresses)",
          R"(p: targets[3] (hostname d): groups[0]: "G" does not match ^[a-z0-9_\-\.]+$)",
          R"(p: targets[4] (hostname e): lifetime: "2x" does not match ^([0-9]+[wdhms])+$)",
          R"(p: targets[5] (hostname f): creation_date: "2026-02-31T00:00:00Z" is not a date)",
          "p: targets[6] (hostname g): description: unknown key (allowed: address_family, alert_level, "
          "creation_date, destination, dns_update_interval, dont_fragment, dst_port, expect, groups, "
          "hostname, "
          "ip_payload_size, is_subnet, lifetime, nb_packets, payload, state, tags, threshold, timeout, "
          "token, "
          "type)",
          "p: targets[8] (hostname h): hostname: duplicate of targets[7] (target names must be unique)"));
}

// UDPquery from a plug-in: the configuration's payload/expect/token keys and rules, and a token required
// (token-less matching by 5-tuple cannot be checked against other targets from one document).
TEST(inventory_document, UdpQueryTargets) {
  const auto doc = parse_inventory_document(R"({"targets": [
    {"hostname": "dns1", "destination": "10.0.0.53", "type": "UDPquery", "dst_port": 53, "groups": ["g"],
     "payload": "hex:0000 0100 0001 0000 0000 0000 0000 0100 01", "token": {"offset": 0, "length": 2},
     "expect": {"any": true}, "nb_packets": 10},
    {"hostname": "echo", "destination": "10.0.0.7", "type": "UDPquery", "dst_port": 7, "groups": ["g"],
     "payload": "ping"},
    {"hostname": "nopayload", "destination": "10.0.0.7", "type": "UDPquery", "dst_port": 7, "groups": ["g"],
     "token": {"offset": 0, "length": 2}},
    {"hostname": "badtoken", "destination": "10.0.0.7", "type": "UDPquery", "dst_port": 7, "groups": ["g"],
     "payload": "ping", "token": {"offset": 3, "length": 2}}
  ]})",
                                            "p");
  ASSERT_TRUE(doc.ok()) << doc.error().message;
  ASSERT_EQ(doc->targets.size(), 1u);
  const TargetConfig& t = doc->targets[0].config;
  EXPECT_EQ(t.name, "p_dns1");
  EXPECT_EQ(t.type, ProbeType::kUdpQuery);
  EXPECT_EQ(t.token_length, 2);
  EXPECT_EQ(t.expect_kind, "any");
  ASSERT_EQ(doc->rejected.size(), 3u);
  EXPECT_THAT(doc->rejected[0], HasSubstr("(hostname echo): token: required for a UDPquery target from an "
                                          "inventory"));
  EXPECT_THAT(doc->rejected[1], HasSubstr("(hostname nopayload): payload: required for UDPquery"));
  EXPECT_THAT(doc->rejected[2], HasSubstr("(hostname badtoken): token: token field ends past the payload"));
}

TEST(inventory_document, LifetimeAndDates) {
  EXPECT_EQ(parse_lifetime("1d2h"), Nanos(26h));
  EXPECT_EQ(parse_lifetime("90m"), Nanos(90min));
  EXPECT_EQ(parse_lifetime("1w"), Nanos(168h));
  EXPECT_EQ(parse_lifetime("1h30m15s"), Nanos(1h + 30min + 15s));
  EXPECT_EQ(parse_lifetime("3600"), Nanos(1h));
  for (const char* bad : {"", "0", "0s", "1x", "d", "1d2", "-5", "1.5h", "99999999999999999999d"})
    EXPECT_FALSE(parse_lifetime(bad)) << bad;

  EXPECT_EQ(parse_rfc3339("1970-01-01T00:00:00Z"), Nanos(0));
  EXPECT_EQ(parse_rfc3339("2026-11-21T13:52:14Z"), Nanos(std::chrono::seconds(1795269134)));
  EXPECT_EQ(parse_rfc3339("2026-11-21T14:52:14+01:00"), Nanos(std::chrono::seconds(1795269134)));
  EXPECT_EQ(parse_rfc3339("2026-11-21 13:52:14.5z"), Nanos(std::chrono::seconds(1795269134)) + Nanos(500ms));
  for (const char* bad :
       {"2026-11-21T13:52:14", "2026-13-01T00:00:00Z", "2026-11-21", "2026-11-21T13:52:14+1"})
    EXPECT_FALSE(parse_rfc3339(bad)) << bad;

  const auto doc = parse_inventory_document(R"({"targets": [
    {"hostname": "a", "destination": "10.0.0.1", "type": "ICMPping", "groups": ["g"], "lifetime": 60, "creation_date": 1000},
    {"hostname": "b", "destination": "10.0.0.1", "type": "ICMPping", "groups": ["g"], "lifetime": "1h", "creation_date": "1970-01-01T00:00:10Z"}
  ]})",
                                            "p");
  ASSERT_TRUE(doc.ok());
  ASSERT_EQ(doc->targets.size(), 2u);
  EXPECT_EQ(doc->targets[0].lifetime, Nanos(60s));
  EXPECT_EQ(doc->targets[0].creation_date, Nanos(1000s));
  EXPECT_EQ(doc->targets[1].lifetime, Nanos(1h));
  EXPECT_EQ(doc->targets[1].creation_date, Nanos(10s));
}

// The keys a dynamic target shares with static targets are defined once, in the configuration schema:
// schema/inventory.schema.json copies them verbatim and this test keeps the copies identical.
TEST(inventory_schema, SharedKeysAreTheConfigurationsTargetKeys) {
  const auto config = read_json("schema/netprobe-config.schema.json");
  const auto inventory = read_json("schema/inventory.schema.json");
  const auto& static_props = config["definitions"]["target"]["properties"];
  const auto& dynamic_props = inventory["definitions"]["target"]["properties"];
  int shared = 0;
  for (auto it = dynamic_props.begin(); it != dynamic_props.end(); ++it) {
    if (!static_props.contains(it.key())) continue;
    if (it.key() == "type") {
      // Plug-ins give raw-socket targets only: the configuration's TCPquery and TLS service checks
      // (docs/service-checks.md#daemon) are not theirs; the raw types are the same, in the same order.
      auto raw = static_props["type"]["enum"];
      raw.erase(std::remove(raw.begin(), raw.end(), "TCPquery"), raw.end());
      raw.erase(std::remove(raw.begin(), raw.end(), "TLS"), raw.end());
      EXPECT_EQ(it.value()["enum"], raw);
      shared++;
      continue;
    }
    EXPECT_EQ(it.value(), static_props[it.key()]) << it.key();
    shared++;
  }
  EXPECT_EQ(shared, 17);
  EXPECT_EQ(inventory["definitions"]["name"], config["definitions"]["name"]);
  // Everything else is netprobify's dynamic-only keys.
  std::vector<std::string> own;
  for (auto it = dynamic_props.begin(); it != dynamic_props.end(); ++it)
    if (!static_props.contains(it.key())) own.push_back(it.key());
  EXPECT_THAT(own, ElementsAre("creation_date", "groups", "hostname", "lifetime"));
  EXPECT_EQ(nlohmann::json::parse(embedded_inventory_schema()),
            inventory);  // the build embeds this very file
}

// A datacenter's full mesh: thousands of targets in one document (no timing assertion; a quadratic step
// would hit the ctest timeout).
TEST(inventory_document, ThousandsOfTargets) {
  std::string text = R"({"targets": [)";
  constexpr int kTargets = 5000;
  for (int i = 0; i < kTargets; ++i)
    text +=
        fmt::format(R"({}{{"hostname": "tor-{}", "destination": "10.{}.{}.{}", "type": "UDPunreachable", )"
                    R"("dst_port": 33434, "groups": ["mesh"], "nb_packets": 10}})",
                    i ? ", " : "", i, i >> 16, (i >> 8) & 255, i & 255);
  text += "]}";
  const auto doc = parse_inventory_document(text, "fullmesh");
  ASSERT_TRUE(doc.ok());
  EXPECT_EQ(doc->targets.size(), size_t(kTargets));
  EXPECT_TRUE(doc->rejected.empty());
}

}  // namespace
}  // namespace netprobe

namespace netprobe {
namespace {

// Issue 10: plug-in output written by an attacker. Each case crashed (std::regex recursion), hung
// (yaml-cpp), exploded (aliases) or was accepted on main.
std::string one_target(const std::string& extra) {
  return R"({"targets": [{"hostname": "h", "destination": "192.0.2.1", "type": "ICMPping", "groups": ["g"])" +
         extra + "}]}";
}

TEST(inventory_hostile, LongHostnameAndLifetimeAreRejectedWithoutCrashing) {
  const std::string long_name(100'000, 'a');
  auto doc =
      parse_inventory_document(R"({"targets": [{"hostname": ")" + long_name +
                                   R"(", "destination": "192.0.2.1", "type": "ICMPping", "groups": ["g"]}]})",
                               "p");
  ASSERT_TRUE(doc.ok()) << doc.error().message;
  EXPECT_TRUE(doc->targets.empty());
  ASSERT_THAT(doc->rejected, ElementsAre(HasSubstr("too long: 100000 characters, at most 253")));
  EXPECT_LT(doc->rejected[0].size(), 600u);
  doc = parse_inventory_document(one_target(R"(, "lifetime": ")" + std::string(100'000, '1') + "d\""), "p");
  ASSERT_TRUE(doc.ok());
  EXPECT_THAT(doc->rejected, ElementsAre(HasSubstr("lifetime")));
  doc = parse_inventory_document(one_target(R"(, "lifetime": 9223372036854775807)"), "p");
  ASSERT_TRUE(doc.ok());
  EXPECT_THAT(doc->rejected, ElementsAre(HasSubstr("lifetime")));
  doc = parse_inventory_document(one_target(R"(, "groups": [")" + std::string(30'000, 'g') + "\"]"), "p");
  EXPECT_FALSE(doc.ok() && !doc->targets.empty());
}

// Found by fuzz/inventory_document_fuzz.cpp: the year 1013 overflowed Nanos (UBSan).
TEST(inventory_hostile, DatesOutsideTheClockAreRejected) {
  EXPECT_FALSE(parse_rfc3339("1013-11-21T13:52:14Z"));
  EXPECT_FALSE(parse_rfc3339("9999-11-21T13:52:14Z"));
  EXPECT_TRUE(parse_rfc3339("2026-11-21T13:52:14Z"));
  EXPECT_FALSE(parse_lifetime("3651d"));  // over 10 years
  EXPECT_TRUE(parse_lifetime("3650d"));
  for (const char* date : {R"("1013-11-21T13:52:14Z")", R"("2300-01-01T00:00:00Z")", "1e11", "-5", "8.1e9"}) {
    const auto doc = parse_inventory_document(
        one_target(std::string(R"(, "lifetime": 60, "creation_date": )") + date), "p");
    ASSERT_TRUE(doc.ok()) << date;
    EXPECT_THAT(doc->rejected, ElementsAre(HasSubstr("creation_date"))) << date;
  }
}

TEST(inventory_hostile, ParserTrapsAreErrors) {
  for (const char* text : {",", "{},\n c}", "x: &x [*x, *x]\n"}) {
    const auto doc = parse_inventory_document(text, "p");
    ASSERT_FALSE(doc.ok()) << text;
    EXPECT_THAT(doc.error().message, HasSubstr("p:1:")) << text;
  }
  const auto deep = parse_inventory_document(std::string(100'000, '[') + std::string(100'000, ']'), "p");
  ASSERT_FALSE(deep.ok());
  EXPECT_THAT(deep.error().message, HasSubstr("nested deeper than 64 levels"));
  const auto deep_obj = parse_inventory_document(R"({"targets": [)" + std::string(50'000, '[') + "]}", "p");
  ASSERT_FALSE(deep_obj.ok());
  const auto bad_utf8 = parse_inventory_document("targets: [\xff]\n", "p");
  ASSERT_FALSE(bad_utf8.ok());
  EXPECT_THAT(bad_utf8.error().message, HasSubstr("invalid UTF-8"));
}

TEST(inventory_hostile, RejectionsNeverCarryRawControlCharacters) {
  const auto doc = parse_inventory_document(
      "{\"targets\": [{\"hostname\": \"a\\nlevel=error forged\", \"destination\": \"192.0.2.1\", \"type\": "
      "\"ICMPping\", \"groups\": [\"g\"]}]}",
      "p");
  ASSERT_TRUE(doc.ok());
  ASSERT_THAT(doc->rejected, ::testing::SizeIs(1));
  EXPECT_EQ(doc->rejected[0].find('\n'), std::string::npos) << doc->rejected[0];
  EXPECT_THAT(doc->rejected[0], HasSubstr("a\\nlevel=error forged"));
}

}  // namespace
}  // namespace netprobe

namespace netprobe {
namespace {

// Plug-ins may tag their targets (issue 13): the tags reach the TargetConfig, sorted; bad ones reject the
// target.
TEST(inventory_document, Tags) {
  const auto doc = parse_inventory_document(
      R"({"targets": [{"hostname": "a", "destination": "10.0.0.1", "type": "ICMPping", "groups": ["g"],
                       "tags": ["rack:12", "db"]},
                      {"hostname": "b", "destination": "10.0.0.2", "type": "ICMPping", "groups": ["g"],
                       "tags": ["a,b"]}]})",
      "p");
  ASSERT_TRUE(doc.ok());
  ASSERT_EQ(doc->targets.size(), 1u);
  EXPECT_EQ(doc->targets[0].config.tags, (std::vector<std::string>{"db", "rack:12"}));
  ASSERT_EQ(doc->rejected.size(), 1u);
  EXPECT_NE(doc->rejected[0].find("p: targets[1] (hostname b): tags[0]"), std::string::npos)
      << doc->rejected[0];
}

}  // namespace
}  // namespace netprobe
