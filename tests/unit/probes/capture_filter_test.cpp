// capture_filter() compiled by libpcap for every link type a worker may capture on, and run with
// pcap_offline_filter over crafted packets: it must pass our probes, their answers and ICMP errors quoting
// them (IPv4 and IPv6), and drop what can be told apart in the kernel.
#include <gtest/gtest.h>
#include <pcap/pcap.h>

#include <array>
#include <string>

#include "packets.h"

namespace netprobe {
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
constexpr std::array kAllTypes = {ProbeType::kTcpSyn, ProbeType::kIcmpPing, ProbeType::kUdpUnreachable};

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
    r.push_back({f + "SYN-ACK", tcp_packet(them, us, 443, 40000, kSyn | kAck, 5, kSeq + 1), true, false, false});
    r.push_back({f + "RST-ACK", tcp_packet(them, us, 443, 40000, kRst | kAck, 0, kSeq + 1), true, false, false});
    r.push_back({f + "RST-ACK acking payload", tcp_packet(them, us, 443, 40000, kRst | kAck, 0, kSeq + 41), true, false,
                 false});
    r.push_back({f + "own echo request", echo, false, true, false});
    r.push_back({f + "echo reply", echo_packet(them, us, true, 0x10002), false, true, false});
    r.push_back({f + "own UDP", udp, false, false, true});
    r.push_back({f + "UDP port unreachable", icmp_error(af, unreach, port_unreach, udp), false, false, true});
    r.push_back({f + "UDP port unreachable, 8-byte quote", icmp_error(af, unreach, port_unreach, udp, v4 ? 28 : 48),
                 false, false, true});
    r.push_back({f + "UDP time exceeded", icmp_error(af, exceeded, 0, udp), false, false, true});
    r.push_back({f + "SYN time exceeded", icmp_error(af, exceeded, 0, syn), true, false, false});
    r.push_back({f + "SYN unreachable", icmp_error(af, unreach, 1, syn), true, false, false});
    r.push_back({f + "echo unreachable", icmp_error(af, unreach, 0, echo), false, true, false});
    r.push_back({f + "parameter problem on UDP", icmp_error(af, v4 ? 12 : 4, 0, udp), false, false, true});
    if (!v4) r.push_back({f + "packet too big on SYN", icmp_error(af, 2, 0, syn), true, false, false});
    // UDP cannot be told apart from our probes in the kernel: it passes with UDPunreachable only.
    r.push_back({f + "incoming UDP", udp_packet(them, us, 53, 40000), false, false, true});
    // Rejected rows.
    r.push_back({f + "PSH-ACK data", tcp_packet(them, us, 443, 40000, kPsh | kAck, 5, kSeq + 1, 100), false, false,
                 false});
    r.push_back({f + "pure ACK", tcp_packet(them, us, 443, 40000, kAck, 5, kSeq + 1), false, false, false});
    r.push_back({f + "plain RST", tcp_packet(them, us, 443, 40000, kRst, kSeq + 1, 0), false, false, false});
    r.push_back({f + "SYN-ACK to a normal connect", tcp_packet(them, us, 443, 40000, kSyn | kAck, 5, 0x12345678),
                 false, false, false});
    r.push_back({f + "SYN of a normal connect", tcp_packet(us, them, 40000, 443, kSyn, 0x12345678, 0), false, false,
                 false});
    r.push_back({f + "redirect / neighbour solicitation", icmp_packet(router, us, v4 ? 5 : 135, 0, 0, 0, Bytes(24, 0)),
                 false, false, false});
    r.push_back({f + "router advertisement", icmp_packet(router, us, v4 ? 9 : 134, 0, 0, 0, Bytes(16, 0)), false, false,
                 false});
    r.push_back({f + "unreachable quoting GRE", icmp_error(af, unreach, 1, [&] {
                   Bytes b = udp;
                   b[v4 ? 9 : 6] = 47;
                   return b;
                 }()),
                 false, false, false});
    r.push_back({f + "GRE", [&] {
                   Bytes b = udp;
                   b[v4 ? 9 : 6] = 47;
                   return b;
                 }(),
                 false, false, false});
  }
  return r;
}

TEST(probes, CaptureFilterCompilesForEveryLinkTypeAndTypeSet) {
  const std::vector<std::vector<ProbeType>> sets = {
      {}, {ProbeType::kTcpSyn}, {ProbeType::kIcmpPing}, {ProbeType::kUdpUnreachable},
      {ProbeType::kTcpSyn, ProbeType::kIcmpPing}, {kAllTypes.begin(), kAllTypes.end()},
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
    CompiledFilter f_tcp(dlt, capture_filter(tcp)), f_icmp(dlt, capture_filter(icmp)), f_udp(dlt, capture_filter(udp)),
        f_all(dlt, capture_filter(kAllTypes)), f_none(dlt, capture_filter({}));
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

}  // namespace
}  // namespace netprobe
