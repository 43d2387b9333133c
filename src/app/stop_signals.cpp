#include "app/stop_signals.h"

#include <pthread.h>

namespace netprobe {

StopSignals::StopSignals() {
  sigemptyset(&set_);
  sigaddset(&set_, SIGINT);
  sigaddset(&set_, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set_, nullptr);
}

void StopSignals::start(std::function<void()> on_stop) {
  waiter_ = std::thread([this, on_stop = std::move(on_stop)] {
    int sig = 0;
    if (sigwait(&set_, &sig) != 0) return;
    if (!done_.exchange(true)) on_stop();
  });
}

void StopSignals::finish() {
  if (!waiter_.joinable()) return;
  // Wakes the waiter (blocked: sigwait takes it) unless a real signal already did.
  if (!done_.exchange(true)) pthread_kill(waiter_.native_handle(), SIGTERM);
  waiter_.join();
}

}  // namespace netprobe
