#pragma once
// One run of an inventory plug-in: a child process in its own process group, stdout and stderr on
// non-blocking pipes, stdin on /dev/null. Never blocks the caller except in spawn() (until the exec) and in
// stop_and_wait() (shutdown).
#include <sys/types.h>

#include <string>
#include <vector>

#include "core/result.h"

namespace netprobe {

class PluginProcess {
 public:
  struct Spec {
    std::string path;                    // executable
    std::vector<std::string> args;       // after argv[0] (= path)
    std::vector<std::string> set_env;    // "KEY=value" added to (or replacing in) the inherited environment
    std::vector<std::string> unset_env;  // KEY names removed from the inherited environment (credentials)
    std::string cwd;                     // "" = inherited
  };

  // Forks and execs. The child: own process group (killed as a whole), SIGTERM when this thread's process
  // dies (PR_SET_PDEATHSIG), empty signal mask and default dispositions (netprobe blocks SIGTERM & co. in
  // every thread; a plug-in must not inherit that), no inherited descriptor but 0/1/2. An exec failure is
  // reported here, with its errno, rather than as a mysterious exit status 127.
  static Result<PluginProcess> spawn(const Spec& spec);

  PluginProcess(PluginProcess&& other) noexcept;
  PluginProcess& operator=(PluginProcess&& other) noexcept;
  ~PluginProcess();  // kills the group (SIGKILL) and reaps if still running: never leaves a zombie

  pid_t pid() const { return pid_; }
  int stdout_fd() const { return out_fd_; }  // -1 once EOF was read
  int stderr_fd() const { return err_fd_; }

  enum class ReadState { kData, kWouldBlock, kEof };
  // Appends what is available (at most `max` bytes) to `buf`; closes the fd at EOF.
  ReadState read_stdout(std::string& buf, size_t max = 1 << 20) { return read_fd(out_fd_, buf, max); }
  ReadState read_stderr(std::string& buf, size_t max = 1 << 16) { return read_fd(err_fd_, buf, max); }

  // waitpid(WNOHANG). True once the child has exited; `status` is the waitpid status (-1 if someone else
  // reaped it).
  bool try_reap(int* status);
  bool reaped() const { return reaped_; }
  void signal_group(int sig);  // the whole process group (the plug-in may have children of its own)

  // SIGTERM to the group, up to `grace_ms` for it to exit, then SIGKILL; reaps. Blocking: shutdown only.
  void stop_and_wait(int grace_ms);

 private:
  PluginProcess() = default;
  static ReadState read_fd(int& fd, std::string& buf, size_t max);
  void close_fds();

  pid_t pid_ = -1;
  int out_fd_ = -1;
  int err_fd_ = -1;
  bool reaped_ = false;
};

}  // namespace netprobe
