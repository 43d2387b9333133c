#pragma once
// TEST ONLY: ProberMetrics as it was while every series lived in prometheus-cpp (src/metrics/prober_metrics.*
// at commit 06a5016), verbatim but for its namespace and the free functions it shares with the real one: the
// reference that target_series_test.cpp compares the new exposition with, line for line.
#include <array>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/labels.h>
#include <prometheus/registry.h>

#include "config/config.h"
#include "core/measurement.h"
#include "core/net.h"
#include "metrics/prober_metrics.h"  // percentile_linear, metric_prefix, rtt_buckets

namespace netprobe::legacy {

using netprobe::metric_prefix;
using netprobe::percentile_linear;
using netprobe::rtt_buckets;

class ProberMetrics {
 public:
  // Registers every family in `registry` (which must outlive this object) and creates the process-wide
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
  void record(const IterationReport& report);

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
  // Removes every series labelled with this group (a group removed from the configuration).
  void clear_group(const std::string& group);
  // Removes the percentile series no longer wanted and creates the new ones for declared targets.
  void set_percentiles(std::vector<int> percentiles);
  // Removes every series of the old probe name and recreates the process-wide and declared-target series
  // under the new one.
  void set_probe_name(std::string probe_name);

  void set_reload_failed(bool failed);
  void inc_process_timed_out();
  // app_worker_restarts_total{probe_name}: a probe worker died unexpectedly and was started again (netprobe's
  // own family; netprobify forked one process per target and had no such event). Exists at 0 from the start.
  void inc_worker_restarts();
  void set_host_resolution_status(const std::string& target, AddressFamily af, int status);
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

  const std::string& probe_name() const { return probe_name_; }
  const std::vector<int>& percentiles() const { return percentiles_; }

  // A set of children of one family, kept so that they can be enumerated and removed by label.
  class SeriesSetBase {
   public:
    virtual ~SeriesSetBase() = default;
    virtual void remove_if(const std::function<bool(const prometheus::Labels&)>& pred) = 0;
    // remove_if() over the series whose destination label is `destination` only: declaring a target must
    // not scan every series of every target (quadratic: minutes of start-up with 10,000 targets).
    virtual void remove_if_destination(const std::string& destination,
                                       const std::function<bool(const prometheus::Labels&)>& pred) = 0;
  };

 private:
  template <typename T>
  class SeriesSet;
  struct TypeFamilies;

  prometheus::Labels m5(const std::string& target, AddressFamily af, const std::string& state,
                        const std::string& group) const;
  prometheus::Labels a3(const std::string& target, AddressFamily af) const;
  void create_process_series();
  void create_target_series(const TargetConfig& target, AddressFamily af);
  void remove_if(const std::function<bool(const prometheus::Labels&)>& pred);

  std::shared_ptr<prometheus::Registry> registry_;
  std::string probe_name_;
  std::vector<int> percentiles_;
  std::string version_;
  bool reload_failed_ = false;

  std::vector<std::unique_ptr<SeriesSetBase>> all_;  // every set below, for removal by label
  std::array<std::unique_ptr<TypeFamilies>, kProbeTypeCount> types_;
  SeriesSet<prometheus::Gauge>* netprobe_info_ = nullptr;
  SeriesSet<prometheus::Gauge>* netprobify_info_ = nullptr;
  SeriesSet<prometheus::Gauge>* threshold_ = nullptr;
  SeriesSet<prometheus::Gauge>* target_info_ = nullptr;
  SeriesSet<prometheus::Gauge>* resolution_status_ = nullptr;
  SeriesSet<prometheus::Counter>* resolution_change_ = nullptr;
  SeriesSet<prometheus::Counter>* time_ooo_ = nullptr;
  SeriesSet<prometheus::Gauge>* iteration_time_ = nullptr;
  SeriesSet<prometheus::Gauge>* send_window_ = nullptr;
  SeriesSet<prometheus::Counter>* target_name_dup_ = nullptr;
  SeriesSet<prometheus::Counter>* process_timed_out_ = nullptr;
  SeriesSet<prometheus::Counter>* worker_restarts_ = nullptr;
  SeriesSet<prometheus::Gauge>* reload_failed_status_ = nullptr;
  SeriesSet<prometheus::Counter>* late_ = nullptr;
  SeriesSet<prometheus::Counter>* duplicates_ = nullptr;
  SeriesSet<prometheus::Counter>* capture_received_ = nullptr;
  SeriesSet<prometheus::Counter>* capture_dropped_ = nullptr;
  SeriesSet<prometheus::Counter>* capture_rejected_ = nullptr;
  SeriesSet<prometheus::Counter>* send_errors_ = nullptr;
  SeriesSet<prometheus::Gauge>* inventory_targets_ = nullptr;
  SeriesSet<prometheus::Counter>* inventory_failures_ = nullptr;
  std::map<std::string, size_t> inventories_;  // declared plug-ins and their target counts, for renames

  struct Declared {
    TargetConfig config;
    AddressFamily af;
  };
  std::map<std::string, Declared> declared_;  // by target name, to recreate series on renames
};

}  // namespace netprobe::legacy
