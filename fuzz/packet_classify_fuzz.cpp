// The captured-packet classifier reads untrusted bytes off the wire (and, outgoing, whatever the host
// sends). It must never crash, read out of bounds or allocate, whatever the input and direction, and what
// it accepts must be self-consistent. Both directions are tried on every input.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>

#include "probes/probe.h"

namespace {

void check(const netprobe::Classification& c, std::span<const uint8_t> bytes) {
  using netprobe::Verdict;
  if (c.verdict == Verdict::kReject) {
    if (c.reason == netprobe::RejectReason::kNone || c.reason >= netprobe::RejectReason::kCount) std::abort();
    return;
  }
  // An accepted packet has the family of its first nibble, and so do the addresses it names.
  const auto af = (bytes[0] >> 4) == 4 ? netprobe::AddressFamily::kV4 : netprobe::AddressFamily::kV6;
  if (c.key.target.af != af || c.local.af != af) std::abort();
  if (static_cast<int>(c.key.type) >= netprobe::kProbeTypeCount) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace netprobe;
  const std::span<const uint8_t> bytes(data, size);
  check(classify(bytes, Direction::kIncoming), bytes);
  check(classify(bytes, Direction::kOutgoing), bytes);
  return 0;
}
