#include "ondemand/budget.h"

#include <algorithm>
#include <cmath>

#include "config/on_demand.h"

namespace netprobe::ondemand {
namespace {

constexpr Nanos kMaxMargin{1'000'000};
constexpr Nanos kMaxFloor{10'000'000'000};  // what a job frame carries at most (ipc.cpp)

Nanos period(double pps) {
  return std::min(Nanos(int64_t(std::ceil(1e9 / std::max(pps, 1e-3)))), kMaxFloor - kMaxMargin);
}
Nanos margin(double pps) { return std::min(kMaxMargin, period(pps) / 100); }

// The earliest t' >= t with no booked time closer than `gap` (bounded by the size of `booked`).
Nanos first_free(const std::multiset<Nanos>& booked, Nanos t, Nanos gap) {
  for (auto it = booked.upper_bound(t - gap); it != booked.end() && *it < t + gap; ++it) t = *it + gap;
  return t;
}

}  // namespace

Nanos floor_gap(double pps) { return period(pps) + margin(pps); }
Nanos reserve_gap(double pps) { return period(pps) + 2 * margin(pps); }

SharedLimits SharedLimits::of(const OnDemandBudgets& b) {
  return {std::make_shared<Admission>(b.max_concurrent_tests, b.max_concurrent_tests_per_credential),
          std::make_shared<PacketBudget>(b.max_packets_per_second_per_destination, b.max_packets_per_second)};
}

bool Admission::try_acquire(const std::string& credential, std::string* reason) {
  std::lock_guard lock(mu_);
  if (running_ >= max_) {
    *reason = "concurrent_tests";
    return false;
  }
  int& mine = per_[credential];
  if (mine >= max_per_) {
    *reason = "concurrent_tests_per_credential";
    return false;
  }
  ++mine;
  ++running_;
  return true;
}

void Admission::release(const std::string& credential) {
  std::lock_guard lock(mu_);
  auto it = per_.find(credential);
  if (it == per_.end() || it->second == 0) return;
  if (--it->second == 0) per_.erase(it);
  --running_;
}

int Admission::running() const {
  std::lock_guard lock(mu_);
  return running_;
}

PacketBudget::PacketBudget(double per_destination_pps, double global_pps, size_t max_destinations)
    : dest_gap_(reserve_gap(per_destination_pps)),
      global_gap_(reserve_gap(global_pps)),
      max_destinations_(max_destinations) {}

void PacketBudget::prune(Nanos now) {
  // A time older than the largest gap can no longer constrain a new one (new ones are >= now).
  global_.erase(global_.begin(), global_.lower_bound(now - global_gap_));
  for (auto it = per_dest_.begin(); it != per_dest_.end();) {
    it->second.erase(it->second.begin(), it->second.lower_bound(now - dest_gap_));
    it = it->second.empty() ? per_dest_.erase(it) : std::next(it);
  }
}

std::optional<std::vector<Nanos>> PacketBudget::reserve(const IpAddress& dest, int count, Nanos now,
                                                        Nanos latest, Nanos min_spacing) {
  std::lock_guard lock(mu_);
  // Callers read the clock before the lock: never go back behind what was already pruned.
  now = std::max(now, watermark_);
  watermark_ = now;
  prune(now);
  if (count <= 0) return std::vector<Nanos>{};
  if (!per_dest_.count(dest) && per_dest_.size() >= max_destinations_) return std::nullopt;
  std::multiset<Nanos> dest_times = per_dest_[dest];  // a copy: committed only when everything fits
  std::multiset<Nanos> global_times = global_;
  std::vector<Nanos> out;
  Nanos t = now;
  for (int i = 0; i < count; ++i) {
    if (i > 0) t = std::max(t, out.back() + min_spacing);
    // Both constraints only push t later: alternate until neither moves it.
    for (;;) {
      const Nanos a = first_free(dest_times, t, dest_gap_);
      const Nanos b = first_free(global_times, a, global_gap_);
      if (b == t) break;
      t = b;
    }
    if (t > latest) {
      if (per_dest_[dest].empty()) per_dest_.erase(dest);
      return std::nullopt;
    }
    out.push_back(t);
    dest_times.insert(t);
    global_times.insert(t);
  }
  per_dest_[dest] = std::move(dest_times);
  global_ = std::move(global_times);
  return out;
}

size_t PacketBudget::booked() const {
  std::lock_guard lock(mu_);
  return global_.size();
}

}  // namespace netprobe::ondemand
