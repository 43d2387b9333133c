#pragma once
#include <string>

namespace netprobe {

// Runs the prober on the configuration at `path` until SIGTERM or SIGINT. Returns a sysexits code.
int run_prober(const std::string& path, const std::string& version);

}  // namespace netprobe
