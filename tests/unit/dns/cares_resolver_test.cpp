// CaresResolver against TestDnsServer on 127.0.0.1: real c-ares queries over loopback UDP, never elsewhere
// (servers overridden, no search list, no /etc/hosts). Suites are named dns_* for `ctest -R dns`.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <optional>

#include "dns/cares_resolver.h"
#include "test_dns_server.h"

namespace netprobe {
namespace {

using namespace std::chrono_literals;
using testing::TestDnsServer;

std::unique_ptr<CaresResolver> resolver_for(const TestDnsServer& server,
                                            std::chrono::milliseconds timeout = 500ms, int tries = 2) {
  CaresOptions o;
  o.servers = {server.server()};
  o.search_domains = std::vector<std::string>{};
  o.use_hosts_file = false;
  o.timeout = timeout;
  o.tries = tries;
  auto r = CaresResolver::create(o);
  if (!r.ok()) ADD_FAILURE() << r.error().message;
  return r.ok() ? std::move(r).value() : nullptr;
}

IpAddress ip(const char* text) { return *IpAddress::parse(text); }

// Resolves one name, polling until the answer (or 5 s, far above every timeout used here).
std::optional<Resolution> resolve_now(Resolver& r, const std::string& host, AddressFamily af) {
  std::optional<Resolution> out;
  r.resolve(host, af, [&](Resolution res) { out = std::move(res); });
  const auto give_up = std::chrono::steady_clock::now() + 5s;
  while (!out && std::chrono::steady_clock::now() < give_up) r.poll(100ms);
  return out;
}

TEST(dns_CaresResolver, ResolvesV4InTheServersOrder) {
  TestDnsServer server;
  server.set_a("web.example.test", {"192.0.2.10", "192.0.2.11"});
  auto r = resolver_for(server);
  auto res = resolve_now(*r, "web.example.test", AddressFamily::kV4);
  ASSERT_TRUE(res);
  ASSERT_TRUE(res->ok) << res->error;
  ASSERT_EQ(res->addresses.size(), 2u);
  EXPECT_EQ(res->addresses[0], ip("192.0.2.10"));
  EXPECT_EQ(res->addresses[1], ip("192.0.2.11"));
  EXPECT_EQ(r->pending(), 0u);
  EXPECT_GE(server.queries("web.example.test"), 1);
}

// Issue 10 (11): 0.0.0.0 and other addresses no probe can go to are dropped from answers, with a log line.
TEST(dns_CaresResolver, UnusableAnswersAreDropped) {
  TestDnsServer server;
  server.set_a("zero.example.test", {"0.0.0.0"});
  server.set_a("mixed.example.test", {"224.0.0.1", "192.0.2.5", "255.255.255.255", "0.1.2.3"});
  server.set_aaaa("zero6.example.test", {"::", "ff02::1"});
  auto r = resolver_for(server);
  auto zero = resolve_now(*r, "zero.example.test", AddressFamily::kV4);
  ASSERT_TRUE(zero);
  EXPECT_FALSE(zero->ok);
  EXPECT_THAT(zero->error, ::testing::HasSubstr("unusable"));
  auto mixed = resolve_now(*r, "mixed.example.test", AddressFamily::kV4);
  ASSERT_TRUE(mixed);
  ASSERT_TRUE(mixed->ok) << mixed->error;
  EXPECT_EQ(mixed->addresses, std::vector<IpAddress>{ip("192.0.2.5")});
  auto zero6 = resolve_now(*r, "zero6.example.test", AddressFamily::kV6);
  ASSERT_TRUE(zero6);
  EXPECT_FALSE(zero6->ok);
  EXPECT_EQ(unusable_answer(ip("10.0.0.1")), nullptr);
  EXPECT_EQ(unusable_answer(ip("2001:db8::1")), nullptr);
}

TEST(dns_CaresResolver, ResolvesV6) {
  TestDnsServer server;
  server.set_aaaa("web6.example.test", {"2001:db8::10"});
  auto r = resolver_for(server);
  auto res = resolve_now(*r, "web6.example.test", AddressFamily::kV6);
  ASSERT_TRUE(res);
  ASSERT_TRUE(res->ok) << res->error;
  ASSERT_EQ(res->addresses.size(), 1u);
  EXPECT_EQ(res->addresses[0], ip("2001:db8::10"));
  EXPECT_EQ(res->addresses[0].af, AddressFamily::kV6);
}

TEST(dns_CaresResolver, HonoursTheAddressFamily) {
  TestDnsServer server;
  server.set_a("v4only.example.test", {"192.0.2.1"});
  auto r = resolver_for(server);
  auto res = resolve_now(*r, "v4only.example.test", AddressFamily::kV6);
  ASSERT_TRUE(res);
  EXPECT_FALSE(res->ok);
  EXPECT_EQ(res->error, "no ipv6 address");
  EXPECT_TRUE(res->addresses.empty());
}

TEST(dns_CaresResolver, NxdomainIsAFailure) {
  TestDnsServer server;
  auto r = resolver_for(server);
  auto res = resolve_now(*r, "missing.example.test", AddressFamily::kV4);
  ASSERT_TRUE(res);
  EXPECT_FALSE(res->ok);
  EXPECT_EQ(res->error, "NXDOMAIN");
}

TEST(dns_CaresResolver, ServfailIsAFailure) {
  TestDnsServer server;
  server.set_behaviour("broken.example.test", TestDnsServer::Behaviour::kServfail);
  auto r = resolver_for(server);
  auto res = resolve_now(*r, "broken.example.test", AddressFamily::kV4);
  ASSERT_TRUE(res);
  EXPECT_FALSE(res->ok);
  // c-ares 1.18 gives up on a server that answers SERVFAIL and reports it as ECONNREFUSED.
  EXPECT_TRUE(res->error == "SERVFAIL" || res->error.find("SERVFAIL") != std::string::npos) << res->error;
  EXPECT_GE(server.queries("broken.example.test"), 1);
}

TEST(dns_CaresResolver, UnreachableServerIsAFailure) {
  std::string closed;
  {
    TestDnsServer gone;  // its port is closed once it is destroyed: ICMP port unreachable on loopback
    closed = gone.server();
  }
  CaresOptions o;
  o.servers = {closed};
  o.search_domains = std::vector<std::string>{};
  o.use_hosts_file = false;
  o.timeout = 200ms;
  auto r = CaresResolver::create(o);
  ASSERT_TRUE(r.ok());
  auto res = resolve_now(**r, "web.example.test", AddressFamily::kV4);
  ASSERT_TRUE(res);
  EXPECT_FALSE(res->ok);
  EXPECT_FALSE(res->error.empty());
}

TEST(dns_CaresResolver, TimeoutWithinTheConfiguredBound) {
  TestDnsServer server;
  server.set_behaviour("silent.example.test", TestDnsServer::Behaviour::kDrop);
  // 100 ms then 200 ms (c-ares doubles the second round): reported after ~300 ms.
  auto r = resolver_for(server, 100ms, 2);
  const auto start = std::chrono::steady_clock::now();
  auto res = resolve_now(*r, "silent.example.test", AddressFamily::kV4);
  const auto took = std::chrono::steady_clock::now() - start;
  ASSERT_TRUE(res);
  EXPECT_FALSE(res->ok);
  EXPECT_EQ(res->error, "timeout");
  EXPECT_GE(took, 250ms);
  EXPECT_LT(took, 1500ms);
  EXPECT_EQ(server.queries("silent.example.test"), 2);  // `tries`
}

TEST(dns_CaresResolver, PollNeverWaitsLongerThanAsked) {
  TestDnsServer server;
  server.set_behaviour("silent.example.test", TestDnsServer::Behaviour::kDrop);
  auto r = resolver_for(server, 2000ms, 2);
  bool called = false;
  r->resolve("silent.example.test", AddressFamily::kV4, [&](Resolution) { called = true; });
  for (auto wait : {Nanos(0), Nanos(30ms), Nanos(80ms)}) {
    const auto start = std::chrono::steady_clock::now();
    EXPECT_EQ(r->poll(wait), 0);
    EXPECT_LT(std::chrono::steady_clock::now() - start, wait + 50ms);
  }
  EXPECT_FALSE(called);
  EXPECT_EQ(r->pending(), 1u);
}

TEST(dns_CaresResolver, PollReturnsAtOnceWhenIdle) {
  TestDnsServer server;
  auto r = resolver_for(server);
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(r->poll(std::chrono::seconds(5)), 0);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 50ms);
}

TEST(dns_CaresResolver, CallbacksRunFromPollNeverFromResolve) {
  TestDnsServer server;
  auto r = resolver_for(server);
  // c-ares answers a literal synchronously inside ares_getaddrinfo; the interface defers it to poll().
  std::optional<Resolution> res;
  r->resolve("192.0.2.7", AddressFamily::kV4, [&](Resolution x) { res = std::move(x); });
  EXPECT_FALSE(res);
  EXPECT_EQ(r->pending(), 1u);
  EXPECT_EQ(r->poll(Nanos(0)), 1);
  ASSERT_TRUE(res);
  ASSERT_TRUE(res->ok);
  EXPECT_EQ(res->addresses.at(0), ip("192.0.2.7"));
  EXPECT_EQ(server.queries("192.0.2.7"), 0);
}

TEST(dns_CaresResolver, ChangedRecordIsSeenByTheNextQuery) {
  TestDnsServer server;
  server.set_a("moving.example.test", {"192.0.2.1"});
  auto r = resolver_for(server);
  auto first = resolve_now(*r, "moving.example.test", AddressFamily::kV4);
  server.set_a("moving.example.test", {"192.0.2.2"});
  auto second = resolve_now(*r, "moving.example.test", AddressFamily::kV4);
  ASSERT_TRUE(first && first->ok && second && second->ok);
  EXPECT_EQ(first->addresses.at(0), ip("192.0.2.1"));
  EXPECT_EQ(second->addresses.at(0), ip("192.0.2.2"));
}

TEST(dns_CaresResolver, ManyQueriesInFlightAtOnce) {
  TestDnsServer server;
  for (int i = 0; i < 50; ++i)
    server.set_a("h" + std::to_string(i) + ".example.test", {"192.0.2." + std::to_string(i)});
  auto r = resolver_for(server);
  int ok = 0;
  for (int i = 0; i < 50; ++i)
    r->resolve("h" + std::to_string(i) + ".example.test", AddressFamily::kV4, [&, i](Resolution res) {
      ok += res.ok && res.addresses.at(0) == IpAddress::v4(0xC0000200u + uint32_t(i));
    });
  const auto give_up = std::chrono::steady_clock::now() + 5s;
  while (r->pending() && std::chrono::steady_clock::now() < give_up) r->poll(100ms);
  EXPECT_EQ(ok, 50);
}

TEST(dns_CaresResolver, DestroyedWithQueriesInFlightDropsTheirCallbacks) {
  TestDnsServer server;
  server.set_behaviour("silent.example.test", TestDnsServer::Behaviour::kDrop);
  bool called = false;
  {
    auto r = resolver_for(server);
    r->resolve("silent.example.test", AddressFamily::kV4, [&](Resolution) { called = true; });
    r->resolve("192.0.2.1", AddressFamily::kV4, [&](Resolution) { called = true; });
    r->poll(10ms);
    called = false;  // the literal may have been delivered; only what runs after destruction matters
  }
  EXPECT_FALSE(called);
}

// A rewritten resolv.conf (DHCP, configuration management) is picked up, as glibc does. Only literals are
// resolved here: answered inside c-ares, so no query goes to the documentation addresses the file names.
TEST(dns_CaresResolver, FollowsResolvConfChanges) {
  char dir[] = "/tmp/netprobe-dns-XXXXXX";
  ASSERT_TRUE(mkdtemp(dir));
  const std::string path = std::string(dir) + "/resolv.conf";
  auto write = [&](const char* text) {
    const std::string tmp = path + ".new";
    FILE* f = std::fopen(tmp.c_str(), "w");
    ASSERT_TRUE(f);
    std::fputs(text, f);
    std::fclose(f);
    std::rename(tmp.c_str(), path.c_str());  // a new inode, as editors and configuration tools do
  };
  write("nameserver 192.0.2.53\n");
  CaresOptions o;
  o.resolv_conf = path;
  o.use_hosts_file = false;
  o.recheck_resolv_conf = 0ms;
  auto r = CaresResolver::create(o);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ((*r)->servers(), std::vector<std::string>{"192.0.2.53:53"});

  write("nameserver 192.0.2.54\nnameserver 2001:db8::53\n");
  std::optional<Resolution> res;
  (*r)->resolve("192.0.2.1", AddressFamily::kV4, [&](Resolution x) { res = std::move(x); });
  (*r)->poll(0ns);
  ASSERT_TRUE(res && res->ok);
  EXPECT_EQ((*r)->servers(), (std::vector<std::string>{"192.0.2.54:53", "[2001:db8::53]:53"}));
  std::remove(path.c_str());
  rmdir(dir);
}

// Users' `options timeout:/attempts:` win over netprobe's defaults (2 s, 2 tries: 6 s for a dead server).
TEST(dns_CaresResolver, HonoursResolvConfTimeoutAndAttempts) {
  char dir[] = "/tmp/netprobe-dns-XXXXXX";
  ASSERT_TRUE(mkdtemp(dir));
  const std::string path = std::string(dir) + "/resolv.conf";
  FILE* f = std::fopen(path.c_str(), "w");
  ASSERT_TRUE(f);
  std::fputs("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n", f);
  std::fclose(f);
  TestDnsServer server;
  server.set_behaviour("silent.example.test", TestDnsServer::Behaviour::kDrop);
  CaresOptions o;
  o.resolv_conf = path;
  o.servers = {server.server()};  // the file's nameserver is never asked
  o.search_domains = std::vector<std::string>{};
  o.use_hosts_file = false;
  auto r = CaresResolver::create(o);
  ASSERT_TRUE(r.ok()) << r.error().message;
  const auto start = std::chrono::steady_clock::now();
  auto res = resolve_now(**r, "silent.example.test", AddressFamily::kV4);
  const auto took = std::chrono::steady_clock::now() - start;
  ASSERT_TRUE(res);
  EXPECT_EQ(res->error, "timeout");
  EXPECT_GE(took, 900ms);
  EXPECT_LT(took, 2500ms);
  EXPECT_EQ(server.queries("silent.example.test"), 1);
  std::remove(path.c_str());
  rmdir(dir);
}

TEST(dns_CaresResolver, ServersOverrideResolvConf) {
  TestDnsServer server;
  auto r = resolver_for(server);
  EXPECT_EQ(r->servers(), std::vector<std::string>{server.server()});
}

TEST(dns_CaresResolver, InvalidServerIsAnError) {
  CaresOptions o;
  o.servers = {"not an address"};
  auto r = CaresResolver::create(o);
  EXPECT_FALSE(r.ok());
}

}  // namespace
}  // namespace netprobe
