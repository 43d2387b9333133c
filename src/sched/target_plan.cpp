#include "sched/target_plan.h"

namespace netprobe {

TargetPlan plan_targets(const Config& config, const std::map<std::string, std::vector<IpAddress>>& hosts,
                        const SourceResolver& source_for) {
  TargetPlan out;
  auto note = [&](const std::string& m) { out.message += (out.message.empty() ? "" : "; ") + m; };
  std::vector<ResolvedTarget> resolved;
  for (const auto& [name, t] : config.targets) {
    ResolvedTarget r{&t, {}};
    if (t.is_subnet) {
      if (auto net = IpNetwork::parse(t.destination)) r.hosts = host_addresses(*net);
    } else if (auto it = hosts.find(name); it != hosts.end()) {
      r.hosts = it->second;
    }
    if (r.hosts.empty()) {
      out.inactive_targets.push_back(name);
      out.why[name] = "no address to probe";
      continue;
    }
    resolved.push_back(std::move(r));
  }
  auto plan = build_plan(config, resolved, source_for);
  if (plan.ok()) {
    for (const Error& e : plan->skipped_targets) {
      note(e.message);
      out.inactive_targets.push_back(e.target);
      out.why[e.target] = e.message;
    }
    out.plan = std::make_unique<Plan>(std::move(plan).value());
  } else {
    note(plan.error().message);
    for (const auto& r : resolved) {
      out.inactive_targets.push_back(r.config->name);
      out.why[r.config->name] = plan.error().message;
    }
  }
  return out;
}

}  // namespace netprobe
