#pragma once
// `netprobe query HOST PORT`: one TCP query / TLS certificate check (src/svc/tcp_query.h), run in this
// unprivileged process (docs/service-checks.md#where), printed as text or blackbox-style metrics, with
// Nagios exit codes like `netprobe check`.
#include <string>
#include <vector>

namespace netprobe {

struct QueryOptions {
  std::string host;
  int port = 0;
  std::vector<std::string> steps;  // KIND=VALUE: send=, expect=, expect_bytes= (in order)
  bool tls = false;
  std::string server_name;
  std::string ca_file;
  bool insecure = false;
  double expiry_window_s = 0;
  double timeout_s = 5;
  std::string format = "text";  // text | metrics
  // --udp: one datagram (svc::run_udp_query), judged by --expect; --token OFFSET:LENGTH[:REPLY_OFFSET].
  bool udp = false;
  std::string payload;
  std::string expect = "any";
  std::string token;
};

// 0 success, 2 failed, 3 usage error.
int run_query(const QueryOptions& options);

}  // namespace netprobe
