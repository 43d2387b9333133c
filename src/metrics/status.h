#pragma once
// The status page at / and its JSON twin /status.json, for an engineer who opens netprobe in a browser
// during an incident: per target and group the loss (last iteration and since start) and the round-trip
// percentiles of the last iteration, the worst ECMP path, and the process tree's health (worker restarts,
// send errors, capture drops, reload status, iteration time).
//
// Built from the exposition itself (the same text /metrics serves, parsed back), so that the page shows
// exactly what Prometheus sees and needs no access to the prober's internals. Plain server-rendered HTML,
// inline style, no script and no external request.
#include <cstddef>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace netprobe {

struct StatusRow {
  std::string type;  // the family prefix: tcpsyn, icmp, udp_unreachable
  std::string destination, group, address_family;
  double sent = 0, lost = 0;            // since start
  double last_loss = -1;                // loss ratio of the last iteration (-1: not reported)
  std::map<std::string, double> rtt;    // percentile -> seconds, last iteration
  double worst_path_loss = -1;          // highest loss of one flow over the path window (-1: none)
  double paths = -1, lossy_paths = -1;  // flows probed, flows with loss
};

struct StatusSnapshot {
  std::string probe_name, version;
  std::vector<StatusRow> rows;  // worst first (last loss, then loss since start), at most max_rows
  size_t rows_total = 0;        // before the cut
  double worker_restarts = 0, send_errors = 0, capture_dropped = 0;
  double reload_failed = 0, iteration_seconds = -1;
};

// Parses a 0.0.4 exposition into the snapshot. Lines that do not parse are skipped.
StatusSnapshot status_from_exposition(std::string_view text, size_t max_rows);
std::string status_json(const StatusSnapshot& status);
std::string status_html(const StatusSnapshot& status);

}  // namespace netprobe
