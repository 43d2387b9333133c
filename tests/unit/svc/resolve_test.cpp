// Name resolution of the service checks (src/svc/resolve.h) over a scripted Resolver: a literal never
// reaches DNS, a name answered is connected to, a name never answered fails "resolve" at the check's
// deadline (every wait the resolver was given fits in the timeout), an answer of the wrong family or
// no destination is refused. No timed assertion: short real timeouts, and the waits handed to poll().
#include "svc/resolve.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "loopback_server.h"
#include "scripted_resolver.h"
#include "svc/tcp_query.h"
#include "svc/udp_query.h"

namespace netprobe::svc {
namespace {

using namespace std::chrono_literals;
using testing_doubles::Answers;
using testing_doubles::ScriptedResolver;
using Steady = std::chrono::steady_clock;

// Accepts one connection on 127.0.0.1 and sends a banner.
class BannerOnce : public LoopbackServer {
 public:
  BannerOnce() : LoopbackServer(SOCK_STREAM) {
    EXPECT_EQ(::listen(fd_, 4), 0);
    thread_ = std::thread([this] {
      const int c = ::accept(fd_, nullptr, nullptr);
      if (c < 0) return;
      ::send(c, "220 ok\r\n", 8, MSG_NOSIGNAL);
      ::close(c);
    });
  }
  ~BannerOnce() { ::shutdown(fd_, SHUT_RDWR); }
};

TcpStep expect220() {
  std::string why;
  auto s = parse_tcp_step("expect", "^220", &why);
  EXPECT_TRUE(s) << why;
  return s ? *s : TcpStep{};
}

// The sum of the waits the resolver was handed: each is the time left to the deadline when it was asked,
// and the scripted resolver sleeps at least that long, so their sum stays within the timeout.
Nanos total(const std::vector<Nanos>& waits) {
  Nanos t{0};
  for (Nanos w : waits) t += w;
  return t;
}

TEST(svc_resolve, LiteralNeverQueriesDns) {
  ScriptedResolver dns(Answers{});
  const auto deadline = Steady::now() + 1s;
  auto v4 = resolve_host(&dns, "192.0.2.7", AF_INET, deadline);
  ASSERT_TRUE(v4.address);
  EXPECT_EQ(v4.address->to_string(), "192.0.2.7");
  EXPECT_FALSE(v4.queried);
  EXPECT_EQ(v4.seconds, 0);
  auto v6 = resolve_host(nullptr, "2001:db8::1", 0, deadline);  // no resolver needed at all
  ASSERT_TRUE(v6.address);
  auto wrong = resolve_host(&dns, "2001:db8::1", AF_INET, deadline);
  EXPECT_FALSE(wrong.address);
  EXPECT_NE(wrong.error.find("not an IPv4 address"), std::string::npos) << wrong.error;
  EXPECT_TRUE(dns.queries.empty());
  EXPECT_TRUE(dns.waits.empty());

  BannerOnce server;
  TcpQuerySpec spec;
  spec.host = "127.0.0.1";
  spec.port = server.port();
  spec.family = AF_INET;
  spec.steps = {expect220()};
  const auto r = run_tcp_query(spec, &dns);
  EXPECT_TRUE(r.success) << r.failure << ": " << r.detail;
  EXPECT_EQ(r.dns_lookup_seconds, 0);
  EXPECT_TRUE(dns.queries.empty());
}

TEST(svc_resolve, NameAnsweredIsConnectedTo) {
  BannerOnce server;
  ScriptedResolver dns(Answers{{"banner.test", {"127.0.0.1"}}});
  TcpQuerySpec spec;
  spec.host = "banner.test";
  spec.port = server.port();
  spec.family = AF_INET;
  spec.timeout = 3s;
  spec.steps = {expect220()};
  const auto r = run_tcp_query(spec, &dns);
  EXPECT_TRUE(r.success) << r.failure << ": " << r.detail;
  ASSERT_EQ(dns.queries.size(), 1u);  // only the family asked
  EXPECT_EQ(dns.queries[0].first, "banner.test");
  EXPECT_EQ(dns.queries[0].second, AddressFamily::kV4);
  EXPECT_GE(r.dns_lookup_seconds, 0);
  EXPECT_NE(to_metrics_text(spec, r).find("probe_dns_lookup_time_seconds "), std::string::npos);
}

TEST(svc_resolve, NameNeverAnsweredFailsAtTheDeadline) {
  ScriptedResolver dns(Answers{});  // a black hole
  TcpQuerySpec spec;
  spec.host = "blackhole.test";
  spec.port = 9;
  spec.family = AF_INET;
  spec.timeout = 150ms;
  const auto r = run_tcp_query(spec, &dns);
  EXPECT_FALSE(r.success);
  EXPECT_EQ(r.failure, "resolve");
  EXPECT_NE(r.detail.find("blackhole.test: timeout after"), std::string::npos) << r.detail;
  EXPECT_EQ(r.connect_seconds, 0);  // never connected
  ASSERT_FALSE(dns.waits.empty());
  for (Nanos w : dns.waits) EXPECT_LE(w, Nanos(spec.timeout));
  EXPECT_LE(total(dns.waits), Nanos(spec.timeout));  // never waited past the deadline
  EXPECT_NE(to_metrics_text(spec, r).find("probe_failed_due_to{reason=\"resolve\"} 1"), std::string::npos);

  // The abandoned query's late answer (during a later check on this thread's resolver) lands harmlessly.
  dns.answer_later("blackhole.test", {"127.0.0.1"});
  EXPECT_EQ(dns.poll(0ns), 1);
  EXPECT_EQ(dns.pending(), 0u);
}

TEST(svc_resolve, UdpQueryNameNeverAnsweredIsResolve) {
  ScriptedResolver dns(Answers{});
  UdpQuerySpec spec;
  spec.host = "blackhole.test";
  spec.port = 53;
  spec.payload = {1, 2, 3};
  spec.timeout = 100ms;
  const auto r = run_udp_query(spec, &dns);
  EXPECT_EQ(r.outcome, "resolve");
  EXPECT_NE(r.detail.find("timeout"), std::string::npos) << r.detail;
  EXPECT_EQ(dns.queries.size(), 2u);  // no family given: IPv4 and IPv6 asked
  EXPECT_LE(total(dns.waits), Nanos(spec.timeout));
}

TEST(svc_resolve, AnswerOfTheWrongFamilyOnlyIsRefused) {
  ScriptedResolver dns(Answers{{"v6only.test", {"2001:db8::25"}}, {"v4only.test", {"192.0.2.25"}}});
  const auto deadline = Steady::now() + 1s;
  auto r = resolve_host(&dns, "v6only.test", AF_INET, deadline);
  EXPECT_FALSE(r.address);
  EXPECT_TRUE(r.queried);
  EXPECT_EQ(r.error, "no IPv4 address");
  r = resolve_host(&dns, "v4only.test", AF_INET6, deadline);
  EXPECT_FALSE(r.address);
  EXPECT_EQ(r.error, "no IPv6 address");

  TcpQuerySpec spec;
  spec.host = "v6only.test";
  spec.port = 25;
  spec.family = AF_INET;
  spec.timeout = 1s;
  const auto q = run_tcp_query(spec, &dns);
  EXPECT_EQ(q.failure, "resolve");
  EXPECT_EQ(q.detail, "v6only.test: no IPv4 address");
}

TEST(svc_resolve, AnswersThatAreNoDestinationAreRefused) {
  ScriptedResolver dns(Answers{{"zero.test", {"0.0.0.0"}},
                               {"mcast.test", {"224.0.0.1"}},
                               {"bcast.test", {"255.255.255.255"}},
                               {"mixed.test", {"0.0.0.0", "192.0.2.9"}},
                               {"gone.test", {}}});
  const auto deadline = Steady::now() + 1s;
  EXPECT_EQ(resolve_host(&dns, "zero.test", AF_INET, deadline).error, "answer 0.0.0.0 is unspecified");
  EXPECT_EQ(resolve_host(&dns, "mcast.test", AF_INET, deadline).error, "answer 224.0.0.1 is multicast");
  EXPECT_EQ(resolve_host(&dns, "bcast.test", AF_INET, deadline).error, "answer 255.255.255.255 is broadcast");
  EXPECT_EQ(resolve_host(&dns, "mixed.test", AF_INET, deadline).address->to_string(), "192.0.2.9");
  EXPECT_EQ(resolve_host(&dns, "gone.test", AF_INET, deadline).error, "NXDOMAIN");
  EXPECT_EQ(resolve_host(nullptr, "any.test", AF_INET, deadline).error, "no resolver");
}

// No family: IPv4 is taken as soon as it answers, without waiting for an IPv6 query that never does; a name
// with IPv6 only is reached over IPv6.
TEST(svc_resolve, AnyFamilyPrefersIpv4) {
  ScriptedResolver dns(Answers{{"both.test", {"192.0.2.1", "2001:db8::1"}}, {"six.test", {"2001:db8::6"}}});
  const auto deadline = Steady::now() + 1s;
  auto r = resolve_host(&dns, "both.test", 0, deadline);
  ASSERT_TRUE(r.address);
  EXPECT_EQ(r.address->to_string(), "192.0.2.1");
  r = resolve_host(&dns, "six.test", 0, deadline);
  ASSERT_TRUE(r.address);
  EXPECT_EQ(r.address->to_string(), "2001:db8::6");
}

}  // namespace
}  // namespace netprobe::svc
