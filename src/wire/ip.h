#pragma once
// Bounds-checked, non-owning views over IPv4 and IPv6 headers in untrusted bytes. parse() checks every
// length once; the accessors then read within the checked range only. Never throw, never allocate.
//
// Two entry points per family:
//   parse():        a whole captured packet. The length field is authoritative: bytes past it (Ethernet
//                   padding) are ignored, fewer bytes than it claims is kTruncated.
//   parse_quoted(): the copy of our own packet inside an ICMP error. The quote is cut short by design
//                   (RFC 792: header + 8 bytes; RFC 1812/4443: as much as fits), so only the IP header
//                   must be complete and the payload is whatever was quoted, capped by the length field.
#include <cstdint>
#include <optional>
#include <span>

#include "core/net.h"
#include "wire/bytes.h"

namespace netprobe::wire {

class Ipv4View {
 public:
  static constexpr size_t kMinHeader = 20;
  static constexpr uint16_t kFlagDontFragment = 0x4000;
  static constexpr uint16_t kFlagMoreFragments = 0x2000;

  static std::optional<Ipv4View> parse(std::span<const uint8_t> bytes, ParseError* why = nullptr) noexcept {
    return parse_impl(bytes, /*quoted=*/false, why);
  }
  static std::optional<Ipv4View> parse_quoted(std::span<const uint8_t> bytes,
                                              ParseError* why = nullptr) noexcept {
    return parse_impl(bytes, /*quoted=*/true, why);
  }

  uint8_t version() const noexcept { return p()[0] >> 4; }
  size_t header_length() const noexcept { return header_len_; }
  uint8_t tos() const noexcept { return p()[1]; }
  uint8_t dscp() const noexcept { return p()[1] >> 2; }
  uint16_t total_length() const noexcept { return load_be16(p() + 2); }
  uint16_t id() const noexcept { return load_be16(p() + 4); }
  bool dont_fragment() const noexcept { return (load_be16(p() + 6) & kFlagDontFragment) != 0; }
  bool more_fragments() const noexcept { return (load_be16(p() + 6) & kFlagMoreFragments) != 0; }
  uint16_t fragment_offset() const noexcept { return load_be16(p() + 6) & 0x1fff; }  // in 8-byte units
  uint8_t ttl() const noexcept { return p()[8]; }
  uint8_t protocol() const noexcept { return p()[9]; }
  uint16_t checksum() const noexcept { return load_be16(p() + 10); }
  const uint8_t* src_bytes() const noexcept { return p() + 12; }
  const uint8_t* dst_bytes() const noexcept { return p() + 16; }
  IpAddress src() const noexcept { return IpAddress::from_bytes(AddressFamily::kV4, src_bytes()); }
  IpAddress dst() const noexcept { return IpAddress::from_bytes(AddressFamily::kV4, dst_bytes()); }

  // The packet up to its total length (parse) or up to the end of the quote (parse_quoted).
  std::span<const uint8_t> bytes() const noexcept { return bytes_; }
  std::span<const uint8_t> header() const noexcept { return bytes_.first(header_len_); }
  std::span<const uint8_t> payload() const noexcept { return bytes_.subspan(header_len_); }

 private:
  Ipv4View(std::span<const uint8_t> b, size_t hl) noexcept : bytes_(b), header_len_(hl) {}
  const uint8_t* p() const noexcept { return bytes_.data(); }

  static std::optional<Ipv4View> parse_impl(std::span<const uint8_t> b, bool quoted,
                                            ParseError* why) noexcept {
    auto fail = [why](ParseError e) -> std::optional<Ipv4View> {
      if (why) *why = e;
      return std::nullopt;
    };
    if (b.empty()) return fail(ParseError::kTruncated);
    if ((b[0] >> 4) != 4) return fail(ParseError::kMalformed);
    const size_t hl = size_t(b[0] & 0x0f) * 4;
    if (hl < kMinHeader) return fail(ParseError::kMalformed);
    if (b.size() < hl) return fail(ParseError::kTruncated);
    const size_t total = load_be16(b.data() + 2);
    if (total < hl) return fail(ParseError::kMalformed);
    if (b.size() < total) {
      if (!quoted) return fail(ParseError::kTruncated);
    } else {
      b = b.first(total);
    }
    if (why) *why = ParseError::kNone;
    return Ipv4View(b, hl);
  }

  std::span<const uint8_t> bytes_;
  size_t header_len_;
};

class Ipv6View {
 public:
  static constexpr size_t kHeader = 40;

  static std::optional<Ipv6View> parse(std::span<const uint8_t> bytes, ParseError* why = nullptr) noexcept {
    return parse_impl(bytes, /*quoted=*/false, why);
  }
  static std::optional<Ipv6View> parse_quoted(std::span<const uint8_t> bytes,
                                              ParseError* why = nullptr) noexcept {
    return parse_impl(bytes, /*quoted=*/true, why);
  }

  // Extension headers are not walked: netprobe never sends them, so a packet (or quote) carrying one is
  // not a probe or an answer of ours. This says whether `next_header()` is one.
  static constexpr bool is_extension_header(uint8_t nh) noexcept {
    switch (nh) {
      case 0:
      case 43:
      case 44:
      case 50:
      case 51:
      case 60:
      case 135:
      case 139:
      case 140:
      case 253:
      case 254:
        return true;
      default:
        return false;
    }
  }

  uint8_t version() const noexcept { return p()[0] >> 4; }
  uint8_t traffic_class() const noexcept { return uint8_t((load_be16(p()) >> 4) & 0xff); }
  uint32_t flow_label() const noexcept { return load_be32(p()) & 0xfffff; }
  uint16_t payload_length() const noexcept { return load_be16(p() + 4); }
  uint8_t next_header() const noexcept { return p()[6]; }
  uint8_t hop_limit() const noexcept { return p()[7]; }
  const uint8_t* src_bytes() const noexcept { return p() + 8; }
  const uint8_t* dst_bytes() const noexcept { return p() + 24; }
  IpAddress src() const noexcept { return IpAddress::from_bytes(AddressFamily::kV6, src_bytes()); }
  IpAddress dst() const noexcept { return IpAddress::from_bytes(AddressFamily::kV6, dst_bytes()); }

  std::span<const uint8_t> bytes() const noexcept { return bytes_; }
  std::span<const uint8_t> header() const noexcept { return bytes_.first(kHeader); }
  std::span<const uint8_t> payload() const noexcept { return bytes_.subspan(kHeader); }

 private:
  explicit Ipv6View(std::span<const uint8_t> b) noexcept : bytes_(b) {}
  const uint8_t* p() const noexcept { return bytes_.data(); }

  static std::optional<Ipv6View> parse_impl(std::span<const uint8_t> b, bool quoted,
                                            ParseError* why) noexcept {
    auto fail = [why](ParseError e) -> std::optional<Ipv6View> {
      if (why) *why = e;
      return std::nullopt;
    };
    if (b.empty()) return fail(ParseError::kTruncated);
    if ((b[0] >> 4) != 6) return fail(ParseError::kMalformed);
    if (b.size() < kHeader) return fail(ParseError::kTruncated);
    // A payload length of 0 with a jumbo option is not supported: the payload is then simply empty.
    const size_t total = kHeader + load_be16(b.data() + 4);
    if (b.size() < total) {
      if (!quoted) return fail(ParseError::kTruncated);
    } else {
      b = b.first(total);
    }
    if (why) *why = ParseError::kNone;
    return Ipv6View(b);
  }

  std::span<const uint8_t> bytes_;
};

}  // namespace netprobe::wire
