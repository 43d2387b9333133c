#pragma once
// How netprobe's web surface listens and whom it lets in: the --web.listen-address flags (or the
// configuration's prometheus_address/prometheus_port), PROM_USER/PROM_PASSWORD, turned into one
// http::Options per listening socket (docs/http-server.md).
#include <optional>
#include <string>
#include <vector>

#include "core/result.h"
#include "http/auth.h"
#include "http/server.h"

namespace netprobe::web {

struct WebSettings {
  // --web.listen-address, each "host:port", "[ipv6]:port" or ":port". When any is given they replace the
  // configuration's prometheus_address/prometheus_port (which then only name the default).
  std::vector<std::string> listen_addresses;
  std::optional<BasicAuth> env_auth;  // PROM_USER / PROM_PASSWORD
};

// The servers to start: one per --web.listen-address, else one on `address`:`port` (the configuration's).
// An address that is not "host:port" with an IPv4 or IPv6 literal, or twice the same, is an error.
Result<std::vector<http::Options>> server_options(const WebSettings& settings, const std::string& address,
                                                  int port);

// "127.0.0.1:9100, [::1]:9100": where the servers of `options` listen, for the log.
std::string describe_listeners(const std::vector<http::Options>& options);

}  // namespace netprobe::web
