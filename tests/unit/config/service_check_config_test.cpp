// TCPquery and TLS targets (issue 18, docs/service-checks.md#configuration): good and bad rows of the schema
// and the loader, with their exact diagnostics, and durations.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "config/loader.h"

namespace netprobe {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

constexpr std::string_view kHeader = R"(
global:
  interval: 30
  nb_proc: 1
  probe_name: p
  logging_level: INFO
  dns_update_interval: 300
  prometheus_port: 8000
groups:
  g1: {}
targets:
)";

LoadedConfig load(std::string_view targets) {
  return load_config_string(std::string(kHeader) + std::string(targets), "t.yaml");
}

TEST(config_service_checks, TcpQueryAndTlsRowsLoad) {
  const LoadedConfig r = load(R"(
  smtp:
    type: TCPquery
    destination: mail.example.com
    dst_port: 25
    timeout: 3
    state: in production
    tags: [mail]
    query_response:
      - expect: "^220 "
      - send: "QUIT\r\n"
  redis:
    type: TCPquery
    destination: 192.0.2.7
    dst_port: 6379
    query_response:
      - send: "PING\r\n"
        expect: "^\\+PONG"
      - expect_bytes: "hex:0d0a"
  web:
    type: TLS
    destination: 2001:db8::1
    dst_port: 443
    tls_config: {server_name: www.example.com, ca_file: /etc/ssl/ca.pem}
    expiry_window: 30d
    threshold: {latency: 0.5}
    alert_level: paging
  web_secs:
    type: TLS
    destination: www.example.com
    dst_port: 443
    expiry_window: 86400
    tls_config: {insecure_skip_verify: true}
)");
  ASSERT_TRUE(r.ok()) << (r.diagnostics.errors.empty() ? "" : r.diagnostics.errors[0]);
  EXPECT_THAT(r.diagnostics.warnings, IsEmpty());
  const Config& c = *r.config;
  EXPECT_TRUE(c.targets.empty());  // never sent to the raw-socket workers
  ASSERT_EQ(c.service_checks.size(), 4u);

  const ServiceCheckConfig& smtp = c.service_checks.at("smtp");
  EXPECT_EQ(smtp.type, ServiceCheckType::kTcpQuery);
  EXPECT_EQ(smtp.dst_port, 25);
  EXPECT_EQ(smtp.timeout_s, 3);
  EXPECT_EQ(smtp.state_label(), "in production");
  EXPECT_THAT(smtp.groups, ElementsAre("g1"));
  EXPECT_THAT(smtp.query_response, ElementsAre(QueryStep{"expect", "^220 "}, QueryStep{"send", "QUIT\r\n"}));
  EXPECT_EQ(smtp.family(), AddressFamily::kV4);

  // blackbox's order inside one item: the expect, then the send.
  EXPECT_THAT(c.service_checks.at("redis").query_response,
              ElementsAre(QueryStep{"expect", "^\\+PONG"}, QueryStep{"send", "PING\r\n"},
                          QueryStep{"expect_bytes", "hex:0d0a"}));

  const ServiceCheckConfig& web = c.service_checks.at("web");
  EXPECT_EQ(web.type, ServiceCheckType::kTls);
  EXPECT_EQ(web.family(), AddressFamily::kV6);
  EXPECT_EQ(web.server_name, "www.example.com");
  EXPECT_EQ(web.ca_file, "/etc/ssl/ca.pem");
  EXPECT_EQ(web.expiry_window_s, 30 * 86400);
  EXPECT_EQ(web.timeout_s, 5);  // the default of a service check
  EXPECT_EQ(web.threshold.latency, 0.5);
  EXPECT_EQ(web.alert_level, AlertLevel::kPaging);
  EXPECT_EQ(c.service_checks.at("web_secs").expiry_window_s, 86400);
  EXPECT_TRUE(c.service_checks.at("web_secs").insecure_skip_verify);
}

struct BadRow {
  std::string name;
  std::string yaml;  // the body of one target `x`
  std::string error;
};
void PrintTo(const BadRow& b, std::ostream* os) { *os << b.name; }

class BadServiceCheckRow : public ::testing::TestWithParam<BadRow> {};

TEST_P(BadServiceCheckRow, IsRejectedWithItsReason) {
  const BadRow& b = GetParam();
  const LoadedConfig r = load("  x:\n" + b.yaml);
  EXPECT_FALSE(r.ok());
  EXPECT_THAT(r.diagnostics.errors, ElementsAre(b.error));
}

const std::string kTcp = "    type: TCPquery\n    destination: 192.0.2.1\n    dst_port: 25\n";
const std::string kTls = "    type: TLS\n    destination: 192.0.2.1\n    dst_port: 443\n";

INSTANTIATE_TEST_SUITE_P(
    config_service_checks, BadServiceCheckRow,
    ::testing::Values(
        BadRow{"missing_port", "    type: TCPquery\n    destination: 192.0.2.1\n",
               "targets.x.dst_port: required for TCPquery"},
        BadRow{"bad_regex", kTcp + "    query_response: [{expect: \"(unclosed\"}]\n",
               "targets.x.query_response[0].expect: regex: missing ): (unclosed"},
        BadRow{"empty_steps", kTcp + "    query_response: []\n",
               "targets.x.query_response: empty: leave query_response out to check the connection only"},
        BadRow{"empty_item", kTcp + "    query_response: [{}]\n",
               "targets.x.query_response[0]: empty: one of send, expect or expect_bytes"},
        BadRow{"unknown_step_key", kTcp + "    query_response: [{starttls: true}]\n",
               "targets.x.query_response[0].starttls: unknown key (allowed: expect, expect_bytes, send)"},
        BadRow{"both_expects", kTcp + "    query_response: [{expect: a, expect_bytes: b}]\n",
               "targets.x.query_response[0]: expect and expect_bytes in one item: write two items"},
        BadRow{"bad_hex", kTcp + "    query_response: [{send: \"hex:zz\"}]\n",
               "targets.x.query_response[0].send: hex: invalid character"},
        BadRow{"send_too_long", kTcp + "    query_response: [{send: \"" + std::string(1233, 'a') + "\"}]\n",
               "targets.x.query_response[0].send: longer than 1232 bytes"},
        BadRow{"regex_too_long", kTcp + "    query_response: [{expect: \"" + std::string(513, 'a') + "\"}]\n",
               "targets.x.query_response[0].expect: \"" + std::string(77, 'a') +
                   "...\" is too long: 513 characters, at most 512"},
        BadRow{"too_many_steps",
               kTcp + "    query_response: [" +
                   [] {
                     std::string s;
                     for (int i = 0; i < 33; ++i) s += "{send: a},";
                     return s;
                   }() +
                   "]\n",
               "targets.x.query_response: expected at most 32 item(s), got 33"},
        BadRow{"tls_config_on_tcp", kTcp + "    tls_config: {server_name: a.example}\n",
               "targets.x.tls_config: only for type TLS"},
        BadRow{"expiry_on_tcp", kTcp + "    expiry_window: 30d\n",
               "targets.x.expiry_window: only for type TLS"},
        BadRow{
            "bad_duration", kTls + "    expiry_window: 30 days\n",
            "targets.x.expiry_window: \"30 days\" is not a duration: units are s, m, h, d, w, y (e.g. 30d, "
            "1h30m)"},
        BadRow{"window_too_long", kTls + "    expiry_window: 11y\n",
               "targets.x.expiry_window: 346896000 s is outside 0 to 315360000 s (10 years)"},
        BadRow{"negative_window", kTls + "    expiry_window: -1\n",
               "targets.x.expiry_window: -1 is less than the minimum 0"},
        BadRow{
            "relative_ca", kTls + "    tls_config: {ca_file: ca.pem}\n",
            "targets.x.tls_config.ca_file: must be an absolute path (the daemon's working directory is /)"},
        BadRow{"bad_sni", kTls + "    tls_config: {server_name: \"a b\"}\n",
               "targets.x.tls_config.server_name: \"a b\" is not a DNS name"},
        BadRow{"unknown_tls_key", kTls + "    tls_config: {cert_file: /x}\n",
               "targets.x.tls_config.cert_file: unknown key (did you mean \"ca_file\"?)"},
        BadRow{"subnet", kTcp + "    is_subnet: true\n",
               "targets.x.is_subnet: TCPquery checks one host: a subnet is not supported"},
        BadRow{"zero_timeout", kTcp + "    timeout: 0\n",
               "targets.x.timeout: 0 s: a TCPquery check needs more than 0 and at most 300 s"},
        BadRow{"network_destination", "    type: TLS\n    destination: 192.0.2.0/24\n    dst_port: 443\n",
               "targets.x.destination: \"192.0.2.0/24\" is a network: set is_subnet: true to probe its "
               "addresses"}),
    [](const auto& info) { return info.param.name; });

TEST(config_service_checks, IgnoredRawProbeKeysWarn) {
  const LoadedConfig r = load("  x:\n" + kTcp + "    nb_packets: 3\n");
  ASSERT_TRUE(r.ok());
  EXPECT_THAT(r.diagnostics.warnings,
              ElementsAre("targets.x.nb_packets: ignored for TCPquery (one connection per interval)"));
}

TEST(config_service_checks, Durations) {
  struct Row {
    std::string text;
    std::optional<int64_t> seconds;
  };
  for (const Row& row : std::vector<Row>{{"3600", 3600},
                                         {"90s", 90},
                                         {"1h30m", 5400},
                                         {"30d", 2592000},
                                         {"2w", 1209600},
                                         {"1y", 31536000},
                                         {"", std::nullopt},
                                         {"h", std::nullopt},
                                         {"1h30", std::nullopt},
                                         {"5x", std::nullopt},
                                         {"-5s", std::nullopt},
                                         {"99999999999999999999y", std::nullopt}}) {
    std::string why;
    EXPECT_EQ(parse_duration_seconds(row.text, &why), row.seconds) << row.text;
    if (!row.seconds) {
      EXPECT_FALSE(why.empty()) << row.text;
    }
  }
}

}  // namespace
}  // namespace netprobe
