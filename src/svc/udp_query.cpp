#include "svc/udp_query.h"

#include <netdb.h>
#include <poll.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace netprobe::svc {

UdpQueryResult run_udp_query(const UdpQuerySpec& spec) {
  using Clock = std::chrono::steady_clock;
  UdpQueryResult r;
  addrinfo hints{};
  hints.ai_socktype = SOCK_DGRAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* res = nullptr;
  const std::string port = std::to_string(spec.port);
  if (::getaddrinfo(spec.host.c_str(), port.c_str(), &hints, &res) != 0 || !res) {
    r.outcome = "error";
    r.detail = "cannot resolve " + spec.host;
    return r;
  }
  const int fd = ::socket(res->ai_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  const bool connected = fd >= 0 && ::connect(fd, res->ai_addr, res->ai_addrlen) == 0;
  ::freeaddrinfo(res);
  if (!connected) {
    r.outcome = "error";
    r.detail = std::strerror(errno);
    if (fd >= 0) ::close(fd);
    return r;
  }
  uint32_t wire = 0;
  while (wire == 0)
    if (::getrandom(&wire, sizeof wire, 0) != sizeof wire)
      wire = uint32_t(Clock::now().time_since_epoch().count());
  std::vector<uint8_t> payload = spec.payload;
  if (spec.token) write_token(payload, *spec.token, wire);
  const auto start = Clock::now();
  const auto deadline = start + spec.timeout;
  if (::send(fd, payload.data(), payload.size(), 0) != ssize_t(payload.size())) {
    r.outcome = errno == ECONNREFUSED ? "closed" : "error";
    r.detail = std::strerror(errno);
    ::close(fd);
    return r;
  }
  std::vector<uint8_t> buf(kMaxJudgedAnswerBytes);
  r.outcome = "timeout";
  for (int datagrams = 0; datagrams < 1000; ++datagrams) {  // bounded: a flood cannot hold the query
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) break;
    pollfd p{fd, POLLIN, 0};
    const int pr = ::poll(&p, 1, int(left));
    if (pr < 0 && errno == EINTR) continue;
    if (pr <= 0) break;
    const ssize_t n = ::recv(fd, buf.data(), buf.size(), 0);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      r.outcome = errno == ECONNREFUSED ? "closed" : "error";
      r.detail = std::strerror(errno);
      break;
    }
    const Outcome o = judge({buf.data(), size_t(n)}, spec.token ? &*spec.token : nullptr, wire, spec.expect);
    if (o == Outcome::kNotOurs) {
      ++r.not_ours;
      continue;
    }
    r.rtt_seconds = std::chrono::duration<double>(Clock::now() - start).count();
    r.outcome = std::string(to_string(o));
    break;
  }
  ::close(fd);
  return r;
}

}  // namespace netprobe::svc
