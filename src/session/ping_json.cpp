#include "session/ping_json.h"

#include <cmath>

namespace netprobe {
namespace {

double ms(double s) { return std::round(s * 1e6) / 1e3; }  // to the microsecond

}  // namespace

nlohmann::json ping_summary_json(const PingSummary& sum, bool ports, bool interrupted, int exit_code,
                                 const std::string& error) {
  nlohmann::json j{{"event", "summary"},
                   {"sent", sum.sent},
                   {"received", sum.received},
                   {"loss_pct", std::round(sum.loss_pct * 100) / 100},
                   {"late", sum.late},
                   {"duplicates", sum.duplicates},
                   {"icmp_errors", sum.icmp_errors},
                   {"interrupted", interrupted},
                   {"exit_code", exit_code}};
  j["rtt_ms"] = sum.rtts_s.empty()
                    ? nlohmann::json()
                    : nlohmann::json{{"min", ms(sum.min_s)},  {"avg", ms(sum.avg_s)}, {"p50", ms(sum.p50_s)},
                                     {"p90", ms(sum.p90_s)},  {"p99", ms(sum.p99_s)}, {"max", ms(sum.max_s)},
                                     {"mdev", ms(sum.mdev_s)}};
  if (ports) {
    j["ports"] = nlohmann::json::array();
    for (const PingPort& r : sum.ports)
      j["ports"].push_back({{"sport", r.sport}, {"sent", r.sent}, {"lost", r.lost}, {"flag", r.flag}});
  }
  if (!error.empty()) j["error"] = error;
  return j;
}

}  // namespace netprobe
