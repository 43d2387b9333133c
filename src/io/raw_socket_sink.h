#pragma once
// PacketSink over raw IP sockets: we supply the whole IP header (IPv4: IPPROTO_RAW implies IP_HDRINCL;
// IPv6: IPPROTO_RAW sockets take our IPv6 header on Linux, and IPV6_HDRINCL is set where it exists).
//
// Both sockets are opened by open(), while the process is still privileged (capabilities are dropped
// right after start-up). A family whose socket cannot be created (IPv6 disabled in the kernel) is
// reported by has_family() and its packets are counted as kNoSocket errors.
//
// send(): consecutive packets of one family go out in one sendmmsg() of up to max_batch messages, with
// MSG_DONTWAIT. When the kernel pushes back (EAGAIN: socket buffer full; ENOBUFS: qdisc/device queue
// full), it waits for POLLOUT at most `blocked_wait` in total per send() call, then counts the rest as
// kNoBuffer errors: never spins, never blocks the sender for long. Any other error fails only the packet
// it belongs to (sendmmsg reports it on the retry that starts at that packet), which is counted by errno
// class and skipped. The return value is the number accepted by the kernel, not necessarily a prefix;
// the `failed` flags say which ones.
//
// Thread-safety: send() from one thread at a time (scratch buffers are members); stats() from any thread.
#include <array>
#include <atomic>
#include <memory>
#include <vector>

#include <netinet/in.h>
#include <sys/socket.h>

#include "core/result.h"
#include "io/packet_io.h"

namespace netprobe {

struct SinkStats {
  uint64_t sent = 0;
  uint64_t syscalls = 0;  // sendmmsg calls, to see the batching at work
  uint64_t waits = 0;     // times the sink waited for POLLOUT
  std::array<uint64_t, size_t(SendError::kCount)> errors{};
  uint64_t total_errors() const {
    uint64_t n = 0;
    for (uint64_t e : errors) n += e;
    return n;
  }
};

class RawSocketSink final : public PacketSink {
 public:
  struct Options {
    int sndbuf_bytes = 16 << 20;             // SO_SNDBUFFORCE when privileged, else SO_SNDBUF (capped)
    size_t max_batch = 256;                  // messages per sendmmsg
    Nanos blocked_wait = Nanos(20'000'000);  // total POLLOUT wait per send() before giving up
    bool ipv6 = true;                        // also open the IPv6 socket
    // SO_BINDTODEVICE on both sockets (`netprobe ping -I`): packets leave by this interface whatever the
    // routing table says. "" = the route's interface.
    std::string bind_device = {};
  };

  // EPERM/EACCES gives the CAP_NET_RAW hint.
  static Result<std::unique_ptr<RawSocketSink>> open(const Options& options);
  static Result<std::unique_ptr<RawSocketSink>> open() { return open(Options{}); }
  ~RawSocketSink() override;
  RawSocketSink(const RawSocketSink&) = delete;
  RawSocketSink& operator=(const RawSocketSink&) = delete;

  using PacketSink::send;
  size_t send(std::span<const OutPacket> batch, std::span<uint8_t> failed) noexcept override;

  bool has_family(AddressFamily af) const noexcept { return fd_for(af) >= 0; }
  SinkStats stats() const noexcept;
  // Non-fatal remarks from open() (e.g. smaller socket buffer, no IPv6): the caller logs them.
  const std::vector<std::string>& warnings() const noexcept { return warnings_; }

 private:
  explicit RawSocketSink(const Options& options);
  int fd_for(AddressFamily af) const noexcept { return af == AddressFamily::kV4 ? fd4_ : fd6_; }
  // Sends one run of packets of one family; returns how many were accepted. `failed` is empty or as long
  // as the run.
  size_t send_run(std::span<const OutPacket> run, std::span<uint8_t> failed,
                  int64_t* wait_budget_ns) noexcept;
  void count_error(SendError e, uint64_t n = 1) noexcept {
    errors_[size_t(e)].fetch_add(n, std::memory_order_relaxed);
  }

  Options options_;
  int fd4_ = -1;
  int fd6_ = -1;
  std::vector<mmsghdr> msgs_;
  std::vector<iovec> iovs_;
  std::vector<sockaddr_in6> addrs_;  // large enough for both families
  std::vector<std::string> warnings_;
  std::atomic<uint64_t> sent_{0};
  std::atomic<uint64_t> syscalls_{0};
  std::atomic<uint64_t> waits_{0};
  std::array<std::atomic<uint64_t>, size_t(SendError::kCount)> errors_{};
};

}  // namespace netprobe
