#pragma once
// From a configuration and the resolved addresses of its targets to a plan, the same way in every
// process that probes (the workers, the one-shot commands of src/session): subnet targets expanded here,
// a target without an address or without a route left out and named, so that one bad target never stops
// the others.
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "config/config.h"
#include "sched/plan.h"

namespace netprobe {

struct TargetPlan {
  std::unique_ptr<Plan> plan;                 // null when no plan could be built at all
  std::vector<std::string> inactive_targets;  // left out: no address, no route, or no plan
  std::map<std::string, std::string> why;  // per inactive target: "no address to probe", the route error...
  std::string message;                     // the errors, "; "-joined (empty when no error but addresses)
};

// `hosts`: the resolved addresses of each non-subnet target of `config`, by name (a missing or empty
// entry makes the target inactive).
TargetPlan plan_targets(const Config& config, const std::map<std::string, std::vector<IpAddress>>& hosts,
                        const SourceResolver& source_for);

}  // namespace netprobe
