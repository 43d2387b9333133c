// The `on_demand:` configuration section (src/config/on_demand.h, schema/netprobe-config.schema.json):
// absent means off; a full section loads with its defaults; a table of bad sections, each with its error.
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "config/loader.h"

namespace netprobe {
namespace {

const char* kBase = R"(
global:
  probe_name: lab
  interval: 10
  nb_proc: 1
  logging_level: INFO
  prometheus_port: 9101
  dns_update_interval: 300
  max_packets_per_second: 1000
groups:
  g: {}
targets:
  t: {destination: 10.0.0.1, type: ICMPping}
)";

std::string with(const std::string& section) { return std::string(kBase) + section; }

std::string joined(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += s + "\n";
  return out;
}

TEST(ondemand_Config, AbsentMeansOff) {
  const auto loaded = load_config_string(kBase, "test");
  ASSERT_TRUE(loaded.ok()) << joined(loaded.diagnostics.errors);
  EXPECT_FALSE(loaded.config->on_demand.has_value());
}

TEST(ondemand_Config, FullSection) {
  const auto loaded = load_config_string(with(R"(
on_demand:
  allowed_prefixes: [10.0.0.0/8, "2001:db8::/32"]
  allowed_targets: [Web.Example, 10.0.0.1]
  modules:
    tcp_443:
      type: TCPsyn
      dst_port: 443
      nb_packets: 5
      fail_if: {loss_ratio_above: 0.2, rtt_p99_above: 0.05}
      overrides:
        nb_packets: {max: 50}
        dscp: {}
    icmp: {type: ICMPping, address_family: ipv6}
  credentials:
    runbook: {token_sha256: 9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08}
    alice: {password_bcrypt: "$2y$10$RdZ0wIpVhwP5a2ZJvBMpSenK.ReRZzKHRLEpASbTDn.YI0yLPXXam"}
  budgets: {max_concurrent_tests: 8, max_packets_per_second: 200}
)"),
                                         "test");
  ASSERT_TRUE(loaded.ok()) << joined(loaded.diagnostics.errors);
  const OnDemandConfig& od = *loaded.config->on_demand;
  ASSERT_EQ(od.allowed_prefixes.size(), 2u);
  EXPECT_EQ(od.allowed_prefixes[1].to_string(), "2001:db8::/32");
  EXPECT_EQ(od.allowed_targets, (std::vector<std::string>{"web.example", "10.0.0.1"}));
  const OnDemandModule& tcp = od.modules.at("tcp_443");
  EXPECT_EQ(tcp.type, ProbeType::kTcpSyn);
  EXPECT_EQ(tcp.dst_port, 443);
  EXPECT_EQ(tcp.nb_packets, 5);
  EXPECT_DOUBLE_EQ(tcp.fail_if_loss_ratio_above, 0.2);
  EXPECT_DOUBLE_EQ(*tcp.fail_if_rtt_p99_above_s, 0.05);
  EXPECT_DOUBLE_EQ(tcp.overrides.at("nb_packets").min, 1);
  EXPECT_DOUBLE_EQ(tcp.overrides.at("nb_packets").max, 50);
  EXPECT_DOUBLE_EQ(tcp.overrides.at("dscp").max, 63);
  EXPECT_EQ(tcp.overrides.count("dst_port"), 0u);  // not listed: not allowed
  EXPECT_EQ(od.modules.at("icmp").address_family, AddressFamily::kV6);
  EXPECT_EQ(od.modules.at("icmp").nb_packets, 3);
  EXPECT_EQ(od.credentials.at("runbook").token_sha256,
            "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08");
  EXPECT_FALSE(od.credentials.at("alice").password_bcrypt.empty());
  EXPECT_EQ(od.budgets.max_concurrent_tests, 8);
  EXPECT_EQ(od.budgets.max_concurrent_tests_per_credential, 2);
  EXPECT_DOUBLE_EQ(od.budgets.max_packets_per_second, 200);
  EXPECT_EQ(od.budgets.result_ttl_s, 600);
}

TEST(ondemand_Config, Errors) {
  struct Row {
    const char* section;
    const char* expected;  // a substring of the errors
  };
  const std::vector<Row> rows = {
      {"on_demand: {allowed_prefixes: [10.0.0.1]}",
       "on_demand.allowed_prefixes[0]: \"10.0.0.1\" is not a prefix"},
      {"on_demand: {allowed_prefixes: [example.com/8]}", "not a prefix in CIDR form"},
      {"on_demand: {modules: {m: {type: TCPsyn}}}", "on_demand.modules.m.dst_port: required for TCPsyn"},
      {"on_demand: {modules: {m: {type: ICMP}}}", "on_demand.modules.m.type"},
      {"on_demand: {modules: {m: {type: ICMPping, src_port_a: 40000, src_port_z: 39000}}}",
       "on_demand.modules.m.src_port_a: 40000 is above src_port_z"},
      {"on_demand: {modules: {m: {type: ICMPping, overrides: {nb_packets: {min: 9, max: 2}}}}}",
       "min 9 is above max 2"},
      {"on_demand: {modules: {m: {type: ICMPping, overrides: {src_ip: {}}}}}",
       "on_demand.modules.m.overrides"},
      {"on_demand: {modules: {m: {type: ICMPping, overrides: {nb_packets: {max: 500}}}}}",
       "up to 500 packets, above budgets.max_probes_per_test (100)"},
      {"on_demand: {credentials: {c: {}}}", "on_demand.credentials.c: exactly one of"},
      {"on_demand: {credentials: {c: {token_sha256: abc}}}", "on_demand.credentials.c.token_sha256"},
      {"on_demand: {credentials: {c: {password_bcrypt: plaintext}}}",
       "on_demand.credentials.c.password_bcrypt"},
      {"on_demand: {credentials: {c: {token: secret}}}", "on_demand.credentials.c"},
      {"on_demand: {budgets: {max_packets_per_second: 1000}}",
       "on_demand.budgets.max_packets_per_second: 1000 must be below global.max_packets_per_second (1000)"},
      {"on_demand: {budgets: {max_packets_per_second: 10, max_packets_per_second_per_destination: 20}}",
       "max_packets_per_second_per_destination: 20 is above max_packets_per_second (10)"},
      {"on_demand: {budgets: {max_concurrent_tests: 2, max_concurrent_tests_per_credential: 3}}",
       "max_concurrent_tests_per_credential: 3 is above max_concurrent_tests (2)"},
      {"on_demand: {budgets: {max_request_bytes: 100000000}}", "on_demand.budgets.max_request_bytes"},
      {"on_demand: {unknown: 1}", "on_demand"},
  };
  for (const Row& row : rows) {
    SCOPED_TRACE(row.section);
    const auto loaded = load_config_string(with(row.section), "test");
    EXPECT_FALSE(loaded.ok());
    EXPECT_NE(joined(loaded.diagnostics.errors).find(row.expected), std::string::npos)
        << joined(loaded.diagnostics.errors);
  }
}

}  // namespace
}  // namespace netprobe
