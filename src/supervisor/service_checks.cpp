#include "supervisor/service_checks.h"

#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <ctime>
#include <functional>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "dns/cares_resolver.h"
#include "logging/escape.h"

namespace netprobe {
namespace {

std::string escaped(std::string_view s) {
  std::string out;
  append_label_value(out, s);
  return out;
}

// Families in exposition order: name, help, type.
struct Family {
  const char* name;
  const char* help;
  const char* type;
};
constexpr Family kFamilies[] = {
    {"probe_success", "1 when the last service check succeeded (blackbox)", "gauge"},
    {"probe_duration_seconds", "Duration of the last service check (blackbox)", "gauge"},
    {"probe_dns_lookup_time_seconds",
     "Time the last service check spent resolving its destination (0 for an IP literal; blackbox)", "gauge"},
    {"probe_tcp_connect_seconds", "Kernel TCP connect time of the last service check: its latency", "gauge"},
    {"probe_failed_due_to", "1 for the reason the last service check failed", "gauge"},
    {"netprobe_service_check_runs_total", "Service checks run", "counter"},
    {"netprobe_service_check_failures_total", "Failed service checks, by reason", "counter"},
    {"netprobe_service_check_skipped_total",
     "Turns of a service check skipped because its previous run was still in flight", "counter"},
    {"probe_tls_version_info", "TLS version negotiated by the last check (blackbox)", "gauge"},
    {"probe_ssl_verified", "1 when the presented chain verified for the server name", "gauge"},
    {"probe_ssl_earliest_cert_expiry", "Earliest NotAfter of the presented chain, unix seconds (blackbox)",
     "gauge"},
    {"probe_ssl_last_chain_expiry_timestamp_seconds",
     "Earliest NotAfter of the verified chain, unix seconds (blackbox)", "gauge"},
    {"probe_ssl_expiry_window_seconds", "Configured expiry_window of a TLS check: the alerting threshold",
     "gauge"},
};

// The resolver of the calling thread, made by `factory` (or the production one) the first time it is
// needed, and after a failure again at most once a minute. A resolver left with a query in flight (one
// abandoned at a check's deadline) is closed after that check, which cancels the query: abandoned queries
// never pile up on a black-holed server, and the next one starts on a fresh channel (resolv.conf read
// again; c-ares only rereads it on a channel with nothing in flight).
class ThreadResolver {
 public:
  explicit ThreadResolver(const ServiceCheckResolverFactory& factory) : factory_(factory) {}
  Resolver* get() {
    const auto now = std::chrono::steady_clock::now();
    if (!resolver_ && (!tried_ || now - last_try_ >= std::chrono::minutes(1))) {
      tried_ = true;
      last_try_ = now;
      resolver_ = factory_ ? factory_() : make_service_check_resolver();
    }
    return resolver_.get();
  }
  void after_check() {
    if (resolver_ && resolver_->pending() > 0) {
      resolver_.reset();
      tried_ = false;
    }
  }

 private:
  const ServiceCheckResolverFactory& factory_;
  std::unique_ptr<Resolver> resolver_;
  bool tried_ = false;
  std::chrono::steady_clock::time_point last_try_{};
};

svc::TcpQueryResult run_check(const svc::TcpQuerySpec& spec, ThreadResolver& resolver) {
  // An IP literal never needs a resolver (nor creates one).
  auto result = svc::run_tcp_query(spec, IpAddress::parse(spec.host) ? nullptr : resolver.get());
  resolver.after_check();
  return result;
}

}  // namespace

std::unique_ptr<Resolver> make_service_check_resolver() {
  auto cares = CaresResolver::create();
  if (!cares.ok()) {
    spdlog::error("service checks: no DNS resolver ({}): checks of host names fail \"resolve\"",
                  cares.error().message);
    return nullptr;
  }
  return std::move(cares).value();
}

Result<svc::TcpQuerySpec> service_check_spec(const ServiceCheckConfig& check, const GroupConfig* group) {
  svc::TcpQuerySpec spec;
  spec.host = check.destination;
  spec.port = check.dst_port;
  const AddressFamily af = check.family();
  spec.family = af == AddressFamily::kV6 ? AF_INET6 : AF_INET;
  if (group) {
    const auto& src = af == AddressFamily::kV6 ? group->src_ipv6 : group->src_ipv4;
    if (src) spec.source = src->to_string();
  }
  for (const QueryStep& q : check.query_response) {
    std::string why;
    auto step = svc::parse_tcp_step(q.kind, q.value, &why);
    if (!step) return Error(fmt::format("query_response {}: {}", q.kind, why));
    spec.steps.push_back(std::move(*step));
  }
  spec.tls.enabled = check.type == ServiceCheckType::kTls;
  spec.tls.server_name = check.server_name;
  spec.tls.ca_file = check.ca_file;
  spec.tls.insecure_skip_verify = check.insecure_skip_verify;
  spec.tls.expiry_window = std::chrono::seconds(check.expiry_window_s);
  spec.timeout = std::chrono::milliseconds(int64_t(std::clamp(check.timeout_s, 0.001, 300.0) * 1000));
  return spec;
}

std::vector<const ServiceCheckConfig*> selected_service_checks(const Config& config,
                                                               const TagSelection& selection) {
  std::vector<const ServiceCheckConfig*> out;
  for (const auto& [name, c] : config.service_checks)
    if (tags_selected(selection, c.tags)) out.push_back(&c);
  return out;
}

std::vector<ServiceCheckOutcome> run_service_checks_once(const Config& config,
                                                         const std::vector<const ServiceCheckConfig*>& checks,
                                                         const ServiceCheckResolverFactory& resolvers) {
  std::vector<ServiceCheckOutcome> out;
  for (const ServiceCheckConfig* c : checks)
    for (const auto& g : c->groups) out.push_back({c, g, {}});
  std::atomic<size_t> next{0};
  auto work = [&] {
    ThreadResolver resolver(resolvers);
    for (size_t i = next++; i < out.size(); i = next++) {
      ServiceCheckOutcome& o = out[i];
      const auto git = config.groups.find(o.group);
      auto spec = service_check_spec(*o.check, git == config.groups.end() ? nullptr : &git->second);
      if (spec.ok()) {
        o.result = run_check(spec.value(), resolver);
      } else {
        o.result.failure = "config";
        o.result.detail = spec.error().message;
      }
    }
  };
  std::vector<std::thread> threads;
  for (size_t i = 1; i < std::min(kServiceCheckThreads, out.size()); ++i) threads.emplace_back(work);
  work();
  for (auto& t : threads) t.join();
  return out;
}

std::string service_check_line(const ServiceCheckOutcome& o) {
  const ServiceCheckConfig& c = *o.check;
  const svc::TcpQueryResult& r = o.result;
  const std::string endpoint = c.destination.find(':') != std::string::npos
                                   ? fmt::format("[{}]:{}", c.destination, c.dst_port)
                                   : fmt::format("{}:{}", c.destination, c.dst_port);
  std::string detail;
  if (r.success)
    detail = fmt::format("{:.2f} ms", r.connect_seconds * 1e3);
  else
    detail = r.failure + (r.detail.empty() ? "" : ": " + escape_for_log(r.detail));
  while (!detail.empty() && (detail.back() == ' ' || detail.back() == '.'))
    detail.pop_back();  // GnuTLS's ". "
  if (!r.tls_version.empty()) detail += ", " + r.tls_version;
  if (r.earliest_cert_expiry) {
    const time_t t = time_t(*r.earliest_cert_expiry);
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    detail += std::string(", expires ") + buf;
  }
  return fmt::format("{} {} {} {} [{}/{}]", to_string(c.type), endpoint, r.success ? "OK" : "FAILED", detail,
                     c.name, o.group);
}

// ---- ServiceCheckSeries ----

ServiceCheckSeries::ServiceCheckSeries(std::string probe_name) : probe_name_(escaped(probe_name)) {}

void ServiceCheckSeries::set_probe_name(std::string probe_name) {
  std::lock_guard lock(mutex_);
  probe_name_ = escaped(probe_name);
}

void ServiceCheckSeries::declare(const std::vector<const ServiceCheckConfig*>& checks) {
  std::lock_guard lock(mutex_);
  std::map<std::string, Check> next;
  for (const ServiceCheckConfig* c : checks) {
    Check k;
    k.af = std::string(to_string(c->family()));
    k.type = std::string(to_string(c->type));
    k.state = escaped(c->state_label());
    k.alert_level = std::string(to_string(c->alert_level));
    k.tls = c->type == ServiceCheckType::kTls;
    k.expiry_window_s = c->expiry_window_s;
    auto old = checks_.find(c->name);
    // Results and counters stay while the labels stay; a change of labels starts the series afresh.
    const bool same_labels = old != checks_.end() && old->second.af == k.af && old->second.type == k.type &&
                             old->second.state == k.state;
    for (const auto& g : c->groups) {
      Row row;
      if (same_labels)
        if (auto r = old->second.rows.find(g); r != old->second.rows.end()) row = std::move(r->second);
      k.rows.emplace(g, std::move(row));
    }
    next.emplace(c->name, std::move(k));
  }
  checks_ = std::move(next);
}

void ServiceCheckSeries::record(const ServiceCheckConfig& check, const std::string& group,
                                const svc::TcpQueryResult& result) {
  std::lock_guard lock(mutex_);
  auto c = checks_.find(check.name);
  if (c == checks_.end()) return;  // removed meanwhile: never resurrect its series
  auto r = c->second.rows.find(group);
  if (r == c->second.rows.end()) return;
  Row& row = r->second;
  row.measured = true;
  row.last = result;
  ++row.runs;
  if (!result.success) ++row.failures[result.failure];
}

void ServiceCheckSeries::inc_skipped(const std::string& name, const std::string& group, double n) {
  std::lock_guard lock(mutex_);
  if (auto c = checks_.find(name); c != checks_.end())
    if (auto r = c->second.rows.find(group); r != c->second.rows.end()) r->second.skipped += n;
}

bool ServiceCheckSeries::render(std::string& out, size_t flush_at, const TextSink& flush) const {
  std::string text;
  {
    // Rendered whole under the lock (a few thousand checks at most: kMaxServiceChecks), flushed without it.
    std::lock_guard lock(mutex_);
    for (const Family& f : kFamilies) {
      const std::string_view name = f.name;
      bool header = false;
      auto line = [&](const std::string& name_label, const Check& c, const std::string& group,
                      const std::string& extra, double value) {
        if (!header) {
          text += fmt::format("# HELP {} {}\n# TYPE {} {}\n", f.name, f.help, f.name, f.type);
          header = true;
        }
        text += f.name;
        text += "{address_family=\"" + c.af + "\"";
        if (name == "probe_ssl_expiry_window_seconds") text += ",alert_level=\"" + c.alert_level + "\"";
        text += ",destination=\"" + name_label + "\",group=\"" + group + "\",probe_name=\"" + probe_name_ +
                "\",state=\"" + c.state + "\",type=\"" + c.type + "\"";
        text += extra;
        text += "} ";
        append_sample_value(text, value);
        text += '\n';
      };
      for (const auto& [check_name, c] : checks_) {
        const std::string dest = escaped(check_name);
        for (const auto& [group_name, row] : c.rows) {
          const std::string group = escaped(group_name);
          const svc::TcpQueryResult& r = row.last;
          if (name == "probe_ssl_expiry_window_seconds") {
            if (c.tls) line(dest, c, group, "", double(c.expiry_window_s));
            continue;
          }
          if (name == "netprobe_service_check_runs_total") {
            line(dest, c, group, "", row.runs);
            continue;
          }
          if (name == "netprobe_service_check_skipped_total") {
            line(dest, c, group, "", row.skipped);
            continue;
          }
          if (name == "netprobe_service_check_failures_total") {
            for (const auto& [reason, n] : row.failures)
              line(dest, c, group, ",reason=\"" + escaped(reason) + "\"", n);
            continue;
          }
          if (!row.measured) continue;
          if (name == "probe_success") line(dest, c, group, "", r.success ? 1 : 0);
          if (name == "probe_duration_seconds") line(dest, c, group, "", r.duration_seconds);
          if (name == "probe_dns_lookup_time_seconds") line(dest, c, group, "", r.dns_lookup_seconds);
          if (name == "probe_tcp_connect_seconds" && r.connect_seconds > 0)
            line(dest, c, group, "", r.connect_seconds);
          if (name == "probe_failed_due_to" && !r.success)
            line(dest, c, group, ",reason=\"" + escaped(r.failure) + "\"", 1);
          if (!c.tls || r.tls_version.empty()) continue;  // no handshake: nothing about TLS to say
          if (name == "probe_tls_version_info")
            line(dest, c, group, ",version=\"" + escaped(r.tls_version) + "\"", 1);
          if (name == "probe_ssl_verified") line(dest, c, group, "", r.tls_verified ? 1 : 0);
          if (name == "probe_ssl_earliest_cert_expiry" && r.earliest_cert_expiry)
            line(dest, c, group, "", double(*r.earliest_cert_expiry));
          if (name == "probe_ssl_last_chain_expiry_timestamp_seconds" && r.last_chain_expiry)
            line(dest, c, group, "", double(*r.last_chain_expiry));
        }
      }
    }
  }
  out += text;
  if (out.size() >= flush_at) {
    if (!flush(out)) return false;
    out.clear();
  }
  return true;
}

// ---- ServiceCheckRunner ----

ServiceCheckRunner::ServiceCheckRunner(std::shared_ptr<ServiceCheckSeries> series, size_t threads,
                                       ServiceCheckResolverFactory resolvers)
    : series_(std::move(series)), resolvers_(std::move(resolvers)) {
  threads = std::clamp<size_t>(threads, 1, 64);
  for (size_t i = 0; i < threads; ++i) threads_.emplace_back([this] { loop(); });
}

ServiceCheckRunner::~ServiceCheckRunner() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  for (auto& t : threads_) t.join();
}

void ServiceCheckRunner::update(const Config& config, const TagSelection& selection) {
  const auto checks = selected_service_checks(config, selection);
  series_->set_probe_name(config.global.probe_name);
  series_->declare(checks);
  std::lock_guard lock(mutex_);
  interval_ = std::chrono::seconds(std::max(1, config.global.interval_s));
  const auto spread = std::min<Clock::duration>(interval_, std::chrono::seconds(10));
  const auto now = Clock::now();
  std::map<std::pair<std::string, std::string>, std::shared_ptr<Entry>> next;
  for (const ServiceCheckConfig* c : checks) {
    for (const auto& g : c->groups) {
      auto key = std::make_pair(c->name, g);
      const auto git = config.groups.find(g);
      const GroupConfig* group = git == config.groups.end() ? nullptr : &git->second;
      auto spec = service_check_spec(*c, group);
      auto old = entries_.find(key);
      std::shared_ptr<Entry> e;
      if (old != entries_.end() && old->second->config == *c) {
        e = old->second;  // unchanged: keeps its schedule (and a run in flight stays the only one)
        entries_.erase(old);
      } else {
        e = std::make_shared<Entry>();
        e->config = *c;
        e->group = g;
        const auto offset = spread * double(std::hash<std::string>{}(c->name + "/" + g) % 1000) / 1000.0;
        e->due = now + std::chrono::duration_cast<Clock::duration>(offset);
      }
      // The group's source address may have changed: the spec is rebuilt either way.
      e->spec.reset();
      e->spec_error.clear();
      if (spec.ok())
        e->spec = std::make_shared<const svc::TcpQuerySpec>(std::move(spec).value());
      else
        e->spec_error = spec.error().message;
      next.emplace(std::move(key), std::move(e));
    }
  }
  for (auto& [key, e] : entries_) e->removed = true;  // a run in flight is not recorded
  entries_ = std::move(next);
  wake_.notify_all();
}

void ServiceCheckRunner::loop() {
  ThreadResolver resolver(resolvers_);  // this thread's: its abandoned queries never leak into another's
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    std::shared_ptr<Entry> pick;
    auto earliest = Clock::time_point::max();
    for (auto& [key, e] : entries_) {
      if (e->running) continue;
      if (e->due < earliest) {
        earliest = e->due;
        pick = e;
      }
    }
    if (!pick || earliest > Clock::now()) {
      if (pick)
        wake_.wait_until(lock, earliest);
      else
        wake_.wait(lock);
      continue;
    }
    pick->running = true;
    const auto interval = interval_;
    const auto spec = pick->spec;  // update() may replace it while this run goes on
    const std::string spec_error = pick->spec_error;
    lock.unlock();
    svc::TcpQueryResult result;
    if (spec) {
      result = run_check(*spec, resolver);
    } else {
      result.failure = "config";
      result.detail = spec_error;
    }
    lock.lock();
    pick->running = false;
    if (pick->removed) continue;  // reconfigured meanwhile: its replacement runs on its own schedule
    series_->record(pick->config, pick->group, result);
    if (!result.success)
      spdlog::debug("service check target={} group={} failed: {} ({})", pick->config.name, pick->group,
                    result.failure, escape_for_log(result.detail));
    // The next turn; turns that passed while this one ran are skipped and counted.
    pick->due += interval;
    const auto now = Clock::now();
    if (pick->due <= now) {
      const auto missed = (now - pick->due) / interval + 1;
      pick->due += interval * missed;
      series_->inc_skipped(pick->config.name, pick->group, double(missed));
    }
  }
}

}  // namespace netprobe
