#include "logging/escape.h"

#include <fmt/format.h>

namespace netprobe {

size_t utf8_sequence_length(std::string_view s, size_t i) {
  const auto b = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = b(i);
  if (c < 0x80) return 1;
  size_t n;
  unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte
  if (c >= 0xC2 && c <= 0xDF) {
    n = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    n = 3;
    if (c == 0xE0) lo = 0xA0;  // overlong
    if (c == 0xED) hi = 0x9F;  // surrogates
  } else if (c >= 0xF0 && c <= 0xF4) {
    n = 4;
    if (c == 0xF0) lo = 0x90;  // overlong
    if (c == 0xF4) hi = 0x8F;  // above U+10FFFF
  } else {
    return 0;
  }
  if (i + n > s.size()) return 0;
  if (b(i + 1) < lo || b(i + 1) > hi) return 0;
  for (size_t k = 2; k < n; ++k)
    if ((b(i + k) & 0xC0) != 0x80) return 0;
  return n;
}

namespace {

std::string escape(std::string_view text, size_t max_bytes, bool quote) {
  std::string out;
  const size_t limit = std::min(text.size(), max_bytes);
  out.reserve(limit + 8);
  size_t i = 0;
  while (i < limit) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    if (quote && (c == '\\' || c == '"')) {
      out += '\\';
      out += char(c);
      ++i;
    } else if (c == '\n') {
      out += "\\n", ++i;
    } else if (c == '\r') {
      out += "\\r", ++i;
    } else if (c == '\t') {
      out += "\\t", ++i;
    } else if (c < 0x20 || c == 0x7F) {
      out += fmt::format("\\x{:02x}", c), ++i;
    } else if (c < 0x80) {
      out += char(c), ++i;
    } else if (const size_t n = utf8_sequence_length(text, i); n > 0 && i + n <= limit) {
      out.append(text.substr(i, n));
      i += n;
    } else {
      out += fmt::format("\\x{:02x}", c), ++i;
    }
  }
  if (quote) out = "\"" + out + "\"";
  if (text.size() > limit) out += fmt::format("... ({} bytes)", text.size());
  return out;
}

}  // namespace

std::string escape_for_log(std::string_view text, size_t max_bytes) { return escape(text, max_bytes, false); }
std::string quote_for_log(std::string_view text, size_t max_bytes) { return escape(text, max_bytes, true); }

}  // namespace netprobe
