#pragma once
// netprobify-compatible configuration as plain structs. Produced by load_config() (loader.h) after the
// YAML has passed schema/netprobe-config.schema.json and the cross-field checks; every field here is
// already defaulted, so the rest of the program never looks at YAML.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/on_demand.h"
#include "core/net.h"

namespace netprobe {

enum class AlertLevel : uint8_t { kPaging, kPagingValidation, kSandbox, kNoAlert };
std::string_view to_string(AlertLevel level);  // "paging", "paging_validation", "sandbox", "no_alert"
std::optional<AlertLevel> alert_level_from_string(std::string_view s);

// global.rtt_histogram: which *_rtt_seconds series exist (docs/netprobify-compatibility.md#rtt-histogram).
enum class RttHistogram : uint8_t { kPerTarget, kPerGroup, kNone };
std::string_view to_string(RttHistogram granularity);  // "per_target", "per_group", "none"
std::optional<RttHistogram> rtt_histogram_from_string(std::string_view s);

// `health` (global defaults, per-target overrides; docs/alerting.md): when an iteration of a target counts as
// failed, and how many consecutive failed / passed iterations change its state (netprobe_target_failing).
// Every field is optional so that a target's block overrides the global one key by key; src/health applies
// the defaults. A netprobe extension, read by the supervisor only.
struct HealthConfig {
  std::optional<double> loss_ratio_above;  // fail_if.loss_ratio_above (ratio, 0..1)
  std::optional<int> rtt_percentile;       // fail_if.rtt_percentile (0..100)
  std::optional<double> rtt_above_s;       // fail_if.rtt_above (seconds)
  std::optional<int> failing_threshold;
  std::optional<int> passing_threshold;
  std::optional<int> site_threshold;
  friend bool operator==(const HealthConfig&, const HealthConfig&) = default;
};

struct GlobalConfig {
  std::string probe_name;
  int interval_s = 0;             // required
  double interval_packets_s = 0;  // gap between two packets of one target
  int nb_proc = 1;                // required
  int verbose = 0;
  std::string logging_level;  // CRITICAL/ERROR/WARNING/INFO/DEBUG/NOTSET
  int prometheus_port = 0;    // required
  std::string prometheus_address = "0.0.0.0";
  int dns_update_interval_s = 0;   // 0 = re-resolve every iteration (netprobify's real behaviour)
  int reload_conf_interval_s = 0;  // 0 = disabled
  bool l3_raw_socket = false;      // accepted for compatibility; netprobe always uses L3 raw sockets
  double timeout_s = 3600;         // per-worker bound on one iteration
  std::vector<int> percentile{95, 50};
  std::vector<std::string> disable_dynamic_inventories;
  // netprobe extensions (not in netprobify's schema; all optional).
  double max_packets_per_second = 0;  // global send cap; 0 = no cap (pacing still spreads packets)
  std::string inventory_dir;  // as written; "" = absent. inventory/ resolves it against the file's directory
  // Per-path results (docs/paths.md): iterations the per-flow loss test looks back over, and how many of a
  // target's lossiest flows get series of their own.
  int path_window = 5;
  int path_series_per_target = 4;
  // Read by the supervisor only (it renders the metrics): config_fields.h keeps it out of the workers' copy.
  RttHistogram rtt_histogram = RttHistogram::kPerGroup;
  HealthConfig health;  // supervisor only, as rtt_histogram
  friend bool operator==(const GlobalConfig&, const GlobalConfig&) = default;
};

struct GroupConfig {
  std::string name;
  std::optional<IpAddress> src_ipv4;  // `src_ipv4`, or the deprecated `src_ip`
  std::optional<IpAddress> src_ipv6;
  std::optional<IpNetwork> src_subnet_ipv4;
  std::optional<IpNetwork> src_subnet_ipv6;
  uint16_t src_port_a = 65000;
  uint16_t src_port_z = 65001;
  std::optional<int> ip_payload_size;  // used by ICMPping targets without their own size only
  int dscp = 0;
  bool permit_target_auto_register = true;
  friend bool operator==(const GroupConfig&, const GroupConfig&) = default;
};

struct Threshold {
  std::optional<double> latency;
  std::optional<double> loss;
  friend bool operator==(const Threshold&, const Threshold&) = default;
};

struct TargetConfig {
  std::string name;
  std::string description;  // defaults to the name; never exported (as netprobify)
  ProbeType type = ProbeType::kTcpSyn;
  std::string destination;                      // IP literal, hostname, or subnet when is_subnet
  std::optional<AddressFamily> address_family;  // explicit; else detected from the destination, else v4
  bool dont_fragment = true;
  bool is_subnet = false;
  std::optional<uint16_t> dst_port;    // required for TCPsyn and UDPunreachable (checked at load)
  int nb_packets = 1;                  // per group per iteration
  std::optional<int> ip_payload_size;  // L4 header + data
  Threshold threshold;
  AlertLevel alert_level = AlertLevel::kNoAlert;
  std::optional<std::string> state;  // "in production" / "validation"; exported as "None" when unset
  std::vector<std::string> tags;     // sorted, distinct; selection and netprobe_target_info only
  double timeout_s = 1;              // wait after the last packet
  int dns_update_interval_s = 0;     // inherited from global when absent
  bool auto_register_to_groups = true;
  std::vector<std::string> register_to;
  std::vector<std::string> exclude_from;
  std::vector<std::string> groups;  // resolved association (sorted), see netprobify's rules
  bool is_dynamic = false;          // from an inventory plug-in
  HealthConfig health;              // overrides of global.health; supervisor only, as tags
  // UDPquery (netprobe extension, docs/service-checks.md#udpquery), as written and validated by the loader;
  // the worker builds probes/udp_query_spec.h's Spec from them (udpquery::make_spec()).
  std::string payload;
  std::string expect_kind = "any";  // any, exact, contains, regex
  std::string expect_value;
  uint16_t token_offset = 0;
  uint16_t token_length = 0;  // 0: no token
  uint16_t token_reply_offset = 0;

  AddressFamily family() const;  // address_family, else detected, else v4
  std::string state_label() const { return state.value_or("None"); }
  friend bool operator==(const TargetConfig&, const TargetConfig&) = default;
};

// IP payload size (L4 header included) of a target's packets in a group, with netprobify's precedence: the
// target's ip_payload_size if set; for ICMPping only, else the group's if set and non-zero; else the bare L4
// header (TCP 20, UDP 8, ICMP 8). A value below the header is raised to it.
int effective_ip_payload_size(const TargetConfig& target, const GroupConfig& group);

// Bare L4 header size of a probe type: TCP 20, UDP 8, ICMP/ICMPv6 echo 8.
int l4_header_size(ProbeType type);

// A TCP query or TLS check (issue 18, docs/service-checks.md): `targets:` entries of type TCPquery or TLS.
// Run by the supervisor with kernel sockets (src/supervisor/service_checks.h), never sent to the workers,
// so a struct of its own rather than more TargetConfig fields. Names follow blackbox's tcp module.
enum class ServiceCheckType : uint8_t { kTcpQuery, kTls };
std::string_view to_string(ServiceCheckType t);  // "TCPquery", "TLS"

struct QueryStep {
  std::string kind;   // "send", "expect" (RE2 pattern) or "expect_bytes", in blackbox's query_response order
  std::string value;  // as written: text, hex:..., base64:... (send, expect_bytes) or a pattern (expect)
  friend bool operator==(const QueryStep&, const QueryStep&) = default;
};

struct ServiceCheckConfig {
  std::string name;
  ServiceCheckType type = ServiceCheckType::kTcpQuery;
  std::string destination;  // IP literal or hostname (resolved by the check, in family())
  std::optional<AddressFamily> address_family;
  uint16_t dst_port = 0;
  std::vector<QueryStep> query_response;
  // TLS only (blackbox's tls_config): the SNI and verified name (default: the destination when it is a
  // name), PEM trust anchors (default: the system store), report without failing on verification.
  std::string server_name;
  std::string ca_file;
  bool insecure_skip_verify = false;
  int64_t expiry_window_s = 0;  // fail when a presented certificate expires sooner (0: never)
  double timeout_s = 5;         // the whole check: connect, handshake and every step
  Threshold threshold;
  AlertLevel alert_level = AlertLevel::kNoAlert;
  std::optional<std::string> state;
  std::vector<std::string> tags;
  std::vector<std::string> groups;  // as for TargetConfig; a group's source address is bound

  AddressFamily family() const;  // address_family, else the literal's, else v4
  std::string state_label() const { return state.value_or("None"); }
  friend bool operator==(const ServiceCheckConfig&, const ServiceCheckConfig&) = default;
};

struct Config {
  std::string source_path;
  GlobalConfig global;
  std::map<std::string, GroupConfig> groups;    // by name (sorted, stable)
  std::map<std::string, TargetConfig> targets;  // by name
  std::optional<OnDemandConfig> on_demand;      // absent: on-demand probing off (supervisor only)
  std::map<std::string, ServiceCheckConfig> service_checks;  // TCPquery / TLS targets (supervisor only)
  friend bool operator==(const Config&, const Config&) = default;
};

}  // namespace netprobe
