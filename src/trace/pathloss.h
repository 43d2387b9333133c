#pragma once
// `netprobe pathloss`'s measure and verdict (docs/trace.md#pathloss): N TTL-limited probes per (flow, TTL),
// interleaved so that no hop sees a burst, then per flow the first hop after which every later hop answers
// less (fbtracert's rule), decided by a one-sided binomial test (src/paths/significance.h), and the hops that
// answer less while later hops recover: ICMP rate limiting, never loss.
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "trace/trace.h"

namespace netprobe {

struct HopCount {
  uint64_t sent = 0, received = 0;
  bool has_address = false;
  IpAddress address;  // the router (or the target) that answered most at this TTL
};

struct PathlossFlow {
  uint16_t sport = 0;
  bool reference = false;  // one of the --compare-healthy flows, not asked for
  int first_ttl = 1;
  std::vector<HopCount> hops;  // hops[ttl - first_ttl]
  bool reached = false;        // the destination answered (in the trace or the measure)
};

struct PathlossVerdict {
  enum class Kind : uint8_t { kClean, kLossy, kNoAnswer };
  Kind kind = Kind::kNoAnswer;
  // kLossy: the link into hop `suspect_ttl` (from hop suspect_ttl - 1, or from the prober at first_ttl).
  int suspect_ttl = 0;
  bool from_known = false, to_known = false;
  IpAddress from, to;
  double p_value = 1;
  double loss_before = 0, loss_after = 0;  // the baseline hop's and the best later hop's loss ratio
  std::vector<int> rate_limited_ttls;      // hops that answer less while a later hop recovers
  // Filled by compare_healthy(): "link" (clean flows go through the same next hop: not the router),
  // "router" (every other flow through it loses too), "unknown" (no other flow through it).
  std::string blame;
  std::vector<int> healthy_through;  // per hop: clean flows through the same address at that TTL
};
std::string_view to_string(PathlossVerdict::Kind kind);

// The per-flow test, at `alpha` over the hops of the flow (Bonferroni).
PathlossVerdict judge_flow(const PathlossFlow& flow, double alpha = 0.001);
// Blame and healthy_through from the other flows' verdicts (same order as `flows`).
void compare_healthy(std::span<const PathlossFlow> flows, std::span<PathlossVerdict> verdicts);

struct PathlossOptions {
  TraceOptions trace;
  int probes_per_hop = 1000;  // finds 1 % loss 86 % of the time (docs/trace.md#power)
};
// Traces every flow (its hops, where it ends), then sends probes_per_hop rounds of one probe per (flow, TTL)
// up to each flow's destination (the furthest destination for flows that never reach it), rounds batched
// kMaxBatch probes at a time, flow after flow, each one's TTLs in turn.
std::vector<PathlossFlow> measure_pathloss(HopProber& prober, std::span<const uint16_t> sports,
                                           const std::vector<bool>& reference,
                                           const PathlossOptions& options);

// A link blamed by at least one flow.
struct PathlossSuspect {
  int ttl = 0;
  bool from_known = false;
  IpAddress from, to;
  std::vector<uint16_t> sports;
  std::string blame;
};
std::vector<PathlossSuspect> suspects_of(std::span<const PathlossFlow> flows,
                                         std::span<const PathlossVerdict> verdicts);

}  // namespace netprobe
