// GET /probe end to end with a scripted resolver and an in-memory executor (src/ondemand/probe_service.h):
// refused credentials and targets, budgets, and that the probe goes to the checked address.
#include "ondemand/probe_service.h"

#include <map>

#include <gtest/gtest.h>

namespace netprobe::ondemand {
namespace {

class FixedClock final : public Clock {
 public:
  Nanos now{Nanos(1'000'000'000)};
  Nanos monotonic() const override { return now; }
  Nanos realtime() const override { return now; }
  bool sleep_until(Nanos) override { return true; }
  void wake() override {}
};

// Answers each name with successive answers (the last one repeats), counting queries.
class ListResolver final : public Resolver {
 public:
  std::map<std::string, std::vector<std::string>> answers;
  std::map<std::string, int> asked;
  void resolve(const std::string& host, AddressFamily, std::function<void(Resolution)> done) override {
    const int n = asked[host]++;
    Resolution r;
    if (auto it = answers.find(host); it != answers.end()) {
      r.ok = true;
      r.addresses.push_back(*IpAddress::parse(it->second[std::min<size_t>(n, it->second.size() - 1)]));
    } else {
      r.error = "NXDOMAIN";
    }
    done(r);  // synchronous is enough here
  }
  int poll(Nanos) override { return 0; }
  size_t pending() const override { return 0; }
};

// Answers every probe in 1 ms, or holds the jobs when `hold` (to test concurrency).
class MemoryExecutor final : public ProbeExecutor {
 public:
  bool hold = false;
  std::vector<ProbeJob> jobs;
  std::vector<std::function<void()>> held;
  void run(const ProbeJob& job, std::vector<Nanos> send_times,
           std::function<void(std::vector<ProbeEvent>)> done) override {
    jobs.push_back(job);
    std::vector<ProbeEvent> events(send_times.size());
    for (size_t i = 0; i < events.size(); ++i) {
      events[i].state = ProbeEvent::State::kAnswered;
      events[i].rtt_s = 0.001;
      events[i].src_port = uint16_t(job.src_port_a + i % 4);
    }
    if (hold)
      held.push_back([done, events] { done(events); });
    else
      done(events);
  }
};

struct Fixture {
  FixedClock clock;
  ListResolver resolver;
  MemoryExecutor executor;
  std::vector<std::string> audit;
  std::unique_ptr<ProbeService> service;
  Fixture() {
    OnDemandConfig c;
    c.allowed_prefixes = {*IpNetwork::parse("10.0.0.0/8")};
    OnDemandModule m;
    m.name = "tcp";
    m.type = ProbeType::kTcpSyn;
    m.dst_port = 443;
    m.nb_packets = 3;
    c.modules["tcp"] = m;
    c.credentials["runbook"] = {"runbook", sha256_hex("tok"), ""};
    c.credentials["other"] = {"other", sha256_hex("tok2"), ""};
    c.budgets.max_concurrent_tests = 2;
    c.budgets.max_concurrent_tests_per_credential = 1;
    resolver.answers = {{"web.example", {"10.0.0.5"}},
                        {"meta.example", {"169.254.169.254"}},
                        {"rebind.example", {"10.0.0.6", "127.0.0.1"}}};
    service = std::make_unique<ProbeService>(c, Policy{}, resolver, executor, clock,
                                             [this](const std::string& line) { audit.push_back(line); });
  }
  ProbeHttpResponse get(const std::string& target, std::optional<std::string> auth = "Bearer tok",
                        QueryParams extra = {}) {
    ProbeHttpRequest r;
    r.authorization = auth;
    r.params = std::move(extra);
    r.params["target"] = target;
    r.params.emplace("module", "tcp");
    r.peer = "192.0.2.9";
    // Held jobs answer after get() returned: the response lives as long as the callback.
    auto out = std::make_shared<ProbeHttpResponse>();
    out->status = -1;
    service->handle(r, [out](ProbeHttpResponse resp) { *out = std::move(resp); });
    return *out;
  }
};

TEST(ondemand_ProbeService, Table) {
  struct Row {
    const char* target;
    std::optional<std::string> auth;
    int status;
    const char* reason;
  };
  const std::vector<Row> rows = {
      {"web.example", "Bearer tok", 200, ""},
      {"10.0.0.7", "Bearer tok2", 200, ""},
      {"web.example", std::nullopt, 401, "auth_missing"},
      {"web.example", "Bearer nope", 401, "auth_wrong"},
      {"web.example", "Basic cnVuYm9vazp0b2s=", 401, "auth_wrong"},  // the token is no password
      {"169.254.169.254", "Bearer tok", 403, "link_local"},
      {"[::ffff:169.254.169.254]", "Bearer tok", 403, "link_local"},
      {"2852039166", "Bearer tok", 403, "numeric_form"},
      {"meta.example", "Bearer tok", 403, "link_local"},
      {"localhost", "Bearer tok", 200, ""},  // NXDOMAIN here: probe_success 0, as blackbox
      {"192.0.2.1", "Bearer tok", 403, "not_allowed_prefix"},
  };
  for (const Row& row : rows) {
    SCOPED_TRACE(row.target);
    Fixture f;
    const auto r = f.get(row.target, row.auth);
    EXPECT_EQ(r.status, row.status) << r.body;
    EXPECT_EQ(r.reason, row.reason);
    ASSERT_EQ(f.audit.size(), 1u);
    EXPECT_NE(f.audit[0].find("peer=192.0.2.9"), std::string::npos) << f.audit[0];
    EXPECT_EQ(f.service->running(), 0);
    if (row.status == 200 && f.executor.jobs.empty()) {
      EXPECT_NE(r.body.find("probe_success 0\n"), std::string::npos);
    }
    if (row.status != 200) {
      EXPECT_TRUE(f.executor.jobs.empty());  // nothing sent for a refusal
    }
  }
}

TEST(ondemand_ProbeService, ProbesThePinnedAddress) {
  Fixture f;
  const auto r = f.get("rebind.example");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_NE(r.body.find("probe_success 1\n"), std::string::npos) << r.body;
  ASSERT_EQ(f.executor.jobs.size(), 1u);
  EXPECT_EQ(f.executor.jobs[0].addresses.front().to_string(), "10.0.0.6");
  EXPECT_EQ(f.resolver.asked["rebind.example"], 1);
  EXPECT_EQ(f.get("rebind.example").reason, "loopback");  // the next answer is checked anew
}

TEST(ondemand_ProbeService, ConcurrencyAndCounters) {
  Fixture f;
  f.executor.hold = true;
  EXPECT_EQ(f.get("10.0.0.1").status, -1);  // running
  EXPECT_EQ(f.get("10.0.0.2").reason, "concurrent_tests_per_credential");
  EXPECT_EQ(f.get("10.0.0.2", "Bearer tok2").status, -1);
  EXPECT_EQ(f.get("10.0.0.3", "Bearer tok2").reason, "concurrent_tests");  // the global bound first
  EXPECT_EQ(f.service->running(), 2);
  for (auto& h : f.executor.held) h();
  EXPECT_EQ(f.service->running(), 0);
  EXPECT_EQ(f.service->rejections().at("concurrent_tests_per_credential"), 1u);
  EXPECT_EQ(f.service->rejections().at("concurrent_tests"), 1u);
  f.executor.hold = false;
  EXPECT_EQ(f.get("10.0.0.3", "Bearer tok2").status, 200);
}

TEST(ondemand_ProbeService, BadRequests) {
  Fixture f;
  EXPECT_EQ(f.get("10.0.0.1", "Bearer tok", {{"nb_packets", "99"}}).status, 400);
  EXPECT_EQ(f.get("10.0.0.1", "Bearer tok", {{"module", "nope"}}).status, 400);
  EXPECT_EQ(f.service->running(), 0);
  EXPECT_TRUE(f.executor.jobs.empty());
}

}  // namespace
}  // namespace netprobe::ondemand
