#include "app/query.h"

#include <chrono>
#include <cstdio>

#include <fmt/format.h>

#include "app/check.h"
#include "supervisor/service_checks.h"
#include "svc/tcp_query.h"
#include "svc/udp_query.h"

namespace netprobe {

namespace {

int usage(const std::string& what) {
  fmt::print(stderr, "netprobe query: {}\n", what);
  return kCheckUnknown;
}

// OFFSET:LENGTH[:REPLY_OFFSET], each 0 to 65535.
bool parse_token(const std::string& s, svc::TokenSpec& t) {
  unsigned a = 0, b = 0, c = 0;
  char tail = 0;
  const int n = std::sscanf(s.c_str(), "%5u:%5u:%5u%c", &a, &b, &c, &tail);
  if ((n != 2 && n != 3) || a > 65535 || b > 65535 || c > 65535) return false;
  t.offset = uint16_t(a);
  t.length = uint16_t(b);
  t.reply_offset = uint16_t(n == 3 ? c : a);
  return true;
}

int run_udp(const QueryOptions& o) {
  svc::UdpQuerySpec spec;
  spec.host = o.host;
  spec.port = uint16_t(o.port);
  spec.timeout = std::chrono::milliseconds(int64_t(o.timeout_s * 1000));
  std::string why;
  auto payload = svc::parse_bytes(o.payload, svc::kMaxPayloadBytes, &why);
  if (!payload) return usage("--payload: " + why);
  spec.payload = std::move(*payload);
  const size_t eq = o.expect.find('=');
  auto expect =
      svc::parse_expect(o.expect.substr(0, eq), eq == std::string::npos ? "" : o.expect.substr(eq + 1), &why);
  if (!expect) return usage("--expect: " + why);
  spec.expect = std::move(*expect);
  if (!o.token.empty()) {
    svc::TokenSpec t;
    if (!parse_token(o.token, t)) return usage("--token: OFFSET:LENGTH[:REPLY_OFFSET] expected");
    if (!svc::validate_token(t, spec.payload.size(), &why)) return usage("--token: " + why);
    spec.token = t;
  }
  const auto resolver = IpAddress::parse(spec.host) ? nullptr : make_service_check_resolver();
  const svc::UdpQueryResult r = svc::run_udp_query(spec, resolver.get());
  const bool ok = r.outcome == "answered";
  if (o.format == "metrics") {
    fmt::print("probe_success {}\nprobe_udp_outcome{{outcome=\"{}\"}} 1\nprobe_udp_not_ours {}\n", ok ? 1 : 0,
               r.outcome, r.not_ours);
    if (ok) fmt::print("probe_duration_seconds {:.6f}\n", r.rtt_seconds);
    fmt::print("probe_dns_lookup_time_seconds {:.6f}\n", r.dns_lookup_seconds);
  } else {
    fmt::print("{} udp {}:{} {}{}{}\n", ok ? "OK" : "FAILED", o.host, o.port, r.outcome,
               ok ? fmt::format(" {:.3f} ms", r.rtt_seconds * 1e3) : "",
               r.detail.empty() ? "" : ": " + r.detail);
    if (r.not_ours > 0) fmt::print("  {} answer(s) without our token ignored\n", r.not_ours);
  }
  return ok ? kCheckOk : kCheckFailed;
}

}  // namespace

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
  if (o.udp) return run_udp(o);
  if (!o.payload.empty() || !o.token.empty() || o.expect != "any")
    return usage("--payload, --expect and --token are for --udp (TCP uses --step)");
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

  const auto resolver = IpAddress::parse(spec.host) ? nullptr : make_service_check_resolver();
  const svc::TcpQueryResult r = svc::run_tcp_query(spec, resolver.get());
  if (o.format == "metrics") {
    fmt::print("{}", svc::to_metrics_text(spec, r));
  } else {
    fmt::print("{} {}:{} {}connect {:.3f} ms, total {:.3f} ms{}\n", r.success ? "OK" : "FAILED", o.host,
               o.port,
               r.dns_lookup_seconds > 0 ? fmt::format("dns {:.3f} ms, ", r.dns_lookup_seconds * 1e3) : "",
               r.connect_seconds * 1e3, r.duration_seconds * 1e3,
               r.success ? "" : fmt::format(": {} {}", r.failure, r.detail));
    if (spec.tls.enabled && !r.tls_version.empty())
      fmt::print("  {} verified={} earliest_cert_expiry={}\n", r.tls_version, r.tls_verified ? "yes" : "no",
                 r.earliest_cert_expiry ? std::to_string(*r.earliest_cert_expiry) : "-");
  }
  return r.success ? kCheckOk : kCheckFailed;
}

}  // namespace netprobe
