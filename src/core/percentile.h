#pragma once
// netprobify's percentile (the ActiveState recipe it ships in external.py), shared by the metrics and the
// one-shot commands: sort, k = (n-1)*p/100, linear interpolation between floor(k) and ceil(k).
#include <vector>

namespace netprobe {

// Returns 0 when `values` is empty (a 100%-loss iteration exports RTT 0, not NaN:
// docs/netprobify-compatibility.md#q2-rtt-zero). Sorts `values` in place when it is not sorted yet.
double percentile_linear(std::vector<double>& values, int p);

}  // namespace netprobe
