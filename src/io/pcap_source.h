#pragma once
// PacketSource over libpcap: a live capture (PcapSource) and a pcap file replay (PcapFileSource, tests).
//
// Live capture settings follow the measurements in docs/architecture.md#capture-settings: the default
// TPACKET_V3 ring with a large buffer and a short buffer timeout, NOT immediate mode (it falls back to
// TPACKET_V2, drops and caps the rate). The handle is non-blocking; poll() waits with poll(2) on pcap's
// selectable fd and an eventfd, so a blocked poll() returns when a ring block is retired (within the
// buffer timeout of the first packet), on interrupt(), or after max_wait.
//
// Direction:
//   - Linux cooked headers ("any", the default device) carry the packet type: PACKET_OUTGOING is ours.
//   - Loopback: libpcap keeps only one (incoming) copy of every loopback packet, and this host both sent
//     and received it, so it is delivered twice, first as kOutgoing then as kIncoming, same timestamp.
//     classify() rejects the copy whose direction does not fit (counted as not-a-reply/not-a-probe).
//   - Ethernet devices: outgoing when the source MAC is the device's own; raw IP links (tun) and files:
//     outgoing when the IP source is in Options::local_addresses; otherwise incoming.
//
// Thread-safety: poll() and stats() from one thread (the capture thread); interrupt() from any thread.
// Open while privileged: the handle keeps working after capabilities are dropped.
#include <memory>
#include <string>
#include <vector>

#include "core/result.h"
#include "io/packet_io.h"

struct pcap;

namespace netprobe {

// Per-source decode counters (the capture thread's view; read them from that thread).
struct DecodeCounters {
  uint64_t frames = 0;     // handed to us by libpcap (after the BPF filter)
  uint64_t delivered = 0;  // CapturedPackets given to the handler (loopback frames count twice)
  uint64_t not_ip = 0;     // skipped: not IPv4/IPv6
  uint64_t truncated = 0;  // skipped: shorter than the link header (snaplen too small?)
};

class PcapDecoder;

class PcapSource final : public PacketSource {
 public:
  struct Options {
    std::string device = "any";
    std::string filter{};                      // pcap syntax; empty captures everything
    int snaplen = 256;                         // link header + IPv6 + ICMPv6 error quoting IPv6 + 8 = 116
    int buffer_bytes = 64 << 20;               // kernel ring: absorbs bursts while the thread is busy
    Nanos buffer_timeout = Nanos(5'000'000);   // a ring block is handed over at most this late
    std::vector<IpAddress> local_addresses{};  // direction for links that do not say (see above)
  };

  static Result<std::unique_ptr<PcapSource>> open(const Options& options);
  ~PcapSource() override;
  PcapSource(const PcapSource&) = delete;
  PcapSource& operator=(const PcapSource&) = delete;

  int poll(const Handler& handler, Nanos max_wait) override;
  void interrupt() override;
  CaptureStats stats() const override;

  int link_type() const noexcept;
  bool nanosecond_timestamps() const noexcept;
  DecodeCounters counters() const noexcept;
  // Non-fatal remarks from activation (e.g. no nanosecond timestamps): the caller logs them.
  const std::vector<std::string>& warnings() const noexcept { return warnings_; }
  // Why poll() returned -1.
  const std::string& error() const noexcept { return error_; }

 private:
  PcapSource() = default;
  int dispatch(const Handler& handler);

  pcap* handle_ = nullptr;
  int pcap_fd_ = -1;
  int event_fd_ = -1;
  std::unique_ptr<PcapDecoder> decoder_;
  std::vector<std::string> warnings_;
  std::string error_;
};

// Replays a pcap file (any of the supported link types), with nanosecond timestamps.
// poll() delivers up to a batch of packets per call and returns -1 at the end of the file.
class PcapFileSource final : public PacketSource {
 public:
  struct Options {
    std::string path{};
    std::string filter{};
    std::vector<IpAddress> local_addresses{};
  };
  static Result<std::unique_ptr<PcapFileSource>> open(const Options& options);
  ~PcapFileSource() override;
  PcapFileSource(const PcapFileSource&) = delete;
  PcapFileSource& operator=(const PcapFileSource&) = delete;

  int poll(const Handler& handler, Nanos max_wait) override;
  void interrupt() override {}
  CaptureStats stats() const override;
  int link_type() const noexcept;
  DecodeCounters counters() const noexcept;
  const std::string& error() const noexcept { return error_; }

 private:
  PcapFileSource() = default;
  pcap* handle_ = nullptr;
  std::unique_ptr<PcapDecoder> decoder_;
  bool done_ = false;
  std::string error_;
};

}  // namespace netprobe
