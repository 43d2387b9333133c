#pragma once
// The process_* families that prometheus_client adds to every netprobify scrape
// (docs/netprobify-compatibility.md#metrics; of this process only, see
// docs/netprobify-compatibility.md#d28-exposition-details), read
// from /proc/self at collection time: process_cpu_seconds_total, process_resident_memory_bytes,
// process_virtual_memory_bytes, process_start_time_seconds, process_open_fds, process_max_fds.
//
// Thread-safety: Collect() may run concurrently from several HTTP threads; it only reads immutable
// members and the kernel's files. It never throws: a family whose source cannot be read is left out.
#include <vector>

#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>

namespace netprobe {

class ProcessCollector : public prometheus::Collectable {
 public:
  ProcessCollector();
  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  double ticks_per_second_ = 100;
  long page_size_ = 4096;
  double boot_time_s_ = -1;  // btime of /proc/stat; < 0 when unreadable
};

}  // namespace netprobe
