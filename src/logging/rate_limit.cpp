#include "logging/rate_limit.h"

#include <algorithm>

#include <fmt/format.h>

namespace netprobe {

std::string LogRateLimiter::key_of(std::string_view line) {
  const size_t colon = line.find(": ");
  line = line.substr(0, std::min<size_t>(colon == std::string_view::npos ? line.size() : colon, 64));
  std::string key;
  key.reserve(line.size());
  for (char c : line) {
    const bool digit = c >= '0' && c <= '9';
    if (digit && !key.empty() && key.back() == '#') continue;
    key += digit ? '#' : c;
  }
  return key;
}

namespace {
std::string summary(uint64_t dropped, const std::string& key) {
  return fmt::format("{} similar line(s) dropped (more than {} in a burst or {}/s): {}", dropped,
                     LogRateLimiter::kBurst, LogRateLimiter::kPerSecond, key);
}
}  // namespace

bool LogRateLimiter::admit(std::string_view line, TimePoint now, std::vector<std::string>* summaries) {
  due_summaries(now, summaries);
  std::string key = key_of(line);
  auto it = buckets_.find(key);
  if (it == buckets_.end()) {
    if (buckets_.size() >= kMaxKeys) {
      // Keys that dropped nothing are forgotten first; a flood of distinct keys resets the table.
      std::erase_if(buckets_, [](const auto& kv) { return kv.second.dropped == 0; });
      if (buckets_.size() >= kMaxKeys) due_summaries(now, summaries, /*all=*/true), buckets_.clear();
    }
    it = buckets_.emplace(std::move(key), Bucket{kBurst, now, 0, {}}).first;
  }
  Bucket& b = it->second;
  const double elapsed = std::chrono::duration<double>(now - b.refilled).count();
  b.tokens = std::min(kBurst, b.tokens + std::max(0.0, elapsed) * kPerSecond);
  b.refilled = now;
  if (b.tokens < 1) {
    if (b.dropped++ == 0) b.first_drop = now;
    return false;
  }
  b.tokens -= 1;
  if (b.dropped) {
    summaries->push_back(summary(b.dropped, it->first));
    b.dropped = 0;
  }
  return true;
}

void LogRateLimiter::due_summaries(TimePoint now, std::vector<std::string>* summaries, bool all) {
  if (!all && now < next_scan_) return;
  next_scan_ = now + std::chrono::seconds(1);
  for (auto& [key, b] : buckets_)
    if (b.dropped && (all || now - b.first_drop >= kSummaryEvery)) {
      summaries->push_back(summary(b.dropped, key));
      b.dropped = 0;
    }
}

}  // namespace netprobe
