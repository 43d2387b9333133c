// UDPquery packets (probes/udp_query.h): the template and craft() (payload, token field, checksums), what
// classify() makes of its answers and of the ICMP errors quoting it, and the exact match of an answer or a
// quote to one probe: right token, wrong token, truncated, port unreachable.
#include "probes/udp_query.h"

#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <string>

#include "packets.h"
#include "wire/checksum.h"
#include "wire/ip.h"
#include "wire/l4.h"

namespace netprobe {
namespace {

using namespace netprobe::testing;
using udpquery::Outcome;

constexpr AddressFamily kFamilies[] = {AddressFamily::kV4, AddressFamily::kV6};
constexpr uint32_t kWire = 0xa1b2c3d4;

// A DNS-like query: ID (the token field) at 0, then fixed bytes.
std::shared_ptr<const udpquery::Spec> spec(const char* expect_kind, const char* expect_value,
                                           uint16_t token_length = 2, uint16_t offset = 0,
                                           uint16_t reply_offset = 0,
                                           const char* payload = "hex:0000 0100 0001 abcd") {
  std::string why;
  auto s = udpquery::make_spec(payload, expect_kind, expect_value, offset, token_length, reply_offset, &why);
  EXPECT_TRUE(s) << why;
  return std::make_shared<const udpquery::Spec>(std::move(*s));
}

PacketTemplate tmpl_for(AddressFamily af, std::shared_ptr<const udpquery::Spec> q) {
  ProbeParams p = params_for(ProbeType::kUdpQuery, af);
  p.dst_port = 53;
  p.query = std::move(q);
  return probe_for(ProbeType::kUdpQuery).make_template(p);
}

Bytes craft(const PacketTemplate& t, uint16_t sport, uint32_t wire) {
  Bytes out(t.bytes.size() + 8);
  const size_t n =
      probe_for(ProbeType::kUdpQuery).craft(t, PacketFields{local_addr(t.params.af), sport, wire}, out);
  out.resize(n);
  return out;
}

// The UDP checksum of a packet, verified independently: the sum over pseudo header + UDP must be 0xffff.
bool udp_checksum_ok(const Bytes& pkt) {
  const bool v4 = (pkt[0] >> 4) == 4;
  const size_t l4 = v4 ? size_t(pkt[0] & 0x0f) * 4 : 40;
  wire::Checksum sum;
  wire::add_pseudo_header(sum, v4 ? AddressFamily::kV4 : AddressFamily::kV6, pkt.data() + (v4 ? 12 : 8),
                          pkt.data() + (v4 ? 16 : 24), wire::kProtoUdp, uint32_t(pkt.size() - l4));
  sum.add({pkt.data() + l4, pkt.size() - l4});
  return sum.finish() == 0;
}

Bytes udp_answer(AddressFamily af, uint16_t sport, uint16_t dport, const Bytes& payload) {
  Tins::UDP udp(dport, sport);
  udp.inner_pdu(Tins::RawPDU(payload));
  return ip_packet(target_addr(af), local_addr(af), udp);
}

TEST(probes_udpquery, CraftWritesThePayloadTheTokenAndValidChecksums) {
  for (AddressFamily af : kFamilies) {
    // Token fields at even and odd offsets, 2 to 8 bytes: the checksum covers the field wherever it is.
    for (uint16_t offset : {0, 1, 3, 4}) {
      for (uint16_t length : {2, 3, 4, 8}) {
        const auto q = spec("any", "", length, offset, offset, "hex:0011223344556677 8899aabbccddeeff 01");
        const PacketTemplate t = tmpl_for(af, q);
        const Bytes pkt = craft(t, 40001, kWire);
        ASSERT_FALSE(pkt.empty());
        SCOPED_TRACE(std::string(to_string(af)) + " offset " + std::to_string(offset) + " length " +
                     std::to_string(length));
        EXPECT_TRUE(udp_checksum_ok(pkt));
        const size_t l4 = t.l4_offset;
        EXPECT_EQ(wire::load_be16(pkt.data() + l4), 40001);
        EXPECT_EQ(wire::load_be16(pkt.data() + l4 + 2), 53);
        const uint8_t* payload = pkt.data() + l4 + 8;
        ASSERT_EQ(pkt.size() - l4 - 8, 17u);
        // W big-endian in the field (its top 16 bits when 2 or 3 bytes), zeros after; the rest as configured.
        const uint8_t w[4] = {0xa1, 0xb2, 0xc3, 0xd4};
        for (size_t i = 0; i < 17; ++i) {
          const uint8_t configured = i < 16 ? uint8_t(0x11 * (i % 16)) : 0x01;
          uint8_t want = configured;
          if (i >= offset && i < size_t(offset) + length) {
            const size_t k = i - offset;
            want = k < size_t(length >= 4 ? 4 : 2) ? w[k] : 0;
          }
          EXPECT_EQ(payload[i], want) << i;
        }
        if (af == AddressFamily::kV4) {
          EXPECT_EQ(wire::load_be16(pkt.data() + 4), 0xa1b2) << "IP-ID = the index";
        }
      }
    }
    // Without a token the payload goes as configured.
    const PacketTemplate t = tmpl_for(af, spec("any", "", 0, 0, 0, "ping"));
    const Bytes pkt = craft(t, 40002, kWire);
    EXPECT_TRUE(udp_checksum_ok(pkt));
    EXPECT_EQ(std::string(pkt.end() - 4, pkt.end()), "ping");
  }
}

TEST(probes_udpquery, TemplateNeedsAPayload) {
  ProbeParams p = params_for(ProbeType::kUdpQuery, AddressFamily::kV4);
  EXPECT_THROW(probe_for(ProbeType::kUdpQuery).make_template(p), std::invalid_argument);
}

TEST(probes_udpquery, IncomingDatagramsAreAnswerCandidatesKeyedByTheir5Tuple) {
  for (AddressFamily af : kFamilies) {
    const Bytes a = udp_answer(af, 53, 40001, Bytes{1, 2, 3});
    const Classification c = classify(a, Direction::kIncoming);
    EXPECT_EQ(c.verdict, Verdict::kAnswer);
    EXPECT_EQ(c.key.type, ProbeType::kUdpQuery);
    EXPECT_EQ(c.key.target, target_addr(af));
    EXPECT_EQ(c.key.local_port, 40001);
    EXPECT_EQ(c.remote_port, 53);
    EXPECT_EQ(c.local, local_addr(af));
    udpquery::SeenDatagram seen;
    ASSERT_TRUE(udpquery::parse_datagram(a, false, seen));
    EXPECT_EQ(Bytes(seen.payload.begin(), seen.payload.end()), (Bytes{1, 2, 3}));
    // Truncated below the UDP header: rejected by classify() and by parse_datagram().
    const Bytes cut(a.begin(), a.end() - 7);
    EXPECT_FALSE(udpquery::parse_datagram(Bytes(a.begin(), a.begin() + (af == AddressFamily::kV4 ? 24 : 44)),
                                          false, seen));
    (void)cut;
  }
}

struct AnswerRow {
  const char* name;
  const char* expect_kind;
  const char* expect_value;
  uint16_t token_length;
  Bytes answer;  // the UDP payload the service sends
  Outcome want;
};

TEST(probes_udpquery, AnswersAreJudgedByTheirExactTokenThenTheirContent) {
  // W = a1b2c3d4: a 2-byte field echoes a1b2, a 4-byte one a1b2c3d4.
  const AnswerRow rows[] = {
      {"right ID, any", "any", "", 2, {0xa1, 0xb2, 0x81, 0x80}, Outcome::kAnswered},
      {"wrong ID (a forger)", "any", "", 2, {0xa1, 0xb3, 0x81, 0x80}, Outcome::kNotOurs},
      {"truncated before the ID ends", "any", "", 2, {0xa1}, Outcome::kNotOurs},
      {"empty datagram", "any", "", 2, {}, Outcome::kNotOurs},
      {"4-byte token right", "any", "", 4, {0xa1, 0xb2, 0xc3, 0xd4, 0}, Outcome::kAnswered},
      {"4-byte token: only the index right", "any", "", 4, {0xa1, 0xb2, 0x00, 0x01, 0}, Outcome::kNotOurs},
      {"contains, right",
       "contains",
       "hex:c0000209",
       2,
       {0xa1, 0xb2, 9, 0xc0, 0, 2, 9, 7},
       Outcome::kAnswered},
      {"contains, wrong content",
       "contains",
       "hex:c0000209",
       2,
       {0xa1, 0xb2, 9, 0xc0, 0, 2, 8},
       Outcome::kUnexpected},
      {"contains, wrong ID and right content",
       "contains",
       "hex:c0000209",
       2,
       {0, 1, 0xc0, 0, 2, 9},
       Outcome::kNotOurs},
      {"exact skips the echoed field",
       "exact",
       "hex:0000 8180",
       2,
       {0xa1, 0xb2, 0x81, 0x80},
       Outcome::kAnswered},
      {"exact, one byte more",
       "exact",
       "hex:0000 8180",
       2,
       {0xa1, 0xb2, 0x81, 0x80, 0},
       Outcome::kUnexpected},
      {"regex", "regex", "^..\\x81\\x80$", 2, {0xa1, 0xb2, 0x81, 0x80}, Outcome::kAnswered},
      {"regex, no match", "regex", "^..\\x81\\x83$", 2, {0xa1, 0xb2, 0x81, 0x80}, Outcome::kUnexpected},
      {"no token: content alone", "exact", "pong", 0, {'p', 'o', 'n', 'g'}, Outcome::kAnswered},
      {"no token: wrong content", "exact", "pong", 0, {'p', 'i', 'n', 'g'}, Outcome::kUnexpected},
  };
  for (const auto& r : rows) {
    for (AddressFamily af : kFamilies) {
      const PacketTemplate t = tmpl_for(af, spec(r.expect_kind, r.expect_value, r.token_length));
      const Bytes a = udp_answer(af, 53, 40001, r.answer);
      udpquery::SeenDatagram seen;
      ASSERT_TRUE(udpquery::parse_datagram(a, false, seen)) << r.name;
      EXPECT_EQ(udpquery::match_answer(t, kWire, seen.payload), r.want) << r.name << " " << to_string(af);
    }
  }
}

TEST(probes_udpquery, PortUnreachableQuotingTheProbeIsItsOwn) {
  for (AddressFamily af : kFamilies) {
    const bool v4 = af == AddressFamily::kV4;
    const uint8_t type = v4 ? 3 : 1, code = v4 ? 3 : 4;
    const PacketTemplate t = tmpl_for(af, spec("any", "", 2));
    const Bytes probe = craft(t, 40001, kWire);
    struct QuoteRow {
      const char* name;
      Bytes quoted;
      size_t quote_len;
      uint32_t wire;  // the probe's W the quote is checked against
      bool want;
    };
    Bytes other = craft(t, 40001, 0x5555aaaa);  // another probe on the same 5-tuple
    const size_t header = v4 ? 20 : 40;
    const QuoteRow rows[] = {
        {"the whole probe", probe, SIZE_MAX, kWire, true},
        {"another probe's quote", other, SIZE_MAX, kWire, false},
        // RFC 792's minimum: the UDP header only. IPv4 still has the IP-ID (the index); IPv6 has nothing.
        {"only the UDP header", probe, header + 8, kWire, true},
        {"the token field cut", probe, header + 9, kWire, v4},
    };
    for (const auto& r : rows) {
      const Bytes err = icmp_error(af, type, code, r.quoted, r.quote_len);
      const Classification c = classify(err, Direction::kIncoming);
      udpquery::SeenDatagram seen;
      if (c.verdict == Verdict::kReject) {
        // IPv6 quotes shorter than UDPunreachable's 4-byte token word are refused by classify() already.
        EXPECT_FALSE(v4) << r.name;
        EXPECT_EQ(c.reason, RejectReason::kQuoteTruncated) << r.name;
        continue;
      }
      EXPECT_EQ(c.verdict, Verdict::kAnswer) << r.name << ": a port unreachable";
      EXPECT_EQ(c.key.local_port, 40001);
      EXPECT_EQ(c.remote_port, 53);
      ASSERT_TRUE(udpquery::parse_datagram(err, true, seen)) << r.name;
      EXPECT_EQ(udpquery::quote_matches(t, r.wire, seen.ip_id, seen.payload), r.want)
          << r.name << " " << to_string(af);
    }
  }
}

TEST(probes_udpquery, ParseDatagramRefusesWhatIsNotUdp) {
  for (AddressFamily af : kFamilies) {
    udpquery::SeenDatagram seen;
    const Bytes tcp = tcp_packet(target_addr(af), local_addr(af), 53, 40001, 0x12, 1, 2);
    EXPECT_FALSE(udpquery::parse_datagram(tcp, false, seen));
    EXPECT_FALSE(udpquery::parse_datagram(tcp, true, seen));
    EXPECT_FALSE(udpquery::parse_datagram({}, false, seen));
    const Bytes junk{0x45, 0, 0};
    EXPECT_FALSE(udpquery::parse_datagram(junk, false, seen));
    // An ICMP error quoting a TCP segment is not a UDP quote.
    const Bytes err = icmp_error(af, af == AddressFamily::kV4 ? 3 : 1, af == AddressFamily::kV4 ? 3 : 4, tcp);
    EXPECT_FALSE(udpquery::parse_datagram(err, true, seen));
  }
}

}  // namespace
}  // namespace netprobe
