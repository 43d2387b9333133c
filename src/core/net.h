#pragma once
// Plain value types shared by every part: address family, IP address, probe type.
#include <array>
#include <cstdint>
#include <cstring>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace netprobe {

enum class AddressFamily : uint8_t { kV4 = 4, kV6 = 6 };

// The probe types, spelled as netprobify's `type:` values (UDPquery is a netprobe extension, issue 18).
enum class ProbeType : uint8_t { kTcpSyn = 0, kIcmpPing = 1, kUdpUnreachable = 2, kUdpQuery = 3 };
inline constexpr int kProbeTypeCount = 4;

std::string_view to_string(ProbeType t);  // "TCPsyn", "ICMPping", "UDPunreachable", "UDPquery"
std::optional<ProbeType> probe_type_from_string(std::string_view s);
std::string_view to_string(AddressFamily af);  // "ipv4", "ipv6" (the metric label values)

// Which way a captured packet went through the interface: set by the capture from the link header.
enum class Direction : uint8_t { kIncoming, kOutgoing };

// An IPv4 or IPv6 address in network byte order. IPv4 uses the first 4 bytes; the rest are zero,
// so that equality and hashing can look at all 16 bytes.
struct IpAddress {
  AddressFamily af = AddressFamily::kV4;
  std::array<uint8_t, 16> bytes{};

  static std::optional<IpAddress> parse(std::string_view text);  // literal only, no DNS
  static IpAddress v4(uint32_t host_order);
  static IpAddress from_bytes(AddressFamily af, const uint8_t* p);  // 4 or 16 bytes
  size_t size() const { return af == AddressFamily::kV4 ? 4 : 16; }
  uint32_t v4_host_order() const;
  std::string to_string() const;
  bool is_unspecified() const;
  friend bool operator==(const IpAddress&, const IpAddress&) = default;
};

inline constexpr size_t kMaxSubnetHosts = size_t(1) << 24;

// A network in CIDR form (also accepts a plain address as a /32 or /128).
struct IpNetwork {
  IpAddress base;  // masked
  int prefix = 0;
  friend bool operator==(const IpNetwork&, const IpNetwork&) = default;

  static std::optional<IpNetwork> parse(std::string_view text);
  // Number of addresses in the network, saturated at 2^32.
  uint64_t size() const;
  // The i-th address of the network (0 = network address).
  IpAddress at(uint64_t i) const;
  // The addresses netprobe probes in it (or sends from): the network address is skipped (for IPv6 the
  // subnet-router anycast address) and the IPv4 broadcast, except in /31, /32, /127 and /128 networks.
  // usable_count() counts them (saturated like size()); usable_hosts() lists at most `limit` of them.
  uint64_t usable_count() const;
  // kMaxSubnetHosts bounds what a subnet target expands to (a /8 is 16M hosts).
  std::vector<IpAddress> usable_hosts(size_t limit) const;
  std::string to_string() const;
};

}  // namespace netprobe

template <>
struct std::hash<netprobe::IpAddress> {
  size_t operator()(const netprobe::IpAddress& a) const noexcept {
    uint64_t x, y;
    std::memcpy(&x, a.bytes.data(), 8);
    std::memcpy(&y, a.bytes.data() + 8, 8);
    return std::hash<uint64_t>()(x * 0x9E3779B97F4A7C15ULL ^ y ^ uint64_t(a.af));
  }
};
