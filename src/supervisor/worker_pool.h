#pragma once
// The supervisor's probe workers: their lifecycle as a state machine, independent of what they probe.
//
//   kIdle --spawn--> kSpawning --launcher hands over the socket--> kRunning --stop asked--> kStopping
//     ^                 |                                            |  |                     |
//     |            fork failed                          died, stalled |  | exited (planned)   | exited
//     |                 v                                            v  v                     v
//     +----------- kWaiting (backoff: 1 s doubling to 30 s) <---------+  respawned at once (kIdle first)
//
// - A worker that dies unexpectedly is restarted after Backoff (backoff.h) and counted
//   (on_restart); a planned stop (a slot beyond nb_proc, or a capture that must change) respawns at
//   once and is not a fault.
// - Heartbeat: every worker sends a frame at least every kHeartbeatInterval while its main loop makes
//   progress (worker_process.cpp). One silent for `heartbeat_timeout` (stopped, wedged, or its engine
//   stuck) is killed, logged, counted (on_stalled) and restarted: a SIGSTOPped worker is noticed within
//   seconds, whatever the probe timeouts. The iteration watchdog stays: a worker that heartbeats but
//   sends no report for interval + global.timeout + grace is killed the same way.
// - A worker whose targets are no longer measured (it died, stalled or is waiting to restart) is
//   reported through on_lost, so that the supervisor marks its targets' series stale instead of
//   leaving them frozen at their last values.
// - Replacement: when the capture a shard needs differs from the one the worker opened (another key
//   slice, a probe type it does not capture, a much larger rate), the worker is stopped and respawned
//   with the new shape (WorkerSpawn) instead of being sent the shard.
//
// The pool owns each worker's IPC socket (non-blocking, framed: ipc.h) and never blocks. Everything it
// decides is driven by calls from the supervisor's poll loop and an injected clock, so that it is
// unit-tested with a fake launcher and socketpairs (tests/unit/supervisor/worker_pool_test.cpp).
#include <poll.h>
#include <sys/types.h>

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "core/backoff.h"
#include "core/clock.h"
#include "core/result.h"
#include "ipc/ipc.h"
#include "launcher/launcher.h"

namespace netprobe {

// What the pool asks of the launcher: LauncherClient in production, a fake in tests.
class WorkerLauncher {
 public:
  virtual ~WorkerLauncher() = default;
  virtual Status spawn(const WorkerSpawn& spawn) = 0;
  virtual Status kill(uint32_t index, pid_t pid) = 0;
};

// A process of the tree, for logs and per-process metrics.
struct ProcessRef {
  std::string kind;  // "worker"
  uint32_t index = 0;
  pid_t pid = -1;
};

class WorkerPool {
 public:
  struct Options {
    Nanos heartbeat_timeout{5'000'000'000};
    Nanos watchdog_grace{10'000'000'000};  // added to interval + global.timeout for the report watchdog
    Backoff::Options backoff{};
  };
  // What the pool needs from the supervisor, per worker index.
  struct Hooks {
    std::function<WorkerSpawn(uint32_t index)> spawn_for;  // the capture its shard needs now
    std::function<Shard(uint32_t index)> shard_for;        // its shard (targets may be empty)
    std::function<void(uint32_t index, WorkerReport)> on_report;
    std::function<void(uint32_t index, const WorkerError&)> on_error;
    std::function<void(uint32_t index)> on_lost;     // its targets are not being measured any more
    std::function<void(uint32_t index)> on_restart;  // restarted after an unplanned death
    std::function<void(uint32_t index)> on_stalled;  // killed: no heartbeat, or no report in time
    // The on-demand worker's job results (optional).
    std::function<void(uint32_t index, OnDemandResult)> on_job_result;
    // An incarnation is gone (exited, killed, stopped): frames sent to it are lost (optional).
    std::function<void(uint32_t index)> on_down;
  };

  WorkerPool(WorkerLauncher& launcher, Clock& clock, Hooks hooks, Options options);
  WorkerPool(WorkerLauncher& launcher, Clock& clock, Hooks hooks)
      : WorkerPool(launcher, clock, std::move(hooks), Options{}) {}

  // The wanted number of workers (nb_proc) and the report watchdog's silence (interval +
  // global.timeout), then brings every worker in line: spawns the missing ones, sends the others
  // their new shard (or replaces them), stops the ones beyond `count`.
  void update(uint32_t count, Nanos report_watchdog);

  // The poll loop: fds to watch (POLLIN, and POLLOUT while frames wait), then the revents of each.
  void add_poll_fds(std::vector<pollfd>& fds) const;
  void on_poll(const std::vector<pollfd>& fds);
  void on_launch_event(const LaunchEvent& event);
  // Restarts whose backoff expired, heartbeat and report watchdogs.
  void run_timers();
  // How long the poll loop may sleep before run_timers() has something to do.
  Nanos next_deadline() const;

  // Shutdown: every running worker is sent a stop request and its socket closed (EOF), nothing is
  // restarted any more; busy() says whether a worker process may still exist.
  void stop_all();
  bool busy() const;

  // The launcher or the IPC went wrong in a way the pool cannot repair (the supervisor exits).
  bool fatal() const { return fatal_; }
  // Queues a frame for worker `index` if it is running (ready for frames); false otherwise.
  bool send_to(uint32_t index, std::string frame);
  bool running(uint32_t index) const;
  std::vector<ProcessRef> processes() const;
  size_t size() const { return slots_.size(); }

 private:
  enum class State { kIdle, kSpawning, kRunning, kStopping, kWaiting };
  struct Slot {
    uint32_t index = 0;
    State state = State::kIdle;
    pid_t pid = -1;
    int fd = -1;
    FrameReader reader;
    std::string out;        // frames not yet written (non-blocking socket)
    WorkerSpawn spawned{};  // what the current incarnation's capture was opened for
    Nanos started_at{0};
    Nanos restart_at{0};
    Nanos last_heard{0};   // any frame: heartbeat, report, ...
    Nanos last_report{0};  // the report watchdog (only while it has targets)
    Backoff backoff;
    bool planned = false;      // asked to stop: its exit is not a fault
    bool has_targets = false;  // its last shard had targets: the report watchdog applies
    bool killed = false;       // killed by a watchdog (its death is the stall, already counted)
  };

  void spawn(Slot& w);
  void request_stop(Slot& w);
  void send_shard(Slot& w);
  void queue(Slot& w, std::string frame);
  void flush(Slot& w);
  void read_worker(Slot& w);
  void handle_frames(Slot& w);
  void close_fd(Slot& w);
  void kill_worker(Slot& w, const std::string& why);
  void schedule_restart(Slot& w, Nanos now);
  void trim();
  Slot* slot_by_pid(pid_t pid);

  WorkerLauncher& launcher_;
  Clock& clock_;
  Hooks hooks_;
  Options options_;
  std::vector<Slot> slots_;
  uint32_t count_ = 0;
  Nanos report_watchdog_{Nanos::max()};
  bool stopping_ = false;
  bool fatal_ = false;
};

// Whether a worker whose capture was opened for `has` must be replaced to probe a shard that needs
// `wants`: another key slice, a probe type it does not capture, or a ring less than half the size
// wanted (a ring at least half as big still holds 100 ms of the capture: not worth a gap).
bool needs_new_capture(const WorkerSpawn& has, const WorkerSpawn& wants);

}  // namespace netprobe
