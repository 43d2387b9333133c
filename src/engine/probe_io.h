#pragma once
// The privileged part of probing, shared by every process that probes (the workers, the one-shot
// commands through src/session): the raw sockets and the live capture, opened while the process still
// holds CAP_NET_RAW, with the kernel filter built from the probe modules' capture clauses and the
// process's KeySlice. The caller drops its capabilities right after (sandbox/privileges.h): the handles
// keep working.
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/result.h"
#include "io/packet_io.h"
#include "io/pcap_source.h"
#include "io/raw_socket_sink.h"
#include "probes/probe.h"

namespace netprobe {

// Forwards to a capture and remembers that it failed: the engine only sleeps on a failed capture (it
// cannot restart it), and an iteration run blind would report 100 % loss. Whoever runs the engine checks
// failed() after each iteration and gives up instead.
class WatchedSource final : public PacketSource {
 public:
  explicit WatchedSource(PcapSource& inner) : inner_(inner), pcap_(&inner) {}
  // Any source (tests over the fake link): its failure has no message.
  explicit WatchedSource(PacketSource& inner) : inner_(inner) {}
  int poll(const Handler& handler, Nanos max_wait) override;
  void interrupt() override { inner_.interrupt(); }
  CaptureStats stats() const override { return inner_.stats(); }
  bool failed() const { return failed_.load(); }
  std::string error() const;

 private:
  PacketSource& inner_;
  PcapSource* pcap_ = nullptr;
  std::atomic<bool> failed_{false};
  mutable std::mutex mu_;
  std::string error_;
};

struct ProbeIoOptions {
  std::vector<ProbeType> types;  // every probe type the capture must see
  KeySlice slice{};              // the process's share of the token space ({} = all of it)
  uint32_t capture_buffer_mib = 4;
  std::string bind_device = {};  // RawSocketSink::Options::bind_device ("" = none)
};

struct ProbeIo {
  std::unique_ptr<RawSocketSink> sink;
  std::unique_ptr<PcapSource> capture;
  std::unique_ptr<WatchedSource> source;  // over `capture`: what the engine reads
  std::vector<std::string> warnings;      // non-fatal remarks of both, prefixed "send: " / "capture: "
};

// Why open_probe_io() failed, with the exit code the process should end with: EX_NOPERM (77) for a
// socket or capture the process may not open (the message carries the CAP_NET_RAW hint), EX_SOFTWARE for
// a capture filter that cannot be built.
struct ProbeIoError {
  int exit_code = 0;
  std::string message;
};

// Opens the raw sockets (IPv4 and IPv6) and the capture on every interface. Needs CAP_NET_RAW.
std::unique_ptr<ProbeIo> open_probe_io(const ProbeIoOptions& options, ProbeIoError& error);

}  // namespace netprobe
