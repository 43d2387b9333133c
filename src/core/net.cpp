#include "core/net.h"

#include <arpa/inet.h>

#include <charconv>

namespace netprobe {

std::string_view to_string(ProbeType t) {
  switch (t) {
    case ProbeType::kTcpSyn:
      return "TCPsyn";
    case ProbeType::kIcmpPing:
      return "ICMPping";
    case ProbeType::kUdpUnreachable:
      return "UDPunreachable";
    case ProbeType::kUdpQuery:
      return "UDPquery";
  }
  return "?";
}

std::optional<ProbeType> probe_type_from_string(std::string_view s) {
  if (s == "TCPsyn") return ProbeType::kTcpSyn;
  if (s == "ICMPping") return ProbeType::kIcmpPing;
  if (s == "UDPunreachable") return ProbeType::kUdpUnreachable;
  if (s == "UDPquery") return ProbeType::kUdpQuery;
  return std::nullopt;
}

std::string_view to_string(AddressFamily af) { return af == AddressFamily::kV4 ? "ipv4" : "ipv6"; }

std::optional<IpAddress> IpAddress::parse(std::string_view text) {
  std::string s(text);
  IpAddress a;
  if (inet_pton(AF_INET, s.c_str(), a.bytes.data()) == 1) {
    a.af = AddressFamily::kV4;
    return a;
  }
  if (inet_pton(AF_INET6, s.c_str(), a.bytes.data()) == 1) {
    a.af = AddressFamily::kV6;
    return a;
  }
  return std::nullopt;
}

IpAddress IpAddress::v4(uint32_t host_order) {
  IpAddress a;
  a.af = AddressFamily::kV4;
  const uint32_t n = htonl(host_order);
  std::memcpy(a.bytes.data(), &n, 4);
  return a;
}

IpAddress IpAddress::from_bytes(AddressFamily af, const uint8_t* p) {
  IpAddress a;
  a.af = af;
  std::memcpy(a.bytes.data(), p, af == AddressFamily::kV4 ? 4 : 16);
  return a;
}

uint32_t IpAddress::v4_host_order() const {
  uint32_t n;
  std::memcpy(&n, bytes.data(), 4);
  return ntohl(n);
}

std::string IpAddress::to_string() const {
  char buf[INET6_ADDRSTRLEN] = {};
  inet_ntop(af == AddressFamily::kV4 ? AF_INET : AF_INET6, bytes.data(), buf, sizeof buf);
  return buf;
}

bool IpAddress::is_unspecified() const {
  for (size_t i = 0; i < size(); ++i)
    if (bytes[i] != 0) return false;
  return true;
}

std::optional<IpNetwork> IpNetwork::parse(std::string_view text) {
  const auto slash = text.find('/');
  auto addr = IpAddress::parse(text.substr(0, slash));
  if (!addr) return std::nullopt;
  const int max = addr->af == AddressFamily::kV4 ? 32 : 128;
  int prefix = max;
  if (slash != std::string_view::npos) {
    const auto p = text.substr(slash + 1);
    auto [ptr, ec] = std::from_chars(p.data(), p.data() + p.size(), prefix);
    if (ec != std::errc() || ptr != p.data() + p.size() || prefix < 0 || prefix > max) return std::nullopt;
  }
  IpNetwork n;
  n.prefix = prefix;
  n.base = *addr;
  for (int bit = prefix; bit < max; ++bit) n.base.bytes[bit / 8] &= uint8_t(~(0x80u >> (bit % 8)));
  return n;
}

uint64_t IpNetwork::size() const {
  const int host_bits = (base.af == AddressFamily::kV4 ? 32 : 128) - prefix;
  return host_bits >= 32 ? (uint64_t(1) << 32) : (uint64_t(1) << host_bits);
}

IpAddress IpNetwork::at(uint64_t i) const {
  IpAddress a = base;
  // Add i to the address as a big-endian integer.
  uint64_t carry = i;
  for (int k = int(a.size()) - 1; k >= 0 && carry; --k) {
    const uint64_t sum = a.bytes[k] + (carry & 0xff);
    a.bytes[k] = uint8_t(sum);
    carry = (carry >> 8) + (sum >> 8);
  }
  return a;
}

namespace {
// [first, last] of the usable addresses, as offsets into the network.
std::pair<uint64_t, uint64_t> usable_range(const IpNetwork& net) {
  const uint64_t n = net.size();
  uint64_t first = 0, last = n - 1;
  const int max_prefix = net.base.af == AddressFamily::kV4 ? 32 : 128;
  if (net.prefix < max_prefix - 1) {
    first = 1;                                            // network (IPv6: subnet-router anycast) address
    if (net.base.af == AddressFamily::kV4) last = n - 2;  // IPv4 broadcast
  }
  return {first, last};
}
}  // namespace

uint64_t IpNetwork::usable_count() const {
  const auto [first, last] = usable_range(*this);
  return last - first + 1;
}

std::vector<IpAddress> IpNetwork::usable_hosts(size_t limit) const {
  std::vector<IpAddress> out;
  const auto [first, last] = usable_range(*this);
  for (uint64_t i = first; i <= last && out.size() < limit; ++i) out.push_back(at(i));
  return out;
}

std::string IpNetwork::to_string() const { return base.to_string() + "/" + std::to_string(prefix); }

}  // namespace netprobe
