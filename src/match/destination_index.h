#pragma once
// (probe type, destination address) -> a dense destination number, for the capture path: one lookup per
// captured packet in a flat open-addressing table sized for the plan's destinations (tens of thousands
// at most, so it stays in cache, unlike a table of every in-flight probe).
#include <cstdint>
#include <vector>

#include "core/net.h"

namespace netprobe {

class DestinationIndex {
 public:
  static constexpr uint32_t kNone = 0xFFFFFFFFu;

  // Forgets every entry; sizes the table for `expected` destinations (keeps the memory it has).
  void clear(size_t expected);
  // The number of (type, address): the existing one, or `value` after inserting it.
  uint32_t insert(ProbeType type, const IpAddress& address, uint32_t value);
  uint32_t find(ProbeType type, const IpAddress& address) const noexcept;  // kNone if absent
  size_t size() const noexcept { return size_; }

 private:
  struct Entry {
    uint64_t hi = 0, lo = 0;  // address bytes
    uint32_t value = kNone;   // kNone = empty
    uint8_t type_af = 0;
  };
  static Entry pack(ProbeType type, const IpAddress& address) noexcept;
  size_t locate(const Entry& probe) const noexcept;  // its cell, or the empty cell where it would go
  void grow();

  std::vector<Entry> table_;  // power-of-two size, at most half full
  size_t size_ = 0;
};

}  // namespace netprobe
