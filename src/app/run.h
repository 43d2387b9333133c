#pragma once
#include <optional>
#include <string>
#include <vector>

#include "config/tag_selection.h"

namespace netprobe {

struct RunOptions {
  std::optional<std::string> user;  // --user: the unprivileged user to run as (sandbox/user.h)
  TagSelection selection;           // --include-tags / --exclude-tags
  // --web.listen-address (repeatable): replaces prometheus_address/prometheus_port (docs/http-server.md)
  std::vector<std::string> listen_addresses;
  // --web.config.file: the exporter-toolkit web configuration (TLS, users, headers); "" = none
  std::string web_config_file;
};

// Runs the prober on the configuration at `path` until SIGTERM or SIGINT. Returns a sysexits code.
int run_prober(const std::string& path, const std::string& version, const RunOptions& options);

}  // namespace netprobe
