#pragma once
// A valid configuration with any number of targets, for the scale test and bench/config_bench.cpp. Byte for
// byte what tests/fixtures/config/gen_large.py writes (that script makes the file for timing the CLI), so
// that the test, the benchmark and `netprobe check-config` measure the same thing; keep the two in step.
#include <string>

#include <fmt/format.h>

namespace netprobe::testing {

// Block style as generated configurations are written, every probe type, some thresholds and explicit
// groups, and an anchor merged into every tenth target and aliased by every fourth: every part of the loader
// is exercised, not only the scanner.
inline std::string large_config_yaml(int targets) {
  std::string out =
      "global:\n"
      "  probe_name: scale\n"
      "  interval: 30\n"
      "  nb_proc: 1\n"
      "  logging_level: INFO\n"
      "  prometheus_port: 8000\n"
      "  dns_update_interval: 300\n"
      "  timeout: 1.5\n"
      "groups:\n"
      "  transit1: {src_port_a: 60000, src_port_z: 60999}\n"
      "  transit2:\n"
      "    src_port_a: 61000\n"
      "    src_port_z: 61999\n"
      "    dscp: 46\n"
      "  manual:\n"
      "    permit_target_auto_register: false\n"
      "targets:\n";
  out.reserve(size_t(targets) * 160);
  static constexpr const char* kTypes[] = {"TCPsyn", "ICMPping", "UDPunreachable"};
  for (int i = 0; i < targets; ++i) {
    const std::string kind = kTypes[i % 3];
    out += i == 0 ? std::string("  t0: &t0\n") : fmt::format("  t{}:\n", i);
    if (i % 10 == 0 && i > 0) out += "    <<: *t0\n";
    out += fmt::format("    description: \"target {}\"\n", i);
    out += fmt::format("    type: {}\n", kind);
    out += fmt::format("    destination: 10.{}.{}.{}\n", i >> 16, (i >> 8) & 255, i & 255);
    if (kind == "TCPsyn")
      out += "    dst_port: 443\n";
    else if (kind == "UDPunreachable")
      out += "    dst_port: 33434\n";
    out += fmt::format("    nb_packets: {}\n", 5 + i % 5);
    if (i == 0) {
      out += "    threshold: &threshold {latency: 0.05, loss: 1}\n";
      out += "    alert_level: paging\n";
    } else if (i % 4 == 0) {
      out += "    threshold: *threshold\n";
      out += "    alert_level: paging\n";
    }
    if (i % 7 == 0) {
      out += "    explicit_groups:\n";
      out += "      register_to: [manual]\n";
      out += "      exclude_from: [transit2]\n";
    }
    if (i % 5 == 0) out += "    state: in production\n";
  }
  return out;
}

}  // namespace netprobe::testing
