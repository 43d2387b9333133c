#include "engine/iteration.h"

#include <fmt/format.h>

#include <algorithm>

#include "core/hash.h"
#include "probes/udp_query.h"
#include "wire/l4.h"

namespace netprobe {

std::string icmp_error_label(AddressFamily af, uint8_t type, uint8_t code) {
  const char* name = "other";
  if (af == AddressFamily::kV4) {
    if (type == 3)
      name = "unreachable";
    else if (type == 11)
      name = "time_exceeded";
    else if (type == 12)
      name = "parameter_problem";
  } else {
    if (type == 1)
      name = "unreachable";
    else if (type == 2)
      name = "packet_too_big";
    else if (type == 3)
      name = "time_exceeded";
    else if (type == 4)
      name = "parameter_problem";
  }
  return fmt::format("{}:{}", name, code);
}

std::span<const uint32_t> IterationRunner::prepare(const Plan& plan, uint64_t iteration) {
  // The previous iteration's book is valid only if it was finished (its plan may be gone otherwise).
  if (plan_ != nullptr) previous_book_ = TupleBook{};
  plan_ = &plan;
  const size_t n = plan.probes.size();
  seed_ = splitmix64(secret_ ^ splitmix64(iteration));
  bucket_stats_.assign(plan.buckets.size(), BucketStats{});
  target_events_.clear();
  for (const auto& t : plan.targets) target_events_.push_back({t.name, t.type, t.af, 0, 0});
  rejected_.fill(0);
  unsent_.fill(0);
  pending_resets_.clear();
  stale_resets_.clear();
  expire_cursor_ = 0;
  sent_end_ = 0;
  details_on_ = options_.reply_details;
  details_.clear();
  duplicate_details_.clear();
  if (details_on_) details_.resize(n);

  // Destinations: one per (type, address), shared by every template (group, target) probing it, since
  // replies carry no more than the address, the port and the token.
  destination_index_.clear(plan.templates.size());
  destinations_.clear();
  permutations_.clear();
  template_destination_.resize(plan.templates.size());
  template_timeout_.resize(plan.templates.size());
  for (uint32_t t = 0; t < plan.templates.size(); ++t) {
    const PacketTemplate& tmpl = plan.templates[t];
    const auto next = uint32_t(destinations_.size());
    const uint32_t d = destination_index_.insert(tmpl.type, tmpl.params.dst, next);
    if (d == next) {
      Destination dest;
      dest.type_bits = uint8_t(token_bits(tmpl.type, tmpl.params.af));
      dest.check_bits = uint8_t(check_bits(tmpl.type, tmpl.params.af));
      dest.bits = uint8_t(std::max(0, int(dest.type_bits) - slice_.bits));
      destinations_.push_back(dest);
      permutations_.emplace_back(splitmix64(seed_ ^ (uint64_t(d) << 1)), std::max(1, int(dest.bits)));
    }
    template_destination_[t] = d;
    template_timeout_[t] = plan.targets[plan.buckets[plan.template_buckets[t]].target_index].timeout.count();
  }
  for (const PlannedProbe& p : plan.probes) {
    Destination& d = destinations_[template_destination_[p.tmpl]];
    if (d.count++ == 0) d.target = plan.target_of(p);
  }
  uint32_t first = 0;
  for (Destination& d : destinations_) {
    d.first = first;
    first += d.count;
    d.count = 0;  // counts again below, as the fill cursor
  }

  tokens_.resize(n);
  by_ordinal_.resize(n);
  slots_.assign(n, Slot{});
  unresolved_ = n;
  for (uint32_t slot = 0; slot < n; ++slot) {
    const uint32_t di = template_destination_[plan.probes[slot].tmpl];
    Destination& d = destinations_[di];
    const uint32_t ordinal = d.count++;
    by_ordinal_[d.first + ordinal] = slot;
    const TokenPermutation& perm = permutations_[di];
    if (d.bits == 0 || ordinal >= perm.capacity()) {
      // More probes to this destination than tokens: it cannot be sent (the engine skips token 0).
      tokens_[slot] = 0;
      slots_[slot].state = State::kUnsent;
      --unresolved_;
      ++unsent_[kUnsentNoToken];
      slots_[slot].flags = uint8_t((1 + kUnsentNoToken) << kSendErrorShift);
      continue;
    }
    const uint32_t index = apply_slice(perm.encode(ordinal), d.type_bits, slice_);
    tokens_[slot] = wire_token(seed_, di, ordinal, index, d.check_bits);
  }
  return {tokens_.data(), n};
}

uint32_t IterationRunner::wire_token(uint64_t seed, uint32_t dest, uint32_t ordinal, uint32_t index,
                                     int check_bits) noexcept {
  if (check_bits <= 0) return index;
  // Keyed random bits that are only compared, never decoded; never all zero (an IPv4 UDP checksum of 0
  // means "none").
  const uint64_t h = splitmix64(seed ^ splitmix64((uint64_t(dest) << 32) | ordinal) ^ 0xC3A5C85C97CB3127ULL);
  const uint32_t check = uint32_t(h % ((uint64_t(1) << check_bits) - 1)) + 1;
  return check_bits >= 32 ? check : (index << check_bits) | check;
}

uint32_t IterationRunner::slot_of(const MatchKey& key, uint32_t* dest) const noexcept {
  const uint32_t di = destination_index_.find(key.type, key.target);
  *dest = di;
  if (di == DestinationIndex::kNone) return kNoSlot;
  const Destination& d = destinations_[di];
  if (d.bits == 0) return kNoSlot;
  uint32_t low = key.token;
  if (slice_.bits > 0) {
    const int shift = d.type_bits - slice_.bits;
    if ((uint64_t(key.token) >> shift) != slice_.index) return kNoSlot;  // another worker's token
    low = key.token & uint32_t((uint64_t(1) << shift) - 1);
  }
  const uint32_t ordinal = permutations_[di].decode(low);
  if (ordinal >= d.count) return kNoSlot;  // also TokenPermutation::kNone
  return by_ordinal_[d.first + ordinal];
}

uint32_t IterationRunner::matched_slot(const Classification& c, uint32_t* dest,
                                       bool* indexed) const noexcept {
  const Probe& probe = probe_for(c.key.type);
  uint32_t candidates[2];
  const int n = probe.index_candidates(c, candidates);
  *indexed = false;
  *dest = DestinationIndex::kNone;
  for (int i = 0; i < n; ++i) {
    MatchKey key = c.key;
    key.token = candidates[i];
    const uint32_t slot = slot_of(key, dest);
    if (slot == kNoSlot) continue;
    *indexed = true;
    const PlannedProbe& p = plan_->probes[slot];
    if (probe.proof_matches(tokens_[slot], plan_->templates[p.tmpl].l4_payload_size, c)) return slot;
  }
  return kNoSlot;
}

Nanos IterationRunner::timeout_of(uint32_t slot) const {
  return Nanos(template_timeout_[plan_->probes[slot].tmpl]);
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
  current_packet_ = packet.ip;
  switch (c.verdict) {
    case Verdict::kOwnProbe:
      on_own_probe(c, packet.timestamp);
      break;
    case Verdict::kAnswer:
      on_answer(c, packet.timestamp);
      break;
    case Verdict::kIcmpError:
      on_icmp_error(c, packet.timestamp);
      break;
    case Verdict::kTcpPureAck:
      on_pure_ack(c, packet.timestamp);
      break;
    case Verdict::kReject:
      // Outgoing packets that are not probes (the kernel's own RSTs, ...) are normal: not counted.
      if (packet.direction == Direction::kIncoming) ++rejected_[size_t(c.reason)];
      break;
  }
}

void IterationRunner::set_send_time(Slot& s, int64_t at) noexcept {
  if (s.flags & kRttPending) {
    s.rtt_ns = float(s.time - at);
    s.flags &= uint8_t(~kRttPending);
  } else if (s.state == State::kAnswered) {
    s.rtt_ns = float(double(s.rtt_ns) + double(s.time - at));  // a more exact send time
  }
  s.time = at;
}

void IterationRunner::on_own_probe(const Classification& c, Nanos at) {
  uint32_t dest;
  bool indexed;
  const uint32_t slot = matched_slot(c, &dest, &indexed);
  if (slot == kNoSlot) return;  // another prober's packet, a previous iteration's, the host's own SYN
  const PlannedProbe& p = plan_->probes[slot];
  if (probe_for(c.key.type).has_ports() && c.key.local_port != p.src_port) return;
  if (slot >= sent_end_) sent_end_ = slot + 1;
  Slot& s = slots_[slot];
  if (!(s.flags & kCaptured)) {
    set_send_time(s, at.count());
    s.flags |= kCaptured;
  }
}

void IterationRunner::on_answer(const Classification& c, Nanos at) {
  if (c.key.type == ProbeType::kUdpQuery) {
    // Not UDPquery's (no such destination): the datagram is no answer of any type.
    if (!on_udp_query(c, at, /*quoted=*/false)) ++rejected_[size_t(RejectReason::kNotAReply)];
    return;
  }
  // A UDP port unreachable: UDPquery's "closed" when it quotes one of its probes.
  if (c.key.type == ProbeType::kUdpUnreachable && on_udp_query(c, at, /*quoted=*/true)) return;
  uint32_t dest;
  bool indexed;
  const uint32_t slot = matched_slot(c, &dest, &indexed);
  if (slot == kNoSlot) {
    // A TCP answer from one of our destinations that maps to no probe: netprobify's match_ack_fail.
    if (probe_for(c.key.type).counts_unmatched_answers() && dest != DestinationIndex::kNone)
      ++target_events_[destinations_[dest].target].match_ack_fail;
    // Its index designates a probe but the rest of the token is wrong: what a blind forger produces.
    ++rejected_[indexed ? kWrongToken : kUnmatched];
    return;
  }
  const PlannedProbe& p = plan_->probes[slot];
  const uint32_t target = destinations_[dest].target;
  // The token designates a probe, but it left from another port: netprobify's port_mismatch.
  const Probe& probe = probe_for(c.key.type);
  if (probe.has_ports() && c.key.local_port != p.src_port) {
    ++target_events_[target].port_mismatch;
    return;
  }
  // The answer must come back to the address the probe left from (a spoofed reply to another address
  // of ours is not an answer); a quoted probe (UDP's port unreachable) must also name its port.
  if (c.local != plan_->source_of(p)) {
    ++rejected_[kWrongLocalAddress];
    return;
  }
  if (probe.answer_quotes_probe() && c.remote_port != plan_->templates[p.tmpl].params.dst_port) {
    ++rejected_[kWrongQuote];
    return;
  }
  if (plan_->source_is_foreign(p) && probe.needs_follow_up(c))
    pending_resets_.push_back(slot);  // SYN-ACK: half-open
  account_answer(slot, at);
}

void IterationRunner::account_answer(uint32_t slot, Nanos at) {
  const PlannedProbe& p = plan_->probes[slot];
  Slot& s = slots_[slot];
  // The bucket only for late and duplicate answers: one random access less on the common path.
  auto bucket = [&]() -> BucketStats& { return bucket_stats_[plan_->bucket_of(p)]; };
  const bool first_reply = !(s.flags & kReplied);
  s.flags |= kReplied;
  if (details_on_) record_reply(slot, first_reply, at);
  switch (s.state) {
    case State::kUnsent:
      break;  // the kernel refused it: nothing to account
    case State::kAnswered:
    case State::kUnexpected:  // UDPquery: already judged by an earlier answer, or closed
    case State::kClosed:
      ++bucket().duplicates;
      break;
    case State::kLost:
      ++(first_reply ? bucket().late : bucket().duplicates);
      break;
    case State::kPending:
      if (s.time == 0) {
        // A reply before any send time is known proves the probe left: an answer, its RTT comes with
        // the send time.
        s.time = at.count();
        s.flags |= kRttPending;
      } else if (at.count() > s.time + timeout_of(slot).count()) {
        ++bucket().late;
        resolve(slot, State::kLost);
        break;
      } else {
        s.rtt_ns = float(at.count() - s.time);
      }
      resolve(slot, State::kAnswered);
      break;
  }
}

// ---- Two-way loss (docs/architecture.md#two-way-loss) ------------------------------------------------

void IterationRunner::record_tuples() {
  if (!plan_) return;
  const Plan& plan = *plan_;
  TupleBook& b = previous_book_;
  b.index = destination_index_;
  b.destinations = destinations_;
  b.permutations = permutations_;
  b.seed = seed_;
  b.sources = plan.sources;
  // Only TCPsyn destinations are ever looked up (a pure ACK is TCP): the others take no room.
  std::vector<uint8_t> is_tcp(destinations_.size(), 0);
  for (uint32_t t = 0; t < plan.templates.size(); ++t)
    if (plan.templates[t].type == ProbeType::kTcpSyn) is_tcp[template_destination_[t]] = 1;
  b.tuple_first.assign(destinations_.size(), 0);
  uint32_t tcp_probes = 0;
  for (uint32_t d = 0; d < destinations_.size(); ++d) {
    b.tuple_first[d] = tcp_probes;
    if (is_tcp[d]) tcp_probes += destinations_[d].count;
  }
  b.tuples.resize(tcp_probes);
  for (uint32_t d = 0; d < destinations_.size(); ++d) {
    if (!is_tcp[d]) continue;
    const Destination& dest = destinations_[d];
    for (uint32_t o = 0; o < dest.count; ++o) {
      const PlannedProbe& p = plan.probes[by_ordinal_[dest.first + o]];
      b.tuples[b.tuple_first[d] + o] = {p.src_port, plan.templates[p.tmpl].params.dst_port, p.src};
    }
  }
}

uint32_t IterationRunner::acked_probe_on_tuple(const Classification& c, uint32_t dest) const noexcept {
  // A half-open connection acknowledges its SYN alone, exactly as its SYN-ACK did (never the payload).
  auto exact = [&](uint32_t wire) { return tcp_ack_matches(wire, 0, c.proof, /*SYN|ACK*/ 0x12); };
  // This iteration: the token decodes to a probe sent on the same 4-tuple.
  uint32_t d;
  const uint32_t e = slot_of(c.key, &d);
  if (e != kNoSlot && d == dest) {
    const PlannedProbe& p = plan_->probes[e];
    const Slot& s = slots_[e];
    if (s.state != State::kUnsent && s.time != 0 && p.src_port == c.key.local_port &&
        plan_->templates[p.tmpl].params.dst_port == c.remote_port && plan_->source_of(p) == c.local &&
        exact(tokens_[e]))
      return e;
  }
  // The previous iteration: its own permutation, destinations and tuples (its plan is gone).
  const TupleBook& b = previous_book_;
  const uint32_t pd = b.index.find(ProbeType::kTcpSyn, c.key.target);
  if (pd == DestinationIndex::kNone || pd >= b.destinations.size() || pd >= b.tuple_first.size())
    return kNoSlot;
  const Destination& pdest = b.destinations[pd];
  if (pdest.bits == 0) return kNoSlot;
  uint32_t low = c.key.token;
  if (slice_.bits > 0) {
    const int shift = pdest.type_bits - slice_.bits;
    if ((uint64_t(c.key.token) >> shift) != slice_.index) return kNoSlot;
    low = c.key.token & uint32_t((uint64_t(1) << shift) - 1);
  }
  const uint32_t ordinal = b.permutations[pd].decode(low);
  if (ordinal >= pdest.count) return kNoSlot;
  const size_t i = size_t(b.tuple_first[pd]) + ordinal;
  if (i >= b.tuples.size()) return kNoSlot;
  const Tuple& t = b.tuples[i];
  const bool same_tuple = t.src_port == c.key.local_port && t.dst_port == c.remote_port &&
                          t.source < b.sources.size() && b.sources[t.source] == c.local;
  return same_tuple && exact(wire_token(b.seed, pd, ordinal, c.key.token, pdest.check_bits))
             ? kPreviousIteration
             : kNoSlot;
}

uint32_t IterationRunner::latest_on_tuple(const Classification& c, uint32_t dest, Nanos at) const {
  // A destination's ordinals are in slot order, and slots leave in order: the probes already handed to
  // the sender are the ordinals whose slot is below sent_end_. Walk back from the latest of them, over
  // at most the probes of one timeout (older ones are resolved) and a hard bound.
  constexpr uint32_t kMaxWalk = 1u << 16;
  const Destination& d = destinations_[dest];
  const uint32_t* begin = by_ordinal_.data() + d.first;
  uint32_t o = uint32_t(std::lower_bound(begin, begin + d.count, sent_end_) - begin);
  for (uint32_t steps = 0; o > 0 && steps < kMaxWalk; ++steps) {
    --o;
    const uint32_t slot = begin[o];
    const Slot& s = slots_[slot];
    if (s.time != 0 && !(s.flags & kRttPending) && s.time + timeout_of(slot).count() < at.count()) break;
    const PlannedProbe& p = plan_->probes[slot];
    if (p.src_port != c.key.local_port || plan_->templates[p.tmpl].params.dst_port != c.remote_port ||
        plan_->source_of(p) != c.local)
      continue;
    if (s.state == State::kUnsent) continue;
    return slot;
  }
  return kNoSlot;
}

void IterationRunner::on_pure_ack(const Classification& c, Nanos at) {
  // A pure ACK on a probe's 4-tuple that acknowledges an EARLIER probe of ours on that same 4-tuple comes
  // from the half-open connection that earlier probe left (its RST was lost): the target answers any
  // segment out of its window that way, here the latest SYN, so that SYN arrived. Anything else (a
  // forged or foreign ACK, a token that decodes to nothing of ours on this 4-tuple) proves nothing.
  const uint32_t dest = destination_index_.find(ProbeType::kTcpSyn, c.key.target);
  const uint32_t earlier = dest == DestinationIndex::kNone ? kNoSlot : acked_probe_on_tuple(c, dest);
  const uint32_t slot = earlier == kNoSlot ? kNoSlot : latest_on_tuple(c, dest, at);
  // Slots leave in order: the acknowledged probe of this iteration must have left before the one it proves
  // (a pure ACK of the latest SYN itself proves nothing new).
  if (slot == kNoSlot || (earlier != kPreviousIteration && earlier >= slot)) {
    ++rejected_[kUnprovenAck];
    return;
  }
  account_answer(slot, at);
  // Our kernel answers the ACK with a RST (seq = its ack) when the source is local; that RST can be lost
  // like the first one, and the target then ignores every SYN on this 4-tuple for its ACK rate limit
  // (500 ms on Linux) without a word: send our own copies too.
  stale_resets_.push_back({slot, c.proof - 1});  // the earlier probe's seq: the RST's seq is the ack
}

void IterationRunner::on_icmp_error(const Classification& c, Nanos at) {
  if (c.key.type == ProbeType::kUdpUnreachable && on_udp_query(c, at, /*quoted=*/true)) return;
  uint32_t dest;
  bool indexed;
  const uint32_t slot = matched_slot(c, &dest, &indexed);
  if (slot == kNoSlot) {
    ++rejected_[indexed ? kWrongToken : kUnmatchedIcmpError];
    return;
  }
  // The quote must be our probe as it left: from its source address and port, to its port (any router
  // may send the error, so the outer source proves nothing).
  const PlannedProbe& p = plan_->probes[slot];
  if ((probe_for(c.key.type).has_ports() &&
       (c.key.local_port != p.src_port || c.remote_port != plan_->templates[p.tmpl].params.dst_port)) ||
      c.local != plan_->source_of(p)) {
    ++rejected_[kWrongQuote];
    return;
  }
  note_icmp_error(slot, c, at);
}

void IterationRunner::note_icmp_error(uint32_t slot, const Classification& c, Nanos at) {
  const PlannedProbe& p = plan_->probes[slot];
  Slot& s = slots_[slot];
  if (s.flags & kIcmpError) return;  // count one error per probe
  s.flags |= kIcmpError;
  s.icmp_type = c.icmp_type;
  s.icmp_code = c.icmp_code;
  if (details_on_) record_error(slot, at);
  if (options_.icmp_error_resolves) resolve(slot, State::kLost);
  BucketStats& b = bucket_stats_[plan_->bucket_of(p)];
  const auto type_code = uint16_t(c.icmp_type << 8 | c.icmp_code);
  for (IcmpErrorCount& e : b.icmp_errors) {
    if (e.count == 0) e.type_code = type_code;
    if (e.type_code == type_code) {
      ++e.count;
      return;
    }
  }
  ++b.icmp_errors_overflow;
}

// ---- UDPquery (probes/udp_query.h, docs/service-checks.md#udpquery) ------------------------------------

bool IterationRunner::on_udp_query(const Classification& c, Nanos at, bool quoted) {
  const uint32_t dest = destination_index_.find(ProbeType::kUdpQuery, c.key.target);
  if (dest == DestinationIndex::kNone) return false;
  udpquery::SeenDatagram seen;
  if (!udpquery::parse_datagram(current_packet_, quoted, seen)) {
    ++rejected_[size_t(quoted ? RejectReason::kQuoteTruncated : RejectReason::kTruncated)];
    return true;
  }
  // The destination's probes handed to the sender, latest first, over one timeout at most (older ones are
  // resolved) and a hard bound: the answer's 5-tuple first, then its token. Without a token the latest
  // probe on the 5-tuple is the one (the configuration keeps one probe per flow in flight).
  constexpr uint32_t kMaxWalk = 1u << 16;
  const Destination& d = destinations_[dest];
  const uint32_t* begin = by_ordinal_.data() + d.first;
  uint32_t o = uint32_t(std::lower_bound(begin, begin + d.count, sent_end_) - begin);
  bool on_tuple = false;
  udpquery::Outcome outcome = udpquery::Outcome::kNotOurs;
  uint32_t slot = kNoSlot;
  for (uint32_t steps = 0; o > 0 && steps < kMaxWalk; ++steps) {
    --o;
    const uint32_t e = begin[o];
    const Slot& s = slots_[e];
    if (s.time != 0 && !(s.flags & kRttPending) && s.time + timeout_of(e).count() < at.count()) break;
    if (s.state == State::kUnsent) continue;
    const PlannedProbe& p = plan_->probes[e];
    const PacketTemplate& tmpl = plan_->templates[p.tmpl];
    if (p.src_port != c.key.local_port || tmpl.params.dst_port != c.remote_port ||
        plan_->source_of(p) != c.local)
      continue;
    on_tuple = true;
    if (quoted) {
      if (!udpquery::quote_matches(tmpl, tokens_[e], seen.ip_id, seen.payload)) continue;
    } else {
      outcome = udpquery::match_answer(tmpl, tokens_[e], seen.payload);
      if (outcome == udpquery::Outcome::kNotOurs) continue;
    }
    slot = e;
    break;
  }
  if (slot == kNoSlot) {
    // On a probe's 5-tuple with a wrong token: forged, or another prober's; else nothing of ours.
    ++rejected_[on_tuple ? kWrongToken : quoted ? kUnmatchedIcmpError : kUnmatched];
    return true;
  }
  if (!quoted) {
    if (outcome == udpquery::Outcome::kAnswered)
      account_answer(slot, at);
    else
      account_other_outcome(slot, State::kUnexpected, at);
    return true;
  }
  const bool port_unreachable = c.key.target.af == AddressFamily::kV4
                                    ? c.icmp_type == wire::IcmpView::kV4DestUnreachable &&
                                          c.icmp_code == wire::IcmpView::kV4CodePortUnreachable
                                    : c.icmp_type == wire::IcmpView::kV6DestUnreachable &&
                                          c.icmp_code == wire::IcmpView::kV6CodePortUnreachable;
  note_icmp_error(slot, c, at);
  if (port_unreachable) account_other_outcome(slot, State::kClosed, at);
  return true;
}

void IterationRunner::account_other_outcome(uint32_t slot, State state, Nanos at) {
  Slot& s = slots_[slot];
  auto bucket = [&]() -> BucketStats& { return bucket_stats_[plan_->bucket_of(plan_->probes[slot])]; };
  const bool first_reply = !(s.flags & kReplied);
  s.flags |= kReplied;
  if (details_on_) record_reply(slot, first_reply, at);
  if (s.state != State::kPending) {
    if (s.state != State::kUnsent) ++(first_reply ? bucket().late : bucket().duplicates);
    return;
  }
  if (s.time != 0 && !(s.flags & kRttPending) && at.count() > s.time + timeout_of(slot).count()) {
    ++bucket().late;
    resolve(slot, State::kLost);
    return;
  }
  resolve(slot, state);
}

void IterationRunner::record_reply(uint32_t slot, bool first, Nanos at) {
  Details& d = details_[slot];
  if (!first) {
    if (d.duplicates < UINT16_MAX) ++d.duplicates;
    if (duplicate_details_.size() < kMaxDuplicateDetails)
      duplicate_details_.push_back({slot, describe_reply(current_packet_), at.count()});
    return;
  }
  d.reply = describe_reply(current_packet_);
  d.reply_at = at.count();
}

void IterationRunner::record_error(uint32_t slot, Nanos at) {
  Details& d = details_[slot];
  d.error = describe_reply(current_packet_);
  d.error_at = at.count();
}

namespace {
bool refusal_is_about_destination(size_t reason) {
  if (reason >= size_t(SendError::kCount)) return false;
  switch (SendError(reason)) {
    case SendError::kUnreachable:  // no route to it
    case SendError::kPermission:   // a firewall rule refuses it
    case SendError::kTooBig:       // larger than its path MTU
      return true;
    default:  // full buffers, no socket for the family, a malformed packet: this host's problem
      return false;
  }
}
}  // namespace

void IterationRunner::mark_unsent(uint32_t slot, size_t reason) {
  Slot& s = slots_[slot];
  if (s.state != State::kPending) return;
  ++unsent_[std::min(reason, unsent_.size() - 1)];
  s.flags = uint8_t((s.flags & 0x0f) | (1 + std::min(reason, size_t(kUnsentNoToken))) << kSendErrorShift);
  // A refusal that concerns the destination is what the operator must see as loss: a target behind a
  // local firewall rule or without a route reads 100 % loss, not "nothing sent" (docs/architecture.md).
  resolve(slot, refusal_is_about_destination(reason) ? State::kLost : State::kUnsent);
}

bool IterationRunner::expire(Nanos now) {
  // Probes leave in slot order, so their send times increase with the slot: a cursor finds every
  // expired probe without a deadline queue. A probe with a longer timeout holds back the shorter ones
  // behind it until its own deadline; that only delays when they are declared lost (the end of the
  // iteration waits for the longest timeout anyway), never what is counted: an answer after its
  // probe's own deadline is late whatever the cursor says.
  const int64_t t = now.count();
  for (; expire_cursor_ < slots_.size(); ++expire_cursor_) {
    const Slot& s = slots_[expire_cursor_];
    if (s.state != State::kPending) continue;
    if (s.time == 0 || s.time + timeout_of(uint32_t(expire_cursor_)).count() >= t) break;
    resolve(uint32_t(expire_cursor_), State::kLost);
  }
  return unresolved_ == 0;
}

size_t IterationRunner::memory_bytes() const noexcept {
  return huge_page_rounded(previous_book_.tuples.capacity() * sizeof(Tuple)) +
         huge_page_rounded(tokens_.capacity() * sizeof(uint32_t)) +
         huge_page_rounded(by_ordinal_.capacity() * sizeof(uint32_t)) +
         huge_page_rounded(slots_.capacity() * sizeof(Slot)) + details_.capacity() * sizeof(Details);
}

std::string_view send_error_name(uint8_t send_error) {
  if (send_error == 0) return "";
  const size_t r = send_error - 1;
  return r == IterationRunner::kUnsentCutShort   ? "cut_short"
         : r == IterationRunner::kUnsentNoToken  ? "no_token"
         : r == IterationRunner::kUnsentNoWorker ? "no_worker"
         : r < size_t(SendError::kCount)         ? to_string(SendError(r))
                                                 : "unknown";
}

std::string_view to_string(ProbeEvent::State state) {
  switch (state) {
    case ProbeEvent::State::kAnswered:
      return "answered";
    case ProbeEvent::State::kLost:
      return "lost";
    case ProbeEvent::State::kLate:
      return "late";
    case ProbeEvent::State::kIcmpError:
      return "icmp_error";
    case ProbeEvent::State::kUnsent:
      return "unsent";
  }
  return "unknown";
}

void IterationRunner::probe_events(std::vector<ProbeEvent>& out) const {
  if (!plan_) return;
  out.reserve(out.size() + slots_.size());
  // Duplicates by slot, each slot's in arrival order (at most kMaxDuplicateDetails).
  std::vector<const DuplicateDetail*> dups;
  dups.reserve(duplicate_details_.size());
  for (const DuplicateDetail& d : duplicate_details_) dups.push_back(&d);
  std::stable_sort(dups.begin(), dups.end(),
                   [](const DuplicateDetail* a, const DuplicateDetail* b) { return a->slot < b->slot; });
  auto dup = dups.begin();
  for (uint32_t slot = 0; slot < slots_.size(); ++slot) {
    const Slot& s = slots_[slot];
    const PlannedProbe& p = plan_->probes[slot];
    ProbeEvent e;
    e.slot = slot;
    e.src_port = probe_for(plan_->templates[p.tmpl].type).has_ports() ? p.src_port : 0;
    e.icmp_error = s.flags & kIcmpError;
    e.icmp_type = s.icmp_type;
    e.icmp_code = s.icmp_code;
    e.send_error = uint8_t(s.flags >> kSendErrorShift);
    if (details_on_) {
      const Details& d = details_[slot];
      // The send time is known once the probe's own copy was captured or the sender stamped it.
      const bool sent_time = s.time != 0 && !(s.flags & kRttPending);
      e.duplicates = d.duplicates;
      for (; dup != dups.end() && (*dup)->slot <= slot; ++dup)
        if ((*dup)->slot == slot)
          e.duplicate_replies.push_back(
              {(*dup)->reply, sent_time && (*dup)->at >= s.time ? double((*dup)->at - s.time) * 1e-9 : -1.0});
      if (d.reply_at != 0) {
        e.has_reply = true;
        e.reply = d.reply;
        if (sent_time && d.reply_at >= s.time) e.reply_rtt_s = double(d.reply_at - s.time) * 1e-9;
      }
      if (d.error_at != 0) {
        e.has_error = true;
        e.error = d.error;
        if (sent_time && d.error_at >= s.time) e.error_rtt_s = double(d.error_at - s.time) * 1e-9;
      }
    }
    switch (s.state) {
      case State::kAnswered:
        e.state = ProbeEvent::State::kAnswered;
        if (!(s.flags & kRttPending) && s.rtt_ns >= 0) e.rtt_s = double(s.rtt_ns) * 1e-9;
        break;
      case State::kUnsent:
        e.state = ProbeEvent::State::kUnsent;
        break;
      default:  // lost, or pending when cut short
        e.interrupted = s.state == State::kPending;
        e.state = e.icmp_error           ? ProbeEvent::State::kIcmpError
                  : (s.flags & kReplied) ? ProbeEvent::State::kLate
                                         : ProbeEvent::State::kLost;
    }
    out.push_back(e);
  }
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
    for (const IcmpErrorCount& e : bucket_stats_[b].icmp_errors)
      if (e.count)
        g.icmp_errors[icmp_error_label(bk.af, uint8_t(e.type_code >> 8), uint8_t(e.type_code))] += e.count;
    if (bucket_stats_[b].icmp_errors_overflow)
      g.icmp_errors["other:overflow"] += bucket_stats_[b].icmp_errors_overflow;
  }
  // Exact sizes first: growing the RTT vectors by doubling would hold up to 3 times their size at the
  // moment of a reallocation (24 bytes per answered probe instead of 8 at 1M probes).
  std::vector<uint32_t> answered(plan_->buckets.size(), 0);
  for (uint32_t slot = 0; slot < slots_.size(); ++slot)
    if (slots_[slot].state == State::kAnswered) ++answered[plan_->bucket_of(plan_->probes[slot])];
  for (size_t b = 0; b < answered.size(); ++b) out.groups[b].rtts_s.reserve(answered[b]);
  // Per flow (docs/paths.md): each group's tracked flows, tallied in place while walking the probes in plan
  // order (FlowCursor), then the flows never probed dropped.
  std::vector<FlowMeasurement*> template_flows(plan_->templates.size());
  for (uint32_t t = 0; t < plan_->templates.size(); ++t) {
    GroupMeasurement& g = out.groups[plan_->template_buckets[t]];
    g.flows.resize(g.flows.size() + plan_->template_flows[t].count);
    g.flow_destinations.push_back(plan_->templates[t].params.dst);
  }
  {  // pointers only once every group's vector has its final size
    std::vector<uint32_t> filled(out.groups.size(), 0), host(out.groups.size(), 0);
    for (uint32_t t = 0; t < plan_->templates.size(); ++t) {
      const uint32_t b = plan_->template_buckets[t];
      GroupMeasurement& g = out.groups[b];
      template_flows[t] = g.flows.data() + filled[b];
      for (uint32_t k = 0; k < plan_->template_flows[t].count; ++k) g.flows[filled[b] + k].dst = host[b];
      filled[b] += plan_->template_flows[t].count;
      ++host[b];
    }
  }
  FlowCursor cursor(*plan_);
  FlowMeasurement untracked;  // a sink for the probes of flows beyond the tracked ones
  for (uint32_t slot = 0; slot < slots_.size(); ++slot) {
    const Slot& s = slots_[slot];
    const PlannedProbe& p = plan_->probes[slot];
    const uint32_t flow = cursor.next(p);
    FlowMeasurement& f = flow == kUntrackedFlow
                             ? untracked
                             : template_flows[p.tmpl][flow - plan_->template_flows[p.tmpl].first];
    if (s.state == State::kUnsent) continue;
    if (f.sent == 0) {  // its first probe sent: the flow's 5-tuple
      f.src = p.src;
      f.src_port = probe_for(plan_->templates[p.tmpl].type).has_ports() ? p.src_port : 0;
    }
    GroupMeasurement& g = out.groups[plan_->bucket_of(p)];
    ++g.sent;
    ++f.sent;
    if (s.state == State::kUnexpected || s.state == State::kClosed) {
      ++(s.state == State::kClosed ? g.closed : g.unexpected);  // neither answered nor lost
      continue;
    }
    if (s.state != State::kAnswered) {
      ++g.lost;  // lost, or still pending when the iteration was cut short
      ++f.lost;
      if (s.flags & kReplied) ++f.late;
      continue;
    }
    if ((s.flags & kRttPending) || s.rtt_ns < 0) {
      ++g.time_ooo;  // answered, but no usable send time: excluded from the percentiles
      continue;
    }
    g.rtts_s.push_back(double(s.rtt_ns) * 1e-9);
    ++f.rtt_count;
    f.rtt_sum_s += float(double(s.rtt_ns) * 1e-9);
  }
  for (GroupMeasurement& g : out.groups)
    std::erase_if(g.flows, [](const FlowMeasurement& f) { return f.sent == 0; });
  out.sources = plan_->sources;
  out.targets = target_events_;
  for (size_t r = 0; r < size_t(RejectReason::kCount); ++r)
    if (rejected_[r]) out.rejected[std::string(to_string(RejectReason(r)))] = rejected_[r];
  if (rejected_[kUnmatched]) out.rejected["unmatched"] = rejected_[kUnmatched];
  if (rejected_[kWrongLocalAddress]) out.rejected["wrong_local_address"] = rejected_[kWrongLocalAddress];
  if (rejected_[kUnmatchedIcmpError]) out.rejected["unmatched_icmp_error"] = rejected_[kUnmatchedIcmpError];
  if (rejected_[kUnprovenAck]) out.rejected["unproven_ack"] = rejected_[kUnprovenAck];
  if (rejected_[kWrongToken]) out.rejected["wrong_token"] = rejected_[kWrongToken];
  if (rejected_[kWrongQuote]) out.rejected["wrong_quote"] = rejected_[kWrongQuote];
  for (size_t r = 0; r < unsent_.size(); ++r)
    if (unsent_[r]) out.send_errors[std::string(send_error_name(uint8_t(r + 1)))] = unsent_[r];
  return out;
}

}  // namespace netprobe
