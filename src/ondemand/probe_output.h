#pragma once
// What GET /probe returns (docs/on-demand.md#probe): blackbox_exporter's probe_success,
// probe_duration_seconds and probe_ip_protocol, then netprobe's figures for the job: packets sent,
// received, lost and late, the loss ratio, ICMP errors by type, an RTT histogram and per-path (source port)
// aggregates. With debug=true, blackbox's layout: the per-probe log, then the metrics. Pure.
#include <span>
#include <string>

#include "config/on_demand.h"
#include "engine/iteration.h"
#include "ondemand/probe_request.h"

namespace netprobe::ondemand {

// The success condition of the module: something was sent, the loss ratio is at most
// fail_if_loss_ratio_above (0: no loss at all), and the p99 RTT at most fail_if_rtt_p99_above_s if set.
bool probe_succeeded(const OnDemandModule& module, std::span<const ProbeEvent> events);

// The 0.0.4 text page (`events`: one per probe of the job, every address together).
std::string render_probe_metrics(const ProbeJob& job, const OnDemandModule& module,
                                 std::span<const ProbeEvent> events, double duration_s);

// debug=true: "Logs for the probe:" with one line per probe, then "Metrics that would have been returned:".
std::string render_probe_debug(const ProbeJob& job, const OnDemandModule& module,
                               std::span<const ProbeEvent> events, double duration_s);

}  // namespace netprobe::ondemand
