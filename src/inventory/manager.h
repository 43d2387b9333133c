#pragma once
// InventoryManager: runs the dynamic inventory plug-ins of a directory (inventories/README.md) and keeps
// the union of their targets. Driven by ONE thread (the supervisor), which calls poll() from its loop:
// poll() never blocks (non-blocking pipes, waitpid(WNOHANG)); fds() and next_deadline() let an event loop
// sleep until there is something to do. The supervisor rebuilds probing when generation() changes.
//
// Failures (crash, non-zero exit, no document within first_document_timeout, unreadable output) are logged,
// counted (on_failure) and followed by a restart after a backoff doubling from backoff_initial to
// backoff_max; the plug-in's last good targets stay until their lifetime ends. A plug-in that exits 0 after
// writing its document(s) is a one-shot: it is run again after rerun_interval.
#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "config/config.h"
#include "core/clock.h"
#include "inventory/document.h"

namespace netprobe {

struct InventoryOptions {
  std::string directory;                  // see inventory_directory()
  std::vector<std::string> disabled;      // global.disable_dynamic_inventories
  std::string probe_name;                 // passed to plug-ins as NETPROBE_PROBE_NAME
  std::string logging_level;              // passed as NETPROBE_LOGGING_LEVEL
  int default_dns_update_interval_s = 0;  // global.dns_update_interval
  Nanos first_document_timeout = std::chrono::seconds(120);
  Nanos rerun_interval = std::chrono::seconds(60);
  Nanos backoff_initial = std::chrono::seconds(1);
  Nanos backoff_max = std::chrono::seconds(60);
  Nanos stop_grace = std::chrono::seconds(2);  // SIGTERM -> SIGKILL
  size_t max_document_bytes = size_t(64) << 20;

  // Metrics hooks (ProberMetrics::inc_inventory_failure / set_inventory_targets / declare_inventory).
  std::function<void(const std::string& inventory)> on_started;
  std::function<void(const std::string& inventory)> on_failure;
  std::function<void(const std::string& inventory, size_t targets)> on_targets;
};

// The plug-in directory of a configuration: global.inventory_dir, relative to the directory of the
// configuration file; by default `inventories` next to it.
std::string inventory_directory(const Config& config);
// InventoryOptions filled from a configuration (directory, disabled, probe name, log level, DNS interval).
InventoryOptions inventory_options(const Config& config);

// A target of a plug-in as the manager keeps it.
struct TimedTarget {
  TargetConfig config;
  std::string canonical;            // DynamicTarget::canonical
  Nanos first_seen{};               // realtime of the first document that listed it (this run or earlier)
  std::optional<Nanos> expires_at;  // realtime; absent: no lifetime
};

struct InventoryStatus {
  std::string name;
  std::string path;
  pid_t pid = -1;  // -1 when not running
  uint64_t runs = 0;
  uint64_t failures = 0;
  uint64_t documents = 0;  // documents accepted
  size_t targets = 0;
  std::string last_error;  // "" if the last run was fine
};

class InventoryManager {
 public:
  InventoryManager(InventoryOptions options, Clock& clock);
  ~InventoryManager();  // stop()
  InventoryManager(const InventoryManager&) = delete;
  InventoryManager& operator=(const InventoryManager&) = delete;

  // Finds the plug-ins (executable regular files of the directory; name = file name up to the first '.';
  // hidden files, names starting with '_' and disabled names skipped) and starts them. A missing directory
  // means no plug-in. Returns the names started.
  std::vector<std::string> start();
  // Non-blocking: reads output, reaps exits, kills hung plug-ins, restarts due ones, expires targets.
  void poll();
  // Stops every plug-in (SIGTERM, then SIGKILL after stop_grace). Blocking; targets are kept.
  void stop();
  // SIGTERM to every plug-in's process group, without waiting: for a process about to exit (the plug-ins
  // also get SIGTERM from PR_SET_PDEATHSIG when it is gone).
  void terminate();

  // The descriptors to wait on (readable = poll() has work) and the monotonic time by which poll() must
  // run again (restarts, hang timeouts, lifetimes; Nanos::max() if none).
  std::vector<int> fds() const;
  Nanos next_deadline() const;

  // Groups of the running configuration. Targets keep only these (an unknown group is warned once per
  // target and group); before the first call every group is kept as given.
  void set_known_groups(std::set<std::string> groups);

  // Every plug-in's live targets, by name (`<plugin>_<hostname>`), minus those whose lifetime ended at
  // `now_realtime`. On a name clash between two plug-ins the first plug-in in name order wins.
  std::map<std::string, TargetConfig> dynamic_targets(Nanos now_realtime) const;
  std::map<std::string, TargetConfig> dynamic_targets() const { return dynamic_targets(clock_.realtime()); }
  // Changes whenever dynamic_targets() would return something else (documents, expiries, known groups).
  uint64_t generation() const { return generation_; }

  std::vector<InventoryStatus> status() const;

  struct Plugin;  // internal

 private:
  void spawn(Plugin& p);
  void drain(Plugin& p);
  void handle_document(Plugin& p, std::string_view text);
  void fail(Plugin& p, const std::string& why, bool kill);
  void finish_run(Plugin& p, int wait_status);
  void expire();
  void set_targets(Plugin& p, std::map<std::string, TimedTarget> targets);

  InventoryOptions options_;
  Clock& clock_;
  std::vector<std::unique_ptr<Plugin>> plugins_;  // in name order
  std::optional<std::set<std::string>> known_groups_;
  mutable std::set<std::pair<std::string, std::string>> warned_groups_;  // (target, group)
  uint64_t generation_ = 0;
};

}  // namespace netprobe
