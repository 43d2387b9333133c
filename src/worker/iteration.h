#pragma once
// The bookkeeping of one iteration: tokens for every planned probe, matching of captured packets, and
// the per-(target, group) report. Pure logic over packet timestamps: no clock, no socket, no thread.
// Not thread-safe: the engine serialises access.
#include <array>
#include <cstdint>
#include <span>
#include <unordered_map>
#include <vector>

#include "core/measurement.h"
#include "io/packet_io.h"
#include "match/matcher.h"
#include "sched/plan.h"

namespace netprobe {

class IterationRunner {
 public:
  explicit IterationRunner(uint64_t secret, KeySlice slice = {}) : secret_(secret), slice_(slice) {}

  // Chooses a fresh token for every probe of `plan` (a keyed hash of the run secret, the iteration number
  // and the probe's slot, so tokens differ per iteration and cannot be guessed from outside) and registers
  // the keys. `plan` must outlive the iteration. Returns the tokens, indexed like plan.probes.
  const std::vector<uint32_t>& prepare(const Plan& plan, uint64_t iteration);

  // A captured packet: our own probe leaving (send time), an answer, an ICMP error, or something to reject.
  void on_packet(const CapturedPacket& packet);
  // The sender could not hand this probe to the kernel: it is not accounted as sent.
  void mark_unsent(uint32_t slot);
  // The sender's clock right after the sendmmsg() that carried this probe: its send time unless the
  // capture of the outgoing copy (kernel stamp, more exact) gives one.
  void on_sender_stamp(uint32_t slot, Nanos at) {
    if (!slots_[slot].captured) slots_[slot].sent_at = at;
  }
  // After the last send: probes whose outgoing copy was not captured are armed with the sender's stamp.
  void arm_unseen();
  // Marks every probe whose deadline is before `now` as lost. Returns true once every probe is resolved
  // (answered, lost or unsent), i.e. the iteration can end.
  bool expire(Nanos now);
  IterationReport report() const;
  // Probes whose SYN-ACK opened a half-open connection that netprobe must reset itself (non-local
  // source, PlannedProbe::needs_rst); the engine sends the RSTs and clears the list.
  std::vector<uint32_t>& pending_resets() { return pending_resets_; }
  uint32_t token(uint32_t slot) const { return tokens_[slot]; }

  size_t probe_count() const { return plan_ ? plan_->probes.size() : 0; }

 private:
  enum class State : uint8_t { kPending, kAnswered, kLost, kUnsent };
  struct Slot {
    State state = State::kPending;
    bool icmp_error = false;
    bool captured = false;  // sent_at comes from the capture of our outgoing copy (else: the sender's)
    Nanos sent_at{0};
    Nanos answered_at{0};
  };
  struct BucketStats {
    uint64_t late = 0, duplicates = 0;
    std::map<std::string, uint64_t> icmp_errors;
  };
  void on_own_probe(const Classification& c, Nanos at);
  void on_answer(const Classification& c, Nanos at);
  void on_icmp_error(const Classification& c);
  void resolve(uint32_t slot, State state);
  Nanos timeout_of(uint32_t slot) const;

  uint64_t secret_;
  KeySlice slice_;
  const Plan* plan_ = nullptr;
  Matcher matcher_;
  std::vector<uint32_t> tokens_;
  std::vector<Slot> slots_;
  std::vector<BucketStats> bucket_stats_;
  std::vector<TargetEvents> target_events_;
  std::unordered_map<IpAddress, uint32_t> target_by_address_;
  // Rejected captured packets by reason: plain counters on the capture path (no allocation per foreign
  // packet), named only in report(). The reasons of classify() first, then the matcher's own.
  enum : size_t {
    kUnmatched = size_t(RejectReason::kCount),  // an answer's key is not in flight
    kWrongLocalAddress,                         // an answer to one of our probes, sent to another address
    kUnmatchedIcmpError,                        // an ICMP error quoting a probe not in flight
    kRejectCounters
  };
  std::array<uint64_t, kRejectCounters> rejected_{};
  size_t unresolved_ = 0;
  std::vector<uint32_t> pending_resets_;
};

// Label of an ICMP error for the *_icmp_errors_total family, e.g. "unreachable:13", "time_exceeded:0".
std::string icmp_error_label(AddressFamily af, uint8_t type, uint8_t code);

}  // namespace netprobe
