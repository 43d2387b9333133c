#pragma once
// /api/v1/tests (docs/on-demand.md#apiv1tests): Scouter's asynchronous test API. POST a set of tests ->
// 202 {"receipt": ...}; GET /api/v1/tests/<receipt> (or ?receipt=) -> every test with its state and, once
// done, the JSON `netprobe ping|trace|pathloss --format json` prints; DELETE cancels and forgets.
//
// Safety, in the order of a POST: credentials -> body size -> bounded JSON (depth, sizes) -> at most
// max_tests_per_request tests, each a known type with the command line's options (src/trace/options.h;
// options that make no sense for a remote caller refused by name) within max_probes_per_test and the
// packet budgets -> target syntax and, for a literal, the address policy (403) -> concurrency (429) ->
// 202. A host name is resolved once on the test's thread and its addresses pinned (ondemand::Policy, as
// /probe); a refused answer fails that test. Receipts: 128 random bits (getrandom), readable and deletable
// only by the credential that created them (anything else is a 404), compared in constant time; results
// expire result_ttl after the receipt's last test ends, and the store is bounded in receipts and bytes.
//
// Threads: handle() is thread-safe and never blocks on the network (it may run on the HTTP server's
// threads). Every test runs on a pool of at most max_concurrent_tests threads owned by the service: ping
// through the ProbeExecutor (run() called from a test thread, or handed to `post`), trace and pathloss
// through a HopProber from the factory (probe() blocks). Cancellation (DELETE, shutdown) is seen between
// batches through HopProber::stopped(); shutdown() (and the destructor) joins every thread.
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "config/on_demand.h"
#include "core/clock.h"
#include "dns/resolver.h"
#include "ondemand/budget.h"
#include "ondemand/credentials.h"
#include "ondemand/probe_service.h"
#include "ondemand/target_policy.h"
#include "trace/prober.h"

namespace netprobe::ondemand {

// A HopProber towards `target` (its dst pinned by the target policy; src: the kernel's source, when known),
// waiting `timeout_s` per probe and sending at most `rate_pps`. The production one is the on-demand worker's.
using HopProberFactory =
    std::function<std::unique_ptr<HopProber>(const TraceTarget& target, double timeout_s, double rate_pps)>;
// A resolver for one test's single resolution, polled on the test's thread.
using ResolverFactory = std::function<std::unique_ptr<Resolver>()>;

struct TestRequest {
  std::string method;                  // GET, POST, DELETE
  std::optional<std::string> receipt;  // the path's tail (/api/v1/tests/<receipt>) or ?receipt=
  std::optional<std::string> authorization;
  std::string body;
  bool body_too_large = false;  // the server stopped reading it at its limit
  std::string peer;             // for the audit line
  std::string query_error;      // a refused query string (400), e.g. a repeated receipt
};

struct TestResponse {
  int status = 200;
  std::string body;    // JSON
  std::string reason;  // refusal reason ("" when served): the rejections counter's label
};

struct TestServiceOptions {
  size_t max_receipts = 1024;          // stored at once, finished or not
  size_t max_store_bytes = 32u << 20;  // results' JSON, all receipts together
  size_t max_result_bytes = 1u << 20;  // one test's result; larger: the test fails
  int max_json_depth = 8;              // of a request body
  double max_test_duration_s = 600;    // a test's probing stops after this
  double resolve_timeout_s = 5;        // a name's one resolution
  // Shared with /probe so that the caps hold across both; either null: the service's own.
  SharedLimits limits = {};
  // Where the executor's run() is called: null -> on the test's thread.
  std::function<void(std::function<void()>)> post;
  // The kernel's source address towards a destination (TraceTarget::src); null -> kernel_source_for().
  std::function<std::optional<IpAddress>(const IpAddress&)> source_for;
  // Told each refusal decided on a test's thread (a name's answer refused by the policy, the packet budget):
  // no HTTP answer carries those, so /metrics (netprobe_api_rejections_total) learns them here.
  std::function<void(const std::string& reason)> on_test_rejection = {};
};

enum class TestState { kQueued, kRunning, kDone, kFailed, kCancelled };
std::string_view to_string(TestState s);

class TestService {
 public:
  TestService(OnDemandConfig config, Policy policy, ResolverFactory resolvers, ProbeExecutor& executor,
              HopProberFactory probers, Clock& clock, std::function<void(const std::string&)> audit,
              TestServiceOptions options = {});
  ~TestService();  // shutdown()
  TestService(const TestService&) = delete;
  TestService& operator=(const TestService&) = delete;

  // One request, answered at once (tests run in the background). Thread-safe.
  TestResponse handle(const TestRequest& request);
  // Cancels every test and joins the test threads; handle() answers 503 afterwards. Idempotent.
  void shutdown();

  const OnDemandConfig& config() const { return config_; }
  std::map<std::string, uint64_t> rejections() const;  // reason -> count
  std::map<int, uint64_t> requests() const;            // HTTP status -> count (those the service answered)
  int running() const;                                 // tests admitted and not finished
  size_t receipts() const;                             // stored
  size_t stored_bytes() const;

  struct Run;
  struct Receipt;

 private:
  TestResponse post(const TestRequest& request, const std::string& credential, std::string* summary);
  TestResponse get(const std::string& receipt, const std::string& credential);
  TestResponse remove(const std::string& receipt, const std::string& credential);
  std::shared_ptr<Receipt> find_locked(const std::string& receipt, const std::string& credential);
  void prune_locked(Nanos now);
  bool evict_finished_locked(const Receipt* keep);
  void count_rejection(const std::string& reason);
  void count_test_rejection(const std::string& reason);  // count_rejection() + on_test_rejection
  void worker();
  void execute(Run& run);
  void execute_ping(Run& run, const std::vector<IpAddress>& pinned);
  void execute_trace(Run& run, const std::vector<IpAddress>& pinned);
  void finish(Run& run, TestState state, std::optional<nlohmann::json> result, std::string error);

  OnDemandConfig config_;
  Policy policy_;
  ResolverFactory resolvers_;
  ProbeExecutor& executor_;
  HopProberFactory probers_;
  Clock& clock_;
  std::function<void(const std::string&)> audit_;
  TestServiceOptions options_;
  CredentialTable credentials_;
  std::shared_ptr<Admission> admission_;
  std::shared_ptr<PacketBudget> budget_;
  std::atomic<int> running_{
      0};  // this service's tests admitted and not finished (the admission may be shared)

  mutable std::mutex mu_;
  std::condition_variable cv_;  // the queue
  bool stopping_ = false;
  std::deque<std::shared_ptr<Run>> queue_;
  std::vector<std::shared_ptr<Receipt>> receipts_;  // in creation order
  size_t store_bytes_ = 0;
  std::map<std::string, uint64_t> rejections_;
  std::map<int, uint64_t> requests_;
  std::vector<std::thread> threads_;
};

// The HTTP side (http::Server routes): "/api/v1/tests", a prefix route for "/api/v1/tests/<receipt>", taking
// POST, GET, HEAD and DELETE, bodies up to max_request_bytes (the server answers 413 above, 411 to a chunked
// body), authenticated by the service with the on-demand credentials (not the /metrics users); `?receipt=`
// is Scouter's form of the path's tail. Answers at once (handle() never waits for the network). `service`
// must outlive the server.
inline constexpr const char* kTestsPath = "/api/v1/tests";
std::map<std::string, http::Route> api_routes(TestService& service);
// The same over whichever service is current when a request comes (a reload may replace it; none: 404
// "not configured"; bodies up to its max_request_bytes), with `count(status, reason)` called for every
// answer of the service (the API metrics).
std::map<std::string, http::Route> api_routes(
    std::function<std::shared_ptr<TestService>()> current,
    std::function<void(int status, const std::string& reason)> count);

}  // namespace netprobe::ondemand
