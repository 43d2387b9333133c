#pragma once
// Doubles for /api/v1/tests's tests (test_service_test.cpp, test_service_http_test.cpp): a resolver that
// answers from poll(), an executor that answers at once or when released, a HopProber over a scripted path
// that can hold every batch, and a TestService over them on a fake clock.
#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>
#include <thread>

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "ondemand/test_service.h"

namespace netprobe::ondemand::doubles {

using Json = nlohmann::json;
using std::chrono::milliseconds;

// Answers from poll(), as c-ares does; thread-safe (each test thread has its own instance).
class ScriptedResolver final : public Resolver {
 public:
  explicit ScriptedResolver(std::map<std::string, std::string> answers) : answers_(std::move(answers)) {}
  void resolve(const std::string& host, AddressFamily, std::function<void(Resolution)> done) override {
    pending_.emplace_back(host, std::move(done));
  }
  int poll(Nanos) override {
    auto pending = std::move(pending_);
    pending_.clear();
    for (auto& [host, done] : pending) {
      Resolution r;
      if (auto it = answers_.find(host); it != answers_.end()) {
        r.ok = true;
        r.addresses.push_back(*IpAddress::parse(it->second));
      } else {
        r.error = "NXDOMAIN";
      }
      done(r);
    }
    return int(pending.size());
  }
  size_t pending() const override { return pending_.size(); }

 private:
  std::map<std::string, std::string> answers_;
  std::vector<std::pair<std::string, std::function<void(Resolution)>>> pending_;
};

// Answers every probe (1 ms), at once or when released.
class ScriptedExecutor final : public ProbeExecutor {
 public:
  std::mutex mu;
  bool hold = false;
  bool interrupt_first = false;  // the first probe was still waiting when the run stopped
  std::vector<ProbeJob> jobs;
  std::vector<std::vector<Nanos>> times;
  std::vector<std::function<void()>> held;
  void run(const ProbeJob& job, std::vector<Nanos> send_times,
           std::function<void(std::vector<ProbeEvent>)> done) override {
    std::vector<ProbeEvent> events(send_times.size());
    for (size_t i = 0; i < events.size(); ++i) {
      events[i].state = i == 0 ? ProbeEvent::State::kLost : ProbeEvent::State::kAnswered;
      events[i].rtt_s = i == 0 ? -1 : 0.001;
      events[i].src_port = uint16_t(job.src_port_a + i % 2);
    }
    std::unique_lock lock(mu);
    if (!events.empty()) events[0].interrupted = interrupt_first;
    jobs.push_back(job);
    times.push_back(send_times);
    if (hold) {
      held.push_back([done, events] { done(events); });
      return;
    }
    lock.unlock();
    done(events);
  }
  void hold_jobs() {
    std::lock_guard lock(mu);
    hold = true;
  }
  void release() {
    std::vector<std::function<void()>> h;
    {
      std::lock_guard lock(mu);
      h.swap(held);
      hold = false;
    }
    for (auto& f : h) f();
  }
  size_t job_count() {
    std::lock_guard lock(mu);
    return jobs.size();
  }
};

// Hop 1 answers Time Exceeded from 192.0.2.1, TTL 2 and beyond is the destination. With a gate, every
// batch waits for it (bounded), so a test can see "running".
struct ProberScript {
  std::mutex mu;
  std::condition_variable cv;
  bool gated = false;
  int routers = 1;  // hops before the destination
  std::atomic<int> batches{0};
  std::vector<TraceTarget> targets;
  std::vector<double> rates;
  std::vector<Nanos> send_at;  // every probe_at() time, in order
  std::atomic<uint64_t> probes{0};
  void open() {
    std::lock_guard lock(mu);
    gated = false;
    cv.notify_all();
  }
  void close(int router_hops = 1) {
    std::lock_guard lock(mu);
    gated = true;
    routers = router_hops;
  }
};

class ScriptedProber final : public HopProber {
 public:
  ScriptedProber(ProberScript& s, IpAddress dst) : s_(s), dst_(dst) {}
  std::vector<HopReply> probe(std::span<const ProbeSpec> specs) override {
    int routers = 0;
    {
      std::unique_lock lock(s_.mu);
      s_.cv.wait_for(lock, std::chrono::seconds(10), [&] { return !s_.gated; });
      routers = s_.routers;
    }
    ++s_.batches;
    std::vector<HopReply> out(specs.size());
    for (size_t i = 0; i < specs.size(); ++i) {
      ++s_.probes;
      HopReply& h = out[i];
      h.rtt_s = 0.001;
      if (specs[i].ttl <= routers) {
        h.kind = HopReply::Kind::kTimeExceeded;
        h.from = IpAddress::v4(0xc0000200 + specs[i].ttl);  // 192.0.2.<ttl>
        h.icmp_type = 11;
      } else {
        h.kind = HopReply::Kind::kDestination;
        h.from = dst_;
      }
    }
    return out;
  }
  std::vector<HopReply> probe_at(std::span<const ProbeSpec> specs, std::span<const Nanos> send_at) override {
    {
      std::lock_guard lock(s_.mu);
      s_.send_at.insert(s_.send_at.end(), send_at.begin(), send_at.end());
    }
    return probe(specs);
  }

 private:
  ProberScript& s_;
  IpAddress dst_;
};

struct Fixture {
  FakeClock clock;
  ScriptedExecutor executor;
  ProberScript prober;
  std::mutex audit_mu;
  std::vector<std::string> audit;
  OnDemandConfig config;
  TestServiceOptions options;
  std::unique_ptr<TestService> service;

  Fixture() {
    config.allowed_prefixes = {*IpNetwork::parse("10.0.0.0/8")};
    config.credentials["runbook"] = {"runbook", sha256_hex("tok"), ""};
    config.credentials["other"] = {"other", sha256_hex("tok2"), ""};
    config.budgets.max_concurrent_tests = 3;
    config.budgets.max_concurrent_tests_per_credential = 2;
    config.budgets.max_probes_per_test = 100;
    config.budgets.max_packets_per_second_per_destination = 1000;
    config.budgets.max_packets_per_second = 10000;
    config.budgets.max_request_bytes = 2048;
    config.budgets.max_tests_per_request = 3;
    options.source_for = [](const IpAddress&) { return IpAddress::parse("10.9.9.9"); };
  }
  void start() {
    service = std::make_unique<TestService>(
        config, Policy{},
        [] {
          return std::make_unique<ScriptedResolver>(
              std::map<std::string, std::string>{{"web.example", "10.0.0.5"}, {"loop.example", "127.0.0.1"}});
        },
        executor,
        [this](const TraceTarget& t, double, double rate) -> std::unique_ptr<HopProber> {
          {
            std::lock_guard lock(prober.mu);
            prober.targets.push_back(t);
            prober.rates.push_back(rate);
          }
          return std::make_unique<ScriptedProber>(prober, t.dst);
        },
        clock,
        [this](const std::string& line) {
          std::lock_guard lock(audit_mu);
          audit.push_back(line);
        },
        options);
  }
  TestResponse call(const std::string& method, std::optional<std::string> receipt, std::string body = "",
                    std::optional<std::string> auth = "Bearer tok") {
    TestRequest r;
    r.method = method;
    r.receipt = std::move(receipt);
    r.body = std::move(body);
    r.authorization = std::move(auth);
    r.peer = "192.0.2.9";
    return service->handle(r);
  }
  std::string post(const std::string& body, std::optional<std::string> auth = "Bearer tok") {
    const auto r = call("POST", std::nullopt, body, std::move(auth));
    EXPECT_EQ(r.status, 202) << r.body;
    return Json::parse(r.body, nullptr, false).value("receipt", std::string());
  }
  // GET until every test is terminal (bounded).
  Json wait_done(const std::string& receipt, std::optional<std::string> auth = "Bearer tok") {
    Json doc;
    for (int i = 0; i < 2000; ++i) {
      const auto r = call("GET", receipt, "", auth);
      doc = Json::parse(r.body, nullptr, false);
      if (r.status != 200 || doc.value("state", "") == "done") return doc;
      std::this_thread::sleep_for(milliseconds(5));
    }
    return doc;
  }
  bool wait_for(const std::function<bool()>& cond) {
    for (int i = 0; i < 2000; ++i) {
      if (cond()) return true;
      std::this_thread::sleep_for(milliseconds(5));
    }
    return false;
  }
};

}  // namespace netprobe::ondemand::doubles
