#pragma once
// Gives the memory malloc holds free back to the kernel (glibc malloc_trim(0): the top of every arena
// and, with MADV_DONTNEED, every free page in between).
//
// Why it is needed: netprobe's big transient allocations (a 10,000-target shard or iteration report
// decoded from CBOR, a configuration reload) happen on one thread and are freed, often on another; glibc
// keeps such memory in its arenas, so without a trim the resident size of a process stays at its peak
// forever. Called at the few points where a big transient has just been freed (a few milliseconds each
// with hundreds of MB of heap, never on a per-packet path). Also right after fork: a forked launcher
// or worker shares the parent's free heap pages copy-on-write; trimming drops its mappings of them.
namespace netprobe {

void release_free_memory() noexcept;

}  // namespace netprobe
