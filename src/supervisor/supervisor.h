#pragma once
// The supervisor: the process that owns the configuration (load, reload), target resolution, the
// Prometheus registry and the /metrics exporter, and that holds no capability at all once started.
//
//   netprobe (supervisor, no capability)        poll loop: signals, launcher events, worker IPC, timers
//    └─ netprobe-launch (CAP_NET_RAW only)      forks workers on request, reports their deaths
//        ├─ netprobe-w0 (no capability)         probes its shard, one report per iteration
//        ├─ netprobe-w1 ...
//        └─ netprobe-od (no capability)         on_demand only: runs /probe jobs (ondemand_worker.h)
// All of them run as the unprivileged --user, confined (docs/architecture.md#confinement); the supervisor
// publishes its children's pids to the ProcessCollector (netprobe_process_* of the whole tree).
//
// Workers: global.nb_proc of them, each probing the targets that rendezvous hashing gives it
// (sharding.h) with tokens in its own key slice. The supervisor records each report into ProberMetrics
// as it arrives (it alone touches the registry), filtered to the targets currently configured so that a
// late report never resurrects the series of a target a reload removed.
//
// Faults: a worker that dies is logged with its wait status and restarted after Backoff (1 s doubling
// to 30 s, reset after a healthy minute); app_worker_restarts_total counts restarts. Counters live in
// the supervisor, so they never go backwards; the dead worker's unfinished iteration is not reported;
// the other workers keep probing. A worker silent for interval + global.timeout + 10 s is killed and
// counted in app_process_timed_out_total, like an iteration cut short by global.timeout.
//
// Reload (SIGHUP, global.reload_conf_interval): a valid configuration is applied at once by the
// supervisor (series of removed targets, groups and percentiles cleared) and each worker takes its new
// shard at the end of its current iteration, which is netprobify's "at the end of the iteration" for
// workers that no longer share one loop. A worker whose capture no longer fits its shard (a new probe
// type, another nb_proc and so other key slices) is replaced (a planned restart, not counted). An
// invalid configuration is logged, error by error; the running one stays and
// app_reload_conf_failed_status is 1 until a reload succeeds.
//
// Shutdown (SIGTERM, SIGINT): workers are told to stop, the launcher kills whatever is left, and the
// process exits without waiting for the HTTP server's threads (see run_supervisor()).
#include <optional>
#include <string>

#include "config/config.h"
#include "config/tag_selection.h"
#include "metrics/exporter.h"
#include "web/surface.h"

#include "launcher/launcher.h"

namespace netprobe {

// Drops every capability, starts the exporter and runs the supervisor until SIGTERM/SIGINT. `config` is
// the validated start-up configuration of `path`. SIGINT, SIGTERM, SIGHUP and SIGCHLD must be blocked in
// the calling thread (and no other thread may exist yet). Does not return: it exits the process with a
// sysexits code (0 after a requested stop). Only the targets `selection` selects are probed (configuration
// and inventory targets, at every reload).
[[noreturn]] void run_supervisor(LauncherClient launcher, Config config, const std::string& path,
                                 const std::string& version, web::WebSettings web,
                                 TagSelection selection = {});

}  // namespace netprobe
