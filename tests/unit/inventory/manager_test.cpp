// InventoryManager with real plug-in processes (small /bin/sh scripts written into a temporary directory).
// Timers (backoff, first-document timeout, lifetimes) run on a FakeClock that the tests advance, so that
// every delay is checked exactly and the tests take real time only for the processes themselves.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "inventory/manager.h"

namespace netprobe {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::IsEmpty;
using namespace std::chrono_literals;

std::string target_json(const std::string& host, const std::string& dest, const std::string& extra = "") {
  return R"({"hostname": ")" + host + R"(", "destination": ")" + dest +
         R"(", "type": "ICMPping", "groups": ["g1"])" + extra + "}";
}
std::string doc(std::initializer_list<std::string> targets) {
  std::string out = R"({"targets": [)";
  bool first = true;
  for (const auto& t : targets) {
    out += (first ? "" : ", ") + t;
    first = false;
  }
  return out + "]}";
}

class inventory_manager : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("netprobe-inv-" + std::to_string(getpid()) + "-" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    options_.directory = dir_.string();
    options_.probe_name = "lab";
    options_.first_document_timeout = 10s;
    options_.rerun_interval = 30s;
    options_.on_failure = [this](const std::string& name) { failures_[name]++; };
    options_.on_targets = [this](const std::string& name, size_t n) { targets_[name] = n; };
  }
  void TearDown() override {
    manager_.reset();
    fs::remove_all(dir_);
  }

  // A plug-in: `body` is a /bin/sh script. Documents are written with printf '%s\n---\n' '<json>'.
  void plugin(const std::string& file, const std::string& body, bool executable = true) {
    const fs::path p = dir_ / file;
    std::ofstream(p) << "#!/bin/sh\n" << body << "\n";
    chmod(p.c_str(), executable ? 0755 : 0644);
  }
  static std::string emit(const std::string& json) { return "printf '%s\\n---\\n' '" + json + "'\n"; }
  void touch(const std::string& file) { std::ofstream(dir_ / file) << "x"; }

  InventoryManager& manager() {
    if (!manager_) manager_ = std::make_unique<InventoryManager>(options_, clock_);
    return *manager_;
  }
  // Polls (as the supervisor's loop does) until `pred` holds, for at most 10 s of real time.
  bool poll_until(const std::function<bool()>& pred) {
    for (int i = 0; i < 1000; ++i) {
      manager().poll();
      if (pred()) return true;
      std::this_thread::sleep_for(10ms);
    }
    return false;
  }
  void poll_for(std::chrono::milliseconds d) {
    for (auto end = std::chrono::steady_clock::now() + d; std::chrono::steady_clock::now() < end;) {
      manager().poll();
      std::this_thread::sleep_for(10ms);
    }
  }
  std::vector<std::string> names() {
    std::vector<std::string> out;
    for (const auto& [name, t] : manager().dynamic_targets()) out.push_back(name);
    return out;
  }
  InventoryStatus status(const std::string& name) {
    for (const auto& s : manager().status())
      if (s.name == name) return s;
    ADD_FAILURE() << "no plug-in " << name;
    return {};
  }

  fs::path dir_;
  FakeClock clock_;
  InventoryOptions options_;
  std::unique_ptr<InventoryManager> manager_;
  std::map<std::string, int> failures_;
  std::map<std::string, size_t> targets_;
};

TEST_F(inventory_manager, AddChangeRemoveAtRunTime) {
  plugin("cmdb", emit(doc({target_json("a", "10.0.0.1"), target_json("b", "10.0.0.2")})) +
                     "while [ ! -f step2 ]; do sleep 0.02; done\n" +
                     emit(doc({target_json("a", "10.0.0.1"), target_json("b", "10.0.0.22"),
                               target_json("c", "10.0.0.3")})) +
                     "while [ ! -f step3 ]; do sleep 0.02; done\n" +
                     emit(doc({target_json("c", "10.0.0.3")})) + "exec sleep 1000");
  EXPECT_THAT(manager().start(), ElementsAre("cmdb"));
  const uint64_t g0 = manager().generation();
  ASSERT_TRUE(poll_until([&] { return names().size() == 2; }));
  EXPECT_THAT(names(), ElementsAre("cmdb_a", "cmdb_b"));
  const auto t = manager().dynamic_targets();
  EXPECT_EQ(t.at("cmdb_a").description, "from_cmdb");
  EXPECT_TRUE(t.at("cmdb_a").is_dynamic);
  EXPECT_EQ(targets_["cmdb"], 2u);
  const uint64_t g1 = manager().generation();
  EXPECT_NE(g1, g0);

  touch("step2");
  ASSERT_TRUE(poll_until([&] { return names().size() == 3; }));
  EXPECT_EQ(manager().dynamic_targets().at("cmdb_b").destination, "10.0.0.22");
  const uint64_t g2 = manager().generation();
  EXPECT_NE(g2, g1);

  touch("step3");
  ASSERT_TRUE(poll_until([&] { return names().size() == 1; }));
  EXPECT_THAT(names(), ElementsAre("cmdb_c"));
  EXPECT_NE(manager().generation(), g2);
  EXPECT_EQ(targets_["cmdb"], 1u);
  EXPECT_EQ(status("cmdb").failures, 0u);
  EXPECT_GT(status("cmdb").pid, 0);  // a long-running plug-in that is silent is fine
  EXPECT_THAT(failures_, IsEmpty());
}

TEST_F(inventory_manager, UnchangedDocumentKeepsTheGeneration) {
  plugin("p", "while true; do\n" + emit(doc({target_json("a", "10.0.0.1")})) + "sleep 0.05\ndone");
  manager().start();
  ASSERT_TRUE(poll_until([&] { return names().size() == 1; }));
  const uint64_t g = manager().generation();
  poll_for(300ms);  // several identical documents
  EXPECT_EQ(manager().generation(), g);
}

TEST_F(inventory_manager, CrashingPluginKeepsItsTargetsAndBacksOff) {
  plugin("crash", emit(doc({target_json("a", "10.0.0.1")})) + "echo 'boom' >&2\nexit 3");
  manager().start();
  ASSERT_TRUE(poll_until([&] { return failures_["crash"] == 1; }));
  EXPECT_THAT(names(), ElementsAre("crash_a"));
  EXPECT_EQ(status("crash").last_error, "exited with status 3");
  EXPECT_EQ(status("crash").runs, 1u);
  EXPECT_EQ(status("crash").pid, -1);

  // Backoff 1 s, 2 s, 4 s ... on the fake clock: nothing happens before the delay.
  poll_for(100ms);
  EXPECT_EQ(status("crash").runs, 1u);
  clock_.advance(999ms);
  poll_for(50ms);
  EXPECT_EQ(status("crash").runs, 1u);
  clock_.advance(1ms);
  ASSERT_TRUE(poll_until([&] { return failures_["crash"] == 2; }));
  EXPECT_EQ(status("crash").runs, 2u);
  clock_.advance(1s);
  poll_for(50ms);
  EXPECT_EQ(status("crash").runs, 2u);
  clock_.advance(1s);
  ASSERT_TRUE(poll_until([&] { return failures_["crash"] == 3; }));
  clock_.advance(3s);
  poll_for(50ms);
  EXPECT_EQ(status("crash").runs, 3u);
  clock_.advance(1s);
  ASSERT_TRUE(poll_until([&] { return status("crash").runs == 4u; }));
  EXPECT_THAT(names(), ElementsAre("crash_a"));  // still there after every crash
}

TEST_F(inventory_manager, BackoffIsCappedAtSixtySeconds) {
  plugin("crash", "exit 1");
  manager().start();
  Nanos waited{0};
  for (int run = 1; run <= 9; ++run) {
    ASSERT_TRUE(poll_until([&] { return failures_["crash"] == run; })) << run;
    // Find the delay: advance 1 s at a time until the next run starts.
    Nanos delay{0};
    while (status("crash").runs == uint64_t(run)) {
      clock_.advance(1s);
      delay += 1s;
      manager().poll();
      ASSERT_LE(delay, 61s);
    }
    waited += delay;
    EXPECT_EQ(delay, std::min(Nanos(std::chrono::seconds(1 << (run - 1))), Nanos(60s))) << run;
  }
  EXPECT_THAT(names(), IsEmpty());
}

TEST_F(inventory_manager, GarbageKeepsTheLastGoodTargetsAndRestarts) {
  plugin("garbage", "if [ -f second_run ]; then " + emit(doc({target_json("b", "10.0.0.2")})) +
                        " exec sleep 1000; fi\n" + "touch second_run\n" +
                        emit(doc({target_json("a", "10.0.0.1")})) +
                        "printf 'this is { not a document\\n---\\n'\nexec sleep 1000");
  manager().start();
  ASSERT_TRUE(poll_until([&] { return failures_["garbage"] == 1 && status("garbage").pid == -1; }));
  EXPECT_THAT(names(), ElementsAre("garbage_a"));
  EXPECT_THAT(status("garbage").last_error, ::testing::StartsWith("wrote an unreadable document"));
  clock_.advance(1s);  // backoff
  ASSERT_TRUE(poll_until([&] { return names() == std::vector<std::string>{"garbage_b"}; }));
  EXPECT_EQ(failures_["garbage"], 1);
}

TEST_F(inventory_manager, GarbageFirstMeansNoTargets) {
  plugin("garbage", "echo 'Traceback (most recent call last):'\necho '---'\nexec sleep 1000");
  manager().start();
  ASSERT_TRUE(poll_until([&] { return failures_["garbage"] == 1; }));
  EXPECT_THAT(names(), IsEmpty());
}

TEST_F(inventory_manager, HangBeforeTheFirstDocumentIsKilled) {
  plugin("hang", "exec sleep 1000");
  manager().start();
  poll_for(100ms);
  EXPECT_GT(status("hang").pid, 0);
  clock_.advance(10s);
  ASSERT_TRUE(poll_until([&] { return status("hang").pid == -1; }));
  EXPECT_EQ(failures_["hang"], 1);
  EXPECT_EQ(status("hang").last_error, "wrote no document within 10 s: killed");
}

TEST_F(inventory_manager, OneShotPluginIsRerun) {
  plugin("once", "echo $$ >> runs\n" + emit(doc({target_json("a", "10.0.0.1")})));
  manager().start();
  ASSERT_TRUE(poll_until([&] { return !names().empty() && status("once").pid == -1; }));
  EXPECT_THAT(failures_, IsEmpty());
  clock_.advance(29s);
  poll_for(50ms);
  EXPECT_EQ(status("once").runs, 1u);
  clock_.advance(1s);
  ASSERT_TRUE(poll_until([&] { return status("once").runs == 2u; }));
  EXPECT_THAT(failures_, IsEmpty());
  EXPECT_THAT(names(), ElementsAre("once_a"));
}

TEST_F(inventory_manager, ExitWithoutDocumentIsAFailure) {
  plugin("silent", "exit 0");
  manager().start();
  ASSERT_TRUE(poll_until([&] { return failures_["silent"] == 1; }));
  EXPECT_EQ(status("silent").last_error, "exited without writing a document");
}

TEST_F(inventory_manager, DisabledAndNonPluginFilesAreNotStarted) {
  plugin("a", emit(doc({target_json("x", "10.0.0.1")})) + "exec sleep 1000");
  plugin("b.py", emit(doc({target_json("x", "10.0.0.2")})) + "exec sleep 1000");
  plugin("c", "exec sleep 1000", /*executable=*/false);
  plugin("_helper", "exec sleep 1000");
  plugin(".hidden", "exec sleep 1000");
  std::ofstream(dir_ / "a.yaml") << "setting: 1\n";
  options_.disabled = {"b"};
  EXPECT_THAT(manager().start(), ElementsAre("a"));
  ASSERT_TRUE(poll_until([&] { return !names().empty(); }));
  EXPECT_THAT(names(), ElementsAre("a_x"));

  manager_.reset();
  options_.disabled = {"a"};
  EXPECT_THAT(manager().start(), ElementsAre("b"));  // b.py runs as plug-in `b`
  ASSERT_TRUE(poll_until([&] { return !names().empty(); }));
  EXPECT_THAT(names(), ElementsAre("b_x"));
}

TEST_F(inventory_manager, ConfigPathEnvironmentAndWorkingDirectory) {
  // The hostname carries what the plug-in was given: its config file, its name, the probe name, its cwd.
  plugin(
      "env",
      "h=$(basename \"$1\")-$NETPROBE_INVENTORY-$NETPROBE_PROBE_NAME-$(basename \"$(pwd)\" | cut -c1-11)"
      "-${PROM_PASSWORD:-none}\n" +
          emit(doc(
              {R"({"hostname": "'$h'", "destination": "10.0.0.1", "type": "ICMPping", "groups": ["g"]})"})) +
          "exec sleep 1000");
  std::ofstream(dir_ / "env.yaml") << "x: 1\n";
  setenv("PROM_PASSWORD", "secret", 1);
  manager().start();
  unsetenv("PROM_PASSWORD");
  ASSERT_TRUE(poll_until([&] { return !names().empty(); }));
  EXPECT_THAT(names(), ElementsAre("env_env.yaml-env-lab-netprobe-in-none"));
}

TEST_F(inventory_manager, LifetimeEndsOnTheClock) {
  plugin("p", emit(doc({target_json("short", "10.0.0.1", R"(, "lifetime": "10s")"),
                        target_json("long", "10.0.0.2", R"(, "lifetime": "1h")"),
                        target_json("forever", "10.0.0.3")})) +
                  "exec sleep 1000");
  manager().start();
  ASSERT_TRUE(poll_until([&] { return names().size() == 3; }));
  EXPECT_LE(manager().next_deadline(), clock_.monotonic() + 10s);
  const uint64_t g = manager().generation();
  clock_.advance(9s);
  manager().poll();
  EXPECT_EQ(names().size(), 3u);
  EXPECT_EQ(manager().generation(), g);
  clock_.advance(1s);
  manager().poll();
  EXPECT_THAT(names(), ElementsAre("p_forever", "p_long"));
  EXPECT_NE(manager().generation(), g);
  EXPECT_EQ(targets_["p"], 2u);
  clock_.advance(1h);
  EXPECT_THAT(names(), ElementsAre("p_forever"));  // dynamic_targets(now) filters even before poll()
}

TEST_F(inventory_manager, UnknownGroupsAreDropped) {
  plugin(
      "p",
      emit(doc(
          {R"({"hostname": "a", "destination": "10.0.0.1", "type": "ICMPping", "groups": ["g1", "nope"]})"})) +
          "exec sleep 1000");
  manager().start();
  ASSERT_TRUE(poll_until([&] { return names().size() == 1; }));
  EXPECT_THAT(manager().dynamic_targets().at("p_a").groups, ElementsAre("g1", "nope"));
  const uint64_t g = manager().generation();
  manager().set_known_groups({"g1", "g2"});
  EXPECT_NE(manager().generation(), g);
  EXPECT_THAT(manager().dynamic_targets().at("p_a").groups, ElementsAre("g1"));
}

TEST_F(inventory_manager, ExecFailureIsAFailure) {
  plugin("badshebang", "");
  std::ofstream(dir_ / "badshebang") << "#!/nonexistent/interpreter\n";
  manager().start();
  manager().poll();
  EXPECT_EQ(failures_["badshebang"], 1);
  EXPECT_THAT(status("badshebang").last_error, ::testing::HasSubstr("cannot execute"));
}

TEST_F(inventory_manager, MissingDirectoryMeansNoPlugin) {
  options_.directory = (dir_ / "nope").string();
  EXPECT_THAT(manager().start(), IsEmpty());
  manager().poll();
  EXPECT_THAT(names(), IsEmpty());
  EXPECT_EQ(manager().next_deadline(), Nanos::max());
}

TEST_F(inventory_manager, StopKillsThePluginAndItsChildren) {
  plugin("p", "sleep 1000 &\necho $! > child.pid\n" + emit(doc({target_json("a", "10.0.0.1")})) + "wait");
  manager().start();
  ASSERT_TRUE(poll_until([&] { return !names().empty(); }));
  int child = 0;
  std::ifstream(dir_ / "child.pid") >> child;
  ASSERT_GT(child, 0);
  manager().stop();
  EXPECT_EQ(status("p").pid, -1);
  // Gone, or a zombie waiting for a reaper that is not ours (its parent, the script, is dead).
  auto alive = [&] {
    std::ifstream stat("/proc/" + std::to_string(child) + "/stat");
    std::string pid, comm, state;
    return stat >> pid >> comm >> state && state != "Z";
  };
  for (int i = 0; i < 100 && alive(); ++i) std::this_thread::sleep_for(10ms);
  EXPECT_FALSE(alive());                     // the whole process group went
  EXPECT_THAT(names(), ElementsAre("p_a"));  // targets are kept
}

TEST(inventory_directory, ResolvedAgainstTheConfigFile) {
  Config c;
  c.source_path = "/etc/netprobe/netprobe.yaml";
  EXPECT_EQ(inventory_directory(c), "/etc/netprobe/inventories");
  c.global.inventory_dir = "plugins";
  EXPECT_EQ(inventory_directory(c), "/etc/netprobe/plugins");
  c.global.inventory_dir = "/usr/share/netprobe/inventories";
  EXPECT_EQ(inventory_directory(c), "/usr/share/netprobe/inventories");
  c.source_path = "netprobe.yaml";
  c.global.inventory_dir = "";
  EXPECT_EQ(inventory_directory(c), "inventories");
}

}  // namespace
}  // namespace netprobe
