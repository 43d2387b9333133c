#pragma once
// The bookkeeping of one iteration: tokens for every planned probe, matching of captured packets, and
// the per-(target, group) report. Pure logic over packet timestamps: no clock, no socket, no thread.
// Not thread-safe: the engine serialises access.
#include <array>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "core/measurement.h"
#include "io/packet_io.h"
#include "match/destination_index.h"
#include "match/huge_pages.h"
#include "match/token_permutation.h"
#include "probes/reply_info.h"
#include "sched/plan.h"

namespace netprobe {

// What became of one probe of an iteration, for a one-shot caller that prints a line per probe
// (`netprobe ping`). Built on request at the end of the iteration (IterationRunner::probe_events()): the
// daemon path never pays for it.
struct ProbeEvent {
  enum class State : uint8_t {
    kAnswered,   // in time: rtt_s is its RTT (unless negative: no usable send time)
    kLost,       // no answer before its deadline (or still pending when the iteration was cut short)
    kLate,       // an answer came, but after its deadline
    kIcmpError,  // not answered, and an ICMP error quoting it came: icmp_type / icmp_code
    kUnsent,     // never sent (the kernel refused it, or the iteration ended first)
  };
  uint32_t slot = 0;      // its index in plan.probes
  uint16_t src_port = 0;  // 0 for probe types without ports
  State state = State::kLost;
  uint8_t icmp_type = 0;  // the first ICMP error quoting it, if any (also set when answered)
  uint8_t icmp_code = 0;
  bool icmp_error = false;
  // 1 + the reason the kernel refused it (a SendError; IterationRunner::kUnsentCutShort, kUnsentNoToken),
  // 0 if it was sent. A refusal about the destination (no route, a firewall rule, too big) is kLost, a
  // local one (full buffers, ...) kUnsent.
  uint8_t send_error = 0;
  // Sent, still within its timeout when the iteration was cut short (stop()): its state says kLost, but
  // nobody knows; `netprobe ping` counts it neither received nor lost.
  bool interrupted = false;
  double rtt_s = -1;  // kAnswered only; -1 otherwise
  // What the replies looked like (IterationRunner::Options::reply_details; all empty without it).
  uint16_t duplicates = 0;  // answers after the first
  // The first duplicates' own fields, in arrival order (at most IterationRunner::kMaxDuplicateDetails per
  // iteration, all probes together; a duplicate beyond that is only counted).
  struct Duplicate {
    ReplyInfo reply;
    double rtt_s = -1;  // -1: no usable send time
  };
  std::vector<Duplicate> duplicate_replies = {};
  bool has_reply = false;  // the first answer (in time or late): `reply`, `reply_rtt_s`
  ReplyInfo reply;
  double reply_rtt_s = -1;  // -1: no usable send time
  bool has_error = false;   // the first ICMP error quoting it: `error`, `error_rtt_s` (traceroute's hop)
  ReplyInfo error;
  double error_rtt_s = -1;
};
std::string_view to_string(ProbeEvent::State state);
// The name of ProbeEvent::send_error's reason ("permission", "no_buffer", "cut_short", ...); "" for 0.
std::string_view send_error_name(uint8_t send_error);

class IterationRunner {
 public:
  explicit IterationRunner(uint64_t secret, KeySlice slice = {}) : secret_(secret), slice_(slice) {}

  // For the one-shot commands; the daemon leaves both off. Read at prepare().
  struct Options {
    // Keep, per probe, the first answer's and the first ICMP error's fields and arrival times, and count
    // duplicates (probe_events()): about 150 bytes per probe.
    bool reply_details = false;
    // An ICMP error quoting a probe resolves it (as lost, with its error) instead of leaving it pending
    // until its deadline: `netprobe ping` reports a refused probe at once, `netprobe trace` takes a Time
    // Exceeded as its hop's answer and ends the iteration as soon as every probe has one.
    bool icmp_error_resolves = false;
  };
  void set_options(const Options& options) { options_ = options; }

  // Chooses the token of every planned probe and resets the iteration's state. `plan` must outlive the
  // iteration. Returns the tokens, indexed like plan.probes, valid until the next prepare(); a token of
  // 0 means the probe cannot be told apart from the others to its destination (more of them than its
  // token space holds: the configuration check prevents it for literal addresses) and must not be sent.
  //
  // A probe's token is a keyed permutation (match/token_permutation.h, keyed by the run secret, the
  // iteration and the destination) of its ordinal among the probes of the plan to the same (type,
  // destination address): a reply is decoded back to its probe by arithmetic and one array access,
  // without a table of in-flight keys.
  std::span<const uint32_t> prepare(const Plan& plan, uint64_t iteration);

  // A captured packet: our own probe leaving (send time), an answer, an ICMP error, or something to reject.
  void on_packet(const CapturedPacket& packet);
  // The probe was not sent: `reason` is a SendError, or one of the runner's own reasons below. It counts
  // in the report's send_errors, and as sent and lost when the refusal is about its destination (no route,
  // a firewall rule, too big for the path), else not as sent.
  static constexpr size_t kUnsentCutShort = size_t(SendError::kCount);  // the iteration ended first
  static constexpr size_t kUnsentNoToken = kUnsentCutShort + 1;         // no token left (prepare())
  // Events only (never a slot's reason): the on-demand worker was down or did not answer in time.
  static constexpr size_t kUnsentNoWorker = kUnsentNoToken + 1;
  // Options::reply_details: the fields of at most this many duplicate answers are kept per iteration (a
  // flood of duplicates is counted, never stored).
  static constexpr size_t kMaxDuplicateDetails = 256;
  void mark_unsent(uint32_t slot, size_t reason);
  // The sender's clock right after the sendmmsg() that carried this probe: its send time unless the
  // capture of the outgoing copy (kernel stamp, more exact) gives one.
  void on_sender_stamp(uint32_t slot, Nanos at) {
    if (slot >= sent_end_) sent_end_ = slot + 1;
    Slot& s = slots_[slot];
    if (!(s.flags & kCaptured)) set_send_time(s, at.count());
  }
  // Marks every probe sent more than its timeout before `now` (packet timestamp base, lagging by the
  // capture delay) as lost. Returns true once every probe is resolved (answered, lost or unsent), i.e.
  // the iteration can end.
  bool expire(Nanos now);
  IterationReport report() const;
  // One event per probe of the plan, in plan order (appended to `out`), before finish(). O(probes): for the
  // one-shot commands, never called by the workers.
  void probe_events(std::vector<ProbeEvent>& out) const;
  // Forgets the plan (the iteration is over and reported): from here on captured packets are ignored
  // until the next prepare(), so the caller may destroy or replace the plan while the capture thread
  // still runs.
  // Keeps what decodes this iteration's TCP tokens next iteration (docs/architecture.md#two-way-loss).
  void finish() {
    record_tuples();
    plan_ = nullptr;
  }
  // Probes whose SYN-ACK opened a half-open connection that netprobe must reset itself (non-local
  // source, Plan::source_is_foreign); the engine sends the RSTs and clears the list.
  std::vector<uint32_t>& pending_resets() { return pending_resets_; }
  // RSTs that clear a half-open connection an earlier probe left on the target (its RST was lost), proven by
  // a pure ACK of that earlier SYN (docs/architecture.md#two-way-loss): sent from `slot`'s 4-tuple with
  // seq = `token` + 1 (craft_rst() with that token: the earlier probe's seq), kStaleResetCopies times, for a
  // local source too. The engine sends them and clears the list.
  struct StaleReset {
    uint32_t slot = 0;
    uint32_t token = 0;
  };
  static constexpr int kStaleResetCopies = 3;
  std::vector<StaleReset>& stale_resets() { return stale_resets_; }
  uint32_t token(uint32_t slot) const { return tokens_[slot]; }

  size_t probe_count() const { return plan_ ? plan_->probes.size() : 0; }
  // Bytes of per-probe state held for the iteration (capacity, not size).
  size_t memory_bytes() const noexcept;

 private:
  // kUnexpected, kClosed: UDPquery's answer that is not what `expect` says, and its ICMP port unreachable;
  // resolved, neither answered nor lost (docs/service-checks.md#udpquery).
  enum class State : uint8_t { kPending, kAnswered, kLost, kUnsent, kUnexpected, kClosed };
  // 16 bytes per probe: everything the iteration knows about it besides its plan entry and token.
  // The RTT is a float of nanoseconds: 24 bits of mantissa hold every whole nanosecond below 16.7 ms
  // exactly (so the exported seconds are those of an integer ns count, as before) and are within 60 ns
  // at 1 s, finer than any clock involved.
  struct Slot {
    int64_t time = 0;  // ns, packet timestamp base: the send time (0 = not known yet), or, with
                       // kRttPending, the time of an answer that came before any send time
    float rtt_ns = 0;  // kAnswered without kRttPending
    State state = State::kPending;
    uint8_t flags = 0;
    uint8_t icmp_type = 0;  // with kIcmpError: the error's (in what was padding)
    uint8_t icmp_code = 0;
  };
  static_assert(sizeof(Slot) == 16);
  enum : uint8_t {
    kCaptured = 1,    // the send time comes from the capture of our outgoing copy (else: the sender's)
    kReplied = 2,     // some answer came (in time, late or duplicate)
    kIcmpError = 4,   // an ICMP error quoting it was counted
    kRttPending = 8,  // answered before its send time was known: `time` is the answer's
    // The top 4 bits: 1 + the mark_unsent() reason when the kernel refused it (reasons < 15).
    kSendErrorShift = 4,
  };
  static_assert(kUnsentNoToken + 1 < 16);
  static void set_send_time(Slot& s, int64_t at) noexcept;
  // Options::reply_details: per probe, what its first answer and first ICMP error looked like.
  struct Details {
    ReplyInfo reply;
    ReplyInfo error;
    int64_t reply_at = 0;  // packet timestamp base, 0 = none
    int64_t error_at = 0;
    uint16_t duplicates = 0;
  };
  void record_reply(uint32_t slot, bool first, Nanos at);
  void record_error(uint32_t slot, Nanos at);
  // One per (probe type, destination address) of the plan.
  struct Destination {
    uint32_t first = 0;  // its probes' slots are by_ordinal_[first, first + count)
    uint32_t count = 0;
    uint32_t target = 0;     // the first target probing it (match_ack_fail, port_mismatch)
    uint8_t type_bits = 0;   // token_bits() of its type and family
    uint8_t bits = 0;        // what is left once the worker's slice bits are taken (0: no token at all)
    uint8_t check_bits = 0;  // check_bits() of its type and family
  };
  // ICMP errors by (type, code) in a fixed table: the capture path never allocates. Real paths give a
  // probe bucket one or two kinds; any beyond kIcmpKinds are counted as "other:overflow".
  struct IcmpErrorCount {
    uint16_t type_code = 0;  // type << 8 | code
    uint32_t count = 0;      // 0: free
  };
  static constexpr size_t kIcmpKinds = 6;
  struct BucketStats {
    uint64_t late = 0, duplicates = 0;
    std::array<IcmpErrorCount, kIcmpKinds> icmp_errors{};
    uint32_t icmp_errors_overflow = 0;
  };
  TokenPermutation permutation(uint32_t dest) const noexcept;
  // The slot a captured key designates (kNoSlot if none): destination, slice, token, then the port.
  uint32_t slot_of(const MatchKey& key, uint32_t* dest) const noexcept;
  void on_own_probe(const Classification& c, Nanos at);
  void on_answer(const Classification& c, Nanos at);
  void on_icmp_error(const Classification& c, Nanos at);
  // The ICMP error bookkeeping of a probe once its quote is matched (per (type, code), one per probe).
  void note_icmp_error(uint32_t slot, const Classification& c, Nanos at);
  // UDPquery (probes/udp_query.h): an answer datagram, or (`quoted`) an ICMP error quoting a UDP datagram,
  // looked up on its 5-tuple among the destination's probes of the last timeout, then by the exact echoed
  // token. Returns false when no UDPquery destination is probed at that address (the packet is then the
  // other UDP type's to judge).
  bool on_udp_query(const Classification& c, Nanos at, bool quoted);
  // Resolves a pending probe as `state` (kUnexpected, kClosed) at `at`; else counts a duplicate or late.
  void account_other_outcome(uint32_t slot, State state, Nanos at);
  // The accounting of an answer to `slot` at `at` (in time, late, duplicate), shared by every answer kind.
  void account_answer(uint32_t slot, Nanos at);

  // ---- Two-way loss (docs/architecture.md#two-way-loss): a pure ACK of an earlier SYN on a 4-tuple.
  // A probe's 4-tuple besides the destination address: source address, source port, destination port.
  struct Tuple {
    uint16_t src_port = 0;
    uint16_t dst_port = 0;
    uint32_t source = 0;  // index into the iteration's sources (Plan::sources)
  };
  static_assert(sizeof(Tuple) == 8);
  // What decodes the previous iteration's TCP tokens once its plan is gone: its destinations, their
  // permutations and, per TCP probe (by destination and ordinal), its 4-tuple. 8 bytes per TCP probe of
  // the previous iteration. Built by finish(); an iteration not finished leaves none.
  struct TupleBook {
    DestinationIndex index;
    std::vector<Destination> destinations;
    std::vector<TokenPermutation> permutations;
    uint64_t seed = 0;                  // its check bits (wire_token())
    std::vector<uint32_t> tuple_first;  // per destination: its ordinals' tuples start here (TCP only)
    std::vector<IpAddress> sources;
    HugePageVector<Tuple> tuples;
  };
  void on_pure_ack(const Classification& c, Nanos at);
  // The probe of ours that `c` acknowledges exactly, sent on the ACK's 4-tuple (ordered before it is
  // looked for, so that a forged ACK costs one decode): its slot in this iteration, kPreviousIteration for
  // one of the previous iteration, kNoSlot if none.
  uint32_t acked_probe_on_tuple(const Classification& c, uint32_t dest) const noexcept;
  static constexpr uint32_t kPreviousIteration = 0xFFFFFFFEu;
  // The most recently sent probe of destination `dest` on the ACK's 4-tuple, no older than its timeout
  // at `at`; kNoSlot if none.
  uint32_t latest_on_tuple(const Classification& c, uint32_t dest, Nanos at) const;
  void record_tuples();  // finish(): the book of the iteration that ends, for the next one
  // The slot of an answer or error whose index designates a probe and whose whole token matches it
  // (Probe::index_candidates, Probe::proof_matches), else kNoSlot; `indexed` says whether some index at
  // least designated a probe (a wrong proof is then a likely forgery: counted apart).
  uint32_t matched_slot(const Classification& c, uint32_t* dest, bool* indexed) const noexcept;
  // The token on the wire of the probe with `ordinal` at destination `dest` whose index part is `index`:
  // the index followed by `check_bits` keyed check bits of the iteration's `seed`.
  static uint32_t wire_token(uint64_t seed, uint32_t dest, uint32_t ordinal, uint32_t index,
                             int check_bits) noexcept;
  void resolve(uint32_t slot, State state);
  Nanos timeout_of(uint32_t slot) const;

  static constexpr uint32_t kNoSlot = 0xFFFFFFFFu;

  uint64_t secret_;
  KeySlice slice_;
  uint64_t seed_ = 0;
  const Plan* plan_ = nullptr;
  DestinationIndex destination_index_;
  std::vector<Destination> destinations_;
  std::vector<TokenPermutation> permutations_;  // per destination, keyed for this iteration
  std::vector<uint32_t> template_destination_;  // per template
  std::vector<int64_t> template_timeout_;       // per template, ns (the hot path avoids Bucket's strings)
  HugePageVector<uint32_t> tokens_;             // per slot
  HugePageVector<uint32_t> by_ordinal_;         // slots grouped by destination, in ordinal order
  HugePageVector<Slot> slots_;
  size_t expire_cursor_ = 0;  // slots before it are resolved (probes are sent in slot order)
  std::vector<BucketStats> bucket_stats_;
  std::vector<TargetEvents> target_events_;
  // Rejected captured packets by reason: plain counters on the capture path (no allocation per foreign
  // packet), named only in report(). The reasons of classify() first, then the runner's own.
  enum : size_t {
    kUnmatched = size_t(RejectReason::kCount),  // an answer's key designates no probe in flight
    kWrongLocalAddress,                         // an answer to one of our probes, sent to another address
    kUnmatchedIcmpError,                        // an ICMP error quoting a probe not in flight
    kUnprovenAck,  // a pure ACK that proves no probe of ours arrived (forged, foreign, or nothing pending)
    kWrongToken,   // designates a probe by its index, but the rest of its token is wrong: forged?
    kWrongQuote,   // an ICMP error whose quote names our probe but not from its source / to its port
    kRejectCounters
  };
  std::array<uint64_t, kRejectCounters> rejected_{};
  std::array<uint64_t, kUnsentNoToken + 1> unsent_{};  // by reason (mark_unsent)
  size_t unresolved_ = 0;
  std::vector<uint32_t> pending_resets_;
  uint32_t sent_end_ = 0;  // slots below it were handed to the sender (probes leave in slot order)
  TupleBook previous_book_;
  std::vector<StaleReset> stale_resets_;
  Options options_;
  bool details_on_ = false;       // options_.reply_details as of prepare()
  std::vector<Details> details_;  // per slot, with details_on_
  struct DuplicateDetail {
    uint32_t slot = 0;
    ReplyInfo reply;
    int64_t at = 0;
  };
  std::vector<DuplicateDetail> duplicate_details_;  // with details_on_, bounded
  std::span<const uint8_t> current_packet_;         // the packet on_packet() is matching (for the details)
};

// Label of an ICMP error for the *_icmp_errors_total family, e.g. "unreachable:13", "time_exceeded:0".
std::string icmp_error_label(AddressFamily af, uint8_t type, uint8_t code);

}  // namespace netprobe
