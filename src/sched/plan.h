#pragma once
// The plan of one configuration: which packets an iteration sends, in which order, from which source
// address and port, and which (target, group) each one is accounted to. Built on the control plane
// whenever the configuration or a resolved address changes; the data plane only walks it.
#include <algorithm>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "config/config.h"
#include "core/clock.h"
#include "core/result.h"
#include "probes/probe.h"

namespace netprobe {

// A target ready to be probed: its configuration and its resolved destination host(s).
struct ResolvedTarget {
  const TargetConfig* config = nullptr;
  std::vector<IpAddress> hosts;  // one for a plain target, every usable address for a subnet target
};

// Where the result of a probe goes: one (target, group) pair, as netprobify reports it.
struct Bucket {
  std::string target;
  std::string group;
  ProbeType type = ProbeType::kTcpSyn;
  AddressFamily af = AddressFamily::kV4;
  std::string state;
  uint32_t target_index = 0;  // into Plan::targets
};

struct PlannedTarget {
  std::string name;
  ProbeType type = ProbeType::kTcpSyn;
  AddressFamily af = AddressFamily::kV4;
  Nanos timeout{0};
};

// 8 bytes: one per probe per iteration (1M probes = 8 MB), so everything constant per template or per
// source lives in Plan and is reached by index: the bucket through Plan::template_buckets, the source
// address through Plan::sources, "needs a RST from us" through Plan::foreign_sources.
struct PlannedProbe {
  uint32_t tmpl = 0;  // index into Plan::templates
  uint16_t src = 0;   // index into Plan::sources (build_plan refuses more than 65536 of them)
  uint16_t src_port = 0;
};
static_assert(sizeof(PlannedProbe) == 8);

// The flows of one template (target, host, group): a flow is one (source address, source port) pair, so one
// 5-tuple, so one ECMP path (ICMPping, which has no ports: one source address). The n-th probe of a template
// in plan order belongs to its flow `first + n % period`: a stream rotates through its source pairs with
// that period (PlanBuilder::interleave), so the mapping needs no per-probe memory.
//
// Only the first flows of a template are tracked (tracked_flow_budget()): per-path results need probes per
// flow to mean anything, and a group with thousands of source ports (a load-spreading choice, not a path
// map) would otherwise cost a flow's state (32 bytes in the report) for every probe. The others count in the
// (target, group) totals.
inline constexpr uint32_t kMaxTrackedFlows = 256;
inline constexpr uint32_t kMinTrackedFlows = 16;
inline constexpr uint32_t kUntrackedFlow = 0xFFFFFFFFu;
// Flows tracked for a template of `probes` probes per iteration (when it has that many): half its probes
// (a tracked flow costs at most 16 bytes per probe), at least 16, at most 256.
constexpr uint32_t tracked_flow_budget(uint32_t probes) {
  return std::min(kMaxTrackedFlows, std::max(kMinTrackedFlows, probes / 2));
}
struct TemplateFlows {
  uint32_t first = 0;   // global flow index of its flow 0
  uint32_t count = 0;   // tracked flows: min(probes of the template, period, kMaxTrackedFlows)
  uint32_t period = 1;  // source addresses x source ports (x 1 without ports)
};

struct Plan {
  std::vector<PacketTemplate> templates;      // one per (target, host, group)
  std::vector<uint32_t> template_buckets;     // per template: its index into Plan::buckets
  std::vector<TemplateFlows> template_flows;  // per template
  uint32_t flow_count = 0;                    // flows of all templates
  std::vector<Bucket> buckets;
  std::vector<PlannedTarget> targets;
  std::vector<IpAddress> sources;        // distinct source addresses of the probes
  std::vector<uint8_t> foreign_sources;  // per source: 1 when it is not an address of this host
  std::vector<PlannedProbe> probes;      // one iteration, interleaved across targets
  const IpAddress& source_of(const PlannedProbe& p) const { return sources[p.src]; }
  uint32_t bucket_of(const PlannedProbe& p) const { return template_buckets[p.tmpl]; }
  uint32_t target_of(const PlannedProbe& p) const { return buckets[bucket_of(p)].target_index; }
  // A probe from a non-local source: our kernel will not send its follow-ups (TCP's RST closing a half-open
  // connection), netprobe must (docs/netprobify-compatibility.md#d12-half-open-rst). Known for the sources of
  // types with follow-ups (Probe::has_follow_ups) only.
  bool source_is_foreign(const PlannedProbe& p) const { return foreign_sources[p.src] != 0; }
  Nanos max_timeout{0};
  double interval_packets_s = 0;
  size_t active_targets = 0;
  // Targets left out because the plan could not include them (no route to one of their addresses), each
  // with Error::target set: one bad target never stops the others.
  std::vector<Error> skipped_targets;
};

// The flow of each probe, for a walk over Plan::probes in plan order (TemplateFlows): a counter per template.
class FlowCursor {
 public:
  explicit FlowCursor(const Plan& plan) : plan_(plan), seen_(plan.templates.size(), 0) {}
  // The flow of the next probe of the walk (call once per probe, in plan order); kUntrackedFlow beyond the
  // template's tracked flows.
  uint32_t next(const PlannedProbe& p) {
    const TemplateFlows& f = plan_.template_flows[p.tmpl];
    const uint32_t local = seen_[p.tmpl]++ % f.period;
    return local < f.count ? f.first + local : kUntrackedFlow;
  }

 private:
  const Plan& plan_;
  std::vector<uint32_t> seen_;
};

// Asks the kernel which source address it would use towards `dst` (a connected UDP socket, no packet
// sent). Injected so that tests need no routing table.
using SourceResolver = std::function<std::optional<IpAddress>(const IpAddress& dst)>;
std::optional<IpAddress> kernel_source_for(const IpAddress& dst);

// Whether an address is assigned to this host (getifaddrs). Injected for the same reason.
using LocalCheck = std::function<bool(const IpAddress&)>;
LocalCheck host_local_addresses();

// Usable source addresses of a group's source subnet: network and IPv4 broadcast skipped, /31, /32,
// /127 and /128 accepted, at most `limit` addresses.
std::vector<IpAddress> source_addresses(const IpNetwork& net, size_t limit = 65536);
// Usable hosts of a subnet destination (same rules).
std::vector<IpAddress> host_addresses(const IpNetwork& net, size_t limit = kMaxSubnetHosts);

Result<Plan> build_plan(const Config& config, const std::vector<ResolvedTarget>& targets,
                        const SourceResolver& source_for,
                        const LocalCheck& is_local = host_local_addresses());

// When each probe of the plan is due, relative to the start of the iteration (non-decreasing): spread
// evenly over `window`, at most `max_pps` per second (0 = no cap), and never two packets of one target
// closer than interval_packets (netprobify's per-target gap). Pure arithmetic, so pacing is testable.
std::vector<Nanos> schedule(const Plan& plan, Nanos window, double max_pps);

// schedule() one probe at a time, for the sender: no 8-byte-per-probe vector per iteration (at 1M probes,
// 8 MB allocated, filled and freed every iteration). next() returns the due time of probe 0, 1, 2, ... in
// plan order; the plan must outlive the pacer.
class Pacer {
 public:
  Pacer(const Plan& plan, Nanos window, double max_pps);
  Nanos next();

 private:
  const Plan& plan_;
  size_t i_ = 0;
  double window_ns_;
  double max_pps_;
  Nanos gap_;
  Nanos prev_{0};
  std::vector<Nanos> last_;  // per target
};

// How one worker paces its iterations (from the configuration's global section, the rate cap shared out).
struct IterationSettings {
  double interval_s = 30;
  double max_packets_per_second = 0;
  Nanos hard_timeout{Nanos::max()};  // global.timeout: the iteration is cut short after this
  // One-shot commands: an ICMP error quoting a probe resolves it at once (IterationRunner::Options).
  bool icmp_error_resolves = false;
};

// The send window of an iteration: a share of what the interval leaves after the longest timeout (the
// rest is slack for late answers and for the end-of-iteration work).
inline constexpr double kSendWindowShare = 0.8;
Nanos send_window(const Plan& plan, double interval_s);

}  // namespace netprobe
