// Root-only: a real raw socket and a real capture on loopback. Only ever sends to 127.0.0.1 / ::1; every
// loop is bounded in time and count. Suite names start with `io_` (ctest -R io).
#include <gtest/gtest.h>
#include <pcap/pcap.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <thread>
#include <vector>

#include "io/pcap_source.h"
#include "io/raw_socket_sink.h"

namespace netprobe {
namespace {

using namespace std::chrono_literals;

uint16_t checksum(const uint8_t* p, size_t n) {
  uint32_t sum = 0;
  for (size_t i = 0; i + 1 < n; i += 2) sum += uint32_t(p[i] << 8 | p[i + 1]);
  if (n & 1) sum += uint32_t(p[n - 1] << 8);
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return uint16_t(~sum);
}

// 20-byte IPv4 header + 8-byte ICMP echo request, 127.0.0.1 -> 127.0.0.1.
std::vector<uint8_t> echo_request(uint16_t id, uint16_t seq) {
  std::vector<uint8_t> p(28, 0);
  p[0] = 0x45;
  p[3] = 28;
  p[4] = 0x12, p[5] = 0x34;  // IP-ID (never 0: the kernel would rewrite it)
  p[6] = 0x40;               // DF
  p[8] = 64;                 // TTL
  p[9] = 1;                  // ICMP
  const uint8_t lo[4] = {127, 0, 0, 1};
  std::memcpy(&p[12], lo, 4);
  std::memcpy(&p[16], lo, 4);
  const uint16_t ipsum = checksum(p.data(), 20);
  p[10] = uint8_t(ipsum >> 8), p[11] = uint8_t(ipsum);
  p[20] = 8;  // echo request
  p[24] = uint8_t(id >> 8), p[25] = uint8_t(id);
  p[26] = uint8_t(seq >> 8), p[27] = uint8_t(seq);
  const uint16_t icsum = checksum(&p[20], 8);
  p[22] = uint8_t(icsum >> 8), p[23] = uint8_t(icsum);
  return p;
}

// 40-byte IPv6 header + 8-byte ICMPv6 echo request, ::1 -> ::1 (checksum over the pseudo-header).
std::vector<uint8_t> echo6_request(uint16_t id, uint16_t seq) {
  std::vector<uint8_t> p(48, 0);
  p[0] = 0x60;
  p[5] = 8;     // payload length
  p[6] = 58;    // ICMPv6
  p[7] = 64;    // hop limit
  p[23] = 1;    // src ::1
  p[39] = 1;    // dst ::1
  p[40] = 128;  // echo request
  p[44] = uint8_t(id >> 8), p[45] = uint8_t(id);
  p[46] = uint8_t(seq >> 8), p[47] = uint8_t(seq);
  std::vector<uint8_t> pseudo(p.begin() + 8, p.begin() + 40);  // src + dst
  const uint8_t tail[8] = {0, 0, 0, 8, 0, 0, 0, 58};           // length, zeros, next header
  pseudo.insert(pseudo.end(), tail, tail + 8);
  pseudo.insert(pseudo.end(), p.begin() + 40, p.end());
  const uint16_t sum = checksum(pseudo.data(), pseudo.size());
  p[42] = uint8_t(sum >> 8), p[43] = uint8_t(sum);
  return p;
}

bool is_ours(std::span<const uint8_t> ip, uint8_t icmp_type, uint16_t id) {
  return ip.size() >= 28 && (ip[0] >> 4) == 4 && ip[9] == 1 && ip[20] == icmp_type &&
         uint16_t(ip[24] << 8 | ip[25]) == id;
}

void live_echo(const std::string& device) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root (raw socket and live capture)";
  const uint16_t id = uint16_t(getpid());
  auto src = PcapSource::open({.device = device, .filter = "icmp and host 127.0.0.1"});
  ASSERT_TRUE(src.ok()) << src.error().message;
  EXPECT_TRUE((*src)->nanosecond_timestamps());
  auto sink = RawSocketSink::open();
  ASSERT_TRUE(sink.ok()) << sink.error().message;

  const auto req = echo_request(id, 1);
  const OutPacket batch[] = {{req, IpAddress::v4(0x7f000001)}};
  ASSERT_EQ((*sink)->send(batch), 1u);
  EXPECT_EQ((*sink)->stats().sent, 1u);

  Nanos request_ts{0}, reply_ts{0};
  const auto give_up = std::chrono::steady_clock::now() + 2s;
  for (int i = 0; i < 200 && (request_ts == Nanos(0) || reply_ts == Nanos(0)) &&
                  std::chrono::steady_clock::now() < give_up;
       ++i) {
    const int n = (*src)->poll(
        [&](const CapturedPacket& p) {
          if (p.direction == Direction::kOutgoing && is_ours(p.ip, 8, id)) request_ts = p.timestamp;
          if (p.direction == Direction::kIncoming && is_ours(p.ip, 0, id)) reply_ts = p.timestamp;
        },
        50ms);
    ASSERT_GE(n, 0) << (*src)->error();
  }
  ASSERT_NE(request_ts, Nanos(0)) << "own echo request not captured as outgoing";
  ASSERT_NE(reply_ts, Nanos(0)) << "echo reply not captured as incoming";
  EXPECT_GT(reply_ts, request_ts);
  EXPECT_LT(reply_ts - request_ts, 1s);
  // Nanosecond stamps on the realtime base: within a minute of the wall clock.
  const auto wall = std::chrono::duration_cast<Nanos>(std::chrono::system_clock::now().time_since_epoch());
  EXPECT_LT(std::chrono::abs(wall - reply_ts), 60s);
}

TEST(io_Live, EchoToLoopbackOnAny) { live_echo("any"); }
TEST(io_Live, EchoToLoopbackOnLo) { live_echo("lo"); }

TEST(io_Live, Echo6ToLoopback) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root (raw socket and live capture)";
  auto src = PcapSource::open({.device = "any", .filter = "icmp6 and host ::1"});
  ASSERT_TRUE(src.ok()) << src.error().message;
  auto sink = RawSocketSink::open();
  ASSERT_TRUE(sink.ok()) << sink.error().message;
  if (!(*sink)->has_family(AddressFamily::kV6)) GTEST_SKIP() << "no IPv6 on this host";
  const uint16_t id = uint16_t(getpid() ^ 0x5a5a);
  const auto req = echo6_request(id, 1);
  const OutPacket batch[] = {{req, *IpAddress::parse("::1")}};
  ASSERT_EQ((*sink)->send(batch), 1u) << "errors: " << (*sink)->stats().total_errors();

  bool request = false, reply = false;
  const auto give_up = std::chrono::steady_clock::now() + 2s;
  for (int i = 0; i < 200 && !(request && reply) && std::chrono::steady_clock::now() < give_up; ++i) {
    ASSERT_GE((*src)->poll(
                  [&](const CapturedPacket& p) {
                    if (p.ip.size() < 48 || (p.ip[0] >> 4) != 6 || p.ip[6] != 58) return;
                    if (uint16_t(p.ip[44] << 8 | p.ip[45]) != id) return;
                    // Our own header went out unchanged (hop limit 64), and the kernel answered.
                    if (p.direction == Direction::kOutgoing && p.ip[40] == 128 && p.ip[7] == 64)
                      request = true;
                    if (p.direction == Direction::kIncoming && p.ip[40] == 129) reply = true;
                  },
                  50ms),
              0);
  }
  EXPECT_TRUE(request);
  EXPECT_TRUE(reply);
}

TEST(io_Live, BatchLargerThanMaxBatch) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root (raw socket)";
  auto sink = RawSocketSink::open({.max_batch = 64, .ipv6 = false});
  ASSERT_TRUE(sink.ok()) << sink.error().message;
  std::vector<std::vector<uint8_t>> packets;
  for (uint16_t seq = 1; seq <= 200; ++seq) packets.push_back(echo_request(uint16_t(getpid() + 1), seq));
  std::vector<OutPacket> batch;
  for (const auto& p : packets) batch.push_back({p, IpAddress::v4(0x7f000001)});
  EXPECT_EQ((*sink)->send(batch), 200u);
  const SinkStats s = (*sink)->stats();
  EXPECT_EQ(s.sent, 200u);
  EXPECT_EQ(s.total_errors(), 0u);
  EXPECT_GE(s.syscalls, 4u);  // 200 / 64
  EXPECT_LE(s.syscalls, 10u);
}

TEST(io_Live, PacketWakesBlockedPollWithinBufferTimeout) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root (raw socket and live capture)";
  auto src = PcapSource::open({.device = "any", .filter = "icmp and host 127.0.0.1"});
  ASSERT_TRUE(src.ok()) << src.error().message;
  auto sink = RawSocketSink::open({.ipv6 = false});
  ASSERT_TRUE(sink.ok()) << sink.error().message;
  const auto req = echo_request(uint16_t(getpid() + 2), 1);
  std::thread t([&] {
    std::this_thread::sleep_for(100ms);
    const OutPacket batch[] = {{req, IpAddress::v4(0x7f000001)}};
    (*sink)->send(batch);
  });
  const auto start = std::chrono::steady_clock::now();
  int n = 0;
  for (int i = 0; i < 3 && n == 0; ++i) n = (*src)->poll([](const CapturedPacket&) {}, 5s);
  const auto waited = std::chrono::steady_clock::now() - start;
  t.join();
  EXPECT_GT(n, 0);
  EXPECT_LT(waited, 1s);  // 100 ms + the 5 ms buffer timeout, with slack for a loaded machine
}

TEST(io_Live, InterruptWakesBlockedPoll) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root (live capture)";
  // A filter that matches nothing we send: poll() can only return through interrupt() or max_wait.
  auto src = PcapSource::open({.device = "lo", .filter = "udp port 9"});
  ASSERT_TRUE(src.ok()) << src.error().message;
  std::thread t([&] {
    std::this_thread::sleep_for(50ms);
    (*src)->interrupt();
  });
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ((*src)->poll([](const CapturedPacket&) {}, 5s), 0);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2s);
  t.join();
}

TEST(io_Live, ClearCaptureErrors) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root (live capture)";
  auto missing = PcapSource::open({.device = "netprobe-nope0"});
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().message.find("netprobe-nope0"), std::string::npos) << missing.error().message;
  auto bad = PcapSource::open({.device = "lo", .filter = "icmp and and"});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("filter"), std::string::npos) << bad.error().message;
}

TEST(io_Live, SinkCountsMalformedAndMissingFamily) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root (raw socket)";
  auto sink = RawSocketSink::open({.ipv6 = false});
  ASSERT_TRUE(sink.ok()) << sink.error().message;
  const std::vector<uint8_t> short_packet(10, 0x45);
  const std::vector<uint8_t> v6(40, 0x60);
  const auto good = echo_request(uint16_t(getpid() + 3), 1);
  const OutPacket batch[] = {{short_packet, IpAddress::v4(0x7f000001)},
                             {good, IpAddress::v4(0x7f000001)},
                             {v6, *IpAddress::parse("::1")}};
  uint8_t failed[3] = {9, 9, 9};
  EXPECT_EQ((*sink)->send(batch, failed), 1u);
  EXPECT_EQ(failed[0], 1 + int(SendError::kInvalid)) << "failed says why";
  EXPECT_EQ(failed[1], 0);
  EXPECT_EQ(failed[2], 1 + int(SendError::kNoSocket));
  const SinkStats s = (*sink)->stats();
  EXPECT_EQ(s.errors[size_t(SendError::kInvalid)], 1u);
  EXPECT_EQ(s.errors[size_t(SendError::kNoSocket)], 1u);
}

}  // namespace
}  // namespace netprobe
