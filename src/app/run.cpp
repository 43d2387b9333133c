// `netprobe run CONFIG`: the checks that must happen before anything forks (capability, configuration,
// basic-auth environment), then the multiprocess engine (src/worker/supervisor.h).
#include "app/run.h"

#include <signal.h>
#include <sysexits.h>
#include <unistd.h>

#include <climits>
#include <cstdio>
#include <cstdlib>
#include <ctime>

#include "config/loader.h"
#include "launcher/launcher.h"
#include "logging/logging.h"
#include "metrics/exporter.h"
#include "sandbox/confine.h"
#include "sandbox/privileges.h"
#include "sandbox/user.h"
#include "supervisor/supervisor.h"
#include "web/surface.h"
#include "worker/worker_process.h"

namespace netprobe {
namespace {

std::string self_path() {
  char buf[PATH_MAX];
  const ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  return n > 0 ? std::string(buf, size_t(n)) : std::string();
}

}  // namespace

int run_prober(const std::string& path, const std::string& version, const RunOptions& options) {
  // Signals are read through signalfd by each process's own loop: block them before anything forks or
  // starts a thread, so that every process and thread inherits the mask.
  sigset_t signals;
  sigemptyset(&signals);
  for (int s : {SIGINT, SIGTERM, SIGHUP, SIGCHLD}) sigaddset(&signals, s);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);  // a worker or scraper that goes away is an error return, not a death

  // First, so that an operator learns at once what to fix, before any process exists: the listen addresses
  // and the user (usage errors), then the capability.
  web::WebSettings web;
  web.listen_addresses = options.listen_addresses;
  if (auto servers = web::server_options(web, "", 0); !servers.ok()) {
    std::fprintf(stderr, "netprobe: %s\n", servers.error().message.c_str());
    return EX_USAGE;
  }
  const UserChoice user = choose_user(options.user, geteuid(), lookup_system_user);
  if (user.exit_code != 0) {
    std::fprintf(stderr, "netprobe: %s\n", user.message.c_str());
    return user.exit_code;
  }
  if (!ensure_net_raw()) {
    std::fprintf(stderr, "%s\n", missing_net_raw_message(self_path()).c_str());
    return EX_NOPERM;
  }

  // The launcher next, while this process is still small: it and every worker it forks share this
  // process's memory of the moment copy-on-write, and a 10,000-target configuration loaded first would be
  // resident in each of them (counted in each one's RSS). On any error below its client stops it.
  tzset();  // the launcher leaves /etc/localtime behind: read it first, so that all logs share the zone
  auto launcher = LauncherClient::start(&worker_main, LauncherConfinement{user.user, true});
  if (!launcher.ok()) {
    spdlog::critical("{}", launcher.error().message);
    return EX_OSERR;
  }
  if (auto ready = launcher->wait_ready(); !ready.ok()) {
    spdlog::critical("{}", ready.error().message);
    return EX_NOPERM;
  }

  // The supervisor: the same user, and no capability at all, before it reads anything (the configuration
  // included, so that a reload reads it exactly as the start did).
  if (user.user) {
    if (auto s = switch_user(*user.user, /*keep_net_raw=*/false); !s.ok()) {
      spdlog::critical("cannot switch to user {}: {}", user.user->name, s.error().message);
      return EX_NOPERM;
    }
  }
  if (auto s = drop_all_capabilities(); !s.ok()) {
    spdlog::critical("cannot drop capabilities in the supervisor: {}", s.error().message);
    return EX_NOPERM;
  }
  Status confined = set_non_dumpable();
  if (confined.ok()) confined = install_seccomp(ProcessKind::kSupervisor);
  if (!confined.ok()) {
    spdlog::critical("cannot confine the supervisor: {}", confined.error().message);
    return EX_NOPERM;
  }
  spdlog::info("{}; no-new-privs, seccomp deny lists (supervisor: {} calls, launcher: {}, workers: {})",
               user.message, seccomp_deny_list(ProcessKind::kSupervisor).size(),
               effective_deny_list(ProcessKind::kLauncher).size(),
               effective_deny_list(ProcessKind::kWorker).size());

  auto loaded = load_config_file(path);
  for (const auto& w : loaded.diagnostics.warnings) spdlog::warn("config={} {}", path, w);
  if (!loaded.ok()) {
    for (const auto& e : loaded.diagnostics.errors) spdlog::error("config={} {}", path, e);
    if (user.user && access(path.c_str(), R_OK) != 0)
      spdlog::critical(
          "config={} is not readable by user {}, which netprobe runs as (it re-reads the file on SIGHUP): "
          "make the file and its directories readable by that user, or name another with --user",
          path, user.user->name);
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

  web.env_auth = auth;
  if (!options.web_config_file.empty()) {
    // Read as the user netprobe runs as: the certificates are re-read as that user when they change.
    std::string warning;
    if (auto s = web::load_web_config(options.web_config_file, web, &warning); !s.ok()) {
      spdlog::critical("{}", s.error().message);
      return EX_CONFIG;
    }
    if (!warning.empty()) spdlog::warn("{}", warning);
  }
  run_supervisor(std::move(launcher).value(), std::move(config), path, version, std::move(web),
                 options.selection);  // exits the process
}

}  // namespace netprobe
