// The kernel (BPF) capture filter for a set of probe types.
//
// It passes, for IPv4 and IPv6:
//   - our outgoing probes (their capture timestamp is the send time): bare SYNs whose seq has the token's
//     zero low bits, echo requests, UDP;
//   - the answers: SYN-ACKs whose ack-1 has zero low bits (anything else cannot ack one of our SYNs),
//     RST-ACKs (they may ack seq+1+payload), echo replies;
//   - ICMP errors whose quoted header carries one of the selected protocols.
// Direction is decided in user space from the link header: `inbound`/`outbound` only compile for some
// link types. IPv6 uses fixed offsets (next header ip6[6], transport at ip6[40]) because libpcap cannot
// index tcp[]/icmp6[] over IPv6; packets with extension headers are not ours and are not passed.
// Incoming UDP cannot be told from outgoing UDP probes without the local addresses or the port ranges, so
// it passes when UDPunreachable is selected; the worker ANDs its own slice (ports, token bits) to this.
#include <fmt/format.h>

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

}  // namespace

std::string capture_filter(std::span<const ProbeType> types) {
  bool want[kProbeTypeCount] = {};
  for (ProbeType t : types) {
    const auto i = static_cast<size_t>(t);
    if (i >= kProbeTypeCount) throw std::invalid_argument("capture_filter: unknown probe type");
    want[i] = true;
  }
  const bool tcp = want[size_t(ProbeType::kTcpSyn)];
  const bool icmp = want[size_t(ProbeType::kIcmpPing)];
  const bool udp = want[size_t(ProbeType::kUdpUnreachable)];
  // Nothing to capture: an empty expression would pass everything, and one that is provably false
  // ("ip and not ip") is refused by pcap_compile; no IP packet is shorter than 2 bytes.
  if (!tcp && !icmp && !udp) return "less 1";

  const uint32_t low = (uint32_t{1} << kTcpSeqShift) - 1;
  std::vector<std::string> v4, v6;
  if (tcp) {
    // flags & (SYN|ACK) == SYN: our SYN; == SYN|ACK: SYN-ACK; flags & (RST|ACK) == RST|ACK: RST-ACK.
    v4.push_back(fmt::format(
        "(ip proto 6 and ((tcp[13] & 0x12 = 0x02 and tcp[4:4] & {0:#x} = 0) or "
        "(tcp[13] & 0x12 = 0x12 and (tcp[8:4] - 1) & {0:#x} = 0) or tcp[13] & 0x14 = 0x14))",
        low));
    v6.push_back(fmt::format(
        "(ip6[6] = 6 and ((ip6[53] & 0x12 = 0x02 and ip6[44:4] & {0:#x} = 0) or "
        "(ip6[53] & 0x12 = 0x12 and (ip6[48:4] - 1) & {0:#x} = 0) or ip6[53] & 0x14 = 0x14))",
        low));
  }
  if (icmp) {
    v4.push_back("(ip proto 1 and (icmp[0] = 0 or icmp[0] = 8))");
    v6.push_back("(ip6[6] = 58 and (ip6[40] = 128 or ip6[40] = 129))");
  }
  if (udp) {
    v4.push_back("ip proto 17");
    v6.push_back("ip6[6] = 17");
  }
  // ICMP errors: the quoted protocol is at a fixed offset, ICMP header (8) + its offset in the quoted IP
  // header (IPv4 protocol: 9, IPv6 next header: 6), whatever the quoted IPv4 header length.
  std::vector<std::string> quoted4, quoted6;
  if (tcp) quoted4.push_back("icmp[17] = 6"), quoted6.push_back("ip6[54] = 6");
  if (icmp) quoted4.push_back("icmp[17] = 1"), quoted6.push_back("ip6[54] = 58");
  if (udp) quoted4.push_back("icmp[17] = 17"), quoted6.push_back("ip6[54] = 17");
  v4.push_back("(ip proto 1 and (icmp[0] = 3 or icmp[0] = 11 or icmp[0] = 12) and (" + join(quoted4, " or ") +
               "))");
  v6.push_back("(ip6[6] = 58 and ip6[40] >= 1 and ip6[40] <= 4 and (" + join(quoted6, " or ") + "))");

  return "(ip and (" + join(v4, " or ") + ")) or (ip6 and (" + join(v6, " or ") + "))";
}

}  // namespace netprobe
