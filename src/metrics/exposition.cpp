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

void OpenMetricsConverter::feed(std::string_view text, std::string& out) {
  if (!carry_.empty()) {
    const size_t nl = text.find('\n');
    if (nl == std::string_view::npos) {
      carry_.append(text);
      return;
    }
    carry_.append(text.substr(0, nl));
    line(carry_, out);
    carry_.clear();
    text.remove_prefix(nl + 1);
  }
  for (;;) {
    const size_t nl = text.find('\n');
    if (nl == std::string_view::npos) break;
    line(text.substr(0, nl), out);
    text.remove_prefix(nl + 1);
  }
  carry_.append(text);
}

void OpenMetricsConverter::finish(std::string& out) {
  if (!carry_.empty()) line(carry_, out);
  carry_.clear();
  flush_help(out);
  out += "# EOF\n";
}

void OpenMetricsConverter::flush_help(std::string& out) {
  if (!has_help_) return;
  out += "# HELP ";
  out += help_name_;
  out += ' ';
  // 0.0.4 HELP text escapes backslash and newline already; OpenMetrics escapes the double quote too.
  for (char c : help_text_) {
    if (c == '"') out += '\\';
    out += c;
  }
  out += '\n';
  has_help_ = false;
}

void OpenMetricsConverter::line(std::string_view l, std::string& out) {
  if (l.empty()) return;
  if (l.rfind("# HELP ", 0) == 0) {
    flush_help(out);
    l.remove_prefix(7);
    const size_t space = l.find(' ');
    help_name_ = std::string(l.substr(0, space));
    help_text_ = space == std::string_view::npos ? std::string() : std::string(l.substr(space + 1));
    has_help_ = true;
    return;
  }
  if (l.rfind("# TYPE ", 0) == 0) {
    l.remove_prefix(7);
    const size_t space = l.find(' ');
    std::string name(l.substr(0, space));
    std::string type(space == std::string_view::npos ? "untyped" : l.substr(space + 1));
    if (type == "counter") {
      constexpr std::string_view kTotal = "_total";
      if (name.size() > kTotal.size() &&
          name.compare(name.size() - kTotal.size(), kTotal.size(), kTotal) == 0) {
        if (has_help_ && help_name_ == name) help_name_.resize(name.size() - kTotal.size());
        name.resize(name.size() - kTotal.size());
      } else {
        type = "unknown";  // as a counter its samples would have to be renamed name_total
      }
    } else if (type == "untyped") {
      type = "unknown";
    }
    flush_help(out);
    out += "# TYPE ";
    out += name;
    out += ' ';
    out += type;
    out += '\n';
    return;
  }
  flush_help(out);
  if (l.front() == '#') return;  // no other comments in OpenMetrics
  constexpr std::string_view kNan = " Nan";
  if (l.size() > kNan.size() && l.substr(l.size() - kNan.size()) == kNan) {
    out.append(l.substr(0, l.size() - kNan.size()));
    out += " NaN\n";
    return;
  }
  out.append(l);
  out += '\n';
}

}  // namespace netprobe
