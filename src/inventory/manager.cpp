#include "inventory/manager.h"
#include "core/backoff.h"
#include "core/wait_status.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "inventory/plugin_process.h"
#include "logging/escape.h"

namespace netprobe {

namespace fs = std::filesystem;

struct InventoryManager::Plugin {
  enum class State { kIdle, kRunning, kKilling, kWaiting };
  std::string name;
  std::string path;
  std::string config_path;  // "" if <dir>/<name>.yaml does not exist
  std::optional<PluginProcess> proc;
  State state = State::kIdle;
  Nanos started{};
  Nanos restart_at{};
  Nanos kill_deadline{};
  bool documents_this_run = false;
  std::string out;        // stdout not yet framed into documents
  size_t scan_from = 0;   // out[0, scan_from) holds complete lines that are not a separator
  std::string err;        // stderr not yet split into lines
  std::string last_text;  // last document handled (an unchanged document is not parsed again)
  int streak = 0;         // consecutive failures (logged)
  Backoff backoff;
  uint64_t runs = 0;
  uint64_t failures = 0;
  uint64_t documents = 0;  // accepted documents (unchanged repeats included)
  std::string last_error;
  std::map<std::string, TimedTarget> targets;
};

namespace {

double seconds(Nanos d) { return std::chrono::duration<double>(d).count(); }

std::string_view trim_right(std::string_view s) {
  while (!s.empty() && (s.back() == '\r' || s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool blank(std::string_view s) {
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; });
}

}  // namespace

std::string inventory_directory(const Config& config) {
  fs::path dir(config.global.inventory_dir.empty() ? "inventories" : config.global.inventory_dir);
  if (dir.is_relative()) dir = fs::path(config.source_path).parent_path() / dir;
  return dir.lexically_normal().string();
}

InventoryOptions inventory_options(const Config& config) {
  InventoryOptions o;
  o.directory = inventory_directory(config);
  o.disabled = config.global.disable_dynamic_inventories;
  o.probe_name = config.global.probe_name;
  o.logging_level = config.global.logging_level;
  o.default_dns_update_interval_s = config.global.dns_update_interval_s;
  return o;
}

InventoryManager::InventoryManager(InventoryOptions options, Clock& clock)
    : options_(std::move(options)), clock_(clock) {}

InventoryManager::~InventoryManager() { stop(); }

std::vector<std::string> InventoryManager::start() {
  std::vector<std::string> started;
  std::error_code ec;
  if (!fs::is_directory(options_.directory, ec)) {
    spdlog::info("inventory: no plug-in directory {}: no dynamic inventory", options_.directory);
    return started;
  }
  const auto valid_name = [](std::string_view n) {
    return !n.empty() && std::all_of(n.begin(), n.end(), [](char c) {
      return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
    });
  };
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(options_.directory, ec)) files.push_back(e.path());
  std::sort(files.begin(), files.end());
  for (const auto& f : files) {
    const std::string file = f.filename().string();
    if (file.empty() || file[0] == '.' || file[0] == '_' || file.back() == '~') continue;
    if (!fs::is_regular_file(f, ec)) continue;
    const std::string name = file.substr(0, file.find('.'));
    const std::string ext = f.extension().string();
    if (access(f.c_str(), X_OK) != 0) {
      if (ext.empty() || ext == ".py" || ext == ".sh" || ext == ".pl" || ext == ".rb")
        spdlog::warn("inventory: {} is not executable: ignored (chmod +x to run it as a plug-in)",
                     f.string());
      continue;  // configuration files, samples, documentation
    }
    if (!valid_name(name)) {
      spdlog::warn("inventory: {}: plug-in names must be lowercase letters, digits, '_' or '-': ignored",
                   escape_for_log(f.string()));
      continue;
    }
    if (std::find(options_.disabled.begin(), options_.disabled.end(), name) != options_.disabled.end()) {
      spdlog::info("inventory={} disabled by global.disable_dynamic_inventories: not started", name);
      continue;
    }
    if (std::any_of(plugins_.begin(), plugins_.end(), [&](const auto& p) { return p->name == name; })) {
      spdlog::warn("inventory: {} has the same plug-in name as another file: ignored", f.string());
      continue;
    }
    auto p = std::make_unique<Plugin>();
    p->name = name;
    // Healthy is decided here (a run that delivered and lived backoff_max), not by the run's length alone.
    p->backoff = Backoff({options_.backoff_initial, options_.backoff_max, Nanos::max()});
    p->path = fs::absolute(f).lexically_normal().string();
    const fs::path config = fs::absolute(f.parent_path() / (name + ".yaml")).lexically_normal();
    if (fs::is_regular_file(config, ec)) p->config_path = config.string();
    plugins_.push_back(std::move(p));
  }
  for (auto& p : plugins_) {
    if (options_.on_started) options_.on_started(p->name);
    spawn(*p);
    started.push_back(p->name);
  }
  return started;
}

void InventoryManager::spawn(Plugin& p) {
  PluginProcess::Spec spec;
  spec.path = p.path;
  if (!p.config_path.empty()) spec.args.push_back(p.config_path);
  spec.set_env = {"NETPROBE_INVENTORY=" + p.name, "NETPROBE_PROBE_NAME=" + options_.probe_name,
                  "NETPROBE_LOGGING_LEVEL=" + options_.logging_level,
                  "PYTHONUNBUFFERED=1"};            // a Python plug-in that forgets to flush still delivers
  spec.unset_env = {"PROM_USER", "PROM_PASSWORD"};  // the /metrics credentials are none of its business
  spec.cwd = options_.directory;
  const Nanos now = clock_.monotonic();
  p.runs++;
  p.started = now;
  p.documents_this_run = false;
  p.out.clear();
  p.scan_from = 0;
  p.err.clear();
  auto proc = PluginProcess::spawn(spec);
  if (!proc.ok()) {
    p.state = Plugin::State::kRunning;  // so that finish_run() schedules the restart
    fail(p, proc.error().message, /*kill=*/false);
    finish_run(p, 0);
    return;
  }
  spdlog::info("inventory={} started pid={} config={}", p.name, proc->pid(),
               p.config_path.empty() ? "(none)" : p.config_path);
  p.proc.emplace(std::move(proc).value());
  p.state = Plugin::State::kRunning;
}

void InventoryManager::fail(Plugin& p, const std::string& why, bool kill) {
  p.failures++;
  p.last_error = why;
  spdlog::error("inventory={} {}", p.name, why);
  if (options_.on_failure) options_.on_failure(p.name);
  if (kill && p.proc && p.state == Plugin::State::kRunning) {
    p.proc->signal_group(SIGTERM);
    p.state = Plugin::State::kKilling;
    p.kill_deadline = clock_.monotonic() + options_.stop_grace;
  }
}

void InventoryManager::finish_run(Plugin& p, int wait_status) {
  const Nanos now = clock_.monotonic();
  const bool killed_by_us = p.state == Plugin::State::kKilling;
  const bool spawn_failed = !p.proc;
  p.proc.reset();
  p.state = Plugin::State::kWaiting;
  if (!killed_by_us && !spawn_failed) {
    if (WIFEXITED(wait_status) && WEXITSTATUS(wait_status) == 0 && p.documents_this_run) {
      // A one-shot plug-in that did its job.
      p.streak = 0;
      p.last_error.clear();
      p.restart_at = now + options_.rerun_interval;
      spdlog::debug("inventory={} exited after its document(s); next run in {} s", p.name,
                    seconds(options_.rerun_interval));
      return;
    }
    fail(p,
         WIFEXITED(wait_status) && WEXITSTATUS(wait_status) == 0 ? "exited without writing a document"
                                                                 : describe_wait_status(wait_status),
         /*kill=*/false);
  }
  // A run that delivered and then lived a while was healthy: its failure does not extend the backoff.
  if (p.documents_this_run && now - p.started >= options_.backoff_max) {
    p.streak = 0;
    p.backoff.reset();
  }
  const Nanos delay = p.backoff.on_death(p.started, now);
  p.streak++;
  p.restart_at = now + delay;
  spdlog::warn("inventory={} restarting in {} s (failure {} in a row); its last targets stay", p.name,
               seconds(delay), p.streak);
}

void InventoryManager::drain(Plugin& p) {
  if (!p.proc) return;
  // stderr: logged line by line, so that a plug-in's own messages land in netprobe's log.
  while (p.proc->read_stderr(p.err) == PluginProcess::ReadState::kData) {
  }
  for (size_t nl; (nl = p.err.find('\n')) != std::string::npos || p.err.size() > 4096;) {
    const size_t end = nl == std::string::npos ? 4096 : nl;
    const std::string_view line = trim_right(std::string_view(p.err).substr(0, end));
    if (!line.empty()) spdlog::warn("inventory={} stderr: {}", p.name, escape_for_log(line, 4096));
    p.err.erase(0, nl == std::string::npos ? end : nl + 1);
  }
  if (p.proc->stderr_fd() < 0 && !p.err.empty()) {
    spdlog::warn("inventory={} stderr: {}", p.name, escape_for_log(trim_right(p.err), 4096));
    p.err.clear();
  }

  // stdout: a document ends at a line that is exactly `---`, or at the end of the output.
  for (;;) {
    const auto state = p.proc->read_stdout(p.out);
    if (p.state != Plugin::State::kRunning) {  // being killed for a failure: its output no longer counts
      p.out.clear();
      p.scan_from = 0;
      if (state == PluginProcess::ReadState::kData) continue;
      return;
    }
    size_t pos = p.scan_from;
    for (size_t nl; (nl = p.out.find('\n', pos)) != std::string::npos;) {
      if (trim_right(std::string_view(p.out).substr(pos, nl - pos)) == "---") {
        const std::string doc = p.out.substr(0, pos);
        p.out.erase(0, nl + 1);
        pos = 0;
        handle_document(p, doc);
        if (p.state != Plugin::State::kRunning) return;  // garbage: being killed, ignore the rest
      } else {
        pos = nl + 1;
      }
    }
    p.scan_from = pos;
    if (p.out.size() > options_.max_document_bytes) {
      p.out.clear();
      p.scan_from = 0;
      fail(p,
           fmt::format("wrote a document larger than {} bytes without a `---` line",
                       options_.max_document_bytes),
           /*kill=*/true);
      return;
    }
    if (state == PluginProcess::ReadState::kEof) {
      if (!blank(p.out)) handle_document(p, p.out);
      p.out.clear();
      p.scan_from = 0;
      return;
    }
    if (state == PluginProcess::ReadState::kWouldBlock) return;
  }
}

void InventoryManager::handle_document(Plugin& p, std::string_view text) {
  if (blank(text)) return;    // e.g. a `---` before the first document
  if (text == p.last_text) {  // unchanged: nothing to parse or log again
    p.documents_this_run = true;
    ++p.documents;
    return;
  }
  DocumentOptions doc_options;
  doc_options.default_dns_update_interval_s = options_.default_dns_update_interval_s;
  auto doc = parse_inventory_document(text, p.name, doc_options);
  if (!doc.ok()) {
    // Escaped: the plug-in's bytes must not forge or split log lines.
    fail(p,
         fmt::format("wrote an unreadable document ({}), starting with: {}",
                     escape_for_log(doc.error().message), escape_for_log(text, 120)),
         /*kill=*/true);
    return;
  }
  p.documents_this_run = true;
  ++p.documents;
  p.last_text = std::string(text);
  for (const auto& r : doc->rejected) spdlog::error("inventory target rejected: {}", escape_for_log(r));
  for (const auto& w : doc->warnings) spdlog::warn("inventory target: {}", escape_for_log(w));

  const Nanos now_real = clock_.realtime();
  std::map<std::string, TimedTarget> next;
  for (auto& dt : doc->targets) {
    TimedTarget t;
    t.canonical = std::move(dt.canonical);
    const auto old = p.targets.find(dt.config.name);
    t.first_seen = old != p.targets.end() ? old->second.first_seen : now_real;
    if (dt.lifetime) {
      t.expires_at = dt.creation_date.value_or(t.first_seen) + *dt.lifetime;
      if (*t.expires_at <= now_real) {
        spdlog::info("inventory={} target={} already expired: ignored", p.name, dt.config.name);
        continue;
      }
    }
    t.config = std::move(dt.config);
    const std::string name = t.config.name;
    next.emplace(name, std::move(t));
  }
  if (!doc->rejected.empty())
    spdlog::warn("inventory={} document: {} target(s) used, {} rejected", p.name, next.size(),
                 doc->rejected.size());
  set_targets(p, std::move(next));
}

void InventoryManager::set_targets(Plugin& p, std::map<std::string, TimedTarget> next) {
  size_t added = 0, removed = 0, changed = 0;
  for (const auto& [name, t] : next) {
    auto it = p.targets.find(name);
    if (it == p.targets.end())
      added++;
    else if (it->second.canonical != t.canonical || it->second.expires_at != t.expires_at)
      changed++;
  }
  for (const auto& [name, t] : p.targets) removed += next.count(name) ? 0 : 1;
  p.targets = std::move(next);
  if (added || removed || changed) {
    generation_++;
    spdlog::info("inventory={} targets={} (added {}, changed {}, removed {})", p.name, p.targets.size(),
                 added, changed, removed);
  }
  if (options_.on_targets) options_.on_targets(p.name, p.targets.size());
}

void InventoryManager::expire() {
  const Nanos now_real = clock_.realtime();
  for (auto& p : plugins_) {
    size_t gone = 0;
    for (auto it = p->targets.begin(); it != p->targets.end();) {
      if (it->second.expires_at && *it->second.expires_at <= now_real) {
        spdlog::info("inventory={} target={} lifetime ended: removed", p->name, it->first);
        it = p->targets.erase(it);
        gone++;
      } else {
        ++it;
      }
    }
    if (gone) {
      generation_++;
      if (options_.on_targets) options_.on_targets(p->name, p->targets.size());
    }
  }
}

void InventoryManager::poll() {
  for (auto& pp : plugins_) {
    Plugin& p = *pp;
    const Nanos now = clock_.monotonic();
    if (p.state == Plugin::State::kRunning || p.state == Plugin::State::kKilling) {
      drain(p);
      int status = 0;
      if (p.proc && p.proc->try_reap(&status)) {
        if (p.state == Plugin::State::kRunning) drain(p);  // what it wrote just before exiting
        finish_run(p, status);
      } else if (p.state == Plugin::State::kRunning && !p.documents_this_run &&
                 now - p.started >= options_.first_document_timeout) {
        fail(p,
             fmt::format("wrote no document within {} s: killed", seconds(options_.first_document_timeout)),
             /*kill=*/true);
      } else if (p.state == Plugin::State::kKilling && now >= p.kill_deadline) {
        p.proc->signal_group(SIGKILL);
      }
    }
    if (p.state == Plugin::State::kWaiting && clock_.monotonic() >= p.restart_at) spawn(p);
  }
  expire();
}

void InventoryManager::stop() {
  for (auto& p : plugins_) {
    if (!p->proc) continue;
    p->proc->stop_and_wait(
        int(std::chrono::duration_cast<std::chrono::milliseconds>(options_.stop_grace).count()));
    p->proc.reset();
    p->state = Plugin::State::kIdle;
  }
}

void InventoryManager::terminate() {
  for (auto& p : plugins_)
    if (p->proc) p->proc->signal_group(SIGTERM);
}

std::vector<int> InventoryManager::fds() const {
  std::vector<int> out;
  for (const auto& p : plugins_) {
    if (!p->proc) continue;
    if (p->proc->stdout_fd() >= 0) out.push_back(p->proc->stdout_fd());
    if (p->proc->stderr_fd() >= 0) out.push_back(p->proc->stderr_fd());
  }
  return out;
}

Nanos InventoryManager::next_deadline() const {
  Nanos next = Nanos::max();
  const Nanos now = clock_.monotonic();
  const Nanos now_real = clock_.realtime();
  for (const auto& p : plugins_) {
    switch (p->state) {
      case Plugin::State::kWaiting:
        next = std::min(next, p->restart_at);
        break;
      case Plugin::State::kKilling:
        next = std::min(next, p->kill_deadline);
        if (p->proc && p->proc->stdout_fd() < 0) next = std::min(next, now + std::chrono::milliseconds(20));
        break;
      case Plugin::State::kRunning:
        if (!p->documents_this_run) next = std::min(next, p->started + options_.first_document_timeout);
        // Its stdout closed (it is exiting): the exit itself is only noticed by polling waitpid.
        if (p->proc && p->proc->stdout_fd() < 0) next = std::min(next, now + std::chrono::milliseconds(20));
        break;
      case Plugin::State::kIdle:
        break;
    }
    for (const auto& [name, t] : p->targets)
      if (t.expires_at) next = std::min(next, now + std::max(Nanos(0), *t.expires_at - now_real));
  }
  return next;
}

void InventoryManager::set_known_groups(std::set<std::string> groups) {
  if (known_groups_ == groups) return;
  known_groups_ = std::move(groups);
  warned_groups_.clear();
  generation_++;
}

std::map<std::string, TargetConfig> InventoryManager::dynamic_targets(Nanos now_realtime) const {
  std::map<std::string, TargetConfig> out;
  for (const auto& p : plugins_) {
    for (const auto& [name, t] : p->targets) {
      if (t.expires_at && *t.expires_at <= now_realtime) continue;
      if (out.count(name)) {
        if (warned_groups_.emplace(name, "\n" + p->name).second)
          spdlog::warn("inventory={} target={} has the name of another plug-in's target: ignored", p->name,
                       name);
        continue;
      }
      TargetConfig c = t.config;
      if (known_groups_) {
        const std::string& target = name;  // clang: a lambda may not capture a structured binding
        std::erase_if(c.groups, [&](const std::string& g) {
          if (known_groups_->count(g)) return false;
          if (warned_groups_.emplace(target, g).second)
            spdlog::warn("inventory={} target={}: group \"{}\" does not exist in the configuration; ignored",
                         p->name, target, g);
          return true;
        });
      }
      out.emplace(name, std::move(c));
    }
  }
  return out;
}

std::vector<InventoryStatus> InventoryManager::status() const {
  std::vector<InventoryStatus> out;
  for (const auto& p : plugins_) {
    InventoryStatus s;
    s.name = p->name;
    s.path = p->path;
    s.pid = p->proc ? p->proc->pid() : -1;
    s.runs = p->runs;
    s.failures = p->failures;
    s.documents = p->documents;
    s.targets = p->targets.size();
    s.last_error = p->last_error;
    out.push_back(std::move(s));
  }
  return out;
}

}  // namespace netprobe
