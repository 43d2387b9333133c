// The kernel (BPF) capture filter for a set of probe types and a worker's key slice.
//
// It passes, for IPv4 and IPv6:
//   - our outgoing probes (their capture timestamp is the send time): bare SYNs, echo requests, UDP;
//   - the answers: SYN-ACKs, pure ACKs (docs/architecture.md#two-way-loss), RST-ACKs (they may ack
//     seq+1+payload), echo replies;
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

#include "probes/capture_util.h"
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

namespace detail {

std::string field_test(std::string_view load, int top, uint32_t zero_mask, const KeySlice& slice) {
  const int shift = top - slice.bits;
  const uint32_t ones = slice.bits >= 32 ? 0xffffffffu : (uint32_t{1} << slice.bits) - 1;
  const uint32_t slice_mask = slice.bits == 0 ? 0 : ones << shift;
  const uint32_t value = slice.bits == 0 ? 0 : slice.index << shift;
  const uint32_t mask = slice_mask | zero_mask;
  if (mask == 0) return {};
  return fmt::format("{} & {:#x} = {}", load, mask, hex(value));
}

std::string both(std::string_view base, const std::string& test) {
  if (test.empty()) return std::string(base);
  return fmt::format("({} and {})", base, test);
}

}  // namespace detail

std::string capture_filter(std::span<const ProbeType> types) { return capture_filter(types, KeySlice{}); }

std::string capture_filter(std::span<const ProbeType> types, const KeySlice& slice) {
  bool want[kProbeTypeCount] = {};
  for (ProbeType t : types) {
    const auto i = static_cast<size_t>(t);
    if (i >= kProbeTypeCount) throw std::invalid_argument("capture_filter: unknown probe type");
    want[i] = true;
  }
  check_slice(want, slice);
  CaptureClauses c;
  bool any = false;
  for (size_t i = 0; i < kProbeTypeCount; ++i) {
    if (!want[i]) continue;
    probe_for(static_cast<ProbeType>(i)).capture_clauses(slice, c);
    any = true;
  }
  // Nothing to capture: an empty expression would pass everything, and one that is provably false
  // ("ip and not ip") is refused by pcap_compile; no IP packet is shorter than 2 bytes.
  if (!any) return "less 1";
  std::vector<std::string>& v4 = c.v4;
  std::vector<std::string>& v6 = c.v6;
  // ICMP errors: the quoted protocol is at a fixed offset, ICMP header (8) + its offset in the quoted IP
  // header (IPv4 protocol: 9, IPv6 next header: 6), whatever the quoted IPv4 header length; each type
  // adds its quoted protocol and, with a slice, the quoted token (see the top of this file).
  v4.push_back("(ip proto 1 and (icmp[0] = 3 or icmp[0] = 11 or icmp[0] = 12) and (" +
               join(c.quoted_v4, " or ") + "))");
  v6.push_back("(ip6[6] = 58 and ip6[40] >= 1 and ip6[40] <= 4 and (" + join(c.quoted_v6, " or ") + "))");

  return "(ip and (" + join(v4, " or ") + ")) or (ip6 and (" + join(v6, " or ") + "))";
}

}  // namespace netprobe
