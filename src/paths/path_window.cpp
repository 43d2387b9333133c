#include "paths/path_window.h"

#include <algorithm>
#include <cstring>

#include "core/hash.h"
#include "paths/significance.h"

namespace netprobe {

size_t PathWindow::KeyHash::operator()(const FlowKey& k) const noexcept {
  uint64_t h = splitmix64(k.src_port);
  for (const IpAddress* a : {&k.src, &k.dst}) {
    uint64_t lo = 0, hi = 0;
    std::memcpy(&lo, a->bytes.data(), 8);
    std::memcpy(&hi, a->bytes.data() + 8, 8);
    h = splitmix64(h ^ lo);
    h = splitmix64(h ^ hi ^ uint64_t(a->af));
  }
  return size_t(h);
}

PathWindow::PathWindow(uint32_t iterations)
    : iterations_(std::clamp<uint32_t>(iterations, 1, kMaxIterations)) {}

void PathWindow::set_iterations(uint32_t iterations) {
  iterations = std::clamp<uint32_t>(iterations, 1, kMaxIterations);
  if (iterations == iterations_) return;
  iterations_ = iterations;
  clear();
}

void PathWindow::clear() {
  keys_.clear();
  last_seen_.clear();
  ring_.clear();
  index_.clear();
  column_ = 0;
  added_ = 0;
  summary_ = {};
}

void PathWindow::add(const GroupMeasurement& m, std::span<const IpAddress> sources) {
  ++added_;
  column_ = (column_ + 1) % iterations_;
  for (size_t i = 0; i < keys_.size(); ++i) ring_[i * iterations_ + column_] = {};
  summary_.paths = 0;
  for (const FlowMeasurement& f : m.flows) {
    if (f.sent == 0 || f.src >= sources.size() || f.dst >= m.flow_destinations.size()) continue;
    FlowKey key{sources[f.src], m.flow_destinations[f.dst], f.src_port};
    auto [it, added] = index_.try_emplace(key, uint32_t(keys_.size()));
    if (added) {
      keys_.push_back(key);
      last_seen_.push_back(0);
      ring_.resize(ring_.size() + iterations_);
    }
    const uint32_t i = it->second;
    Tally& t = ring_[size_t(i) * iterations_ + column_];
    if (last_seen_[i] != added_) ++summary_.paths;  // the same flow twice in one report counts once
    last_seen_[i] = added_;
    t.sent += f.sent;
    t.lost += std::min(f.lost, f.sent);
    t.rtt_count += f.rtt_count;
    t.rtt_sum_s += f.rtt_sum_s;
  }
  forget_stale();
  summarise();
}

// A flow not probed for a whole window has nothing left in it.
void PathWindow::forget_stale() {
  size_t kept = 0;
  for (size_t i = 0; i < keys_.size(); ++i) {
    if (added_ - last_seen_[i] >= iterations_) continue;
    if (kept != i) {
      keys_[kept] = keys_[i];
      last_seen_[kept] = last_seen_[i];
      std::copy_n(ring_.begin() + long(i * iterations_), iterations_,
                  ring_.begin() + long(kept * iterations_));
    }
    ++kept;
  }
  if (kept == keys_.size()) return;
  keys_.resize(kept);
  last_seen_.resize(kept);
  ring_.resize(kept * iterations_);
  index_.clear();
  for (uint32_t i = 0; i < keys_.size(); ++i) index_.emplace(keys_[i], i);
}

void PathWindow::summarise() {
  std::vector<PathFlow> totals(keys_.size());
  std::vector<FlowTally> tallies(keys_.size());
  for (size_t i = 0; i < keys_.size(); ++i) {
    PathFlow& p = totals[i];
    p.key = keys_[i];
    for (uint32_t c = 0; c < iterations_; ++c) {
      const Tally& t = ring_[i * iterations_ + c];
      p.sent += t.sent;
      p.lost += t.lost;
      p.rtt_count += t.rtt_count;
      p.rtt_sum_s += double(t.rtt_sum_s);
    }
    tallies[i] = {p.sent, p.lost};
  }
  const std::vector<bool> flagged = lossy_flows(tallies);
  summary_.worst_loss_ratio = 0;
  summary_.lossy.clear();
  for (size_t i = 0; i < totals.size(); ++i) {
    summary_.worst_loss_ratio = std::max(summary_.worst_loss_ratio, totals[i].loss_ratio());
    if (flagged[i]) summary_.lossy.push_back(totals[i]);
  }
  summary_.paths_with_loss = uint32_t(summary_.lossy.size());
  summary_.several_sources =
      std::any_of(keys_.begin(), keys_.end(), [&](const FlowKey& k) { return k.src != keys_[0].src; });
  summary_.several_destinations =
      std::any_of(keys_.begin(), keys_.end(), [&](const FlowKey& k) { return k.dst != keys_[0].dst; });
  std::sort(summary_.lossy.begin(), summary_.lossy.end(), [](const PathFlow& a, const PathFlow& b) {
    // Equal fractions give equal doubles (each is the correctly rounded quotient of the same real).
    if (a.loss_ratio() != b.loss_ratio()) return a.loss_ratio() > b.loss_ratio();
    if (a.sent != b.sent) return a.sent > b.sent;
    return a.key.src_port < b.key.src_port;
  });
}

size_t PathWindow::memory_bytes() const {
  return keys_.capacity() * sizeof(FlowKey) + last_seen_.capacity() * sizeof(uint64_t) +
         ring_.capacity() * sizeof(Tally) +
         index_.size() * (sizeof(FlowKey) + sizeof(uint32_t) + 2 * sizeof(void*)) +
         index_.bucket_count() * sizeof(void*);
}

}  // namespace netprobe
