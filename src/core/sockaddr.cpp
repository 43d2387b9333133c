#include "core/sockaddr.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstring>

namespace netprobe {

socklen_t to_sockaddr(const IpAddress& address, uint16_t port, sockaddr_storage& out) noexcept {
  std::memset(&out, 0, sizeof out);
  if (address.af == AddressFamily::kV4) {
    auto* sin = reinterpret_cast<sockaddr_in*>(&out);
    sin->sin_family = AF_INET;
    sin->sin_port = htons(port);
    std::memcpy(&sin->sin_addr, address.bytes.data(), 4);
    return sizeof(sockaddr_in);
  }
  auto* sin6 = reinterpret_cast<sockaddr_in6*>(&out);
  sin6->sin6_family = AF_INET6;
  sin6->sin6_port = htons(port);
  std::memcpy(&sin6->sin6_addr, address.bytes.data(), 16);
  return sizeof(sockaddr_in6);
}

std::optional<IpAddress> from_sockaddr(const sockaddr* sa) noexcept {
  if (!sa) return std::nullopt;
  if (sa->sa_family == AF_INET)
    return IpAddress::from_bytes(
        AddressFamily::kV4,
        reinterpret_cast<const uint8_t*>(&reinterpret_cast<const sockaddr_in*>(sa)->sin_addr));
  if (sa->sa_family == AF_INET6)
    return IpAddress::from_bytes(
        AddressFamily::kV6,
        reinterpret_cast<const uint8_t*>(&reinterpret_cast<const sockaddr_in6*>(sa)->sin6_addr));
  return std::nullopt;
}

}  // namespace netprobe
