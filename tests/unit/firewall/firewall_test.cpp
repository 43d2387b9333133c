// export-fw and convert-fw: golden outputs (tests/fixtures/firewall; NETPROBE_UPDATE_GOLDEN=1 rewrites
// them), hostile rule files, and name resolution through a scripted resolver.
#include <gtest/gtest.h>

#include <cstdlib>
#include <deque>
#include <fstream>
#include <map>
#include <sstream>

#include "config/loader.h"
#include "firewall/convert.h"
#include "firewall/export.h"
#include "firewall/rules.h"

namespace netprobe::firewall {
namespace {

const std::string kDir = std::string(NETPROBE_SOURCE_DIR) + "/tests/fixtures/firewall/";

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Compares with a golden file; NETPROBE_UPDATE_GOLDEN=1 writes it instead (then review the diff).
void expect_golden(const std::string& name, const std::string& actual) {
  const std::string path = kDir + name;
  if (std::getenv("NETPROBE_UPDATE_GOLDEN")) {
    std::ofstream(path, std::ios::binary) << actual;
    return;
  }
  EXPECT_EQ(read_file(path), actual) << "golden file " << path << " (NETPROBE_UPDATE_GOLDEN=1 rewrites it)";
}

// Answers from a table; every query is answered at the next poll(), never from inside resolve().
class ScriptedResolver final : public Resolver {
 public:
  std::map<std::pair<std::string, AddressFamily>, Resolution> answers;
  std::vector<std::pair<std::string, AddressFamily>> asked;

  void resolve(const std::string& host, AddressFamily af, std::function<void(Resolution)> done) override {
    asked.emplace_back(host, af);
    const auto it = answers.find({host, af});
    Resolution r;
    if (it != answers.end())
      r = it->second;
    else
      r.error = "NXDOMAIN";
    queue_.emplace_back(std::move(done), std::move(r));
  }
  int poll(Nanos) override {
    auto batch = std::move(queue_);
    queue_.clear();
    for (auto& [done, r] : batch) done(r);
    return int(batch.size());
  }
  size_t pending() const override { return queue_.size(); }

  void add(const std::string& host, std::vector<std::string> addresses) {
    for (const auto& a : addresses) {
      const auto ip = *IpAddress::parse(a);
      auto& r = answers[{host, ip.af}];
      r.ok = true;
      r.addresses.push_back(ip);
    }
  }
  void fail(const std::string& host, AddressFamily af, const std::string& error) {
    answers[{host, af}] = Resolution{false, {}, error};
  }

 private:
  std::deque<std::pair<std::function<void(Resolution)>, Resolution>> queue_;
};

// The names of the convert goldens: several A and AAAA records (given out of order), and an IPv6-only name.
ScriptedResolver golden_resolver() {
  ScriptedResolver r;
  r.add("login.example.com", {"192.0.2.21", "192.0.2.20"});
  r.fail("login.example.com", AddressFamily::kV6, "no ipv6 address");
  r.add("api.example.com", {"192.0.2.81", "192.0.2.80", "2001:db8:80::1", "192.0.2.80"});
  r.add("v6only.example.com", {"2001:db8:66::6"});
  r.fail("v6only.example.com", AddressFamily::kV4, "no ipv4 address");
  return r;
}

std::vector<EgressRule> parse_ok(const std::string& file) {
  const auto parsed = parse_rules(read_file(kDir + file), file);
  for (const auto& e : parsed.errors) ADD_FAILURE() << e;
  return parsed.rules;
}

TEST(firewall_Export, GoldenYaml) {
  const auto loaded = load_config_file(kDir + "export_config.yaml");
  ASSERT_TRUE(loaded.ok()) << (loaded.diagnostics.errors.empty() ? "" : loaded.diagnostics.errors[0]);
  const auto rules = export_rules(*loaded.config, all_targets(*loaded.config), "prober1.example.com");
  ASSERT_TRUE(rules.ok()) << rules.error().message;
  const std::string yaml = render_yaml(rules.value(), {"golden: export_config.yaml"});
  expect_golden("export.golden.yaml", yaml);

  // It reads back as it was written (the YAML is convert-fw's input).
  const auto back = parse_rules(yaml, "export.golden.yaml");
  ASSERT_TRUE(back.errors.empty()) << back.errors[0];
  EXPECT_EQ(render_yaml(back.rules, {"golden: export_config.yaml"}), yaml);
}

TEST(firewall_Export, SelectionNarrowsTheRules) {
  const auto loaded = load_config_file(kDir + "export_config.yaml");
  ASSERT_TRUE(loaded.ok());
  const auto& targets = loaded.config->targets;
  const std::vector<const TargetConfig*> selected{&targets.at("dns_udp")};
  const auto rules = export_rules(*loaded.config, selected, "p");
  ASSERT_TRUE(rules.ok());
  ASSERT_EQ(rules.value().size(), 1u);
  EXPECT_EQ(rules.value()[0].protocol, Protocol::kUdp);
  EXPECT_EQ(rules.value()[0].returning, kPortUnreachable | kIcmpErrors);
  EXPECT_EQ(render_yaml({}, {}), "egress: []\n");
  EXPECT_FALSE(export_rules(*loaded.config, selected, "bad host\nname").ok());
}

// UDPquery: a UDP rule to dst_port from the group's source ports; the service's answers come back as UDP
// (udp-answer), a closed port as a port unreachable.
TEST(firewall_Export, UdpQueryIsAUdpRuleWithItsAnswers) {
  const auto loaded = load_config_string(R"(global:
  probe_name: p
  interval: 30
  nb_proc: 1
  logging_level: INFO
  prometheus_port: 8000
  dns_update_interval: 300
groups:
  g:
    src_ipv4: 198.51.100.1
    src_port_a: 40000
    src_port_z: 40003
targets:
  resolver:
    type: UDPquery
    destination: 192.0.2.53
    dst_port: 53
    payload: 'hex:0000 0100 0001'
    token: {offset: 0, length: 2}
)",
                                         "q.yaml");
  ASSERT_TRUE(loaded.ok()) << loaded.diagnostics.errors[0];
  const std::vector<const TargetConfig*> selected{&loaded.config->targets.at("resolver")};
  const auto rules = export_rules(*loaded.config, selected, "p");
  ASSERT_TRUE(rules.ok());
  ASSERT_EQ(rules.value().size(), 1u);
  const EgressRule& r = rules.value()[0];
  EXPECT_EQ(r.protocol, Protocol::kUdp);
  EXPECT_EQ(r.returning, kUdpAnswer | kPortUnreachable | kIcmpErrors);
  EXPECT_EQ(r.ports, (std::vector<PortRange>{{53, 53}}));
  EXPECT_EQ(r.src_ports, (std::vector<PortRange>{{40000, 40003}}));
  const std::string yaml = render_yaml(rules.value(), {});
  EXPECT_NE(yaml.find("udp-answer"), std::string::npos) << yaml;
  auto resolver = golden_resolver();
  const auto resolved = resolve_names(rules.value(), resolver, std::chrono::seconds(5));
  ConvertOptions options;
  options.backend = Backend::kIptables;
  const std::string ipt = render_commands(rules.value(), resolved, options);
  EXPECT_NE(
      ipt.find(
          "iptables -A INPUT -p udp -s 192.0.2.53 -d 198.51.100.1 --sport 53 --dport 40000:40003 -j ACCEPT"),
      std::string::npos)
      << ipt;
  options.backend = Backend::kNftables;
  const std::string nft = render_commands(rules.value(), resolved, options);
  EXPECT_NE(nft.find("ip saddr 192.0.2.53 ip daddr 198.51.100.1 udp sport 53 udp dport 40000-40003 accept"),
            std::string::npos)
      << nft;
}

class firewall_ConvertGolden : public ::testing::TestWithParam<const char*> {};

TEST_P(firewall_ConvertGolden, PerBackend) {
  auto rules = parse_ok("convert_a.yaml");
  for (auto& r : parse_ok("convert_b.yaml")) rules.push_back(std::move(r));
  const auto merged = merge_rules(std::move(rules));
  auto resolver = golden_resolver();
  const auto resolved = resolve_names(merged, resolver, std::chrono::seconds(5));
  ASSERT_TRUE(resolved.errors.empty()) << resolved.errors[0];
  ConvertOptions options;
  options.backend = *backend_from_string(GetParam());
  expect_golden(std::string("convert.") + GetParam() + ".golden", render_commands(merged, resolved, options));
}

INSTANTIATE_TEST_SUITE_P(firewall, firewall_ConvertGolden,
                         ::testing::Values("iptables", "nftables", "ufw", "aws", "neutron"));

TEST(firewall_Convert, MergeJoinsPortsAndKeepsSourcesApart) {
  auto rules = parse_ok("convert_a.yaml");
  for (auto& r : parse_ok("convert_b.yaml")) rules.push_back(std::move(r));
  const auto merged = merge_rules(rules);
  // login.example.com twice (80, 443 and 443) -> one rule; api.example.com's ports joined into ranges.
  ASSERT_EQ(merged.size(), 6u);
  const auto api = std::find_if(merged.begin(), merged.end(),
                                [](const auto& r) { return r.to_host == "api.example.com"; });
  ASSERT_NE(api, merged.end());
  ASSERT_EQ(api->ports.size(), 2u);
  EXPECT_EQ(api->ports[0].to_string(), "8443-8444");
  EXPECT_EQ(api->ports[1].to_string(), "9000-9011");
  EXPECT_EQ(api->targets, (std::vector<std::string>{"api", "api_alt"}));
  // Another source port range is another rule: no source range gains a destination port it never had.
  rules[2].src_ports = {{1000, 1001}};
  EXPECT_EQ(merge_rules(rules).size(), 7u);
}

TEST(firewall_Convert, EveryRecordOfEveryFamily) {
  const auto merged = merge_rules(parse_ok("convert_a.yaml"));
  auto resolver = golden_resolver();
  const auto resolved = resolve_names(merged, resolver, std::chrono::seconds(5));
  ASSERT_TRUE(resolved.errors.empty());
  // api: both families asked, every record kept once, IPv4 first.
  const auto& api = resolved.addresses.at("api.example.com");
  ASSERT_EQ(api.size(), 3u);
  EXPECT_EQ(api[0].to_string(), "192.0.2.80");
  EXPECT_EQ(api[1].to_string(), "192.0.2.81");
  EXPECT_EQ(api[2].to_string(), "2001:db8:80::1");
  // An ipv6-icmp rule asks for AAAA only.
  EXPECT_EQ(std::count(resolver.asked.begin(), resolver.asked.end(),
                       std::pair<std::string, AddressFamily>{"v6only.example.com", AddressFamily::kV4}),
            0);
}

TEST(firewall_Convert, NamesThatDoNotResolve) {
  struct Case {
    const char* what;
    void (*script)(ScriptedResolver&);
    const char* error;  // "" = resolves
  };
  const Case cases[] = {
      {"NXDOMAIN for both families", [](ScriptedResolver&) {},
       "h.example.com: does not resolve (ipv4: NXDOMAIN; ipv6: NXDOMAIN)"},
      {"A only: fine", [](ScriptedResolver& r) { r.add("h.example.com", {"192.0.2.1"}); }, ""},
      {"AAAA times out while A answers: incomplete, refused",
       [](ScriptedResolver& r) {
         r.add("h.example.com", {"192.0.2.1"});
         r.fail("h.example.com", AddressFamily::kV6, "timeout");
       },
       "h.example.com: does not resolve (ipv6: timeout)"},
      {"only unusable answers",
       [](ScriptedResolver& r) {
         r.add("h.example.com", {"0.0.0.0", "224.0.0.1"});
       },
       "h.example.com: does not resolve (ipv6: NXDOMAIN)"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.what);
    const auto parsed = parse_rules("egress:\n- {to_host: h.example.com, protocol: tcp, ports: [1]}\n", "t");
    ASSERT_TRUE(parsed.errors.empty());
    ScriptedResolver resolver;
    c.script(resolver);
    const auto resolved = resolve_names(parsed.rules, resolver, std::chrono::seconds(1));
    if (*c.error) {
      ASSERT_EQ(resolved.errors.size(), 1u);
      EXPECT_EQ(resolved.errors[0], c.error);
    } else {
      EXPECT_TRUE(resolved.errors.empty());
    }
  }
}

TEST(firewall_Parse, HostileFilesAreRefusedWithFileAndLine) {
  struct Case {
    const char* what;
    std::string text;
    std::string error;  // expected first error; "" = accepted
  };
  const std::string rule = "egress:\n- to_host: 192.0.2.1\n  protocol: tcp\n";
  std::string deep = "egress:\n- to_host: 192.0.2.1\n  protocol: tcp\n  ports: ";
  for (int i = 0; i < 100; ++i) deep += "[";
  // One list of 60,000 ports referenced by 100 rules: 6 million nodes from a 300 KB file.
  std::string laughs = "egress:\n- {to_host: 192.0.2.1, protocol: tcp, ports: &p [";
  for (int i = 0; i < 60000; ++i) laughs += "1,";
  laughs += "1]}\n";
  for (int i = 0; i < 100; ++i) laughs += "- {to_host: 192.0.2.1, protocol: tcp, ports: *p}\n";
  const Case cases[] = {
      {"a conn-check rule", rule + "  ports: [80, 443]\n  from_host: dev\n", ""},
      {"empty file", "", ""},
      {"an empty from_host (export-fw without a name)", rule + "  ports: [1]\n  from_host: \"\"\n", ""},
      {"not a mapping", "- a\n", "t:1: the document must be a mapping with an `egress` list"},
      {"egress not a list", "egress: 3\n", "t:1: egress: expected a list of rules, found a scalar"},
      {"rule not a mapping", "egress:\n- [1, 2]\n",
       "t:2: egress[0]: expected a mapping (from_host, to_host, ports, protocol), found a list"},
      {"ports of the wrong type", rule + "  ports: {a: 1}\n",
       "t:4: egress[0].ports: expected a list, found a mapping"},
      {"port out of range", rule + "  ports: [80, 70000]\n",
       "t:4: egress[0].ports[1]: \"70000\" is not a port (1-65535) or a range a-b with a <= b"},
      {"reversed range", rule + "  ports: [9-3]\n",
       "t:4: egress[0].ports[0]: \"9-3\" is not a port (1-65535) or a range a-b with a <= b"},
      {"port 0", rule + "  ports: [0]\n",
       "t:4: egress[0].ports[0]: \"0\" is not a port (1-65535) or a range a-b with a <= b"},
      {"a nested list as a port", rule + "  ports: [[80]]\n",
       "t:4: egress[0].ports[0]: expected a scalar, found a list"},
      {"unknown protocol", "egress:\n- to_host: 192.0.2.1\n  protocol: sctp\n  ports: [1]\n",
       "t:3: egress[0].protocol: \"sctp\" is not tcp, udp, icmp or ipv6-icmp"},
      {"missing to_host", "egress:\n- protocol: tcp\n  ports: [1]\n", "t:2: egress[0]: to_host is required"},
      {"missing ports for tcp", rule, "t:2: egress[0]: ports are required for tcp"},
      {"ports for icmp", "egress:\n- to_host: 192.0.2.1\n  protocol: icmp\n  ports: [1]\n",
       "t:4: egress[0].ports: must be empty for icmp"},
      {"icmp to an IPv6 address", "egress:\n- to_host: 2001:db8::1\n  protocol: icmp\n",
       "t:2: egress[0]: to_host 2001:db8::1 is not an ipv4 destination"},
      {"shell injection in to_host",
       "egress:\n- to_host: \"a.com; rm -rf /\"\n  protocol: tcp\n  ports: [1]\n",
       "t:2: egress[0].to_host: \"a.com; rm -rf /\" is not an address, a CIDR network or a valid host name"},
      {"option injection in to_host", "egress:\n- to_host: -j\n  protocol: tcp\n  ports: [1]\n",
       "t:2: egress[0].to_host: \"-j\" is not an address, a CIDR network or a valid host name"},
      {"newline in from_host", rule + "  ports: [1]\n  from_host: \"a\\nb\"\n",
       "t:5: egress[0].from_host: \"a\\nb\" is not an address or a valid host name"},
      {"unknown key", rule + "  ports: [1]\n  dport: 1\n",
       "t:5: \"egress[0].dport\": unknown key (expected from_host, to_host, ports, protocol, address_family, "
       "from_cidr, returning, src_ports, targets)"},
      {"unknown returning", rule + "  ports: [1]\n  returning: [everything]\n",
       "t:5: egress[0].returning[0]: \"everything\" is not one of tcp-ack, echo-reply, port-unreachable, "
       "icmp-errors"},
      {"duplicate key", rule + "  ports: [1]\n  protocol: udp\n", "t:5: egress[0].protocol: duplicate key"},
      {"a python tag", "egress: !!python/object/apply:os.system [ls]\n", "t:1: unsupported tag"},
      {"a tagged scalar", rule + "  ports: [!!float 1]\n", "t:4: egress[0].ports[0]: unsupported tag"},
      {"syntax error", "egress: [\n", "t:2:"},
      {"nesting 100 deep", deep, "t:4:"},
      {"billion laughs", laughs, "t: more than 4000000 YAML nodes (aliases included); refused"},
      {"too many list items",
       rule + "  ports: [" +
           [] {
             std::string s;
             for (int i = 0; i < 70000; ++i) s += "1,";
             return s + "1]\n";
           }(),
       "t:4: egress[0].ports: 70001 items, more than 65536"},
      {"not UTF-8", "egress: \xff\n", "t:1:9: invalid UTF-8 (byte 0xff); the document must be UTF-8 text"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.what);
    const auto parsed = parse_rules(c.text, "t");
    if (c.error.empty()) {
      EXPECT_TRUE(parsed.errors.empty()) << parsed.errors[0];
      continue;
    }
    ASSERT_FALSE(parsed.errors.empty());
    EXPECT_TRUE(parsed.rules.empty());
    EXPECT_EQ(parsed.errors[0].substr(0, c.error.size()), c.error) << parsed.errors[0];
  }
}

TEST(firewall_Parse, SizeAndCountLimits) {
  ParseLimits limits;
  limits.max_bytes = 100;
  auto parsed = parse_rules(std::string(101, '#'), "big.yaml", limits);
  ASSERT_EQ(parsed.errors.size(), 1u);
  EXPECT_EQ(parsed.errors[0], "big.yaml: 101 bytes, more than the 100 a rules file may have");

  limits = ParseLimits{};
  limits.max_rules = 2;
  parsed = parse_rules(
      "egress: [{to_host: a, protocol: icmp}, {to_host: a, protocol: icmp}, {to_host: a, protocol: icmp}]\n",
      "n.yaml", limits);
  ASSERT_EQ(parsed.errors.size(), 1u);
  EXPECT_EQ(parsed.errors[0], "n.yaml:1: egress: 3 rules, more than 2");

  // Errors are capped, each with its line.
  std::string many = "egress:\n";
  for (int i = 0; i < 500; ++i) many += "- {to_host: \"bad host\", protocol: tcp, ports: [1]}\n";
  parsed = parse_rules(many, "m.yaml");
  EXPECT_EQ(parsed.errors.size(), ParseLimits{}.max_errors);
  EXPECT_EQ(parsed.errors[1].substr(0, 9), "m.yaml:3:");
}

TEST(firewall_Parse, OptionValuesThatReachTheShell) {
  EXPECT_TRUE(is_valid_group("$SECGROUP"));
  EXPECT_TRUE(is_valid_group("sg-0123abcd"));
  EXPECT_FALSE(is_valid_group("sg; rm -rf /"));
  EXPECT_FALSE(is_valid_group("$(id)"));
  EXPECT_FALSE(is_valid_group(""));
  EXPECT_TRUE(is_valid_nft_table("filter"));
  EXPECT_FALSE(is_valid_nft_table("filter output"));
  EXPECT_TRUE(is_valid_host_name("a-b.example.com."));
  EXPECT_FALSE(is_valid_host_name("-a"));
  EXPECT_FALSE(is_valid_host_name(std::string(64, 'a')));
  EXPECT_FALSE(is_valid_host_name("a..b"));
}

TEST(firewall_Rules, CoalesceAndNames) {
  EXPECT_EQ(coalesce({{443, 443}, {80, 80}, {444, 450}, {81, 81}}),
            (std::vector<PortRange>{{80, 81}, {443, 450}}));
  EXPECT_EQ(coalesce({{65535, 65535}, {1, 65535}}), (std::vector<PortRange>{{1, 65535}}));
  EXPECT_EQ(returning_names(kAllReturning).size(), 5u);  // udp-answer: UDPquery
  EXPECT_EQ(*protocol_from_string("icmpv6"), Protocol::kIcmpV6);
  EXPECT_EQ(*backend_from_string("openstack"), Backend::kNeutron);
  EXPECT_FALSE(backend_from_string("nova"));
}

}  // namespace
}  // namespace netprobe::firewall
