// The on-demand worker's engine over the in-memory link (src/worker/ondemand_engine.h): jobs side by side,
// each probe at its send time, one event per probe with reply details, concurrent jobs to one destination
// matched by their own lanes only.
#include <gtest/gtest.h>

#include <map>
#include <mutex>

#include "io/fake_link.h"
#include "responder.h"
#include "worker/ondemand_engine.h"

namespace netprobe {
namespace {

using std::chrono::microseconds;
using std::chrono::milliseconds;

const IpAddress kSrc = *IpAddress::parse("192.0.2.100");

struct Lab {
  FakeClock clock;
  FakeLink link{clock};
  OnDemandEngine engine{clock,
                        link.sink(),
                        link.source(),
                        0x0d0d,
                        KeySlice{2, 3},
                        [](const IpAddress&) { return std::optional<IpAddress>(kSrc); },
                        /*capture_thread=*/false};
  std::map<uint64_t, OnDemandResult> results;
  std::vector<Nanos> send_times;  // monotonic, as the responder saw each packet

  // Runs until `count` results came back (bounded by the fake clock: every job ends by its timeout).
  void run(size_t count) {
    engine.run([&](OnDemandResult r) {
      const uint64_t id = r.id;
      results[id] = std::move(r);
      if (results.size() >= count) engine.stop();
    });
  }
};

OnDemandJob job(uint64_t id, const char* dst, ProbeType type, Nanos first, int count, Nanos gap) {
  OnDemandJob j;
  j.id = id;
  j.type = type;
  j.dst = *IpAddress::parse(dst);
  j.dst_port = type == ProbeType::kIcmpPing ? 0 : 443;
  j.timeout_s = 0.5;
  for (int i = 0; i < count; ++i)
    j.probes.push_back({uint16_t(33000 + i % 4), 64, (first + gap * i).count()});
  return j;
}

TEST(OnDemandEngine, ConcurrentJobsToOneDestinationEachGetTheirOwnAnswersAtTheirSendTimes) {
  for (ProbeType type : {ProbeType::kTcpSyn, ProbeType::kIcmpPing, ProbeType::kUdpUnreachable}) {
    SCOPED_TRACE(std::string(to_string(type)));
    Lab lab;
    lab.link.set_responder([&](std::span<const uint8_t> p) -> std::vector<ScriptedReply> {
      lab.send_times.push_back(lab.clock.monotonic());
      return {{testing::reply_to(p), microseconds(300)}};
    });
    const Nanos t0 = lab.clock.monotonic() + milliseconds(10);
    // Interleaved send times, as PacketBudget hands them to two callers of one destination.
    lab.engine.submit(job(1, "198.51.100.7", type, t0, 5, milliseconds(100)));
    lab.engine.submit(job(2, "198.51.100.7", type, t0 + milliseconds(50), 5, milliseconds(100)));
    lab.run(2);
    ASSERT_EQ(lab.results.size(), 2u);
    for (uint64_t id : {1, 2}) {
      const OnDemandResult& r = lab.results[id];
      EXPECT_EQ(r.error, "");
      ASSERT_EQ(r.events.size(), 5u);
      for (const ProbeEvent& e : r.events) {
        EXPECT_EQ(e.state, ProbeEvent::State::kAnswered) << e.slot;
        EXPECT_NEAR(e.rtt_s, 300e-6, 1e-6);
        EXPECT_TRUE(e.has_reply);
        EXPECT_EQ(e.reply.from.to_string(), "198.51.100.7");
        EXPECT_EQ(e.duplicates, 0);
      }
    }
    // Never before its time, and 50 ms apart: the two jobs' packets alternate.
    ASSERT_EQ(lab.send_times.size(), 10u);
    for (size_t i = 0; i < lab.send_times.size(); ++i) {
      const Nanos want = t0 + milliseconds(50) * int(i);
      EXPECT_GE(lab.send_times[i], want) << i;
      EXPECT_LT(lab.send_times[i], want + milliseconds(10)) << i;
    }
  }
}

TEST(OnDemandEngine, ABlackHoleIsLostAfterItsTimeoutWhileAnotherJobIsAnswered) {
  Lab lab;
  lab.link.set_responder([&](std::span<const uint8_t> p) -> std::vector<ScriptedReply> {
    if (p.size() >= 20 && p[16] == 203) return {};  // 203.0.113.9 never answers
    return {{testing::reply_to(p), microseconds(200)}};
  });
  const Nanos t0 = lab.clock.monotonic() + milliseconds(1);
  lab.engine.submit(job(7, "203.0.113.9", ProbeType::kTcpSyn, t0, 3, milliseconds(10)));
  lab.engine.submit(job(8, "198.51.100.8", ProbeType::kTcpSyn, t0, 3, milliseconds(10)));
  lab.run(2);
  for (const ProbeEvent& e : lab.results[7].events) EXPECT_EQ(e.state, ProbeEvent::State::kLost);
  for (const ProbeEvent& e : lab.results[8].events) EXPECT_EQ(e.state, ProbeEvent::State::kAnswered);
  EXPECT_GE(lab.clock.monotonic(), t0 + milliseconds(20 + 500));  // waited out the timeout
}

TEST(OnDemandEngine, ProbesWhoseTimePassedLongAgoAreNotSent) {
  Lab lab;
  lab.link.set_responder([&](std::span<const uint8_t> p) -> std::vector<ScriptedReply> {
    return {{testing::reply_to(p), microseconds(200)}};
  });
  const Nanos now = lab.clock.monotonic();
  OnDemandJob j = job(3, "198.51.100.9", ProbeType::kTcpSyn, now - milliseconds(500), 2, milliseconds(0));
  j.probes.push_back({33002, 64, (now + milliseconds(5)).count()});
  lab.engine.submit(j);
  lab.run(1);
  const auto& events = lab.results[3].events;
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[0].state, ProbeEvent::State::kUnsent);
  EXPECT_EQ(send_error_name(events[0].send_error), "cut_short");
  EXPECT_EQ(events[1].state, ProbeEvent::State::kUnsent);
  EXPECT_EQ(events[2].state, ProbeEvent::State::kAnswered);
  EXPECT_EQ(lab.link.sent_count(), 1u);
}

// Reserved times 100 ms apart, but the first packet of a pair left late: its successor to the same
// destination still waits the floor, whichever job it belongs to; another destination does not wait.
TEST(OnDemandEngine, GapFloorsHoldAcrossJobsWhateverTheLateness) {
  Lab lab;
  std::vector<std::pair<Nanos, uint8_t>> sends;  // (time, last byte of the destination)
  lab.link.set_responder([&](std::span<const uint8_t> p) -> std::vector<ScriptedReply> {
    sends.emplace_back(lab.clock.monotonic(), p[19]);
    return {{testing::reply_to(p), microseconds(100)}};
  });
  const Nanos t0 = lab.clock.monotonic() + milliseconds(10);
  OnDemandJob a = job(1, "198.51.100.7", ProbeType::kTcpSyn, t0, 1, milliseconds(0));
  OnDemandJob b = job(2, "198.51.100.7", ProbeType::kTcpSyn, t0 + milliseconds(30), 2, milliseconds(30));
  OnDemandJob c = job(3, "198.51.100.8", ProbeType::kTcpSyn, t0 + milliseconds(30), 1, milliseconds(0));
  for (OnDemandJob* j : {&a, &b, &c}) j->dest_gap_ns = 101'000'000;
  lab.engine.submit(a);
  lab.engine.submit(b);
  lab.engine.submit(c);
  lab.run(3);
  ASSERT_EQ(sends.size(), 4u);
  std::map<uint8_t, std::vector<Nanos>> by_dest;
  for (const auto& [at, dst] : sends) by_dest[dst].push_back(at);
  ASSERT_EQ(by_dest[7].size(), 3u);
  EXPECT_GE(by_dest[7][1] - by_dest[7][0], milliseconds(101));
  EXPECT_GE(by_dest[7][2] - by_dest[7][1], milliseconds(101));
  ASSERT_EQ(by_dest[8].size(), 1u);
  EXPECT_LT(by_dest[8][0], t0 + milliseconds(40));  // its own destination: on time
  for (uint64_t id : {1, 2, 3})
    for (const ProbeEvent& e : lab.results[id].events) EXPECT_EQ(e.state, ProbeEvent::State::kAnswered);
}

TEST(OnDemandEngine, TraceJobsResolveOnTimeExceededAndKeepTheirTtl) {
  Lab lab;
  const std::vector<std::vector<std::string>> hops = {{"192.0.2.1"}, {"192.0.2.21", "192.0.2.22"}};
  lab.link.set_responder([&](std::span<const uint8_t> p) -> std::vector<ScriptedReply> {
    return {{testing::network_reply(p, hops), microseconds(100)}};
  });
  OnDemandJob j = job(4, "198.51.100.1", ProbeType::kIcmpPing, lab.clock.monotonic(), 0, milliseconds(1));
  j.paris = true;
  j.icmp_error_resolves = true;
  for (uint8_t ttl = 1; ttl <= 3; ++ttl)
    j.probes.push_back({40001, ttl, (lab.clock.monotonic() + milliseconds(ttl)).count()});
  lab.engine.submit(j);
  lab.run(1);
  const auto& events = lab.results[4].events;
  ASSERT_EQ(events.size(), 3u);
  EXPECT_TRUE(events[0].has_error);
  EXPECT_EQ(events[0].error.from.to_string(), testing::network_hop(hops, 1, 40001));
  EXPECT_TRUE(events[1].has_error);
  EXPECT_EQ(events[1].error.from.to_string(), testing::network_hop(hops, 2, 40001));
  EXPECT_TRUE(events[2].has_reply);
  EXPECT_EQ(events[2].reply.from.to_string(), "198.51.100.1");
}

// A ping test's -t and --no-df reach the wire: the job's DF bit and each probe's TTL are the packet's.
TEST(OnDemandEngine, JobsCarryTheirTtlAndDfBit) {
  for (const bool df : {true, false}) {
    Lab lab;
    std::vector<std::pair<uint8_t, bool>> seen;  // (TTL, DF) of every packet sent
    lab.link.set_responder([&](std::span<const uint8_t> p) -> std::vector<ScriptedReply> {
      seen.emplace_back(p[8], (p[6] & 0x40) != 0);
      return {{testing::reply_to(p), microseconds(100)}};
    });
    OnDemandJob j = job(5, "198.51.100.1", ProbeType::kTcpSyn, lab.clock.monotonic(), 0, milliseconds(1));
    j.dont_fragment = df;
    for (const uint8_t ttl : {uint8_t(3), uint8_t(64)})
      j.probes.push_back({33000, ttl, (lab.clock.monotonic() + milliseconds(ttl)).count()});
    lab.engine.submit(j);
    lab.run(1);
    ASSERT_EQ(seen.size(), 2u);
    EXPECT_EQ(seen[0], std::make_pair(uint8_t(3), df));
    EXPECT_EQ(seen[1], std::make_pair(uint8_t(64), df));
  }
}

TEST(OnDemandEngine, NoRouteIsAnErrorResult) {
  FakeClock clock;
  FakeLink link{clock};
  OnDemandEngine engine{clock, link.sink(),    link.source(),
                        1,     KeySlice{1, 1}, [](const IpAddress&) { return std::optional<IpAddress>(); },
                        false};
  engine.submit(job(9, "198.51.100.1", ProbeType::kTcpSyn, clock.monotonic(), 1, milliseconds(1)));
  OnDemandResult got;
  engine.run([&](OnDemandResult r) {
    got = std::move(r);
    engine.stop();
  });
  EXPECT_EQ(got.id, 9u);
  EXPECT_NE(got.error.find("no route"), std::string::npos);
  EXPECT_TRUE(got.events.empty());
  EXPECT_EQ(link.sent_count(), 0u);
}

}  // namespace
}  // namespace netprobe
