#pragma once
// --web.config.file re-read while netprobe serves (docs/http-server.md#reloading-the-web-configuration).
//
// LiveWebConfig holds the users and headers in force and the TLS context the servers share; check() looks
// at the file (and the client CA bundle it names) and, when either changed, reads and checks it whole:
// users, headers and every TLS setting (through http::TlsContext::reload()) then apply to the next request
// or connection. A file that does not parse, names files that cannot be loaded, or would turn TLS on or off
// (the listening sockets would have to be replaced: that needs a restart) changes nothing: the previous
// configuration stays in force and the error is logged once per change of the file and shown by
// netprobe_web_config_last_reload_successful 0. The certificate and key files themselves are watched by
// the TLS context (http/tls.h).
//
// Thread-safety: check() from one thread (the watcher); everything else from the HTTP threads.
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include <prometheus/registry.h>

#include "http/auth.h"
#include "http/server.h"
#include "http/tls.h"
#include "web/users.h"

namespace netprobe::web {

class LiveWebConfig {
 public:
  // What load_web_config() read at start.
  LiveWebConfig(std::string path, std::shared_ptr<UserTable> users,
                std::vector<std::pair<std::string, std::string>> headers,
                std::shared_ptr<http::TlsContext> tls, std::optional<BasicAuth> env_auth);

  enum class Outcome { kUnchanged, kReloaded, kFailed };
  // Re-reads the file when it or its client CA bundle changed (size, time, inode or content). kFailed sets
  // *message (and says it once per change: an unchanged bad file is kUnchanged afterwards); kReloaded may
  // set *message to a warning (file users overriding PROM_USER/PROM_PASSWORD).
  Outcome check(std::string* message);
  bool last_ok() const;

  // For http::Options (web/surface.h: server_options()).
  bool auth_active() const;
  http::AuthVerdict authenticate(std::string_view user, std::string_view password) const;
  // The same without blocking (http::Options::authenticate_async): bcrypt on the pool (web/users.h).
  std::optional<http::AuthVerdict> authenticate_async(std::string_view user, std::string_view password,
                                                      std::function<void(http::AuthVerdict)> later) const;
  std::vector<std::pair<std::string, std::string>> headers() const;

 private:
  struct State {
    std::shared_ptr<UserTable> users;  // null: PROM_USER/PROM_PASSWORD if set, else no auth
    std::vector<std::pair<std::string, std::string>> headers;
  };
  std::shared_ptr<const State> state() const;
  std::string fingerprint() const;  // the file's and its client CA bundle's stat, folded

  const std::string path_;
  const std::optional<BasicAuth> env_auth_;
  const std::shared_ptr<http::TlsContext> tls_;  // null: plain HTTP (stays so)
  mutable std::mutex mutex_;
  std::shared_ptr<const State> state_;
  bool ok_ = true;
  std::string seen_;       // fingerprint() when last checked
  std::string text_;       // the file's text in force, and its client CA bundle's
  std::string client_ca_;  // the client CA bundle file in force ("" = none)
};

// A thread that calls live->check() every `period_ms` and exports the outcome in `registry`:
// netprobe_web_config_last_reload_successful and netprobe_web_config_last_reload_success_timestamp_seconds
// (as Prometheus' own prometheus_config_* gauges), labelled with probe_name. Stops and joins when destroyed.
class WebConfigWatcher {
 public:
  WebConfigWatcher(std::shared_ptr<LiveWebConfig> live, prometheus::Registry& registry,
                   const std::string& probe_name, unsigned period_ms = 1000);
  ~WebConfigWatcher();
  WebConfigWatcher(const WebConfigWatcher&) = delete;
  WebConfigWatcher& operator=(const WebConfigWatcher&) = delete;

 private:
  struct Shared;
  std::shared_ptr<Shared> shared_;
  std::thread thread_;
};

}  // namespace netprobe::web
