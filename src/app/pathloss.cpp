// `netprobe pathloss TARGET --sports A,B`: the order of `netprobe trace` (src/app/trace.cpp), then the
// measure and the verdict of src/trace/pathloss.h.
#include "app/pathloss.h"

#include <sysexits.h>

#include <cstdio>

#include <fmt/format.h>

#include "app/cli_output.h"
#include "app/stop_signals.h"
#include "app/trace.h"
#include "trace/pathloss.h"
#include "trace/report.h"

namespace netprobe {
namespace {

int usage_error(const std::string& message) { return command_usage_error("pathloss", message, EX_USAGE); }

}  // namespace

int run_pathloss(const PathlossCliOptions& o) {
  OptionError bad;
  const auto setup = check_pathloss_options(o, &bad);
  if (!setup) return usage_error(bad.message);

  StopSignals stop_signals;
  TraceTarget target;
  std::unique_ptr<Session> session;
  if (const int rc = open_trace_session("pathloss", o.target, setup->type, setup->dst_port, o.ipv4, o.ipv6,
                                        target, session))
    return rc;
  SessionProber prober(*session, target, o.wait_s, o.rate_pps);
  stop_signals.start([&] {
    prober.stop();
    session->stop();
  });
  const PathlossOptions& options = setup->options;
  PathlossReport report;
  report.target = target;
  report.probes_per_hop = o.probes_per_hop;
  report.flows = measure_pathloss(prober, setup->sports, setup->reference, options);
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
