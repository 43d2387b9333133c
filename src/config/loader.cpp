#include "config/loader.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <climits>
#include <cmath>
#include <cstring>
#include <map>
#include <set>
#include <unordered_map>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

#include "config/path.h"
#include "config/schema_validator.h"
#include "config/yaml_json.h"
#include "core/token_space.h"
#include "probes/udp_query_spec.h"
#include "svc/tcp_query.h"

namespace netprobe {
namespace {

using Json = nlohmann::json;

// Largest TCPsyn IP payload: the RST-ACK to a SYN carrying P data bytes acks seq+1+P, and the token must
// still be recoverable from it, so P < 2^kTcpSeqShift.
constexpr int kTcpHeader = 20;
constexpr int kMaxTcpIpPayload = kTcpHeader + (1 << kTcpSeqShift) - 1;

std::string join(const std::string& path, std::string_view key) { return config_path_join(path, key); }

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = char(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// Saturating arithmetic for probe counts (nb_packets x groups x hosts can exceed 64 bits on paper).
uint64_t sat_mul(uint64_t a, uint64_t b) {
  if (a != 0 && b > UINT64_MAX / a) return UINT64_MAX;
  return a * b;
}
uint64_t sat_add(uint64_t a, uint64_t b) { return b > UINT64_MAX - a ? UINT64_MAX : a + b; }

// Typed, tolerant accessors: the schema has already reported wrong types, so a value of the wrong type reads
// as absent here and the cross-field checks skip it instead of reporting the same problem twice.
const Json* member(const Json& obj, std::string_view key) {
  if (!obj.is_object()) return nullptr;
  const auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return nullptr;
  return &*it;
}
std::optional<int64_t> get_int(const Json& obj, std::string_view key) {
  const Json* v = member(obj, key);
  if (!v || !v->is_number_integer()) return std::nullopt;
  if (v->is_number_unsigned() && v->get<uint64_t>() > uint64_t(INT64_MAX)) return INT64_MAX;
  return v->get<int64_t>();
}
std::optional<double> get_number(const Json& obj, std::string_view key) {
  const Json* v = member(obj, key);
  if (!v || !v->is_number()) return std::nullopt;
  return v->get<double>();
}
std::optional<bool> get_bool(const Json& obj, std::string_view key) {
  const Json* v = member(obj, key);
  if (!v || !v->is_boolean()) return std::nullopt;
  return v->get<bool>();
}
std::optional<std::string> get_string(const Json& obj, std::string_view key) {
  const Json* v = member(obj, key);
  if (!v || !v->is_string()) return std::nullopt;
  return v->get<std::string>();
}
std::vector<std::string> get_strings(const Json& obj, std::string_view key) {
  std::vector<std::string> out;
  const Json* v = member(obj, key);
  if (!v || !v->is_array()) return out;
  for (const auto& item : *v)
    if (item.is_string()) out.push_back(item.get<std::string>());
  return out;
}

// scapy's Net() syntax: 192.168.*.1-5 (globs and ranges per octet).
bool looks_like_scapy_range(std::string_view s) {
  if (s.find('*') == std::string_view::npos && s.find('-') == std::string_view::npos) return false;
  for (char c : s)
    if (!(std::isdigit(static_cast<unsigned char>(c)) || c == '.' || c == '*' || c == '-' || c == '/'))
      return false;
  return true;
}

// RFC 1123 host name: dot-separated labels of letters, digits and hyphens, not all digits.
bool looks_like_hostname(std::string_view s) {
  if (s.empty() || s.size() > 253) return false;
  bool has_alpha = false;
  size_t label = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (c == '.') {
      if (label == 0) return false;
      label = 0;
      continue;
    }
    if (std::isalpha(static_cast<unsigned char>(c)))
      has_alpha = true;
    else if (!std::isdigit(static_cast<unsigned char>(c)) && c != '-' && c != '_')
      return false;
    if (++label > 63) return false;
  }
  return has_alpha;
}

struct KeySpace {
  ProbeType type;
  AddressFamily af;
  std::string shown;                 // destination as shown in messages
  std::vector<std::string> targets;  // contributing targets, in name order
  uint64_t probes = 0;               // per iteration, every group and source port together
};

class Builder {
 public:
  Builder(const Json& doc, ConfigDiagnostics* d) : doc_(doc), d_(d) {}

  Config build(std::string source_name) {
    cfg_.source_path = std::move(source_name);
    if (!doc_.is_object()) return std::move(cfg_);
    if (const Json* g = member(doc_, "global")) build_global(*g);
    if (const Json* groups = member(doc_, "groups"); groups && groups->is_object())
      for (auto it = groups->begin(); it != groups->end(); ++it) build_group(it.key(), it.value());
    if (const Json* targets = member(doc_, "targets"); targets && targets->is_object())
      for (auto it = targets->begin(); it != targets->end(); ++it) build_target(it.key(), it.value());
    check_probe_counts();
    if (const Json* od = member(doc_, "on_demand"); od && od->is_object())
      cfg_.on_demand = read_on_demand(*od, "on_demand", cfg_.global.max_packets_per_second, &d_->errors);
    return std::move(cfg_);
  }

 private:
  void error(const std::string& path, const std::string& msg) { d_->errors.push_back(path + ": " + msg); }
  void warn(const std::string& path, const std::string& msg) { d_->warnings.push_back(path + ": " + msg); }

  // Integers in int fields; JSON integers can be larger than the struct fields.
  std::optional<int> get_small_int(const Json& obj, std::string_view key, const std::string& path) {
    auto v = get_int(obj, key);
    if (!v) return std::nullopt;
    if (*v > INT_MAX || *v < INT_MIN) {
      error(join(path, key), fmt::format("{} is too large", *v));
      return std::nullopt;
    }
    return int(*v);
  }
  std::optional<double> get_finite(const Json& obj, std::string_view key, const std::string& path) {
    auto v = get_number(obj, key);
    if (v && !std::isfinite(*v)) {
      error(join(path, key), fmt::format("{} is not a finite number", *v));
      return std::nullopt;
    }
    return v;
  }

  void build_global(const Json& g) {
    const std::string p = "global";
    GlobalConfig& out = cfg_.global;
    if (auto v = get_string(g, "probe_name")) out.probe_name = *v;
    if (auto v = get_small_int(g, "interval", p)) out.interval_s = *v;
    if (auto v = get_finite(g, "interval_packets", p)) out.interval_packets_s = *v;
    if (auto v = get_small_int(g, "nb_proc", p)) out.nb_proc = *v;
    if (auto v = get_small_int(g, "verbose", p)) out.verbose = *v;
    if (auto v = get_string(g, "logging_level")) out.logging_level = *v;
    if (auto v = get_small_int(g, "prometheus_port", p)) out.prometheus_port = *v;
    if (auto v = get_string(g, "prometheus_address")) {
      // Handed to the HTTP server as its listen address: anything but one address literal could open
      // other listeners ("9301,127.0.0.1" did).
      const bool schema_said_so = v->find_first_not_of("0123456789abcdefABCDEF:.") != std::string::npos;
      if (IpAddress::parse(*v))
        out.prometheus_address = *v;
      else if (!schema_said_so)  // the schema's pattern already reported it
        error(join(p, "prometheus_address"),
              fmt::format("{} is not an IPv4 or IPv6 address (e.g. 0.0.0.0, 127.0.0.1, ::)",
                          quoted_excerpt(*v)));
    }
    if (auto v = get_small_int(g, "dns_update_interval", p)) out.dns_update_interval_s = *v;
    if (auto v = get_small_int(g, "reload_conf_interval", p)) out.reload_conf_interval_s = *v;
    if (auto v = get_bool(g, "l3_raw_socket")) out.l3_raw_socket = *v;
    if (auto v = get_finite(g, "timeout", p)) out.timeout_s = *v;
    // As netprobify: an absent (or empty-valued) percentile means [95, 50]; an explicit [] means none.
    if (const Json* pct = member(g, "percentile"); pct && pct->is_array()) {
      out.percentile.clear();
      for (const auto& x : *pct)
        if (x.is_number_integer())
          out.percentile.push_back(int(std::clamp<int64_t>(x.get<int64_t>(), 0, 100)));
    }
    out.disable_dynamic_inventories = get_strings(g, "disable_dynamic_inventories");
    if (auto v = get_finite(g, "max_packets_per_second", p)) out.max_packets_per_second = *v;
    if (auto v = get_string(g, "inventory_dir")) out.inventory_dir = *v;
    if (auto v = get_small_int(g, "path_window", p)) out.path_window = *v;
    if (auto v = get_small_int(g, "path_series_per_target", p)) out.path_series_per_target = *v;
    if (auto v = get_string(g, "rtt_histogram")) {
      if (auto granularity = rtt_histogram_from_string(*v))
        out.rtt_histogram = *granularity;  // anything else: the schema's enum already reported it
    }
    if (const Json* h = member(g, "health")) out.health = read_health(*h, join(p, "health"));
  }

  // `health` of global or of a target (ranges: the schema); absent keys stay unset (src/health defaults).
  HealthConfig read_health(const Json& h, const std::string& path) {
    HealthConfig out;
    if (const Json* f = member(h, "fail_if")) {
      const std::string fp = join(path, "fail_if");
      out.loss_ratio_above = get_finite(*f, "loss_ratio_above", fp);
      out.rtt_percentile = get_small_int(*f, "rtt_percentile", fp);
      out.rtt_above_s = get_finite(*f, "rtt_above", fp);
    }
    out.failing_threshold = get_small_int(h, "failing_threshold", path);
    out.passing_threshold = get_small_int(h, "passing_threshold", path);
    out.site_threshold = get_small_int(h, "site_threshold", path);
    return out;
  }

  std::optional<IpAddress> parse_source(const Json& g, const std::string& path, std::string_view key,
                                        AddressFamily af) {
    auto text = get_string(g, key);
    if (!text) return std::nullopt;
    auto addr = IpAddress::parse(*text);
    if (!addr || addr->af != af) {
      error(join(path, key), fmt::format("\"{}\" is not a valid {} address (netprobify silently ignored an "
                                         "invalid source address; netprobe refuses it)",
                                         *text, af == AddressFamily::kV4 ? "IPv4" : "IPv6"));
      return std::nullopt;
    }
    return addr;
  }

  std::optional<IpNetwork> parse_source_subnet(const Json& g, const std::string& path, std::string_view key,
                                               AddressFamily af) {
    auto text = get_string(g, key);
    if (!text) return std::nullopt;
    auto net = IpNetwork::parse(*text);
    if (!net || net->base.af != af) {
      error(join(path, key), fmt::format("\"{}\" is not an {} network in CIDR form (e.g. {})", *text,
                                         af == AddressFamily::kV4 ? "IPv4" : "IPv6",
                                         af == AddressFamily::kV4 ? "192.0.2.0/29" : "2001:db8::/125"));
      return std::nullopt;
    }
    return net;
  }

  void build_group(const std::string& name, const Json& g) {
    const std::string path = join("groups", name);
    GroupConfig out;
    out.name = name;
    if (member(g, "src_ipv4")) {
      out.src_ipv4 = parse_source(g, path, "src_ipv4", AddressFamily::kV4);
      if (member(g, "src_ip")) warn(join(path, "src_ip"), "deprecated and ignored because src_ipv4 is set");
    } else if (member(g, "src_ip")) {
      warn(join(path, "src_ip"), "deprecated: use src_ipv4 (still honoured)");
      out.src_ipv4 = parse_source(g, path, "src_ip", AddressFamily::kV4);
    }
    out.src_ipv6 = parse_source(g, path, "src_ipv6", AddressFamily::kV6);
    out.src_subnet_ipv4 = parse_source_subnet(g, path, "src_subnet_ipv4", AddressFamily::kV4);
    out.src_subnet_ipv6 = parse_source_subnet(g, path, "src_subnet_ipv6", AddressFamily::kV6);
    const auto a = get_int(g, "src_port_a");
    const auto z = get_int(g, "src_port_z");
    const int64_t port_a = a.value_or(65000), port_z = z.value_or(65001);
    const bool ports_ok =
        port_a >= 1 && port_a <= 65535 && port_z >= 1 && port_z <= 65535;  // else: schema error
    if (ports_ok) {
      out.src_port_a = uint16_t(port_a);
      out.src_port_z = uint16_t(port_z);
      if (port_a > port_z)
        error(path, fmt::format("src_port_a {}{} is greater than src_port_z {}{}", port_a,
                                a ? "" : " (default)", port_z, z ? "" : " (default)"));
    }
    if (auto v = get_small_int(g, "ip_payload_size", path)) out.ip_payload_size = *v;
    if (auto v = get_int(g, "dscp"); v && *v >= 0 && *v <= 63) out.dscp = int(*v);
    if (auto v = get_bool(g, "permit_target_auto_register")) out.permit_target_auto_register = *v;
    if (out.permit_target_auto_register) auto_groups_.push_back(name);
    cfg_.groups.emplace(name, std::move(out));
  }

  void build_target(const std::string& name, const Json& t) {
    const std::string path = join("targets", name);
    if (!t.is_object()) return;  // reported by the schema
    TargetConfig out;
    out.name = name;
    out.description = get_string(t, "description").value_or(name);
    const auto type_text = get_string(t, "type");
    std::optional<ProbeType> type;
    if (type_text) type = probe_type_from_string(*type_text);
    if (type_text && (*type_text == "TCPquery" || *type_text == "TLS"))
      return build_service_check(name, t,
                                 *type_text == "TLS" ? ServiceCheckType::kTls : ServiceCheckType::kTcpQuery);
    if (type) out.type = *type;
    const auto destination = get_string(t, "destination");
    if (destination) out.destination = *destination;
    if (auto af = get_string(t, "address_family")) {
      if (*af == "ipv4")
        out.address_family = AddressFamily::kV4;
      else if (*af == "ipv6")
        out.address_family = AddressFamily::kV6;
    }
    if (auto v = get_bool(t, "dont_fragment")) out.dont_fragment = *v;
    if (auto v = get_bool(t, "is_subnet")) out.is_subnet = *v;
    if (auto v = get_int(t, "dst_port"); v && *v >= 1 && *v <= 65535) out.dst_port = uint16_t(*v);
    if (auto v = get_small_int(t, "nb_packets", path)) out.nb_packets = *v;
    if (auto v = get_small_int(t, "ip_payload_size", path)) out.ip_payload_size = *v;
    read_labels(t, path, out);
    if (auto v = get_finite(t, "timeout", path)) out.timeout_s = *v;
    if (const Json* h = member(t, "health")) out.health = read_health(*h, join(path, "health"));
    out.dns_update_interval_s = cfg_.global.dns_update_interval_s;
    if (auto v = get_small_int(t, "dns_update_interval", path)) out.dns_update_interval_s = *v;
    if (auto v = get_bool(t, "auto_register_to_groups")) out.auto_register_to_groups = *v;
    if (const Json* eg = member(t, "explicit_groups")) {
      out.register_to = get_strings(*eg, "register_to");
      out.exclude_from = get_strings(*eg, "exclude_from");
    }

    // Cross-field checks.
    bool destination_ok = destination.has_value();
    if (type &&
        (*type == ProbeType::kTcpSyn || *type == ProbeType::kUdpUnreachable ||
         *type == ProbeType::kUdpQuery) &&
        !member(t, "dst_port"))
      error(join(path, "dst_port"), fmt::format("required for {}", to_string(*type)));
    if (destination) destination_ok = check_destination(path, out);
    if (type && *type == ProbeType::kTcpSyn && out.ip_payload_size && *out.ip_payload_size > kMaxTcpIpPayload)
      error(join(path, "ip_payload_size"),
            fmt::format(
                "{} is too large for TCPsyn: at most {} (the 20-byte TCP header + {} bytes of data, the room "
                "the sequence-number token leaves)",
                *out.ip_payload_size, kMaxTcpIpPayload, kMaxTcpIpPayload - kTcpHeader));

    read_udp_query(path, t, type, out);

    associate_groups(path, out);
    if (type && *type == ProbeType::kUdpQuery) check_flows_without_token(path, name, out);
    if (type && destination_ok) count_probes(path, out);
    cfg_.targets.emplace(name, std::move(out));
  }

  // The keys a raw-socket target and a service check share (threshold, alert_level, state, tags), read the
  // same way into either.
  template <typename T>
  void read_labels(const Json& t, const std::string& path, T& out) {
    if (const Json* th = member(t, "threshold")) {
      out.threshold.latency = get_finite(*th, "latency", join(path, "threshold"));
      out.threshold.loss = get_finite(*th, "loss", join(path, "threshold"));
    }
    if (auto v = get_string(t, "alert_level"))
      out.alert_level = alert_level_from_string(*v).value_or(AlertLevel::kNoAlert);
    out.state = get_string(t, "state");
    out.tags = get_strings(t, "tags");  // bounded and shaped by the schema
    std::sort(out.tags.begin(), out.tags.end());
    out.tags.erase(std::unique(out.tags.begin(), out.tags.end()), out.tags.end());
  }

  // A TCPquery or TLS entry of `targets:` (docs/service-checks.md#configuration): blackbox's tcp module
  // names (query_response, tls_config); types and sizes are the schema's, the rest is checked here.
  void build_service_check(const std::string& name, const Json& t, ServiceCheckType type) {
    const std::string path = join("targets", name);
    const std::string type_name(to_string(type));
    ServiceCheckConfig out;
    out.name = name;
    out.type = type;
    const auto destination = get_string(t, "destination");
    if (auto af = get_string(t, "address_family"))
      out.address_family = *af == "ipv6" ? AddressFamily::kV6 : AddressFamily::kV4;
    if (auto v = get_int(t, "dst_port"); v && *v >= 1 && *v <= 65535) out.dst_port = uint16_t(*v);
    if (!member(t, "dst_port")) error(join(path, "dst_port"), "required for " + type_name);
    if (get_bool(t, "is_subnet").value_or(false))
      error(join(path, "is_subnet"), type_name + " checks one host: a subnet is not supported");
    for (const char* key : {"nb_packets", "ip_payload_size", "dont_fragment", "health"})
      if (member(t, key))
        warn(join(path, key), "ignored for " + type_name + " (one connection per interval)");
    // Bounds: one check holds at most a few of these per connection, so they stay small.
    if (const Json* q = member(t, "query_response"); q && q->is_array()) {
      const std::string qpath = join(path, "query_response");
      if (q->empty()) error(qpath, "empty: leave query_response out to check the connection only");
      for (size_t i = 0; i < q->size(); ++i) {
        const Json& item = (*q)[i];
        const std::string ipath = fmt::format("{}[{}]", qpath, i);
        if (!item.is_object()) continue;  // the schema said so
        if (member(item, "expect") && member(item, "expect_bytes"))
          error(ipath, "expect and expect_bytes in one item: write two items");
        size_t in_item = 0;
        // blackbox's order inside one item: expect (or expect_bytes), then send.
        for (const char* kind : {"expect", "expect_bytes", "send"}) {
          const auto value = get_string(item, kind);
          if (!value) continue;
          ++in_item;
          if (std::string_view(kind) == "expect" && value->size() > 512) continue;  // the schema said so
          std::string why;
          if (!svc::parse_tcp_step(kind, *value, &why))
            error(join(ipath, kind), why);
          else
            out.query_response.push_back({kind, *value});
        }
        if (in_item == 0 && item.empty()) error(ipath, "empty: one of send, expect or expect_bytes");
      }
      if (q->size() <= svc::kMaxTcpSteps && out.query_response.size() > svc::kMaxTcpSteps)  // 2 per item
        error(qpath, fmt::format("{} steps, more than {}", out.query_response.size(), svc::kMaxTcpSteps));
    }
    const Json* tls = member(t, "tls_config");
    if (tls && type != ServiceCheckType::kTls) error(join(path, "tls_config"), "only for type TLS");
    if (member(t, "expiry_window") && type != ServiceCheckType::kTls)
      error(join(path, "expiry_window"), "only for type TLS");
    if (tls && type == ServiceCheckType::kTls) {
      const std::string tpath = join(path, "tls_config");
      out.server_name = get_string(*tls, "server_name").value_or("");
      if (!out.server_name.empty() && !looks_like_hostname(out.server_name))
        error(join(tpath, "server_name"),
              fmt::format("{} is not a DNS name", quoted_excerpt(out.server_name)));
      out.ca_file = get_string(*tls, "ca_file").value_or("");
      if (!out.ca_file.empty() && out.ca_file.front() != '/')
        error(join(tpath, "ca_file"), "must be an absolute path (the daemon's working directory is /)");
      out.insecure_skip_verify = get_bool(*tls, "insecure_skip_verify").value_or(false);
    }
    if (type == ServiceCheckType::kTls) {
      if (auto n = get_int(t, "expiry_window")) {
        if (*n >= 0 && *n <= kMaxExpiryWindow) out.expiry_window_s = *n;  // else: the schema said so
      } else if (auto text = get_string(t, "expiry_window")) {
        std::string why;
        if (auto secs = parse_duration_seconds(*text, &why))
          out.expiry_window_s = *secs;
        else
          error(join(path, "expiry_window"), why);
      }
      if (out.expiry_window_s < 0 || out.expiry_window_s > kMaxExpiryWindow)
        error(join(path, "expiry_window"),
              fmt::format("{} s is outside 0 to {} s (10 years)", out.expiry_window_s, kMaxExpiryWindow));
    }
    if (auto v = get_finite(t, "timeout", path)) {
      out.timeout_s = *v;
      if (*v <= 0 || *v > kMaxServiceCheckTimeout)
        error(join(path, "timeout"), fmt::format("{} s: a {} check needs more than 0 and at most {} s", *v,
                                                 type_name, kMaxServiceCheckTimeout));
    }
    read_labels(t, path, out);

    // Destination and groups through the TargetConfig rules, so both kinds read the same way.
    TargetConfig like;
    like.name = name;
    like.destination = destination.value_or("");
    like.address_family = out.address_family;
    if (auto v = get_bool(t, "auto_register_to_groups")) like.auto_register_to_groups = *v;
    if (const Json* eg = member(t, "explicit_groups")) {
      like.register_to = get_strings(*eg, "register_to");
      like.exclude_from = get_strings(*eg, "exclude_from");
    }
    if (destination) check_destination(path, like);
    out.destination = like.destination;
    associate_groups(path, like);
    out.groups = std::move(like.groups);
    if (++service_check_count_ > kMaxServiceChecks) {
      if (service_check_count_ == kMaxServiceChecks + 1)
        error(path, fmt::format("more than {} TCPquery/TLS targets", kMaxServiceChecks));
      return;
    }
    cfg_.service_checks.emplace(name, std::move(out));
  }

  // UDPquery's payload, expect and token (docs/service-checks.md#udpquery): validated here exactly as the
  // worker will build them (udpquery::make_spec()), each error at its key.
  void read_udp_query(const std::string& path, const Json& t, std::optional<ProbeType> type,
                      TargetConfig& out) {
    const bool query = type && *type == ProbeType::kUdpQuery;
    for (const char* key : {"payload", "expect", "token"})
      if (!query && member(t, key)) error(join(path, key), "only for UDPquery targets");
    if (!query) return;
    if (auto v = get_string(t, "payload")) out.payload = *v;
    if (!member(t, "payload")) error(join(path, "payload"), "required for UDPquery");
    if (const Json* e = member(t, "expect"); e && e->is_object()) {
      int kinds = 0;
      for (const char* kind : {"any", "exact", "contains", "regex"}) {
        const Json* v = member(*e, kind);
        if (!v) continue;
        ++kinds;
        out.expect_kind = kind;
        out.expect_value = v->is_string() ? v->get<std::string>() : "";
      }
      if (kinds > 1 || (kinds == 0 && e->empty())) {  // another key is reported by the schema
        error(join(path, "expect"), "exactly one of any, exact, contains, regex");
        out.expect_kind = "any";
      }
    }
    if (const Json* tok = member(t, "token"); tok && tok->is_object()) {
      auto u16 = [&](const char* key) { return uint16_t(get_int(*tok, key).value_or(0)); };
      out.token_offset = u16("offset");
      out.token_length = u16("length");
      if (out.token_length > udpquery::kMaxTokenBytes) out.token_length = 0;  // reported by the schema
      out.token_reply_offset = member(*tok, "reply_offset") ? u16("reply_offset") : out.token_offset;
    }
    std::string why;
    if (!member(t, "payload")) return;
    if (!udpquery::make_spec(out.payload, out.expect_kind, out.expect_value, out.token_offset,
                             out.token_length, out.token_reply_offset, &why)) {
      const std::string_view w(why);
      const char* key = w.starts_with("payload") ? "payload" : w.starts_with("expect") ? "expect" : "token";
      error(join(path, key), why.substr(why.find(": ") + 2));
    }
  }

  // Without a token, an answer is matched by its 5-tuple alone: each flow (source port) may carry one probe
  // per iteration, so that no two of them are in flight at once.
  // Two such targets on one 5-tuple (the same destination as written and port, from groups with the same
  // source addresses and overlapping source ports) could not be told apart: the second is refused.
  void check_flows_without_token(const std::string& path, const std::string& target_name,
                                 const TargetConfig& t) {
    if (t.token_length != 0) return;
    std::string dest = t.destination;
    if (auto a = IpAddress::parse(dest)) dest = a->to_string();
    std::transform(dest.begin(), dest.end(), dest.begin(), [](unsigned char c) { return std::tolower(c); });
    for (const auto& name : t.groups) {
      const auto g = cfg_.groups.find(name);
      if (g == cfg_.groups.end()) continue;
      if (!t.is_subnet) {
        for (const auto& [other, other_group] : tokenless_flows_[{dest, t.dst_port.value_or(0)}]) {
          const GroupConfig& o = cfg_.groups.at(other_group);
          const bool same_sources = o.src_ipv4 == g->second.src_ipv4 && o.src_ipv6 == g->second.src_ipv6;
          const bool ports_overlap =
              o.src_port_a <= g->second.src_port_z && g->second.src_port_a <= o.src_port_z;
          if (other != target_name && same_sources && ports_overlap) {
            error(
                join(path, "destination"),
                fmt::format("UDPquery without a token to the same destination, port and source ports (group "
                            "\"{}\") as target \"{}\" (group \"{}\"): their answers could not be told apart "
                            "(add a token to one, or give the groups distinct source ports)",
                            name, other, other_group));
            return;
          }
        }
        tokenless_flows_[{dest, t.dst_port.value_or(0)}].emplace_back(target_name, name);
      }
      const int ports = g->second.src_port_z - g->second.src_port_a + 1;
      if (t.nb_packets > ports)
        error(join(path, "nb_packets"),
              fmt::format("{} packets but group \"{}\" has {} source port(s): without a token, a UDPquery "
                          "answer is matched by its 5-tuple, so each flow carries at most one probe per "
                          "iteration (add a token, more source ports, or fewer packets)",
                          t.nb_packets, name, ports));
    }
  }

  // Returns false when the destination cannot be probed as written.
  bool check_destination(const std::string& path, TargetConfig& t) {
    const std::string dpath = join(path, "destination");
    if (t.destination.empty()) {
      error(dpath, "must not be empty");
      return false;
    }
    std::optional<AddressFamily> literal_af;
    if (t.is_subnet) {
      const auto net = IpNetwork::parse(t.destination);
      if (!net && looks_like_hostname(t.destination)) {
        // scapy's Net() resolved a hostname to its one address, so netprobify probed it as a single host.
        warn(join(path, "is_subnet"),
             fmt::format("ignored: \"{}\" is a hostname, probed as the one address it "
                         "resolves to (as netprobify did)",
                         t.destination));
        t.is_subnet = false;
        return true;
      }
      if (!net) {
        if (looks_like_scapy_range(t.destination))
          error(dpath, fmt::format("\"{}\": scapy's range/glob syntax is not supported; only CIDR is (e.g. "
                                   "192.168.0.0/16)",
                                   t.destination));
        else
          error(dpath,
                fmt::format("\"{}\" is not a network: with is_subnet: true the destination must be in CIDR "
                            "form (e.g. 192.0.2.0/24 or 2001:db8::/64)",
                            t.destination));
        return false;
      }
      literal_af = net->base.af;
    } else if (const auto addr = IpAddress::parse(t.destination)) {
      literal_af = addr->af;
    } else if (IpNetwork::parse(t.destination)) {
      error(dpath,
            fmt::format("\"{}\" is a network: set is_subnet: true to probe its addresses", t.destination));
      return false;
    }
    if (literal_af && t.address_family && *literal_af != *t.address_family) {
      error(join(path, "address_family"),
            fmt::format("{} does not match the {} destination \"{}\"", to_string(*t.address_family),
                        *literal_af == AddressFamily::kV4 ? "IPv4" : "IPv6", t.destination));
      return false;
    }
    return true;
  }

  // netprobify's rules (main.py load_conf): start empty; auto-register to every group that permits it; add
  // the register_to groups that exist; remove exclude_from last.
  void associate_groups(const std::string& path, TargetConfig& t) {
    std::set<std::string> groups;
    if (t.auto_register_to_groups) groups.insert(auto_groups_.begin(), auto_groups_.end());
    for (const auto& g : t.register_to) {
      if (cfg_.groups.count(g))
        groups.insert(g);
      else
        warn(join(path, "explicit_groups.register_to"),
             fmt::format("group \"{}\" does not exist; ignored", g));
    }
    for (const auto& g : t.exclude_from) {
      if (cfg_.groups.count(g))
        groups.erase(g);
      else
        warn(join(path, "explicit_groups.exclude_from"),
             fmt::format("group \"{}\" does not exist; ignored", g));
    }
    t.groups.assign(groups.begin(), groups.end());
    if (t.groups.empty()) warn(path, "disabled: not associated to any group");
  }

  void count_probes(const std::string& path, const TargetConfig& t) {
    if (t.groups.empty() || t.nb_packets <= 0) return;
    const AddressFamily af = t.family();
    uint64_t hosts = 1;
    std::string dest;
    if (t.is_subnet) {
      const auto net = IpNetwork::parse(t.destination);
      hosts = net->usable_count();
      dest = net->to_string();
    } else if (const auto addr = IpAddress::parse(t.destination)) {
      dest = addr->to_string();
    } else {
      dest = lower(t.destination);
    }
    const uint64_t nb = uint64_t(t.nb_packets);
    const uint64_t probes = sat_mul(sat_mul(nb, t.groups.size()), hosts);
    per_target_.emplace_back(probes, t.name);
    if (probes > kMaxProbesPerIteration) {
      error(path, fmt::format("{} probes per iteration ({} packet(s) x {} group(s) x {} host(s)), more than "
                              "netprobe's limit of {} per iteration",
                              probes, nb, t.groups.size(), hosts, kMaxProbesPerIteration));
      over_limit_ = true;
    }
    total_probes_ = sat_add(total_probes_, probes);

    std::string key = fmt::format("{}|{}|{}", int(t.type), int(af), dest);
    auto [it, inserted] = key_spaces_.try_emplace(std::move(key));
    KeySpace& ks = it->second;
    if (inserted) {
      ks.type = t.type;
      ks.af = af;
      ks.shown = t.destination;
    }
    if (ks.targets.empty() || ks.targets.back() != t.name) ks.targets.push_back(t.name);
    ks.probes = sat_add(ks.probes, sat_mul(nb, t.groups.size()));  // per destination host of a subnet
  }

  void check_probe_counts() {
    if (!over_limit_ && total_probes_ > kMaxProbesPerIteration) {
      const auto largest = std::max_element(per_target_.begin(), per_target_.end(),
                                            [](const auto& a, const auto& b) { return a.first < b.first; });
      error("targets",
            fmt::format("{} probes per iteration in total, more than netprobe's limit of {} (largest: "
                        "targets.{} with {})",
                        total_probes_, kMaxProbesPerIteration, largest->second, largest->first));
    }
    std::vector<std::string> errors;
    for (const auto& [key, ks] : key_spaces_) {
      // The on-demand worker, when configured, takes one more slice (docs/on-demand.md#the-on-demand-worker).
      const int slice_bits = key_slice_bits(cfg_.global.nb_proc + (member(doc_, "on_demand") ? 1 : 0));
      const uint64_t limit = max_probes_per_key_space(ks.type, ks.af, slice_bits);
      if (ks.probes <= limit) continue;
      std::string who;
      if (ks.targets.size() > 1) {
        who = " (targets ";
        for (size_t i = 0; i < ks.targets.size() && i < 5; ++i) who += (i ? ", " : "") + ks.targets[i];
        who += ks.targets.size() > 5 ? ", ...)" : ")";
      }
      const int bits = config_token_bits(ks.type, ks.af);
      // With several workers, say where the missing bits went and that fewer workers also helps.
      const std::string sliced = slice_bits == 0
                                     ? std::string()
                                     : fmt::format(" with nb_proc {} ({} of its bits select the worker)",
                                                   cfg_.global.nb_proc, slice_bits);
      const std::string or_nb_proc = slice_bits == 0 ? std::string() : std::string(" or nb_proc");
      errors.push_back(
          fmt::format("targets.{}: {} {} probes per iteration to \"{}\"{}, more than the {} that {}'s "
                      "{}-bit token allows per destination{}; lower nb_packets{}",
                      ks.targets.front(), ks.probes, to_string(ks.type), ks.shown, who, limit,
                      to_string(ks.type), bits, sliced, or_nb_proc));
    }
    std::sort(errors.begin(), errors.end());  // key_spaces_ is unordered; keep the output deterministic
    d_->errors.insert(d_->errors.end(), errors.begin(), errors.end());
  }

  const Json& doc_;
  ConfigDiagnostics* d_;
  Config cfg_;
  std::vector<std::string> auto_groups_;  // groups with permit_target_auto_register, in name order
  std::unordered_map<std::string, KeySpace> key_spaces_;
  std::vector<std::pair<uint64_t, std::string>> per_target_;
  uint64_t total_probes_ = 0;
  bool over_limit_ = false;
  size_t service_check_count_ = 0;
  // Token-less UDPquery targets by (destination as written, port): (target, group) pairs.
  std::map<std::pair<std::string, uint16_t>, std::vector<std::pair<std::string, std::string>>>
      tokenless_flows_;
};

// A document with a million bad targets must not print a million lines (nor hold them).
void cap_messages(std::vector<std::string>* messages, std::string_view what) {
  constexpr size_t kMaxMessages = 1000;
  if (messages->size() <= kMaxMessages) return;
  const size_t dropped = messages->size() - kMaxMessages;
  messages->resize(kMaxMessages);
  messages->push_back(fmt::format("(root): {} more {} not shown", dropped, what));
}

}  // namespace

int config_token_bits(ProbeType type, AddressFamily af) { return token_index_bits(type, af); }

std::optional<int64_t> parse_duration_seconds(std::string_view text, std::string* why) {
  auto fail = [&](std::string msg) -> std::optional<int64_t> {
    if (why) *why = std::move(msg);
    return std::nullopt;
  };
  const std::string shown = quoted_excerpt(text);
  if (text.empty() || text.size() > 32)
    return fail(shown + " is not a duration (e.g. 30d, 720h, 1h30m, 3600)");
  int64_t total = 0;
  size_t i = 0;
  while (i < text.size()) {
    int64_t n = 0;
    const size_t digits = i;
    while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) {
      if (n > 1'000'000'000'000) return fail(shown + " is too long a duration");
      n = n * 10 + (text[i++] - '0');
    }
    if (i == digits) return fail(shown + " is not a duration (e.g. 30d, 720h, 1h30m, 3600)");
    int64_t unit = 0;
    if (i == text.size() && digits == 0)
      unit = 1;  // a bare number: seconds
    else if (i < text.size()) {
      switch (text[i++]) {
        case 's':
          unit = 1;
          break;
        case 'm':
          unit = 60;
          break;
        case 'h':
          unit = 3600;
          break;
        case 'd':
          unit = 86400;
          break;
        case 'w':
          unit = 7 * 86400;
          break;
        case 'y':
          unit = 365 * 86400;
          break;
        default:
          break;
      }
    }
    if (unit == 0) return fail(shown + " is not a duration: units are s, m, h, d, w, y (e.g. 30d, 1h30m)");
    total += n * unit;
    if (total > int64_t(1) << 40) return fail(shown + " is too long a duration");
  }
  return total;
}

uint64_t max_probes_per_key_space(ProbeType type, AddressFamily af, int slice_bits) {
  const int bits = config_token_bits(type, af) - std::max(0, slice_bits);
  return bits <= 0 ? 0 : (uint64_t(1) << bits) - 1;
}

int key_slice_bits(int nb_proc) {
  int bits = 0;
  while (bits < 31 && (int64_t(1) << bits) < int64_t(nb_proc)) ++bits;
  return bits;
}

const SchemaValidator* config_schema_validator(std::string* error) {
  static const Result<SchemaValidator> compiled =
      SchemaValidator::compile_text(embedded_config_schema(), "the embedded schema");
  return validator_or_error(compiled, error);
}

LoadedConfig load_config_json(const nlohmann::json& doc, std::string source_name) {
  LoadedConfig out;
  try {
    std::string schema_error;
    const SchemaValidator* validator = config_schema_validator(&schema_error);
    if (!validator) {
      out.diagnostics.errors.push_back("internal error: netprobe's configuration schema cannot be used: " +
                                       schema_error);
      return out;
    }
    if (doc.is_null()) {
      out.diagnostics.errors.push_back(fmt::format(
          "{}: the configuration is empty; expected a mapping with global, groups and targets", source_name));
      return out;
    }
    validator->validate(doc, &out.diagnostics.errors);
    Builder builder(doc, &out.diagnostics);
    Config cfg = builder.build(std::move(source_name));
    if (out.diagnostics.errors.empty()) out.config = std::move(cfg);
    cap_messages(&out.diagnostics.errors, "errors");
    cap_messages(&out.diagnostics.warnings, "warnings");
  } catch (const std::exception& e) {
    out.config.reset();
    out.diagnostics.errors.push_back(
        fmt::format("internal error while loading the configuration: {}", e.what()));
  }
  return out;
}

LoadedConfig load_config_string(std::string_view yaml, std::string source_name) {
  try {
    auto parsed = parse_yaml_to_json(yaml, source_name);
    LoadedConfig out;
    if (!parsed.errors.empty() && parsed.value.is_null()) {  // syntax error: nothing to validate
      out.diagnostics.errors = std::move(parsed.errors);
      out.diagnostics.warnings = std::move(parsed.warnings);
      return out;
    }
    out = load_config_json(parsed.value, std::move(source_name));
    out.diagnostics.errors.insert(out.diagnostics.errors.begin(), parsed.errors.begin(), parsed.errors.end());
    out.diagnostics.warnings.insert(out.diagnostics.warnings.begin(), parsed.warnings.begin(),
                                    parsed.warnings.end());
    if (!out.diagnostics.errors.empty()) out.config.reset();
    return out;
  } catch (const std::exception& e) {
    LoadedConfig out;
    out.diagnostics.errors.push_back(
        fmt::format("{}: internal error while loading: {}", source_name, e.what()));
    return out;
  }
}

Result<std::string> read_config_text(const std::string& path, size_t max_bytes) {
  // O_NONBLOCK: opening a FIFO must not wait for a writer; it is refused right after as not a file.
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  if (fd < 0) return Error{fmt::format("cannot open the configuration file: {}", std::strerror(errno))};
  struct Closer {
    int fd;
    ~Closer() { close(fd); }
  } closer{fd};
  struct stat st {};
  if (fstat(fd, &st) != 0)
    return Error{fmt::format("cannot read the configuration file: {}", std::strerror(errno))};
  if (!S_ISREG(st.st_mode))
    return Error{
        "not a regular file (a FIFO, device or directory is refused: reading it could block or never end)"};
  if (uint64_t(st.st_size) > max_bytes)
    return Error{fmt::format("the file is {} bytes, more than the limit of {} bytes", st.st_size, max_bytes)};
  std::string text;
  text.resize(max_bytes + 1 < size_t(st.st_size) + 4096 ? max_bytes + 1 : size_t(st.st_size) + 4096);
  size_t got = 0;
  for (;;) {
    if (got == text.size()) {
      if (got > max_bytes) break;
      text.resize(std::min(max_bytes + 1, text.size() * 2));
    }
    const ssize_t n = read(fd, text.data() + got, text.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Error{fmt::format("cannot read the configuration file: {}", std::strerror(errno))};
    if (n == 0) break;
    got += size_t(n);
  }
  if (got > max_bytes)  // the file grew while we read it
    return Error{fmt::format("the file is more than the limit of {} bytes", max_bytes)};
  text.resize(got);
  return text;
}

LoadedConfig load_config_file(const std::string& path) {
  auto text = read_config_text(path, kMaxConfigBytes);
  if (!text.ok()) {
    LoadedConfig out;
    out.diagnostics.errors.push_back(fmt::format("{}: {}", path, text.error().message));
    return out;
  }
  return load_config_string(text.value(), path);
}

}  // namespace netprobe
