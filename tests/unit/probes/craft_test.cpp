// Crafted probes, field by field, for every type x family, and cross-checked with libtins: parsing our
// bytes with libtins and serializing them again (which recomputes every checksum) must give them back.
#include <gtest/gtest.h>

#include <tins/icmp.h>
#include <tins/icmpv6.h>
#include <tins/ip.h>
#include <tins/ipv6.h>
#include <tins/rawpdu.h>
#include <tins/tcp.h>
#include <tins/udp.h>

#include <string>

#include "packets.h"
#include "probes/icmp_echo.h"
#include "probes/tcp_syn.h"
#include "probes/udp_unreachable.h"
#include "wire/checksum.h"
#include "wire/ip.h"
#include "wire/l4.h"

namespace netprobe {
namespace {

using testing::Bytes;
using namespace netprobe::testing;

struct CraftCase {
  ProbeType type;
  AddressFamily af;
  uint16_t ip_payload_size;
  bool dont_fragment;
  uint32_t token;
};

std::string case_name(const ::testing::TestParamInfo<CraftCase>& i) {
  const auto& c = i.param;
  return std::string(to_string(c.type)) + "_" + std::string(to_string(c.af)) + "_payload" +
         std::to_string(c.ip_payload_size) + (c.dont_fragment ? "_df" : "_nodf");
}

class CraftTest : public ::testing::TestWithParam<CraftCase> {};

size_t l4_header_size(ProbeType t) { return t == ProbeType::kTcpSyn ? 20 : 8; }

TEST_P(CraftTest, FieldsChecksumsAndLibtinsCrossCheck) {
  const CraftCase c = GetParam();
  const bool v4 = c.af == AddressFamily::kV4;
  ProbeParams p = params_for(c.type, c.af, c.ip_payload_size);
  p.dont_fragment = c.dont_fragment;
  const Probe& probe = probe_for(c.type);
  ASSERT_EQ(probe.type(), c.type);
  const PacketTemplate t = probe.make_template(p);

  const IpAddress src = addr(v4 ? "10.0.0.77" : "fd00::77");  // per-packet source (source subnets)
  const uint16_t sport = 40123;
  Bytes out(2048, 0xcc);
  const size_t n = probe.craft(t, PacketFields{src, sport, c.token}, out);
  const size_t l4h = l4_header_size(c.type);
  size_t data = c.ip_payload_size > l4h ? c.ip_payload_size - l4h : 0;
  // UDP carries its token in the payload: at least 2 (IPv4) / 4 (IPv6) bytes.
  if (c.type == ProbeType::kUdpUnreachable) data = std::max<size_t>(data, v4 ? 2 : 4);
  const size_t iph = v4 ? 20 : 40;
  ASSERT_EQ(n, iph + l4h + data);
  ASSERT_EQ(t.l4_offset, iph);
  ASSERT_EQ(t.l4_payload_size, data);
  out.resize(n);

  // --- network layer, through our own views
  std::span<const uint8_t> l4;
  if (v4) {
    const auto ip = wire::Ipv4View::parse(out);
    ASSERT_TRUE(ip);
    EXPECT_EQ(ip->header_length(), 20u);
    EXPECT_EQ(ip->total_length(), n);
    EXPECT_EQ(ip->tos(), 8 << 2);
    EXPECT_EQ(ip->ttl(), 64);
    EXPECT_EQ(ip->dont_fragment(), c.dont_fragment);
    EXPECT_FALSE(ip->more_fragments());
    EXPECT_EQ(ip->fragment_offset(), 0);
    EXPECT_NE(ip->id(), 0) << "the kernel replaces an IP-ID of 0";
    if (c.type == ProbeType::kUdpUnreachable) {
      EXPECT_EQ(ip->id(), c.token >> 16) << "the index part";
      EXPECT_EQ(wire::load_be16(ip->payload().data() + 6), c.token & 0xffff)
          << "the check part: the checksum";
    }
    EXPECT_EQ(ip->src(), src);
    EXPECT_EQ(ip->dst(), p.dst);
    EXPECT_EQ(wire::internet_checksum(ip->header()), 0) << "IPv4 header checksum";
    l4 = ip->payload();
  } else {
    const auto ip = wire::Ipv6View::parse(out);
    ASSERT_TRUE(ip);
    EXPECT_EQ(ip->payload_length(), n - 40);
    EXPECT_EQ(ip->traffic_class(), 8 << 2);
    EXPECT_EQ(ip->hop_limit(), 64);
    EXPECT_EQ(ip->flow_label(), 0u) << "constant per flow: ECMP hashes read it";
    if (c.type == ProbeType::kUdpUnreachable) {
      EXPECT_EQ(wire::load_be32(ip->payload().data() + 8), c.token);
    }
    EXPECT_EQ(ip->src(), src);
    EXPECT_EQ(ip->dst(), p.dst);
    l4 = ip->payload();
  }

  // --- transport layer
  const uint8_t* s = src.bytes.data();
  const uint8_t* d = p.dst.bytes.data();
  switch (c.type) {
    case ProbeType::kTcpSyn: {
      ASSERT_EQ(out[v4 ? 9 : 6], wire::kProtoTcp);
      const auto tcp = wire::TcpView::parse(l4);
      ASSERT_TRUE(tcp);
      EXPECT_EQ(tcp->src_port(), sport);
      EXPECT_EQ(tcp->dst_port(), 443);
      EXPECT_EQ(tcp->seq(), c.token);
      EXPECT_EQ(tcp->ack(), 0u);
      EXPECT_EQ(tcp->flags(), wire::TcpView::kSyn);
      EXPECT_EQ(tcp->window(), 8192);
      EXPECT_EQ(tcp->header_length(), 20u);
      EXPECT_EQ(tcp->payload().size(), data);
      EXPECT_EQ(wire::l4_checksum(c.af, s, d, wire::kProtoTcp, l4), 0) << "TCP checksum";
      break;
    }
    case ProbeType::kIcmpPing: {
      ASSERT_EQ(out[v4 ? 9 : 6], v4 ? wire::kProtoIcmp : wire::kProtoIcmpv6);
      const auto icmp = wire::IcmpView::parse(l4);
      ASSERT_TRUE(icmp);
      EXPECT_EQ(icmp->type(), v4 ? 8 : 128);
      EXPECT_EQ(icmp->code(), 0);
      EXPECT_EQ(icmp->echo_id(), c.token >> 16);
      EXPECT_EQ(icmp->echo_seq(), c.token & 0xffff);
      EXPECT_EQ(icmp->body().size(), data);
      if (v4)
        EXPECT_EQ(wire::internet_checksum(l4), 0) << "ICMP checksum";
      else
        EXPECT_EQ(wire::l4_checksum(c.af, s, d, wire::kProtoIcmpv6, l4), 0) << "ICMPv6 checksum";
      break;
    }
    case ProbeType::kUdpUnreachable: {
      ASSERT_EQ(out[v4 ? 9 : 6], wire::kProtoUdp);
      const auto udp = wire::UdpView::parse(l4);
      ASSERT_TRUE(udp);
      EXPECT_EQ(udp->src_port(), sport);
      EXPECT_EQ(udp->dst_port(), 443);
      EXPECT_EQ(udp->length(), 8 + data);
      EXPECT_NE(udp->checksum(), 0) << "0 means no checksum";
      EXPECT_EQ(wire::l4_checksum(c.af, s, d, wire::kProtoUdp, l4), 0) << "UDP checksum";
      break;
    }
    case ProbeType::kUdpQuery:  // its token sits in the payload: tests/unit/probes/udp_query_test.cpp
      FAIL() << "no UDPquery row in this table";
  }

  // --- libtins cross-check: an independent parser sees the same fields, and its serializer (which
  // recomputes lengths and checksums) reproduces our bytes exactly.
  if (v4) {
    Tins::IP ip(out.data(), uint32_t(out.size()));
    EXPECT_EQ(ip.src_addr().to_string(), src.to_string());
    EXPECT_EQ(ip.dst_addr().to_string(), p.dst.to_string());
    EXPECT_EQ(ip.tos(), 32);
    EXPECT_EQ(ip.ttl(), 64);
    EXPECT_EQ(ip.flags(), c.dont_fragment ? Tins::IP::DONT_FRAGMENT : Tins::IP::Flags(0));
    if (c.type == ProbeType::kTcpSyn) {
      const auto& tcp = ip.rfind_pdu<Tins::TCP>();
      EXPECT_EQ(tcp.sport(), sport);
      EXPECT_EQ(tcp.dport(), 443);
      EXPECT_EQ(tcp.seq(), c.token);
      EXPECT_EQ(tcp.flags(), Tins::TCP::SYN);
      EXPECT_EQ(tcp.window(), 8192);
      EXPECT_TRUE(tcp.options().empty());
    } else if (c.type == ProbeType::kIcmpPing) {
      const auto& icmp = ip.rfind_pdu<Tins::ICMP>();
      EXPECT_EQ(icmp.type(), Tins::ICMP::ECHO_REQUEST);
      EXPECT_EQ(icmp.id(), c.token >> 16);
      EXPECT_EQ(icmp.sequence(), c.token & 0xffff);
    } else {
      const auto& udp = ip.rfind_pdu<Tins::UDP>();
      EXPECT_EQ(udp.sport(), sport);
      EXPECT_EQ(udp.dport(), 443);
      EXPECT_EQ(ip.id(), c.token >> 16);
    }
    EXPECT_EQ(ip.serialize(), out) << "libtins recomputes different checksums or lengths";
  } else {
    Tins::IPv6 ip(out.data(), uint32_t(out.size()));
    EXPECT_EQ(ip.src_addr().to_string(), src.to_string());
    EXPECT_EQ(ip.dst_addr().to_string(), p.dst.to_string());
    EXPECT_EQ(ip.traffic_class(), 32);
    EXPECT_EQ(ip.hop_limit(), 64);
    if (c.type == ProbeType::kTcpSyn) {
      const auto& tcp = ip.rfind_pdu<Tins::TCP>();
      EXPECT_EQ(tcp.sport(), sport);
      EXPECT_EQ(tcp.seq(), c.token);
      EXPECT_EQ(tcp.flags(), Tins::TCP::SYN);
    } else if (c.type == ProbeType::kIcmpPing) {
      const auto& icmp = ip.rfind_pdu<Tins::ICMPv6>();
      EXPECT_EQ(icmp.type(), Tins::ICMPv6::ECHO_REQUEST);
      EXPECT_EQ(icmp.identifier(), c.token >> 16);
      EXPECT_EQ(icmp.sequence(), c.token & 0xffff);
    } else {
      const auto& udp = ip.rfind_pdu<Tins::UDP>();
      EXPECT_EQ(udp.sport(), sport);
      EXPECT_EQ(uint32_t(ip.flow_label()), 0u);
    }
    EXPECT_EQ(ip.serialize(), out) << "libtins recomputes different checksums or lengths";
  }
}

// Payload sizes: none, below the bare header, exact header, even and odd data (the odd tail byte is the
// trickiest checksum case), and a big one.
std::vector<CraftCase> craft_cases() {
  std::vector<CraftCase> cases;
  for (auto type : {ProbeType::kTcpSyn, ProbeType::kIcmpPing, ProbeType::kUdpUnreachable})
    for (auto af : {AddressFamily::kV4, AddressFamily::kV6})
      for (uint16_t size : {0, 4, 20, 64, 101, 1400})
        for (bool df : {true, false}) {
          if (!df && af == AddressFamily::kV6) continue;
          const uint32_t token = type == ProbeType::kTcpSyn     ? 0x2abcd
                                 : type == ProbeType::kIcmpPing ? 0xdeadbeef
                                                                : 0xbeef1;
          cases.push_back({type, af, size, df, wire_token(type, af, token & token_mask(type, af))});
        }
  return cases;
}

INSTANTIATE_TEST_SUITE_P(probes, CraftTest, ::testing::ValuesIn(craft_cases()), case_name);

TEST(probes, CraftKeepsTemplateSourceWhenFieldsHaveNone) {
  for (auto af : {AddressFamily::kV4, AddressFamily::kV6}) {
    const Probe& probe = probe_for(ProbeType::kTcpSyn);
    const auto t = probe.make_template(params_for(ProbeType::kTcpSyn, af));
    Bytes out(128);
    PacketFields f;
    f.src_port = 1;
    f.token = 1;
    const size_t n = probe.craft(t, f, out);
    ASSERT_GT(n, 0u);
    out.resize(n);
    const IpAddress src =
        af == AddressFamily::kV4 ? wire::Ipv4View::parse(out)->src() : wire::Ipv6View::parse(out)->src();
    EXPECT_EQ(src, local_addr(af));
  }
}

TEST(probes, CraftRefusesSmallBufferAndWrongFamily) {
  for (auto type : {ProbeType::kTcpSyn, ProbeType::kIcmpPing, ProbeType::kUdpUnreachable}) {
    const Probe& probe = probe_for(type);
    const auto t = probe.make_template(params_for(type, AddressFamily::kV4, 100));
    Bytes out(t.bytes.size() - 1);
    EXPECT_EQ(probe.craft(t, {local_addr(AddressFamily::kV4), 1, 1}, out), 0u);
    out.resize(t.bytes.size());
    EXPECT_EQ(probe.craft(t, {local_addr(AddressFamily::kV6), 1, 1}, out), 0u);
    EXPECT_EQ(probe.craft(t, {local_addr(AddressFamily::kV4), 1, 1}, out), t.bytes.size());
    EXPECT_EQ(probe.craft(PacketTemplate{}, {}, out), 0u) << "an empty template crafts nothing";
  }
}

TEST(probes, TemplateRejectsMixedFamilies) {
  auto p = params_for(ProbeType::kTcpSyn, AddressFamily::kV4);
  p.dst = target_addr(AddressFamily::kV6);
  EXPECT_THROW(probe_for(ProbeType::kTcpSyn).make_template(p), std::invalid_argument);
  p = params_for(ProbeType::kUdpUnreachable, AddressFamily::kV6);
  p.src = local_addr(AddressFamily::kV4);
  EXPECT_THROW(probe_for(ProbeType::kUdpUnreachable).make_template(p), std::invalid_argument);
}

TEST(probes, IpIdIsNeverZero) {
  // TCP and ICMP derive the IP-ID from the token; a token whose halves cancel must still give nonzero.
  for (auto type : {ProbeType::kTcpSyn, ProbeType::kIcmpPing}) {
    for (uint32_t token : {0x00010001u, 0x00000000u, 0xffffffffu, 0x12341234u}) {
      const Bytes b = crafted(type, AddressFamily::kV4, 1000, token & token_mask(type, AddressFamily::kV4));
      EXPECT_NE(wire::Ipv4View::parse(b)->id(), 0) << to_string(type) << " token " << token;
    }
  }
}

TEST(probes, RegistryAndTokenBits) {
  EXPECT_EQ(probe_for(ProbeType::kTcpSyn).type(), ProbeType::kTcpSyn);
  EXPECT_EQ(probe_for(ProbeType::kIcmpPing).type(), ProbeType::kIcmpPing);
  EXPECT_EQ(probe_for(ProbeType::kUdpUnreachable).type(), ProbeType::kUdpUnreachable);
  EXPECT_EQ(token_bits(ProbeType::kTcpSyn, AddressFamily::kV4), 18);
  EXPECT_EQ(token_bits(ProbeType::kTcpSyn, AddressFamily::kV6), 18);
  EXPECT_EQ(token_bits(ProbeType::kIcmpPing, AddressFamily::kV4), 32);
  EXPECT_EQ(token_bits(ProbeType::kUdpUnreachable, AddressFamily::kV4), 16);
  EXPECT_EQ(token_bits(ProbeType::kUdpUnreachable, AddressFamily::kV6), 20);
  EXPECT_EQ(token_mask(ProbeType::kTcpSyn, AddressFamily::kV4), 0x3ffffu);
  EXPECT_EQ(token_mask(ProbeType::kIcmpPing, AddressFamily::kV6), 0xffffffffu);
  EXPECT_EQ(token_mask(ProbeType::kUdpUnreachable, AddressFamily::kV6), 0xfffffu);
  for (int r = 0; r < int(RejectReason::kCount); ++r) EXPECT_NE(to_string(RejectReason(r)), "?");
  // The configuration's key-space check reads core/token_space.h: every module must agree with it.
  for (ProbeType t : {ProbeType::kTcpSyn, ProbeType::kIcmpPing, ProbeType::kUdpUnreachable})
    for (AddressFamily af : {AddressFamily::kV4, AddressFamily::kV6})
      EXPECT_EQ(token_bits(t, af), token_index_bits(t, af)) << to_string(t) << " v" << int(af);
}

TEST(probes, TcpAckMatches) {
  constexpr uint8_t kSynAck = 0x12, kRstAck = 0x14, kRst = 0x04, kAck = 0x10;
  const uint32_t seq = 0x1234u << kTcpSeqShift;
  struct Row {
    const char* description;
    uint32_t seq;
    size_t payload;
    uint32_t ack;
    uint8_t flags;
    bool match;
  } rows[] = {
      {"SYN-ACK acks seq+1", seq, 0, seq + 1, kSynAck, true},
      {"SYN-ACK with payload still acks seq+1", seq, 30, seq + 1, kSynAck, true},
      {"SYN-ACK acking seq+1+payload is wrong", seq, 30, seq + 31, kSynAck, false},
      {"SYN-ACK acking seq is wrong", seq, 0, seq, kSynAck, false},
      {"SYN-ACK acking seq+2 is wrong", seq, 0, seq + 2, kSynAck, false},
      {"RST-ACK acks seq+1", seq, 30, seq + 1, kRstAck, true},
      {"RST-ACK acks seq+1+payload", seq, 30, seq + 31, kRstAck, true},
      {"RST-ACK acking seq+2 is wrong", seq, 30, seq + 2, kRstAck, false},
      {"plain RST has no ack", seq, 0, seq + 1, kRst, false},
      {"pure ACK is not an answer", seq, 0, seq + 1, kAck, false},
      {"wraps at 2^32", 0xffffffffu, 0, 0, kSynAck, true},
  };
  for (const auto& r : rows)
    EXPECT_EQ(tcp_ack_matches(r.seq, r.payload, r.ack, r.flags), r.match) << r.description;
}

// Paris traceroute's ICMP echo (`netprobe trace -1`): whatever the token, the checksum is the flow's id
// (PacketFields::src_port), the message still checksums right, and id/seq still carry the token.
TEST(probes, ParisIcmpChecksumIsTheFlowsIdWhateverTheToken) {
  for (const AddressFamily af : {AddressFamily::kV4, AddressFamily::kV6}) {
    const bool v4 = af == AddressFamily::kV4;
    ProbeParams params;
    params.af = af;
    params.src = *IpAddress::parse(v4 ? "192.0.2.1" : "2001:db8::1");
    params.dst = *IpAddress::parse(v4 ? "198.51.100.1" : "2001:db8::2");
    params.ip_payload_size = 8;  // bare header: no room for the word
    const IcmpEchoProbe probe;
    PacketTemplate bare = probe.make_template(params);
    EXPECT_FALSE(make_paris_checksum(bare));
    params.ip_payload_size = 12;
    PacketTemplate t = probe.make_template(params);
    ASSERT_TRUE(make_paris_checksum(t));
    for (const uint16_t flow : {uint16_t(0x1234), uint16_t(0xffff), uint16_t(0)})
      for (const uint32_t token : {0x00000001u, 0xdeadbeefu, 0x7fff8000u}) {
        std::vector<uint8_t> out(256);
        const size_t n = probe.craft(t, PacketFields{params.src, flow, token}, out);
        ASSERT_GT(n, 0u);
        const uint8_t* icmp = out.data() + t.l4_offset;
        EXPECT_EQ(wire::load_be16(icmp + 2), flow);
        EXPECT_EQ(uint32_t(wire::load_be16(icmp + 4)) << 16 | wire::load_be16(icmp + 6), token);
        wire::Checksum sum;
        if (!v4)
          wire::add_pseudo_header(sum, af, out.data() + 8, out.data() + 24, 58, uint32_t(n - t.l4_offset));
        sum.add({icmp, n - t.l4_offset});
        EXPECT_EQ(sum.finish(), 0) << int(v4) << " " << flow << " " << token;
      }
  }
}

}  // namespace
}  // namespace netprobe
