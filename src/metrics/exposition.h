#pragma once
// Streaming Prometheus text exposition (format 0.0.4).
//
// Why not prometheus-cpp all the way: its Collect() copies every series into a vector<MetricFamily> and
// TextSerializer then builds the whole page in one string; with 10,000 targets that was ~150 MB of transient
// allocations per scrape (bench/RESULTS.md, "Supervisor metrics memory"). A TextSource renders its families
// straight to text, in pieces handed to a sink as they fill, so a scrape holds one piece at a time.
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include <prometheus/collectable.h>

namespace netprobe {

// Receives the exposition piece by piece; returns false to stop the rendering (the client went away).
using TextSink = std::function<bool(std::string_view)>;

class TextSource {
 public:
  virtual ~TextSource() = default;
  // Appends this source's families (each one whole: HELP, TYPE, then every series) to `out`. Whenever
  // out.size() reaches `flush_at` it calls flush(out) and clears `out`; whatever is left in `out` at the end
  // is the caller's to flush. Returns false iff a flush returned false (the rendering stopped there).
  // Thread-safety: implementations allow several render() at once and concurrently with their writers, and
  // never call `flush` with one of their locks held, so a slow client cannot stall a writer.
  virtual bool render(std::string& out, size_t flush_at, const TextSink& flush) const = 0;
};

// A prometheus::Collectable (Registry, ProcessCollector) as a TextSource: collected, then serialized with
// prometheus-cpp's TextSerializer one family at a time. Meant for small sets of series (the process-wide
// families): Collect() still copies all of them at once.
class CollectableSource final : public TextSource {
 public:
  explicit CollectableSource(std::weak_ptr<prometheus::Collectable> collectable);
  // Renders nothing once the collectable is gone.
  bool render(std::string& out, size_t flush_at, const TextSink& flush) const override;

 private:
  std::weak_ptr<prometheus::Collectable> collectable_;
};

// The pieces of a sample line written exactly as prometheus-cpp 1.0.1's TextSerializer writes them, so that
// both can share one exposition and be compared line for line (tests/unit/metrics/target_series_test.cpp).
// A sample value: printf "%.16g" in the C locale (the stream precision TextSerializer sets), and "Nan",
// "+Inf", "-Inf".
void append_sample_value(std::string& out, double value);
// A label value: backslash, double quote and newline escaped (\\, \", \n).
void append_label_value(std::string& out, std::string_view value);

// The 0.0.4 text exposition (as TextSerializer and TargetSeries write it: HELP then TYPE before a family's
// samples) turned into OpenMetrics 1.0 text as it streams, for scrapers that ask for it (Prometheus >= 2.5
// does): a counter `x_total` becomes family `x` of type counter (its samples keep the name x_total, so the
// series do not change); a counter whose name does not end in _total becomes type unknown rather than have
// its series renamed; untyped becomes unknown; HELP escapes double quotes too; NaN is spelled "NaN"; empty
// and other comment lines are dropped; no _created series; "# EOF" at the end.
class OpenMetricsConverter {
 public:
  // Appends the OpenMetrics form of every complete line of `text` to `out`; a partial last line waits for
  // the next call.
  void feed(std::string_view text, std::string& out);
  // The rest, then "# EOF\n".
  void finish(std::string& out);

 private:
  void line(std::string_view line, std::string& out);
  void flush_help(std::string& out);

  std::string carry_;      // a partial line
  std::string help_name_;  // a HELP line waiting for its TYPE line (the family's name depends on it)
  std::string help_text_;
  bool has_help_ = false;
};

}  // namespace netprobe
