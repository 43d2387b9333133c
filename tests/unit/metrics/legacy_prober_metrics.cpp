#include "tests/unit/metrics/legacy_prober_metrics.h"

#include <algorithm>
#include <cmath>
#include <optional>
#include <set>
#include <unordered_map>

#include <fmt/format.h>

namespace netprobe::legacy {

namespace {

using prometheus::Counter;
using prometheus::Gauge;
using prometheus::Histogram;
using prometheus::Labels;

std::string label_or_empty(const Labels& labels, const char* name) {
  auto it = labels.find(name);
  return it == labels.end() ? std::string() : it->second;
}

size_t type_index(ProbeType type) { return static_cast<size_t>(type); }

}  // namespace

template <typename T>
class ProberMetrics::SeriesSet : public ProberMetrics::SeriesSetBase {
 public:
  explicit SeriesSet(prometheus::Family<T>& family) : family_(family) {}

  // The child with these labels, created (at 0) on first use. `args` are the constructor arguments
  // (the bucket boundaries for a histogram).
  template <typename... Args>
  T& get(const Labels& labels, Args&&... args) {
    auto it = children_.find(labels);
    if (it != children_.end()) return *it->second;
    T& child = family_.Add(labels, std::forward<Args>(args)...);
    it = children_.emplace(labels, &child).first;
    by_destination_[label_or_empty(labels, "destination")].push_back(it);
    return child;
  }

  void remove_if(const std::function<bool(const Labels&)>& pred) override {
    for (auto it = children_.begin(); it != children_.end();) {
      if (pred(it->first)) {
        unindex(it);
        family_.Remove(it->second);
        it = children_.erase(it);
      } else {
        ++it;
      }
    }
  }

  void remove_if_destination(const std::string& destination,
                             const std::function<bool(const Labels&)>& pred) override {
    auto d = by_destination_.find(destination);
    if (d == by_destination_.end()) return;
    std::vector<Iterator>& of = d->second;
    for (size_t i = 0; i < of.size();) {
      const Iterator it = of[i];
      if (!pred(it->first)) {
        ++i;
        continue;
      }
      of[i] = of.back();
      of.pop_back();
      family_.Remove(it->second);
      children_.erase(it);
    }
    if (of.empty()) by_destination_.erase(d);
  }

  // Set by the per-type families only: lets declare_target drop a target's series of another type.
  std::optional<ProbeType> owner;

 private:
  using Iterator = typename std::map<Labels, T*>::iterator;  // stable until erased
  void unindex(Iterator it) {
    auto d = by_destination_.find(label_or_empty(it->first, "destination"));
    if (d == by_destination_.end()) return;
    std::erase(d->second, it);
    if (d->second.empty()) by_destination_.erase(d);
  }

  prometheus::Family<T>& family_;
  std::map<Labels, T*> children_;
  std::unordered_map<std::string, std::vector<Iterator>> by_destination_;  // "" for series without one
};

struct ProberMetrics::TypeFamilies {
  SeriesSet<Counter>* sent = nullptr;
  SeriesSet<Counter>* loss = nullptr;
  SeriesSet<Gauge>* loss_ratio = nullptr;
  SeriesSet<Gauge>* round_trip = nullptr;
  SeriesSet<Histogram>* rtt = nullptr;
  SeriesSet<Counter>* icmp_errors = nullptr;
  SeriesSet<Gauge>* match_ack_fail = nullptr;  // TCPsyn only
  SeriesSet<Gauge>* port_mismatch = nullptr;   // TCPsyn and UDPunreachable only
};

ProberMetrics::ProberMetrics(std::shared_ptr<prometheus::Registry> registry, std::string probe_name,
                             std::vector<int> percentiles, std::string version)
    : registry_(std::move(registry)),
      probe_name_(std::move(probe_name)),
      percentiles_(std::move(percentiles)),
      version_(std::move(version)) {
  auto& reg = *registry_;
  auto add = [this]<typename T>(prometheus::Family<T>& family, std::optional<ProbeType> owner = {}) {
    auto set = std::make_unique<SeriesSet<T>>(family);
    set->owner = owner;
    auto* raw = set.get();
    all_.push_back(std::move(set));
    return raw;
  };
  auto gauge = [&](const std::string& name, const std::string& help, std::optional<ProbeType> owner = {}) {
    return add(prometheus::BuildGauge().Name(name).Help(help).Register(reg), owner);
  };
  auto counter = [&](const std::string& name, const std::string& help, std::optional<ProbeType> owner = {}) {
    return add(prometheus::BuildCounter().Name(name).Help(help).Register(reg), owner);
  };

  netprobe_info_ = gauge("netprobe_info", "netprobe version");
  netprobify_info_ =
      gauge("netprobify_info", "Compatibility: netprobify's info gauge (scapy_version is \"none\")");

  // prometheus-cpp renders a family name as given (it does not append _total as prometheus_client does),
  // so counter families carry the _total suffix themselves to expose netprobify's exact series names.
  for (ProbeType type : {ProbeType::kTcpSyn, ProbeType::kIcmpPing, ProbeType::kUdpUnreachable}) {
    const std::string p(metric_prefix(type));
    const std::string t(to_string(type));
    auto tf = std::make_unique<TypeFamilies>();
    tf->sent = counter(p + "_sent_total", t + " probes sent (answered + lost)", type);
    tf->loss = counter(p + "_loss_total", t + " probes without an answer", type);
    tf->loss_ratio = gauge(p + "_loss_ratio", t + " loss ratio of the last iteration", type);
    tf->round_trip = gauge(p + "_round_trip_seconds",
                           t + " round-trip time percentile of the last iteration (0 without answer)", type);
    tf->rtt = add(prometheus::BuildHistogram()
                      .Name(p + "_rtt_seconds")
                      .Help(t + " round-trip time of every answered probe")
                      .Register(reg),
                  type);
    tf->icmp_errors =
        counter(p + "_icmp_errors_total", t + " ICMP errors quoting our probes, by type/code", type);
    if (type == ProbeType::kTcpSyn) {
      tf->match_ack_fail = gauge(p + "_match_ack_fail_count",
                                 "TCP answers whose ack matches no probe (gauge used as a counter)", type);
    }
    if (type != ProbeType::kIcmpPing) {
      tf->port_mismatch =
          gauge(p + "_port_mismatch_count",
                t + " answers whose port differs from the probe's (gauge used as a counter)", type);
    }
    types_[type_index(type)] = std::move(tf);
  }

  threshold_ = gauge("threshold", "Configured alerting threshold of a target");
  target_info_ =
      gauge("netprobe_target_info", "A declared target, with its tags (sorted, comma-joined); always 1");
  resolution_status_ =
      gauge("app_host_resolution_status", "1 after a resolution that changed the address, 0 on failure");
  resolution_change_ = counter("app_host_resolution_change_total", "Changes of a target's resolved address");
  time_ooo_ = counter("app_time_ooo_total", "Answers with a negative round-trip time");
  iteration_time_ = gauge("app_iteration_time_seconds",
                          "Time to finish one round of probing: the longest latest iteration of the workers");
  send_window_ =
      gauge("netprobe_iteration_send_seconds",
            "Time to send every probe of an iteration: the longest latest send window of the workers");
  target_name_dup_ = counter("app_target_name_dup_total", "Duplicate target names");
  process_timed_out_ =
      counter("app_process_timed_out_total", "Probing workers terminated for exceeding global.timeout");
  worker_restarts_ = counter("app_worker_restarts_total", "Probe workers restarted after dying unexpectedly");
  reload_failed_status_ =
      gauge("app_reload_conf_failed_status", "1 when the last configuration reload failed");
  late_ = counter("netprobe_late_replies_total", "Answers that arrived after their probe's deadline");
  duplicates_ = counter("netprobe_duplicate_replies_total", "Second and later answers to one probe");
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

Labels ProberMetrics::m5(const std::string& target, AddressFamily af, const std::string& state,
                         const std::string& group) const {
  return {{"probe_name", probe_name_},
          {"destination", target},
          {"address_family", std::string(to_string(af))},
          {"state", state},
          {"group", group}};
}

Labels ProberMetrics::a3(const std::string& target, AddressFamily af) const {
  return {
      {"probe_name", probe_name_}, {"destination", target}, {"address_family", std::string(to_string(af))}};
}

void ProberMetrics::create_process_series() {
  netprobe_info_->get({{"version", version_}}).Set(1);
  netprobify_info_->get({{"version", version_}, {"scapy_version", "none"}}).Set(1);
  const Labels pn{{"probe_name", probe_name_}};
  reload_failed_status_->get(pn).Set(reload_failed_ ? 1 : 0);
  process_timed_out_->get(pn);
  worker_restarts_->get(pn);
  capture_received_->get(pn);
  for (std::string_view reason : netprobe::ProberMetrics::kSendErrorReasons)
    send_errors_->get({{"probe_name", probe_name_}, {"reason", std::string(reason)}});
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

void ProberMetrics::record(const IterationReport& report) {
  const auto& buckets = rtt_buckets();
  std::vector<double> rtts;
  std::vector<double> increments(buckets.size() + 1);
  for (const GroupMeasurement& gm : report.groups) {
    TypeFamilies& tf = *types_[type_index(gm.type)];
    const Labels labels = m5(gm.target, gm.af, gm.state, gm.group);
    tf.sent->get(labels).Increment(static_cast<double>(gm.sent));
    tf.loss->get(labels).Increment(static_cast<double>(gm.lost));
    tf.loss_ratio->get(labels).Set(
        gm.sent == 0 ? 0.0 : static_cast<double>(gm.lost) / static_cast<double>(gm.sent));

    rtts = gm.rtts_s;
    // The engine promises finite RTTs >= 0; a NaN would make the sort undefined, so enforce it here.
    std::erase_if(rtts, [](double v) { return !(v >= 0) || std::isinf(v); });
    std::sort(rtts.begin(), rtts.end());
    for (int p : percentiles_) {
      Labels with_p = labels;
      with_p.emplace("percentile", std::to_string(p));
      tf.round_trip->get(with_p).Set(percentile_linear(rtts, p));
    }
    // One pass over the sorted samples instead of one Observe() (and its bucket search) per sample.
    std::fill(increments.begin(), increments.end(), 0.0);
    double sum = 0;
    size_t bucket = 0;
    for (double rtt : rtts) {
      while (bucket < buckets.size() && rtt > buckets[bucket]) ++bucket;
      increments[bucket] += 1;
      sum += rtt;
    }
    tf.rtt->get(labels, buckets).ObserveMultiple(increments, sum);

    for (const auto& [icmp, count] : gm.icmp_errors) {
      Labels with_icmp = labels;
      with_icmp.emplace("icmp", icmp);
      tf.icmp_errors->get(with_icmp).Increment(static_cast<double>(count));
    }

    const std::string af(to_string(gm.af));
    time_ooo_
        ->get({{"probe_name", probe_name_},
               {"destination", gm.target},
               {"address_family", af},
               {"group", gm.group}})
        .Increment(static_cast<double>(gm.time_ooo));
    const Labels event_labels{{"probe_name", probe_name_},
                              {"destination", gm.target},
                              {"address_family", af},
                              {"group", gm.group},
                              {"type", std::string(to_string(gm.type))}};
    late_->get(event_labels).Increment(static_cast<double>(gm.late));
    duplicates_->get(event_labels).Increment(static_cast<double>(gm.duplicates));
  }

  for (const TargetEvents& te : report.targets) {
    TypeFamilies& tf = *types_[type_index(te.type)];
    const Labels labels = a3(te.target, te.af);
    if (tf.match_ack_fail) tf.match_ack_fail->get(labels).Increment(static_cast<double>(te.match_ack_fail));
    if (tf.port_mismatch) tf.port_mismatch->get(labels).Increment(static_cast<double>(te.port_mismatch));
  }

  const Labels pn{{"probe_name", probe_name_}};
  capture_received_->get(pn).Increment(static_cast<double>(report.capture_received));
  for (const auto& [reason, count] : report.send_errors)
    send_errors_->get({{"probe_name", probe_name_}, {"reason", reason}})
        .Increment(static_cast<double>(count));
  capture_dropped_->get({{"probe_name", probe_name_}, {"source", "kernel"}})
      .Increment(static_cast<double>(report.capture_dropped));
  capture_dropped_->get({{"probe_name", probe_name_}, {"source", "interface"}})
      .Increment(static_cast<double>(report.capture_if_dropped));
  for (const auto& [reason, count] : report.rejected) {
    capture_rejected_->get({{"probe_name", probe_name_}, {"reason", reason}})
        .Increment(static_cast<double>(count));
  }
  iteration_time_->get(pn).Set(report.duration_s);  // one worker: its latest iteration is the longest
  send_window_->get(pn).Set(report.send_window_s);
}

void ProberMetrics::create_target_series(const TargetConfig& target, AddressFamily af) {
  TypeFamilies& tf = *types_[type_index(target.type)];
  const std::string state = target.state_label();
  const std::string af_label(to_string(af));
  for (const std::string& group : target.groups) {
    const Labels labels = m5(target.name, af, state, group);
    tf.sent->get(labels);
    tf.loss->get(labels);
    tf.loss_ratio->get(labels);
    for (int p : percentiles_) {
      Labels with_p = labels;
      with_p.emplace("percentile", std::to_string(p));
      tf.round_trip->get(with_p);
    }
    tf.rtt->get(labels, rtt_buckets());
    time_ooo_->get({{"probe_name", probe_name_},
                    {"destination", target.name},
                    {"address_family", af_label},
                    {"group", group}});
    const Labels event_labels{{"probe_name", probe_name_},
                              {"destination", target.name},
                              {"address_family", af_label},
                              {"group", group},
                              {"type", std::string(to_string(target.type))}};
    late_->get(event_labels);
    duplicates_->get(event_labels);

    auto set_threshold = [&](const char* kind, double value) {
      threshold_
          ->get({{"probe_name", probe_name_},
                 {"destination", target.name},
                 {"address_family", af_label},
                 {"type", kind},
                 {"state", state},
                 {"alert_level", std::string(to_string(target.alert_level))},
                 {"group", group}})
          .Set(value);
    };
    if (target.threshold.latency) set_threshold("latency", *target.threshold.latency);
    if (target.threshold.loss) set_threshold("loss", *target.threshold.loss);
  }
  std::string tags;
  for (const auto& tag : target.tags) tags += (tags.empty() ? "" : ",") + tag;
  target_info_
      ->get({{"probe_name", probe_name_},
             {"destination", target.name},
             {"address_family", af_label},
             {"tags", tags},
             {"type", std::string(to_string(target.type))}})
      .Set(1);
  if (!target.groups.empty()) {
    if (tf.match_ack_fail) tf.match_ack_fail->get(a3(target.name, af));
    if (tf.port_mismatch) tf.port_mismatch->get(a3(target.name, af));
  }
}

void ProberMetrics::declare_target(const TargetConfig& target, AddressFamily af) {
  const std::string state = target.state_label();
  const std::string af_label(to_string(af));
  const std::string type_label(to_string(target.type));
  const std::set<std::string> groups(target.groups.begin(), target.groups.end());
  // Thresholds are always rebuilt (an alert_level or value change must not leave the old series behind);
  // other series survive only if they still describe this target as configured now.
  auto stale = [&](const Labels& labels) {
    if (label_or_empty(labels, "destination") != target.name) return false;
    if (labels.count("alert_level") || labels.count("tags")) return true;
    auto differs = [&](const char* name, const std::string& want) {
      auto it = labels.find(name);
      return it != labels.end() && it->second != want;
    };
    if (differs("address_family", af_label) || differs("state", state) || differs("type", type_label))
      return true;
    auto g = labels.find("group");
    return g != labels.end() && !groups.count(g->second);
  };
  for (auto& set : all_) set->remove_if_destination(target.name, stale);
  // Series of the per-type families of another probe type (the target changed type).
  for (size_t i = 0; i < types_.size(); ++i) {
    if (i == type_index(target.type) || !types_[i]) continue;  // no UDPquery here: netprobify's types only
    TypeFamilies& tf = *types_[i];
    auto any = [](const Labels&) { return true; };
    for (SeriesSetBase* set :
         std::initializer_list<SeriesSetBase*>{tf.sent, tf.loss, tf.loss_ratio, tf.round_trip, tf.rtt,
                                               tf.icmp_errors, tf.match_ack_fail, tf.port_mismatch}) {
      if (set) set->remove_if_destination(target.name, any);
    }
  }
  create_target_series(target, af);
  declared_.insert_or_assign(target.name, Declared{target, af});
}

void ProberMetrics::clear_target(const std::string& target) {
  for (auto& set : all_) set->remove_if_destination(target, [](const Labels&) { return true; });
  declared_.erase(target);
}

void ProberMetrics::clear_target_measurements(const std::string& target) {
  auto any = [](const Labels&) { return true; };
  for (auto& tf : types_) {
    if (!tf) continue;  // UDPquery: not a netprobify type
    for (SeriesSetBase* set :
         std::initializer_list<SeriesSetBase*>{tf->sent, tf->loss, tf->loss_ratio, tf->round_trip, tf->rtt,
                                               tf->icmp_errors, tf->match_ack_fail, tf->port_mismatch}) {
      if (set) set->remove_if_destination(target, any);
    }
  }
  time_ooo_->remove_if_destination(target, any);
  late_->remove_if_destination(target, any);
  duplicates_->remove_if_destination(target, any);
}

void ProberMetrics::clear_group(const std::string& group) {
  remove_if([&](const Labels& labels) {
    auto it = labels.find("group");
    return it != labels.end() && it->second == group;
  });
  for (auto& [name, declared] : declared_) std::erase(declared.config.groups, group);
}

void ProberMetrics::set_percentiles(std::vector<int> percentiles) {
  std::set<std::string> keep;
  for (int p : percentiles) keep.insert(std::to_string(p));
  for (auto& tf : types_) {
    if (!tf) continue;
    tf->round_trip->remove_if(
        [&](const Labels& labels) { return !keep.count(label_or_empty(labels, "percentile")); });
  }
  percentiles_ = std::move(percentiles);
  for (const auto& [name, declared] : declared_) create_target_series(declared.config, declared.af);
}

void ProberMetrics::set_probe_name(std::string probe_name) {
  if (probe_name == probe_name_) return;
  remove_if([&](const Labels& labels) {
    auto it = labels.find("probe_name");
    return it != labels.end() && it->second == probe_name_;
  });
  probe_name_ = std::move(probe_name);
  create_process_series();
  for (const auto& [name, declared] : declared_) create_target_series(declared.config, declared.af);
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
  resolution_status_->get(a3(target, af)).Set(status);
}

void ProberMetrics::inc_host_resolution_change(const std::string& target, AddressFamily af) {
  resolution_change_->get(a3(target, af)).Increment();
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

}  // namespace netprobe::legacy
