// `netprobe trace TARGET`: the order of `netprobe ping` (src/app/ping.cpp): validate the options, open the
// sockets and the capture and drop every capability (Session::open), resolve the name, then the flows'
// TTL-limited probes (src/trace) and one report.
#include "app/trace.h"

#include <netdb.h>
#include <sys/socket.h>
#include <sysexits.h>

#include <atomic>
#include <charconv>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <map>
#include <mutex>
#include <thread>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "app/cli_output.h"
#include "app/stop_signals.h"
#include "core/sockaddr.h"
#include "sched/target_plan.h"
#include "supervisor/target_resolution.h"
#include "trace/report.h"
#include "trace/trace.h"

namespace netprobe {
namespace {

constexpr Nanos kDnsBudget = std::chrono::seconds(10);
constexpr auto kReverseDnsBudget = std::chrono::seconds(3);
constexpr size_t kMaxReverseNames = 128;
constexpr int kMaxSportRange = 4096;

int usage_error(const std::string& message) { return command_usage_error("trace", message, EX_USAGE); }

void out(const std::string& s) { print_stdout(s); }

// Reverse DNS for the hops, on a detached thread so that a slow resolver costs at most the budget.
std::map<std::string, std::string> reverse_names(const std::vector<IpAddress>& addresses) {
  struct Shared {
    std::mutex mu;
    std::condition_variable cv;
    std::map<std::string, std::string> names;
    bool done = false;
  };
  auto shared = std::make_shared<Shared>();
  std::thread([shared, addresses] {
    for (const IpAddress& a : addresses) {
      sockaddr_storage ss;
      const socklen_t len = to_sockaddr(a, 0, ss);
      char host[NI_MAXHOST];
      const bool ok = ::getnameinfo(reinterpret_cast<sockaddr*>(&ss), len, host, sizeof host, nullptr, 0,
                                    NI_NAMEREQD) == 0;
      // A PTR record is anybody's text: keep host-name characters only, or no name.
      const std::string name(host, strnlen(host, sizeof host));
      const bool clean =
          !name.empty() && name.size() <= 253 &&
          name.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_") ==
              std::string::npos;
      std::lock_guard lock(shared->mu);
      if (ok && clean) shared->names[a.to_string()] = name;
    }
    std::lock_guard lock(shared->mu);
    shared->done = true;
    shared->cv.notify_all();
  }).detach();
  std::unique_lock lock(shared->mu);
  shared->cv.wait_for(lock, kReverseDnsBudget, [&] { return shared->done; });
  return shared->names;
}

}  // namespace

std::optional<std::pair<int, int>> parse_port_range(const std::string& r, int max_ports) {
  const auto num = [](std::string_view s) -> std::optional<int> {
    int v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
    return v;
  };
  if (r.size() > 16) return std::nullopt;
  const auto dash = r.find('-');
  const auto a = dash == std::string::npos ? num(r) : num(std::string_view(r).substr(0, dash));
  const auto z = dash == std::string::npos ? a : num(std::string_view(r).substr(dash + 1));
  if (!a || !z || *a < 1 || *z > 65535 || *a > *z || *z - *a + 1 > max_ports) return std::nullopt;
  return std::pair{*a, *z};
}

int open_trace_session(const std::string& command, const std::string& name, ProbeType type, uint16_t dst_port,
                       bool ipv4, bool ipv6, TraceTarget& target, std::unique_ptr<Session>& session) {
  SessionOptions session_options;
  session_options.types = {type};
  ProbeIoError error;
  session = Session::open(session_options, error);
  if (!session) {
    std::fprintf(stderr, "%s\n", error.message.c_str());
    return error.exit_code;
  }
  for (const auto& w : session->warnings()) spdlog::warn("{}", w);
  // Capabilities are gone: now the network (DNS first), as `netprobe ping` does.
  Config config;
  GroupConfig group;  // resolve_destinations() resolves the targets of some group only
  group.name = "trace";
  config.groups[group.name] = group;
  TargetConfig t;
  t.groups = {group.name};
  t.name = name;
  t.type = type;
  t.destination = name;
  if (ipv4) t.address_family = AddressFamily::kV4;
  if (ipv6) t.address_family = AddressFamily::kV6;
  config.targets[name] = t;
  auto resolver = make_system_resolver();
  SystemClock dns_clock;
  auto resolved = resolve_destinations(*resolver, config, dns_clock, kDnsBudget);
  const auto it = resolved.find(name);
  if (it == resolved.end() || !it->second.ok || it->second.hosts.empty()) {
    std::fprintf(
        stderr, "netprobe %s: %s: unknown host%s\n", command.c_str(), name.c_str(),
        it == resolved.end() || it->second.error.empty() ? "" : (" (" + it->second.error + ")").c_str());
    return EX_NOHOST;
  }
  target.name = name;
  target.type = type;
  target.dst = it->second.hosts.front();
  target.dst_port = dst_port;
  const auto src = kernel_source_for(target.dst);
  if (!src) {
    std::fprintf(stderr, "netprobe %s: no route to %s\n", command.c_str(), target.dst.to_string().c_str());
    return EX_UNAVAILABLE;
  }
  target.src = *src;
  return 0;
}

int run_trace(const TraceCliOptions& o) {
  if (o.format != "text" && o.format != "json" && o.format != "dot")
    return usage_error("--format: \"" + o.format.substr(0, 16) + "\" is not text, json or dot");
  if (o.first_ttl < 1 || o.first_ttl > kMaxTtl)
    return usage_error(fmt::format("--first-ttl: 1 to {}", kMaxTtl));
  if (o.max_ttl < o.first_ttl || o.max_ttl > kMaxTtl)
    return usage_error(fmt::format("--max-ttl: from --first-ttl to {}", kMaxTtl));
  if (!(o.rate_pps >= 1 && o.rate_pps <= 100000)) return usage_error("--rate: 1 to 100000 probes per second");
  if (!(o.wait_s > 0 && o.wait_s <= 60)) return usage_error("--wait: above 0, at most 60 s");
  if (o.confidence != 95 && o.confidence != 99) return usage_error("--confidence: 95 or 99");
  if (o.max_flows < 1 || o.max_flows > kMaxSportRange) return usage_error("--max-flows: 1 to 4096");
  if (o.ipv4 && o.ipv6) return usage_error("-4 and -6 exclude each other");
  if (o.target.empty() || o.target.size() > 253) return usage_error("TARGET: a host name or an address");
  const ProbeType type = o.mode == '1'   ? ProbeType::kIcmpPing
                         : o.mode == '2' ? ProbeType::kUdpUnreachable
                                         : ProbeType::kTcpSyn;
  const bool ports = type != ProbeType::kIcmpPing;
  const int dport = o.dst_port.value_or(type == ProbeType::kUdpUnreachable ? 33434 : 80);
  if (dport < 1 || dport > 65535) return usage_error(fmt::format("-p: {} is not a port", dport));
  std::vector<uint16_t> sports;
  if (o.sport_range) {
    const auto r = parse_port_range(*o.sport_range, kMaxSportRange);
    if (!r)
      return usage_error(
          fmt::format("--sport-range: \"{}\" is not A-B with 1 <= A <= B <= 65535, at most {} ports",
                      o.sport_range->substr(0, 16), kMaxSportRange));
    for (int p = r->first; p <= r->second; ++p) sports.push_back(uint16_t(p));
  } else if (o.mda) {
    for (int p = kTraceDefaultSport; p < kTraceDefaultSport + o.max_flows && p <= 65535; ++p)
      sports.push_back(uint16_t(p));
  } else {
    sports.push_back(uint16_t(kTraceDefaultSport));
  }

  StopSignals stop_signals;  // before any thread exists
  TraceTarget target;
  std::unique_ptr<Session> session;
  if (const int rc = open_trace_session("trace", o.target, type, ports ? uint16_t(dport) : 0, o.ipv4, o.ipv6,
                                        target, session))
    return rc;
  SessionProber prober(*session, target, o.wait_s, o.rate_pps);
  stop_signals.start([&] {
    prober.stop();
    session->stop();
  });
  TraceReport report;
  report.target = target;
  report.options.first_ttl = o.first_ttl;
  report.options.max_ttl = o.max_ttl;
  report.mda = o.mda;
  report.confidence = o.confidence / 100.0;
  if (o.mda) {
    auto r = run_mda(prober, sports, report.options, report.confidence, size_t(o.max_flows));
    report.flows = std::move(r.flows);
    report.mda_complete = r.complete;
    report.mda_stop_reason = r.stop_reason;
  } else {
    report.flows = trace_flows(prober, sports, report.options);
  }
  stop_signals.finish();
  report.probes_sent = prober.sent();
  if (!prober.error().empty())
    report.error = "capture failed: " + prober.error();
  else if (prober.stopped())
    report.error = "interrupted";
  if (!o.numeric) {
    std::vector<IpAddress> addresses;
    for (const auto& n : build_graph(report.flows, o.first_ttl).nodes)
      if (addresses.size() < kMaxReverseNames) addresses.push_back(n.address);
    report.names = reverse_names(addresses);
  }
  if (!report.error.empty() && o.format != "json")
    std::fprintf(stderr, "netprobe trace: %s\n", report.error.c_str());
  out(o.format == "json" ? trace_json(report) : o.format == "dot" ? trace_dot(report) : trace_text(report));
  bool reached = false;
  for (const auto& f : report.flows) reached = reached || f.reached;
  return reached ? 0 : 1;
}

}  // namespace netprobe
