#include "worker/iteration.h"

#include <fmt/format.h>

namespace netprobe {
namespace {

uint64_t mix64(uint64_t x) {  // splitmix64 finaliser
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

MatchKey key_of(const Plan& plan, const PlannedProbe& p, uint32_t token) {
  const PacketTemplate& t = plan.templates[p.tmpl];
  return {t.type, t.params.dst, t.type == ProbeType::kIcmpPing ? uint16_t(0) : p.src_port, token};
}

}  // namespace

std::string icmp_error_label(AddressFamily af, uint8_t type, uint8_t code) {
  const char* name = "other";
  if (af == AddressFamily::kV4) {
    if (type == 3) name = "unreachable";
    else if (type == 11) name = "time_exceeded";
    else if (type == 12) name = "parameter_problem";
  } else {
    if (type == 1) name = "unreachable";
    else if (type == 2) name = "packet_too_big";
    else if (type == 3) name = "time_exceeded";
    else if (type == 4) name = "parameter_problem";
  }
  return fmt::format("{}:{}", name, code);
}

const std::vector<uint32_t>& IterationRunner::prepare(const Plan& plan, uint64_t iteration) {
  plan_ = &plan;
  const size_t n = plan.probes.size();
  matcher_.clear(n);
  tokens_.assign(n, 0);
  slots_.assign(n, Slot{});
  bucket_stats_.assign(plan.buckets.size(), BucketStats{});
  target_events_.clear();
  target_by_address_.clear();
  rejected_.fill(0);
  pending_resets_.clear();
  for (const auto& t : plan.targets) target_events_.push_back({t.name, t.type, t.af, 0, 0});
  // Once per template (destination host x group), not per probe: a hash-map emplace per probe was a
  // visible share of an iteration at 100k probes.
  std::vector<bool> seen(plan.templates.size(), false);
  for (const auto& p : plan.probes) {
    if (seen[p.tmpl]) continue;
    seen[p.tmpl] = true;
    target_by_address_.emplace(plan.templates[p.tmpl].params.dst, plan.buckets[p.bucket].target_index);
  }
  unresolved_ = n;

  const uint64_t seed = mix64(secret_ ^ mix64(iteration));
  for (uint32_t slot = 0; slot < n; ++slot) {
    const PlannedProbe& p = plan.probes[slot];
    const PacketTemplate& t = plan.templates[p.tmpl];
    const int bits = token_bits(t.type, t.params.af);
    const uint64_t mask = bits >= 32 ? 0xFFFFFFFFULL : ((uint64_t(1) << bits) - 1);
    // A colliding key (same destination, port and token in this iteration) takes the next salt; the
    // key space check at config load keeps collisions rare.
    for (uint64_t salt = 0;; ++salt) {
      const uint32_t token =
          apply_slice(uint32_t(mix64(seed ^ (uint64_t(slot) << 20) ^ salt) & mask), bits, slice_);
      if (token == 0) continue;  // the kernel rewrites an IPv4 IP-ID of 0
      if (matcher_.insert(key_of(plan, p, token), slot)) {
        tokens_[slot] = token;
        break;
      }
    }
  }
  return tokens_;
}

Nanos IterationRunner::timeout_of(uint32_t slot) const {
  return plan_->targets[plan_->buckets[plan_->probes[slot].bucket].target_index].timeout;
}

void IterationRunner::resolve(uint32_t slot, State state) {
  Slot& s = slots_[slot];
  if (s.state != State::kPending) return;
  s.state = state;
  --unresolved_;
}

void IterationRunner::on_packet(const CapturedPacket& packet) {
  if (!plan_) return;
  const Classification c = classify(packet.ip, packet.direction);
  switch (c.verdict) {
    case Verdict::kOwnProbe: on_own_probe(c, packet.timestamp); break;
    case Verdict::kAnswer: on_answer(c, packet.timestamp); break;
    case Verdict::kIcmpError: on_icmp_error(c); break;
    case Verdict::kReject:
      // Outgoing packets that are not probes (the kernel's own RSTs, ...) are normal: not counted.
      if (packet.direction == Direction::kIncoming) ++rejected_[size_t(c.reason)];
      break;
  }
}

void IterationRunner::on_own_probe(const Classification& c, Nanos at) {
  uint32_t slot;
  if (!matcher_.find(c.key, &slot)) return;  // another prober's packet, or a previous iteration's
  Slot& s = slots_[slot];
  if (!s.captured) {
    s.sent_at = at;
    s.captured = true;
  }
  matcher_.on_sent(slot, at, at + timeout_of(slot));
}

void IterationRunner::on_answer(const Classification& c, Nanos at) {
  uint32_t slot;
  if (!matcher_.find(c.key, &slot)) {
    // A TCP answer from one of our targets that maps to no probe: netprobify's match_ack_fail.
    if (c.key.type == ProbeType::kTcpSyn) {
      auto it = target_by_address_.find(c.key.target);
      if (it != target_by_address_.end()) ++target_events_[it->second].match_ack_fail;
    }
    ++rejected_[kUnmatched];
    return;
  }
  const PlannedProbe& p = plan_->probes[slot];
  const PacketTemplate& t = plan_->templates[p.tmpl];
  // The answer must come back to the address the probe left from (a spoofed reply to another address
  // of ours is not an answer), and a TCP ack must be exact.
  if (c.local != plan_->source_of(p)) {
    ++rejected_[kWrongLocalAddress];
    return;
  }
  if (c.key.type == ProbeType::kTcpSyn &&
      !tcp_ack_matches(tokens_[slot] << kTcpSeqShift, t.l4_payload_size, c.tcp_ack, c.tcp_flags)) {
    ++target_events_[plan_->buckets[p.bucket].target_index].match_ack_fail;
    return;
  }
  if (p.needs_rst && (c.tcp_flags & 0x02)) pending_resets_.push_back(slot);  // SYN-ACK: half-open
  const TakeResult r = matcher_.take_slot(slot, at);  // found above: no second lookup
  BucketStats& b = bucket_stats_[p.bucket];
  switch (r.outcome) {
    case MatchOutcome::kMatched:
      if (slots_[slot].state == State::kPending) {
        slots_[slot].answered_at = at;
        resolve(slot, State::kAnswered);
      }
      break;
    case MatchOutcome::kLate: ++b.late; break;
    case MatchOutcome::kDuplicate: ++b.duplicates; break;
    case MatchOutcome::kUnknown: break;
  }
}

void IterationRunner::on_icmp_error(const Classification& c) {
  uint32_t slot;
  if (!matcher_.find(c.key, &slot)) {
    ++rejected_[kUnmatchedIcmpError];
    return;
  }
  Slot& s = slots_[slot];
  if (s.icmp_error) return;  // count one error per probe
  s.icmp_error = true;
  ++bucket_stats_[plan_->probes[slot].bucket].icmp_errors[icmp_error_label(c.key.target.af, c.icmp_type, c.icmp_code)];
}

void IterationRunner::mark_unsent(uint32_t slot) { resolve(slot, State::kUnsent); }

void IterationRunner::arm_unseen() {
  for (uint32_t slot = 0; slot < slots_.size(); ++slot) {
    Slot& s = slots_[slot];
    if (s.state == State::kUnsent || s.captured) continue;
    if (s.state == State::kPending || s.state == State::kAnswered) {
      matcher_.on_sent(slot, s.sent_at, s.sent_at + timeout_of(slot));
    }
  }
}

bool IterationRunner::expire(Nanos now) {
  matcher_.expire(now, [this](uint32_t slot) { resolve(slot, State::kLost); });
  return unresolved_ == 0;
}

IterationReport IterationRunner::report() const {
  IterationReport out;
  if (!plan_) return out;
  out.groups.resize(plan_->buckets.size());
  for (size_t b = 0; b < plan_->buckets.size(); ++b) {
    const Bucket& bk = plan_->buckets[b];
    GroupMeasurement& g = out.groups[b];
    g.target = bk.target;
    g.group = bk.group;
    g.type = bk.type;
    g.af = bk.af;
    g.state = bk.state;
    g.late = bucket_stats_[b].late;
    g.duplicates = bucket_stats_[b].duplicates;
    g.icmp_errors = bucket_stats_[b].icmp_errors;
  }
  for (uint32_t slot = 0; slot < slots_.size(); ++slot) {
    const Slot& s = slots_[slot];
    if (s.state == State::kUnsent) {
      ++out.send_errors;
      continue;
    }
    GroupMeasurement& g = out.groups[plan_->probes[slot].bucket];
    ++g.sent;
    if (s.state != State::kAnswered) {
      ++g.lost;  // lost, or still pending when the iteration was cut short
      continue;
    }
    const Nanos rtt = s.answered_at - s.sent_at;
    if (s.sent_at == Nanos(0) || rtt < Nanos(0)) {
      ++g.time_ooo;  // answered, but no usable send time: excluded from the percentiles
      continue;
    }
    g.rtts_s.push_back(std::chrono::duration<double>(rtt).count());
  }
  out.targets = target_events_;
  for (size_t r = 0; r < size_t(RejectReason::kCount); ++r)
    if (rejected_[r]) out.rejected[std::string(to_string(RejectReason(r)))] = rejected_[r];
  if (rejected_[kUnmatched]) out.rejected["unmatched"] = rejected_[kUnmatched];
  if (rejected_[kWrongLocalAddress]) out.rejected["wrong_local_address"] = rejected_[kWrongLocalAddress];
  if (rejected_[kUnmatchedIcmpError]) out.rejected["unmatched_icmp_error"] = rejected_[kUnmatchedIcmpError];
  return out;
}

}  // namespace netprobe
