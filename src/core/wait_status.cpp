#include "core/wait_status.h"

#include <sys/wait.h>

#include <cstring>

#include <fmt/format.h>

namespace netprobe {

std::string describe_wait_status(int status) {
  if (status == -1) return "exited (status unknown: reaped elsewhere)";
  if (WIFEXITED(status)) return fmt::format("exited with status {}", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    const int sig = WTERMSIG(status);
    const char* name = sigdescr_np(sig);
    return fmt::format("killed by signal {} ({}){}", sig, name ? name : "?",
                       WCOREDUMP(status) ? ", core dumped" : "");
  }
  if (WIFSTOPPED(status)) return fmt::format("stopped by signal {}", WSTOPSIG(status));
  return fmt::format("wait status {:#x}", status);
}

}  // namespace netprobe
