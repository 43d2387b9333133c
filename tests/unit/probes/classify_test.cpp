// classify() as tables of {description, bytes, direction, expected verdict / reason / key} (katran's
// testing/ is the model), then the probe -> reply round trip, then a bounded fuzz loop for crashes.
#include <gtest/gtest.h>

#include <random>
#include <string>

#include "packets.h"
#include "wire/bytes.h"

namespace netprobe {
namespace {

using namespace netprobe::testing;
using testing::Bytes;

constexpr auto kV4 = AddressFamily::kV4;
constexpr auto kV6 = AddressFamily::kV6;
constexpr auto kIn = Direction::kIncoming;
constexpr auto kOut = Direction::kOutgoing;
constexpr uint8_t kSyn = 0x02, kRst = 0x04, kPsh = 0x08, kAck = 0x10;
constexpr uint16_t kSport = 40001;  // our probe's source port
constexpr uint32_t kTcpToken = 0x2f00d;
constexpr uint32_t kSeq = kTcpToken << kTcpSeqShift;  // index part; the check bits are below
constexpr uint32_t kEchoToken = 0xcafe0042;
constexpr uint32_t kUdpToken4 = 0xbeef, kUdpToken6 = 0xabcde;

struct Row {
  std::string description;
  Bytes bytes;
  Direction dir = kIn;
  Verdict verdict = Verdict::kReject;
  RejectReason reason = RejectReason::kNone;
  MatchKey key{};         // checked unless verdict == kReject
  IpAddress local{};      // idem
  uint8_t icmp_type = 0;  // checked for kIcmpError and ICMP-borne kAnswer
  uint8_t icmp_code = 0;
};

MatchKey key(ProbeType t, AddressFamily af, uint16_t port, uint32_t token) {
  return MatchKey{t, target_addr(af), port, token};
}

Row accept(std::string d, Bytes b, Direction dir, Verdict v, MatchKey k, AddressFamily af, uint8_t itype = 0,
           uint8_t icode = 0) {
  return Row{std::move(d), std::move(b), dir, v, RejectReason::kNone, k, local_addr(af), itype, icode};
}

Row reject(std::string d, Bytes b, Direction dir, RejectReason r) {
  Row row;
  row.description = std::move(d);
  row.bytes = std::move(b);
  row.dir = dir;
  row.reason = r;
  return row;
}

Bytes set_byte(Bytes b, size_t i, uint8_t v) {
  b.at(i) = v;
  return b;
}
Bytes cut(Bytes b, size_t n) {
  b.resize(std::min(n, b.size()));
  return b;
}
Bytes pad(Bytes b, size_t n) {
  b.insert(b.end(), n, 0);
  return b;
}
// Recomputing the IPv4 header checksum is not needed: classify() does not check it (the L4 token is what
// authenticates a reply), so rows below edit headers freely.

// IPv4 packet with a 4-byte IP option (IHL 6): NOP NOP NOP EOL.
Bytes with_ipv4_option(const Bytes& b) {
  Bytes o(b.begin(), b.begin() + 20);
  o.insert(o.end(), {1, 1, 1, 0});
  o.insert(o.end(), b.begin() + 20, b.end());
  o[0] = 0x46;
  wire::store_be16(o.data() + 2, uint16_t(o.size()));
  return o;
}

// IPv6 packet whose payload is preceded by an 8-byte hop-by-hop header (next header 0).
Bytes with_hop_by_hop(const Bytes& b) {
  Bytes o(b.begin(), b.begin() + 40);
  o.insert(o.end(), {b[6], 0, 1, 4, 0, 0, 0, 0});  // next = original, len 0, PadN
  o.insert(o.end(), b.begin() + 40, b.end());
  o[6] = 0;
  wire::store_be16(o.data() + 4, uint16_t(o.size() - 40));
  return o;
}

std::vector<Row> rows() {
  std::vector<Row> r;
  for (auto af : {kV4, kV6}) {
    const std::string f = af == kV4 ? "v4_" : "v6_";
    const bool v4 = af == kV4;
    const IpAddress us = local_addr(af), them = target_addr(af), router = router_addr(af);
    const uint16_t udp_token = v4 ? kUdpToken4 : kUdpToken6;
    const Bytes syn = crafted(ProbeType::kTcpSyn, af, kSport, kTcpToken, 40);
    const Bytes echo_req = crafted(ProbeType::kIcmpPing, af, 0, kEchoToken, 64);
    const Bytes udp = crafted(ProbeType::kUdpUnreachable, af, kSport, udp_token, 30);
    const uint8_t unreach = v4 ? 3 : 1, port_unreach = v4 ? 3 : 4, time_exceeded = v4 ? 11 : 3;
    const size_t iph = v4 ? 20 : 40;
    const MatchKey tcp_key = key(ProbeType::kTcpSyn, af, kSport, kTcpToken);
    const MatchKey echo_key = key(ProbeType::kIcmpPing, af, 0, kEchoToken);
    const MatchKey udp_key = key(ProbeType::kUdpUnreachable, af, kSport, udp_token);

    // --- our own probes leaving
    r.push_back(accept(f + "own_tcp_syn", syn, kOut, Verdict::kOwnProbe, tcp_key, af));
    r.push_back(accept(f + "own_echo_request", echo_req, kOut, Verdict::kOwnProbe, echo_key, af));
    r.push_back(accept(f + "own_udp", udp, kOut, Verdict::kOwnProbe, udp_key, af));
    r.push_back(reject(f + "outgoing_kernel_rst", tcp_packet(us, them, kSport, 443, kRst, kSeq + 1, 0), kOut,
                       RejectReason::kNotAProbe));
    // Any bare SYN could be ours (the low seq bits are keyed check bits): the host's own connect() is told
    // apart when matched, by its whole seq (engine tests).
    r.push_back(accept(f + "outgoing_syn_of_a_normal_connect",
                       tcp_packet(us, them, kSport, 443, kSyn, kSeq + 7, 0), kOut, Verdict::kOwnProbe,
                       tcp_key, af));
    r.push_back(reject(f + "outgoing_syn_ack", tcp_packet(us, them, kSport, 443, kSyn | kAck, kSeq, 5), kOut,
                       RejectReason::kNotAProbe));
    r.push_back(reject(f + "outgoing_echo_reply", echo_packet(us, them, true, kEchoToken), kOut,
                       RejectReason::kNotAProbe));
    r.push_back(reject(f + "outgoing_icmp_error", icmp_error(af, unreach, port_unreach, udp), kOut,
                       RejectReason::kNotAProbe));

    // --- TCP answers
    r.push_back(accept(f + "syn_ack", tcp_packet(them, us, 443, kSport, kSyn | kAck, 777, kSeq + 1), kIn,
                       Verdict::kAnswer, tcp_key, af));
    r.push_back(accept(f + "rst_ack", tcp_packet(them, us, 443, kSport, kRst | kAck, 0, kSeq + 1), kIn,
                       Verdict::kAnswer, tcp_key, af));
    r.push_back(accept(f + "rst_ack_acking_the_payload",
                       tcp_packet(them, us, 443, kSport, kRst | kAck, 0, kSeq + 41), kIn, Verdict::kAnswer,
                       tcp_key, af));
    r.push_back(accept(f + "syn_ack_with_ack_wrapping_to_0",
                       tcp_packet(them, us, 443, kSport, kSyn | kAck, 1, 0), kIn, Verdict::kAnswer,
                       key(ProbeType::kTcpSyn, af, kSport, token_mask(ProbeType::kTcpSyn, af)), af));
    r.push_back(reject(f + "plain_rst_without_ack", tcp_packet(them, us, 443, kSport, kRst, kSeq + 1, 0), kIn,
                       RejectReason::kNotAReply));
    r.push_back(reject(f + "syn_arriving", tcp_packet(them, us, 443, kSport, kSyn, kSeq, 0), kIn,
                       RejectReason::kNotAReply));
    r.push_back(reject(f + "psh_ack_data", tcp_packet(them, us, 443, kSport, kPsh | kAck, 1, kSeq + 1, 100),
                       kIn, RejectReason::kNotAReply));
    // A half-open connection's answer to an out-of-window SYN: a pure ACK of the earlier SYN, keyed like a
    // SYN-ACK (the engine decides whether it proves a probe arrived).
    r.push_back(accept(f + "pure_ack", tcp_packet(them, us, 443, kSport, kAck, 777, kSeq + 1), kIn,
                       Verdict::kTcpPureAck, tcp_key, af));
    r.push_back(reject(f + "fin_ack", tcp_packet(them, us, 443, kSport, kAck | 0x01, 777, kSeq + 1), kIn,
                       RejectReason::kNotAReply));
    r.push_back(reject(f + "ack_with_data", tcp_packet(them, us, 443, kSport, kAck, 777, kSeq + 1, 10), kIn,
                       RejectReason::kNotAReply));
    r.push_back(reject(f + "outgoing_pure_ack", tcp_packet(us, them, kSport, 443, kAck, kSeq, 1), kOut,
                       RejectReason::kNotAProbe));
    r.push_back(reject(f + "tcp_truncated_header",
                       cut(tcp_packet(them, us, 443, kSport, kSyn | kAck, 1, 1), iph + 12), kIn,
                       RejectReason::kTruncated));
    {
      Bytes b = tcp_packet(them, us, 443, kSport, kSyn | kAck, 1, kSeq + 1);
      r.push_back(
          reject(f + "tcp_data_offset_3", set_byte(b, iph + 12, 3 << 4), kIn, RejectReason::kMalformed));
      r.push_back(reject(f + "tcp_data_offset_beyond_packet", set_byte(b, iph + 12, 15 << 4), kIn,
                         RejectReason::kTruncated));
    }

    // --- ICMP echo
    r.push_back(accept(f + "echo_reply", echo_packet(them, us, true, kEchoToken), kIn, Verdict::kAnswer,
                       echo_key, af));
    r.push_back(reject(f + "echo_request_arriving", echo_packet(them, us, false, kEchoToken), kIn,
                       RejectReason::kNotAReply));
    r.push_back(reject(f + "icmp_truncated_header", cut(echo_packet(them, us, true, 1), iph + 6), kIn,
                       RejectReason::kTruncated));

    // --- ICMP errors, keyed by their quote whoever sends them
    r.push_back(accept(f + "udp_port_unreachable_from_target",
                       icmp_packet(them, us, unreach, port_unreach, 0, 0, udp), kIn, Verdict::kAnswer,
                       udp_key, af, unreach, port_unreach));
    r.push_back(accept(f + "udp_port_unreachable_from_a_router", icmp_error(af, unreach, port_unreach, udp),
                       kIn, Verdict::kAnswer, udp_key, af, unreach, port_unreach));
    // IPv4: RFC 792's 8 bytes hold IP-ID and checksum; IPv6: the token word follows the UDP header.
    r.push_back(accept(f + "udp_port_unreachable_minimal_quote",
                       icmp_error(af, unreach, port_unreach, udp, iph + (v4 ? 8 : 12)), kIn, Verdict::kAnswer,
                       udp_key, af, unreach, port_unreach));
    r.push_back(accept(f + "udp_host_unreachable", icmp_error(af, unreach, v4 ? 1 : 3, udp), kIn,
                       Verdict::kIcmpError, udp_key, af, unreach, v4 ? 1 : 3));
    r.push_back(accept(f + "udp_time_exceeded", icmp_error(af, time_exceeded, 0, udp), kIn,
                       Verdict::kIcmpError, udp_key, af, time_exceeded, 0));
    r.push_back(accept(f + "tcp_syn_time_exceeded", icmp_error(af, time_exceeded, 0, syn), kIn,
                       Verdict::kIcmpError, tcp_key, af, time_exceeded, 0));
    r.push_back(accept(f + "tcp_syn_unreachable_8_byte_quote",
                       icmp_error(af, unreach, v4 ? 13 : 1, syn, iph + 8), kIn, Verdict::kIcmpError, tcp_key,
                       af, unreach, v4 ? 13 : 1));
    r.push_back(accept(f + "tcp_syn_port_unreachable_is_not_an_answer",
                       icmp_error(af, unreach, port_unreach, syn), kIn, Verdict::kIcmpError, tcp_key, af,
                       unreach, port_unreach));
    r.push_back(accept(f + "echo_request_unreachable", icmp_error(af, unreach, 0, echo_req), kIn,
                       Verdict::kIcmpError, echo_key, af, unreach, 0));
    r.push_back(accept(f + "parameter_problem_quoting_udp", icmp_error(af, v4 ? 12 : 4, 0, udp), kIn,
                       Verdict::kIcmpError, udp_key, af, v4 ? 12 : 4, 0));
    if (v4) {
      r.push_back(accept("v4_quote_with_ip_options", icmp_error(af, 3, 3, with_ipv4_option(udp)), kIn,
                         Verdict::kAnswer, udp_key, af, 3, 3));
      r.push_back(accept("v4_frag_needed_quoting_syn", icmp_error(af, 3, 4, syn), kIn, Verdict::kIcmpError,
                         tcp_key, af, 3, 4));
    } else {
      r.push_back(accept("v6_packet_too_big_quoting_syn", icmp_error(af, 2, 0, syn), kIn, Verdict::kIcmpError,
                         tcp_key, af, 2, 0));
    }
    // Quotes of packets we never sent.
    r.push_back(
        reject(f + "error_quoting_a_syn_ack",
               icmp_error(af, unreach, port_unreach, tcp_packet(us, them, kSport, 443, kSyn | kAck, kSeq, 1)),
               kIn, RejectReason::kQuoteNotAProbe));
    // As for outgoing SYNs: the whole quoted seq is checked when matched.
    r.push_back(accept(f + "error_quoting_a_syn_of_a_normal_connect",
                       icmp_error(af, unreach, 1, tcp_packet(us, them, kSport, 443, kSyn, kSeq + 9, 0)), kIn,
                       Verdict::kIcmpError, tcp_key, af, unreach, 1));
    r.push_back(reject(f + "error_quoting_an_echo_reply",
                       icmp_error(af, unreach, 0, echo_packet(us, them, true, 5)), kIn,
                       RejectReason::kQuoteNotAProbe));
    r.push_back(reject(f + "error_quoting_gre", icmp_error(af, unreach, 2, set_byte(udp, v4 ? 9 : 6, 47)),
                       kIn, RejectReason::kQuoteNotAProbe));
    r.push_back(reject(
        f + "error_quoting_the_other_family",
        icmp_error(af, unreach, port_unreach, crafted(ProbeType::kUdpUnreachable, v4 ? kV6 : kV4, 1, 1)), kIn,
        RejectReason::kQuoteNotAProbe));
    r.push_back(reject(f + "error_quote_cut_in_transport_header",
                       icmp_error(af, unreach, port_unreach, udp, iph + 7), kIn,
                       RejectReason::kQuoteTruncated));
    r.push_back(reject(f + "error_quote_cut_in_ip_header",
                       icmp_error(af, unreach, port_unreach, udp, iph - 1), kIn,
                       RejectReason::kQuoteTruncated));
    r.push_back(reject(f + "error_with_empty_quote", icmp_packet(router, us, unreach, port_unreach, 0, 0, {}),
                       kIn, RejectReason::kQuoteTruncated));
    // Not-error, not-echo ICMP types.
    r.push_back(reject(f + "wrong_icmp_type", icmp_packet(them, us, v4 ? 5 : 135, 0, 0, 0, Bytes(24, 0)), kIn,
                       RejectReason::kNotAReply));
    r.push_back(reject(f + "wrong_icmp_type_router_advert",
                       icmp_packet(router, us, v4 ? 9 : 134, 0, 0, 0, Bytes(8, 0)), kIn,
                       RejectReason::kNotAReply));

    // --- UDP arriving: a UDPquery answer candidate keyed by its 5-tuple (probes/udp_query.h), token 0
    r.push_back(accept(f + "udp_arriving", udp_packet(them, us, 443, kSport), kIn, Verdict::kAnswer,
                       MatchKey{ProbeType::kUdpQuery, them, kSport, 0}, af));

    // --- malformed / truncated outer packets
    const Bytes synack = tcp_packet(them, us, 443, kSport, kSyn | kAck, 1, kSeq + 1);
    r.push_back(reject(f + "truncated_outer_header", cut(synack, 10), kIn, RejectReason::kTruncated));
    r.push_back(reject(f + "length_field_beyond_bytes", cut(synack, synack.size() - 1), kIn,
                       RejectReason::kTruncated));
    r.push_back(accept(f + "ethernet_padding_ignored", pad(synack, 6), kIn, Verdict::kAnswer, tcp_key, af));
    r.push_back(reject(f + "bad_version", set_byte(synack, 0, uint8_t(0x50 | (synack[0] & 0xf))), kIn,
                       RejectReason::kMalformed));
    r.push_back(reject(f + "gre", set_byte(synack, v4 ? 9 : 6, 47), kIn, RejectReason::kNotAProbeProtocol));
    r.push_back(reject(f + "other_family_icmp_number",
                       set_byte(echo_packet(them, us, true, 1), v4 ? 9 : 6, v4 ? 58 : 1), kIn,
                       RejectReason::kNotAProbeProtocol));
  }
  const Bytes synack4 = tcp_packet(target_addr(kV4), local_addr(kV4), 443, kSport, kSyn | kAck, 1, kSeq + 1);
  const Bytes synack6 = tcp_packet(target_addr(kV6), local_addr(kV6), 443, kSport, kSyn | kAck, 1, kSeq + 1);
  r.push_back(reject("v4_bad_ihl_4", set_byte(synack4, 0, 0x44), kIn, RejectReason::kMalformed));
  r.push_back(
      reject("v4_ihl_15_beyond_bytes", set_byte(cut(synack4, 40), 0, 0x4f), kIn, RejectReason::kTruncated));
  {
    Bytes b = synack4;
    wire::store_be16(b.data() + 2, 19);
    r.push_back(reject("v4_total_length_below_header", b, kIn, RejectReason::kMalformed));
  }
  r.push_back(accept("v4_ip_options_honoured", with_ipv4_option(synack4), kIn, Verdict::kAnswer,
                     key(ProbeType::kTcpSyn, kV4, kSport, kTcpToken), kV4));
  {
    Bytes b = synack4;
    wire::store_be16(b.data() + 6, 0x2000 | 0);  // first fragment (MF, offset 0): headers are there
    r.push_back(accept("v4_first_fragment", b, kIn, Verdict::kAnswer,
                       key(ProbeType::kTcpSyn, kV4, kSport, kTcpToken), kV4));
    wire::store_be16(b.data() + 6, 185);
    r.push_back(reject("v4_later_fragment", b, kIn, RejectReason::kFragment));
  }
  r.push_back(
      reject("v6_hop_by_hop_header", with_hop_by_hop(synack6), kIn, RejectReason::kNotAProbeProtocol));
  r.push_back(reject("v6_fragment_header", set_byte(with_hop_by_hop(synack6), 6, 44), kIn,
                     RejectReason::kNotAProbeProtocol));
  r.push_back(
      reject("v6_error_quoting_extension_header",
             icmp_error(kV6, 1, 4, with_hop_by_hop(crafted(ProbeType::kUdpUnreachable, kV6, kSport, 5))), kIn,
             RejectReason::kQuoteNotAProbe));
  {
    Bytes b = crafted(ProbeType::kUdpUnreachable, kV4, kSport, kUdpToken4);
    wire::store_be16(b.data() + 6, 0x2000 | 64);
    r.push_back(reject("v4_error_quoting_a_later_fragment", icmp_error(kV4, 3, 3, b), kIn,
                       RejectReason::kQuoteNotAProbe));
  }
  r.push_back(reject("zero_length", {}, kIn, RejectReason::kTruncated));
  r.push_back(reject("zero_length_outgoing", {}, kOut, RejectReason::kTruncated));
  r.push_back(reject("one_byte_v4", {0x45}, kIn, RejectReason::kTruncated));
  r.push_back(reject("garbage_bytes", {0xde, 0xad, 0xbe, 0xef, 0x00, 0x11, 0x22, 0x33}, kIn,
                     RejectReason::kMalformed));
  r.push_back(reject("ethernet_frame_not_ip",
                     {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 1, 2, 3, 4, 5, 0x08, 0x06}, kIn,
                     RejectReason::kMalformed));
  return r;
}

class ClassifyTable : public ::testing::TestWithParam<Row> {};

TEST_P(ClassifyTable, Row) {
  const Row& row = GetParam();
  const Classification c = classify(row.bytes, row.dir);
  EXPECT_EQ(int(c.verdict), int(row.verdict));
  EXPECT_EQ(to_string(c.reason), to_string(row.reason));
  if (row.verdict == Verdict::kReject) return;
  EXPECT_EQ(int(c.key.type), int(row.key.type));
  EXPECT_EQ(c.key.target.to_string(), row.key.target.to_string());
  EXPECT_EQ(c.key.local_port, row.key.local_port);
  EXPECT_EQ(c.key.token, row.key.token) << std::hex << c.key.token << " vs " << row.key.token;
  EXPECT_TRUE(c.key == row.key);
  EXPECT_EQ(c.local.to_string(), row.local.to_string());
  EXPECT_EQ(c.icmp_type, row.icmp_type);
  EXPECT_EQ(c.icmp_code, row.icmp_code);
}

INSTANTIATE_TEST_SUITE_P(probes, ClassifyTable, ::testing::ValuesIn(rows()),
                         [](const ::testing::TestParamInfo<Row>& i) { return i.param.description; });

// The contract of MatchKey: the key of our outgoing probe equals the key of its answer.
TEST(probes, ProbeAndAnswerKeysAreEqual) {
  for (auto af : {kV4, kV6}) {
    const bool v4 = af == kV4;
    const IpAddress us = local_addr(af), them = target_addr(af);
    for (uint16_t size : {0, 60, 333}) {
      for (uint32_t raw : {1u, 0x12345u, 0xffffffffu}) {
        SCOPED_TRACE(std::string(to_string(af)) + " payload " + std::to_string(size) + " token " +
                     std::to_string(raw));
        {
          const uint32_t token = raw & token_mask(ProbeType::kTcpSyn, af);
          const Bytes syn = crafted(ProbeType::kTcpSyn, af, 50000, token, size);
          const auto own = classify(syn, kOut);
          ASSERT_EQ(own.verdict, Verdict::kOwnProbe);
          EXPECT_EQ(own.tcp_flags, kSyn);
          const uint32_t seq = wire_token(ProbeType::kTcpSyn, af, token);
          const size_t payload = size > 20 ? size - 20 : 0;
          for (auto [flags, ack] : {std::pair<uint8_t, uint32_t>{kSyn | kAck, seq + 1},
                                    {kRst | kAck, seq + 1},
                                    {kRst | kAck, uint32_t(seq + 1 + payload)}}) {
            const auto ans = classify(tcp_packet(them, us, 443, 50000, flags, 99, ack), kIn);
            ASSERT_EQ(ans.verdict, Verdict::kAnswer);
            EXPECT_TRUE(ans.key == own.key);
            EXPECT_EQ(ans.local, own.local);
            EXPECT_TRUE(tcp_ack_matches(seq, payload, ans.proof, ans.tcp_flags));
          }
        }
        {
          const uint32_t token = raw;
          const Bytes req = crafted(ProbeType::kIcmpPing, af, 0, token, size);
          const auto own = classify(req, kOut);
          ASSERT_EQ(own.verdict, Verdict::kOwnProbe);
          const auto ans = classify(echo_packet(them, us, true, token), kIn);
          ASSERT_EQ(ans.verdict, Verdict::kAnswer);
          EXPECT_TRUE(ans.key == own.key);
          const auto err = classify(icmp_error(af, v4 ? 11 : 3, 0, req), kIn);
          ASSERT_EQ(err.verdict, Verdict::kIcmpError);
          EXPECT_TRUE(err.key == own.key);
          EXPECT_EQ(err.local, own.local);
        }
        {
          const uint32_t token = (raw & token_mask(ProbeType::kUdpUnreachable, af)) | 1;
          const Bytes udp = crafted(ProbeType::kUdpUnreachable, af, 50001, token, size);
          const auto own = classify(udp, kOut);
          ASSERT_EQ(own.verdict, Verdict::kOwnProbe);
          const auto ans = classify(icmp_error(af, v4 ? 3 : 1, v4 ? 3 : 4, udp), kIn);
          ASSERT_EQ(ans.verdict, Verdict::kAnswer);
          EXPECT_TRUE(ans.key == own.key);
          EXPECT_EQ(ans.local, own.local);
        }
      }
    }
  }
}

// The matching rule per type and family (docs/matching.md): the own probe, its answer and a quote carry the
// whole wire token; one flipped check bit (or an ack off by one) is refused, for every type and family.
TEST(probes, ProofMatchesTheWholeTokenPerTypeAndFamily) {
  for (auto af : {kV4, kV6}) {
    const bool v4 = af == kV4;
    const IpAddress us = local_addr(af), them = target_addr(af);
    for (auto type : {ProbeType::kTcpSyn, ProbeType::kIcmpPing, ProbeType::kUdpUnreachable}) {
      SCOPED_TRACE(std::string(to_string(af)) + " " + std::string(to_string(type)));
      EXPECT_GE(token_bits(type, af) + check_bits(type, af), 32) << "guessed bits";
      const Probe& probe = probe_for(type);
      const uint32_t index = 0x1234 & token_mask(type, af);
      const uint32_t wire = wire_token(type, af, index);
      const size_t payload = 40;
      const Bytes own =
          crafted(type, af, 50000, index, uint16_t(payload + (type == ProbeType::kTcpSyn ? 20 : 8)));
      const auto c = classify(own, kOut);
      ASSERT_EQ(c.verdict, Verdict::kOwnProbe);
      EXPECT_EQ(c.key.token, index);
      EXPECT_TRUE(probe.proof_matches(wire, payload, c));
      EXPECT_FALSE(probe.proof_matches(wire ^ 1, payload, c));
      const auto err = classify(icmp_error(af, v4 ? 11 : 3, 0, own), kIn);
      ASSERT_EQ(err.verdict, Verdict::kIcmpError);
      EXPECT_TRUE(probe.proof_matches(wire, payload, err));
      EXPECT_FALSE(probe.proof_matches(wire ^ 1, payload, err));
      if (probe.has_ports()) {
        EXPECT_EQ(err.remote_port, 443);
      }
      if (type != ProbeType::kTcpSyn) continue;
      struct Ack {
        uint8_t flags;
        uint32_t ack;
        bool match;
      };
      for (const Ack& a :
           {Ack{kSyn | kAck, wire + 1, true}, Ack{kSyn | kAck, wire + 2, false},
            Ack{kSyn | kAck, wire + 1 + uint32_t(payload), false}, Ack{kRst | kAck, wire + 1, true},
            Ack{kRst | kAck, wire + 1 + uint32_t(payload), true},
            Ack{kRst | kAck, wire + uint32_t(payload), false},
            // seq + 1 + P carrying out of the 14 check bits: the second candidate.
            Ack{kRst | kAck, wire + 1 + 0x3fff, false}}) {
        const auto ans = classify(tcp_packet(them, us, 443, 50000, a.flags, 7, a.ack), kIn);
        ASSERT_EQ(ans.verdict, Verdict::kAnswer);
        uint32_t candidates[2];
        const int n = probe.index_candidates(ans, candidates);
        EXPECT_TRUE(candidates[0] == index || (n == 2 && candidates[1] == index)) << a.ack;
        EXPECT_EQ(probe.proof_matches(wire, payload, ans), a.match) << a.ack;
      }
    }
  }
}

// Keyed slices stay disjoint: for every key, the workers' slice values are a permutation of the indexes.
TEST(probes, KeyedSlicesArePermutations) {
  for (int bits = 1; bits <= 4; ++bits) {
    for (uint32_t key : {0u, 1u, 0x5a5a5a5au, 0xffffffffu}) {
      std::vector<bool> seen(size_t{1} << bits);
      for (uint32_t i = 0; i < (1u << bits); ++i) {
        const KeySlice k = keyed_slice(KeySlice{bits, i}, key);
        ASSERT_EQ(k.bits, bits);
        ASSERT_LT(k.index, 1u << bits);
        EXPECT_FALSE(seen[k.index]);
        seen[k.index] = true;
      }
    }
  }
  EXPECT_EQ(keyed_slice(KeySlice{}, 0x1234), KeySlice{});
}

// Every truncation of valid packets, bit flips and random bytes: classify() must neither crash nor read out
// of bounds (run under ASan to prove the latter), and its result must be self-consistent.
TEST(probes, ClassifySurvivesTruncationMutationAndRandomBytes) {
  auto check = [](std::span<const uint8_t> b) {
    for (auto dir : {kIn, kOut}) {
      const Classification c = classify(b, dir);
      if (c.verdict == Verdict::kReject) {
        ASSERT_NE(c.reason, RejectReason::kNone);
        ASSERT_LT(c.reason, RejectReason::kCount);
      } else {
        ASSERT_EQ(c.reason, RejectReason::kNone);
        ASSERT_EQ(c.key.target.af, c.local.af);
      }
    }
  };
  std::vector<Bytes> valid;
  for (const Row& r : rows())
    if (!r.bytes.empty()) valid.push_back(r.bytes);
  std::mt19937 rng(1234);
  size_t n = 0;
  for (const Bytes& b : valid) {
    for (size_t len = 0; len <= b.size(); ++len) {
      // A copy of exactly `len` bytes, so that ASan catches a read one past the end.
      const Bytes prefix(b.begin(), b.begin() + len);
      check(prefix);
      ++n;
    }
    for (int i = 0; i < 200; ++i) {
      Bytes m = b;
      for (int flips = 1 + int(rng() % 3); flips > 0; --flips)
        m[rng() % m.size()] ^= uint8_t(1u << (rng() % 8));
      check(m);
      ++n;
    }
  }
  for (int i = 0; i < 20000; ++i) {
    Bytes b(rng() % 120);
    for (auto& x : b) x = uint8_t(rng());
    if (!b.empty()) b[0] = uint8_t((i % 3 == 0 ? 0x40 : i % 3 == 1 ? 0x60 : b[0] & 0xf0) | (b[0] & 0x0f));
    check(b);
    ++n;
  }
  EXPECT_GT(n, 20000u);
}

}  // namespace
}  // namespace netprobe
