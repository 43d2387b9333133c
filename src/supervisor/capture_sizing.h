#pragma once
// How big a worker's kernel capture ring must be. The ring is mapped into the worker and every page of
// it is resident, so a fixed 64 MiB was most of a worker's memory while a few MiB carry any rate below
// 100k probes/s; it is sized from the configuration instead, when the worker is spawned (the capture is
// opened before the worker reads its configuration, while it is still privileged).
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

#include "config/config.h"

namespace netprobe {

inline constexpr size_t kMinCaptureBuffer = size_t(4) << 20;
inline constexpr size_t kMaxCaptureBuffer = size_t(64) << 20;

// Probes per second the worker sends for the targets `mine` selects (by name): their probes per
// iteration spread over the send window (sched/plan.h: a share of what the interval leaves after the
// longest timeout), or the worker's share of global.max_packets_per_second when that is lower.
double planned_probe_rate(const Config& config, uint32_t nb_workers,
                          const std::function<bool(const std::string&)>& mine);

// Ring bytes for `probes_per_second`: 100 ms of the capture (our own outgoing copy and the answer of
// each probe, at most ~256 bytes per frame in a TPACKET_V3 block with its headers), so that the capture
// thread may be off the CPU 20 times its 5 ms buffer timeout without a drop; between kMinCaptureBuffer
// and kMaxCaptureBuffer.
size_t capture_buffer_bytes(double probes_per_second);

}  // namespace netprobe
