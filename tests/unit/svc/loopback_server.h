#pragma once
// What the svc tests' servers share: a socket bound to 127.0.0.1 on a port the kernel chooses, served by
// one thread of the test that the destructor joins. Test code only.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <thread>

namespace netprobe::svc {

// Bounded waits: a peer that never speaks does not hold the test.
inline void set_receive_timeout(int fd) {
  timeval tv{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
}

class LoopbackServer {
 public:
  uint16_t port() const { return port_; }

 protected:
  // `type`: SOCK_STREAM or SOCK_DGRAM. The derived server starts thread_.
  explicit LoopbackServer(int type) {
    fd_ = ::socket(AF_INET, type | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    socklen_t len = sizeof a;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
  }
  ~LoopbackServer() {
    if (thread_.joinable()) thread_.join();
    ::close(fd_);
  }
  LoopbackServer(const LoopbackServer&) = delete;
  LoopbackServer& operator=(const LoopbackServer&) = delete;

  int fd_ = -1;
  uint16_t port_ = 0;
  std::thread thread_;
};

}  // namespace netprobe::svc
