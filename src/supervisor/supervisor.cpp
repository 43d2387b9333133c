#include "supervisor/supervisor.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <sysexits.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <thread>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "config/loader.h"
#include "config/tag_selection.h"
#include "core/backoff.h"
#include "core/hash.h"
#include "core/memory.h"
#include "dns/target_address_book.h"
#include "health/target_health.h"
#include "inventory/manager.h"
#include "inventory/merge.h"
#include "ipc/ipc.h"
#include "launcher/launcher.h"
#include "logging/escape.h"
#include "logging/logging.h"
#include "metrics/prober_metrics.h"
#include "metrics/process_collector.h"
#include "ondemand/target_policy.h"
#include "ondemand/test_service.h"
#include "sandbox/privileges.h"
#include "supervisor/capture_sizing.h"
#include "supervisor/ondemand_worker.h"
#include "supervisor/resolution_metrics.h"
#include "supervisor/service_checks.h"
#include "supervisor/sharding.h"
#include "supervisor/target_resolution.h"
#include "supervisor/worker_pool.h"

namespace netprobe {
namespace {

constexpr Nanos kDnsTick{
    10'000'000};  // loop wake-up while DNS answers are owed (c-ares' sockets are not in the poll set)
constexpr Nanos kStartupDnsGrace{200'000'000};
constexpr Nanos kStopWorkersWithin{700'000'000};  // of the 1 s shutdown budget; the launcher gets the rest

uint64_t random_secret() {
  std::random_device rd;
  return (uint64_t(rd()) << 32) ^ rd();
}

struct ActiveTarget {
  // Into Supervisor::config_.targets, not a copy (10,000 targets: ~5 MB): active_ is rebuilt by
  // update_active() whenever config_ is replaced, and config_ is never modified in place.
  const TargetConfig* config = nullptr;
  DestinationResolution resolution;
  uint32_t worker = 0;
};

void log_report(uint32_t worker, const IterationReport& r) {
  for (const auto& g : r.groups)
    spdlog::debug("target={} group={} sent={} lost={} answered_rtts={}", g.target, g.group, g.sent, g.lost,
                  g.rtts_s.size());
  if (r.capture_dropped || r.capture_if_dropped)
    spdlog::warn(
        "worker {}: capture dropped {} packet(s) ({} at the interface) during the iteration: raise the "
        "capture buffer",
        worker, r.capture_dropped, r.capture_if_dropped);
  if (const uint64_t n = r.total_send_errors()) {
    std::string reasons;
    for (const auto& [reason, count] : r.send_errors) reasons += fmt::format(" {}={}", reason, count);
    spdlog::warn("worker {}: {} probe(s) could not be sent:{}", worker, n, escape_for_log(reasons));
  }
}

// netprobe_api_*: the on-demand surface's counters (docs/on-demand.md#metrics). Label values come from
// fixed sets (endpoints, HTTP codes, refusal reasons).
class ApiMetrics {
 public:
  explicit ApiMetrics(prometheus::Registry& r)
      : requests_(prometheus::BuildCounter()
                      .Name("netprobe_api_requests_total")
                      .Help("On-demand requests answered, by endpoint and HTTP status code")
                      .Register(r)),
        rejections_(prometheus::BuildCounter()
                        .Name("netprobe_api_rejections_total")
                        .Help("On-demand requests refused, by reason")
                        .Register(r)),
        running_(prometheus::BuildGauge()
                     .Name("netprobe_api_tests_running")
                     .Help("On-demand tests running now")
                     .Register(r)
                     .Add({})),
        packets_(prometheus::BuildCounter()
                     .Name("netprobe_api_packets_total")
                     .Help("Packets sent by the on-demand worker")
                     .Register(r)
                     .Add({})) {}
  void request(const std::string& endpoint, int code, const std::string& reason) {
    requests_.Add({{"endpoint", endpoint}, {"code", std::to_string(code)}}).Increment();
    if (!reason.empty()) rejections_.Add({{"reason", reason}}).Increment();
  }
  // A refusal no HTTP answer carried (an /api/v1/tests test refused on its thread, after resolution).
  void rejection(const std::string& reason) { rejections_.Add({{"reason", reason}}).Increment(); }
  void set_running(int n) { running_.Set(n); }
  void add_packets(uint64_t n) { packets_.Increment(double(n)); }

 private:
  prometheus::Family<prometheus::Counter>& requests_;
  prometheus::Family<prometheus::Counter>& rejections_;
  prometheus::Gauge& running_;
  prometheus::Counter& packets_;
};

// The current /api/v1/tests service, shared by the loop (which replaces it on reload) and the HTTP threads.
struct TestsGateway {
  std::mutex mutex;
  std::shared_ptr<ondemand::TestService> current;
};

// The pool's launcher is the real one.
class LauncherAdapter final : public WorkerLauncher {
 public:
  explicit LauncherAdapter(LauncherClient& client) : client_(client) {}
  Status spawn(const WorkerSpawn& spawn) override { return client_.spawn(spawn); }
  Status kill(uint32_t index, pid_t pid) override { return client_.kill(index, pid); }

 private:
  LauncherClient& client_;
};

class Supervisor {
 public:
  Supervisor(Config config, std::string path, ProberMetrics& metrics, LauncherClient& launcher,
             ProcessCollector& process, TagSelection selection, LoopQueue& loop_queue, ApiMetrics& api)
      : loop_queue_(loop_queue),
        api_(api),
        selection_(std::move(selection)),
        path_(std::move(path)),
        metrics_(metrics),
        process_(process),
        launcher_(launcher),
        pending_config_(std::move(config)),
        pool_(launcher_adapter_, clock_, pool_hooks()) {}

  // /api/v1/tests: where the HTTP threads find the current TestService (set at each activation).
  void set_tests_gateway(std::shared_ptr<TestsGateway> gateway) { tests_gateway_ = std::move(gateway); }

  // TCPquery / TLS targets (service_checks.h): updated at every activation.
  void set_service_checks(ServiceCheckRunner* runner) { service_checks_ = runner; }

  std::vector<ProcessRef> processes() const {
    std::vector<ProcessRef> out{{"launcher", 0, launcher_.pid()}};
    for (auto& p : pool_.processes()) {
      if (on_demand() && p.index == od_index()) p.kind = "ondemand";
      out.push_back(std::move(p));
    }
    return out;
  }

  // The children whose CPU and memory /metrics reports (netprobe_process_*), when they changed.
  void publish_processes() {
    std::vector<ProcessCollector::Child> children;
    for (const auto& p : processes()) {
      if (p.pid <= 0) continue;
      children.push_back(
          {p.kind, p.kind == "worker" ? std::optional<uint32_t>(p.index) : std::nullopt, p.pid});
    }
    if (children == published_) return;
    published_ = children;
    process_.set_children(std::move(children));
  }

  // GET /probe, on the loop (posted by an HTTP thread): `respond` once, from here or a later loop turn.
  void serve_probe(ondemand::ProbeHttpRequest request,
                   std::function<void(ondemand::ProbeHttpResponse)> respond) {
    if (!probe_service_) {
      api_.request("/probe", 404, "not_configured");
      respond({404, "on-demand probing is not configured\n", "not_configured"});
      return;
    }
    auto service = probe_service_;  // a reload may retire it meanwhile: the request finishes on it
    service->handle(std::move(request), [this, service, respond](ondemand::ProbeHttpResponse r) {
      api_.request("/probe", r.status, r.reason);
      api_.set_running(running_tests());
      respond(std::move(r));
    });
    api_.set_running(running_tests());
  }

  // trace/pathloss tests of /api/v1/tests: a HopProber per test over the on-demand worker.
  HopProberFactory hop_prober_factory() { return make_hop_prober_factory(loop_queue_, od_worker_); }

  int run() {
    sigset_t signals;
    sigemptyset(&signals);
    for (int s : {SIGINT, SIGTERM, SIGHUP, SIGCHLD}) sigaddset(&signals, s);
    sfd_ = signalfd(-1, &signals, SFD_CLOEXEC | SFD_NONBLOCK);
    if (sfd_ < 0) {
      spdlog::critical("signalfd: {}", std::strerror(errno));
      return shutdown(EX_OSERR);
    }
    static_config_ = std::move(pending_config_);
    start_inventories();
    activate(with_inventories());
    reshard();
    last_reload_ = clock_.monotonic();

    while (!stopping_) {
      std::vector<pollfd> fds{{sfd_, POLLIN, 0}, {launcher_.fd(), POLLIN, 0}};
      const size_t queue_at = fds.size();
      fds.push_back({loop_queue_.fd(), POLLIN, 0});
      pool_.add_poll_fds(fds);
      if (inventory_)
        for (int fd : inventory_->fds()) fds.push_back({fd, POLLIN, 0});  // read by on_inventories()
      if (::poll(fds.data(), fds.size(), poll_timeout_ms()) < 0 && errno != EINTR) {
        spdlog::critical("poll: {}", std::strerror(errno));
        return shutdown(EX_OSERR);
      }
      if (fds[0].revents & POLLIN) read_signals();
      if (fds[1].revents) read_launcher();
      if (fds[queue_at].revents & POLLIN) loop_queue_.drain();  // /probe requests, trace batches
      pool_.on_poll(fds);
      publish_processes();
      if (pool_.fatal()) fatal_ = true;
      if (fatal_) return shutdown(EX_SOFTWARE);
      if (stopping_) break;
      run_timers();
      on_inventories();
      on_dns();
      if (od_resolver_->pending()) od_resolver_->poll(Nanos(0));
      if (reload_requested_) {
        reload_requested_ = false;
        reload();
      }
    }
    return shutdown(EX_OK);
  }

 private:
  // ---- configuration ----

  void activate(Config next) {
    // Hostnames resolve in the background (forced at every activation); targets join as answers come.
    book_.set_targets(next.targets);
    // At start only: names answered promptly are in the first shard (netprobify resolved before its first
    // iteration; a shard that follows would wait a whole iteration), a dead server costs this grace once.
    if (!dns_started_) {
      book_.settle(kStartupDnsGrace);
      dns_started_ = true;
    }
    next_dns_pass_ = clock_.monotonic() + std::chrono::seconds(std::max(1, next.global.interval_s));
    config_ = std::move(next);
    metrics_.set_interval(config_.global.interval_s);
    for (const auto& [name, t] : config_.targets) {
      if (t.groups.empty()) {
        spdlog::warn("target={} disabled: not associated to any group", name);
        metrics_.clear_target_measurements(name);
      }
    }
    update_active();
    configure_on_demand();
    if (service_checks_) service_checks_->update(config_, selection_);
    if (config_.global.nb_proc > int(std::thread::hardware_concurrency()))
      spdlog::warn(
          "nb_proc {} is more than the {} CPU(s): each worker is one event-driven process with its own "
          "capture ring; netprobe needs far fewer than netprobify's process-per-target nb_proc",
          config_.global.nb_proc, std::thread::hardware_concurrency());
    spdlog::info("config={} workers={} active_targets={} awaiting_dns={}", config_.source_path, nb_workers(),
                 active_.size(), book_.pending());
  }

  // The probed targets and their addresses, from the address book; resolution events go to the metrics
  // first, so that a target that failed loses its series before anything could recreate them.
  void update_active() {
    record_resolution_events(book_.take_events(), metrics_);
    book_.take_changed();
    const uint32_t nb = nb_workers();
    active_.clear();
    for (const auto& [name, t] : config_.targets) {
      auto d = destination_of(book_, name);
      if (!d.ok) continue;
      metrics_.declare_target(t, t.family());
      active_[name] = ActiveTarget{&t, std::move(d), worker_for(name, nb)};
    }
    // Every configured target has a state, active or not (a target whose name stops resolving keeps it);
    // settings follow reloads, the state itself is kept (docs/alerting.md).
    health_settings_.clear();
    const double now = wall_seconds();
    for (const auto& [name, t] : config_.targets) {
      const HealthSettings& s = health_settings_[name] = resolve_health(config_.global, t);
      metrics_.set_target_health(name, health_.declare(name, now), s);
    }
  }

  double wall_seconds() const { return double(clock_.realtime().count()) / 1e9; }

  // DNS between the other events: answers are applied as they come; a changed address, a failure or a
  // recovery re-shards, so workers probe the new address from their next iteration.
  void on_dns() {
    if (book_.pending()) book_.poll(Nanos(0));
    if (book_.take_changed()) {
      update_active();
      reshard();
    } else {
      record_resolution_events(book_.take_events(), metrics_);
    }
  }

  void reload() {
    last_reload_ = clock_.monotonic();
    auto next = load_config_file(path_);
    for (const auto& w : next.diagnostics.warnings) spdlog::warn("reload config={} {}", path_, w);
    if (!next.ok()) {
      for (const auto& e : next.diagnostics.errors) spdlog::error("reload config={} {}", path_, e);
      spdlog::error("reload rejected with {} error(s): keeping the running configuration",
                    next.diagnostics.errors.size());
      metrics_.set_reload_failed(true);
      return;
    }
    Config& c = *next.config;
    static_config_ = c;
    c = with_inventories();  // the dynamic targets stay across reloads (plug-ins are not restarted)
    if (c.global.prometheus_port != config_.global.prometheus_port ||
        c.global.prometheus_address != config_.global.prometheus_address)
      spdlog::warn("prometheus_address/prometheus_port changed: still serving on {}:{} until a restart",
                   config_.global.prometheus_address, config_.global.prometheus_port);
    for (const auto& [name, t] : config_.targets)
      if (!c.targets.count(name)) forget_target(name);
    for (const auto& [name, g] : config_.groups)
      if (!c.groups.count(name)) metrics_.clear_group(name);
    metrics_.set_probe_name(c.global.probe_name);
    metrics_.set_percentiles(c.global.percentile);
    metrics_.set_path_settings(c.global.path_window, c.global.path_series_per_target);
    metrics_.set_rtt_histogram(c.global.rtt_histogram);
    spdlog::set_level(log_level_from_config(c.global.logging_level));
    activate(std::move(c));
    metrics_.set_reload_failed(false);
    spdlog::info("configuration reloaded");
    reshard();
  }

  // ---- dynamic inventories (src/inventory, inventories/README.md) ----

  void start_inventories() {
    InventoryOptions o = inventory_options(static_config_);
    o.stop_grace = std::chrono::milliseconds(300);
    o.on_started = [this](const std::string& name) { metrics_.declare_inventory(name); };
    o.on_failure = [this](const std::string& name) { metrics_.inc_inventory_failure(name); };
    o.on_targets = [this](const std::string& name, size_t n) { metrics_.set_inventory_targets(name, n); };
    inventory_ = std::make_unique<InventoryManager>(std::move(o), clock_);
    inventory_->start();
  }

  // The configuration file's targets plus the plug-ins' (dynamic targets keep only the file's groups), less
  // those the tag selection (--include-tags/--exclude-tags) leaves out: at start, reload and every new
  // inventory document alike.
  Config with_inventories() {
    Config c = static_config_;
    if (inventory_) {
      std::set<std::string> groups;
      for (const auto& [name, g] : static_config_.groups) groups.insert(name);
      inventory_->set_known_groups(std::move(groups));
      inventory_generation_ = inventory_->generation();
      c = with_dynamic_targets(static_config_, inventory_->dynamic_targets());
    }
    const auto dropped = select_targets(selection_, c.targets);
    if (!dropped.empty())
      spdlog::debug("tags ({}): {} target(s) not selected", describe(selection_), dropped.size());
    return c;
  }

  // A new document (or an expired lifetime) changes the probed set at once: targets that left lose every
  // series, workers take their new shard at the end of their current iteration.
  void on_inventories() {
    if (!inventory_) return;
    inventory_->poll();
    if (inventory_->generation() == inventory_generation_) return;
    Config next = with_inventories();
    for (const auto& [name, t] : config_.targets)
      if (!next.targets.count(name)) forget_target(name);
    activate(std::move(next));
    reshard();
  }

  // A target that left the configuration (reload, inventory): every series and its state go.
  void forget_target(const std::string& name) {
    metrics_.clear_target(name);
    health_.forget(name);
  }

  uint32_t nb_workers() const { return uint32_t(std::max(1, config_.global.nb_proc)); }

  // ---- on-demand probing (docs/on-demand.md#the-on-demand-worker) ----

  // A changed on_demand section gets a new ProbeService and TestService (budgets start afresh); the
  // previous ones finish their requests and are dropped once idle.
  void configure_on_demand() {
    std::erase_if(retired_services_, [](const auto& s) { return s->running() == 0; });
    // A retired TestService is destroyed (its idle threads joined) only once no test of it runs: a test
    // blocked in a HopProber waits for this loop.
    std::erase_if(retired_tests_, [](const auto& s) { return s->running() == 0; });
    if (config_.on_demand == od_config_) return;
    od_config_ = config_.on_demand;
    if (probe_service_) retired_services_.push_back(std::move(probe_service_));
    probe_service_.reset();
    if (tests_) retired_tests_.push_back(std::move(tests_));
    tests_.reset();
    publish_tests();
    if (!od_config_) return;
    od_worker_.set_caps(od_config_->budgets.max_packets_per_second_per_destination,
                        od_config_->budgets.max_packets_per_second);
    // One admission and one packet budget for /probe and /api/v1/tests: a caller of both is held by
    // the same caps.
    const auto limits = ondemand::SharedLimits::of(od_config_->budgets);
    ondemand::Policy policy;
    policy.own_addresses = ondemand::local_addresses();
    probe_service_ = std::make_shared<ondemand::ProbeService>(
        *od_config_, std::move(policy), *od_resolver_, od_worker_, clock_,
        [](const std::string& line) { spdlog::info("{}", line); }, limits);
    ondemand::TestServiceOptions test_options;
    test_options.limits = limits;
    // The executor is the loop's: a ping test's job is handed to it from the test's thread.
    test_options.post = [this](std::function<void()> task) { loop_queue_.post(std::move(task)); };
    test_options.on_test_rejection = [this](const std::string& reason) { api_.rejection(reason); };
    ondemand::Policy test_policy;
    test_policy.own_addresses = ondemand::local_addresses();
    tests_ = std::make_shared<ondemand::TestService>(
        *od_config_, std::move(test_policy), [] { return make_system_resolver(); }, od_worker_,
        hop_prober_factory(), clock_, [](const std::string& line) { spdlog::info("{}", line); },
        std::move(test_options));
    publish_tests();
    spdlog::info(
        "on-demand: GET /probe and /api/v1/tests served ({} module(s), {} credential(s)) by the on-demand "
        "worker",
        od_config_->modules.size(), od_config_->credentials.size());
  }

  void publish_tests() {
    if (!tests_gateway_) return;
    const std::lock_guard lock(tests_gateway_->mutex);
    tests_gateway_->current = tests_;
  }

  int running_tests() const {
    int n = probe_service_ ? probe_service_->running() : 0;
    for (const auto& s : retired_services_) n += s->running();
    if (tests_) n += tests_->running();
    for (const auto& s : retired_tests_) n += s->running();
    return n;
  }

  void sync_api_packets() {
    const uint64_t sent = od_worker_.packets_sent();
    api_.add_packets(sent - api_packets_);
    api_packets_ = sent;
  }
  // The on-demand worker is slot nb_proc of the pool, with its own slice of the token space: the key
  // slices are cut for nb_proc + 1 slots, so scheduled captures never see on-demand replies.
  bool on_demand() const { return config_.on_demand.has_value(); }
  uint32_t od_index() const { return nb_workers(); }
  uint32_t slots() const { return nb_workers() + (on_demand() ? 1 : 0); }
  static constexpr uint32_t kAllTypesMask = (uint32_t(1) << kProbeTypeCount) - 1;

  // Probe types of every configured target (with a group) sharded to this worker, active or not: a
  // target that loses its DNS answer and gets it back must not change the worker's capture filter, which
  // would restart the worker.
  uint32_t types_of(uint32_t index) const {
    uint32_t mask = 0;
    const uint32_t nb = nb_workers();
    for (const auto& [name, t] : config_.targets)
      if (!t.groups.empty() && worker_for(name, nb) == index) mask |= uint32_t(1) << unsigned(t.type);
    return mask;
  }

  // ---- workers (worker_pool.h) ----

  WorkerPool::Hooks pool_hooks() {
    WorkerPool::Hooks h;
    h.spawn_for = [this](uint32_t index) {
      // The on-demand worker: every probe type (its modules' and traces'), a small ring.
      if (on_demand() && index == od_index())
        return WorkerSpawn{index, key_slice_for(index, slots()), kAllTypesMask, 4, true};
      return WorkerSpawn{index, key_slice_for(index, slots()), types_of(index), capture_mib_of(index)};
    };
    h.shard_for = [this](uint32_t index) { return shard_for(index); };
    h.on_report = [this](uint32_t index, WorkerReport r) { on_report(index, std::move(r.report)); };
    h.on_error = [this](uint32_t index, const WorkerError& error) {
      for (const auto& name : error.inactive_targets) {
        spdlog::error("target={} inactive: worker {} cannot probe it", name, index);
        metrics_.clear_target_measurements(name);
      }
    };
    h.on_lost = [this](uint32_t index) {
      // Its targets are not measured until a new incarnation reports: their gauges go (stale in
      // Prometheus) rather than freezing at the dead worker's last values. Counters stay.
      for (const auto& [name, a] : active_)
        if (a.worker == index) metrics_.mark_target_stale(name);
    };
    h.on_restart = [this](uint32_t) { metrics_.inc_worker_restarts(); };
    h.on_stalled = [this](uint32_t) { metrics_.inc_process_timed_out(); };
    h.on_job_result = [this](uint32_t, OnDemandResult r) {
      od_worker_.on_result(std::move(r));
      sync_api_packets();
    };
    h.on_down = [this](uint32_t index) {
      if (on_demand() && index == od_index()) od_worker_.on_down();
    };
    return h;
  }

  void reshard() {
    ++generation_;
    metrics_.set_worker_count(nb_workers());
    const Nanos silence = Nanos(int64_t((config_.global.interval_s + config_.global.timeout_s) * 1e9));
    pool_.update(slots(), silence);
  }

  // The capture ring this worker needs for the configured rate of its targets.
  uint32_t capture_mib_of(uint32_t index) const {
    const uint32_t nb = nb_workers();
    const double rate = planned_probe_rate(
        config_, nb, [&](const std::string& name) { return worker_for(name, nb) == index; });
    return uint32_t(capture_buffer_bytes(rate) >> 20);
  }

  // Everything worker `index` needs for its targets. The secret changes with every shard: restarted
  // incarnations must never reuse tokens (a late reply to the previous one stays unknown).
  Shard shard_for(uint32_t index) {
    const uint32_t nb = nb_workers();
    Shard s;
    s.generation = generation_;
    s.index = index;
    s.slice = key_slice_for(index, slots());
    s.secret = splitmix64(run_secret_ ^ splitmix64(uint64_t(index) << 32 | ++shards_sent_));
    s.settings.interval_s = config_.global.interval_s;
    s.settings.max_packets_per_second = config_.global.max_packets_per_second / nb;  // a global cap, shared
    s.settings.hard_timeout = Nanos(int64_t(config_.global.timeout_s * 1e9));
    s.config.source_path = config_.source_path;
    s.config.global = config_.global;
    s.config.groups = config_.groups;
    for (const auto& [name, a] : active_) {
      if (a.worker != index) continue;
      s.config.targets[name] = *a.config;
      if (!a.resolution.subnet) s.hosts[name] = a.resolution.hosts;
    }
    return s;
  }

  // Keeps only what the current configuration still has, exactly as it has it: a report of an iteration
  // that ran before a reload must not bring back the series the reload removed or relabelled.
  void on_report(uint32_t worker, IterationReport report) {
    auto current = [&](const std::string& target, ProbeType type, AddressFamily af) -> const TargetConfig* {
      const auto it = active_.find(target);
      if (it == active_.end() || it->second.config->type != type || it->second.config->family() != af)
        return nullptr;
      return it->second.config;
    };
    std::erase_if(report.groups, [&](const GroupMeasurement& g) {
      const TargetConfig* t = current(g.target, g.type, g.af);
      return !t || t->state_label() != g.state ||
             std::find(t->groups.begin(), t->groups.end(), g.group) == t->groups.end();
    });
    std::erase_if(report.targets, [&](const TargetEvents& e) { return !current(e.target, e.type, e.af); });
    if (report.timed_out) {
      spdlog::error("worker {}: iteration exceeded global.timeout ({} s) and was cut short", worker,
                    config_.global.timeout_s);
      metrics_.inc_process_timed_out();
    }
    log_report(worker, report);
    // app_iteration_time_seconds: the longest latest iteration of the workers (netprobify's round).
    metrics_.record(report, worker);
    record_health(report);
    report = {};
    release_free_memory();  // the decoded report (1M RTTs are 8 MB, their CBOR as much again)
  }

  // Each target of the report: failed, passed or nothing sent, then its state (src/health). Only targets
  // the current configuration has (on_report filtered the rest out).
  void record_health(const IterationReport& report) {
    std::vector<std::string> updated;
    const auto changes = health_.record(
        report,
        [&](const std::string& name) -> const HealthSettings* {
          auto it = health_settings_.find(name);
          return it == health_settings_.end() ? nullptr : &it->second;
        },
        wall_seconds(), &updated);
    for (const auto& name : updated)
      metrics_.set_target_health(name, *health_.find(name), health_settings_.at(name));
    for (const auto& c : changes) {
      const TargetHealth& h = *health_.find(c.target);
      if (c.failing)
        spdlog::warn("target={} failing: {} consecutive failed iteration(s)", c.target,
                     h.consecutive_failures);
      else
        spdlog::info("target={} passing again: {} consecutive passed iteration(s)", c.target,
                     h.consecutive_successes);
    }
  }

  // ---- launcher events ----

  void read_launcher() {
    for (;;) {
      auto ev = launcher_.read_event();
      if (!ev.ok()) {
        spdlog::critical("launcher (pid {}) is gone ({}): workers can no longer be started", launcher_.pid(),
                         ev.error().message);
        fatal_ = true;
        return;
      }
      if (!*ev) return;
      pool_.on_launch_event(**ev);
    }
  }

  // ---- timers and signals ----

  int poll_timeout_ms() const {
    Nanos wait{1'000'000'000};  // the watchdog and reload_conf_interval need no finer granularity
    if (book_.pending()) wait = kDnsTick;
    const Nanos now = clock_.monotonic();
    if (const Nanos next = pool_.next_deadline(); next != Nanos::max())
      wait = std::min(wait, std::max(Nanos(0), next - now));
    if (const Nanos next = od_worker_.next_deadline(); next != Nanos::max())
      wait = std::min(wait, std::max(Nanos(0), next - now));
    if (od_resolver_->pending()) wait = std::min(wait, kDnsTick);
    if (inventory_) wait = std::min(wait, std::max(Nanos(0), inventory_->next_deadline() - now));
    return int(std::chrono::duration_cast<std::chrono::milliseconds>(wait).count()) + 1;
  }

  void run_timers() {
    const Nanos now = clock_.monotonic();
    pool_.run_timers();
    od_worker_.run_timers();
    if (pool_.fatal()) fatal_ = true;
    // netprobify's DNS update pass, once per iteration: dns_update_interval 0 re-resolves at every one.
    if (now >= next_dns_pass_) {
      book_.refresh_due();
      next_dns_pass_ = now + std::chrono::seconds(std::max(1, config_.global.interval_s));
    }
    const int every = config_.global.reload_conf_interval_s;
    if (every > 0 && now - last_reload_ >= std::chrono::seconds(every)) reload_requested_ = true;
  }

  void read_signals() {
    signalfd_siginfo info;
    while (::read(sfd_, &info, sizeof info) == ssize_t(sizeof info)) {
      switch (info.ssi_signo) {
        case SIGHUP:
          spdlog::info("SIGHUP: reloading the configuration (workers switch at the end of their iteration)");
          reload_requested_ = true;
          break;
        case SIGCHLD: {
          int status = 0;
          if (waitpid(launcher_.pid(), &status, WNOHANG) == launcher_.pid()) {
            spdlog::critical("launcher (pid {}) {}: workers can no longer be started", launcher_.pid(),
                             describe_wait_status(status));
            fatal_ = true;
          }
          break;
        }
        default:
          spdlog::info("signal {}: stopping", info.ssi_signo);
          stopping_ = true;
      }
    }
  }

  // Stops every worker within kStopWorkersWithin, then the launcher (which kills leftovers).
  int shutdown(int code) {
    stopping_ = true;
    loop_queue_.close();
    od_worker_.on_down();
    if (inventory_) inventory_->terminate();  // no wait: the 1 s budget is the workers'
    const Nanos deadline = clock_.monotonic() + kStopWorkersWithin;
    pool_.stop_all();
    while (pool_.busy() && launcher_.fd() >= 0 && !fatal_) {
      const Nanos left = deadline - clock_.monotonic();
      if (left <= Nanos(0)) break;
      pollfd p{launcher_.fd(), POLLIN, 0};
      ::poll(&p, 1, int(std::chrono::duration_cast<std::chrono::milliseconds>(left).count()) + 1);
      for (;;) {
        auto ev = launcher_.read_event();
        if (!ev.ok() || !*ev) break;
        pool_.on_launch_event(**ev);  // a worker handed over now is closed at once (EOF: it stops)
      }
    }
    if (pool_.busy()) spdlog::warn("some workers did not stop in time: the launcher kills them");
    if (!launcher_.stop(Nanos(200'000'000))) spdlog::warn("the launcher did not exit in time: killed");
    if (sfd_ >= 0) close(sfd_);
    return code;
  }

  LoopQueue& loop_queue_;  // tasks from the HTTP threads and HopProbers
  ApiMetrics& api_;
  const TagSelection selection_;  // --include-tags / --exclude-tags
  std::string path_;
  ProberMetrics& metrics_;
  ProcessCollector& process_;
  std::vector<ProcessCollector::Child> published_;
  LauncherClient& launcher_;
  LauncherAdapter launcher_adapter_{launcher_};
  SystemClock clock_;
  std::unique_ptr<Resolver> resolver_ = make_system_resolver();  // target_resolution.h
  TargetAddressBook book_{*resolver_, clock_};
  Nanos next_dns_pass_{0};
  bool dns_started_ = false;
  Config pending_config_;  // the start-up configuration until activate() takes it
  Config static_config_;   // the configuration file; config_ adds the inventories' targets
  std::unique_ptr<InventoryManager> inventory_;
  uint64_t inventory_generation_ = 0;
  Config config_;
  std::map<std::string, ActiveTarget> active_;
  HealthBook health_;                                      // survives worker restarts and reloads
  std::map<std::string, HealthSettings> health_settings_;  // of config_'s targets
  uint64_t generation_ = 0;
  uint64_t shards_sent_ = 0;
  uint64_t run_secret_ = random_secret();
  Nanos last_reload_{0};
  int sfd_ = -1;
  bool stopping_ = false;
  bool reload_requested_ = false;
  bool fatal_ = false;
  // On-demand: its own resolver (the address book's is polled only while the book waits for answers).
  std::unique_ptr<Resolver> od_resolver_ = make_system_resolver();
  OnDemandWorker od_worker_{clock_, [this](const OnDemandJob& job) {
                              return on_demand() &&
                                     pool_.send_to(od_index(), encode_frame(SupervisorMessage{job}));
                            }};
  std::optional<OnDemandConfig> od_config_;
  std::shared_ptr<ondemand::ProbeService> probe_service_;
  std::vector<std::shared_ptr<ondemand::ProbeService>> retired_services_;
  std::shared_ptr<TestsGateway> tests_gateway_;
  std::shared_ptr<ondemand::TestService> tests_;
  std::vector<std::shared_ptr<ondemand::TestService>> retired_tests_;
  uint64_t api_packets_ = 0;
  ServiceCheckRunner* service_checks_ = nullptr;
  WorkerPool pool_;  // last: its hooks use everything above
};

[[noreturn]] void exit_now(int code) {
  spdlog::default_logger()->flush();
  std::fflush(nullptr);
  // No destructor runs: the exporter's waits for a scrape being rendered to stop (up to a whole page's
  // rendering), which could break the 1 s shutdown promise. Nothing is lost: every worker and the
  // launcher are gone already, logs are flushed, and the kernel closes the listening socket and any
  // scrape in flight.
  _exit(code);
}

}  // namespace

void run_supervisor(LauncherClient launcher, Config config, const std::string& path,
                    const std::string& version, web::WebSettings web, TagSelection selection) {
  // Drop everything here, before the HTTP server's threads exist (capabilities are per thread).
  if (auto s = drop_all_capabilities(); !s.ok()) {
    spdlog::critical("cannot drop capabilities in the supervisor: {}", s.error().message);
    launcher.stop(Nanos(200'000'000));
    exit_now(EX_NOPERM);
  }
  spdlog::info("supervisor pid={} launcher pid={} ({} in the supervisor: it parses HTTP and configuration)",
               getpid(), launcher.pid(), capability_summary());

  auto registry = std::make_shared<prometheus::Registry>();
  ProberMetrics metrics(registry, config.global.probe_name, config.global.percentile, version);
  metrics.set_path_settings(config.global.path_window, config.global.path_series_per_target);
  metrics.set_rtt_histogram(config.global.rtt_histogram);
  auto process = std::make_shared<ProcessCollector>();
  ApiMetrics api(*registry);
  LoopQueue loop_queue;
  auto servers = web::server_options(web, config.global.prometheus_address, config.global.prometheus_port);
  if (!servers.ok()) {  // checked before: only a bug gets here
    spdlog::critical("{}", servers.error().message);
    launcher.stop(Nanos(200'000'000));
    exit_now(EX_CONFIG);
  }
  const std::string listeners = web::describe_listeners(*servers);
  const bool any_auth = web.env_auth.has_value();
  auto service_series = std::make_shared<ServiceCheckSeries>(config.global.probe_name);
  // GET /probe: answered by the supervisor's loop (its ProbeService, the on-demand worker); 404 there
  // without an on_demand section. `probe_gateway` is set once the supervisor exists: the loop that runs
  // posted requests is the supervisor's.
  auto probe_gateway = std::make_shared<ProbeServe>();
  std::map<std::string, http::Route> routes;
  routes.emplace("/probe", make_probe_route(loop_queue, probe_gateway));
  // /api/v1/tests: answered on the HTTP thread by the current TestService (it never waits for the network).
  auto tests_gateway = std::make_shared<TestsGateway>();
  routes.merge(ondemand::api_routes(
      [tests_gateway] {
        const std::lock_guard lock(tests_gateway->mutex);
        return tests_gateway->current;
      },
      [&api](int status, const std::string& reason) { api.request(ondemand::kTestsPath, status, reason); }));
  auto exporter = Exporter::start(std::move(servers).value(), {registry, process},
                                  {metrics.target_series(), service_series}, std::move(routes));
  if (!exporter.ok()) {
    spdlog::critical("{}", exporter.error().message);
    if (web.listen_addresses.empty() && config.global.prometheus_port > 0 &&
        config.global.prometheus_port < 1024)
      spdlog::critical(
          "prometheus_port {} is privileged and the /metrics server deliberately holds no "
          "capability: use a port >= 1024 (or lower net.ipv4.ip_unprivileged_port_start)",
          config.global.prometheus_port);
    launcher.stop(Nanos(200'000'000));
    exit_now(EX_UNAVAILABLE);
  }
  spdlog::info("serving /metrics on {}{}", listeners, any_auth ? " (basic auth)" : "");
  (*exporter)->set_status_history(metrics.status_history());
  // --web.config.file re-read when it changes (web/reload.h); never destroyed (exit_now()).
  std::unique_ptr<web::WebConfigWatcher> web_watcher;
  if (web.live)
    web_watcher = std::make_unique<web::WebConfigWatcher>(web.live, *registry, metrics.probe_name());

  if (selection.mode != TagSelection::Mode::kAll)
    spdlog::info("targets selected by tags: {}", describe(selection));
  Supervisor supervisor(std::move(config), path, metrics, launcher, *process, std::move(selection),
                        loop_queue, api);
  *probe_gateway = [&supervisor](ondemand::ProbeHttpRequest request,
                                 std::function<void(ondemand::ProbeHttpResponse)> respond) {
    supervisor.serve_probe(std::move(request), std::move(respond));
  };
  supervisor.set_tests_gateway(tests_gateway);
  ServiceCheckRunner service_checks(service_series);  // threads of this process: no capability
  supervisor.set_service_checks(&service_checks);
  const int code = supervisor.run();
  spdlog::info("stopped");
  exit_now(code);
}

}  // namespace netprobe
