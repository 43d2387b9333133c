// `netprobe run CONFIG`: the checks that must happen before anything forks (capability, configuration,
// basic-auth environment), then the multiprocess engine (src/worker/supervisor.h).
#include "app/run.h"

#include <signal.h>
#include <sysexits.h>
#include <unistd.h>

#include <climits>
#include <cstdio>
#include <cstdlib>

#include "config/loader.h"
#include "launcher/launcher.h"
#include "logging/logging.h"
#include "metrics/exporter.h"
#include "sandbox/privileges.h"
#include "supervisor/supervisor.h"
#include "worker/worker_process.h"

namespace netprobe {
namespace {

std::string self_path() {
  char buf[PATH_MAX];
  const ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  return n > 0 ? std::string(buf, size_t(n)) : std::string();
}

}  // namespace

int run_prober(const std::string& path, const std::string& version) {
  // Signals are read through signalfd by each process's own loop: block them before anything forks or
  // starts a thread, so that every process and thread inherits the mask.
  sigset_t signals;
  sigemptyset(&signals);
  for (int s : {SIGINT, SIGTERM, SIGHUP, SIGCHLD}) sigaddset(&signals, s);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);  // a worker or scraper that goes away is an error return, not a death

  // First, so that an operator learns at once what to fix, before any process exists.
  if (!ensure_net_raw()) {
    std::fprintf(stderr, "%s\n", missing_net_raw_message(self_path()).c_str());
    return EX_NOPERM;
  }

  // The launcher next, while this process is still small: it and every worker it forks share this
  // process's memory of the moment copy-on-write, and a 10,000-target configuration loaded first would be
  // resident in each of them (counted in each one's RSS). On any error below its client stops it.
  auto launcher = LauncherClient::start(&worker_main);
  if (!launcher.ok()) {
    spdlog::critical("{}", launcher.error().message);
    return EX_OSERR;
  }

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

  run_supervisor(std::move(launcher).value(), std::move(config), path, version, auth);  // exits the process
}

}  // namespace netprobe
