#include "match/huge_pages.h"

#include <atomic>
#include <cstdint>
#include <new>

#include <sys/mman.h>

namespace netprobe {
namespace {
constexpr size_t kHugePage = size_t(2) << 20;
constexpr size_t kPage = 4096;
std::atomic<size_t> g_in_use{0};
}  // namespace

// Rounded to small pages only: the start is 2 MiB aligned, so every whole 2 MiB of the block can be a
// huge page, and the last partial one stays in small pages instead of costing up to 2 MiB.
size_t huge_page_rounded(size_t bytes) noexcept {
  return bytes >= kHugePage ? (bytes + kPage - 1) & ~(kPage - 1) : bytes;
}

size_t huge_page_bytes_in_use() noexcept { return g_in_use.load(std::memory_order_relaxed); }

void* huge_page_alloc(size_t bytes) {
  if (bytes < kHugePage) return ::operator new(bytes);
  // mmap directly rather than aligned_alloc: glibc would keep the alignment slack (up to 2 MiB per
  // array) mapped; here the unaligned head and tail are given back at once.
  const size_t rounded = huge_page_rounded(bytes);
  void* raw =
      ::mmap(nullptr, rounded + kHugePage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) throw std::bad_alloc();
  const auto base = reinterpret_cast<uintptr_t>(raw);
  const uintptr_t aligned = (base + kHugePage - 1) & ~uintptr_t(kHugePage - 1);
  if (aligned > base) ::munmap(raw, aligned - base);
  if (const size_t tail = kHugePage - (aligned - base); tail > 0)
    ::munmap(reinterpret_cast<void*>(aligned + rounded), tail);
  ::madvise(reinterpret_cast<void*>(aligned), rounded, MADV_HUGEPAGE);  // a hint: ignored without THP
  g_in_use.fetch_add(rounded, std::memory_order_relaxed);
  return reinterpret_cast<void*>(aligned);
}

void huge_page_free(void* p, size_t bytes) noexcept {
  if (p == nullptr) return;
  if (bytes < kHugePage) {
    ::operator delete(p);
    return;
  }
  const size_t rounded = huge_page_rounded(bytes);
  ::munmap(p, rounded);
  g_in_use.fetch_sub(rounded, std::memory_order_relaxed);
}

}  // namespace netprobe
