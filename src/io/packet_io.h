#pragma once
// The two sides of the wire as interfaces, so that everything above them runs over an in-memory fake link
// in tests and over raw sockets + libpcap in production.
#include <cstdint>
#include <functional>
#include <span>
#include <string_view>

#include "core/clock.h"
#include "core/net.h"

namespace netprobe {

// One outgoing packet: a complete IP packet (IPv4 or IPv6 header included) and its destination.
struct OutPacket {
  std::span<const uint8_t> bytes;
  IpAddress dst;
};

// Why the kernel refused a packet (PacketSink::send's `failed`, netprobe_send_errors_total's reason).
enum class SendError : uint8_t {
  kNoBuffer,     // EAGAIN/ENOBUFS still after the sink's wait budget
  kUnreachable,  // ENETUNREACH, EHOSTUNREACH, EADDRNOTAVAIL, ENETDOWN
  kPermission,   // EPERM, EACCES: usually a firewall rule (or a broadcast destination)
  kTooBig,       // EMSGSIZE: larger than the path MTU with DF
  kInvalid,      // EINVAL, EFAULT, malformed packet (too short, family mismatch)
  kNoSocket,     // no socket for the destination's family
  kOther,
  kCount
};
std::string_view to_string(SendError e);

class PacketSink {
 public:
  virtual ~PacketSink() = default;
  // Sends the batch in as few syscalls as possible (sendmmsg). Returns how many were handed to the kernel;
  // fewer than batch.size() means some failed (errors are counted by the sink, never thrown). The failed
  // ones are NOT necessarily a suffix: an unreachable destination fails alone and the rest still go.
  // `failed`, when it has at least batch.size() bytes, receives 0 for each packet handed to the kernel and
  // 1 + its SendError for each one that failed: which probes were never sent, and why.
  virtual size_t send(std::span<const OutPacket> batch, std::span<uint8_t> failed) noexcept = 0;
  size_t send(std::span<const OutPacket> batch) noexcept { return send(batch, {}); }
};

// One captured packet: the IP packet (link header already removed), its kernel timestamp on the
// realtime base, and whether it was leaving or arriving.
struct CapturedPacket {
  std::span<const uint8_t> ip;
  Nanos timestamp;
  Direction direction;
};

struct CaptureStats {
  uint64_t received = 0;    // pcap_stats ps_recv
  uint64_t dropped = 0;     // ps_drop: the kernel buffer was full
  uint64_t if_dropped = 0;  // ps_ifdrop
  // Frames the decoder skipped before classification (netprobe_capture_rejected_total reasons).
  uint64_t not_ip = 0;     // not IPv4/IPv6
  uint64_t truncated = 0;  // shorter than their link header
};

class PacketSource {
 public:
  virtual ~PacketSource() = default;
  using Handler = std::function<void(const CapturedPacket&)>;
  // Delivers the packets available now (waiting at most about `max_wait` for the first one) to handler.
  // Returns the number delivered, or -1 when the source failed or is exhausted (a pcap file at its end).
  // The CapturedPacket's bytes are valid only during the handler call.
  virtual int poll(const Handler& handler, Nanos max_wait) = 0;
  // Makes a blocked poll() return early (from another thread).
  virtual void interrupt() = 0;
  virtual CaptureStats stats() const = 0;
};

}  // namespace netprobe
