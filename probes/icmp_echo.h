#pragma once
// ICMPping (netprobify's type; matching: docs/matching.md): ICMP / ICMPv6 echo request, id = token >> 16, seq
// = token & 0xffff.
#include "probes/probe.h"

namespace netprobe {

class IcmpEchoProbe final : public Probe {
 public:
  ProbeType type() const override;
  std::string_view metric_prefix() const noexcept override { return "icmp"; }
  int token_bits(AddressFamily af) const noexcept override {
    (void)af;
    return 32;
  }
  int check_bits(AddressFamily af) const noexcept override {
    (void)af;
    return 0;
  }
  bool has_ports() const noexcept override { return false; }
  void capture_clauses(const KeySlice& slice, CaptureClauses& out) const override;
  PacketTemplate make_template(const ProbeParams& params) const override;
  size_t craft(const PacketTemplate& tmpl, const PacketFields& fields,
               std::span<uint8_t> out) const noexcept override;
};

// Turns an ICMPping template built with at least 2 payload bytes (ip_payload_size >= 10) into a Paris one
// (PacketTemplate::paris_checksum). False, and `t` unchanged, when it has no room for the word.
bool make_paris_checksum(PacketTemplate& t);

}  // namespace netprobe
