#pragma once
// The two sides of the wire as interfaces, so that everything above them runs over an in-memory fake link
// in tests and over raw sockets + libpcap in production.
#include <cstdint>
#include <functional>
#include <span>

#include "core/clock.h"
#include "core/net.h"
#include "probes/probe.h"

namespace netprobe {

// One outgoing packet: a complete IP packet (IPv4 or IPv6 header included) and its destination.
struct OutPacket {
  std::span<const uint8_t> bytes;
  IpAddress dst;
};

class PacketSink {
 public:
  virtual ~PacketSink() = default;
  // Sends the batch in as few syscalls as possible (sendmmsg). Returns how many were handed to the kernel;
  // fewer than batch.size() means the rest failed (errors are counted by the sink, never thrown).
  virtual size_t send(std::span<const OutPacket> batch) noexcept = 0;
};

// One captured packet: the IP packet (link header already removed), its kernel timestamp on the
// realtime base, and whether it was leaving or arriving.
struct CapturedPacket {
  std::span<const uint8_t> ip;
  Nanos timestamp;
  Direction direction;
};

struct CaptureStats {
  uint64_t received = 0;     // pcap_stats ps_recv
  uint64_t dropped = 0;      // ps_drop: the kernel buffer was full
  uint64_t if_dropped = 0;   // ps_ifdrop
};

class PacketSource {
 public:
  virtual ~PacketSource() = default;
  using Handler = std::function<void(const CapturedPacket&)>;
  // Delivers the packets available now (waiting at most about `max_wait` for the first one) to handler.
  // Returns the number delivered, or -1 when the source failed or is exhausted (a pcap file at its end).
  virtual int poll(const Handler& handler, Nanos max_wait) = 0;
  // Makes a blocked poll() return early (from another thread).
  virtual void interrupt() = 0;
  virtual CaptureStats stats() const = 0;
};

}  // namespace netprobe
