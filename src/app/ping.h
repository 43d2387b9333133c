#pragma once
#include <optional>
#include <string>

namespace netprobe {

// `netprobe ping TARGET`: hping3's job on netprobe's engine, in this process (src/session). Probes of a
// one-target plan, their source port sweeping a small range (one ECMP path each), several probes per engine
// iteration when -W exceeds their spacing (so that a lost probe never holds the next ones back), a line per
// probe, a summary, and the source ports that lose significantly more than the others (src/paths).
struct PingOptions {
  std::string target;
  char mode = 'S';                         // 'S' TCPsyn, '1' ICMPping, '2' UDPunreachable
  std::optional<int> dst_port;             // -p; default 80 (TCPsyn), 33434 (UDPunreachable)
  std::optional<std::string> sport_range;  // --sport-range A-B
  std::optional<int> base_sport;           // -s: BASE to BASE+15
  bool keep_sport = false;                 // -k: one source port
  int count = 5;                           // -c
  std::optional<std::string> interval;     // -i: seconds, or uN microseconds (hping); default 1
  bool fast = false, faster = false;       // --fast 10/s, --faster 100/s
  bool flood = false;                      // --flood: as fast as --rate allows (no cap without it)
  std::optional<double> rate;              // --rate PPS: a cap on every mode
  double timeout_s = 1;                    // -W
  std::optional<int> ttl;                  // -t: 1..255 (default 64)
  std::optional<std::string> tos;          // -o: TOS byte (hex as hping, 0x.. or decimal); its DSCP bits
  std::optional<int> dscp;                 // --dscp
  std::optional<int> data_bytes;           // -d: bytes after the L4 header
  bool df = false, no_df = false;          // -y (the default) / --no-df: the IPv4 DF bit
  std::optional<std::string> src_addr;     // -a: an address of this host
  std::optional<std::string> iface;        // -I: its address is the source
  bool numeric = false;                    // -n: accepted; netprobe ping never resolves addresses to names
  bool per_port = false;                   // --per-port: the per-source-port table in text too
  bool quiet = false;                      // -q: summary and table only
  std::string format = "text";             // text | hping | json
  std::optional<double> max_loss_pct;      // --max-loss; default: at least one reply
  std::optional<double> max_rtt_ms;        // --max-rtt: the p99 RTT must be at most this
  bool ipv4 = false, ipv6 = false;         // -4 / -6: the family of a name's addresses
};

inline constexpr int kPingSportSweep = 16;  // source ports swept by default (hping increments its own)

// 0 when the loss is within --max-loss (default: some reply came), 1 when not; 64 usage, 68 unknown host,
// 77 without CAP_NET_RAW.
int run_ping(const PingOptions& options);

}  // namespace netprobe
