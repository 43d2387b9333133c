#pragma once
// The cost of the prober itself, read from /proc at collection time.
//
// - The process_* families that prometheus_client adds to every netprobify scrape
//   (docs/netprobify-compatibility.md#metrics), of the supervisor process only as before
//   (docs/netprobify-compatibility.md#d28-exposition-details): process_cpu_seconds_total,
//   process_resident_memory_bytes, process_virtual_memory_bytes, process_start_time_seconds,
//   process_open_fds, process_max_fds.
// - The whole process tree, one series per live process (the supervisor is about 5 % of the tree's CPU):
//     netprobe_process_cpu_seconds_total{process="supervisor|launcher|worker"[,worker="N"]}
//     netprobe_process_resident_memory_bytes{...}
//   from /proc/<pid>/stat of the children the supervisor knows (set_children()). A child's series goes
//   when it exits; a restarted worker's counter starts again from 0 (a counter reset, which rate()
//   handles). A pid is only read while its command name is netprobe's (netprobe-launch, netprobe-w<N>), so
//   that a pid reused in the instant between a worker's exit and set_children() is never counted.
//
// Thread-safety: Collect() may run concurrently from several HTTP threads and with set_children() (the
// supervisor's loop). It never throws: a family or a process whose /proc file cannot be read is left out.
#include <sys/types.h>

#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>

namespace netprobe {

class ProcessCollector : public prometheus::Collectable {
 public:
  struct Child {
    std::string kind;               // "launcher", "worker"
    std::optional<uint32_t> index;  // the `worker` label
    pid_t pid = -1;
    friend bool operator==(const Child&, const Child&) = default;
  };

  ProcessCollector() : ProcessCollector("/proc") {}
  // `proc_root`: a directory laid out as /proc (tests give a fake one); "self" is the supervisor.
  explicit ProcessCollector(std::string proc_root);

  // The supervisor's current children (launcher, workers), replacing the previous list.
  void set_children(std::vector<Child> children);
  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  std::string proc_root_;
  double ticks_per_second_ = 100;
  long page_size_ = 4096;
  double boot_time_s_ = -1;  // btime of /proc/stat; < 0 when unreadable
  mutable std::mutex mu_;
  std::vector<Child> children_;
};

}  // namespace netprobe
