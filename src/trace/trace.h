#pragma once
// `netprobe trace`'s algorithms over a HopProber (docs/trace.md): the hops of each flow (one source port,
// one 5-tuple, one ECMP path), the graph of hops and links with the flows that use them, and the
// Multipath Detection Algorithm (MDA) that adds flows until no next hop of any hop can have been missed at
// the requested confidence.
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "trace/prober.h"

namespace netprobe {

struct TraceOptions {
  int first_ttl = 1;
  int max_ttl = 30;
  int window = 8;     // TTLs probed per flow and round (traceroute sends several at once too)
  int attempts = 2;   // probes per (flow, TTL) at most: a silent hop is asked once more
  int gap_limit = 5;  // a flow whose last gap_limit hops are all silent is given up
};
inline constexpr int kMaxTtl = 64;

// The hops of one flow. hops[ttl - 1] (kNone when silent or never probed); end_ttl: the TTL of the reply
// that ends the flow (the destination, or a router's unreachable), 0 when none came.
struct FlowTrace {
  uint16_t sport = 0;
  std::vector<HopReply> hops;
  int end_ttl = 0;
  bool reached = false;  // the destination answered (at end_ttl)
  int last_ttl() const { return end_ttl > 0 ? end_ttl : int(hops.size()); }
};

// Traces every flow: rounds of `window` TTLs for the flows not finished (interleaved: flow after flow,
// each one's TTLs in turn, so that no hop sees a burst), then the silent hops once more. Bounded: at most
// attempts x (max_ttl - first_ttl + 1) probes per flow.
std::vector<FlowTrace> trace_flows(HopProber& prober, std::span<const uint16_t> sports,
                                   const TraceOptions& options);

// A hop: an address at a TTL (the same router seen at two TTLs is two nodes), with the flows through it.
struct HopNode {
  int ttl = 0;
  IpAddress address;
  HopReply::Kind kind = HopReply::Kind::kNone;
  uint8_t icmp_type = 0, icmp_code = 0;
  uint8_t mpls_count = 0;
  std::array<MplsLabel, ReplyInfo::kMaxLabels> mpls{};
  std::vector<uint16_t> sports;
  double rtt_min_s = -1, rtt_max_s = -1;
};
// Between two answered hops of consecutive TTLs, with the flows that took it.
struct HopLink {
  int ttl = 0;  // of `from`; `to` is at ttl + 1
  IpAddress from, to;
  std::vector<uint16_t> sports;
};
// Flows with the same sequence of hops (silent hops included): one path.
struct TracePath {
  std::vector<std::string> hops;  // an address per TTL from first_ttl, "*" when silent
  std::vector<uint16_t> sports;
};
struct TraceGraph {
  std::vector<HopNode> nodes;  // by TTL, then address
  std::vector<HopLink> links;  // by TTL, then addresses
  std::vector<TracePath> paths;
};
TraceGraph build_graph(std::span<const FlowTrace> flows, int first_ttl);

// MDA: the flows needed through a hop to rule out one more next hop after seeing `seen` (>= 1) of them,
// at `confidence` (0.95: 6, 11, 16, 21, 27, ... for seen = 1, 2, 3, ...): the least n for which k + 1
// equally likely next hops all show up in n flows except with probability 1 - confidence
// (inclusion-exclusion). 0 when seen is outside 1..64 or the confidence outside (0, 1).
int mda_flows_needed(int seen, double confidence);

struct MdaResult {
  std::vector<FlowTrace> flows;
  bool complete = false;    // every hop has the flows MDA needs
  std::string stop_reason;  // when not complete: "source ports exhausted", "flow budget", "interrupted"
  int rounds = 0;
};
// Starts with mda_flows_needed(1) flows from `sports` (in order) and adds more while some hop with k next
// hops seen has fewer continuing flows than mda_flows_needed(k): as many as that hop's share of the flows
// says it needs, at most `max_flows` in all and 64 per round. Every flow is traced whole, so each source
// port comes out with its path.
MdaResult run_mda(HopProber& prober, std::span<const uint16_t> sports, const TraceOptions& options,
                  double confidence, size_t max_flows);

}  // namespace netprobe
