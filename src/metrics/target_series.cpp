#include "metrics/target_series.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <iterator>
#include <stdexcept>

#include "metrics/prober_metrics.h"

namespace netprobe {

enum class TargetSeries::Kind : uint8_t {
  kSent,
  kLoss,
  kLossRatio,
  kRoundTrip,
  kRtt,
  kIcmpErrors,
  kMatchAckFail,
  kPortMismatch,
  kThreshold,
  kResolutionStatus,
  kResolutionChange,
  kTimeOoo,
  kLate,
  kDuplicates,
  kPaths,
  kPathsWithLoss,
  kWorstPathLossRatio,
  kPathLossRatio,
  kPathSent,
  kTargetInfo,
  kFailing,
  kConsecutiveFailures,
  kConsecutiveSuccesses,
  kStateChanges,
  kLastChange,
  kHealthThreshold,
  kUnexpected,  // UDPquery
  kClosed,
};

struct TargetSeries::Family {
  std::string name;
  std::string header;  // "# HELP ...\n# TYPE ...\n", as TextSerializer writes them
  Kind kind;
  ProbeType type;  // for the per-type families
};

namespace {

const std::array<std::string, 18>& le_labels() {
  static const std::array<std::string, 18> labels = [] {
    std::array<std::string, 18> out;
    const auto& bounds = rtt_buckets();
    for (size_t i = 0; i < bounds.size(); ++i) append_sample_value(out[i], bounds[i]);
    out[bounds.size()] = "+Inf";
    return out;
  }();
  return labels;
}

bool has_event_families(ProbeType type) { return type != ProbeType::kIcmpPing; }

std::string escaped(std::string_view s) {
  std::string out;
  append_label_value(out, s);
  return out;
}

void append_uint(std::string& out, uint64_t v) {
  char buf[24];
  out.append(buf, std::to_chars(buf, buf + sizeof buf, v).ptr);
}

}  // namespace

void TargetSeries::Row::reset_type_series() {
  sent = loss = loss_ratio = unexpected = closed = 0;
  rtt_sum = 0;
  rtt.fill(0);
  std::fill(round_trip.begin(), round_trip.end(), 0.0);
  icmp.clear();
  paths.clear();
  measured_paths = false;
  path_series.clear();
}

TargetSeries::TargetSeries(std::string probe_name, std::vector<int> percentiles)
    : probe_name_(std::move(probe_name)), probe_name_label_(escaped(probe_name_)) {
  if (rtt_buckets().size() + 1 != kBuckets)
    throw std::logic_error("rtt_buckets() and TargetSeries::kBuckets differ");
  set_percentiles(std::move(percentiles));

  auto add = [this](std::string name, const std::string& help, const char* type, Kind kind,
                    ProbeType probe = ProbeType::kTcpSyn) {
    std::string header = "# HELP " + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
    families_.push_back(Family{std::move(name), std::move(header), kind, probe});
  };
  // Names and HELP texts as ProberMetrics registered them with prometheus-cpp (names and labels:
  // docs/netprobify-compatibility.md#metrics).
  for (ProbeType type :
       {ProbeType::kTcpSyn, ProbeType::kIcmpPing, ProbeType::kUdpUnreachable, ProbeType::kUdpQuery}) {
    const std::string p(metric_prefix(type));
    const std::string t(to_string(type));
    add(p + "_sent_total", t + " probes sent (answered + lost)", "counter", Kind::kSent, type);
    add(p + "_loss_total", t + " probes without an answer", "counter", Kind::kLoss, type);
    add(p + "_loss_ratio", t + " loss ratio of the last iteration", "gauge", Kind::kLossRatio, type);
    add(p + "_round_trip_seconds", t + " round-trip time percentile of the last iteration (0 without answer)",
        "gauge", Kind::kRoundTrip, type);
    add(p + "_rtt_seconds", t + " round-trip time of every answered probe", "histogram", Kind::kRtt, type);
    add(p + "_icmp_errors_total", t + " ICMP errors quoting our probes, by type/code", "counter",
        Kind::kIcmpErrors, type);
    if (type == ProbeType::kUdpQuery) {  // docs/service-checks.md#udpquery
      add(p + "_unexpected_total",
          t + " answers that are not what expect says (counted in sent, not in loss)", "counter",
          Kind::kUnexpected, type);
      add(p + "_closed_total",
          t + " probes answered by an ICMP port unreachable (counted in sent, not in loss)", "counter",
          Kind::kClosed, type);
    }
    if (type == ProbeType::kTcpSyn) {
      add(p + "_match_ack_fail_count", "TCP answers whose ack matches no probe (gauge used as a counter)",
          "gauge", Kind::kMatchAckFail, type);
    }
    // Per-path results (docs/paths.md): netprobe's own families.
    add(p + "_paths", t + " flows (5-tuples: ECMP paths) probed in the last iteration", "gauge", Kind::kPaths,
        type);
    add(p + "_paths_with_loss", t + " flows losing significantly more than the others over the path window",
        "gauge", Kind::kPathsWithLoss, type);
    add(p + "_worst_path_loss_ratio", t + " highest loss ratio of one flow over the path window", "gauge",
        Kind::kWorstPathLossRatio, type);
    add(p + "_path_loss_ratio",
        t + " loss ratio over the path window of a flow found lossy (worst flows only)", "gauge",
        Kind::kPathLossRatio, type);
    add(p + "_path_sent", t + " probes sent over the path window on a flow found lossy (worst flows only)",
        "gauge", Kind::kPathSent, type);
    if (has_event_families(type)) {
      add(p + "_port_mismatch_count",
          t + " answers whose port differs from the probe's (gauge used as a counter)", "gauge",
          Kind::kPortMismatch, type);
    }
  }
  add("threshold", "Configured alerting threshold of a target", "gauge", Kind::kThreshold);
  // Tags in one info series per target rather than a label on every series (docs/architecture.md): join
  // them in PromQL with `* on(destination) group_left(tags) netprobe_target_info`.
  add("netprobe_target_info", "A declared target, with its tags (sorted, comma-joined); always 1", "gauge",
      Kind::kTargetInfo);
  // Target state with hysteresis (src/health, docs/alerting.md).
  add("netprobe_target_failing",
      "1 while the target is failing: failing_threshold consecutive failed iterations, until "
      "passing_threshold "
      "consecutive passed ones",
      "gauge", Kind::kFailing);
  add("netprobe_target_consecutive_failures", "Failed iterations in a row (0 after a passed one)", "gauge",
      Kind::kConsecutiveFailures);
  add("netprobe_target_consecutive_successes", "Passed iterations in a row (0 after a failed one)", "gauge",
      Kind::kConsecutiveSuccesses);
  add("netprobe_target_state_changes_total", "Changes of netprobe_target_failing", "counter",
      Kind::kStateChanges);
  add("netprobe_target_last_change_timestamp_seconds",
      "Unix time of the last change of netprobe_target_failing (before any: when the target was first seen)",
      "gauge", Kind::kLastChange);
  add("netprobe_target_health_threshold",
      "The target's health settings: failing_iterations, passing_iterations, sites, loss_ratio, rtt_seconds, "
      "rtt_percentile",
      "gauge", Kind::kHealthThreshold);
  add("app_host_resolution_status", "1 after a resolution that changed the address, 0 on failure", "gauge",
      Kind::kResolutionStatus);
  add("app_host_resolution_change_total", "Changes of a target's resolved address", "counter",
      Kind::kResolutionChange);
  add("app_time_ooo_total", "Answers with a negative round-trip time", "counter", Kind::kTimeOoo);
  add("netprobe_late_replies_total", "Answers that arrived after their probe's deadline", "counter",
      Kind::kLate);
  add("netprobe_duplicate_replies_total", "Second and later answers to one probe", "counter",
      Kind::kDuplicates);
}

TargetSeries::~TargetSeries() = default;

uint32_t TargetSeries::intern(std::string_view s) {
  auto it = string_index_.find(s);
  if (it != string_index_.end()) return it->second;
  const auto index = static_cast<uint32_t>(strings_.size());
  strings_.push_back(escaped(s));
  string_index_.emplace(std::string(s), index);
  return index;
}

TargetSeries::Target& TargetSeries::target(std::string_view name) {
  auto it = targets_.find(name);
  if (it == targets_.end()) it = targets_.emplace(std::string(name), Target{}).first;
  return it->second;
}

void TargetSeries::erase_if_empty(std::map<std::string, Target, std::less<>>::iterator it) {
  if (it != targets_.end() && it->second.empty()) targets_.erase(it);
}

TargetSeries::Row& TargetSeries::row(Target& t, AddressFamily af, uint32_t group, ProbeType type,
                                     uint32_t state) {
  auto it = std::find_if(t.rows.begin(), t.rows.end(),
                         [&](const Row& r) { return r.af == af && r.group == group; });
  if (it == t.rows.end()) {
    Row r;
    r.af = af;
    r.group = group;
    r.type = type;
    r.state = state;
    r.round_trip.assign(percentiles_.size(), 0.0);
    t.rows.push_back(std::move(r));
    return t.rows.back();
  }
  if (it->type != type) {  // a series labelled with the old type is not the new type's series
    it->reset_type_series();
    it->late = it->duplicates = 0;
    it->type = type;
  }
  if (it->state != state) {
    it->reset_type_series();
    it->state = state;
  }
  return *it;
}

void TargetSeries::record(const GroupMeasurement& m, std::span<const IpAddress> sources) {
  // Everything that does not need the target's row is computed before taking the lock.
  std::vector<double> sorted = m.rtts_s;
  // The engine promises finite RTTs >= 0; a NaN would make the sort undefined, so enforce it here.
  std::erase_if(sorted, [](double v) { return !(v >= 0) || std::isinf(v); });
  std::sort(sorted.begin(), sorted.end());
  // One pass over the sorted samples instead of a bucket search per sample; the same additions in the same
  // order as prometheus-cpp's Histogram made, so the _sum is bit for bit what it exported.
  std::array<uint64_t, kBuckets> increments{};
  double sum = 0;
  const auto& bounds = rtt_buckets();
  size_t bucket = 0;
  for (double rtt : sorted) {
    while (bucket < bounds.size() && rtt > bounds[bucket]) ++bucket;
    ++increments[bucket];
    sum += rtt;
  }

  std::lock_guard lock(mutex_);
  Row& r = row(target(m.target), m.af, intern(m.group), m.type, intern(m.state));
  r.stale = false;
  r.sent += static_cast<double>(m.sent);
  r.loss += static_cast<double>(m.lost);
  r.unexpected += static_cast<double>(m.unexpected);
  r.closed += static_cast<double>(m.closed);
  r.loss_ratio = m.sent == 0 ? 0.0 : static_cast<double>(m.lost) / static_cast<double>(m.sent);
  for (size_t i = 0; i < percentiles_.size(); ++i)
    r.round_trip[i] = percentile_linear(sorted, percentiles_[i]);
  add_rtts(r, increments, sum);
  for (const auto& [icmp, count] : m.icmp_errors) {
    const uint32_t key = intern(icmp);
    auto it = std::find_if(r.icmp.begin(), r.icmp.end(), [&](const auto& e) { return e.first == key; });
    if (it == r.icmp.end()) it = r.icmp.insert(r.icmp.end(), {key, 0.0});
    it->second += static_cast<double>(count);
  }
  r.time_ooo += static_cast<double>(m.time_ooo);
  r.late += static_cast<double>(m.late);
  r.duplicates += static_cast<double>(m.duplicates);
  record_paths(r, m, sources);
}

// The per-flow test runs here, under the lock: its cost is a few binomial tails per flow of the group.
void TargetSeries::record_paths(Row& r, const GroupMeasurement& m, std::span<const IpAddress> sources) {
  if (m.flows.empty()) return;  // not measured per path (an old worker, or nothing sent)
  r.paths.set_iterations(path_window_);
  r.paths.add(m, sources);
  r.measured_paths = true;
  const PathSummary& s = r.paths.summary();
  r.path_series.clear();
  for (const PathFlow& f : s.lossy) {
    if (r.path_series.size() >= path_series_per_target_) break;
    r.path_series.push_back({s.several_destinations ? escaped(f.key.dst.to_string()) : std::string(),
                             s.several_sources ? escaped(f.key.src.to_string()) : std::string(),
                             f.key.src_port, f.loss_ratio(), double(f.sent)});
  }
}

void TargetSeries::set_path_settings(uint32_t window, uint32_t series_per_target) {
  std::lock_guard lock(mutex_);
  path_window_ = window;
  path_series_per_target_ = series_per_target;
  for (auto& [name, t] : targets_)
    for (Row& r : t.rows)
      if (r.path_series.size() > series_per_target) r.path_series.resize(series_per_target);
}

void TargetSeries::add_rtts(Row& r, const std::array<uint64_t, kBuckets>& increments, double sum) {
  switch (rtt_histogram_) {
    case RttHistogram::kPerTarget:
      for (size_t i = 0; i < kBuckets; ++i) r.rtt[i] += increments[i];
      r.rtt_sum += sum;
      return;
    case RttHistogram::kPerGroup: {
      Aggregate& a = aggregates_[{uint8_t(r.type), uint8_t(r.af), r.group}];
      for (size_t i = 0; i < kBuckets; ++i) a.rtt[i] += increments[i];
      a.sum += sum;
      return;
    }
    case RttHistogram::kNone:
      return;
  }
}

void TargetSeries::create_aggregates(const Declared& d) {
  if (rtt_histogram_ != RttHistogram::kPerGroup) return;
  for (uint32_t group : d.groups) aggregates_.try_emplace({uint8_t(d.type), uint8_t(d.af), group});
}

void TargetSeries::set_rtt_histogram(RttHistogram granularity) {
  std::lock_guard lock(mutex_);
  if (granularity == rtt_histogram_) return;
  // The old choice's series go; the new one's start at 0, never from counts of an earlier period under it.
  for (auto& [name, t] : targets_) {
    for (Row& r : t.rows) {
      r.rtt.fill(0);
      r.rtt_sum = 0;
    }
  }
  aggregates_.clear();
  rtt_histogram_ = granularity;
  for (auto& [name, t] : targets_) {
    if (t.declared) create_aggregates(*t.declared);
  }
}

void TargetSeries::record(const TargetEvents& events) {
  if (!has_event_families(events.type)) return;
  std::lock_guard lock(mutex_);
  Target& t = target(events.target);
  auto it = std::find_if(t.events.begin(), t.events.end(),
                         [&](const Events& e) { return e.type == events.type && e.af == events.af; });
  if (it == t.events.end()) it = t.events.insert(t.events.end(), Events{events.type, events.af});
  it->match_ack_fail += static_cast<double>(events.match_ack_fail);
  it->port_mismatch += static_cast<double>(events.port_mismatch);
}

void TargetSeries::create_declared_series(Target& t) {
  const Declared& d = *t.declared;
  for (uint32_t group : d.groups) row(t, d.af, group, d.type, d.state);
  create_aggregates(d);
  if (!d.groups.empty() && has_event_families(d.type)) {
    auto it = std::find_if(t.events.begin(), t.events.end(),
                           [&](const Events& e) { return e.type == d.type && e.af == d.af; });
    if (it == t.events.end()) t.events.push_back(Events{d.type, d.af});
  }
}

void TargetSeries::declare(const TargetConfig& config, AddressFamily af) {
  std::lock_guard lock(mutex_);
  std::string tags;
  for (const auto& tag : config.tags) tags += (tags.empty() ? "" : ",") + tag;
  Declared d{
      config.type,           af, config.alert_level, intern(config.state_label()), config.threshold.latency,
      config.threshold.loss, {}, escaped(tags)};
  for (const auto& g : config.groups) {
    const uint32_t group = intern(g);
    if (std::find(d.groups.begin(), d.groups.end(), group) == d.groups.end()) d.groups.push_back(group);
  }
  Target& t = target(config.name);
  // Series that no longer describe the target as configured: another address family, a group it left,
  // the event gauges of another probe type.
  std::erase_if(t.rows, [&](const Row& r) {
    return r.af != af || std::find(d.groups.begin(), d.groups.end(), r.group) == d.groups.end();
  });
  std::erase_if(t.events, [&](const Events& e) { return e.af != af || e.type != d.type; });
  std::erase_if(t.resolution, [&](const Resolution& r) { return r.af != af; });
  t.declared = std::move(d);
  create_declared_series(t);
}

void TargetSeries::set_health(std::string_view name, const TargetHealth& health,
                              const HealthSettings& settings) {
  std::lock_guard lock(mutex_);
  target(name).health = Health{health, settings};
}

void TargetSeries::clear_target(std::string_view name) {
  std::lock_guard lock(mutex_);
  if (auto it = targets_.find(name); it != targets_.end()) targets_.erase(it);
}

void TargetSeries::clear_measurements(std::string_view name) {
  std::lock_guard lock(mutex_);
  auto it = targets_.find(name);
  if (it == targets_.end()) return;
  it->second.rows.clear();
  it->second.events.clear();
  erase_if_empty(it);
}

void TargetSeries::mark_stale(std::string_view name) {
  std::lock_guard lock(mutex_);
  auto it = targets_.find(name);
  if (it == targets_.end()) return;
  for (Row& r : it->second.rows) r.stale = true;
}

void TargetSeries::clear_group(std::string_view group) {
  std::lock_guard lock(mutex_);
  auto found = string_index_.find(group);
  if (found == string_index_.end()) return;
  const uint32_t g = found->second;
  std::erase_if(aggregates_, [&](const auto& a) { return std::get<2>(a.first) == g; });
  for (auto it = targets_.begin(); it != targets_.end();) {
    Target& t = it->second;
    std::erase_if(t.rows, [&](const Row& r) { return r.group == g; });
    if (t.declared) std::erase(t.declared->groups, g);
    auto next = std::next(it);
    erase_if_empty(it);
    it = next;
  }
}

void TargetSeries::set_percentiles(std::vector<int> percentiles) {
  std::vector<int> unique;
  for (int p : percentiles) {
    if (std::find(unique.begin(), unique.end(), p) == unique.end()) unique.push_back(p);
  }
  std::lock_guard lock(mutex_);
  // Each row keeps the value of a percentile it had, a new one starts at 0.
  std::vector<int> index(unique.size(), -1);
  for (size_t i = 0; i < unique.size(); ++i) {
    auto it = std::find(percentiles_.begin(), percentiles_.end(), unique[i]);
    if (it != percentiles_.end()) index[i] = static_cast<int>(it - percentiles_.begin());
  }
  std::vector<double> values;
  for (auto& [name, t] : targets_) {
    for (Row& r : t.rows) {
      values.assign(unique.size(), 0.0);
      for (size_t i = 0; i < unique.size(); ++i) {
        if (index[i] >= 0) values[i] = r.round_trip[static_cast<size_t>(index[i])];
      }
      r.round_trip = values;
    }
  }
  percentiles_ = std::move(unique);
  percentile_labels_.clear();
  for (int p : percentiles_) percentile_labels_.push_back(std::to_string(p));
  for (auto& [name, t] : targets_) {
    if (t.declared) create_declared_series(t);
  }
}

void TargetSeries::set_probe_name(std::string probe_name) {
  std::lock_guard lock(mutex_);
  if (probe_name == probe_name_) return;
  // Every series carries the probe name: the old ones go, declared targets start again at 0 under the new
  // one.
  aggregates_.clear();
  for (auto it = targets_.begin(); it != targets_.end();) {
    Target& t = it->second;
    t.rows.clear();
    t.events.clear();
    t.resolution.clear();
    if (t.declared) create_declared_series(t);
    auto next = std::next(it);
    erase_if_empty(it);
    it = next;
  }
  probe_name_label_ = escaped(probe_name);
  probe_name_ = std::move(probe_name);
}

void TargetSeries::set_resolution_status(std::string_view name, AddressFamily af, double status) {
  std::lock_guard lock(mutex_);
  Target& t = target(name);
  auto it =
      std::find_if(t.resolution.begin(), t.resolution.end(), [&](const Resolution& r) { return r.af == af; });
  if (it == t.resolution.end()) it = t.resolution.insert(t.resolution.end(), Resolution{af});
  it->has_status = true;
  it->status = status;
}

void TargetSeries::inc_resolution_change(std::string_view name, AddressFamily af) {
  std::lock_guard lock(mutex_);
  Target& t = target(name);
  auto it =
      std::find_if(t.resolution.begin(), t.resolution.end(), [&](const Resolution& r) { return r.af == af; });
  if (it == t.resolution.end()) it = t.resolution.insert(t.resolution.end(), Resolution{af});
  it->has_change = true;
  it->change += 1;
}

size_t TargetSeries::target_count() const {
  std::lock_guard lock(mutex_);
  return targets_.size();
}

// ---- rendering ----
//
// Labels are written in the order prometheus-cpp writes them (sorted by name, `le` last), values with
// append_sample_value: the lines are byte for byte those TextSerializer wrote for the same series.

// Writes the sample lines of one (family, target): one function per shape of label set.
class TargetSeries::SampleWriter {
 public:
  SampleWriter(const TargetSeries& series, std::string& out, const Family& f, bool& header,
               std::string_view name)
      : s_(series), out_(out), f_(f), header_(header), name_(name) {}

  // Sent, loss and loss ratio: netprobify's measurement label set, gauges hidden while stale.
  void measurements(const Target& t) {
    for (const Row& r : t.rows) {
      if (r.type != f_.type || (r.stale && f_.kind == Kind::kLossRatio)) continue;
      begin();
      measurement_labels(r);
      end(f_.kind == Kind::kSent         ? r.sent
          : f_.kind == Kind::kLoss       ? r.loss
          : f_.kind == Kind::kUnexpected ? r.unexpected
          : f_.kind == Kind::kClosed     ? r.closed
                                         : r.loss_ratio);
    }
  }

  void round_trips(const Target& t) {
    for (const Row& r : t.rows) {
      if (r.type != f_.type || r.stale) continue;
      for (size_t i = 0; i < s_.percentiles_.size(); ++i) {
        begin();
        measurement_labels(r, "percentile", s_.percentile_labels_[i]);
        end(r.round_trip[i]);
      }
    }
  }

  // global.rtt_histogram per_target only.
  void histograms(const Target& t) {
    if (s_.rtt_histogram_ != RttHistogram::kPerTarget) return;
    for (const Row& r : t.rows) {
      if (r.type != f_.type) continue;
      histogram(r.rtt, r.rtt_sum, [&] { measurement_labels(r); });
    }
  }

  // global.rtt_histogram per_group: address_family, group, probe_name.
  void aggregate(const AggregateKey& key, const Aggregate& a) {
    histogram(a.rtt, a.sum, [&] {
      out_ += to_string(static_cast<AddressFamily>(std::get<1>(key)));
      out_ += "\",group=\"";
      out_ += s_.strings_[std::get<2>(key)];
      probe_name();
    });
  }

  void icmp_errors(const Target& t) {
    for (const Row& r : t.rows) {
      if (r.type != f_.type) continue;
      for (const auto& [icmp, count] : r.icmp) {
        begin();
        measurement_labels(r, "icmp", s_.strings_[icmp]);
        end(count);
      }
    }
  }

  // Per-path gauges of the last iteration, hidden while stale, and only once a report measured them.
  void paths(const Target& t) {
    for (const Row& r : t.rows) {
      if (r.type != f_.type || r.stale || !r.measured_paths) continue;
      const PathSummary& p = r.paths.summary();
      begin();
      measurement_labels(r);
      end(f_.kind == Kind::kPaths           ? double(p.paths)
          : f_.kind == Kind::kPathsWithLoss ? double(p.paths_with_loss)
                                            : p.worst_loss_ratio);
    }
  }

  // The target's worst flagged flows over all its groups, at most path_series_per_target_ of them.
  void flow_series(const Target& t) {
    std::vector<std::pair<const Row*, const FlowSeries*>> worst;
    for (const Row& r : t.rows) {
      if (r.type != f_.type || r.stale) continue;
      for (const FlowSeries& f : r.path_series) worst.emplace_back(&r, &f);
    }
    const size_t n = std::min<size_t>(worst.size(), s_.path_series_per_target_);
    std::partial_sort(worst.begin(), worst.begin() + long(n), worst.end(), [](const auto& a, const auto& b) {
      return a.second->loss_ratio != b.second->loss_ratio ? a.second->loss_ratio > b.second->loss_ratio
                                                          : a.second->sent > b.second->sent;
    });
    worst.resize(n);
    // Rendered in row order, so that a scrape's series come in a stable order.
    std::stable_sort(worst.begin(), worst.end(), [](const auto& a, const auto& b) {
      return a.first != b.first ? a.first < b.first : a.second < b.second;
    });
    for (const auto& [r, f] : worst) {
      begin();
      // Labels sorted by name: address_family, destination, dst, group, probe_name, src, src_port, state.
      out_ += to_string(r->af);
      destination();
      if (!f->dst.empty()) {
        out_ += "\",dst=\"";
        out_ += f->dst;
      }
      out_ += "\",group=\"";
      out_ += s_.strings_[r->group];
      out_ += "\",probe_name=\"";
      out_ += s_.probe_name_label_;
      if (!f->src.empty()) {
        out_ += "\",src=\"";
        out_ += f->src;
      }
      out_ += "\",src_port=\"";
      append_uint(out_, f->src_port);
      out_ += "\",state=\"";
      out_ += s_.strings_[r->state];
      out_ += '"';
      end(f_.kind == Kind::kPathLossRatio ? f->loss_ratio : f->sent);
    }
  }

  // match_ack_fail and port_mismatch: per target and family, no group.
  void events(const Target& t) {
    for (const Events& e : t.events) {
      if (e.type != f_.type) continue;
      begin();
      out_ += to_string(e.af);
      destination();
      probe_name();
      end(f_.kind == Kind::kMatchAckFail ? e.match_ack_fail : e.port_mismatch);
    }
  }

  void thresholds(const Target& t) {
    if (!t.declared) return;
    for (uint32_t group : t.declared->groups) {
      for (const auto& [kind, value] :
           {std::pair{"latency", t.declared->latency}, std::pair{"loss", t.declared->loss}}) {
        if (!value) continue;
        begin();
        out_ += to_string(t.declared->af);
        out_ += "\",alert_level=\"";
        out_ += to_string(t.declared->alert_level);
        destination();
        out_ += "\",group=\"";
        out_ += s_.strings_[group];
        out_ += "\",probe_name=\"";
        out_ += s_.probe_name_label_;
        out_ += "\",state=\"";
        out_ += s_.strings_[t.declared->state];
        out_ += "\",type=\"";
        out_ += kind;
        out_ += '"';
        end(*value);
      }
    }
  }

  // address_family, destination, probe_name, tags, type: one per declared target.
  void target_info(const Target& t) {
    if (!t.declared) return;
    begin();
    out_ += to_string(t.declared->af);
    destination();
    out_ += "\",probe_name=\"";
    out_ += s_.probe_name_label_;
    out_ += "\",tags=\"";
    out_ += t.declared->tags;
    out_ += "\",type=\"";
    out_ += to_string(t.declared->type);
    out_ += '"';
    end(1);
  }

  // address_family, destination, probe_name[, threshold]: once declared and recorded.
  void health(const Target& t) {
    if (!t.declared || !t.health) return;
    const Health& h = *t.health;
    auto line = [&](double value, const char* threshold = nullptr) {
      begin();
      out_ += to_string(t.declared->af);
      destination();
      out_ += "\",probe_name=\"";
      out_ += s_.probe_name_label_;
      if (threshold) {
        out_ += "\",threshold=\"";
        out_ += threshold;
      }
      out_ += '"';
      end(value);
    };
    switch (f_.kind) {
      case Kind::kFailing:
        return line(h.state.failing ? 1 : 0);
      case Kind::kConsecutiveFailures:
        return line(h.state.consecutive_failures);
      case Kind::kConsecutiveSuccesses:
        return line(h.state.consecutive_successes);
      case Kind::kStateChanges:
        return line(double(h.state.changes));
      case Kind::kLastChange:
        return line(h.state.last_change_s);
      default:
        break;
    }
    // Label values in name order: failing_iterations, loss_ratio, passing_iterations, rtt_percentile, ...
    line(h.settings.failing_threshold, "failing_iterations");
    if (h.settings.loss_ratio_above) line(*h.settings.loss_ratio_above, "loss_ratio");
    line(h.settings.passing_threshold, "passing_iterations");
    if (h.settings.rtt_above_s) {
      line(h.settings.rtt_percentile, "rtt_percentile");
      line(*h.settings.rtt_above_s, "rtt_seconds");
    }
    line(h.settings.site_threshold, "sites");
  }

  void resolutions(const Target& t) {
    for (const Resolution& r : t.resolution) {
      if (f_.kind == Kind::kResolutionStatus ? !r.has_status : !r.has_change) continue;
      begin();
      out_ += to_string(r.af);
      destination();
      probe_name();
      end(f_.kind == Kind::kResolutionStatus ? r.status : r.change);
    }
  }

  // time_ooo (no type label), late and duplicates (type label): per group, no state.
  void reply_counters(const Target& t) {
    for (const Row& r : t.rows) {
      begin();
      out_ += to_string(r.af);
      destination();
      out_ += "\",group=\"";
      out_ += s_.strings_[r.group];
      probe_name();
      if (f_.kind != Kind::kTimeOoo) {
        out_ += ",type=\"";
        out_ += to_string(r.type);
        out_ += '"';
      }
      end(f_.kind == Kind::kTimeOoo ? r.time_ooo : f_.kind == Kind::kLate ? r.late : r.duplicates);
    }
  }

 private:
  // _count, _sum and the cumulative _bucket lines of one histogram; `labels` writes the label set from the
  // address family's value on (begin() wrote `{address_family="`).
  template <typename Labels>
  void histogram(const std::array<uint64_t, kBuckets>& rtt, double sum, const Labels& labels) {
    uint64_t count = 0;
    for (uint64_t c : rtt) count += c;
    begin("_count");
    labels();
    end_count(count);
    begin("_sum");
    labels();
    end(sum);
    uint64_t cumulative = 0;
    for (size_t i = 0; i < kBuckets; ++i) {
      cumulative += rtt[i];
      begin("_bucket");
      labels();
      out_ += ",le=\"";
      out_ += le_labels()[i];
      out_ += '"';
      end_count(cumulative);
    }
  }

  // Starts a sample line: HELP/TYPE before the family's first one (prometheus-cpp leaves out empty families).
  void begin(std::string_view suffix = {}) {
    if (!header_) {
      out_ += f_.header;
      header_ = true;
    }
    out_ += f_.name;
    out_ += suffix;
    out_ += "{address_family=\"";
  }
  void destination() {
    out_ += "\",destination=\"";
    append_label_value(out_, name_);
  }
  // Closes the label value before it and the label set.
  void probe_name() {
    out_ += "\",probe_name=\"";
    out_ += s_.probe_name_label_;
    out_ += '"';
  }
  // address_family, destination, group[, <mid>], probe_name, state: netprobify's measurement label set
  // (+1), docs/netprobify-compatibility.md#metrics.
  void measurement_labels(const Row& r, std::string_view mid_name = {}, std::string_view mid_value = {}) {
    out_ += to_string(r.af);
    destination();
    out_ += "\",group=\"";
    out_ += s_.strings_[r.group];
    if (!mid_name.empty()) {
      out_ += "\",";
      out_ += mid_name;
      out_ += "=\"";
      out_ += mid_value;
    }
    out_ += "\",probe_name=\"";
    out_ += s_.probe_name_label_;
    out_ += "\",state=\"";
    out_ += s_.strings_[r.state];
    out_ += '"';
  }
  void end(double value) {
    out_ += "} ";
    append_sample_value(out_, value);
    out_ += '\n';
  }
  void end_count(uint64_t value) {
    out_ += "} ";
    append_uint(out_, value);
    out_ += '\n';
  }

  const TargetSeries& s_;
  std::string& out_;
  const Family& f_;
  bool& header_;
  std::string_view name_;
};

void TargetSeries::render_target(std::string& out, const Family& f, bool& header, std::string_view name,
                                 const Target& t) const {
  SampleWriter w(*this, out, f, header, name);
  switch (f.kind) {
    case Kind::kSent:
    case Kind::kLoss:
    case Kind::kLossRatio:
    case Kind::kUnexpected:
    case Kind::kClosed:
      return w.measurements(t);
    case Kind::kRoundTrip:
      return w.round_trips(t);
    case Kind::kRtt:
      return w.histograms(t);
    case Kind::kIcmpErrors:
      return w.icmp_errors(t);
    case Kind::kMatchAckFail:
    case Kind::kPortMismatch:
      return w.events(t);
    case Kind::kThreshold:
      return w.thresholds(t);
    case Kind::kTargetInfo:
      return w.target_info(t);
    case Kind::kResolutionStatus:
    case Kind::kResolutionChange:
      return w.resolutions(t);
    case Kind::kFailing:
    case Kind::kConsecutiveFailures:
    case Kind::kConsecutiveSuccesses:
    case Kind::kStateChanges:
    case Kind::kLastChange:
    case Kind::kHealthThreshold:
      return w.health(t);
    case Kind::kTimeOoo:
    case Kind::kLate:
    case Kind::kDuplicates:
      return w.reply_counters(t);
    case Kind::kPaths:
    case Kind::kPathsWithLoss:
    case Kind::kWorstPathLossRatio:
      return w.paths(t);
    case Kind::kPathLossRatio:
    case Kind::kPathSent:
      return w.flow_series(t);
  }
}

bool TargetSeries::render(std::string& out, size_t flush_at, const TextSink& flush) const {
  flush_at = std::max<size_t>(flush_at, 1);
  // Bounds the lock hold of a slice that renders little (a family most targets have no series of).
  constexpr size_t kTargetsPerSlice = 1024;
  auto flush_if_full = [&] {
    if (out.size() < flush_at) return true;
    if (!flush(out)) return false;
    out.clear();
    return true;
  };
  if (!flush_if_full()) return false;
  std::string last;  // the last target rendered in the current family: the next slice starts after it
  uint32_t per_target_rtt = 0;  // probe types whose *_rtt_seconds family had per-target series (bit per type)
  for (const Family& family : families_) {
    bool header = false;
    bool started = false;
    for (;;) {  // one slice per pass; each renders >= 1 target (out is below flush_at on entry)
      bool done;
      {
        std::lock_guard lock(mutex_);
        auto it = started ? targets_.upper_bound(last) : targets_.begin();
        for (size_t visited = 0; it != targets_.end() && out.size() < flush_at && visited < kTargetsPerSlice;
             ++it, ++visited) {
          render_target(out, family, header, it->first, it->second);
        }
        done = it == targets_.end();
        if (!done) {
          last = std::prev(it)->first;
          started = true;
        }
      }
      if (!flush_if_full()) return false;
      if (done) break;
    }
    if (family.kind == Kind::kRtt && header) per_target_rtt |= 1u << unsigned(family.type);
  }
  // The per_group histograms, after the per-target families. A family already rendered per target in this
  // scrape (the choice changed meanwhile) is left out: no family twice.
  for (const Family& family : families_) {
    if (family.kind != Kind::kRtt || (per_target_rtt & (1u << unsigned(family.type)))) continue;
    if (!render_aggregates(out, family, flush_at, flush_if_full)) return false;
  }
  return true;
}

bool TargetSeries::render_aggregates(std::string& out, const Family& family, size_t flush_at,
                                     const std::function<bool()>& flush_if_full) const {
  constexpr size_t kPerSlice = 1024;
  const auto type = uint8_t(family.type);
  bool header = false;
  std::optional<AggregateKey> last;  // as render(): the next slice starts after it
  for (;;) {
    bool done;
    {
      std::lock_guard lock(mutex_);
      auto it = last ? aggregates_.upper_bound(*last) : aggregates_.lower_bound({type, 0, 0});
      SampleWriter w(*this, out, family, header, {});
      for (size_t visited = 0; it != aggregates_.end() && std::get<0>(it->first) == type &&
                               out.size() < flush_at && visited < kPerSlice;
           ++it, ++visited) {
        w.aggregate(it->first, it->second);
      }
      done = it == aggregates_.end() || std::get<0>(it->first) != type;
      if (!done) last = std::prev(it)->first;
    }
    if (!flush_if_full()) return false;
    if (done) return true;
  }
}

}  // namespace netprobe
