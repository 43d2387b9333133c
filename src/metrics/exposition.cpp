#include "metrics/exposition.h"

#include <charconv>
#include <cmath>
#include <cstdint>
#include <sstream>
#include <vector>

#include <prometheus/metric_family.h>
#include <prometheus/text_serializer.h>

namespace netprobe {

void append_sample_value(std::string& out, double value) {
  if (std::isnan(value)) {
    out += "Nan";
    return;
  }
  if (std::isinf(value)) {
    out += value < 0 ? "-Inf" : "+Inf";
    return;
  }
  char buf[32];
  std::to_chars_result r;
  // Counters and counts are integers: the integer conversion is faster and prints the same digits as
  // "%.16g" below 1e15 (which switches to an exponent only at 1e16). -0 keeps the general path ("-0").
  if (value >= 0 && value < 1e15 && !std::signbit(value) && value == std::floor(value)) {
    r = std::to_chars(buf, buf + sizeof buf, static_cast<uint64_t>(value));
  } else {
    // to_chars with a precision is specified as printf("%.*g") in the C locale.
    r = std::to_chars(buf, buf + sizeof buf, value, std::chars_format::general, 16);
  }
  out.append(buf, r.ptr);
}

void append_label_value(std::string& out, std::string_view value) {
  size_t start = 0;
  for (size_t i = 0; i < value.size(); ++i) {
    const char c = value[i];
    if (c != '\\' && c != '"' && c != '\n') continue;
    out.append(value.substr(start, i - start));
    out += '\\';
    out += c == '\n' ? 'n' : c;
    start = i + 1;
  }
  out.append(value.substr(start));
}

CollectableSource::CollectableSource(std::weak_ptr<prometheus::Collectable> collectable)
    : collectable_(std::move(collectable)) {}

bool CollectableSource::render(std::string& out, size_t flush_at, const TextSink& flush) const {
  auto collectable = collectable_.lock();
  if (!collectable) return true;
  std::vector<prometheus::MetricFamily> one(1);
  std::ostringstream text;
  for (auto& family : collectable->Collect()) {
    one[0] = std::move(family);
    text.str({});
    prometheus::TextSerializer().Serialize(text, one);
    out += text.view();
    if (out.size() >= flush_at) {
      if (!flush(out)) return false;
      out.clear();
    }
  }
  return true;
}

}  // namespace netprobe
