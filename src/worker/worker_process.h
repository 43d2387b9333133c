#pragma once
// A probe worker process: opens its raw sockets and its capture while it still holds CAP_NET_RAW, drops
// every capability, then runs Engine iterations on the shard the supervisor sends over its IPC socket
// and sends back one report per iteration.
//
//   IPC thread                          main thread
//   ----------                          -----------
//   read frames (shard, stop)           wait for a shard; build the plan
//   SIGTERM/SIGINT/EOF -> stop          run_iteration; send the report; sleep out the interval
//                                       a new shard replaces the plan at the end of the iteration
//
// The worker dies when the supervisor does: EOF on the IPC socket stops it, and PR_SET_PDEATHSIG kills
// it if the launcher (its parent, which dies with the supervisor) goes first.
//
// Exit codes: 0 stopped on request; 69 (EX_UNAVAILABLE) the capture failed after start; 76
// (EX_PROTOCOL) unreadable IPC; 77 (EX_NOPERM) raw socket, capture or capability drop failed.
#include <cstdint>
#include <span>
#include <vector>

#include "core/net.h"
#include "launcher/launcher.h"
#include "probes/probe.h"

namespace netprobe {

// The process entry (a WorkerEntry, see launcher.h).
int worker_main(int ipc_fd, const WorkerSpawn& spawn);

}  // namespace netprobe
