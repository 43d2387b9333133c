// Restart backoff on a fake timeline: 1 s doubling to 30 s, reset after a healthy minute.
#include <gtest/gtest.h>

#include "core/backoff.h"

namespace netprobe {
namespace {

using std::chrono::seconds;

TEST(worker_Backoff, DoublesUpToThirtySeconds) {
  Backoff b;
  Nanos t = seconds(100);
  std::vector<int64_t> delays;
  for (int i = 0; i < 8; ++i) {
    const Nanos started = t;
    t += seconds(2);  // crashes 2 s after each start: never healthy
    const Nanos d = b.on_death(started, t);
    delays.push_back(std::chrono::duration_cast<seconds>(d).count());
    t += d;
  }
  EXPECT_EQ(delays, (std::vector<int64_t>{1, 2, 4, 8, 16, 30, 30, 30}));
}

TEST(worker_Backoff, ResetsAfterAHealthyMinute) {
  Backoff b;
  Nanos t = seconds(0);
  for (int i = 0; i < 5; ++i) t += b.on_death(t, t + seconds(1)) + seconds(1);
  EXPECT_EQ(b.peek(), seconds(30));
  // Up for 59 s: not yet healthy, the delay keeps its level.
  EXPECT_EQ(b.on_death(t, t + seconds(59)), seconds(30));
  t += seconds(100);
  // Up for a minute: the next crash is repaired within a second again.
  EXPECT_EQ(b.on_death(t, t + seconds(60)), seconds(1));
  EXPECT_EQ(b.on_death(t, t + seconds(61)), seconds(1));  // 61 s is healthy too
  EXPECT_EQ(b.on_death(t + seconds(61), t + seconds(62)), seconds(2));
}

TEST(worker_Backoff, CustomSchedule) {
  Backoff b({Nanos(10), Nanos(35), Nanos(1000)});
  EXPECT_EQ(b.on_death(Nanos(0), Nanos(1)), Nanos(10));
  EXPECT_EQ(b.on_death(Nanos(0), Nanos(1)), Nanos(20));
  EXPECT_EQ(b.on_death(Nanos(0), Nanos(1)), Nanos(35));
  EXPECT_EQ(b.on_death(Nanos(0), Nanos(1)), Nanos(35));
}

}  // namespace
}  // namespace netprobe
