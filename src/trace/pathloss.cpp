#include "trace/pathloss.h"

#include <algorithm>
#include <map>

#include "paths/significance.h"

namespace netprobe {
namespace {

double ratio(uint64_t lost, uint64_t sent) { return sent ? double(lost) / double(sent) : 0; }
uint64_t lost_of(const HopCount& h) { return h.sent - std::min(h.sent, h.received); }

// P(at least `h`'s losses | the baseline's loss rate, smoothed as in docs/paths.md#the-test).
double tail(const HopCount& h, uint64_t base_lost, uint64_t base_sent) {
  const double p0 = double(base_lost + 1) / double(base_sent + 2);
  return binomial_upper_tail(h.sent, lost_of(h), p0);
}

}  // namespace

std::string_view to_string(PathlossVerdict::Kind kind) {
  switch (kind) {
    case PathlossVerdict::Kind::kClean:
      return "clean";
    case PathlossVerdict::Kind::kLossy:
      return "lossy";
    case PathlossVerdict::Kind::kNoAnswer:
      return "no_answer";
  }
  return "no_answer";
}

PathlossVerdict judge_flow(const PathlossFlow& flow, double alpha) {
  PathlossVerdict v;
  const auto& hops = flow.hops;
  const size_t n = hops.size();
  v.healthy_through.assign(n, 0);
  bool any = false;
  for (const auto& h : hops) any = any || h.received > 0;
  if (!any) return v;
  v.kind = PathlossVerdict::Kind::kClean;
  const double each = alpha / double(std::max<size_t>(1, n));
  // best[i]: the hop at or after i that lost least: what got at least that far.
  std::vector<size_t> best(n);
  for (size_t i = n; i-- > 0;)
    best[i] = (i + 1 < n && ratio(lost_of(hops[best[i + 1]]), hops[best[i + 1]].sent) <
                                ratio(lost_of(hops[i]), hops[i].sent))
                  ? best[i + 1]
                  : i;
  // The baseline: the prober itself (nothing lost), then the last hop that did not answer less.
  bool has_base = false;
  size_t base = 0;
  for (size_t i = 0; i < n; ++i) {
    if (hops[i].sent == 0) continue;
    const uint64_t base_sent = has_base ? hops[base].sent : hops[i].sent;
    const uint64_t base_lost = has_base ? lost_of(hops[base]) : 0;
    const HopCount& later = hops[best[i]];
    const double p = later.sent ? tail(later, base_lost, base_sent) : 1;
    if (p < each) {
      v.kind = PathlossVerdict::Kind::kLossy;
      v.suspect_ttl = flow.first_ttl + int(i);
      v.from_known = has_base && i > 0 && hops[i - 1].has_address;
      if (v.from_known) v.from = hops[i - 1].address;
      v.to_known = hops[i].has_address;
      v.to = hops[i].address;
      v.p_value = p;
      v.loss_before = ratio(base_lost, base_sent);
      v.loss_after = ratio(lost_of(later), later.sent);
      return v;
    }
    if (tail(hops[i], base_lost, base_sent) < each) {
      v.rate_limited_ttls.push_back(flow.first_ttl + int(i));  // answers less, but a later hop does not
      continue;
    }
    has_base = true;
    base = i;
  }
  return v;
}

void compare_healthy(std::span<const PathlossFlow> flows, std::span<PathlossVerdict> verdicts) {
  for (size_t i = 0; i < flows.size(); ++i) {
    PathlossVerdict& v = verdicts[i];
    const PathlossFlow& f = flows[i];
    v.healthy_through.assign(f.hops.size(), 0);
    for (size_t k = 0; k < f.hops.size(); ++k) {
      if (!f.hops[k].has_address) continue;
      const int ttl = f.first_ttl + int(k);
      for (size_t j = 0; j < flows.size(); ++j) {
        if (j == i || verdicts[j].kind != PathlossVerdict::Kind::kClean) continue;
        const size_t at = size_t(ttl - flows[j].first_ttl);
        if (ttl >= flows[j].first_ttl && at < flows[j].hops.size() && flows[j].hops[at].has_address &&
            flows[j].hops[at].address == f.hops[k].address)
          ++v.healthy_through[k];
      }
    }
    if (v.kind != PathlossVerdict::Kind::kLossy) continue;
    const size_t k = size_t(v.suspect_ttl - f.first_ttl);
    if (v.to_known && v.healthy_through[k] > 0) {
      v.blame = "link";
      continue;
    }
    bool lossy_peer = false;
    for (size_t j = 0; j < flows.size() && v.to_known; ++j) {
      const size_t at = size_t(v.suspect_ttl - flows[j].first_ttl);
      lossy_peer =
          lossy_peer || (j != i && v.suspect_ttl >= flows[j].first_ttl && at < flows[j].hops.size() &&
                         flows[j].hops[at].has_address && flows[j].hops[at].address == v.to &&
                         verdicts[j].kind == PathlossVerdict::Kind::kLossy);
    }
    v.blame = lossy_peer ? "router" : "unknown";
  }
}

std::vector<PathlossFlow> measure_pathloss(HopProber& prober, std::span<const uint16_t> sports,
                                           const std::vector<bool>& reference, const PathlossOptions& o) {
  const auto traces = trace_flows(prober, sports, o.trace);
  const int first = std::clamp(o.trace.first_ttl, 1, kMaxTtl);
  int furthest = 0;
  for (const auto& t : traces) {
    if (t.reached) furthest = std::max(furthest, t.end_ttl);
    for (size_t k = 0; k < t.hops.size(); ++k)
      if (t.hops[k].answered() && !t.reached) furthest = std::max(furthest, int(k) + 2);
  }
  furthest = std::clamp(furthest, first, std::clamp(o.trace.max_ttl, first, kMaxTtl));
  std::vector<PathlossFlow> flows(sports.size());
  // Per (flow, TTL): how often each address answered.
  std::vector<std::vector<std::map<std::string, std::pair<uint64_t, IpAddress>>>> seen(sports.size());
  std::vector<ProbeSpec> round;
  std::vector<std::pair<size_t, size_t>> owner;  // (flow, hop index)
  const int last_all = furthest;
  // Flow after flow, each one's TTLs in turn: each hop answers one probe in every few, evenly.
  for (size_t i = 0; i < sports.size(); ++i)
    for (int ttl = first; ttl <= last_all; ++ttl) {
      const int last = traces[i].reached ? traces[i].end_ttl : furthest;
      if (ttl > last) continue;
      round.push_back({sports[i], uint8_t(ttl)});
      owner.push_back({i, size_t(ttl - first)});
    }
  for (size_t i = 0; i < sports.size(); ++i) {
    flows[i].sport = sports[i];
    flows[i].reference = i < reference.size() && reference[i];
    flows[i].first_ttl = first;
    flows[i].reached = traces[i].reached;
    const int last = traces[i].reached ? traces[i].end_ttl : furthest;
    flows[i].hops.resize(size_t(std::max(0, last - first + 1)));
    seen[i].resize(flows[i].hops.size());
  }
  if (round.empty()) return flows;
  const int per_batch = int(std::max<size_t>(1, kMaxBatch / round.size()));
  std::vector<ProbeSpec> batch;
  for (int done = 0; done < o.probes_per_hop && !prober.stopped();) {
    const int rounds = std::min(per_batch, o.probes_per_hop - done);
    batch.clear();
    for (int r = 0; r < rounds; ++r) batch.insert(batch.end(), round.begin(), round.end());
    const auto replies = prober.probe(batch);
    if (prober.stopped()) break;  // an interrupted batch would read as loss
    for (size_t k = 0; k < replies.size(); ++k) {
      const auto [i, h] = owner[k % round.size()];
      HopCount& c = flows[i].hops[h];
      ++c.sent;
      if (!replies[k].answered()) continue;
      ++c.received;
      const auto& a = replies[k].from;
      auto& e = seen[i][h][std::string(a.bytes.begin(), a.bytes.end()) + char(a.af)];
      ++e.first;
      e.second = a;
      if (replies[k].kind == HopReply::Kind::kDestination) flows[i].reached = true;
    }
    done += rounds;
  }
  // The hop's address: the most frequent answer, or the trace's when the measure got none.
  for (size_t i = 0; i < flows.size(); ++i)
    for (size_t h = 0; h < flows[i].hops.size(); ++h) {
      uint64_t most = 0;
      for (const auto& [key, e] : seen[i][h])
        if (e.first > most) {
          most = e.first;
          flows[i].hops[h].address = e.second;
          flows[i].hops[h].has_address = true;
        }
      const size_t ti = size_t(first) - 1 + h;
      if (!flows[i].hops[h].has_address && ti < traces[i].hops.size() && traces[i].hops[ti].answered()) {
        flows[i].hops[h].address = traces[i].hops[ti].from;
        flows[i].hops[h].has_address = true;
      }
    }
  return flows;
}

std::vector<PathlossSuspect> suspects_of(std::span<const PathlossFlow> flows,
                                         std::span<const PathlossVerdict> verdicts) {
  std::vector<PathlossSuspect> out;
  for (size_t i = 0; i < flows.size(); ++i) {
    const PathlossVerdict& v = verdicts[i];
    if (v.kind != PathlossVerdict::Kind::kLossy) continue;
    auto it = std::find_if(out.begin(), out.end(), [&](const PathlossSuspect& s) {
      return s.ttl == v.suspect_ttl && s.from_known == v.from_known && (!v.from_known || s.from == v.from) &&
             s.to == v.to;
    });
    if (it == out.end()) {
      out.push_back({v.suspect_ttl, v.from_known, v.from, v.to, {}, v.blame});
      it = out.end() - 1;
    }
    it->sports.push_back(flows[i].sport);
    if (v.blame == "link") it->blame = "link";
  }
  return out;
}

}  // namespace netprobe
