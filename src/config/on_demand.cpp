#include "config/on_demand.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "config/path.h"

namespace netprobe {
namespace {

using Json = nlohmann::json;

const Json* member(const Json& obj, const char* key) {
  if (!obj.is_object()) return nullptr;
  auto it = obj.find(key);
  return it == obj.end() || it->is_null() ? nullptr : &*it;
}

template <typename T>
void read_number(const Json& obj, const char* key, T* out) {
  if (const Json* v = member(obj, key); v && v->is_number()) *out = static_cast<T>(v->get<double>());
}

void read_string(const Json& obj, const char* key, std::string* out) {
  if (const Json* v = member(obj, key); v && v->is_string()) *out = v->get<std::string>();
}

// The override names a module may list, and the bounds that hold whatever the module says.
struct OverrideLimit {
  const char* name;
  double min;
  double max;
};
constexpr OverrideLimit kOverrideLimits[] = {
    {"nb_packets", 1, 65535},      {"dst_port", 1, 65535}, {"dscp", 0, 63},
    {"ip_payload_size", 0, 65515}, {"timeout", 0.001, 60},
};

}  // namespace

OnDemandConfig read_on_demand(const Json& section, const std::string& path, double global_max_pps,
                              std::vector<std::string>* errors) {
  OnDemandConfig out;
  auto error = [&](const std::string& where, const std::string& msg) {
    errors->push_back(where + ": " + msg);
  };
  if (const Json* prefixes = member(section, "allowed_prefixes"); prefixes && prefixes->is_array()) {
    for (size_t i = 0; i < prefixes->size(); ++i) {
      const Json& p = (*prefixes)[i];
      if (!p.is_string()) continue;  // the schema said so
      const std::string text = p.get<std::string>();
      auto net = IpNetwork::parse(text);
      if (!net || text.find('/') == std::string::npos)
        error(fmt::format("{}.allowed_prefixes[{}]", path, i),
              fmt::format("\"{}\" is not a prefix in CIDR form (e.g. 10.0.0.0/8, 2001:db8::/32)", text));
      else
        out.allowed_prefixes.push_back(*net);
    }
  }
  if (const Json* targets = member(section, "allowed_targets"); targets && targets->is_array()) {
    for (const auto& t : *targets) {
      if (!t.is_string()) continue;
      std::string s = t.get<std::string>();
      std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
      if (auto a = IpAddress::parse(s)) s = a->to_string();  // compared with the parsed target
      out.allowed_targets.push_back(s);
    }
  }
  if (const Json* modules = member(section, "modules"); modules && modules->is_object()) {
    for (auto it = modules->begin(); it != modules->end(); ++it) {
      const std::string p = config_path_join(path + ".modules", it.key());
      const Json& m = it.value();
      OnDemandModule mod;
      mod.name = it.key();
      std::string type = "TCPsyn";
      read_string(m, "type", &type);
      if (auto t = probe_type_from_string(type)) mod.type = *t;
      std::string af = "ipv4";
      read_string(m, "address_family", &af);
      mod.address_family = af == "ipv6" ? AddressFamily::kV6 : AddressFamily::kV4;
      if (const Json* v = member(m, "dst_port"); v && v->is_number_integer())
        mod.dst_port = static_cast<uint16_t>(v->get<int64_t>());
      if (mod.type != ProbeType::kIcmpPing && !mod.dst_port) error(p + ".dst_port", "required for " + type);
      read_number(m, "nb_packets", &mod.nb_packets);
      read_number(m, "src_port_a", &mod.src_port_a);
      read_number(m, "src_port_z", &mod.src_port_z);
      if (mod.src_port_a > mod.src_port_z)
        error(p + ".src_port_a", fmt::format("{} is above src_port_z ({})", mod.src_port_a, mod.src_port_z));
      read_number(m, "dscp", &mod.dscp);
      if (const Json* v = member(m, "ip_payload_size"); v && v->is_number_integer())
        mod.ip_payload_size = static_cast<int>(v->get<int64_t>());
      read_number(m, "timeout", &mod.timeout_s);
      if (const Json* f = member(m, "fail_if")) {
        read_number(*f, "loss_ratio_above", &mod.fail_if_loss_ratio_above);
        if (const Json* v = member(*f, "rtt_p99_above"); v && v->is_number())
          mod.fail_if_rtt_p99_above_s = v->get<double>();
      }
      if (const Json* o = member(m, "overrides"); o && o->is_object()) {
        for (auto ov = o->begin(); ov != o->end(); ++ov) {
          const std::string op = config_path_join(p + ".overrides", ov.key());
          const auto* limit = std::find_if(std::begin(kOverrideLimits), std::end(kOverrideLimits),
                                           [&](const OverrideLimit& l) { return ov.key() == l.name; });
          if (limit == std::end(kOverrideLimits)) continue;  // the schema names the allowed keys
          OverrideRange r{limit->min, limit->max};
          read_number(ov.value(), "min", &r.min);
          read_number(ov.value(), "max", &r.max);
          if (r.min > r.max) error(op, fmt::format("min {} is above max {}", r.min, r.max));
          mod.overrides[ov.key()] = r;
        }
      }
      out.modules[mod.name] = std::move(mod);
    }
  }
  if (const Json* creds = member(section, "credentials"); creds && creds->is_object()) {
    for (auto it = creds->begin(); it != creds->end(); ++it) {
      OnDemandCredential c;
      c.name = it.key();
      read_string(it.value(), "token_sha256", &c.token_sha256);
      std::transform(c.token_sha256.begin(), c.token_sha256.end(), c.token_sha256.begin(),
                     [](unsigned char ch) { return std::tolower(ch); });
      read_string(it.value(), "password_bcrypt", &c.password_bcrypt);
      if (c.token_sha256.empty() == c.password_bcrypt.empty())
        error(config_path_join(path + ".credentials", it.key()),
              "exactly one of token_sha256 and password_bcrypt is needed");
      out.credentials[c.name] = std::move(c);
    }
  }
  if (const Json* b = member(section, "budgets")) {
    OnDemandBudgets& o = out.budgets;
    read_number(*b, "max_concurrent_tests", &o.max_concurrent_tests);
    read_number(*b, "max_concurrent_tests_per_credential", &o.max_concurrent_tests_per_credential);
    read_number(*b, "max_probes_per_test", &o.max_probes_per_test);
    read_number(*b, "max_packets_per_second_per_destination", &o.max_packets_per_second_per_destination);
    read_number(*b, "max_packets_per_second", &o.max_packets_per_second);
    read_number(*b, "max_request_bytes", &o.max_request_bytes);
    read_number(*b, "max_tests_per_request", &o.max_tests_per_request);
    read_number(*b, "result_ttl", &o.result_ttl_s);
    read_number(*b, "scrape_timeout_offset", &o.scrape_timeout_offset_s);
  }
  const OnDemandBudgets& b = out.budgets;
  const std::string bp = path + ".budgets";
  if (b.max_concurrent_tests_per_credential > b.max_concurrent_tests)
    error(bp + ".max_concurrent_tests_per_credential",
          fmt::format("{} is above max_concurrent_tests ({})", b.max_concurrent_tests_per_credential,
                      b.max_concurrent_tests));
  if (b.max_packets_per_second_per_destination > b.max_packets_per_second)
    error(bp + ".max_packets_per_second_per_destination",
          fmt::format("{} is above max_packets_per_second ({})", b.max_packets_per_second_per_destination,
                      b.max_packets_per_second));
  // On-demand probing takes its share of the global cap, never all of it: scheduled probing keeps the rest.
  if (global_max_pps > 0 && b.max_packets_per_second >= global_max_pps)
    error(bp + ".max_packets_per_second", fmt::format("{} must be below global.max_packets_per_second ({})",
                                                      b.max_packets_per_second, global_max_pps));
  for (const auto& [name, mod] : out.modules) {
    const std::string p = config_path_join(path + ".modules", name);
    const auto it = mod.overrides.find("nb_packets");
    const double most =
        it != mod.overrides.end() ? std::max<double>(mod.nb_packets, it->second.max) : mod.nb_packets;
    if (most > b.max_probes_per_test)
      error(p + ".nb_packets", fmt::format("up to {} packets, above budgets.max_probes_per_test ({})", most,
                                           b.max_probes_per_test));
  }
  return out;
}

}  // namespace netprobe
