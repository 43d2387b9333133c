// /api/v1/tests over a real http::Server on 127.0.0.1 (api_routes(), src/ondemand/test_service.h), with the
// scripted executor, resolver and HopProber of test_service_fixture.h: the round trip, Scouter's ?receipt=
// form, another credential, expiry on a fake clock, every refusal the server or the service gives, and
// concurrent callers. Socket reads are bounded (SO_RCVTIMEO); waits are bounded polls.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <thread>

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "http/server.h"
#include "ondemand/test_service.h"
#include "test_service_fixture.h"

namespace netprobe::ondemand {
namespace {

using namespace doubles;  // NOLINT(google-build-using-namespace)

struct Answer {
  int status = 0;
  std::string head, body;
  Json json() const { return Json::parse(body, nullptr, false); }
};

Answer http_exchange(int port, const std::string& request) {
  Answer a;
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return a;
  timeval tv{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  sockaddr_in sin{};
  sin.sin_family = AF_INET;
  sin.sin_port = htons(uint16_t(port));
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&sin), sizeof sin) != 0) {
    ::close(fd);
    return a;
  }
  ::send(fd, request.data(), request.size(), MSG_NOSIGNAL);
  std::string out;
  char buf[4096];
  for (int i = 0; i < 10000; ++i) {
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    out.append(buf, size_t(n));
  }
  ::close(fd);
  if (out.rfind("HTTP/1.", 0) == 0 && out.size() > 12) a.status = std::atoi(out.c_str() + 9);
  const size_t end = out.find("\r\n\r\n");
  a.head = out.substr(0, end);
  if (end != std::string::npos) a.body = out.substr(end + 4);
  return a;
}

struct HttpFixture : Fixture {
  std::unique_ptr<http::Server> server;
  int port = 0;
  void serve() {
    start();
    http::Options o;
    o.address = "127.0.0.1";
    auto started = http::Server::start(std::move(o), api_routes(*service));
    ASSERT_TRUE(started.ok()) << (started.ok() ? "" : started.error().message);
    server = std::move(started.value());
    port = server->port();
  }
  ~HttpFixture() { server.reset(); }  // before the service
  Answer request(const std::string& method, const std::string& path, const std::string& body = "",
                 const std::string& token = "tok", const std::string& extra = "") {
    std::string r = method + " " + path + " HTTP/1.1\r\nHost: t\r\nConnection: close\r\n";
    if (!token.empty()) r += "Authorization: Bearer " + token + "\r\n";
    if (!body.empty() || method == "POST") r += "Content-Length: " + std::to_string(body.size()) + "\r\n";
    return http_exchange(port, r + extra + "\r\n" + body);
  }
  std::string post(const std::string& body, const std::string& token = "tok") {
    const Answer a = request("POST", "/api/v1/tests", body, token);
    EXPECT_EQ(a.status, 202) << a.head << "\n" << a.body;
    return a.json().value("receipt", std::string());
  }
  Json wait_done(const std::string& receipt) {
    Json doc;
    for (int i = 0; i < 2000; ++i) {
      const Answer a = request("GET", "/api/v1/tests/" + receipt);
      doc = a.json();
      if (a.status != 200 || doc.value("state", "") == "done") return doc;
      std::this_thread::sleep_for(milliseconds(5));
    }
    return doc;
  }
};

const std::string kPing = R"({"type":"ping","target":"10.0.0.1","options":{"count":3}})";

TEST(ondemand_TestsHttp, RoundTrip) {
  HttpFixture f;
  f.serve();
  f.executor.hold_jobs();
  const Answer posted = f.request("POST", "/api/v1/tests", "{\"tests\":[" + kPing + "]}");
  ASSERT_EQ(posted.status, 202) << posted.body;
  EXPECT_NE(posted.head.find("Content-Type: application/json"), std::string::npos);
  const std::string receipt = posted.json()["receipt"];
  ASSERT_TRUE(f.wait_for([&] { return f.executor.job_count() == 1; }));
  Answer a = f.request("GET", "/api/v1/tests/" + receipt);
  ASSERT_EQ(a.status, 200);
  EXPECT_EQ(a.json()["tests"][0]["state"], "running");
  f.executor.release();
  const Json done = f.wait_done(receipt);
  ASSERT_EQ(done["tests"][0]["state"], "done") << done.dump();
  EXPECT_EQ(done["tests"][0]["result"]["sent"], 3);
  EXPECT_EQ(done["tests"][0]["result"]["received"], 2);
  // Scouter's form gives the same document.
  a = f.request("GET", "/api/v1/tests?receipt=" + receipt);
  ASSERT_EQ(a.status, 200);
  EXPECT_EQ(a.json(), done);
  EXPECT_EQ(f.request("HEAD", "/api/v1/tests/" + receipt).status, 200);
  // Another credential: as if it did not exist, for reading and deleting.
  EXPECT_EQ(f.request("GET", "/api/v1/tests/" + receipt, "", "tok2").status, 404);
  EXPECT_EQ(f.request("DELETE", "/api/v1/tests?receipt=" + receipt, "", "tok2").status, 404);
  a = f.request("DELETE", "/api/v1/tests/" + receipt);
  EXPECT_EQ(a.status, 200);
  EXPECT_EQ(a.json()["deleted"], true);
  EXPECT_EQ(f.request("GET", "/api/v1/tests/" + receipt).status, 404);
  // One audit line per request the service saw, with the client's address.
  std::lock_guard lock(f.audit_mu);
  ASSERT_GE(f.audit.size(), 7u);
  for (const auto& line : f.audit) EXPECT_NE(line.find("peer=127.0.0.1"), std::string::npos) << line;
}

TEST(ondemand_TestsHttp, TraceAndPathloss) {
  HttpFixture f;
  f.serve();
  const std::string receipt = f.post(
      R"({"tests":[{"type":"trace","target":"web.example","options":{"mda":true,"max-flows":8,"max-ttl":4}},)"
      R"({"type":"pathloss","target":"10.0.0.2","options":{"sport-range":"40001-40002","probes-per-hop":5,)"
      R"("compare-healthy":0,"max-ttl":3}}]})");
  const Json doc = f.wait_done(receipt);
  ASSERT_EQ(doc["tests"][0]["state"], "done") << doc.dump();
  EXPECT_EQ(doc["tests"][0]["address"], "10.0.0.5");
  EXPECT_EQ(doc["tests"][0]["result"]["mda"]["complete"], true) << doc["tests"][0]["result"].dump();
  ASSERT_EQ(doc["tests"][1]["state"], "done") << doc.dump();
  EXPECT_EQ(doc["tests"][1]["result"]["flows"].size(), 2u);
}

TEST(ondemand_TestsHttp, ExpiryOnTheFakeClock) {
  HttpFixture f;
  f.serve();
  const std::string receipt = f.post("[" + kPing + "]");  // the bare array as well
  ASSERT_EQ(f.wait_done(receipt)["state"], "done");
  f.clock.advance(std::chrono::seconds(599));
  EXPECT_EQ(f.request("GET", "/api/v1/tests/" + receipt).status, 200);
  f.clock.advance(std::chrono::seconds(1));
  EXPECT_EQ(f.request("GET", "/api/v1/tests/" + receipt).status, 404);
}

TEST(ondemand_TestsHttp, Refusals) {
  HttpFixture f;
  f.serve();
  struct Row {
    std::string method, path, body, token, extra;
    int status;
    std::string reason;  // the service's, "" when the server refuses
  };
  const std::string one = "{\"tests\":[" + kPing + "]}";
  const std::vector<Row> rows = {
      {"POST", "/api/v1/tests", one, "", "", 401, "auth_missing"},
      {"POST", "/api/v1/tests", one, "nope", "", 401, "auth_wrong"},
      {"POST", "/api/v1/tests", std::string(2049, ' '), "tok", "", 413, ""},  // the server, before reading it
      {"POST", "/api/v1/tests", "", "tok", "Transfer-Encoding: chunked\r\n", 411, ""},
      {"PUT", "/api/v1/tests", "", "tok", "", 405, ""},
      {"POST", "/api/v1/tests", "{\"tests\": [", "tok", "", 400, "bad_request"},
      {"POST", "/api/v1/tests", "{\"tests\":[" + kPing + "," + kPing + "," + kPing + "," + kPing + "]}",
       "tok", "", 400, "too_many_tests"},
      {"POST", "/api/v1/tests", R"({"tests":[{"type":"http","target":"10.0.0.1"}]})", "tok", "", 400,
       "bad_request"},
      {"POST", "/api/v1/tests", R"({"tests":[{"type":"trace","target":"10.0.0.1","options":{"hops":3}}]})",
       "tok", "", 400, "bad_request"},
      {"POST", "/api/v1/tests", R"({"tests":[{"type":"ping","target":"169.254.169.254"}]})", "tok", "", 403,
       "link_local"},
      {"POST", "/api/v1/tests", R"({"tests":[{"type":"ping","target":"2130706433"}]})", "tok", "", 403,
       "numeric_form"},
      {"GET", "/api/v1/tests?receipt=a&receipt=b", "", "tok", "", 400, "bad_request"},
      {"GET", "/api/v1/tests/" + std::string(32, 'a') + "?receipt=b", "", "tok", "", 400, "bad_request"},
      {"GET", "/api/v1/tests?target=x", "", "tok", "", 400, "bad_request"},
      {"GET", "/api/v1/tests", "", "tok", "", 400, "bad_request"},
      {"GET", "/api/v1/tests/" + std::string(32, 'a'), "", "tok", "", 404, "unknown_receipt"},
      {"GET", "/api/v1/tests/" + std::string(300, 'a'), "", "tok", "", 404, "unknown_receipt"},
  };
  for (const Row& row : rows) {
    SCOPED_TRACE(row.method + " " + row.path.substr(0, 80) + " " + row.body.substr(0, 80));
    const auto before = f.service->rejections();
    const Answer a = f.request(row.method, row.path, row.body, row.token, row.extra);
    EXPECT_EQ(a.status, row.status) << a.head << "\n" << a.body;
    if (!row.reason.empty()) {
      EXPECT_EQ(a.json().value("reason", ""), row.reason) << a.body;
      auto after = f.service->rejections();
      EXPECT_EQ(after[row.reason], before.count(row.reason) ? before.at(row.reason) + 1 : 1);
    }
  }
  EXPECT_EQ(f.executor.job_count(), 0u);
  EXPECT_EQ(f.service->receipts(), 0u);
  // Busy: the per-credential limit (2), then 429 with Retry-After.
  f.executor.hold_jobs();
  f.post("{\"tests\":[" + kPing + "," + kPing + "]}");
  const Answer busy = f.request("POST", "/api/v1/tests", one);
  EXPECT_EQ(busy.status, 429);
  EXPECT_EQ(busy.json()["reason"], "concurrent_tests_per_credential");
  EXPECT_NE(busy.head.find("Retry-After: 1"), std::string::npos);
  f.executor.release();
}

TEST(ondemand_TestsHttp, ConcurrentCallers) {
  HttpFixture f;
  f.config.budgets.max_concurrent_tests = 4;
  f.config.budgets.max_concurrent_tests_per_credential = 4;
  f.serve();
  f.executor.hold_jobs();
  std::atomic<int> accepted{0}, busy{0}, other{0};
  std::vector<std::thread> callers;
  for (int i = 0; i < 12; ++i)
    callers.emplace_back([&, i] {
      const Answer a =
          f.request("POST", "/api/v1/tests", "{\"tests\":[" + kPing + "]}", i % 2 ? "tok" : "tok2");
      (a.status == 202 ? accepted : a.status == 429 ? busy : other)++;
    });
  for (auto& t : callers) t.join();
  EXPECT_EQ(accepted.load(), 4);
  EXPECT_EQ(busy.load(), 8);
  EXPECT_EQ(other.load(), 0);
  ASSERT_TRUE(f.wait_for([&] { return f.executor.job_count() == 4; }));
  f.executor.release();
  ASSERT_TRUE(f.wait_for([&] { return f.service->running() == 0; }));
}

}  // namespace
}  // namespace netprobe::ondemand
