// ProcessCollector: prometheus_client's process_* families, with plausible values for this process, and
// the whole process tree's netprobe_process_* families on a fake /proc.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>

#include "metrics/process_collector.h"

namespace netprobe {
namespace {

std::map<std::string, prometheus::MetricFamily> collect() {
  std::map<std::string, prometheus::MetricFamily> out;
  for (auto& f : ProcessCollector().Collect()) out.emplace(f.name, f);
  return out;
}

double value(const prometheus::MetricFamily& f) {
  return f.type == prometheus::MetricType::Counter ? f.metric.at(0).counter.value
                                                   : f.metric.at(0).gauge.value;
}

TEST(metrics_ProcessCollector, ExposesPrometheusClientFamilies) {
  auto families = collect();
  for (const char* name :
       {"process_cpu_seconds_total", "process_resident_memory_bytes", "process_virtual_memory_bytes",
        "process_start_time_seconds", "process_open_fds", "process_max_fds"}) {
    ASSERT_TRUE(families.count(name)) << name;
    EXPECT_EQ(families[name].metric.size(), 1u) << name;
    EXPECT_TRUE(families[name].metric[0].label.empty()) << name;
  }
  EXPECT_EQ(families["process_cpu_seconds_total"].type, prometheus::MetricType::Counter);
  EXPECT_EQ(families["process_open_fds"].type, prometheus::MetricType::Gauge);
}

TEST(metrics_ProcessCollector, ValuesArePlausible) {
  auto families = collect();
  EXPECT_GE(value(families["process_cpu_seconds_total"]), 0);
  EXPECT_GT(value(families["process_resident_memory_bytes"]), 1 << 20);
  EXPECT_GT(value(families["process_virtual_memory_bytes"]),
            value(families["process_resident_memory_bytes"]));
  const double start = value(families["process_start_time_seconds"]);
  const double now = static_cast<double>(std::time(nullptr));
  EXPECT_LE(start, now + 1);
  EXPECT_GT(start, now - 3600);  // a unit test binary started less than an hour ago
  EXPECT_GE(value(families["process_open_fds"]), 3);
  EXPECT_GE(value(families["process_max_fds"]), value(families["process_open_fds"]));
}

TEST(metrics_ProcessCollector, OpenFdsFollowsDescriptors) {
  const double before = value(collect()["process_open_fds"]);
  int fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  const double during = value(collect()["process_open_fds"]);
  ::close(fd);
  EXPECT_EQ(during, before + 1);
}

// A fake /proc: stat lines as the kernel writes them (command names with spaces and parentheses too).
class FakeProc {
 public:
  FakeProc() {
    char tmpl[] = "/tmp/netprobe-fakeproc-XXXXXX";
    root_ = ::mkdtemp(tmpl);
    write("stat", "cpu  1 2 3\nbtime 1700000000\n");
    std::filesystem::create_directories(root_ + "/self/fd");
  }
  ~FakeProc() { std::filesystem::remove_all(root_); }
  const std::string& root() const { return root_; }

  // utime and stime in clock ticks, rss in pages.
  void process(const std::string& pid, const std::string& comm, char state, unsigned long utime,
               unsigned long stime, unsigned long rss) {
    std::filesystem::create_directories(root_ + "/" + pid);
    // Fields 1..24: pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime
    // stime cutime cstime priority nice threads itrealvalue starttime vsize rss ...
    write(pid + "/stat", pid + " (" + comm + ") " + state + " 1 1 1 0 -1 4194304 10 0 0 0 " +
                             std::to_string(utime) + " " + std::to_string(stime) +
                             " 7 7 20 0 3 0 500 123456789 " + std::to_string(rss) +
                             " 18446744073709551615 1 2\n");
  }

 private:
  void write(const std::string& rel, const std::string& text) { std::ofstream(root_ + "/" + rel) << text; }
  std::string root_;
};

// "process=worker,worker=1" -> value, for one family.
std::map<std::string, double> series(const std::vector<prometheus::MetricFamily>& families,
                                     const std::string& name) {
  std::map<std::string, double> out;
  for (const auto& f : families) {
    if (f.name != name) continue;
    for (const auto& m : f.metric) {
      std::string key;
      for (const auto& l : m.label) key += (key.empty() ? "" : ",") + l.name + "=" + l.value;
      out[key] = f.type == prometheus::MetricType::Counter ? m.counter.value : m.gauge.value;
    }
  }
  return out;
}

TEST(metrics_ProcessCollector, WholeTreeOnFakeProc) {
  const double hz = double(sysconf(_SC_CLK_TCK));
  const double page = double(sysconf(_SC_PAGESIZE));
  FakeProc proc;
  proc.process("self", "netprobe", 'S', 100, 50, 1000);
  proc.process("200", "netprobe-launch", 'S', 3, 1, 200);
  proc.process("300", "netprobe-w0", 'R', 4000, 1000, 5000);
  proc.process("301", "netprobe-w1", 'S', 2000, 0, 4000);
  proc.process("302", "netprobe-launch", 'S', 0, 0, 150);  // a worker just forked, not named yet
  proc.process("400", "bash", 'S', 99, 99, 99);            // a reused pid: not ours any more
  proc.process("401", "netprobe-w3", 'Z', 5, 5, 0);        // exited, not reaped yet
  proc.process("402", "a) (b", 'S', 1, 1, 1);              // parentheses in a command name

  ProcessCollector collector(proc.root());
  // Before the supervisor publishes its children: the supervisor alone.
  EXPECT_EQ(series(collector.Collect(), "netprobe_process_cpu_seconds_total"),
            (std::map<std::string, double>{{"process=supervisor", 150 / hz}}));

  collector.set_children({{"launcher", std::nullopt, 200},
                          {"worker", 0, 300},
                          {"worker", 1, 301},
                          {"worker", 2, 302},
                          {"worker", 3, 400},
                          {"worker", 4, 401},
                          {"worker", 5, 402},
                          {"worker", 6, 999}});  // gone: no /proc entry
  const auto families = collector.Collect();
  EXPECT_EQ(series(families, "netprobe_process_cpu_seconds_total"),
            (std::map<std::string, double>{{"process=supervisor", 150 / hz},
                                           {"process=launcher", 4 / hz},
                                           {"process=worker,worker=0", 5000 / hz},
                                           {"process=worker,worker=1", 2000 / hz},
                                           {"process=worker,worker=2", 0}}));
  EXPECT_EQ(series(families, "netprobe_process_resident_memory_bytes"),
            (std::map<std::string, double>{{"process=supervisor", 1000 * page},
                                           {"process=launcher", 200 * page},
                                           {"process=worker,worker=0", 5000 * page},
                                           {"process=worker,worker=1", 4000 * page},
                                           {"process=worker,worker=2", 150 * page}}));
  // The standard families stay the supervisor's own.
  EXPECT_EQ(series(families, "process_cpu_seconds_total"), (std::map<std::string, double>{{"", 150 / hz}}));
  EXPECT_EQ(series(families, "process_resident_memory_bytes"),
            (std::map<std::string, double>{{"", 1000 * page}}));
  EXPECT_EQ(series(families, "process_start_time_seconds"),
            (std::map<std::string, double>{{"", 1700000000 + 500 / hz}}));

  // A worker that exits leaves with the next published list.
  collector.set_children({{"launcher", std::nullopt, 200}, {"worker", 1, 301}});
  EXPECT_EQ(series(collector.Collect(), "netprobe_process_cpu_seconds_total").size(), 3u);
}

TEST(metrics_ProcessCollector, UnreadableOrMalformedStatIsLeftOut) {
  FakeProc proc;
  ProcessCollector collector(proc.root());  // no self/stat at all
  auto families = collector.Collect();
  EXPECT_TRUE(series(families, "process_cpu_seconds_total").empty());
  EXPECT_TRUE(series(families, "netprobe_process_cpu_seconds_total").empty());
  std::filesystem::create_directories(proc.root() + "/77");
  for (const char* text : {"", "77 netprobe-w0 S 1 2", "77 (netprobe-w0) S 1", ")(", "77 (netprobe-w0"}) {
    std::ofstream(proc.root() + "/77/stat") << text;
    collector.set_children({{"worker", 0, 77}});
    EXPECT_TRUE(series(collector.Collect(), "netprobe_process_cpu_seconds_total").empty()) << text;
  }
}

TEST(metrics_ProcessCollector, TreeOfThisProcess) {
  ProcessCollector collector;
  collector.set_children({{"worker", 0, getpid()}});  // not named netprobe-w*: left out
  const auto cpu = series(collector.Collect(), "netprobe_process_cpu_seconds_total");
  EXPECT_EQ(cpu.size(), 1u);
  EXPECT_TRUE(cpu.count("process=supervisor"));
}

}  // namespace
}  // namespace netprobe
