// The address book driving the real CaresResolver against TestDnsServer on 127.0.0.1, its events applied
// to ProberMetrics: the app_host_resolution_* series and the clearing of measurement series, as a
// Prometheus scrape would see them.
#include <gtest/gtest.h>

#include <set>
#include <sstream>

#include <prometheus/text_serializer.h>

#include "dns/cares_resolver.h"
#include "dns/target_address_book.h"
#include "supervisor/resolution_metrics.h"
#include "test_dns_server.h"
#include "tests/support/metrics_lines.h"

namespace netprobe {
namespace {

using namespace std::chrono_literals;
using testing::TestDnsServer;

// What /metrics serves: the registry, then the per-target series.
bool has_line_containing(const ProberMetrics& metrics, prometheus::Registry& registry,
                         const std::string& needle) {
  for (const auto& line : testing::sample_lines(registry, *metrics.target_series()))
    if (line.find(needle) != std::string::npos) return true;
  return false;
}

std::string status_line(const std::string& target, const char* af, int v) {
  return R"(app_host_resolution_status{address_family=")" + std::string(af) + R"(",destination=")" + target +
         R"(",probe_name="probe1"} )" + std::to_string(v);
}
std::string change_line(const std::string& target, const char* af, int v) {
  return R"(app_host_resolution_change_total{address_family=")" + std::string(af) + R"(",destination=")" +
         target + R"(",probe_name="probe1"} )" + std::to_string(v);
}

TargetConfig target(const std::string& name, const std::string& destination, AddressFamily af) {
  TargetConfig t;
  t.name = name;
  t.destination = destination;
  t.address_family = af;
  t.type = ProbeType::kIcmpPing;
  t.groups = {"g1"};
  return t;
}

class dns_EndToEnd : public ::testing::Test {
 protected:
  void SetUp() override {
    CaresOptions o;
    o.servers = {server_.server()};
    o.search_domains = std::vector<std::string>{};
    o.use_hosts_file = false;
    o.timeout = 100ms;  // a silent server is reported after 100 + 200 ms
    o.tries = 2;
    auto r = CaresResolver::create(o);
    ASSERT_TRUE(r.ok()) << r.error().message;
    resolver_ = std::move(r).value();
    book_ = std::make_unique<TargetAddressBook>(*resolver_, clock_);
  }

  // What a supervisor does between iterations: let DNS run, apply the events, declare active targets.
  void settle(Nanos budget = 2s) {
    const auto give_up = std::chrono::steady_clock::now() + budget;
    while (book_->pending() && std::chrono::steady_clock::now() < give_up) book_->poll(50ms);
    record_resolution_events(book_->take_events(), metrics_);
    for (const auto& [name, t] : config_)
      if (book_->hosts(name)) metrics_.declare_target(t, t.family());
  }

  TestDnsServer server_;
  FakeClock clock_;
  std::unique_ptr<CaresResolver> resolver_;
  std::unique_ptr<TargetAddressBook> book_;
  std::shared_ptr<prometheus::Registry> registry_ = std::make_shared<prometheus::Registry>();
  ProberMetrics metrics_{registry_, "probe1", {95, 50}, "0.1.0"};
  std::map<std::string, TargetConfig> config_;
};

TEST_F(dns_EndToEnd, ResolutionV4AndV6SetStatusAndCountTheFirstResolution) {
  server_.set_a("web.example.test", {"192.0.2.10"});
  server_.set_aaaa("web.example.test", {"2001:db8::10"});
  config_ = {{"web4", target("web4", "web.example.test", AddressFamily::kV4)},
             {"web6", target("web6", "web.example.test", AddressFamily::kV6)}};
  book_->set_targets(config_);
  settle();
  EXPECT_EQ(book_->hosts("web4"), std::vector<IpAddress>{*IpAddress::parse("192.0.2.10")});
  EXPECT_EQ(book_->hosts("web6"), std::vector<IpAddress>{*IpAddress::parse("2001:db8::10")});
  EXPECT_TRUE(has_line_containing(metrics_, *registry_, status_line("web4", "ipv4", 1)));
  EXPECT_TRUE(has_line_containing(metrics_, *registry_, change_line("web4", "ipv4", 1)));
  EXPECT_TRUE(has_line_containing(metrics_, *registry_, status_line("web6", "ipv6", 1)));
  EXPECT_TRUE(has_line_containing(metrics_, *registry_, change_line("web6", "ipv6", 1)));
  EXPECT_TRUE(has_line_containing(metrics_, *registry_,
                                  R"(icmp_sent_total{address_family="ipv4",destination="web4")"));
}

TEST_F(dns_EndToEnd, ChangedRecordCountsAndMovesAtTheNextRefresh) {
  server_.set_a("moving.example.test", {"192.0.2.1"});
  config_ = {{"mv", target("mv", "moving.example.test", AddressFamily::kV4)}};
  book_->set_targets(config_);
  settle();
  book_->take_changed();
  // Stable: no event, change_total stays 1.
  book_->refresh_due();
  settle();
  EXPECT_FALSE(book_->take_changed());
  EXPECT_TRUE(has_line_containing(metrics_, *registry_, change_line("mv", "ipv4", 1)));

  server_.set_a("moving.example.test", {"192.0.2.2"});
  book_->refresh_due();
  settle();
  EXPECT_TRUE(book_->take_changed());
  EXPECT_EQ(book_->hosts("mv"), std::vector<IpAddress>{*IpAddress::parse("192.0.2.2")});
  EXPECT_TRUE(has_line_containing(metrics_, *registry_, status_line("mv", "ipv4", 1)));
  EXPECT_TRUE(has_line_containing(metrics_, *registry_, change_line("mv", "ipv4", 2)));
}

TEST_F(dns_EndToEnd, NxdomainSetsStatusZeroAndRemovesMeasurementSeries) {
  server_.set_a("gone.example.test", {"192.0.2.1"});
  config_ = {{"gone", target("gone", "gone.example.test", AddressFamily::kV4)}};
  book_->set_targets(config_);
  settle();
  ASSERT_TRUE(has_line_containing(metrics_, *registry_,
                                  R"(icmp_sent_total{address_family="ipv4",destination="gone")"));

  server_.remove("gone.example.test");
  book_->refresh_due();
  settle();
  EXPECT_EQ(book_->state("gone"), TargetAddressBook::State::kFailed);
  EXPECT_EQ(book_->error("gone"), "NXDOMAIN");
  EXPECT_FALSE(book_->hosts("gone"));
  EXPECT_TRUE(has_line_containing(metrics_, *registry_, status_line("gone", "ipv4", 0)));
  EXPECT_FALSE(has_line_containing(metrics_, *registry_,
                                   R"(icmp_sent_total{address_family="ipv4",destination="gone")"));
  EXPECT_TRUE(
      has_line_containing(metrics_, *registry_, change_line("gone", "ipv4", 1)));  // kept, as netprobify
}

TEST_F(dns_EndToEnd, TimeoutSetsStatusZeroWithinTheConfiguredTimeout) {
  server_.set_behaviour("silent.example.test", TestDnsServer::Behaviour::kDrop);
  config_ = {{"silent", target("silent", "silent.example.test", AddressFamily::kV4)}};
  const auto start = std::chrono::steady_clock::now();
  book_->set_targets(config_);
  settle(3s);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 1s);
  EXPECT_EQ(book_->state("silent"), TargetAddressBook::State::kFailed);
  EXPECT_EQ(book_->error("silent"), "timeout");
  EXPECT_TRUE(has_line_containing(metrics_, *registry_, status_line("silent", "ipv4", 0)));
}

TEST_F(dns_EndToEnd, SilentServerDoesNotDelayIpTargets) {
  server_.set_behaviour("silent.example.test", TestDnsServer::Behaviour::kDrop);
  config_ = {{"silent", target("silent", "silent.example.test", AddressFamily::kV4)},
             {"ip", target("ip", "192.0.2.50", AddressFamily::kV4)}};
  const auto start = std::chrono::steady_clock::now();
  book_->set_targets(config_);
  book_->refresh_due();
  book_->poll(0ns);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 150ms);  // the DNS timeout would be 300 ms
  EXPECT_EQ(book_->hosts("ip"), std::vector<IpAddress>{*IpAddress::parse("192.0.2.50")});
  EXPECT_FALSE(book_->hosts("silent"));
  EXPECT_EQ(book_->pending(), 1u);
}

}  // namespace
}  // namespace netprobe
