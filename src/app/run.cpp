// The prober's main loop (one process for now): configuration, resolution, plan, iterations, metrics,
// reload on SIGHUP / reload_conf_interval, clean stop on SIGTERM / SIGINT.
#include "app/run.h"

#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <sysexits.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <random>
#include <thread>

#include "app/logging.h"
#include "config/loader.h"
#include "io/pcap_source.h"
#include "io/raw_socket_sink.h"
#include "metrics/exporter.h"
#include "metrics/process_collector.h"
#include "metrics/prober_metrics.h"
#include "sched/plan.h"
#include "worker/engine.h"

namespace netprobe {
namespace {

std::atomic<bool> g_reload{false};

// Resolves a target's destination into hosts. Temporary blocking resolver (getaddrinfo, first address,
// as netprobify); the c-ares resolver replaces it.
std::optional<std::vector<IpAddress>> resolve(const TargetConfig& t) {
  if (t.is_subnet) {
    auto net = IpNetwork::parse(t.destination);
    if (!net) return std::nullopt;
    return host_addresses(*net);
  }
  if (auto ip = IpAddress::parse(t.destination)) return std::vector<IpAddress>{*ip};
  addrinfo hints{};
  hints.ai_family = t.family() == AddressFamily::kV4 ? AF_INET : AF_INET6;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (getaddrinfo(t.destination.c_str(), nullptr, &hints, &res) != 0 || !res) return std::nullopt;
  std::optional<std::vector<IpAddress>> out;
  if (res->ai_family == AF_INET)
    out = std::vector<IpAddress>{IpAddress::from_bytes(
        AddressFamily::kV4, reinterpret_cast<const uint8_t*>(&reinterpret_cast<sockaddr_in*>(res->ai_addr)->sin_addr))};
  else if (res->ai_family == AF_INET6)
    out = std::vector<IpAddress>{IpAddress::from_bytes(
        AddressFamily::kV6, reinterpret_cast<const uint8_t*>(&reinterpret_cast<sockaddr_in6*>(res->ai_addr)->sin6_addr))};
  freeaddrinfo(res);
  return out;
}

uint64_t random_secret() {
  std::random_device rd;
  return (uint64_t(rd()) << 32) ^ rd();
}

std::vector<ProbeType> probe_types_of(const Config& c) {
  std::vector<ProbeType> types;
  for (const auto& [name, t] : c.targets)
    if (std::find(types.begin(), types.end(), t.type) == types.end()) types.push_back(t.type);
  if (types.empty()) types = {ProbeType::kTcpSyn, ProbeType::kIcmpPing, ProbeType::kUdpUnreachable};
  return types;
}

// Everything derived from one configuration.
struct Active {
  Config config;
  std::vector<ResolvedTarget> resolved;
  Plan plan;
};

std::optional<Active> activate(Config config, ProberMetrics& metrics) {
  Active a;
  a.config = std::move(config);
  for (const auto& [name, t] : a.config.targets) {
    if (t.groups.empty()) {
      spdlog::warn("target={} disabled: not associated to any group", name);
      continue;
    }
    auto hosts = resolve(t);
    if (!hosts || hosts->empty()) {
      spdlog::error("target={} destination={} could not be resolved: target inactive", name, t.destination);
      metrics.set_host_resolution_status(name, t.family(), 0);
      metrics.clear_target_measurements(name);
      continue;
    }
    metrics.set_host_resolution_status(name, t.family(), 1);
    metrics.inc_host_resolution_change(name, t.family());
    metrics.declare_target(t, t.family());
    a.resolved.push_back({&a.config.targets.at(name), std::move(*hosts)});
  }
  auto plan = build_plan(a.config, a.resolved, kernel_source_for);
  if (!plan.ok()) {
    spdlog::error("cannot plan probes: {}", plan.error().message);
    return std::nullopt;
  }
  a.plan = std::move(plan).value();
  spdlog::info("config={} active_targets={} probes_per_iteration={}", a.config.source_path, a.plan.active_targets,
               a.plan.probes.size());
  return a;
}

void log_report(const IterationReport& r) {
  for (const auto& g : r.groups)
    spdlog::debug("target={} group={} sent={} lost={} answered_rtts={}", g.target, g.group, g.sent, g.lost,
                  g.rtts_s.size());
  if (r.capture_dropped || r.capture_if_dropped)
    spdlog::warn("capture dropped {} packet(s) ({} at the interface) during the iteration: raise the capture buffer",
                 r.capture_dropped, r.capture_if_dropped);
  if (r.send_errors) spdlog::warn("{} probe(s) could not be sent", r.send_errors);
}

}  // namespace

int run_prober(const std::string& path, const std::string& version) {
  // Signals are handled by one thread with sigwait(); block them before any thread starts.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  auto loaded = load_config_file(path);
  for (const auto& w : loaded.diagnostics.warnings) spdlog::warn("config={} {}", path, w);
  if (!loaded.ok()) {
    for (const auto& e : loaded.diagnostics.errors) spdlog::error("config={} {}", path, e);
    spdlog::critical("config={} rejected with {} error(s)", path, loaded.diagnostics.errors.size());
    return EX_DATAERR;
  }
  Config config = std::move(*loaded.config);
  spdlog::set_level(log_level_from_config(config.global.logging_level));

  std::string auth_error;
  const auto auth = basic_auth_from_env(std::getenv("PROM_USER"), std::getenv("PROM_PASSWORD"), &auth_error);
  if (!auth_error.empty()) {
    spdlog::critical("{}", auth_error);
    return EX_CONFIG;
  }

  // Privileged resources first: raw sockets and the capture.
  auto sink = RawSocketSink::open();
  if (!sink.ok()) {
    spdlog::critical("{}", sink.error().message);
    return EX_NOPERM;
  }
  PcapSource::Options capture_options;
  capture_options.filter = capture_filter(probe_types_of(config));
  auto source = PcapSource::open(capture_options);
  if (!source.ok()) {
    spdlog::critical("{}", source.error().message);
    return EX_NOPERM;
  }

  for (const auto& w : (*sink)->warnings()) spdlog::warn("send: {}", w);
  for (const auto& w : (*source)->warnings()) spdlog::warn("capture: {}", w);

  auto registry = std::make_shared<prometheus::Registry>();
  ProberMetrics metrics(registry, config.global.probe_name, config.global.percentile, version);
  auto process = std::make_shared<ProcessCollector>();
  auto exporter = Exporter::start(config.global.prometheus_address, config.global.prometheus_port, auth,
                                  {registry, process});
  if (!exporter.ok()) {
    spdlog::critical("{}", exporter.error().message);
    return EX_UNAVAILABLE;
  }
  spdlog::info("serving /metrics on {}:{}{}", config.global.prometheus_address, config.global.prometheus_port,
               auth ? " (basic auth)" : "");

  auto active = activate(std::move(config), metrics);
  if (!active) return EX_DATAERR;

  SystemClock clock;
  Engine engine(clock, **sink, **source, random_secret());
  std::thread signal_thread([&] {
    for (;;) {
      int sig = 0;
      if (sigwait(&signals, &sig) != 0) continue;
      if (sig == SIGHUP) {
        spdlog::info("SIGHUP: configuration reload at the end of this iteration");
        g_reload = true;
        continue;
      }
      spdlog::info("signal {}: stopping", sig);
      engine.stop();
      return;
    }
  });

  Nanos last_reload = clock.monotonic();
  while (!engine.stopped()) {
    const Nanos start = clock.monotonic();
    IterationSettings settings;
    settings.interval_s = active->config.global.interval_s;
    settings.max_packets_per_second = active->config.global.max_packets_per_second;
    settings.hard_timeout = Nanos(int64_t(active->config.global.timeout_s * 1e9));
    IterationReport report = engine.run_iteration(active->plan, settings);
    if (engine.stopped()) break;  // a cut-short iteration is not reported
    if (report.timed_out) {
      spdlog::error("iteration exceeded global.timeout ({} s) and was cut short", active->config.global.timeout_s);
      metrics.inc_process_timed_out();
    }
    log_report(report);
    // Recorded before a reload, so that the series of targets the reload removes stay removed.
    report.duration_s = std::chrono::duration<double>(clock.monotonic() - start).count();
    metrics.record(report);

    // Reload between iterations, as netprobify: SIGHUP or reload_conf_interval.
    const int reload_every = active->config.global.reload_conf_interval_s;
    if (g_reload.exchange(false) ||
        (reload_every > 0 && clock.monotonic() - last_reload >= std::chrono::seconds(reload_every))) {
      last_reload = clock.monotonic();
      auto next = load_config_file(path);
      for (const auto& w : next.diagnostics.warnings) spdlog::warn("reload config={} {}", path, w);
      if (!next.ok()) {
        for (const auto& e : next.diagnostics.errors) spdlog::error("reload config={} {}", path, e);
        spdlog::error("reload rejected: keeping the running configuration");
        metrics.set_reload_failed(true);
      } else {
        for (const auto& [name, t] : active->config.targets)
          if (!next.config->targets.count(name)) metrics.clear_target(name);
        for (const auto& [name, g] : active->config.groups)
          if (!next.config->groups.count(name)) metrics.clear_group(name);
        metrics.set_probe_name(next.config->global.probe_name);
        metrics.set_percentiles(next.config->global.percentile);
        spdlog::set_level(log_level_from_config(next.config->global.logging_level));
        if (auto a = activate(std::move(*next.config), metrics)) {
          active = std::move(a);
          metrics.set_reload_failed(false);
          spdlog::info("configuration reloaded");
        } else {
          metrics.set_reload_failed(true);
        }
      }
    }
    // No overlap and no catch-up: sleep what is left of the interval.
    clock.sleep_until(start + std::chrono::seconds(active->config.global.interval_s));
  }

  pthread_kill(signal_thread.native_handle(), SIGTERM);  // no-op if it already returned
  signal_thread.join();
  spdlog::info("stopped");
  return EX_OK;
}

}  // namespace netprobe
