#include "firewall/convert.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <set>
#include <tuple>

#include "dns/cares_resolver.h"
#include "logging/escape.h"

namespace netprobe::firewall {

std::optional<Backend> backend_from_string(std::string_view s) {
  if (s == "iptables") return Backend::kIptables;
  if (s == "nftables" || s == "nft") return Backend::kNftables;
  if (s == "ufw") return Backend::kUfw;
  if (s == "aws" || s == "ec2" || s == "amazon") return Backend::kAws;
  if (s == "neutron" || s == "openstack") return Backend::kNeutron;
  return std::nullopt;
}

std::vector<AddressFamily> wanted_families(const EgressRule& rule) {
  if (rule.protocol == Protocol::kIcmp) return {AddressFamily::kV4};
  if (rule.protocol == Protocol::kIcmpV6) return {AddressFamily::kV6};
  if (rule.address_family) return {*rule.address_family};
  return {AddressFamily::kV4, AddressFamily::kV6};
}

namespace {

bool is_literal(const std::string& host) {
  return IpAddress::parse(host) || (host.find('/') != std::string::npos && IpNetwork::parse(host));
}

// "no such name" or "no such record": the family simply has no address (CaresResolver::error_text).
bool is_absence(const std::string& error) {
  return error == "NXDOMAIN" || (error.starts_with("no ") && error.ends_with(" address"));
}

bool address_less(const IpAddress& a, const IpAddress& b) {
  return std::tie(a.af, a.bytes) < std::tie(b.af, b.bytes);
}

}  // namespace

Resolved resolve_names(const std::vector<EgressRule>& rules, Resolver& resolver, Nanos timeout) {
  std::set<std::pair<std::string, AddressFamily>> queries;
  for (const auto& r : rules)
    if (!is_literal(r.to_host))
      for (const auto af : wanted_families(r)) queries.insert({r.to_host, af});

  struct Answer {
    std::vector<IpAddress> addresses;
    std::vector<std::string> failures;  // "ipv6: timeout"
    std::vector<std::string> absences;
  };
  std::map<std::string, Answer> answers;
  size_t outstanding = queries.size();
  for (const auto& [name, af] : queries) {
    answers[name];
    resolver.resolve(name, af, [&answers, &outstanding, name = name, af = af](Resolution r) {
      --outstanding;
      Answer& a = answers[name];
      if (!r.ok) {
        (is_absence(r.error) ? a.absences : a.failures)
            .push_back(fmt::format("{}: {}", to_string(af), r.error));
        return;
      }
      for (const auto& ip : r.addresses)
        if (ip.af == af && !unusable_answer(ip)) a.addresses.push_back(ip);
    });
  }
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  // Bounded: each round waits at most what is left of the timeout, and stops when nothing is pending.
  for (int round = 0; outstanding > 0 && round < 1'000'000; ++round) {
    const auto left = deadline - std::chrono::steady_clock::now();
    if (left <= Nanos(0)) break;
    resolver.poll(std::min<Nanos>(std::chrono::duration_cast<Nanos>(left), std::chrono::milliseconds(100)));
    if (resolver.pending() == 0 && outstanding > 0) break;  // a resolver that lost a query
  }

  Resolved out;
  for (auto& [name, a] : answers) {
    std::sort(a.addresses.begin(), a.addresses.end(), address_less);
    a.addresses.erase(std::unique(a.addresses.begin(), a.addresses.end()), a.addresses.end());
    std::string why;
    for (const auto& f : a.failures) why += (why.empty() ? "" : "; ") + f;
    if (why.empty() && a.addresses.empty()) {
      for (const auto& f : a.absences) why += (why.empty() ? "" : "; ") + f;
      if (why.empty()) why = "no answer in time";
    }
    if (!why.empty())
      out.errors.push_back(fmt::format("{}: does not resolve ({})", name, why));
    else
      out.addresses[name] = std::move(a.addresses);
  }
  return out;
}

bool is_valid_group(std::string_view s) {
  if (s.empty() || s.size() > 255) return false;
  const bool variable = s[0] == '$';
  if (variable) s.remove_prefix(1);
  if (s.empty()) return false;
  return std::all_of(s.begin(), s.end(), [variable](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' ||
           (!variable && (c == '-' || c == '.' || c == ':'));
  });
}

bool is_valid_nft_table(std::string_view s) {
  return !s.empty() && s.size() <= 64 && std::isalpha(static_cast<unsigned char>(s[0])) &&
         std::all_of(s.begin(), s.end(), [](char c) {
           return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-';
         });
}

namespace {

// One rule after resolution: a single destination network and at most one source network.
struct Flow {
  const EgressRule* rule;
  IpNetwork dst;
  std::optional<IpNetwork> src;
  AddressFamily af() const { return dst.base.af; }
};

int full_prefix(AddressFamily af) { return af == AddressFamily::kV4 ? 32 : 128; }

// An address alone when the network is one host (iptables, nft and ufw print it so), else CIDR.
std::string host_text(const IpNetwork& n) {
  return n.prefix == full_prefix(n.base.af) ? n.base.to_string() : n.to_string();
}

std::vector<Flow> expand(const EgressRule& r, const Resolved& resolved) {
  std::vector<IpNetwork> dsts;
  if (const auto a = IpAddress::parse(r.to_host)) {
    dsts.push_back({*a, full_prefix(a->af)});
  } else if (r.to_host.find('/') != std::string::npos) {
    if (const auto n = IpNetwork::parse(r.to_host)) dsts.push_back(*n);
  } else if (const auto it = resolved.addresses.find(r.to_host); it != resolved.addresses.end()) {
    const auto families = wanted_families(r);
    for (const auto& ip : it->second)
      if (std::find(families.begin(), families.end(), ip.af) != families.end())
        dsts.push_back({ip, full_prefix(ip.af)});
  }
  std::vector<Flow> out;
  for (const auto& d : dsts) {
    std::vector<std::optional<IpNetwork>> srcs;
    for (const auto& s : r.from_cidr)
      if (s.base.af == d.base.af) srcs.emplace_back(s);
    if (srcs.empty()) srcs.emplace_back(std::nullopt);  // any of the host's addresses
    for (const auto& s : srcs) out.push_back({&r, d, s});
  }
  return out;
}

// Lines in order, each command once (comments may repeat).
class Output {
 public:
  void comment(const std::string& text) { lines_.push_back("# " + text); }
  void command(std::string line) {
    if (seen_.insert(line).second) lines_.push_back(std::move(line));
  }
  void blank() {
    if (!lines_.empty() && !lines_.back().empty()) lines_.emplace_back();
  }
  std::string text() const {
    std::string out;
    for (const auto& l : lines_) out += l + "\n";
    return out;
  }

 private:
  std::vector<std::string> lines_;
  std::set<std::string> seen_;
};

// What a rule is for, as a comment: "web.example.com tcp 443 (targets: web, web2)". Target names are
// free text from a file: escaped, so a newline can never start a command.
std::string describe(const EgressRule& r) {
  std::string s = fmt::format("{} {}", r.to_host, to_string(r.protocol));
  for (size_t i = 0; i < r.ports.size(); ++i) s += (i ? "," : " ") + r.ports[i].to_string('-');
  if (!r.src_ports.empty()) {
    s += " from port";
    for (size_t i = 0; i < r.src_ports.size(); ++i) s += (i ? "," : " ") + r.src_ports[i].to_string('-');
  }
  if (!r.targets.empty()) {
    s += " (targets:";
    for (size_t i = 0; i < r.targets.size() && i < 8; ++i)
      s += (i ? ", " : " ") + escape_for_log(r.targets[i], 64);
    if (r.targets.size() > 8) s += fmt::format(", and {} more", r.targets.size() - 8);
    s += ")";
  }
  return s;
}

// Source ranges, or one "any" (nullopt) when the rule has none.
std::vector<std::optional<PortRange>> sources_or_any(const EgressRule& r) {
  std::vector<std::optional<PortRange>> out(r.src_ports.begin(), r.src_ports.end());
  if (out.empty()) out.emplace_back(std::nullopt);
  return out;
}

// ---- iptables / ip6tables: commands, one port range per line; the returning traffic stateless on INPUT.

void iptables_flow(const Flow& f, Output& out) {
  const EgressRule& r = *f.rule;
  const bool v4 = f.af() == AddressFamily::kV4;
  const std::string ipt = v4 ? "iptables" : "ip6tables";
  const std::string dst = host_text(f.dst);
  const std::string src_out = f.src ? " -s " + host_text(*f.src) : "";
  const std::string src_in = f.src ? " -d " + host_text(*f.src) : "";
  const std::string icmp = v4 ? "-p icmp" : "-p ipv6-icmp";
  const std::string icmp_type = v4 ? "--icmp-type" : "--icmpv6-type";
  const std::string proto(to_string(r.protocol));
  if (r.protocol == Protocol::kTcp || r.protocol == Protocol::kUdp) {
    for (const auto& sp : sources_or_any(r))
      for (const auto& dp : r.ports) {
        const std::string sport = sp ? " --sport " + sp->to_string(':') : "";
        const std::string dport = sp ? " --dport " + sp->to_string(':') : "";
        out.command(fmt::format("{} -A OUTPUT -p {}{} -d {}{} --dport {} -j ACCEPT", ipt, proto, src_out, dst,
                                sport, dp.to_string(':')));
        if (r.protocol == Protocol::kTcp && (r.returning & kTcpAck))
          out.command(fmt::format("{} -A INPUT -p tcp -s {}{} --sport {}{} --tcp-flags ACK ACK -j ACCEPT",
                                  ipt, dst, src_in, dp.to_string(':'), dport));
        if (r.protocol == Protocol::kUdp && (r.returning & kUdpAnswer))
          out.command(fmt::format("{} -A INPUT -p udp -s {}{} --sport {}{} -j ACCEPT", ipt, dst, src_in,
                                  dp.to_string(':'), dport));
      }
  } else {
    out.command(
        fmt::format("{} -A OUTPUT {}{} -d {} {} echo-request -j ACCEPT", ipt, icmp, src_out, dst, icmp_type));
  }
  if (r.returning & kEchoReply)
    out.command(
        fmt::format("{} -A INPUT {} -s {}{} {} echo-reply -j ACCEPT", ipt, icmp, dst, src_in, icmp_type));
  if (r.returning & kPortUnreachable)
    out.command(fmt::format("{} -A INPUT {} -s {}{} {} port-unreachable -j ACCEPT", ipt, icmp, dst, src_in,
                            icmp_type));
}

void iptables_errors(AddressFamily af, const std::optional<IpNetwork>& src, Output& out) {
  const bool v4 = af == AddressFamily::kV4;
  const std::string src_in = src ? " -d " + host_text(*src) : "";
  const std::vector<std::string> types =
      v4 ? std::vector<std::string>{"destination-unreachable", "time-exceeded", "parameter-problem"}
         : std::vector<std::string>{"destination-unreachable", "packet-too-big", "time-exceeded",
                                    "parameter-problem"};
  for (const auto& t : types)
    out.command(v4 ? fmt::format("iptables -A INPUT -p icmp{} --icmp-type {} -j ACCEPT", src_in, t)
                   : fmt::format("ip6tables -A INPUT -p ipv6-icmp{} --icmpv6-type {} -j ACCEPT", src_in, t));
}

// ---- nftables: an `nft -f` file of `add rule` lines; several ports become an anonymous set.

std::string nft_ports(const std::vector<PortRange>& ports) {
  if (ports.size() == 1) return ports[0].to_string('-');
  std::string s = "{ ";
  for (size_t i = 0; i < ports.size(); ++i) s += (i ? ", " : "") + ports[i].to_string('-');
  return s + " }";
}

void nft_flow(const Flow& f, const std::string& table, Output& out) {
  const EgressRule& r = *f.rule;
  const bool v4 = f.af() == AddressFamily::kV4;
  const std::string ip = v4 ? "ip" : "ip6";
  const std::string icmp = v4 ? "icmp" : "icmpv6";
  const std::string dst = host_text(f.dst);
  const std::string src_out = f.src ? fmt::format(" {} saddr {}", ip, host_text(*f.src)) : "";
  const std::string src_in = f.src ? fmt::format(" {} daddr {}", ip, host_text(*f.src)) : "";
  const std::string proto(to_string(r.protocol));
  const std::string output = "add rule inet " + table + " output";
  const std::string input = "add rule inet " + table + " input";
  if (r.protocol == Protocol::kTcp || r.protocol == Protocol::kUdp) {
    const std::string sport =
        r.src_ports.empty() ? "" : fmt::format(" {} sport {}", proto, nft_ports(r.src_ports));
    const std::string dport = r.src_ports.empty() ? "" : fmt::format(" tcp dport {}", nft_ports(r.src_ports));
    out.command(fmt::format("{}{} {} daddr {}{} {} dport {} accept", output, src_out, ip, dst, sport, proto,
                            nft_ports(r.ports)));
    if (r.protocol == Protocol::kTcp && (r.returning & kTcpAck))
      out.command(fmt::format("{} {} saddr {}{} tcp sport {}{} tcp flags & ack == ack accept", input, ip, dst,
                              src_in, nft_ports(r.ports), dport));
    if (r.protocol == Protocol::kUdp && (r.returning & kUdpAnswer))
      out.command(
          fmt::format("{} {} saddr {}{} udp sport {}{} accept", input, ip, dst, src_in, nft_ports(r.ports),
                      r.src_ports.empty() ? "" : fmt::format(" udp dport {}", nft_ports(r.src_ports))));
  } else {
    out.command(fmt::format("{}{} {} daddr {} {} type echo-request accept", output, src_out, ip, dst, icmp));
  }
  if (r.returning & kEchoReply)
    out.command(fmt::format("{} {} saddr {}{} {} type echo-reply accept", input, ip, dst, src_in, icmp));
  if (r.returning & kPortUnreachable)
    out.command(
        fmt::format("{} {} saddr {}{} {} type destination-unreachable {} code port-unreachable accept", input,
                    ip, dst, src_in, icmp, icmp));
}

void nft_errors(AddressFamily af, const std::optional<IpNetwork>& src, const std::string& table,
                Output& out) {
  const bool v4 = af == AddressFamily::kV4;
  const std::string src_in = src ? fmt::format(" {} daddr {}", v4 ? "ip" : "ip6", host_text(*src)) : "";
  out.command(
      v4 ? fmt::format("add rule inet {} input{} icmp type {{ destination-unreachable, time-exceeded, "
                       "parameter-problem }} accept",
                       table, src_in)
         : fmt::format("add rule inet {} input{} icmpv6 type {{ destination-unreachable, packet-too-big, "
                       "time-exceeded, parameter-problem }} accept",
                       table, src_in));
}

// ---- ufw: stateful (before.rules accepts ESTABLISHED,RELATED), one command for both families; no ICMP.

void ufw_flow(const Flow& f, Output& out) {
  const EgressRule& r = *f.rule;
  const std::string src = f.src ? host_text(*f.src) : "any";
  const std::string dst = host_text(f.dst);
  if (r.protocol == Protocol::kTcp || r.protocol == Protocol::kUdp) {
    for (const auto& sp : sources_or_any(r))
      for (const auto& dp : r.ports)
        out.command(fmt::format("ufw allow out proto {} from {}{} to {} port {}", to_string(r.protocol), src,
                                sp ? " port " + sp->to_string(':') : "", dst, dp.to_string(':')));
    return;
  }
  // ufw's command line has no ICMP; its rules files do.
  const bool v4 = f.af() == AddressFamily::kV4;
  out.comment(
      fmt::format("ufw cannot allow ICMP from its command line: add to /etc/ufw/{}.rules, before COMMIT:",
                  v4 ? "before" : "before6"));
  out.comment(
      v4 ? fmt::format("-A ufw-before-output -p icmp{} -d {} --icmp-type echo-request -j ACCEPT",
                       f.src ? " -s " + host_text(*f.src) : "", dst)
         : fmt::format("-A ufw6-before-output -p ipv6-icmp{} -d {} --icmpv6-type echo-request -j ACCEPT",
                       f.src ? " -s " + host_text(*f.src) : "", dst));
}

// ---- Security groups (aws, neutron): stateful, egress only, no source port or address.

std::string quoted_group(const std::string& group) { return "\"" + group + "\""; }

void aws_flow(const Flow& f, const std::string& group, Output& out) {
  const EgressRule& r = *f.rule;
  const bool v4 = f.af() == AddressFamily::kV4;
  const std::string range = v4 ? fmt::format("IpRanges=[{{CidrIp={}}}]", f.dst.to_string())
                               : fmt::format("Ipv6Ranges=[{{CidrIpv6={}}}]", f.dst.to_string());
  const std::string head =
      "aws ec2 authorize-security-group-egress --group-id " + quoted_group(group) + " --ip-permissions ";
  if (r.protocol == Protocol::kTcp || r.protocol == Protocol::kUdp) {
    for (const auto& dp : r.ports)
      out.command(fmt::format("{}'IpProtocol={},FromPort={},ToPort={},{}'", head, to_string(r.protocol),
                              dp.first, dp.last, range));
  } else {
    // ICMP: FromPort is the type (echo request), ToPort the code (-1: any).
    out.command(fmt::format("{}'IpProtocol={},FromPort={},ToPort=-1,{}'", head, v4 ? "icmp" : "icmpv6",
                            v4 ? 8 : 128, range));
  }
}

void neutron_flow(const Flow& f, const std::string& group, Output& out) {
  const EgressRule& r = *f.rule;
  const bool v4 = f.af() == AddressFamily::kV4;
  const std::string head =
      fmt::format("openstack security group rule create --egress --ethertype {}", v4 ? "IPv4" : "IPv6");
  if (r.protocol == Protocol::kTcp || r.protocol == Protocol::kUdp) {
    for (const auto& dp : r.ports)
      out.command(fmt::format("{} --protocol {} --dst-port {} --remote-ip {} {}", head, to_string(r.protocol),
                              dp.to_string(':'), f.dst.to_string(), quoted_group(group)));
  } else {
    out.command(fmt::format("{} --protocol {} --icmp-type {} --remote-ip {} {}", head,
                            v4 ? "icmp" : "ipv6-icmp", v4 ? 8 : 128, f.dst.to_string(), quoted_group(group)));
  }
}

}  // namespace

std::string render_commands(const std::vector<EgressRule>& rules, const Resolved& resolved,
                            const ConvertOptions& options) {
  Output out;
  const std::string& table = options.nft_table;
  switch (options.backend) {
    case Backend::kIptables:
      out.comment(
          "netprobe convert-fw -t iptables: probes allowed out on OUTPUT, what comes back allowed on INPUT");
      out.comment(
          "(stateless: independent of conntrack; docs/firewall.md). Source ports are the groups' "
          "ranges.");
      break;
    case Backend::kNftables:
      out.comment("netprobe convert-fw -t nftables: load with `nft -f FILE`. The table inet " + table +
                  " and its chains");
      out.comment(
          "`output` and `input` must exist (Debian's /etc/nftables.conf has them); docs/firewall.md.");
      break;
    case Backend::kUfw:
      out.comment(
          "netprobe convert-fw -t ufw: egress rules; replies and ICMP errors come back through ufw's");
      out.comment(
          "ESTABLISHED,RELATED rule (before.rules). ufw applies a rule to the family of its addresses.");
      break;
    case Backend::kAws:
      out.comment("netprobe convert-fw -t aws: security group egress rules. Security groups are stateful:");
      out.comment(
          "replies and related ICMP errors come back without ingress rules; source ports cannot be set.");
      break;
    case Backend::kNeutron:
      out.comment(
          "netprobe convert-fw -t neutron (openstack CLI): security group egress rules. Security groups");
      out.comment("are stateful: replies and related ICMP errors come back without ingress rules.");
      break;
  }
  const bool host_firewall = options.backend == Backend::kIptables || options.backend == Backend::kNftables ||
                             options.backend == Backend::kUfw;
  // Host firewalls: one section per prober (from_host), the ICMP errors it must receive at its end.
  size_t i = 0;
  while (i < rules.size()) {
    const std::string& from = rules[i].from_host;
    size_t end = i;
    while (end < rules.size() && (!host_firewall || rules[end].from_host == from)) ++end;
    if (host_firewall) {
      out.blank();
      out.comment("on " + (from.empty() ? std::string("the prober") : from));
    }
    std::set<std::pair<AddressFamily, std::string>> error_sources;
    std::vector<std::pair<AddressFamily, std::optional<IpNetwork>>> errors;
    std::set<AddressFamily> stateful;
    for (; i < end; ++i) {
      const EgressRule& r = rules[i];
      const auto flows = expand(r, resolved);
      out.comment(describe(r));
      if (flows.empty()) out.comment("(no address: nothing to allow)");
      for (const auto& f : flows) {
        switch (options.backend) {
          case Backend::kIptables:
            iptables_flow(f, out);
            break;
          case Backend::kNftables:
            nft_flow(f, table, out);
            break;
          case Backend::kUfw:
            ufw_flow(f, out);
            break;
          case Backend::kAws:
            aws_flow(f, options.group, out);
            break;
          case Backend::kNeutron:
            neutron_flow(f, options.group, out);
            break;
        }
        if ((r.returning & kIcmpErrors) &&
            error_sources.insert({f.af(), f.src ? f.src->to_string() : ""}).second)
          errors.emplace_back(f.af(), f.src);
        if (r.returning == 0) stateful.insert(f.af());
      }
    }
    // conn-check's rules list no returning traffic: its checks are kernel connections, tracked by conntrack.
    if (!stateful.empty() &&
        (options.backend == Backend::kIptables || options.backend == Backend::kNftables)) {
      out.comment(
          "replies to the rules above without `returning` (conn-check's: kernel connections, tracked)");
      if (options.backend == Backend::kNftables)
        out.command(fmt::format("add rule inet {} input ct state established,related accept", table));
      for (const auto af : stateful)
        if (options.backend == Backend::kIptables)
          out.command(fmt::format("{} -A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT",
                                  af == AddressFamily::kV4 ? "iptables" : "ip6tables"));
    }
    if (!errors.empty() && (options.backend == Backend::kIptables || options.backend == Backend::kNftables)) {
      out.comment(
          "ICMP errors about the probes (netprobe counts them), from the targets or any router on the path");
      for (const auto& [af, src] : errors) {
        if (options.backend == Backend::kIptables)
          iptables_errors(af, src, out);
        else
          nft_errors(af, src, table, out);
      }
    }
  }
  return out.text();
}

}  // namespace netprobe::firewall
