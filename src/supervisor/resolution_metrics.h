#pragma once
// Turns the address book's events into netprobify's metrics (app_host_resolution_*,
// docs/netprobify-compatibility.md#metrics) and log lines, so that every
// supervisor applies them the same way.
#include <vector>

#include "dns/target_address_book.h"
#include "metrics/prober_metrics.h"

namespace netprobe {

// kResolved: app_host_resolution_status 1 and app_host_resolution_change_total +1.
// kFailed:   app_host_resolution_status 0 and the target's measurement series removed
//            (clear_target_measurements), as netprobify does for an inactive target.
// Logs a change at info, a failure at warning (at debug when the previous attempt failed too, since with
// dns_update_interval 0 that would repeat every iteration).
void record_resolution_events(const std::vector<ResolutionEvent>& events, ProberMetrics& metrics);

}  // namespace netprobe
