#pragma once
// UDPquery's payload, token field and expect (issue 18, docs/service-checks.md#udpquery): parsed and
// validated on the control plane (bounded sizes, linear-time regex), judged per answer on the capture path
// (judge(): no exception, bounded work). Shared by the probe type (probes/udp_query.h), the configuration
// loader and the one-shot `netprobe query --udp` (src/svc).
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace re2 {
class RE2;
}

namespace netprobe::udpquery {

// One UDP datagram that fits the IPv6 minimum MTU without fragmentation (1280 - 40 - 8).
inline constexpr size_t kMaxPayloadBytes = 1232;
// Expected bytes / contains bytes, and the longest regex pattern accepted.
inline constexpr size_t kMaxExpectBytes = 1232;
inline constexpr size_t kMaxRegexPatternBytes = 512;
// RE2's compiled-program memory budget per expect regex.
inline constexpr int64_t kMaxRegexProgramBytes = 1 << 20;
// judge() looks at most at this many bytes of an answer (more is captured only by mistake: snap length).
inline constexpr size_t kMaxJudgedAnswerBytes = 4096;

// `hex:00ff...` (whitespace allowed between byte pairs), `base64:...` (RFC 4648, padding optional) or text
// (the bytes as written). Rejects an empty or oversized (> max_bytes decoded) value; *why says what.
std::optional<std::vector<uint8_t>> parse_bytes(std::string_view spec, size_t max_bytes, std::string* why);

// Where netprobe's 32-bit wire token W goes in the payload (`offset`, `length` bytes) and where the answer
// echoes it (`reply_offset`: the same for DNS's ID at 0; NTP copies the request's transmit timestamp, offset
// 40, into the answer's originate timestamp, offset 24). W's bytes are written big-endian from the
// start of the field: length 2 carries W's top 16 bits (the index), length >= 4 all of W (the rest of
// the field is zero). Only the echoed bytes are compared, so the bits a blind forger must guess are
// 8 * min(length, 4) (docs/service-checks.md#token).
struct TokenSpec {
  uint16_t offset = 0;
  uint16_t length = 0;
  uint16_t reply_offset = 0;
};
inline constexpr uint16_t kMinTokenBytes = 2;
inline constexpr uint16_t kMaxTokenBytes = 8;
// Validates a token field against the payload it goes into (length in [2, 8], inside the payload, reply
// offset below kMaxJudgedAnswerBytes - length). *why says what is wrong.
bool validate_token(const TokenSpec& t, size_t payload_size, std::string* why);
// Bits of W the field carries (16 or 32).
int token_carried_bits(const TokenSpec& t) noexcept;
// Writes W into `payload` at the field (payload must be validated against `t`). No allocation.
void write_token(std::span<uint8_t> payload, const TokenSpec& t, uint32_t wire) noexcept;

enum class ExpectKind : uint8_t { kAny, kExact, kContains, kRegex };
std::string_view to_string(ExpectKind k);

// What an answer must be. kExact compares the whole datagram but skips the echoed token bytes (they
// differ per probe); kContains searches bytes; kRegex runs RE2 (linear time, no backtracking) on the first
// kMaxJudgedAnswerBytes bytes, as Latin-1 so any byte value matches as itself.
struct Expect {
  ExpectKind kind = ExpectKind::kAny;
  std::vector<uint8_t> bytes;             // kExact / kContains
  std::shared_ptr<const re2::RE2> regex;  // kRegex
};
// kind: "any", "exact", "contains" or "regex"; value: parse_bytes() syntax for exact / contains, the
// pattern for regex (compile errors and oversized programs are rejected). *why says what.
std::optional<Expect> parse_expect(std::string_view kind, std::string_view value, std::string* why);

enum class Outcome : uint8_t {
  kAnswered,    // the token (if any) is echoed and the answer is what was expected
  kUnexpected,  // the token (if any) is echoed but the content is not what was expected
  kNotOurs,     // the echoed token is not the probe's (or the answer is too short to carry it): a forgery
                // or a late answer; the probe stays in flight and the packet counts as wrong_token
};
std::string_view to_string(Outcome o);

// Judges one answer datagram (UDP payload) to the probe whose wire token is `wire`. `token` null: no echo
// (the match rests on the 5-tuple, one probe in flight per flow).
Outcome judge(std::span<const uint8_t> answer, const TokenSpec* token, uint32_t wire,
              const Expect& expect) noexcept;

// Everything a UDPquery template needs: the payload (token field zero), the token field if any, the expect.
struct Spec {
  std::vector<uint8_t> payload;
  std::optional<TokenSpec> token;
  Expect expect;
};
// From the configuration's form (payload and expect values as parse_bytes() / parse_expect() take them;
// token_length 0: no token). *why says what is wrong (the loader prefixes the key's path).
std::optional<Spec> make_spec(std::string_view payload, std::string_view expect_kind,
                              std::string_view expect_value, uint16_t token_offset, uint16_t token_length,
                              uint16_t token_reply_offset, std::string* why);

}  // namespace netprobe::udpquery
