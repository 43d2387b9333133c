// WorkerPool without root and without processes: a fake launcher records spawn/kill requests, each
// "worker" is the far end of a socketpair the test reads and writes, and time is a FakeClock.
#include "supervisor/worker_pool.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <map>

namespace netprobe {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

struct FakeLauncher final : WorkerLauncher {
  std::vector<WorkerSpawn> spawns;
  std::vector<std::pair<uint32_t, pid_t>> kills;
  Status spawn(const WorkerSpawn& s) override {
    spawns.push_back(s);
    return {};
  }
  Status kill(uint32_t index, pid_t pid) override {
    kills.emplace_back(index, pid);
    return {};
  }
};

// The test's end of a worker's IPC socket.
struct FakeWorker {
  int fd = -1;
  pid_t pid = 0;
  FrameReader reader;
  ~FakeWorker() {
    if (fd >= 0) close(fd);
  }
  // Every frame the pool wrote so far.
  std::vector<SupervisorMessage> received() {
    std::vector<SupervisorMessage> out;
    uint8_t buf[1 << 16];
    for (int guard = 0; guard < 1000; ++guard) {
      const ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
      if (n <= 0) break;
      reader.feed(std::span<const uint8_t>(buf, size_t(n)));
    }
    while (auto payload = reader.next()) {
      auto m = decode_supervisor_message(*payload);
      EXPECT_TRUE(m.ok());
      if (m.ok()) out.push_back(std::move(*m));
    }
    return out;
  }
  void say(const WorkerMessage& m) {
    const std::string f = encode_frame(m);
    // No SIGPIPE when the pool has closed its end (a killed worker).
    (void)!send(fd, f.data(), f.size(), MSG_NOSIGNAL);
  }
};

struct PoolLab {
  FakeClock clock;
  FakeLauncher launcher;
  std::map<uint32_t, WorkerSpawn> wanted;  // what spawn_for answers per index
  std::map<uint32_t, bool> has_targets;
  std::vector<uint32_t> lost, restarted, stalled, reported;
  std::unique_ptr<WorkerPool> pool;
  pid_t next_pid = 1000;

  PoolLab() {
    WorkerPool::Hooks h;
    h.spawn_for = [this](uint32_t i) {
      WorkerSpawn s = wanted.count(i) ? wanted[i] : WorkerSpawn{};
      s.index = i;
      return s;
    };
    h.shard_for = [this](uint32_t i) {
      Shard s;
      s.index = i;
      if (has_targets[i]) s.config.targets["t"] = TargetConfig{};
      return s;
    };
    h.on_report = [this](uint32_t i, WorkerReport) { reported.push_back(i); };
    h.on_error = [](uint32_t, const WorkerError&) {};
    h.on_lost = [this](uint32_t i) { lost.push_back(i); };
    h.on_restart = [this](uint32_t i) { restarted.push_back(i); };
    h.on_stalled = [this](uint32_t i) { stalled.push_back(i); };
    pool = std::make_unique<WorkerPool>(launcher, clock, std::move(h));
  }

  // The launcher forked worker `index`: hands the pool its socket, keeps the test's end.
  std::unique_ptr<FakeWorker> hand_over(uint32_t index) {
    int sv[2];
    EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    auto w = std::make_unique<FakeWorker>();
    w->fd = sv[1];
    w->pid = next_pid++;
    LaunchEvent ev;
    ev.op = LaunchEvent::kSpawned;
    ev.index = index;
    ev.pid = w->pid;
    ev.fd = sv[0];
    pool->on_launch_event(ev);
    return w;
  }
  void exited(const FakeWorker& w, int status = 9 /* killed by SIGKILL */) {
    LaunchEvent ev;
    ev.op = LaunchEvent::kExited;
    ev.pid = w.pid;
    ev.status = status;
    pool->on_launch_event(ev);
  }
  // Lets the pool read what the workers wrote.
  void poll() {
    std::vector<pollfd> fds;
    pool->add_poll_fds(fds);
    ::poll(fds.data(), fds.size(), 0);
    pool->on_poll(fds);
  }
  void advance(Nanos d) {
    clock.advance(d);
    pool->run_timers();
  }
};

const Nanos kWatch = seconds(40);  // interval + global.timeout of the tests

TEST(supervisor_WorkerPool, SpawnsEachWorkerAndSendsItsShardOnceHandedOver) {
  PoolLab lab;
  lab.wanted[1].types_mask = 4;
  lab.pool->update(2, kWatch);
  ASSERT_EQ(lab.launcher.spawns.size(), 2u);
  EXPECT_EQ(lab.launcher.spawns[1].index, 1u);
  EXPECT_EQ(lab.launcher.spawns[1].types_mask, 4u);
  auto w0 = lab.hand_over(0);
  const auto got = w0->received();
  ASSERT_EQ(got.size(), 1u);
  ASSERT_TRUE(std::holds_alternative<Shard>(got[0]));
  EXPECT_EQ(std::get<Shard>(got[0]).index, 0u);
  const auto procs = lab.pool->processes();
  ASSERT_EQ(procs.size(), 1u);
  EXPECT_EQ(procs[0].pid, w0->pid);
}

TEST(supervisor_WorkerPool, AWorkerThatDiesIsRestartedWithBackoff) {
  PoolLab lab;
  lab.has_targets[0] = true;
  lab.pool->update(1, kWatch);
  auto w = lab.hand_over(0);
  lab.exited(*w);
  EXPECT_EQ(lab.lost, std::vector<uint32_t>{0}) << "its targets are no longer measured";
  lab.advance(milliseconds(900));
  EXPECT_EQ(lab.launcher.spawns.size(), 1u) << "1 s backoff";
  lab.advance(milliseconds(200));
  ASSERT_EQ(lab.launcher.spawns.size(), 2u);
  EXPECT_EQ(lab.restarted, std::vector<uint32_t>{0});
  // Dies again at once: 2 s this time.
  w = lab.hand_over(0);
  lab.exited(*w);
  lab.advance(milliseconds(1500));
  EXPECT_EQ(lab.launcher.spawns.size(), 2u);
  lab.advance(milliseconds(600));
  EXPECT_EQ(lab.launcher.spawns.size(), 3u);
  // A healthy minute resets the delay to 1 s.
  w = lab.hand_over(0);
  for (int s = 0; s < 61; ++s) {
    w->say(s % 20 == 0 ? WorkerMessage{WorkerReport{}} : WorkerMessage{WorkerHeartbeat{}});
    lab.poll();
    lab.advance(seconds(1));
  }
  lab.exited(*w);
  lab.advance(milliseconds(1100));
  EXPECT_EQ(lab.launcher.spawns.size(), 4u);
  EXPECT_TRUE(lab.stalled.empty());
}

TEST(supervisor_WorkerPool, HeartbeatsKeepAWorkerAliveAndSilenceKillsIt) {
  PoolLab lab;
  lab.has_targets[0] = true;
  lab.pool->update(1, kWatch);
  auto w = lab.hand_over(0);
  for (int s = 0; s < 20; ++s) {  // 20 s of heartbeats, no report needed yet (the watchdog is 40 s + 10 s)
    w->say(WorkerMessage{WorkerHeartbeat{}});
    lab.poll();
    lab.advance(seconds(1));
  }
  EXPECT_TRUE(lab.launcher.kills.empty());
  // Stopped (SIGSTOP) or wedged: nothing more (the last heartbeat was 1 s ago).
  lab.advance(milliseconds(3900));
  EXPECT_TRUE(lab.launcher.kills.empty());
  EXPECT_LE(lab.pool->next_deadline() - lab.clock.monotonic(), milliseconds(200)) << "the loop wakes for it";
  lab.advance(milliseconds(300));
  ASSERT_EQ(lab.launcher.kills.size(), 1u);
  EXPECT_EQ(lab.launcher.kills[0], std::make_pair(uint32_t(0), w->pid));
  EXPECT_EQ(lab.stalled, std::vector<uint32_t>{0});
  lab.advance(seconds(10));
  EXPECT_EQ(lab.launcher.kills.size(), 1u) << "killed once";
  lab.exited(*w);
  EXPECT_EQ(lab.lost, std::vector<uint32_t>{0});
  lab.advance(milliseconds(1100));
  EXPECT_EQ(lab.launcher.spawns.size(), 2u);
}

TEST(supervisor_WorkerPool, HeartbeatsWithoutReportsTripTheIterationWatchdog) {
  PoolLab lab;
  lab.has_targets[0] = true;
  lab.pool->update(1, kWatch);
  auto w = lab.hand_over(0);
  int s = 0;
  for (; s < 120 && lab.launcher.kills.empty(); ++s) {
    w->say(WorkerMessage{WorkerHeartbeat{}});
    if (s == 30) w->say(WorkerMessage{WorkerReport{}});  // one report resets it
    lab.poll();
    lab.advance(seconds(1));
  }
  EXPECT_EQ(lab.reported, std::vector<uint32_t>{0});
  ASSERT_EQ(lab.launcher.kills.size(), 1u);
  EXPECT_NEAR(s, 30 + 50 + 1, 1) << "interval + global.timeout + 10 s after the last report";
}

TEST(supervisor_WorkerPool, AWorkerWithoutTargetsNeedsNoReports) {
  PoolLab lab;
  lab.pool->update(1, kWatch);
  auto w = lab.hand_over(0);
  for (int s = 0; s < 120; ++s) {
    w->say(WorkerMessage{WorkerHeartbeat{}});
    lab.poll();
    lab.advance(seconds(1));
  }
  EXPECT_TRUE(lab.launcher.kills.empty());
}

TEST(supervisor_WorkerPool, AChangedCaptureReplacesTheWorkerWithoutCountingARestart) {
  PoolLab lab;
  lab.wanted[0].types_mask = 1;
  lab.pool->update(1, kWatch);
  auto w = lab.hand_over(0);
  ASSERT_EQ(w->received().size(), 1u);
  // A reload adds a probe type its capture does not see.
  lab.wanted[0].types_mask = 3;
  lab.pool->update(1, kWatch);
  const auto got = w->received();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_TRUE(std::holds_alternative<StopRequest>(got[0]));
  lab.exited(*w, 0);
  ASSERT_EQ(lab.launcher.spawns.size(), 2u) << "respawned at once";
  EXPECT_EQ(lab.launcher.spawns[1].types_mask, 3u);
  EXPECT_TRUE(lab.restarted.empty());
  EXPECT_TRUE(lab.lost.empty());
  // A subset of the types, or the same shape, is just a new shard.
  lab.wanted[0].types_mask = 2;
  auto w2 = lab.hand_over(0);
  w2->received();
  lab.pool->update(1, kWatch);
  const auto got2 = w2->received();
  ASSERT_EQ(got2.size(), 1u);
  EXPECT_TRUE(std::holds_alternative<Shard>(got2[0]));
}

TEST(supervisor_WorkerPool, FewerWorkersStopTheExtraOnes) {
  PoolLab lab;
  lab.pool->update(2, kWatch);
  auto w0 = lab.hand_over(0);
  auto w1 = lab.hand_over(1);
  lab.pool->update(1, kWatch);
  EXPECT_TRUE(std::holds_alternative<StopRequest>(w1->received().back()));
  EXPECT_EQ(lab.pool->size(), 2u);
  lab.exited(*w1, 0);
  EXPECT_EQ(lab.pool->size(), 1u);
  EXPECT_EQ(lab.launcher.spawns.size(), 2u) << "not respawned";
}

TEST(supervisor_WorkerPool, GarbageFromAWorkerGetsItKilled) {
  PoolLab lab;
  lab.pool->update(1, kWatch);
  auto w = lab.hand_over(0);
  const uint8_t bad[] = {0, 0, 0, 3, 'x', 'y', 'z'};
  ASSERT_EQ(write(w->fd, bad, sizeof bad), ssize_t(sizeof bad));
  lab.poll();
  ASSERT_EQ(lab.launcher.kills.size(), 1u);
}

TEST(supervisor_WorkerPool, ShutdownStopsEveryWorkerAndRestartsNothing) {
  PoolLab lab;
  lab.pool->update(2, kWatch);
  auto w0 = lab.hand_over(0);
  lab.pool->stop_all();
  EXPECT_TRUE(lab.pool->busy());
  EXPECT_TRUE(std::holds_alternative<StopRequest>(w0->received().back()));
  auto w1 = lab.hand_over(1);  // handed over during the shutdown: closed at once
  char c;
  EXPECT_EQ(recv(w1->fd, &c, 1, MSG_DONTWAIT), ssize_t(1)) << "a stop frame";
  lab.exited(*w0);
  lab.exited(*w1);
  EXPECT_FALSE(lab.pool->busy());
  lab.advance(seconds(60));
  EXPECT_EQ(lab.launcher.spawns.size(), 2u);
  EXPECT_TRUE(lab.lost.empty());
}

}  // namespace
}  // namespace netprobe
