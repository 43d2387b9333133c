#pragma once
// The status page at / and its JSON twin /status.json, for an engineer who opens netprobe in a browser
// during an incident: per target and group the loss (last iteration and since start) and the round-trip
// percentiles of the last iteration, the loss and p50/p95 of each of the last kHistoryIterations
// iterations, the worst ECMP paths, a matrix of destinations coloured by loss for groups with many
// destinations (a full mesh), and the process tree's health (worker restarts, send errors, capture drops,
// reload status, iteration time).
//
// Built from the exposition itself (the same text /metrics serves, parsed back), so that the page shows
// exactly what Prometheus sees, plus a StatusHistory fed with every iteration (the exposition holds only the
// last one). Plain server-rendered HTML, inline style and SVG, no script and no external request.
#include <cstddef>
#include <cstdint>
#include <ctime>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "core/measurement.h"

namespace netprobe {

// percentile_linear (core/percentile.h: netprobify's interpolation), the same value bit for bit, by selection
// instead of a sort; reorders `values`.
double percentile_select(std::vector<double>& values, int p);

// Iterations kept per (probe type, target, group, address family): the page's history.
inline constexpr size_t kHistoryIterations = 10;

// One iteration of one (target, group): 16 bytes.
struct IterationPoint {
  uint32_t time = 0;  // wall clock, Unix seconds, when the supervisor received it
  uint32_t sent = 0;
  float loss_ratio = 0;
  float p50 = -1, p95 = -1;  // seconds; -1: no answer with a round-trip time
};

// The last kHistoryIterations iterations of every (probe type, target, group, address family), fed by the
// supervisor's thread (record()), read by the HTTP threads (points()); one mutex, held for a map lookup or
// one report's worth of appends. Bounded: kHistoryIterations points per key, at most kMaxKeys keys (a new key
// beyond that is not kept), and keys not updated for kForgetAfterSeconds go (targets removed, groups left).
class StatusHistory {
 public:
  static constexpr size_t kMaxKeys = 100'000;
  static constexpr uint32_t kForgetAfterSeconds = 3600;
  // The type as the metric prefix ("icmp"), the address family as its label ("ipv4").
  using Key = std::tuple<std::string, std::string, std::string, std::string>;  // type, target, group, af

  void record(const IterationReport& report, std::time_t now);
  // Oldest first; empty when unknown.
  std::vector<IterationPoint> points(const Key& key) const;
  size_t size() const;

 private:
  struct Ring {
    IterationPoint points[kHistoryIterations];
    uint8_t next = 0, count = 0;
    uint32_t updated = 0;
  };
  mutable std::mutex mutex_;
  std::map<Key, Ring> rings_;
  uint32_t last_sweep_ = 0;
};

// A flow found lossy (the <type>_path_loss_ratio series: docs/paths.md), for the worst-paths table.
struct StatusPath {
  std::string type, destination, group, address_family;
  std::string src, dst, src_port;  // as labelled (src/dst only when the target has several)
  double loss_ratio = 0, sent = -1;
};

// One group's destinations coloured by loss (the full-mesh view), by destination name.
struct StatusMesh {
  struct Cell {
    std::string destination;
    double loss_ratio = -1;  // the worst last-iteration loss of its rows in the group (-1: not reported)
  };
  std::string group;
  std::vector<Cell> cells;
  size_t destinations = 0;  // before the cut at kMaxMeshCells
};

struct StatusRow {
  std::string type;  // the family prefix: tcpsyn, icmp, udp_unreachable
  std::string destination, group, address_family;
  double sent = 0, lost = 0;            // since start
  double last_loss = -1;                // loss ratio of the last iteration (-1: not reported)
  std::map<std::string, double> rtt;    // percentile -> seconds, last iteration
  double worst_path_loss = -1;          // highest loss of one flow over the path window (-1: none)
  double paths = -1, lossy_paths = -1;  // flows probed, flows with loss
  std::vector<IterationPoint> history;  // the last iterations, oldest first (StatusHistory)
};

struct StatusSnapshot {
  std::string probe_name, version;
  std::vector<StatusRow> rows;          // worst first (last loss, then loss since start), at most max_rows
  size_t rows_total = 0;                // before the cut
  std::vector<StatusPath> worst_paths;  // worst first, at most kMaxStatusPaths
  size_t paths_total = 0;               // lossy flows in the exposition
  std::vector<StatusMesh> meshes;       // groups with at least kMeshMinDestinations destinations
  double worker_restarts = 0, send_errors = 0, capture_dropped = 0;
  double reload_failed = 0, iteration_seconds = -1;
};

inline constexpr size_t kMaxStatusPaths = 20;
// The matrix is drawn for each group with at least this many destinations, of at most kMaxMeshCells cells.
inline constexpr size_t kMeshMinDestinations = 4;
inline constexpr size_t kMaxMeshCells = 5000;

// Parses a 0.0.4 exposition into the snapshot, with each row's history from `history` (when not null).
// Lines that do not parse are skipped.
StatusSnapshot status_from_exposition(std::string_view text, size_t max_rows,
                                      const StatusHistory* history = nullptr);
std::string status_json(const StatusSnapshot& status);
std::string status_html(const StatusSnapshot& status);

}  // namespace netprobe
