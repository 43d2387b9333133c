#pragma once
// In-flight probes: a flat open-addressing table from MatchKey to probe slot, plus a deadline queue.
// Single-threaded by contract: owned by the capture thread while an iteration runs.
//
//   insert(key, slot)          before the probe is sent; false if the key (or the slot) is already in use
//   on_sent(slot, t, deadline) when the probe is seen leaving (or the sender's fallback stamp);
//                              the first call wins, later ones are ignored
//   take(key, t)               a reply: kMatched the first time at t <= deadline, kLate for a first reply
//                              after the deadline (or after expire() reported the probe), kDuplicate for
//                              any later reply, kUnknown if the key was never inserted
//   expire(now, fn)            fn(slot) for every armed probe without an in-time answer whose deadline
//                              < now, in deadline order, exactly once per probe (-> lost)
//
// Accounting rule for the engine: a probe is lost exactly when expire() reports it. kLate is only
// informational (a late reply does not stop expire() from reporting the probe, and a probe already
// reported answers kLate), so nothing is ever counted twice.
//
// A reply to a probe that was inserted but never armed (its send time is not known yet, e.g. the
// capture of our own outgoing copy is still in the kernel buffer) is kMatched: the reply proves the probe
// left. Its sent_at() stays unknown until a later on_sent(), which then records the time but arms no
// deadline.
//
// Time bases: the matcher never reads a clock. sent_at, deadline, take()'s `at` and expire()'s `now` must
// share one base (the packet timestamp base, realtime, when sent_at comes from capture). Call expire()
// with `now` lagging by the capture delay (pcap buffer timeout), or in-time replies still in the kernel
// buffer are reported lost first and then answer kLate.
//
// Slots are the engine's dense probe numbers of the iteration (0..n-1): per-slot state lives in arrays
// indexed by slot. clear(n) between iterations reuses every buffer (no allocation when n does not grow);
// an insert beyond the expected size grows the buffers (allocation, amortised) instead of failing.
//
// Memory per in-flight probe (see memory_bytes()): a 40-byte slot record (packed key, state, sent time,
// deadline) + a 4-byte deadline-queue link + 2 table cells of 8 bytes (load <= 0.5): about 60 bytes at 1M.
#include <cstddef>
#include <cstdint>
#include <limits>
#include <utility>
#include <vector>

#include "core/clock.h"
#include "probes/probe.h"

namespace netprobe {

// Allocator for the matcher's big arrays: blocks of 2 MiB and more are 2 MiB aligned and marked
// MADV_HUGEPAGE, because a lookup at 1M probes is two random accesses over ~60 MB and with 4 KiB pages
// each of them also misses the TLB (transparent huge pages are often in `madvise` mode).
void* huge_page_alloc(size_t bytes);
void huge_page_free(void* p, size_t bytes) noexcept;
size_t huge_page_rounded(size_t bytes) noexcept;  // what an allocation of `bytes` really holds

template <typename T>
struct HugePageAllocator {
  using value_type = T;
  HugePageAllocator() = default;
  template <typename U>
  HugePageAllocator(const HugePageAllocator<U>&) noexcept {}  // NOLINT: rebinding
  T* allocate(size_t n) { return static_cast<T*>(huge_page_alloc(n * sizeof(T))); }
  void deallocate(T* p, size_t n) noexcept { huge_page_free(p, n * sizeof(T)); }
  friend bool operator==(const HugePageAllocator&, const HugePageAllocator&) { return true; }
};

enum class MatchOutcome : uint8_t { kMatched, kLate, kDuplicate, kUnknown };

struct TakeResult {
  MatchOutcome outcome = MatchOutcome::kUnknown;
  uint32_t slot = 0;  // valid unless kUnknown
};

enum class SlotState : uint8_t {
  kFree,             // no key inserted for this slot
  kPending,          // inserted, send time unknown
  kSent,             // armed, no answer yet
  kAnswered,         // answered in time (or before being armed); expire() skips it
  kLate,             // first answer was late; expire() still reports it
  kExpired,          // reported lost by expire(); no answer yet
  kExpiredAnswered,  // reported lost, and some answer came (late or not)
};

class Matcher {
 public:
  // Sent time of a probe that was never armed.
  static constexpr Nanos kUnknownTime = Nanos(std::numeric_limits<int64_t>::min());

  explicit Matcher(size_t expected_in_flight = 1024);

  // Forgets every key and state; sizes the buffers for `expected_in_flight` slots, keeping (not
  // shrinking) the memory already allocated.
  void clear(size_t expected_in_flight);
  bool insert(const MatchKey& key, uint32_t slot) noexcept;
  // Records the send time (first call wins) and arms the deadline. Ignored for a free slot.
  void on_sent(uint32_t slot, Nanos sent_at, Nanos deadline) noexcept;
  TakeResult take(const MatchKey& key, Nanos at) noexcept;
  // take() for a slot already looked up with find(): the caller validated the reply against its probe
  // first, and a second hash lookup (a cache miss at 1M in flight) would only find the same slot.
  TakeResult take_slot(uint32_t slot, Nanos at) noexcept;
  // Looks a key up without changing its state (own outgoing probes).
  bool find(const MatchKey& key, uint32_t* slot) const noexcept;
  // Calls on_expired(slot) for every armed probe not answered in time with deadline < now, in deadline
  // order; returns the count.
  template <typename F>
  size_t expire(Nanos now, F&& on_expired) {
    size_t n = 0;
    uint32_t slot;
    while (pop_expired(now, &slot)) {
      on_expired(slot);
      ++n;
    }
    return n;
  }

  Nanos sent_at(uint32_t slot) const noexcept;   // kUnknownTime if never armed (or free)
  Nanos deadline(uint32_t slot) const noexcept;  // kUnknownTime if never armed (or free)
  SlotState state(uint32_t slot) const noexcept;
  size_t size() const noexcept { return size_; }

  // Bytes held by every buffer (capacity, not size): the cost of the in-flight set.
  size_t memory_bytes() const noexcept;
  size_t table_capacity() const noexcept { return table_.size(); }

 private:
  // The key packed into 24 bytes (type and family share a byte) next to its state.
  struct Record {
    uint64_t addr_hi = 0;  // address bytes 0..7
    uint64_t addr_lo = 0;  // address bytes 8..15
    uint32_t token = 0;
    uint16_t port = 0;
    uint8_t type_af = 0;
    SlotState state = SlotState::kFree;
    int64_t sent_at = kUnknownTime.count();
    int64_t deadline = kUnknownTime.count();
  };
  static_assert(sizeof(Record) == 40);

  // One table cell: slot + 1 (0 = empty) and 32 more hash bits, so that a probe step on another key
  // almost never touches that key's record (one cache miss per lookup instead of one per step).
  struct Cell {
    uint32_t slot_plus_one = 0;
    uint32_t tag = 0;
  };

  // Deadline queue. Probes are armed in send order, so within one timeout value the deadlines increase:
  // each distinct timeout gets a FIFO lane (an intrusive list through next_, 4 bytes per slot). An arm
  // that would break a lane's order, or an (n+1)-th timeout value, goes to a binary min-heap. expire()
  // merges the lane heads and the heap top, so slots come out in deadline order whatever the mix.
  struct Lane {
    int64_t timeout = 0;  // deadline - sent_at of its members
    int64_t front_deadline = 0;
    int64_t back_deadline = 0;
    uint32_t head = kNil;
    uint32_t tail = kNil;
  };
  struct HeapEntry {
    int64_t deadline;
    uint32_t slot;
  };
  static constexpr uint32_t kNil = std::numeric_limits<uint32_t>::max();
  static constexpr size_t kMaxLanes = 8;

  static uint64_t hash(const Record& r) noexcept;
  static Record pack(const MatchKey& key) noexcept;
  static bool same_key(const Record& a, const Record& b) noexcept {
    return a.addr_hi == b.addr_hi && a.addr_lo == b.addr_lo && a.token == b.token && a.port == b.port &&
           a.type_af == b.type_af;
  }
  // Index of the cell holding `probe`'s key, or of the empty cell where it would go.
  size_t locate(const Record& probe, uint64_t h) const noexcept;
  void grow_table(size_t min_cells);
  void arm(uint32_t slot, int64_t deadline, int64_t timeout) noexcept;
  bool pop_expired(Nanos now, uint32_t* slot) noexcept;

  template <typename T>
  using Array = std::vector<T, HugePageAllocator<T>>;
  Array<Cell> table_;      // power-of-two size, at most half full
  Array<Record> records_;  // indexed by slot
  Array<uint32_t> next_;   // lane links, indexed by slot
  Lane lanes_[kMaxLanes];
  size_t lane_count_ = 0;
  std::vector<HeapEntry> heap_;
  size_t size_ = 0;
  size_t max_slot_plus_one_ = 0;  // records_ in use: the range clear() has to reset
};

}  // namespace netprobe
