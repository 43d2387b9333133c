// capture_filter() compiled by libpcap for every link type a worker may capture on, and run with
// pcap_offline_filter over crafted packets: it must pass our probes, their answers and ICMP errors quoting
// them (IPv4 and IPv6), and drop what can be told apart in the kernel. With a key slice it must pass only
// the packets carrying tokens of its own slice (apply_slice()), for every type, family and shape.
#include <gtest/gtest.h>
#include <pcap/pcap.h>

#include <array>
#include <cstdio>
#include <iostream>
#include <span>
#include <stdexcept>
#include <string>

#include "packets.h"

namespace netprobe {

// Test names and failure messages print slices readably (found by ADL, so outside the unnamed namespace).
void PrintTo(const KeySlice& s, std::ostream* os) { *os << "KeySlice{" << s.bits << ", " << s.index << "}"; }

namespace {

using namespace netprobe::testing;
using testing::Bytes;

constexpr auto kV4 = AddressFamily::kV4;
constexpr auto kV6 = AddressFamily::kV6;
constexpr uint8_t kSyn = 0x02, kRst = 0x04, kPsh = 0x08, kAck = 0x10;
constexpr uint32_t kSeq = 0x1234u << kTcpSeqShift;

// A compiled filter on a dead handle of one link type.
class CompiledFilter {
 public:
  CompiledFilter(int dlt, const std::string& expr) : pcap_(pcap_open_dead(dlt, 65535)) {
    ok_ = pcap_ && pcap_compile(pcap_, &prog_, expr.c_str(), 1, PCAP_NETMASK_UNKNOWN) == 0;
    if (!ok_ && pcap_) error_ = pcap_geterr(pcap_);
  }
  ~CompiledFilter() {
    if (ok_) pcap_freecode(&prog_);
    if (pcap_) pcap_close(pcap_);
  }
  CompiledFilter(const CompiledFilter&) = delete;
  CompiledFilter& operator=(const CompiledFilter&) = delete;
  bool ok() const { return ok_; }
  const std::string& error() const { return error_; }
  unsigned instructions() const { return ok_ ? prog_.bf_len : 0; }

  // Runs the filter on an IP packet framed for this link type.
  bool passes(int dlt, const Bytes& ip) const {
    Bytes frame;
    const bool v4 = !ip.empty() && (ip[0] >> 4) == 4;
    const uint16_t ethertype = ip.empty() || v4 ? 0x0800 : 0x86dd;
    if (dlt == DLT_EN10MB) {
      frame = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, uint8_t(ethertype >> 8), uint8_t(ethertype)};
    } else if (dlt == DLT_LINUX_SLL) {
      // packet type 0 (to us), ARPHRD_ETHER, address length 6, address, protocol
      frame = {0, 0, 0, 1, 0, 6, 0, 1, 2, 3, 4, 5, 0, 0, uint8_t(ethertype >> 8), uint8_t(ethertype)};
    }
    frame.insert(frame.end(), ip.begin(), ip.end());
    return run(frame);
  }

  bool run(const Bytes& frame) const {
    pcap_pkthdr hdr{};
    hdr.caplen = hdr.len = uint32_t(frame.size());
    return pcap_offline_filter(&prog_, &hdr, frame.data()) != 0;
  }

 private:
  pcap_t* pcap_;
  bpf_program prog_{};
  bool ok_ = false;
  std::string error_;
};

constexpr std::array kLinkTypes = {DLT_LINUX_SLL, DLT_EN10MB, DLT_RAW};
// The types whose every packet the kernel filter can slice (UDPquery's answers cannot be: its own test
// below).
constexpr std::array kAllTypes = {ProbeType::kTcpSyn, ProbeType::kIcmpPing, ProbeType::kUdpUnreachable};
constexpr size_t kSlicedTypes = kAllTypes.size();

struct FilterRow {
  std::string description;
  Bytes ip;
  bool tcp, icmp, udp;  // expected to pass the filter of that type alone
};

std::vector<FilterRow> filter_rows() {
  std::vector<FilterRow> r;
  for (auto af : {kV4, kV6}) {
    const bool v4 = af == kV4;
    const std::string f = v4 ? "v4 " : "v6 ";
    const IpAddress us = local_addr(af), them = target_addr(af), router = router_addr(af);
    const Bytes syn = crafted(ProbeType::kTcpSyn, af, 40000, 0x1234, 60);
    const Bytes echo = crafted(ProbeType::kIcmpPing, af, 0, 0x10002, 60);
    const Bytes udp = crafted(ProbeType::kUdpUnreachable, af, 40000, 77, 60);
    const uint8_t unreach = v4 ? 3 : 1, port_unreach = v4 ? 3 : 4, exceeded = v4 ? 11 : 3;
    // Passing rows.
    r.push_back({f + "own SYN", syn, true, false, false});
    r.push_back(
        {f + "SYN-ACK", tcp_packet(them, us, 443, 40000, kSyn | kAck, 5, kSeq + 1), true, false, false});
    r.push_back(
        {f + "RST-ACK", tcp_packet(them, us, 443, 40000, kRst | kAck, 0, kSeq + 1), true, false, false});
    r.push_back({f + "RST-ACK acking payload", tcp_packet(them, us, 443, 40000, kRst | kAck, 0, kSeq + 41),
                 true, false, false});
    r.push_back({f + "own echo request", echo, false, true, false});
    r.push_back({f + "echo reply", echo_packet(them, us, true, 0x10002), false, true, false});
    r.push_back({f + "own UDP", udp, false, false, true});
    r.push_back({f + "UDP port unreachable", icmp_error(af, unreach, port_unreach, udp), false, false, true});
    // IPv6: the token word follows the 8 UDP bytes, so the shortest useful quote is 12 bytes.
    r.push_back({f + "UDP port unreachable, shortest quote",
                 icmp_error(af, unreach, port_unreach, udp, v4 ? 28 : 52), false, false, true});
    r.push_back({f + "UDP time exceeded", icmp_error(af, exceeded, 0, udp), false, false, true});
    r.push_back({f + "SYN time exceeded", icmp_error(af, exceeded, 0, syn), true, false, false});
    r.push_back({f + "SYN unreachable", icmp_error(af, unreach, 1, syn), true, false, false});
    r.push_back({f + "echo unreachable", icmp_error(af, unreach, 0, echo), false, true, false});
    r.push_back({f + "parameter problem on UDP", icmp_error(af, v4 ? 12 : 4, 0, udp), false, false, true});
    if (!v4) r.push_back({f + "packet too big on SYN", icmp_error(af, 2, 0, syn), true, false, false});
    // UDP cannot be told apart from our probes in the kernel: it passes with UDPunreachable only.
    r.push_back({f + "incoming UDP", udp_packet(them, us, 53, 40000), false, false, true});
    // Rejected rows.
    r.push_back({f + "PSH-ACK data", tcp_packet(them, us, 443, 40000, kPsh | kAck, 5, kSeq + 1, 100), false,
                 false, false});
    // A half-open connection's ACK of an earlier SYN (docs/architecture.md#two-way-loss).
    r.push_back({f + "pure ACK", tcp_packet(them, us, 443, 40000, kAck, 5, kSeq + 1), true, false, false});
    // With the whole sequence number as the token, nothing in a pure ACK tells the kernel filter apart
    // from ours: it passes, and the engine rejects it (its ack decodes to no probe of ours).
    r.push_back({f + "pure ACK of a normal connect", tcp_packet(them, us, 443, 40000, kAck, 5, 0x12345678),
                 true, false, false});
    r.push_back(
        {f + "FIN-ACK", tcp_packet(them, us, 443, 40000, kAck | 0x01, 5, kSeq + 1), false, false, false});
    r.push_back({f + "plain RST", tcp_packet(them, us, 443, 40000, kRst, kSeq + 1, 0), false, false, false});
    // The low seq bits are keyed check bits now: the kernel cannot tell a normal connect's SYN or SYN-ACK
    // from ours; the whole-token check in user space does.
    r.push_back({f + "SYN-ACK to a normal connect",
                 tcp_packet(them, us, 443, 40000, kSyn | kAck, 5, 0x12345678), true, false, false});
    r.push_back({f + "SYN of a normal connect", tcp_packet(us, them, 40000, 443, kSyn, 0x12345678, 0), true,
                 false, false});
    r.push_back({f + "redirect / neighbour solicitation",
                 icmp_packet(router, us, v4 ? 5 : 135, 0, 0, 0, Bytes(24, 0)), false, false, false});
    r.push_back({f + "router advertisement", icmp_packet(router, us, v4 ? 9 : 134, 0, 0, 0, Bytes(16, 0)),
                 false, false, false});
    r.push_back({f + "unreachable quoting GRE",
                 icmp_error(af, unreach, 1,
                            [&] {
                              Bytes b = udp;
                              b[v4 ? 9 : 6] = 47;
                              return b;
                            }()),
                 false, false, false});
    r.push_back({f + "GRE",
                 [&] {
                   Bytes b = udp;
                   b[v4 ? 9 : 6] = 47;
                   return b;
                 }(),
                 false, false, false});
  }
  return r;
}

TEST(probes, CaptureFilterCompilesForEveryLinkTypeAndTypeSet) {
  const std::vector<std::vector<ProbeType>> sets = {{},
                                                    {ProbeType::kTcpSyn},
                                                    {ProbeType::kIcmpPing},
                                                    {ProbeType::kUdpUnreachable},
                                                    {ProbeType::kTcpSyn, ProbeType::kIcmpPing},
                                                    {kAllTypes.begin(), kAllTypes.end()},
                                                    {ProbeType::kTcpSyn, ProbeType::kTcpSyn}};
  for (const auto& set : sets) {
    const std::string expr = capture_filter(set);
    for (int dlt : kLinkTypes) {
      CompiledFilter filter(dlt, expr);
      EXPECT_TRUE(filter.ok()) << pcap_datalink_val_to_name(dlt) << ": " << filter.error() << "\n" << expr;
    }
  }
  EXPECT_NE(capture_filter({}), "") << "an empty filter would pass everything";
}

TEST(probes, CaptureFilterPassesProbesAnswersAndErrorsOnly) {
  const auto rows = filter_rows();
  for (int dlt : kLinkTypes) {
    SCOPED_TRACE(pcap_datalink_val_to_name(dlt));
    const ProbeType tcp[] = {ProbeType::kTcpSyn};
    const ProbeType icmp[] = {ProbeType::kIcmpPing};
    const ProbeType udp[] = {ProbeType::kUdpUnreachable};
    CompiledFilter f_tcp(dlt, capture_filter(tcp)), f_icmp(dlt, capture_filter(icmp)),
        f_udp(dlt, capture_filter(udp)), f_all(dlt, capture_filter(kAllTypes)),
        f_none(dlt, capture_filter({}));
    ASSERT_TRUE(f_tcp.ok() && f_icmp.ok() && f_udp.ok() && f_all.ok() && f_none.ok());
    for (const auto& row : rows) {
      SCOPED_TRACE(row.description);
      EXPECT_EQ(f_tcp.passes(dlt, row.ip), row.tcp) << "TCPsyn filter";
      EXPECT_EQ(f_icmp.passes(dlt, row.ip), row.icmp) << "ICMPping filter";
      EXPECT_EQ(f_udp.passes(dlt, row.ip), row.udp) << "UDPunreachable filter";
      EXPECT_EQ(f_all.passes(dlt, row.ip), row.tcp || row.icmp || row.udp) << "all-types filter";
      EXPECT_FALSE(f_none.passes(dlt, row.ip)) << "empty type set";
    }
  }
}

TEST(probes, CaptureFilterDropsNonIpFrames) {
  CompiledFilter f(DLT_EN10MB, capture_filter(kAllTypes));
  ASSERT_TRUE(f.ok());
  Bytes arp = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 1, 2, 3, 4, 5, 0x08, 0x06};
  arp.resize(14 + 28, 0);
  EXPECT_FALSE(f.run(arp));
}

TEST(probes, CaptureFilterAgreesWithClassifyOnAcceptedPackets) {
  // Everything classify() accepts among the rows must pass the all-types filter (one direction or the other).
  CompiledFilter f(DLT_RAW, capture_filter(kAllTypes));
  ASSERT_TRUE(f.ok());
  for (const auto& row : filter_rows()) {
    const auto in = classify(row.ip, Direction::kIncoming), out = classify(row.ip, Direction::kOutgoing);
    const bool useful = (in.verdict != Verdict::kReject) || (out.verdict != Verdict::kReject);
    if (useful && row.description.find("normal connect") == std::string::npos) {
      EXPECT_TRUE(f.passes(DLT_RAW, row.ip)) << row.description;
    }
  }
}

// ---- Key slices -------------------------------------------------------------------------------------

constexpr std::array kFilterSlices = {KeySlice{2, 0}, KeySlice{2, 1}, KeySlice{2, 2}, KeySlice{2, 3},
                                      KeySlice{3, 5}};

std::string slice_name(const KeySlice& s) {
  return "bits" + std::to_string(s.bits) + "_index" + std::to_string(s.index);
}

std::string hex(uint32_t v) {
  char b[16];
  std::snprintf(b, sizeof b, "%#x", v);
  return b;
}

// One packet carrying `token` (whose slice bits are `index`) for `type`: our probe, an answer or an ICMP
// error quoting the probe. `dir` is the direction classify() must be given.
struct SliceRow {
  std::string description;
  ProbeType type;
  AddressFamily af;
  Direction dir;
  uint32_t token;
  uint32_t index;
  Bytes ip;
  // RST-ACKs are selected by the slice of ack-1 or of ack-1-2^14 (a carry out of the check bits): the
  // second slice, which may differ from `index` when the carry reached the slice bits.
  uint32_t other_index = 0xffffffffu;
};

// Random-looking token bits below the slice, and both extremes (the slice's first nonzero and last token).
constexpr std::array<uint32_t, 4> kBaseTokens = {0x00000001u, 0xffffffffu, 0x5a5a5a5au, 0x89abcdefu};

// Every shape of every type and family, for every base token and every slice index of `bits`.
std::vector<SliceRow> slice_rows(int bits) {
  constexpr uint16_t kSport = 40000;
  constexpr uint32_t kMaxPayload =
      (uint32_t{1} << kTcpSeqShift) - 1;  // the largest P tcp_ack_matches() recovers
  std::vector<SliceRow> r;
  for (uint32_t index = 0; index < (uint32_t{1} << bits); ++index) {
    const KeySlice slice{bits, index};
    for (auto af : {kV4, kV6}) {
      const bool v4 = af == kV4;
      const IpAddress us = local_addr(af), them = target_addr(af);
      const uint8_t unreach = v4 ? 3 : 1, port_unreach = v4 ? 3 : 4, exceeded = v4 ? 11 : 3;
      const size_t short_quote = v4 ? 28 : 48;  // IP header + the 8 transport bytes RFC 792 guarantees
      for (uint32_t base : kBaseTokens) {
        auto token_of = [&](ProbeType t) {
          return apply_slice(base & token_mask(t, af), token_bits(t, af), slice);
        };
        auto add = [&](ProbeType t, std::string shape, Direction dir, Bytes ip, uint32_t rst_ack = 0) {
          const uint32_t token = token_of(t);
          SliceRow row{std::string(v4 ? "v4 " : "v6 ") + std::string(to_string(t)) + " " + shape +
                           ", token " + hex(token) + " (" + slice_name(slice) + ")",
                       t,
                       af,
                       dir,
                       token,
                       index,
                       std::move(ip)};
          if (rst_ack) {
            row.index = (rst_ack - 1) >> (32 - bits);
            row.other_index = (rst_ack - 1 - (uint32_t{1} << kTcpSeqShift)) >> (32 - bits);
          }
          r.push_back(std::move(row));
        };
        const auto kIn = Direction::kIncoming, kOut = Direction::kOutgoing;

        const uint32_t tcp_token = token_of(ProbeType::kTcpSyn);
        const uint32_t seq = wire_token(ProbeType::kTcpSyn, af, tcp_token);
        const Bytes syn = crafted(ProbeType::kTcpSyn, af, kSport, tcp_token);
        add(ProbeType::kTcpSyn, "own SYN", kOut, syn);
        add(ProbeType::kTcpSyn, "own SYN with 40 bytes of payload", kOut,
            crafted(ProbeType::kTcpSyn, af, kSport, tcp_token, 60));
        add(ProbeType::kTcpSyn, "SYN-ACK", kIn, tcp_packet(them, us, 443, kSport, kSyn | kAck, 5, seq + 1));
        add(ProbeType::kTcpSyn, "RST-ACK", kIn, tcp_packet(them, us, 443, kSport, kRst | kAck, 0, seq + 1),
            seq + 1);
        add(ProbeType::kTcpSyn, "RST-ACK to a SYN with 40 bytes of payload", kIn,
            tcp_packet(them, us, 443, kSport, kRst | kAck, 0, seq + 1 + 40), seq + 1 + 40);
        // ack = seq + 2^14: for the last token of the last slice this wraps to 0, and ack-1 to 0xffffffff.
        add(ProbeType::kTcpSyn, "RST-ACK to a SYN with 2^14-1 bytes of payload", kIn,
            tcp_packet(them, us, 443, kSport, kRst | kAck, 0, seq + 1 + kMaxPayload), seq + 1 + kMaxPayload);
        add(ProbeType::kTcpSyn, "time exceeded quoting the SYN", kIn, icmp_error(af, exceeded, 0, syn));
        add(ProbeType::kTcpSyn, "unreachable quoting the SYN", kIn, icmp_error(af, unreach, 1, syn));
        add(ProbeType::kTcpSyn, "unreachable quoting 8 bytes of the SYN", kIn,
            icmp_error(af, unreach, 1, syn, short_quote));
        if (!v4) add(ProbeType::kTcpSyn, "packet too big quoting the SYN", kIn, icmp_error(af, 2, 0, syn));

        const uint32_t echo_token = token_of(ProbeType::kIcmpPing);
        const Bytes echo = crafted(ProbeType::kIcmpPing, af, 0, echo_token, 60);
        add(ProbeType::kIcmpPing, "own echo request", kOut, echo);
        add(ProbeType::kIcmpPing, "echo reply", kIn, echo_packet(them, us, true, echo_token));
        add(ProbeType::kIcmpPing, "unreachable quoting the echo request", kIn,
            icmp_error(af, unreach, 0, echo));
        add(ProbeType::kIcmpPing, "time exceeded quoting 8 bytes of the echo request", kIn,
            icmp_error(af, exceeded, 0, echo, short_quote));

        const Bytes udp =
            crafted(ProbeType::kUdpUnreachable, af, kSport, token_of(ProbeType::kUdpUnreachable), 60);
        add(ProbeType::kUdpUnreachable, "own probe", kOut, udp);
        add(ProbeType::kUdpUnreachable, "port unreachable", kIn, icmp_error(af, unreach, port_unreach, udp));
        // IPv6: the token word follows the 8 UDP bytes (ICMPv6 errors quote as much as fits).
        add(ProbeType::kUdpUnreachable,
            v4 ? "port unreachable quoting 8 bytes" : "port unreachable quoting 12 bytes", kIn,
            icmp_error(af, unreach, port_unreach, udp, v4 ? short_quote : short_quote + 4));
        add(ProbeType::kUdpUnreachable, "time exceeded", kIn, icmp_error(af, exceeded, 0, udp));
        add(ProbeType::kUdpUnreachable, "parameter problem", kIn, icmp_error(af, v4 ? 12 : 4, 0, udp));
      }
    }
  }
  return r;
}

// The table is what it claims: classify() accepts every row with the row's type and token, and the
// tokens carry the slice index in their top bits.
TEST(probes, CaptureFilterSliceRowsCarryTheirTokens) {
  for (int bits : {2, 3}) {
    for (const auto& row : slice_rows(bits)) {
      SCOPED_TRACE(row.description);
      const uint32_t slice_of_token = row.token >> (token_bits(row.type, row.af) - bits);
      EXPECT_TRUE(slice_of_token == row.index || slice_of_token == row.other_index);
      const auto c = classify(row.ip, row.dir);
      ASSERT_NE(c.verdict, Verdict::kReject) << to_string(c.reason);
      EXPECT_EQ(c.key.type, row.type);
      // A RST-ACK acking seq+1+P may carry into the index: the token is then the second candidate.
      uint32_t candidates[2];
      const int n = probe_for(c.key.type).index_candidates(c, candidates);
      EXPECT_TRUE(candidates[0] == row.token || (n == 2 && candidates[1] == row.token));
    }
  }
}

class CaptureFilterSlice : public ::testing::TestWithParam<KeySlice> {};

// For every type x family x shape: the packet passes the filter of its own slice, alone or with the other
// types, and is rejected by the filters of every other index and by the filters of the other types.
TEST_P(CaptureFilterSlice, PassesItsOwnSliceOnly) {
  const KeySlice slice = GetParam();
  const auto rows = slice_rows(slice.bits);
  for (int dlt : kLinkTypes) {
    SCOPED_TRACE(pcap_datalink_val_to_name(dlt));
    const ProbeType one[kSlicedTypes] = {ProbeType::kTcpSyn, ProbeType::kIcmpPing,
                                         ProbeType::kUdpUnreachable};
    CompiledFilter f_tcp(dlt, capture_filter(std::span(one + 0, 1), slice)),
        f_icmp(dlt, capture_filter(std::span(one + 1, 1), slice)),
        f_udp(dlt, capture_filter(std::span(one + 2, 1), slice)),
        f_all(dlt, capture_filter(kAllTypes, slice));
    ASSERT_TRUE(f_tcp.ok() && f_icmp.ok() && f_udp.ok() && f_all.ok()) << f_all.error();
    const CompiledFilter* by_type[kSlicedTypes] = {&f_tcp, &f_icmp, &f_udp};
    int passed = 0, rejected = 0;
    for (const auto& row : rows) {
      const bool own = row.index == slice.index || row.other_index == slice.index;
      for (size_t t = 0; t < kSlicedTypes; ++t) {
        const bool expected = own && static_cast<ProbeType>(t) == row.type;
        EXPECT_EQ(by_type[t]->passes(dlt, row.ip), expected)
            << row.description << ", " << to_string(static_cast<ProbeType>(t)) << " filter";
      }
      EXPECT_EQ(f_all.passes(dlt, row.ip), own) << row.description << ", all-types filter";
      ++(own ? passed : rejected);
    }
    EXPECT_GT(passed, 0);
    EXPECT_GT(rejected, 0);
  }
}

INSTANTIATE_TEST_SUITE_P(probes, CaptureFilterSlice, ::testing::ValuesIn(kFilterSlices),
                         [](const auto& info) { return slice_name(info.param); });

// The whole-space table above under a slice: every token in it has zero top bits (slice index 0), so each
// row passes a slice filter exactly when it passes the whole-space one and the slice index is 0; what the
// whole-space filter drops stays dropped.
TEST(probes, CaptureFilterSliceKeepsTheWholeSpaceRejections) {
  const auto rows = filter_rows();
  for (const KeySlice& slice : kFilterSlices) {
    SCOPED_TRACE(slice_name(slice));
    for (int dlt : kLinkTypes) {
      SCOPED_TRACE(pcap_datalink_val_to_name(dlt));
      CompiledFilter f(dlt, capture_filter(kAllTypes, slice));
      ASSERT_TRUE(f.ok()) << f.error();
      for (const auto& row : rows) {
        EXPECT_EQ(f.passes(dlt, row.ip), (row.tcp || row.icmp || row.udp) && slice.index == 0)
            << row.description;
      }
    }
  }
}

// The whole-space filter before key slices existed, all types.
constexpr const char* kWholeSpaceAllTypes =
    "(ip and ((ip proto 6 and (tcp[13] & 0x12 = 0x02 or (tcp[13] & 0x12 = 0x12 or tcp[13] & 0x1f = 0x10) or "
    "tcp[13] & 0x14 = 0x14)) or (ip proto 1 and (icmp[0] = 0 or icmp[0] = 8)) or ip proto 17 or (ip proto 1 "
    "and (icmp[0] = 3 or icmp[0] = 11 or icmp[0] = 12) and (icmp[17] = 6 or icmp[17] = 1 or icmp[17] = "
    "17)))) "
    "or (ip6 and ((ip6[6] = 6 and (ip6[53] & 0x12 = 0x02 or (ip6[53] & 0x12 = 0x12 or ip6[53] & 0x1f = 0x10) "
    "or ip6[53] & 0x14 = 0x14)) or (ip6[6] = 58 and (ip6[40] = 128 or ip6[40] = 129)) or ip6[6] = 17 or "
    "(ip6[6] = 58 and ip6[40] >= 1 and ip6[40] <= 4 and (ip6[54] = 6 or ip6[54] = 58 or ip6[54] = 17))))";

TEST(probes, CaptureFilterSliceOfZeroBitsIsTheWholeSpace) {
  EXPECT_EQ(capture_filter(kAllTypes, KeySlice{}), kWholeSpaceAllTypes);
  const std::vector<std::vector<ProbeType>> sets = {{},
                                                    {ProbeType::kTcpSyn},
                                                    {ProbeType::kIcmpPing},
                                                    {ProbeType::kUdpUnreachable},
                                                    {ProbeType::kTcpSyn, ProbeType::kUdpUnreachable},
                                                    {kAllTypes.begin(), kAllTypes.end()}};
  for (const auto& set : sets) EXPECT_EQ(capture_filter(set, KeySlice{}), capture_filter(set));
  // A zero-bit slice ignores its index, like apply_slice().
  EXPECT_EQ(capture_filter(kAllTypes, KeySlice{0, 0}), capture_filter(kAllTypes));
}

// Slices wider than 16 bits reach past the echo id into the echo seq (ICMPping alone: 32-bit tokens).
TEST(probes, CaptureFilterWideSliceOfEchoTokens) {
  const ProbeType icmp[] = {ProbeType::kIcmpPing};
  for (auto af : {kV4, kV6}) {
    for (const KeySlice& slice : {KeySlice{17, 0x1abcd}, KeySlice{32, 0xcafe0042}}) {
      SCOPED_TRACE(slice_name(slice));
      const uint32_t token = apply_slice(0x01234567, 32, slice);
      const KeySlice next{slice.bits, slice.index ^ 1};  // differs in the lowest slice bit only
      const Bytes echo = crafted(ProbeType::kIcmpPing, af, 0, token, 60);
      const Bytes reply = echo_packet(target_addr(af), local_addr(af), true, token);
      const Bytes error = icmp_error(af, af == kV4 ? 11 : 3, 0, echo);
      for (int dlt : kLinkTypes) {
        CompiledFilter own(dlt, capture_filter(icmp, slice)), other(dlt, capture_filter(icmp, next));
        ASSERT_TRUE(own.ok() && other.ok()) << own.error();
        for (const Bytes* b : {&echo, &reply, &error}) {
          EXPECT_TRUE(own.passes(dlt, *b));
          EXPECT_FALSE(other.passes(dlt, *b));
        }
      }
    }
  }
}

TEST(probes, CaptureFilterRefusesImpossibleSlices) {
  const ProbeType tcp[] = {ProbeType::kTcpSyn};
  const ProbeType icmp[] = {ProbeType::kIcmpPing};
  EXPECT_THROW(capture_filter(kAllTypes, KeySlice{-1, 0}), std::invalid_argument);
  EXPECT_THROW(capture_filter(kAllTypes, KeySlice{2, 4}), std::invalid_argument) << "index wider than bits";
  // The narrowest token bounds the slice: IPv4 IP-ID (16 bits) with UDP, 18 bits with TCP, 32 with ICMP.
  EXPECT_NO_THROW(capture_filter(kAllTypes, KeySlice{16, 0xffff}));
  EXPECT_THROW(capture_filter(kAllTypes, KeySlice{17, 0}), std::invalid_argument);
  EXPECT_NO_THROW(capture_filter(tcp, KeySlice{18, 0}));
  EXPECT_THROW(capture_filter(tcp, KeySlice{19, 0}), std::invalid_argument);
  EXPECT_NO_THROW(capture_filter(icmp, KeySlice{32, 0xffffffff}));
  EXPECT_THROW(capture_filter(icmp, KeySlice{33, 0}), std::invalid_argument);
}

// What the slice costs in BPF instructions (pcap_compile with the optimiser, as the capture opens it).
// Every clause gains one `and` + `jeq` on a field it may already load: about +47 for all types.
TEST(probes, CaptureFilterSliceInstructionCount) {
  const ProbeType one[] = {ProbeType::kTcpSyn, ProbeType::kIcmpPing, ProbeType::kUdpUnreachable,
                           ProbeType::kUdpQuery};
  constexpr size_t kAll = std::size(one);
  for (int dlt : kLinkTypes) {
    for (size_t t = 0; t <= kAll; ++t) {
      const auto types = t == kAll ? std::span<const ProbeType>(one) : std::span(one + t, 1);
      const std::string what = t == kAll ? "all types" : std::string(to_string(one[t]));
      CompiledFilter whole(dlt, capture_filter(types));
      ASSERT_TRUE(whole.ok());
      std::string counts = std::to_string(whole.instructions());
      for (const KeySlice& slice : kFilterSlices) {
        CompiledFilter sliced(dlt, capture_filter(types, slice));
        ASSERT_TRUE(sliced.ok()) << sliced.error();
        // The whole-space filter has no token test at all since the low TCP bits carry check bits.
        EXPECT_LE(sliced.instructions(), 2 * whole.instructions() + 24) << what << " " << slice_name(slice);
        EXPECT_LE(sliced.instructions(), 128u) << what << " " << slice_name(slice);
        counts += " " + std::to_string(sliced.instructions());
      }
      ::testing::Test::RecordProperty("bpf_instructions_" + std::string(pcap_datalink_val_to_name(dlt)) +
                                          "_" + (t == kAll ? std::string("all") : what),
                                      counts);
      std::cout << "BPF instructions, " << pcap_datalink_val_to_name(dlt) << ", " << what
                << ": whole space, then the " << kFilterSlices.size() << " slices: " << counts << "\n";
    }
  }
}

// UDPquery (probes/udp_query.h): its token sits at a per-target offset of the answer, which a per-type filter
// cannot know, so under a slice every UDP answer still passes (each worker matches only its own probes in
// user space: 5-tuple, then the exact token); ICMP errors quoting its IPv4 probes are sliced by the quoted
// IP-ID.
TEST(probes, CaptureFilterUdpQuery) {
  const ProbeType q[] = {ProbeType::kUdpQuery};
  for (int dlt : kLinkTypes) {
    for (const KeySlice& slice : kFilterSlices) {
      SCOPED_TRACE(slice_name(slice));
      CompiledFilter f(dlt, capture_filter(q, slice));
      ASSERT_TRUE(f.ok()) << f.error();
      for (AddressFamily af : {AddressFamily::kV4, AddressFamily::kV6}) {
        EXPECT_TRUE(f.passes(dlt, udp_packet(target_addr(af), local_addr(af), 53, 40000)));
        EXPECT_FALSE(f.passes(dlt, tcp_packet(target_addr(af), local_addr(af), 53, 40000, 0x12, 1, 2)));
      }
      // A port unreachable quoting an IPv4 probe whose IP-ID (the index) carries slice `index`.
      for (uint32_t index = 0; index < (1u << slice.bits); ++index) {
        Tins::UDP udp(53, 40000);
        udp.inner_pdu(Tins::RawPDU(Bytes(8, 0)));
        Tins::IP ip(Tins::IPv4Address("10.0.0.2"), Tins::IPv4Address("10.0.0.1"));
        ip.id(uint16_t(index << (16 - slice.bits) | 0x5));
        ip.inner_pdu(udp);
        const Bytes err = icmp_error(AddressFamily::kV4, 3, 3, ip.serialize());
        EXPECT_EQ(f.passes(dlt, err), index == slice.index) << index;
      }
    }
  }
}

}  // namespace
}  // namespace netprobe
