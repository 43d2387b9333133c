// Matcher contract tests. Suite names start with `match_` so that `ctest -R match` selects them.
#include "match/matcher.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

namespace netprobe {
namespace {

using namespace std::chrono_literals;

MatchKey key(uint32_t target, uint16_t port, uint32_t token, ProbeType type = ProbeType::kTcpSyn) {
  MatchKey k;
  k.type = type;
  k.target = IpAddress::v4(target);
  k.local_port = port;
  k.token = token;
  return k;
}

MatchKey key6(uint16_t last, uint32_t token) {
  MatchKey k;
  k.type = ProbeType::kIcmpPing;
  k.target.af = AddressFamily::kV6;
  k.target.bytes[0] = 0x20;
  k.target.bytes[1] = 0x01;
  k.target.bytes[14] = uint8_t(last >> 8);
  k.target.bytes[15] = uint8_t(last);
  k.token = token;
  return k;
}

std::vector<uint32_t> expire_all(Matcher& m, Nanos now) {
  std::vector<uint32_t> out;
  m.expire(now, [&](uint32_t s) { out.push_back(s); });
  return out;
}

TEST(match_Matcher, InsertFindTake) {
  Matcher m(16);
  EXPECT_TRUE(m.insert(key(0x0a000001, 1000, 7), 0));
  EXPECT_TRUE(m.insert(key(0x0a000001, 1001, 7), 1));
  EXPECT_EQ(m.size(), 2u);
  uint32_t slot = 99;
  ASSERT_TRUE(m.find(key(0x0a000001, 1001, 7), &slot));
  EXPECT_EQ(slot, 1u);
  EXPECT_EQ(m.state(1), SlotState::kPending);

  m.on_sent(1, 100ns, 1100ns);
  EXPECT_EQ(m.sent_at(1), 100ns);
  EXPECT_EQ(m.deadline(1), 1100ns);
  const TakeResult r = m.take(key(0x0a000001, 1001, 7), 600ns);
  EXPECT_EQ(r.outcome, MatchOutcome::kMatched);
  EXPECT_EQ(r.slot, 1u);
  EXPECT_EQ(m.state(1), SlotState::kAnswered);
}

TEST(match_Matcher, DuplicateKeyAndSlotRejected) {
  Matcher m(16);
  EXPECT_TRUE(m.insert(key(1, 2, 3), 0));
  EXPECT_FALSE(m.insert(key(1, 2, 3), 1));  // same key, other slot
  EXPECT_FALSE(m.insert(key(1, 2, 4), 0));  // other key, same slot
  EXPECT_EQ(m.size(), 1u);
  EXPECT_EQ(m.state(1), SlotState::kFree);
}

TEST(match_Matcher, EveryKeyFieldMatters) {
  Matcher m(16);
  ASSERT_TRUE(m.insert(key(1, 2, 3, ProbeType::kTcpSyn), 0));
  EXPECT_EQ(m.take(key(1, 2, 3, ProbeType::kUdpUnreachable), 0ns).outcome, MatchOutcome::kUnknown);
  EXPECT_EQ(m.take(key(9, 2, 3), 0ns).outcome, MatchOutcome::kUnknown);
  EXPECT_EQ(m.take(key(1, 9, 3), 0ns).outcome, MatchOutcome::kUnknown);
  EXPECT_EQ(m.take(key(1, 2, 9), 0ns).outcome, MatchOutcome::kUnknown);
  // Same bytes, other family: an IPv4 address is not the IPv6 address with the same leading bytes.
  MatchKey k6 = key(1, 2, 3);
  k6.target.af = AddressFamily::kV6;
  EXPECT_EQ(m.take(k6, 0ns).outcome, MatchOutcome::kUnknown);
  EXPECT_EQ(m.take(key(1, 2, 3), 0ns).outcome, MatchOutcome::kMatched);
}

TEST(match_Matcher, DeadlineIsInclusiveThenLateThenDuplicate) {
  Matcher m(16);
  ASSERT_TRUE(m.insert(key(1, 1, 1), 0));
  ASSERT_TRUE(m.insert(key(1, 1, 2), 1));
  m.on_sent(0, 0ns, 1000ns);
  m.on_sent(1, 0ns, 1000ns);
  EXPECT_EQ(m.take(key(1, 1, 1), 1000ns).outcome, MatchOutcome::kMatched);  // at == deadline
  EXPECT_EQ(m.take(key(1, 1, 1), 1001ns).outcome, MatchOutcome::kDuplicate);
  EXPECT_EQ(m.take(key(1, 1, 2), 1001ns).outcome, MatchOutcome::kLate);
  EXPECT_EQ(m.take(key(1, 1, 2), 900ns).outcome, MatchOutcome::kDuplicate);
  // The late probe is still reported lost exactly once; the matched one never.
  EXPECT_EQ(expire_all(m, 2000ns), std::vector<uint32_t>{1});
  EXPECT_EQ(expire_all(m, 3000ns), std::vector<uint32_t>{});
  EXPECT_EQ(m.take(key(1, 1, 2), 3000ns).outcome, MatchOutcome::kDuplicate);
}

TEST(match_Matcher, ReplyAfterExpireIsLateOnceThenDuplicate) {
  Matcher m(16);
  ASSERT_TRUE(m.insert(key(1, 1, 1), 0));
  m.on_sent(0, 0ns, 1000ns);
  EXPECT_EQ(expire_all(m, 1000ns), std::vector<uint32_t>{});  // strict: deadline < now
  EXPECT_EQ(expire_all(m, 1001ns), std::vector<uint32_t>{0});
  EXPECT_EQ(m.state(0), SlotState::kExpired);
  EXPECT_EQ(m.take(key(1, 1, 1), 5000ns).outcome, MatchOutcome::kLate);
  EXPECT_EQ(m.take(key(1, 1, 1), 6000ns).outcome, MatchOutcome::kDuplicate);
  EXPECT_EQ(expire_all(m, 10000ns), std::vector<uint32_t>{});
}

TEST(match_Matcher, UnarmedProbeMatchesAndIsNeverExpired) {
  Matcher m(16);
  ASSERT_TRUE(m.insert(key(1, 1, 1), 0));
  EXPECT_EQ(m.sent_at(0), Matcher::kUnknownTime);
  EXPECT_EQ(m.take(key(1, 1, 1), 5000ns).outcome, MatchOutcome::kMatched);
  // The own-probe capture comes after the reply: the time is kept, nothing is armed.
  m.on_sent(0, 4000ns, 4500ns);
  EXPECT_EQ(m.sent_at(0), 4000ns);
  EXPECT_EQ(m.state(0), SlotState::kAnswered);
  EXPECT_EQ(expire_all(m, 100000ns), std::vector<uint32_t>{});
  EXPECT_EQ(m.take(key(1, 1, 1), 5000ns).outcome, MatchOutcome::kDuplicate);
}

TEST(match_Matcher, FirstOnSentWins) {
  Matcher m(16);
  ASSERT_TRUE(m.insert(key(1, 1, 1), 0));
  m.on_sent(0, 100ns, 1100ns);
  m.on_sent(0, 50ns, 2000ns);
  EXPECT_EQ(m.sent_at(0), 100ns);
  EXPECT_EQ(m.deadline(0), 1100ns);
  EXPECT_EQ(expire_all(m, 1200ns), std::vector<uint32_t>{0});  // armed once, reported once
  m.on_sent(7, 1ns, 2ns);                                      // never inserted: ignored
  EXPECT_EQ(m.sent_at(7), Matcher::kUnknownTime);
}

TEST(match_Matcher, UnknownKey) {
  Matcher m(16);
  EXPECT_EQ(m.take(key(1, 1, 1), 0ns).outcome, MatchOutcome::kUnknown);
  uint32_t slot;
  EXPECT_FALSE(m.find(key(1, 1, 1), &slot));
}

TEST(match_Matcher, ExpireInDeadlineOrderWithMixedTimeouts) {
  // Interleaved targets with 1 s, 3 s and 2 s timeouts, sent 10 ms apart: deadlines interleave.
  Matcher m(64);
  const Nanos timeouts[] = {1000ms, 3000ms, 2000ms};
  std::vector<std::pair<Nanos, uint32_t>> expected;
  for (uint32_t s = 0; s < 30; ++s) {
    ASSERT_TRUE(m.insert(key(100 + s % 3, 1, s + 1), s));
    const Nanos sent = Nanos(s * 10'000'000LL);
    m.on_sent(s, sent, sent + timeouts[s % 3]);
    expected.push_back({sent + timeouts[s % 3], s});
  }
  std::sort(expected.begin(), expected.end());
  std::vector<uint32_t> got;
  for (Nanos now = 0ns; now <= 5000ms; now += 7ms) {
    m.expire(now, [&](uint32_t s) {
      EXPECT_LT(m.deadline(s), now);
      got.push_back(s);
    });
  }
  ASSERT_EQ(got.size(), expected.size());
  for (size_t i = 0; i < got.size(); ++i) EXPECT_EQ(got[i], expected[i].second) << i;
}

TEST(match_Matcher, ExpireExactWhenArmedOutOfOrderAndManyTimeouts) {
  // Out-of-order arms (fallback stamps) and more distinct timeouts than lanes go to the heap.
  Matcher m(64);
  std::vector<std::pair<int64_t, uint32_t>> expected;
  for (uint32_t s = 0; s < 40; ++s) {
    ASSERT_TRUE(m.insert(key(7, uint16_t(s), 1), s));
    const int64_t sent = (s * 7919) % 40 * 1000;  // a permutation of send times
    const int64_t timeout = 10'000 + (s % 13) * 100;
    m.on_sent(s, Nanos(sent), Nanos(sent + timeout));
    expected.push_back({sent + timeout, s});
  }
  std::sort(expected.begin(), expected.end());
  // Answer a few in time: they must not be reported.
  for (uint32_t s : {3u, 17u, 29u})
    EXPECT_EQ(m.take(key(7, uint16_t(s), 1), 0ns).outcome, MatchOutcome::kMatched);
  std::vector<uint32_t> got = expire_all(m, Nanos(1'000'000));
  std::vector<uint32_t> want;
  for (auto& [d, s] : expected)
    if (s != 3 && s != 17 && s != 29) want.push_back(s);
  EXPECT_EQ(got, want);
}

TEST(match_Matcher, ExpireOnlyPastDeadlines) {
  Matcher m(16);
  for (uint32_t s = 0; s < 10; ++s) {
    ASSERT_TRUE(m.insert(key(1, 1, s + 1), s));
    m.on_sent(s, Nanos(s * 100), Nanos(s * 100 + 1000));
  }
  EXPECT_EQ(expire_all(m, 1350ns), (std::vector<uint32_t>{0, 1, 2, 3}));
  EXPECT_EQ(expire_all(m, 1350ns), std::vector<uint32_t>{});
  EXPECT_EQ(expire_all(m, 1501ns), (std::vector<uint32_t>{4, 5}));
}

TEST(match_Matcher, ClearForgetsAndReusesMemory) {
  Matcher m(1000);
  const size_t bytes = m.memory_bytes();
  const size_t cells = m.table_capacity();
  for (int round = 0; round < 3; ++round) {
    for (uint32_t s = 0; s < 1000; ++s) {
      ASSERT_TRUE(m.insert(key(s, 1, uint32_t(round + 1)), s));
      m.on_sent(s, Nanos(s), Nanos(s + 10));
    }
    EXPECT_EQ(m.size(), 1000u);
    EXPECT_EQ(m.take(key(5, 1, uint32_t(round + 1)), 6ns).outcome, MatchOutcome::kMatched);
    EXPECT_EQ(expire_all(m, 100ns).size(), 89u);  // deadlines 10..99 except the answered slot 5
    m.clear(1000);
    EXPECT_EQ(m.size(), 0u);
    EXPECT_EQ(m.take(key(5, 1, uint32_t(round + 1)), 6ns).outcome, MatchOutcome::kUnknown);
    EXPECT_EQ(m.state(5), SlotState::kFree);
    EXPECT_EQ(expire_all(m, 1'000'000ns).size(), 0u);
    EXPECT_EQ(m.memory_bytes(), bytes);
    EXPECT_EQ(m.table_capacity(), cells);
  }
  m.clear(10);  // smaller: keeps the memory
  EXPECT_EQ(m.memory_bytes(), bytes);
}

TEST(match_Matcher, GrowsBeyondExpected) {
  Matcher m(4);
  for (uint32_t s = 0; s < 5000; ++s) ASSERT_TRUE(m.insert(key6(uint16_t(s), s * 2654435761u), s));
  EXPECT_EQ(m.size(), 5000u);
  EXPECT_LE(m.size() * 2, m.table_capacity());
  for (uint32_t s = 0; s < 5000; ++s) {
    uint32_t slot = 0;
    ASSERT_TRUE(m.find(key6(uint16_t(s), s * 2654435761u), &slot));
    EXPECT_EQ(slot, s);
  }
}

TEST(match_Matcher, OneMillionInFlightFitsIn64BytesEach) {
  constexpr size_t kN = 1'000'000;
  Matcher m(kN);
  // Sequential targets and ports with small tokens: the hash must spread them anyway.
  for (uint32_t s = 0; s < kN; ++s)
    ASSERT_TRUE(m.insert(key(0x0a000000 + s / 64, uint16_t(30000 + s % 64), s % 1000 + 1), s));
  for (uint32_t s = 0; s < kN; ++s) m.on_sent(s, Nanos(s), Nanos(s + 1'000'000));
  const double per_entry = double(m.memory_bytes()) / kN;
  RecordProperty("bytes_per_entry", std::to_string(per_entry));
  EXPECT_LE(per_entry, 64.0);
  EXPECT_LE(m.table_capacity(), 2u * 1024 * 1024);
  for (uint32_t s = 0; s < kN; s += 997) {
    const TakeResult r = m.take(key(0x0a000000 + s / 64, uint16_t(30000 + s % 64), s % 1000 + 1), Nanos(s));
    ASSERT_EQ(r.outcome, MatchOutcome::kMatched);
    ASSERT_EQ(r.slot, s);
  }
}

}  // namespace
}  // namespace netprobe
