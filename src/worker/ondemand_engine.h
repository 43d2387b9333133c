#pragma once
// The on-demand worker's engine (docs/on-demand.md#the-on-demand-worker): runs jobs (ipc.h OnDemandJob)
// side by side, each probe at the send time the supervisor's PacketBudget chose, and reports one
// ProbeEvent per probe with its reply details.
//
//   sender (run())                              capture thread
//   --------------                              --------------
//   jobs -> free lanes (plan, tokens)           poll the PacketSource; each packet to every busy lane
//   send each lane's due probes                 (its IterationRunner rejects what is not its own)
//   expire; a resolved lane -> its result
//
// Concurrent jobs may probe one destination: each lane's IterationRunner owns a sub-slice of the worker's
// key slice (kLaneBits more bits), so a reply is matched by its own lane only. A job waits for a free
// lane; a probe whose send time passed by more than kLateTolerance (a job that waited) is not sent (cut
// short): sending it later could crowd the next caller's packets to that destination. A job's gap floors
// (OnDemandJob::dest_gap_ns, global_gap_ns) hold whatever job sent the previous packet: a probe waits
// until it is that far from the last one to its destination (and from the last one at all).
#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

#include "core/clock.h"
#include "core/result.h"
#include "engine/iteration.h"
#include "io/packet_io.h"
#include "ipc/ipc.h"
#include "sched/plan.h"

namespace netprobe {

// The plan of a job: one template per distinct TTL (DSCP, payload, destination port of the job), the
// probes in job order, one target and bucket; `source_for` gives the kernel's source towards the
// destination. An Error when there is none (no route).
Result<Plan> build_job_plan(const OnDemandJob& job, const SourceResolver& source_for);

class OnDemandEngine {
 public:
  static constexpr int kLaneBits = 4;  // 16 jobs in flight at once; more wait for a lane
  static constexpr Nanos kLateTolerance{200'000'000};
  using Done = std::function<void(OnDemandResult)>;  // called on run()'s thread

  OnDemandEngine(Clock& clock, PacketSink& sink, PacketSource& source, uint64_t secret, KeySlice slice,
                 SourceResolver source_for, bool capture_thread = true);
  ~OnDemandEngine();
  OnDemandEngine(const OnDemandEngine&) = delete;
  OnDemandEngine& operator=(const OnDemandEngine&) = delete;

  // From any thread.
  void submit(OnDemandJob job);
  void stop();
  // The sending loop, until stop(). Without a capture thread (tests), it polls the source itself.
  void run(const Done& done);
  // When run() last went round (monotonic): the worker's heartbeat says it is alive only if recent.
  Nanos last_progress() const { return Nanos(progress_.load(std::memory_order_relaxed)); }
  size_t busy_lanes() const;

 private:
  struct Lane {
    std::unique_ptr<IterationRunner> runner;
    bool busy = false;
    OnDemandJob job;
    Plan plan;
    std::span<const uint32_t> tokens;
    size_t next = 0;  // the next probe to send
    Nanos hard_deadline{0};
  };
  void admit(const Done& done);
  // Sends due probes; returns the next due time (Nanos::max() if none).
  Nanos send_due(Nanos now);
  void finish_resolved(const Done& done);
  int poll_once(Nanos wait);

  Clock& clock_;
  PacketSink& sink_;
  PacketSource& source_;
  SourceResolver source_for_;
  bool capture_thread_;
  uint64_t iteration_;
  std::vector<Lane> lanes_;
  mutable std::mutex mu_;  // guards lanes_' runners and busy flags against the capture thread
  std::mutex queue_mu_;
  std::deque<OnDemandJob> queue_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> quit_capture_{false};
  std::atomic<int64_t> progress_{0};
  std::thread capture_;
  std::vector<uint8_t> buffer_;
  // When the last on-demand packet left, per destination and at all (the jobs' gap floors).
  std::unordered_map<IpAddress, Nanos> last_to_;
  Nanos last_any_{Nanos::min()};
};

}  // namespace netprobe
