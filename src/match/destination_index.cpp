#include "match/destination_index.h"

#include <algorithm>
#include <bit>
#include <cstring>

namespace netprobe {
namespace {

inline uint64_t fmix64(uint64_t k) noexcept {  // MurmurHash3's finaliser
  k ^= k >> 33;
  k *= 0xff51afd7ed558ccdULL;
  k ^= k >> 33;
  k *= 0xc4ceb9fe1a85ec53ULL;
  k ^= k >> 33;
  return k;
}

}  // namespace

DestinationIndex::Entry DestinationIndex::pack(ProbeType type, const IpAddress& address) noexcept {
  Entry e;
  std::memcpy(&e.hi, address.bytes.data(), 8);
  std::memcpy(&e.lo, address.bytes.data() + 8, 8);
  e.type_af = uint8_t(uint8_t(type) << 1 | (address.af == AddressFamily::kV6 ? 1 : 0));
  return e;
}

size_t DestinationIndex::locate(const Entry& probe) const noexcept {
  const size_t mask = table_.size() - 1;
  size_t i = fmix64(probe.hi ^ fmix64(probe.lo ^ probe.type_af)) & mask;
  // Bounded: the table is at most half full, so an empty cell comes within table_.size() steps.
  for (size_t step = 0; step < table_.size(); ++step, i = (i + 1) & mask) {
    const Entry& e = table_[i];
    if (e.value == kNone) return i;
    if (e.hi == probe.hi && e.lo == probe.lo && e.type_af == probe.type_af) return i;
  }
  return 0;  // unreachable while the load factor holds
}

void DestinationIndex::clear(size_t expected) {
  const size_t cells = std::bit_ceil(std::max<size_t>(16, expected * 2));
  if (table_.size() < cells) table_.resize(cells);
  std::fill(table_.begin(), table_.end(), Entry{});
  size_ = 0;
}

void DestinationIndex::grow() {
  std::vector<Entry> old;
  old.swap(table_);
  table_.assign(std::max<size_t>(16, old.size() * 2), Entry{});
  for (const Entry& e : old)
    if (e.value != kNone) table_[locate(e)] = e;
}

uint32_t DestinationIndex::insert(ProbeType type, const IpAddress& address, uint32_t value) {
  if (table_.empty() || (size_ + 1) * 2 > table_.size()) grow();
  Entry probe = pack(type, address);
  Entry& cell = table_[locate(probe)];
  if (cell.value != kNone) return cell.value;
  probe.value = value;
  cell = probe;
  ++size_;
  return value;
}

uint32_t DestinationIndex::find(ProbeType type, const IpAddress& address) const noexcept {
  if (table_.empty()) return kNone;
  const Entry probe = pack(type, address);
  return table_[locate(probe)].value;
}

}  // namespace netprobe
