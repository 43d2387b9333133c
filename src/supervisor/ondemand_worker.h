#pragma once
// The supervisor's side of the on-demand worker (docs/on-demand.md#the-on-demand-worker):
//
// - OnDemandWorker: ondemand::ProbeExecutor over the worker's IPC. Runs on the supervisor's poll loop
//   only. Each job gets an id; its events come back in a "job_result" frame. A job fails cleanly (every
//   probe unsent, reason `no_worker`) when the worker is not running, when it goes down with the job in
//   flight, or when no result came within the job's last send time + timeout + kResultGrace.
// - LoopQueue: how another thread hands work to the poll loop (an eventfd in its poll set).
// - WorkerHopProber (make_hop_prober()): trace.h's HopProber over the same worker, for the /api/v1/tests
//   trace and pathloss tests that run on their own threads: probe() posts the batch to the loop and
//   waits, bounded, for its events.
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/clock.h"
#include "http/server.h"
#include "ipc/ipc.h"
#include "ondemand/probe_service.h"
#include "trace/prober.h"

namespace netprobe {

// Tasks posted from any thread, run by the poll loop (drain()). fd() is an eventfd for its poll set.
class LoopQueue {
 public:
  LoopQueue();
  ~LoopQueue();
  LoopQueue(const LoopQueue&) = delete;
  LoopQueue& operator=(const LoopQueue&) = delete;
  int fd() const { return fd_; }
  // False (the task dropped) when more than kMaxPending wait or the loop is closed.
  bool post(std::function<void()> task);
  void drain();  // the loop: runs every task posted so far
  void close();  // the loop stops: later posts fail, pending tasks are dropped
  static constexpr size_t kMaxPending = 4096;

 private:
  int fd_ = -1;
  std::mutex mu_;
  std::deque<std::function<void()>> tasks_;
  bool closed_ = false;
};

class OnDemandWorker final : public ondemand::ProbeExecutor {
 public:
  // Sends a job frame to the worker; false when it is not running.
  using Send = std::function<bool(const OnDemandJob&)>;
  using JobDone = std::function<void(std::vector<ProbeEvent> events)>;
  static constexpr Nanos kResultGrace{2'000'000'000};

  OnDemandWorker(Clock& clock, Send send) : clock_(clock), send_(std::move(send)) {}

  // ProbeExecutor: job.addresses.front() at `send_times`, ports rotating over src_port_a..z. Every probe
  // must be answered by now + job.timeout_s (blackbox's rule: the whole probe within its timeout).
  void run(const ondemand::ProbeJob& job, std::vector<Nanos> send_times,
           std::function<void(std::vector<ProbeEvent>)> done) override;
  // The caps every job keeps at the worker whatever its lateness (OnDemandJob::dest_gap_ns): floor_gap()
  // of budget.h, so that the target never counts more than the cap in a one-second window (0: none).
  void set_caps(double per_destination_pps, double global_pps);
  // Any job (traces): `done` gets one event per probe, in job order. Sets job.id and the caps' floors.
  void run_job(OnDemandJob job, JobDone done);

  // From the pool.
  void on_result(OnDemandResult result);
  void on_down();  // every job in flight fails
  // Jobs past their bound fail; next_deadline() for the poll timeout.
  void run_timers();
  Nanos next_deadline() const;

  size_t in_flight() const { return pending_.size(); }
  uint64_t packets_sent() const { return packets_sent_; }  // netprobe_api_packets_total

  // The job a ProbeJob becomes (exposed for tests).
  static OnDemandJob job_of(const ondemand::ProbeJob& job, const std::vector<Nanos>& send_times, Nanos now);
  // Every probe of `job` unsent because of `reason` (an IterationRunner::kUnsent* reason).
  static std::vector<ProbeEvent> unsent_events(const OnDemandJob& job, size_t reason);

 private:
  struct Pending {
    OnDemandJob job;  // probes kept for unsent_events()
    Nanos deadline{0};
    JobDone done;
  };
  void fail(uint64_t id, const std::string& why);

  Clock& clock_;
  Send send_;
  uint64_t next_id_ = 1;
  int64_t dest_gap_ns_ = 0, global_gap_ns_ = 0;
  std::map<uint64_t, Pending> pending_;
  uint64_t packets_sent_ = 0;
};

// HopProber over the on-demand worker. probe() may be called from any thread but the loop's; it blocks
// until the batch's events are back or its bound passed (then those probes read as silence, and
// stopped() is true: the worker is gone). Thread-safe (one batch at a time per prober).
class WorkerHopProber final : public HopProber {
 public:
  WorkerHopProber(LoopQueue& loop, OnDemandWorker& worker, TraceTarget target, double timeout_s,
                  double rate_pps)
      : loop_(loop),
        worker_(worker),
        target_(std::move(target)),
        timeout_s_(timeout_s),
        rate_pps_(rate_pps) {}
  // At the prober's rate from now (the trace and pathloss CLIs' pace).
  std::vector<HopReply> probe(std::span<const ProbeSpec> probes) override;
  // At the given times (the on-demand budget's), kept by the worker like /probe's (floors included).
  std::vector<HopReply> probe_at(std::span<const ProbeSpec> probes, std::span<const Nanos> send_at) override;
  bool stopped() const override { return failed_.load(); }
  uint64_t sent() const { return sent_.load(); }

 private:
  LoopQueue& loop_;
  OnDemandWorker& worker_;
  TraceTarget target_;
  double timeout_s_, rate_pps_;
  std::mutex mu_;
  std::atomic<bool> failed_{false};
  std::atomic<uint64_t> sent_{0};
};

// What the /api/v1/tests library is handed: a HopProber per trace or pathloss test.
using HopProberFactory =
    std::function<std::unique_ptr<HopProber>(TraceTarget target, double timeout_s, double rate_pps)>;
HopProberFactory make_hop_prober_factory(LoopQueue& loop, OnDemandWorker& worker);

// GET /probe as an asynchronous HTTP route (docs/on-demand.md#get-probe): the request is copied (query
// parameters, a repeated one or more than kMaxQueryParams being a 400 at once), posted to the loop, which
// calls `serve`; its answer resumes the suspended connection. The route skips the /metrics users: the
// on-demand credentials are checked by the ProbeService.
using ProbeServe =
    std::function<void(ondemand::ProbeHttpRequest, std::function<void(ondemand::ProbeHttpResponse)>)>;
inline constexpr size_t kMaxQueryParams = 32;
http::Route make_probe_route(LoopQueue& loop, std::shared_ptr<const ProbeServe> serve);

}  // namespace netprobe
