// The whole per-iteration pipeline over an in-memory link: plan -> tokens -> craft -> send (batches) ->
// capture (our outgoing copy + the reply) -> classify -> match -> report, on a fake clock in the
// engine's synchronous mode. The figure is ns per probe for everything netprobe does per probe except
// the syscalls; the e2e rate benchmark (bench/e2e_rate.py) adds those.
//
// The link is a preallocated ring: the sink writes each probe's outgoing copy and its reply (SYN-ACK, echo
// reply, port unreachable) straight into it, the source hands them back. No per-packet allocation, so
// the bench measures the engine, not FakeLink's vectors and priority queue.
//
// BM_Runner* time the iteration bookkeeping alone at 1M probes in flight (see below).
//
// Counters: ns_per_probe, and bytes per in-flight probe: `state_B` is the engine's peak heap growth
// during an iteration (tokens, slot states, destination index, report), `plan_B` the plan
// (PlannedProbe per probe, templates per target), both divided by the probes of the iteration.
#include <benchmark/benchmark.h>
#include <malloc.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <vector>

#include "engine/engine.h"
#include "match/huge_pages.h"
#include "sched/plan.h"
#include "wire/bytes.h"

namespace netprobe {
namespace {

constexpr size_t kSlotBytes = 128;  // enough for an IPv4 or IPv6 probe and its reply (bare headers)
constexpr Nanos kRtt{20'000};

// Heap in use now: malloc arenas + malloc's mmapped blocks + the per-probe huge-page arrays (mapped by
// huge_page_alloc() itself).
size_t heap_in_use() {
  const struct mallinfo2 m = mallinfo2();
  return m.uordblks + m.hblkhd + huge_page_bytes_in_use();
}

class RingLink final : public PacketSink, public PacketSource {
 public:
  RingLink(const Clock& clock, size_t capacity)
      : clock_(clock), bytes_(capacity * kSlotBytes), meta_(capacity) {}

  // While set, every send and poll samples the heap: the peak is the iteration's transient state.
  void sample_heap(bool on) {
    sampling_ = on;
    peak_heap_ = on ? heap_in_use() : peak_heap_;
  }
  size_t peak_heap() const { return peak_heap_; }

  using PacketSink::send;
  size_t send(std::span<const OutPacket> batch, std::span<uint8_t> failed) noexcept override {
    if (sampling_) peak_heap_ = std::max(peak_heap_, heap_in_use());
    const Nanos now = clock_.realtime();
    size_t n = 0;
    for (size_t i = 0; i < batch.size(); ++i) {
      if (tail_ - head_ + 2 > meta_.size()) {  // full: fail like a kernel without buffer space
        if (failed.size() > i) failed[i] = 1;
        continue;
      }
      const std::span<const uint8_t> p = batch[i].bytes;
      uint8_t* out = push(std::min(p.size(), kSlotBytes), now, Direction::kOutgoing);
      std::memcpy(out, p.data(), std::min(p.size(), kSlotBytes));
      const size_t slot = tail_++ % meta_.size();
      meta_[slot].len = uint16_t(make_reply(p, bytes_.data() + slot * kSlotBytes));
      meta_[slot].at = now + kRtt;
      meta_[slot].dir = Direction::kIncoming;
      ++n;
    }
    return n;
  }

  int poll(const Handler& handler, Nanos) override {
    if (sampling_) peak_heap_ = std::max(peak_heap_, heap_in_use());
    int n = 0;
    for (; head_ < tail_; ++head_, ++n) {
      const size_t slot = head_ % meta_.size();
      const Meta& m = meta_[slot];
      handler(CapturedPacket{{bytes_.data() + slot * kSlotBytes, m.len}, m.at, m.dir});
    }
    return n;
  }
  void interrupt() override {}
  CaptureStats stats() const override { return {}; }

  // What the target would answer, written by hand (checksums are not verified by classify()).
  static size_t make_reply(std::span<const uint8_t> p, uint8_t* out);

 private:
  struct Meta {
    Nanos at{0};
    uint16_t len = 0;
    Direction dir = Direction::kIncoming;
  };
  uint8_t* push(size_t len, Nanos at, Direction dir) {
    const size_t slot = tail_++ % meta_.size();
    meta_[slot] = Meta{at, uint16_t(len), dir};
    return bytes_.data() + slot * kSlotBytes;
  }

  static size_t make_reply_impl(std::span<const uint8_t> p, uint8_t* out) {
    const bool v4 = (p[0] >> 4) == 4;
    const size_t ihl = v4 ? size_t(p[0] & 0x0f) * 4 : 40;
    const size_t a = v4 ? 12 : 8, alen = v4 ? 4 : 16;
    const uint8_t proto = v4 ? p[9] : p[6];
    if (proto == 17) {  // UDP -> ICMP(v6) port unreachable quoting the IP header + 8 bytes
      const size_t quote = std::min(p.size(), ihl + 8);
      const size_t hdr = v4 ? 20 : 40;
      std::memset(out, 0, hdr + 8);
      if (v4) {
        out[0] = 0x45;
        wire::store_be16(out + 2, uint16_t(hdr + 8 + quote));
        out[8] = 64;
        out[9] = 1;
        out[hdr] = 3;
        out[hdr + 1] = 3;
      } else {
        out[0] = 0x60;
        wire::store_be16(out + 4, uint16_t(8 + quote));
        out[6] = 58;
        out[7] = 64;
        out[hdr] = 1;
        out[hdr + 1] = 4;
      }
      std::memcpy(out + a, p.data() + a + alen, alen);
      std::memcpy(out + a + alen, p.data() + a, alen);
      std::memcpy(out + hdr + 8, p.data(), quote);
      return hdr + 8 + quote;
    }
    const size_t len = std::min(p.size(), kSlotBytes);
    std::memcpy(out, p.data(), len);
    std::memcpy(out + a, p.data() + a + alen, alen);  // swap addresses
    std::memcpy(out + a + alen, p.data() + a, alen);
    uint8_t* l4 = out + ihl;
    if (proto == 6) {  // SYN -> SYN-ACK, ack = seq + 1
      std::memcpy(l4, p.data() + ihl + 2, 2);
      std::memcpy(l4 + 2, p.data() + ihl, 2);
      wire::store_be32(l4 + 8, wire::load_be32(p.data() + ihl + 4) + 1);
      wire::store_be32(l4 + 4, 0x12345678);
      l4[13] = 0x12;
    } else {  // echo request -> echo reply
      l4[0] = v4 ? 0 : 129;
    }
    return len;
  }

  const Clock& clock_;
  std::vector<uint8_t> bytes_;
  std::vector<Meta> meta_;
  size_t head_ = 0, tail_ = 0;
  bool sampling_ = false;
  size_t peak_heap_ = 0;
};

size_t RingLink::make_reply(std::span<const uint8_t> p, uint8_t* out) { return make_reply_impl(p, out); }

struct Setup {
  Config config;
  std::vector<ResolvedTarget> resolved;
  Plan plan;
};

// `probes` probes of one type in one iteration: probes/100 targets x 100 packets, all due at once (the
// window is 0: the engine sends flat out in full batches, as it does when it is behind schedule).
std::unique_ptr<Setup> make_setup(ProbeType type, AddressFamily af, size_t probes) {
  auto s = std::make_unique<Setup>();
  GroupConfig g;
  g.name = "g";
  g.src_port_a = 20000;
  g.src_port_z = 29999;
  s->config.groups["g"] = g;
  s->config.global.interval_s = 1;
  const size_t per_target = 100, targets = std::max<size_t>(1, probes / per_target);
  for (size_t i = 0; i < targets; ++i) {
    TargetConfig t;
    t.name = "t" + std::to_string(i);
    t.type = type;
    t.destination = af == AddressFamily::kV4
                        ? "198.18." + std::to_string(1 + i / 250) + "." + std::to_string(1 + i % 250)
                        : "fd00:18::" + std::to_string(1 + i / 250) + ":" + std::to_string(1 + i % 250);
    if (type != ProbeType::kIcmpPing) t.dst_port = 8080;
    t.nb_packets = int(per_target);
    t.timeout_s = 1;
    t.groups = {"g"};
    s->config.targets[t.name] = t;
  }
  for (auto& [name, t] : s->config.targets) s->resolved.push_back({&t, {*IpAddress::parse(t.destination)}});
  auto p = build_plan(
      s->config, s->resolved,
      [af](const IpAddress&) {
        return IpAddress::parse(af == AddressFamily::kV4 ? "198.18.0.1" : "fd00:18::1");
      },
      [](const IpAddress&) { return true; });
  if (!p.ok()) return nullptr;
  s->plan = std::move(p).value();
  return s;
}

size_t plan_bytes(const Plan& plan) {
  size_t b =
      plan.probes.capacity() * sizeof(PlannedProbe) + plan.templates.capacity() * sizeof(PacketTemplate);
  for (const auto& t : plan.templates) b += t.bytes.capacity();
  b += plan.buckets.capacity() * sizeof(Bucket) + plan.targets.capacity() * sizeof(PlannedTarget);
  b += plan.sources.capacity() * sizeof(IpAddress);
  return b;
}

// Args: probe type, address family (4/6), probes per iteration.
void BM_Pipeline(benchmark::State& state) {
  const auto type = static_cast<ProbeType>(state.range(0));
  const auto af = state.range(1) == 4 ? AddressFamily::kV4 : AddressFamily::kV6;
  const size_t probes = size_t(state.range(2));
  auto setup = make_setup(type, af, probes);
  if (!setup) {
    state.SkipWithError("build_plan failed");
    return;
  }
  const Plan& plan = setup->plan;
  const size_t n = plan.probes.size();
  FakeClock clock;
  RingLink link(clock, 2 * n + 2);  // flat out: every probe and reply is queued before the first poll
  EngineOptions options;
  options.capture_thread = false;
  options.capture_grace = Nanos(0);
  IterationSettings settings;
  settings.interval_s = 1;  // == the timeout: a send window of 0

  auto check = [&](const IterationReport& r) {
    uint64_t sent = 0, lost = 0;
    for (const auto& g : r.groups) {
      sent += g.sent;
      lost += g.lost;
    }
    return sent == n && lost == 0 && r.total_send_errors() == 0;
  };

  // First iteration outside the timing: it sizes every buffer, and its heap growth is the state.
  const size_t before = heap_in_use();
  auto engine = std::make_unique<Engine>(clock, link, link, 0x5eed, options);
  link.sample_heap(true);
  const IterationReport first = engine->run_iteration(plan, settings);
  link.sample_heap(false);
  const size_t peak = std::max(link.peak_heap(), heap_in_use());
  if (!check(first)) {
    state.SkipWithError("not every probe was answered in the first iteration");
    return;
  }

  bool ok = true;
  for (auto _ : state) {
    const IterationReport r = engine->run_iteration(plan, settings);
    ok = ok && check(r);
    benchmark::DoNotOptimize(r);
  }
  if (!ok) state.SkipWithError("not every probe was answered");
  state.SetLabel(std::string(to_string(type)) + "/" + std::string(to_string(af)));
  state.SetItemsProcessed(int64_t(state.iterations() * n));
  state.counters["ns_per_probe"] = benchmark::Counter(
      double(state.iterations() * n) * 1e-9, benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
  state.counters["state_B"] = double(peak - std::min(peak, before)) / double(n);
  state.counters["plan_B"] = double(plan_bytes(plan)) / double(n);
}
BENCHMARK(BM_Pipeline)
    ->ArgNames({"type", "af", "probes"})
    ->ArgsProduct({{0, 1, 2}, {4}, {1000, 100000}})
    ->Args({0, 6, 100000})
    ->Args({1, 4, 1000000})  // the in-flight size of the memory goal (10,000 targets x 100 packets)
    ->Unit(benchmark::kMillisecond);  // CPU time: figures stay meaningful while others compile

// The iteration bookkeeping alone at the in-flight size (1M probes: 10,000 targets x 100 packets),
// the counterparts of a matcher's insert / take / expire: choosing every token (prepare), matching one
// captured answer among 1M in flight (classify + destination lookup + token decode + slot update), and
// declaring every probe lost at the end (expire). ns per probe or per answer. Answers come in send order
// (as they do on a network: the order of the plan, round robin over the targets) or, as a worst case for
// the caches, to random probes.
void BM_RunnerPrepare(benchmark::State& state) {
  auto setup = make_setup(ProbeType::kIcmpPing, AddressFamily::kV4, size_t(state.range(0)));
  IterationRunner runner(0x5eed);
  uint64_t iteration = 0;
  for (auto _ : state) benchmark::DoNotOptimize(runner.prepare(setup->plan, ++iteration).data());
  state.counters["ns_per_probe"] =
      benchmark::Counter(double(state.iterations()) * double(setup->plan.probes.size()) * 1e-9,
                         benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}
BENCHMARK(BM_RunnerPrepare)->Arg(1'000'000)->Unit(benchmark::kMillisecond);

void BM_RunnerAnswer(benchmark::State& state) {
  const auto type = static_cast<ProbeType>(state.range(0));
  const bool random_order = state.range(1) != 0;
  auto setup = make_setup(type, AddressFamily::kV4, 1'000'000);
  const Plan& plan = setup->plan;
  IterationRunner runner(0x5eed);
  const auto tokens = runner.prepare(plan, 1);
  for (uint32_t slot = 0; slot < plan.probes.size(); ++slot) runner.on_sender_stamp(slot, Nanos(1'000'000));
  // 65,536 answers, crafted once: to probes 0..65535, or to random probes.
  constexpr size_t kAnswers = 1 << 16;
  std::vector<uint8_t> bytes(kAnswers * kSlotBytes);
  std::vector<uint16_t> lens(kAnswers);
  std::vector<uint8_t> probe(kSlotBytes);
  uint64_t x = 88172645463325252ULL;
  for (size_t i = 0; i < kAnswers; ++i) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    const auto slot = random_order ? uint32_t(x % plan.probes.size()) : uint32_t(i);
    const PlannedProbe& p = plan.probes[slot];
    const PacketTemplate& t = plan.templates[p.tmpl];
    const size_t len =
        probe_for(t.type).craft(t, PacketFields{plan.source_of(p), p.src_port, tokens[slot]}, probe);
    lens[i] = uint16_t(
        RingLink::make_reply(std::span<const uint8_t>(probe.data(), len), bytes.data() + i * kSlotBytes));
  }
  size_t i = 0;
  for (auto _ : state) {
    runner.on_packet(
        CapturedPacket{{bytes.data() + i * kSlotBytes, lens[i]}, Nanos(1'020'000), Direction::kIncoming});
    i = (i + 1) & (kAnswers - 1);
  }
  state.SetLabel(std::string(to_string(type)) + (random_order ? ", random order" : ", send order"));
}
BENCHMARK(BM_RunnerAnswer)->ArgNames({"type", "random"})->ArgsProduct({{0, 1, 2}, {0, 1}});

void BM_RunnerExpire(benchmark::State& state) {
  auto setup = make_setup(ProbeType::kIcmpPing, AddressFamily::kV4, size_t(state.range(0)));
  IterationRunner runner(0x5eed);
  uint64_t iteration = 0;
  for (auto _ : state) {
    state.PauseTiming();
    runner.prepare(setup->plan, ++iteration);
    for (uint32_t slot = 0; slot < setup->plan.probes.size(); ++slot)
      runner.on_sender_stamp(slot, Nanos(1'000'000));
    state.ResumeTiming();
    benchmark::DoNotOptimize(runner.expire(Nanos(10'000'000'000)));
  }
  state.counters["ns_per_probe"] =
      benchmark::Counter(double(state.iterations()) * double(setup->plan.probes.size()) * 1e-9,
                         benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}
BENCHMARK(BM_RunnerExpire)->Arg(1'000'000)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace netprobe

BENCHMARK_MAIN();
