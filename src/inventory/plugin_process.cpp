#include "inventory/plugin_process.h"

#include <fcntl.h>
#include <linux/close_range.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>

#include <fmt/format.h>

extern char** environ;

namespace netprobe {
namespace {

void close_fd(int& fd) {
  if (fd >= 0) close(fd);
  fd = -1;
}

}  // namespace

Result<PluginProcess> PluginProcess::spawn(const Spec& spec) {
  // Everything the child needs is prepared before fork(): between fork and exec only async-signal-safe
  // calls are allowed (the supervisor has other threads, e.g. the HTTP server's).
  std::vector<std::string> env_store;
  for (char** e = environ; e && *e; ++e) {
    const std::string_view kv(*e);
    const std::string_view key = kv.substr(0, kv.find('='));
    bool drop = false;
    for (const auto& u : spec.unset_env) drop |= key == u;
    for (const auto& s : spec.set_env) drop |= key == std::string_view(s).substr(0, s.find('='));
    if (!drop) env_store.emplace_back(kv);
  }
  env_store.insert(env_store.end(), spec.set_env.begin(), spec.set_env.end());
  std::vector<char*> envp;
  for (auto& s : env_store) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::vector<std::string> arg_store{spec.path};
  arg_store.insert(arg_store.end(), spec.args.begin(), spec.args.end());
  std::vector<char*> argv;
  for (auto& s : arg_store) argv.push_back(s.data());
  argv.push_back(nullptr);
  const char* cwd = spec.cwd.empty() ? nullptr : spec.cwd.c_str();

  int out[2], err[2], status_pipe[2];
  if (pipe2(out, O_CLOEXEC) != 0) return Error{fmt::format("pipe: {}", strerror(errno))};
  if (pipe2(err, O_CLOEXEC) != 0) {
    const int e = errno;
    close(out[0]), close(out[1]);
    return Error{fmt::format("pipe: {}", strerror(e))};
  }
  if (pipe2(status_pipe, O_CLOEXEC) != 0) {
    const int e = errno;
    close(out[0]), close(out[1]), close(err[0]), close(err[1]);
    return Error{fmt::format("pipe: {}", strerror(e))};
  }
  // A bigger pipe lets a plug-in write a large document in one go even if the supervisor is busy.
  fcntl(out[1], F_SETPIPE_SZ, 1 << 20);
  const pid_t parent = getpid();

  const pid_t pid = fork();
  if (pid < 0) {
    const int e = errno;
    for (int fd : {out[0], out[1], err[0], err[1], status_pipe[0], status_pipe[1]}) close(fd);
    return Error{fmt::format("fork: {}", strerror(e))};
  }
  if (pid == 0) {
    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent) _exit(126);  // the supervisor died before prctl
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    for (int sig = 1; sig < NSIG; ++sig) sigaction(sig, &dfl, nullptr);  // SIG_IGN would survive exec
    const int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0) dup2(devnull, 0);
    dup2(out[1], 1);
    dup2(err[1], 2);
    // Raw sockets, the pcap handle, the HTTP listener: nothing of the supervisor leaks into a plug-in.
    if (syscall(SYS_close_range, 3u, ~0u, CLOSE_RANGE_CLOEXEC) != 0) {
      const long max = sysconf(_SC_OPEN_MAX);
      for (long fd = 3; fd < (max > 0 && max < 65536 ? max : 65536); ++fd)
        fcntl(int(fd), F_SETFD, FD_CLOEXEC);
    }
    if (cwd && chdir(cwd) != 0) {
      const int e = errno;
      (void)!write(status_pipe[1], &e, sizeof e);
      _exit(127);
    }
    execve(argv[0], argv.data(), envp.data());
    const int e = errno;
    (void)!write(status_pipe[1], &e, sizeof e);
    _exit(127);
  }

  close(out[1]);
  close(err[1]);
  close(status_pipe[1]);
  PluginProcess p;
  p.pid_ = pid;
  p.out_fd_ = out[0];
  p.err_fd_ = err[0];
  // EOF when exec succeeded (the write end is close-on-exec), an errno otherwise.
  int child_errno = 0;
  ssize_t n;
  do n = read(status_pipe[0], &child_errno, sizeof child_errno);
  while (n < 0 && errno == EINTR);
  close(status_pipe[0]);
  if (n == ssize_t(sizeof child_errno)) {
    waitpid(pid, nullptr, 0);
    p.reaped_ = true;
    return Error{fmt::format("cannot execute {}: {}", spec.path, strerror(child_errno))};
  }
  fcntl(p.out_fd_, F_SETFL, fcntl(p.out_fd_, F_GETFL) | O_NONBLOCK);
  fcntl(p.err_fd_, F_SETFL, fcntl(p.err_fd_, F_GETFL) | O_NONBLOCK);
  return p;
}

PluginProcess::PluginProcess(PluginProcess&& o) noexcept
    : pid_(o.pid_), out_fd_(o.out_fd_), err_fd_(o.err_fd_), reaped_(o.reaped_) {
  o.pid_ = -1;
  o.out_fd_ = o.err_fd_ = -1;
  o.reaped_ = true;
}

PluginProcess& PluginProcess::operator=(PluginProcess&& o) noexcept {
  if (this != &o) {
    this->~PluginProcess();
    new (this) PluginProcess(std::move(o));
  }
  return *this;
}

PluginProcess::~PluginProcess() {
  if (pid_ > 0 && !reaped_) {
    signal_group(SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
  close_fds();
}

void PluginProcess::close_fds() {
  close_fd(out_fd_);
  close_fd(err_fd_);
}

PluginProcess::ReadState PluginProcess::read_fd(int& fd, std::string& buf, size_t max) {
  if (fd < 0) return ReadState::kEof;
  char chunk[65536];
  size_t got = 0;
  while (got < max) {
    const ssize_t n = read(fd, chunk, std::min(sizeof chunk, max - got));
    if (n > 0) {
      buf.append(chunk, size_t(n));
      got += size_t(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
      return got ? ReadState::kData : ReadState::kWouldBlock;
    close_fd(fd);  // EOF, or an error that will not go away
    return got ? ReadState::kData : ReadState::kEof;
  }
  return ReadState::kData;
}

bool PluginProcess::try_reap(int* status) {
  if (reaped_) return true;
  int st = 0;
  const pid_t r = waitpid(pid_, &st, WNOHANG);
  if (r == 0) return false;
  if (r < 0 && errno == EINTR) return false;
  reaped_ = true;
  if (status) *status = r == pid_ ? st : -1;
  // Whatever the plug-in left behind in its group (a backgrounded child) goes with it.
  kill(-pid_, SIGKILL);
  return true;
}

void PluginProcess::signal_group(int sig) {
  if (pid_ > 0 && !reaped_) kill(-pid_, sig);
}

void PluginProcess::stop_and_wait(int grace_ms) {
  if (pid_ <= 0 || reaped_) return;
  signal_group(SIGTERM);
  for (int waited = 0; waited < grace_ms; waited += 10) {
    if (try_reap(nullptr)) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  signal_group(SIGKILL);
  waitpid(pid_, nullptr, 0);
  reaped_ = true;
}

}  // namespace netprobe
