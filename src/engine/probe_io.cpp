#include "engine/probe_io.h"

#include <sysexits.h>

#include <algorithm>
#include <exception>

#include <fmt/format.h>

namespace netprobe {

int WatchedSource::poll(const Handler& handler, Nanos max_wait) {
  const int n = inner_.poll(handler, max_wait);
  if (n < 0 && !failed_.exchange(true)) {
    std::lock_guard lock(mu_);
    error_ = pcap_ ? pcap_->error() : "the capture source failed";
  }
  return n;
}

std::string WatchedSource::error() const {
  std::lock_guard lock(mu_);
  return error_;
}

std::unique_ptr<ProbeIo> open_probe_io(const ProbeIoOptions& options, ProbeIoError& error) {
  auto io = std::make_unique<ProbeIo>();
  RawSocketSink::Options sink_options;
  sink_options.bind_device = options.bind_device;
  auto sink = RawSocketSink::open(sink_options);
  if (!sink.ok()) {
    error = {EX_NOPERM, sink.error().message};
    return nullptr;
  }
  io->sink = std::move(sink).value();
  PcapSource::Options capture;
  capture.buffer_bytes = int(std::min<uint32_t>(options.capture_buffer_mib, 1024)) << 20;
  // The kernel passes only replies carrying this process's slice: N workers do not each see N times the
  // traffic. (Foreign tokens would never match anyway; this is about cost.)
  try {
    capture.filter = capture_filter(options.types, options.slice);
  } catch (const std::exception& e) {
    error = {EX_SOFTWARE, fmt::format("no capture filter for slice {}/{}: {}", options.slice.index,
                                      options.slice.bits, e.what())};
    return nullptr;
  }
  auto source = PcapSource::open(capture);
  if (!source.ok()) {
    error = {EX_NOPERM, source.error().message};
    return nullptr;
  }
  io->capture = std::move(source).value();
  io->source = std::make_unique<WatchedSource>(*io->capture);
  for (const auto& w : io->sink->warnings()) io->warnings.push_back("send: " + w);
  for (const auto& w : io->capture->warnings()) io->warnings.push_back("capture: " + w);
  return io;
}

}  // namespace netprobe
