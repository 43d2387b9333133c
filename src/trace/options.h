#pragma once
// The options of `netprobe trace` and `netprobe pathloss`, checked in one place for the command line
// (src/app/trace.cpp, src/app/pathloss.cpp) and for /api/v1/tests (src/ondemand/test_service.cpp), so that
// their bounds and messages cannot drift apart. The API names an option by its long name as a JSON key
// ("max-ttl"); a check that fails names the option it is about, and its message is the command line's.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "core/net.h"
#include "trace/pathloss.h"
#include "trace/trace.h"

namespace netprobe {

// `netprobe trace TARGET`: Paris traceroute on netprobe's engine (docs/trace.md).
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

// `netprobe pathloss TARGET --sports A,B | --sport-range A-B` (docs/trace.md#pathloss).
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

inline constexpr int kTraceDefaultSport = 33434;  // the first source port when none is given
inline constexpr int kTraceMaxSportRange = 4096;
inline constexpr int kPathlossMaxFlows = 256;
inline constexpr int kPathlossMaxProbesPerHop = 100000;

// A refused option: its long name ("max-ttl", "destport"; "target" for the target) and the command line's
// message ("--max-ttl: from --first-ttl to 64").
struct OptionError {
  std::string option;
  std::string message;
};

// "A-B" (1 <= A <= B <= 65535, at most `max_ports`), or nullopt.
std::optional<std::pair<int, int>> parse_port_range(const std::string& text, int max_ports);

// What checked trace options come to.
struct TraceSetup {
  ProbeType type = ProbeType::kTcpSyn;
  uint16_t dst_port = 0;         // 0 for ICMP echo
  std::vector<uint16_t> sports;  // the flows (MDA: the pool, in order)
  TraceOptions trace;            // first_ttl, max_ttl (the rest: defaults)
  bool mda = false;
  double confidence = 0.95;
  size_t max_flows = 256;
  double rate_pps = 100;
  double wait_s = 1;
};
std::optional<TraceSetup> check_trace_options(const TraceCliOptions& o, OptionError* error);

struct PathlossSetup {
  ProbeType type = ProbeType::kTcpSyn;
  uint16_t dst_port = 0;
  std::vector<uint16_t> sports;  // the flows asked for, then the reference flows
  std::vector<bool> reference;   // same size: true for a --compare-healthy flow
  PathlossOptions options;
  double rate_pps = 1000;
  double wait_s = 1;
};
std::optional<PathlossSetup> check_pathloss_options(const PathlossCliOptions& o, OptionError* error);

// The most probes a run can send (every flow's trace with its retries, and pathloss's rounds), for budgets.
uint64_t max_probes_of(const TraceSetup& s);
uint64_t max_probes_of(const PathlossSetup& s);

// JSON options by long name onto the command line's options: {"max-ttl": 20, "mda": true, "protocol":
// "udp"}. "protocol" (tcp, icmp, udp) stands for -S/-1/-2 and "ipv4"/"ipv6" (booleans) for -4/-6, which
// have no long name. An unknown key, or a value of the wrong JSON type, is refused naming the key; the
// values' bounds are checked by check_*_options(). `options` must be an object.
bool apply_trace_json(const nlohmann::json& options, TraceCliOptions& o, OptionError* error);
bool apply_pathloss_json(const nlohmann::json& options, PathlossCliOptions& o, OptionError* error);

}  // namespace netprobe
