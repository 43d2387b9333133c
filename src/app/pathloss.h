#pragma once
#include "trace/options.h"

namespace netprobe {

// `netprobe pathloss TARGET --sports A,B | --sport-range A-B`: which hop drops these flows. TTL-limited
// probes for them and for K reference flows, interleaved, and a verdict per flow (docs/trace.md#pathloss).
// The options (PathlossCliOptions) and their checks are in src/trace/options.h, shared with /api/v1/tests.

// 0 when no flow names a suspect link, 1 when some does; 64 usage, 68 unknown host, 77 without CAP_NET_RAW.
int run_pathloss(const PathlossCliOptions& options);

}  // namespace netprobe
