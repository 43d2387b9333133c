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
#include "core/memory.h"
#include "dns/target_address_book.h"
#include "inventory/manager.h"
#include "inventory/merge.h"
#include "ipc/ipc.h"
#include "launcher/launcher.h"
#include "logging/logging.h"
#include "metrics/prober_metrics.h"
#include "metrics/process_collector.h"
#include "sandbox/privileges.h"
#include "supervisor/backoff.h"
#include "supervisor/capture_sizing.h"
#include "supervisor/resolution_metrics.h"
#include "supervisor/sharding.h"
#include "supervisor/target_resolution.h"

namespace netprobe {
namespace {

constexpr Nanos kDnsTick{
    10'000'000};  // loop wake-up while DNS answers are owed (c-ares' sockets are not in the poll set)
constexpr Nanos kStartupDnsGrace{200'000'000};
constexpr Nanos kStopWorkersWithin{700'000'000};  // of the 1 s shutdown budget; the launcher gets the rest
constexpr Nanos kWatchdogGrace{10'000'000'000};

uint64_t mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

uint64_t random_secret() {
  std::random_device rd;
  return (uint64_t(rd()) << 32) ^ rd();
}

double seconds(Nanos n) { return std::chrono::duration<double>(n).count(); }

struct WorkerSlot {
  enum class State { kIdle, kSpawning, kRunning, kStopping, kWaiting };
  uint32_t index = 0;
  State state = State::kIdle;
  pid_t pid = -1;
  int fd = -1;
  FrameReader reader;
  std::string out;        // frames not yet written (non-blocking socket)
  WorkerSpawn spawned{};  // what the current incarnation's capture was opened for
  uint64_t secret = 0;
  uint64_t incarnations = 0;
  Nanos started_at{0};
  Nanos restart_at{0};
  Nanos last_heard{0};
  Backoff backoff;
  bool planned = false;      // asked to stop: its exit is not a fault
  bool has_targets = false;  // its last shard had targets: the watchdog applies
  bool timed_out = false;    // killed by the watchdog
};

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
  if (r.send_errors) spdlog::warn("worker {}: {} probe(s) could not be sent", worker, r.send_errors);
}

class Supervisor {
 public:
  Supervisor(Config config, std::string path, ProberMetrics& metrics, LauncherClient& launcher)
      : path_(std::move(path)), metrics_(metrics), launcher_(launcher), pending_config_(std::move(config)) {}

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
      std::vector<WorkerSlot*> owners{nullptr, nullptr};
      for (auto& w : workers_) {
        if (w.fd < 0) continue;
        fds.push_back({w.fd, short(POLLIN | (w.out.empty() ? 0 : POLLOUT)), 0});
        owners.push_back(&w);
      }
      if (inventory_)
        for (int fd : inventory_->fds()) {  // plug-in output: read by on_inventories() below
          fds.push_back({fd, POLLIN, 0});
          owners.push_back(nullptr);
        }
      if (::poll(fds.data(), fds.size(), poll_timeout_ms()) < 0 && errno != EINTR) {
        spdlog::critical("poll: {}", std::strerror(errno));
        return shutdown(EX_OSERR);
      }
      if (fds[0].revents & POLLIN) read_signals();
      if (fds[1].revents) read_launcher();
      for (size_t i = 2; i < fds.size(); ++i) {
        if (!owners[i]) continue;  // an inventory plug-in's pipe
        WorkerSlot& w = *owners[i];
        if (w.fd < 0) continue;  // closed while handling an earlier event
        if (fds[i].revents & POLLOUT) flush(w);
        if (fds[i].revents & (POLLIN | POLLHUP | POLLERR)) read_worker(w);
      }
      if (fatal_) return shutdown(EX_SOFTWARE);
      if (stopping_) break;
      run_timers();
      on_inventories();
      on_dns();
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
    for (const auto& [name, t] : config_.targets) {
      if (t.groups.empty()) {
        spdlog::warn("target={} disabled: not associated to any group", name);
        metrics_.clear_target_measurements(name);
      }
    }
    update_active();
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
  }

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
      if (!c.targets.count(name)) metrics_.clear_target(name);
    for (const auto& [name, g] : config_.groups)
      if (!c.groups.count(name)) metrics_.clear_group(name);
    metrics_.set_probe_name(c.global.probe_name);
    metrics_.set_percentiles(c.global.percentile);
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

  // The configuration file's targets plus the plug-ins' (dynamic targets keep only the file's groups).
  Config with_inventories() {
    if (!inventory_) return static_config_;
    std::set<std::string> groups;
    for (const auto& [name, g] : static_config_.groups) groups.insert(name);
    inventory_->set_known_groups(std::move(groups));
    inventory_generation_ = inventory_->generation();
    return with_dynamic_targets(static_config_, inventory_->dynamic_targets());
  }

  // A new document (or an expired lifetime) changes the probed set at once: targets that left lose every
  // series, workers take their new shard at the end of their current iteration.
  void on_inventories() {
    if (!inventory_) return;
    inventory_->poll();
    if (inventory_->generation() == inventory_generation_) return;
    Config next = with_inventories();
    for (const auto& [name, t] : config_.targets)
      if (!next.targets.count(name)) metrics_.clear_target(name);
    activate(std::move(next));
    reshard();
  }

  uint32_t nb_workers() const { return uint32_t(std::max(1, config_.global.nb_proc)); }

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

  // ---- workers ----

  void reshard() {
    ++generation_;
    const uint32_t nb = nb_workers();
    while (workers_.size() < nb) {
      WorkerSlot w;
      w.index = uint32_t(workers_.size());
      workers_.push_back(std::move(w));
    }
    for (auto& w : workers_) {
      if (w.index >= nb) {
        if (w.state == WorkerSlot::State::kRunning) request_stop(w);
        if (w.state == WorkerSlot::State::kWaiting) w.state = WorkerSlot::State::kIdle;
        continue;
      }
      if (w.state == WorkerSlot::State::kIdle)
        spawn(w);
      else if (w.state == WorkerSlot::State::kRunning)
        send_shard(w);
      // kSpawning: the shard goes out when the launcher hands the worker over; kStopping: respawned
      // with the current shard on exit; kWaiting: started with it when the backoff expires.
    }
    trim();
  }

  void trim() {
    while (!workers_.empty() && workers_.back().index >= nb_workers() &&
           workers_.back().state == WorkerSlot::State::kIdle)
      workers_.pop_back();
  }

  // The capture ring this worker needs for the configured rate of its targets.
  uint32_t capture_mib_of(uint32_t index) const {
    const uint32_t nb = nb_workers();
    const double rate = planned_probe_rate(
        config_, nb, [&](const std::string& name) { return worker_for(name, nb) == index; });
    return uint32_t(capture_buffer_bytes(rate) >> 20);
  }

  void spawn(WorkerSlot& w) {
    w.spawned = WorkerSpawn{w.index, key_slice_for(w.index, nb_workers()), types_of(w.index),
                            capture_mib_of(w.index)};
    w.secret = mix(run_secret_ ^ mix(uint64_t(w.index) << 32 | ++w.incarnations));
    w.planned = false;
    w.timed_out = false;
    if (auto s = launcher_.spawn(w.spawned); !s.ok()) {
      spdlog::critical("cannot ask the launcher for worker {}: {}", w.index, s.error().message);
      fatal_ = true;
      return;
    }
    w.state = WorkerSlot::State::kSpawning;
  }

  void request_stop(WorkerSlot& w) {
    w.planned = true;
    w.state = WorkerSlot::State::kStopping;
    queue(w, encode_frame(SupervisorMessage{StopRequest{}}));
  }

  void send_shard(WorkerSlot& w) {
    const uint32_t nb = nb_workers();
    const KeySlice slice = key_slice_for(w.index, nb);
    const uint32_t types = types_of(w.index);
    const uint32_t capture_mib = capture_mib_of(w.index);
    // A ring at least half the size wanted still holds 100 ms of the capture: restarting the worker (a
    // gap in its measurements) is only worth it beyond that.
    if (slice != w.spawned.slice || (types & ~w.spawned.types_mask) != 0 ||
        capture_mib > 2 * w.spawned.capture_buffer_mib) {
      // Its capture filter was compiled for other types or another slice, or its ring is too small for
      // the new rate: replace the worker.
      spdlog::info(
          "worker {}: capture must change (types {:#x} -> {:#x}, slice bits {} -> {}, ring {} -> {} MiB): "
          "restarting it",
          w.index, w.spawned.types_mask, types, w.spawned.slice.bits, slice.bits,
          w.spawned.capture_buffer_mib, capture_mib);
      request_stop(w);
      return;
    }
    Shard s;
    s.generation = generation_;
    s.index = w.index;
    s.slice = slice;
    s.secret = w.secret;
    s.settings.interval_s = config_.global.interval_s;
    s.settings.max_packets_per_second = config_.global.max_packets_per_second / nb;  // a global cap, shared
    s.settings.hard_timeout = Nanos(int64_t(config_.global.timeout_s * 1e9));
    s.config.source_path = config_.source_path;
    s.config.global = config_.global;
    s.config.groups = config_.groups;
    std::vector<std::string> names;
    for (const auto& [name, a] : active_) {
      if (a.worker != w.index) continue;
      s.config.targets[name] = *a.config;
      if (!a.resolution.subnet) s.hosts[name] = a.resolution.hosts;
      names.push_back(name);
    }
    if (!w.has_targets && !names.empty()) w.last_heard = clock_.monotonic();  // the watchdog starts now
    w.has_targets = !names.empty();
    spdlog::info("shard worker={} pid={} generation={} targets={}", w.index, w.pid, generation_,
                 fmt::join(names, ","));
    queue(w, encode_frame(SupervisorMessage{std::move(s)}));
  }

  void queue(WorkerSlot& w, std::string frame) {
    if (w.fd < 0) return;
    w.out += frame;
    flush(w);
  }

  void flush(WorkerSlot& w) {
    while (!w.out.empty() && w.fd >= 0) {
      const ssize_t n = ::send(w.fd, w.out.data(), w.out.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n > 0) {
        w.out.erase(0, size_t(n));
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;  // POLLOUT resumes
      w.out.clear();  // EPIPE: the worker is gone; its exit event follows
      return;
    }
  }

  void read_worker(WorkerSlot& w) {
    std::vector<uint8_t> buf(1 << 16);
    bool eof = false;
    for (;;) {
      const ssize_t n = ::read(w.fd, buf.data(), buf.size());
      if (n > 0) {
        w.reader.feed(std::span<const uint8_t>(buf.data(), size_t(n)));
        if (size_t(n) < buf.size()) break;
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
      eof = true;
      break;
    }
    handle_frames(w);
    if (eof) close_fd(w);
  }

  void close_fd(WorkerSlot& w) {
    if (w.fd >= 0) close(w.fd);
    w.fd = -1;
    w.out.clear();
    w.reader = FrameReader();
  }

  void handle_frames(WorkerSlot& w) {
    while (auto payload = w.reader.next()) {
      auto msg = decode_worker_message(*payload);
      if (!msg.ok()) {
        spdlog::error("worker {} (pid {}): {}: killing it", w.index, w.pid, msg.error().message);
        kill_worker(w);
        return;
      }
      w.last_heard = clock_.monotonic();
      if (auto* ready = std::get_if<WorkerReady>(&*msg)) {
        spdlog::info("worker {} (pid {}) ready: sockets and capture open, no capability left", w.index,
                     w.pid);
        for (const auto& warning : ready->warnings) spdlog::warn("worker {}: {}", w.index, warning);
      } else if (auto* report = std::get_if<WorkerReport>(&*msg)) {
        on_report(w, std::move(report->report));
      } else if (auto* error = std::get_if<WorkerError>(&*msg)) {
        spdlog::error("worker {} (pid {}): {}", w.index, w.pid, error->message);
        for (const auto& name : error->inactive_targets) {
          spdlog::error("target={} inactive: worker {} cannot probe it", name, w.index);
          metrics_.clear_target_measurements(name);
        }
      }
    }
    if (w.reader.error()) {
      spdlog::error("worker {} (pid {}): oversized IPC frame: killing it", w.index, w.pid);
      kill_worker(w);
    }
  }

  // Keeps only what the current configuration still has, exactly as it has it: a report of an iteration
  // that ran before a reload must not bring back the series the reload removed or relabelled.
  void on_report(WorkerSlot& w, IterationReport report) {
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
      spdlog::error("worker {}: iteration exceeded global.timeout ({} s) and was cut short", w.index,
                    config_.global.timeout_s);
      metrics_.inc_process_timed_out();
    }
    log_report(w.index, report);
    // app_iteration_time_seconds: the duration of the latest iteration of any worker.
    metrics_.record(report);
    report = {};
    release_free_memory();  // the decoded report (1M RTTs are 8 MB, their CBOR as much again)
  }

  void kill_worker(WorkerSlot& w) {
    if (w.pid > 0) {
      if (auto s = launcher_.kill(w.index, w.pid); !s.ok()) fatal_ = true;
    }
    close_fd(w);
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
      on_launch_event(**ev);
    }
  }

  WorkerSlot* slot_by_pid(pid_t pid) {
    for (auto& w : workers_)
      if (w.pid == pid) return &w;
    return nullptr;
  }

  void on_launch_event(const LaunchEvent& ev) {
    const Nanos now = clock_.monotonic();
    if (ev.op == LaunchEvent::kSpawned) {
      WorkerSlot* w = ev.index < workers_.size() ? &workers_[ev.index] : nullptr;
      if (!w || w->state != WorkerSlot::State::kSpawning) {
        close(ev.fd);  // nobody wants it any more: EOF makes it exit, and its exit is reported
        return;
      }
      w->pid = ev.pid;
      w->fd = ev.fd;
      fcntl(w->fd, F_SETFL, fcntl(w->fd, F_GETFL) | O_NONBLOCK);
      w->started_at = now;
      w->last_heard = now;
      w->has_targets = false;
      w->state = WorkerSlot::State::kRunning;
      spdlog::info("worker {} started: pid {}", w->index, w->pid);
      if (stopping_ || w->index >= nb_workers())
        request_stop(*w);
      else
        send_shard(*w);
      return;
    }
    if (ev.op == LaunchEvent::kSpawnFailed) {
      if (ev.index >= workers_.size()) return;
      WorkerSlot& w = workers_[ev.index];
      spdlog::error("worker {}: the launcher could not fork it: {}", w.index, std::strerror(ev.status));
      schedule_restart(w, now);
      return;
    }
    if (ev.op != LaunchEvent::kExited) return;
    WorkerSlot* w = slot_by_pid(ev.pid);
    if (!w) return;
    // Reports already written by the dead worker are still in its socket: record them first.
    if (w->fd >= 0) read_worker(*w);
    close_fd(*w);
    w->pid = -1;
    if (stopping_) {
      w->state = WorkerSlot::State::kIdle;
      return;
    }
    if (w->planned) {
      spdlog::info("worker {} (pid {}) stopped: {}", w->index, ev.pid, describe_wait_status(ev.status));
      w->state = WorkerSlot::State::kIdle;
      if (w->index < nb_workers()) spawn(*w);
      trim();
      return;
    }
    spdlog::error("worker {} (pid {}) died: {}{}", w->index, ev.pid, describe_wait_status(ev.status),
                  w->timed_out ? " (killed: no report within interval + global.timeout)" : "");
    schedule_restart(*w, now);
  }

  void schedule_restart(WorkerSlot& w, Nanos now) {
    const Nanos delay = w.backoff.on_death(w.started_at, now);
    w.state = WorkerSlot::State::kWaiting;
    w.restart_at = now + delay;
    spdlog::warn("worker {}: restarting in {:.1f} s", w.index, seconds(delay));
  }

  // ---- timers and signals ----

  int poll_timeout_ms() const {
    Nanos wait{1'000'000'000};  // the watchdog and reload_conf_interval need no finer granularity
    if (book_.pending()) wait = kDnsTick;
    const Nanos now = clock_.monotonic();
    for (const auto& w : workers_)
      if (w.state == WorkerSlot::State::kWaiting)
        wait = std::min(wait, std::max(Nanos(0), w.restart_at - now));
    if (inventory_) wait = std::min(wait, std::max(Nanos(0), inventory_->next_deadline() - now));
    return int(std::chrono::duration_cast<std::chrono::milliseconds>(wait).count()) + 1;
  }

  void run_timers() {
    const Nanos now = clock_.monotonic();
    for (auto& w : workers_) {
      if (w.state == WorkerSlot::State::kWaiting && now >= w.restart_at) {
        if (w.index >= nb_workers()) {
          w.state = WorkerSlot::State::kIdle;
          continue;
        }
        spdlog::info("worker {}: restarting", w.index);
        metrics_.inc_worker_restarts();
        spawn(w);
      }
      const Nanos silence =
          Nanos(int64_t((config_.global.interval_s + config_.global.timeout_s) * 1e9)) + kWatchdogGrace;
      if (w.state == WorkerSlot::State::kRunning && w.has_targets && !w.timed_out &&
          now - w.last_heard > silence) {
        spdlog::error(
            "worker {} (pid {}): no report for {:.0f} s (interval + global.timeout + {:.0f} s): killing it",
            w.index, w.pid, seconds(now - w.last_heard), seconds(kWatchdogGrace));
        metrics_.inc_process_timed_out();
        w.timed_out = true;
        if (w.pid > 0 && !launcher_.kill(w.index, w.pid).ok()) fatal_ = true;
      }
    }
    trim();
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
    if (inventory_) inventory_->terminate();  // no wait: the 1 s budget is the workers'
    const Nanos deadline = clock_.monotonic() + kStopWorkersWithin;
    for (auto& w : workers_) {
      if (w.fd >= 0) {
        w.out.clear();
        queue(w, encode_frame(SupervisorMessage{StopRequest{}}));
        close_fd(w);  // EOF after the stop frame: the worker stops even if it missed the frame
      }
    }
    auto busy = [&] {
      for (const auto& w : workers_)
        if (w.pid > 0 || w.state == WorkerSlot::State::kSpawning) return true;
      return false;
    };
    while (busy() && launcher_.fd() >= 0 && !fatal_) {
      const Nanos left = deadline - clock_.monotonic();
      if (left <= Nanos(0)) break;
      pollfd p{launcher_.fd(), POLLIN, 0};
      ::poll(&p, 1, int(std::chrono::duration_cast<std::chrono::milliseconds>(left).count()) + 1);
      for (;;) {
        auto ev = launcher_.read_event();
        if (!ev.ok() || !*ev) break;
        const LaunchEvent& e = **ev;
        if (e.op == LaunchEvent::kSpawned) {
          close(e.fd);  // EOF: it stops at once
          if (e.index < workers_.size()) {
            workers_[e.index].pid = e.pid;
            workers_[e.index].state = WorkerSlot::State::kStopping;
          }
        } else if (e.op == LaunchEvent::kSpawnFailed) {
          if (e.index < workers_.size()) workers_[e.index].state = WorkerSlot::State::kIdle;
        } else if (WorkerSlot* w = slot_by_pid(e.pid)) {
          w->pid = -1;
          w->state = WorkerSlot::State::kIdle;
        }
      }
    }
    if (busy()) spdlog::warn("some workers did not stop in time: the launcher kills them");
    if (!launcher_.stop(Nanos(200'000'000))) spdlog::warn("the launcher did not exit in time: killed");
    if (sfd_ >= 0) close(sfd_);
    return code;
  }

  std::string path_;
  ProberMetrics& metrics_;
  LauncherClient& launcher_;
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
  std::vector<WorkerSlot> workers_;
  uint64_t generation_ = 0;
  uint64_t run_secret_ = random_secret();
  Nanos last_reload_{0};
  int sfd_ = -1;
  bool stopping_ = false;
  bool reload_requested_ = false;
  bool fatal_ = false;
};

[[noreturn]] void exit_now(int code) {
  spdlog::default_logger()->flush();
  std::fflush(nullptr);
  // No destructor runs: the exporter's (CivetWeb's mg_stop) waits for its master thread's poll timeout,
  // about 2 s, which would break the 1 s shutdown promise. Nothing is lost: every worker and the
  // launcher are gone already, logs are flushed, and the kernel closes the listening socket and any
  // scrape in flight.
  _exit(code);
}

}  // namespace

void run_supervisor(LauncherClient launcher, Config config, const std::string& path,
                    const std::string& version, std::optional<BasicAuth> auth) {
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
  auto process = std::make_shared<ProcessCollector>();
  auto exporter = Exporter::start(config.global.prometheus_address, config.global.prometheus_port, auth,
                                  {registry, process}, {metrics.target_series()});
  if (!exporter.ok()) {
    spdlog::critical("{}", exporter.error().message);
    if (config.global.prometheus_port > 0 && config.global.prometheus_port < 1024)
      spdlog::critical(
          "prometheus_port {} is privileged and the /metrics server deliberately holds no "
          "capability: use a port >= 1024 (or lower net.ipv4.ip_unprivileged_port_start)",
          config.global.prometheus_port);
    launcher.stop(Nanos(200'000'000));
    exit_now(EX_UNAVAILABLE);
  }
  spdlog::info("serving /metrics on {}:{}{}", config.global.prometheus_address, config.global.prometheus_port,
               auth ? " (basic auth)" : "");

  Supervisor supervisor(std::move(config), path, metrics, launcher);
  const int code = supervisor.run();
  spdlog::info("stopped");
  exit_now(code);
}

}  // namespace netprobe
