#include "app/query.h"

#include <chrono>
#include <cstdio>

#include <fmt/format.h>

#include "app/check.h"
#include "svc/tcp_query.h"

namespace netprobe {

int run_query(const QueryOptions& o) {
  svc::TcpQuerySpec spec;
  spec.host = o.host;
  if (o.port < 1 || o.port > 65535) {
    fmt::print(stderr, "netprobe query: port must be 1 to 65535\n");
    return kCheckUnknown;
  }
  if (o.steps.size() > svc::kMaxTcpSteps) {
    fmt::print(stderr, "netprobe query: at most {} steps\n", svc::kMaxTcpSteps);
    return kCheckUnknown;
  }
  if (!(o.timeout_s > 0 && o.timeout_s <= 300) ||
      !(o.expiry_window_s >= 0 && o.expiry_window_s <= 10 * 365 * 86400.0)) {
    fmt::print(stderr, "netprobe query: --timeout must be in (0, 300] s, --expiry-window in [0, 10 years]\n");
    return kCheckUnknown;
  }
  spec.port = uint16_t(o.port);
  for (size_t i = 0; i < o.steps.size(); ++i) {
    const std::string& s = o.steps[i];
    const size_t eq = s.find('=');
    std::string why = "KIND=VALUE expected";
    std::optional<svc::TcpStep> step;
    if (eq != std::string::npos) step = svc::parse_tcp_step(s.substr(0, eq), s.substr(eq + 1), &why);
    if (!step) {
      fmt::print(stderr, "netprobe query: step {} ({}): {}\n", i, s.substr(0, eq), why);
      return kCheckUnknown;
    }
    spec.steps.push_back(std::move(*step));
  }
  spec.tls.enabled = o.tls || !o.server_name.empty() || !o.ca_file.empty() || o.expiry_window_s > 0;
  spec.tls.server_name = o.server_name;
  spec.tls.ca_file = o.ca_file;
  spec.tls.insecure_skip_verify = o.insecure;
  spec.tls.expiry_window = std::chrono::seconds(int64_t(o.expiry_window_s));
  spec.timeout = std::chrono::milliseconds(int64_t(o.timeout_s * 1000));

  const svc::TcpQueryResult r = svc::run_tcp_query(spec);
  if (o.format == "metrics") {
    fmt::print("{}", svc::to_metrics_text(spec, r));
  } else {
    fmt::print("{} {}:{} connect {:.3f} ms, total {:.3f} ms{}\n", r.success ? "OK" : "FAILED", o.host, o.port,
               r.connect_seconds * 1e3, r.duration_seconds * 1e3,
               r.success ? "" : fmt::format(": {} {}", r.failure, r.detail));
    if (spec.tls.enabled && !r.tls_version.empty())
      fmt::print("  {} verified={} earliest_cert_expiry={}\n", r.tls_version, r.tls_verified ? "yes" : "no",
                 r.earliest_cert_expiry ? std::to_string(*r.earliest_cert_expiry) : "-");
  }
  return r.success ? kCheckOk : kCheckFailed;
}

}  // namespace netprobe
