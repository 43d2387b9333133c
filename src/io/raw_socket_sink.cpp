#include "io/raw_socket_sink.h"

#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#ifndef IPV6_HDRINCL
#define IPV6_HDRINCL 36  // linux/in6.h, Linux >= 4.5; older kernels imply it for IPPROTO_RAW
#endif

namespace netprobe {
namespace {

int64_t monotonic_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

SendError classify_errno(int err) {
  switch (err) {
    case EAGAIN:
    case ENOBUFS:
      return SendError::kNoBuffer;
    case ENETUNREACH:
    case EHOSTUNREACH:
    case EADDRNOTAVAIL:
    case ENETDOWN:
      return SendError::kUnreachable;
    case EPERM:
    case EACCES:
      return SendError::kPermission;
    case EMSGSIZE:
      return SendError::kTooBig;
    case EINVAL:
    case EFAULT:
    case EAFNOSUPPORT:
      return SendError::kInvalid;
    default:
      return SendError::kOther;
  }
}

Result<int> open_raw(int family, const RawSocketSink::Options& options, std::vector<std::string>* warnings) {
  const char* name = family == AF_INET ? "IPv4" : "IPv6";
  const int fd = ::socket(family, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_RAW);
  if (fd < 0) {
    const int err = errno;
    // How to grant CAP_NET_RAW is said once, by `netprobe run` before anything opens (sandbox/privileges.h).
    const char* hint = err == EPERM || err == EACCES ? " (raw sockets need CAP_NET_RAW)" : "";
    return Error::system(err, fmt::format("cannot open raw {} socket: {}{}", name, std::strerror(err), hint));
  }
  if (family == AF_INET6) {
    const int one = 1;
    ::setsockopt(fd, IPPROTO_IPV6, IPV6_HDRINCL, &one, sizeof one);  // implied by IPPROTO_RAW on old kernels
  }
  if (!options.bind_device.empty() &&
      ::setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, options.bind_device.data(),
                   socklen_t(options.bind_device.size())) != 0) {
    const int err = errno;
    ::close(fd);
    return Error::system(err, fmt::format("cannot bind the raw {} socket to interface {}: {}", name,
                                          options.bind_device, std::strerror(err)));
  }
  // SO_SNDBUFFORCE ignores net.core.wmem_max but needs CAP_NET_ADMIN; fall back to the capped one.
  const int want = options.sndbuf_bytes;
  if (::setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &want, sizeof want) != 0) {
    ::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &want, sizeof want);
  }
  int got = 0;
  socklen_t len = sizeof got;
  if (::getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &got, &len) == 0 && got < want) {  // the kernel reports 2x
    warnings->push_back(fmt::format(
        "raw {} socket send buffer is {} bytes (asked {}): raise net.core.wmem_max", name, got / 2, want));
  }
  return fd;
}

}  // namespace

std::string_view to_string(SendError e) {
  switch (e) {
    case SendError::kNoBuffer:
      return "no_buffer";
    case SendError::kUnreachable:
      return "unreachable";
    case SendError::kPermission:
      return "permission";
    case SendError::kTooBig:
      return "too_big";
    case SendError::kInvalid:
      return "invalid";
    case SendError::kNoSocket:
      return "no_socket";
    case SendError::kOther:
      return "other";
    case SendError::kCount:
      break;
  }
  return "unknown";
}

RawSocketSink::RawSocketSink(const Options& options) : options_(options) {
  // sendmmsg accepts at most UIO_MAXIOV (1024) messages per call.
  options_.max_batch = std::clamp<size_t>(options_.max_batch, 1, 1024);
  msgs_.resize(options_.max_batch);
  iovs_.resize(options_.max_batch);
  addrs_.resize(options_.max_batch);
}

Result<std::unique_ptr<RawSocketSink>> RawSocketSink::open(const Options& options) {
  std::unique_ptr<RawSocketSink> sink(new RawSocketSink(options));
  auto fd4 = open_raw(AF_INET, sink->options_, &sink->warnings_);
  if (!fd4) return fd4.error();
  sink->fd4_ = *fd4;
  if (options.ipv6) {
    auto fd6 = open_raw(AF_INET6, sink->options_, &sink->warnings_);
    if (fd6) {
      sink->fd6_ = *fd6;
    } else if (fd6.error().sys_errno == EPERM || fd6.error().sys_errno == EACCES) {
      return fd6.error();
    } else {
      // IPv6 disabled on this host: IPv4 probing still works; IPv6 packets count as kNoSocket.
      sink->warnings_.push_back(fd6.error().message);
    }
  }
  return sink;
}

RawSocketSink::~RawSocketSink() {
  if (fd4_ >= 0) ::close(fd4_);
  if (fd6_ >= 0) ::close(fd6_);
}

size_t RawSocketSink::send(std::span<const OutPacket> batch, std::span<uint8_t> failed) noexcept {
  if (failed.size() < batch.size()) {
    failed = {};
  } else {
    failed = failed.first(batch.size());
    std::fill(failed.begin(), failed.end(), uint8_t(0));
  }
  int64_t wait_budget = options_.blocked_wait.count();
  size_t accepted = 0;
  size_t i = 0;
  while (i < batch.size()) {
    const AddressFamily af = batch[i].dst.af;
    size_t j = i + 1;
    while (j < batch.size() && batch[j].dst.af == af) ++j;
    accepted +=
        send_run(batch.subspan(i, j - i), failed.empty() ? failed : failed.subspan(i, j - i), &wait_budget);
    i = j;
  }
  sent_.fetch_add(accepted, std::memory_order_relaxed);
  return accepted;
}

size_t RawSocketSink::send_run(std::span<const OutPacket> run, std::span<uint8_t> failed,
                               int64_t* wait_budget_ns) noexcept {
  const auto fail = [&](size_t from, size_t to, SendError e) {
    count_error(e, to - from);
    if (!failed.empty())
      std::fill(failed.begin() + std::ptrdiff_t(from), failed.begin() + std::ptrdiff_t(to),
                uint8_t(1 + uint8_t(e)));
  };
  const AddressFamily af = run[0].dst.af;
  const int fd = fd_for(af);
  if (fd < 0) {
    fail(0, run.size(), SendError::kNoSocket);
    return 0;
  }
  const bool v4 = af == AddressFamily::kV4;
  const size_t min_len = v4 ? 20 : 40;
  const int version = v4 ? 4 : 6;

  size_t done = 0;
  size_t accepted = 0;
  while (done < run.size()) {
    size_t n = 0;
    while (n < options_.max_batch && done + n < run.size()) {
      const OutPacket& p = run[done + n];
      if (p.bytes.size() < min_len || (p.bytes[0] >> 4) != version) break;
      sockaddr_in6& storage = addrs_[n];
      std::memset(&storage, 0, sizeof storage);
      socklen_t alen;
      if (v4) {
        auto* sin = reinterpret_cast<sockaddr_in*>(&storage);
        sin->sin_family = AF_INET;
        std::memcpy(&sin->sin_addr, p.dst.bytes.data(), 4);
        alen = sizeof(sockaddr_in);
      } else {
        storage.sin6_family = AF_INET6;
        std::memcpy(&storage.sin6_addr, p.dst.bytes.data(), 16);
        alen = sizeof(sockaddr_in6);
      }
      iovs_[n].iov_base = const_cast<uint8_t*>(p.bytes.data());
      iovs_[n].iov_len = p.bytes.size();
      msghdr& h = msgs_[n].msg_hdr;
      h = msghdr{};
      h.msg_name = &storage;
      h.msg_namelen = alen;
      h.msg_iov = &iovs_[n];
      h.msg_iovlen = 1;
      msgs_[n].msg_len = 0;
      ++n;
    }
    if (n == 0) {  // run[done] is malformed: fail it alone
      fail(done, done + 1, SendError::kInvalid);
      ++done;
      continue;
    }
    const int r = ::sendmmsg(fd, msgs_.data(), static_cast<unsigned>(n), MSG_DONTWAIT);
    syscalls_.fetch_add(1, std::memory_order_relaxed);
    if (r > 0) {
      // A partial count means message r failed; the retry starting there reports its errno.
      accepted += size_t(r);
      done += size_t(r);
      continue;
    }
    const int err = r < 0 ? errno : EAGAIN;
    if (err == EINTR) continue;
    if (err == EAGAIN || err == EWOULDBLOCK || err == ENOBUFS) {
      if (*wait_budget_ns <= 0) {
        fail(done, run.size(), SendError::kNoBuffer);
        return accepted;
      }
      // EAGAIN: the socket buffer is full and POLLOUT says when it drains. ENOBUFS: a device queue is
      // full while the socket buffer may look writable, so poll() would return at once: sleep 1 ms.
      const int64_t t0 = monotonic_ns();
      const int ms = int(std::clamp<int64_t>(*wait_budget_ns / 1'000'000, 1, 1000));
      pollfd pfd{fd, POLLOUT, 0};
      if (err == ENOBUFS) {
        ::poll(nullptr, 0, 1);
      } else {
        ::poll(&pfd, 1, ms);
      }
      waits_.fetch_add(1, std::memory_order_relaxed);
      *wait_budget_ns -= std::max<int64_t>(monotonic_ns() - t0, 100'000);  // always progress toward 0
      continue;
    }
    fail(done, done + 1, classify_errno(err));
    ++done;  // this packet failed; the others may well go
  }
  return accepted;
}

SinkStats RawSocketSink::stats() const noexcept {
  SinkStats s;
  s.sent = sent_.load(std::memory_order_relaxed);
  s.syscalls = syscalls_.load(std::memory_order_relaxed);
  s.waits = waits_.load(std::memory_order_relaxed);
  for (size_t i = 0; i < s.errors.size(); ++i) s.errors[i] = errors_[i].load(std::memory_order_relaxed);
  return s;
}

}  // namespace netprobe
