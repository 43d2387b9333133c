#pragma once
// In-flight probes: a flat open-addressing table from MatchKey to probe slot, plus a deadline queue.
// Single-threaded by contract: owned by the capture thread while an iteration runs.
//
//   insert(key, slot)          before the probe is sent; false if the key is already in flight
//   on_sent(slot, t, deadline) when the probe is seen leaving (or the sender's fallback stamp)
//   take(key, t)               a reply: kMatched the first time before the deadline, kLate after it,
//                              kDuplicate for any later reply, kUnknown if the key was never inserted
//   expire(now)                pops every probe whose deadline passed without answer (-> lost)
//
// Entries stay in the table after being answered or expired so that late and duplicate replies are
// recognised; clear() forgets everything between iterations (tokens differ per iteration).
#include <cstdint>
#include <vector>

#include "core/clock.h"
#include "probes/probe.h"

namespace netprobe {

enum class MatchOutcome : uint8_t { kMatched, kLate, kDuplicate, kUnknown };

struct TakeResult {
  MatchOutcome outcome = MatchOutcome::kUnknown;
  uint32_t slot = 0;
};

class Matcher {
 public:
  explicit Matcher(size_t expected_in_flight = 1024);
  void clear(size_t expected_in_flight);
  bool insert(const MatchKey& key, uint32_t slot);
  // Records the send time (first call wins) and arms the deadline.
  void on_sent(uint32_t slot, Nanos sent_at, Nanos deadline);
  TakeResult take(const MatchKey& key, Nanos at);
  // Looks a key up without changing its state (own outgoing probes).
  bool find(const MatchKey& key, uint32_t* slot) const;
  // Calls on_expired(slot) for every sent, unanswered probe with deadline < now; returns the count.
  template <typename F>
  size_t expire(Nanos now, F&& on_expired);
  size_t size() const;
};

}  // namespace netprobe
