#pragma once
// The per-target families of ProberMetrics (every series labelled with a destination), stored compactly and
// rendered straight to text.
//
// Why not prometheus-cpp: it keeps every series as an object of its own with a std::map of its labels, and
// ProberMetrics needed a second map of them to find and remove series by label: ~16 KB per ICMP target, so
// 10,000 targets held ~160 MB in the supervisor. Here a target is one record holding its name once, with one
// row per (address family, group) holding the values of all the series of that group as plain numbers (the
// RTT histogram as its bucket counts): ~0.6 KB per target. Label values shared by many targets (group,
// state, ICMP type/code) are interned (the table only grows: it holds the few names configurations use).
//
// Which series exist follows what ProberMetrics did with prometheus-cpp series keyed by their labels:
// - a row is keyed by (address family, group); its probe type and state are labels of some of its series
//   only, so a new type or state resets just those (app_time_ooo_total has neither label and keeps counting,
//   netprobe_late/duplicate_replies_total have the type label and reset on a type change only);
// - declare() drops the target's series that no longer match its configuration (other address family, groups
//   it left) and creates the missing ones at 0, thresholds being rebuilt every time;
// - set_percentiles() and set_probe_name() recreate the rows of every declared target, as ProberMetrics did
//   (which includes a declared target whose measurements had been cleared).
// - the RTT histograms follow set_rtt_histogram() (global.rtt_histogram): per row (per_target, the default of
//   this class), or one per (probe type, address family, group) summed over the targets (per_group: rendered
//   after every per-target family; such a histogram lives as long as its group and probe name, since a target
//   that leaves must not take its counts back), or none. A change of choice removes the old series; the new
//   ones start at 0.
//
// Thread-safety: the writers (one thread, the supervisor, through ProberMetrics) and render() (HTTP threads)
// share one mutex. render() holds it for one slice of ~64 KB of text at a time (well under a millisecond)
// and never while its sink writes to a socket. A scrape may therefore see an iteration half applied (as it
// could with prometheus-cpp); a target declared or removed meanwhile appears whole or not at all in each
// family, and never twice (the slices resume after the last target name rendered).
#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "config/config.h"
#include "core/measurement.h"
#include "core/net.h"
#include "health/target_health.h"
#include "metrics/exposition.h"
#include "paths/path_window.h"

namespace netprobe {

class TargetSeries final : public TextSource {
 public:
  // Duplicate percentiles are kept once (one series per label set).
  TargetSeries(std::string probe_name, std::vector<int> percentiles);
  ~TargetSeries() override;
  TargetSeries(const TargetSeries&) = delete;
  TargetSeries& operator=(const TargetSeries&) = delete;

  // One iteration of one (target, group): counters add, the loss ratio and percentiles are replaced, the
  // RTTs go into the histogram (those that are not finite and >= 0 are ignored).
  // `sources`: the report's (IterationReport::sources), which the per-flow results designate.
  void record(const GroupMeasurement& m, std::span<const IpAddress> sources = {});
  // *_match_ack_fail_count / *_port_mismatch_count of a target (ICMPping has neither family: ignored).
  void record(const TargetEvents& events);
  void declare(const TargetConfig& target, AddressFamily af);
  void clear_target(std::string_view target);
  // Measurement series only (every row and the per-target event gauges); thresholds and host resolution stay.
  void clear_measurements(std::string_view target);
  // The target is not being measured (its worker died or stalled): its gauges (loss ratio, RTT
  // percentiles) disappear until its next record(), so that they go stale in Prometheus instead of
  // repeating their last values; counters and histograms stay, since they must never go backwards.
  void mark_stale(std::string_view target);
  void clear_group(std::string_view group);
  void set_percentiles(std::vector<int> percentiles);
  void set_probe_name(std::string probe_name);
  // Per-path results (docs/paths.md): the window of the per-flow loss test, in iterations, and how many of a
  // target's flagged flows get per-flow series (0 = none).
  void set_path_settings(uint32_t window, uint32_t series_per_target);
  void set_rtt_histogram(RttHistogram granularity);
  void set_resolution_status(std::string_view target, AddressFamily af, double status);
  // The target's state with hysteresis and its settings (src/health, docs/alerting.md): netprobe_target_*
  // families, rendered once the target is declared. They stay through clear_measurements() and
  // mark_stale() (a state, like the thresholds) and go with clear_target().
  void set_health(std::string_view target, const TargetHealth& health, const HealthSettings& settings);
  void inc_resolution_change(std::string_view target, AddressFamily af);

  bool render(std::string& out, size_t flush_at, const TextSink& flush) const override;

  // Number of targets with at least one series (tests, benchmark).
  size_t target_count() const;

 private:
  static constexpr size_t kBuckets = 18;  // rtt_buckets() and +Inf

  // A flagged flow's per-flow series: its labels beyond the measurement set (already escaped; an empty
  // src or dst is left out: one source address, one destination) and values over the window.
  struct FlowSeries {
    std::string dst;
    std::string src;
    uint16_t src_port = 0;
    double loss_ratio = 0;
    double sent = 0;
  };
  // The series of one (target, address family, group).
  struct Row {
    uint32_t group = 0;  // interned
    uint32_t state = 0;  // interned
    ProbeType type = ProbeType::kTcpSyn;
    AddressFamily af = AddressFamily::kV4;
    bool stale = false;  // mark_stale(): the gauges are not rendered
    double sent = 0;
    double loss = 0;
    double loss_ratio = 0;
    double unexpected = 0;  // UDPquery
    double closed = 0;
    double time_ooo = 0;
    double late = 0;
    double duplicates = 0;
    double rtt_sum = 0;
    std::array<uint64_t, kBuckets> rtt{};           // per bucket, not cumulative
    std::vector<double> round_trip;                 // one per percentile of percentiles_
    std::vector<std::pair<uint32_t, double>> icmp;  // (interned "type/code", count); rarely any
    PathWindow paths;                               // its flows over the window (docs/paths.md)
    bool measured_paths = false;                    // record() fed `paths` at least once
    std::vector<FlowSeries> path_series;            // the worst flagged flows, at most series_per_target
    void reset_type_series();                       // the series labelled with the probe type or the state
  };
  // The per-target gauges of one (probe type, address family), which have no group label.
  struct Events {
    ProbeType type;
    AddressFamily af;
    double match_ack_fail = 0;
    double port_mismatch = 0;
  };
  struct Resolution {
    AddressFamily af;
    bool has_status = false;
    bool has_change = false;
    double status = 0;
    double change = 0;
  };
  // What the last declare() said: rebuilds the rows on a percentile or probe name change, and the thresholds.
  struct Declared {
    ProbeType type;
    AddressFamily af;
    AlertLevel alert_level;
    uint32_t state;
    std::optional<double> latency;
    std::optional<double> loss;
    std::vector<uint32_t> groups;  // interned
    std::string tags;              // escaped, comma-joined (not interned: often one set per target)
  };
  struct Health {
    TargetHealth state;
    HealthSettings settings;
  };
  struct Target {
    std::vector<Row> rows;
    std::vector<Events> events;
    std::vector<Resolution> resolution;
    std::optional<Declared> declared;
    std::optional<Health> health;
    bool empty() const {
      return rows.empty() && events.empty() && resolution.empty() && !declared && !health;
    }
  };
  enum class Kind : uint8_t;
  struct Family;
  class SampleWriter;  // the sample lines of one (family, target), target_series.cpp

  uint32_t intern(std::string_view s);
  Target& target(std::string_view name);
  void erase_if_empty(std::map<std::string, Target, std::less<>>::iterator it);
  Row& row(Target& t, AddressFamily af, uint32_t group, ProbeType type, uint32_t state);
  void create_declared_series(Target& t);
  void record_paths(Row& r, const GroupMeasurement& m, std::span<const IpAddress> sources);
  void add_rtts(Row& r, const std::array<uint64_t, kBuckets>& increments, double sum);
  void render_target(std::string& out, const Family& family, bool& header, std::string_view name,
                     const Target& t) const;

  mutable std::mutex mutex_;
  std::string probe_name_;
  std::string probe_name_label_;  // escaped
  std::vector<int> percentiles_;
  std::vector<std::string> percentile_labels_;  // percentiles_ as label values
  uint32_t path_window_ = PathWindow::kDefaultIterations;
  uint32_t path_series_per_target_ = 4;
  std::vector<std::string> strings_;  // interned label values, already escaped
  struct StringHash {
    using is_transparent = void;  // lookups by string_view, without a temporary std::string
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  std::unordered_map<std::string, uint32_t, StringHash, std::equal_to<>> string_index_;
  std::map<std::string, Target, std::less<>> targets_;  // ordered: render() resumes a slice by name
  std::vector<Family> families_;                        // in exposition order; immutable after construction

  // global.rtt_histogram.
  RttHistogram rtt_histogram_ = RttHistogram::kPerTarget;
  struct Aggregate {                       // one per_group histogram
    std::array<uint64_t, kBuckets> rtt{};  // per bucket, not cumulative
    double sum = 0;
  };
  using AggregateKey = std::tuple<uint8_t, uint8_t, uint32_t>;  // probe type, address family, interned group
  std::map<AggregateKey, Aggregate> aggregates_;  // per_group only; ordered: render() resumes a slice by key
  void create_aggregates(const Declared& d);
  bool render_aggregates(std::string& out, const Family& family, size_t flush_at,
                         const std::function<bool()>& flush_if_full) const;
};

}  // namespace netprobe
