// Configuration loading at scale (issue 6: 100,000 targets load and validate in under 2 s). Reports
// ms_per_load for the whole load_config_string and for its two halves: YAML -> JSON (libyaml) and schema
// validation + cross-field checks + structs. The configuration is tests/fixtures/config/gen_large.py's, so
// the figures compare with `time netprobe check-config big.yaml`.
#include <benchmark/benchmark.h>

#include <chrono>
#include <string>

#include "config/loader.h"
#include "config/yaml_json.h"
#include "tests/unit/config/large_config.h"

namespace netprobe {
namespace {

// Wall-clock milliseconds per iteration, timed here rather than derived from a rate counter, whose inverse
// Google Benchmark would print in seconds.
class LoadTimer {
 public:
  void start() { t0_ = std::chrono::steady_clock::now(); }
  void stop() { total_ += std::chrono::steady_clock::now() - t0_; }
  void report(benchmark::State& state, size_t bytes) const {
    state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(bytes));
    if (state.iterations() > 0)
      state.counters["ms_per_load"] =
          std::chrono::duration<double, std::milli>(total_).count() / double(state.iterations());
  }

 private:
  std::chrono::steady_clock::time_point t0_;
  std::chrono::steady_clock::duration total_{};
};

void BM_LoadConfig(benchmark::State& state) {
  const std::string yaml = testing::large_config_yaml(int(state.range(0)));
  LoadTimer timer;
  for (auto _ : state) {
    timer.start();
    LoadedConfig r = load_config_string(yaml, "big.yaml");
    timer.stop();
    if (!r.ok()) {
      state.SkipWithError(r.diagnostics.errors.empty() ? "not loaded" : r.diagnostics.errors.front().c_str());
      break;
    }
    benchmark::DoNotOptimize(r);
  }
  timer.report(state, yaml.size());
}

void BM_YamlToJson(benchmark::State& state) {
  const std::string yaml = testing::large_config_yaml(int(state.range(0)));
  LoadTimer timer;
  for (auto _ : state) {
    timer.start();
    YamlToJsonResult r = parse_yaml_to_json(yaml, "big.yaml");
    timer.stop();
    benchmark::DoNotOptimize(r);
  }
  timer.report(state, yaml.size());
}

void BM_ValidateAndBuild(benchmark::State& state) {
  const std::string yaml = testing::large_config_yaml(int(state.range(0)));
  const nlohmann::json doc = parse_yaml_to_json(yaml, "big.yaml").value;
  LoadTimer timer;
  for (auto _ : state) {
    timer.start();
    LoadedConfig r = load_config_json(doc, "big.yaml");
    timer.stop();
    benchmark::DoNotOptimize(r);
  }
  timer.report(state, yaml.size());
}

BENCHMARK(BM_LoadConfig)->Arg(10000)->Arg(100000)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_YamlToJson)->Arg(10000)->Arg(100000)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_ValidateAndBuild)->Arg(10000)->Arg(100000)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace netprobe

BENCHMARK_MAIN();
