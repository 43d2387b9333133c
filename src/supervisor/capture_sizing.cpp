#include "supervisor/capture_sizing.h"

#include <algorithm>
#include <cmath>

#include "config/loader.h"
#include "sched/plan.h"

namespace netprobe {

double planned_probe_rate(const Config& config, uint32_t nb_workers,
                          const std::function<bool(const std::string&)>& mine) {
  double probes = 0, max_timeout = 0;
  for (const auto& [name, t] : config.targets) {
    if (t.groups.empty() || t.nb_packets <= 0 || !mine(name)) continue;
    double hosts = 1;
    if (t.is_subnet)
      if (const auto net = IpNetwork::parse(t.destination)) hosts = double(net->usable_count());
    probes += double(t.nb_packets) * double(t.groups.size()) * hosts;
    max_timeout = std::max(max_timeout, t.timeout_s);
  }
  if (probes == 0) return 0;
  // A window of 0 (timeout >= interval) sends flat out: assume the largest ring's worth of rate.
  const double window = std::max(0.0, double(config.global.interval_s) - max_timeout) * kSendWindowShare;
  double rate = window > 0 ? probes / window : INFINITY;
  if (config.global.max_packets_per_second > 0)
    rate = std::min(rate, config.global.max_packets_per_second / std::max<uint32_t>(1, nb_workers));
  return rate;
}

size_t capture_buffer_bytes(double probes_per_second) {
  constexpr double kFramesPerProbe = 2, kBytesPerFrame = 256, kHoldSeconds = 0.1;
  const double want = probes_per_second * kFramesPerProbe * kBytesPerFrame * kHoldSeconds;
  if (!(want < double(kMaxCaptureBuffer))) return kMaxCaptureBuffer;  // also NaN and infinity
  const size_t mib = size_t(1) << 20;
  const size_t bytes = (size_t(want) + mib - 1) / mib * mib;
  return std::clamp(bytes, kMinCaptureBuffer, kMaxCaptureBuffer);
}

}  // namespace netprobe
