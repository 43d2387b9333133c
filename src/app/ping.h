#pragma once
#include <optional>
#include <string>

namespace netprobe {

// `netprobe ping TARGET`: hping3's job on netprobe's engine, in this process (src/session). One probe per
// iteration of a one-target plan, its source port sweeping a small range (one ECMP path each), a line per
// probe, a summary, and the source ports that lose significantly more than the others (src/paths).
struct PingOptions {
  std::string target;
  char mode = 'S';                         // 'S' TCPsyn, '1' ICMPping, '2' UDPunreachable
  std::optional<int> dst_port;             // -p; default 80 (TCPsyn), 33434 (UDPunreachable)
  std::optional<std::string> sport_range;  // --sport-range A-B
  std::optional<int> base_sport;           // -s: BASE to BASE+15
  bool keep_sport = false;                 // -k: one source port
  int count = 5;                           // -c
  std::string interval = "1";              // -i: seconds, or uN microseconds (hping)
  double timeout_s = 1;                    // -W
  bool quiet = false;                      // -q: summary and table only
  std::string format = "text";             // text | json
  std::optional<double> max_loss_pct;      // --max-loss; default: at least one reply
  std::optional<double> max_rtt_ms;        // --max-rtt: the p99 RTT must be at most this
  bool ipv4 = false, ipv6 = false;         // -4 / -6: the family of a name's addresses
};

inline constexpr int kPingSportSweep = 16;  // source ports swept by default (hping increments its own)

// 0 when the loss is within --max-loss (default: some reply came), 1 when not; 64 usage, 68 unknown host,
// 77 without CAP_NET_RAW.
int run_ping(const PingOptions& options);

}  // namespace netprobe
