// The configuration loader: every good and bad fixture with its exact diagnostics, netprobify's defaults and
// group association, and the helpers other parts use (family(), effective_ip_payload_size()).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fmt/format.h>

#include "config/loader.h"
#include "large_config.h"
#include "test_util.h"

namespace netprobe {
namespace {

using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using testing::fixture;

struct Case {
  std::string file;
  std::vector<std::string> errors;
  std::vector<std::string> warnings;
};

void PrintTo(const Case& c, std::ostream* os) { *os << c.file; }

const std::vector<Case>& bad_cases() {
  static const std::vector<Case> cases = {
      {"bad/type_enum.yaml",
       {R"(targets.google_ipv4.type: "TCPSYN" is not one of TCPsyn, ICMPping, UDPunreachable, UDPquery, TCPquery, TLS)"},
       {}},
      {"bad/rtt_histogram_enum.yaml",
       {R"(global.rtt_histogram: "per_destination" is not one of per_group, per_target, none)"},
       {}},
      {"bad/unknown_key_hint.yaml",
       {"global.nb_proc: required key missing", R"(global.nb_prc: unknown key (did you mean "nb_proc"?))",
        R"(groups.g1.src_prot_z: unknown key (did you mean "src_port_z"?))"},
       {}},
      {"bad/missing_required.yaml",
       {"global.interval: required key missing", "targets.web.destination: required key missing"},
       {}},
      {"bad/missing_global.yaml", {"global: required key missing"}, {}},
      {"bad/wrong_scalar_type.yaml",
       {R"(global.interval: expected an integer, got "abc")",
        "global.l3_raw_socket: expected a boolean (true/false), got 1",
        R"(global.nb_proc: expected an integer, got "1")",
        "global.prometheus_port: expected an integer, got 8000.5",
        R"(groups.g1.permit_target_auto_register: expected a boolean (true/false), got "yes")",
        R"(targets.web.timeout: expected a number, got "fast")"},
       {}},
      {"bad/uppercase_group.yaml",
       {R"(groups.G1: invalid name "G1": does not match ^[a-z0-9_\-\.]{1,128}$ (did you mean "g1"?))",
        R"(targets.Web: invalid name "Web": does not match ^[a-z0-9_\-\.]{1,128}$ (did you mean "web"?))"},
       {}},
      {"bad/missing_dst_port.yaml",
       {"targets.dns.dst_port: required for UDPunreachable", "targets.web.dst_port: required for TCPsyn"},
       {}},
      {"bad/inverted_port_range.yaml",
       {"groups.g1: src_port_a 65100 is greater than src_port_z 65000",
        "groups.g2: src_port_a 65100 is greater than src_port_z 65001 (default)"},
       {}},
      {"bad/bad_subnet.yaml",
       {R"(targets.glob.destination: "192.168.*.1-5": scapy's range/glob syntax is not supported; only CIDR is (e.g. 192.168.0.0/16))",
        R"(targets.not_flagged.destination: "10.0.0.0/30" is a network: set is_subnet: true to probe its addresses)",
        R"(targets.prefix_too_long.destination: "10.0.0.0/33" is not a network: with is_subnet: true the destination must be in CIDR form (e.g. 192.0.2.0/24 or 2001:db8::/64))"},
       {}},
      {"bad/bad_src_address.yaml",
       {R"(groups.g1.src_ipv4: "127.0.0.256" is not a valid IPv4 address (netprobify silently ignored an invalid source address; netprobe refuses it))",
        R"(groups.g1.src_ipv6: "127.0.0.1" is not a valid IPv6 address (netprobify silently ignored an invalid source address; netprobe refuses it))",
        R"(groups.g2.src_subnet_ipv4: "2001:db8::/64" is not an IPv4 network in CIDR form (e.g. 192.0.2.0/29))",
        R"(groups.g2.src_subnet_ipv6: "fd00::/129" is not an IPv6 network in CIDR form (e.g. 2001:db8::/125))"},
       {}},
      {"bad/af_mismatch.yaml",
       {R"(targets.v4_subnet.address_family: ipv6 does not match the IPv4 destination "192.0.2.0/30")",
        R"(targets.v6_literal.address_family: ipv4 does not match the IPv6 destination "fe80::1")"},
       {}},
      {"bad/key_space_overflow.yaml",
       {"targets.big_subnet: 33554428 probes per iteration (2 packet(s) x 1 group(s) x 16777214 host(s)), "
        "more than "
        "netprobe's limit of 16777216 per iteration",
        R"(targets.udp: 65536 UDPunreachable probes per iteration to "192.0.2.1", more than the 65535 that UDPunreachable's 16-bit token allows per destination; lower nb_packets)",
        R"(targets.web: 310000 TCPsyn probes per iteration to "192.0.2.1" (targets web, web_again), more than the 262143 that TCPsyn's 18-bit token allows per destination; lower nb_packets)"},
       {}},
      {"bad/total_overflow.yaml",
       {"targets: 16777218 probes per iteration in total, more than netprobe's limit of 16777216 (largest: "
        "targets.a with 8388606)"},
       {}},
      {"bad/tcp_payload_too_large.yaml",
       {"targets.web.ip_payload_size: 16404 is too large for TCPsyn: at most 16403 (the 20-byte TCP header + "
        "16383 "
        "bytes of data, the room the sequence-number token leaves)"},
       {}},
      {"bad/several_errors.yaml",
       {R"(global.logging_level: "VERBOSE" is not one of CRITICAL, ERROR, WARNING, INFO, DEBUG, NOTSET)",
        "global.nb_proc: 0 is less than the minimum 1",
        "global.percentile[3]: 101 is greater than the maximum 100",
        "global.percentile[2]: 95 is a duplicate of item 0 (items must be unique)",
        R"(global.probe_name: "Lab" does not match ^[a-z0-9_\-\.]+$)",
        "global.prometheus_port: 80000 is greater than the maximum 65535",
        "groups.g1.dscp: 64 is greater than the maximum 63",
        R"(targets.ping.state: "production" is not one of in production, validation, null)",
        R"(targets.ping.threshold.los: unknown key (did you mean "loss"?))",
        R"(targets.web.dst_prot: unknown key (did you mean "dst_port"?))",
        "groups.g1: src_port_a 65100 is greater than src_port_z 65001 (default)",
        "targets.web.dst_port: required for TCPsyn"},
       {}},
      {"bad/yaml_syntax.yaml",
       {"{dir}/bad/yaml_syntax.yaml:3:12: mapping values are not allowed in this context"},
       {}},
      {"bad/not_a_mapping.yaml", {"(root): expected a mapping, got a list"}, {}},
      {"bad/empty.yaml",
       {"{dir}/bad/empty.yaml: the configuration is empty; expected a mapping with global, groups and "
        "targets"},
       {}},
  };
  return cases;
}

std::vector<std::string> expand(std::vector<std::string> v) {
  for (auto& s : v)
    if (auto p = s.find("{dir}"); p != std::string::npos)
      s.replace(p, 5, fixture("").substr(0, fixture("").size() - 1));
  return v;
}

class config_bad_fixture : public ::testing::TestWithParam<Case> {};

TEST_P(config_bad_fixture, ReportsExactlyTheseErrors) {
  const Case& c = GetParam();
  const LoadedConfig r = load_config_file(fixture(c.file));
  EXPECT_FALSE(r.ok());
  EXPECT_FALSE(r.config.has_value());
  EXPECT_THAT(r.diagnostics.errors, ElementsAreArray(expand(c.errors)));
  if (!c.warnings.empty()) {
    EXPECT_THAT(r.diagnostics.warnings, ElementsAreArray(c.warnings));
  }
}

INSTANTIATE_TEST_SUITE_P(table, config_bad_fixture, ::testing::ValuesIn(bad_cases()), [](const auto& info) {
  std::string n = info.param.file.substr(4, info.param.file.size() - 9);
  return n;
});

TEST(config_bad_fixture, EveryBadFixtureIsInTheTable) {
  std::vector<std::string> listed;
  for (const auto& c : bad_cases()) listed.push_back(c.file);
  std::sort(listed.begin(), listed.end());
  EXPECT_EQ(listed, testing::fixtures_in("bad"));
}

const std::vector<Case>& good_cases() {
  static const std::vector<Case> cases = {
      {"good/minimal.yaml", {}, {}},
      {"good/targets_null.yaml", {}, {}},
      {"good/all_keys.yaml", {}, {"groups.transit2.src_ip: deprecated: use src_ipv4 (still honoured)"}},
      {"good/pyyaml_scalars.yaml", {}, {}},
      {"good/anchors_merge.yaml", {}, {}},
      {"good/ipv6_subnet.yaml", {}, {}},
      {"good/warnings.yaml",
       {},
       {"groups.both.src_ip: deprecated and ignored because src_ipv4 is set",
        "groups.legacy.src_ip: deprecated: use src_ipv4 (still honoured)",
        R"(targets.hostname_subnet.is_subnet: ignored: "www.example.com" is a hostname, probed as the one address it resolves to (as netprobify did))",
        "targets.lonely: disabled: not associated to any group",
        R"(targets.web.explicit_groups.register_to: group "nosuchgroup" does not exist; ignored)",
        R"(targets.web.explicit_groups.exclude_from: group "gone" does not exist; ignored)"}},
  };
  return cases;
}

class config_good_fixture : public ::testing::TestWithParam<Case> {};

TEST_P(config_good_fixture, LoadsWithExactlyTheseWarnings) {
  const Case& c = GetParam();
  const LoadedConfig r = load_config_file(fixture(c.file));
  EXPECT_TRUE(r.ok());
  EXPECT_THAT(r.diagnostics.errors, ::testing::IsEmpty());
  EXPECT_THAT(r.diagnostics.warnings, ElementsAreArray(c.warnings));
}

INSTANTIATE_TEST_SUITE_P(table, config_good_fixture, ::testing::ValuesIn(good_cases()), [](const auto& info) {
  return info.param.file.substr(5, info.param.file.size() - 10);
});

TEST(config_good_fixture, EveryGoodFixtureIsInTheTable) {
  std::vector<std::string> listed;
  for (const auto& c : good_cases()) listed.push_back(c.file);
  std::sort(listed.begin(), listed.end());
  EXPECT_EQ(listed, testing::fixtures_in("good"));
}

TEST(config_loader, ShippedConfigsLoad) {
  for (const char* f : {"config/default.yaml", "config/netprobify-example.yaml"}) {
    const LoadedConfig r = load_config_file(testing::source_path(f));
    EXPECT_TRUE(r.ok()) << f << ": " << (r.diagnostics.errors.empty() ? "" : r.diagnostics.errors[0]);
    EXPECT_THAT(r.diagnostics.warnings, ::testing::IsEmpty()) << f;
  }
}

TEST(config_loader, DefaultConfigIsLoopbackOnly) {
  const LoadedConfig r = load_config_file(testing::source_path("config/default.yaml"));
  ASSERT_TRUE(r.ok());
  const Config& c = *r.config;
  EXPECT_EQ(c.global.probe_name, "netprobe_default");
  EXPECT_EQ(c.global.interval_s, 10);
  EXPECT_EQ(c.global.nb_proc, 1);
  EXPECT_EQ(c.global.prometheus_port, 8000);
  EXPECT_EQ(c.global.prometheus_address, "127.0.0.1");
  EXPECT_EQ(c.global.dns_update_interval_s, 300);
  ASSERT_EQ(c.groups.size(), 1u);
  EXPECT_EQ(c.groups.at("loopback").src_port_a, 65000);
  EXPECT_EQ(c.groups.at("loopback").src_port_z, 65009);
  ASSERT_EQ(c.targets.size(), 3u);
  EXPECT_EQ(c.targets.at("loopback_tcp").type, ProbeType::kTcpSyn);
  EXPECT_EQ(c.targets.at("loopback_tcp").dst_port, 8000);
  EXPECT_EQ(c.targets.at("loopback_icmp").type, ProbeType::kIcmpPing);
  EXPECT_EQ(c.targets.at("loopback_udp").type, ProbeType::kUdpUnreachable);
  EXPECT_EQ(c.targets.at("loopback_udp").dst_port, 33434);
  for (const auto& [name, t] : c.targets) {
    EXPECT_EQ(t.destination, "127.0.0.1") << name;
    EXPECT_EQ(t.nb_packets, 10) << name;
    EXPECT_THAT(t.groups, ElementsAre("loopback")) << name;
  }
}

TEST(config_loader, MissingFileIsAnErrorNotAnException) {
  const LoadedConfig r = load_config_file("/nonexistent/netprobe.yaml");
  EXPECT_FALSE(r.ok());
  EXPECT_THAT(
      r.diagnostics.errors,
      ElementsAre(
          "/nonexistent/netprobe.yaml: cannot open the configuration file: No such file or directory"));
}

TEST(config_loader, NeverThrowsOnGarbage) {
  for (std::string_view text :
       {"", "---\n...\n---\n", "[", "{a: [1, {b: }", "\t\x01\x02", "&a [*a]", "!!binary xyz",
        "global: !custom 3", "a: 1\na: 2\n", "- - - - -", "<<: 5", "global: 99999999999999999999"}) {
    LoadedConfig r;
    EXPECT_NO_THROW(r = load_config_string(text, "garbage.yaml")) << text;
    EXPECT_FALSE(r.ok()) << text;
    EXPECT_FALSE(r.diagnostics.errors.empty()) << text;
  }
}

TEST(config_loader, SourcePathIsRecorded) {
  const LoadedConfig r = load_config_file(fixture("good/minimal.yaml"));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.config->source_path, fixture("good/minimal.yaml"));
}

// What netprobify's test_main.py::test_load_conf pins for tests/netprobify/config/test_config.yaml.
TEST(config_defaults, AsNetprobifyLoadConf) {
  const LoadedConfig r = load_config_file(fixture("netprobify/full.yaml"));
  ASSERT_TRUE(r.ok());
  const Config& c = *r.config;
  const GlobalConfig& g = c.global;
  EXPECT_EQ(g.probe_name, "test");
  EXPECT_EQ(g.interval_s, 30);
  EXPECT_EQ(g.interval_packets_s, 0);
  EXPECT_EQ(g.nb_proc, 8);
  EXPECT_EQ(g.verbose, 0);
  EXPECT_EQ(g.logging_level, "INFO");
  EXPECT_EQ(g.prometheus_port, 8000);
  EXPECT_EQ(g.prometheus_address, "0.0.0.0");
  EXPECT_EQ(g.dns_update_interval_s, 300);
  EXPECT_EQ(g.reload_conf_interval_s, 0);
  EXPECT_FALSE(g.l3_raw_socket);
  EXPECT_EQ(g.timeout_s, 3600);
  EXPECT_THAT(g.percentile, ElementsAre(95, 50));
  EXPECT_TRUE(g.disable_dynamic_inventories.empty());
  EXPECT_EQ(g.max_packets_per_second, 0);
  EXPECT_EQ(g.inventory_dir, "");  // absent: inventory/ uses `inventories` next to the file
  EXPECT_EQ(g.rtt_histogram, RttHistogram::kPerGroup);  // netprobe extension, absent: per group
  EXPECT_EQ(g.path_window, 5);                          // docs/paths.md
  EXPECT_EQ(g.path_series_per_target, 4);

  ASSERT_EQ(c.groups.size(), 3u);
  const GroupConfig& g1 = c.groups.at("group1");
  EXPECT_EQ(g1.src_ipv4, IpAddress::parse("127.0.0.2"));
  EXPECT_FALSE(g1.src_ipv6);
  EXPECT_FALSE(g1.src_subnet_ipv4);
  EXPECT_FALSE(g1.src_subnet_ipv6);
  EXPECT_EQ(g1.src_port_a, 65000);
  EXPECT_EQ(g1.src_port_z, 65001);
  EXPECT_EQ(g1.ip_payload_size, 1000);
  EXPECT_EQ(g1.dscp, 0);
  EXPECT_TRUE(g1.permit_target_auto_register);
  const GroupConfig& g2 = c.groups.at("group2");
  EXPECT_FALSE(g2.src_ipv4);
  EXPECT_EQ(g2.src_port_a, 65100);
  EXPECT_EQ(g2.src_port_z, 65101);
  EXPECT_EQ(g2.ip_payload_size, 1000);
  EXPECT_EQ(g2.dscp, 1);
  EXPECT_FALSE(g2.permit_target_auto_register);
  const GroupConfig& g3 = c.groups.at("group3");
  EXPECT_EQ(g3.src_ipv6, IpAddress::parse("::1"));
  EXPECT_FALSE(g3.ip_payload_size);
  EXPECT_EQ(g3.dscp, 1);

  ASSERT_EQ(c.targets.size(), 7u);
  const TargetConfig& full = c.targets.at("1_full");
  EXPECT_EQ(full.description, "full_target_conf");
  EXPECT_EQ(full.type, ProbeType::kTcpSyn);
  EXPECT_EQ(full.destination, "127.0.0.0/31");
  EXPECT_EQ(full.family(), AddressFamily::kV4);
  EXPECT_TRUE(full.is_subnet);
  EXPECT_TRUE(full.dont_fragment);
  EXPECT_EQ(full.dst_port, 443);
  EXPECT_EQ(full.nb_packets, 1);
  EXPECT_EQ(full.ip_payload_size, 1000);
  EXPECT_EQ(full.state_label(), "in production");
  EXPECT_EQ(full.threshold.latency, 0.1);
  EXPECT_EQ(full.threshold.loss, 0.05);
  EXPECT_EQ(full.alert_level, AlertLevel::kPaging);
  EXPECT_EQ(full.timeout_s, 1);
  EXPECT_EQ(full.dns_update_interval_s, 300);
  EXPECT_THAT(full.groups, ElementsAre("group2"));
  EXPECT_FALSE(full.is_dynamic);
  EXPECT_EQ(effective_ip_payload_size(full, c.groups.at("group2")), 1000);  // proto payload 980

  const TargetConfig& minimal = c.targets.at("2_minimal");
  EXPECT_EQ(minimal.description, "2_minimal");
  EXPECT_EQ(minimal.alert_level, AlertLevel::kNoAlert);
  EXPECT_EQ(to_string(minimal.alert_level), "no_alert");
  EXPECT_FALSE(minimal.state);
  EXPECT_EQ(minimal.state_label(), "None");
  EXPECT_FALSE(minimal.threshold.latency);
  EXPECT_FALSE(minimal.threshold.loss);
  EXPECT_EQ(minimal.dns_update_interval_s, 3600);
  EXPECT_EQ(minimal.nb_packets, 1);
  EXPECT_EQ(minimal.timeout_s, 1);
  EXPECT_FALSE(minimal.is_subnet);
  EXPECT_THAT(minimal.groups, ElementsAre("group1"));
  EXPECT_EQ(effective_ip_payload_size(minimal, c.groups.at("group1")), 20);  // bare TCP header

  EXPECT_EQ(effective_ip_payload_size(c.targets.at("3_full_icmp"), c.groups.at("group2")), 1000);  // 992 + 8
  EXPECT_EQ(effective_ip_payload_size(c.targets.at("5_full_udp"), c.groups.at("group2")), 1000);   // 992 + 8
  EXPECT_EQ(effective_ip_payload_size(c.targets.at("6_minimal_udp"), c.groups.at("group1")), 8);
  EXPECT_THAT(c.targets.at("3_full_icmp").groups, ElementsAre("group2"));
  EXPECT_THAT(c.targets.at("4_minimal_icmp").groups, ElementsAre("group1"));
  EXPECT_THAT(c.targets.at("5_full_udp").groups, ElementsAre("group2"));
  EXPECT_THAT(c.targets.at("6_minimal_udp").groups, ElementsAre("group1"));
  // register_to an unknown group is ignored with a warning; auto-registration still applies.
  EXPECT_THAT(c.targets.at("9_fake_group").groups, ElementsAre("group1"));
  EXPECT_EQ(c.targets.at("9_fake_group").timeout_s, 30);
  EXPECT_THAT(
      r.diagnostics.warnings,
      ElementsAre(
          R"(targets.9_fake_group.explicit_groups.register_to: group "fake" does not exist; ignored)"));
}

// ICMP payload precedence (netprobify's test_icmp_payload_size_conf.py) and the other types.
TEST(config_helpers, EffectiveIpPayloadSize) {
  TargetConfig t;
  GroupConfig g;
  t.type = ProbeType::kIcmpPing;
  t.ip_payload_size = 1000;
  g.ip_payload_size = 1024;
  EXPECT_EQ(effective_ip_payload_size(t, g), 1000);  // the target's beats the group's
  t.ip_payload_size.reset();
  EXPECT_EQ(effective_ip_payload_size(t, g), 1024);  // else the group's
  g.ip_payload_size = 0;
  EXPECT_EQ(effective_ip_payload_size(t, g), 8);  // a group's 0 means unset
  g.ip_payload_size.reset();
  EXPECT_EQ(effective_ip_payload_size(t, g), 8);
  t.ip_payload_size = 0;
  EXPECT_EQ(effective_ip_payload_size(t, g), 8);  // below the header: raised to it
  t.type = ProbeType::kTcpSyn;
  t.ip_payload_size.reset();
  g.ip_payload_size = 1024;
  EXPECT_EQ(effective_ip_payload_size(t, g), 20);  // TCP and UDP ignore the group's
  t.ip_payload_size = 10;
  EXPECT_EQ(effective_ip_payload_size(t, g), 20);
  t.type = ProbeType::kUdpUnreachable;
  t.ip_payload_size.reset();
  EXPECT_EQ(effective_ip_payload_size(t, g), 8);
  t.ip_payload_size = 1500;
  EXPECT_EQ(effective_ip_payload_size(t, g), 1500);
}

TEST(config_helpers, FamilyDetection) {
  TargetConfig t;
  const std::pair<std::string, AddressFamily> cases[] = {
      {"192.0.2.1", AddressFamily::kV4},    {"2001:db8::1", AddressFamily::kV6},
      {"fd00:1::/126", AddressFamily::kV6}, {"10.0.0.0/8", AddressFamily::kV4},
      {"example.com", AddressFamily::kV4},  {"fe80::1", AddressFamily::kV6},
  };
  for (const auto& [dest, af] : cases) {
    t.destination = dest;
    EXPECT_EQ(t.family(), af) << dest;
  }
  t.destination = "example.com";
  t.address_family = AddressFamily::kV6;
  EXPECT_EQ(t.family(), AddressFamily::kV6);
}

TEST(config_helpers, AlertLevelNames) {
  EXPECT_EQ(to_string(AlertLevel::kPaging), "paging");
  EXPECT_EQ(to_string(AlertLevel::kPagingValidation), "paging_validation");
  EXPECT_EQ(to_string(AlertLevel::kSandbox), "sandbox");
  EXPECT_EQ(to_string(AlertLevel::kNoAlert), "no_alert");
}

TEST(config_helpers, KeySpaceLimits) {
  EXPECT_EQ(config_token_bits(ProbeType::kTcpSyn, AddressFamily::kV4), 18);
  EXPECT_EQ(config_token_bits(ProbeType::kIcmpPing, AddressFamily::kV6), 32);
  EXPECT_EQ(config_token_bits(ProbeType::kUdpUnreachable, AddressFamily::kV4), 16);
  EXPECT_EQ(config_token_bits(ProbeType::kUdpUnreachable, AddressFamily::kV6), 20);
  EXPECT_EQ(max_probes_per_key_space(ProbeType::kTcpSyn, AddressFamily::kV4), 262143u);
  EXPECT_EQ(max_probes_per_key_space(ProbeType::kUdpUnreachable, AddressFamily::kV4, 3), 8191u);
  EXPECT_EQ(max_probes_per_key_space(ProbeType::kUdpUnreachable, AddressFamily::kV4, 16), 0u);
  // The key-space check counts exactly the hosts the plan probes (one definition: IpNetwork); the
  // configuration's own copy used to count 4 in an IPv6 /126 where 3 are probed.
  for (const auto& [text, hosts] : std::vector<std::pair<const char*, uint64_t>>{{"10.0.0.0/24", 254},
                                                                                 {"10.0.0.0/31", 2},
                                                                                 {"10.0.0.1/32", 1},
                                                                                 {"fd00::/126", 3},
                                                                                 {"fd00::/124", 15}}) {
    const IpNetwork net = *IpNetwork::parse(text);
    EXPECT_EQ(net.usable_count(), hosts) << text;
    EXPECT_EQ(net.usable_hosts(1000).size(), hosts) << text;
  }
}

constexpr std::string_view kHeader = R"(global:
  probe_name: lab
  interval: 30
  nb_proc: 1
  logging_level: INFO
  prometheus_port: 8000
  dns_update_interval: 300
)";

LoadedConfig load(std::string_view body) {
  return load_config_string(std::string(kHeader) + std::string(body), "t.yaml");
}

// netprobify's association rules: auto-register to permitting groups, add register_to, remove exclude_from.
TEST(config_groups, Association) {
  const LoadedConfig r = load(R"(
groups:
  auto1: {}
  auto2: {}
  manual:
    permit_target_auto_register: false
targets:
  default:
    type: ICMPping
    destination: 192.0.2.1
  plus_manual:
    type: ICMPping
    destination: 192.0.2.1
    explicit_groups: {register_to: [manual]}
  minus_auto2:
    type: ICMPping
    destination: 192.0.2.1
    explicit_groups: {exclude_from: [auto2]}
  only_manual:
    type: ICMPping
    destination: 192.0.2.1
    auto_register_to_groups: false
    explicit_groups: {register_to: [manual]}
  exclude_wins:
    type: ICMPping
    destination: 192.0.2.1
    explicit_groups: {register_to: [manual], exclude_from: [manual, auto1]}
  none:
    type: ICMPping
    destination: 192.0.2.1
    auto_register_to_groups: false
)");
  ASSERT_TRUE(r.ok()) << r.diagnostics.errors[0];
  const auto& t = r.config->targets;
  EXPECT_THAT(t.at("default").groups, ElementsAre("auto1", "auto2"));
  EXPECT_THAT(t.at("plus_manual").groups, ElementsAre("auto1", "auto2", "manual"));
  EXPECT_THAT(t.at("minus_auto2").groups, ElementsAre("auto1"));
  EXPECT_THAT(t.at("only_manual").groups, ElementsAre("manual"));
  EXPECT_THAT(t.at("exclude_wins").groups, ElementsAre("auto2"));
  EXPECT_THAT(t.at("none").groups, ::testing::IsEmpty());  // kept, disabled
  EXPECT_THAT(r.diagnostics.warnings, ElementsAre("targets.none: disabled: not associated to any group"));
}

TEST(config_groups, NoGroupsAtAll) {
  const LoadedConfig r = load("groups: {}\ntargets:\n  t:\n    type: ICMPping\n    destination: 192.0.2.1\n");
  ASSERT_TRUE(r.ok());
  EXPECT_THAT(r.config->targets.at("t").groups, ::testing::IsEmpty());
  EXPECT_THAT(r.diagnostics.warnings, ElementsAre("targets.t: disabled: not associated to any group"));
}

TEST(config_checks, DisabledTargetsDoNotCountTowardsKeySpace) {
  const LoadedConfig r = load(R"(
groups:
  g: {permit_target_auto_register: false}
targets:
  huge:
    type: ICMPping
    is_subnet: true
    destination: fd00::/64
)");
  EXPECT_TRUE(r.ok());
}

TEST(config_checks, KeySpaceCountsEveryGroupAndPortOfADestination) {
  // Tokens are numbered per destination, whatever the source port: two groups of 140000 probes each
  // exceed TCPsyn's 262143 even with disjoint port ranges; one group alone fits.
  const std::string two_groups = R"(
groups:
  a: {src_port_a: 65000, src_port_z: 65000}
  b: {src_port_a: 65001, src_port_z: 65002}
targets:
  t: {type: TCPsyn, destination: 192.0.2.1, dst_port: 443, nb_packets: 140000}
)";
  LoadedConfig r = load(two_groups);
  EXPECT_THAT(
      r.diagnostics.errors,
      ElementsAre(
          R"(targets.t: 280000 TCPsyn probes per iteration to "192.0.2.1", more than the 262143 that TCPsyn's 18-bit token allows per destination; lower nb_packets)"));
  r = load(R"(
groups:
  a: {src_port_a: 65000, src_port_z: 65000}
  b: {src_port_a: 65001, src_port_z: 65002, permit_target_auto_register: false}
targets:
  t: {type: TCPsyn, destination: 192.0.2.1, dst_port: 443, nb_packets: 140000}
)");
  EXPECT_TRUE(r.ok());
}

TEST(config_checks, NullValues) {
  // netprobify (pykwalify) accepted empty values; netprobe accepts them where netprobify's code coped
  // (targets, percentile, threshold, state, description) and refuses them elsewhere.
  LoadedConfig r = load(R"(
  percentile:
groups:
  g: {}
targets:
  t:
    type: ICMPping
    destination: 192.0.2.1
    description:
    state:
    threshold:
)");
  ASSERT_TRUE(r.ok()) << r.diagnostics.errors[0];
  EXPECT_THAT(r.config->global.percentile, ElementsAre(95, 50));
  EXPECT_EQ(r.config->targets.at("t").description, "t");
  EXPECT_EQ(r.config->targets.at("t").state_label(), "None");
  r = load("groups:\n  g:\n    dscp:\n");
  EXPECT_THAT(r.diagnostics.errors, ElementsAre("groups.g.dscp: expected an integer, got an empty value"));
}

TEST(config_checks, NonFiniteNumbers) {
  LoadedConfig r = load("  interval_packets: .nan\ngroups:\n  g: {}\n");
  EXPECT_THAT(r.diagnostics.errors, ElementsAre("global.interval_packets: nan is not a finite number"));
  r = load("groups:\n  g: {}\ntargets:\n  t: {type: ICMPping, destination: 192.0.2.1, timeout: .inf}\n");
  EXPECT_THAT(r.diagnostics.errors, Contains("targets.t.timeout: inf is not a finite number"));
}

// Linear in the number of targets: 100,000 targets load (no timing assertion; a quadratic loop would take
// minutes and hit the ctest timeout).
TEST(config_scale, HundredThousandTargets) {
  std::string yaml(kHeader);
  yaml += "groups:\n  g1: {src_port_a: 60000, src_port_z: 60999}\n  g2: {}\ntargets:\n";
  constexpr int kTargets = 100000;
  for (int i = 0; i < kTargets; ++i)
    yaml += fmt::format("  t{}: {{type: TCPsyn, destination: 10.{}.{}.{}, dst_port: 443, nb_packets: 10}}\n",
                        i, i >> 16, (i >> 8) & 255, i & 255);
  const LoadedConfig r = load_config_string(yaml, "big.yaml");
  ASSERT_TRUE(r.ok()) << r.diagnostics.errors[0];
  EXPECT_EQ(r.config->targets.size(), size_t(kTargets));
  EXPECT_THAT(r.config->targets.at("t99999").groups, ElementsAre("g1", "g2"));
}

// The configuration gen_large.py writes for timing `netprobe check-config` (issue 6: 100,000 targets in
// under 2 s; measured by bench/config_bench.cpp, never asserted here): block style, anchors merged and
// aliased, every probe type. Loads through libyaml's fast path without a diagnostic.
TEST(config_scale, GeneratedHundredThousandTargets) {
  constexpr int kTargets = 100000;
  const std::string yaml = testing::large_config_yaml(kTargets);
  const LoadedConfig r = load_config_string(yaml, "big.yaml");
  ASSERT_TRUE(r.ok()) << r.diagnostics.errors[0];
  EXPECT_TRUE(r.diagnostics.warnings.empty()) << r.diagnostics.warnings[0];
  ASSERT_EQ(r.config->targets.size(), size_t(kTargets));
  const TargetConfig& t0 = r.config->targets.at("t0");
  EXPECT_EQ(t0.type, ProbeType::kTcpSyn);
  EXPECT_THAT(t0.groups, ElementsAre("manual", "transit1"));
  // t70 merges t0 (threshold, explicit groups) under its own type, destination and nb_packets.
  const TargetConfig& t70 = r.config->targets.at("t70");
  EXPECT_EQ(t70.type, ProbeType::kIcmpPing);
  EXPECT_EQ(t70.destination, "10.0.0.70");
  EXPECT_EQ(t70.nb_packets, 5);
  EXPECT_EQ(t70.threshold.latency, 0.05);
  EXPECT_EQ(t70.state, "in production");
  EXPECT_THAT(t70.groups, ElementsAre("manual", "transit1"));
  const TargetConfig& last = r.config->targets.at("t99999");
  EXPECT_EQ(last.destination, "10.1.134.159");
  EXPECT_EQ(last.description, "target 99999");
  EXPECT_THAT(last.groups, ElementsAre("transit1", "transit2"));
  EXPECT_EQ(r.config->targets.at("t99996").threshold.loss, 1.0);  // the aliased threshold
}

// netprobe extension global.inventory_dir: kept as written (inventory/ resolves it against the file's
// directory); it must be a string.
TEST(config_loader, InventoryDir) {
  const LoadedConfig all = load_config_file(fixture("good/all_keys.yaml"));
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all.config->global.inventory_dir, "/etc/netprobe/inventories");
  const LoadedConfig rel =
      load_config_string(std::string(kHeader) + "  inventory_dir: plugins\ngroups:\n  g1: {}\n", "x.yaml");
  ASSERT_TRUE(rel.ok()) << rel.diagnostics.errors[0];
  EXPECT_EQ(rel.config->global.inventory_dir, "plugins");
  const LoadedConfig bad =
      load_config_string(std::string(kHeader) + "  inventory_dir: 3\ngroups:\n  g1: {}\n", "x.yaml");
  EXPECT_FALSE(bad.ok());
  EXPECT_THAT(bad.diagnostics.errors, ElementsAre("global.inventory_dir: expected a string, got 3"));
}

// netprobe extensions global.path_window and path_series_per_target (docs/paths.md): read, and bounded.
TEST(config_loader, PathKeys) {
  const LoadedConfig all = load_config_file(fixture("good/all_keys.yaml"));
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all.config->global.path_window, 7);
  EXPECT_EQ(all.config->global.path_series_per_target, 0);
  for (const char* bad : {"path_window: 0", "path_window: 101", "path_series_per_target: -1",
                          "path_series_per_target: 1001", "path_window: five"}) {
    const LoadedConfig r =
        load_config_string(std::string(kHeader) + "  " + bad + "\ngroups:\n  g1: {}\n", "x.yaml");
    EXPECT_FALSE(r.ok()) << bad;
    ASSERT_FALSE(r.diagnostics.errors.empty()) << bad;
    EXPECT_EQ(r.diagnostics.errors[0].rfind("global.path_", 0), 0u) << r.diagnostics.errors[0];
  }
}

// netprobe extension `health` (docs/alerting.md): global defaults, per-target overrides key by key, bounded.
TEST(config_loader, HealthKeys) {
  const LoadedConfig all = load_config_file(fixture("good/all_keys.yaml"));
  ASSERT_TRUE(all.ok());
  const HealthConfig& g = all.config->global.health;
  EXPECT_EQ(g.loss_ratio_above, 0.2);
  EXPECT_EQ(g.rtt_percentile, 99);
  EXPECT_EQ(g.rtt_above_s, 0.25);
  EXPECT_EQ(g.failing_threshold, 4);
  EXPECT_EQ(g.passing_threshold, 5);
  EXPECT_EQ(g.site_threshold, 3);
  const HealthConfig& t = all.config->targets.at("web").health;
  EXPECT_EQ(t.loss_ratio_above, 0.01);
  EXPECT_EQ(t.failing_threshold, 2);
  EXPECT_FALSE(t.passing_threshold);
  EXPECT_FALSE(t.rtt_above_s);
  EXPECT_EQ(all.config->targets.at("rack").health, HealthConfig{});
  for (const char* bad :
       {"health: {failing_threshold: 0}", "health: {passing_threshold: 1001}", "health: {site_threshold: 0}",
        "health: {fail_if: {loss_ratio_above: 1.5}}", "health: {fail_if: {rtt_percentile: 101}}",
        "health: {fail_if: {rtt_above: -1}}", "health: {failing: 3}"}) {
    const LoadedConfig r =
        load_config_string(std::string(kHeader) + "  " + bad + "\ngroups:\n  g1: {}\n", "x.yaml");
    EXPECT_FALSE(r.ok()) << bad;
    ASSERT_FALSE(r.diagnostics.errors.empty()) << bad;
    EXPECT_EQ(r.diagnostics.errors[0].rfind("global.health", 0), 0u) << r.diagnostics.errors[0];
  }
}

// netprobe extension global.rtt_histogram: a closed set of values, reported with the allowed ones.
TEST(config_loader, RttHistogram) {
  const LoadedConfig all = load_config_file(fixture("good/all_keys.yaml"));
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all.config->global.rtt_histogram, RttHistogram::kPerTarget);
  const struct {
    const char* value;
    RttHistogram expected;
  } good[] = {{"per_target", RttHistogram::kPerTarget},
              {"per_group", RttHistogram::kPerGroup},
              {"none", RttHistogram::kNone}};
  for (const auto& g : good) {
    const LoadedConfig r = load_config_string(
        std::string(kHeader) + "  rtt_histogram: " + g.value + "\ngroups:\n  g1: {}\n", "x.yaml");
    ASSERT_TRUE(r.ok()) << g.value << ": " << r.diagnostics.errors[0];
    EXPECT_EQ(r.config->global.rtt_histogram, g.expected) << g.value;
    EXPECT_EQ(to_string(g.expected), g.value);
  }
  for (const char* bad : {"per_host", "PER_GROUP", "\"\"", "1", "[per_group]", "null"}) {
    const LoadedConfig r = load_config_string(
        std::string(kHeader) + "  rtt_histogram: " + bad + "\ngroups:\n  g1: {}\n", "x.yaml");
    EXPECT_FALSE(r.ok()) << bad;
    ASSERT_EQ(r.diagnostics.errors.size(), 1u) << bad;
    EXPECT_EQ(r.diagnostics.errors[0].rfind("global.rtt_histogram: ", 0), 0u) << r.diagnostics.errors[0];
  }
  const LoadedConfig r =
      load_config_string(std::string(kHeader) + "  rtt_histogram: per_host\ngroups:\n  g1: {}\n", "x.yaml");
  EXPECT_THAT(r.diagnostics.errors,
              ElementsAre("global.rtt_histogram: \"per_host\" is not one of per_group, per_target, none"));
}

}  // namespace
}  // namespace netprobe

namespace netprobe {
namespace {

// netprobe extension targets.*.tags: sorted and distinct, bounded and shaped by the schema.
TEST(config_loader, Tags) {
  const LoadedConfig all = load_config_file(fixture("good/all_keys.yaml"));
  ASSERT_TRUE(all.ok());
  EXPECT_THAT(all.config->targets.at("web").tags, ElementsAre("tier:front", "web"));
  EXPECT_TRUE(all.config->targets.at("rack").tags.empty());
  const std::string target =
      "groups:\n  g1: {}\ntargets:\n  t:\n    type: ICMPping\n    destination: 192.0.2.1\n";
  for (const char* bad :
       {"    tags: [\"a,b\"]\n", "    tags: [\"\"]\n", "    tags: web\n", "    tags: [1]\n"}) {
    const LoadedConfig r = load_config_string(std::string(kHeader) + target + bad, "x.yaml");
    EXPECT_FALSE(r.ok()) << bad;
    ASSERT_FALSE(r.diagnostics.errors.empty()) << bad;
    EXPECT_EQ(r.diagnostics.errors[0].rfind("targets.t.tags", 0), 0u) << r.diagnostics.errors[0];
  }
  std::string many = "    tags: [";
  for (int i = 0; i < 33; ++i) many += (i ? ", t" : "t") + std::to_string(i);
  const LoadedConfig r = load_config_string(std::string(kHeader) + target + many + "]\n", "x.yaml");
  EXPECT_FALSE(r.ok());
}

}  // namespace
}  // namespace netprobe
