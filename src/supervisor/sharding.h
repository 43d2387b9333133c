#pragma once
// Which worker probes which target, and which slice of the token space each worker owns.
//
// Targets are assigned by rendezvous (highest-random-weight) hashing of the target name over the worker
// indices: every (name, worker) pair gets a pseudo-random score and the highest score wins. So
//   - adding or removing a target never moves another one;
//   - removing worker k moves only the targets that were on k; adding one moves only targets to it;
//   - the result depends only on (name, nb_workers): stable across reloads and restarts of the binary.
// The hash is spelled out here (FNV-1a + splitmix64), never std::hash, so that it stays the same across
// standard libraries and versions.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "probes/probe.h"

namespace netprobe {

// The rendezvous score of `target` on worker `index`.
uint64_t rendezvous_score(std::string_view target, uint32_t index);
// The worker (0 <= result < nb_workers) that probes `target`. nb_workers == 0 is treated as 1.
uint32_t worker_for(std::string_view target, uint32_t nb_workers);
// worker_for() over a list: result[k] holds the names assigned to worker k, in input order.
std::vector<std::vector<std::string>> shard_targets(const std::vector<std::string>& targets,
                                                    uint32_t nb_workers);

// Worker `index` of `nb_workers` owns the tokens whose top key_slice_bits(nb_workers) bits equal `index`.
KeySlice key_slice_for(uint32_t index, uint32_t nb_workers);

}  // namespace netprobe
