#pragma once
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "session/session.h"
#include "trace/prober.h"

namespace netprobe {

// `netprobe trace TARGET`: Paris traceroute on netprobe's engine, in this process (src/session, src/trace):
// every probe of a flow keeps its 5-tuple, so each source port shows its own ECMP path; with --mda, as many
// flows as the Multipath Detection Algorithm needs to find every next hop (docs/trace.md).
struct TraceCliOptions {
  std::string target;
  char mode = 'S';                         // 'S' TCPsyn, '1' ICMPping, '2' UDPunreachable
  std::optional<int> dst_port;             // -p; default 80 (TCPsyn), 33434 (UDPunreachable)
  std::optional<std::string> sport_range;  // --sport-range A-B: the flows (MDA: the pool)
  int first_ttl = 1;
  int max_ttl = 30;
  double rate_pps = 100;
  double wait_s = 1;     // per probe
  bool numeric = false;  // -n: no reverse DNS
  bool mda = false;
  int confidence = 95;          // 95 | 99
  int max_flows = 256;          // MDA's budget
  std::string format = "text";  // text | json | dot
  bool ipv4 = false, ipv6 = false;
};

// 0 when the destination answered on some flow, 1 when not; 64 usage, 68 unknown host, 77 without
// CAP_NET_RAW.
int run_trace(const TraceCliOptions& options);

inline constexpr int kTraceDefaultSport = 33434;  // the first source port when none is given

// Shared by `netprobe trace` and `netprobe pathloss` (implemented in trace.cpp).

// Opens the session (capabilities dropped), resolves `name` (first address of the family asked) and asks the
// kernel for the source address. Returns 0 and fills `target` and `session`, or an exit code after printing
// why on stderr with the `command` prefix.
int open_trace_session(const std::string& command, const std::string& name, ProbeType type, uint16_t dst_port,
                       bool ipv4, bool ipv6, TraceTarget& target, std::unique_ptr<Session>& session);

// "A-B" (1 <= A <= B <= 65535, at most `max_ports`), or nullopt.
std::optional<std::pair<int, int>> parse_port_range(const std::string& text, int max_ports);

}  // namespace netprobe
