#pragma once
#include <optional>
#include <string>

namespace netprobe {

// `netprobe pathloss TARGET --sports A,B | --sport-range A-B`: which hop drops these flows. TTL-limited
// probes for them and for K reference flows, interleaved, and a verdict per flow (docs/trace.md#pathloss).
struct PathlossCliOptions {
  std::string target;
  char mode = 'S';  // 'S' TCPsyn, '2' UDPunreachable
  std::optional<int> dst_port;
  std::optional<std::string> sports;       // --sports 40001,40007
  std::optional<std::string> sport_range;  // --sport-range A-B
  int probes_per_hop = 1000;               // docs/trace.md#power
  int compare_healthy = 4;
  int first_ttl = 1;
  int max_ttl = 30;
  double rate_pps = 1000;
  double wait_s = 1;
  std::string format = "text";  // text | json
  bool ipv4 = false, ipv6 = false;
};

// 0 when no flow names a suspect link, 1 when some does; 64 usage, 68 unknown host, 77 without CAP_NET_RAW.
int run_pathloss(const PathlossCliOptions& options);

}  // namespace netprobe
