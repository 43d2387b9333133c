#pragma once
// Test helper: every sample line of a registry's exposition (comments dropped), as a set, since
// prometheus-cpp's order of children within a family is an implementation detail.
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <set>
#include <sstream>
#include <string>

namespace netprobe::testing {

inline std::set<std::string> sample_lines(prometheus::Registry& registry) {
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, registry.Collect());
  std::set<std::string> lines;
  std::istringstream in(out.str());
  for (std::string line; std::getline(in, line);)
    if (!line.empty() && line[0] != '#') lines.insert(line);
  return lines;
}

}  // namespace netprobe::testing
