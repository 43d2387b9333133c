#pragma once
// SIGINT/SIGTERM for the one-shot commands (`netprobe check`, `netprobe ping`): end the run early and print
// what was measured. The signals are blocked by the constructor, before any thread exists (the session's
// capture thread inherits the mask), and taken by sigwait() on a waiter thread that calls `on_stop` once.
#include <signal.h>

#include <atomic>
#include <functional>
#include <thread>

namespace netprobe {

class StopSignals {
 public:
  StopSignals();  // blocks SIGINT and SIGTERM in the calling thread
  ~StopSignals() { finish(); }
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;

  // Starts the waiter: `on_stop` runs on it at the first SIGINT/SIGTERM, unless finish() came first.
  void start(std::function<void()> on_stop);
  // Stops and joins the waiter: `on_stop` is not called after it returns.
  void finish();

 private:
  sigset_t set_;
  std::atomic<bool> done_{false};
  std::thread waiter_;
};

}  // namespace netprobe
