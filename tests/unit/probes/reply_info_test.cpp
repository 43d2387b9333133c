// describe_reply(): the display fields of replies built with libtins (an independent implementation),
// the MPLS label stack of RFC 4950 extensions (compliant and non-compliant lengths), and hostile bytes.
#include "probes/reply_info.h"

#include <gtest/gtest.h>

#include "packets.h"
#include "wire/checksum.h"

namespace netprobe {
namespace {

using namespace netprobe::testing;

TEST(probes_ReplyInfo, TcpAnswerFields) {
  for (AddressFamily af : {AddressFamily::kV4, AddressFamily::kV6}) {
    Bytes p = tcp_packet(target_addr(af), local_addr(af), 443, 40000, 0x12, 1, 2);
    const ReplyInfo r = describe_reply(p);
    ASSERT_TRUE(r.valid);
    EXPECT_EQ(r.from, target_addr(af));
    EXPECT_EQ(r.ttl, 64);
    EXPECT_EQ(r.protocol, 6);
    EXPECT_EQ(r.tcp_flags, 0x12);
    EXPECT_EQ(r.length, p.size());
    if (af == AddressFamily::kV4) {
      EXPECT_EQ(r.ip_id, 4321);
    }
  }
}

TEST(probes_ReplyInfo, HpingFlagLetters) {
  const struct {
    uint8_t flags;
    const char* letters;
  } cases[] = {{0x12, "SA"}, {0x14, "RA"},       {0x10, "A"}, {0x04, "R"},
               {0x11, "AF"}, {0xff, "RSAFPUXY"}, {0, ""}};
  for (const auto& c : cases) EXPECT_STREQ(tcp_flags_letters(c.flags).data(), c.letters) << int(c.flags);
}

// An ICMP Time Exceeded quoting `quote_len` bytes (zero padded), then an RFC 4950 MPLS extension with
// `labels`; `length_words` goes in the RFC 4884 length field (0: a non-compliant router).
Bytes time_exceeded_with_mpls(AddressFamily af, size_t quote_len, uint8_t length_words,
                              const std::vector<uint32_t>& entries, bool good_checksum = true) {
  Bytes body(quote_len, 0);
  Bytes ext = {0x20, 0, 0, 0};  // version 2, checksum later
  const auto obj_len = uint16_t(4 + 4 * entries.size());
  ext.insert(ext.end(), {uint8_t(obj_len >> 8), uint8_t(obj_len), 1, 1});
  for (uint32_t e : entries)
    ext.insert(ext.end(), {uint8_t(e >> 24), uint8_t(e >> 16), uint8_t(e >> 8), uint8_t(e)});
  uint16_t sum = wire::internet_checksum(ext);
  if (!good_checksum) sum ^= 0x5555;
  ext[2] = uint8_t(sum >> 8), ext[3] = uint8_t(sum);
  body.insert(body.end(), ext.begin(), ext.end());
  const uint8_t type = af == AddressFamily::kV4 ? 11 : 3;
  Bytes p = icmp_packet(router_addr(af), local_addr(af), type, 0, 0, 0, body);
  // The length field: ICMPv4 byte 5, ICMPv6 byte 4 of the ICMP header (checksum not rechecked here).
  const size_t icmp_at = af == AddressFamily::kV4 ? 20 : 40;
  p[icmp_at + (af == AddressFamily::kV4 ? 5 : 4)] = length_words;
  return p;
}

TEST(probes_ReplyInfo, MplsLabelStackFromIcmpExtensions) {
  // label 16001, TC 5, bottom, TTL 1; label 24000, TC 0, not bottom, TTL 254
  const uint32_t top = 24000u << 12 | 0u << 9 | 0u << 8 | 254u;
  const uint32_t bottom = 16001u << 12 | 5u << 9 | 1u << 8 | 1u;
  const struct {
    const char* name;
    AddressFamily af;
    size_t quote;
    uint8_t words;
    bool checksum_ok;
    int expect_labels;
  } cases[] = {
      {"v4 compliant (128 bytes = 32 words)", AddressFamily::kV4, 128, 32, true, 2},
      {"v4 non-compliant (length 0, 128 bytes)", AddressFamily::kV4, 128, 0, true, 2},
      {"v4 compliant, 136 bytes", AddressFamily::kV4, 136, 34, true, 2},
      {"v6 compliant (128 bytes = 16 words)", AddressFamily::kV6, 128, 16, true, 2},
      {"bad extension checksum", AddressFamily::kV4, 128, 32, false, 0},
      {"length beyond the packet", AddressFamily::kV4, 128, 200, true, 0},
      {"length pointing inside the quote", AddressFamily::kV4, 128, 8, true, 0},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    const Bytes p = time_exceeded_with_mpls(c.af, c.quote, c.words, {top, bottom}, c.checksum_ok);
    const ReplyInfo r = describe_reply(p);
    ASSERT_TRUE(r.valid);
    EXPECT_EQ(r.from, router_addr(c.af));
    EXPECT_EQ(r.icmp_type, c.af == AddressFamily::kV4 ? 11 : 3);
    ASSERT_EQ(r.mpls_count, c.expect_labels);
    if (c.expect_labels == 2) {
      EXPECT_EQ(r.mpls[0], (MplsLabel{24000, 0, false, 254}));
      EXPECT_EQ(r.mpls[1], (MplsLabel{16001, 5, true, 1}));
    }
  }
}

TEST(probes_ReplyInfo, LongStacksAreCutAtTheLimit) {
  std::vector<uint32_t> entries(9, 100u << 12 | 64u);
  const ReplyInfo r = describe_reply(time_exceeded_with_mpls(AddressFamily::kV4, 128, 32, entries));
  EXPECT_EQ(r.mpls_count, ReplyInfo::kMaxLabels);
}

TEST(probes_ReplyInfo, HostileBytesNeverCrash) {
  EXPECT_FALSE(describe_reply({}).valid);
  const Bytes v4 = time_exceeded_with_mpls(AddressFamily::kV4, 128, 32, {1u << 12 | 0x100});
  // Every truncation, and every single-byte corruption of the extension area.
  for (size_t n = 0; n <= v4.size(); ++n) (void)describe_reply(std::span(v4).first(n));
  for (size_t i = 0; i < v4.size(); ++i)
    for (uint8_t v : {uint8_t(0), uint8_t(0xff), uint8_t(0x45)}) {
      Bytes b = v4;
      b[i] = v;
      const ReplyInfo r = describe_reply(b);
      EXPECT_LE(r.mpls_count, ReplyInfo::kMaxLabels);
    }
}

}  // namespace
}  // namespace netprobe
