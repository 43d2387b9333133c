#include "trace/trace.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

namespace netprobe {
namespace {

// The first TTL at which the flow ends (destination or unreachable), 0 if none.
int end_of(const FlowTrace& f) {
  for (size_t i = 0; i < f.hops.size(); ++i)
    if (f.hops[i].ends_flow()) return int(i) + 1;
  return 0;
}

std::string key(const IpAddress& a) { return std::string(a.bytes.begin(), a.bytes.end()) + char(a.af); }

void settle(FlowTrace& f) {
  f.end_ttl = end_of(f);
  f.reached = f.end_ttl > 0 && f.hops[size_t(f.end_ttl) - 1].kind == HopReply::Kind::kDestination;
}

}  // namespace

std::vector<FlowTrace> trace_flows(HopProber& prober, std::span<const uint16_t> sports,
                                   const TraceOptions& o) {
  const int first = std::clamp(o.first_ttl, 1, kMaxTtl);
  const int last = std::clamp(o.max_ttl, first, kMaxTtl);
  const int window = std::max(1, o.window);
  std::vector<FlowTrace> flows(sports.size());
  std::vector<int> next(sports.size(), first);  // the next TTL to probe per flow
  std::vector<bool> done(sports.size(), false);
  for (size_t i = 0; i < sports.size(); ++i) {
    flows[i].sport = sports[i];
    flows[i].hops.resize(size_t(last));
  }
  std::vector<ProbeSpec> batch;
  std::vector<size_t> owner;
  const auto record = [&](const std::vector<HopReply>& replies) {
    for (size_t k = 0; k < replies.size(); ++k) {
      HopReply& slot = flows[owner[k]].hops[size_t(batch[k].ttl) - 1];
      if (!slot.answered()) slot = replies[k];
    }
  };
  // Rounds: `window` TTLs of every flow still going.
  for (int round = 0; round <= (last - first) / window && !prober.stopped(); ++round) {
    batch.clear();
    owner.clear();
    // Flow after flow, each one's TTLs in turn: a hop's probes are spread evenly over the batch.
    for (size_t i = 0; i < flows.size(); ++i)
      for (int off = 0; off < window; ++off) {
        const int ttl = next[i] + off;
        if (done[i] || ttl > last) continue;
        batch.push_back({flows[i].sport, uint8_t(ttl)});
        owner.push_back(i);
      }
    if (batch.empty()) break;
    record(prober.probe(batch));
    for (size_t i = 0; i < flows.size(); ++i) {
      if (done[i]) continue;
      next[i] = std::min(last + 1, next[i] + window);
      settle(flows[i]);
      int silent = 0;
      for (int ttl = next[i] - 1; ttl >= first && !flows[i].hops[size_t(ttl) - 1].answered(); --ttl) ++silent;
      done[i] = flows[i].end_ttl > 0 || next[i] > last || silent >= std::max(1, o.gap_limit);
    }
  }
  // The silent hops once more (before the end, or up to where the flow was given up).
  for (int attempt = 1; attempt < o.attempts && !prober.stopped(); ++attempt) {
    batch.clear();
    owner.clear();
    for (int ttl = first; ttl <= last; ++ttl)
      for (size_t i = 0; i < flows.size(); ++i) {
        const int stop = flows[i].end_ttl > 0 ? flows[i].end_ttl : next[i] - 1;
        if (ttl > stop || flows[i].hops[size_t(ttl) - 1].answered()) continue;
        batch.push_back({flows[i].sport, uint8_t(ttl)});
        owner.push_back(i);
      }
    if (batch.empty()) break;
    record(prober.probe(batch));
    for (auto& f : flows) settle(f);
  }
  for (auto& f : flows) {
    settle(f);
    if (f.end_ttl > 0) f.hops.resize(size_t(f.end_ttl));
  }
  return flows;
}

TraceGraph build_graph(std::span<const FlowTrace> flows, int first_ttl) {
  TraceGraph g;
  std::map<std::pair<int, std::string>, size_t> node_at;
  std::map<std::tuple<int, std::string, std::string>, size_t> link_at;
  std::map<std::vector<std::string>, size_t> path_at;
  for (const FlowTrace& f : flows) {
    std::vector<std::string> path;
    for (size_t i = size_t(std::max(1, first_ttl)) - 1; i < f.hops.size(); ++i) {
      const HopReply& h = f.hops[i];
      const int ttl = int(i) + 1;
      path.push_back(h.answered() ? h.from.to_string() : "*");
      if (!h.answered()) continue;
      auto [it, added] = node_at.emplace(std::pair{ttl, key(h.from)}, g.nodes.size());
      if (added) {
        HopNode n;
        n.ttl = ttl;
        n.address = h.from;
        n.kind = h.kind;
        n.icmp_type = h.icmp_type;
        n.icmp_code = h.icmp_code;
        n.mpls_count = h.mpls_count;
        n.mpls = h.mpls;
        g.nodes.push_back(n);
      }
      HopNode& n = g.nodes[it->second];
      n.sports.push_back(f.sport);
      if (h.rtt_s >= 0) {
        n.rtt_min_s = n.rtt_min_s < 0 ? h.rtt_s : std::min(n.rtt_min_s, h.rtt_s);
        n.rtt_max_s = std::max(n.rtt_max_s, h.rtt_s);
      }
      if (i + 1 < f.hops.size() && f.hops[i + 1].answered()) {
        auto [lt, ladded] =
            link_at.emplace(std::tuple{ttl, key(h.from), key(f.hops[i + 1].from)}, g.links.size());
        if (ladded) g.links.push_back({ttl, h.from, f.hops[i + 1].from, {}});
        g.links[lt->second].sports.push_back(f.sport);
      }
    }
    auto [pt, padded] = path_at.emplace(path, g.paths.size());
    if (padded) g.paths.push_back({path, {}});
    g.paths[pt->second].sports.push_back(f.sport);
  }
  std::sort(g.nodes.begin(), g.nodes.end(), [](const HopNode& a, const HopNode& b) {
    return a.ttl != b.ttl ? a.ttl < b.ttl : AddrLess{}(a.address, b.address);
  });
  std::sort(g.links.begin(), g.links.end(), [](const HopLink& a, const HopLink& b) {
    if (a.ttl != b.ttl) return a.ttl < b.ttl;
    if (a.from != b.from) return AddrLess{}(a.from, b.from);
    return AddrLess{}(a.to, b.to);
  });
  for (auto& n : g.nodes) std::sort(n.sports.begin(), n.sports.end());
  for (auto& l : g.links) std::sort(l.sports.begin(), l.sports.end());
  for (auto& p : g.paths) std::sort(p.sports.begin(), p.sports.end());
  std::sort(g.paths.begin(), g.paths.end(),
            [](const TracePath& a, const TracePath& b) { return a.sports.front() < b.sports.front(); });
  return g;
}

int mda_flows_needed(int seen, double confidence) {
  if (seen < 1 || seen > 64 || !(confidence > 0 && confidence < 1)) return 0;
  const int k = seen + 1;  // next hops that may exist
  const double alpha = 1 - confidence;
  for (int n = 1; n <= 100000; ++n) {
    // P(some of k equally likely next hops unseen after n flows), by inclusion-exclusion.
    double p = 0, binom = 1;
    for (int i = 1; i < k; ++i) {
      binom = binom * double(k - i + 1) / double(i);
      p += ((i % 2) ? 1 : -1) * binom * std::pow(double(k - i) / double(k), double(n));
    }
    if (p <= alpha) return n;
  }
  return 0;
}

MdaResult run_mda(HopProber& prober, std::span<const uint16_t> sports, const TraceOptions& options,
                  double confidence, size_t max_flows) {
  MdaResult r;
  const size_t budget = std::min(max_flows, sports.size());
  size_t used = std::min(budget, size_t(std::max(1, mda_flows_needed(1, confidence))));
  r.flows = trace_flows(prober, sports.first(used), options);
  constexpr int kMaxRounds = 64;
  constexpr size_t kMaxPerRound = 64;
  for (r.rounds = 1; r.rounds < kMaxRounds; ++r.rounds) {
    if (prober.stopped()) {
      r.stop_reason = "interrupted";
      return r;
    }
    // Per hop (TTL, address): the flows through it that went on, and the next hops they found.
    std::map<std::pair<int, std::string>, std::pair<size_t, std::set<std::string>>> through;
    for (const FlowTrace& f : r.flows)
      for (size_t i = 0; i + 1 < f.hops.size(); ++i) {
        if (!f.hops[i].answered() || f.hops[i].ends_flow()) continue;
        auto& [count, next] = through[{int(i) + 1, key(f.hops[i].from)}];
        ++count;
        if (f.hops[i + 1].answered()) next.insert(key(f.hops[i + 1].from));
      }
    size_t add = 0;
    for (const auto& [hop, v] : through) {
      const int need = mda_flows_needed(std::max<int>(1, int(v.second.size())), confidence);
      if (need == 0 || v.first >= size_t(need)) continue;
      // New flows land on this hop in proportion of the flows that already do.
      const double share = double(v.first) / double(r.flows.size());
      add = std::max(add, size_t(std::ceil(double(size_t(need) - v.first) / share)));
    }
    if (add == 0) {
      r.complete = true;
      return r;
    }
    add = std::min({add, kMaxPerRound, budget - used});
    if (add == 0) {
      r.stop_reason = budget < sports.size() ? "flow budget" : "source ports exhausted";
      return r;
    }
    auto more = trace_flows(prober, sports.subspan(used, add), options);
    used += add;
    r.flows.insert(r.flows.end(), more.begin(), more.end());
  }
  r.stop_reason = "round limit";
  return r;
}

}  // namespace netprobe
