#pragma once
// A waitpid() status in words, for the logs of everything that reaps a child (workers, the launcher,
// inventory plug-ins): "exited with status 3", "killed by signal 9 (Killed), core dumped".
#include <string>

namespace netprobe {

// -1 means the status is unknown (the child was reaped elsewhere).
std::string describe_wait_status(int status);

}  // namespace netprobe
