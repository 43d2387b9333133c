#include "ondemand/test_service.h"

#include <sys/random.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <span>
#include <utility>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "config/config.h"
#include "http/auth.h"
#include "sched/plan.h"
#include "session/ping_json.h"
#include "session/ping_result.h"
#include "trace/options.h"
#include "trace/pathloss.h"
#include "trace/report.h"
#include "trace/trace.h"

namespace netprobe::ondemand {

using Json = nlohmann::json;
using Steady = std::chrono::steady_clock;

struct TestService::Run {
  size_t index = 0;
  std::string type;    // ping, trace, pathloss
  std::string target;  // as the caller gave it
  std::string credential;
  AddressFamily af = AddressFamily::kV4;
  std::vector<IpAddress> pinned;  // a literal's, checked at POST; a name's after its resolution
  // ping
  ProbeJob job;
  double spacing_s = 1;
  std::optional<double> max_loss_pct, max_rtt_ms;
  // trace, pathloss
  TraceSetup trace;
  PathlossSetup pathloss;

  std::atomic<bool> cancel{false};
  std::weak_ptr<Receipt> receipt;
  // Guarded by the service's mutex.
  TestState state = TestState::kQueued;
  std::optional<Json> result;
  std::string error;
  std::string address;
  size_t bytes = 0;
};

struct TestService::Receipt {
  std::string id;
  std::string credential;
  std::optional<Nanos> finished;  // when its last test ended
  std::vector<std::shared_ptr<Run>> runs;
  size_t bytes = 0;
};

std::string_view to_string(TestState s) {
  switch (s) {
    case TestState::kQueued:
      return "queued";
    case TestState::kRunning:
      return "running";
    case TestState::kDone:
      return "done";
    case TestState::kFailed:
      return "failed";
    case TestState::kCancelled:
      return "cancelled";
  }
  return "?";
}

namespace {

constexpr size_t kReceiptHex = 32;                        // 128 bits
constexpr int kPingSportSweep = 16;                       // as `netprobe ping` (src/app/ping.h)
constexpr Nanos kSlice = std::chrono::milliseconds(100);  // cancellation is seen within it
constexpr double kExecutorGraceS = 30;                    // beyond the last probe's timeout

bool terminal(TestState s) {
  return s == TestState::kDone || s == TestState::kFailed || s == TestState::kCancelled;
}

TestResponse error_response(int status, const std::string& reason, const std::string& message) {
  return {status, Json{{"error", message}, {"reason", reason}}.dump() + "\n", reason};
}

// Nesting depth of a JSON text, counted before parsing it (brackets inside strings do not count).
bool depth_within(std::string_view text, int max_depth) {
  int depth = 0;
  bool in_string = false, escaped = false;
  for (char c : text) {
    if (in_string) {
      if (escaped)
        escaped = false;
      else if (c == '\\')
        escaped = true;
      else if (c == '"')
        in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > max_depth) return false;
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return true;
}

std::optional<std::string> random_receipt() {
  unsigned char bytes[kReceiptHex / 2];
  size_t got = 0;
  for (int attempts = 0; got < sizeof bytes && attempts < 8; ++attempts) {
    const ssize_t n = ::getrandom(bytes + got, sizeof bytes - got, 0);
    if (n > 0) got += size_t(n);
  }
  if (got < sizeof bytes) return std::nullopt;
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned char b : bytes) {
    out.push_back(kHex[b >> 4]);
    out.push_back(kHex[b & 15]);
  }
  return out;
}

bool receipt_syntax(const std::string& r) {
  return r.size() == kReceiptHex && r.find_first_not_of("0123456789abcdef") == std::string::npos;
}

// Resolver that never answers: check_target() with it decides everything that needs no DNS.
class NoResolver final : public Resolver {
 public:
  void resolve(const std::string&, AddressFamily, std::function<void(Resolution)>) override {}
  int poll(Nanos) override { return 0; }
  size_t pending() const override { return 0; }
};

// ---- ping's options (the command line's long names; src/app/ping.cpp's bounds).

struct Refused {
  std::string option, message, reason = "bad_request";
};

bool json_int(const Json& v, int& out) {
  if (!v.is_number_integer()) return false;
  const auto i = v.get<int64_t>();
  if (i < -1'000'000'000 || i > 1'000'000'000) return false;
  out = int(i);
  return true;
}

// -i: seconds (a number, or "0.2"), or hping's microseconds ("u200000").
std::optional<double> parse_interval(const Json& v) {
  if (v.is_number()) return v.get<double>();
  if (!v.is_string()) return std::nullopt;
  return parse_ping_interval(v.get<std::string>());
}

// Options that make no sense for a remote caller, by test type.
std::optional<std::string> remote_refusal(const std::string& type, const std::string& key) {
  static const std::map<std::string, std::string> kPing = {
      {"interface", "the prober's interfaces are not the caller's to choose"},
      {"spoof", "the prober's source address is not the caller's to choose"},
      {"format", "the API answers JSON"},
      {"quiet", "the API answers the summary"},
      {"per-port", "the API answers the per-port table"},
      {"flood", "on-demand probing is paced by the packet budget"},
  };
  if (key == "format") return std::string("the API answers JSON");
  if (type == "ping")
    if (auto it = kPing.find(key); it != kPing.end()) return it->second;
  return std::nullopt;
}

std::optional<Refused> plan_ping(const Json& options, const OnDemandBudgets& b, double max_duration_s,
                                 TestService::Run& run) {
  const auto bad = [](std::string option, std::string message, std::string reason = "bad_request") {
    return std::optional<Refused>(Refused{std::move(option), std::move(message), std::move(reason)});
  };
  char mode = 'S';
  std::optional<int> dport, base_sport, dscp, data;
  std::optional<std::string> sport_range, tos;
  bool keep = false, fast = false, faster = false, ipv4 = false, ipv6 = false, dontfrag = true, no_df = false,
       dontfrag_given = false;
  std::optional<int> ttl;
  int count = 5;
  std::optional<double> interval, rate, max_loss, max_rtt;
  double timeout = 1;
  for (const auto& [key, v] : options.items()) {
    bool ok = true;
    if (key == "protocol") {
      const std::string p = v.is_string() ? v.get<std::string>() : "";
      ok = p == "tcp" || p == "icmp" || p == "udp";
      mode = p == "icmp" ? '1' : p == "udp" ? '2' : 'S';
      if (!ok) return bad(key, "protocol: tcp, icmp or udp");
    } else if (key == "count") {
      ok = json_int(v, count);
    } else if (key == "destport" || key == "baseport" || key == "dscp" || key == "data") {
      int i = 0;
      ok = json_int(v, i);
      (key == "destport" ? dport : key == "baseport" ? base_sport : key == "dscp" ? dscp : data) = i;
    } else if (key == "sport-range" || key == "tos") {
      ok = v.is_string();
      if (ok) (key == "tos" ? tos : sport_range) = v.get<std::string>().substr(0, 32);
    } else if (key == "keep" || key == "fast" || key == "faster" || key == "ipv4" || key == "ipv6" ||
               key == "dontfrag" || key == "no-df" || key == "numeric") {
      ok = v.is_boolean();
      dontfrag_given = dontfrag_given || key == "dontfrag";
      bool dummy = false;
      (key == "keep"       ? keep
       : key == "fast"     ? fast
       : key == "faster"   ? faster
       : key == "ipv4"     ? ipv4
       : key == "ipv6"     ? ipv6
       : key == "dontfrag" ? dontfrag
       : key == "no-df"    ? no_df
                           : dummy) = ok && v.get<bool>();
    } else if (key == "ttl") {
      int i = 0;
      ok = json_int(v, i);
      ttl = i;
    } else if (key == "interval") {
      interval = parse_interval(v);
      ok = interval.has_value();
    } else if (key == "rate" || key == "timeout" || key == "max-loss" || key == "max-rtt") {
      ok = v.is_number();
      const double d = ok ? v.get<double>() : 0;
      if (key == "rate") rate = d;
      if (key == "timeout") timeout = d;
      if (key == "max-loss") max_loss = d;
      if (key == "max-rtt") max_rtt = d;
    } else {
      return bad(key.substr(0, 64), key.substr(0, 64) + ": not an option of ping");
    }
    if (!ok) return bad(key, key + ": a value of the wrong type");
  }
  if (count < 1) return bad("count", "-c: not between 1 and max_probes_per_test");
  if (count > b.max_probes_per_test)
    return bad("count",
               fmt::format("-c: {} probes, above max_probes_per_test ({})", count, b.max_probes_per_test),
               "too_many_probes");
  if (int(fast) + int(faster) + int(interval.has_value()) > 1)
    return bad("interval", "-i, --fast and --faster exclude each other");
  double spacing = 1;
  if (interval) {
    if (!(*interval >= 0.001 && *interval <= 3600))
      return bad("interval", "-i: not between 0.001 and 3600 s");
    spacing = *interval;
  }
  if (fast) spacing = 0.1;
  if (faster) spacing = 0.01;
  if (rate) {
    if (!(*rate >= 1 && *rate <= b.max_packets_per_second_per_destination))
      return bad("rate",
                 fmt::format("--rate: between 1 and this prober's on-demand budget, {} per second per "
                             "destination",
                             b.max_packets_per_second_per_destination));
    spacing = std::max(spacing, 1 / *rate);
  }
  if (!(timeout > 0 && timeout <= 60)) return bad("timeout", "-W: not between 0 and 60 s");
  if (max_loss && !(*max_loss >= 0 && *max_loss <= 100))
    return bad("max-loss", "--max-loss: not a percentage between 0 and 100");
  if (max_rtt && !(*max_rtt > 0 && *max_rtt <= 1e6))
    return bad("max-rtt", "--max-rtt: not a number of milliseconds above 0");
  if (ipv4 && ipv6) return bad("ipv6", "-4 and -6 exclude each other");
  if (tos && dscp) return bad("tos", "-o and --dscp exclude each other");
  int ds = 0;
  if (tos) {
    const auto t = parse_tos(*tos);
    if (!t) return bad("tos", "-o: not a TOS byte in hex (00 to ff)");
    if (*t & 3)
      return bad("tos", "-o: the two ECN bits of the TOS byte cannot be set (only the DSCP: --dscp)");
    ds = *t >> 2;
  }
  if (dscp) {
    if (*dscp < 0 || *dscp > 63) return bad("dscp", "--dscp: not between 0 and 63");
    ds = *dscp;
  }
  if (data && (*data < 0 || *data > 65000)) return bad("data", "-d: not between 0 and 65000 bytes");
  if (ttl && (*ttl < 1 || *ttl > 255))
    return bad("ttl", fmt::format("-t: {} is not between 1 and 255", *ttl));
  if (no_df && dontfrag_given && dontfrag) return bad("no-df", "-y and --no-df exclude each other");
  if (no_df) dontfrag = false;
  const ProbeType type = mode == '1'   ? ProbeType::kIcmpPing
                         : mode == '2' ? ProbeType::kUdpUnreachable
                                       : ProbeType::kTcpSyn;
  const bool ports = type != ProbeType::kIcmpPing;
  const int dp = dport.value_or(type == ProbeType::kUdpUnreachable ? 33434 : 80);
  if (dp < 1 || dp > 65535) return bad("destport", fmt::format("-p: {} is not a port", dp));
  int a = 65000, z = 65000 + kPingSportSweep - 1;
  if (sport_range && base_sport) return bad("sport-range", "--sport-range and -s exclude each other");
  if (sport_range) {
    const auto r = parse_port_range(*sport_range, 4096);
    if (!r) return bad("sport-range", "--sport-range: not A-B with 1 <= A <= B <= 65535, at most 4096 ports");
    a = r->first;
    z = r->second;
  } else if (base_sport) {
    if (*base_sport < 1 || *base_sport > 65535) return bad("baseport", "-s: not a port");
    a = *base_sport;
    z = std::min(65535, a + kPingSportSweep - 1);
  }
  if (keep || !ports) z = a;
  const double duration = double(count - 1) * spacing + timeout;
  if (duration > max_duration_s)
    return bad("interval", fmt::format("the test would last {:.0f} s, above this prober's {:.0f} s", duration,
                                       max_duration_s));
  ProbeJob& job = run.job;
  job.type = type;
  job.dst_port = ports ? uint16_t(dp) : 0;
  job.nb_packets = count;
  job.src_port_a = uint16_t(a);
  job.src_port_z = uint16_t(z);
  job.dscp = ds;
  job.ttl = ttl.value_or(64);
  job.dont_fragment = dontfrag;
  if (data) job.ip_payload_size = l4_header_size(type) + *data;
  job.timeout_s = timeout;
  run.af = ipv6 ? AddressFamily::kV6 : AddressFamily::kV4;
  run.spacing_s = spacing;
  run.max_loss_pct = max_loss;
  run.max_rtt_ms = max_rtt;
  return std::nullopt;
}

// Over the factory's prober: stops on cancellation, at the probe budget and at the test's deadline, and
// takes each batch's send times from the packet budget, no closer than the test's own rate, and has the
// prober send each probe at its time (probe_at), so trace and pathloss count against the caps like /probe
// and a ping beside them keeps its reserved times.
class GuardedProber final : public HopProber {
 public:
  GuardedProber(HopProber& inner, const std::atomic<bool>& cancel, PacketBudget& budget, Clock& clock,
                IpAddress dst, double pps, double rate, uint64_t max_probes, Steady::time_point deadline)
      : inner_(inner),
        cancel_(cancel),
        budget_(budget),
        clock_(clock),
        dst_(dst),
        pps_(std::max(std::min(pps, rate > 0 ? rate : pps), 1e-3)),
        spacing_(rate > 0 ? Nanos(int64_t(1e9 / rate)) : Nanos(0)),
        max_probes_(max_probes),
        deadline_(deadline) {}

  std::vector<HopReply> probe(std::span<const ProbeSpec> probes) override {
    std::vector<HopReply> silence(probes.size());
    if (stopped()) return silence;
    if (sent_ + probes.size() > max_probes_) {
      why_ = "probe budget (max_probes_per_test) exhausted";
      return silence;
    }
    // Room for the whole batch at the budget's pace, and a minute of other callers' probes.
    const Nanos now = clock_.monotonic();
    const Nanos horizon = std::chrono::seconds(60) + Nanos(int64_t(double(probes.size()) / pps_ * 1e9));
    auto times = budget_.reserve(dst_, int(probes.size()), now, now + horizon, spacing_);
    if (!times) {
      why_ = "packet budget exhausted for this destination";
      return silence;
    }
    // Real sleeps, never the shared clock's sleep_until() (it would take a wake() meant for its owner's
    // loop); the wait is measured once, so a fake clock cannot make it endless.
    // Woken a little before the first time: the batch must reach the worker before it is due.
    if (!times->empty() && times->front() - kHandOver > now) {
      const auto until = Steady::now() + (times->front() - kHandOver - now);
      while (!cancel_ && Steady::now() < until)
        std::this_thread::sleep_for(std::min<Steady::duration>(until - Steady::now(), kSlice));
    }
    if (cancel_) return silence;
    sent_ += probes.size();
    return inner_.probe_at(probes, *times);
  }
  bool stopped() const override {
    return cancel_ || !why_.empty() || inner_.stopped() || Steady::now() >= deadline_;
  }
  uint64_t sent() const { return sent_; }
  std::string error() const {
    if (cancel_) return "cancelled";
    if (!why_.empty()) return why_;
    if (Steady::now() >= deadline_) return "the test's time limit was reached";
    if (inner_.stopped()) return "interrupted";
    return "";
  }

 private:
  HopProber& inner_;
  const std::atomic<bool>& cancel_;
  PacketBudget& budget_;
  Clock& clock_;
  IpAddress dst_;
  double pps_;     // the slowest of the destination's and the global on-demand cap and the test's rate
  Nanos spacing_;  // 1/the test's rate
  static constexpr Nanos kHandOver{20'000'000};
  uint64_t max_probes_;
  Steady::time_point deadline_;
  uint64_t sent_ = 0;
  std::string why_;
};

}  // namespace

TestService::TestService(OnDemandConfig config, Policy policy, ResolverFactory resolvers,
                         ProbeExecutor& executor, HopProberFactory probers, Clock& clock,
                         std::function<void(const std::string&)> audit, TestServiceOptions options)
    : config_(std::move(config)),
      policy_(std::move(policy)),
      resolvers_(std::move(resolvers)),
      executor_(executor),
      probers_(std::move(probers)),
      clock_(clock),
      audit_(std::move(audit)),
      options_(std::move(options)),
      credentials_(config_.credentials),
      admission_(options_.limits.admission),
      budget_(options_.limits.budget) {
  policy_.allowed_prefixes = config_.allowed_prefixes;
  policy_.allowed_targets = config_.allowed_targets;
  const OnDemandBudgets& b = config_.budgets;
  const SharedLimits own = SharedLimits::of(b);
  if (!admission_) admission_ = own.admission;
  if (!budget_) budget_ = own.budget;
  if (!options_.source_for) options_.source_for = [](const IpAddress& d) { return kernel_source_for(d); };
  const int threads = std::clamp(b.max_concurrent_tests, 1, 256);
  for (int i = 0; i < threads; ++i) threads_.emplace_back([this] { worker(); });
}

TestService::~TestService() { shutdown(); }

void TestService::shutdown() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    for (const auto& r : receipts_)
      for (const auto& run : r->runs) run->cancel = true;
    for (const auto& run : queue_) run->cancel = true;
  }
  cv_.notify_all();
  for (auto& t : threads_)
    if (t.joinable()) t.join();
}

void TestService::count_rejection(const std::string& reason) {
  std::lock_guard lock(mu_);
  ++rejections_[reason];
}

void TestService::count_test_rejection(const std::string& reason) {
  count_rejection(reason);
  if (options_.on_test_rejection) options_.on_test_rejection(reason);
}

std::map<std::string, uint64_t> TestService::rejections() const {
  std::lock_guard lock(mu_);
  return rejections_;
}
std::map<int, uint64_t> TestService::requests() const {
  std::lock_guard lock(mu_);
  return requests_;
}
int TestService::running() const { return running_.load(); }
size_t TestService::receipts() const {
  std::lock_guard lock(mu_);
  return receipts_.size();
}
size_t TestService::stored_bytes() const {
  std::lock_guard lock(mu_);
  return store_bytes_;
}

TestResponse TestService::handle(const TestRequest& request) {
  std::string credential, summary;
  TestResponse response;
  const AuthResult auth = credentials_.check(
      request.authorization ? std::optional<std::string_view>(*request.authorization) : std::nullopt);
  bool stopping = false;
  {
    std::lock_guard lock(mu_);
    stopping = stopping_;
  }
  if (stopping) {
    response = error_response(503, "shutting_down", "shutting down");
  } else if (auth.verdict != http::AuthVerdict::kAllow) {
    const bool busy = auth.verdict == http::AuthVerdict::kBusy;
    response = error_response(busy ? 429 : 401, "auth_" + auth.reason, busy ? "busy, retry" : "unauthorized");
  } else {
    credential = auth.credential;
    if (!request.query_error.empty()) {
      response = error_response(400, "bad_request", request.query_error);
    } else if (request.method == "POST" && !request.receipt) {
      response = post(request, credential, &summary);
    } else if ((request.method == "GET" || request.method == "HEAD") && request.receipt) {
      response = get(*request.receipt, credential);
    } else if (request.method == "DELETE" && request.receipt) {
      response = remove(*request.receipt, credential);
    } else if (request.method == "GET" || request.method == "HEAD" || request.method == "DELETE") {
      response =
          error_response(400, "bad_request", "a receipt is required: /api/v1/tests/<receipt> or ?receipt=");
    } else {
      response = error_response(405, "bad_method", "POST, GET or DELETE");
    }
  }
  if (!response.reason.empty()) count_rejection(response.reason);
  {
    std::lock_guard lock(mu_);
    ++requests_[response.status];
  }
  if (audit_) {
    std::string receipt = request.receipt.value_or("-").substr(0, 8);
    if (request.method == "POST" && response.status == 202) {
      receipt = Json::parse(response.body, nullptr, false).value("receipt", std::string("-")).substr(0, 8);
    }
    audit_(
        fmt::format("on-demand /api/v1/tests peer={} credential={} method={} receipt={} tests={:?} status={} "
                    "reason={}",
                    request.peer.empty() ? "-" : request.peer, credential.empty() ? "-" : credential,
                    request.method.substr(0, 8), receipt, summary.empty() ? "-" : summary, response.status,
                    response.reason.empty() ? "-" : response.reason));
  }
  return response;
}

TestResponse TestService::post(const TestRequest& request, const std::string& credential,
                               std::string* summary) {
  const OnDemandBudgets& b = config_.budgets;
  if (request.body_too_large || request.body.size() > size_t(std::max(0, b.max_request_bytes)))
    return error_response(413, "body_too_large",
                          fmt::format("the body is above {} bytes", b.max_request_bytes));
  if (!depth_within(request.body, options_.max_json_depth))
    return error_response(400, "bad_request",
                          fmt::format("the JSON is nested deeper than {} levels", options_.max_json_depth));
  const Json doc = Json::parse(request.body, nullptr, false);
  if (doc.is_discarded()) return error_response(400, "bad_request", "the body is not JSON");
  const Json* tests = doc.is_array() ? &doc : nullptr;
  if (doc.is_object()) {
    for (const auto& [key, v] : doc.items())
      if (key != "tests")
        return error_response(400, "bad_request", "unknown key \"" + key.substr(0, 64) + "\"");
    if (doc.contains("tests") && doc["tests"].is_array()) tests = &doc["tests"];
  }
  if (tests == nullptr || tests->empty())
    return error_response(400, "bad_request",
                          "expected {\"tests\": [{\"type\": ..., \"target\": ...}, ...]}");
  if (tests->size() > size_t(b.max_tests_per_request))
    return error_response(
        400, "too_many_tests",
        fmt::format("{} tests, above max_tests_per_request ({})", tests->size(), b.max_tests_per_request));
  const double max_rate = std::min(b.max_packets_per_second_per_destination, b.max_packets_per_second);
  std::vector<std::shared_ptr<Run>> runs;
  for (size_t i = 0; i < tests->size(); ++i) {
    const Json& t = (*tests)[i];
    const std::string where = fmt::format("tests[{}]", i);
    if (!t.is_object()) return error_response(400, "bad_request", where + ": an object is expected");
    for (const auto& [key, v] : t.items())
      if (key != "type" && key != "target" && key != "options")
        return error_response(400, "bad_request", where + ": unknown key \"" + key.substr(0, 64) + "\"");
    if (!t.contains("type") || !t["type"].is_string() || !t.contains("target") || !t["target"].is_string())
      return error_response(400, "bad_request", where + ": \"type\" and \"target\" (strings) are required");
    auto run = std::make_shared<Run>();
    run->index = i;
    run->type = t["type"].get<std::string>().substr(0, 16);
    run->target = t["target"].get<std::string>().substr(0, 254);
    run->credential = credential;
    const Json options = t.contains("options") ? t["options"] : Json::object();
    if (!options.is_object())
      return error_response(400, "bad_request", where + ": \"options\" must be an object");
    if (run->type != "ping" && run->type != "trace" && run->type != "pathloss")
      return error_response(400, "bad_request",
                            where + ": unknown type \"" + run->type + "\" (ping, trace, pathloss)");
    for (const auto& [key, v] : options.items())
      if (auto why = remote_refusal(run->type, key))
        return error_response(400, "bad_request",
                              fmt::format("{}: option \"{}\" refused: {}", where, key.substr(0, 64), *why));
    const auto refuse_option = [&](const std::string& option, const std::string& message,
                                   const std::string& reason = "bad_request") {
      TestResponse r =
          error_response(400, reason, fmt::format("{}: option \"{}\": {}", where, option, message));
      return r;
    };
    if (run->type == "ping") {
      if (auto bad = plan_ping(options, b, options_.max_test_duration_s, *run))
        return refuse_option(bad->option, bad->message, bad->reason);
    } else if (run->type == "trace") {
      TraceCliOptions o;
      o.target = run->target;
      o.format = "json";
      o.numeric = true;  // no reverse DNS on demand
      o.rate_pps = std::min(o.rate_pps, max_rate);
      OptionError e;
      if (!apply_trace_json(options, o, &e)) return refuse_option(e.option, e.message);
      if (options.contains("rate") && o.rate_pps > max_rate)
        return refuse_option("rate",
                             fmt::format("above this prober's on-demand budget, {} per second", max_rate));
      auto setup = check_trace_options(o, &e);
      if (!setup) return refuse_option(e.option, e.message);
      if (const uint64_t n = max_probes_of(*setup); n > uint64_t(b.max_probes_per_test))
        return refuse_option(setup->mda ? "max-flows" : "max-ttl",
                             fmt::format("the test could send {} probes, above max_probes_per_test ({})", n,
                                         b.max_probes_per_test),
                             "too_many_probes");
      run->af = o.ipv6 ? AddressFamily::kV6 : AddressFamily::kV4;
      run->trace = std::move(*setup);
    } else {
      PathlossCliOptions o;
      o.target = run->target;
      o.format = "json";
      o.rate_pps = std::min(o.rate_pps, max_rate);
      OptionError e;
      if (!apply_pathloss_json(options, o, &e)) return refuse_option(e.option, e.message);
      if (options.contains("rate") && o.rate_pps > max_rate)
        return refuse_option("rate",
                             fmt::format("above this prober's on-demand budget, {} per second", max_rate));
      auto setup = check_pathloss_options(o, &e);
      if (!setup) return refuse_option(e.option, e.message);
      if (const uint64_t n = max_probes_of(*setup); n > uint64_t(b.max_probes_per_test))
        return refuse_option("probes-per-hop",
                             fmt::format("the test could send {} probes, above max_probes_per_test ({})", n,
                                         b.max_probes_per_test),
                             "too_many_probes");
      run->af = o.ipv6 ? AddressFamily::kV6 : AddressFamily::kV4;
      run->pathloss = std::move(*setup);
    }
    // The target: syntax, allowed targets and a literal's address now; a name is resolved on its thread.
    NoResolver none;
    std::optional<Decision> decided;
    check_target(policy_, run->target, run->af, none, [&](ParsedTarget parsed, Decision d) {
      if (parsed.literal) run->af = parsed.literal->af;
      decided = std::move(d);
    });
    if (decided && !decided->allowed())
      return error_response(403, std::string(to_string(decided->refusal)), where + ": " + decided->detail);
    if (decided) run->pinned = decided->pinned;
    if (!summary->empty()) *summary += ",";
    *summary += run->type + ":" + run->target;
    runs.push_back(std::move(run));
  }
  // Concurrency: every test of the request admitted, or none.
  size_t admitted = 0;
  std::string why;
  for (; admitted < runs.size(); ++admitted)
    if (!admission_->try_acquire(credential, &why)) break;
  if (admitted < runs.size()) {
    for (size_t i = 0; i < admitted; ++i) admission_->release(credential);
    return error_response(429, why, "too many tests running (" + why + "), retry later");
  }
  const auto id = random_receipt();
  std::lock_guard lock(mu_);
  prune_locked(clock_.monotonic());
  while (receipts_.size() >= options_.max_receipts && evict_finished_locked(nullptr)) {
  }
  if (!id || receipts_.size() >= options_.max_receipts || stopping_) {
    for (size_t i = 0; i < admitted; ++i) admission_->release(credential);
    return !id ? error_response(500, "internal", "no random receipt")
               : error_response(429, "result_store_full", "the result store is full, retry later");
  }
  auto receipt = std::make_shared<Receipt>();
  receipt->id = *id;
  receipt->credential = credential;
  for (auto& run : runs) {
    run->receipt = receipt;
    receipt->runs.push_back(run);
    queue_.push_back(run);
  }
  receipts_.push_back(receipt);
  running_ += int(runs.size());
  cv_.notify_all();
  return {202, Json{{"receipt", *id}, {"tests", runs.size()}}.dump() + "\n", ""};
}

std::shared_ptr<TestService::Receipt> TestService::find_locked(const std::string& receipt,
                                                               const std::string& credential) {
  if (!receipt_syntax(receipt)) return nullptr;
  std::shared_ptr<Receipt> found;
  for (const auto& r : receipts_)  // every one compared in constant time, no early exit
    if (constant_time_equal(r->id, receipt) && !found) found = r;
  if (found && found->credential != credential) return nullptr;  // another credential's: a 404 as well
  return found;
}

void TestService::prune_locked(Nanos now) {
  const Nanos ttl = std::chrono::seconds(std::max(0, config_.budgets.result_ttl_s));
  for (auto it = receipts_.begin(); it != receipts_.end();) {
    if ((*it)->finished && now - *(*it)->finished >= ttl) {
      store_bytes_ -= (*it)->bytes;
      it = receipts_.erase(it);
    } else {
      ++it;
    }
  }
}

bool TestService::evict_finished_locked(const Receipt* keep) {
  for (auto it = receipts_.begin(); it != receipts_.end(); ++it) {  // the oldest first
    if (it->get() != keep && (*it)->finished) {
      store_bytes_ -= (*it)->bytes;
      receipts_.erase(it);
      return true;
    }
  }
  return false;
}

TestResponse TestService::get(const std::string& id, const std::string& credential) {
  std::lock_guard lock(mu_);
  const Nanos now = clock_.monotonic();
  prune_locked(now);
  const auto receipt = find_locked(id, credential);
  if (!receipt) return error_response(404, "unknown_receipt", "no such receipt");
  Json doc{{"receipt", receipt->id}, {"state", receipt->finished ? "done" : "running"}};
  if (receipt->finished) {
    const auto left = std::chrono::seconds(config_.budgets.result_ttl_s) - (now - *receipt->finished);
    doc["expires_in_s"] =
        std::max<int64_t>(0, std::chrono::duration_cast<std::chrono::seconds>(left).count());
  }
  Json tests = Json::array();
  for (const auto& run : receipt->runs) {
    Json t{{"id", run->index},
           {"type", run->type},
           {"target", run->target},
           {"state", std::string(to_string(run->state))}};
    if (!run->address.empty()) t["address"] = run->address;
    if (run->result) t["result"] = *run->result;
    if (!run->error.empty()) t["error"] = run->error;
    tests.push_back(std::move(t));
  }
  doc["tests"] = std::move(tests);
  return {200, doc.dump() + "\n", ""};
}

TestResponse TestService::remove(const std::string& id, const std::string& credential) {
  std::lock_guard lock(mu_);
  prune_locked(clock_.monotonic());
  const auto receipt = find_locked(id, credential);
  if (!receipt) return error_response(404, "unknown_receipt", "no such receipt");
  for (const auto& run : receipt->runs) run->cancel = true;  // their threads stop at the next batch
  store_bytes_ -= receipt->bytes;
  receipts_.erase(std::find(receipts_.begin(), receipts_.end(), receipt));
  return {200, Json{{"receipt", receipt->id}, {"deleted", true}}.dump() + "\n", ""};
}

void TestService::worker() {
  for (;;) {
    std::shared_ptr<Run> run;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;
      run = std::move(queue_.front());
      queue_.pop_front();
    }
    try {
      execute(*run);
    } catch (const std::exception& e) {
      finish(*run, TestState::kFailed, std::nullopt, std::string("internal error: ") + e.what());
    }
    admission_->release(run->credential);
    --running_;
  }
}

void TestService::finish(Run& run, TestState state, std::optional<Json> result, std::string error) {
  std::lock_guard lock(mu_);
  if (terminal(run.state)) return;
  if (run.cancel && state != TestState::kFailed) state = TestState::kCancelled;
  const auto receipt = run.receipt.lock();
  // Still stored: the receipt may have been deleted or evicted meanwhile.
  const bool stored = receipt && std::find(receipts_.begin(), receipts_.end(), receipt) != receipts_.end();
  if (result) {
    const size_t bytes = result->dump().size();
    if (bytes > options_.max_result_bytes) {
      state = TestState::kFailed;
      error = fmt::format("the result is {} bytes, above {}", bytes, options_.max_result_bytes);
    } else if (stored) {
      store_bytes_ += bytes;
      receipt->bytes += bytes;
      while (store_bytes_ > options_.max_store_bytes && evict_finished_locked(receipt.get())) {
      }
      if (store_bytes_ > options_.max_store_bytes) {
        store_bytes_ -= bytes;
        receipt->bytes -= bytes;
        state = TestState::kFailed;
        error = "the result store is full";
      } else {
        run.result = std::move(result);
        run.bytes = bytes;
      }
    }
  }
  run.state = state;
  run.error = std::move(error);
  if (stored && std::all_of(receipt->runs.begin(), receipt->runs.end(),
                            [](const auto& r) { return terminal(r->state); }))
    receipt->finished = clock_.monotonic();
}

void TestService::execute(Run& run) {
  {
    std::lock_guard lock(mu_);
    if (!run.cancel) run.state = TestState::kRunning;
  }
  if (run.cancel) {
    finish(run, TestState::kCancelled, std::nullopt, "cancelled");
    return;
  }
  std::vector<IpAddress> pinned = run.pinned;
  if (pinned.empty()) {  // a name: one resolution, its addresses checked and pinned
    auto resolver = resolvers_ ? resolvers_() : nullptr;
    if (!resolver) {
      finish(run, TestState::kFailed, std::nullopt, "no resolver");
      return;
    }
    std::optional<Decision> decided;
    check_target(policy_, run.target, run.af, *resolver,
                 [&decided](ParsedTarget, Decision d) { decided = std::move(d); });
    const auto deadline = Steady::now() + std::chrono::duration<double>(options_.resolve_timeout_s);
    while (!decided && !run.cancel && Steady::now() < deadline) resolver->poll(kSlice);
    if (run.cancel) {
      finish(run, TestState::kCancelled, std::nullopt, "cancelled");
      return;
    }
    if (!decided) {
      finish(run, TestState::kFailed, std::nullopt, "the name did not resolve in time");
      return;
    }
    if (!decided->allowed()) {
      count_test_rejection(std::string(to_string(decided->refusal)));
      finish(run, TestState::kFailed, std::nullopt,
             fmt::format("target refused ({}): {}", to_string(decided->refusal), decided->detail));
      return;
    }
    pinned = decided->pinned;
  }
  {
    std::lock_guard lock(mu_);
    run.address = pinned.front().to_string();
  }
  if (run.type == "ping")
    execute_ping(run, pinned);
  else
    execute_trace(run, pinned);
}

void TestService::execute_ping(Run& run, const std::vector<IpAddress>& pinned) {
  ProbeJob job = run.job;
  job.target = run.target;
  job.credential = run.credential;
  job.af = pinned.front().af;
  job.addresses = pinned;  // the probe goes to what was checked, nothing else
  const Nanos now = clock_.monotonic();
  const Nanos spacing(std::llround(run.spacing_s * 1e9));
  const Nanos span = Nanos(int64_t(
      double(job.nb_packets) *
      std::max(run.spacing_s, 1 / std::max(config_.budgets.max_packets_per_second_per_destination, 1e-3)) *
      1e9));
  auto times =
      budget_->reserve(pinned.front(), job.nb_packets, now, now + span + std::chrono::seconds(60), spacing);
  if (!times) {
    count_test_rejection("packet_budget");
    finish(run, TestState::kFailed, std::nullopt,
           "packet budget exhausted for this destination, retry later");
    return;
  }
  struct Slot {
    std::mutex mu;
    std::condition_variable cv;
    std::optional<std::vector<ProbeEvent>> events;
  };
  auto slot = std::make_shared<Slot>();
  const Nanos last = times->back();
  auto call = [&executor = executor_, job, times = std::move(*times), slot]() mutable {
    executor.run(job, std::move(times), [slot](std::vector<ProbeEvent> events) {
      std::lock_guard lock(slot->mu);
      slot->events = std::move(events);
      slot->cv.notify_all();
    });
  };
  if (options_.post)
    options_.post(std::move(call));
  else
    call();
  const double wait_s = double((last - now).count()) / 1e9 + job.timeout_s + kExecutorGraceS;
  const auto deadline =
      Steady::now() + std::chrono::duration_cast<Steady::duration>(std::chrono::duration<double>(wait_s));
  std::vector<ProbeEvent> events;
  {
    std::unique_lock lock(slot->mu);
    while (!slot->events && !run.cancel && Steady::now() < deadline) slot->cv.wait_for(lock, kSlice);
    if (slot->events) events = std::move(*slot->events);
  }
  if (run.cancel) {
    finish(run, TestState::kCancelled, std::nullopt, "cancelled");
    return;
  }
  if (events.empty() && Steady::now() >= deadline) {
    finish(run, TestState::kFailed, std::nullopt, "the probes did not come back in time");
    return;
  }
  std::vector<ProbeEvent> sent;
  // As `netprobe ping` counts: unsent probes are not counted, nor those a stop left waiting (unknown).
  for (const ProbeEvent& e : events)
    if (e.state != ProbeEvent::State::kUnsent && !(e.interrupted && e.state == ProbeEvent::State::kLost))
      sent.push_back(e);
  const PingSummary sum = summarize_ping(sent);
  const int code = sum.exit_code(run.max_loss_pct, run.max_rtt_ms);
  finish(run, TestState::kDone, ping_summary_json(sum, job.type != ProbeType::kIcmpPing, false, code, ""),
         "");
}

void TestService::execute_trace(Run& run, const std::vector<IpAddress>& pinned) {
  const bool trace = run.type == "trace";
  TraceTarget target;
  if (auto parsed = parse_target(run.target)) target.name = parsed->host;
  target.type = trace ? run.trace.type : run.pathloss.type;
  target.dst = pinned.front();
  target.dst_port = trace ? run.trace.dst_port : run.pathloss.dst_port;
  if (auto src = options_.source_for(target.dst)) target.src = *src;
  const double wait_s = trace ? run.trace.wait_s : run.pathloss.wait_s;
  const double rate = trace ? run.trace.rate_pps : run.pathloss.rate_pps;
  auto inner = probers_ ? probers_(target, wait_s, rate) : nullptr;
  if (!inner) {
    finish(run, TestState::kFailed, std::nullopt, "no prober available");
    return;
  }
  const auto deadline = Steady::now() + std::chrono::duration_cast<Steady::duration>(
                                            std::chrono::duration<double>(options_.max_test_duration_s));
  const double pps = std::min(config_.budgets.max_packets_per_second_per_destination,
                              config_.budgets.max_packets_per_second);
  GuardedProber prober(*inner, run.cancel, *budget_, clock_, target.dst, pps, rate,
                       uint64_t(std::max(0, config_.budgets.max_probes_per_test)), deadline);
  std::string text;
  if (trace) {
    const TraceSetup& s = run.trace;
    TraceReport report;
    report.target = target;
    report.options = s.trace;
    report.mda = s.mda;
    report.confidence = s.confidence;
    if (s.mda) {
      auto r = run_mda(prober, s.sports, report.options, report.confidence, s.max_flows);
      report.flows = std::move(r.flows);
      report.mda_complete = r.complete;
      report.mda_stop_reason = r.stop_reason;
    } else {
      report.flows = trace_flows(prober, s.sports, report.options);
    }
    report.probes_sent = prober.sent();
    report.error = prober.error();
    text = trace_json(report);
  } else {
    const PathlossSetup& s = run.pathloss;
    PathlossReport report;
    report.target = target;
    report.probes_per_hop = s.options.probes_per_hop;
    report.flows = measure_pathloss(prober, s.sports, s.reference, s.options);
    report.probes_sent = prober.sent();
    report.error = prober.error();
    for (const auto& f : report.flows) report.verdicts.push_back(judge_flow(f));
    compare_healthy(report.flows, report.verdicts);
    text = pathloss_json(report);
  }
  inner.reset();
  Json result = Json::parse(text, nullptr, false);
  if (result.is_discarded()) {
    finish(run, TestState::kFailed, std::nullopt, "internal error: the report is not JSON");
    return;
  }
  finish(run, run.cancel ? TestState::kCancelled : TestState::kDone, std::move(result), "");
}

std::map<std::string, http::Route> api_routes(TestService& service) {
  return api_routes([&service] { return std::shared_ptr<TestService>(&service, [](TestService*) {}); }, {});
}

std::map<std::string, http::Route> api_routes(
    std::function<std::shared_ptr<TestService>()> current,
    std::function<void(int status, const std::string& reason)> count) {
  http::Route route([current, count = std::move(count)](const http::Request& r) {
    const std::shared_ptr<TestService> service = current();
    TestResponse answer;
    if (!service) {
      answer = {404, R"({"error":"on-demand probing is not configured"})", "not_configured"};
    } else {
      TestRequest t;
      t.method = std::string(r.method);
      t.peer = r.peer();
      if (auto a = r.header("Authorization")) t.authorization = std::string(*a);
      t.body = std::string(r.body);
      const std::string_view base = kTestsPath;
      if (r.path.size() > base.size() + 1) t.receipt = std::string(r.path.substr(base.size() + 1, 64));
      for (const auto& [name, value] : r.query_args()) {
        if (name != "receipt") {
          t.query_error = "unknown query parameter \"" + name.substr(0, 32) + "\" (only receipt)";
        } else if (t.receipt) {
          t.query_error = "one receipt per request";
        } else {
          t.receipt = value.substr(0, 64);
        }
      }
      answer = service->handle(t);
    }
    if (count) count(answer.status, answer.reason);
    http::Response out;
    out.status = answer.status;
    out.body = answer.body;
    out.headers.emplace_back("Content-Type", "application/json");
    out.headers.emplace_back("Cache-Control", "no-store");
    if (answer.status == 401)
      out.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"netprobe on-demand\"");
    if (answer.status == 429) out.headers.emplace_back("Retry-After", "1");
    if (answer.status == 405) out.headers.emplace_back("Allow", "GET, HEAD, POST, DELETE");
    return out;
  });
  route.methods = {"GET", "HEAD", "POST", "DELETE"};
  route.server_auth = false;
  // Read before the body, so that a body above the current limit is refused unread (413).
  route.max_body_now = [current] {
    const std::shared_ptr<TestService> service = current();
    return service ? size_t(std::max(0, service->config().budgets.max_request_bytes)) : size_t(0);
  };
  route.prefix = true;
  return {{kTestsPath, std::move(route)}};
}

}  // namespace netprobe::ondemand
