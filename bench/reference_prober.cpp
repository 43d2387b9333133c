// The minimal reference prober of bench/e2e_rate.py: what this machine can do with nothing but the
// essentials, so that netprobe's figures can be given as a ratio of it (issue 6).
//
//   sender (main thread)   a pool of pre-built IPv4 packets, each with its own token; one raw socket,
//                          sendmmsg() batches, paced to --rate with absolute sleeps (or flat out)
//   capture thread         libpcap on "any", TPACKET_V3 ring (64 MiB, 5 ms buffer timeout, no immediate
//                          mode: the same settings as src/io/pcap_source), a 4-line BPF filter; the
//                          token indexes a flat array; RTT = reply stamp - stamp of our outgoing copy
//
// No configuration, no metrics, no per-target accounting: anything netprobe does beyond this is its
// overhead. Prints one JSON object. IPv4 only (the lab is IPv4). Root (or CAP_NET_RAW) required.
//
//   reference_prober --type tcp|icmp|udp --src A --dst-base B --ndst N [--dport P] [--sport-base S]
//                    [--nsport N] [--rate PPS (0 = flat out)] [--duration S] [--wait S] [--batch N]
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pcap/pcap.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace {

constexpr size_t kPool = 65535;      // distinct tokens; a UDP token is the 16-bit IP-ID (never 0)
constexpr size_t kPacketBytes = 40;  // IPv4 + TCP, or IPv4 + ICMP/UDP header + payload
constexpr int64_t kBinNs = 100;      // RTT histogram resolution
constexpr size_t kBins = 200'000;    // up to 20 ms; later replies land in the last bin

enum class Type { kTcp, kIcmp, kUdp };

struct Args {
  Type type = Type::kTcp;
  in_addr src{}, dst_base{};
  uint32_t ndst = 1;
  uint16_t dport = 8080, sport_base = 20000, nsport = 10000;
  double rate = 0, duration = 10, wait = 0.3;
  size_t batch = 64;
};

int64_t now_ns(clockid_t c = CLOCK_MONOTONIC) {
  timespec ts;
  clock_gettime(c, &ts);
  return int64_t(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

uint16_t checksum(const uint8_t* p, size_t n, uint32_t sum = 0) {
  for (size_t i = 0; i + 1 < n; i += 2) sum += uint32_t(p[i]) << 8 | p[i + 1];
  if (n & 1) sum += uint32_t(p[n - 1]) << 8;
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return uint16_t(~sum);
}
void put16(uint8_t* p, uint16_t v) { p[0] = uint8_t(v >> 8), p[1] = uint8_t(v); }
void put32(uint8_t* p, uint32_t v) { put16(p, uint16_t(v >> 16)), put16(p + 2, uint16_t(v)); }
uint16_t get16(const uint8_t* p) { return uint16_t(p[0] << 8 | p[1]); }
uint32_t get32(const uint8_t* p) { return uint32_t(get16(p)) << 16 | get16(p + 2); }

// Packet k of the pool: token k (+1 where 0 is not allowed).
void build(const Args& a, size_t k, uint8_t* p, sockaddr_in* dst) {
  std::memset(p, 0, kPacketBytes);
  const uint32_t d = ntohl(a.dst_base.s_addr) + uint32_t(k % a.ndst);
  const uint16_t sport = uint16_t(a.sport_base + k % a.nsport);
  p[0] = 0x45;
  put16(p + 2, kPacketBytes);
  put16(p + 4, uint16_t(k + 1));  // IP-ID: the UDP token (the kernel rewrites 0)
  p[6] = 0x40;                    // DF
  p[8] = 64;
  p[9] = a.type == Type::kTcp ? 6 : a.type == Type::kIcmp ? 1 : 17;
  std::memcpy(p + 12, &a.src.s_addr, 4);
  put32(p + 16, d);
  put16(p + 10, checksum(p, 20));
  uint8_t* l4 = p + 20;
  uint32_t pseudo = 0;
  for (int i = 12; i < 20; i += 2) pseudo += get16(p + i);
  pseudo += p[9] + (kPacketBytes - 20);
  if (a.type == Type::kTcp) {
    put16(l4, sport);
    put16(l4 + 2, a.dport);
    put32(l4 + 4, uint32_t(k));  // seq = token; the SYN-ACK acks token + 1
    l4[12] = 0x50;
    l4[13] = 0x02;
    put16(l4 + 14, 65535);
    put16(l4 + 16, checksum(l4, 20, pseudo));
  } else if (a.type == Type::kIcmp) {
    l4[0] = 8;
    put16(l4 + 4, 0x4e50);
    put16(l4 + 6, uint16_t(k));  // echo seq = token
    put16(l4 + 2, checksum(l4, 20));
  } else {
    put16(l4, sport);
    put16(l4 + 2, a.dport);
    put16(l4 + 4, kPacketBytes - 20);
    put16(l4 + 6, checksum(l4, 20, pseudo));
  }
  dst->sin_family = AF_INET;
  dst->sin_addr.s_addr = htonl(d);
}

// Capture side. Only the capture thread writes these.
struct Capture {
  Type type;
  std::vector<int64_t> sent_at = std::vector<int64_t>(kPool, 0);  // stamp of our copy; 0 = not in flight
  std::vector<uint32_t> hist = std::vector<uint32_t>(kBins, 0);
  uint64_t matched = 0, own = 0, other = 0;

  void on_frame(const pcap_pkthdr* h, const uint8_t* f) {
    // DLT_LINUX_SLL: packet type (4 = outgoing) at 0, protocol at 14, IP at 16.
    // 56 bytes: SLL + IPv4 (no options, ours and our targets' never have any) + 20 bytes of L4/quote.
    if (h->caplen < 16 + 40 || get16(f + 14) != 0x0800 || f[16] != 0x45) return;
    const bool out = get16(f) == 4;
    const uint8_t* ip = f + 16;
    constexpr size_t ihl = 20;
    const uint8_t* l4 = ip + ihl;
    const int64_t ts = int64_t(h->ts.tv_sec) * 1'000'000'000 + h->ts.tv_usec;  // nanosecond precision
    size_t k;
    if (type == Type::kTcp) {
      if (out)
        k = get32(l4 + 4);
      else if ((l4[13] & 0x12) == 0x12)
        k = get32(l4 + 8) - 1;
      else
        return ++other, void();
    } else if (type == Type::kIcmp) {
      if (l4[0] != (out ? 8 : 0) || get16(l4 + 4) != 0x4e50) return ++other, void();
      k = get16(l4 + 6);
    } else {
      if (out && ip[9] == 17)
        k = get16(ip + 4) - 1u;
      else if (!out && ip[9] == 1 && l4[0] == 3 && l4[1] == 3)
        k = get16(l4 + 8 + 4) - 1u;  // quoted IP-ID
      else
        return ++other, void();
    }
    if (k >= kPool) return ++other, void();
    if (out) {
      sent_at[k] = ts;
      ++own;
      return;
    }
    if (sent_at[k] == 0) return;  // duplicate, or a reply to a probe we did not see leave
    const int64_t rtt = ts - sent_at[k];
    sent_at[k] = 0;
    ++matched;
    ++hist[std::min<size_t>(kBins - 1, size_t(std::max<int64_t>(0, rtt) / kBinNs))];
  }
  double percentile_us(double q) const {
    uint64_t total = 0, seen = 0;
    for (uint32_t c : hist) total += c;
    if (total == 0) return 0;
    const uint64_t want = uint64_t(q * double(total - 1)) + 1;
    for (size_t i = 0; i < kBins; ++i) {
      seen += hist[i];
      if (seen >= want) return (double(i) + 0.5) * kBinNs / 1000.0;
    }
    return 0;
  }
};

[[noreturn]] void usage(const char* why) {
  std::fprintf(stderr, "reference_prober: %s\n", why);
  std::exit(64);
}

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string k = argv[i];
    if (i + 1 >= argc) usage(("missing value for " + k).c_str());
    const char* v = argv[++i];
    if (k == "--type") {
      const std::string t = v;
      a.type = t == "tcp"    ? Type::kTcp
               : t == "icmp" ? Type::kIcmp
               : t == "udp"  ? Type::kUdp
                             : (usage("--type"), Type::kTcp);
    } else if (k == "--src") {
      if (inet_pton(AF_INET, v, &a.src) != 1) usage("--src");
    } else if (k == "--dst-base") {
      if (inet_pton(AF_INET, v, &a.dst_base) != 1) usage("--dst-base");
    } else if (k == "--ndst")
      a.ndst = uint32_t(std::max(1, std::atoi(v)));
    else if (k == "--dport")
      a.dport = uint16_t(std::atoi(v));
    else if (k == "--sport-base")
      a.sport_base = uint16_t(std::atoi(v));
    else if (k == "--nsport")
      a.nsport = uint16_t(std::max(1, std::atoi(v)));
    else if (k == "--rate")
      a.rate = std::atof(v);
    else if (k == "--duration")
      a.duration = std::min(120.0, std::atof(v));
    else if (k == "--wait")
      a.wait = std::min(10.0, std::atof(v));
    else if (k == "--batch")
      a.batch = size_t(std::clamp(std::atoi(v), 1, 1024));
    else
      usage(("unknown option " + k).c_str());
  }
  if (a.src.s_addr == 0 || a.dst_base.s_addr == 0) usage("--src and --dst-base are required");
  return a;
}

}  // namespace

int main(int argc, char** argv) {
  const Args a = parse(argc, argv);

  std::vector<uint8_t> pool(kPool * kPacketBytes);
  std::vector<sockaddr_in> dsts(kPool);
  for (size_t k = 0; k < kPool; ++k) build(a, k, pool.data() + k * kPacketBytes, &dsts[k]);

  const int fd = socket(AF_INET, SOCK_RAW, IPPROTO_RAW);
  if (fd < 0) return std::perror("socket"), 77;
  const int sndbuf = 16 << 20;
  setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &sndbuf, sizeof sndbuf);

  char err[PCAP_ERRBUF_SIZE] = {};
  pcap_t* pc = pcap_create("any", err);
  if (!pc) return std::fprintf(stderr, "pcap_create: %s\n", err), 77;
  pcap_set_snaplen(pc, 128);
  pcap_set_timeout(pc, 5);
  pcap_set_buffer_size(pc, 64 << 20);
  pcap_set_tstamp_precision(pc, PCAP_TSTAMP_PRECISION_NANO);
  if (pcap_activate(pc) < 0) return std::fprintf(stderr, "pcap_activate: %s\n", pcap_geterr(pc)), 77;
  if (pcap_datalink(pc) != DLT_LINUX_SLL) return std::fprintf(stderr, "unexpected link type\n"), 70;
  const std::string port = std::to_string(a.dport);
  const std::string filter = a.type == Type::kTcp ? "tcp port " + port + " and tcp[tcpflags] & tcp-syn != 0"
                             : a.type == Type::kIcmp
                                 ? "icmp and (icmp[0] == 8 or icmp[0] == 0)"
                                 : "(udp dst port " + port + ") or (icmp and icmp[0] == 3)";
  bpf_program prog{};
  if (pcap_compile(pc, &prog, filter.c_str(), 1, PCAP_NETMASK_UNKNOWN) != 0 || pcap_setfilter(pc, &prog) != 0)
    return std::fprintf(stderr, "filter: %s\n", pcap_geterr(pc)), 70;
  pcap_setnonblock(pc, 1, err);

  Capture cap{a.type};
  std::atomic<bool> quit{false};
  std::thread capture([&] {
    pollfd pfd{pcap_get_selectable_fd(pc), POLLIN, 0};
    while (!quit.load(std::memory_order_relaxed)) {
      const int n = pcap_dispatch(
          pc, -1,
          [](uint8_t* u, const pcap_pkthdr* h, const uint8_t* f) {
            reinterpret_cast<Capture*>(u)->on_frame(h, f);
          },
          reinterpret_cast<uint8_t*>(&cap));
      if (n == 0) ::poll(&pfd, 1, 10);
      if (n < 0) break;
    }
  });
  usleep(100'000);  // the ring is live before the first probe

  std::vector<mmsghdr> msgs(a.batch);
  std::vector<iovec> iovs(a.batch);
  uint64_t sent = 0, attempted = 0, send_errors = 0;
  const int64_t start = now_ns();
  const int64_t end = start + int64_t(a.duration * 1e9);
  const uint64_t cap_total = a.rate > 0 ? uint64_t(a.rate * a.duration) : UINT64_MAX;
  for (int64_t now = start; now < end && attempted < cap_total; now = now_ns()) {
    uint64_t due = a.batch;
    if (a.rate > 0) {
      const uint64_t should = std::min(cap_total, uint64_t(double(now - start) * a.rate / 1e9) + 1);
      if (should <= attempted) {
        const int64_t next = start + int64_t(double(attempted) * 1e9 / a.rate);
        const timespec ts{time_t(next / 1'000'000'000), long(next % 1'000'000'000)};
        clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr);
        continue;
      }
      due = std::min<uint64_t>(a.batch, should - attempted);
    }
    for (size_t j = 0; j < due; ++j) {
      const size_t k = (attempted + j) % kPool;
      iovs[j] = {pool.data() + k * kPacketBytes, kPacketBytes};
      msgs[j] = {};
      msgs[j].msg_hdr.msg_name = &dsts[k];
      msgs[j].msg_hdr.msg_namelen = sizeof(sockaddr_in);
      msgs[j].msg_hdr.msg_iov = &iovs[j];
      msgs[j].msg_hdr.msg_iovlen = 1;
    }
    size_t done = 0;
    while (done < due) {
      const int r = sendmmsg(fd, msgs.data() + done, unsigned(due - done), 0);
      if (r > 0) {
        done += size_t(r);
        sent += uint64_t(r);
      } else if (r < 0 && errno == EINTR) {
        continue;
      } else {
        ++done;  // this packet failed: skip it
        ++send_errors;
      }
    }
    attempted += due;
  }
  const double send_s = double(now_ns() - start) / 1e9;
  usleep(useconds_t(a.wait * 1e6));
  quit = true;
  capture.join();

  pcap_stat st{};
  pcap_stats(pc, &st);
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  const double cpu = double(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
                     double(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
  const char* type = a.type == Type::kTcp ? "TCPsyn" : a.type == Type::kIcmp ? "ICMPping" : "UDPunreachable";
  std::printf(
      "{\"type\": \"%s\", \"rate\": %.0f, \"send_s\": %.3f, \"sent\": %lu, \"own_seen\": %lu, \"matched\": "
      "%lu, "
      "\"loss\": %lu, \"send_errors\": %lu, \"capture_received\": %u, \"capture_drops\": %u, "
      "\"cpu_s\": %.4f, \"maxrss_kb\": %ld, \"matched_per_s\": %.1f, \"rtt_p50_us\": %.2f, \"rtt_p99_us\": "
      "%.2f}\n",
      type, a.rate, send_s, (unsigned long)sent, (unsigned long)cap.own, (unsigned long)cap.matched,
      (unsigned long)(sent - std::min(sent, cap.matched)), (unsigned long)send_errors, st.ps_recv, st.ps_drop,
      cpu, ru.ru_maxrss, double(cap.matched) / send_s, cap.percentile_us(0.5), cap.percentile_us(0.99));
  pcap_close(pc);
  close(fd);
  return 0;
}
