// TokenPermutation and DestinationIndex. Suite names start with `match_` so that `ctest -R match`
// selects them.
#include "match/token_permutation.h"

#include <gtest/gtest.h>

#include <vector>

#include "match/destination_index.h"

namespace netprobe {
namespace {

// Every width a token can have once a worker's slice bits are taken (1..20 exhaustively; the 32-bit
// ICMP width is sampled below): encode is a bijection from the ordinals onto [1, 2^bits), decode its
// inverse.
TEST(match_TokenPermutation, BijectionOntoNonZeroTokensForEveryWidth) {
  for (int bits = 1; bits <= 20; ++bits) {
    const TokenPermutation perm(0x1234567890abcdefULL + uint64_t(bits), bits);
    const uint64_t n = (uint64_t(1) << bits) - 1;
    ASSERT_EQ(perm.capacity(), n) << bits;
    std::vector<bool> seen(n + 1, false);
    for (uint32_t ordinal = 0; ordinal < n; ++ordinal) {
      const uint32_t token = perm.encode(ordinal);
      ASSERT_GE(token, 1u) << "bits " << bits << " ordinal " << ordinal;
      ASSERT_LE(token, n) << "bits " << bits << " ordinal " << ordinal;
      ASSERT_FALSE(seen[token]) << "bits " << bits << ": token " << token << " given twice";
      seen[token] = true;
      ASSERT_EQ(perm.decode(token), ordinal) << "bits " << bits;
    }
  }
}

TEST(match_TokenPermutation, ThirtyTwoBitsRoundTripsAndStaysInRange) {
  const TokenPermutation perm(42, 32);
  EXPECT_EQ(perm.capacity(), 0xFFFFFFFFULL);
  for (uint32_t ordinal : {0u, 1u, 2u, 1000u, 999999u, 0x7FFFFFFFu, 0xFFFFFFFDu}) {
    const uint32_t token = perm.encode(ordinal);
    EXPECT_NE(token, 0u);
    EXPECT_EQ(perm.decode(token), ordinal);
  }
}

TEST(match_TokenPermutation, OutOfDomainTokensDecodeToNone) {
  const TokenPermutation perm(7, 16);
  EXPECT_EQ(perm.decode(0), TokenPermutation::kNone);
  EXPECT_EQ(perm.decode(1u << 16), TokenPermutation::kNone);
  EXPECT_EQ(perm.decode(0xFFFFFFFFu), TokenPermutation::kNone);
  EXPECT_EQ(perm.encode(0xFFFF), 0u) << "ordinal beyond the capacity";
}

// Another key (the next iteration, another destination) gives another order: the tokens of one
// iteration say nothing of the next one's. Of the first 1000 ordinals, few keep their token.
TEST(match_TokenPermutation, KeysGiveUnrelatedPermutations) {
  for (int bits : {16, 18, 20, 32}) {
    const TokenPermutation a(1, bits), b(2, bits);
    int same = 0;
    for (uint32_t i = 0; i < 1000; ++i) same += a.encode(i) == b.encode(i);
    EXPECT_LE(same, 3) << bits;
  }
}

// Consecutive ordinals do not give consecutive tokens (a spoofer who saw one token cannot guess the
// next probe's): the low bits of neighbouring tokens differ about half the time.
TEST(match_TokenPermutation, NeighbouringOrdinalsAreScattered) {
  const TokenPermutation perm(99, 18);
  int adjacent = 0;
  for (uint32_t i = 0; i + 1 < 4096; ++i) {
    const int64_t d = int64_t(perm.encode(i + 1)) - int64_t(perm.encode(i));
    adjacent += d >= -16 && d <= 16;
  }
  EXPECT_LE(adjacent, 10);
}

TEST(match_DestinationIndex, InsertFindAndTypeAndFamilyAreSeparate) {
  DestinationIndex idx;
  idx.clear(4);
  const IpAddress a = *IpAddress::parse("192.0.2.1");
  const IpAddress b = *IpAddress::parse("192.0.2.2");
  const IpAddress v6 = *IpAddress::parse("2001:db8::1");
  EXPECT_EQ(idx.find(ProbeType::kTcpSyn, a), DestinationIndex::kNone);
  EXPECT_EQ(idx.insert(ProbeType::kTcpSyn, a, 0), 0u);
  EXPECT_EQ(idx.insert(ProbeType::kTcpSyn, a, 7), 0u) << "existing entry keeps its number";
  EXPECT_EQ(idx.insert(ProbeType::kIcmpPing, a, 1), 1u) << "another type is another destination";
  EXPECT_EQ(idx.insert(ProbeType::kTcpSyn, v6, 2), 2u);
  EXPECT_EQ(idx.find(ProbeType::kTcpSyn, a), 0u);
  EXPECT_EQ(idx.find(ProbeType::kIcmpPing, a), 1u);
  EXPECT_EQ(idx.find(ProbeType::kUdpUnreachable, a), DestinationIndex::kNone);
  EXPECT_EQ(idx.find(ProbeType::kTcpSyn, b), DestinationIndex::kNone);
  EXPECT_EQ(idx.find(ProbeType::kTcpSyn, v6), 2u);
  EXPECT_EQ(idx.size(), 3u);
  idx.clear(1);
  EXPECT_EQ(idx.find(ProbeType::kTcpSyn, a), DestinationIndex::kNone);
  EXPECT_EQ(idx.size(), 0u);
}

TEST(match_DestinationIndex, GrowsBeyondTheExpectedSize) {
  DestinationIndex idx;
  idx.clear(2);
  for (uint32_t i = 0; i < 100000; ++i)
    ASSERT_EQ(idx.insert(ProbeType::kIcmpPing, IpAddress::v4(0xC6120000u + i), i), i);
  for (uint32_t i = 0; i < 100000; ++i)
    ASSERT_EQ(idx.find(ProbeType::kIcmpPing, IpAddress::v4(0xC6120000u + i)), i);
  EXPECT_EQ(idx.find(ProbeType::kIcmpPing, IpAddress::v4(0xC6120000u + 100000)), DestinationIndex::kNone);
}

}  // namespace
}  // namespace netprobe
