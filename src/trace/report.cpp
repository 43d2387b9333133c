#include "trace/report.h"

#include <fmt/format.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "engine/iteration.h"

namespace netprobe {
namespace {

double ms(double s) { return std::round(s * 1e6) / 1e3; }  // to the microsecond

// "40000-40003,40007".
std::string port_list(const std::vector<uint16_t>& sports) {
  std::string out;
  for (size_t i = 0; i < sports.size();) {
    size_t j = i;
    while (j + 1 < sports.size() && sports[j + 1] == sports[j] + 1) ++j;
    if (!out.empty()) out += ',';
    out += j > i ? fmt::format("{}-{}", sports[i], sports[j]) : fmt::format("{}", sports[i]);
    i = j + 1;
  }
  return out;
}

std::string mpls_text(const HopNode& n) {
  std::string s;
  for (size_t i = 0; i < n.mpls_count; ++i)
    s += fmt::format("{}L={},TC={},S={},TTL={}", i ? " " : "", n.mpls[i].label, n.mpls[i].tc,
                     n.mpls[i].bottom ? 1 : 0, n.mpls[i].ttl);
  return s;
}

nlohmann::json mpls_json(size_t count, const std::array<MplsLabel, ReplyInfo::kMaxLabels>& labels) {
  auto a = nlohmann::json::array();
  for (size_t i = 0; i < count; ++i)
    a.push_back({{"label", labels[i].label},
                 {"tc", labels[i].tc},
                 {"bottom", labels[i].bottom},
                 {"ttl", labels[i].ttl}});
  return a;
}

std::string named(const std::map<std::string, std::string>& names, const std::string& addr) {
  const auto it = names.find(addr);
  return it == names.end() || it->second.empty() ? addr : fmt::format("{} ({})", it->second, addr);
}

std::string header(const TraceTarget& t) {
  return fmt::format("{} ({}): {}{}", t.name, t.dst.to_string(), to_string(t.type),
                     t.type == ProbeType::kIcmpPing ? "" : fmt::format(" port {}", t.dst_port));
}

const HopNode* node_at(const TraceGraph& g, int ttl, const std::string& addr) {
  for (const auto& n : g.nodes)
    if (n.ttl == ttl && n.address.to_string() == addr) return &n;
  return nullptr;
}

// What tells the flows apart: the source port, or the ICMP echo checksum (docs/trace.md).
const char* flow_ids(const TraceTarget& t) {
  return t.type == ProbeType::kIcmpPing ? "checksum(s)" : "source port(s)";
}

// The start of a suspect link: "2 192.0.2.1", or "prober".
std::string from_text(int ttl, bool known, const IpAddress& from) {
  return known ? fmt::format("{} {}", ttl - 1, from.to_string()) : std::string("prober");
}

}  // namespace

std::string hop_label(const HopReply& hop, AddressFamily af) {
  if (hop.kind == HopReply::Kind::kNone) return "";
  if (hop.kind == HopReply::Kind::kDestination && hop.icmp_type == 0) return "";
  if (hop.kind == HopReply::Kind::kDestination &&
      !(af == AddressFamily::kV4 ? hop.icmp_type == 3 || hop.icmp_type == 11 : hop.icmp_type < 128))
    return "";  // an echo reply
  return icmp_error_label(af, hop.icmp_type, hop.icmp_code);
}

std::string trace_text(const TraceReport& r) {
  const TraceGraph g = build_graph(r.flows, r.options.first_ttl);
  std::string s = fmt::format("netprobe trace {}, {} flow(s), TTL {}-{}", header(r.target), r.flows.size(),
                              r.options.first_ttl, r.options.max_ttl);
  if (r.mda)
    s += fmt::format(", MDA {:.0f} %: {}", r.confidence * 100,
                     r.mda_complete ? "complete" : "incomplete (" + r.mda_stop_reason + ")");
  s += "\n";
  for (size_t p = 0; p < g.paths.size(); ++p) {
    const TracePath& path = g.paths[p];
    s += fmt::format("path {}: {} flow(s), {} {}\n", p + 1, path.sports.size(), flow_ids(r.target),
                     port_list(path.sports));
    for (size_t i = 0; i < path.hops.size(); ++i) {
      const int ttl = r.options.first_ttl + int(i);
      if (path.hops[i] == "*") {
        s += fmt::format("  {:>2}  *\n", ttl);
        continue;
      }
      const HopNode* n = node_at(g, ttl, path.hops[i]);
      std::string line = fmt::format("  {:>2}  {}", ttl, named(r.names, path.hops[i]));
      if (n && n->rtt_min_s >= 0)
        line += n->rtt_max_s > n->rtt_min_s
                    ? fmt::format("  {:.3f}-{:.3f} ms", ms(n->rtt_min_s), ms(n->rtt_max_s))
                    : fmt::format("  {:.3f} ms", ms(n->rtt_min_s));
      if (n) {
        HopReply h;
        h.kind = n->kind;
        h.icmp_type = n->icmp_type;
        h.icmp_code = n->icmp_code;
        const std::string label = hop_label(h, r.target.dst.af);
        if (n->kind == HopReply::Kind::kDestination) line += "  destination";
        if (!label.empty()) line += "  " + label;
        if (n->mpls_count) line += "  [MPLS " + mpls_text(*n) + "]";
      }
      s += line + "\n";
    }
  }
  if (!g.links.empty()) s += "links:\n";
  for (const HopLink& l : g.links)
    s += fmt::format("  {:>2} {} -> {:>2} {}: {} flow(s), {} {}\n", l.ttl, l.from.to_string(), l.ttl + 1,
                     l.to.to_string(), l.sports.size(), flow_ids(r.target), port_list(l.sports));
  s += fmt::format("{} probe(s) sent\n", r.probes_sent);
  return s;
}

std::string trace_json(const TraceReport& r) {
  const TraceGraph g = build_graph(r.flows, r.options.first_ttl);
  const AddressFamily af = r.target.dst.af;
  nlohmann::json j{{"target", r.target.name},
                   {"address", r.target.dst.to_string()},
                   {"type", std::string(to_string(r.target.type))},
                   {"first_ttl", r.options.first_ttl},
                   {"max_ttl", r.options.max_ttl},
                   {"probes_sent", r.probes_sent}};
  if (r.target.type != ProbeType::kIcmpPing) j["port"] = r.target.dst_port;
  if (r.mda) {
    j["mda"] = {{"confidence", r.confidence}, {"complete", r.mda_complete}};
    if (!r.mda_complete) j["mda"]["stop_reason"] = r.mda_stop_reason;
  }
  auto flows = nlohmann::json::array();
  for (const FlowTrace& f : r.flows) {
    nlohmann::json jf{{"sport", f.sport}, {"reached", f.reached}};
    auto hops = nlohmann::json::array();
    for (size_t i = size_t(r.options.first_ttl) - 1; i < f.hops.size(); ++i) {
      const HopReply& h = f.hops[i];
      nlohmann::json jh{{"ttl", i + 1}};
      if (!h.answered()) {
        jh["address"] = nullptr;
      } else {
        const std::string a = h.from.to_string();
        jh["address"] = a;
        if (auto it = r.names.find(a); it != r.names.end() && !it->second.empty()) jh["name"] = it->second;
        jh["kind"] = std::string(to_string(h.kind));
        jh["rtt_ms"] = h.rtt_s >= 0 ? nlohmann::json(ms(h.rtt_s)) : nlohmann::json();
        if (const std::string label = hop_label(h, af); !label.empty()) jh["icmp"] = label;
        jh["reply_ttl"] = h.reply_ttl;
        if (h.mpls_count) jh["mpls"] = mpls_json(h.mpls_count, h.mpls);
      }
      hops.push_back(jh);
    }
    jf["hops"] = hops;
    flows.push_back(jf);
  }
  j["flows"] = flows;
  auto paths = nlohmann::json::array();
  for (const TracePath& p : g.paths) paths.push_back({{"hops", p.hops}, {"sports", p.sports}});
  j["paths"] = paths;
  auto links = nlohmann::json::array();
  for (const HopLink& l : g.links)
    links.push_back(
        {{"ttl", l.ttl}, {"from", l.from.to_string()}, {"to", l.to.to_string()}, {"sports", l.sports}});
  j["links"] = links;
  if (!r.error.empty()) j["error"] = r.error;
  return j.dump() + "\n";
}

std::string trace_dot(const TraceReport& r) {
  const TraceGraph g = build_graph(r.flows, r.options.first_ttl);
  std::string s = "digraph trace {\n  rankdir=LR;\n  node [shape=box];\n";
  s += fmt::format("  src [label=\"{}\"];\n", r.target.src.to_string());
  const auto id = [](int ttl, const IpAddress& a) { return fmt::format("\"{}/{}\"", ttl, a.to_string()); };
  for (const HopNode& n : g.nodes) {
    std::string label = named(r.names, n.address.to_string());
    if (n.mpls_count) label += "\\nMPLS " + mpls_text(n);
    s += fmt::format("  {} [label=\"{}: {}\"];\n", id(n.ttl, n.address), n.ttl, label);
  }
  for (const HopNode& n : g.nodes)
    if (n.ttl == r.options.first_ttl)
      s += fmt::format("  src -> {} [label=\"{}\"];\n", id(n.ttl, n.address), n.sports.size());
  for (const HopLink& l : g.links)
    s += fmt::format("  {} -> {} [label=\"{}\"];\n", id(l.ttl, l.from), id(l.ttl + 1, l.to), l.sports.size());
  return s + "}\n";
}

std::string pathloss_text(const PathlossReport& r) {
  std::string s = fmt::format("netprobe pathloss {}, {} flow(s), {} probe(s) per hop\n", header(r.target),
                              r.flows.size(), r.probes_per_hop);
  for (size_t i = 0; i < r.flows.size(); ++i) {
    const PathlossFlow& f = r.flows[i];
    const PathlossVerdict& v = r.verdicts[i];
    std::string verdict(to_string(v.kind));
    if (v.kind == PathlossVerdict::Kind::kLossy)
      verdict += fmt::format(": link {} -> {} {} (loss {:.1f}% -> {:.1f}%, p={:.2g}, blame {})",
                             from_text(v.suspect_ttl, v.from_known, v.from), v.suspect_ttl, v.to.to_string(),
                             v.loss_before * 100, v.loss_after * 100, v.p_value, v.blame);
    s += fmt::format("flow sport {}{}: {}\n", f.sport, f.reference ? " (healthy reference)" : "", verdict);
    s += "  ttl  address                                   sent  recv    loss  healthy\n";
    for (size_t k = 0; k < f.hops.size(); ++k) {
      const HopCount& h = f.hops[k];
      const int ttl = f.first_ttl + int(k);
      std::string mark;
      if (v.kind == PathlossVerdict::Kind::kLossy && ttl == v.suspect_ttl) mark = "  <- suspect link";
      for (int t : v.rate_limited_ttls)
        if (t == ttl) mark = "  rate-limited";
      s += fmt::format("  {:>3}  {:<40} {:>5} {:>5} {:>6.1f}%  {:>7}{}\n", ttl,
                       h.has_address ? h.address.to_string() : "*", h.sent, h.received,
                       h.sent ? 100.0 * double(h.sent - h.received) / double(h.sent) : 0.0,
                       k < v.healthy_through.size() ? v.healthy_through[k] : 0, mark);
    }
  }
  const auto suspects = suspects_of(r.flows, r.verdicts);
  if (suspects.empty()) s += "suspects: none\n";
  for (const auto& x : suspects)
    s += fmt::format("suspect: link {} -> {} {} (blame {}), source port(s) {}\n",
                     from_text(x.ttl, x.from_known, x.from), x.ttl, x.to.to_string(), x.blame,
                     port_list(x.sports));
  s += fmt::format("{} probe(s) sent\n", r.probes_sent);
  return s;
}

std::string pathloss_json(const PathlossReport& r) {
  nlohmann::json j{{"target", r.target.name},
                   {"address", r.target.dst.to_string()},
                   {"type", std::string(to_string(r.target.type))},
                   {"probes_per_hop", r.probes_per_hop},
                   {"probes_sent", r.probes_sent}};
  if (r.target.type != ProbeType::kIcmpPing) j["port"] = r.target.dst_port;
  auto flows = nlohmann::json::array();
  for (size_t i = 0; i < r.flows.size(); ++i) {
    const PathlossFlow& f = r.flows[i];
    const PathlossVerdict& v = r.verdicts[i];
    nlohmann::json jf{{"sport", f.sport},
                      {"reference", f.reference},
                      {"reached", f.reached},
                      {"verdict", std::string(to_string(v.kind))},
                      {"rate_limited_ttls", v.rate_limited_ttls}};
    if (v.kind == PathlossVerdict::Kind::kLossy)
      jf["suspect"] = {{"ttl", v.suspect_ttl},
                       {"from", v.from_known ? nlohmann::json(v.from.to_string()) : nlohmann::json()},
                       {"to", v.to_known ? nlohmann::json(v.to.to_string()) : nlohmann::json()},
                       {"loss_before", std::round(v.loss_before * 1e4) / 1e4},
                       {"loss_after", std::round(v.loss_after * 1e4) / 1e4},
                       {"p_value", v.p_value},
                       {"blame", v.blame}};
    auto hops = nlohmann::json::array();
    for (size_t k = 0; k < f.hops.size(); ++k) {
      const HopCount& h = f.hops[k];
      hops.push_back({{"ttl", f.first_ttl + int(k)},
                      {"address", h.has_address ? nlohmann::json(h.address.to_string()) : nlohmann::json()},
                      {"sent", h.sent},
                      {"received", h.received},
                      {"healthy_through", k < v.healthy_through.size() ? v.healthy_through[k] : 0}});
    }
    jf["hops"] = hops;
    flows.push_back(jf);
  }
  j["flows"] = flows;
  auto sj = nlohmann::json::array();
  for (const auto& x : suspects_of(r.flows, r.verdicts))
    sj.push_back({{"ttl", x.ttl},
                  {"from", x.from_known ? nlohmann::json(x.from.to_string()) : nlohmann::json()},
                  {"to", x.to.to_string()},
                  {"sports", x.sports},
                  {"blame", x.blame}});
  j["suspects"] = sj;
  if (!r.error.empty()) j["error"] = r.error;
  return j.dump() + "\n";
}

}  // namespace netprobe
