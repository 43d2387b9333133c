#pragma once
// The size of each probe type's token space, as the configuration check needs it: how many probes to one
// destination can be told apart in one iteration (docs/matching.md). Where the bits sit on the wire, and
// the check bits that are only compared, belong to each type's module in probes/; a unit test
// (tests/unit/probes) checks that the modules agree with this table.
#include "core/net.h"

namespace netprobe {

// TCPsyn: seq = index << kTcpSeqShift | check. A RST-ACK to a SYN with P payload bytes acks seq+1+P, so
// P < 2^kTcpSeqShift keeps the index recoverable.
inline constexpr int kTcpSeqShift = 14;

// Bits of a token that designate its probe (the index part), per type and family.
constexpr int token_index_bits(ProbeType type, AddressFamily af) {
  switch (type) {
    case ProbeType::kTcpSyn:
      return 32 - kTcpSeqShift;
    case ProbeType::kIcmpPing:
      return 32;
    case ProbeType::kUdpUnreachable:
      return af == AddressFamily::kV4 ? 16 : 20;
    case ProbeType::kUdpQuery:  // W's top 16 bits: what a 2-byte echoed field (the DNS ID) carries
      return 16;
  }
  return 16;
}

}  // namespace netprobe
