// The kernel (BPF) capture filter for a set of probe types and a worker's key slice.
//
// It passes, for IPv4 and IPv6:
//   - our outgoing probes (their capture timestamp is the send time): bare SYNs, echo requests, UDP;
//   - the answers: SYN-ACKs, RST-ACKs (they may ack seq+1+payload), echo replies;
//   - ICMP errors whose quoted header carries one of the selected protocols.
// Direction is decided in user space from the link header: `inbound`/`outbound` only compile for some
// link types. IPv6 uses fixed offsets (next header ip6[6], transport at ip6[40]) because libpcap cannot
// index tcp[]/icmp6[] over IPv6; packets with extension headers are not ours and are not passed.
// Incoming UDP cannot be told from outgoing UDP probes without the local addresses or the port ranges, so
// it passes when UDPunreachable is selected; the worker ANDs its own slice (ports, token bits) to this.
//
// Key slice (slice.bits > 0): every clause also compares the top slice.bits of the token, read where
// classify() reads it, with slice.index. It is one `load & mask = value` per clause: the token is at a
// fixed place in one 2- or 4-byte field (the index part of the wire token, probes/probe.h). Where the
// token sits in each field (`top` below: the bit just above the token's most significant bit in the
// loaded value, bit 0 being the least significant):
//   TCP    own SYN    tcp[4:4] / ip6[44:4]               seq = token << kTcpSeqShift: top 32
//          SYN-ACK    (tcp[8:4] - 1) / (ip6[48:4] - 1)   ack-1 = seq: top 32
//          RST-ACK    idem, or ack - 1 - 2^14            ack-1 = seq + P, P the SYN's payload (below)
//          quoted     icmp[32:4] / ip6[92:4]             the quoted SYN's seq: top 32
//   ICMP   echo       icmp[4:2] / ip6[44:2]              id = token >> 16: top 16 (bits <= 16; [4:4] else)
//          quoted     icmp[32:2] / ip6[92:2]             the quoted request's id: idem
//   UDP    own probe  ip[4:2] / ip6[48:4]                IP-ID: top 16 / first payload word: top 32
//          quoted     icmp[12:2] / ip6[96:4]             the quoted IP-ID / payload word: idem
// Quoted IPv4 headers are assumed to have no options (we never send any): the quoted transport header is
// read at icmp[8 + 20]. A quote with options would have to be indexed through its IHL (about ten more
// instructions); it reaches a worker only by chance and classify() would then still accept it.
// RST-ACK acking seq+1+P (P < 2^kTcpSeqShift, the configuration check): the 14 check bits below the
// index are random, so seq + P may carry one into the index (and, for the last index of a slice, into
// the slice bits): the clause accepts the slice of ack-1 or of ack-1-2^14, and classify() offers both
// indexes (tcp_index_candidates()); the exact ack check decides.
// bits == 0 gives exactly the whole-space filter.
#include <fmt/format.h>

#include <algorithm>
#include <stdexcept>
#include <string>
#include <vector>

#include "probes/probe.h"

namespace netprobe {

namespace {

std::string join(const std::vector<std::string>& parts, std::string_view sep) {
  std::string out;
  for (const auto& p : parts) {
    if (!out.empty()) out += sep;
    out += p;
  }
  return out;
}

// "0" or "0x..." (the whole-space filter's spelling, kept so that bits == 0 gives the same string).
std::string hex(uint32_t v) { return v == 0 ? "0" : fmt::format("{:#x}", v); }

// `load & mask = value`, checking the slice bits of a token whose most significant bit is just below bit
// `top` of the loaded value, plus `zero_mask` bits that must be zero. "" when there is nothing to check.
std::string field_test(std::string_view load, int top, uint32_t zero_mask, const KeySlice& slice) {
  const int shift = top - slice.bits;
  const uint32_t ones = slice.bits >= 32 ? 0xffffffffu : (uint32_t{1} << slice.bits) - 1;
  const uint32_t slice_mask = slice.bits == 0 ? 0 : ones << shift;
  const uint32_t value = slice.bits == 0 ? 0 : slice.index << shift;
  const uint32_t mask = slice_mask | zero_mask;
  if (mask == 0) return {};
  return fmt::format("{} & {:#x} = {}", load, mask, hex(value));
}

// `base and test`, parenthesised, or `base` alone when there is no test.
std::string both(std::string_view base, const std::string& test) {
  if (test.empty()) return std::string(base);
  return fmt::format("({} and {})", base, test);
}

void check_slice(const bool want[kProbeTypeCount], const KeySlice& slice) {
  if (slice.bits < 0 || slice.bits > 32)
    throw std::invalid_argument("capture_filter: slice bits out of range");
  if (slice.bits < 32 && slice.index >> slice.bits != 0)
    throw std::invalid_argument("capture_filter: slice index does not fit its bits");
  for (size_t i = 0; i < kProbeTypeCount; ++i) {
    if (!want[i]) continue;
    const auto type = static_cast<ProbeType>(i);
    if (slice.bits > std::min(token_bits(type, AddressFamily::kV4), token_bits(type, AddressFamily::kV6)))
      throw std::invalid_argument("capture_filter: slice wider than a token");
  }
}

}  // namespace

std::string capture_filter(std::span<const ProbeType> types) { return capture_filter(types, KeySlice{}); }

std::string capture_filter(std::span<const ProbeType> types, const KeySlice& slice) {
  bool want[kProbeTypeCount] = {};
  for (ProbeType t : types) {
    const auto i = static_cast<size_t>(t);
    if (i >= kProbeTypeCount) throw std::invalid_argument("capture_filter: unknown probe type");
    want[i] = true;
  }
  check_slice(want, slice);
  const bool tcp = want[size_t(ProbeType::kTcpSyn)];
  const bool icmp = want[size_t(ProbeType::kIcmpPing)];
  const bool udp = want[size_t(ProbeType::kUdpUnreachable)];
  // Nothing to capture: an empty expression would pass everything, and one that is provably false
  // ("ip and not ip") is refused by pcap_compile; no IP packet is shorter than 2 bytes.
  if (!tcp && !icmp && !udp) return "less 1";

  const bool sliced = slice.bits > 0;
  // The echo id holds the top 16 token bits; a wider slice reaches into the echo seq after it.
  const bool wide_echo = slice.bits > 16;
  const char* echo_size = wide_echo ? ":4" : ":2";
  const int echo_top = wide_echo ? 32 : 16;
  const int ip_id_top = token_bits(ProbeType::kUdpUnreachable, AddressFamily::kV4);

  std::vector<std::string> v4, v6;
  if (tcp) {
    // flags & (SYN|ACK) == SYN: our SYN; == SYN|ACK: SYN-ACK; flags & (RST|ACK) == RST|ACK: RST-ACK. A
    // RST-ACK acking seq+1+P may have carried into the index: its slice is that of ack-1 or ack-1-2^14.
    for (bool v6_family : {false, true}) {
      const std::string flags = v6_family ? "ip6[53]" : "tcp[13]";
      const std::string seq = v6_family ? "ip6[44:4]" : "tcp[4:4]";
      const std::string ack = v6_family ? "ip6[48:4]" : "tcp[8:4]";
      const std::string ack1 = "(" + ack + " - 1)";
      const std::string proto = v6_family ? "ip6[6] = 6" : "ip proto 6";
      std::string rst = flags + " & 0x14 = 0x14";
      if (sliced)
        rst =
            fmt::format("({} and ({} or {}))", rst, field_test(ack1, 32, 0, slice),
                        field_test(fmt::format("({} - {:#x})", ack, (1u << kTcpSeqShift) + 1), 32, 0, slice));
      (v6_family ? v6 : v4)
          .push_back(fmt::format("({} and ({} or {} or {}))", proto,
                                 both(flags + " & 0x12 = 0x02", field_test(seq, 32, 0, slice)),
                                 both(flags + " & 0x12 = 0x12", field_test(ack1, 32, 0, slice)), rst));
    }
  }
  if (icmp) {
    const std::string s4 = field_test(std::string("icmp[4") + echo_size + "]", echo_top, 0, slice);
    const std::string s6 = field_test(std::string("ip6[44") + echo_size + "]", echo_top, 0, slice);
    v4.push_back("(ip proto 1 and (icmp[0] = 0 or icmp[0] = 8)" + (sliced ? " and " + s4 : "") + ")");
    v6.push_back("(ip6[6] = 58 and (ip6[40] = 128 or ip6[40] = 129)" + (sliced ? " and " + s6 : "") + ")");
  }
  if (udp) {
    v4.push_back(both("ip proto 17", field_test("ip[4:2]", ip_id_top, 0, slice)));
    v6.push_back(both("ip6[6] = 17", field_test("ip6[48:4]", 32, 0, slice)));
  }
  // ICMP errors: the quoted protocol is at a fixed offset, ICMP header (8) + its offset in the quoted IP
  // header (IPv4 protocol: 9, IPv6 next header: 6), whatever the quoted IPv4 header length. With a slice,
  // the quoted token too (see the top of this file); a quoted SYN's seq must then also have zero low bits
  // (as in classify()), which shares the slice's mask.
  std::vector<std::string> quoted4, quoted6;
  if (tcp) {
    quoted4.push_back(both("icmp[17] = 6", field_test("icmp[32:4]", 32, 0, slice)));
    quoted6.push_back(both("ip6[54] = 6", field_test("ip6[92:4]", 32, 0, slice)));
  }
  if (icmp) {
    quoted4.push_back(
        both("icmp[17] = 1", field_test(std::string("icmp[32") + echo_size + "]", echo_top, 0, slice)));
    quoted6.push_back(
        both("ip6[54] = 58", field_test(std::string("ip6[92") + echo_size + "]", echo_top, 0, slice)));
  }
  if (udp) {
    quoted4.push_back(both("icmp[17] = 17", field_test("icmp[12:2]", ip_id_top, 0, slice)));
    quoted6.push_back(both("ip6[54] = 17", field_test("ip6[96:4]", 32, 0, slice)));
  }
  v4.push_back("(ip proto 1 and (icmp[0] = 3 or icmp[0] = 11 or icmp[0] = 12) and (" + join(quoted4, " or ") +
               "))");
  v6.push_back("(ip6[6] = 58 and ip6[40] >= 1 and ip6[40] <= 4 and (" + join(quoted6, " or ") + "))");

  return "(ip and (" + join(v4, " or ") + ")) or (ip6 and (" + join(v6, " or ") + "))";
}

}  // namespace netprobe
