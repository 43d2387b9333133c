#include "ondemand/probe_request.h"

#include <fmt/format.h>

#include <charconv>
#include <cmath>

#include "ondemand/target_policy.h"

namespace netprobe::ondemand {
namespace {

std::optional<double> parse_number(std::string_view s) {
  if (s.empty() || s.size() > 32) return std::nullopt;
  double v = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || !std::isfinite(v)) return std::nullopt;
  return v;
}

}  // namespace

std::optional<double> effective_timeout(double module_timeout_s, double offset_s,
                                        std::optional<std::string_view> header, std::string* why) {
  if (!header) return module_timeout_s;
  const auto scrape = parse_number(*header);
  if (!scrape || *scrape <= 0) {
    *why = "X-Prometheus-Scrape-Timeout-Seconds is not a positive number";
    return std::nullopt;
  }
  const double left = *scrape - offset_s;
  if (left <= 0) {
    *why = fmt::format("the scrape timeout ({} s) minus the offset ({} s) leaves no time to probe", *scrape,
                       offset_s);
    return std::nullopt;
  }
  return std::min(module_timeout_s, left);
}

Result<ProbeJob> build_probe_job(const OnDemandConfig& config, const QueryParams& params,
                                 std::optional<std::string_view> scrape_timeout_header) {
  const auto target = params.find("target");
  if (target == params.end() || target->second.empty()) return Error("target parameter is missing");
  const auto module_it = params.find("module");
  if (module_it == params.end() || module_it->second.empty()) return Error("module parameter is missing");
  const auto mod = config.modules.find(module_it->second);
  if (mod == config.modules.end())
    return Error(fmt::format("unknown module \"{}\"", module_it->second.substr(0, 128)));
  const OnDemandModule& m = mod->second;
  ProbeJob job;
  job.target = target->second;
  job.module = m.name;
  job.type = m.type;
  job.af = m.address_family;  // the family a name is resolved in
  // An IP literal is probed in its own family, whatever the module's (as blackbox, ip_protocol_fallback): the
  // page's probe_ip_protocol and the debug log's fields follow the address actually probed.
  if (const auto parsed = parse_target(job.target); parsed && parsed->literal) job.af = parsed->literal->af;
  job.dst_port = m.dst_port.value_or(0);
  job.nb_packets = m.nb_packets;
  job.src_port_a = m.src_port_a;
  job.src_port_z = m.src_port_z;
  job.dscp = m.dscp;
  job.ip_payload_size = m.ip_payload_size;
  double timeout = m.timeout_s;
  for (const auto& [name, value] : params) {
    if (name == "target" || name == "module") continue;
    if (name == "debug") {
      if (value != "true" && value != "false") return Error("debug must be true or false");
      job.debug = value == "true";
      continue;
    }
    const auto allowed = m.overrides.find(name);
    if (allowed == m.overrides.end())
      return Error(fmt::format("parameter \"{}\" is not an override module \"{}\" allows", name.substr(0, 64),
                               m.name));
    const auto v = parse_number(value);
    const bool integral = name != "timeout";
    if (!v || (integral && *v != std::floor(*v)) || *v < allowed->second.min || *v > allowed->second.max)
      return Error(fmt::format("{} must be {} between {} and {}", name, integral ? "an integer" : "a number",
                               allowed->second.min, allowed->second.max));
    if (name == "nb_packets") job.nb_packets = int(*v);
    if (name == "dst_port") job.dst_port = uint16_t(*v);
    if (name == "dscp") job.dscp = int(*v);
    if (name == "ip_payload_size") job.ip_payload_size = int(*v);
    if (name == "timeout") timeout = *v;
  }
  if (job.nb_packets > config.budgets.max_probes_per_test)
    return Error(fmt::format("nb_packets {} is above the budget of {} probes per test", job.nb_packets,
                             config.budgets.max_probes_per_test));
  std::string why;
  const auto t =
      effective_timeout(timeout, config.budgets.scrape_timeout_offset_s, scrape_timeout_header, &why);
  if (!t) return Error(why);
  job.timeout_s = *t;
  return job;
}

}  // namespace netprobe::ondemand
