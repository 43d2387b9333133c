#include "io/pcap_source.h"

#include <net/if.h>
#include <pcap/pcap.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <climits>
#include <cstring>

#include <fmt/format.h>

#include "io/link_layer.h"

namespace netprobe {

// Turns libpcap frames into CapturedPackets: link header, direction, timestamp. Shared by both sources.
class PcapDecoder {
 public:
  PcapDecoder(int dlt, bool nano, std::vector<IpAddress> local_addresses)
      : dlt_(dlt), nano_(nano), local_(std::move(local_addresses)) {}

  void set_device_mac(const uint8_t* mac) {
    std::memcpy(mac_.data(), mac, 6);
    has_mac_ = std::any_of(mac_.begin(), mac_.end(), [](uint8_t b) { return b != 0; });
  }
  void set_loopback_device(bool v) { loopback_device_ = v; }
  int dlt() const { return dlt_; }
  bool nano() const { return nano_; }
  // A snapshot; safe from any thread while the capture thread decodes.
  DecodeCounters counters() const {
    return {frames_.load(std::memory_order_relaxed), delivered_.load(std::memory_order_relaxed),
            not_ip_.load(std::memory_order_relaxed), truncated_.load(std::memory_order_relaxed)};
  }

  // Runs one pcap_dispatch() batch through `handler`; returns pcap's result (frames processed or error).
  int dispatch(pcap_t* p, int max_frames, const PacketSource::Handler& handler, int* delivered) {
    Context ctx{this, &handler, 0};
    const int r = pcap_dispatch(p, max_frames, &PcapDecoder::on_frame, reinterpret_cast<u_char*>(&ctx));
    *delivered += ctx.delivered;
    return r;
  }

 private:
  struct Context {
    PcapDecoder* self;
    const PacketSource::Handler* handler;
    int delivered;
  };

  static void on_frame(u_char* user, const pcap_pkthdr* h, const u_char* bytes) {
    auto* ctx = reinterpret_cast<Context*>(user);
    ctx->delivered += ctx->self->decode(h, bytes, *ctx->handler);
  }

  int decode(const pcap_pkthdr* h, const u_char* bytes, const PacketSource::Handler& handler) {
    bump(frames_);
    LinkFrame frame;
    switch (decode_link(dlt_, std::span<const uint8_t>(bytes, h->caplen), &frame)) {
      case LinkDecode::kNotIp:
        bump(not_ip_);
        return 0;
      case LinkDecode::kTruncated:
        bump(truncated_);
        return 0;
      case LinkDecode::kIp:
        break;
    }
    CapturedPacket pkt;
    pkt.ip = frame.ip;
    // tv_usec holds nanoseconds when the handle was opened with nanosecond precision.
    pkt.timestamp =
        Nanos(int64_t(h->ts.tv_sec) * 1'000'000'000 + int64_t(h->ts.tv_usec) * (nano_ ? 1 : 1000));
    bool twice = false;
    switch (frame.direction_from) {
      case DirectionFrom::kLinkHeader:
        pkt.direction = frame.direction;
        break;
      case DirectionFrom::kLoopback:
        twice = true;
        break;
      case DirectionFrom::kUnknown:
        if (loopback_device_) {
          twice = true;
        } else if (has_mac_ && frame.src_mac.size() == 6) {
          pkt.direction = std::equal(mac_.begin(), mac_.end(), frame.src_mac.begin()) ? Direction::kOutgoing
                                                                                      : Direction::kIncoming;
        } else {
          pkt.direction = source_is_local(frame.ip) ? Direction::kOutgoing : Direction::kIncoming;
        }
        break;
    }
    if (twice) {
      pkt.direction = Direction::kOutgoing;
      handler(pkt);
      pkt.direction = Direction::kIncoming;
      handler(pkt);
      bump(delivered_, 2);
      return 2;
    }
    handler(pkt);
    bump(delivered_);
    return 1;
  }

  bool source_is_local(std::span<const uint8_t> ip) const {
    if (local_.empty()) return false;
    IpAddress src;
    if ((ip[0] >> 4) == 4 && ip.size() >= 20) {
      src = IpAddress::from_bytes(AddressFamily::kV4, ip.data() + 12);
    } else if ((ip[0] >> 4) == 6 && ip.size() >= 40) {
      src = IpAddress::from_bytes(AddressFamily::kV6, ip.data() + 8);
    } else {
      return false;
    }
    return std::find(local_.begin(), local_.end(), src) != local_.end();
  }

  int dlt_;
  bool nano_;
  std::vector<IpAddress> local_;
  std::array<uint8_t, 6> mac_{};
  bool has_mac_ = false;
  bool loopback_device_ = false;
  // One writer (the thread that decodes), readers anywhere: a relaxed load and store, no locked add.
  static void bump(std::atomic<uint64_t>& c, uint64_t n = 1) {
    c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  std::atomic<uint64_t> frames_{0}, delivered_{0}, not_ip_{0}, truncated_{0};
};

namespace {

Status apply_filter(pcap_t* p, const std::string& filter) {
  if (filter.empty()) return {};
  bpf_program prog{};
  if (pcap_compile(p, &prog, filter.c_str(), 1, PCAP_NETMASK_UNKNOWN) != 0) {
    return Error{fmt::format("capture filter does not compile: {} (filter: {})", pcap_geterr(p), filter)};
  }
  const int rc = pcap_setfilter(p, &prog);
  pcap_freecode(&prog);
  if (rc != 0) return Error{fmt::format("cannot install capture filter: {}", pcap_geterr(p))};
  return {};
}

// Flags and MAC of a named device; both stay unknown for "any" or on failure (decoding then falls back).
void describe_device(const std::string& device, PcapDecoder& decoder) {
  if (device == "any" || device.size() >= IFNAMSIZ) return;
  const int s = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) return;
  ifreq ifr{};
  std::memcpy(ifr.ifr_name, device.c_str(), device.size());
  if (::ioctl(s, SIOCGIFFLAGS, &ifr) == 0) decoder.set_loopback_device((ifr.ifr_flags & IFF_LOOPBACK) != 0);
  if (::ioctl(s, SIOCGIFHWADDR, &ifr) == 0) {
    decoder.set_device_mac(reinterpret_cast<const uint8_t*>(ifr.ifr_hwaddr.sa_data));
  }
  ::close(s);
}

int ceil_millis(Nanos d) {
  if (d <= Nanos::zero()) return 0;
  const int64_t ms = (d.count() + 999'999) / 1'000'000;
  return int(std::min<int64_t>(ms, INT_MAX));
}

}  // namespace

// ---------------------------------------------------------------------------------------------------------
// PcapSource

Result<std::unique_ptr<PcapSource>> PcapSource::open(const Options& options) {
  std::unique_ptr<PcapSource> src(new PcapSource());
  char errbuf[PCAP_ERRBUF_SIZE] = {};
  const char* dev = options.device.c_str();
  src->handle_ = pcap_create(dev, errbuf);
  if (src->handle_ == nullptr) return Error{fmt::format("pcap_create({}): {}", options.device, errbuf)};
  pcap_t* p = src->handle_;

  pcap_set_snaplen(p, options.snaplen);
  pcap_set_promisc(p, 0);
  // Immediate mode drops and caps the rate: docs/architecture.md#capture-settings.
  pcap_set_immediate_mode(p, 0);
  pcap_set_timeout(p, std::max(1, ceil_millis(options.buffer_timeout)));
  pcap_set_buffer_size(p, options.buffer_bytes);
  bool want_nano = pcap_set_tstamp_precision(p, PCAP_TSTAMP_PRECISION_NANO) == 0;

  const int rc = pcap_activate(p);
  if (rc < 0) {
    const std::string detail = pcap_geterr(p);
    switch (rc) {
      case PCAP_ERROR_PERM_DENIED:
        // How to grant it is said once, by `netprobe run` before anything opens (sandbox/privileges.h).
        return Error::system(EPERM,
                             fmt::format("capture on '{}' needs CAP_NET_RAW ({})", options.device, detail));
      case PCAP_ERROR_NO_SUCH_DEVICE:
        return Error{fmt::format("capture device '{}' does not exist ({})", options.device, detail)};
      case PCAP_ERROR_IFACE_NOT_UP:
        return Error{fmt::format("capture device '{}' is not up", options.device)};
      default:
        return Error{
            fmt::format("cannot capture on '{}': {}: {}", options.device, pcap_statustostr(rc), detail)};
    }
  }
  if (rc > 0) {
    src->warnings_.push_back(
        fmt::format("capture on '{}': {}: {}", options.device, pcap_statustostr(rc), pcap_geterr(p)));
  }
  const bool nano = want_nano && pcap_get_tstamp_precision(p) == PCAP_TSTAMP_PRECISION_NANO;
  if (!nano) {
    src->warnings_.push_back(fmt::format(
        "capture on '{}': nanosecond timestamps not supported, using microseconds", options.device));
  }
  const int dlt = pcap_datalink(p);
  if (!link_type_supported(dlt)) {
    return Error{fmt::format("capture on '{}': unsupported link type {} ({})", options.device,
                             pcap_datalink_val_to_name(dlt) ? pcap_datalink_val_to_name(dlt) : "?", dlt)};
  }
  if (Status st = apply_filter(p, options.filter); !st) {
    return Error{fmt::format("capture on '{}': {}", options.device, st.error().message)};
  }
  if (pcap_setnonblock(p, 1, errbuf) != 0) {
    return Error{fmt::format("capture on '{}': cannot set non-blocking: {}", options.device, errbuf)};
  }
  src->pcap_fd_ = pcap_get_selectable_fd(p);
  if (src->pcap_fd_ < 0) return Error{fmt::format("capture on '{}': no selectable fd", options.device)};
  src->event_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (src->event_fd_ < 0) return Error{fmt::format("eventfd: {}", std::strerror(errno))};

  src->decoder_ = std::make_unique<PcapDecoder>(dlt, nano, options.local_addresses);
  describe_device(options.device, *src->decoder_);
  return src;
}

PcapSource::~PcapSource() {
  if (handle_ != nullptr) pcap_close(handle_);
  if (event_fd_ >= 0) ::close(event_fd_);
}

int PcapSource::dispatch(const Handler& handler) {
  int delivered = 0;
  // A few rounds at most, so that a flood cannot keep the caller (expiry, iteration end) waiting.
  for (int round = 0; round < 8; ++round) {
    const int r = decoder_->dispatch(handle_, -1, handler, &delivered);
    if (r == PCAP_ERROR) {
      error_ = fmt::format("pcap: {}", pcap_geterr(handle_));
      return -1;
    }
    if (r <= 0) break;  // 0: nothing ready; PCAP_ERROR_BREAK: pcap_breakloop
  }
  return delivered;
}

int PcapSource::poll(const Handler& handler, Nanos max_wait) {
  if (!error_.empty()) return -1;
  int n = dispatch(handler);
  if (n != 0) return n;

  pollfd fds[2] = {{pcap_fd_, POLLIN, 0}, {event_fd_, POLLIN, 0}};
  const int r = ::poll(fds, 2, ceil_millis(max_wait));
  if (r < 0) {
    if (errno == EINTR) return 0;
    error_ = fmt::format("poll on capture fd: {}", std::strerror(errno));
    return -1;
  }
  if (fds[1].revents & POLLIN) {
    uint64_t v;
    [[maybe_unused]] ssize_t ignored = ::read(event_fd_, &v, sizeof v);
  }
  if (r == 0 || (fds[0].revents == 0)) return 0;
  // POLLERR/POLLHUP (device gone) surfaces as a pcap error from dispatch.
  return dispatch(handler);
}

void PcapSource::interrupt() {
  const uint64_t one = 1;
  [[maybe_unused]] ssize_t ignored = ::write(event_fd_, &one, sizeof one);
}

CaptureStats PcapSource::stats() const {
  pcap_stat ps{};
  CaptureStats out;
  if (pcap_stats(handle_, &ps) == 0) {
    out.received = ps.ps_recv;
    out.dropped = ps.ps_drop;
    out.if_dropped = ps.ps_ifdrop;
  }
  const DecodeCounters c = decoder_->counters();
  out.not_ip = c.not_ip;
  out.truncated = c.truncated;
  return out;
}

int PcapSource::link_type() const noexcept { return decoder_->dlt(); }
bool PcapSource::nanosecond_timestamps() const noexcept { return decoder_->nano(); }
DecodeCounters PcapSource::counters() const noexcept { return decoder_->counters(); }

// ---------------------------------------------------------------------------------------------------------
// PcapFileSource

Result<std::unique_ptr<PcapFileSource>> PcapFileSource::open(const Options& options) {
  std::unique_ptr<PcapFileSource> src(new PcapFileSource());
  char errbuf[PCAP_ERRBUF_SIZE] = {};
  src->handle_ =
      pcap_open_offline_with_tstamp_precision(options.path.c_str(), PCAP_TSTAMP_PRECISION_NANO, errbuf);
  if (src->handle_ == nullptr)
    return Error{fmt::format("cannot open pcap file {}: {}", options.path, errbuf)};
  const int dlt = pcap_datalink(src->handle_);
  if (!link_type_supported(dlt)) {
    return Error{fmt::format("pcap file {}: unsupported link type {}", options.path, dlt)};
  }
  if (Status st = apply_filter(src->handle_, options.filter); !st) {
    return Error{fmt::format("pcap file {}: {}", options.path, st.error().message)};
  }
  src->decoder_ = std::make_unique<PcapDecoder>(dlt, true, options.local_addresses);
  return src;
}

PcapFileSource::~PcapFileSource() {
  if (handle_ != nullptr) pcap_close(handle_);
}

int PcapFileSource::poll(const Handler& handler, Nanos /*max_wait*/) {
  if (done_) return -1;
  int delivered = 0;
  const int r = decoder_->dispatch(handle_, 1024, handler, &delivered);
  if (r < 0) {
    error_ = fmt::format("pcap file: {}", pcap_geterr(handle_));
    done_ = true;
    return -1;
  }
  if (r == 0) {  // end of file
    done_ = true;
    return delivered > 0 ? delivered : -1;
  }
  return delivered;
}

CaptureStats PcapFileSource::stats() const {
  CaptureStats out;
  const DecodeCounters c = decoder_->counters();
  out.received = c.frames;
  out.not_ip = c.not_ip;
  out.truncated = c.truncated;
  return out;
}

int PcapFileSource::link_type() const noexcept { return decoder_->dlt(); }
DecodeCounters PcapFileSource::counters() const noexcept { return decoder_->counters(); }

}  // namespace netprobe
