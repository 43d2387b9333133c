#pragma once
// What `netprobe ping` concludes from its probes: the summary (loss, RTT statistics), the per-source-port
// table with the ports the per-path test flags (paths/significance.h), and the exit rule. Pure (no I/O, no
// clock), so that the rule is table-tested.
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "core/net.h"
#include "engine/iteration.h"

namespace netprobe {

struct PingPort {
  uint16_t sport = 0;
  uint64_t sent = 0;
  uint64_t lost = 0;
  std::string flag;  // "", "lossy", or "black-holed" (flagged and every probe lost)
};

struct PingSummary {
  uint64_t sent = 0, received = 0, late = 0, icmp_errors = 0;
  uint64_t duplicates = 0;                             // answers after the first, over every probe
  double loss_pct = 100;                               // 100 when nothing was sent
  std::vector<double> rtts_s;                          // of the answered probes with a usable send time
  double min_s = 0, avg_s = 0, max_s = 0, mdev_s = 0;  // when rtts_s is not empty; mdev as ping's
  // Percentiles with linear interpolation between the closest ranks (k = (n - 1) p / 100, netprobify's and
  // the metrics' rule), when rtts_s is not empty.
  double p50_s = 0, p90_s = 0, p99_s = 0;
  std::vector<PingPort> ports;  // by source port; one row per port (0 for probe types without ports)

  // 0 when the loss is at most `max_loss_pct` percent, or, without it, when some probe was answered, and,
  // with `max_rtt_ms`, the p99 RTT is at most that (no RTT at all fails it); 1 when not (and when nothing
  // was sent).
  int exit_code(std::optional<double> max_loss_pct, std::optional<double> max_rtt_ms = std::nullopt) const;
};

// `events`: every probe sent (unsent ones are skipped), `sport` from each event.
PingSummary summarize_ping(std::span<const ProbeEvent> events);

// Probes per engine iteration (`netprobe ping` runs them in chunks: an iteration waits for all its probes,
// so one probe per iteration would hold the next back by up to -W when it is lost): one when the timeout is
// at most the spacing (the probe is resolved before the next is due), else enough to span
// kChunkSpanTimeouts timeouts, so that the wait at the end of a chunk costs at most a fifth of the rate;
// at most `remaining` and kMaxPingChunk. `spacing_s` 0: no rate cap (--flood), kMaxPingChunk.
inline constexpr int kMaxPingChunk = 1000;  // ProbeEvents of a chunk: ~150 bytes each
inline constexpr double kChunkSpanTimeouts = 4;
int ping_chunk_size(double spacing_s, double timeout_s, int remaining);

// -i / the API's `interval`: seconds ("0.2"), or hping's microseconds ("u200000"); nullopt for anything else
// (not checked for range: the callers bound it).
std::optional<double> parse_ping_interval(const std::string& text);

// -o / the API's `tos`: the TOS byte in hex, as hping takes it ("10", "0x10"); nullopt for anything else
// (not checked for the ECN bits: the callers refuse them).
std::optional<int> parse_tos(const std::string& text);

// ---- The lines, pure so that their format is table-tested (tests/unit/session/ping_result_test.cpp).
struct PingLineContext {
  ProbeType type = ProbeType::kTcpSyn;
  AddressFamily af = AddressFamily::kV4;
  uint16_t dst_port = 0;  // the target's port (hping's `sport=` of a TCP reply)
};

// A short name of an ICMP error's type and code ("port-unreachable", "admin-prohibited", "ttl-exceeded",
// ...; "" when it has none), next to icmp_error_label()'s "unreachable:13".
std::string icmp_error_name(AddressFamily af, uint8_t type, uint8_t code);

// netprobe's line for one probe, e.g. `seq=0 sport=65000 from=192.0.2.1 ttl=64 id=0 DF flags=SA
// win=64240 len=44 rtt=0.041 ms`, `seq=1 sport=65001 timeout`, `seq=2 sport=65002 late from=... rtt=1204.5
// ms` or `seq=3 sport=65003 icmp unreachable:13 admin-prohibited from=192.0.2.1 rtt=0.052 ms`; `dup=N` for
// duplicates. Empty for an unsent probe's (it gets `unsent`).
std::string ping_line_text(int seq, const ProbeEvent& e, const PingLineContext& c);

// hping3's lines for one probe (waitpacket.c, logicmp.c), newline-terminated, possibly none (a timeout
// prints nothing, as in hping3) or several (`DUP! ` lines, each duplicate with its own fields, as far as
// the engine kept them: IterationRunner::kMaxDuplicateDetails per iteration). The RTT is netprobe's (kernel
// timestamps) in hping's `%.1f`.
std::string ping_lines_hping(int seq, const ProbeEvent& e, const PingLineContext& c);

// hping3's statistics block (statistics.c, printed on stderr as hping3 does), with netprobe's numbers:
// received = answered in time (hping3 also counts ICMP errors and other processes' packets), the loss
// with up to two decimals (an integer when it is one: "0%", "6.25%", hping3 truncates), RTTs from kernel
// timestamps.
std::string ping_statistics_hping(const std::string& target, const PingSummary& s);

// hping3's first line: `HPING target (iface address): S set, 40 headers + 0 data bytes`.
std::string ping_header_hping(const std::string& target, const std::string& iface, const IpAddress& address,
                              const PingLineContext& c, int data_bytes);

}  // namespace netprobe
