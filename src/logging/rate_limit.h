#pragma once
// Rate limit of repeated log lines: one misbehaving plug-in wrote 57 MB of log in 30 s. Lines are grouped
// by a key (their text up to the first ": ", digits folded, at most 64 bytes: "inventory=csv stderr" or
// "worker 3" alike); each key may log a burst of kBurst lines, then one line per second on average. What
// is dropped is counted and said in one line, "N similar lines dropped: <key>", before the key's next line
// or at the latest kSummaryEvery after the first drop. CRITICAL lines are never dropped.
#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace netprobe {

class LogRateLimiter {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;
  static constexpr double kBurst = 20;
  static constexpr double kPerSecond = 1;
  static constexpr std::chrono::seconds kSummaryEvery{10};
  static constexpr size_t kMaxKeys = 4096;

  static std::string key_of(std::string_view line);

  // Whether to write `line`; `summaries` receives the "N similar lines dropped" lines due now (to write
  // first, whatever the answer).
  bool admit(std::string_view line, TimePoint now, std::vector<std::string>* summaries);
  // The summaries due at `now` even though no line of their key came (a flood that stopped).
  void due_summaries(TimePoint now, std::vector<std::string>* summaries, bool all = false);

 private:
  struct Bucket {
    double tokens = kBurst;
    TimePoint refilled{};
    uint64_t dropped = 0;
    TimePoint first_drop{};
  };
  std::unordered_map<std::string, Bucket> buckets_;
  TimePoint next_scan_{};
};

}  // namespace netprobe
