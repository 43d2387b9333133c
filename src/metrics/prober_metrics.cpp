#include "metrics/prober_metrics.h"

#include <algorithm>
#include <cmath>
#include <ctime>

#include "metrics/status.h"
#include "metrics/target_series.h"
#include "probes/probe.h"

namespace netprobe {

namespace {

using prometheus::Labels;

std::string label_or_empty(const Labels& labels, const char* name) {
  auto it = labels.find(name);
  return it == labels.end() ? std::string() : it->second;
}

}  // namespace

std::string_view metric_prefix(ProbeType type) { return probe_for(type).metric_prefix(); }

// Steps of at most 2.5x from 2.5 us to 10 ms, where veth labs (3-9 us), racks and datacenters (10-500 us) and
// their tails live; steps of about 3x from 10 ms to 3 s for the WAN. 17 bounds, as many as the old set
// (25 us to 5 s), whose bounds from 25 us to 10 ms are kept. Why these:
// docs/netprobify-compatibility.md#rtt-buckets.
const std::vector<double>& rtt_buckets() {
  static const std::vector<double> buckets{2.5e-6, 5e-6, 10e-6, 25e-6, 50e-6,  100e-6, 250e-6, 500e-6, 1e-3,
                                           2.5e-3, 5e-3, 10e-3, 30e-3, 100e-3, 300e-3, 1,      3};
  return buckets;
}

// A family's children by label set, so that they can be found again and removed by label. Only for the
// few process-wide series: a map of label maps per series is what made per-target series expensive.
template <typename T>
class ProberMetrics::SeriesSet : public ProberMetrics::SeriesSetBase {
 public:
  explicit SeriesSet(prometheus::Family<T>& family) : family_(family) {}

  // The child with these labels, created (at 0) on first use.
  T& get(const Labels& labels) {
    auto it = children_.find(labels);
    if (it != children_.end()) return *it->second;
    T& child = family_.Add(labels);
    children_.emplace(labels, &child);
    return child;
  }

  void remove_if(const std::function<bool(const Labels&)>& pred) override {
    for (auto it = children_.begin(); it != children_.end();) {
      if (pred(it->first)) {
        family_.Remove(it->second);
        it = children_.erase(it);
      } else {
        ++it;
      }
    }
  }

 private:
  prometheus::Family<T>& family_;
  std::map<Labels, T*> children_;
};

ProberMetrics::ProberMetrics(std::shared_ptr<prometheus::Registry> registry, std::string probe_name,
                             std::vector<int> percentiles, std::string version)
    : registry_(std::move(registry)),
      probe_name_(std::move(probe_name)),
      percentiles_(std::move(percentiles)),
      version_(std::move(version)),
      targets_(std::make_shared<TargetSeries>(probe_name_, percentiles_)),
      history_(std::make_shared<StatusHistory>()) {
  auto& reg = *registry_;
  auto add = [this]<typename T>(prometheus::Family<T>& family) {
    auto set = std::make_unique<SeriesSet<T>>(family);
    auto* raw = set.get();
    all_.push_back(std::move(set));
    return raw;
  };
  auto gauge = [&](const std::string& name, const std::string& help) {
    return add(prometheus::BuildGauge().Name(name).Help(help).Register(reg));
  };
  // prometheus-cpp renders a family name as given (it does not append _total as prometheus_client does),
  // so counter families carry the _total suffix themselves to expose netprobify's exact series names.
  auto counter = [&](const std::string& name, const std::string& help) {
    return add(prometheus::BuildCounter().Name(name).Help(help).Register(reg));
  };

  netprobe_info_ = gauge("netprobe_info", "netprobe version");
  netprobify_info_ =
      gauge("netprobify_info", "Compatibility: netprobify's info gauge (scapy_version is \"none\")");
  iteration_time_ = gauge("app_iteration_time_seconds",
                          "Time to finish one round of probing: the longest latest iteration of the workers");
  send_window_ =
      gauge("netprobe_iteration_send_seconds",
            "Time to send every probe of an iteration: the longest latest send window of the workers");
  interval_ = gauge("netprobe_interval_seconds", "global.interval: the time between two iterations' starts");
  target_name_dup_ = counter("app_target_name_dup_total", "Duplicate target names");
  process_timed_out_ =
      counter("app_process_timed_out_total", "Probing workers terminated for exceeding global.timeout");
  worker_restarts_ = counter("app_worker_restarts_total", "Probe workers restarted after dying unexpectedly");
  reload_failed_status_ =
      gauge("app_reload_conf_failed_status", "1 when the last configuration reload failed");
  capture_received_ =
      counter("netprobe_capture_packets_received_total", "Packets received by the capture (pcap_stats)");
  send_errors_ =
      counter("netprobe_send_errors_total",
              "Probes not sent (not accounted as sent nor lost), by reason: the kernel's errno class, "
              "no_token or cut_short");
  capture_dropped_ = counter("netprobe_capture_packets_dropped_total",
                             "Packets dropped before the capture could read them (pcap_stats), by source");
  capture_rejected_ = counter("netprobe_capture_rejected_total", "Captured packets rejected, by reason");
  inventory_targets_ =
      gauge("app_inventory_targets", "Targets currently contributed by a dynamic inventory plug-in");
  inventory_failures_ = counter("app_inventory_failures_total",
                                "Dynamic inventory plug-in crashes, hangs and unreadable documents");

  create_process_series();
}

ProberMetrics::~ProberMetrics() = default;

std::shared_ptr<const TextSource> ProberMetrics::target_series() const { return targets_; }

void ProberMetrics::create_process_series() {
  netprobe_info_->get({{"version", version_}}).Set(1);
  netprobify_info_->get({{"version", version_}, {"scapy_version", "none"}}).Set(1);
  const Labels pn{{"probe_name", probe_name_}};
  reload_failed_status_->get(pn).Set(reload_failed_ ? 1 : 0);
  if (interval_s_ > 0) interval_->get(pn).Set(interval_s_);
  process_timed_out_->get(pn);
  worker_restarts_->get(pn);
  capture_received_->get(pn);
  for (size_t e = 0; e < kSendErrorReasons.size(); ++e)
    send_errors_->get({{"probe_name", probe_name_}, {"reason", std::string(kSendErrorReasons[e])}});
  capture_dropped_->get({{"probe_name", probe_name_}, {"source", "kernel"}});
  capture_dropped_->get({{"probe_name", probe_name_}, {"source", "interface"}});
  for (const auto& [inventory, targets] : inventories_) {
    inventory_targets_->get({{"probe_name", probe_name_}, {"inventory", inventory}}).Set(double(targets));
    inventory_failures_->get({{"probe_name", probe_name_}, {"inventory", inventory}});
  }
}

void ProberMetrics::remove_if(const std::function<bool(const Labels&)>& pred) {
  for (auto& set : all_) set->remove_if(pred);
}

void ProberMetrics::record(const IterationReport& report, uint32_t worker) {
  for (const GroupMeasurement& gm : report.groups) targets_->record(gm, report.sources);
  history_->record(report, std::time(nullptr));
  for (const TargetEvents& te : report.targets) targets_->record(te);

  const Labels pn{{"probe_name", probe_name_}};
  capture_received_->get(pn).Increment(static_cast<double>(report.capture_received));
  for (const auto& [reason, count] : report.send_errors) {
    send_errors_->get({{"probe_name", probe_name_}, {"reason", bounded_label(send_error_reasons_, reason)}})
        .Increment(static_cast<double>(count));
  }
  capture_dropped_->get({{"probe_name", probe_name_}, {"source", "kernel"}})
      .Increment(static_cast<double>(report.capture_dropped));
  capture_dropped_->get({{"probe_name", probe_name_}, {"source", "interface"}})
      .Increment(static_cast<double>(report.capture_if_dropped));
  for (const auto& [reason, count] : report.rejected) {
    capture_rejected_
        ->get({{"probe_name", probe_name_}, {"reason", bounded_label(rejected_reasons_, reason)}})
        .Increment(static_cast<double>(count));
  }
  latest_iteration_[worker] = {report.duration_s, report.send_window_s};
  set_iteration_gauges();
}

void ProberMetrics::set_iteration_gauges() {
  if (latest_iteration_.empty()) return;
  double duration = 0, send = 0;
  for (const auto& [w, d] : latest_iteration_) {
    duration = std::max(duration, d.first);
    send = std::max(send, d.second);
  }
  const Labels pn{{"probe_name", probe_name_}};
  iteration_time_->get(pn).Set(duration);
  send_window_->get(pn).Set(send);
}

void ProberMetrics::set_worker_count(uint32_t workers) {
  std::erase_if(latest_iteration_, [&](const auto& e) { return e.first >= workers; });
  set_iteration_gauges();
}

// Reasons come from a worker, which parses hostile packets: a worker that invented new reasons every
// iteration must not grow the series without bound. Past kMaxReasons distinct values, "other".
const std::string& ProberMetrics::bounded_label(std::set<std::string>& seen, const std::string& value) {
  static const std::string other = "other";
  if (seen.count(value)) return value;
  if (seen.size() >= kMaxReasons) return other;
  return *seen.insert(value).first;
}

void ProberMetrics::declare_target(const TargetConfig& target, AddressFamily af) {
  targets_->declare(target, af);
}

void ProberMetrics::clear_target(const std::string& target) { targets_->clear_target(target); }

void ProberMetrics::clear_target_measurements(const std::string& target) {
  targets_->clear_measurements(target);
}

void ProberMetrics::mark_target_stale(const std::string& target) { targets_->mark_stale(target); }

// No process-wide series has a group label.
void ProberMetrics::clear_group(const std::string& group) { targets_->clear_group(group); }

void ProberMetrics::set_percentiles(std::vector<int> percentiles) {
  targets_->set_percentiles(percentiles);
  percentiles_ = std::move(percentiles);
}

void ProberMetrics::set_path_settings(int window, int series_per_target) {
  targets_->set_path_settings(uint32_t(std::max(window, 1)), uint32_t(std::max(series_per_target, 0)));
}

void ProberMetrics::set_probe_name(std::string probe_name) {
  if (probe_name == probe_name_) return;
  remove_if([&](const Labels& labels) {
    auto it = labels.find("probe_name");
    return it != labels.end() && it->second == probe_name_;
  });
  probe_name_ = std::move(probe_name);
  create_process_series();
  targets_->set_probe_name(probe_name_);
}

void ProberMetrics::set_rtt_histogram(RttHistogram granularity) { targets_->set_rtt_histogram(granularity); }

void ProberMetrics::set_interval(double seconds) {
  interval_s_ = seconds;
  interval_->get({{"probe_name", probe_name_}}).Set(seconds);
}

void ProberMetrics::set_reload_failed(bool failed) {
  reload_failed_ = failed;
  reload_failed_status_->get({{"probe_name", probe_name_}}).Set(failed ? 1 : 0);
}

void ProberMetrics::inc_worker_restarts() {
  worker_restarts_->get({{"probe_name", probe_name_}}).Increment();
}

void ProberMetrics::inc_process_timed_out() {
  process_timed_out_->get({{"probe_name", probe_name_}}).Increment();
}

void ProberMetrics::set_host_resolution_status(const std::string& target, AddressFamily af, int status) {
  targets_->set_resolution_status(target, af, status);
}

void ProberMetrics::set_target_health(const std::string& target, const TargetHealth& health,
                                      const HealthSettings& settings) {
  targets_->set_health(target, health, settings);
}

void ProberMetrics::inc_host_resolution_change(const std::string& target, AddressFamily af) {
  targets_->inc_resolution_change(target, af);
}

void ProberMetrics::inc_target_name_dup(const std::string& target_name) {
  target_name_dup_->get({{"target_name", target_name}}).Increment();
}

void ProberMetrics::declare_inventory(const std::string& inventory) {
  inventories_.try_emplace(inventory, 0);
  const Labels labels{{"probe_name", probe_name_}, {"inventory", inventory}};
  inventory_targets_->get(labels).Set(double(inventories_[inventory]));
  inventory_failures_->get(labels);
}

void ProberMetrics::set_inventory_targets(const std::string& inventory, size_t targets) {
  inventories_[inventory] = targets;
  inventory_targets_->get({{"probe_name", probe_name_}, {"inventory", inventory}}).Set(double(targets));
}

void ProberMetrics::inc_inventory_failure(const std::string& inventory) {
  inventories_.try_emplace(inventory, 0);
  inventory_failures_->get({{"probe_name", probe_name_}, {"inventory", inventory}}).Increment();
}

void ProberMetrics::clear_inventory(const std::string& inventory) {
  inventories_.erase(inventory);
  const auto match = [&](const Labels& labels) { return label_or_empty(labels, "inventory") == inventory; };
  inventory_targets_->remove_if(match);
  inventory_failures_->remove_if(match);
}

}  // namespace netprobe
