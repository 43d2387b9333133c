#pragma once
// The flows (ECMP paths) of one (target, group) over the last iterations, and which of them lose
// significantly more than the others (docs/paths.md). Kept by the supervisor's metrics, fed one iteration
// at a time.
#include <cstdint>
#include <span>
#include <unordered_map>
#include <vector>

#include "core/measurement.h"
#include "core/net.h"

namespace netprobe {

struct FlowKey {
  IpAddress src;
  IpAddress dst;
  uint16_t src_port = 0;
  friend bool operator==(const FlowKey&, const FlowKey&) = default;
};

// A flow's totals over the window.
struct PathFlow {
  FlowKey key;
  uint64_t sent = 0;
  uint64_t lost = 0;
  uint64_t rtt_count = 0;
  double rtt_sum_s = 0;
  double loss_ratio() const { return sent ? double(lost) / double(sent) : 0.0; }
};

struct PathSummary {
  uint32_t paths = 0;                 // flows probed in the last iteration
  uint32_t paths_with_loss = 0;       // flows flagged by lossy_flows() over the window
  double worst_loss_ratio = 0;        // the highest loss ratio over the window of a flow probed in it
  std::vector<PathFlow> lossy;        // the flagged flows, worst first (loss ratio, then probes sent)
  bool several_sources = false;       // the flows in the window have more than one source address
  bool several_destinations = false;  // ... more than one destination address (a subnet target)
};

class PathWindow {
 public:
  static constexpr uint32_t kDefaultIterations = 5;
  static constexpr uint32_t kMaxIterations = 100;
  explicit PathWindow(uint32_t iterations = kDefaultIterations);

  // A new window length forgets what was kept (the test compares like with like).
  void set_iterations(uint32_t iterations);
  uint32_t iterations() const { return iterations_; }
  // One iteration's flows of the (target, group), whose source indexes designate `sources` (the report's);
  // flows absent from the last `iterations` ones are forgotten. A flow whose index designates nothing is
  // ignored.
  void add(const GroupMeasurement& m, std::span<const IpAddress> sources);
  const PathSummary& summary() const { return summary_; }
  void clear();

  size_t flow_count() const { return keys_.size(); }
  // Heap bytes held (capacity), for the cost figures in docs/paths.md.
  size_t memory_bytes() const;

 private:
  // 16 bytes per flow and iteration of the window.
  struct Tally {
    uint32_t sent = 0;
    uint32_t lost = 0;
    uint32_t rtt_count = 0;
    float rtt_sum_s = 0;
  };
  struct KeyHash {
    size_t operator()(const FlowKey& k) const noexcept;
  };
  void forget_stale();
  void summarise();

  uint32_t iterations_;
  uint32_t column_ = 0;              // the ring column of the last iteration
  uint64_t added_ = 0;               // iterations added
  std::vector<FlowKey> keys_;        // per flow
  std::vector<uint64_t> last_seen_;  // per flow: the iteration (added_) it was last probed in
  std::vector<Tally> ring_;          // per flow, iterations_ columns
  std::unordered_map<FlowKey, uint32_t, KeyHash> index_;
  PathSummary summary_;
};

}  // namespace netprobe
