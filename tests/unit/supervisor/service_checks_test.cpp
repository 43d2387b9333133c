// TCPquery / TLS targets in the daemon (src/supervisor/service_checks.h): the spec built from the
// configuration, the one-shot runs of `netprobe check`, the scheduled runner feeding the series, and the
// exposition's names and labels. Loopback servers only.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "../svc/scripted_resolver.h"
#include "config/loader.h"
#include "supervisor/service_checks.h"

namespace netprobe {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// Serves every connection on 127.0.0.1 with a banner, until destroyed (bounded: 200 connections).
class BannerServer {
 public:
  explicit BannerServer(std::string banner) : banner_(std::move(banner)) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    EXPECT_EQ(::listen(fd_, 16), 0);
    socklen_t len = sizeof a;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] {
      for (int i = 0; i < 200; ++i) {
        const int c = ::accept(fd_, nullptr, nullptr);
        if (c < 0) return;
        ::send(c, banner_.data(), banner_.size(), MSG_NOSIGNAL);
        ::close(c);
      }
    });
  }
  ~BannerServer() {
    ::shutdown(fd_, SHUT_RDWR);
    thread_.join();
    ::close(fd_);
  }
  uint16_t port() const { return port_; }

 private:
  std::string banner_;
  int fd_ = -1;
  uint16_t port_ = 0;
  std::thread thread_;
};

Config load(const std::string& targets, int interval = 30) {
  const std::string yaml =
      "global:\n  interval: " + std::to_string(interval) +
      "\n  nb_proc: 1\n  probe_name: p\n  logging_level: INFO\n  dns_update_interval: 300\n"
      "  prometheus_port: 8000\ngroups:\n  g1: {}\n  g2: {src_ipv4: 127.0.0.1}\ntargets:\n" +
      targets;
  auto r = load_config_string(yaml, "t.yaml");
  EXPECT_TRUE(r.ok()) << (r.diagnostics.errors.empty() ? "" : r.diagnostics.errors.front());
  return r.ok() ? *r.config : Config{};
}

std::string banner_target(const std::string& name, uint16_t port, const std::string& expect) {
  return "  " + name +
         ":\n    type: TCPquery\n    destination: 127.0.0.1\n    dst_port: " + std::to_string(port) +
         "\n    timeout: 3\n    query_response: [{expect: \"" + expect + "\"}]\n";
}

// A banner check of a host name, with its own timeout (seconds).
std::string named_target(const std::string& name, const std::string& host, uint16_t port, double timeout) {
  return "  " + name + ":\n    type: TCPquery\n    destination: " + host +
         "\n    dst_port: " + std::to_string(port) + "\n    timeout: " + std::to_string(timeout) +
         "\n    query_response: [{expect: \"^220\"}]\n";
}

// A resolver per checking thread: banner.test is 127.0.0.1, any other name is never answered.
ServiceCheckResolverFactory scripted_dns(std::atomic<int>* made) {
  return [made]() -> std::unique_ptr<Resolver> {
    ++*made;
    return std::make_unique<testing_doubles::ScriptedResolver>(
        testing_doubles::Answers{{"banner.test", {"127.0.0.1"}}});
  };
}

std::string render(const ServiceCheckSeries& s) {
  std::string out, all;
  EXPECT_TRUE(s.render(out, 1 << 20, [&](std::string_view piece) {
    all += piece;
    return true;
  }));
  return all + out;
}

TEST(supervisor_service_checks, SpecFromConfigBindsTheGroupSource) {
  const Config c =
      load(banner_target("smtp", 25, "^220") +
           "  web:\n    type: TLS\n    destination: www.example.com\n    dst_port: 443\n"
           "    expiry_window: 7d\n    tls_config: {server_name: x.example, ca_file: /ca.pem}\n");
  const auto& smtp = c.service_checks.at("smtp");
  auto plain = service_check_spec(smtp, &c.groups.at("g1"));
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(plain.value().host, "127.0.0.1");
  EXPECT_EQ(plain.value().port, 25);
  EXPECT_EQ(plain.value().family, AF_INET);
  EXPECT_EQ(plain.value().source, "");  // g1 has no source: the kernel chooses
  EXPECT_EQ(plain.value().steps.size(), 1u);
  EXPECT_FALSE(plain.value().tls.enabled);
  EXPECT_EQ(plain.value().timeout, std::chrono::milliseconds(3000));
  EXPECT_EQ(service_check_spec(smtp, &c.groups.at("g2")).value().source, "127.0.0.1");

  auto tls = service_check_spec(c.service_checks.at("web"), nullptr);
  ASSERT_TRUE(tls.ok());
  EXPECT_TRUE(tls.value().tls.enabled);
  EXPECT_EQ(tls.value().tls.server_name, "x.example");
  EXPECT_EQ(tls.value().tls.ca_file, "/ca.pem");
  EXPECT_EQ(tls.value().tls.expiry_window, std::chrono::seconds(7 * 86400));
}

TEST(supervisor_service_checks, OneShotRunsEveryCheckAndGroup) {
  BannerServer server("220 ready\r\n");
  const Config c =
      load(banner_target("good", server.port(), "^220") + banner_target("wrong", server.port(), "^554"));
  const auto out = run_service_checks_once(c, selected_service_checks(c, {}));
  ASSERT_EQ(out.size(), 4u);  // 2 checks x 2 groups, in (name, group) order
  EXPECT_EQ(out[0].check->name, "good");
  EXPECT_EQ(out[0].group, "g1");
  EXPECT_TRUE(out[0].result.success) << out[0].result.failure << " " << out[0].result.detail;
  EXPECT_TRUE(out[1].result.success) << out[1].result.detail;  // bound to g2's 127.0.0.1
  EXPECT_FALSE(out[2].result.success);
  EXPECT_EQ(out[2].result.failure, "expect");
  EXPECT_THAT(service_check_line(out[0]), testing::StartsWith("TCPquery 127.0.0.1:"));
  EXPECT_THAT(service_check_line(out[0]), HasSubstr(" OK "));
  EXPECT_THAT(service_check_line(out[2]), HasSubstr("FAILED expect: step 0: connection closed [wrong/g1]"));
}

// Names resolve inside the check, on the thread's own resolver: a name answered is checked, a name never
// answered fails "resolve" at its own timeout (the other checks unaffected), a literal asks nothing.
TEST(supervisor_service_checks, OneShotResolvesNamesWithinTheCheck) {
  BannerServer server("220 ready\r\n");
  const Config c = load(named_target("blackhole", "blackhole.test", server.port(), 0.2) +
                        banner_target("literal", server.port(), "^220") +
                        named_target("named", "banner.test", server.port(), 3));
  std::atomic<int> made{0};
  const auto out = run_service_checks_once(c, selected_service_checks(c, {}), scripted_dns(&made));
  ASSERT_EQ(out.size(), 6u);  // (blackhole, literal, named) x (g1, g2)
  for (int i : {0, 1}) {
    EXPECT_EQ(out[i].check->name, "blackhole");
    EXPECT_EQ(out[i].result.failure, "resolve");
    EXPECT_THAT(out[i].result.detail, HasSubstr("blackhole.test: timeout after"));
  }
  for (int i : {2, 3, 4, 5}) EXPECT_TRUE(out[i].result.success) << i << " " << out[i].result.detail;
  EXPECT_EQ(out[2].result.dns_lookup_seconds, 0);  // the literal
  EXPECT_THAT(service_check_line(out[0]), HasSubstr("FAILED resolve: blackhole.test: timeout after"));
  // One per thread, and a fresh one after each of the 2 runs that abandoned a query.
  EXPECT_GE(made.load(), 1);
  EXPECT_LE(made.load(), int(kServiceCheckThreads) + 2);
}

// The daemon's runner, one thread: the black-holed name fails "resolve" run after run (each run ends at its
// 0.2 s timeout) while the named check on the same thread keeps passing; the lookup time is exported.
// Bounded waits, no timed assertion.
TEST(supervisor_service_checks, RunnerFailsAnUnresolvedNameAndKeepsTheOthers) {
  BannerServer server("220 ready\r\n");
  auto series = std::make_shared<ServiceCheckSeries>("p");
  std::atomic<int> made{0};
  ServiceCheckRunner runner(series, 1, scripted_dns(&made));  // one thread: the black hole cannot hide
  const Config c = load(named_target("blackhole", "blackhole.test", server.port(), 0.2) +
                            named_target("named", "banner.test", server.port(), 3),
                        /*interval=*/1);
  runner.update(c, {});
  const std::string labels = "group=\"g1\",probe_name=\"p\",state=\"None\",type=\"TCPquery\"";
  const std::string hole_failures =
      "netprobe_service_check_failures_total{address_family=\"ipv4\","
      "destination=\"blackhole\"," +
      labels + ",reason=\"resolve\"} ";
  const std::string named_runs =
      "netprobe_service_check_runs_total{address_family=\"ipv4\",destination=\"named\"," + labels + "} ";
  std::string text;
  for (int i = 0; i < 200; ++i) {
    text = render(*series);
    if (text.find(hole_failures + "2\n") != std::string::npos &&
        text.find(named_runs + "0\n") == std::string::npos &&
        text.find(named_runs + "1\n") == std::string::npos)
      break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_THAT(text, HasSubstr(hole_failures));
  EXPECT_THAT(text, HasSubstr("probe_failed_due_to{address_family=\"ipv4\",destination=\"blackhole\"," +
                              labels + ",reason=\"resolve\"} 1\n"));
  EXPECT_THAT(text,
              HasSubstr("probe_success{address_family=\"ipv4\",destination=\"named\"," + labels + "} 1\n"));
  EXPECT_THAT(text,
              HasSubstr("probe_dns_lookup_time_seconds{address_family=\"ipv4\",destination=\"named\","));
  EXPECT_THAT(text, Not(HasSubstr(named_runs + "0\n")));
  EXPECT_GE(made.load(), 2);  // the resolver left with an abandoned query is replaced, not reused
}

TEST(supervisor_service_checks, TagsSelect) {
  const Config c = load(banner_target("a", 1, "x") + "    tags: [mail]\n" + banner_target("b", 1, "x"));
  auto sel = parse_tag_selection(std::string("mail"), std::nullopt);
  ASSERT_TRUE(sel.ok());
  const auto checks = selected_service_checks(c, sel.value());
  ASSERT_EQ(checks.size(), 1u);
  EXPECT_EQ(checks[0]->name, "a");
}

TEST(supervisor_service_checks, SeriesNamesLabelsAndRemoval) {
  const Config c = load(banner_target("smtp", 25, "^220") +
                        "  web:\n    type: TLS\n    destination: 192.0.2.1\n    dst_port: 443\n"
                        "    expiry_window: 30d\n    alert_level: paging\n    state: in production\n"
                        "    explicit_groups: {exclude_from: [g2]}\n");
  ServiceCheckSeries series("p");
  series.declare(selected_service_checks(c, {}));
  std::string text = render(series);
  // Before any run: the counters and the configured window, no result.
  EXPECT_THAT(text,
              HasSubstr("netprobe_service_check_runs_total{address_family=\"ipv4\",destination=\"smtp\","
                        "group=\"g1\",probe_name=\"p\",state=\"None\",type=\"TCPquery\"} 0\n"));
  EXPECT_THAT(text,
              HasSubstr("probe_ssl_expiry_window_seconds{address_family=\"ipv4\",alert_level=\"paging\","
                        "destination=\"web\",group=\"g1\",probe_name=\"p\",state=\"in production\","
                        "type=\"TLS\"} 2592000\n"));
  EXPECT_THAT(text, Not(HasSubstr("probe_success{")));

  svc::TcpQueryResult fail;
  fail.failure = "tls_verify";
  fail.duration_seconds = 0.25;
  fail.connect_seconds = 0.001;
  fail.tls_version = "TLS 1.3";
  fail.earliest_cert_expiry = 1800000000;
  series.record(c.service_checks.at("web"), "g1", fail);
  svc::TcpQueryResult ok;
  ok.success = true;
  ok.connect_seconds = 0.002;
  series.record(c.service_checks.at("smtp"), "g2", ok);
  series.record(c.service_checks.at("smtp"), "g3", ok);  // not a group of it: ignored
  text = render(series);
  const std::string web =
      "{address_family=\"ipv4\",destination=\"web\",group=\"g1\",probe_name=\"p\","
      "state=\"in production\",type=\"TLS\"";
  EXPECT_THAT(text, HasSubstr("# TYPE probe_success gauge\n"));
  EXPECT_THAT(text, HasSubstr("probe_success" + web + "} 0\n"));
  EXPECT_THAT(text, HasSubstr("probe_failed_due_to" + web + ",reason=\"tls_verify\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("netprobe_service_check_failures_total" + web + ",reason=\"tls_verify\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("probe_tls_version_info" + web + ",version=\"TLS 1.3\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("probe_ssl_verified" + web + "} 0\n"));
  EXPECT_THAT(text, HasSubstr("probe_ssl_earliest_cert_expiry" + web + "} 1800000000\n"));
  EXPECT_THAT(text, Not(HasSubstr("probe_ssl_last_chain_expiry_timestamp_seconds{")));  // did not verify
  EXPECT_THAT(text, HasSubstr("probe_success{address_family=\"ipv4\",destination=\"smtp\",group=\"g2\","
                              "probe_name=\"p\",state=\"None\",type=\"TCPquery\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("probe_tcp_connect_seconds{address_family=\"ipv4\",destination=\"smtp\","
                              "group=\"g2\",probe_name=\"p\",state=\"None\",type=\"TCPquery\"} 0.002\n"));
  EXPECT_THAT(text, Not(HasSubstr("g3")));

  // A reload without web: its series go, smtp's counters stay.
  const Config c2 = load(banner_target("smtp", 25, "^220"));
  series.declare(selected_service_checks(c2, {}));
  text = render(series);
  EXPECT_THAT(text, Not(HasSubstr("destination=\"web\"")));
  EXPECT_THAT(text,
              HasSubstr("netprobe_service_check_runs_total{address_family=\"ipv4\",destination=\"smtp\","
                        "group=\"g2\",probe_name=\"p\",state=\"None\",type=\"TCPquery\"} 1\n"));
}

// The runner runs each (check, group) on its schedule and records into the series; a reload that removes a
// check removes its series. Bounded waits (polling up to 20 s), no timed assertion.
TEST(supervisor_service_checks, RunnerRecordsOnItsSchedule) {
  BannerServer server("220 ready\r\n");
  auto series = std::make_shared<ServiceCheckSeries>("p");
  ServiceCheckRunner runner(series, 2);
  Config c = load(banner_target("good", server.port(), "^220") + banner_target("bad", server.port(), "^5"),
                  /*interval=*/1);
  runner.update(c, {});
  const std::string good_runs =
      "netprobe_service_check_runs_total{address_family=\"ipv4\",destination=\"good\","
      "group=\"g1\",probe_name=\"p\",state=\"None\",type=\"TCPquery\"} ";
  std::string text;
  for (int i = 0; i < 200; ++i) {
    text = render(*series);
    if (text.find(good_runs + "0\n") == std::string::npos &&
        text.find("netprobe_service_check_failures_total{address_family=\"ipv4\",destination=\"bad\",group="
                  "\"g2\"") != std::string::npos)
      break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_THAT(text, HasSubstr("probe_success{address_family=\"ipv4\",destination=\"good\",group=\"g1\","
                              "probe_name=\"p\",state=\"None\",type=\"TCPquery\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("probe_failed_due_to{address_family=\"ipv4\",destination=\"bad\",group=\"g2\","
                              "probe_name=\"p\",state=\"None\",type=\"TCPquery\",reason=\"expect\"} 1\n"));

  runner.update(load(banner_target("good", server.port(), "^220"), 1), {});
  EXPECT_THAT(render(*series), Not(HasSubstr("destination=\"bad\"")));
}

}  // namespace
}  // namespace netprobe
