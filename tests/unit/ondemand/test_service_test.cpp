// /api/v1/tests as a library (src/ondemand/test_service.h): receipts per credential, states, expiry on a
// fake clock, every refusal, cancellation and shutdown, with a scripted executor, a scripted resolver and a
// scripted HopProber. Waits for the test threads are bounded polls (no timed assertion).
#include "ondemand/test_service.h"

#include <algorithm>
#include <atomic>
#include <map>
#include <thread>

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "test_service_fixture.h"

namespace netprobe::ondemand {
namespace {

using namespace doubles;  // NOLINT(google-build-using-namespace)

TEST(ondemand_TestService, PingRoundTripSameSummaryAsTheCommandLine) {
  Fixture f;
  f.start();
  f.executor.hold_jobs();
  const std::string receipt = f.post(
      R"({"tests":[{"type":"ping","target":"10.0.0.1","options":{"count":4,"destport":443,"fast":true}}]})");
  ASSERT_EQ(receipt.size(), 32u);
  ASSERT_TRUE(f.wait_for([&] { return f.executor.job_count() == 1; }));
  auto doc = Json::parse(f.call("GET", receipt).body);
  EXPECT_EQ(doc["state"], "running");
  EXPECT_EQ(doc["tests"][0]["state"], "running");
  EXPECT_EQ(doc["tests"][0]["address"], "10.0.0.1");
  f.executor.release();
  doc = f.wait_done(receipt);
  ASSERT_EQ(doc["tests"][0]["state"], "done") << doc.dump();
  const Json& result = doc["tests"][0]["result"];
  EXPECT_EQ(result["event"], "summary");
  EXPECT_EQ(result["sent"], 4);
  EXPECT_EQ(result["received"], 3);
  EXPECT_EQ(result["loss_pct"], 25.0);
  EXPECT_EQ(result["exit_code"], 0);
  EXPECT_EQ(result["ports"].size(), 2u);
  EXPECT_EQ(doc["expires_in_s"], 600);
  // The job: what was asked, to the checked address, at send times 100 ms apart (--fast).
  ASSERT_EQ(f.executor.jobs.size(), 1u);
  const ProbeJob& job = f.executor.jobs[0];
  EXPECT_EQ(job.addresses, std::vector<IpAddress>{*IpAddress::parse("10.0.0.1")});
  EXPECT_EQ(job.dst_port, 443);
  EXPECT_EQ(job.nb_packets, 4);
  EXPECT_EQ(job.src_port_a, 65000);
  EXPECT_EQ(job.src_port_z, 65015);
  EXPECT_EQ(job.credential, "runbook");
  ASSERT_EQ(f.executor.times[0].size(), 4u);
  EXPECT_EQ(f.executor.times[0][1] - f.executor.times[0][0], milliseconds(100));
  // Another credential sees nothing, and cannot delete it.
  EXPECT_EQ(f.call("GET", receipt, "", "Bearer tok2").status, 404);
  EXPECT_EQ(f.call("DELETE", receipt, "", "Bearer tok2").status, 404);
  EXPECT_EQ(f.call("DELETE", receipt).status, 200);
  EXPECT_EQ(f.call("GET", receipt).status, 404);
  EXPECT_EQ(f.service->receipts(), 0u);
  EXPECT_EQ(f.service->running(), 0);
  const auto requests = f.service->requests();
  EXPECT_EQ(requests.at(202), 1u);
  EXPECT_EQ(requests.at(404), 3u);
  uint64_t total = 0;
  for (const auto& [code, n] : requests) total += n;
  std::lock_guard lock(f.audit_mu);
  EXPECT_EQ(f.audit.size(), total);  // one line per request
  EXPECT_NE(f.audit.front().find("method=POST receipt=" + receipt.substr(0, 8) +
                                 " tests=\"ping:10.0.0.1\" "
                                 "status=202 reason=-"),
            std::string::npos)
      << f.audit.front();
}

TEST(ondemand_TestService, PingOptionsByTheirLongNames) {
  struct Row {
    std::string options;
    std::function<void(const ProbeJob&, const std::vector<Nanos>&)> check;
  };
  const std::vector<Row> rows = {
      {R"({"protocol":"icmp"})",
       [](const ProbeJob& j, const auto&) {
         EXPECT_EQ(j.type, ProbeType::kIcmpPing);
         EXPECT_EQ(j.dst_port, 0);
         EXPECT_EQ(j.src_port_a, j.src_port_z);
       }},
      {R"({"protocol":"udp"})", [](const ProbeJob& j, const auto&) { EXPECT_EQ(j.dst_port, 33434); }},
      {R"({"baseport":1000,"keep":true})",
       [](const ProbeJob& j, const auto&) {
         EXPECT_EQ(j.src_port_a, 1000);
         EXPECT_EQ(j.src_port_z, 1000);
       }},
      {R"({"sport-range":"2000-2003"})",
       [](const ProbeJob& j, const auto&) {
         EXPECT_EQ(j.src_port_a, 2000);
         EXPECT_EQ(j.src_port_z, 2003);
       }},
      {R"({"tos":"0x10"})", [](const ProbeJob& j, const auto&) { EXPECT_EQ(j.dscp, 4); }},
      {R"({"dscp":46})", [](const ProbeJob& j, const auto&) { EXPECT_EQ(j.dscp, 46); }},
      {R"({"data":10})", [](const ProbeJob& j, const auto&) { EXPECT_EQ(j.ip_payload_size, 20 + 10); }},
      {R"({"timeout":2.5})", [](const ProbeJob& j, const auto&) { EXPECT_EQ(j.timeout_s, 2.5); }},
      {R"({})",
       [](const ProbeJob& j, const auto&) {
         EXPECT_EQ(j.ttl, 64);
         EXPECT_TRUE(j.dont_fragment);
       }},
      {R"({"ttl":3,"no-df":true})",
       [](const ProbeJob& j, const auto&) {
         EXPECT_EQ(j.ttl, 3);
         EXPECT_FALSE(j.dont_fragment);
       }},
      {R"({"dontfrag":false})", [](const ProbeJob& j, const auto&) { EXPECT_FALSE(j.dont_fragment); }},
      {R"({"interval":"u200000","count":2})",
       [](const ProbeJob&, const std::vector<Nanos>& t) {
         ASSERT_EQ(t.size(), 2u);
         EXPECT_EQ(t[1] - t[0], milliseconds(200));
       }},
      {R"({"interval":0.5,"count":2,"rate":1})",  // --rate lowers the pace
       [](const ProbeJob&, const std::vector<Nanos>& t) {
         ASSERT_EQ(t.size(), 2u);
         EXPECT_EQ(t[1] - t[0], std::chrono::seconds(1));
       }},
  };
  for (const Row& row : rows) {
    SCOPED_TRACE(row.options);
    Fixture f;
    f.start();
    const auto doc = f.wait_done(
        f.post(R"({"tests":[{"type":"ping","target":"10.0.0.1","options":)" + row.options + "}]}"));
    EXPECT_EQ(doc["tests"][0]["state"], "done");
    ASSERT_EQ(f.executor.job_count(), 1u);
    row.check(f.executor.jobs[0], f.executor.times[0]);
  }
  for (const char* bad :
       {R"({"tos":"0x11"})", R"({"tos":"10","dscp":1})", R"({"fast":true,"faster":true})", R"({"count":"5"})",
        R"({"destport":0})", R"({"ttl":0})", R"({"ttl":256})", R"({"dontfrag":true,"no-df":true})",
        R"({"ipv4":true,"ipv6":true})", R"({"timeout":61})", R"({"tos":"-4"})"}) {
    Fixture f;
    f.start();
    const auto r =
        f.call("POST", std::nullopt,
               std::string(R"({"tests":[{"type":"ping","target":"10.0.0.1","options":)") + bad + "}]}");
    EXPECT_EQ(r.status, 400) << bad << " " << r.body;
  }
}

TEST(ondemand_TestService, PingCountsAsTheCommandLineAProbeAStopLeftWaiting) {
  Fixture f;
  f.start();
  {
    std::lock_guard lock(f.executor.mu);
    f.executor.interrupt_first = true;
  }
  const auto doc =
      f.wait_done(f.post(R"({"tests":[{"type":"ping","target":"10.0.0.1","options":{"count":4}}]})"));
  const Json& result = doc["tests"][0]["result"];
  EXPECT_EQ(result["sent"], 3) << result.dump();  // neither received nor lost
  EXPECT_EQ(result["received"], 3);
  EXPECT_EQ(result["loss_pct"], 0.0);
}

TEST(ondemand_TestService, TraceAndPathlossOverTheHopProber) {
  Fixture f;
  f.start();
  const std::string receipt =
      f.post(R"({"tests":[{"type":"trace","target":"web.example","options":{"max-ttl":5,"protocol":"udp"}},)"
             R"({"type":"pathloss","target":"10.0.0.2","options":{"sports":[40001],"probes-per-hop":5,)"
             R"("compare-healthy":1,"max-ttl":4}}]})");
  const Json doc = f.wait_done(receipt);
  ASSERT_EQ(doc["tests"][0]["state"], "done") << doc.dump();
  ASSERT_EQ(doc["tests"][1]["state"], "done") << doc.dump();
  // The name was resolved once and its answer pinned.
  EXPECT_EQ(doc["tests"][0]["address"], "10.0.0.5");
  const Json& trace = doc["tests"][0]["result"];
  EXPECT_TRUE(trace.contains("flows")) << trace.dump();
  EXPECT_EQ(trace["flows"].size(), 1u);
  const Json& pathloss = doc["tests"][1]["result"];
  EXPECT_TRUE(pathloss.contains("flows")) << pathloss.dump();
  EXPECT_EQ(pathloss["flows"].size(), 2u);  // the flow asked for and one reference flow
  std::lock_guard lock(f.prober.mu);
  ASSERT_EQ(f.prober.targets.size(), 2u);
  for (const auto& t : f.prober.targets) {
    EXPECT_TRUE(t.dst == *IpAddress::parse("10.0.0.5") || t.dst == *IpAddress::parse("10.0.0.2"));
    EXPECT_EQ(t.src, *IpAddress::parse("10.9.9.9"));
  }
  // The rate: the command line's default, capped by the per-destination budget (1000 here).
  for (double r : f.prober.rates) EXPECT_LE(r, 1000);
}

TEST(ondemand_TestService, Refusals) {
  struct Row {
    std::string body;
    std::optional<std::string> auth;
    int status;
    std::string reason;
    std::string says;  // in the error message
  };
  const std::string ping = R"({"type":"ping","target":"10.0.0.1"})";
  const std::vector<Row> rows = {
      {"{\"tests\":[" + ping + "]}", std::nullopt, 401, "auth_missing", ""},
      {"{\"tests\":[" + ping + "]}", "Bearer nope", 401, "auth_wrong", ""},
      {std::string(3000, ' '), "Bearer tok", 413, "body_too_large", "2048"},
      {"{\"tests\":[", "Bearer tok", 400, "bad_request", "not JSON"},
      {std::string(20, '[') + std::string(20, ']'), "Bearer tok", 400, "bad_request", "nested"},
      {"{\"tests\":[]}", "Bearer tok", 400, "bad_request", "expected"},
      {"{\"tests\":[" + ping + "," + ping + "," + ping + "," + ping + "]}", "Bearer tok", 400,
       "too_many_tests", "max_tests_per_request"},
      {R"({"tests":[{"type":"dig","target":"10.0.0.1"}]})", "Bearer tok", 400, "bad_request", "unknown type"},
      {R"({"tests":[{"type":"ping","target":"10.0.0.1","options":{"colour":1}}]})", "Bearer tok", 400,
       "bad_request", "colour"},
      {R"({"tests":[{"type":"ping","target":"10.0.0.1","options":{"interface":"eth0"}}]})", "Bearer tok", 400,
       "bad_request", "\"interface\" refused"},
      {R"({"tests":[{"type":"ping","target":"10.0.0.1","options":{"spoof":"10.0.0.9"}}]})", "Bearer tok", 400,
       "bad_request", "\"spoof\" refused"},
      {R"({"tests":[{"type":"ping","target":"10.0.0.1","options":{"flood":true}}]})", "Bearer tok", 400,
       "bad_request", "\"flood\" refused"},
      {R"({"tests":[{"type":"trace","target":"10.0.0.1","options":{"format":"dot"}}]})", "Bearer tok", 400,
       "bad_request", "\"format\" refused"},
      {R"({"tests":[{"type":"ping","target":"10.0.0.1","options":{"rate":5000}}]})", "Bearer tok", 400,
       "bad_request", "\"rate\""},
      {R"({"tests":[{"type":"trace","target":"10.0.0.1","options":{"rate":5000}}]})", "Bearer tok", 400,
       "bad_request", "\"rate\""},
      {R"({"tests":[{"type":"ping","target":"10.0.0.1","options":{"count":101}}]})", "Bearer tok", 400,
       "too_many_probes", "\"count\""},
      {R"({"tests":[{"type":"trace","target":"10.0.0.1","options":{"mda":true}}]})", "Bearer tok", 400,
       "too_many_probes", "\"max-flows\""},
      {R"({"tests":[{"type":"pathloss","target":"10.0.0.1","options":{"sports":"1"}}]})", "Bearer tok", 400,
       "too_many_probes", "\"probes-per-hop\""},
      {R"({"tests":[{"type":"trace","target":"10.0.0.1","options":{"max-ttl":65}}]})", "Bearer tok", 400,
       "bad_request", "--max-ttl: from --first-ttl to 64"},
      {R"({"tests":[{"type":"ping","target":"10.0.0.1","options":{"count":100,"interval":10}}]})",
       "Bearer tok", 400, "bad_request", "would last"},
      {R"({"tests":[{"type":"ping","target":"127.0.0.1"}]})", "Bearer tok", 403, "loopback", ""},
      {R"({"tests":[{"type":"ping","target":"[::ffff:169.254.169.254]"}]})", "Bearer tok", 403, "link_local",
       ""},
      {R"({"tests":[{"type":"trace","target":"0x7f.1"}]})", "Bearer tok", 403, "numeric_form", ""},
      {R"({"tests":[{"type":"ping","target":"192.0.2.1"}]})", "Bearer tok", 403, "not_allowed_prefix", ""},
  };
  for (const Row& row : rows) {
    SCOPED_TRACE(row.body.substr(0, 120));
    Fixture f;
    f.start();
    const auto r = f.call("POST", std::nullopt, row.body, row.auth);
    EXPECT_EQ(r.status, row.status) << r.body;
    EXPECT_EQ(r.reason, row.reason);
    const Json error = Json::parse(r.body, nullptr, false);
    ASSERT_TRUE(error.is_object()) << r.body;
    EXPECT_EQ(error.value("reason", ""), row.reason);
    EXPECT_NE(error.value("error", "").find(row.says), std::string::npos) << r.body;
    EXPECT_EQ(f.service->rejections()[row.reason], 1u);
    EXPECT_EQ(f.service->receipts(), 0u);
    EXPECT_EQ(f.service->running(), 0);
    EXPECT_EQ(f.executor.job_count(), 0u);  // nothing sent for a refusal
    std::lock_guard lock(f.audit_mu);
    ASSERT_EQ(f.audit.size(), 1u);
    EXPECT_NE(f.audit[0].find("status=" + std::to_string(row.status)), std::string::npos) << f.audit[0];
  }
}

TEST(ondemand_TestService, ANameThatResolvesToADeniedAddressFailsItsTest) {
  Fixture f;
  std::mutex told_mu;
  std::vector<std::string> told;  // what /metrics is told (the POST's 202 carries no reason)
  f.options.on_test_rejection = [&](const std::string& reason) {
    std::lock_guard lock(told_mu);
    told.push_back(reason);
  };
  f.start();
  const std::string receipt = f.post(R"({"tests":[{"type":"ping","target":"loop.example"},)"
                                     R"({"type":"ping","target":"nx.example"}]})");
  const Json doc = f.wait_done(receipt);
  EXPECT_EQ(doc["tests"][0]["state"], "failed");
  EXPECT_NE(doc["tests"][0]["error"].get<std::string>().find("loopback"), std::string::npos);
  EXPECT_EQ(doc["tests"][1]["state"], "failed");
  EXPECT_NE(doc["tests"][1]["error"].get<std::string>().find("NXDOMAIN"), std::string::npos);
  EXPECT_EQ(f.service->rejections()["loopback"], 1u);
  EXPECT_EQ(f.executor.job_count(), 0u);
  std::lock_guard lock(told_mu);
  std::sort(told.begin(), told.end());
  EXPECT_EQ(told, (std::vector<std::string>{"loopback", "resolve_failed"}));
}

TEST(ondemand_TestService, ConcurrencyGlobalAndPerCredential) {
  Fixture f;
  f.start();
  f.executor.hold_jobs();
  const std::string ping = R"({"type":"ping","target":"10.0.0.1","options":{"count":1}})";
  const std::string a = f.post("{\"tests\":[" + ping + "," + ping + "]}");
  auto r = f.call("POST", std::nullopt, "{\"tests\":[" + ping + "]}");
  EXPECT_EQ(r.status, 429);
  EXPECT_EQ(r.reason, "concurrent_tests_per_credential");
  const std::string b = f.post("{\"tests\":[" + ping + "]}", "Bearer tok2");
  r = f.call("POST", std::nullopt, "{\"tests\":[" + ping + "]}", "Bearer tok2");
  EXPECT_EQ(r.status, 429);
  EXPECT_EQ(r.reason, "concurrent_tests");
  EXPECT_EQ(f.service->running(), 3);
  ASSERT_TRUE(f.wait_for([&] { return f.executor.job_count() == 3; }));
  f.executor.release();
  EXPECT_EQ(f.wait_done(a)["state"], "done");
  EXPECT_EQ(f.wait_done(b, "Bearer tok2")["state"], "done");
  ASSERT_TRUE(f.wait_for([&] { return f.service->running() == 0; }));
  f.post("{\"tests\":[" + ping + "]}");  // room again
}

TEST(ondemand_TestService, ConcurrentCallersNeverExceedTheAdmission) {
  Fixture f;
  f.config.budgets.max_concurrent_tests_per_credential = 3;
  f.start();
  f.executor.hold_jobs();
  const std::string body = R"({"tests":[{"type":"ping","target":"10.0.0.1","options":{"count":1}}]})";
  std::atomic<int> accepted{0}, busy{0};
  std::vector<std::thread> callers;
  for (int i = 0; i < 16; ++i)
    callers.emplace_back([&, i] {
      const auto r = f.call("POST", std::nullopt, body, i % 2 ? "Bearer tok" : "Bearer tok2");
      (r.status == 202 ? accepted : busy)++;
    });
  for (auto& t : callers) t.join();
  EXPECT_EQ(accepted.load(), 3);  // max_concurrent_tests
  EXPECT_EQ(busy.load(), 13);
  EXPECT_EQ(f.service->running(), 3);
  ASSERT_TRUE(f.wait_for([&] { return f.executor.job_count() == 3; }));
  f.executor.release();
  ASSERT_TRUE(f.wait_for([&] { return f.service->running() == 0; }));
}

TEST(ondemand_TestService, ResultsExpireAfterTheTtl) {
  Fixture f;
  f.config.budgets.result_ttl_s = 600;
  f.start();
  const std::string receipt =
      f.post(R"({"tests":[{"type":"ping","target":"10.0.0.1","options":{"count":1}}]})");
  ASSERT_EQ(f.wait_done(receipt)["state"], "done");
  f.clock.advance(std::chrono::seconds(599));
  const auto doc = Json::parse(f.call("GET", receipt).body);
  EXPECT_EQ(doc["expires_in_s"], 1);
  f.clock.advance(std::chrono::seconds(1));
  EXPECT_EQ(f.call("GET", receipt).status, 404);
  EXPECT_EQ(f.service->receipts(), 0u);
  EXPECT_EQ(f.service->stored_bytes(), 0u);
}

TEST(ondemand_TestService, TheStoreIsBoundedInReceiptsAndBytes) {
  Fixture f;
  f.options.max_receipts = 2;
  f.start();
  const std::string ping = R"({"tests":[{"type":"ping","target":"10.0.0.1","options":{"count":1}}]})";
  const std::string first = f.post(ping);
  ASSERT_EQ(f.wait_done(first)["state"], "done");
  const std::string second = f.post(ping);
  ASSERT_EQ(f.wait_done(second)["state"], "done");
  const std::string third = f.post(ping);  // the oldest finished one makes room
  EXPECT_EQ(f.call("GET", first).status, 404);
  EXPECT_EQ(f.wait_done(third)["state"], "done");
  EXPECT_EQ(f.service->receipts(), 2u);
  // Running receipts are never evicted: a full store of running tests refuses.
  f.executor.hold_jobs();
  f.post(ping, "Bearer tok2");
  f.post(ping, "Bearer tok2");
  const auto r = f.call("POST", std::nullopt, ping);
  EXPECT_EQ(r.status, 429);
  EXPECT_EQ(r.reason, "result_store_full");
  f.executor.release();

  Fixture g;
  g.options.max_result_bytes = 100;  // a ping summary is larger
  g.start();
  const auto doc = g.wait_done(g.post(ping));
  EXPECT_EQ(doc["tests"][0]["state"], "failed");
  EXPECT_NE(doc["tests"][0]["error"].get<std::string>().find("bytes"), std::string::npos);
  EXPECT_EQ(g.service->stored_bytes(), 0u);
}

TEST(ondemand_TestService, DeleteCancelsARunningTraceAndShutdownJoins) {
  Fixture f;
  f.start();
  f.prober.close(20);  // every batch waits; 3 rounds of 8 TTLs without cancellation
  const std::string receipt = f.post(R"({"tests":[{"type":"trace","target":"10.0.0.3"}]})");
  // A batch in flight (handed to the prober, held at its gate), not merely the prober made: a DELETE
  // before the first batch would stop the test with none.
  ASSERT_TRUE(f.wait_for([&] {
    std::lock_guard lock(f.prober.mu);
    return !f.prober.targets.empty() && !f.prober.send_at.empty();
  }));
  EXPECT_EQ(Json::parse(f.call("GET", receipt).body)["tests"][0]["state"], "running");
  EXPECT_EQ(f.call("DELETE", receipt).status, 200);
  f.prober.open();  // the batch in flight ends; the algorithm asks no more
  ASSERT_TRUE(f.wait_for([&] { return f.service->running() == 0; }));
  EXPECT_EQ(f.prober.batches.load(), 1);  // stopped after the batch in flight

  // Shutdown with a test blocked in a batch: cancelled, joined.
  f.prober.close(20);
  f.post(R"({"tests":[{"type":"trace","target":"10.0.0.3"}]})");
  ASSERT_TRUE(f.wait_for([&] {
    std::lock_guard lock(f.prober.mu);
    return f.prober.targets.size() == 2;
  }));
  std::thread opener([&] {
    std::this_thread::sleep_for(milliseconds(50));
    f.prober.open();
  });
  f.service->shutdown();
  opener.join();
  EXPECT_EQ(f.service->running(), 0);
  EXPECT_EQ(f.call("GET", receipt).status, 503);
}

TEST(ondemand_TestService, ReceiptsAreRandomAndOnlyTheirsToRead) {
  Fixture f;
  f.start();
  const std::string ping = R"({"tests":[{"type":"ping","target":"10.0.0.1","options":{"count":1}}]})";
  const std::string a = f.post(ping), b = f.post(ping);
  EXPECT_NE(a, b);
  EXPECT_EQ(a.find_first_not_of("0123456789abcdef"), std::string::npos);
  for (const std::string& bad : {std::string("x"), a.substr(0, 31), a + "0", std::string(32, '0')})
    EXPECT_EQ(f.call("GET", bad).status, 404) << bad;
  EXPECT_EQ(f.call("GET", std::nullopt).status, 400);
  EXPECT_EQ(f.call("PUT", a).status, 405);
  f.wait_done(a);
  f.wait_done(b);
}

TEST(ondemand_TestService, TraceProbesAreChargedToTheSharedBudget) {
  Fixture f;
  f.options.limits.budget = std::make_shared<PacketBudget>(1000, 10000);
  f.start();
  const auto doc =
      f.wait_done(f.post(R"({"tests":[{"type":"trace","target":"10.0.0.4","options":{"max-ttl":3}}]})"));
  ASSERT_EQ(doc["tests"][0]["state"], "done");
  EXPECT_EQ(doc["tests"][0]["result"]["probes_sent"], f.prober.probes.load());
  // The prober's probes were booked in the shared budget (those still within its gap are held).
  EXPECT_GT(f.options.limits.budget->booked(), 0u);
}

// A trace's probes are handed to the prober with the send times the budget reserved for them: no two closer
// than the destination's reserve gap nor than the test's own rate, so that the worker can keep them and a
// ping beside the trace keeps its own.
TEST(ondemand_TestService, TraceProbesLeaveAtTheirReservedTimes) {
  Fixture f;
  f.options.limits.budget = std::make_shared<PacketBudget>(1000, 10000);
  f.start();
  const auto doc = f.wait_done(
      f.post(R"({"tests":[{"type":"trace","target":"10.0.0.4","options":{"max-ttl":3,"rate":200}}]})"));
  ASSERT_EQ(doc["tests"][0]["state"], "done");
  std::lock_guard lock(f.prober.mu);
  ASSERT_EQ(f.prober.send_at.size(), f.prober.probes.load());
  ASSERT_GE(f.prober.send_at.size(), 2u);
  for (size_t i = 1; i < f.prober.send_at.size(); ++i)
    EXPECT_GE(f.prober.send_at[i] - f.prober.send_at[i - 1], std::max(reserve_gap(1000), Nanos(5'000'000)))
        << i;
}

// /probe and /api/v1/tests built over one SharedLimits: a test running through one counts against the
// other's max_concurrent_tests, and the budget's send times are shared.
TEST(ondemand_TestService, AdmissionSharedWithProbeService) {
  Fixture f;
  f.config.budgets.max_concurrent_tests = 1;
  f.options.limits = SharedLimits::of(f.config.budgets);
  f.start();
  std::string why;
  ASSERT_TRUE(f.options.limits.admission->try_acquire("runbook", &why));  // as a /probe in flight would
  const auto r = f.call("POST", std::nullopt, R"({"tests":[{"type":"ping","target":"10.0.0.4"}]})");
  EXPECT_EQ(r.status, 429) << r.body;
  EXPECT_EQ(f.service->running(), 0);
  f.options.limits.admission->release("runbook");
  f.wait_done(f.post(R"({"tests":[{"type":"ping","target":"10.0.0.4"}]})"));
  // Released just after the result is stored.
  EXPECT_TRUE(
      f.wait_for([&] { return f.service->running() == 0 && f.options.limits.admission->running() == 0; }));
}

}  // namespace
}  // namespace netprobe::ondemand
