#pragma once
// Allocator for the per-probe arrays of an iteration: blocks of 2 MiB and more are 2 MiB aligned and
// marked MADV_HUGEPAGE, because at 1M probes every captured packet touches a random place of tens of MB
// and with 4 KiB pages each of those accesses also misses the TLB (transparent huge pages are often in
// `madvise` mode, so without the hint there would be none).
#include <cstddef>
#include <vector>

namespace netprobe {

void* huge_page_alloc(size_t bytes);
void huge_page_free(void* p, size_t bytes) noexcept;
size_t huge_page_rounded(size_t bytes) noexcept;  // what an allocation of `bytes` really holds
// Bytes currently mapped by huge_page_alloc() beyond malloc (blocks of 2 MiB and more), for benchmarks:
// mallinfo2() does not see them.
size_t huge_page_bytes_in_use() noexcept;

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

template <typename T>
using HugePageVector = std::vector<T, HugePageAllocator<T>>;

}  // namespace netprobe
