#include "svc/udp_query.h"

#include <poll.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "core/sockaddr.h"
#include "svc/resolve.h"

namespace netprobe::svc {

UdpQueryResult run_udp_query(const UdpQuerySpec& spec, Resolver* resolver) {
  using Clock = std::chrono::steady_clock;
  UdpQueryResult r;
  const auto deadline = Clock::now() + spec.timeout;
  const HostResolution dst = resolve_host(resolver, spec.host, 0, deadline);
  r.dns_lookup_seconds = dst.seconds;
  if (!dst.address) {
    r.outcome = "resolve";
    r.detail = spec.host + ": " + dst.error;
    return r;
  }
  sockaddr_storage sa{};
  const socklen_t sa_len = to_sockaddr(*dst.address, spec.port, sa);
  const int fd = ::socket(sa.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  const bool connected = fd >= 0 && ::connect(fd, reinterpret_cast<const sockaddr*>(&sa), sa_len) == 0;
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
