// `netprobe ping TARGET`: the order of `netprobe check` (src/app/check.cpp): validate the options, open the
// sockets and the capture and drop every capability (Session::open), resolve the name, then one iteration
// of a one-target plan per probe, each from the next source port of the sweep.
#include "app/ping.h"

#include <sysexits.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <map>

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include "app/stop_signals.h"
#include "engine/iteration.h"
#include "sched/target_plan.h"
#include "session/ping_result.h"
#include "session/session.h"
#include "supervisor/target_resolution.h"

namespace netprobe {
namespace {

constexpr int kMaxCount = 1'000'000;
constexpr double kMinInterval = 0.001, kMaxInterval = 3600, kMaxTimeout = 60;
constexpr int kMaxSportRange = 4096;
constexpr Nanos kDnsBudget = std::chrono::seconds(10);
constexpr Nanos kSleepSlice = std::chrono::milliseconds(100);  // a Ctrl-C is seen within it

int usage_error(const std::string& message) {
  std::fprintf(stderr, "netprobe ping: %s\n", message.c_str());
  return EX_USAGE;
}

void out(const std::string& s) {
  std::fwrite(s.data(), 1, s.size(), stdout);
  std::fflush(stdout);
}

std::optional<int> parse_int(std::string_view s) {
  int v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
  return v;
}

// -i: seconds ("0.2"), or hping's microseconds ("u200000").
std::optional<double> parse_interval(const std::string& s) {
  if (s.empty() || s.size() > 32) return std::nullopt;
  const bool micro = s[0] == 'u';
  try {
    size_t used = 0;
    const double v = std::stod(s.substr(micro ? 1 : 0), &used);
    if (used != s.size() - (micro ? 1 : 0) || !std::isfinite(v)) return std::nullopt;
    return micro ? v * 1e-6 : v;
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

double ms(double s) { return std::round(s * 1e6) / 1e3; }  // to the microsecond

}  // namespace

int run_ping(const PingOptions& o) {
  // ---- Options: all checked before anything is opened.
  if (o.format != "text" && o.format != "json")
    return usage_error("--format: \"" + o.format.substr(0, 16) + "\" is not text or json");
  if (o.count < 1 || o.count > kMaxCount)
    return usage_error(fmt::format("-c: {} is not between 1 and {}", o.count, kMaxCount));
  const auto interval = parse_interval(o.interval);
  if (!interval || *interval < kMinInterval || *interval > kMaxInterval)
    return usage_error(fmt::format("-i: \"{}\" is not between {} and {} s (or uN microseconds)",
                                   o.interval.substr(0, 32), kMinInterval, kMaxInterval));
  if (!(o.timeout_s > 0 && o.timeout_s <= kMaxTimeout))
    return usage_error(fmt::format("-W: {} is not between 0 and {} s", o.timeout_s, kMaxTimeout));
  if (o.max_loss_pct && !(*o.max_loss_pct >= 0 && *o.max_loss_pct <= 100))
    return usage_error("--max-loss: not a percentage between 0 and 100");
  if (o.max_rtt_ms && !(*o.max_rtt_ms > 0 && *o.max_rtt_ms <= 1e6))
    return usage_error("--max-rtt: not a number of milliseconds above 0");
  if (o.ipv4 && o.ipv6) return usage_error("-4 and -6 exclude each other");
  if (o.target.empty() || o.target.size() > 253) return usage_error("TARGET: a host name or an address");
  const ProbeType type = o.mode == '1'   ? ProbeType::kIcmpPing
                         : o.mode == '2' ? ProbeType::kUdpUnreachable
                                         : ProbeType::kTcpSyn;
  const bool ports = type != ProbeType::kIcmpPing;
  const int dport = o.dst_port.value_or(type == ProbeType::kUdpUnreachable ? 33434 : 80);
  if (dport < 1 || dport > 65535) return usage_error(fmt::format("-p: {} is not a port", dport));
  int sport_a = 65000, sport_z = 65000 + kPingSportSweep - 1;
  if (o.sport_range && o.base_sport) return usage_error("--sport-range and -s exclude each other");
  if (o.sport_range) {
    const std::string& r = *o.sport_range;
    const auto dash = r.find('-');
    const auto a = dash == std::string::npos ? parse_int(r) : parse_int(std::string_view(r).substr(0, dash));
    const auto z = dash == std::string::npos ? a : parse_int(std::string_view(r).substr(dash + 1));
    if (!a || !z || *a < 1 || *z > 65535 || *a > *z || *z - *a + 1 > kMaxSportRange)
      return usage_error(
          fmt::format("--sport-range: \"{}\" is not A-B with 1 <= A <= B <= 65535, at most {} ports",
                      r.substr(0, 16), kMaxSportRange));
    sport_a = *a;
    sport_z = *z;
  } else if (o.base_sport) {
    if (*o.base_sport < 1 || *o.base_sport > 65535)
      return usage_error(fmt::format("-s: {} is not a port", *o.base_sport));
    sport_a = *o.base_sport;
    sport_z = std::min(65535, sport_a + kPingSportSweep - 1);
  }
  if (o.keep_sport || !ports) sport_z = sport_a;

  // ---- The one-target configuration, in memory.
  Config config;
  GroupConfig group;
  group.name = "ping";
  group.src_port_a = uint16_t(sport_a);
  group.src_port_z = uint16_t(sport_a);
  config.groups[group.name] = group;
  TargetConfig target;
  target.name = o.target;
  target.type = type;
  target.destination = o.target;
  if (o.ipv4) target.address_family = AddressFamily::kV4;
  if (o.ipv6) target.address_family = AddressFamily::kV6;
  if (ports) target.dst_port = uint16_t(dport);
  target.nb_packets = 1;
  target.timeout_s = o.timeout_s;
  target.groups = {group.name};
  config.targets[target.name] = target;

  StopSignals stop_signals;  // before any thread exists
  SessionOptions session_options;
  session_options.types = {type};
  ProbeIoError error;
  auto session = Session::open(session_options, error);
  if (!session) {
    std::fprintf(stderr, "%s\n", error.message.c_str());
    return error.exit_code;
  }
  for (const auto& w : session->warnings()) spdlog::warn("{}", w);

  // Capabilities are gone: now the network (DNS first). A name's first address, as the prober.
  std::map<std::string, std::vector<IpAddress>> hosts;
  {
    auto resolver = make_system_resolver();
    SystemClock dns_clock;
    auto resolved = resolve_destinations(*resolver, config, dns_clock, kDnsBudget);
    const auto it = resolved.find(target.name);
    if (it == resolved.end() || !it->second.ok || it->second.hosts.empty()) {
      std::fprintf(
          stderr, "netprobe ping: %s: unknown host%s\n", o.target.c_str(),
          it == resolved.end() || it->second.error.empty() ? "" : (" (" + it->second.error + ")").c_str());
      return EX_NOHOST;
    }
    hosts[target.name] = {it->second.hosts.front()};
  }
  const IpAddress dst = hosts[target.name].front();
  const bool json = o.format == "json";
  const std::string sports = !ports               ? std::string()
                             : sport_a == sport_z ? fmt::format("{}", sport_a)
                                                  : fmt::format("{}-{}", sport_a, sport_z);
  if (json) {
    nlohmann::json j{{"event", "start"},           {"target", o.target},
                     {"address", dst.to_string()}, {"type", std::string(to_string(type))},
                     {"count", o.count},           {"interval_s", *interval},
                     {"timeout_s", o.timeout_s}};
    if (ports) j["port"] = dport, j["sport_first"] = sport_a, j["sport_last"] = sport_z;
    out(j.dump() + "\n");
  } else {
    out(fmt::format("NETPROBE PING {} ({}): {}{}{}, {} probe(s)\n", o.target, dst.to_string(),
                    to_string(type), ports ? fmt::format(" port {}", dport) : "",
                    ports ? " from source port(s) " + sports : "", o.count));
  }

  // ---- Probe: one iteration per probe, each on its own plan (the next source port of the sweep).
  IterationSettings settings;
  settings.interval_s = *interval;
  settings.hard_timeout = Nanos(int64_t((o.timeout_s + 10) * 1e9));
  SystemClock clock;
  std::atomic<bool> stopped{false};
  stop_signals.start([&] {
    stopped = true;
    session->stop();
    clock.wake();
  });
  std::vector<ProbeEvent> probed;  // every probe sent, in order
  std::string capture_error, plan_error;
  const auto source_for = [](const IpAddress& d) { return kernel_source_for(d); };
  for (int seq = 0; seq < o.count && !stopped; ++seq) {
    const Nanos start = clock.monotonic();
    const uint16_t sport = uint16_t(sport_a + seq % (sport_z - sport_a + 1));
    config.groups[group.name].src_port_a = config.groups[group.name].src_port_z = sport;
    TargetPlan tp = plan_targets(config, hosts, source_for);
    if (!tp.plan || tp.plan->probes.empty()) {
      plan_error = tp.message.empty() ? "no plan" : tp.message;
      break;
    }
    session->run(*tp.plan, settings, 1, {}, [&](int, std::span<const ProbeEvent> events) {
      for (const ProbeEvent& e : events) {
        if (e.state == ProbeEvent::State::kUnsent) continue;
        probed.push_back(e);
        if (o.quiet) continue;
        if (json) {
          nlohmann::json j{{"event", "probe"}, {"seq", seq}, {"state", std::string(to_string(e.state))}};
          if (ports) j["sport"] = e.src_port;
          j["rtt_ms"] = e.rtt_s >= 0 ? nlohmann::json(ms(e.rtt_s)) : nlohmann::json();
          if (e.icmp_error) j["icmp_error"] = icmp_error_label(dst.af, e.icmp_type, e.icmp_code);
          out(j.dump() + "\n");
          continue;
        }
        std::string line = fmt::format("seq={}", seq);
        if (ports) line += fmt::format(" sport={}", e.src_port);
        switch (e.state) {
          case ProbeEvent::State::kAnswered:
            line += e.rtt_s >= 0 ? fmt::format(" rtt={:.3f} ms", ms(e.rtt_s)) : std::string(" rtt=unknown");
            break;
          case ProbeEvent::State::kIcmpError:
            line += " icmp " + icmp_error_label(dst.af, e.icmp_type, e.icmp_code);
            break;
          case ProbeEvent::State::kLate:
            line += " late";
            break;
          default:
            line += " timeout";
        }
        out(line + "\n");
      }
    });
    capture_error = session->capture_error();
    if (!capture_error.empty()) break;
    const Nanos next = start + Nanos(int64_t(*interval * 1e9));
    while (seq + 1 < o.count && !stopped && clock.monotonic() < next)
      clock.sleep_until(std::min(next, clock.monotonic() + kSleepSlice));
  }
  stop_signals.finish();

  // ---- Summary.
  const PingSummary sum = summarize_ping(probed);
  const int code = sum.exit_code(o.max_loss_pct, o.max_rtt_ms);
  const std::string error_text = !plan_error.empty()      ? "no route: " + plan_error
                                 : !capture_error.empty() ? "capture failed: " + capture_error
                                                          : std::string();
  if (json) {
    nlohmann::json j{{"event", "summary"},
                     {"sent", sum.sent},
                     {"received", sum.received},
                     {"loss_pct", std::round(sum.loss_pct * 100) / 100},
                     {"late", sum.late},
                     {"icmp_errors", sum.icmp_errors},
                     {"interrupted", stopped.load()},
                     {"exit_code", code}};
    j["rtt_ms"] = sum.rtts_s.empty() ? nlohmann::json()
                                     : nlohmann::json{{"min", ms(sum.min_s)},  {"avg", ms(sum.avg_s)},
                                                      {"p50", ms(sum.p50_s)},  {"p90", ms(sum.p90_s)},
                                                      {"p99", ms(sum.p99_s)},  {"max", ms(sum.max_s)},
                                                      {"mdev", ms(sum.mdev_s)}};
    if (ports) {
      j["ports"] = nlohmann::json::array();
      for (const PingPort& r : sum.ports)
        j["ports"].push_back({{"sport", r.sport}, {"sent", r.sent}, {"lost", r.lost}, {"flag", r.flag}});
    }
    if (!error_text.empty()) j["error"] = error_text;
    out(j.dump() + "\n");
  } else {
    if (!error_text.empty()) std::fprintf(stderr, "netprobe ping: %s\n", error_text.c_str());
    std::string s = fmt::format("--- {} netprobe ping statistics ---\n", o.target);
    s += fmt::format("{} sent, {} received, {:.2f}% loss, {} late, {} icmp error(s)\n", sum.sent,
                     sum.received, sum.loss_pct, sum.late, sum.icmp_errors);
    if (!sum.rtts_s.empty()) {
      // ping's line first (parsers read it), the percentiles on their own line.
      s += fmt::format("rtt min/avg/max/mdev = {:.3f}/{:.3f}/{:.3f}/{:.3f} ms\n", ms(sum.min_s),
                       ms(sum.avg_s), ms(sum.max_s), ms(sum.mdev_s));
      s += fmt::format("rtt p50/p90/p99 = {:.3f}/{:.3f}/{:.3f} ms\n", ms(sum.p50_s), ms(sum.p90_s),
                       ms(sum.p99_s));
    }
    if (ports && sum.ports.size() > 1) {
      s += "sport  sent  lost    loss  flag\n";
      for (const PingPort& r : sum.ports)
        s += fmt::format("{:<5}  {:>4}  {:>4}  {:>5.1f}%{}\n", r.sport, r.sent, r.lost,
                         100.0 * double(r.lost) / double(r.sent), r.flag.empty() ? "" : "  " + r.flag);
    }
    out(s);
  }
  return code;
}

}  // namespace netprobe
