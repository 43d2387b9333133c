// `netprobe ping`'s summary and exit rule (session/ping_result.h), table-tested: loss with and without
// --max-loss, nothing sent, unsent probes skipped, ICMP errors and late answers counted, RTT statistics, and
// the per-source-port flags.
#include "session/ping_result.h"

#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <vector>

namespace netprobe {
namespace {

using S = ProbeEvent::State;

ProbeEvent ev(S state, uint16_t sport = 65000, double rtt_s = -1, bool icmp = false) {
  ProbeEvent e;
  e.state = state;
  e.src_port = sport;
  e.rtt_s = rtt_s;
  e.icmp_error = icmp;
  return e;
}
ProbeEvent refused(S state, SendError why) {
  ProbeEvent e = ev(state);
  e.send_error = uint8_t(1 + uint8_t(why));
  return e;
}

// -i and the API's `interval`: seconds or hping's "u" microseconds, nothing else.
TEST(session_PingResult, ParsesIntervals) {
  const std::vector<std::pair<std::string, std::optional<double>>> rows = {
      {"1", 1.0},
      {"0.2", 0.2},
      {"u200000", 0.2},
      {"u1", 1e-6},
      {"", std::nullopt},
      {"u", std::nullopt},
      {"1s", std::nullopt},
      {"nan", std::nullopt},
      {"inf", std::nullopt},
      {"0.2 ", std::nullopt},
      {std::string(33, '1'), std::nullopt},
      {"x", std::nullopt},
  };
  for (const auto& [text, want] : rows) {
    const auto got = parse_ping_interval(text);
    ASSERT_EQ(got.has_value(), want.has_value()) << text;
    if (want) {
      EXPECT_DOUBLE_EQ(*got, *want) << text;
    }
  }
}

// -o and the API's `tos`: one or two hex digits, with or without 0x; the ECN bits are the callers' to refuse.
TEST(session_PingResult, ParsesTos) {
  const std::vector<std::pair<std::string, std::optional<int>>> rows = {
      {"10", 0x10},
      {"0x10", 0x10},
      {"0X10", 0x10},
      {"b8", 0xb8},
      {"B8", 0xb8},
      {"0xff", 0xff},
      {"0", 0},
      {"f", 0xf},
      {"3", 3},
      {"", std::nullopt},
      {"0x", std::nullopt},
      {"100", std::nullopt},
      {"0x100", std::nullopt},
      {"d16", std::nullopt},
      {"1g", std::nullopt},
      {"x10", std::nullopt},
      {" 10", std::nullopt},
      {"10 ", std::nullopt},
      {"+1", std::nullopt},
      {"-4", std::nullopt},  // from_chars alone takes the sign
      {"0x-4", std::nullopt},
  };
  for (const auto& [text, want] : rows) EXPECT_EQ(parse_tos(text), want) << text;
}

TEST(session_PingResult, ExitCodes) {
  struct Case {
    const char* name;
    std::vector<ProbeEvent> events;
    std::optional<double> max_loss;
    int code;
  };
  const std::vector<Case> cases = {
      {"all answered", {ev(S::kAnswered, 1, 1e-3), ev(S::kAnswered, 2, 2e-3)}, std::nullopt, 0},
      {"one of two answered, default rule", {ev(S::kAnswered, 1, 1e-3), ev(S::kLost)}, std::nullopt, 0},
      {"none answered", {ev(S::kLost), ev(S::kLate), ev(S::kIcmpError, 1, -1, true)}, std::nullopt, 1},
      {"nothing sent", {}, std::nullopt, 1},
      {"only unsent", {ev(S::kUnsent), ev(S::kUnsent)}, std::nullopt, 1},
      {"nothing sent, any loss allowed", {}, 100.0, 1},
      {"50 % within 50", {ev(S::kAnswered, 1, 1e-3), ev(S::kLost)}, 50.0, 0},
      {"50 % above 49.99", {ev(S::kAnswered, 1, 1e-3), ev(S::kLost)}, 49.99, 1},
      {"0 % within 0", {ev(S::kAnswered, 1, 1e-3)}, 0.0, 0},
      {"33.33 % within 33.34", {ev(S::kAnswered), ev(S::kAnswered), ev(S::kLost)}, 33.34, 0},
      {"33.33 % above 33.33", {ev(S::kAnswered), ev(S::kAnswered), ev(S::kLost)}, 33.33, 1},
      {"100 % within 100", {ev(S::kLost)}, 100.0, 0},
      {"unsent not counted as lost", {ev(S::kAnswered), ev(S::kUnsent)}, 0.0, 0},
  };
  for (const Case& c : cases) EXPECT_EQ(summarize_ping(c.events).exit_code(c.max_loss), c.code) << c.name;
}

TEST(session_PingResult, SummaryCountsAndRtt) {
  const std::vector<ProbeEvent> events = {ev(S::kAnswered, 1, 1e-3), ev(S::kAnswered, 1, 3e-3),
                                          ev(S::kAnswered, 2, -1),  // answered, no usable send time
                                          ev(S::kLate, 2),           ev(S::kIcmpError, 3, -1, true),
                                          ev(S::kUnsent, 4)};
  const PingSummary s = summarize_ping(events);
  EXPECT_EQ(s.sent, 5u);
  EXPECT_EQ(s.received, 3u);
  EXPECT_DOUBLE_EQ(s.loss_pct, 40.0);
  EXPECT_EQ(s.late, 1u);
  EXPECT_EQ(s.icmp_errors, 1u);
  ASSERT_EQ(s.rtts_s.size(), 2u);
  EXPECT_DOUBLE_EQ(s.min_s, 1e-3);
  EXPECT_DOUBLE_EQ(s.max_s, 3e-3);
  EXPECT_DOUBLE_EQ(s.avg_s, 2e-3);
  EXPECT_NEAR(s.mdev_s, 1e-3, 1e-12);
  ASSERT_EQ(s.ports.size(), 3u);  // port 4 only had an unsent probe
  EXPECT_EQ(s.ports[0].sport, 1);
  EXPECT_EQ(s.ports[1].lost, 1u);
  EXPECT_EQ(s.ports[2].lost, 1u);
  EXPECT_DOUBLE_EQ(summarize_ping({}).loss_pct, 100.0);
}

// Percentiles as the metrics compute them (k = (n - 1) p / 100, linear), and --max-rtt on the p99.
TEST(session_PingResult, PercentilesAndMaxRtt) {
  std::vector<ProbeEvent> events;
  for (int i = 1; i <= 10; ++i) events.push_back(ev(S::kAnswered, 1, i * 1e-3));  // 1..10 ms
  const PingSummary s = summarize_ping(events);
  EXPECT_NEAR(s.p50_s, 5.5e-3, 1e-12);
  EXPECT_NEAR(s.p90_s, 9.1e-3, 1e-12);
  EXPECT_NEAR(s.p99_s, 9.91e-3, 1e-12);
  EXPECT_EQ(s.exit_code(std::nullopt, 10.0), 0);
  EXPECT_EQ(s.exit_code(std::nullopt, 9.91), 0);
  EXPECT_EQ(s.exit_code(std::nullopt, 9.9), 1);
  EXPECT_EQ(s.exit_code(100.0, 9.9), 1) << "both conditions hold";
  const PingSummary one = summarize_ping(std::vector<ProbeEvent>{ev(S::kAnswered, 1, 2e-3)});
  EXPECT_DOUBLE_EQ(one.p50_s, 2e-3);
  EXPECT_DOUBLE_EQ(one.p99_s, 2e-3);
  const PingSummary none = summarize_ping(std::vector<ProbeEvent>{ev(S::kLost)});
  EXPECT_EQ(none.exit_code(100.0, 1000.0), 1) << "no RTT cannot prove an RTT bound";
}

TEST(session_PingResult, FlagsTheBlackHoledAndLossyPortsOnly) {
  // 16 ports, 8 probes each: 65003 loses all, 65009 loses 6 of 8, 65011 one (chance), the rest none.
  std::vector<ProbeEvent> events;
  for (int k = 0; k < 8; ++k)
    for (uint16_t p = 65000; p < 65016; ++p) {
      const bool lost = p == 65003 || (p == 65009 && k < 6) || (p == 65011 && k == 0);
      events.push_back(lost ? ev(S::kLost, p) : ev(S::kAnswered, p, 1e-3));
    }
  const PingSummary s = summarize_ping(events);
  ASSERT_EQ(s.ports.size(), 16u);
  for (const PingPort& r : s.ports) {
    const char* want = r.sport == 65003 ? "black-holed" : r.sport == 65009 ? "lossy" : "";
    EXPECT_EQ(r.flag, want) << r.sport;
    EXPECT_EQ(r.sent, 8u);
  }
  // Uniform loss flags nothing.
  std::vector<ProbeEvent> uniform;
  for (uint16_t p = 65000; p < 65004; ++p)
    uniform.push_back(ev(S::kLost, p)), uniform.push_back(ev(S::kAnswered, p));
  for (const PingPort& r : summarize_ping(uniform).ports) EXPECT_EQ(r.flag, "") << r.sport;
}

// Duplicates are summed over the probes.
TEST(session_PingResult, CountsDuplicates) {
  std::vector<ProbeEvent> events = {ev(S::kAnswered, 1, 1e-3), ev(S::kAnswered, 1, 1e-3), ev(S::kLate, 1)};
  events[0].duplicates = 2;
  events[2].duplicates = 1;
  EXPECT_EQ(summarize_ping(events).duplicates, 3u);
}

ProbeEvent reply_ev(S state, const char* from, uint8_t proto, double rtt_s) {
  ProbeEvent e = ev(state, 65001, state == S::kAnswered ? rtt_s : -1);
  e.has_reply = true;
  e.reply_rtt_s = rtt_s;
  e.reply.from = *IpAddress::parse(from);
  e.reply.ttl = 64;
  e.reply.ip_id = 4321;
  e.reply.dont_fragment = true;
  e.reply.protocol = proto;
  e.reply.length = proto == 6 ? 44 : 28;
  if (proto == 6) e.reply.tcp_flags = 0x12, e.reply.tcp_window = 64240;
  return e;
}

ProbeEvent error_ev(const char* from, uint8_t type, uint8_t code) {
  ProbeEvent e = ev(S::kIcmpError, 65002, -1, true);
  e.icmp_type = type;
  e.icmp_code = code;
  e.has_error = true;
  e.error.from = *IpAddress::parse(from);
  e.error.icmp_type = type;
  e.error.icmp_code = code;
  e.error_rtt_s = 52e-6;
  return e;
}

// netprobe's line and hping3's lines per probe: every state, TCP, ICMP and UDP, IPv4 and IPv6.
TEST(session_PingResult, ProbeLines) {
  const PingLineContext tcp4{ProbeType::kTcpSyn, AddressFamily::kV4, 443};
  const PingLineContext tcp6{ProbeType::kTcpSyn, AddressFamily::kV6, 443};
  const PingLineContext icmp4{ProbeType::kIcmpPing, AddressFamily::kV4, 0};
  const PingLineContext udp4{ProbeType::kUdpUnreachable, AddressFamily::kV4, 33434};
  const PingLineContext udp6{ProbeType::kUdpUnreachable, AddressFamily::kV6, 33434};
  ProbeEvent dup = reply_ev(S::kAnswered, "10.0.0.2", 6, 41.5e-6);
  dup.duplicates = 1;
  // Three duplicates, the engine kept two: each printed with its own fields, the third as the first.
  ProbeEvent dups = dup;
  dups.duplicates = 3;
  dups.duplicate_replies.push_back({dup.reply, 0.5e-3});
  dups.duplicate_replies.back().reply.ttl = 60, dups.duplicate_replies.back().reply.ip_id = 99;
  dups.duplicate_replies.push_back({dup.reply, -1});
  ProbeEvent rst = reply_ev(S::kAnswered, "10.0.0.2", 6, 0.1234e-3);
  rst.reply.tcp_flags = 0x14, rst.reply.tcp_window = 0, rst.reply.dont_fragment = false;
  ProbeEvent v6 = reply_ev(S::kAnswered, "fd00::2", 6, 1.5e-3);
  v6.reply.ip_id = 0, v6.reply.dont_fragment = false, v6.reply.length = 64;
  ProbeEvent echo = reply_ev(S::kAnswered, "10.0.0.2", 1, 2e-3);
  ProbeEvent unreach = reply_ev(S::kAnswered, "10.0.0.2", 1, 3e-3);
  unreach.reply.icmp_type = 3, unreach.reply.icmp_code = 3, unreach.reply.length = 56;
  ProbeEvent unreach6 = reply_ev(S::kAnswered, "fd00::2", 58, 3e-3);
  unreach6.reply.icmp_type = 1, unreach6.reply.icmp_code = 4, unreach6.reply.length = 96;
  unreach6.reply.ip_id = 0, unreach6.reply.dont_fragment = false;
  const ProbeEvent late = reply_ev(S::kLate, "10.0.0.2", 6, 1.2045);
  ProbeEvent no_send_time = reply_ev(S::kAnswered, "10.0.0.2", 6, -1);
  struct Case {
    const char* name;
    int seq;
    ProbeEvent e;
    PingLineContext c;
    std::string text, hping;
  };
  const std::vector<Case> cases = {
      {"syn-ack, a duplicate", 0, dup, tcp4,
       "seq=0 sport=65001 from=10.0.0.2 ttl=64 id=4321 DF flags=SA win=64240 len=44 rtt=0.042 ms dup=1",
       "len=44 ip=10.0.0.2 ttl=64 DF id=4321 sport=443 flags=SA seq=0 win=64240 rtt=0.0 ms\n"
       "DUP! len=44 ip=10.0.0.2 ttl=64 DF id=4321 sport=443 flags=SA seq=0 win=64240 rtt=0.0 ms\n"},
      {"syn-ack, three duplicates, two kept", 0, dups, tcp4,
       "seq=0 sport=65001 from=10.0.0.2 ttl=64 id=4321 DF flags=SA win=64240 len=44 rtt=0.042 ms dup=3",
       "len=44 ip=10.0.0.2 ttl=64 DF id=4321 sport=443 flags=SA seq=0 win=64240 rtt=0.0 ms\n"
       "DUP! len=44 ip=10.0.0.2 ttl=60 DF id=99 sport=443 flags=SA seq=0 win=64240 rtt=0.5 ms\n"
       "DUP! len=44 ip=10.0.0.2 ttl=64 DF id=4321 sport=443 flags=SA seq=0 win=64240 rtt=0.0 ms\n"
       "DUP! len=44 ip=10.0.0.2 ttl=64 DF id=4321 sport=443 flags=SA seq=0 win=64240 rtt=0.0 ms\n"},
      {"rst-ack", 3, rst, tcp4,
       "seq=3 sport=65001 from=10.0.0.2 ttl=64 id=4321 flags=RA win=0 len=44 rtt=0.123 ms",
       "len=44 ip=10.0.0.2 ttl=64 id=4321 sport=443 flags=RA seq=3 win=0 rtt=0.1 ms\n"},
      {"ipv6 syn-ack", 1, v6, tcp6,
       "seq=1 sport=65001 from=fd00::2 ttl=64 flags=SA win=64240 len=64 rtt=1.500 ms",
       "len=64 ip=fd00::2 ttl=64 id=0 sport=443 flags=SA seq=1 win=64240 rtt=1.5 ms\n"},
      {"echo reply", 2, echo, icmp4, "seq=2 from=10.0.0.2 ttl=64 id=4321 DF len=28 rtt=2.000 ms",
       "len=28 ip=10.0.0.2 ttl=64 DF id=4321 icmp_seq=2 rtt=2.0 ms\n"},
      {"port unreachable answers UDP", 4, unreach, udp4,
       "seq=4 sport=65001 from=10.0.0.2 ttl=64 id=4321 DF icmp=unreachable:3 len=56 rtt=3.000 ms",
       "ICMP Port Unreachable from ip=10.0.0.2\n"},
      {"ICMPv6 port unreachable answers UDP", 4, unreach6, udp6,
       "seq=4 sport=65001 from=fd00::2 ttl=64 icmp=unreachable:4 len=96 rtt=3.000 ms",
       "ICMP Port Unreachable from ip=fd00::2\n"},
      {"late", 5, late, tcp4,
       "seq=5 sport=65001 late from=10.0.0.2 ttl=64 id=4321 DF flags=SA win=64240 len=44 rtt=1204.500 ms",
       "len=44 ip=10.0.0.2 ttl=64 DF id=4321 sport=443 flags=SA seq=5 win=64240 rtt=1204.5 ms\n"},
      {"no usable send time", 6, no_send_time, tcp4,
       "seq=6 sport=65001 from=10.0.0.2 ttl=64 id=4321 DF flags=SA win=64240 len=44 rtt=unknown",
       "len=44 ip=10.0.0.2 ttl=64 DF id=4321 sport=443 flags=SA seq=6 win=64240 rtt=0.0 ms\n"},
      {"timeout", 7, ev(S::kLost, 65003), tcp4, "seq=7 sport=65003 timeout", ""},
      {"timeout, ICMP", 7, ev(S::kLost, 0), icmp4, "seq=7 timeout", ""},
      {"unsent", 8, ev(S::kUnsent, 65003), tcp4, "seq=8 sport=65003 unsent", ""},
      {"unsent, full buffers", 8, refused(S::kUnsent, SendError::kNoBuffer), tcp4,
       "seq=8 sport=65000 unsent no_buffer", ""},
      {"refused by a local firewall rule: lost", 8, refused(S::kLost, SendError::kPermission), tcp4,
       "seq=8 sport=65000 refused permission", ""},
      {"admin prohibited", 9, error_ev("10.0.0.1", 3, 13), tcp4,
       "seq=9 sport=65002 icmp unreachable:13 admin-prohibited from=10.0.0.1 rtt=0.052 ms",
       "ICMP Packet filtered from ip=10.0.0.1\n"},
      {"ICMPv6 admin prohibited", 9, error_ev("fd00::1", 1, 1), tcp6,
       "seq=9 sport=65002 icmp unreachable:1 admin-prohibited from=fd00::1 rtt=0.052 ms",
       "ICMP Packet filtered from ip=fd00::1\n"},
      {"time exceeded", 10, error_ev("10.9.9.9", 11, 0), tcp4,
       "seq=10 sport=65002 icmp time_exceeded:0 ttl-exceeded from=10.9.9.9 rtt=0.052 ms",
       "TTL 0 during transit from ip=10.9.9.9\n"},
      {"unreachable code without hping wording", 11, error_ev("10.0.0.1", 3, 9), tcp4,
       "seq=11 sport=65002 icmp unreachable:9 net-prohibited from=10.0.0.1 rtt=0.052 ms",
       "ICMP Unreachable type=9 from ip=10.0.0.1\n"},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(ping_line_text(c.seq, c.e, c.c), c.text) << c.name;
    EXPECT_EQ(ping_lines_hping(c.seq, c.e, c.c), c.hping) << c.name;
  }
}

// hping3's header and statistics block (statistics.c), with netprobe's loss (two decimals at most).
TEST(session_PingResult, HpingHeaderAndStatistics) {
  EXPECT_EQ(ping_header_hping("web", "eth0", *IpAddress::parse("10.0.0.2"),
                              {ProbeType::kTcpSyn, AddressFamily::kV4, 443}, 0),
            "HPING web (eth0 10.0.0.2): S set, 40 headers + 0 data bytes\n");
  EXPECT_EQ(ping_header_hping("web", "veth0", *IpAddress::parse("fd00::2"),
                              {ProbeType::kIcmpPing, AddressFamily::kV6, 0}, 56),
            "HPING web (veth0 fd00::2): icmp mode set, 48 headers + 56 data bytes\n");
  EXPECT_EQ(ping_header_hping("h", "lo", *IpAddress::parse("127.0.0.1"),
                              {ProbeType::kUdpUnreachable, AddressFamily::kV4, 33434}, 0),
            "HPING h (lo 127.0.0.1): udp mode set, 28 headers + 0 data bytes\n");
  std::vector<ProbeEvent> events;
  for (int i = 0; i < 15; ++i) events.push_back(ev(S::kAnswered, 1, (i + 1) * 1e-4));
  events.push_back(ev(S::kLost));
  EXPECT_EQ(ping_statistics_hping("web", summarize_ping(events)),
            "\n--- web hping statistic ---\n16 packets tramitted, 15 packets received, 6.25% packet loss\n"
            "round-trip min/avg/max = 0.1/0.8/1.5 ms\n");
  EXPECT_EQ(ping_statistics_hping("web", summarize_ping(std::vector<ProbeEvent>{ev(S::kAnswered, 1, 2e-3)})),
            "\n--- web hping statistic ---\n1 packets tramitted, 1 packets received, 0% packet loss\n"
            "round-trip min/avg/max = 2.0/2.0/2.0 ms\n");
  EXPECT_EQ(ping_statistics_hping("web", summarize_ping(std::vector<ProbeEvent>{ev(S::kLost), ev(S::kLost)})),
            "\n--- web hping statistic ---\n2 packets tramitted, 0 packets received, 100% packet loss\n"
            "round-trip min/avg/max = 0.0/0.0/0.0 ms\n");
  std::vector<ProbeEvent> third = {ev(S::kAnswered, 1, 1e-3), ev(S::kAnswered, 1, 1e-3), ev(S::kLost)};
  EXPECT_NE(ping_statistics_hping("x", summarize_ping(third)).find(" 33.33% packet loss"), std::string::npos);
}

// Probes per iteration: one when a probe is resolved before the next is due, else 4 timeouts' worth.
TEST(session_PingResult, ChunkSize) {
  struct Case {
    double spacing, timeout;
    int remaining, want;
  };
  const std::vector<Case> cases = {
      {1, 1, 5, 1},          // the default: -W equal to -i
      {2, 1, 5, 1},          // -W below -i
      {0.1, 1, 100, 40},     // --fast, -W 1: 4 s of probes
      {0.1, 1, 20, 20},      // ... at most what is left
      {0.01, 1, 1000, 400},  // --faster
      {0.001, 1, 100000, kMaxPingChunk},
      {0, 1, 100000, kMaxPingChunk},  // --flood without --rate
      {0, 1, 7, 7},
      {0.5, 1, 3, 3},
      {0.3, 1, 100, 14},  // ceil(4 / 0.3)
      {1, 1, 0, 0},
  };
  for (const Case& c : cases)
    EXPECT_EQ(ping_chunk_size(c.spacing, c.timeout, c.remaining), c.want)
        << c.spacing << " " << c.timeout << " " << c.remaining;
}

}  // namespace
}  // namespace netprobe
