#include "inventory/merge.h"

#include <spdlog/spdlog.h>

namespace netprobe {

Config with_dynamic_targets(const Config& static_config, const std::map<std::string, TargetConfig>& dynamic) {
  Config out = static_config;
  for (const auto& [name, t] : dynamic) {
    if (!out.targets.emplace(name, t).second)
      spdlog::warn("inventory target={} ({}) has the name of a target of the configuration: ignored", name,
                   t.description);
  }
  return out;
}

}  // namespace netprobe
