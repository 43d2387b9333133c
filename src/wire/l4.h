#pragma once
// Bounds-checked, non-owning views over TCP, UDP and ICMP/ICMPv6 headers in untrusted bytes (the span
// given is the IP payload). Never throw, never allocate; accessors return host-order values.
#include <cstdint>
#include <optional>
#include <span>

#include "wire/bytes.h"

namespace netprobe::wire {

class TcpView {
 public:
  static constexpr size_t kMinHeader = 20;
  static constexpr uint8_t kFin = 0x01, kSyn = 0x02, kRst = 0x04, kPsh = 0x08, kAck = 0x10, kUrg = 0x20,
                           kEce = 0x40, kCwr = 0x80;

  // Needs the whole header, options included (data offset >= 5 and within the bytes).
  static std::optional<TcpView> parse(std::span<const uint8_t> b, ParseError* why = nullptr) noexcept {
    auto fail = [why](ParseError e) -> std::optional<TcpView> {
      if (why) *why = e;
      return std::nullopt;
    };
    if (b.size() < kMinHeader) return fail(ParseError::kTruncated);
    const size_t hl = size_t(b[12] >> 4) * 4;
    if (hl < kMinHeader) return fail(ParseError::kMalformed);
    if (b.size() < hl) return fail(ParseError::kTruncated);
    if (why) *why = ParseError::kNone;
    return TcpView(b, hl);
  }

  uint16_t src_port() const noexcept { return load_be16(p()); }
  uint16_t dst_port() const noexcept { return load_be16(p() + 2); }
  uint32_t seq() const noexcept { return load_be32(p() + 4); }
  uint32_t ack() const noexcept { return load_be32(p() + 8); }
  size_t header_length() const noexcept { return header_len_; }
  uint8_t flags() const noexcept { return p()[13]; }
  uint16_t window() const noexcept { return load_be16(p() + 14); }
  uint16_t checksum() const noexcept { return load_be16(p() + 16); }
  uint16_t urgent_pointer() const noexcept { return load_be16(p() + 18); }
  std::span<const uint8_t> bytes() const noexcept { return bytes_; }
  std::span<const uint8_t> options() const noexcept {
    return bytes_.subspan(kMinHeader, header_len_ - kMinHeader);
  }
  std::span<const uint8_t> payload() const noexcept { return bytes_.subspan(header_len_); }

 private:
  TcpView(std::span<const uint8_t> b, size_t hl) noexcept : bytes_(b), header_len_(hl) {}
  const uint8_t* p() const noexcept { return bytes_.data(); }
  std::span<const uint8_t> bytes_;
  size_t header_len_;
};

class UdpView {
 public:
  static constexpr size_t kHeader = 8;

  // The length field is reported but not enforced: inside an ICMP quote it describes the original datagram.
  static std::optional<UdpView> parse(std::span<const uint8_t> b, ParseError* why = nullptr) noexcept {
    if (b.size() < kHeader) {
      if (why) *why = ParseError::kTruncated;
      return std::nullopt;
    }
    if (why) *why = ParseError::kNone;
    return UdpView(b);
  }

  uint16_t src_port() const noexcept { return load_be16(p()); }
  uint16_t dst_port() const noexcept { return load_be16(p() + 2); }
  uint16_t length() const noexcept { return load_be16(p() + 4); }
  uint16_t checksum() const noexcept { return load_be16(p() + 6); }
  std::span<const uint8_t> bytes() const noexcept { return bytes_; }
  std::span<const uint8_t> payload() const noexcept { return bytes_.subspan(kHeader); }

 private:
  explicit UdpView(std::span<const uint8_t> b) noexcept : bytes_(b) {}
  const uint8_t* p() const noexcept { return bytes_.data(); }
  std::span<const uint8_t> bytes_;
};

// ICMP and ICMPv6 share the first 8 bytes: type, code, checksum, then 4 bytes that are id/seq for echo
// messages and unused/MTU/pointer for errors. Errors quote the offending packet right after those 8 bytes
// (libtins 4.0 skips only 4 of them in IP::matches_response: never rely on it).
class IcmpView {
 public:
  static constexpr size_t kHeader = 8;

  // ICMPv4 types
  static constexpr uint8_t kV4EchoReply = 0, kV4DestUnreachable = 3, kV4EchoRequest = 8, kV4TimeExceeded = 11,
                           kV4ParameterProblem = 12;
  static constexpr uint8_t kV4CodePortUnreachable = 3;
  // ICMPv6 types
  static constexpr uint8_t kV6DestUnreachable = 1, kV6PacketTooBig = 2, kV6TimeExceeded = 3,
                           kV6ParameterProblem = 4, kV6EchoRequest = 128, kV6EchoReply = 129;
  static constexpr uint8_t kV6CodePortUnreachable = 4;

  static constexpr bool is_v4_error(uint8_t type) noexcept {
    return type == kV4DestUnreachable || type == kV4TimeExceeded || type == kV4ParameterProblem;
  }
  static constexpr bool is_v6_error(uint8_t type) noexcept {
    return type >= kV6DestUnreachable && type <= kV6ParameterProblem;
  }

  static std::optional<IcmpView> parse(std::span<const uint8_t> b, ParseError* why = nullptr) noexcept {
    if (b.size() < kHeader) {
      if (why) *why = ParseError::kTruncated;
      return std::nullopt;
    }
    if (why) *why = ParseError::kNone;
    return IcmpView(b);
  }

  uint8_t type() const noexcept { return p()[0]; }
  uint8_t code() const noexcept { return p()[1]; }
  uint16_t checksum() const noexcept { return load_be16(p() + 2); }
  uint16_t echo_id() const noexcept { return load_be16(p() + 4); }
  uint16_t echo_seq() const noexcept { return load_be16(p() + 6); }
  uint32_t rest_of_header() const noexcept { return load_be32(p() + 4); }
  std::span<const uint8_t> bytes() const noexcept { return bytes_; }
  // Echo data, or the quoted packet of an error.
  std::span<const uint8_t> body() const noexcept { return bytes_.subspan(kHeader); }

 private:
  explicit IcmpView(std::span<const uint8_t> b) noexcept : bytes_(b) {}
  const uint8_t* p() const noexcept { return bytes_.data(); }
  std::span<const uint8_t> bytes_;
};

}  // namespace netprobe::wire
