#include "metrics/process_collector.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <charconv>
#include <cstdio>
#include <cstring>
#include <string_view>
#include <utility>

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

// The fields of /proc/<pid>/stat that the families need (proc(5) numbering in the comments).
struct Stat {
  std::string comm;              // (2)
  char state = '?';              // (3)
  unsigned long long utime = 0;  // (14) clock ticks
  unsigned long long stime = 0;  // (15)
  unsigned long long start = 0;  // (22) clock ticks after boot
  unsigned long long vsize = 0;  // (23) bytes
  unsigned long long rss = 0;    // (24) pages
};

std::optional<Stat> read_stat(const std::string& path) {
  char buf[1024];
  const ssize_t len = read_small_file(path.c_str(), buf, sizeof buf);
  // The command name is parenthesised and may itself contain spaces or ')': the last ')' ends it.
  const char* lparen = len > 0 ? std::strchr(buf, '(') : nullptr;
  const char* rparen = len > 0 ? std::strrchr(buf, ')') : nullptr;
  if (!lparen || !rparen || rparen < lparen) return std::nullopt;
  Stat st;
  st.comm.assign(lparen + 1, rparen);
  std::string_view rest(rparen + 1, static_cast<size_t>(buf + len - (rparen + 1)));
  unsigned long long fields[24] = {};  // fields[i] is stat field i+3
  size_t count = 0;
  size_t pos = 0;
  while (count < 24 && pos < rest.size()) {
    while (pos < rest.size() && rest[pos] == ' ') ++pos;
    if (pos >= rest.size()) break;
    size_t end = rest.find(' ', pos);
    if (end == std::string_view::npos) end = rest.size();
    if (count == 0) st.state = rest[pos];  // field 3 is a letter
    std::from_chars(rest.data() + pos, rest.data() + end, fields[count]);
    ++count;
    pos = end;
  }
  if (count < 22) return std::nullopt;
  st.utime = fields[14 - 3];
  st.stime = fields[15 - 3];
  st.start = fields[22 - 3];
  st.vsize = fields[23 - 3];
  st.rss = fields[24 - 3];
  return st;
}

// Whether a child's pid still holds the netprobe process it was (pids are reused).
bool is_ours(const ProcessCollector::Child& child, const Stat& st) {
  if (st.state == 'Z' || st.state == 'X') return false;
  if (child.kind == "launcher") return st.comm == "netprobe-launch";
  // A worker is named right after the launcher forked it: until then it still has the launcher's name.
  // The on-demand worker is netprobe-od (docs/on-demand.md#the-on-demand-worker).
  return st.comm.rfind("netprobe-w", 0) == 0 || st.comm == "netprobe-od" || st.comm == "netprobe-launch";
}

}  // namespace

ProcessCollector::ProcessCollector(std::string proc_root) : proc_root_(std::move(proc_root)) {
  long ticks = ::sysconf(_SC_CLK_TCK);
  if (ticks > 0) ticks_per_second_ = static_cast<double>(ticks);
  long page = ::sysconf(_SC_PAGESIZE);
  if (page > 0) page_size_ = page;
  // btime never changes while we run: read it once. /proc/stat grows with the CPU count, hence stdio.
  if (FILE* f = std::fopen((proc_root_ + "/stat").c_str(), "re")) {
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

void ProcessCollector::set_children(std::vector<Child> children) {
  std::lock_guard lock(mu_);
  children_ = std::move(children);
}

std::vector<prometheus::MetricFamily> ProcessCollector::Collect() const {
  using prometheus::MetricType;
  std::vector<prometheus::MetricFamily> out;
  try {
    const std::optional<Stat> self = read_stat(proc_root_ + "/self/stat");
    if (self) {
      out.push_back(family("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.",
                           MetricType::Counter,
                           static_cast<double>(self->utime + self->stime) / ticks_per_second_));
      out.push_back(family("process_virtual_memory_bytes", "Virtual memory size in bytes.", MetricType::Gauge,
                           static_cast<double>(self->vsize)));
      out.push_back(family("process_resident_memory_bytes", "Resident memory size in bytes.",
                           MetricType::Gauge,
                           static_cast<double>(self->rss) * static_cast<double>(page_size_)));
      if (boot_time_s_ >= 0) {
        out.push_back(family("process_start_time_seconds",
                             "Start time of the process since unix epoch in seconds.", MetricType::Gauge,
                             boot_time_s_ + static_cast<double>(self->start) / ticks_per_second_));
      }
    }

    if (DIR* dir = ::opendir((proc_root_ + "/self/fd").c_str())) {
      double fds = 0;
      while (const dirent* e = ::readdir(dir)) {
        if (e->d_name[0] != '.') ++fds;
      }
      ::closedir(dir);
      if (proc_root_ == "/proc") fds -= 1;  // the descriptor opendir itself holds
      out.push_back(family("process_open_fds", "Number of open file descriptors.", MetricType::Gauge, fds));
    }
    rlimit lim{};
    if (::getrlimit(RLIMIT_NOFILE, &lim) == 0) {
      const double max_fds = lim.rlim_cur == RLIM_INFINITY ? -1 : static_cast<double>(lim.rlim_cur);
      out.push_back(
          family("process_max_fds", "Maximum number of open file descriptors.", MetricType::Gauge, max_fds));
    }

    // The whole tree: the supervisor, then its children as last published.
    prometheus::MetricFamily cpu;
    cpu.name = "netprobe_process_cpu_seconds_total";
    cpu.help = "User and system CPU time of each netprobe process, in seconds";
    cpu.type = MetricType::Counter;
    prometheus::MetricFamily rss;
    rss.name = "netprobe_process_resident_memory_bytes";
    rss.help = "Resident memory of each netprobe process, in bytes";
    rss.type = MetricType::Gauge;
    auto add = [&](const Stat& st, const std::string& kind, std::optional<uint32_t> index) {
      std::vector<prometheus::ClientMetric::Label> labels{{"process", kind}};
      if (index) labels.push_back({"worker", std::to_string(*index)});
      prometheus::ClientMetric c;
      c.label = labels;
      c.counter.value = static_cast<double>(st.utime + st.stime) / ticks_per_second_;
      cpu.metric.push_back(std::move(c));
      prometheus::ClientMetric r;
      r.label = std::move(labels);
      r.gauge.value = static_cast<double>(st.rss) * static_cast<double>(page_size_);
      rss.metric.push_back(std::move(r));
    };
    if (self) add(*self, "supervisor", std::nullopt);
    std::vector<Child> children;
    {
      std::lock_guard lock(mu_);
      children = children_;
    }
    for (const auto& child : children) {
      if (child.pid <= 0) continue;
      const auto st = read_stat(proc_root_ + "/" + std::to_string(child.pid) + "/stat");
      if (st && is_ours(child, *st)) add(*st, child.kind, child.index);
    }
    if (!cpu.metric.empty()) {
      out.push_back(std::move(cpu));
      out.push_back(std::move(rss));
    }
  } catch (...) {
    // Only allocation can throw here; a scrape without process_* beats a dead HTTP thread.
  }
  return out;
}

}  // namespace netprobe
