// ProcessCollector: prometheus_client's process_* families, with plausible values for this process.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <unistd.h>

#include <ctime>
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

}  // namespace
}  // namespace netprobe
