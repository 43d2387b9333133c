#pragma once
// What one iteration measured for one (target, group): the unit the engine hands to the metrics.
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/net.h"

namespace netprobe {

// One flow of a (target, group) in one iteration (docs/paths.md): the probes that share a source address, a
// source port and a destination address, so one 5-tuple and one ECMP path.
// 32 bytes, addresses by index: a configuration with more source ports than packets makes every probe its
// own flow, and the per-probe memory budget (bench/RESULTS.md) must still hold.
struct FlowMeasurement {
  uint32_t src = 0;        // index into IterationReport::sources
  uint32_t dst = 0;        // index into GroupMeasurement::flow_destinations
  uint16_t src_port = 0;   // 0 for ICMPping (no ports: one flow per source address)
  uint32_t sent = 0;       // answered + lost, as GroupMeasurement::sent
  uint32_t lost = 0;       // as GroupMeasurement::lost
  uint32_t late = 0;       // lost probes whose answer came after the deadline
  uint32_t rtt_count = 0;  // answered probes with a usable RTT
  float rtt_sum_s = 0;     // their RTTs' sum
};
static_assert(sizeof(FlowMeasurement) == 32);

struct GroupMeasurement {
  std::string target;  // target name (config key, or <plugin>_<hostname>)
  std::string group;
  ProbeType type = ProbeType::kTcpSyn;
  AddressFamily af = AddressFamily::kV4;
  std::string state = "None";
  uint64_t sent = 0;           // probes accounted: answered + lost
  uint64_t lost = 0;           // no answer before the deadline (ICMP errors count here too)
  std::vector<double> rtts_s;  // RTTs of answered probes with RTT >= 0, in seconds, any order
  uint64_t time_ooo = 0;       // answered with a negative RTT (counted as answered, excluded from rtts)
  uint64_t late = 0;           // answers that arrived after their probe's deadline
  uint64_t duplicates = 0;     // second and later answers to one probe
  // UDPquery: answers whose token (or 5-tuple) is the probe's but whose content is not what `expect` says,
  // and ICMP port unreachables quoting a probe; counted in `sent`, neither answered nor lost.
  uint64_t unexpected = 0;
  uint64_t closed = 0;
  std::map<std::string, uint64_t> icmp_errors;  // ICMP errors quoting our probes, by "type/code" label
  std::vector<FlowMeasurement> flows;           // the flows probed (sent > 0), in plan order
  std::vector<IpAddress> flow_destinations;     // the hosts FlowMeasurement::dst designates
};

// Per-target events that netprobify exports without a group label.
struct TargetEvents {
  std::string target;
  ProbeType type = ProbeType::kTcpSyn;
  AddressFamily af = AddressFamily::kV4;
  uint64_t match_ack_fail = 0;  // TCP answers whose ack maps to no probe exactly
  uint64_t port_mismatch = 0;   // answers whose port differs from the matched probe's
};

struct IterationReport {
  std::vector<GroupMeasurement> groups;
  std::vector<TargetEvents> targets;
  double duration_s = 0;          // the whole iteration: first probe sent to last answer or deadline
  double send_window_s = 0;       // from the iteration's start until its last probe was handed to the kernel
  uint64_t capture_received = 0;  // pcap_stats deltas for this iteration
  uint64_t capture_dropped = 0;
  uint64_t capture_if_dropped = 0;
  std::map<std::string, uint64_t> rejected;  // captured packets rejected, by reason
  std::vector<IpAddress> sources;            // the source addresses FlowMeasurement::src designates
  // Probes not sent (not accounted as sent), by reason: the kernel's (io SendError names), "no_token" (more
  // probes to a destination than its token space) or "cut_short" (the iteration ended before their time).
  std::map<std::string, uint64_t> send_errors;
  uint64_t total_send_errors() const {
    uint64_t n = 0;
    for (const auto& [reason, count] : send_errors) n += count;
    return n;
  }
  bool timed_out = false;  // the iteration hit global.timeout and was cut short
};

}  // namespace netprobe
