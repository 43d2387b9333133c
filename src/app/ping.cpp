// `netprobe ping TARGET`: the order of `netprobe check` (src/app/check.cpp): validate the options, open the
// sockets and the capture and drop every capability (Session::open), resolve the name, then the probes in
// chunks: one engine iteration sends a chunk's probes spaced by -i (the pacer's rate cap) and waits for
// them; its lines are printed when it ends. A chunk holds one probe when -W is at most the spacing (the
// probe is resolved before the next is due), else enough probes to span 4 x -W, so that the wait for a lost
// probe (up to -W at the end of a chunk) costs at most a fifth of the rate and never holds back the probes
// of its own chunk.
#include "app/ping.h"

#include <sysexits.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <map>

#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include "app/cli_output.h"
#include "app/stop_signals.h"
#include "core/sockaddr.h"
#include "engine/iteration.h"
#include "probes/probe.h"
#include "probes/reply_info.h"
#include "sched/target_plan.h"
#include "session/ping_json.h"
#include "session/ping_result.h"
#include "session/session.h"
#include "supervisor/target_resolution.h"

namespace netprobe {
namespace {

constexpr int kMaxCount = 1'000'000;
constexpr double kMinInterval = 0.001, kMaxInterval = 3600, kMaxTimeout = 60;
constexpr int kMaxSportRange = 4096;
constexpr double kMaxRate = 1e6;
constexpr int kMaxDataBytes = 65000;
constexpr int kMaxChunk = 1000;           // probes per iteration at most (events: ~150 bytes each)
constexpr double kChunkSpanTimeouts = 4;  // a chunk spans 4 x -W when -W exceeds the spacing
constexpr Nanos kDnsBudget = std::chrono::seconds(10);
constexpr Nanos kSleepSlice = std::chrono::milliseconds(100);  // a Ctrl-C is seen within it

int usage_error(const std::string& message) { return command_usage_error("ping", message, EX_USAGE); }

void out(const std::string& s) { print_stdout(s); }

std::optional<int> parse_int(std::string_view s) {
  int v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
  return v;
}

double ms(double s) { return std::round(s * 1e6) / 1e3; }  // to the microsecond

// This host's addresses with their interface (getifaddrs: no privilege, no packet).
std::vector<std::pair<std::string, IpAddress>> interface_addresses() {
  std::vector<std::pair<std::string, IpAddress>> out;
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) return out;
  for (ifaddrs* i = list; i; i = i->ifa_next)
    if (auto a = from_sockaddr(i->ifa_addr); a && i->ifa_name) out.emplace_back(i->ifa_name, *a);
  freeifaddrs(list);
  return out;
}

bool link_local(const IpAddress& a) {
  return a.af == AddressFamily::kV6 ? (a.bytes[0] == 0xfe && (a.bytes[1] & 0xc0) == 0x80)
                                    : (a.bytes[0] == 169 && a.bytes[1] == 254);
}

// A probe's JSON event: its state, the reply's fields (in time or late), the ICMP error's.
nlohmann::json ping_probe_json(int seq, const ProbeEvent& e, const PingLineContext& c) {
  nlohmann::json j{{"event", "probe"}, {"seq", seq}, {"state", std::string(to_string(e.state))}};
  if (c.type != ProbeType::kIcmpPing) j["sport"] = e.src_port;
  j["rtt_ms"] = e.state == ProbeEvent::State::kAnswered && e.rtt_s >= 0 ? nlohmann::json(ms(e.rtt_s))
                                                                        : nlohmann::json();
  if (e.has_reply) {
    const ReplyInfo& r = e.reply;
    nlohmann::json reply{{"from", r.from.to_string()}, {"ttl", r.ttl}, {"len", r.length}};
    if (c.af == AddressFamily::kV4) reply["ip_id"] = r.ip_id, reply["df"] = r.dont_fragment;
    if (r.protocol == 6) {
      const auto letters = tcp_flags_letters(r.tcp_flags);
      reply["flags"] = std::string(letters.data());
      reply["win"] = r.tcp_window;
    }
    if (r.protocol == 1 || r.protocol == 58)
      reply["icmp_type"] = r.icmp_type, reply["icmp_code"] = r.icmp_code;
    reply["rtt_ms"] = e.reply_rtt_s >= 0 ? nlohmann::json(ms(e.reply_rtt_s)) : nlohmann::json();
    j["reply"] = reply;
  }
  if (e.duplicates) j["duplicates"] = e.duplicates;
  if (e.send_error) j["send_error"] = std::string(send_error_name(e.send_error));
  if (e.icmp_error) {
    j["icmp_error"] = icmp_error_label(c.af, e.icmp_type, e.icmp_code);
    j["icmp_name"] = icmp_error_name(c.af, e.icmp_type, e.icmp_code);
    if (e.has_error) {
      j["icmp_from"] = e.error.from.to_string();
      j["icmp_rtt_ms"] = e.error_rtt_s >= 0 ? nlohmann::json(ms(e.error_rtt_s)) : nlohmann::json();
    }
  }
  return j;
}

}  // namespace

int run_ping(const PingOptions& o) {
  // ---- Options: all checked before anything is opened.
  if (o.format != "text" && o.format != "json" && o.format != "hping")
    return usage_error("--format: \"" + o.format.substr(0, 16) + "\" is not text, hping or json");
  if (o.count < 1 || o.count > kMaxCount)
    return usage_error(fmt::format("-c: {} is not between 1 and {}", o.count, kMaxCount));
  if (int(o.fast) + int(o.faster) + int(o.flood) + int(o.interval.has_value()) > 1)
    return usage_error("-i, --fast, --faster and --flood exclude each other");
  double interval = 1;  // seconds between probes; 0: as fast as --rate allows
  if (o.interval) {
    const auto i = parse_ping_interval(*o.interval);
    if (!i || *i < kMinInterval || *i > kMaxInterval)
      return usage_error(fmt::format("-i: \"{}\" is not between {} and {} s (or uN microseconds)",
                                     o.interval->substr(0, 32), kMinInterval, kMaxInterval));
    interval = *i;
  }
  if (o.fast) interval = 0.1;
  if (o.faster) interval = 0.01;
  if (o.flood) interval = 0;
  if (o.rate && !(*o.rate >= 1 && *o.rate <= kMaxRate))
    return usage_error(fmt::format("--rate: not between 1 and {} probes per second", kMaxRate));
  // The pacer's cap: the interval's rate, lowered by --rate (0: none, --flood without --rate).
  double pps = interval > 0 ? 1 / interval : 0;
  if (o.rate) pps = pps > 0 ? std::min(pps, *o.rate) : *o.rate;
  const double spacing = pps > 0 ? 1 / pps : 0;
  if (!(o.timeout_s > 0 && o.timeout_s <= kMaxTimeout))
    return usage_error(fmt::format("-W: {} is not between 0 and {} s", o.timeout_s, kMaxTimeout));
  if (o.max_loss_pct && !(*o.max_loss_pct >= 0 && *o.max_loss_pct <= 100))
    return usage_error("--max-loss: not a percentage between 0 and 100");
  if (o.max_rtt_ms && !(*o.max_rtt_ms > 0 && *o.max_rtt_ms <= 1e6))
    return usage_error("--max-rtt: not a number of milliseconds above 0");
  if (o.ipv4 && o.ipv6) return usage_error("-4 and -6 exclude each other");
  if (o.ttl && (*o.ttl < 1 || *o.ttl > 255))
    return usage_error(fmt::format("-t: {} is not between 1 and 255", *o.ttl));
  if (o.tos && o.dscp) return usage_error("-o and --dscp exclude each other");
  int dscp = 0;
  if (o.tos) {
    const auto tos = parse_tos(*o.tos);
    if (!tos) return usage_error("-o: \"" + o.tos->substr(0, 8) + "\" is not a TOS byte in hex (00 to ff)");
    if (*tos & 3)
      return usage_error("-o: the two ECN bits of the TOS byte cannot be set (only the DSCP: --dscp)");
    dscp = *tos >> 2;
  }
  if (o.dscp) {
    if (*o.dscp < 0 || *o.dscp > 63)
      return usage_error(fmt::format("--dscp: {} is not between 0 and 63", *o.dscp));
    dscp = *o.dscp;
  }
  if (o.data_bytes && (*o.data_bytes < 0 || *o.data_bytes > kMaxDataBytes))
    return usage_error(fmt::format("-d: {} is not between 0 and {} bytes", *o.data_bytes, kMaxDataBytes));
  if (o.df && o.no_df) return usage_error("-y and --no-df exclude each other");
  std::optional<IpAddress> src_addr;
  const auto local = interface_addresses();
  if (o.src_addr) {
    src_addr = IpAddress::parse(*o.src_addr);
    if (!src_addr) return usage_error("-a: \"" + o.src_addr->substr(0, 64) + "\" is not an IP address");
    if (std::none_of(local.begin(), local.end(), [&](const auto& l) { return l.second == *src_addr; }))
      return usage_error("-a: " + src_addr->to_string() +
                         " is not an address of this host (netprobe ping does not spoof its source)");
  }
  if (o.iface) {
    if (o.iface->empty() || o.iface->size() >= IFNAMSIZ || if_nametoindex(o.iface->c_str()) == 0)
      return usage_error("-I: no interface \"" + o.iface->substr(0, IFNAMSIZ) + "\"");
    if (src_addr && std::none_of(local.begin(), local.end(),
                                 [&](const auto& l) { return l.first == *o.iface && l.second == *src_addr; }))
      return usage_error("-a: " + src_addr->to_string() + " is not an address of " + *o.iface);
  }
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

  // ---- The one-target configuration, in memory: DSCP, payload size and DF through the config's fields.
  Config config;
  GroupConfig group;
  group.name = "ping";
  group.src_port_a = group.src_port_z = uint16_t(sport_a);  // each probe's port is set in the plan below
  group.dscp = dscp;
  config.groups[group.name] = group;
  TargetConfig target;
  target.name = o.target;
  target.type = type;
  target.destination = o.target;
  if (o.ipv4) target.address_family = AddressFamily::kV4;
  if (o.ipv6) target.address_family = AddressFamily::kV6;
  if (ports) target.dst_port = uint16_t(dport);
  target.dont_fragment = !o.no_df;
  if (o.data_bytes) target.ip_payload_size = l4_header_size(type) + *o.data_bytes;
  target.nb_packets = 1;
  target.timeout_s = o.timeout_s;
  target.groups = {group.name};
  config.targets[target.name] = target;

  StopSignals stop_signals;  // before any thread exists
  SessionOptions session_options;
  session_options.types = {type};
  if (o.iface) session_options.bind_device = *o.iface;  // checked above: an interface of this host
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

  // The source: -a, else -I's address of the target's family, else the kernel's choice. With -I the raw
  // sockets are bound to the interface (SO_BINDTODEVICE): the packets leave by it, whatever the routes say.
  if (src_addr && src_addr->af != dst.af)
    return usage_error("-a: " + src_addr->to_string() + " is not of the family of " + dst.to_string());
  if (o.iface && !src_addr) {
    for (const auto& [name, a] : local)
      if (name == *o.iface && a.af == dst.af && (!src_addr || (link_local(*src_addr) && !link_local(a))))
        src_addr = a;
    if (!src_addr) return usage_error(fmt::format("-I: {} has no {} address", *o.iface, to_string(dst.af)));
  }
  if (src_addr) {
    if (dst.af == AddressFamily::kV4)
      config.groups[group.name].src_ipv4 = *src_addr;
    else
      config.groups[group.name].src_ipv6 = *src_addr;
  }
  const auto source_for = [](const IpAddress& d) { return kernel_source_for(d); };
  std::string iface_name = o.iface.value_or("");
  if (iface_name.empty()) {
    const std::optional<IpAddress> src = src_addr ? src_addr : kernel_source_for(dst);
    for (const auto& [name, a] : local)
      if (src && a == *src) {
        iface_name = name;
        break;
      }
    if (iface_name.empty()) iface_name = "?";
  }

  const bool json = o.format == "json", hping = o.format == "hping";
  const PingLineContext line_context{type, dst.af, uint16_t(ports ? dport : 0)};
  const int data_bytes = o.data_bytes.value_or(0);
  const std::string sports = !ports               ? std::string()
                             : sport_a == sport_z ? fmt::format("{}", sport_a)
                                                  : fmt::format("{}-{}", sport_a, sport_z);
  if (json) {
    nlohmann::json j{{"event", "start"},
                     {"target", o.target},
                     {"address", dst.to_string()},
                     {"type", std::string(to_string(type))},
                     {"count", o.count},
                     {"interval_s", spacing},
                     {"timeout_s", o.timeout_s},
                     {"ttl", o.ttl.value_or(64)},
                     {"dscp", dscp},
                     {"data_bytes", data_bytes},
                     {"dont_fragment", !o.no_df}};
    if (ports) j["port"] = dport, j["sport_first"] = sport_a, j["sport_last"] = sport_z;
    if (src_addr) j["source"] = src_addr->to_string();
    out(j.dump() + "\n");
  } else if (hping) {
    out(ping_header_hping(o.target, iface_name, dst, line_context, data_bytes));
  } else {
    out(fmt::format("NETPROBE PING {} ({}): {}{}{}, {} probe(s)\n", o.target, dst.to_string(),
                    to_string(type), ports ? fmt::format(" port {}", dport) : "",
                    ports ? " from source port(s) " + sports : "", o.count));
  }

  // ---- Probe, in chunks (see the top of this file).
  IterationSettings settings;
  settings.interval_s = 0;  // no spreading over a window: the rate cap alone spaces the probes
  settings.max_packets_per_second = pps;
  settings.icmp_error_resolves = true;
  SystemClock clock;
  std::atomic<bool> stopped{false};
  stop_signals.start([&] {
    stopped = true;
    session->stop();
    clock.wake();
  });
  std::vector<ProbeEvent> probed;  // every probe sent, in order
  std::string capture_error, plan_error;
  std::unique_ptr<Plan> plan;
  int plan_probes = 0;
  const Nanos t0 = clock.monotonic();
  for (int first = 0; first < o.count && !stopped;) {
    const int n = ping_chunk_size(spacing, o.timeout_s, o.count - first);
    if (!plan || plan_probes != n) {
      config.targets[target.name].nb_packets = n;
      TargetPlan tp = plan_targets(config, hosts, source_for);
      if (!tp.plan || tp.plan->probes.size() != size_t(n)) {
        plan_error = tp.message.empty() ? "no plan" : tp.message;
        break;
      }
      plan = std::move(tp.plan);
      plan_probes = n;
      if (o.ttl)  // no configuration field: the templates rebuilt with it
        for (PacketTemplate& t : plan->templates) {
          ProbeParams params = t.params;
          params.ttl = uint8_t(*o.ttl);
          t = probe_for(t.type).make_template(params);
        }
    }
    // Each probe's source port: the next of the sweep (the runner matches replies on these ports).
    for (int k = 0; k < n; ++k)
      plan->probes[size_t(k)].src_port =
          ports ? uint16_t(sport_a + (first + k) % (sport_z - sport_a + 1)) : 0;
    settings.hard_timeout = Nanos(int64_t((double(n) * spacing + o.timeout_s + 10) * 1e9));
    const int base = first;
    session->run(*plan, settings, 1, {}, [&](int, std::span<const ProbeEvent> events) {
      for (const ProbeEvent& e : events) {
        const int seq = base + int(e.slot);
        if (e.state == ProbeEvent::State::kUnsent) {
          // Not counted (the kernel refused it, or the run was cut short); hping3 prints nothing either.
          // Probes a Ctrl-C kept from leaving are not worth a line each.
          if (e.send_error == 1 + IterationRunner::kUnsentCutShort) continue;
          if (!o.quiet && json) out(ping_probe_json(seq, e, line_context).dump() + "\n");
          if (!o.quiet && !json && !hping) out(ping_line_text(seq, e, line_context) + "\n");
          continue;
        }
        // Ctrl-C while it was still waiting: unknown, so neither received nor lost (ping would count it
        // lost and report loss that never happened).
        if (e.interrupted && e.state == ProbeEvent::State::kLost) continue;
        probed.push_back(e);
        if (o.quiet) continue;
        if (hping) {
          out(ping_lines_hping(seq, e, line_context));
        } else if (json) {
          out(ping_probe_json(seq, e, line_context).dump() + "\n");
        } else {
          out(ping_line_text(seq, e, line_context) + "\n");
        }
      }
    });
    capture_error = session->capture_error();
    if (!capture_error.empty()) break;
    first += n;
    // The next chunk's first probe is due one spacing after this chunk's last (never earlier).
    const Nanos next = t0 + Nanos(int64_t(double(first) * spacing * 1e9));
    while (first < o.count && !stopped && clock.monotonic() < next)
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
    const nlohmann::json j = ping_summary_json(sum, ports, stopped.load(), code, error_text);
    out(j.dump() + "\n");
  } else if (hping) {
    if (!error_text.empty()) std::fprintf(stderr, "netprobe ping: %s\n", error_text.c_str());
    std::fflush(stdout);
    const std::string s = ping_statistics_hping(o.target, sum);
    std::fwrite(s.data(), 1, s.size(), stderr);  // hping3 prints its statistics on stderr
    std::fflush(stderr);
  } else {
    if (!error_text.empty()) std::fprintf(stderr, "netprobe ping: %s\n", error_text.c_str());
    std::string s = fmt::format("--- {} netprobe ping statistics ---\n", o.target);
    s += fmt::format("{} sent, {} received, {:.2f}% loss, {} late, {} duplicate(s), {} icmp error(s)\n",
                     sum.sent, sum.received, sum.loss_pct, sum.late, sum.duplicates, sum.icmp_errors);
    if (!sum.rtts_s.empty()) {
      // ping's line first (parsers read it), the percentiles on their own line.
      s += fmt::format("rtt min/avg/max/mdev = {:.3f}/{:.3f}/{:.3f}/{:.3f} ms\n", ms(sum.min_s),
                       ms(sum.avg_s), ms(sum.max_s), ms(sum.mdev_s));
      s += fmt::format("rtt p50/p90/p99 = {:.3f}/{:.3f}/{:.3f} ms\n", ms(sum.p50_s), ms(sum.p90_s),
                       ms(sum.p99_s));
    }
    if (ports && o.per_port) {
      s += "sport  sent  lost    loss  flag\n";
      for (const PingPort& r : sum.ports)
        s += fmt::format("{:<5}  {:>4}  {:>4}  {:>5.1f}%{}\n", r.sport, r.sent, r.lost,
                         100.0 * double(r.lost) / double(r.sent), r.flag.empty() ? "" : "  " + r.flag);
    } else if (ports) {
      // Without the table, the flagged ports still say so (the table is one --per-port away).
      std::string flagged;
      for (const PingPort& r : sum.ports)
        if (!r.flag.empty()) flagged += fmt::format("{}{} {}", flagged.empty() ? "" : ", ", r.sport, r.flag);
      if (!flagged.empty()) s += "flagged source port(s): " + flagged + " (--per-port: the table)\n";
    }
    out(s);
  }
  return code;
}

}  // namespace netprobe
