// Link-layer decoding tables and pcap file replay. Suite names start with `io_` (ctest -R io).
#include "io/pcap_source.h"

#include <gtest/gtest.h>
#include <pcap/pcap.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "io/link_layer.h"

namespace netprobe {
namespace {

using Bytes = std::vector<uint8_t>;

Bytes ipv4(uint8_t tag) {
  Bytes p(20, 0);
  p[0] = 0x45;
  p[3] = 20;
  p[9] = 1;               // ICMP
  p[12] = 10, p[15] = 1;  // src 10.0.0.1
  p[16] = 10, p[19] = tag;
  return p;
}

Bytes ipv6() {
  Bytes p(40, 0);
  p[0] = 0x60;
  return p;
}

Bytes sll(uint16_t pkttype, uint16_t proto, const Bytes& ip, uint16_t hatype = 1) {
  Bytes f = {uint8_t(pkttype >> 8),
             uint8_t(pkttype),
             uint8_t(hatype >> 8),
             uint8_t(hatype),
             0,
             6,
             1,
             2,
             3,
             4,
             5,
             6,
             0,
             0,
             uint8_t(proto >> 8),
             uint8_t(proto)};
  f.insert(f.end(), ip.begin(), ip.end());
  return f;
}

Bytes sll2(uint8_t pkttype, uint16_t proto, const Bytes& ip, uint16_t hatype = 1) {
  Bytes f = {uint8_t(proto >> 8),
             uint8_t(proto),
             0,
             0,
             0,
             0,
             0,
             2,
             uint8_t(hatype >> 8),
             uint8_t(hatype),
             pkttype,
             6,
             1,
             2,
             3,
             4,
             5,
             6,
             0,
             0};
  f.insert(f.end(), ip.begin(), ip.end());
  return f;
}

Bytes ether(uint16_t type, const Bytes& ip, bool vlan = false) {
  Bytes f = {0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0x02, 0, 0, 0, 0, 1};
  if (vlan) {
    for (uint8_t b : {0x81, 0x00, 0x00, 0x05}) f.push_back(b);
  }
  f.push_back(uint8_t(type >> 8));
  f.push_back(uint8_t(type));
  f.insert(f.end(), ip.begin(), ip.end());
  return f;
}

struct LinkCase {
  const char* description;
  int dlt;
  Bytes frame;
  LinkDecode verdict;
  size_t ip_size;
  DirectionFrom from;
  Direction direction;
};

TEST(io_LinkLayer, DecodeTable) {
  const Bytes v4 = ipv4(2), v6 = ipv6();
  const LinkCase cases[] = {
      {"SLL outgoing IPv4", DLT_LINUX_SLL, sll(4, 0x0800, v4), LinkDecode::kIp, 20,
       DirectionFrom::kLinkHeader, Direction::kOutgoing},
      {"SLL host IPv6", DLT_LINUX_SLL, sll(0, 0x86DD, v6), LinkDecode::kIp, 40, DirectionFrom::kLinkHeader,
       Direction::kIncoming},
      {"SLL other host", DLT_LINUX_SLL, sll(3, 0x0800, v4), LinkDecode::kIp, 20, DirectionFrom::kLinkHeader,
       Direction::kIncoming},
      {"SLL loopback", DLT_LINUX_SLL, sll(0, 0x0800, v4, 772), LinkDecode::kIp, 20, DirectionFrom::kLoopback,
       Direction::kIncoming},
      {"SLL ARP", DLT_LINUX_SLL, sll(0, 0x0806, v4), LinkDecode::kNotIp, 0, DirectionFrom::kUnknown,
       Direction::kIncoming},
      {"SLL says IPv4, bytes are IPv6", DLT_LINUX_SLL, sll(0, 0x0800, v6), LinkDecode::kNotIp, 0,
       DirectionFrom::kLinkHeader, Direction::kIncoming},
      {"SLL truncated header", DLT_LINUX_SLL, Bytes(15, 0), LinkDecode::kTruncated, 0,
       DirectionFrom::kUnknown, Direction::kIncoming},
      {"SLL header only", DLT_LINUX_SLL, sll(0, 0x0800, {}), LinkDecode::kTruncated, 0,
       DirectionFrom::kLinkHeader, Direction::kIncoming},
      {"SLL2 outgoing IPv4", DLT_LINUX_SLL2, sll2(4, 0x0800, v4), LinkDecode::kIp, 20,
       DirectionFrom::kLinkHeader, Direction::kOutgoing},
      {"SLL2 incoming IPv6", DLT_LINUX_SLL2, sll2(0, 0x86DD, v6), LinkDecode::kIp, 40,
       DirectionFrom::kLinkHeader, Direction::kIncoming},
      {"SLL2 truncated", DLT_LINUX_SLL2, Bytes(19, 0), LinkDecode::kTruncated, 0, DirectionFrom::kUnknown,
       Direction::kIncoming},
      {"Ethernet IPv4", DLT_EN10MB, ether(0x0800, v4), LinkDecode::kIp, 20, DirectionFrom::kUnknown,
       Direction::kIncoming},
      {"Ethernet VLAN IPv6", DLT_EN10MB, ether(0x86DD, v6, true), LinkDecode::kIp, 40,
       DirectionFrom::kUnknown, Direction::kIncoming},
      {"Ethernet LLDP", DLT_EN10MB, ether(0x88CC, v4), LinkDecode::kNotIp, 0, DirectionFrom::kUnknown,
       Direction::kIncoming},
      {"Ethernet truncated", DLT_EN10MB, Bytes(13, 0), LinkDecode::kTruncated, 0, DirectionFrom::kUnknown,
       Direction::kIncoming},
      {"raw IPv4", DLT_RAW, v4, LinkDecode::kIp, 20, DirectionFrom::kUnknown, Direction::kIncoming},
      {"raw garbage", DLT_RAW, Bytes{0x12, 0x34}, LinkDecode::kNotIp, 0, DirectionFrom::kUnknown,
       Direction::kIncoming},
      {"raw empty", DLT_RAW, Bytes{}, LinkDecode::kTruncated, 0, DirectionFrom::kUnknown,
       Direction::kIncoming},
      {"IPV6 link with IPv4 bytes", DLT_IPV6, v4, LinkDecode::kNotIp, 0, DirectionFrom::kUnknown,
       Direction::kIncoming},
      {"unsupported link", DLT_IEEE802_11, v4, LinkDecode::kNotIp, 0, DirectionFrom::kUnknown,
       Direction::kIncoming},
  };
  for (const LinkCase& c : cases) {
    LinkFrame f;
    EXPECT_EQ(decode_link(c.dlt, c.frame, &f), c.verdict) << c.description;
    if (c.verdict != LinkDecode::kIp) continue;
    EXPECT_EQ(f.ip.size(), c.ip_size) << c.description;
    EXPECT_EQ(f.direction_from, c.from) << c.description;
    if (c.from == DirectionFrom::kLinkHeader) {
      EXPECT_EQ(f.direction, c.direction) << c.description;
    }
  }
}

class TempPcap {
 public:
  explicit TempPcap(int dlt) {
    char tmpl[] = "/tmp/netprobe_io_test_XXXXXX";
    const int fd = mkstemp(tmpl);
    close(fd);
    path_ = tmpl;
    dead_ = pcap_open_dead_with_tstamp_precision(dlt, 65535, PCAP_TSTAMP_PRECISION_NANO);
    dumper_ = pcap_dump_open(dead_, path_.c_str());
  }
  ~TempPcap() {
    close_file();
    pcap_close(dead_);
    unlink(path_.c_str());
  }
  void add(const Bytes& frame, int64_t sec, int64_t nsec) {
    pcap_pkthdr h{};
    h.ts.tv_sec = sec;
    h.ts.tv_usec = nsec;  // nanoseconds: the dead handle has nanosecond precision
    h.caplen = h.len = uint32_t(frame.size());
    pcap_dump(reinterpret_cast<u_char*>(dumper_), &h, frame.data());
  }
  void close_file() {
    if (dumper_ != nullptr) pcap_dump_close(dumper_);
    dumper_ = nullptr;
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  pcap_t* dead_ = nullptr;
  pcap_dumper_t* dumper_ = nullptr;
};

struct Got {
  Bytes ip;
  Nanos ts;
  Direction dir;
};

std::vector<Got> read_all(PacketSource& src) {
  std::vector<Got> got;
  for (int i = 0; i < 100; ++i) {
    const int n = src.poll(
        [&](const CapturedPacket& p) {
          got.push_back({Bytes(p.ip.begin(), p.ip.end()), p.timestamp, p.direction});
        },
        Nanos(0));
    if (n < 0) break;
  }
  return got;
}

TEST(io_PcapFile, CookedDirectionsAndNanosecondTimestamps) {
  TempPcap file(DLT_LINUX_SLL);
  file.add(sll(4, 0x0800, ipv4(1)), 1'700'000'000, 123'456'789);  // our probe leaving
  file.add(sll(0, 0x0806, ipv4(9)), 1'700'000'000, 200'000'000);  // ARP: skipped
  file.add(sll(0, 0x0800, ipv4(2)), 1'700'000'000, 123'999'001);  // the reply
  file.close_file();

  auto src = PcapFileSource::open({.path = file.path()});
  ASSERT_TRUE(src.ok()) << src.error().message;
  EXPECT_EQ((*src)->link_type(), DLT_LINUX_SLL);
  const auto got = read_all(**src);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].dir, Direction::kOutgoing);
  EXPECT_EQ(got[0].ts, Nanos(1'700'000'000'123'456'789LL));
  EXPECT_EQ(got[0].ip, ipv4(1));
  EXPECT_EQ(got[1].dir, Direction::kIncoming);
  EXPECT_EQ(got[1].ts, Nanos(1'700'000'000'123'999'001LL));
  EXPECT_EQ(got[1].ip, ipv4(2));
  EXPECT_EQ((*src)->counters().not_ip, 1u);
  EXPECT_EQ((*src)->stats().received, 3u);
  EXPECT_EQ((*src)->poll([](const CapturedPacket&) {}, Nanos(0)), -1);  // stays at end of file
}

TEST(io_PcapFile, FilterAndRawLinkLocalAddresses) {
  TempPcap file(DLT_RAW);
  Bytes from_us = ipv4(1);
  Bytes to_us = ipv4(2);
  std::swap(to_us[12], to_us[16]);  // src 10.0.0.2 / dst 10.0.0.1
  std::swap(to_us[15], to_us[19]);
  Bytes udp = ipv4(3);
  udp[9] = 17;
  file.add(from_us, 1, 1);
  file.add(to_us, 1, 2);
  file.add(udp, 1, 3);
  file.close_file();

  auto src = PcapFileSource::open(
      {.path = file.path(), .filter = "icmp", .local_addresses = {*IpAddress::parse("10.0.0.1")}});
  ASSERT_TRUE(src.ok()) << src.error().message;
  const auto got = read_all(**src);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].dir, Direction::kOutgoing);
  EXPECT_EQ(got[1].dir, Direction::kIncoming);
}

TEST(io_PcapFile, ClearErrors) {
  auto missing = PcapFileSource::open({.path = "/nonexistent/netprobe.pcap"});
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().message.find("/nonexistent/netprobe.pcap"), std::string::npos);

  TempPcap file(DLT_LINUX_SLL);
  file.close_file();
  auto bad = PcapFileSource::open({.path = file.path(), .filter = "tcp[[ nonsense"});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("filter"), std::string::npos) << bad.error().message;
}

}  // namespace
}  // namespace netprobe
