// TargetAddressBook on a FakeClock with a scripted Resolver: what is resolved when, which targets are
// active with which address, and which events the metrics get.
#include <gtest/gtest.h>

#include <deque>
#include <thread>

#include "dns/target_address_book.h"

namespace netprobe {
namespace {

using namespace std::chrono_literals;
using Kind = ResolutionEvent::Kind;
using State = TargetAddressBook::State;

// Answers only when the test says so; a query nobody answers is a hanging resolver.
class ScriptedResolver final : public Resolver {
 public:
  struct Query {
    std::string host;
    AddressFamily af;
    std::function<void(Resolution)> done;
  };
  void resolve(const std::string& host, AddressFamily af, std::function<void(Resolution)> done) override {
    asked.push_back({host, af, std::move(done)});
    ++total;
  }
  int poll(Nanos max_wait) override {
    if (ready_.empty() && max_wait > Nanos(0)) std::this_thread::sleep_for(max_wait);  // nothing comes
    int ran = 0;
    while (!ready_.empty()) {
      auto [done, r] = std::move(ready_.front());
      ready_.pop_front();
      done(std::move(r));
      ++ran;
    }
    return ran;
  }
  size_t pending() const override { return asked.size() + ready_.size(); }

  // Answers the oldest open query for `host` (delivered at the next poll).
  void answer(const std::string& host, Resolution r) {
    for (auto it = asked.begin(); it != asked.end(); ++it) {
      if (it->host == host) {
        ready_.emplace_back(std::move(it->done), std::move(r));
        asked.erase(it);
        return;
      }
    }
    ADD_FAILURE() << "no open query for " << host;
  }
  void answer_ok(const std::string& host, std::vector<const char*> ips) {
    Resolution r;
    r.ok = true;
    for (auto* t : ips) r.addresses.push_back(*IpAddress::parse(t));
    answer(host, std::move(r));
  }
  void answer_error(const std::string& host, const std::string& error) {
    Resolution r;
    r.error = error;
    answer(host, std::move(r));
  }
  int open(const std::string& host) const {
    int n = 0;
    for (const auto& q : asked) n += q.host == host;
    return n;
  }

  std::deque<Query> asked;
  int total = 0;

 private:
  std::deque<std::pair<std::function<void(Resolution)>, Resolution>> ready_;
};

TargetConfig target(const std::string& name, const std::string& destination, int dns_interval = 0,
                    std::optional<AddressFamily> af = std::nullopt) {
  TargetConfig t;
  t.name = name;
  t.destination = destination;
  t.address_family = af;
  t.dns_update_interval_s = dns_interval;
  t.groups = {"g1"};
  return t;
}

std::map<std::string, TargetConfig> targets(std::initializer_list<TargetConfig> list) {
  std::map<std::string, TargetConfig> out;
  for (const auto& t : list) out[t.name] = t;
  return out;
}

IpAddress ip(const char* text) { return *IpAddress::parse(text); }

class dns_TargetAddressBook : public ::testing::Test {
 protected:
  FakeClock clock_;
  ScriptedResolver resolver_;
  TargetAddressBook book_{resolver_, clock_};
};

TEST_F(dns_TargetAddressBook, IpLiteralsAreActiveAtOnceAndReportedOnce) {
  book_.set_targets(targets({target("a", "192.0.2.1"), target("b", "2001:db8::1")}));
  EXPECT_EQ(resolver_.total, 0);  // no DNS for literals
  EXPECT_EQ(book_.hosts("a"), std::vector<IpAddress>{ip("192.0.2.1")});
  EXPECT_EQ(book_.hosts("b"), std::vector<IpAddress>{ip("2001:db8::1")});
  auto events = book_.take_events();
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].kind, Kind::kResolved);
  EXPECT_EQ(events[1].af, AddressFamily::kV6);
  EXPECT_TRUE(book_.take_changed());
  EXPECT_FALSE(book_.take_changed());
  // Iterations and a reload with the same literal: nothing to report.
  book_.refresh_due();
  book_.set_targets(targets({target("a", "192.0.2.1"), target("b", "2001:db8::1")}));
  EXPECT_TRUE(book_.take_events().empty());
  EXPECT_EQ(resolver_.total, 0);
}

TEST_F(dns_TargetAddressBook, SubnetIsActiveWithEveryHost) {
  auto t = target("net", "192.0.2.0/30");
  t.is_subnet = true;
  book_.set_targets(targets({t}));
  EXPECT_EQ(resolver_.total, 0);
  auto hosts = book_.hosts("net");
  ASSERT_TRUE(hosts);
  EXPECT_EQ(*hosts, (std::vector<IpAddress>{ip("192.0.2.1"), ip("192.0.2.2")}));
  EXPECT_TRUE(book_.is_subnet("net"));
  EXPECT_FALSE(book_.address("net"));  // shipped as a network, never expanded by the supervisor
  auto events = book_.take_events();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].kind, Kind::kResolved);
}

TEST_F(dns_TargetAddressBook, TargetWithoutGroupIsNeitherResolvedNorActive) {
  auto t = target("lonely", "lonely.example.test");
  t.groups.clear();
  book_.set_targets(targets({t}));
  EXPECT_EQ(resolver_.total, 0);
  EXPECT_EQ(book_.state("lonely"), State::kDisabled);
  EXPECT_FALSE(book_.hosts("lonely"));
  EXPECT_TRUE(book_.take_events().empty());
}

TEST_F(dns_TargetAddressBook, HostnameIsPendingUntilAnsweredThenActive) {
  book_.set_targets(targets({target("web", "web.example.test", 0, AddressFamily::kV6)}));
  ASSERT_EQ(resolver_.asked.size(), 1u);
  EXPECT_EQ(resolver_.asked[0].af, AddressFamily::kV6);
  EXPECT_EQ(book_.state("web"), State::kPending);
  EXPECT_FALSE(book_.hosts("web"));
  EXPECT_EQ(book_.pending(), 1u);
  book_.take_changed();

  resolver_.answer_ok("web.example.test", {"2001:db8::5", "2001:db8::6"});
  EXPECT_EQ(book_.poll(0ns), 1);
  EXPECT_EQ(book_.state("web"), State::kActive);
  EXPECT_EQ(book_.hosts("web"), std::vector<IpAddress>{ip("2001:db8::5")});  // the first, as netprobify
  EXPECT_EQ(book_.address("web"), ip("2001:db8::5"));
  EXPECT_FALSE(book_.is_subnet("web"));
  EXPECT_TRUE(book_.take_changed());
  auto events = book_.take_events();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].kind, Kind::kResolved);
  EXPECT_EQ(events[0].target, "web");
  EXPECT_EQ(events[0].af, AddressFamily::kV6);
  EXPECT_TRUE(events[0].previous.empty());
  EXPECT_EQ(events[0].hosts, std::vector<IpAddress>{ip("2001:db8::5")});
}

TEST_F(dns_TargetAddressBook, HangingResolverDoesNotDelayIpTargets) {
  book_.set_targets(targets({target("web", "web.example.test"), target("ip", "192.0.2.9")}));
  // The hostname's query never completes; the literal is usable for this very iteration.
  EXPECT_EQ(book_.hosts("ip"), std::vector<IpAddress>{ip("192.0.2.9")});
  EXPECT_FALSE(book_.hosts("web"));
  EXPECT_EQ(book_.poll(0ns), 0);
  EXPECT_EQ(book_.refresh_due(), 0u);  // still in flight: not asked twice
  EXPECT_EQ(resolver_.open("web.example.test"), 1);
  EXPECT_EQ(book_.hosts("ip"), std::vector<IpAddress>{ip("192.0.2.9")});
}

TEST_F(dns_TargetAddressBook, SettleIsBoundedWithAHangingResolver) {
  book_.set_targets(targets({target("web", "web.example.test"), target("ip", "192.0.2.9")}));
  const auto start = std::chrono::steady_clock::now();
  book_.settle(50ms);
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_GE(took, 50ms);
  EXPECT_LT(took, 1s);
  EXPECT_EQ(book_.state("web"), State::kPending);
  EXPECT_TRUE(book_.hosts("ip"));
}

TEST_F(dns_TargetAddressBook, SettleReturnsOnceAnswered) {
  book_.set_targets(targets({target("web", "web.example.test")}));
  resolver_.answer_ok("web.example.test", {"192.0.2.1"});
  const auto start = std::chrono::steady_clock::now();
  book_.settle(5s);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 1s);
  EXPECT_TRUE(book_.hosts("web"));
}

TEST_F(dns_TargetAddressBook, IntervalZeroReResolvesEveryIteration) {
  book_.set_targets(targets({target("web", "web.example.test", 0)}));
  resolver_.answer_ok("web.example.test", {"192.0.2.1"});
  book_.poll(0ns);
  book_.take_events();
  book_.take_changed();
  for (int i = 0; i < 3; ++i) {
    clock_.advance(1s);  // however short the iteration
    EXPECT_EQ(book_.refresh_due(), 1u);
    resolver_.answer_ok("web.example.test", {"192.0.2.1"});
    book_.poll(0ns);
  }
  EXPECT_EQ(resolver_.total, 4);
  EXPECT_TRUE(book_.take_events().empty());  // stable address: no event
  EXPECT_FALSE(book_.take_changed());
}

TEST_F(dns_TargetAddressBook, IntervalNReResolvesEveryNSeconds) {
  book_.set_targets(
      targets({target("web", "web.example.test", 300), target("fast", "fast.example.test", 10)}));
  resolver_.answer_ok("web.example.test", {"192.0.2.1"});
  resolver_.answer_ok("fast.example.test", {"192.0.2.2"});
  book_.poll(0ns);
  EXPECT_EQ(book_.next_refresh(), clock_.monotonic() + 10s);
  clock_.advance(9s);
  EXPECT_EQ(book_.refresh_due(), 0u);
  clock_.advance(1s);
  EXPECT_EQ(book_.refresh_due(), 1u);  // fast only
  EXPECT_EQ(resolver_.open("fast.example.test"), 1);
  resolver_.answer_ok("fast.example.test", {"192.0.2.2"});
  book_.poll(0ns);
  clock_.advance(289s);
  EXPECT_EQ(book_.refresh_due(), 1u);  // fast again (t=299 >= 10+10)
  resolver_.answer_ok("fast.example.test", {"192.0.2.2"});
  book_.poll(0ns);
  EXPECT_EQ(resolver_.open("web.example.test"), 0);
  clock_.advance(1s);  // t=300: web's turn
  EXPECT_EQ(book_.refresh_due(), 1u);
  EXPECT_EQ(resolver_.open("web.example.test"), 1);
}

TEST_F(dns_TargetAddressBook, ChangedAddressIsReportedAndProbedNext) {
  book_.set_targets(targets({target("web", "web.example.test")}));
  resolver_.answer_ok("web.example.test", {"192.0.2.1"});
  book_.poll(0ns);
  book_.take_events();
  const auto gen = book_.generation();
  book_.take_changed();

  book_.refresh_due();
  resolver_.answer_ok("web.example.test", {"192.0.2.2"});
  book_.poll(0ns);
  EXPECT_EQ(book_.hosts("web"), std::vector<IpAddress>{ip("192.0.2.2")});
  EXPECT_GT(book_.generation(), gen);
  EXPECT_TRUE(book_.take_changed());
  auto events = book_.take_events();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].kind, Kind::kResolved);
  EXPECT_EQ(events[0].previous, std::vector<IpAddress>{ip("192.0.2.1")});
  EXPECT_EQ(events[0].hosts, std::vector<IpAddress>{ip("192.0.2.2")});
}

TEST_F(dns_TargetAddressBook, RoundRobinOrderIsNotAChange) {
  book_.set_targets(targets({target("web", "web.example.test")}));
  resolver_.answer_ok("web.example.test", {"192.0.2.1", "192.0.2.2"});
  book_.poll(0ns);
  book_.take_events();
  book_.take_changed();
  book_.refresh_due();
  resolver_.answer_ok("web.example.test", {"192.0.2.2", "192.0.2.1"});
  book_.poll(0ns);
  EXPECT_EQ(book_.hosts("web"), std::vector<IpAddress>{ip("192.0.2.1")});
  EXPECT_TRUE(book_.take_events().empty());
  EXPECT_FALSE(book_.take_changed());
}

TEST_F(dns_TargetAddressBook, FailureMakesTheTargetInactiveOnEveryAttempt) {
  book_.set_targets(targets({target("web", "web.example.test")}));
  resolver_.answer_ok("web.example.test", {"192.0.2.1"});
  book_.poll(0ns);
  book_.take_events();
  book_.take_changed();

  book_.refresh_due();
  resolver_.answer_error("web.example.test", "NXDOMAIN");
  book_.poll(0ns);
  EXPECT_EQ(book_.state("web"), State::kFailed);
  EXPECT_EQ(book_.error("web"), "NXDOMAIN");
  EXPECT_FALSE(book_.hosts("web"));
  EXPECT_TRUE(book_.take_changed());  // it must leave the plan
  auto events = book_.take_events();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].kind, Kind::kFailed);
  EXPECT_EQ(events[0].error, "NXDOMAIN");
  EXPECT_TRUE(events[0].was_active);
  EXPECT_FALSE(events[0].repeated);

  book_.refresh_due();
  resolver_.answer_error("web.example.test", "NXDOMAIN");
  book_.poll(0ns);
  events = book_.take_events();
  ASSERT_EQ(events.size(), 1u);  // status 0 again, as netprobify: idempotent for the metrics
  EXPECT_FALSE(events[0].was_active);
  EXPECT_TRUE(events[0].repeated);
  EXPECT_FALSE(book_.take_changed());  // nothing to re-plan

  // Back, with the very same address: a change again (netprobify forgot the address on failure).
  book_.refresh_due();
  resolver_.answer_ok("web.example.test", {"192.0.2.1"});
  book_.poll(0ns);
  events = book_.take_events();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].kind, Kind::kResolved);
  EXPECT_TRUE(book_.take_changed());
  EXPECT_EQ(book_.hosts("web"), std::vector<IpAddress>{ip("192.0.2.1")});
}

TEST_F(dns_TargetAddressBook, FirstResolutionFailureIsReported) {
  book_.set_targets(targets({target("web", "web.example.test")}));
  resolver_.answer_error("web.example.test", "timeout");
  book_.poll(0ns);
  auto events = book_.take_events();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].kind, Kind::kFailed);
  EXPECT_FALSE(events[0].was_active);
  EXPECT_FALSE(events[0].repeated);
}

TEST_F(dns_TargetAddressBook, WrongFamilyAnswerIsAFailure) {
  book_.set_targets(targets({target("web", "web.example.test")}));
  resolver_.answer_ok("web.example.test", {"2001:db8::1"});  // a broken resolver
  book_.poll(0ns);
  EXPECT_EQ(book_.state("web"), State::kFailed);
  EXPECT_EQ(book_.error("web"), "no ipv4 address");
}

TEST_F(dns_TargetAddressBook, UnansweredQueryExpiresAndItsLateAnswerIsIgnored) {
  TargetAddressBook book(resolver_, clock_, AddressBookOptions{.query_deadline = 5s});
  book.set_targets(targets({target("web", "web.example.test", 0)}));
  clock_.advance(4s);
  book.poll(0ns);
  EXPECT_EQ(book.state("web"), State::kPending);
  clock_.advance(1s);
  book.poll(0ns);
  EXPECT_EQ(book.state("web"), State::kFailed);
  auto events = book.take_events();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].kind, Kind::kFailed);
  // The resolver wakes up at last: too late, that answer is dropped.
  resolver_.answer_ok("web.example.test", {"192.0.2.1"});
  book.poll(0ns);
  EXPECT_EQ(book.state("web"), State::kFailed);
  EXPECT_TRUE(book.take_events().empty());
  // The next iteration asks again.
  EXPECT_EQ(book.refresh_due(), 1u);
}

TEST_F(dns_TargetAddressBook, ReloadForcesResolutionAndKeepsProbingMeanwhile) {
  book_.set_targets(targets({target("web", "web.example.test", 300)}));
  resolver_.answer_ok("web.example.test", {"192.0.2.1"});
  book_.poll(0ns);
  book_.take_events();

  clock_.advance(10s);  // long before the 300 s refresh
  book_.set_targets(targets({target("web", "web.example.test", 300)}));
  EXPECT_EQ(resolver_.open("web.example.test"), 1);                        // forced
  EXPECT_EQ(book_.hosts("web"), std::vector<IpAddress>{ip("192.0.2.1")});  // still probed meanwhile
  resolver_.answer_ok("web.example.test", {"192.0.2.1"});
  book_.poll(0ns);
  EXPECT_TRUE(book_.take_events().empty());  // a reload is not an address change

  // A new destination starts afresh: not probed until its own answer, then a first resolution.
  book_.set_targets(targets({target("web", "www.example.test", 300)}));
  EXPECT_FALSE(book_.hosts("web"));
  resolver_.answer_ok("www.example.test", {"192.0.2.1"});
  book_.poll(0ns);
  auto events = book_.take_events();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].kind, Kind::kResolved);
  EXPECT_EQ(events[0].destination, "www.example.test");
}

TEST_F(dns_TargetAddressBook, ReloadDropsAnswersOfTheOldSet) {
  book_.set_targets(targets({target("web", "web.example.test")}));
  book_.set_targets(targets({target("ip", "192.0.2.3")}));
  book_.take_events();
  resolver_.answer_ok("web.example.test", {"192.0.2.1"});
  book_.poll(0ns);
  EXPECT_TRUE(book_.take_events().empty());
  EXPECT_EQ(book_.state("web"), State::kDisabled);  // unknown now
}

TEST_F(dns_TargetAddressBook, AnswerAfterTheBookIsGoneIsDropped) {
  {
    TargetAddressBook book(resolver_, clock_);
    book.set_targets(targets({target("web", "web.example.test")}));
  }
  resolver_.answer_ok("web.example.test", {"192.0.2.1"});
  EXPECT_EQ(resolver_.poll(0ns), 1);  // runs the callback, which must do nothing
}

}  // namespace
}  // namespace netprobe
