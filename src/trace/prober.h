#pragma once
// TTL-limited probes on netprobe's engine (docs/trace.md). Every probe of a flow keeps the flow's 5-tuple
// (Paris traceroute's rule): one Plan template per TTL, the source port per probe, the token where it always
// was (TCP sequence, IPv4 IP-ID / UDP checksum, IPv6 UDP payload word: outside ECMP hashes, inside the
// 8 bytes an ICMP error quotes), so a router's Time Exceeded is matched to its probe by token only.
#include <atomic>
#include <cstdint>
#include <span>
#include <string>
#include <tuple>
#include <vector>

#include "core/net.h"
#include "engine/iteration.h"
#include "probes/reply_info.h"
#include "sched/plan.h"
#include "session/session.h"

namespace netprobe {

struct TraceTarget {
  std::string name;  // as given on the command line
  ProbeType type = ProbeType::kTcpSyn;
  IpAddress dst;
  IpAddress src;          // the kernel's source towards dst
  uint16_t dst_port = 0;  // 0 for ICMPping
};

// One TTL-limited probe: a flow (its source port; ICMP echo: its checksum) and a TTL.
struct ProbeSpec {
  uint16_t sport = 0;
  uint8_t ttl = 0;
  friend bool operator==(const ProbeSpec&, const ProbeSpec&) = default;
};

// What came back for one probe.
struct HopReply {
  enum class Kind : uint8_t {
    kNone,          // nothing before the timeout
    kTimeExceeded,  // a router on the way: `from` is the hop
    kDestination,   // the target's own answer (or an ICMP error the target itself sent)
    kUnreachable,   // a router refused it (destination unreachable from a router): the flow ends there
    kOther,         // another ICMP error from a router (parameter problem, packet too big)
  };
  Kind kind = Kind::kNone;
  IpAddress from;
  double rtt_s = -1;                     // -1: unknown (no usable send time)
  uint8_t icmp_type = 0, icmp_code = 0;  // ICMP errors (and UDP's port unreachable from the target)
  uint8_t reply_ttl = 0;                 // TTL / hop limit of the reply as received
  uint8_t mpls_count = 0;
  std::array<MplsLabel, ReplyInfo::kMaxLabels> mpls{};
  bool answered() const { return kind != Kind::kNone; }
  // The flow goes no further than this hop.
  bool ends_flow() const { return kind == Kind::kDestination || kind == Kind::kUnreachable; }
};
std::string_view to_string(HopReply::Kind kind);

// An order on addresses for maps and sorted output (IPv4 first, then by bytes).
struct AddrLess {
  bool operator()(const IpAddress& a, const IpAddress& b) const {
    return std::tie(a.af, a.bytes) < std::tie(b.af, b.bytes);
  }
};

// What one probe event says about its hop.
HopReply hop_reply_of(const ProbeEvent& event, const IpAddress& dst);

// The plan of one batch of probes, in the given order: a template per distinct TTL (probe_for(type)
// .make_template() with params.ttl set; ICMP echo with the flow's id as its checksum,
// make_paris_checksum()), one bucket and one target, no tracked flows (src/paths is not
// involved), paced at `rate_pps` (the per-target gap and the cap).
Plan build_trace_plan(const TraceTarget& target, std::span<const ProbeSpec> probes, double timeout_s,
                      double rate_pps);

// Sends batches of TTL-limited probes and returns one HopReply per probe, in order. An interface so that
// the algorithms (trace.h, pathloss.h) run in unit tests over a scripted network.
class HopProber {
 public:
  virtual ~HopProber() = default;
  virtual std::vector<HopReply> probe(std::span<const ProbeSpec> probes) = 0;
  // The same, each probe leaving at its time (`send_at`: the monotonic clock, one per probe) rather than at
  // the prober's own pace: for a caller that reserved the times from a budget (on-demand tests). A prober
  // that cannot schedule ignores them.
  virtual std::vector<HopReply> probe_at(std::span<const ProbeSpec> probes, std::span<const Nanos> send_at) {
    (void)send_at;
    return probe(probes);
  }
  // True once the user interrupted the run: the algorithms stop asking.
  virtual bool stopped() const { return false; }
};

// Over a Session: one iteration per batch, each ICMP error resolving its probe at once (the iteration ends
// as soon as every probe has its hop's answer or its timeout).
class SessionProber final : public HopProber {
 public:
  SessionProber(Session& session, TraceTarget target, double timeout_s, double rate_pps)
      : session_(session), target_(std::move(target)), timeout_s_(timeout_s), rate_pps_(rate_pps) {}
  std::vector<HopReply> probe(std::span<const ProbeSpec> probes) override;
  bool stopped() const override { return stopped_ || !error_.empty(); }
  void stop() { stopped_ = true; }
  // Non-empty once the capture failed: every later batch would read as silence.
  const std::string& error() const { return error_; }
  uint64_t sent() const { return sent_; }
  const TraceTarget& target() const { return target_; }

 private:
  Session& session_;
  TraceTarget target_;
  double timeout_s_;
  double rate_pps_;
  std::atomic<bool> stopped_{false};
  std::string error_;
  uint64_t sent_ = 0;
};

// Largest batch handed to one iteration: well inside every type's token space per destination (IPv4 UDP:
// 16 index bits), and a bounded wait for the batch's last answers.
inline constexpr size_t kMaxBatch = 4096;

}  // namespace netprobe
