#pragma once
// Time is injected everywhere above the sockets so that tests run on a fake clock.
// Two time bases exist on purpose:
//   - monotonic(): for deadlines, pacing and intervals (never jumps);
//   - realtime():  the base of kernel/pcap packet timestamps, used only to compute RTTs between
//                  two packet timestamps (both from the same base).
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <ctime>
#include <mutex>

namespace netprobe {

using Nanos = std::chrono::nanoseconds;

class Clock {
 public:
  virtual ~Clock() = default;
  virtual Nanos monotonic() const = 0;
  virtual Nanos realtime() const = 0;
  // Sleeps until monotonic() >= deadline or until wake() is called. Returns false if woken early.
  virtual bool sleep_until(Nanos deadline) = 0;
  virtual void wake() = 0;
};

class SystemClock final : public Clock {
 public:
  Nanos monotonic() const override { return read(CLOCK_MONOTONIC); }
  Nanos realtime() const override { return read(CLOCK_REALTIME); }
  bool sleep_until(Nanos deadline) override {
    std::unique_lock lock(mu_);
    const auto now = monotonic();
    if (deadline <= now) return true;
    // condition_variable waits on the steady clock, which is CLOCK_MONOTONIC on Linux.
    const bool woken = cv_.wait_for(lock, deadline - now, [this] { return woken_; });
    woken_ = false;
    return !woken;
  }
  void wake() override {
    {
      std::lock_guard lock(mu_);
      woken_ = true;
    }
    cv_.notify_all();
  }

 private:
  static Nanos read(clockid_t id) {
    timespec ts{};
    clock_gettime(id, &ts);
    return Nanos(int64_t(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec);
  }
  std::mutex mu_;
  std::condition_variable cv_;
  bool woken_ = false;
};

// Deterministic clock for tests: time only moves when the test (or a sleeper) advances it.
// sleep_until() jumps straight to the deadline, so a whole iteration runs instantly.
class FakeClock final : public Clock {
 public:
  explicit FakeClock(Nanos start_mono = Nanos(1'000'000'000),
                     Nanos start_real = Nanos(1'700'000'000'000'000'000))
      : mono_(start_mono), offset_(start_real - start_mono) {}
  Nanos monotonic() const override {
    std::lock_guard lock(mu_);
    return mono_;
  }
  Nanos realtime() const override {
    std::lock_guard lock(mu_);
    return mono_ + offset_;
  }
  bool sleep_until(Nanos deadline) override {
    std::lock_guard lock(mu_);
    if (deadline > mono_) mono_ = deadline;
    return true;
  }
  void wake() override {}
  void advance(Nanos d) {
    std::lock_guard lock(mu_);
    mono_ += d;
  }

 private:
  mutable std::mutex mu_;
  Nanos mono_;
  Nanos offset_;
};

}  // namespace netprobe
