// export-fw for TCPquery / TLS targets (docs/service-checks.md#firewall): a kernel TCP connection to
// dst_port, from the group's fixed source address and any source port, its own packets back.
#include <gtest/gtest.h>

#include "config/loader.h"
#include "firewall/export.h"

namespace netprobe::firewall {
namespace {

TEST(firewall_ServiceChecks, TcpRulePerCheckAndGroup) {
  const auto loaded = load_config_string(R"(
global: {interval: 30, nb_proc: 1, probe_name: p, logging_level: INFO, dns_update_interval: 300,
         prometheus_port: 8000}
groups:
  fixed: {src_ipv4: 192.0.2.10, src_port_a: 65000, src_port_z: 65010}
  kernel: {}
targets:
  web: {type: TLS, destination: www.example.com, dst_port: 443}
  smtp: {type: TCPquery, destination: 198.51.100.25, dst_port: 25, explicit_groups: {exclude_from: [kernel]}}
)",
                                         "t.yaml");
  ASSERT_TRUE(loaded.ok()) << loaded.diagnostics.errors.front();
  std::vector<const ServiceCheckConfig*> checks;
  for (const auto& [name, c] : loaded.config->service_checks) checks.push_back(&c);
  const auto rules = export_service_check_rules(*loaded.config, checks, "prober");
  ASSERT_TRUE(rules.ok());
  const auto merged = merge_rules(rules.value());
  const std::string yaml = render_yaml(merged);
  // Three (check, group) pairs; the kernel picks the source port (no src_ports), the group's fixed address
  // is the source; a name keeps its family (the check resolves IPv4 only).
  ASSERT_EQ(merged.size(), 3u) << yaml;
  for (const auto& r : merged) {
    EXPECT_EQ(r.protocol, Protocol::kTcp);
    EXPECT_TRUE(r.src_ports.empty());
    EXPECT_EQ(r.returning, kTcpAck | kIcmpErrors);
  }
  const auto parsed = parse_rules(yaml, "back.yaml");
  ASSERT_TRUE(parsed.errors.empty()) << parsed.errors.front();
  EXPECT_EQ(render_yaml(parsed.rules), yaml);
  EXPECT_NE(yaml.find("192.0.2.10/32"), std::string::npos) << yaml;
  EXPECT_NE(yaml.find("www.example.com"), std::string::npos) << yaml;

  ServiceCheckConfig bad = loaded.config->service_checks.at("web");
  bad.destination = "bad name";
  EXPECT_FALSE(export_service_check_rules(*loaded.config, {&bad}, "prober").ok());
}

}  // namespace
}  // namespace netprobe::firewall
