#pragma once
// A raw HTTP exchange with a server on 127.0.0.1, for tests and benchmarks of the /metrics endpoint: the
// request goes out exactly as given (malformed ones included), and the response is read until the server
// closes the connection. Bounded by socket timeouts in both directions.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <functional>
#include <string>
#include <string_view>

namespace netprobe::testing {

// Hands every received piece to `sink`; false if the connection could not be made.
inline bool loopback_http(int port, std::string_view request, int timeout_s,
                          const std::function<void(std::string_view)>& sink) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  timeval tv{timeout_s, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return false;
  }
  size_t sent = 0;
  while (sent < request.size()) {
    const ssize_t n = ::send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) break;
    sent += static_cast<size_t>(n);
  }
  char buf[65536];
  for (;;) {
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    sink(std::string_view(buf, static_cast<size_t>(n)));
  }
  ::close(fd);
  return true;
}

// The whole response; "" if the connection could not be made.
inline std::string loopback_http(int port, std::string_view request, int timeout_s = 5) {
  std::string raw;
  loopback_http(port, request, timeout_s, [&](std::string_view piece) { raw.append(piece); });
  return raw;
}

}  // namespace netprobe::testing
