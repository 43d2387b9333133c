// On-demand budgets (src/ondemand/budget.h) on virtual time.
#include "ondemand/budget.h"

#include <algorithm>
#include <random>

#include <gtest/gtest.h>

namespace netprobe::ondemand {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

TEST(ondemand_Admission, GlobalAndPerCredential) {
  Admission a(3, 2);
  std::string why;
  EXPECT_TRUE(a.try_acquire("x", &why));
  EXPECT_TRUE(a.try_acquire("x", &why));
  EXPECT_FALSE(a.try_acquire("x", &why));
  EXPECT_EQ(why, "concurrent_tests_per_credential");
  EXPECT_TRUE(a.try_acquire("y", &why));
  EXPECT_FALSE(a.try_acquire("z", &why));
  EXPECT_EQ(why, "concurrent_tests");
  a.release("x");
  EXPECT_TRUE(a.try_acquire("z", &why));
  EXPECT_EQ(a.running(), 3);
  a.release("nobody");  // never goes negative
  EXPECT_EQ(a.running(), 3);
}

// 50 callers, each asking for 10 packets to one destination at random moments: the send times handed out,
// all callers together, never put two packets to that destination closer than 1/pps, so no one-second
// window holds more than pps (+1 at its edge); every other destination shares the global cap.
// The worker's floor is 1/pps and a margin (1 %, at most 1 ms); the budget reserves one margin more, the
// slack that a packet sent late gives back to the next one.
TEST(ondemand_Gaps, FloorAboveThePeriodReserveAboveTheFloor) {
  struct Row {
    double pps;
    Nanos floor, reserve;
  };
  const Row rows[] = {
      {10, milliseconds(101), milliseconds(102)},          // 1 ms margin
      {1000, Nanos(1'010'000), Nanos(1'020'000)},          // 1 % of 1 ms
      {1, milliseconds(1001), milliseconds(1002)},         // capped at 1 ms
      {0.01, seconds(10), seconds(10) + milliseconds(1)},  // the floor at most 10 s (a job frame's bound)
  };
  for (const Row& r : rows) {
    EXPECT_EQ(floor_gap(r.pps), r.floor) << r.pps;
    EXPECT_EQ(reserve_gap(r.pps), r.reserve) << r.pps;
  }
}

TEST(ondemand_PacketBudget, FiftyCallersNeverExceedTheDestinationCap) {
  const double per_dest = 10, global = 100;
  PacketBudget budget(per_dest, global);
  const IpAddress dest = *IpAddress::parse("10.0.0.1");
  std::mt19937 rng(17);
  std::vector<Nanos> sent;
  int refused = 0;
  for (int caller = 0; caller < 50; ++caller) {
    const Nanos now = milliseconds(std::uniform_int_distribution<int>(0, 5000)(rng) + caller * 10);
    auto times = budget.reserve(dest, 10, now, now + seconds(30));
    if (!times) {
      ++refused;
      continue;
    }
    for (Nanos t : *times) EXPECT_GE(t, now);
    sent.insert(sent.end(), times->begin(), times->end());
  }
  std::sort(sent.begin(), sent.end());
  ASSERT_FALSE(sent.empty());
  for (size_t i = 1; i < sent.size(); ++i) EXPECT_GE(sent[i] - sent[i - 1], reserve_gap(per_dest));
  size_t most = 0;
  for (size_t i = 0, j = 0; i < sent.size(); ++i) {  // the busiest one-second window
    while (sent[i] - sent[j] >= seconds(1)) ++j;
    most = std::max(most, i - j + 1);
  }
  EXPECT_LE(most, size_t(per_dest));
  EXPECT_GT(refused, 0);  // 500 packets at 10 pps do not fit in 30 s windows from t < 5.5 s
}

TEST(ondemand_PacketBudget, GlobalCapAcrossDestinations) {
  PacketBudget budget(10, 20);
  std::vector<Nanos> all;
  for (int d = 0; d < 8; ++d) {
    auto times = budget.reserve(IpAddress::v4(0x0a000001 + d), 5, Nanos(0), seconds(60));
    ASSERT_TRUE(times);
    all.insert(all.end(), times->begin(), times->end());
  }
  std::sort(all.begin(), all.end());
  for (size_t i = 1; i < all.size(); ++i) EXPECT_GE(all[i] - all[i - 1], reserve_gap(20));
  EXPECT_EQ(budget.booked(), 40u);
}

TEST(ondemand_PacketBudget, RefusalReservesNothing) {
  PacketBudget budget(1, 10);
  const IpAddress dest = *IpAddress::parse("10.0.0.1");
  EXPECT_FALSE(budget.reserve(dest, 5, Nanos(0), seconds(2)));  // needs 4 s
  EXPECT_EQ(budget.booked(), 0u);
  EXPECT_FALSE(budget.reserve(dest, 3, Nanos(0), seconds(2)));  // 2 s and two slacks
  auto ok = budget.reserve(dest, 3, Nanos(0), seconds(2) + 2 * (reserve_gap(1) - seconds(1)));
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->back(), 2 * reserve_gap(1));
}

TEST(ondemand_PacketBudget, ForgetsThePast) {
  PacketBudget budget(10, 100, 2);
  for (int d = 0; d < 2; ++d)
    ASSERT_TRUE(budget.reserve(IpAddress::v4(0x0a000001 + d), 1, Nanos(0), seconds(1)));
  EXPECT_FALSE(budget.reserve(IpAddress::v4(0x0a0000ff), 1, Nanos(0), seconds(1)));  // too many destinations
  EXPECT_TRUE(budget.reserve(IpAddress::v4(0x0a0000ff), 1, seconds(10), seconds(11)));  // old ones pruned
}

TEST(ondemand_PacketBudget, MinSpacingBetweenAJobsPackets) {
  PacketBudget budget(10, 100);
  const IpAddress dest = *IpAddress::parse("10.0.0.1");
  auto times = budget.reserve(dest, 3, Nanos(0), seconds(5), seconds(1));  // a ping test's -i 1
  ASSERT_TRUE(times);
  EXPECT_EQ(*times, (std::vector<Nanos>{Nanos(0), seconds(1), seconds(2)}));
  // Another caller fits between them (the destination's gap is 100 ms and its slack).
  auto other = budget.reserve(dest, 1, Nanos(0), seconds(1));
  ASSERT_TRUE(other);
  EXPECT_EQ(other->front(), reserve_gap(10));
  EXPECT_FALSE(budget.reserve(*IpAddress::parse("10.0.0.2"), 3, Nanos(0), seconds(1), seconds(1)));
}

}  // namespace
}  // namespace netprobe::ondemand
