// Matcher micro-benchmarks at realistic in-flight sizes (up to 1M probes): insert, take (hits in random
// order, misses), expire, clear/reuse. `bytes_per_entry` is the whole footprint (table + slot records +
// deadline queue) divided by the number of in-flight probes.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <numeric>
#include <random>
#include <vector>

#include "match/matcher.h"

namespace netprobe {
namespace {

// Structured like a real plan: targets in a /16, 64 source ports each, random tokens.
std::vector<MatchKey> make_keys(size_t n, uint64_t seed = 42) {
  std::mt19937_64 rng(seed);
  std::vector<MatchKey> keys(n);
  for (size_t i = 0; i < n; ++i) {
    keys[i].type = ProbeType::kTcpSyn;
    keys[i].target = IpAddress::v4(0x0a000000u + uint32_t(i / 64));
    keys[i].local_port = uint16_t(30000 + i % 64);
    keys[i].token = uint32_t(rng()) | 1u;
  }
  return keys;
}

std::vector<uint32_t> shuffled(size_t n) {
  std::vector<uint32_t> order(n);
  std::iota(order.begin(), order.end(), 0u);
  std::shuffle(order.begin(), order.end(), std::mt19937_64(7));
  return order;
}

void fill(Matcher& m, const std::vector<MatchKey>& keys) {
  for (uint32_t s = 0; s < keys.size(); ++s) m.insert(keys[s], s);
}

void BM_Insert(benchmark::State& state) {
  const size_t n = size_t(state.range(0));
  const auto keys = make_keys(n);
  Matcher m(n);
  for (auto _ : state) {
    m.clear(n);  // reuses memory; its cost is measured separately in BM_Clear
    fill(m, keys);
    benchmark::DoNotOptimize(m.size());
  }
  state.SetItemsProcessed(int64_t(state.iterations() * n));
  state.counters["bytes_per_entry"] = double(m.memory_bytes()) / double(n);
}

void BM_TakeHit(benchmark::State& state) {
  const size_t n = size_t(state.range(0));
  const auto keys = make_keys(n);
  const auto order = shuffled(n);
  Matcher m(n);
  fill(m, keys);
  for (uint32_t s = 0; s < n; ++s) m.on_sent(s, Nanos(s), Nanos(s + 1'000'000'000));
  // Replies arrive in random slot order, but a reply's key is built from the packet just parsed (hot in
  // cache): read the keys sequentially so that only the matcher's own misses are measured.
  std::vector<MatchKey> replies(n);
  for (size_t i = 0; i < n; ++i) replies[i] = keys[order[i]];
  size_t i = 0;
  for (auto _ : state) {
    // The state changes after the first take (kDuplicate), the lookup cost does not.
    benchmark::DoNotOptimize(m.take(replies[i], Nanos(i)));
    if (++i == n) i = 0;
  }
  state.SetItemsProcessed(int64_t(state.iterations()));
  state.counters["bytes_per_entry"] = double(m.memory_bytes()) / double(n);
}

void BM_TakeMiss(benchmark::State& state) {
  const size_t n = size_t(state.range(0));
  const auto keys = make_keys(n);
  auto foreign = make_keys(n, 4242);
  Matcher m(n);
  fill(m, keys);
  size_t i = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(m.take(foreign[i], Nanos(0)));
    if (++i == n) i = 0;
  }
  state.SetItemsProcessed(int64_t(state.iterations()));
}

// A whole iteration's life: insert + arm + take 99 % in random order + expire the rest.
void BM_IterationLifecycle(benchmark::State& state) {
  const size_t n = size_t(state.range(0));
  const auto keys = make_keys(n);
  const auto order = shuffled(n);
  Matcher m(n);
  for (auto _ : state) {
    m.clear(n);
    fill(m, keys);
    for (uint32_t s = 0; s < n; ++s) m.on_sent(s, Nanos(s), Nanos(s + 1'000'000));
    for (size_t i = 0; i < n; ++i)
      if (i % 100 != 0) benchmark::DoNotOptimize(m.take(keys[order[i]], Nanos(order[i] + 10)));
    size_t lost = m.expire(Nanos(int64_t(n) + 2'000'000), [](uint32_t) {});
    benchmark::DoNotOptimize(lost);
  }
  state.SetItemsProcessed(int64_t(state.iterations() * n));
  state.counters["bytes_per_entry"] = double(m.memory_bytes()) / double(n);
}

void BM_Expire(benchmark::State& state) {
  const size_t n = size_t(state.range(0));
  const auto keys = make_keys(n);
  Matcher m(n);
  // Three interleaved timeouts, as with per-target timeouts.
  const int64_t timeouts[] = {1'000'000, 3'000'000, 2'000'000};
  for (auto _ : state) {
    state.PauseTiming();
    m.clear(n);
    fill(m, keys);
    for (uint32_t s = 0; s < n; ++s) m.on_sent(s, Nanos(s), Nanos(s + timeouts[s % 3]));
    state.ResumeTiming();
    size_t lost = m.expire(Nanos(int64_t(n) + 4'000'000), [](uint32_t s) { benchmark::DoNotOptimize(s); });
    benchmark::DoNotOptimize(lost);
  }
  state.SetItemsProcessed(int64_t(state.iterations() * n));
}

void BM_Clear(benchmark::State& state) {
  const size_t n = size_t(state.range(0));
  const auto keys = make_keys(n);
  Matcher m(n);
  for (auto _ : state) {
    state.PauseTiming();
    fill(m, keys);
    state.ResumeTiming();
    m.clear(n);
  }
  state.counters["bytes_per_entry"] = double(m.memory_bytes()) / double(n);
}

BENCHMARK(BM_Insert)->Arg(1 << 10)->Arg(1'000'000)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_TakeHit)->Arg(1 << 10)->Arg(1'000'000);
BENCHMARK(BM_TakeMiss)->Arg(1'000'000);
BENCHMARK(BM_IterationLifecycle)->Arg(1'000'000)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Expire)->Arg(1'000'000)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Clear)->Arg(1'000'000)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace netprobe

BENCHMARK_MAIN();
