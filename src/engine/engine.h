#pragma once
// Runs iterations: paced sending on the calling thread, capture and matching on a capture thread.
//
//   sender (caller)                      capture thread
//   ---------------                      --------------
//   prepare tokens (runner, locked)      poll the PacketSource (never waits on the sender)
//   craft + sendmmsg at schedule()       classify + match each packet (runner, locked per run of packets)
//   arm probes not seen leaving
//   expire deadlines until all resolved
//   report
//
// The lock is uncontended while sending: the sender only takes it before and after the send loop and
// every few milliseconds while waiting for answers. In synchronous mode (tests on a fake clock) the
// capture work runs on the caller's thread between sends and while waiting.
#include <atomic>
#include <memory>
#include <mutex>
#include <thread>

#include "core/clock.h"
#include "core/measurement.h"
#include "engine/iteration.h"
#include "io/packet_io.h"
#include "sched/plan.h"

namespace netprobe {

struct EngineOptions {
  bool capture_thread = true;
  size_t batch = 64;                // packets per sendmmsg
  Nanos poll_wait{5'000'000};       // how long one capture poll may wait
  Nanos capture_grace{50'000'000};  // expire only deadlines older than this: answers may still sit in
                                    // the capture buffer (pcap's buffer timeout) when a deadline passes
  KeySlice slice{};                 // this worker's share of the token space
};

class Engine {
 public:
  Engine(Clock& clock, PacketSink& sink, PacketSource& source, uint64_t secret, EngineOptions options = {});
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // `plan` need only live until run_iteration returns: the capture thread drops it with the report.
  // With `events`, also one ProbeEvent per probe of the plan (IterationRunner::probe_events(), replacing its
  // content): for the one-shot commands; the workers pass none and pay nothing.
  IterationReport run_iteration(const Plan& plan, const IterationSettings& settings,
                                std::vector<ProbeEvent>* events = nullptr);
  // Makes a running iteration return as soon as possible (from any thread, e.g. on SIGTERM).
  void stop();
  bool stopped() const { return stop_.load(); }
  // When the sending thread last made progress (monotonic): it never waits longer than kMaxWait without
  // updating it while an iteration runs, so that a wedged engine can be told from a slow interval.
  Nanos last_progress() const { return Nanos(progress_.load(std::memory_order_relaxed)); }
  static constexpr Nanos kMaxWait{250'000'000};

 private:
  void capture_loop();
  int poll_once(Nanos wait);  // PacketSource::poll()'s result
  void send_resets(const Plan& plan, std::span<const uint32_t> tokens);
  // The send phase, paced over the send window; false if the hard timeout cut it short.
  bool send_probes(const Plan& plan, std::span<const uint32_t> tokens, const IterationSettings& settings,
                   Nanos start, Nanos hard_deadline);
  // Until every probe is answered or past its deadline; false if the hard timeout came first.
  bool wait_for_answers(const Plan& plan, std::span<const uint32_t> tokens, Nanos hard_deadline);
  // The capture's counters since the previous iteration.
  void add_capture_stats(IterationReport& report);

  Clock& clock_;
  PacketSink& sink_;
  PacketSource& source_;
  EngineOptions options_;
  std::mutex mu_;  // guards runner_
  IterationRunner runner_;
  uint64_t iteration_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int64_t> progress_{0};
  std::atomic<bool> quit_capture_{false};
  std::thread capture_;
  CaptureStats last_stats_{};
  std::vector<uint8_t> buffer_;
  std::vector<uint32_t> resets_;
  std::vector<IterationRunner::StaleReset> stale_resets_;
};

}  // namespace netprobe
