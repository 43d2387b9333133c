#include "trace/options.h"

#include <algorithm>
#include <charconv>
#include <iterator>
#include <set>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace netprobe {
namespace {

// Sets *error and returns false (refused) or nullopt (refuse), for the checks below.
bool refused(OptionError* error, std::string option, std::string message) {
  if (error) *error = {std::move(option), std::move(message)};
  return false;
}
template <typename T>
std::optional<T> refuse(OptionError* error, std::string option, std::string message) {
  refused(error, std::move(option), std::move(message));
  return std::nullopt;
}

ProbeType type_of(char mode) {
  return mode == '1' ? ProbeType::kIcmpPing : mode == '2' ? ProbeType::kUdpUnreachable : ProbeType::kTcpSyn;
}

// The bounds trace and pathloss share: the TTLs, the rate and the wait, in this order.
template <typename O>
bool check_ttls_rate_wait(const O& o, OptionError* error) {
  if (o.first_ttl < 1 || o.first_ttl > kMaxTtl)
    return refused(error, "first-ttl", fmt::format("--first-ttl: 1 to {}", kMaxTtl));
  if (o.max_ttl < o.first_ttl || o.max_ttl > kMaxTtl)
    return refused(error, "max-ttl", fmt::format("--max-ttl: from --first-ttl to {}", kMaxTtl));
  if (!(o.rate_pps >= 1 && o.rate_pps <= 100000))
    return refused(error, "rate", "--rate: 1 to 100000 probes per second");
  if (!(o.wait_s > 0 && o.wait_s <= 60)) return refused(error, "wait", "--wait: above 0, at most 60 s");
  return true;
}

// --sport-range's ports (at most `max_ports`) onto `out`.
bool add_port_range(const std::string& text, int max_ports, std::vector<uint16_t>& out, OptionError* error) {
  const auto r = parse_port_range(text, max_ports);
  if (!r)
    return refused(error, "sport-range",
                   fmt::format("--sport-range: \"{}\" is not A-B with 1 <= A <= B <= 65535, at most {} ports",
                               text.substr(0, 16), max_ports));
  for (int p = r->first; p <= r->second; ++p) out.push_back(uint16_t(p));
  return true;
}

// JSON value -> option, with the key named when the type is wrong.
using Json = nlohmann::json;

bool fail(OptionError* error, const std::string& key, const std::string& what) {
  if (error) *error = {key, key + ": " + what};
  return false;
}

// One overload per type of option field; the field's type says which JSON type is expected.
bool get(const Json& v, const std::string& key, int& out, OptionError* error) {
  if (!v.is_number_integer()) return fail(error, key, "an integer is expected");
  const auto i = v.get<int64_t>();
  if (i < -1'000'000'000 || i > 1'000'000'000) return fail(error, key, "out of range");
  out = int(i);
  return true;
}
bool get(const Json& v, const std::string& key, double& out, OptionError* error) {
  if (!v.is_number()) return fail(error, key, "a number is expected");
  out = v.get<double>();
  return true;
}
bool get(const Json& v, const std::string& key, bool& out, OptionError* error) {
  if (!v.is_boolean()) return fail(error, key, "true or false is expected");
  out = v.get<bool>();
  return true;
}
bool get(const Json& v, const std::string& key, std::string& out, OptionError* error) {
  if (!v.is_string()) return fail(error, key, "a string is expected");
  out = v.get<std::string>().substr(0, 256);
  return true;
}
template <typename T>
bool get(const Json& v, const std::string& key, std::optional<T>& out, OptionError* error) {
  T t{};
  if (!get(v, key, t, error)) return false;
  out = std::move(t);
  return true;
}

// A JSON key and what sets its option: set<&Options::field> for a plain field, or a function of its own.
template <typename O>
struct JsonKey {
  const char* key;
  bool (*set)(const Json& v, const std::string& key, O& o, OptionError* error);
};

template <auto Field, typename O>
bool set(const Json& v, const std::string& key, O& o, OptionError* error) {
  return get(v, key, o.*Field, error);
}

// "protocol": tcp, icmp (trace only) or udp -> the mode letter.
template <bool kIcmp, typename O>
bool set_mode(const Json& v, const std::string& key, O& o, OptionError* error) {
  std::string s;
  if (!get(v, key, s, error)) return false;
  if (s == "tcp") {
    o.mode = 'S';
  } else if (s == "udp") {
    o.mode = '2';
  } else if (s == "icmp" && kIcmp) {
    o.mode = '1';
  } else {
    return fail(error, key, kIcmp ? "tcp, icmp or udp" : "tcp or udp");
  }
  return true;
}

// pathloss's "sports": [40001, 40007] as well as the command line's "40001,40007".
bool set_sports(const Json& v, const std::string& key, PathlossCliOptions& o, OptionError* error) {
  if (!v.is_array()) return get(v, key, o.sports, error);
  if (v.size() > size_t(kPathlossMaxFlows))
    return fail(error, key, fmt::format("at most {}", kPathlossMaxFlows));
  std::string joined;
  for (const auto& p : v) {
    if (!p.is_number_integer()) return fail(error, key, "a list of ports is expected");
    joined += (joined.empty() ? "" : ",") + std::to_string(p.get<int64_t>());
  }
  o.sports = joined;
  return true;
}

// The JSON keys of `options`, in order, onto `o` through `keys`; `command` names the command in the refusal
// of an unknown key.
template <typename O, size_t N>
bool apply_json(const Json& options, O& o, const JsonKey<O> (&keys)[N], const char* command,
                OptionError* error) {
  if (!options.is_object()) return fail(error, "options", "an object is expected");
  for (const auto& item : options.items()) {
    // Not a structured binding: clang 14 cannot capture one in the lambda (the fuzz build is clang's).
    const std::string& key = item.key();
    const Json& v = item.value();
    const auto k = std::find_if(std::begin(keys), std::end(keys),
                                [&](const JsonKey<O>& entry) { return key == entry.key; });
    if (k == std::end(keys))
      return fail(error, key.substr(0, 64), fmt::format("not an option of {}", command));
    if (!k->set(v, key, o, error)) return false;
  }
  return true;
}

}  // namespace

std::optional<std::pair<int, int>> parse_port_range(const std::string& r, int max_ports) {
  const auto num = [](std::string_view s) -> std::optional<int> {
    int v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
    return v;
  };
  if (r.size() > 16) return std::nullopt;
  const auto dash = r.find('-');
  const auto a = dash == std::string::npos ? num(r) : num(std::string_view(r).substr(0, dash));
  const auto z = dash == std::string::npos ? a : num(std::string_view(r).substr(dash + 1));
  if (!a || !z || *a < 1 || *z > 65535 || *a > *z || *z - *a + 1 > max_ports) return std::nullopt;
  return std::pair{*a, *z};
}

std::optional<TraceSetup> check_trace_options(const TraceCliOptions& o, OptionError* error) {
  using R = TraceSetup;
  if (o.format != "text" && o.format != "json" && o.format != "dot")
    return refuse<R>(error, "format",
                     "--format: \"" + o.format.substr(0, 16) + "\" is not text, json or dot");
  if (!check_ttls_rate_wait(o, error)) return std::nullopt;
  if (o.confidence != 95 && o.confidence != 99)
    return refuse<R>(error, "confidence", "--confidence: 95 or 99");
  if (o.max_flows < 1 || o.max_flows > kTraceMaxSportRange)
    return refuse<R>(error, "max-flows", "--max-flows: 1 to 4096");
  if (o.ipv4 && o.ipv6) return refuse<R>(error, "ipv6", "-4 and -6 exclude each other");
  if (o.target.empty() || o.target.size() > 253)
    return refuse<R>(error, "target", "TARGET: a host name or an address");
  TraceSetup s;
  s.type = type_of(o.mode);
  const bool ports = s.type != ProbeType::kIcmpPing;
  const int dport = o.dst_port.value_or(s.type == ProbeType::kUdpUnreachable ? 33434 : 80);
  if (dport < 1 || dport > 65535)
    return refuse<R>(error, "destport", fmt::format("-p: {} is not a port", dport));
  s.dst_port = ports ? uint16_t(dport) : 0;
  if (o.sport_range) {
    if (!add_port_range(*o.sport_range, kTraceMaxSportRange, s.sports, error)) return std::nullopt;
  } else if (o.mda) {
    for (int p = kTraceDefaultSport; p < kTraceDefaultSport + o.max_flows && p <= 65535; ++p)
      s.sports.push_back(uint16_t(p));
  } else {
    s.sports.push_back(uint16_t(kTraceDefaultSport));
  }
  s.trace.first_ttl = o.first_ttl;
  s.trace.max_ttl = o.max_ttl;
  s.mda = o.mda;
  s.confidence = o.confidence / 100.0;
  s.max_flows = size_t(o.max_flows);
  s.rate_pps = o.rate_pps;
  s.wait_s = o.wait_s;
  return s;
}

std::optional<PathlossSetup> check_pathloss_options(const PathlossCliOptions& o, OptionError* error) {
  using R = PathlossSetup;
  if (o.format != "text" && o.format != "json")
    return refuse<R>(error, "format", "--format: \"" + o.format.substr(0, 16) + "\" is not text or json");
  if (o.mode == '1')
    return refuse<R>(error, "protocol",
                     "-1: ICMP echo has no ports, so no flows to tell apart (use -S or -2)");
  if (o.probes_per_hop < 1 || o.probes_per_hop > kPathlossMaxProbesPerHop)
    return refuse<R>(error, "probes-per-hop",
                     fmt::format("--probes-per-hop: 1 to {}", kPathlossMaxProbesPerHop));
  if (o.compare_healthy < 0 || o.compare_healthy > 64)
    return refuse<R>(error, "compare-healthy", "--compare-healthy: 0 to 64");
  if (!check_ttls_rate_wait(o, error)) return std::nullopt;
  if (o.ipv4 && o.ipv6) return refuse<R>(error, "ipv6", "-4 and -6 exclude each other");
  if (o.target.empty() || o.target.size() > 253)
    return refuse<R>(error, "target", "TARGET: a host name or an address");
  if (bool(o.sports) == bool(o.sport_range))
    return refuse<R>(error, "sports", "one of --sports and --sport-range");
  PathlossSetup s;
  s.type = o.mode == '2' ? ProbeType::kUdpUnreachable : ProbeType::kTcpSyn;
  const int dport = o.dst_port.value_or(s.type == ProbeType::kUdpUnreachable ? 33434 : 80);
  if (dport < 1 || dport > 65535)
    return refuse<R>(error, "destport", fmt::format("-p: {} is not a port", dport));
  s.dst_port = uint16_t(dport);
  std::vector<uint16_t>& sports = s.sports;
  if (o.sport_range) {
    if (!add_port_range(*o.sport_range, kPathlossMaxFlows, sports, error)) return std::nullopt;
  } else {
    const std::string& text = *o.sports;
    size_t at = 0;
    while (at <= text.size()) {
      const size_t comma = std::min(text.find(',', at), text.size());
      int v = 0;
      auto [p, ec] = std::from_chars(text.data() + at, text.data() + comma, v);
      if (ec != std::errc() || p != text.data() + comma || v < 1 || v > 65535)
        return refuse<R>(error, "sports",
                         "--sports: \"" + text.substr(0, 32) + "\" is not a list of ports (40001,40007)");
      if (std::find(sports.begin(), sports.end(), uint16_t(v)) == sports.end()) sports.push_back(uint16_t(v));
      if (sports.size() > size_t(kPathlossMaxFlows))
        return refuse<R>(error, "sports", fmt::format("--sports: at most {}", kPathlossMaxFlows));
      at = comma + 1;
    }
  }
  // Reference flows: the next free ports after the highest one asked for (wrapping below it if needed).
  s.reference.assign(sports.size(), false);
  const std::set<uint16_t> asked(sports.begin(), sports.end());
  for (int p = *asked.rbegin() + 1, added = 0; added < o.compare_healthy; ++p) {
    if (p > 65535) p = 1024;
    if (asked.count(uint16_t(p))) break;  // went all the way round
    sports.push_back(uint16_t(p));
    s.reference.push_back(true);
    ++added;
  }
  s.options.trace.first_ttl = o.first_ttl;
  s.options.trace.max_ttl = o.max_ttl;
  s.options.probes_per_hop = o.probes_per_hop;
  s.rate_pps = o.rate_pps;
  s.wait_s = o.wait_s;
  return s;
}

uint64_t max_probes_of(const TraceSetup& s) {
  // trace_flows: at most attempts x TTLs per flow; MDA traces at most max_flows flows of the pool.
  const uint64_t ttls = uint64_t(s.trace.max_ttl - s.trace.first_ttl + 1);
  const uint64_t flows = s.mda ? std::min<uint64_t>(s.sports.size(), s.max_flows) : s.sports.size();
  return flows * uint64_t(s.trace.attempts) * ttls;
}

uint64_t max_probes_of(const PathlossSetup& s) {
  const uint64_t ttls = uint64_t(s.options.trace.max_ttl - s.options.trace.first_ttl + 1);
  const uint64_t flows = s.sports.size();
  return flows * ttls * (uint64_t(s.options.trace.attempts) + uint64_t(s.options.probes_per_hop));
}

bool apply_trace_json(const nlohmann::json& options, TraceCliOptions& o, OptionError* error) {
  using T = TraceCliOptions;
  static constexpr JsonKey<T> kKeys[] = {
      {"protocol", set_mode<true>},
      {"destport", set<&T::dst_port>},
      {"sport-range", set<&T::sport_range>},
      {"first-ttl", set<&T::first_ttl>},
      {"max-ttl", set<&T::max_ttl>},
      {"rate", set<&T::rate_pps>},
      {"wait", set<&T::wait_s>},
      {"mda", set<&T::mda>},
      {"confidence", set<&T::confidence>},
      {"max-flows", set<&T::max_flows>},
      {"format", set<&T::format>},
      {"ipv4", set<&T::ipv4>},
      {"ipv6", set<&T::ipv6>},
  };
  return apply_json(options, o, kKeys, "trace", error);
}

bool apply_pathloss_json(const nlohmann::json& options, PathlossCliOptions& o, OptionError* error) {
  using P = PathlossCliOptions;
  static constexpr JsonKey<P> kKeys[] = {
      {"protocol", set_mode<false>},
      {"destport", set<&P::dst_port>},
      {"sports", set_sports},
      {"sport-range", set<&P::sport_range>},
      {"probes-per-hop", set<&P::probes_per_hop>},
      {"compare-healthy", set<&P::compare_healthy>},
      {"first-ttl", set<&P::first_ttl>},
      {"max-ttl", set<&P::max_ttl>},
      {"rate", set<&P::rate_pps>},
      {"wait", set<&P::wait_s>},
      {"format", set<&P::format>},
      {"ipv4", set<&P::ipv4>},
      {"ipv6", set<&P::ipv6>},
  };
  return apply_json(options, o, kKeys, "pathloss", error);
}

}  // namespace netprobe
