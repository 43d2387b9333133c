#include "ondemand/probe_output.h"

#include <fmt/format.h>

#include <map>

#include "session/ping_result.h"

namespace netprobe::ondemand {
namespace {

// RTT buckets in seconds: 100 µs to 5 s, what a data-centre path and a WAN path both need.
constexpr double kRttBuckets[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                  0.05,   0.1,     0.25,   0.5,   1,      2.5,   5};

void gauge(std::string& out, const char* name, const char* help, double value) {
  out += fmt::format("# HELP {} {}\n# TYPE {} gauge\n{} {}\n", name, help, name, name, value);
}

}  // namespace

bool probe_succeeded(const OnDemandModule& module, std::span<const ProbeEvent> events) {
  const PingSummary s = summarize_ping(events);
  if (s.sent == 0) return false;
  const double loss = double(s.sent - s.received) / double(s.sent);
  if (loss > module.fail_if_loss_ratio_above) return false;
  if (module.fail_if_rtt_p99_above_s && (s.rtts_s.empty() || s.p99_s > *module.fail_if_rtt_p99_above_s))
    return false;
  return true;
}

std::string render_probe_metrics(const ProbeJob& job, const OnDemandModule& module,
                                 std::span<const ProbeEvent> events, double duration_s) {
  const PingSummary s = summarize_ping(events);
  std::string out;
  gauge(out, "probe_success", "Displays whether or not the probe was a success",
        probe_succeeded(module, events) ? 1 : 0);
  gauge(out, "probe_duration_seconds", "Returns how long the probe took to complete in seconds", duration_s);
  gauge(out, "probe_ip_protocol", "Specifies whether probe ip protocol is IP4 or IP6",
        job.af == AddressFamily::kV4 ? 4 : 6);
  gauge(out, "netprobe_probe_packets_sent", "Probes sent", double(s.sent));
  gauge(out, "netprobe_probe_packets_received", "Probes answered in time", double(s.received));
  gauge(out, "netprobe_probe_packets_lost", "Probes not answered in time", double(s.sent - s.received));
  gauge(out, "netprobe_probe_packets_late", "Probes answered after their timeout", double(s.late));
  gauge(out, "netprobe_probe_loss_ratio", "Lost over sent (1 when nothing was sent)",
        s.sent ? double(s.sent - s.received) / double(s.sent) : 1.0);
  std::map<std::string, uint64_t> icmp;
  for (const ProbeEvent& e : events)
    if (e.icmp_error) ++icmp[icmp_error_label(job.af, e.icmp_type, e.icmp_code)];
  out +=
      "# HELP netprobe_probe_icmp_errors ICMP errors quoting a probe, by type:code\n"
      "# TYPE netprobe_probe_icmp_errors gauge\n";
  for (const auto& [label, n] : icmp)
    out += fmt::format("netprobe_probe_icmp_errors{{type=\"{}\"}} {}\n", label, n);
  out +=
      "# HELP netprobe_probe_rtt_seconds Round-trip times of the answered probes\n"
      "# TYPE netprobe_probe_rtt_seconds histogram\n";
  double sum = 0;
  for (double r : s.rtts_s) sum += r;
  for (double le : kRttBuckets) {
    const auto n = std::count_if(s.rtts_s.begin(), s.rtts_s.end(), [le](double r) { return r <= le; });
    out += fmt::format("netprobe_probe_rtt_seconds_bucket{{le=\"{}\"}} {}\n", le, n);
  }
  out += fmt::format("netprobe_probe_rtt_seconds_bucket{{le=\"+Inf\"}} {}\n", s.rtts_s.size());
  out += fmt::format("netprobe_probe_rtt_seconds_sum {}\nnetprobe_probe_rtt_seconds_count {}\n", sum,
                     s.rtts_s.size());
  out +=
      "# HELP netprobe_probe_path_packets_sent Probes sent per path (source port)\n"
      "# TYPE netprobe_probe_path_packets_sent gauge\n";
  for (const PingPort& p : s.ports)
    out += fmt::format("netprobe_probe_path_packets_sent{{sport=\"{}\"}} {}\n", p.sport, p.sent);
  out +=
      "# HELP netprobe_probe_path_packets_lost Probes lost per path (source port)\n"
      "# TYPE netprobe_probe_path_packets_lost gauge\n";
  for (const PingPort& p : s.ports)
    out += fmt::format("netprobe_probe_path_packets_lost{{sport=\"{}\"}} {}\n", p.sport, p.lost);
  return out;
}

std::string render_probe_debug(const ProbeJob& job, const OnDemandModule& module,
                               std::span<const ProbeEvent> events, double duration_s) {
  std::string out = "Logs for the probe:\n";
  const PingLineContext c{job.type, job.af, job.dst_port};
  int seq = 0;
  for (const ProbeEvent& e : events) {
    const std::string line = ping_line_text(seq, e, c);
    out += line.empty() ? fmt::format("seq={} unsent", seq) : line;
    out += '\n';
    ++seq;
  }
  out += "\n\n\nMetrics that would have been returned:\n";
  out += render_probe_metrics(job, module, events, duration_s);
  return out;
}

}  // namespace netprobe::ondemand
