// Matching micro-benchmarks at realistic sizes: what the capture path pays per packet to find the probe
// a reply answers (destination lookup + token decode), and what an iteration pays per probe to choose
// tokens (encode). The full per-probe cost, state included, is in pipeline_bench.
#include <benchmark/benchmark.h>

#include <random>
#include <vector>

#include "match/destination_index.h"
#include "match/token_permutation.h"

namespace netprobe {
namespace {

void BM_Encode(benchmark::State& state) {
  const TokenPermutation perm(0xfeed, int(state.range(0)));
  uint32_t i = 0;
  const uint32_t n = uint32_t(std::min<uint64_t>(perm.capacity(), 1u << 20));
  for (auto _ : state) {
    benchmark::DoNotOptimize(perm.encode(i));
    if (++i == n) i = 0;
  }
}
BENCHMARK(BM_Encode)->Arg(16)->Arg(17)->Arg(18)->Arg(32);

void BM_Decode(benchmark::State& state) {
  const TokenPermutation perm(0xfeed, int(state.range(0)));
  const uint32_t n = uint32_t(std::min<uint64_t>(perm.capacity(), 1u << 20));
  std::vector<uint32_t> tokens(n);
  for (uint32_t i = 0; i < n; ++i) tokens[i] = perm.encode(i);
  size_t i = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(perm.decode(tokens[i]));
    if (++i == n) i = 0;
  }
}
BENCHMARK(BM_Decode)->Arg(16)->Arg(17)->Arg(18)->Arg(32);

// Destination lookups in random order over `range(0)` destinations (10k = the memory case).
void BM_DestinationFind(benchmark::State& state) {
  const auto n = uint32_t(state.range(0));
  DestinationIndex idx;
  idx.clear(n);
  std::vector<IpAddress> addrs;
  for (uint32_t i = 0; i < n; ++i) {
    addrs.push_back(IpAddress::v4(0xC6120000u + i));
    idx.insert(ProbeType::kIcmpPing, addrs.back(), i);
  }
  std::mt19937 rng(1);
  std::vector<uint32_t> order(1 << 16);
  for (auto& o : order) o = rng() % n;
  size_t i = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(idx.find(ProbeType::kIcmpPing, addrs[order[i]]));
    i = (i + 1) & (order.size() - 1);
  }
}
BENCHMARK(BM_DestinationFind)->Arg(64)->Arg(10000)->Arg(100000);

}  // namespace
}  // namespace netprobe

BENCHMARK_MAIN();
