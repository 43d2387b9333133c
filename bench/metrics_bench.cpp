// The supervisor's metrics with 10,000 targets (issue 6: the process tree under 100 MB): ICMPping targets in
// one group, the default percentiles (95, 50), each with its host-resolution series (an IP literal resolves
// once) and one iteration of 100 probes recorded, as the supervisor holds them at rest.
//
// - BM_Record: ProberMetrics::record() of one iteration of every target. ns_per_target; heap_B_per_target is
//   the heap the metrics hold at rest (mallinfo2 in-use delta over building them), divided by the targets.
// - BM_Render: the whole exposition (registry + target_series()) rendered in 64 KiB pieces into a sink that
//   drops them. ns_per_series (per sample line), text_MB, peak_KB: the heap above the at-rest level, sampled
//   at every piece (where the buffers are fullest).
// - BM_Scrape: GET /metrics with gzip from a real Exporter on 127.0.0.1:0 (HTTP/1.1, chunked), the response
//   read and dropped: what a Prometheus scrape costs. peak_KB as above (sampled at every piece the sources
//   hand on, zlib's state included), gzip_KB the size on the wire.
#include <benchmark/benchmark.h>
#include <malloc.h>

#include <algorithm>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <prometheus/registry.h>

#include "metrics/exporter.h"
#include "metrics/exposition.h"
#include "metrics/prober_metrics.h"
#include "metrics/process_collector.h"
#include "tests/support/loopback_http.h"

namespace netprobe {
namespace {

size_t heap_in_use() {
  const struct mallinfo2 m = mallinfo2();
  return m.uordblks + m.hblkhd;
}

IterationReport iteration(int targets, int packets) {
  IterationReport r;
  r.groups.reserve(static_cast<size_t>(targets));
  for (int i = 0; i < targets; ++i) {
    GroupMeasurement g;
    g.target = "target-" + std::to_string(100000 + i);
    g.group = "g1";
    g.type = ProbeType::kIcmpPing;
    g.sent = static_cast<uint64_t>(packets);
    g.lost = 1;
    for (int k = 1; k < packets; ++k) g.rtts_s.push_back(20e-6 * (1 + (i + k) % 50));
    r.groups.push_back(std::move(g));
  }
  return r;
}

struct World {
  explicit World(int n) : targets(n), report(iteration(n, 100)) {
    malloc_trim(0);
    const size_t before = heap_in_use();
    registry = std::make_shared<prometheus::Registry>();
    metrics = std::make_unique<ProberMetrics>(registry, "probe1", std::vector<int>{95, 50}, "0.1.0");
    for (const GroupMeasurement& g : report.groups) {
      TargetConfig t;
      t.name = g.target;
      t.type = ProbeType::kIcmpPing;
      t.destination = "198.19.0.1";
      t.groups = {"g1"};
      metrics->declare_target(t, AddressFamily::kV4);
      metrics->set_host_resolution_status(t.name, AddressFamily::kV4, 1);
      metrics->inc_host_resolution_change(t.name, AddressFamily::kV4);
    }
    metrics->record(report);
    heap_per_target = double(heap_in_use() - before) / n;
    registry_source = std::make_shared<CollectableSource>(registry);
  }
  int targets;
  IterationReport report;
  std::shared_ptr<prometheus::Registry> registry;
  std::unique_ptr<ProberMetrics> metrics;
  std::shared_ptr<CollectableSource> registry_source;
  double heap_per_target = 0;
};

World& world(int n) {
  static std::map<int, std::unique_ptr<World>> worlds;
  auto& w = worlds[n];
  if (!w) w = std::make_unique<World>(n);
  return *w;
}

// A source that samples the heap each time the source it wraps hands a piece on.
class Sampled : public TextSource {
 public:
  Sampled(std::shared_ptr<const TextSource> inner, size_t* peak) : inner_(std::move(inner)), peak_(peak) {}
  bool render(std::string& out, size_t flush_at, const TextSink& flush) const override {
    return inner_->render(out, flush_at, [&](std::string_view piece) {
      *peak_ = std::max(*peak_, heap_in_use());
      return flush(piece);
    });
  }

 private:
  std::shared_ptr<const TextSource> inner_;
  size_t* peak_;
};

void BM_Record(benchmark::State& state) {
  World& w = world(static_cast<int>(state.range(0)));
  for (auto _ : state) w.metrics->record(w.report);
  state.counters["ns_per_target"] = benchmark::Counter(
      w.targets, benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
  state.counters["heap_B_per_target"] = w.heap_per_target;
}

void BM_Render(benchmark::State& state) {
  World& w = world(static_cast<int>(state.range(0)));
  constexpr size_t kPiece = 64 * 1024;
  size_t bytes = 0, lines = 0, peak = 0;
  const size_t rest = heap_in_use();
  std::string out;  // the exporter's buffer: part of a scrape's cost
  out.reserve(kPiece + kPiece / 4);
  const TextSink sink = [&](std::string_view piece) {
    bytes += piece.size();
    lines += size_t(std::count(piece.begin(), piece.end(), '\n'));
    peak = std::max(peak, heap_in_use());
    return true;
  };
  for (auto _ : state) {
    bytes = lines = 0;
    w.registry_source->render(out, kPiece, sink);
    w.metrics->target_series()->render(out, kPiece, sink);
    sink(out);
    out.clear();
  }
  state.counters["ns_per_series"] = benchmark::Counter(
      double(lines), benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
  state.counters["text_MB"] = double(bytes) / 1e6;
  state.counters["peak_KB"] = double(peak > rest ? peak - rest : 0) / 1024;
}

// GET /metrics over loopback; returns the bytes received (0 on failure), counted as they come so that the
// client holds no copy of the page (this process's heap is what the benchmark measures).
size_t scrape(int port) {
  size_t received = 0;
  testing::loopback_http(
      port, "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept-Encoding: gzip\r\nConnection: close\r\n\r\n",
      10, [&](std::string_view piece) { received += piece.size(); });
  return received;
}

void BM_Scrape(benchmark::State& state) {
  World& w = world(static_cast<int>(state.range(0)));
  size_t peak = 0;
  auto process = std::make_shared<ProcessCollector>();
  auto registry = std::make_shared<Sampled>(w.registry_source, &peak);
  auto targets = std::make_shared<Sampled>(w.metrics->target_series(), &peak);
  auto exporter = Exporter::start("127.0.0.1", 0, std::nullopt, {process}, {registry, targets});
  if (!exporter.ok()) {
    state.SkipWithError(exporter.error().message.c_str());
    return;
  }
  const int port = (*exporter)->listening_ports().at(0);
  scrape(port);  // the HTTP server's first-request allocations are not a scrape's
  malloc_trim(0);
  const size_t rest = heap_in_use();
  peak = rest;
  size_t received = 0;
  for (auto _ : state) received = scrape(port);
  if (received == 0) state.SkipWithError("the scrape failed");
  state.counters["peak_KB"] = double(peak - rest) / 1024;
  state.counters["gzip_KB"] = double(received) / 1024;
}

BENCHMARK(BM_Record)->Arg(10000)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Render)->Arg(10000)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Scrape)->Arg(10000)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
}  // namespace netprobe

BENCHMARK_MAIN();
