#include "worker/worker_process.h"

#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sysexits.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "core/memory.h"
#include "engine/engine.h"
#include "io/pcap_source.h"
#include "io/raw_socket_sink.h"
#include "ipc/ipc.h"
#include "logging/logging.h"
#include "sandbox/confine.h"
#include "sandbox/privileges.h"
#include "sched/plan.h"

namespace netprobe {

namespace {

// Forwards to the live capture and remembers that it failed: the engine only sleeps on a failed
// capture (it cannot restart it), and an iteration run blind would report 100 % loss. The worker exits
// non-zero instead and the supervisor starts a fresh one.
class WatchedSource final : public PacketSource {
 public:
  explicit WatchedSource(PcapSource& inner) : inner_(inner) {}
  int poll(const Handler& handler, Nanos max_wait) override {
    const int n = inner_.poll(handler, max_wait);
    if (n < 0 && !failed_.exchange(true)) {
      std::lock_guard lock(mu_);
      error_ = inner_.error();
    }
    return n;
  }
  void interrupt() override { inner_.interrupt(); }
  CaptureStats stats() const override { return inner_.stats(); }
  bool failed() const { return failed_.load(); }
  std::string error() const {
    std::lock_guard lock(mu_);
    return error_;
  }

 private:
  PcapSource& inner_;
  std::atomic<bool> failed_{false};
  mutable std::mutex mu_;
  std::string error_;
};

class WorkerLoop {
 public:
  WorkerLoop(int fd, uint32_t index, KeySlice slice, PacketSink& sink, WatchedSource& source)
      : fd_(fd), index_(index), slice_(slice), sink_(sink), source_(source) {}

  int run() {
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    sigprocmask(SIG_BLOCK, &stop_signals, nullptr);  // before the threads, so that all of them block
    const int sfd = signalfd(-1, &stop_signals, SFD_CLOEXEC | SFD_NONBLOCK);
    std::thread reader([this, sfd] { read_loop(sfd); });
    const int rc = iterate();
    request_stop();
    // The reader exits on stop/EOF; the socket's read side is shut down so that it never waits.
    shutdown(fd_, SHUT_RD);
    reader.join();
    engine_.reset();
    if (sfd >= 0) close(sfd);
    return rc != 0 ? rc : exit_code_.load();
  }

 private:
  void request_stop() {
    std::lock_guard lock(mu_);
    stop_ = true;
    if (engine_) engine_->stop();
    cv_.notify_all();
  }

  void read_loop(int sfd) {
    FrameReader frames;
    std::vector<uint8_t> buf(1 << 16);
    for (;;) {
      pollfd fds[2] = {{fd_, POLLIN, 0}, {sfd, POLLIN, 0}};
      const int ready = ::poll(fds, sfd >= 0 ? 2 : 1, int(kHeartbeatInterval.count() / 1'000'000));
      if (ready < 0) {
        if (errno == EINTR) continue;
        break;
      }
      if (ready == 0 || SystemClock().monotonic() - last_heartbeat_ >= kHeartbeatInterval) heartbeat();
      if (sfd >= 0 && (fds[1].revents & POLLIN)) {
        spdlog::info("worker {}: signal received, stopping", index_);
        break;
      }
      if (!(fds[0].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      const ssize_t n = ::read(fd_, buf.data(), buf.size());
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;  // the supervisor is gone (or shut us down): stop
      frames.feed(std::span<const uint8_t>(buf.data(), size_t(n)));
      bool stop = false;
      while (auto payload = frames.next()) {
        auto msg = decode_supervisor_message(*payload);
        if (!msg.ok()) {
          spdlog::error("worker {}: {}", index_, msg.error().message);
          exit_code_ = EX_PROTOCOL;
          stop = true;
          break;
        }
        if (std::holds_alternative<StopRequest>(*msg)) {
          stop = true;
          break;
        }
        std::lock_guard lock(mu_);
        pending_ = std::move(std::get<Shard>(*msg));
        cv_.notify_all();
      }
      if (frames.error()) {
        spdlog::error("worker {}: oversized IPC frame", index_);
        exit_code_ = EX_PROTOCOL;
        stop = true;
      }
      if (stop) break;
    }
    request_stop();
  }

  // Builds the plan of a shard. A target the plan cannot include (Plan::skipped_targets: no route to one
  // of its addresses) is left out and reported, so that one unroutable target does not stop the others.
  void apply(Shard shard) {
    // Only the plan outlives this function: the configuration (about 0.6 KB per target) is not kept.
    const Config config = std::move(shard.config);
    spdlog::set_level(log_level_from_config(config.global.logging_level));  // follows reloads
    generation_ = shard.generation;
    settings_ = shard.settings;
    std::vector<ResolvedTarget> resolved;
    WorkerError problems;
    for (const auto& [name, t] : config.targets) {
      ResolvedTarget r{&t, {}};
      if (t.is_subnet) {
        if (auto net = IpNetwork::parse(t.destination)) r.hosts = host_addresses(*net);
      } else if (auto it = shard.hosts.find(name); it != shard.hosts.end()) {
        r.hosts = it->second;
      }
      if (r.hosts.empty()) {
        problems.inactive_targets.push_back(name);
        continue;
      }
      resolved.push_back(std::move(r));
    }
    plan_.reset();
    auto plan = build_plan(config, resolved, kernel_source_for);
    if (plan.ok()) {
      for (const Error& e : plan->skipped_targets) {
        problems.message += (problems.message.empty() ? "" : "; ") + e.message;
        problems.inactive_targets.push_back(e.target);
      }
      plan_ = std::make_unique<Plan>(std::move(plan).value());
    } else {
      problems.message += (problems.message.empty() ? "" : "; ") + plan.error().message;
      for (const auto& r : resolved) problems.inactive_targets.push_back(r.config->name);
    }
    if (!problems.message.empty() || !problems.inactive_targets.empty()) {
      if (problems.message.empty()) problems.message = "no address to probe";
      spdlog::error("worker {}: {} (inactive: {})", index_, problems.message,
                    fmt::join(problems.inactive_targets, ", "));
      send(WorkerMessage{problems});
    }
    spdlog::info("worker {}: shard generation {}: {} target(s), {} probe(s) per iteration", index_,
                 generation_, plan_ ? plan_->active_targets : 0, plan_ ? plan_->probes.size() : 0);
  }

  // Frames are written by the main thread (reports) and the reader thread (heartbeats).
  bool send(const WorkerMessage& m) {
    const std::string frame = encode_frame(m);
    std::lock_guard lock(write_mu_);
    return write_all(fd_, frame);
  }

  // The supervisor kills a worker it has not heard from for a few seconds (worker_pool.h). A heartbeat
  // therefore says that the main loop makes progress, not only that this thread runs: it is sent while
  // the main thread waits (for a shard or for the next interval) or has moved within the last few
  // seconds (the engine stamps its progress at least every Engine::kMaxWait).
  void heartbeat() {
    const Nanos now = SystemClock().monotonic();
    last_heartbeat_ = now;
    Nanos progress{main_progress_.load()};
    {
      std::lock_guard lock(mu_);
      if (engine_) progress = std::max(progress, engine_->last_progress());
    }
    if (!main_waiting_.load() && now - progress > kMainLoopStall) return;  // wedged: let the supervisor act
    send(WorkerMessage{WorkerHeartbeat{}});
  }
  void mark_progress() { main_progress_.store(SystemClock().monotonic().count()); }

  int iterate() {
    SystemClock clock;
    for (;;) {
      std::optional<Shard> next;
      {
        std::unique_lock lock(mu_);
        // Without probes there is nothing to do until a shard with some arrives.
        main_waiting_ = true;
        cv_.wait(lock, [&] { return stop_ || pending_ || (plan_ && !plan_->probes.empty()); });
        main_waiting_ = false;
        mark_progress();
        if (stop_) return 0;
        if (pending_) {
          next = std::move(pending_);
          pending_.reset();
        }
        if (next && !engine_) {
          EngineOptions options;
          options.slice = slice_;  // the launcher's (keyed) slice, which the capture filter selects
          engine_ = std::make_unique<Engine>(clock, sink_, source_, next->secret, options);
        }
      }
      if (next) {
        mark_progress();
        apply(std::move(*next));
        release_free_memory();  // the shard was decoded by the reader thread, in its own malloc arena
      }
      if (!plan_ || plan_->probes.empty()) continue;

      const Nanos start = clock.monotonic();
      IterationReport report = engine_->run_iteration(*plan_, settings_);
      if (engine_->stopped()) return 0;  // a cut-short iteration is not reported
      if (source_.failed()) {
        spdlog::error("worker {}: capture failed: {}", index_, source_.error());
        send(WorkerMessage{WorkerError{"capture failed: " + source_.error(), {}}});
        return EX_UNAVAILABLE;
      }
      report.duration_s = std::chrono::duration<double>(clock.monotonic() - start).count();
      if (!send(WorkerMessage{WorkerReport{generation_, std::move(report)}})) return 0;  // supervisor gone
      release_free_memory();  // the report and its encoding

      // No overlap and no catch-up: wait out the interval (a new shard waits for it too).
      const auto deadline = std::chrono::steady_clock::now() +
                            std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                start + Nanos(int64_t(settings_.interval_s * 1e9)) - clock.monotonic());
      std::unique_lock lock(mu_);
      main_waiting_ = true;
      cv_.wait_until(lock, deadline, [&] { return stop_; });
      main_waiting_ = false;
      mark_progress();
      if (stop_) return 0;
    }
  }

  int fd_;
  uint32_t index_;
  KeySlice slice_;
  PacketSink& sink_;
  WatchedSource& source_;
  std::atomic<int> exit_code_{0};
  // The main loop's liveness, for heartbeat() (reader thread).
  static constexpr Nanos kMainLoopStall{3'000'000'000};
  std::atomic<int64_t> main_progress_{SystemClock().monotonic().count()};
  std::atomic<bool> main_waiting_{false};
  Nanos last_heartbeat_{0};  // reader thread only
  std::mutex write_mu_;

  std::mutex mu_;  // guards stop_, pending_, engine_ creation (the reader calls engine_->stop())
  std::condition_variable cv_;
  bool stop_ = false;
  std::optional<Shard> pending_;
  std::unique_ptr<Engine> engine_;

  // Main thread only.
  std::unique_ptr<Plan> plan_;
  IterationSettings settings_;
  uint64_t generation_ = 0;
};

}  // namespace

int worker_main(int ipc_fd, const WorkerSpawn& spawn) {
  const uint32_t index = spawn.index;
  const KeySlice slice = spawn.slice;
  prctl(PR_SET_PDEATHSIG, SIGKILL);  // the launcher died between fork and here: getppid() is no longer it
  if (getppid() == 1) return 0;
  prctl(PR_SET_NAME, fmt::format("netprobe-w{}", index).c_str());
  release_free_memory();  // the launcher's free heap, shared copy-on-write since the fork
  signal(SIGPIPE, SIG_IGN);

  auto fail = [&](int code, const std::string& message) {
    spdlog::critical("worker {}: {}", index, message);
    write_all(ipc_fd, encode_frame(WorkerMessage{WorkerError{message, {}}}));
    return code;
  };

  // Privileged part: nothing read from anyone yet but the launcher's checked record.
  auto sink = RawSocketSink::open();
  if (!sink.ok()) return fail(EX_NOPERM, sink.error().message);
  PcapSource::Options capture;
  capture.buffer_bytes = int(std::min<uint32_t>(spawn.capture_buffer_mib, 1024)) << 20;
  const std::vector<ProbeType> types = probe_types_of_mask(spawn.types_mask);
  // The kernel passes only replies carrying this worker's slice: N workers do not each see N times the
  // traffic. (Foreign tokens would never match anyway; this is about cost.)
  try {
    capture.filter = capture_filter(types, slice);
  } catch (const std::exception& e) {
    return fail(EX_SOFTWARE,
                fmt::format("no capture filter for slice {}/{}: {}", slice.index, slice.bits, e.what()));
  }
  auto source = PcapSource::open(capture);
  if (!source.ok()) return fail(EX_NOPERM, source.error().message);
  if (auto s = drop_all_capabilities(); !s.ok())
    return fail(EX_NOPERM, "cannot drop capabilities: " + s.error().message);
  // On top of the launcher's filter (inherited): no process, no signal to others (sandbox/confine.h).
  if (auto s = set_non_dumpable(); !s.ok()) return fail(EX_NOPERM, s.error().message);
  if (auto s = install_seccomp(ProcessKind::kWorker); !s.ok()) return fail(EX_NOPERM, s.error().message);
  spdlog::debug("worker {}: sockets open (capture ring {} MiB), capabilities dropped ({}), uid {}, confined",
                index, spawn.capture_buffer_mib, capability_summary(), getuid());

  WorkerReady ready{index, {}};
  for (const auto& w : (*sink)->warnings()) ready.warnings.push_back("send: " + w);
  for (const auto& w : (*source)->warnings()) ready.warnings.push_back("capture: " + w);
  if (!write_all(ipc_fd, encode_frame(WorkerMessage{ready}))) return 0;

  WatchedSource watched(**source);
  WorkerLoop loop(ipc_fd, index, slice, **sink, watched);
  return loop.run();
}

}  // namespace netprobe
