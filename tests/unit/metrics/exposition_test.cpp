// The text pieces TargetSeries writes must be those of prometheus-cpp's TextSerializer (so that the two
// share one exposition and compare line for line): values and label escaping, table-driven against the
// serializer itself; and CollectableSource's flushing.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <sstream>

#include <prometheus/gauge.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include "metrics/exposition.h"
#include "tests/support/metrics_lines.h"

namespace netprobe {
namespace {

// The sample line TextSerializer writes for a gauge {l=label} value.
std::string serializer_line(double value, const std::string& label) {
  prometheus::MetricFamily f;
  f.name = "g";
  f.type = prometheus::MetricType::Gauge;
  prometheus::ClientMetric m;
  m.label.push_back({"l", label});
  m.gauge.value = value;
  f.metric.push_back(m);
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, {f});
  const std::string text = out.str();
  return text.substr(text.find("\ng{") + 1);
}

std::string our_line(double value, const std::string& label) {
  std::string out = "g{l=\"";
  append_label_value(out, label);
  out += "\"} ";
  append_sample_value(out, value);
  out += '\n';
  return out;
}

TEST(metrics_Exposition, ValuesAndLabelsAsTextSerializer) {
  const double values[] = {0,
                           -0.0,
                           1,
                           -1,
                           42,
                           0.1,
                           0.1 + 0.2,
                           1.0 / 3,
                           2.5e-5,
                           1e-300,
                           5e-324,
                           123456789012345.0,
                           999999999999999.0,
                           1e15,
                           1e16,
                           12345678901234567.0,
                           1e20,
                           -1e20,
                           1.5e308,
                           std::numeric_limits<double>::max(),
                           std::numeric_limits<double>::quiet_NaN(),
                           std::numeric_limits<double>::infinity(),
                           -std::numeric_limits<double>::infinity(),
                           9007199254740993.0,
                           0.000123456789};
  for (double v : values) EXPECT_EQ(our_line(v, "x"), serializer_line(v, "x")) << v;
  for (const char* label : {"", "plain", "a\"b", "back\\slash", "new\nline", "\\\"\n", "tab\there", "é ü"})
    EXPECT_EQ(our_line(1, label), serializer_line(1, label)) << label;
}

TEST(metrics_Exposition, CollectableSourceFlushesWholeFamilies) {
  auto registry = std::make_shared<prometheus::Registry>();
  for (int f = 0; f < 20; ++f) {
    auto& family = prometheus::BuildGauge().Name("family_" + std::to_string(f)).Help("h").Register(*registry);
    for (int s = 0; s < 10; ++s) family.Add({{"s", std::to_string(s)}}).Set(s);
  }
  std::ostringstream expected;
  prometheus::TextSerializer().Serialize(expected, registry->Collect());

  CollectableSource source(registry);
  std::string out, pieces;
  int calls = 0;
  EXPECT_TRUE(source.render(out, 500, [&](std::string_view piece) {
    EXPECT_EQ(piece.back(), '\n');
    EXPECT_GE(piece.size(), 500u);
    pieces += piece;
    ++calls;
    return true;
  }));
  EXPECT_GT(calls, 2);
  EXPECT_EQ(testing::sample_lines(pieces + out), testing::sample_lines(expected.str()));

  out.clear();
  calls = 0;
  EXPECT_FALSE(source.render(out, 500, [&](std::string_view) { return ++calls < 2; }));
  EXPECT_EQ(calls, 2);

  std::weak_ptr<prometheus::Collectable> gone;
  {
    auto temporary = std::make_shared<prometheus::Registry>();
    gone = temporary;
  }
  out.clear();
  EXPECT_TRUE(CollectableSource(gone).render(out, 1, [](std::string_view) { return true; }));
  EXPECT_TRUE(out.empty());
}

// 0.0.4 -> OpenMetrics 1.0, fed whole and one byte at a time (lines cut anywhere).
TEST(metrics_OpenMetricsConverter, Table) {
  struct Case {
    const char* text;
    const char* openmetrics;
  };
  for (const auto& c : std::vector<Case>{
           {"", "# EOF\n"},
           {"# HELP a_total Sent\n# TYPE a_total counter\na_total{x=\"1\"} 3\n",
            "# HELP a Sent\n# TYPE a counter\na_total{x=\"1\"} 3\n# EOF\n"},
           // A counter without _total keeps its series name: type unknown.
           {"# HELP b_count Fails\n# TYPE b_count counter\nb_count 2\n",
            "# HELP b_count Fails\n# TYPE b_count unknown\nb_count 2\n# EOF\n"},
           {"# TYPE u untyped\nu 1\n", "# TYPE u unknown\nu 1\n# EOF\n"},
           {"# HELP g say \"hi\" \\\\ \\n\n# TYPE g gauge\ng Nan\ng{l=\"a b\"} +Inf\n",
            "# HELP g say \\\"hi\\\" \\\\ \\n\n# TYPE g gauge\ng NaN\ng{l=\"a b\"} +Inf\n# EOF\n"},
           {"# HELP h x\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 3\nh_count "
            "2\n\n",
            "# HELP h x\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 3\nh_count "
            "2\n# EOF\n"},
           {"# a comment\n# HELP lonely no type\nlonely 1\n", "# HELP lonely no type\nlonely 1\n# EOF\n"},
           {"no_newline 1", "no_newline 1\n# EOF\n"},
       }) {
    OpenMetricsConverter whole;
    std::string out;
    whole.feed(c.text, out);
    whole.finish(out);
    EXPECT_EQ(out, c.openmetrics) << c.text;
    OpenMetricsConverter bytes;
    std::string out2;
    for (const char* p = c.text; *p; ++p) bytes.feed(std::string_view(p, 1), out2);
    bytes.finish(out2);
    EXPECT_EQ(out2, c.openmetrics) << c.text;
  }
}

}  // namespace
}  // namespace netprobe
