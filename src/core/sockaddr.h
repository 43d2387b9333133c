#pragma once
// IpAddress <-> the socket API's sockaddr: the casts in one place.
#include <sys/socket.h>

#include <cstdint>
#include <optional>

#include "core/net.h"

namespace netprobe {

// Fills `out` with `address` and `port` (host order); returns the length to pass to connect(), bind() and
// friends.
socklen_t to_sockaddr(const IpAddress& address, uint16_t port, sockaddr_storage& out) noexcept;
// The address of an AF_INET or AF_INET6 sockaddr; nullopt for null or any other family.
std::optional<IpAddress> from_sockaddr(const sockaddr* sa) noexcept;

}  // namespace netprobe
