#pragma once
// The netprobify-compatible Prometheus families plus netprobe's own additions, fed from the engine's
// IterationReport. Dashboards and alerts written for netprobify must keep working, so every name, type
// and label set listed in docs/netprobify-compatibility.md#metrics is reproduced exactly; the deliberate
// differences are noted where they happen: the *_count gauges count an event once, not once per group
// (docs/netprobify-compatibility.md#d4-event-gauges); HELP/TYPE lines only for families that have
// series, as prometheus-cpp renders them (docs/netprobify-compatibility.md#d28-exposition-details).
//
// Two stores, by size: the process-wide families (a handful of series: netprobe_info, app_*_total without a
// destination, capture counters, inventories) are prometheus-cpp families in the Registry given to the
// constructor; every family labelled with a destination lives in target_series() (target_series.h says
// why: memory). The /metrics endpoint serves both (Exporter::start takes the registry and the TextSource).
//
// Thread-safety: a ProberMetrics is driven by ONE thread (the supervisor); none of its methods may be
// called concurrently with another. Scrapes run on the HTTP server's threads and read the registry (whose
// families lock internally and whose values are atomics) and target_series() (one mutex, held a slice at a
// time), so rendering while record() runs is safe; such a scrape may see an iteration half applied (sent
// added, loss not yet), which every later scrape corrects.
#include <array>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/labels.h>
#include <prometheus/registry.h>

#include "config/config.h"
#include "core/measurement.h"
#include "core/net.h"
#include "core/percentile.h"  // percentile_linear, used by the metrics
#include "health/target_health.h"
#include "metrics/exposition.h"

namespace netprobe {

// The metric-name prefix of a probe type: "tcpsyn", "icmp", "udp_unreachable".
std::string_view metric_prefix(ProbeType type);

// Latency histogram buckets (seconds), shared by the three *_rtt_seconds families: 2.5 us .. 3 s.
const std::vector<double>& rtt_buckets();

class TargetSeries;
class StatusHistory;

class ProberMetrics {
 public:
  // Registers the process-wide families in `registry` (which must outlive this object) and creates their
  // series: netprobe_info, netprobify_info, app_reload_conf_failed_status=0, app_process_timed_out_total=0,
  // app_worker_restarts_total=0 and the capture counters at 0.
  ProberMetrics(std::shared_ptr<prometheus::Registry> registry, std::string probe_name,
                std::vector<int> percentiles, std::string version);
  ~ProberMetrics();
  ProberMetrics(const ProberMetrics&) = delete;
  ProberMetrics& operator=(const ProberMetrics&) = delete;

  // Applies one iteration: counters add, loss_ratio/percentile gauges are replaced by this iteration's
  // values, RTTs go into the histograms, TargetEvents increment the *_count gauges once per target
  // (not once per group as netprobify did: docs/netprobify-compatibility.md#d4-event-gauges), capture
  // deltas add.
  //
  // app_iteration_time_seconds keeps netprobify's meaning, "time to finish one round of probing" (its
  // README alerts when it exceeds 90 s): the longest of every worker's latest iteration (workers probe in
  // parallel, so a round of all targets lasts as long as the slowest), each from its first probe to its
  // last answer or deadline. netprobe_iteration_send_seconds is the same maximum of the send windows (how
  // long the pacing took to hand every probe to the kernel). `worker` is the reporting worker's index.
  void record(const IterationReport& report, uint32_t worker = 0);
  // global.nb_proc: the latest iterations of workers that no longer exist stop counting.
  void set_worker_count(uint32_t workers);

  // Creates the target's series at 0 for each of its groups so that they exist before its first
  // iteration, and (re)sets its threshold series. Idempotent: counters that already exist keep their
  // value (they never go backwards while the target exists). Series of the target that no longer match
  // the configuration (groups it left, another state, address family or probe type) are removed.
  void declare_target(const TargetConfig& target, AddressFamily af);

  // Removes every series of the target (measurements, thresholds, host resolution, events): a target
  // removed from the configuration or an inventory. Exact name match (netprobify's substring match was a
  // bug).
  void clear_target(const std::string& target);
  // Removes only the measurement series (sent, loss, ratio, RTT, histogram, errors, late, duplicates,
  // time_ooo, *_count) of a target that became inactive (DNS failure, self address, no group), as
  // netprobify does; thresholds and app_host_resolution_* stay.
  void clear_target_measurements(const std::string& target);
  // Its worker died or stalled: gauges go stale until the next record() (TargetSeries::mark_stale).
  void mark_target_stale(const std::string& target);
  // Removes every series labelled with this group (a group removed from the configuration).
  void clear_group(const std::string& group);
  // Removes the percentile series no longer wanted and creates the new ones for declared targets.
  void set_percentiles(std::vector<int> percentiles);
  // Removes every series of the old probe name and recreates the process-wide and declared-target series
  // under the new one.
  void set_probe_name(std::string probe_name);
  // global.path_window and global.path_series_per_target (docs/paths.md).
  void set_path_settings(int window, int series_per_target);
  // global.rtt_histogram (per_target until called): the *_rtt_seconds series of the old choice disappear,
  // those of the new one start at 0 (TargetSeries::set_rtt_histogram).
  void set_rtt_histogram(RttHistogram granularity);

  void set_reload_failed(bool failed);
  // netprobe_interval_seconds{probe_name}: global.interval, so that rules compare the round time with it.
  void set_interval(double seconds);
  void inc_process_timed_out();
  // app_worker_restarts_total{probe_name}: a probe worker died unexpectedly and was started again (netprobe's
  // own family; netprobify forked one process per target and had no such event). Exists at 0 from the start.
  void inc_worker_restarts();
  void set_host_resolution_status(const std::string& target, AddressFamily af, int status);
  // netprobe_target_failing and its companions (TargetSeries::set_health, docs/alerting.md).
  void set_target_health(const std::string& target, const TargetHealth& health,
                         const HealthSettings& settings);
  void inc_host_resolution_change(const std::string& target, AddressFamily af);
  void inc_target_name_dup(const std::string& target_name);

  // Dynamic inventory plug-ins (inventory/): app_inventory_targets{probe_name,inventory} is the number of
  // targets a plug-in currently contributes, app_inventory_failures_total{probe_name,inventory} counts its
  // crashes, hangs and unreadable output. declare_inventory creates both at 0 so that a plug-in that never
  // delivers shows up; clear_inventory removes them (a plug-in no longer run).
  void declare_inventory(const std::string& inventory);
  void set_inventory_targets(const std::string& inventory, size_t targets);
  void inc_inventory_failure(const std::string& inventory);
  void clear_inventory(const std::string& inventory);

  // The reasons netprobe_send_errors_total shows at 0 from the start: io's SendError names (a test checks
  // they agree) and the engine's.
  static constexpr std::array<std::string_view, 9> kSendErrorReasons{"no_buffer", "unreachable", "permission",
                                                                     "too_big",   "invalid",     "no_socket",
                                                                     "other",     "cut_short",   "no_token"};

  const std::string& probe_name() const { return probe_name_; }
  const std::vector<int>& percentiles() const { return percentiles_; }

  // The families labelled with a destination (per-type measurements, threshold, app_host_resolution_*,
  // app_time_ooo_total, late and duplicate replies), for the exporter. Lives as long as the longest holder.
  std::shared_ptr<const TextSource> target_series() const;
  // The last iterations of every (target, group), for the status page (metrics/status.h).
  std::shared_ptr<const StatusHistory> status_history() const { return history_; }

  // A set of children of one family, kept so that they can be enumerated and removed by label.
  class SeriesSetBase {
   public:
    virtual ~SeriesSetBase() = default;
    virtual void remove_if(const std::function<bool(const prometheus::Labels&)>& pred) = 0;
  };

 private:
  template <typename T>
  class SeriesSet;

  void create_process_series();
  static constexpr size_t kMaxReasons = 64;
  static const std::string& bounded_label(std::set<std::string>& seen, const std::string& value);
  void remove_if(const std::function<bool(const prometheus::Labels&)>& pred);

  std::shared_ptr<prometheus::Registry> registry_;
  std::string probe_name_;
  std::vector<int> percentiles_;
  std::string version_;
  bool reload_failed_ = false;

  std::shared_ptr<TargetSeries> targets_;
  std::shared_ptr<StatusHistory> history_;
  std::vector<std::unique_ptr<SeriesSetBase>> all_;  // every set below, for removal by label
  SeriesSet<prometheus::Gauge>* netprobe_info_ = nullptr;
  SeriesSet<prometheus::Gauge>* netprobify_info_ = nullptr;
  SeriesSet<prometheus::Gauge>* iteration_time_ = nullptr;
  SeriesSet<prometheus::Gauge>* send_window_ = nullptr;
  SeriesSet<prometheus::Gauge>* interval_ = nullptr;
  double interval_s_ = 0;                                           // 0: not set yet, no series
  std::map<uint32_t, std::pair<double, double>> latest_iteration_;  // worker -> (duration, send window)
  void set_iteration_gauges();
  SeriesSet<prometheus::Counter>* target_name_dup_ = nullptr;
  SeriesSet<prometheus::Counter>* process_timed_out_ = nullptr;
  SeriesSet<prometheus::Counter>* worker_restarts_ = nullptr;
  SeriesSet<prometheus::Gauge>* reload_failed_status_ = nullptr;
  SeriesSet<prometheus::Counter>* capture_received_ = nullptr;
  SeriesSet<prometheus::Counter>* capture_dropped_ = nullptr;
  SeriesSet<prometheus::Counter>* capture_rejected_ = nullptr;
  SeriesSet<prometheus::Counter>* send_errors_ = nullptr;
  SeriesSet<prometheus::Gauge>* inventory_targets_ = nullptr;
  SeriesSet<prometheus::Counter>* inventory_failures_ = nullptr;
  std::map<std::string, size_t> inventories_;
  std::set<std::string> send_error_reasons_{kSendErrorReasons.begin(), kSendErrorReasons.end()};
  std::set<std::string> rejected_reasons_;  // declared plug-ins and their target counts, for renames
};

}  // namespace netprobe
