// `netprobe trace TARGET`: the order of `netprobe ping` (src/app/ping.cpp): validate the options, open the
// sockets and the capture and drop every capability (Session::open), resolve the name, then the flows'
// TTL-limited probes (src/trace) and one report.
#include "app/trace.h"

#include <netdb.h>
#include <sys/socket.h>
#include <sysexits.h>

#include <atomic>
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
  OptionError bad;
  const auto setup = check_trace_options(o, &bad);
  if (!setup) return usage_error(bad.message);
  const std::vector<uint16_t>& sports = setup->sports;

  StopSignals stop_signals;  // before any thread exists
  TraceTarget target;
  std::unique_ptr<Session> session;
  if (const int rc = open_trace_session("trace", o.target, setup->type, setup->dst_port, o.ipv4, o.ipv6,
                                        target, session))
    return rc;
  SessionProber prober(*session, target, o.wait_s, o.rate_pps);
  stop_signals.start([&] {
    prober.stop();
    session->stop();
  });
  TraceReport report;
  report.target = target;
  report.options = setup->trace;
  report.mda = setup->mda;
  report.confidence = setup->confidence;
  if (setup->mda) {
    auto r = run_mda(prober, sports, report.options, report.confidence, setup->max_flows);
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
