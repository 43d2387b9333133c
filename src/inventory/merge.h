#pragma once
// Static targets (the configuration file) + dynamic ones (inventory plug-ins) = what the supervisor probes.
#include <map>
#include <string>

#include "config/config.h"

namespace netprobe {

// `static_config` with the dynamic targets added. A dynamic target named like a static one is dropped with
// a warning: the configuration file, written by a person, wins over a program's output.
Config with_dynamic_targets(const Config& static_config, const std::map<std::string, TargetConfig>& dynamic);

}  // namespace netprobe
