// Wire views on valid, truncated and malformed bytes, and the Internet checksum against a naive reference.
// Suites are named `wire` so that `ctest -R wire` selects them.
#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <vector>

#include "wire/bytes.h"
#include "wire/checksum.h"
#include "wire/ip.h"
#include "wire/l4.h"

namespace netprobe::wire {
namespace {

using Bytes = std::vector<uint8_t>;

// RFC 1071 straight from the text: 16-bit big-endian words, 32-bit sum, fold, complement.
uint16_t reference_checksum(const Bytes& b) {
  uint32_t sum = 0;
  for (size_t i = 0; i < b.size(); i += 2) {
    const uint32_t hi = b[i], lo = i + 1 < b.size() ? b[i + 1] : 0;
    sum += hi << 8 | lo;
  }
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return uint16_t(~sum);
}

TEST(wire, ChecksumMatchesRfc1071Example) {
  // RFC 1071 section 3: the sum of 0001 f203 f4f5 f6f7 is ddf2, so the checksum is 220d.
  const Bytes b = {0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7};
  EXPECT_EQ(Checksum().add(b).sum16(), 0xddf2);
  EXPECT_EQ(internet_checksum(b), 0x220d);
}

TEST(wire, ChecksumMatchesReferenceForEveryLengthAndSplit) {
  std::mt19937 rng(7);
  for (size_t len = 0; len < 200; ++len) {
    Bytes b(len);
    for (auto& x : b) x = uint8_t(rng());
    ASSERT_EQ(internet_checksum(b), reference_checksum(b)) << "len " << len;
    // Split at every even offset: partial sums must combine (that is how craft() uses them).
    for (size_t cut = 0; cut <= len; cut += 2) {
      const std::span<const uint8_t> s(b);
      Checksum part;
      part.add(s.subspan(cut));
      ASSERT_EQ(Checksum().add(s.first(cut)).add_sum16(part.sum16()).finish(), reference_checksum(b))
          << "len " << len << " cut " << cut;
    }
  }
  // All-ones data: the sum saturates at 0xffff and the checksum is 0.
  EXPECT_EQ(internet_checksum(Bytes(64, 0xff)), 0);
  EXPECT_EQ(internet_checksum(Bytes{}), 0xffff);
}

TEST(wire, ChecksumVerifiesToZeroWhenFilledIn) {
  Bytes b = {0x45, 0x00, 0x00, 0x1c, 0x12, 0x34, 0x40, 0x00, 0x40, 0x11, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2};
  store_be16(b.data() + 10, internet_checksum(b));
  EXPECT_EQ(internet_checksum(b), 0);
}

TEST(wire, PseudoHeaderChecksumMatchesHandBuiltPseudoHeader) {
  const uint8_t src4[4] = {192, 0, 2, 1}, dst4[4] = {198, 51, 100, 7};
  uint8_t src6[16] = {0xfd}, dst6[16] = {0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2};
  src6[15] = 1;
  const Bytes l4 = {0x9c, 0x40, 0x01, 0xbb, 0, 0, 0, 0, 0, 0, 0, 0, 0x50, 0x02, 0x20, 0, 0, 0, 0, 0, 'x'};
  {
    Bytes ph(src4, src4 + 4);
    ph.insert(ph.end(), dst4, dst4 + 4);
    ph.insert(ph.end(), {0, 6, 0, uint8_t(l4.size())});
    ph.insert(ph.end(), l4.begin(), l4.end());
    EXPECT_EQ(l4_checksum(AddressFamily::kV4, src4, dst4, 6, l4), reference_checksum(ph));
  }
  {
    Bytes ph(src6, src6 + 16);
    ph.insert(ph.end(), dst6, dst6 + 16);
    ph.insert(ph.end(), {0, 0, 0, uint8_t(l4.size()), 0, 0, 0, 58});
    ph.insert(ph.end(), l4.begin(), l4.end());
    EXPECT_EQ(l4_checksum(AddressFamily::kV6, src6, dst6, 58, l4), reference_checksum(ph));
  }
}

TEST(wire, BigEndianLoadsAndStores) {
  uint8_t b[5] = {0};
  store_be32(b + 1, 0x01020304);  // unaligned on purpose
  EXPECT_EQ(b[1], 1);
  EXPECT_EQ(b[4], 4);
  EXPECT_EQ(load_be32(b + 1), 0x01020304u);
  EXPECT_EQ(load_be16(b + 2), 0x0203);
}

// A 20-byte IPv4 header (TCP, DF, TTL 64, TOS 0x20, id 0x1234) followed by `payload` bytes.
Bytes ipv4(size_t payload, uint8_t ihl = 5) {
  Bytes b(ihl * 4 + payload, 0);
  b[0] = uint8_t(0x40 | ihl);
  b[1] = 0x20;
  store_be16(b.data() + 2, uint16_t(b.size()));
  store_be16(b.data() + 4, 0x1234);
  store_be16(b.data() + 6, 0x4000);
  b[8] = 64;
  b[9] = 6;
  const uint8_t a[8] = {10, 0, 0, 1, 10, 0, 0, 2};
  std::copy(a, a + 8, b.begin() + 12);
  return b;
}

struct ParseRow {
  const char* description;
  Bytes bytes;
  bool ok;
  ParseError error;
  size_t payload_size;  // when ok
};

TEST(wire, Ipv4ParseTable) {
  auto with = [](Bytes b, size_t i, uint8_t v) {
    b.at(i) = v;
    return b;
  };
  auto total = [](Bytes b, uint16_t t) {
    store_be16(b.data() + 2, t);
    return b;
  };
  auto padded = [](Bytes b) {
    b.resize(b.size() + 6, 0xee);
    return b;
  };
  auto cut = [](Bytes b, size_t n) {
    b.resize(n);
    return b;
  };
  const ParseRow rows[] = {
      {"valid, 8-byte payload", ipv4(8), true, ParseError::kNone, 8},
      {"header only", ipv4(0), true, ParseError::kNone, 0},
      {"options honoured (IHL 6)", ipv4(8, 6), true, ParseError::kNone, 8},
      {"Ethernet padding beyond total length ignored", padded(ipv4(8)), true, ParseError::kNone, 8},
      {"empty", {}, false, ParseError::kTruncated, 0},
      {"one byte", {0x45}, false, ParseError::kTruncated, 0},
      {"19 bytes", cut(ipv4(0), 19), false, ParseError::kTruncated, 0},
      {"version 6 nibble", with(ipv4(8), 0, 0x65), false, ParseError::kMalformed, 0},
      {"version 0", with(ipv4(8), 0, 0x05), false, ParseError::kMalformed, 0},
      {"IHL 4", with(ipv4(8), 0, 0x44), false, ParseError::kMalformed, 0},
      {"IHL 0", with(ipv4(8), 0, 0x40), false, ParseError::kMalformed, 0},
      {"IHL 15 beyond the bytes", with(ipv4(8), 0, 0x4f), false, ParseError::kTruncated, 0},
      {"total length below header", total(ipv4(8), 19), false, ParseError::kMalformed, 0},
      {"total length beyond bytes", total(ipv4(8), 29), false, ParseError::kTruncated, 0},
      {"total length shorter than bytes", total(ipv4(8), 24), true, ParseError::kNone, 4},
  };
  for (const auto& r : rows) {
    SCOPED_TRACE(r.description);
    ParseError why = ParseError::kNone;
    const auto v = Ipv4View::parse(r.bytes, &why);
    ASSERT_EQ(v.has_value(), r.ok);
    EXPECT_EQ(why, r.error);
    if (v) {
      EXPECT_EQ(v->payload().size(), r.payload_size);
    }
  }
}

TEST(wire, Ipv4Accessors) {
  Bytes b = ipv4(8);
  const auto v = Ipv4View::parse(b);
  ASSERT_TRUE(v);
  EXPECT_EQ(v->version(), 4);
  EXPECT_EQ(v->header_length(), 20u);
  EXPECT_EQ(v->tos(), 0x20);
  EXPECT_EQ(v->dscp(), 8);
  EXPECT_EQ(v->total_length(), 28);
  EXPECT_EQ(v->id(), 0x1234);
  EXPECT_TRUE(v->dont_fragment());
  EXPECT_FALSE(v->more_fragments());
  EXPECT_EQ(v->fragment_offset(), 0);
  EXPECT_EQ(v->ttl(), 64);
  EXPECT_EQ(v->protocol(), kProtoTcp);
  EXPECT_EQ(v->src().to_string(), "10.0.0.1");
  EXPECT_EQ(v->dst().to_string(), "10.0.0.2");
  store_be16(b.data() + 6, 0x2000 | 185);
  EXPECT_TRUE(Ipv4View::parse(b)->more_fragments());
  EXPECT_EQ(Ipv4View::parse(b)->fragment_offset(), 185);
}

TEST(wire, Ipv4QuotedAcceptsShortQuoteButNotShortHeader) {
  Bytes b = ipv4(100);
  b.resize(28);  // header + 8 bytes, as RFC 792 quotes it
  ParseError why;
  EXPECT_FALSE(Ipv4View::parse(b, &why));
  EXPECT_EQ(why, ParseError::kTruncated);
  const auto q = Ipv4View::parse_quoted(b, &why);
  ASSERT_TRUE(q);
  EXPECT_EQ(q->payload().size(), 8u);
  EXPECT_EQ(q->total_length(), 120);
  b.resize(19);
  EXPECT_FALSE(Ipv4View::parse_quoted(b, &why));
  EXPECT_EQ(why, ParseError::kTruncated);
}

Bytes ipv6(size_t payload, uint8_t next_header = kProtoUdp) {
  Bytes b(40 + payload, 0);
  store_be32(b.data(), 0x6000'0000u | (0x20u << 20) | 0xabcde);
  store_be16(b.data() + 4, uint16_t(payload));
  b[6] = next_header;
  b[7] = 64;
  b[8] = 0xfd;
  b[23] = 1;
  b[24] = 0xfd;
  b[39] = 2;
  return b;
}

TEST(wire, Ipv6ParseTable) {
  auto cut = [](Bytes b, size_t n) {
    b.resize(n);
    return b;
  };
  auto padded = [](Bytes b) {
    b.resize(b.size() + 6, 0xee);
    return b;
  };
  auto with = [](Bytes b, size_t i, uint8_t v) {
    b.at(i) = v;
    return b;
  };
  const ParseRow rows[] = {
      {"valid", ipv6(8), true, ParseError::kNone, 8},
      {"padding ignored", padded(ipv6(8)), true, ParseError::kNone, 8},
      {"empty", {}, false, ParseError::kTruncated, 0},
      {"39 bytes", cut(ipv6(0), 39), false, ParseError::kTruncated, 0},
      {"payload length beyond bytes", cut(ipv6(8), 47), false, ParseError::kTruncated, 0},
      {"version 4 nibble", with(ipv6(8), 0, 0x46), false, ParseError::kMalformed, 0},
  };
  for (const auto& r : rows) {
    SCOPED_TRACE(r.description);
    ParseError why = ParseError::kNone;
    const auto v = Ipv6View::parse(r.bytes, &why);
    ASSERT_EQ(v.has_value(), r.ok);
    EXPECT_EQ(why, r.error);
    if (v) {
      EXPECT_EQ(v->payload().size(), r.payload_size);
    }
  }
  const Bytes b = ipv6(8);
  const auto v = Ipv6View::parse(b);
  EXPECT_EQ(v->traffic_class(), 0x20);
  EXPECT_EQ(v->flow_label(), 0xabcdeu);
  EXPECT_EQ(v->next_header(), kProtoUdp);
  EXPECT_EQ(v->hop_limit(), 64);
  EXPECT_EQ(v->src().to_string(), "fd00::1");
  EXPECT_EQ(v->dst().to_string(), "fd00::2");
  EXPECT_TRUE(Ipv6View::is_extension_header(0));
  EXPECT_TRUE(Ipv6View::is_extension_header(44));
  EXPECT_FALSE(Ipv6View::is_extension_header(kProtoTcp));
  const Bytes q = cut(ipv6(100), 48);
  EXPECT_FALSE(Ipv6View::parse(q));
  ASSERT_TRUE(Ipv6View::parse_quoted(q));
  EXPECT_EQ(Ipv6View::parse_quoted(q)->payload().size(), 8u);
}

TEST(wire, TcpParseTable) {
  Bytes tcp(24, 0);
  store_be16(tcp.data(), 40000);
  store_be16(tcp.data() + 2, 443);
  store_be32(tcp.data() + 4, 0x11223344);
  store_be32(tcp.data() + 8, 0x55667788);
  tcp[12] = 5 << 4;
  tcp[13] = TcpView::kSyn | TcpView::kAck;
  store_be16(tcp.data() + 14, 8192);
  const auto v = TcpView::parse(tcp);
  ASSERT_TRUE(v);
  EXPECT_EQ(v->src_port(), 40000);
  EXPECT_EQ(v->dst_port(), 443);
  EXPECT_EQ(v->seq(), 0x11223344u);
  EXPECT_EQ(v->ack(), 0x55667788u);
  EXPECT_EQ(v->flags(), TcpView::kSyn | TcpView::kAck);
  EXPECT_EQ(v->window(), 8192);
  EXPECT_EQ(v->header_length(), 20u);
  EXPECT_EQ(v->payload().size(), 4u);

  ParseError why;
  EXPECT_FALSE(TcpView::parse(std::span(tcp).first(19), &why));
  EXPECT_EQ(why, ParseError::kTruncated);
  tcp[12] = 4 << 4;
  EXPECT_FALSE(TcpView::parse(tcp, &why));
  EXPECT_EQ(why, ParseError::kMalformed);
  tcp[12] = 6 << 4;  // 24-byte header: fits exactly
  ASSERT_TRUE(TcpView::parse(tcp));
  EXPECT_EQ(TcpView::parse(tcp)->options().size(), 4u);
  tcp[12] = 7 << 4;  // 28-byte header in 24 bytes
  EXPECT_FALSE(TcpView::parse(tcp, &why));
  EXPECT_EQ(why, ParseError::kTruncated);
}

TEST(wire, UdpAndIcmpParse) {
  Bytes b = {0x9c, 0x40, 0x00, 0x35, 0x00, 0x0c, 0xab, 0xcd, 1, 2, 3, 4};
  const auto u = UdpView::parse(b);
  ASSERT_TRUE(u);
  EXPECT_EQ(u->src_port(), 40000);
  EXPECT_EQ(u->dst_port(), 53);
  EXPECT_EQ(u->length(), 12);
  EXPECT_EQ(u->checksum(), 0xabcd);
  EXPECT_EQ(u->payload().size(), 4u);
  const auto i = IcmpView::parse(b);
  ASSERT_TRUE(i);
  EXPECT_EQ(i->type(), 0x9c);
  EXPECT_EQ(i->code(), 0x40);
  EXPECT_EQ(i->echo_id(), 0x000c);
  EXPECT_EQ(i->echo_seq(), 0xabcd);
  EXPECT_EQ(i->rest_of_header(), 0x000cabcdu);
  EXPECT_EQ(i->body().size(), 4u);
  ParseError why;
  EXPECT_FALSE(UdpView::parse(std::span(b).first(7), &why));
  EXPECT_EQ(why, ParseError::kTruncated);
  EXPECT_FALSE(IcmpView::parse(std::span(b).first(7), &why));
  EXPECT_EQ(why, ParseError::kTruncated);
  EXPECT_TRUE(IcmpView::is_v4_error(3));
  EXPECT_TRUE(IcmpView::is_v4_error(11));
  EXPECT_TRUE(IcmpView::is_v4_error(12));
  EXPECT_FALSE(IcmpView::is_v4_error(5));
  EXPECT_TRUE(IcmpView::is_v6_error(2));
  EXPECT_FALSE(IcmpView::is_v6_error(128));
  EXPECT_FALSE(IcmpView::is_v6_error(0));
}

TEST(wire, EveryTruncationOfRandomBytesIsSafe) {
  // Runs the views over random and truncated input; under ASan any out-of-range read fails here.
  std::mt19937 rng(42);
  for (int iter = 0; iter < 2000; ++iter) {
    Bytes b(rng() % 80);
    for (auto& x : b) x = uint8_t(rng());
    if (!b.empty() && iter % 2) b[0] = uint8_t((iter % 4 == 1 ? 0x40 : 0x60) | (b[0] & 0x0f));
    for (size_t n = 0; n <= b.size(); ++n) {
      const std::span<const uint8_t> s(b.data(), n);
      const auto v4 = Ipv4View::parse(s);
      EXPECT_LE(v4 ? v4->bytes().size() : 0, n);
      const auto q4 = Ipv4View::parse_quoted(s);
      EXPECT_LE(q4 ? q4->header_length() + q4->payload().size() : 0, n);
      const auto v6 = Ipv6View::parse(s);
      EXPECT_LE(v6 ? v6->payload().size() + 40 : 0, n);
      const auto q6 = Ipv6View::parse_quoted(s);
      EXPECT_LE(q6 ? q6->payload().size() + 40 : 0, n);
      const auto tcp = TcpView::parse(s);
      EXPECT_LE(tcp ? tcp->header_length() : 0, n);
      (void)UdpView::parse(s);
      (void)IcmpView::parse(s);
    }
  }
}

}  // namespace
}  // namespace netprobe::wire
