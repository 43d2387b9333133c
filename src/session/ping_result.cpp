#include "session/ping_result.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <exception>
#include <map>
#include <string_view>

#include <fmt/format.h>

#include "core/percentile.h"
#include "paths/significance.h"

namespace netprobe {

int PingSummary::exit_code(std::optional<double> max_loss_pct, std::optional<double> max_rtt_ms) const {
  if (sent == 0) return 1;
  // The loss is printed with two decimals: compare with a margin below that resolution.
  const bool loss_ok = max_loss_pct ? loss_pct <= *max_loss_pct + 1e-9 : received > 0;
  const bool rtt_ok = !max_rtt_ms || (!rtts_s.empty() && p99_s * 1e3 <= *max_rtt_ms);
  return loss_ok && rtt_ok ? 0 : 1;
}

PingSummary summarize_ping(std::span<const ProbeEvent> events) {
  PingSummary s;
  std::map<uint16_t, FlowTally> by_port;
  for (const ProbeEvent& e : events) {
    if (e.state == ProbeEvent::State::kUnsent) continue;
    FlowTally& t = by_port[e.src_port];
    ++s.sent;
    ++t.sent;
    if (e.state == ProbeEvent::State::kAnswered) {
      ++s.received;
      if (e.rtt_s >= 0) s.rtts_s.push_back(e.rtt_s);
    } else {
      ++t.lost;
    }
    s.late += e.state == ProbeEvent::State::kLate;
    s.duplicates += e.duplicates;
    s.icmp_errors += e.icmp_error;
  }
  if (s.sent) s.loss_pct = 100.0 * double(s.sent - s.received) / double(s.sent);
  if (!s.rtts_s.empty()) {
    const auto [lo, hi] = std::minmax_element(s.rtts_s.begin(), s.rtts_s.end());
    s.min_s = *lo;
    s.max_s = *hi;
    double sum = 0, sq = 0;
    for (double r : s.rtts_s) sum += r, sq += r * r;
    const auto n = double(s.rtts_s.size());
    s.avg_s = sum / n;
    s.mdev_s = std::sqrt(std::max(0.0, sq / n - s.avg_s * s.avg_s));
    std::vector<double> sorted = s.rtts_s;  // rtts_s keeps the probes' order
    s.p50_s = percentile_linear(sorted, 50);
    s.p90_s = percentile_linear(sorted, 90);
    s.p99_s = percentile_linear(sorted, 99);
  }
  std::vector<FlowTally> tallies;
  for (const auto& [port, t] : by_port) tallies.push_back(t);
  const std::vector<bool> lossy = lossy_flows(tallies);
  size_t k = 0;
  for (const auto& [port, t] : by_port) {
    const char* flag = !lossy[k] ? "" : t.lost == t.sent ? "black-holed" : "lossy";
    s.ports.push_back({port, t.sent, t.lost, flag});
    ++k;
  }
  return s;
}

namespace {

double ms(double s) { return std::round(s * 1e6) / 1e3; }  // to the microsecond

bool is_v4(const PingLineContext& c) { return c.af == AddressFamily::kV4; }

// An answer that is an ICMP message other than an echo reply (UDPunreachable's port unreachable).
bool icmp_answer(const ReplyInfo& r) {
  return (r.protocol == 1 && r.icmp_type != 0) || (r.protocol == 58 && r.icmp_type != 129);
}

std::string flags_of(uint8_t flags) {
  const auto letters = tcp_flags_letters(flags);
  return letters[0] ? std::string(letters.data()) : std::string("none");
}

// netprobe's fields of a reply: from, ttl, id and DF (IPv4), flags and win (TCP), the ICMP message
// (an ICMP answer), len.
std::string reply_fields(const ReplyInfo& r, const PingLineContext& c) {
  std::string s = fmt::format("from={} ttl={}", r.from.to_string(), r.ttl);
  if (is_v4(c)) s += fmt::format(" id={}{}", r.ip_id, r.dont_fragment ? " DF" : "");
  if (r.protocol == 6) s += fmt::format(" flags={} win={}", flags_of(r.tcp_flags), r.tcp_window);
  if (icmp_answer(r)) s += " icmp=" + icmp_error_label(c.af, r.icmp_type, r.icmp_code);
  return s + fmt::format(" len={}", r.length);
}

std::string rtt_text(double s) { return s >= 0 ? fmt::format("rtt={:.3f} ms", ms(s)) : "rtt=unknown"; }

// hping3's `%.1f` of a RTT in milliseconds (0.0 without a usable send time, as hping3 prints when its
// table has no entry).
std::string rtt_hping(double s) { return fmt::format("{:.1f}", s >= 0 ? s * 1e3 : 0.0); }

// logicmp.c: hping3's wording of an ICMP error (IPv4), and the closest one for ICMPv6's codes.
std::string icmp_error_hping(AddressFamily af, uint8_t type, uint8_t code, const std::string& from) {
  static constexpr const char* kUnreach[] = {"Network Unreachable from",
                                             "Host Unreachable from",
                                             "Protocol Unreachable from",
                                             "Port Unreachable from",
                                             "Fragmentation Needed/DF set from",
                                             "Source Route failed from",
                                             nullptr,
                                             nullptr,
                                             nullptr,
                                             nullptr,
                                             nullptr,
                                             nullptr,
                                             nullptr,
                                             "Packet filtered from",
                                             "Precedence violation from",
                                             "precedence cut off from"};
  int unreach_code = -1;  // as hping3's IPv4 code
  bool exceeded = false, fragtime = false;
  if (af == AddressFamily::kV4) {
    if (type == 3) unreach_code = code;
    if (type == 11) exceeded = true, fragtime = code == 1;
  } else {
    // ICMPv6 destination unreachable codes: 0 no route, 1 prohibited, 3 address, 4 port, 5/6 policy.
    static constexpr int kV6[] = {0, 13, 2, 1, 3, 13, 13};
    if (type == 1) unreach_code = code < 7 ? kV6[code] : 100 + code;
    if (type == 2) unreach_code = 4;
    if (type == 3) exceeded = true, fragtime = code == 1;
  }
  if (exceeded) return fmt::format("TTL 0 during {} from ip={}\n", fragtime ? "reassembly" : "transit", from);
  if (unreach_code >= 0 && unreach_code < 16 && kUnreach[unreach_code])
    return fmt::format("ICMP {} ip={}\n", kUnreach[unreach_code], from);
  if (unreach_code >= 0) return fmt::format("ICMP Unreachable type={} from ip={}\n", code, from);
  return fmt::format("ICMP type={} code={} from ip={}\n", type, code, from);
}

std::string loss_text(double pct) {
  const double r = std::round(pct * 100) / 100;
  if (r == std::round(r)) return fmt::format("{}", int(r));
  return fmt::format("{:.2f}", r);
}

}  // namespace

std::optional<double> parse_ping_interval(const std::string& s) {
  if (s.empty() || s.size() > 32) return std::nullopt;
  const bool micro = s[0] == 'u';
  try {
    size_t used = 0;
    const double v = std::stod(s.substr(micro ? 1 : 0), &used);
    if (used != s.size() - (micro ? 1 : 0) || !std::isfinite(v)) return std::nullopt;
    return micro ? v * 1e-6 : v;
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

std::optional<int> parse_tos(const std::string& text) {
  std::string_view s = text;
  if (s.size() > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) s.remove_prefix(2);
  if (s.empty() || s.size() > 2) return std::nullopt;
  // Hex digits only: from_chars would take a sign ("-4" is not a TOS byte).
  if (!std::all_of(s.begin(), s.end(), [](char c) { return std::isxdigit(static_cast<unsigned char>(c)); }))
    return std::nullopt;
  int v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v, 16);
  if (ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
  return v;
}

int ping_chunk_size(double spacing_s, double timeout_s, int remaining) {
  if (remaining < 1) return 0;
  if (spacing_s >= timeout_s) return 1;
  const double n = spacing_s > 0 ? std::ceil(kChunkSpanTimeouts * timeout_s / spacing_s) : kMaxPingChunk;
  return int(std::min<double>({n, double(kMaxPingChunk), double(remaining)}));
}

std::string icmp_error_name(AddressFamily af, uint8_t type, uint8_t code) {
  if (af == AddressFamily::kV4) {
    if (type == 3) {
      static constexpr const char* kNames[] = {
          "net-unreachable",      "host-unreachable",    "protocol-unreachable", "port-unreachable",
          "frag-needed",          "source-route-failed", "net-unknown",          "host-unknown",
          "source-isolated",      "net-prohibited",      "host-prohibited",      "net-tos-unreachable",
          "host-tos-unreachable", "admin-prohibited",    "precedence-violation", "precedence-cutoff"};
      return code < 16 ? kNames[code] : "";
    }
    if (type == 11) return code == 0 ? "ttl-exceeded" : code == 1 ? "reassembly-exceeded" : "";
    if (type == 12) return "parameter-problem";
    return "";
  }
  if (type == 1) {
    static constexpr const char* kNames[] = {"no-route",         "admin-prohibited", "beyond-scope",
                                             "addr-unreachable", "port-unreachable", "policy-failed",
                                             "reject-route"};
    return code < 7 ? kNames[code] : "";
  }
  if (type == 2) return "packet-too-big";
  if (type == 3) return code == 0 ? "hop-limit-exceeded" : code == 1 ? "reassembly-exceeded" : "";
  if (type == 4) return "parameter-problem";
  return "";
}

std::string ping_line_text(int seq, const ProbeEvent& e, const PingLineContext& c) {
  std::string line = fmt::format("seq={}", seq);
  if (c.type != ProbeType::kIcmpPing) line += fmt::format(" sport={}", e.src_port);
  switch (e.state) {
    case ProbeEvent::State::kAnswered:
      if (e.has_reply) line += " " + reply_fields(e.reply, c);
      line += " " + rtt_text(e.rtt_s);
      break;
    case ProbeEvent::State::kLate:
      line += " late";
      if (e.has_reply) line += " " + reply_fields(e.reply, c) + " " + rtt_text(e.reply_rtt_s);
      break;
    case ProbeEvent::State::kIcmpError: {
      line += " icmp " + icmp_error_label(c.af, e.icmp_type, e.icmp_code);
      const std::string name = icmp_error_name(c.af, e.icmp_type, e.icmp_code);
      if (!name.empty()) line += " " + name;
      if (e.has_error) line += fmt::format(" from={} {}", e.error.from.to_string(), rtt_text(e.error_rtt_s));
      break;
    }
    case ProbeEvent::State::kLost:
      // A refusal about the destination (a local firewall rule, no route) is loss, with its reason.
      line +=
          e.send_error ? fmt::format(" refused {}", send_error_name(e.send_error)) : std::string(" timeout");
      break;
    case ProbeEvent::State::kUnsent:
      line += " unsent";
      if (e.send_error) line += fmt::format(" {}", send_error_name(e.send_error));
      break;
  }
  if (e.duplicates) line += fmt::format(" dup={}", e.duplicates);
  return line;
}

std::string ping_lines_hping(int seq, const ProbeEvent& e, const PingLineContext& c) {
  std::string out;
  const auto answer_line = [&](const ReplyInfo& r, double rtt_s) {
    if (icmp_answer(r))
      return icmp_error_hping(c.af, r.icmp_type, r.icmp_code, r.from.to_string());  // no RTT
    std::string line = fmt::format("len={} ip={} ttl={} {}id={} ", r.length, r.from.to_string(), r.ttl,
                                   r.dont_fragment ? "DF " : "", r.ip_id);
    const std::string rtt = rtt_hping(rtt_s);
    if (r.protocol == 6)
      line += fmt::format("sport={} flags={} seq={} win={} rtt={} ms\n", c.dst_port, flags_of(r.tcp_flags),
                          seq, r.tcp_window, rtt);
    else if (r.protocol == 1 || r.protocol == 58)
      line += fmt::format("icmp_seq={} rtt={} ms\n", seq, rtt);
    else
      line += fmt::format("seq={} rtt={} ms\n", seq, rtt);
    return line;
  };
  if (e.has_reply) {
    const std::string first = answer_line(e.reply, e.reply_rtt_s);
    out += first;
    // Each duplicate with its own fields (TTL, IP ID, RTT: another path or a middlebox shows there), as
    // hping3; past what the engine kept, the first answer's.
    for (int k = 0; k < e.duplicates; ++k)
      out += "DUP! " +
             (size_t(k) < e.duplicate_replies.size()
                  ? answer_line(e.duplicate_replies[size_t(k)].reply, e.duplicate_replies[size_t(k)].rtt_s)
                  : first);
  }
  if (e.has_error && e.state == ProbeEvent::State::kIcmpError)
    out += icmp_error_hping(c.af, e.error.icmp_type, e.error.icmp_code, e.error.from.to_string());
  else if (!e.has_error && e.state == ProbeEvent::State::kIcmpError)
    out += icmp_error_hping(c.af, e.icmp_type, e.icmp_code, "?");
  return out;
}

std::string ping_statistics_hping(const std::string& target, const PingSummary& s) {
  std::string out = fmt::format("\n--- {} hping statistic ---\n", target);
  out += fmt::format("{} packets tramitted, {} packets received, {}% packet loss\n", s.sent, s.received,
                     loss_text(s.sent ? s.loss_pct : 0));
  out += fmt::format("round-trip min/avg/max = {:.1f}/{:.1f}/{:.1f} ms\n", s.min_s * 1e3, s.avg_s * 1e3,
                     s.max_s * 1e3);
  return out;
}

std::string ping_header_hping(const std::string& target, const std::string& iface, const IpAddress& address,
                              const PingLineContext& c, int data_bytes) {
  const int ip = is_v4(c) ? 20 : 40;
  const char* set = c.type == ProbeType::kIcmpPing         ? "icmp mode"
                    : c.type == ProbeType::kUdpUnreachable ? "udp mode"
                                                           : "S";
  const int l4 = c.type == ProbeType::kTcpSyn ? 20 : 8;
  return fmt::format("HPING {} ({} {}): {} set, {} headers + {} data bytes\n", target, iface,
                     address.to_string(), set, ip + l4, data_bytes);
}

}  // namespace netprobe
