#include "launcher/launcher.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <map>
#include <random>
#include <thread>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "core/memory.h"
#include "sandbox/confine.h"
#include "sandbox/privileges.h"

namespace netprobe {
namespace {

// The launcher's wire record: LaunchEvent without the fd (which travels as SCM_RIGHTS).
struct EventRecord {
  uint32_t op;
  uint32_t index;
  int32_t pid;
  int32_t status;
};

// Sent once, when the launcher is confined and ready for requests; LauncherClient::wait_ready() reads it.
constexpr uint32_t kReady = 100;
constexpr int kReadyTimeoutMs = 10'000;

bool send_event(int fd, const EventRecord& ev, int pass_fd) {
  iovec iov{const_cast<EventRecord*>(&ev), sizeof ev};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))];
  if (pass_fd >= 0) {
    std::memset(control, 0, sizeof control);
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(c), &pass_fd, sizeof(int));
  }
  for (;;) {
    if (sendmsg(fd, &msg, MSG_NOSIGNAL) == ssize_t(sizeof ev)) return true;
    if (errno != EINTR) return false;
  }
}

// LauncherConfinement's steps (launcher.h). Errors are fatal but for the empty root, which needs root.
Status confine(const LauncherConfinement& c, pid_t supervisor) {
  if (c.empty_root) {
    tzset();  // log lines keep the local time: /etc/localtime is out of reach afterwards
    if (auto s = enter_empty_root(); !s.ok()) {
      if (geteuid() == 0)
        spdlog::warn("launcher: no empty filesystem view for the launcher and workers: {}",
                     s.error().message);
      else
        spdlog::debug("launcher: no empty filesystem view (needs a start as root): {}", s.error().message);
    }
  }
  if (c.user) {
    if (auto s = switch_user(*c.user, /*keep_net_raw=*/true); !s.ok())
      return Error{"cannot switch to user " + c.user->name + ": " + s.error().message};
  }
  if (auto s = restrict_to_net_raw(); !s.ok())
    return Error{"cannot drop capabilities other than CAP_NET_RAW: " + s.error().message};
  // A change of credentials clears the parent-death signal: set it again, then make sure that the
  // supervisor did not die in between.
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != supervisor) _exit(0);
  if (auto s = set_non_dumpable(); !s.ok()) return s;
  return install_seccomp(ProcessKind::kLauncher);
}

// Checked although the supervisor is trusted: this process is privileged, the supervisor parses HTTP.
bool well_formed(const LaunchRequest& req) {
  return req.op == LaunchRequest::kSpawn && req.slice_bits >= 0 && req.slice_bits <= 16 &&
         req.index < (uint32_t(1) << req.slice_bits) && (req.types_mask >> kProbeTypeCount) == 0 &&
         req.capture_buffer_mib >= 1 && req.capture_buffer_mib <= 1024 && req.on_demand <= 1;
}

// The launcher's loop once confined: spawn and kill workers on the supervisor's requests, report their
// exits. SIGINT/SIGTERM/SIGHUP stay blocked (inherited): the launcher stops when the supervisor says so,
// or dies with it. SIGCHLD is read through a signalfd.
class Launcher {
 public:
  Launcher(int sup_fd, WorkerEntry entry, uint32_t slice_key)
      : sup_fd_(sup_fd), entry_(std::move(entry)), slice_key_(slice_key) {
    sigemptyset(&chld_);
    sigaddset(&chld_, SIGCHLD);
    sigprocmask(SIG_BLOCK, &chld_, nullptr);
    sfd_ = signalfd(-1, &chld_, SFD_CLOEXEC | SFD_NONBLOCK);
  }

  // Until the supervisor's socket closes or sends something malformed.
  void run() {
    for (;;) {
      pollfd fds[2] = {{sup_fd_, POLLIN, 0}, {sfd_, POLLIN, 0}};
      if (poll(fds, 2, -1) < 0) {
        if (errno == EINTR) continue;
        return;
      }
      if (fds[1].revents & POLLIN) {
        signalfd_siginfo info;
        while (read(sfd_, &info, sizeof info) == ssize_t(sizeof info)) {
        }
        reap();
      }
      if (!(fds[0].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      LaunchRequest req{};
      const ssize_t n = recv(sup_fd_, &req, sizeof req, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n != ssize_t(sizeof req)) return;  // EOF (supervisor stopping or gone) or a malformed record
      if (req.op == LaunchRequest::kKill) {
        if (children_.count(req.pid)) ::kill(req.pid, SIGKILL);  // unreaped: the pid cannot have been reused
        continue;
      }
      if (!well_formed(req)) {
        spdlog::error("launcher: rejected a malformed request");
        return;
      }
      spawn(req);
    }
  }

  // The workers were asked to stop by the supervisor already; whatever is left is killed now.
  void kill_children() {
    for (const auto& [pid, index] : children_) ::kill(pid, SIGKILL);
    for (const auto& [pid, index] : children_) waitpid(pid, nullptr, 0);
  }

 private:
  void reap() {
    int status = 0;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
      auto it = children_.find(pid);
      if (it == children_.end()) continue;
      send_event(sup_fd_, EventRecord{LaunchEvent::kExited, it->second, pid, status}, -1);
      children_.erase(it);
    }
  }

  // Forks the worker with one end of a new socket pair and passes the other end to the supervisor.
  void spawn(const LaunchRequest& req) {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
      send_event(sup_fd_, EventRecord{LaunchEvent::kSpawnFailed, req.index, -1, errno}, -1);
      return;
    }
    const pid_t pid = fork();
    if (pid < 0) {
      const int err = errno;
      close(sv[0]);
      close(sv[1]);
      send_event(sup_fd_, EventRecord{LaunchEvent::kSpawnFailed, req.index, -1, err}, -1);
      return;
    }
    if (pid == 0) {
      close(sup_fd_);
      close(sfd_);
      close(sv[0]);
      sigprocmask(SIG_UNBLOCK, &chld_, nullptr);
      _exit(entry_(sv[1], WorkerSpawn{req.index, keyed_slice(KeySlice{req.slice_bits, req.index}, slice_key_),
                                      req.types_mask, req.capture_buffer_mib, req.on_demand == 1}));
    }
    close(sv[1]);
    children_[pid] = req.index;
    send_event(sup_fd_, EventRecord{LaunchEvent::kSpawned, req.index, pid, 0}, sv[0]);
    close(sv[0]);
  }

  int sup_fd_;
  WorkerEntry entry_;
  uint32_t slice_key_;
  sigset_t chld_;
  int sfd_ = -1;
  std::map<pid_t, uint32_t> children_;
};

[[noreturn]] void launcher_main(int sup_fd, pid_t supervisor, WorkerEntry entry,
                                const LauncherConfinement& c) {
  // Die with the supervisor (which forked us from its main thread, the one that lives until exit).
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != supervisor) _exit(0);
  prctl(PR_SET_NAME, "netprobe-launch");
  release_free_memory();  // the supervisor's free heap, shared copy-on-write since the fork
  if (auto s = confine(c, supervisor); !s.ok()) {
    spdlog::critical("launcher: {}", s.error().message);
    _exit(EX_NOPERM);
  }
  spdlog::debug("launcher: uid {} {}", getuid(), capability_summary());
  // The slice value each worker's tokens carry is its index XOR this key, so that a blind forger cannot
  // tell which top token bits a destination's probes carry (docs/matching.md#guessed-bits); slices stay
  // disjoint, and a restarted worker gets its slice back.
  // getrandom(), not std::random_device: the launcher's root is empty (no /dev/urandom to fall back on).
  uint32_t slice_key = 0;
  if (getrandom(&slice_key, sizeof slice_key, 0) != ssize_t(sizeof slice_key)) _exit(EX_OSERR);
  if (!send_event(sup_fd, EventRecord{kReady, 0, getpid(), 0}, -1)) _exit(0);
  Launcher launcher(sup_fd, std::move(entry), slice_key);
  launcher.run();
  launcher.kill_children();
  _exit(0);
}

}  // namespace

Result<LauncherClient> LauncherClient::start(WorkerEntry entry, const LauncherConfinement& confinement) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0)
    return Error{fmt::format("launcher socketpair: {}", std::strerror(errno))};
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid < 0) {
    close(sv[0]);
    close(sv[1]);
    return Error{fmt::format("cannot fork the launcher: {}", std::strerror(errno))};
  }
  if (pid == 0) {
    close(sv[0]);
    launcher_main(sv[1], parent, entry, confinement);
  }
  close(sv[1]);
  fcntl(sv[0], F_SETFL, fcntl(sv[0], F_GETFL) | O_NONBLOCK);
  return LauncherClient(sv[0], pid);
}

Status LauncherClient::wait_ready() {
  pollfd p{fd_, POLLIN, 0};
  int ready;
  do {
    ready = poll(&p, 1, kReadyTimeoutMs);
  } while (ready < 0 && errno == EINTR);
  EventRecord rec{};
  ssize_t n = -1;
  if (ready > 0) {
    do {
      n = recv(fd_, &rec, sizeof rec, MSG_DONTWAIT);
    } while (n < 0 && errno == EINTR);
  }
  if (n == ssize_t(sizeof rec) && rec.op == kReady) return {};
  stop(Nanos(500'000'000));
  return Error{ready == 0 ? std::string("the launcher did not get ready within 10 s")
                          : "the launcher could not confine itself (its message is above)"};
}

LauncherClient::LauncherClient(LauncherClient&& other) noexcept : fd_(other.fd_), pid_(other.pid_) {
  other.fd_ = -1;
  other.pid_ = -1;
}

LauncherClient& LauncherClient::operator=(LauncherClient&& other) noexcept {
  std::swap(fd_, other.fd_);
  std::swap(pid_, other.pid_);
  return *this;
}

LauncherClient::~LauncherClient() {
  if (fd_ >= 0 || pid_ > 0) stop(Nanos(200'000'000));
}

namespace {
Status send_request(int fd, const LaunchRequest& req) {
  for (;;) {
    if (send(fd, &req, sizeof req, MSG_NOSIGNAL) == ssize_t(sizeof req)) return {};
    if (errno == EINTR) continue;
    if (errno == EAGAIN) {  // a tiny record on a socket we never let fill up: wait briefly
      pollfd p{fd, POLLOUT, 0};
      poll(&p, 1, 100);
      continue;
    }
    return Error{fmt::format("launcher channel: {}", std::strerror(errno))};
  }
}
}  // namespace

Status LauncherClient::spawn(const WorkerSpawn& spawn) {
  LaunchRequest req;
  req.op = LaunchRequest::kSpawn;
  req.index = spawn.index;
  req.slice_bits = spawn.slice.bits;
  req.types_mask = spawn.types_mask;
  req.capture_buffer_mib = spawn.capture_buffer_mib;
  req.on_demand = spawn.on_demand ? 1 : 0;
  return send_request(fd_, req);
}

Status LauncherClient::kill(uint32_t index, pid_t worker) {
  LaunchRequest req;
  req.op = LaunchRequest::kKill;
  req.index = index;
  req.pid = worker;
  return send_request(fd_, req);
}

Result<std::optional<LaunchEvent>> LauncherClient::read_event() {
  EventRecord rec{};
  iovec iov{&rec, sizeof rec};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))];
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  ssize_t n;
  do {
    n = recvmsg(fd_, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
  } while (n < 0 && errno == EINTR);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return std::optional<LaunchEvent>();
  if (n <= 0) return Error{n == 0 ? "the launcher closed its channel" : std::string(std::strerror(errno))};
  LaunchEvent ev;
  int passed = -1;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
      std::memcpy(&passed, CMSG_DATA(c), sizeof(int));
  }
  if (n != ssize_t(sizeof rec)) {
    if (passed >= 0) close(passed);
    return Error{"malformed record from the launcher"};
  }
  if (rec.op == kReady) return read_event();  // wait_ready() was not called: nothing to report
  ev.op = rec.op;
  ev.index = rec.index;
  ev.pid = rec.pid;
  ev.status = rec.status;
  ev.fd = passed;
  return std::optional<LaunchEvent>(ev);
}

bool LauncherClient::stop(Nanos timeout) {
  if (fd_ >= 0) {
    close(fd_);
    fd_ = -1;
  }
  if (pid_ <= 0) return true;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    const pid_t r = waitpid(pid_, nullptr, WNOHANG);
    if (r == pid_ || (r < 0 && errno == ECHILD)) {
      pid_ = -1;
      return true;
    }
    if (std::chrono::steady_clock::now() >= deadline) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  ::kill(pid_, SIGKILL);
  waitpid(pid_, nullptr, 0);
  pid_ = -1;
  return false;
}

}  // namespace netprobe
