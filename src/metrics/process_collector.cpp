#include "metrics/process_collector.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <charconv>
#include <cstdio>
#include <cstring>
#include <string_view>

namespace netprobe {

namespace {

// Reads a small /proc file into `buf` (NUL-terminated); returns the length, or -1.
ssize_t read_small_file(const char* path, char* buf, size_t size) {
  int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  size_t used = 0;
  while (used + 1 < size) {
    ssize_t n = ::read(fd, buf + used, size - 1 - used);
    if (n < 0) {
      if (errno == EINTR) continue;
      ::close(fd);
      return -1;
    }
    if (n == 0) break;
    used += static_cast<size_t>(n);
  }
  ::close(fd);
  buf[used] = '\0';
  return static_cast<ssize_t>(used);
}

prometheus::MetricFamily family(const char* name, const char* help, prometheus::MetricType type,
                                double value) {
  prometheus::MetricFamily f;
  f.name = name;
  f.help = help;
  f.type = type;
  prometheus::ClientMetric m;
  if (type == prometheus::MetricType::Counter) {
    m.counter.value = value;
  } else {
    m.gauge.value = value;
  }
  f.metric.push_back(std::move(m));
  return f;
}

}  // namespace

ProcessCollector::ProcessCollector() {
  long ticks = ::sysconf(_SC_CLK_TCK);
  if (ticks > 0) ticks_per_second_ = static_cast<double>(ticks);
  long page = ::sysconf(_SC_PAGESIZE);
  if (page > 0) page_size_ = page;
  // btime never changes while we run: read it once. /proc/stat grows with the CPU count, hence stdio.
  if (FILE* f = std::fopen("/proc/stat", "re")) {
    char line[256];
    while (std::fgets(line, sizeof line, f)) {
      unsigned long long btime = 0;
      if (std::sscanf(line, "btime %llu", &btime) == 1) {
        boot_time_s_ = static_cast<double>(btime);
        break;
      }
    }
    std::fclose(f);
  }
}

std::vector<prometheus::MetricFamily> ProcessCollector::Collect() const {
  using prometheus::MetricType;
  std::vector<prometheus::MetricFamily> out;
  try {
    char buf[1024];
    ssize_t len = read_small_file("/proc/self/stat", buf, sizeof buf);
    // Fields after the command name, which is parenthesised and may itself contain spaces or ')'.
    const char* rparen = len > 0 ? std::strrchr(buf, ')') : nullptr;
    if (rparen) {
      std::string_view rest(rparen + 1, static_cast<size_t>(buf + len - (rparen + 1)));
      unsigned long long fields[24] = {};  // fields[i] is stat field i+3 (1-based numbering of proc(5))
      size_t count = 0;
      size_t pos = 0;
      while (count < 24 && pos < rest.size()) {
        while (pos < rest.size() && rest[pos] == ' ') ++pos;
        size_t end = rest.find(' ', pos);
        if (end == std::string_view::npos) end = rest.size();
        // Field 3 (state) is a letter: from_chars fails and leaves 0, which is fine.
        std::from_chars(rest.data() + pos, rest.data() + end, fields[count]);
        ++count;
        pos = end;
      }
      if (count >= 22) {
        const double utime = static_cast<double>(fields[14 - 3]);
        const double stime = static_cast<double>(fields[15 - 3]);
        out.push_back(family("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.",
                             MetricType::Counter, (utime + stime) / ticks_per_second_));
        out.push_back(family("process_virtual_memory_bytes", "Virtual memory size in bytes.",
                             MetricType::Gauge, static_cast<double>(fields[23 - 3])));
        out.push_back(family("process_resident_memory_bytes", "Resident memory size in bytes.",
                             MetricType::Gauge,
                             static_cast<double>(fields[24 - 3]) * static_cast<double>(page_size_)));
        if (boot_time_s_ >= 0) {
          out.push_back(family("process_start_time_seconds",
                               "Start time of the process since unix epoch in seconds.", MetricType::Gauge,
                               boot_time_s_ + static_cast<double>(fields[22 - 3]) / ticks_per_second_));
        }
      }
    }

    if (DIR* dir = ::opendir("/proc/self/fd")) {
      double fds = 0;
      while (const dirent* e = ::readdir(dir)) {
        if (e->d_name[0] != '.') ++fds;
      }
      ::closedir(dir);
      fds -= 1;  // the descriptor opendir itself holds
      out.push_back(family("process_open_fds", "Number of open file descriptors.", MetricType::Gauge, fds));
    }
    rlimit lim{};
    if (::getrlimit(RLIMIT_NOFILE, &lim) == 0) {
      const double max_fds = lim.rlim_cur == RLIM_INFINITY ? -1 : static_cast<double>(lim.rlim_cur);
      out.push_back(
          family("process_max_fds", "Maximum number of open file descriptors.", MetricType::Gauge, max_fds));
    }
  } catch (...) {
    // Only allocation can throw here; a scrape without process_* beats a dead HTTP thread.
  }
  return out;
}

}  // namespace netprobe
