#pragma once
// The Prometheus exporter-toolkit web configuration file (--web.config.file), as node_exporter,
// blackbox_exporter and `promtool check web-config` read it (exporter-toolkit v0.8, the one of Debian 12's
// Prometheus 2.42):
//
//   tls_server_config: {cert_file, key_file, client_auth_type, client_ca_file, min_version, max_version,
//                       cipher_suites, curve_preferences, prefer_server_cipher_suites}
//   http_server_config: {http2, headers}
//   basic_auth_users: {user: bcrypt hash}
//
// Read as Go's yaml.v2 UnmarshalStrict reads it: an unknown or repeated key is an error; any scalar is taken
// as a string where a string is expected. Relative file names are relative to the file's directory. TLS is
// on when any of cert_file, key_file, client_auth_type or client_ca_file is set; then both files are needed.
// Every error names the key and says why (docs/http-server.md: the few deliberate differences from Go).
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/result.h"
#include "http/tls.h"

namespace netprobe::web {

struct WebConfig {
  std::optional<http::TlsSettings> tls;                      // with the GnuTLS priority string
  std::vector<std::pair<std::string, std::string>> headers;  // http_server_config.headers
  std::map<std::string, std::string> users;                  // basic_auth_users: bcrypt hashes
  bool http2 = true;  // accepted for compatibility; libmicrohttpd speaks HTTP/1.1 only
};

// Parses and checks the text (no file is read): `directory` is where relative file names start.
Result<WebConfig> parse_web_config(std::string_view text, const std::string& directory);

// Reads `path` (at most 1 MiB), parses it; the TLS files are then checked by http::TlsContext::create().
Result<WebConfig> read_web_config(const std::string& path);

}  // namespace netprobe::web
