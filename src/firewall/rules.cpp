#include "firewall/rules.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <map>
#include <set>
#include <tuple>

#include "config/yaml_json.h"
#include "config/yaml_tree.h"
#include "logging/escape.h"

namespace netprobe::firewall {

std::string_view to_string(Protocol p) {
  switch (p) {
    case Protocol::kTcp:
      return "tcp";
    case Protocol::kUdp:
      return "udp";
    case Protocol::kIcmp:
      return "icmp";
    case Protocol::kIcmpV6:
      return "ipv6-icmp";
  }
  return "?";
}

std::optional<Protocol> protocol_from_string(std::string_view s) {
  if (s == "tcp") return Protocol::kTcp;
  if (s == "udp") return Protocol::kUdp;
  if (s == "icmp") return Protocol::kIcmp;
  if (s == "ipv6-icmp" || s == "icmpv6") return Protocol::kIcmpV6;
  return std::nullopt;
}

std::string PortRange::to_string(char sep) const {
  return first == last ? fmt::format("{}", first) : fmt::format("{}{}{}", first, sep, last);
}

std::vector<PortRange> coalesce(std::vector<PortRange> ranges) {
  std::sort(ranges.begin(), ranges.end());
  std::vector<PortRange> out;
  for (const auto& r : ranges) {
    if (!out.empty() && uint32_t(r.first) <= uint32_t(out.back().last) + 1)
      out.back().last = std::max(out.back().last, r.last);
    else
      out.push_back(r);
  }
  return out;
}

namespace {

constexpr std::string_view kReturningNames[] = {"tcp-ack", "echo-reply", "port-unreachable", "icmp-errors",
                                                "udp-answer"};

std::optional<uint8_t> returning_from_string(std::string_view s) {
  for (size_t i = 0; i < std::size(kReturningNames); ++i)
    if (s == kReturningNames[i]) return uint8_t(1u << i);
  return std::nullopt;
}

// Plain when PyYAML reads it back as this very string and no YAML indicator can be involved; else quoted.
std::string yaml_scalar(std::string_view s) {
  const bool safe =
      !s.empty() && std::isalnum(static_cast<unsigned char>(s[0])) &&
      std::all_of(s.begin(), s.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '_' || c == '/';
      });
  if (safe && resolve_plain_scalar(s).is_string()) return std::string(s);
  std::string out = "\"";
  for (const char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\')
      out += '\\', out += c;
    else if (u < 0x20 || u == 0x7f)
      out += fmt::format("\\x{:02x}", u);
    else
      out += c;
  }
  return out + '"';
}

template <typename T, typename F>
std::string flow_list(const std::vector<T>& items, F&& render) {
  std::string out = "[";
  for (size_t i = 0; i < items.size(); ++i) {
    if (i) out += ", ";
    out += render(items[i]);
  }
  return out + "]";
}

std::string port_item(const PortRange& r) {
  // conn-check writes ports as integers; a range is the string "a-b".
  return r.first == r.last ? fmt::format("{}", r.first) : r.to_string('-');
}

}  // namespace

std::vector<std::string_view> returning_names(uint8_t bits) {
  std::vector<std::string_view> out;
  for (size_t i = 0; i < std::size(kReturningNames); ++i)
    if (bits & (1u << i)) out.push_back(kReturningNames[i]);
  return out;
}

std::string render_yaml(const std::vector<EgressRule>& rules, const std::vector<std::string>& header) {
  std::string out;
  for (const auto& line : header) out += "# " + line + "\n";
  if (rules.empty()) return out + "egress: []\n";
  out += "egress:\n";
  for (const auto& r : rules) {
    // conn-check's keys first, in its (yaml.dump's alphabetical) order; then netprobe's, alphabetical too.
    out += "- from_host: " + yaml_scalar(r.from_host) + "\n";
    out += "  ports: " + flow_list(r.ports, port_item) + "\n";
    out += "  protocol: " + std::string(to_string(r.protocol)) + "\n";
    out += "  to_host: " + yaml_scalar(r.to_host) + "\n";
    if (r.address_family) out += "  address_family: " + std::string(to_string(*r.address_family)) + "\n";
    if (!r.from_cidr.empty())
      out += "  from_cidr: " +
             flow_list(r.from_cidr, [](const IpNetwork& n) { return yaml_scalar(n.to_string()); }) + "\n";
    out += "  returning: " +
           flow_list(returning_names(r.returning), [](std::string_view s) { return std::string(s); }) + "\n";
    if (!r.src_ports.empty()) out += "  src_ports: " + flow_list(r.src_ports, port_item) + "\n";
    if (!r.targets.empty())
      out += "  targets: " + flow_list(r.targets, [](const std::string& s) { return yaml_scalar(s); }) + "\n";
  }
  return out;
}

bool is_valid_host_name(std::string_view s) {
  if (s.empty() || s.size() > 253) return false;
  size_t label = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (c == '.') {
      if (label == 0) return false;
      label = 0;
      continue;
    }
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_')) return false;
    if (c == '-' && label == 0) return false;  // a leading '-' would read as an option
    if (++label > 63) return false;
  }
  return true;  // a trailing dot (absolute name) is fine
}

namespace {

// Walks a YamlTree into EgressRules, collecting every error with its line.
class Reader {
 public:
  Reader(const YamlTree& t, const std::string& source, const ParseLimits& limits, ParseResult& out)
      : t_(t), source_(source), limits_(limits), out_(out) {}

  void document() {
    if (!t_.has_root()) return;  // an empty file: no rules
    const auto root = t_.root();
    if (!visit(root)) return;
    if (t_.kind(root) == YamlTree::Kind::kNull) return;
    if (t_.kind(root) != YamlTree::Kind::kMap)
      return error(root, "the document must be a mapping with an `egress` list");
    const auto kids = t_.children(root);
    bool seen = false;
    for (size_t i = 0; i + 1 < kids.size(); i += 2) {
      if (!visit(kids[i]) || !visit(kids[i + 1])) return;
      const auto key = scalar(kids[i]);
      if (key != "egress") {
        error(kids[i], fmt::format("unknown top-level key {} (expected `egress`)", quote_for_log(key, 64)));
        continue;
      }
      if (seen) error(kids[i], "duplicate key `egress`");
      seen = true;
      egress(kids[i + 1]);
    }
  }

 private:
  using Index = YamlTree::Index;

  bool full() const { return out_.errors.size() >= limits_.max_errors || over_budget_; }

  // Counts a node; false once the document expanded (through aliases) beyond the budget, or for a
  // collection with an explicit tag (`!!python/object/apply:...`): nothing of ours is tagged.
  bool visit(Index n) {
    if (++visited_ > limits_.max_nodes) {
      if (!over_budget_)
        out_.errors.push_back(fmt::format("{}: more than {} YAML nodes (aliases included); refused", source_,
                                          limits_.max_nodes));
      over_budget_ = true;
      return false;
    }
    const auto kind = t_.kind(n);
    const auto tag = t_.tag(n);
    if ((kind == YamlTree::Kind::kSequence || kind == YamlTree::Kind::kMap) && tag != "?" &&
        tag != "tag:yaml.org,2002:seq" && tag != "tag:yaml.org,2002:map") {
      error(n, fmt::format("unsupported tag {}", quote_for_log(tag, 96)));
      return false;
    }
    return true;
  }

  void error(Index n, const std::string& message) {
    if (out_.errors.size() < limits_.max_errors)
      out_.errors.push_back(fmt::format("{}:{}: {}", source_, t_.line(n), message));
  }

  // A scalar's text, or "" for anything else (callers check kinds first where it matters).
  std::string_view scalar(Index n) const {
    return t_.kind(n) == YamlTree::Kind::kScalar ? t_.scalar(n) : std::string_view();
  }

  // A scalar with no explicit tag (plain or quoted), else an error.
  bool plain_text(Index n, const std::string& what, std::string_view* text) {
    if (t_.kind(n) != YamlTree::Kind::kScalar) {
      error(n, fmt::format("{}: expected a scalar, found a {}", what, kind_name(n)));
      return false;
    }
    const auto tag = t_.tag(n);
    if (tag != "?" && tag != "!" && tag != "tag:yaml.org,2002:str" && tag != "tag:yaml.org,2002:int") {
      error(n, fmt::format("{}: unsupported tag {}", what, quote_for_log(tag, 64)));
      return false;
    }
    *text = t_.scalar(n);
    return true;
  }

  const char* kind_name(Index n) const {
    switch (t_.kind(n)) {
      case YamlTree::Kind::kNull:
        return "null";
      case YamlTree::Kind::kScalar:
        return "scalar";
      case YamlTree::Kind::kSequence:
        return "list";
      case YamlTree::Kind::kMap:
        return "mapping";
    }
    return "?";
  }

  // A list (or a single scalar standing for a list of one, as people write `ports: 443`).
  bool items(Index n, const std::string& what, std::vector<Index>* out) {
    out->clear();
    if (t_.kind(n) == YamlTree::Kind::kNull) return true;
    if (t_.kind(n) == YamlTree::Kind::kScalar) {
      out->push_back(n);
      return true;
    }
    if (t_.kind(n) != YamlTree::Kind::kSequence) {
      error(n, fmt::format("{}: expected a list, found a {}", what, kind_name(n)));
      return false;
    }
    const auto kids = t_.children(n);
    if (kids.size() > limits_.max_list) {
      error(n, fmt::format("{}: {} items, more than {}", what, kids.size(), limits_.max_list));
      return false;
    }
    for (const auto k : kids)
      if (!visit(k)) return false;
    out->assign(kids.begin(), kids.end());
    return true;
  }

  static std::optional<uint16_t> parse_port(std::string_view s) {
    unsigned v = 0;
    const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || p != s.data() + s.size() || s.empty() || v < 1 || v > 65535) return std::nullopt;
    return uint16_t(v);
  }

  bool port_ranges(Index n, const std::string& what, std::vector<PortRange>* out) {
    std::vector<Index> list;
    if (!items(n, what, &list)) return false;
    bool ok = true;
    for (size_t i = 0; i < list.size(); ++i) {
      const std::string item = fmt::format("{}[{}]", what, i);
      std::string_view text;
      if (!plain_text(list[i], item, &text)) {
        ok = false;
        continue;
      }
      const auto dash = text.find('-');
      const auto a = parse_port(text.substr(0, dash));
      const auto b = dash == std::string_view::npos ? a : parse_port(text.substr(dash + 1));
      if (!a || !b || *b < *a) {
        error(list[i], fmt::format("{}: {} is not a port (1-65535) or a range a-b with a <= b", item,
                                   quote_for_log(text, 64)));
        ok = false;
        continue;
      }
      out->push_back({*a, *b});
    }
    *out = coalesce(std::move(*out));
    return ok;
  }

  bool host(Index n, const std::string& what, bool cidr_ok, std::string* out) {
    std::string_view text;
    if (!plain_text(n, what, &text)) return false;
    if (IpAddress::parse(text)) {
      *out = IpAddress::parse(text)->to_string();
      return true;
    }
    if (cidr_ok && text.find('/') != std::string_view::npos) {
      const auto net = IpNetwork::parse(text);
      if (!net) {
        error(n, fmt::format("{}: {} is not an address, a CIDR network or a valid host name", what,
                             quote_for_log(text, 64)));
        return false;
      }
      *out = net->to_string();
      return true;
    }
    if (!is_valid_host_name(text)) {
      error(n, fmt::format("{}: {} is not an address{} or a valid host name", what, quote_for_log(text, 64),
                           cidr_ok ? ", a CIDR network" : ""));
      return false;
    }
    *out = std::string(text);
    return true;
  }

  void egress(Index n) {
    if (t_.kind(n) == YamlTree::Kind::kNull) return;
    if (t_.kind(n) != YamlTree::Kind::kSequence)
      return error(n, fmt::format("egress: expected a list of rules, found a {}", kind_name(n)));
    const auto kids = t_.children(n);
    if (kids.size() > limits_.max_rules)
      return error(n, fmt::format("egress: {} rules, more than {}", kids.size(), limits_.max_rules));
    for (size_t i = 0; i < kids.size() && !full(); ++i) {
      if (!visit(kids[i])) return;
      rule(kids[i], fmt::format("egress[{}]", i));
    }
  }

  void rule(Index n, const std::string& where) {
    if (t_.kind(n) != YamlTree::Kind::kMap)
      return error(n, fmt::format("{}: expected a mapping (from_host, to_host, ports, protocol), found a {}",
                                  where, kind_name(n)));
    EgressRule r;
    r.origin = fmt::format("{}:{}", source_, t_.line(n));
    bool ok = true, have_to = false, have_protocol = false, have_ports = false, have_returning = false;
    std::set<std::string_view> seen;
    std::optional<Index> ports_node;
    const auto kids = t_.children(n);
    for (size_t i = 0; i + 1 < kids.size(); i += 2) {
      if (!visit(kids[i]) || !visit(kids[i + 1])) return;
      const Index k = kids[i], v = kids[i + 1];
      const auto key = scalar(k);
      const std::string what = fmt::format("{}.{}", where, key.substr(0, 64));
      if (!seen.insert(key).second) {
        error(k, fmt::format("{}: duplicate key", what));
        ok = false;
        continue;
      }
      std::vector<Index> list;
      if (key == "from_host") {
        // Absent, null or "" (export-fw writes "" when it has no name): the rules stay the same.
        if (t_.kind(v) != YamlTree::Kind::kNull &&
            !(t_.kind(v) == YamlTree::Kind::kScalar && scalar(v).empty()))
          ok &= host(v, what, false, &r.from_host);
      } else if (key == "to_host") {
        ok &= have_to = host(v, what, true, &r.to_host);
      } else if (key == "protocol") {
        std::string_view text;
        if (!plain_text(v, what, &text)) {
          ok = false;
        } else if (const auto p = protocol_from_string(text)) {
          r.protocol = *p;
          have_protocol = true;
        } else {
          error(v, fmt::format("{}: {} is not tcp, udp, icmp or ipv6-icmp", what, quote_for_log(text, 64)));
          ok = false;
        }
      } else if (key == "ports") {
        ports_node = v;
        have_ports = t_.kind(v) != YamlTree::Kind::kNull;
        ok &= port_ranges(v, what, &r.ports);
      } else if (key == "src_ports") {
        ok &= port_ranges(v, what, &r.src_ports);
      } else if (key == "address_family") {
        std::string_view text;
        if (t_.kind(v) == YamlTree::Kind::kNull) continue;
        if (!plain_text(v, what, &text)) {
          ok = false;
        } else if (text == "ipv4") {
          r.address_family = AddressFamily::kV4;
        } else if (text == "ipv6") {
          r.address_family = AddressFamily::kV6;
        } else {
          error(v, fmt::format("{}: {} is not ipv4 or ipv6", what, quote_for_log(text, 64)));
          ok = false;
        }
      } else if (key == "from_cidr") {
        if (!items(v, what, &list)) {
          ok = false;
          continue;
        }
        for (size_t j = 0; j < list.size(); ++j) {
          std::string_view text;
          const std::string item = fmt::format("{}[{}]", what, j);
          if (!plain_text(list[j], item, &text)) {
            ok = false;
          } else if (const auto net = IpNetwork::parse(text)) {
            r.from_cidr.push_back(*net);
          } else {
            error(list[j],
                  fmt::format("{}: {} is not an address or a CIDR network", item, quote_for_log(text, 64)));
            ok = false;
          }
        }
      } else if (key == "returning") {
        have_returning = true;
        if (!items(v, what, &list)) {
          ok = false;
          continue;
        }
        for (size_t j = 0; j < list.size(); ++j) {
          std::string_view text;
          const std::string item = fmt::format("{}[{}]", what, j);
          if (!plain_text(list[j], item, &text)) {
            ok = false;
          } else if (const auto bit = returning_from_string(text)) {
            r.returning |= *bit;
          } else {
            error(list[j],
                  fmt::format("{}: {} is not one of tcp-ack, echo-reply, port-unreachable, icmp-errors", item,
                              quote_for_log(text, 64)));
            ok = false;
          }
        }
      } else if (key == "targets") {
        if (!items(v, what, &list)) {
          ok = false;
          continue;
        }
        for (size_t j = 0; j < list.size(); ++j) {
          std::string_view text;
          if (!plain_text(list[j], fmt::format("{}[{}]", what, j), &text)) {
            ok = false;
          } else if (text.size() > 256) {
            error(list[j], fmt::format("{}[{}]: longer than 256 bytes", what, j));
            ok = false;
          } else {
            r.targets.emplace_back(text);
          }
        }
      } else {
        error(k, fmt::format("{}: unknown key (expected from_host, to_host, ports, protocol, address_family, "
                             "from_cidr, returning, src_ports, targets)",
                             quote_for_log(std::string(where) + "." + std::string(key), 96)));
        ok = false;
      }
    }
    if (!have_to) {
      if (!seen.contains("to_host")) error(n, fmt::format("{}: to_host is required", where));
      ok = false;
    }
    if (!have_protocol) {
      if (!seen.contains("protocol")) error(n, fmt::format("{}: protocol is required", where));
      ok = false;
    }
    if (!ok) return;
    const bool icmp = r.protocol == Protocol::kIcmp || r.protocol == Protocol::kIcmpV6;
    if (icmp && !r.ports.empty())
      return error(*ports_node, fmt::format("{}.ports: must be empty for {}", where, to_string(r.protocol)));
    if (!icmp && !have_ports)
      return error(n, fmt::format("{}: ports are required for {}", where, to_string(r.protocol)));
    if (icmp && !r.src_ports.empty())
      return error(n, fmt::format("{}.src_ports: must be empty for {}", where, to_string(r.protocol)));
    // The address family an ICMP protocol implies must agree with the destination and address_family.
    const auto implied = r.protocol == Protocol::kIcmp     ? std::optional(AddressFamily::kV4)
                         : r.protocol == Protocol::kIcmpV6 ? std::optional(AddressFamily::kV6)
                                                           : std::nullopt;
    std::optional<AddressFamily> literal;
    if (const auto a = IpAddress::parse(r.to_host)) literal = a->af;
    if (const auto net = IpNetwork::parse(r.to_host); net && r.to_host.find('/') != std::string::npos)
      literal = net->base.af;
    for (const auto& af : {implied, r.address_family})
      if (af && literal && *af != *literal)
        return error(
            n, fmt::format("{}: to_host {} is not an {} destination", where, r.to_host, to_string(*af)));
    if (implied && r.address_family && *implied != *r.address_family)
      return error(n, fmt::format("{}: protocol {} contradicts address_family {}", where,
                                  to_string(r.protocol), to_string(*r.address_family)));
    // A conn-check file lists no returning traffic: its checks are kernel connections, which a stateful
    // firewall lets back. Ours always lists it.
    if (!have_returning) r.returning = 0;
    std::sort(r.targets.begin(), r.targets.end());
    r.targets.erase(std::unique(r.targets.begin(), r.targets.end()), r.targets.end());
    out_.rules.push_back(std::move(r));
  }

  const YamlTree& t_;
  const std::string& source_;
  const ParseLimits& limits_;
  ParseResult& out_;
  size_t visited_ = 0;
  bool over_budget_ = false;
};

}  // namespace

ParseResult parse_rules(std::string_view text, const std::string& source_name, const ParseLimits& limits) {
  ParseResult out;
  if (text.size() > limits.max_bytes) {
    out.errors.push_back(fmt::format("{}: {} bytes, more than the {} a rules file may have", source_name,
                                     text.size(), limits.max_bytes));
    return out;
  }
  std::string error;
  const auto tree = parse_yaml_tree(text, &error);
  if (!tree) {
    out.errors.push_back(fmt::format("{}:{}", source_name, error));
    return out;
  }
  Reader(*tree, source_name, limits, out).document();
  if (!out.errors.empty()) out.rules.clear();
  return out;
}

std::vector<EgressRule> merge_rules(std::vector<EgressRule> rules) {
  // Key: everything but the destination ports, the returning traffic and the targets.
  using Key =
      std::tuple<std::string, std::string, Protocol, int, std::vector<std::string>, std::vector<PortRange>>;
  std::map<Key, EgressRule> merged;
  for (auto& r : rules) {
    std::vector<std::string> from;
    for (const auto& n : r.from_cidr) from.push_back(n.to_string());
    std::sort(from.begin(), from.end());
    from.erase(std::unique(from.begin(), from.end()), from.end());
    Key key{r.from_host, r.to_host,  r.protocol, r.address_family ? int(*r.address_family) : 0,
            from,        r.src_ports};
    auto [it, inserted] = merged.try_emplace(std::move(key), r);
    EgressRule& m = it->second;
    if (inserted) {
      std::vector<IpNetwork> cidrs;
      for (const auto& s : from) cidrs.push_back(*IpNetwork::parse(s));
      m.from_cidr = std::move(cidrs);
      continue;
    }
    m.ports.insert(m.ports.end(), r.ports.begin(), r.ports.end());
    m.ports = coalesce(std::move(m.ports));
    m.returning |= r.returning;
    m.targets.insert(m.targets.end(), r.targets.begin(), r.targets.end());
    std::sort(m.targets.begin(), m.targets.end());
    m.targets.erase(std::unique(m.targets.begin(), m.targets.end()), m.targets.end());
  }
  std::vector<EgressRule> out;
  out.reserve(merged.size());
  for (auto& [key, r] : merged) out.push_back(std::move(r));
  return out;
}

}  // namespace netprobe::firewall
