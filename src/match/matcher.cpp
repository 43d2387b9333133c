#include "match/matcher.h"

#include <algorithm>
#include <bit>
#include <cstdlib>
#include <cstring>
#include <new>

#include <sys/mman.h>

namespace netprobe {
namespace {

constexpr int64_t kUnknown = Matcher::kUnknownTime.count();

// MurmurHash3's finaliser: every input bit reaches every output bit, so that sequential targets and
// ports (only the token is random) still spread over the whole table.
inline uint64_t fmix64(uint64_t k) {
  k ^= k >> 33;
  k *= 0xff51afd7ed558ccdULL;
  k ^= k >> 33;
  k *= 0xc4ceb9fe1a85ec53ULL;
  k ^= k >> 33;
  return k;
}

inline size_t cells_for(size_t n) {
  // Load factor <= 0.5: linear probing then averages 1.5 steps for a hit, 2.5 for a miss, and the tag
  // keeps each extra step inside the table (no record access).
  return std::bit_ceil(std::max<size_t>(16, n * 2));
}

constexpr size_t kHugePage = size_t(2) << 20;

}  // namespace

size_t huge_page_rounded(size_t bytes) noexcept {
  return bytes >= kHugePage ? (bytes + kHugePage - 1) & ~(kHugePage - 1) : bytes;
}

void* huge_page_alloc(size_t bytes) {
  if (bytes < kHugePage) return ::operator new(bytes);
  const size_t rounded = huge_page_rounded(bytes);
  void* p = std::aligned_alloc(kHugePage, rounded);
  if (p == nullptr) throw std::bad_alloc();
  ::madvise(p, rounded, MADV_HUGEPAGE);  // a hint: without THP it is simply ignored
  return p;
}

void huge_page_free(void* p, size_t bytes) noexcept {
  if (p == nullptr) return;
  if (bytes < kHugePage) {
    ::operator delete(p);
  } else {
    std::free(p);
  }
}

Matcher::Matcher(size_t expected_in_flight) { clear(expected_in_flight); }

void Matcher::clear(size_t expected_in_flight) {
  std::fill(records_.begin(), records_.begin() + static_cast<std::ptrdiff_t>(max_slot_plus_one_), Record{});
  if (expected_in_flight > records_.size()) {
    records_.resize(expected_in_flight);
    next_.resize(expected_in_flight);
  }
  const size_t cells = cells_for(expected_in_flight);
  if (cells > table_.size()) {
    table_.clear();
    table_.shrink_to_fit();  // free before allocating the bigger one: no transient double footprint
    table_.resize(cells);
  } else if (size_ > 0) {
    std::fill(table_.begin(), table_.end(), Cell{});
  }
  for (auto& lane : lanes_) lane = Lane{};
  lane_count_ = 0;
  heap_.clear();
  size_ = 0;
  max_slot_plus_one_ = 0;
}

Matcher::Record Matcher::pack(const MatchKey& key) noexcept {
  Record r;
  std::memcpy(&r.addr_hi, key.target.bytes.data(), 8);
  std::memcpy(&r.addr_lo, key.target.bytes.data() + 8, 8);
  r.token = key.token;
  r.port = key.local_port;
  r.type_af =
      static_cast<uint8_t>((static_cast<uint8_t>(key.type) << 4) | static_cast<uint8_t>(key.target.af));
  return r;
}

uint64_t Matcher::hash(const Record& r) noexcept {
  const uint64_t c = uint64_t(r.token) | (uint64_t(r.port) << 32) | (uint64_t(r.type_af) << 48);
  return fmix64(r.addr_hi * 0x9E3779B97F4A7C15ULL + std::rotl(r.addr_lo * 0xC2B2AE3D27D4EB4FULL, 31) +
                c * 0x165667B19E3779F9ULL);
}

size_t Matcher::locate(const Record& probe, uint64_t h) const noexcept {
  const size_t mask = table_.size() - 1;
  const auto tag = static_cast<uint32_t>(h >> 32);
  size_t i = h & mask;
  for (;;) {
    const Cell& c = table_[i];
    if (c.slot_plus_one == 0) return i;
    if (c.tag == tag && same_key(records_[c.slot_plus_one - 1], probe)) return i;
    i = (i + 1) & mask;
  }
}

void Matcher::grow_table(size_t min_cells) {
  Array<Cell> bigger(std::bit_ceil(min_cells));
  const size_t mask = bigger.size() - 1;
  for (size_t s = 0; s < max_slot_plus_one_; ++s) {
    if (records_[s].state == SlotState::kFree) continue;
    const uint64_t h = hash(records_[s]);
    size_t i = h & mask;
    while (bigger[i].slot_plus_one != 0) i = (i + 1) & mask;  // keys are unique: no compare needed
    bigger[i] = Cell{static_cast<uint32_t>(s + 1), static_cast<uint32_t>(h >> 32)};
  }
  table_.swap(bigger);
}

bool Matcher::insert(const MatchKey& key, uint32_t slot) noexcept {
  if (slot == kNil) return false;  // slot + 1 must fit a cell
  if (slot >= records_.size()) {
    // More probes than announced to clear(): grow rather than lose them (allocation, amortised).
    const size_t n = std::max<size_t>(size_t(slot) + 1, records_.size() * 2);
    records_.resize(n);
    next_.resize(n);
  }
  if (records_[slot].state != SlotState::kFree) return false;
  if ((size_ + 1) * 2 > table_.size()) grow_table(table_.size() * 2);

  Record r = pack(key);
  const uint64_t h = hash(r);
  const size_t i = locate(r, h);
  if (table_[i].slot_plus_one != 0) return false;
  table_[i] = Cell{slot + 1, static_cast<uint32_t>(h >> 32)};
  r.state = SlotState::kPending;
  records_[slot] = r;
  ++size_;
  max_slot_plus_one_ = std::max<size_t>(max_slot_plus_one_, size_t(slot) + 1);
  return true;
}

void Matcher::on_sent(uint32_t slot, Nanos sent_at, Nanos deadline) noexcept {
  if (slot >= max_slot_plus_one_ || sent_at == kUnknownTime) return;
  Record& r = records_[slot];
  if (r.state == SlotState::kFree || r.sent_at != kUnknown) return;  // first call wins
  r.sent_at = sent_at.count();
  r.deadline = deadline.count();
  if (r.state == SlotState::kPending) {
    r.state = SlotState::kSent;
    arm(slot, r.deadline, r.deadline - r.sent_at);
  }
  // kAnswered before being armed: keep the send time for the RTT, but there is nothing to expire.
}

void Matcher::arm(uint32_t slot, int64_t deadline, int64_t timeout) noexcept {
  Lane* lane = nullptr;
  for (size_t i = 0; i < lane_count_; ++i) {
    if (lanes_[i].timeout == timeout) {
      lane = &lanes_[i];
      break;
    }
  }
  if (lane == nullptr && lane_count_ < kMaxLanes) {
    lane = &lanes_[lane_count_++];
    lane->timeout = timeout;
  }
  if (lane == nullptr || (lane->head != kNil && deadline < lane->back_deadline)) {
    // Out of order (or too many distinct timeouts): the heap keeps expire() exact. Rare by design;
    // its vector keeps its capacity across clear().
    heap_.push_back(HeapEntry{deadline, slot});
    std::push_heap(heap_.begin(), heap_.end(),
                   [](const HeapEntry& a, const HeapEntry& b) { return a.deadline > b.deadline; });
    return;
  }
  next_[slot] = kNil;
  if (lane->tail == kNil) {
    lane->head = slot;
    lane->front_deadline = deadline;
  } else {
    next_[lane->tail] = slot;
  }
  lane->tail = slot;
  lane->back_deadline = deadline;
}

bool Matcher::pop_expired(Nanos now, uint32_t* slot_out) noexcept {
  for (;;) {
    int64_t best = now.count();
    Lane* best_lane = nullptr;
    bool from_heap = false;
    for (size_t i = 0; i < lane_count_; ++i) {
      Lane& l = lanes_[i];
      if (l.head != kNil && l.front_deadline < best) {
        best = l.front_deadline;
        best_lane = &l;
      }
    }
    if (!heap_.empty() && heap_.front().deadline < best) {
      from_heap = true;
      best_lane = nullptr;
    }
    uint32_t slot;
    if (from_heap) {
      slot = heap_.front().slot;
      std::pop_heap(heap_.begin(), heap_.end(),
                    [](const HeapEntry& a, const HeapEntry& b) { return a.deadline > b.deadline; });
      heap_.pop_back();
    } else if (best_lane != nullptr) {
      slot = best_lane->head;
      best_lane->head = next_[slot];
      if (best_lane->head == kNil) {
        best_lane->tail = kNil;
      } else {
        best_lane->front_deadline = records_[best_lane->head].deadline;
      }
    } else {
      return false;
    }
    Record& r = records_[slot];
    if (r.state == SlotState::kSent) {
      r.state = SlotState::kExpired;
    } else if (r.state == SlotState::kLate) {
      r.state = SlotState::kExpiredAnswered;
    } else {
      continue;  // answered in time: nothing to report
    }
    *slot_out = slot;
    return true;
  }
}

TakeResult Matcher::take(const MatchKey& key, Nanos at) noexcept {
  const Record probe = pack(key);
  const size_t i = locate(probe, hash(probe));
  const uint32_t slot_plus_one = table_[i].slot_plus_one;
  if (slot_plus_one == 0) return {MatchOutcome::kUnknown, 0};
  return take_slot(slot_plus_one - 1, at);
}

TakeResult Matcher::take_slot(uint32_t slot, Nanos at) noexcept {
  if (slot >= max_slot_plus_one_ || records_[slot].state == SlotState::kFree) return {MatchOutcome::kUnknown, 0};
  Record& r = records_[slot];
  switch (r.state) {
    case SlotState::kPending:  // never armed: the reply proves the probe left
      r.state = SlotState::kAnswered;
      return {MatchOutcome::kMatched, slot};
    case SlotState::kSent:
      if (at.count() <= r.deadline) {
        r.state = SlotState::kAnswered;
        return {MatchOutcome::kMatched, slot};
      }
      r.state = SlotState::kLate;
      return {MatchOutcome::kLate, slot};
    case SlotState::kExpired:
      r.state = SlotState::kExpiredAnswered;
      return {MatchOutcome::kLate, slot};
    default:
      return {MatchOutcome::kDuplicate, slot};
  }
}

bool Matcher::find(const MatchKey& key, uint32_t* slot) const noexcept {
  const Record probe = pack(key);
  const size_t i = locate(probe, hash(probe));
  if (table_[i].slot_plus_one == 0) return false;
  if (slot != nullptr) *slot = table_[i].slot_plus_one - 1;
  return true;
}

Nanos Matcher::sent_at(uint32_t slot) const noexcept {
  return slot < max_slot_plus_one_ ? Nanos(records_[slot].sent_at) : kUnknownTime;
}

Nanos Matcher::deadline(uint32_t slot) const noexcept {
  return slot < max_slot_plus_one_ ? Nanos(records_[slot].deadline) : kUnknownTime;
}

SlotState Matcher::state(uint32_t slot) const noexcept {
  return slot < max_slot_plus_one_ ? records_[slot].state : SlotState::kFree;
}

size_t Matcher::memory_bytes() const noexcept {
  return sizeof(*this) + huge_page_rounded(table_.capacity() * sizeof(Cell)) +
         huge_page_rounded(records_.capacity() * sizeof(Record)) +
         huge_page_rounded(next_.capacity() * sizeof(uint32_t)) + heap_.capacity() * sizeof(HeapEntry);
}

}  // namespace netprobe
