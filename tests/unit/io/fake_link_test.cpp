// FakeLink: the in-memory link of component tests. Suite names start with `io_` (ctest -R io).
#include "io/fake_link.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

namespace netprobe {
namespace {

using namespace std::chrono_literals;

std::vector<uint8_t> packet(uint8_t tag) {
  std::vector<uint8_t> p(20, 0);
  p[0] = 0x45;
  p[19] = tag;
  return p;
}

OutPacket out(const std::vector<uint8_t>& bytes) { return OutPacket{bytes, IpAddress::v4(0x7f000001)}; }

struct Seen {
  uint8_t tag;
  Nanos at;
  Direction dir;
};

std::vector<Seen> drain(PacketSource& src) {
  std::vector<Seen> seen;
  src.poll([&](const CapturedPacket& p) { seen.push_back({p.ip.back(), p.timestamp, p.direction}); }, 10ms);
  return seen;
}

TEST(io_FakeLink, OutgoingCopyStampedAtSendPlusEgressDelay) {
  FakeClock clock;
  FakeLink link(clock, FakeLink::Options{.egress_delay = 3us});
  const Nanos t0 = clock.realtime();
  const auto p = packet(1);
  const OutPacket batch[] = {out(p)};
  EXPECT_EQ(link.sink().send(batch), 1u);
  EXPECT_EQ(link.sent_count(), 1u);
  EXPECT_TRUE(drain(link.source()).empty());  // not due before the egress delay
  clock.advance(3us);
  const auto seen = drain(link.source());
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].tag, 1);
  EXPECT_EQ(seen[0].at, t0 + 3us);
  EXPECT_EQ(seen[0].dir, Direction::kOutgoing);
  EXPECT_EQ(link.sent_packets().at(0), p);
}

TEST(io_FakeLink, RepliesDueOnlyAfterClockAdvance) {
  FakeClock clock;
  FakeLink link(clock, FakeLink::Options{.deliver_outgoing = false});
  link.set_responder([](std::span<const uint8_t> ip) {
    return std::vector<ScriptedReply>{{packet(uint8_t(ip.back() + 100)), 5ms}};
  });
  const Nanos t0 = clock.realtime();
  const auto p = packet(1);
  const OutPacket batch[] = {out(p)};
  ASSERT_EQ(link.sink().send(batch), 1u);
  EXPECT_EQ(link.source().poll([](const CapturedPacket&) {}, 1s), 0);  // returns at once in fake time
  EXPECT_EQ(link.next_due(), t0 + 5ms);
  clock.advance(4ms);
  EXPECT_TRUE(drain(link.source()).empty());
  clock.advance(1ms);
  const auto seen = drain(link.source());
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].tag, 101);
  EXPECT_EQ(seen[0].at, t0 + 5ms);
  EXPECT_EQ(seen[0].dir, Direction::kIncoming);
  EXPECT_EQ(link.delivered_count(), 1u);
  EXPECT_EQ(link.source().stats().received, 1u);
}

TEST(io_FakeLink, DeliveredInTimestampOrder) {
  FakeClock clock;
  FakeLink link(clock);
  // Reply delays in reverse send order, a duplicate reply, and a drop (no reply for tag 3).
  link.set_responder([](std::span<const uint8_t> ip) {
    const uint8_t tag = ip.back();
    if (tag == 3) return std::vector<ScriptedReply>{};
    std::vector<ScriptedReply> r{{packet(uint8_t(tag + 100)), Nanos(10ms) / tag}};
    if (tag == 2) r.push_back({packet(uint8_t(tag + 200)), 20ms});
    return r;
  });
  const Nanos t0 = clock.realtime();
  const auto a = packet(1), b = packet(2), c = packet(3);
  const OutPacket batch[] = {out(a), out(b), out(c)};
  ASSERT_EQ(link.sink().send(batch), 3u);
  link.inject(packet(50), t0 + 1ms);
  clock.advance(1s);
  const auto seen = drain(link.source());
  std::vector<uint8_t> tags;
  for (size_t i = 0; i < seen.size(); ++i) {
    tags.push_back(seen[i].tag);
    if (i > 0) {
      EXPECT_LE(seen[i - 1].at, seen[i].at);
    }
  }
  // Outgoing copies at t0 (send order), foreign at +1 ms, replies at +5 ms, +10 ms, duplicate at +20 ms.
  EXPECT_EQ(tags, (std::vector<uint8_t>{1, 2, 3, 50, 102, 101, 202}));
  EXPECT_EQ(link.queued_count(), 0u);
}

TEST(io_FakeLink, SendFilterFailsPackets) {
  FakeClock clock;
  FakeLink link(clock);
  link.set_send_filter([](std::span<const uint8_t> ip) { return ip.back() != 2; });
  const auto a = packet(1), b = packet(2);
  const auto c = packet(3);
  const OutPacket batch[] = {out(a), out(b), out(c)};
  uint8_t failed[3] = {9, 9, 9};
  EXPECT_EQ(link.sink().send(batch, failed), 2u);
  EXPECT_EQ(failed[0], 0);
  EXPECT_EQ(failed[1], 1 + int(SendError::kOther));  // in the middle: not a suffix
  EXPECT_EQ(failed[2], 0);
  EXPECT_EQ(link.failed_count(), 1u);
  EXPECT_EQ(drain(link.source()).size(), 2u);
}

TEST(io_FakeLink, InterruptWakesIdlePoll) {
  FakeClock clock;
  FakeLink link(clock, FakeLink::Options{.idle_wait = 10s});
  std::thread t([&] {
    std::this_thread::sleep_for(20ms);
    link.source().interrupt();
  });
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(link.source().poll([](const CapturedPacket&) {}, 10s), 0);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
  t.join();
}

TEST(io_FakeLink, ConcurrentSendAndPollSmoke) {
  FakeClock clock;
  FakeLink link(clock, FakeLink::Options{.idle_wait = 1ms, .log_sent = false});
  link.set_responder([](std::span<const uint8_t> ip) {
    return std::vector<ScriptedReply>{{std::vector<uint8_t>(ip.begin(), ip.end()), 1us}};
  });
  constexpr int kBatches = 200, kPerBatch = 16;
  std::atomic<bool> done{false};
  std::atomic<int> received{0};
  std::thread capture([&] {
    const auto give_up = std::chrono::steady_clock::now() + 10s;
    while (received.load() < 2 * kBatches * kPerBatch && std::chrono::steady_clock::now() < give_up) {
      link.source().poll([&](const CapturedPacket&) { received.fetch_add(1); }, 1ms);
      if (done.load()) clock.advance(1ms);
    }
  });
  const auto p = packet(7);
  std::vector<OutPacket> batch(kPerBatch, out(p));
  for (int i = 0; i < kBatches; ++i) ASSERT_EQ(link.sink().send(batch), size_t(kPerBatch));
  done = true;
  capture.join();
  EXPECT_EQ(link.sent_count(), uint64_t(kBatches * kPerBatch));
  EXPECT_EQ(received.load(), 2 * kBatches * kPerBatch);  // outgoing copy + one reply each
}

}  // namespace
}  // namespace netprobe
