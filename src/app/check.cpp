// `netprobe check CONFIG`: conn-check's job on netprobe's engine. Order (the worker's, in one process):
// load and select (no privilege needed, nothing from the network), open the sockets and the capture and
// drop every capability (Session::open), resolve names, plan, probe, print.
#include "app/check.h"

#include <sysexits.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <set>

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include "app/cli_output.h"
#include "app/stop_signals.h"
#include "config/loader.h"
#include "config/tag_selection.h"
#include "inventory/manager.h"
#include "inventory/merge.h"
#include "inventory/snapshot.h"
#include "sandbox/privileges.h"
#include "sched/target_plan.h"
#include "session/check_result.h"
#include "session/session.h"
#include "supervisor/service_checks.h"
#include "supervisor/target_resolution.h"

namespace netprobe {
namespace {

constexpr int kMaxCount = 1000;
constexpr Nanos kDnsBudget = std::chrono::seconds(10);

using Check = CheckResult;

nlohmann::json to_json(const Check& c) {
  nlohmann::json j{{"target", c.target->name},
                   {"group", c.group},
                   {"type", std::string(to_string(c.target->type))},
                   {"destination", c.target->destination},
                   {"tags", c.target->tags},
                   {"status", c.ok() ? "OK" : "FAILED"},
                   {"sent", c.sent},
                   {"lost", c.lost},
                   {"unexpected", c.unexpected},
                   {"closed", c.closed},
                   {"loss_ratio", c.not_probed.empty() ? nlohmann::json(c.loss_ratio()) : nlohmann::json()}};
  if (c.target->dst_port && c.target->type != ProbeType::kIcmpPing) j["port"] = *c.target->dst_port;
  if (auto m = c.max_loss()) j["max_loss_ratio"] = *m;
  if (!c.rtts_s.empty()) {
    const auto [lo, hi] = std::minmax_element(c.rtts_s.begin(), c.rtts_s.end());
    auto ms = [](double s) { return std::round(s * 1e6) / 1e3; };  // to the microsecond
    j["rtt_ms"] = {{"min", ms(*lo)}, {"median", ms(c.median_rtt_s())}, {"max", ms(*hi)}};
  } else {
    j["rtt_ms"] = nullptr;
  }
  if (!c.icmp_errors.empty()) j["icmp_errors"] = c.icmp_errors;
  if (!c.not_probed.empty()) j["not_probed"] = c.not_probed;
  return j;
}

// A TCPquery / TLS result in the JSON document: the fields of the raw types that apply, plus the reason.
nlohmann::json to_json(const ServiceCheckOutcome& o) {
  const ServiceCheckConfig& c = *o.check;
  const svc::TcpQueryResult& r = o.result;
  nlohmann::json j{{"target", c.name},
                   {"group", o.group},
                   {"type", std::string(to_string(c.type))},
                   {"destination", c.destination},
                   {"port", c.dst_port},
                   {"tags", c.tags},
                   {"status", r.success ? "OK" : "FAILED"},
                   {"connect_ms", std::round(r.connect_seconds * 1e6) / 1e3},
                   {"duration_ms", std::round(r.duration_seconds * 1e6) / 1e3}};
  if (!r.success) j["failure"] = {{"reason", r.failure}, {"detail", r.detail}};
  if (!r.tls_version.empty()) {
    j["tls"] = {{"version", r.tls_version}, {"verified", r.tls_verified}};
    if (r.earliest_cert_expiry) j["tls"]["earliest_cert_expiry"] = *r.earliest_cert_expiry;
    if (r.last_chain_expiry) j["tls"]["last_chain_expiry"] = *r.last_chain_expiry;
  }
  return j;
}

int usage_error(const std::string& message) { return command_usage_error("check", message, kCheckUnknown); }

// Only TCPquery / TLS targets: no raw socket, so no Session (and no CAP_NET_RAW needed); capabilities a
// root caller holds are dropped first, as the daemon's supervisor does.
int run_service_checks_only(const CheckOptions& options, const Config& config,
                            const std::vector<const ServiceCheckConfig*>& checks,
                            const std::string& selection) {
  if (auto s = drop_all_capabilities(); !s.ok()) {
    std::fprintf(stderr, "check: cannot drop capabilities: %s\n", s.error().message.c_str());
    return kCheckUnknown;
  }
  const auto outcomes = run_service_checks_once(config, checks);
  const auto failed = size_t(
      std::count_if(outcomes.begin(), outcomes.end(), [](const auto& o) { return !o.result.success; }));
  const int code = failed ? kCheckFailed : kCheckOk;
  if (options.format == "json") {
    nlohmann::json doc{
        {"config", options.config_path},
        {"selection", selection},
        {"iterations", 0},
        {"results", nlohmann::json::array()},
        {"summary", {{"checks", outcomes.size()}, {"ok", outcomes.size() - failed}, {"failed", failed}}},
        {"exit_code", code}};
    for (const auto& o : outcomes) doc["results"].push_back(to_json(o));
    print_stdout(doc.dump(2) + "\n");
    return code;
  }
  for (const auto& o : outcomes) print_stdout(service_check_line(o) + "\n");
  print_stdout(fmt::format("{}: {} check(s), {} OK, {} FAILED (tags: {})\n",
                           code == kCheckOk ? "OK" : "FAILED", outcomes.size(), outcomes.size() - failed,
                           failed, selection));
  return code;
}

}  // namespace

int run_check(const CheckOptions& options) {
  if (options.format != "text" && options.format != "json")
    return usage_error("--format: \"" + options.format.substr(0, 16) + "\" is not text or json");
  if (options.count < 1 || options.count > kMaxCount)
    return usage_error(fmt::format("--count: {} is not between 1 and {}", options.count, kMaxCount));
  auto selection = parse_tag_selection(options.include_tags, options.exclude_tags);
  if (!selection.ok()) return usage_error(selection.error().message);

  auto loaded = load_config_file(options.config_path);
  for (const auto& w : loaded.diagnostics.warnings)
    std::fprintf(stderr, "%s: warning: %s\n", options.config_path.c_str(), w.c_str());
  if (!loaded.ok()) {
    for (const auto& e : loaded.diagnostics.errors)
      std::fprintf(stderr, "%s: error: %s\n", options.config_path.c_str(), e.c_str());
    return usage_error(fmt::format("{}: {} error(s); configuration rejected", options.config_path,
                                   loaded.diagnostics.errors.size()));
  }
  Config config = std::move(*loaded.config);
  // TCPquery / TLS targets (docs/service-checks.md): kernel sockets, no capability, after the raw probes.
  auto service_checks = selected_service_checks(config, *selection);
  std::erase_if(service_checks, [](const ServiceCheckConfig* c) { return c->groups.empty(); });
  // The dynamic inventory's targets are checked too, unless --no-inventory: its plug-ins run once, after
  // the capability drop below, so the probe types are not known before it: the capture takes them all.
  const bool with_inventory =
      !options.no_inventory && std::filesystem::is_directory(inventory_directory(config));
  auto select = [&]() -> bool {
    select_targets(*selection, config.targets);
    std::erase_if(config.targets, [](const auto& kv) { return kv.second.groups.empty(); });  // never probed
    return !config.targets.empty();
  };
  const auto nothing_to_check = [&] {
    return usage_error(
        fmt::format("no target to check in {} (tags: {})", options.config_path, describe(*selection)));
  };
  if (!with_inventory && !select()) {
    if (service_checks.empty()) return nothing_to_check();
    return run_service_checks_only(options, config, service_checks, describe(*selection));
  }

  // SIGINT/SIGTERM end the run early and print what was measured (blocked before any thread exists).
  StopSignals stop_signals;

  SessionOptions session_options;
  std::set<ProbeType> types;
  for (const auto& [name, t] : config.targets) types.insert(t.type);
  if (with_inventory)
    for (size_t t = 0; t < kProbeTypeCount; ++t) types.insert(ProbeType(t));
  session_options.types.assign(types.begin(), types.end());
  ProbeIoError error;
  auto session = Session::open(session_options, error);
  if (!session) {
    std::fprintf(stderr, "%s\n", error.message.c_str());
    return error.exit_code;
  }
  for (const auto& w : session->warnings()) spdlog::warn("{}", w);

  if (with_inventory) {
    SystemClock clock;
    const auto timeout =
        std::chrono::duration_cast<Nanos>(std::chrono::duration<double>(options.inventory_timeout_s));
    InventorySnapshot inventory = collect_inventory_once(config, timeout, clock);
    if (!inventory.errors.empty()) {
      for (const auto& e : inventory.errors) std::fprintf(stderr, "%s\n", e.c_str());
      return usage_error(
          fmt::format("{} inventory plug-in(s) gave no targets: the check would be incomplete "
                      "(--no-inventory checks the static targets only)",
                      inventory.errors.size()));
    }
    config = with_dynamic_targets(config, inventory.targets);
    if (!select() && service_checks.empty()) return nothing_to_check();
  }

  // Capabilities are gone: now the network (DNS first).
  auto resolver = make_system_resolver();
  SystemClock clock;
  std::map<std::string, std::vector<IpAddress>> hosts;
  std::map<std::pair<std::string, std::string>, Check> checks;  // (target, group)
  std::map<std::string, std::string> not_probed;
  for (const auto& [name, d] : resolve_destinations(*resolver, config, clock, kDnsBudget)) {
    if (d.ok && !d.subnet) hosts[name] = d.hosts;
    if (!d.ok) not_probed[name] = d.error.empty() ? "unresolved" : "unresolved: " + d.error;
  }
  TargetPlan tp = plan_targets(config, hosts, kernel_source_for);
  for (const auto& [name, why] : tp.why) not_probed.emplace(name, why);  // a DNS error says more
  for (const auto& [name, t] : config.targets)
    for (const auto& g : t.groups) {
      Check& c = checks[{name, g}];
      c.target = &t;
      c.group = g;
      if (auto it = not_probed.find(name); it != not_probed.end()) c.not_probed = it->second;
    }

  auto print_text = [](const std::string& s) { print_stdout(s); };
  const bool streaming = options.unbuffered && options.format == "text";
  if (streaming)
    for (const auto& [key, c] : checks)
      if (!c.not_probed.empty()) print_text(c.line() + "\n");

  int iterations = 0;
  std::string capture_error;
  if (tp.plan && !tp.plan->probes.empty()) {
    IterationSettings settings;
    // One shot: the probes go out within 0.8 s (send_window), answers are waited for as configured.
    settings.interval_s = std::chrono::duration<double>(tp.plan->max_timeout).count() + 1;
    settings.max_packets_per_second = config.global.max_packets_per_second;
    settings.hard_timeout = Nanos(int64_t(config.global.timeout_s * 1e9));
    stop_signals.start([s = session.get()] { s->stop(); });
    auto reports = session->run(*tp.plan, settings, options.count, [&](int i, const IterationReport& r) {
      for (const auto& g : r.groups) {
        auto it = checks.find({g.target, g.group});
        if (it == checks.end()) continue;
        Check& c = it->second;
        c.add(g);
        if (streaming) {
          Check one{c.target, c.group};
          one.add(g);
          print_text((options.count > 1 ? fmt::format("#{} ", i + 1) : std::string()) + one.line() + "\n");
        }
      }
    });
    iterations = int(reports.size());
    capture_error = session->capture_error();
    stop_signals.finish();
  }

  const auto outcomes = run_service_checks_once(config, service_checks);
  std::vector<const Check*> results;
  for (const auto& [key, c] : checks) results.push_back(&c);
  // Failures first, grouped by destination (the order a reader acts in).
  std::stable_sort(results.begin(), results.end(), [](const Check* a, const Check* b) {
    if (a->ok() != b->ok()) return !a->ok();
    return a->target->destination < b->target->destination;
  });
  const auto svc_failed = size_t(
      std::count_if(outcomes.begin(), outcomes.end(), [](const auto& o) { return !o.result.success; }));
  const auto failed =
      size_t(std::count_if(results.begin(), results.end(), [](const Check* c) { return !c->ok(); })) +
      svc_failed;
  const size_t total = results.size() + outcomes.size();
  const int code = failed || !capture_error.empty() ? kCheckFailed : kCheckOk;
  const std::string summary =
      fmt::format("{}: {} check(s), {} OK, {} FAILED ({} iteration(s), tags: {}){}",
                  code == kCheckOk ? "OK" : "FAILED", total, total - failed, failed, iterations,
                  describe(*selection), capture_error.empty() ? "" : "; capture failed: " + capture_error);
  if (options.format == "json") {
    nlohmann::json doc{{"config", options.config_path},
                       {"selection", describe(*selection)},
                       {"iterations", iterations},
                       {"results", nlohmann::json::array()},
                       {"summary", {{"checks", total}, {"ok", total - failed}, {"failed", failed}}},
                       {"exit_code", code}};
    for (const Check* c : results) doc["results"].push_back(to_json(*c));
    for (const auto& o : outcomes) doc["results"].push_back(to_json(o));
    if (!capture_error.empty()) doc["capture_error"] = capture_error;
    print_text(doc.dump(2) + "\n");
  } else {
    if (!streaming)
      for (const Check* c : results) print_text(c->line() + "\n");
    for (const auto& o : outcomes) print_text(service_check_line(o) + "\n");
    print_text(summary + "\n");
  }
  return code;
}

}  // namespace netprobe
