#pragma once
// One list of the fields of each configuration struct, for code that must handle every field the same
// way: the configuration the supervisor sends to its workers (ipc/ipc.cpp encodes and decodes through
// these lists) and tests. for_each_field(s, f) calls f("name", s.member) for every member, in declaration
// order. Each list asserts the struct's field count: a member added to config.h and not listed here fails
// to build (the way GlobalConfig::inventory_dir once went missing on the way to the workers).
#include <type_traits>

#include "config/config.h"
#include "core/fields.h"

namespace netprobe {

template <typename S>
concept ConfigStruct = std::is_same_v<std::remove_cvref_t<S>, GlobalConfig> ||
    std::is_same_v<std::remove_cvref_t<S>, GroupConfig> ||
    std::is_same_v<std::remove_cvref_t<S>, Threshold> || std::is_same_v<std::remove_cvref_t<S>, TargetConfig>;

// The fields of GlobalConfig that only the supervisor reads: they are not listed in for_each_field, so they
// never travel to the workers (whose copy keeps their defaults); listed here so that the field count below
// still catches a member listed nowhere.
template <typename S, typename F>
requires std::is_same_v<std::remove_cvref_t<S>, GlobalConfig>
void for_each_supervisor_only_field(S& g, F&& f) {
  // The supervisor renders the metrics and runs the per-path test (docs/paths.md).
  f("rtt_histogram", g.rtt_histogram);
  f("path_window", g.path_window);
  f("path_series_per_target", g.path_series_per_target);
  f("health", g.health);  // target state (src/health) lives in the supervisor
}
inline constexpr int kSupervisorOnlyGlobalFields = 4;

template <typename S, typename F>
requires std::is_same_v<std::remove_cvref_t<S>, GlobalConfig>
void for_each_field(S& g, F&& f) {
  static_assert(field_count<GlobalConfig>() == 16 + kSupervisorOnlyGlobalFields,
                "GlobalConfig changed: list the new field here (or in for_each_supervisor_only_field)");
  f("probe_name", g.probe_name);
  f("interval_s", g.interval_s);
  f("interval_packets_s", g.interval_packets_s);
  f("nb_proc", g.nb_proc);
  f("verbose", g.verbose);
  f("logging_level", g.logging_level);
  f("prometheus_port", g.prometheus_port);
  f("prometheus_address", g.prometheus_address);
  f("dns_update_interval_s", g.dns_update_interval_s);
  f("reload_conf_interval_s", g.reload_conf_interval_s);
  f("l3_raw_socket", g.l3_raw_socket);
  f("timeout_s", g.timeout_s);
  f("percentile", g.percentile);
  f("disable_dynamic_inventories", g.disable_dynamic_inventories);
  f("max_packets_per_second", g.max_packets_per_second);
  f("inventory_dir", g.inventory_dir);
}

template <typename S, typename F>
requires std::is_same_v<std::remove_cvref_t<S>, GroupConfig>
void for_each_field(S& g, F&& f) {
  static_assert(field_count<GroupConfig>() == 10, "GroupConfig changed: list the new field here");
  f("name", g.name);
  f("src_ipv4", g.src_ipv4);
  f("src_ipv6", g.src_ipv6);
  f("src_subnet_ipv4", g.src_subnet_ipv4);
  f("src_subnet_ipv6", g.src_subnet_ipv6);
  f("src_port_a", g.src_port_a);
  f("src_port_z", g.src_port_z);
  f("ip_payload_size", g.ip_payload_size);
  f("dscp", g.dscp);
  f("permit_target_auto_register", g.permit_target_auto_register);
}

template <typename S, typename F>
requires std::is_same_v<std::remove_cvref_t<S>, Threshold>
void for_each_field(S& t, F&& f) {
  static_assert(field_count<Threshold>() == 2, "Threshold changed: list the new field here");
  f("latency", t.latency);
  f("loss", t.loss);
}

// The same for TargetConfig: tags only select targets (in the supervisor, before sharding) and label
// netprobe_target_info; a worker never reads them.
template <typename S, typename F>
requires std::is_same_v<std::remove_cvref_t<S>, TargetConfig>
void for_each_supervisor_only_field(S& t, F&& f) {
  f("tags", t.tags);
  f("health", t.health);
}
inline constexpr int kSupervisorOnlyTargetFields = 2;

template <typename S, typename F>
requires std::is_same_v<std::remove_cvref_t<S>, TargetConfig>
void for_each_field(S& t, F&& f) {
  static_assert(field_count<TargetConfig>() == 26 + kSupervisorOnlyTargetFields,
                "TargetConfig changed: list the new field here (or in for_each_supervisor_only_field)");
  f("name", t.name);
  f("description", t.description);
  f("type", t.type);
  f("destination", t.destination);
  f("address_family", t.address_family);
  f("dont_fragment", t.dont_fragment);
  f("is_subnet", t.is_subnet);
  f("dst_port", t.dst_port);
  f("nb_packets", t.nb_packets);
  f("ip_payload_size", t.ip_payload_size);
  f("threshold", t.threshold);
  f("alert_level", t.alert_level);
  f("state", t.state);
  f("timeout_s", t.timeout_s);
  f("dns_update_interval_s", t.dns_update_interval_s);
  f("auto_register_to_groups", t.auto_register_to_groups);
  f("register_to", t.register_to);
  f("exclude_from", t.exclude_from);
  f("groups", t.groups);
  f("is_dynamic", t.is_dynamic);
  f("payload", t.payload);
  f("expect_kind", t.expect_kind);
  f("expect_value", t.expect_value);
  f("token_offset", t.token_offset);
  f("token_length", t.token_length);
  f("token_reply_offset", t.token_reply_offset);
}

}  // namespace netprobe
