#include "probes/udp_query_spec.h"

#include <re2/re2.h>

#include <algorithm>
#include <cstring>

namespace netprobe::udpquery {

namespace {

bool fail(std::string* why, std::string msg) {
  if (why) *why = std::move(msg);
  return false;
}

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

int base64_digit(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

}  // namespace

std::optional<std::vector<uint8_t>> parse_bytes(std::string_view spec, size_t max_bytes, std::string* why) {
  std::vector<uint8_t> out;
  // Bound the work before decoding (hex takes 2 characters a byte plus spaces, base64 4/3, text 1).
  if (spec.size() > 4 * max_bytes + 16) {
    fail(why, "value too long");
    return std::nullopt;
  }
  if (spec.starts_with("hex:")) {
    spec.remove_prefix(4);
    int high = -1;
    for (char c : spec) {
      if (is_space(c)) {
        if (high >= 0) {
          fail(why, "hex: whitespace inside a byte");
          return std::nullopt;
        }
        continue;
      }
      const int d = hex_digit(c);
      if (d < 0) {
        fail(why, "hex: invalid character");
        return std::nullopt;
      }
      if (high < 0) {
        high = d;
      } else {
        out.push_back(uint8_t(high << 4 | d));
        high = -1;
      }
    }
    if (high >= 0) {
      fail(why, "hex: odd number of digits");
      return std::nullopt;
    }
  } else if (spec.starts_with("base64:")) {
    spec.remove_prefix(7);
    while (!spec.empty() && spec.back() == '=') spec.remove_suffix(1);
    uint32_t acc = 0;
    int bits = 0;
    for (char c : spec) {
      const int v = base64_digit(c);
      if (v < 0) {
        fail(why, "base64: invalid character");
        return std::nullopt;
      }
      acc = (acc << 6) | uint32_t(v);
      bits += 6;
      if (bits >= 8) {
        bits -= 8;
        out.push_back(uint8_t(acc >> bits));
      }
    }
    if (bits >= 6) {
      fail(why, "base64: truncated (a lone trailing character)");
      return std::nullopt;
    }
  } else {
    out.assign(spec.begin(), spec.end());
  }
  if (out.empty()) {
    fail(why, "empty");
    return std::nullopt;
  }
  if (out.size() > max_bytes) {
    fail(why, "longer than " + std::to_string(max_bytes) + " bytes");
    return std::nullopt;
  }
  return out;
}

bool validate_token(const TokenSpec& t, size_t payload_size, std::string* why) {
  if (t.length < kMinTokenBytes || t.length > kMaxTokenBytes)
    return fail(why, "token length must be 2 to 8 bytes");
  if (size_t(t.offset) + t.length > payload_size) return fail(why, "token field ends past the payload");
  if (size_t(t.reply_offset) + t.length > kMaxJudgedAnswerBytes)
    return fail(why, "token reply_offset too large");
  return true;
}

int token_carried_bits(const TokenSpec& t) noexcept { return t.length >= 4 ? 32 : 16; }

namespace {
// The field's expected bytes: W big-endian (its top 16 bits when the field is 2 or 3 bytes), then zeros.
void field_bytes(const TokenSpec& t, uint32_t wire, uint8_t out[kMaxTokenBytes]) noexcept {
  std::memset(out, 0, kMaxTokenBytes);
  const int n = token_carried_bits(t) / 8;
  for (int i = 0; i < n; ++i) out[i] = uint8_t(wire >> (24 - 8 * i));
}
}  // namespace

void write_token(std::span<uint8_t> payload, const TokenSpec& t, uint32_t wire) noexcept {
  if (size_t(t.offset) + t.length > payload.size() || t.length > kMaxTokenBytes) return;
  uint8_t f[kMaxTokenBytes];
  field_bytes(t, wire, f);
  std::memcpy(payload.data() + t.offset, f, t.length);
}

std::string_view to_string(ExpectKind k) {
  switch (k) {
    case ExpectKind::kAny:
      return "any";
    case ExpectKind::kExact:
      return "exact";
    case ExpectKind::kContains:
      return "contains";
    case ExpectKind::kRegex:
      return "regex";
  }
  return "?";
}

std::optional<Expect> parse_expect(std::string_view kind, std::string_view value, std::string* why) {
  Expect e;
  if (kind == "any") return e;
  if (kind == "exact" || kind == "contains") {
    e.kind = kind == "exact" ? ExpectKind::kExact : ExpectKind::kContains;
    auto b = parse_bytes(value, kMaxExpectBytes, why);
    if (!b) return std::nullopt;
    e.bytes = std::move(*b);
    return e;
  }
  if (kind == "regex") {
    if (value.empty() || value.size() > kMaxRegexPatternBytes) {
      fail(why, "regex empty or longer than " + std::to_string(kMaxRegexPatternBytes) + " bytes");
      return std::nullopt;
    }
    RE2::Options opt;
    opt.set_encoding(RE2::Options::EncodingLatin1);  // any byte matches as itself: answers are binary
    opt.set_log_errors(false);
    opt.set_max_mem(kMaxRegexProgramBytes);
    auto re = std::make_shared<const RE2>(re2::StringPiece(value.data(), value.size()), opt);
    if (!re->ok()) {
      fail(why, "regex: " + re->error());
      return std::nullopt;
    }
    e.kind = ExpectKind::kRegex;
    e.regex = std::move(re);
    return e;
  }
  fail(why, "expect must be any, exact, contains or regex");
  return std::nullopt;
}

std::string_view to_string(Outcome o) {
  switch (o) {
    case Outcome::kAnswered:
      return "answered";
    case Outcome::kUnexpected:
      return "unexpected";
    case Outcome::kNotOurs:
      return "not_ours";
  }
  return "?";
}

Outcome judge(std::span<const uint8_t> answer, const TokenSpec* token, uint32_t wire,
              const Expect& expect) noexcept {
  answer = answer.first(std::min(answer.size(), kMaxJudgedAnswerBytes));
  size_t skip_from = 0, skip_to = 0;  // the echoed field, skipped by kExact
  if (token) {
    if (token->length > kMaxTokenBytes || size_t(token->reply_offset) + token->length > answer.size())
      return Outcome::kNotOurs;
    uint8_t f[kMaxTokenBytes];
    field_bytes(*token, wire, f);
    if (std::memcmp(answer.data() + token->reply_offset, f, token->length) != 0) return Outcome::kNotOurs;
    skip_from = token->reply_offset;
    skip_to = skip_from + token->length;
  }
  switch (expect.kind) {
    case ExpectKind::kAny:
      return Outcome::kAnswered;
    case ExpectKind::kExact: {
      if (answer.size() != expect.bytes.size()) return Outcome::kUnexpected;
      for (size_t i = 0; i < answer.size(); ++i)
        if ((i < skip_from || i >= skip_to) && answer[i] != expect.bytes[i]) return Outcome::kUnexpected;
      return Outcome::kAnswered;
    }
    case ExpectKind::kContains: {
      const auto it = std::search(answer.begin(), answer.end(), expect.bytes.begin(), expect.bytes.end());
      return it != answer.end() ? Outcome::kAnswered : Outcome::kUnexpected;
    }
    case ExpectKind::kRegex: {
      if (!expect.regex) return Outcome::kUnexpected;
      const re2::StringPiece text(reinterpret_cast<const char*>(answer.data()), answer.size());
      return RE2::PartialMatch(text, *expect.regex) ? Outcome::kAnswered : Outcome::kUnexpected;
    }
  }
  return Outcome::kUnexpected;
}

std::optional<Spec> make_spec(std::string_view payload, std::string_view expect_kind,
                              std::string_view expect_value, uint16_t token_offset, uint16_t token_length,
                              uint16_t token_reply_offset, std::string* why) {
  Spec s;
  std::string w;
  auto p = parse_bytes(payload, kMaxPayloadBytes, &w);
  if (!p) {
    fail(why, "payload: " + w);
    return std::nullopt;
  }
  s.payload = std::move(*p);
  auto e = parse_expect(expect_kind, expect_value, &w);
  if (!e) {
    fail(why, "expect: " + w);
    return std::nullopt;
  }
  s.expect = std::move(*e);
  if (token_length != 0) {
    const TokenSpec t{token_offset, token_length, token_reply_offset};
    if (!validate_token(t, s.payload.size(), &w)) {
      fail(why, "token: " + w);
      return std::nullopt;
    }
    s.token = t;
    // The field goes on the wire per probe: zero in the template.
    std::memset(s.payload.data() + t.offset, 0, t.length);
  }
  return s;
}

}  // namespace netprobe::udpquery
