#pragma once
// What `netprobe ping` concludes from its probes: the summary (loss, RTT statistics), the per-source-port
// table with the ports the per-path test flags (paths/significance.h), and the exit rule. Pure (no I/O, no
// clock), so that the rule is table-tested.
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "engine/iteration.h"

namespace netprobe {

struct PingPort {
  uint16_t sport = 0;
  uint64_t sent = 0;
  uint64_t lost = 0;
  std::string flag;  // "", "lossy", or "black-holed" (flagged and every probe lost)
};

struct PingSummary {
  uint64_t sent = 0, received = 0, late = 0, icmp_errors = 0;
  double loss_pct = 100;                               // 100 when nothing was sent
  std::vector<double> rtts_s;                          // of the answered probes with a usable send time
  double min_s = 0, avg_s = 0, max_s = 0, mdev_s = 0;  // when rtts_s is not empty; mdev as ping's
  // Percentiles with linear interpolation between the closest ranks (k = (n - 1) p / 100, netprobify's and
  // the metrics' rule), when rtts_s is not empty.
  double p50_s = 0, p90_s = 0, p99_s = 0;
  std::vector<PingPort> ports;  // by source port; one row per port (0 for probe types without ports)

  // 0 when the loss is at most `max_loss_pct` percent, or, without it, when some probe was answered, and,
  // with `max_rtt_ms`, the p99 RTT is at most that (no RTT at all fails it); 1 when not (and when nothing
  // was sent).
  int exit_code(std::optional<double> max_loss_pct, std::optional<double> max_rtt_ms = std::nullopt) const;
};

// `events`: every probe sent (unsent ones are skipped), `sport` from each event.
PingSummary summarize_ping(std::span<const ProbeEvent> events);

}  // namespace netprobe
