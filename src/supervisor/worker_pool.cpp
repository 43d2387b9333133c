#include "supervisor/worker_pool.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>

namespace netprobe {
namespace {

double seconds(Nanos n) { return std::chrono::duration<double>(n).count(); }

}  // namespace

bool needs_new_capture(const WorkerSpawn& has, const WorkerSpawn& wants) {
  return wants.slice != has.slice || wants.on_demand != has.on_demand ||
         (wants.types_mask & ~has.types_mask) != 0 || wants.capture_buffer_mib > 2 * has.capture_buffer_mib;
}

WorkerPool::WorkerPool(WorkerLauncher& launcher, Clock& clock, Hooks hooks, Options options)
    : launcher_(launcher), clock_(clock), hooks_(std::move(hooks)), options_(options) {}

void WorkerPool::update(uint32_t count, Nanos report_watchdog) {
  count_ = count;
  report_watchdog_ = report_watchdog;
  while (slots_.size() < count_) {
    Slot w;
    w.index = uint32_t(slots_.size());
    w.backoff = Backoff(options_.backoff);
    slots_.push_back(std::move(w));
  }
  for (auto& w : slots_) {
    if (w.index >= count_) {
      if (w.state == State::kRunning) request_stop(w);
      if (w.state == State::kWaiting) w.state = State::kIdle;
      continue;
    }
    if (w.state == State::kIdle)
      spawn(w);
    else if (w.state == State::kRunning)
      send_shard(w);
    // kSpawning: the shard goes out when the launcher hands the worker over; kStopping: respawned with
    // the current shard on exit; kWaiting: started with it when the backoff expires.
  }
  trim();
}

void WorkerPool::trim() {
  while (!slots_.empty() && slots_.back().index >= count_ && slots_.back().state == State::kIdle)
    slots_.pop_back();
}

void WorkerPool::spawn(Slot& w) {
  w.spawned = hooks_.spawn_for(w.index);
  w.planned = false;
  w.killed = false;
  if (auto s = launcher_.spawn(w.spawned); !s.ok()) {
    spdlog::critical("cannot ask the launcher for worker {}: {}", w.index, s.error().message);
    fatal_ = true;
    return;
  }
  w.state = State::kSpawning;
}

void WorkerPool::request_stop(Slot& w) {
  w.planned = true;
  w.state = State::kStopping;
  queue(w, encode_frame(SupervisorMessage{StopRequest{}}));
}

void WorkerPool::send_shard(Slot& w) {
  const WorkerSpawn wants = hooks_.spawn_for(w.index);
  if (needs_new_capture(w.spawned, wants)) {
    spdlog::info(
        "worker {}: capture must change (types {:#x} -> {:#x}, slice bits {} -> {}, ring {} -> {} MiB): "
        "restarting it",
        w.index, w.spawned.types_mask, wants.types_mask, w.spawned.slice.bits, wants.slice.bits,
        w.spawned.capture_buffer_mib, wants.capture_buffer_mib);
    request_stop(w);
    return;
  }
  Shard shard = hooks_.shard_for(w.index);
  std::vector<std::string_view> names;
  for (const auto& [name, t] : shard.config.targets) names.push_back(name);
  spdlog::info("shard worker={} pid={} generation={} targets={}", w.index, w.pid, shard.generation,
               fmt::join(names, ","));
  const bool has_targets = !shard.config.targets.empty();
  if (has_targets && !w.has_targets) w.last_report = clock_.monotonic();  // the report watchdog starts now
  w.has_targets = has_targets;
  queue(w, encode_frame(SupervisorMessage{std::move(shard)}));
}

void WorkerPool::queue(Slot& w, std::string frame) {
  if (w.fd < 0) return;
  w.out += frame;
  flush(w);
}

void WorkerPool::flush(Slot& w) {
  while (!w.out.empty() && w.fd >= 0) {
    const ssize_t n = ::send(w.fd, w.out.data(), w.out.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      w.out.erase(0, size_t(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;  // POLLOUT resumes
    w.out.clear();  // EPIPE: the worker is gone; its exit event follows
    return;
  }
}

void WorkerPool::add_poll_fds(std::vector<pollfd>& fds) const {
  for (const auto& w : slots_)
    if (w.fd >= 0) fds.push_back({w.fd, short(POLLIN | (w.out.empty() ? 0 : POLLOUT)), 0});
}

void WorkerPool::on_poll(const std::vector<pollfd>& fds) {
  for (const pollfd& p : fds) {
    if (!p.revents) continue;
    for (auto& w : slots_) {
      if (w.fd != p.fd) continue;
      if (p.revents & POLLOUT) flush(w);
      if (w.fd >= 0 && (p.revents & (POLLIN | POLLHUP | POLLERR))) read_worker(w);
      break;
    }
  }
}

void WorkerPool::read_worker(Slot& w) {
  std::vector<uint8_t> buf(1 << 16);
  bool eof = false;
  for (;;) {
    const ssize_t n = ::read(w.fd, buf.data(), buf.size());
    if (n > 0) {
      w.reader.feed(std::span<const uint8_t>(buf.data(), size_t(n)));
      if (size_t(n) < buf.size()) break;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    eof = true;
    break;
  }
  handle_frames(w);
  if (eof) close_fd(w);
}

bool WorkerPool::send_to(uint32_t index, std::string frame) {
  if (!running(index)) return false;
  queue(slots_[index], std::move(frame));
  return true;
}

bool WorkerPool::running(uint32_t index) const {
  return index < slots_.size() && slots_[index].state == State::kRunning && slots_[index].fd >= 0 &&
         !slots_[index].killed && index < count_;
}

void WorkerPool::close_fd(Slot& w) {
  const bool was_open = w.fd >= 0;
  if (w.fd >= 0) close(w.fd);
  w.fd = -1;
  w.out.clear();
  w.reader = FrameReader();
  if (was_open && hooks_.on_down) hooks_.on_down(w.index);
}

void WorkerPool::handle_frames(Slot& w) {
  while (w.fd >= 0) {
    auto payload = w.reader.next();
    if (!payload) break;
    auto msg = decode_worker_message(*payload);
    if (!msg.ok()) {
      kill_worker(w, msg.error().message);
      return;
    }
    const Nanos now = clock_.monotonic();
    w.last_heard = now;
    if (auto* ready = std::get_if<WorkerReady>(&*msg)) {
      spdlog::info("worker {} (pid {}) ready: sockets and capture open, no capability left", w.index, w.pid);
      for (const auto& warning : ready->warnings) spdlog::warn("worker {}: {}", w.index, warning);
    } else if (auto* report = std::get_if<WorkerReport>(&*msg)) {
      w.last_report = now;
      hooks_.on_report(w.index, std::move(*report));
    } else if (auto* result = std::get_if<OnDemandResult>(&*msg)) {
      if (hooks_.on_job_result) hooks_.on_job_result(w.index, std::move(*result));
    } else if (auto* error = std::get_if<WorkerError>(&*msg)) {
      spdlog::error("worker {} (pid {}): {}", w.index, w.pid, error->message);
      hooks_.on_error(w.index, *error);
    }
    // WorkerHeartbeat: last_heard is all it is for.
  }
  if (w.reader.error()) kill_worker(w, "oversized IPC frame");
}

void WorkerPool::kill_worker(Slot& w, const std::string& why) {
  spdlog::error("worker {} (pid {}): {}: killing it", w.index, w.pid, why);
  if (w.pid > 0 && !launcher_.kill(w.index, w.pid).ok()) fatal_ = true;
  w.killed = true;
  close_fd(w);
}

WorkerPool::Slot* WorkerPool::slot_by_pid(pid_t pid) {
  for (auto& w : slots_)
    if (w.pid == pid) return &w;
  return nullptr;
}

void WorkerPool::on_launch_event(const LaunchEvent& ev) {
  const Nanos now = clock_.monotonic();
  if (ev.op == LaunchEvent::kSpawned) {
    Slot* w = ev.index < slots_.size() ? &slots_[ev.index] : nullptr;
    if (!w || w->state != State::kSpawning) {
      close(ev.fd);  // nobody wants it any more: EOF makes it exit, and its exit is reported
      return;
    }
    w->pid = ev.pid;
    w->fd = ev.fd;
    fcntl(w->fd, F_SETFL, fcntl(w->fd, F_GETFL) | O_NONBLOCK);
    w->started_at = now;
    w->last_heard = now;
    w->last_report = now;
    w->has_targets = false;
    w->state = State::kRunning;
    spdlog::info("worker {} started: pid {}", w->index, w->pid);
    if (stopping_ || w->index >= count_) {
      request_stop(*w);
      if (stopping_) close_fd(*w);
    } else {
      send_shard(*w);
    }
    return;
  }
  if (ev.op == LaunchEvent::kSpawnFailed) {
    if (ev.index >= slots_.size()) return;
    Slot& w = slots_[ev.index];
    if (w.state != State::kSpawning) return;
    if (stopping_) {
      w.state = State::kIdle;
      return;
    }
    spdlog::error("worker {}: the launcher could not fork it: {}", w.index, std::strerror(ev.status));
    schedule_restart(w, now);
    return;
  }
  if (ev.op != LaunchEvent::kExited) return;
  Slot* w = slot_by_pid(ev.pid);
  if (!w) return;
  // Reports already written by the dead worker are still in its socket: record them first.
  if (w->fd >= 0) read_worker(*w);
  close_fd(*w);
  w->pid = -1;
  if (stopping_) {
    w->state = State::kIdle;
    return;
  }
  if (w->planned) {
    spdlog::info("worker {} (pid {}) stopped: {}", w->index, ev.pid, describe_wait_status(ev.status));
    w->state = State::kIdle;
    if (w->index < count_) spawn(*w);
    trim();
    return;
  }
  spdlog::error("worker {} (pid {}) died: {}{}", w->index, ev.pid, describe_wait_status(ev.status),
                w->killed ? " (killed: it stopped making progress)" : "");
  if (w->has_targets) hooks_.on_lost(w->index);
  schedule_restart(*w, now);
}

void WorkerPool::schedule_restart(Slot& w, Nanos now) {
  const Nanos delay = w.backoff.on_death(w.started_at, now);
  w.state = State::kWaiting;
  w.has_targets = false;
  w.restart_at = now + delay;
  spdlog::warn("worker {}: restarting in {:.1f} s", w.index, seconds(delay));
}

void WorkerPool::run_timers() {
  if (stopping_) return;
  const Nanos now = clock_.monotonic();
  for (auto& w : slots_) {
    if (w.state == State::kWaiting && now >= w.restart_at) {
      if (w.index >= count_) {
        w.state = State::kIdle;
        continue;
      }
      spdlog::info("worker {}: restarting", w.index);
      hooks_.on_restart(w.index);
      spawn(w);
      continue;
    }
    if (w.state != State::kRunning || w.killed || w.fd < 0) continue;
    if (now - w.last_heard > options_.heartbeat_timeout) {
      hooks_.on_stalled(w.index);
      kill_worker(w, fmt::format("silent for {:.1f} s (no heartbeat: stopped or wedged)",
                                 seconds(now - w.last_heard)));
    } else if (w.has_targets && report_watchdog_ != Nanos::max() &&
               now - w.last_report > report_watchdog_ + options_.watchdog_grace) {
      hooks_.on_stalled(w.index);
      kill_worker(w, fmt::format("no report for {:.0f} s (interval + global.timeout + {:.0f} s)",
                                 seconds(now - w.last_report), seconds(options_.watchdog_grace)));
    }
  }
  trim();
}

Nanos WorkerPool::next_deadline() const {
  Nanos next = Nanos::max();
  for (const auto& w : slots_) {
    if (w.state == State::kWaiting) next = std::min(next, w.restart_at);
    if (w.state == State::kRunning && !w.killed)
      next = std::min(next, w.last_heard + options_.heartbeat_timeout);
  }
  return next;
}

void WorkerPool::stop_all() {
  stopping_ = true;
  for (auto& w : slots_) {
    if (w.state == State::kWaiting) w.state = State::kIdle;
    if (w.fd >= 0) {
      w.out.clear();
      queue(w, encode_frame(SupervisorMessage{StopRequest{}}));
      close_fd(w);  // EOF after the stop frame: the worker stops even if it missed the frame
      w.state = State::kStopping;
    }
  }
}

bool WorkerPool::busy() const {
  for (const auto& w : slots_)
    if (w.pid > 0 || w.state == State::kSpawning) return true;
  return false;
}

std::vector<ProcessRef> WorkerPool::processes() const {
  std::vector<ProcessRef> out;
  for (const auto& w : slots_)
    if (w.pid > 0) out.push_back({"worker", w.index, w.pid});
  return out;
}

}  // namespace netprobe
