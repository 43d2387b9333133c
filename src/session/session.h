#pragma once
// In-process probing for the one-shot commands (`netprobe check`, and `netprobe ping` next): no launcher,
// no worker, no IPC. Session::open() opens the raw sockets and the capture in this process while it holds
// CAP_NET_RAW (engine/probe_io.h, exactly what a worker opens), drops every capability before anything is
// read from the network (non-dumpable, the supervisor's seccomp deny list), and then runs iterations of a
// plan with the workers' Engine, handing back their IterationReports. The caller resolves names and builds
// the plan (sched/target_plan.h) after open().
//
// The whole token space is this process's (KeySlice{}): there is no other worker to share it with.
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/measurement.h"
#include "engine/engine.h"
#include "engine/probe_io.h"
#include "sched/plan.h"

namespace netprobe {

struct SessionOptions {
  std::vector<ProbeType> types;  // every probe type the plan will use (the capture filter's clauses)
  uint32_t capture_buffer_mib = 4;
};

class Session {
 public:
  // Needs CAP_NET_RAW. On failure returns null and sets `error`: exit code 77 (EX_NOPERM) with the three
  // ways to grant the capability when it is missing, or whatever open_probe_io() or the drop reported.
  static std::unique_ptr<Session> open(const SessionOptions& options, ProbeIoError& error);
  // Over a given link: the component tests' fake link and clock (EngineOptions::capture_thread = false).
  Session(Clock& clock, PacketSink& sink, PacketSource& source, uint64_t secret, EngineOptions options = {});
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // Called after each iteration, with its 0-based number, as soon as its report is complete.
  using ReportHandler = std::function<void(int iteration, const IterationReport& report)>;
  // Called after each iteration, before its ReportHandler, with one event per probe of the plan in plan
  // order (`netprobe ping`'s line per probe). Without it the events are not built.
  using ProbeEventHandler = std::function<void(int iteration, std::span<const ProbeEvent> events)>;
  // Runs `count` iterations of `plan`, starting one every settings.interval_s (no wait after the last),
  // and returns their reports in order. Returns fewer when stop() was called (the cut-short iteration is
  // left out of the reports, but its probes still go to `on_probes`, as ping counts an interrupted run:
  // answered ones answered, sent ones still waiting ProbeEvent::interrupted, the rest unsent "cut_short")
  // or when the capture
  // failed (capture_error(); nothing of that iteration is delivered).
  std::vector<IterationReport> run(const Plan& plan, const IterationSettings& settings, int count,
                                   const ReportHandler& on_report = {},
                                   const ProbeEventHandler& on_probes = {});
  // From any thread (a signal handler's thread): the running iteration returns as soon as possible.
  void stop();
  // Non-empty once the capture failed: the reports after that would read as 100 % loss, so run() stops.
  std::string capture_error() const { return source_.failed() ? source_.error() : std::string(); }
  // Non-fatal remarks from opening the sockets and the capture.
  const std::vector<std::string>& warnings() const { return warnings_; }

 private:
  Session(std::unique_ptr<ProbeIo> io, uint64_t secret);

  std::unique_ptr<SystemClock> own_clock_;
  std::unique_ptr<ProbeIo> io_;
  Clock& clock_;
  WatchedSource source_;
  std::vector<std::string> warnings_;
  Engine engine_;
};

}  // namespace netprobe
