#include "supervisor/resolution_metrics.h"

#include <spdlog/spdlog.h>

namespace netprobe {
namespace {

std::string join(const std::vector<IpAddress>& addresses) {
  std::string out;
  for (const auto& a : addresses) out += (out.empty() ? "" : ",") + a.to_string();
  return out.empty() ? "-" : out;
}

}  // namespace

void record_resolution_events(const std::vector<ResolutionEvent>& events, ProberMetrics& metrics) {
  for (const auto& ev : events) {
    if (ev.kind == ResolutionEvent::Kind::kResolved) {
      spdlog::info("target={} destination={} resolved to {} (was {})", ev.target, ev.destination,
                   ev.hosts.empty() ? ev.destination : join(ev.hosts), join(ev.previous));
      metrics.set_host_resolution_status(ev.target, ev.af, 1);
      metrics.inc_host_resolution_change(ev.target, ev.af);
    } else {
      spdlog::log(!ev.repeated ? spdlog::level::warn : spdlog::level::debug,
                  "target={} destination={} could not be resolved ({}): target inactive", ev.target,
                  ev.destination, ev.error);
      metrics.set_host_resolution_status(ev.target, ev.af, 0);
      metrics.clear_target_measurements(ev.target);
    }
  }
}

}  // namespace netprobe
