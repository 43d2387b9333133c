// netprobify's own configuration fixtures (tests/netprobify/config, master) and the README example: netprobe
// accepts what netprobify accepted and rejects what it rejected.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "config/loader.h"
#include "test_util.h"

namespace netprobe {
namespace {

using ::testing::ElementsAre;
using testing::fixture;
using ::testing::IsEmpty;

LoadedConfig load(const std::string& name) { return load_config_file(fixture("netprobify/" + name)); }

TEST(config_netprobify, AcceptedFixtures) {
  for (const char* f : {"full.yaml", "change.yaml", "change_name.yaml", "deletion.yaml", "no_target.yaml",
                        "src_ip.yaml", "disable_module.yaml", "af_detect.yaml", "config_yaml_example.yaml"}) {
    const LoadedConfig r = load(f);
    EXPECT_TRUE(r.ok()) << f << ": " << (r.diagnostics.errors.empty() ? "" : r.diagnostics.errors[0]);
  }
}

// test_wrong_config.yaml: an uppercase group name, which pykwalify rejected ("Key 'group2-ERROR' does not
// match any regex").
TEST(config_netprobify, WrongIsRejected) {
  const LoadedConfig r = load("wrong.yaml");
  EXPECT_FALSE(r.ok());
  EXPECT_THAT(
      r.diagnostics.errors,
      ElementsAre(
          R"(groups.group2-ERROR: invalid name "group2-ERROR": does not match ^[a-z0-9_\-\.]{1,128}$ (did you mean "group2-error"?))"));
}

TEST(config_netprobify, ReadmeExample) {
  const LoadedConfig r = load_config_file(testing::source_path("config/netprobify-example.yaml"));
  ASSERT_TRUE(r.ok());
  EXPECT_THAT(r.diagnostics.warnings, IsEmpty());
  const Config& c = *r.config;
  EXPECT_EQ(c.global.probe_name, "lab");
  EXPECT_THAT(c.targets.at("bing").groups, ElementsAre("standard"));
  EXPECT_EQ(c.targets.at("google_ipv6").family(), AddressFamily::kV4);  // as written in the README
  EXPECT_EQ(c.targets.at("bing").nb_packets, 100);
}

TEST(config_netprobify, ConfigYamlExample) {
  const LoadedConfig r = load("config_yaml_example.yaml");
  ASSERT_TRUE(r.ok());
  EXPECT_THAT(r.config->targets.at("google_ipv4").groups, ElementsAre("standard", "transit1", "transit2"));
  EXPECT_EQ(r.config->groups.at("transit1").dscp, 11);
  EXPECT_EQ(r.config->targets.at("google_ipv4").threshold.latency, 0.1);
}

TEST(config_netprobify, NoTarget) {
  const LoadedConfig r = load("no_target.yaml");
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r.config->targets.empty());
  EXPECT_THAT(r.config->global.percentile, ElementsAre(95, 50));
  EXPECT_FALSE(r.config->groups.at("group2").ip_payload_size);
}

// The legacy src_ip is honoured when src_ipv4 is absent, with a deprecation warning.
TEST(config_netprobify, LegacySrcIp) {
  const LoadedConfig r = load("src_ip.yaml");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.config->groups.at("group1").src_ipv4, IpAddress::parse("127.0.0.2"));
  EXPECT_THAT(r.diagnostics.warnings,
              ElementsAre("groups.group1.src_ip: deprecated: use src_ipv4 (still honoured)"));
}

TEST(config_netprobify, ChangedPercentilesAndNames) {
  EXPECT_THAT(load("change.yaml").config->global.percentile, ElementsAre(50, 95));
  EXPECT_EQ(load("change.yaml").config->targets.at("1_full").alert_level, AlertLevel::kNoAlert);
  EXPECT_EQ(load("change_name.yaml").config->global.probe_name, "new_name");
  EXPECT_THAT(load("deletion.yaml").config->global.percentile, ElementsAre(50));
  EXPECT_THAT(load("disable_module.yaml").config->global.disable_dynamic_inventories,
              ElementsAre("network_devices"));
}

// test_config_af_detect.yaml (unused by netprobify's vacuous test): the families netprobify meant to detect,
// including the IPv6 subnet it could not (docs/netprobify-compatibility.md#q10-ipv6-subnets).
TEST(config_netprobify, AddressFamilyDetection) {
  const LoadedConfig r = load("af_detect.yaml");
  ASSERT_TRUE(r.ok());
  const auto& t = r.config->targets;
  EXPECT_EQ(t.at("ipv4_subnet_detected").family(), AddressFamily::kV4);
  EXPECT_EQ(t.at("ipv6_subnet_detected").family(), AddressFamily::kV6);
  EXPECT_EQ(t.at("ipv6_address_detected").family(), AddressFamily::kV6);
  EXPECT_EQ(t.at("ipv4_default_fallback").family(), AddressFamily::kV4);
  EXPECT_FALSE(
      t.at("ipv4_default_fallback").is_subnet);  // a hostname: one host, as scapy's Net() resolved it
}

}  // namespace
}  // namespace netprobe
