#pragma once
// Test helper: every sample line of a registry's exposition (comments dropped), as a set, since
// prometheus-cpp's order of children within a family is an implementation detail.
#include <gtest/gtest.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <atomic>
#include <functional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "metrics/exposition.h"

namespace netprobe::testing {

// The whole text of a TextSource, rendered in one piece.
inline std::string render_text(const TextSource& source) {
  std::string out;
  source.render(out, size_t(-1), [](std::string_view) { return true; });
  return out;
}

// What /metrics serves for ProberMetrics: its registry, then its target_series().
inline std::string exposition_text(prometheus::Registry& registry, const TextSource& targets) {
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, registry.Collect());
  return out.str() + render_text(targets);
}

// Every sample line of `text` (comments dropped), as a set.
inline std::set<std::string> sample_lines(const std::string& text) {
  std::set<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);)
    if (!line.empty() && line[0] != '#') lines.insert(line);
  return lines;
}

inline std::set<std::string> sample_lines(prometheus::Registry& registry, const TextSource& targets) {
  return sample_lines(exposition_text(registry, targets));
}

inline std::set<std::string> sample_lines(prometheus::Registry& registry) {
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, registry.Collect());
  return sample_lines(out.str());
}

// What Prometheus' text parser insists on: every line ends with \n, no series twice, one HELP and TYPE per
// family, given before its samples, which all follow it without another family in between. Returns "" or
// what is wrong.
inline std::string well_formed(const std::string& text) {
  if (!text.empty() && text.back() != '\n') return "no final newline";
  std::set<std::string> series, families;
  std::string family, type;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("# HELP ", 0) == 0) continue;
    if (line.rfind("# TYPE ", 0) == 0) {
      std::istringstream words(line.substr(7));
      words >> family >> type;
      if (!families.insert(family).second) return "family twice: " + family;
      continue;
    }
    if (!series.insert(line.substr(0, line.rfind(' '))).second) return "series twice: " + line;
    const std::string name = line.substr(0, line.find_first_of("{ "));
    const bool ok = type == "histogram"
                        ? name == family + "_count" || name == family + "_sum" || name == family + "_bucket"
                        : name == family;
    if (!ok) return "sample outside its family (" + family + "): " + line;
  }
  return "";
}

// Two readers render `source` in slices of `slice` bytes, over and over, while `writer` runs on this thread
// (run it under ThreadSanitizer too). Expects every text well_formed() and every reader to have rendered at
// least once. Bounded: the readers stop with the writer (at most 100,000 renders each).
inline void expect_well_formed_while(const TextSource& source, size_t slice,
                                     const std::function<void()>& writer) {
  std::atomic<bool> done{false};
  std::vector<std::string> problems(2);
  std::vector<int> renders(2, 0);
  std::vector<std::thread> readers;
  for (size_t r = 0; r < 2; ++r) {
    readers.emplace_back([&, r] {
      for (int i = 0; i < 100000 && !(done && renders[r] > 0); ++i) {
        std::string out, text;
        source.render(out, slice, [&](std::string_view piece) {
          text += piece;
          return true;
        });
        text += out;
        ++renders[r];
        if (auto p = well_formed(text); !p.empty() && problems[r].empty()) problems[r] = p;
      }
    });
  }
  writer();
  done = true;
  for (auto& t : readers) t.join();
  for (size_t r = 0; r < 2; ++r) {
    EXPECT_EQ(problems[r], "") << "reader " << r;
    EXPECT_GT(renders[r], 0);
  }
}

}  // namespace netprobe::testing
