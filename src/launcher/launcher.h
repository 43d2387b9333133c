#pragma once
// The launcher: a tiny process forked by the supervisor at start-up, while still privileged, that keeps
// only CAP_NET_RAW and forks probe workers on request. It exists so that the supervisor, which parses
// HTTP and configuration, can drop every capability and still (re)start privileged workers.
//
// It reads nothing from the network: only fixed-size LaunchRequest records from the supervisor over a
// SOCK_SEQPACKET socketpair (message boundaries kept, so a record is one recv()). For each spawn it
// creates the worker's IPC socketpair, forks, passes the supervisor's end back with SCM_RIGHTS and closes
// its own copies: a worker's only link to the supervisor is that socket, so it sees EOF when the
// supervisor goes away. It reports every worker death (the waitpid status) and kills leftovers when the
// supervisor closes the channel; PR_SET_PDEATHSIG takes it down (and its workers with it) if the
// supervisor dies.
#include <sys/types.h>

#include <cstdint>
#include <optional>

#include "core/clock.h"
#include "core/result.h"
#include "core/wait_status.h"  // describe_wait_status() for the launcher's callers
#include "probes/probe.h"
#include "sandbox/user.h"

namespace netprobe {

// What a worker is started with: fixed for its lifetime because it shapes the capture, opened while the
// worker is still privileged and before it reads any configuration.
struct WorkerSpawn {
  uint32_t index = 0;
  KeySlice slice{};
  uint32_t types_mask = 0;          // bit (1 << ProbeType) for every probe type its capture must see
  uint32_t capture_buffer_mib = 4;  // kernel capture ring (worker/capture_sizing.h)
  // The on-demand worker (docs/on-demand.md#the-on-demand-worker): runs jobs, not a shard's iterations.
  bool on_demand = false;
  friend bool operator==(const WorkerSpawn&, const WorkerSpawn&) = default;
};

// Runs in the forked worker (still holding CAP_NET_RAW); returns its exit code. `ipc_fd` is the worker's
// end of its socketpair with the supervisor.
using WorkerEntry = int (*)(int ipc_fd, const WorkerSpawn& spawn);

struct LaunchRequest {
  enum Op : uint32_t { kSpawn = 1, kKill = 2 };
  uint32_t op = 0;
  uint32_t index = 0;
  int32_t slice_bits = 0;
  uint32_t types_mask = 0;
  uint32_t capture_buffer_mib = 0;
  int32_t pid = 0;         // kKill: the worker to SIGKILL (only if it is still an unreaped child)
  uint32_t on_demand = 0;  // kSpawn: 1 for the on-demand worker
};

struct LaunchEvent {
  enum Op : uint32_t { kSpawned = 1, kSpawnFailed = 2, kExited = 3 };
  uint32_t op = 0;
  uint32_t index = 0;
  int32_t pid = 0;
  int32_t status = 0;  // kExited: waitpid status; kSpawnFailed: errno
  int fd = -1;         // kSpawned: the supervisor's end of the worker's IPC socket (owned by the receiver)
};

// How the launcher confines itself right after the fork, in this order (workers inherit all of it):
//   1. an empty read-only root in a private mount namespace (sandbox/confine.h), when privileged enough;
//      workers read no file: their sockets and capture need none
//   2. the user switch, keeping CAP_NET_RAW (PR_SET_KEEPCAPS): every worker it forks holds CAP_NET_RAW as
//      that user until its sockets are open; no ambient capability is needed since workers never exec
//   3. every capability but CAP_NET_RAW dropped, no-new-privs, non-dumpable, its seccomp deny list
struct LauncherConfinement {
  std::optional<RunAs> user;  // nullopt: stay as the user netprobe was started as
  bool empty_root = true;     // skipped (logged) without CAP_SYS_ADMIN
};

// The supervisor's handle on the launcher.
class LauncherClient {
 public:
  // Forks the launcher. Call while privileged and before any thread exists (fork of a multithreaded
  // process is unsafe). Signals the launcher must not react to must already be blocked.
  static Result<LauncherClient> start(WorkerEntry entry, const LauncherConfinement& confinement);
  static Result<LauncherClient> start(WorkerEntry entry) { return start(entry, LauncherConfinement{}); }
  // Waits (at most 10 s) until the launcher says it is confined and ready. A launcher that cannot confine
  // itself logs why and exits: an Error here (and the launcher is reaped), not a "launcher gone" later.
  Status wait_ready();
  LauncherClient(LauncherClient&& other) noexcept;
  LauncherClient& operator=(LauncherClient&& other) noexcept;
  ~LauncherClient();

  int fd() const { return fd_; }
  pid_t pid() const { return pid_; }
  Status spawn(const WorkerSpawn& spawn);
  Status kill(uint32_t index, pid_t worker);
  // The next event, if one is ready (non-blocking); an Error when the launcher is gone.
  Result<std::optional<LaunchEvent>> read_event();
  // Closes the channel: the launcher SIGKILLs the workers it still has, reaps them and exits. Waits at
  // most `timeout` for that, then SIGKILLs the launcher. Returns true if it exited by itself.
  bool stop(Nanos timeout);

 private:
  LauncherClient(int fd, pid_t pid) : fd_(fd), pid_(pid) {}
  int fd_ = -1;
  pid_t pid_ = -1;
};

}  // namespace netprobe
