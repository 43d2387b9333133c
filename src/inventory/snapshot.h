#pragma once
// The dynamic inventory once, for the one-shot commands (`netprobe check`, `netprobe export-fw`): run every
// plug-in of the configuration's inventory directory until each has written its first document (or failed,
// or the time is up), stop them, and return their targets. The daemon keeps plug-ins running instead
// (InventoryManager). A plug-in that fails or says nothing in time is an error here, not a retry: a deploy
// gate or a firewall export must not silently leave out the targets it would have listed.
#include <map>
#include <string>
#include <vector>

#include "config/config.h"
#include "core/clock.h"

namespace netprobe {

struct InventorySnapshot {
  std::vector<std::string> plugins;             // names run
  std::map<std::string, TargetConfig> targets;  // `<plugin>_<hostname>` -> target
  std::vector<std::string> errors;              // one per plug-in that gave no document
};

InventorySnapshot collect_inventory_once(const Config& config, Nanos timeout, Clock& clock);

}  // namespace netprobe
