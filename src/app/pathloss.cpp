// `netprobe pathloss TARGET --sports A,B`: the order of `netprobe trace` (src/app/trace.cpp), then the
// measure and the verdict of src/trace/pathloss.h.
#include "app/pathloss.h"

#include <sysexits.h>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <set>

#include <fmt/format.h>

#include "app/cli_output.h"
#include "app/stop_signals.h"
#include "app/trace.h"
#include "trace/pathloss.h"
#include "trace/report.h"

namespace netprobe {
namespace {

constexpr int kMaxFlows = 256;
constexpr int kMaxProbesPerHop = 100000;

int usage_error(const std::string& message) { return command_usage_error("pathloss", message, EX_USAGE); }

}  // namespace

int run_pathloss(const PathlossCliOptions& o) {
  if (o.format != "text" && o.format != "json")
    return usage_error("--format: \"" + o.format.substr(0, 16) + "\" is not text or json");
  if (o.mode == '1')
    return usage_error("-1: ICMP echo has no ports, so no flows to tell apart (use -S or -2)");
  if (o.probes_per_hop < 1 || o.probes_per_hop > kMaxProbesPerHop)
    return usage_error(fmt::format("--probes-per-hop: 1 to {}", kMaxProbesPerHop));
  if (o.compare_healthy < 0 || o.compare_healthy > 64) return usage_error("--compare-healthy: 0 to 64");
  if (o.first_ttl < 1 || o.first_ttl > kMaxTtl)
    return usage_error(fmt::format("--first-ttl: 1 to {}", kMaxTtl));
  if (o.max_ttl < o.first_ttl || o.max_ttl > kMaxTtl)
    return usage_error(fmt::format("--max-ttl: from --first-ttl to {}", kMaxTtl));
  if (!(o.rate_pps >= 1 && o.rate_pps <= 100000)) return usage_error("--rate: 1 to 100000 probes per second");
  if (!(o.wait_s > 0 && o.wait_s <= 60)) return usage_error("--wait: above 0, at most 60 s");
  if (o.ipv4 && o.ipv6) return usage_error("-4 and -6 exclude each other");
  if (o.target.empty() || o.target.size() > 253) return usage_error("TARGET: a host name or an address");
  if (bool(o.sports) == bool(o.sport_range)) return usage_error("one of --sports and --sport-range");
  const ProbeType type = o.mode == '2' ? ProbeType::kUdpUnreachable : ProbeType::kTcpSyn;
  const int dport = o.dst_port.value_or(type == ProbeType::kUdpUnreachable ? 33434 : 80);
  if (dport < 1 || dport > 65535) return usage_error(fmt::format("-p: {} is not a port", dport));
  std::vector<uint16_t> sports;
  if (o.sport_range) {
    const auto r = parse_port_range(*o.sport_range, kMaxFlows);
    if (!r)
      return usage_error(
          fmt::format("--sport-range: \"{}\" is not A-B with 1 <= A <= B <= 65535, at most {} ports",
                      o.sport_range->substr(0, 16), kMaxFlows));
    for (int p = r->first; p <= r->second; ++p) sports.push_back(uint16_t(p));
  } else {
    const std::string& s = *o.sports;
    size_t at = 0;
    while (at <= s.size()) {
      const size_t comma = std::min(s.find(',', at), s.size());
      int v = 0;
      auto [p, ec] = std::from_chars(s.data() + at, s.data() + comma, v);
      if (ec != std::errc() || p != s.data() + comma || v < 1 || v > 65535)
        return usage_error("--sports: \"" + s.substr(0, 32) + "\" is not a list of ports (40001,40007)");
      if (std::find(sports.begin(), sports.end(), uint16_t(v)) == sports.end()) sports.push_back(uint16_t(v));
      if (sports.size() > size_t(kMaxFlows))
        return usage_error(fmt::format("--sports: at most {}", kMaxFlows));
      at = comma + 1;
    }
  }
  // Reference flows: the next free ports after the highest one asked for (wrapping below it if needed).
  std::vector<bool> reference(sports.size(), false);
  const std::set<uint16_t> asked(sports.begin(), sports.end());
  for (int p = *asked.rbegin() + 1, added = 0; added < o.compare_healthy; ++p) {
    if (p > 65535) p = 1024;
    if (asked.count(uint16_t(p))) break;  // went all the way round
    sports.push_back(uint16_t(p));
    reference.push_back(true);
    ++added;
  }

  StopSignals stop_signals;
  TraceTarget target;
  std::unique_ptr<Session> session;
  if (const int rc =
          open_trace_session("pathloss", o.target, type, uint16_t(dport), o.ipv4, o.ipv6, target, session))
    return rc;
  SessionProber prober(*session, target, o.wait_s, o.rate_pps);
  stop_signals.start([&] {
    prober.stop();
    session->stop();
  });
  PathlossOptions options;
  options.trace.first_ttl = o.first_ttl;
  options.trace.max_ttl = o.max_ttl;
  options.probes_per_hop = o.probes_per_hop;
  PathlossReport report;
  report.target = target;
  report.probes_per_hop = o.probes_per_hop;
  report.flows = measure_pathloss(prober, sports, reference, options);
  stop_signals.finish();
  report.probes_sent = prober.sent();
  if (!prober.error().empty())
    report.error = "capture failed: " + prober.error();
  else if (prober.stopped())
    report.error = "interrupted";
  for (const auto& f : report.flows) report.verdicts.push_back(judge_flow(f));
  compare_healthy(report.flows, report.verdicts);
  if (!report.error.empty() && o.format != "json")
    std::fprintf(stderr, "netprobe pathloss: %s\n", report.error.c_str());
  const std::string text = o.format == "json" ? pathloss_json(report) : pathloss_text(report);
  std::fwrite(text.data(), 1, text.size(), stdout);
  std::fflush(stdout);
  return suspects_of(report.flows, report.verdicts).empty() ? 0 : 1;
}

}  // namespace netprobe
