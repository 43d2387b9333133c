#pragma once
// The on-demand budgets that hold across callers (docs/on-demand.md#budgets): concurrent tests (global and
// per credential) and packet spacing (per destination address, all callers together, and for all on-demand
// probing). Thread-safe; time is passed in, so tests run on virtual time.
#include <cstddef>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/clock.h"
#include "core/net.h"

namespace netprobe {
struct OnDemandBudgets;
}

namespace netprobe::ondemand {

// Each cap is kept twice: the budget reserves send times `reserve_gap` apart, and the worker never sends
// two packets closer than `floor_gap` whatever their lateness. floor_gap is 1/pps and a margin (1 % of it,
// at most 1 ms), so that no one-second window, closed at both ends, holds pps + 1 packets at the target.
// reserve_gap adds the margin again: a packet the worker sends up to a margin late gives that time back
// to the next one instead of pushing it later, so the floors never drift a long job past its lateness
// tolerance.
Nanos floor_gap(double pps);
Nanos reserve_gap(double pps);

class Admission {
 public:
  Admission(int max_tests, int max_tests_per_credential)
      : max_(max_tests), max_per_(max_tests_per_credential) {}
  // True and counted, or false with `reason` ("concurrent_tests", "concurrent_tests_per_credential").
  bool try_acquire(const std::string& credential, std::string* reason);
  void release(const std::string& credential);
  int running() const;

 private:
  mutable std::mutex mu_;
  int max_, max_per_;
  int running_ = 0;
  std::map<std::string, int> per_;
};

// Send times: two on-demand packets to one destination are at least reserve_gap(per_destination_pps) apart,
// whichever callers sent them, and any two on-demand packets at least reserve_gap(global_pps) apart. A job
// reserves all its send times at once (the executor sends at those times), so concurrent callers can never
// add up to more.
class PacketBudget {
 public:
  PacketBudget(double per_destination_pps, double global_pps, size_t max_destinations = 4096);
  // `count` send times for `dest`, each >= now (and >= any earlier call's now), or nullopt (nothing reserved)
  // when the last would come after `latest` or too many destinations are booked. Successive send times of
  // the job are at least `min_spacing` apart (a ping test's interval).
  std::optional<std::vector<Nanos>> reserve(const IpAddress& dest, int count, Nanos now, Nanos latest,
                                            Nanos min_spacing = Nanos(0));
  size_t booked() const;  // send times held (for tests)

 private:
  void prune(Nanos now);
  Nanos dest_gap_, global_gap_;
  size_t max_destinations_;
  mutable std::mutex mu_;
  Nanos watermark_{0};  // the latest `now` seen
  std::multiset<Nanos> global_;
  std::unordered_map<IpAddress, std::multiset<Nanos>> per_dest_;
};

// What GET /probe and /api/v1/tests share, so that their caps hold across both (one per on_demand
// section: a reload that changes it starts afresh).
struct SharedLimits {
  std::shared_ptr<Admission> admission;
  std::shared_ptr<PacketBudget> budget;
  static SharedLimits of(const OnDemandBudgets& budgets);
};

}  // namespace netprobe::ondemand
