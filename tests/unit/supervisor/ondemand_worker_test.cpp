// The supervisor's side of the on-demand worker (src/supervisor/ondemand_worker.h): jobs out, results in,
// clean failures (every probe unsent, reason no_worker) when the worker is down, goes down, or says
// nothing in time; the HopProber over it from another thread.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "supervisor/ondemand_worker.h"

namespace netprobe {
namespace {

using std::chrono::milliseconds;

ondemand::ProbeJob probe_job(int packets) {
  ondemand::ProbeJob j;
  j.type = ProbeType::kTcpSyn;
  j.addresses = {*IpAddress::parse("198.51.100.7")};
  j.dst_port = 443;
  j.nb_packets = packets;
  j.src_port_a = 33000;
  j.src_port_z = 33001;
  j.dscp = 10;
  j.timeout_s = 1;
  return j;
}

struct Fixture {
  FakeClock clock;
  bool up = true;
  std::vector<OnDemandJob> sent;
  OnDemandWorker worker{clock, [this](const OnDemandJob& j) {
                          if (up) sent.push_back(j);
                          return up;
                        }};
  std::optional<std::vector<ProbeEvent>> got;
  std::function<void(std::vector<ProbeEvent>)> done() {
    return [this](std::vector<ProbeEvent> e) { got = std::move(e); };
  }
};

std::vector<Nanos> times_from(Nanos now, int n) {
  std::vector<Nanos> t;
  for (int i = 0; i < n; ++i) t.push_back(now + milliseconds(100) * i);
  return t;
}

TEST(supervisor_OnDemandWorker, AJobTravelsWithItsSendTimesAndItsEventsComeBack) {
  Fixture f;
  const Nanos now = f.clock.monotonic();
  f.worker.run(probe_job(3), times_from(now, 3), f.done());
  ASSERT_EQ(f.sent.size(), 1u);
  const OnDemandJob& j = f.sent[0];
  EXPECT_EQ(j.dst.to_string(), "198.51.100.7");
  EXPECT_EQ(j.dst_port, 443);
  EXPECT_EQ(j.dscp, 10);
  ASSERT_EQ(j.probes.size(), 3u);
  EXPECT_EQ(j.probes[0].send_at_ns, now.count());
  EXPECT_EQ(j.probes[2].send_at_ns, (now + milliseconds(200)).count());
  EXPECT_EQ(j.probes[0].sport, 33000);
  EXPECT_EQ(j.probes[1].sport, 33001);
  EXPECT_EQ(j.probes[2].sport, 33000);
  // The whole probe within its timeout: the last packet (at +0.2 s) waits what is left of 1 s.
  EXPECT_NEAR(j.timeout_s, 0.8, 1e-9);
  EXPECT_FALSE(f.got);
  EXPECT_EQ(f.worker.in_flight(), 1u);

  OnDemandResult r;
  r.id = j.id;
  for (uint32_t i = 0; i < 3; ++i) {
    ProbeEvent e;
    e.slot = i;
    e.state = ProbeEvent::State::kAnswered;
    e.rtt_s = 0.001;
    r.events.push_back(e);
  }
  f.worker.on_result(OnDemandResult{j.id + 1000, "", {}});  // unknown id: ignored
  EXPECT_FALSE(f.got);
  f.worker.on_result(r);
  ASSERT_TRUE(f.got);
  EXPECT_EQ(f.got->size(), 3u);
  EXPECT_EQ((*f.got)[2].state, ProbeEvent::State::kAnswered);
  EXPECT_EQ(f.worker.packets_sent(), 3u);
  EXPECT_EQ(f.worker.in_flight(), 0u);
  f.worker.on_result(r);  // a duplicate result changes nothing
  EXPECT_EQ(f.worker.packets_sent(), 3u);
}

// Each case ends with every probe unsent for `no_worker`, and `done` called exactly once.
TEST(supervisor_OnDemandWorker, FailuresAreCleanAndBounded) {
  struct Case {
    const char* name;
    std::function<void(Fixture&)> before;  // before run()
    std::function<void(Fixture&)> after;   // after run()
  };
  const std::vector<Case> cases{
      {"worker not running", [](Fixture& f) { f.up = false; }, [](Fixture&) {}},
      {"worker goes down", [](Fixture&) {}, [](Fixture& f) { f.worker.on_down(); }},
      {"no result in time", [](Fixture&) {},
       [](Fixture& f) {
         f.worker.run_timers();
         EXPECT_FALSE(f.got);  // not yet
         ASSERT_NE(f.worker.next_deadline(), Nanos::max());
         f.clock.advance(f.worker.next_deadline() - f.clock.monotonic());
         f.worker.run_timers();
       }},
      {"a result with missing and stray events", [](Fixture&) {},
       [](Fixture& f) {
         ProbeEvent stray;
         stray.slot = 99;
         stray.state = ProbeEvent::State::kAnswered;
         f.worker.on_result(OnDemandResult{f.sent.at(0).id, "", {stray}});
       }},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    Fixture f;
    int calls = 0;
    c.before(f);
    f.worker.run(probe_job(2), times_from(f.clock.monotonic(), 2), [&](std::vector<ProbeEvent> e) {
      ++calls;
      f.got = std::move(e);
    });
    c.after(f);
    ASSERT_TRUE(f.got);
    EXPECT_EQ(calls, 1);
    ASSERT_EQ(f.got->size(), 2u);
    for (const ProbeEvent& e : *f.got) {
      EXPECT_EQ(e.state, ProbeEvent::State::kUnsent);
      EXPECT_EQ(send_error_name(e.send_error), "no_worker");
    }
    EXPECT_EQ(f.worker.in_flight(), 0u);
    f.worker.on_down();
    f.worker.run_timers();
    EXPECT_EQ(calls, 1);
  }
}

// probe() from a test thread; a "loop" thread drains the queue and plays the worker.
TEST(supervisor_WorkerHopProber, BlocksUntilTheLoopAnswersAndMapsEventsToHops) {
  SystemClock clock;
  LoopQueue queue;
  std::vector<OnDemandJob> jobs;
  std::mutex mu;
  OnDemandWorker worker{clock, [&](const OnDemandJob& j) {
                          std::lock_guard lock(mu);
                          jobs.push_back(j);
                          return true;
                        }};
  std::atomic<bool> quit{false};
  std::thread loop([&] {
    for (int i = 0; i < 2000 && !quit; ++i) {
      queue.drain();
      std::optional<OnDemandJob> j;
      {
        std::lock_guard lock(mu);
        if (!jobs.empty()) {
          j = jobs.front();
          jobs.erase(jobs.begin());
        }
      }
      if (j) {
        OnDemandResult r{j->id, "", {}};
        for (uint32_t k = 0; k < j->probes.size(); ++k) {
          ProbeEvent e;
          e.slot = k;
          e.state = ProbeEvent::State::kLost;
          e.has_error = true;
          e.error.valid = true;
          e.error.from = *IpAddress::parse("192.0.2." + std::to_string(j->probes[k].ttl));
          e.error.icmp_type = 11;
          e.error_rtt_s = 0.001;
          r.events.push_back(e);
        }
        worker.on_result(r);
      }
      std::this_thread::sleep_for(milliseconds(1));
    }
  });
  TraceTarget target;
  target.type = ProbeType::kIcmpPing;
  target.dst = *IpAddress::parse("198.51.100.1");
  auto prober = make_hop_prober_factory(queue, worker)(target, 0.5, 1000);
  const std::vector<ProbeSpec> specs{{40000, 1}, {40000, 2}, {40001, 3}};
  const auto hops = prober->probe(specs);
  quit = true;
  loop.join();
  ASSERT_EQ(hops.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(hops[i].kind, HopReply::Kind::kTimeExceeded);
    EXPECT_EQ(hops[i].from.to_string(), "192.0.2." + std::to_string(i + 1));
  }
  EXPECT_FALSE(prober->stopped());
}

TEST(supervisor_WorkerHopProber, AClosedLoopStopsItInsteadOfHanging) {
  SystemClock clock;
  LoopQueue queue;
  OnDemandWorker worker{clock, [](const OnDemandJob&) { return true; }};
  queue.close();
  TraceTarget target;
  target.dst = *IpAddress::parse("198.51.100.1");
  auto prober = make_hop_prober_factory(queue, worker)(target, 0.5, 1000);
  const std::vector<ProbeSpec> specs{{40000, 1}};
  const auto hops = prober->probe(specs);
  ASSERT_EQ(hops.size(), 1u);
  EXPECT_FALSE(hops[0].answered());
  EXPECT_TRUE(prober->stopped());
}

}  // namespace
}  // namespace netprobe
