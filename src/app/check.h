#pragma once
#include <optional>
#include <string>

namespace netprobe {

// `netprobe check CONFIG`: probes the selected targets of CONFIG for a few iterations in this process
// (src/session), prints one result per (target, group) and exits with a Nagios code.
struct CheckOptions {
  std::string config_path;
  std::optional<std::string> include_tags;
  std::optional<std::string> exclude_tags;
  int count = 1;
  std::string format = "text";      // text | json
  bool unbuffered = false;          // -U: text lines as each iteration ends, in plan order
  bool no_inventory = false;        // only the configuration's own targets
  double inventory_timeout_s = 30;  // for every plug-in's first document
};

// Nagios plug-in exit codes (so CI pipelines and deploy gates can use them as they use conn-check).
inline constexpr int kCheckOk = 0;
inline constexpr int kCheckFailed = 2;
inline constexpr int kCheckUnknown = 3;  // configuration or usage error

// Returns kCheckOk, kCheckFailed, kCheckUnknown, or 77 (EX_NOPERM) without CAP_NET_RAW.
int run_check(const CheckOptions& options);

}  // namespace netprobe
