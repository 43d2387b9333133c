#include "core/percentile.h"

#include <algorithm>
#include <cmath>

namespace netprobe {

double percentile_linear(std::vector<double>& values, int p) {
  if (values.empty()) return 0;
  if (!std::is_sorted(values.begin(), values.end())) std::sort(values.begin(), values.end());
  // Same floating-point steps as netprobify's Python (k = (len-1) * (p/100)), so that the exported
  // values are bit-for-bit what netprobify would have exported for the same samples.
  const double k = static_cast<double>(values.size() - 1) * (static_cast<double>(p) / 100.0);
  const double f = std::floor(k);
  const double c = std::ceil(k);
  if (f == c) return values[static_cast<size_t>(k)];
  const double d0 = values[static_cast<size_t>(f)] * (c - k);
  const double d1 = values[static_cast<size_t>(c)] * (k - f);
  return d0 + d1;
}

}  // namespace netprobe
