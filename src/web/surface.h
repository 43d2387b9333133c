#pragma once
// How netprobe's web surface listens and whom it lets in: the --web.listen-address flags (or the
// configuration's prometheus_address/prometheus_port), PROM_USER/PROM_PASSWORD, turned into one
// http::Options per listening socket (docs/http-server.md).
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/result.h"
#include "http/auth.h"
#include "http/server.h"
#include "http/tls.h"
#include "web/reload.h"
#include "web/users.h"

namespace netprobe::web {

struct WebSettings {
  // --web.listen-address, each "host:port", "[ipv6]:port" or ":port". When any is given they replace the
  // configuration's prometheus_address/prometheus_port (which then only name the default).
  std::vector<std::string> listen_addresses;
  std::optional<BasicAuth> env_auth;  // PROM_USER / PROM_PASSWORD
  // From --web.config.file (load_web_config()):
  std::shared_ptr<http::TlsContext> tls;                     // HTTPS on every listener
  std::shared_ptr<UserTable> users;                          // basic_auth_users; wins over env_auth
  std::vector<std::pair<std::string, std::string>> headers;  // http_server_config.headers
  // The same, re-read when the file changes (web/reload.h); set by load_web_config(). When set, the servers
  // take their users and headers from it.
  std::shared_ptr<LiveWebConfig> live;
};

// Reads the exporter-toolkit web configuration at `path` into `settings`: TLS (certificate, key and client
// CA files read and checked now), users, headers. Errors say what to fix (netprobe exits 78). When the file
// has basic_auth_users and PROM_USER/PROM_PASSWORD are set too, the file's users win and *warning says so.
Status load_web_config(const std::string& path, WebSettings& settings, std::string* warning);

// The servers to start: one per --web.listen-address, else one on `address`:`port` (the configuration's),
// each with the TLS, users (else PROM_USER/PROM_PASSWORD) and headers of `settings`.
// An address that is not "host:port" with an IPv4 or IPv6 literal, or twice the same, is an error.
Result<std::vector<http::Options>> server_options(const WebSettings& settings, const std::string& address,
                                                  int port);

// "127.0.0.1:9100, [::1]:9100": where the servers of `options` listen, for the log.
std::string describe_listeners(const std::vector<http::Options>& options);

}  // namespace netprobe::web
