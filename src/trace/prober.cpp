#include "trace/prober.h"

#include <algorithm>
#include <map>

#include "probes/icmp_echo.h"

namespace netprobe {

std::string_view to_string(HopReply::Kind kind) {
  switch (kind) {
    case HopReply::Kind::kNone:
      return "none";
    case HopReply::Kind::kTimeExceeded:
      return "time_exceeded";
    case HopReply::Kind::kDestination:
      return "destination";
    case HopReply::Kind::kUnreachable:
      return "unreachable";
    case HopReply::Kind::kOther:
      return "other";
  }
  return "none";
}

HopReply hop_reply_of(const ProbeEvent& e, const IpAddress& dst) {
  HopReply h;
  const auto copy = [&](const ReplyInfo& r, double rtt) {
    h.from = r.from;
    h.rtt_s = rtt;
    h.icmp_type = r.icmp_type;
    h.icmp_code = r.icmp_code;
    h.reply_ttl = r.ttl;
    h.mpls_count = uint8_t(std::min<size_t>(r.mpls_count, r.mpls.size()));
    h.mpls = r.mpls;
  };
  if (e.has_reply) {
    copy(e.reply, e.reply_rtt_s);
    h.kind = HopReply::Kind::kDestination;
    return h;
  }
  if (!e.has_error) return h;
  copy(e.error, e.error_rtt_s);
  const bool v4 = dst.af == AddressFamily::kV4;
  const uint8_t time_exceeded = v4 ? 11 : 3, unreachable = v4 ? 3 : 1;
  if (e.error.icmp_type == time_exceeded)
    h.kind = HopReply::Kind::kTimeExceeded;
  else if (e.error.from == dst)
    h.kind = HopReply::Kind::kDestination;  // the target refused it itself (admin prohibited, ...)
  else if (e.error.icmp_type == unreachable)
    h.kind = HopReply::Kind::kUnreachable;
  else
    h.kind = HopReply::Kind::kOther;
  return h;
}

Plan build_trace_plan(const TraceTarget& target, std::span<const ProbeSpec> probes, double timeout_s,
                      double rate_pps) {
  Plan plan;
  const AddressFamily af = target.dst.af;
  const auto timeout = Nanos(int64_t(timeout_s * 1e9));
  plan.targets.push_back({target.name, target.type, af, timeout});
  plan.buckets.push_back({target.name, "trace", target.type, af, "", 0});
  plan.sources = {target.src};
  plan.foreign_sources = {0};
  plan.max_timeout = timeout;
  plan.active_targets = 1;
  plan.interval_packets_s = rate_pps > 0 ? 1.0 / rate_pps : 0;
  std::map<uint8_t, uint32_t> by_ttl;
  const Probe& probe = probe_for(target.type);
  plan.probes.reserve(probes.size());
  for (const ProbeSpec& s : probes) {
    auto [it, added] = by_ttl.emplace(s.ttl, uint32_t(plan.templates.size()));
    if (added) {
      ProbeParams params;
      params.af = af;
      params.src = target.src;
      params.dst = target.dst;
      params.dst_port = target.dst_port;
      params.ttl = s.ttl;
      // ICMP echo: its checksum is the flow's id (Paris traceroute), held by a payload word.
      const bool paris = target.type == ProbeType::kIcmpPing;
      if (paris) params.ip_payload_size = 10;
      plan.templates.push_back(probe.make_template(params));
      if (paris) make_paris_checksum(plan.templates.back());
      plan.template_buckets.push_back(0);
      plan.template_flows.push_back({0, 0, 1});  // no per-path tally: trace keeps its own per flow
    }
    plan.probes.push_back({it->second, 0, s.sport});  // ICMP echo: the flow's id, its checksum
  }
  return plan;
}

std::vector<HopReply> SessionProber::probe(std::span<const ProbeSpec> probes) {
  std::vector<HopReply> out(probes.size());
  for (size_t at = 0; at < probes.size() && !stopped(); at += kMaxBatch) {
    const auto batch = probes.subspan(at, std::min(kMaxBatch, probes.size() - at));
    const Plan plan = build_trace_plan(target_, batch, timeout_s_, rate_pps_);
    IterationSettings settings;
    settings.interval_s = 0;  // no spreading: the per-target gap paces the batch
    settings.max_packets_per_second = rate_pps_;
    settings.icmp_error_resolves = true;
    const double send_s = rate_pps_ > 0 ? double(batch.size()) / rate_pps_ : 0;
    settings.hard_timeout = Nanos(int64_t((send_s + timeout_s_ + 10) * 1e9));
    session_.run(plan, settings, 1, {}, [&](int, std::span<const ProbeEvent> events) {
      for (const ProbeEvent& e : events) {
        if (e.slot >= batch.size() || e.state == ProbeEvent::State::kUnsent) continue;
        ++sent_;
        out[at + e.slot] = hop_reply_of(e, target_.dst);
      }
    });
    if (error_.empty()) error_ = session_.capture_error();
  }
  return out;
}

}  // namespace netprobe
