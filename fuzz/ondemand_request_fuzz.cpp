// The on-demand surfaces take requests from the network (docs/on-demand.md): /probe's query parameters and
// scrape-timeout header, /api/v1/tests's method, receipt, Authorization and JSON body, and the target text
// both take. Whatever comes, an answer (never a crash, a hang or an unbounded allocation), in the API's
// case a known status with a JSON body, and a target allowed only inside the allowed prefixes.
//
// The first byte picks the surface; the rest is its input:
//   0  /probe: "name=value&..." then optionally "\n" and the X-Prometheus-Scrape-Timeout-Seconds value
//   1  POST /api/v1/tests with this body (a valid credential)
//   2  a request: "METHOD\nreceipt\nauthorization\nbody" (any part may be missing)
//   3  a target text, through the parser and the address policy
#include <cstddef>
#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "core/clock.h"
#include "ondemand/probe_request.h"
#include "ondemand/target_policy.h"
#include "ondemand/test_service.h"

namespace {

using namespace netprobe;
using namespace netprobe::ondemand;

// Names never resolve: the fuzzer explores the parsers, not the network.
class NoResolver final : public Resolver {
 public:
  void resolve(const std::string&, AddressFamily, std::function<void(Resolution)> done) override {
    pending_.push_back(std::move(done));
  }
  int poll(Nanos) override {
    auto pending = std::move(pending_);
    pending_.clear();
    for (auto& done : pending) done(Resolution{false, {}, "NXDOMAIN"});
    return int(pending.size());
  }
  size_t pending() const override { return pending_.size(); }

 private:
  std::vector<std::function<void(Resolution)>> pending_;
};

// Every probe answered at once.
class InstantExecutor final : public ProbeExecutor {
 public:
  void run(const ProbeJob&, std::vector<Nanos> send_times,
           std::function<void(std::vector<ProbeEvent>)> done) override {
    std::vector<ProbeEvent> events(send_times.size());
    for (size_t i = 0; i < events.size(); ++i) {
      events[i].slot = uint32_t(i);
      events[i].state = ProbeEvent::State::kAnswered;
      events[i].rtt_s = 0.001;
    }
    done(std::move(events));
  }
};

OnDemandConfig make_config() {
  OnDemandConfig c;
  c.allowed_prefixes = {*IpNetwork::parse("10.0.0.0/8"), *IpNetwork::parse("2001:db8::/32")};
  c.credentials["fuzz"] = {"fuzz", sha256_hex("tok"), ""};
  OnDemandModule m;
  m.name = "tcp";
  m.dst_port = 443;
  m.overrides["nb_packets"] = {1, 10};
  m.overrides["timeout"] = {0.1, 5};
  m.overrides["dst_port"] = {1, 65535};
  c.modules["tcp"] = m;
  c.budgets.max_concurrent_tests = 2;
  c.budgets.max_request_bytes = 16384;
  return c;
}

struct Surfaces {
  FakeClock clock;
  InstantExecutor executor;
  OnDemandConfig config = make_config();
  TestService tests{config,
                    Policy{},
                    [] { return std::make_unique<NoResolver>(); },
                    executor,
                    [](const TraceTarget&, double, double) { return std::unique_ptr<HopProber>(); },
                    clock,
                    nullptr,
                    TestServiceOptions{}};
};

Surfaces& surfaces() {
  static auto* s = new Surfaces();  // never destroyed: its threads outlive the fuzzer's last input
  return *s;
}

void check_answer(const TestResponse& r) {
  static const std::set<int> kStatuses = {200, 202, 204, 400, 401, 403, 404, 405, 411, 413, 429, 500, 503};
  if (!kStatuses.count(r.status)) __builtin_trap();
  if (r.status != 204 && !r.body.empty() && !nlohmann::json::accept(r.body)) __builtin_trap();
}

// The oracle's own prefix test (not the policy's).
bool inside(const IpNetwork& n, const IpAddress& a) {
  if (n.base.af != a.af) return false;
  for (int bit = 0; bit < n.prefix; ++bit) {
    const uint8_t mask = uint8_t(0x80 >> (bit % 8));
    if ((n.base.bytes[size_t(bit / 8)] & mask) != (a.bytes[size_t(bit / 8)] & mask)) return false;
  }
  return true;
}

std::string_view next_line(std::string_view& rest) {
  const size_t nl = rest.find('\n');
  const std::string_view line = rest.substr(0, nl);
  rest = nl == std::string_view::npos ? std::string_view() : rest.substr(nl + 1);
  return line;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint8_t mode = data[0] % 4;
  std::string_view rest(reinterpret_cast<const char*>(data + 1), size - 1);
  Surfaces& s = surfaces();
  switch (mode) {
    case 0: {
      const std::string_view query = next_line(rest);
      QueryParams params;
      for (size_t at = 0; at <= query.size() && params.size() < 32;) {
        size_t amp = query.find('&', at);
        if (amp == std::string_view::npos) amp = query.size();
        const std::string_view pair = query.substr(at, amp - at);
        const size_t eq = pair.find('=');
        params.emplace(std::string(pair.substr(0, eq)),
                       eq == std::string_view::npos ? std::string() : std::string(pair.substr(eq + 1)));
        at = amp + 1;
      }
      const auto job = build_probe_job(s.config, params,
                                       rest.empty() ? std::nullopt : std::optional<std::string_view>(rest));
      if (job.ok() &&
          (job->nb_packets < 1 || job->nb_packets > 10 || !(job->timeout_s > 0) || job->timeout_s > 5))
        __builtin_trap();  // outside the module's bounds
      break;
    }
    case 1: {
      TestRequest r;
      r.method = "POST";
      r.authorization = "Bearer tok";
      r.body = std::string(rest.substr(0, 16384));
      check_answer(s.tests.handle(r));
      break;
    }
    case 2: {
      TestRequest r;
      r.method = std::string(next_line(rest).substr(0, 16));
      const std::string_view receipt = next_line(rest);
      if (!receipt.empty()) r.receipt = std::string(receipt.substr(0, 64));
      r.authorization = std::string(next_line(rest).substr(0, 1024));
      r.body = std::string(rest.substr(0, 16384));
      check_answer(s.tests.handle(r));
      break;
    }
    default: {
      const auto parsed = parse_target(rest);
      if (!parsed || !parsed->literal) break;
      Policy policy;
      policy.allowed_prefixes = s.config.allowed_prefixes;
      const Decision d = check_addresses(policy, *parsed, {*parsed->literal});
      if (d.allowed()) {
        for (const IpAddress& a : d.pinned) {
          bool allowed = false;
          for (const IpNetwork& n : policy.allowed_prefixes) allowed = allowed || inside(n, a);
          if (!allowed || denied_category(a) != Refusal::kNone) __builtin_trap();
        }
      }
      break;
    }
  }
  return 0;
}
