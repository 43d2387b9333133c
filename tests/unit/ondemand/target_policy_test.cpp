// The on-demand target policy (src/ondemand/target_policy.h): blackbox_exporter issue 1639's cases and
// more, as a table of (target as the caller gives it, what its name resolves to) -> allowed or the reason.
#include "ondemand/target_policy.h"

#include <map>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace netprobe::ondemand {
namespace {

// Answers from a table, counting every query: a second resolution of the same name would show.
class TableResolver final : public Resolver {
 public:
  std::map<std::string, std::vector<std::vector<std::string>>> answers;  // host -> successive answers
  std::map<std::string, int> asked;
  void resolve(const std::string& host, AddressFamily, std::function<void(Resolution)> done) override {
    const int n = asked[host]++;
    Resolution r;
    auto it = answers.find(host);
    if (it == answers.end() || it->second.empty()) {
      r.error = "NXDOMAIN";
    } else {
      r.ok = true;
      const auto& list = it->second[std::min<size_t>(n, it->second.size() - 1)];
      for (const auto& t : list) r.addresses.push_back(*IpAddress::parse(t));
    }
    ready_.push_back([done = std::move(done), r] { done(r); });
  }
  int poll(Nanos) override {
    int ran = 0;
    while (!ready_.empty()) {
      auto f = std::move(ready_.front());
      ready_.erase(ready_.begin());
      f();
      ++ran;
    }
    return ran;
  }
  size_t pending() const override { return ready_.size(); }

 private:
  std::vector<std::function<void()>> ready_;
};

Policy lab_policy() {
  Policy p;
  p.allowed_prefixes = {*IpNetwork::parse("10.0.0.0/8"), *IpNetwork::parse("2001:db8::/32")};
  p.own_addresses = {*IpAddress::parse("10.1.0.1"), *IpAddress::parse("10.1.0.255")};
  return p;
}

struct Row {
  std::string target;  // owned: some rows are built strings
  Refusal expected;
  const char* pinned = "";  // the first pinned address when allowed
};

Decision run(const Policy& policy, TableResolver& resolver, const std::string& target,
             AddressFamily af = AddressFamily::kV4) {
  Decision out;
  bool called = false;
  check_target(policy, target, af, resolver, [&](ParsedTarget, Decision d) {
    called = true;
    out = std::move(d);
  });
  resolver.poll(Nanos(0));
  EXPECT_TRUE(called) << target;
  return out;
}

TEST(ondemand_TargetPolicy, Table) {
  TableResolver resolver;
  resolver.answers = {
      {"good.example", {{"10.2.3.4"}}},
      {"localhost", {{"127.0.0.1"}}},
      {"loopback.example", {{"127.0.0.1"}}},
      {"metadata.example", {{"169.254.169.254"}}},
      {"mixed.example", {{"10.2.3.4", "169.254.169.254"}}},  // every address is checked, not the first
      {"mixed2.example", {{"169.254.169.254", "10.2.3.4"}}},
      {"outside.example", {{"192.0.2.1"}}},
      {"self.example", {{"10.1.0.1"}}},
      {"mapped.example", {{"::ffff:169.254.169.254"}}},
      {"many.example",
       {{"10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6", "10.0.0.7", "10.0.0.8",
         "10.0.0.9", "10.0.0.10", "10.0.0.11", "10.0.0.12", "10.0.0.13", "10.0.0.14", "10.0.0.15",
         "10.0.0.16", "10.0.0.17"}}},
  };
  const std::vector<Row> rows = {
      {"10.2.3.4", Refusal::kNone, "10.2.3.4"},
      {"good.example", Refusal::kNone, "10.2.3.4"},
      {"GOOD.Example.", Refusal::kNone, "10.2.3.4"},
      {"[2001:db8::1]", Refusal::kNone, "2001:db8::1"},
      {"2001:db8::1", Refusal::kNone, "2001:db8::1"},
      // blackbox_exporter issue 1639 and friends: cloud metadata in every spelling.
      {"169.254.169.254", Refusal::kLinkLocal},
      {"[::ffff:169.254.169.254]", Refusal::kLinkLocal},
      {"::ffff:a9fe:a9fe", Refusal::kLinkLocal},
      {"[::169.254.169.254]", Refusal::kLinkLocal},         // IPv4-compatible
      {"[64:ff9b::169.254.169.254]", Refusal::kLinkLocal},  // NAT64
      {"[::ffff:10.2.3.4]", Refusal::kEmbeddedIpv4},        // allowed inside, still refused: give the IPv4
      {"2852039166", Refusal::kNumericForm},                // 169.254.169.254 in decimal
      {"0xa9fea9fe", Refusal::kNumericForm},
      {"0xA9.0xFE.0xA9.0xFE", Refusal::kNumericForm},
      {"0251.0376.0251.0376", Refusal::kNumericForm},  // octal
      {"169.254.43518", Refusal::kNumericForm},
      {"2130706433", Refusal::kNumericForm},  // 127.0.0.1
      {"127.1", Refusal::kNumericForm},
      {"0177.0.0.1", Refusal::kNumericForm},
      {"010.2.3.4", Refusal::kNumericForm},  // would read as 8.2.3.4
      {"metadata.example", Refusal::kLinkLocal},
      {"localhost", Refusal::kLoopback},
      {"loopback.example", Refusal::kLoopback},
      {"mixed.example", Refusal::kLinkLocal},
      {"mixed2.example", Refusal::kLinkLocal},
      {"mapped.example", Refusal::kLinkLocal},
      {"127.0.0.1", Refusal::kLoopback},
      {"[::1]", Refusal::kLoopback},
      {"[fe80::1]", Refusal::kLinkLocal},
      {"fe80::1%eth0", Refusal::kSyntax},
      {"[fe80::1%25eth0]", Refusal::kSyntax},
      {"224.0.0.1", Refusal::kMulticast},
      {"[ff02::1]", Refusal::kMulticast},
      {"0.0.0.0", Refusal::kUnspecified},
      {"0.1.2.3", Refusal::kUnspecified},
      {"[::]", Refusal::kUnspecified},
      {"255.255.255.255", Refusal::kBroadcast},
      {"240.0.0.1", Refusal::kBroadcast},
      {"10.1.0.1", Refusal::kOwnAddress},
      {"10.1.0.255", Refusal::kOwnAddress},  // an interface's broadcast address
      {"self.example", Refusal::kOwnAddress},
      {"192.0.2.1", Refusal::kNotAllowedPrefix},
      {"outside.example", Refusal::kNotAllowedPrefix},
      {"[2001:db9::1]", Refusal::kNotAllowedPrefix},
      {"nxdomain.example", Refusal::kResolveFailed},
      {"many.example", Refusal::kTooManyAddresses},
      {"", Refusal::kSyntax},
      {"http://10.2.3.4/", Refusal::kSyntax},
      {"10.2.3.4:80", Refusal::kSyntax},
      {"a b", Refusal::kSyntax},
      {"-bad.example", Refusal::kSyntax},
      {"bad-.example", Refusal::kSyntax},
      {"a..example", Refusal::kSyntax},
      {"under_score.example", Refusal::kSyntax},
      {"[10.2.3.4]", Refusal::kSyntax},
      {"good.example\n", Refusal::kSyntax},
      {std::string(64, 'a').append(".example"), Refusal::kSyntax},
      {std::string(300, 'a'), Refusal::kSyntax},
  };
  const Policy policy = lab_policy();
  for (const Row& row : rows) {
    SCOPED_TRACE(row.target);
    const AddressFamily af =
        row.target.find(':') != std::string::npos || row.target.find("mapped") != std::string::npos
            ? AddressFamily::kV6
            : AddressFamily::kV4;
    const Decision d = run(policy, resolver, row.target, af);
    EXPECT_EQ(to_string(d.refusal), to_string(row.expected)) << d.detail;
    if (row.expected == Refusal::kNone) {
      ASSERT_FALSE(d.pinned.empty());
      EXPECT_EQ(d.pinned.front().to_string(), row.pinned);
    } else {
      EXPECT_TRUE(d.pinned.empty());
      EXPECT_FALSE(d.detail.empty());
    }
  }
}

TEST(ondemand_TargetPolicy, NothingAllowedByDefault) {
  TableResolver resolver;
  EXPECT_EQ(run(Policy{}, resolver, "10.2.3.4").refusal, Refusal::kNotAllowedPrefix);
  EXPECT_EQ(run(Policy{}, resolver, "8.8.8.8").refusal, Refusal::kNotAllowedPrefix);
}

TEST(ondemand_TargetPolicy, DeniedCategoriesWinOverAllowedPrefixes) {
  Policy p;
  p.allowed_prefixes = {*IpNetwork::parse("0.0.0.0/0"), *IpNetwork::parse("::/0")};
  TableResolver resolver;
  for (const char* t : {"127.0.0.1", "169.254.169.254", "[::ffff:169.254.169.254]", "[::1]", "[fe80::1]",
                        "224.0.0.1", "0.0.0.0"}) {
    SCOPED_TRACE(t);
    EXPECT_FALSE(run(p, resolver, t).allowed());
  }
  EXPECT_TRUE(run(p, resolver, "192.0.2.1").allowed());
}

TEST(ondemand_TargetPolicy, AllowedTargetsList) {
  Policy p = lab_policy();
  p.allowed_targets = {"good.example", "10.2.3.4"};
  TableResolver resolver;
  resolver.answers = {{"good.example", {{"10.2.3.4"}}}, {"other.example", {{"10.2.3.5"}}}};
  EXPECT_TRUE(run(p, resolver, "Good.Example").allowed());
  EXPECT_TRUE(run(p, resolver, "10.2.3.4").allowed());
  EXPECT_EQ(run(p, resolver, "10.2.3.5").refusal, Refusal::kNotAllowedTarget);
  EXPECT_EQ(run(p, resolver, "other.example").refusal, Refusal::kNotAllowedTarget);
  EXPECT_EQ(resolver.asked.count("other.example"), 0u);  // refused before any DNS query
}

// DNS rebinding: the name answers an allowed address, then loopback. The check resolves once and pins what
// it checked; the job carries those addresses, so nothing resolves the name again.
TEST(ondemand_TargetPolicy, PinsTheCheckedAnswer) {
  TableResolver resolver;
  resolver.answers = {{"rebind.example", {{"10.2.3.4"}, {"127.0.0.1"}}}};
  const Decision d = run(lab_policy(), resolver, "rebind.example");
  ASSERT_TRUE(d.allowed()) << d.detail;
  ASSERT_EQ(d.pinned.size(), 1u);
  EXPECT_EQ(d.pinned[0].to_string(), "10.2.3.4");
  EXPECT_EQ(resolver.asked["rebind.example"], 1);
  // The next request resolves anew and is checked anew: refused.
  EXPECT_EQ(run(lab_policy(), resolver, "rebind.example").refusal, Refusal::kLoopback);
}

TEST(ondemand_TargetPolicy, DuplicateAddressesPinnedOnce) {
  TableResolver resolver;
  resolver.answers = {{"dup.example", {{"10.2.3.4", "10.2.3.4", "10.2.3.5"}}}};
  const Decision d = run(lab_policy(), resolver, "dup.example");
  ASSERT_TRUE(d.allowed());
  EXPECT_EQ(d.pinned.size(), 2u);
}

TEST(ondemand_TargetPolicy, LocalAddressesIncludeLoopback) {
  const auto own = local_addresses();
  EXPECT_NE(std::find(own.begin(), own.end(), *IpAddress::parse("127.0.0.1")), own.end());
}

}  // namespace
}  // namespace netprobe::ondemand
