#pragma once
// The `on_demand:` section (docs/on-demand.md#configuration): modules, the target policy's prefixes and
// targets, credentials and budgets of /probe and /api/v1/tests. Absent: on-demand probing is off. Read by
// the supervisor only; never sent to the scheduled workers.
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/net.h"

namespace netprobe {

// A bound a caller's override must respect; a module lists only the overrides it allows.
struct OverrideRange {
  double min = 0;
  double max = 0;
  friend bool operator==(const OverrideRange&, const OverrideRange&) = default;
};

struct OnDemandModule {
  std::string name;
  ProbeType type = ProbeType::kTcpSyn;
  AddressFamily address_family = AddressFamily::kV4;
  std::optional<uint16_t> dst_port;  // required for TCPsyn and UDPunreachable
  int nb_packets = 3;
  uint16_t src_port_a = 33000;
  uint16_t src_port_z = 33003;
  int dscp = 0;
  std::optional<int> ip_payload_size;
  double timeout_s = 1;  // upper bound of a probe's wait; the scrape timeout may lower it
  // Success condition: probe_success is 0 when loss is above this ratio or the p99 RTT above this.
  double fail_if_loss_ratio_above = 0;
  std::optional<double> fail_if_rtt_p99_above_s;
  // Allowed caller overrides by name (nb_packets, dst_port, dscp, ip_payload_size, timeout) and bounds.
  std::map<std::string, OverrideRange> overrides;
  friend bool operator==(const OnDemandModule&, const OnDemandModule&) = default;
};

// A caller: `Authorization: Bearer <token>` checked against token_sha256 (hex of SHA-256 of the token), or
// `Authorization: Basic` with the credential's name as user checked against password_bcrypt. Separate from
// the /metrics users.
struct OnDemandCredential {
  std::string name;
  std::string token_sha256;     // 64 lower-case hex digits, or ""
  std::string password_bcrypt;  // $2a$/$2b$/$2y$, or ""
  friend bool operator==(const OnDemandCredential&, const OnDemandCredential&) = default;
};

struct OnDemandBudgets {
  int max_concurrent_tests = 4;  // all credentials together
  int max_concurrent_tests_per_credential = 2;
  int max_probes_per_test = 100;
  double max_packets_per_second_per_destination = 10;  // all callers together
  double max_packets_per_second = 100;                 // all on-demand probing; below global's cap
  int max_request_bytes = 16384;
  int max_tests_per_request = 8;
  int result_ttl_s = 600;
  double scrape_timeout_offset_s = 0.5;  // subtracted from X-Prometheus-Scrape-Timeout-Seconds
  friend bool operator==(const OnDemandBudgets&, const OnDemandBudgets&) = default;
};

struct OnDemandConfig {
  std::vector<IpNetwork> allowed_prefixes;   // empty: every target refused
  std::vector<std::string> allowed_targets;  // empty: any target in the prefixes
  std::map<std::string, OnDemandModule> modules;
  std::map<std::string, OnDemandCredential> credentials;
  OnDemandBudgets budgets;
  friend bool operator==(const OnDemandConfig&, const OnDemandConfig&) = default;
};

// Builds the section from its schema-checked JSON (`path` is "on_demand"), appending "path: message" to
// `errors` for what the schema cannot say (prefixes, port ranges, override bounds, the caps against
// `global_max_pps`, 0 = none).
OnDemandConfig read_on_demand(const nlohmann::json& section, const std::string& path, double global_max_pps,
                              std::vector<std::string>* errors);

}  // namespace netprobe
