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
#include <random>
#include <thread>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "core/memory.h"
#include "engine/engine.h"
#include "engine/probe_io.h"
#include "ipc/ipc.h"
#include "logging/logging.h"
#include "sandbox/confine.h"
#include "sandbox/privileges.h"
#include "sched/plan.h"
#include "sched/target_plan.h"
#include "worker/ondemand_engine.h"

namespace netprobe {

namespace {

// Blocks SIGINT and SIGTERM (before the threads, so that all of them block) and returns a signalfd that
// reads them, -1 if none could be made.
int block_stop_signals() {
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  sigprocmask(SIG_BLOCK, &stop_signals, nullptr);
  return signalfd(-1, &stop_signals, SFD_CLOEXEC | SFD_NONBLOCK);
}

// What ended read_supervisor().
enum class IpcEnd {
  kClosed,    // EOF or a read or poll error: the supervisor is gone (or shut us down)
  kSignal,    // SIGINT or SIGTERM on `sfd`
  kStop,      // a StopRequest
  kProtocol,  // an undecodable message or an oversized frame (logged): exit with EX_PROTOCOL
};

// The IPC thread of both workers: reads the supervisor's frames from `fd` until EOF, a stop signal on
// `sfd` (-1: none) or a StopRequest, calling `tick(timed_out)` after every wake-up of its poll (which waits
// at most kHeartbeatInterval: heartbeats) and `on_message(msg)` for every other message, in order. `who`
// ("worker 3") prefixes the log lines of protocol errors.
template <typename Tick, typename OnMessage>
IpcEnd read_supervisor(int fd, int sfd, const std::string& who, Tick&& tick, OnMessage&& on_message) {
  FrameReader frames;
  std::vector<uint8_t> buf(1 << 16);
  for (;;) {
    pollfd fds[2] = {{fd, POLLIN, 0}, {sfd, POLLIN, 0}};
    const int ready = ::poll(fds, sfd >= 0 ? 2 : 1, int(kHeartbeatInterval.count() / 1'000'000));
    if (ready < 0) {
      if (errno == EINTR) continue;
      return IpcEnd::kClosed;
    }
    tick(ready == 0);
    if (sfd >= 0 && (fds[1].revents & POLLIN)) return IpcEnd::kSignal;
    if (!(fds[0].revents & (POLLIN | POLLHUP | POLLERR))) continue;
    const ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return IpcEnd::kClosed;
    frames.feed(std::span<const uint8_t>(buf.data(), size_t(n)));
    while (auto payload = frames.next()) {
      auto msg = decode_supervisor_message(*payload);
      if (!msg.ok()) {
        spdlog::error("{}: {}", who, msg.error().message);
        return IpcEnd::kProtocol;
      }
      if (std::holds_alternative<StopRequest>(*msg)) return IpcEnd::kStop;
      on_message(std::move(*msg));
    }
    if (frames.error()) {
      spdlog::error("{}: oversized IPC frame", who);
      return IpcEnd::kProtocol;
    }
  }
}

class WorkerLoop {
 public:
  WorkerLoop(int fd, uint32_t index, KeySlice slice, PacketSink& sink, WatchedSource& source)
      : fd_(fd), index_(index), slice_(slice), sink_(sink), source_(source) {}

  int run() {
    const int sfd = block_stop_signals();
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
    const IpcEnd end = read_supervisor(
        fd_, sfd, fmt::format("worker {}", index_),
        [this](bool timed_out) {
          if (timed_out || SystemClock().monotonic() - last_heartbeat_ >= kHeartbeatInterval) heartbeat();
        },
        [this](SupervisorMessage msg) {
          if (!std::holds_alternative<Shard>(msg)) {
            spdlog::error("worker {}: an on-demand job sent to a scheduled worker: ignored", index_);
            return;
          }
          std::lock_guard lock(mu_);
          pending_ = std::move(std::get<Shard>(msg));
          cv_.notify_all();
        });
    if (end == IpcEnd::kSignal) spdlog::info("worker {}: signal received, stopping", index_);
    if (end == IpcEnd::kProtocol) exit_code_ = EX_PROTOCOL;
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
    plan_.reset();
    TargetPlan built = plan_targets(config, shard.hosts, kernel_source_for);
    plan_ = std::move(built.plan);
    WorkerError problems{std::move(built.message), std::move(built.inactive_targets)};
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

// The on-demand worker (docs/on-demand.md#the-on-demand-worker): the IPC thread reads jobs into the
// OnDemandEngine and sends heartbeats; the main thread runs the engine, which sends each job's result.
class OnDemandLoop {
 public:
  OnDemandLoop(int fd, uint32_t index, KeySlice slice, PacketSink& sink, WatchedSource& source)
      : fd_(fd),
        index_(index),
        source_(source),
        engine_(clock_, sink, source, random_secret(), slice, kernel_source_for) {}

  int run() {
    const int sfd = block_stop_signals();
    std::thread reader([this, sfd] { read_loop(sfd); });
    engine_.run([this](OnDemandResult result) {
      if (!result.error.empty()) spdlog::warn("on-demand job {}: {}", result.id, result.error);
      if (!send(WorkerMessage{std::move(result)})) engine_.stop();  // supervisor gone
      if (source_.failed()) {
        send(WorkerMessage{WorkerError{"capture failed: " + source_.error(), {}}});
        exit_code_ = EX_UNAVAILABLE;
        engine_.stop();
      }
    });
    shutdown(fd_, SHUT_RD);
    reader.join();
    if (sfd >= 0) close(sfd);
    return exit_code_.load();
  }

 private:
  static uint64_t random_secret() {
    std::random_device rd;
    return (uint64_t(rd()) << 32) ^ rd();
  }

  bool send(const WorkerMessage& m) {
    const std::string frame = encode_frame(m);
    std::lock_guard lock(write_mu_);
    return write_all(fd_, frame);
  }

  void read_loop(int sfd) {
    Nanos last_heartbeat{0};
    const IpcEnd end = read_supervisor(
        fd_, sfd, fmt::format("on-demand worker {}", index_),
        [&](bool) {
          const Nanos now = SystemClock().monotonic();
          if (now - last_heartbeat < kHeartbeatInterval) return;
          last_heartbeat = now;
          // Alive only if the engine's loop goes round (it never sleeps longer than a few ms).
          if (now - engine_.last_progress() < Nanos(3'000'000'000)) send(WorkerMessage{WorkerHeartbeat{}});
        },
        [this](SupervisorMessage msg) {
          if (auto* shard = std::get_if<Shard>(&msg))
            spdlog::set_level(log_level_from_config(shard->config.global.logging_level));
          else
            engine_.submit(std::move(std::get<OnDemandJob>(msg)));
        });
    if (end == IpcEnd::kProtocol) exit_code_ = EX_PROTOCOL;
    engine_.stop();
  }

  int fd_;
  uint32_t index_;
  WatchedSource& source_;
  SystemClock clock_;
  std::mutex write_mu_;
  std::atomic<int> exit_code_{0};
  OnDemandEngine engine_;
};

}  // namespace

int worker_main(int ipc_fd, const WorkerSpawn& spawn) {
  const uint32_t index = spawn.index;
  const KeySlice slice = spawn.slice;
  prctl(PR_SET_PDEATHSIG, SIGKILL);  // the launcher died between fork and here: getppid() is no longer it
  if (getppid() == 1) return 0;
  prctl(PR_SET_NAME,
        (spawn.on_demand ? std::string("netprobe-od") : fmt::format("netprobe-w{}", index)).c_str());
  release_free_memory();  // the launcher's free heap, shared copy-on-write since the fork
  signal(SIGPIPE, SIG_IGN);

  auto fail = [&](int code, const std::string& message) {
    spdlog::critical("worker {}: {}", index, message);
    write_all(ipc_fd, encode_frame(WorkerMessage{WorkerError{message, {}}}));
    return code;
  };

  // Privileged part: nothing read from anyone yet but the launcher's checked record.
  ProbeIoError io_error;
  auto io = open_probe_io({probe_types_of_mask(spawn.types_mask), slice, spawn.capture_buffer_mib}, io_error);
  if (!io) return fail(io_error.exit_code, io_error.message);
  if (auto s = drop_all_capabilities(); !s.ok())
    return fail(EX_NOPERM, "cannot drop capabilities: " + s.error().message);
  // On top of the launcher's filter (inherited): no process, no signal to others (sandbox/confine.h).
  if (auto s = set_non_dumpable(); !s.ok()) return fail(EX_NOPERM, s.error().message);
  if (auto s = install_seccomp(ProcessKind::kWorker); !s.ok()) return fail(EX_NOPERM, s.error().message);
  spdlog::debug("worker {}: sockets open (capture ring {} MiB), capabilities dropped ({}), uid {}, confined",
                index, spawn.capture_buffer_mib, capability_summary(), getuid());

  if (!write_all(ipc_fd, encode_frame(WorkerMessage{WorkerReady{index, io->warnings}}))) return 0;

  if (spawn.on_demand) {
    OnDemandLoop loop(ipc_fd, index, slice, *io->sink, *io->source);
    return loop.run();
  }
  WorkerLoop loop(ipc_fd, index, slice, *io->sink, *io->source);
  return loop.run();
}

}  // namespace netprobe
