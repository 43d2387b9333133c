#pragma once
// TCP query and TLS certificate check (issue 18, docs/service-checks.md): a kernel TCP connection (its
// connect time is the latency), an optional TLS handshake (SNI, chain verification against the system
// store or a CA file, the presented chain's expiry), then send / expect steps like blackbox's
// query_response. Runs in a process without capabilities (never in the raw-socket workers): it parses
// what a remote server sends. Every read, size and wait is bounded.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dns/resolver.h"

namespace re2 {
class RE2;
}

namespace netprobe::svc {

// Bytes an expect step buffers at most before giving up (a banner or a reply, not a download).
inline constexpr size_t kMaxTcpReadBytes = 64 * 1024;
inline constexpr size_t kMaxTcpSteps = 32;
inline constexpr int kMaxTcpReadsPerExpect = 1024;

struct TcpStep {
  enum class Kind : uint8_t { kSend, kExpect, kExpectBytes };
  Kind kind = Kind::kSend;
  std::vector<uint8_t> bytes;             // kSend (sent as is), kExpectBytes (must appear in what is read)
  std::shared_ptr<const re2::RE2> regex;  // kExpect: RE2 on the bytes read since the previous expect
};
// One step from its config form: kind "send" / "expect" / "expect_bytes", value as in svc::parse_bytes()
// for send and expect_bytes, a pattern for expect. nullopt with *why on a bad row.
std::optional<TcpStep> parse_tcp_step(std::string_view kind, std::string_view value, std::string* why);

struct TlsOptions {
  bool enabled = false;
  std::string server_name;  // SNI and the name verified; empty: the host when it is not an IP literal
  std::string ca_file;      // PEM trust anchors; empty: the system store
  bool insecure_skip_verify = false;      // report the chain but do not fail on verification
  std::chrono::seconds expiry_window{0};  // fail when the earliest NotAfter is closer than this (0: never)
};

struct TcpQuerySpec {
  std::string host;  // IP literal or name (svc::resolve_host(): within the timeout, never by getaddrinfo)
  uint16_t port = 0;
  int family = 0;      // AF_INET / AF_INET6 to resolve and connect in that family only; 0: any
  std::string source;  // an address literal (never resolved) to bind before connect; empty: the kernel's
  std::vector<TcpStep> steps;
  TlsOptions tls;
  std::chrono::milliseconds timeout{5000};  // the whole query: resolution, connect, handshake, every step
};

struct TcpQueryResult {
  bool success = false;
  std::string failure;  // empty on success: "resolve", "connect", "tls_handshake", "tls_verify",
                        // "tls_expiry_window", "send", "expect", "timeout" (docs/service-checks.md)
  std::string detail;   // human-readable why (verification status, the step that failed)
  int failed_step = -1;
  double dns_lookup_seconds = 0;  // resolving host (0 for an IP literal): blackbox's probe_dns_lookup_time
  double connect_seconds = 0;     // the kernel's TCP connect alone (not the lookup)
  double duration_seconds = 0;
  // TLS (when enabled and the handshake completed), blackbox's meanings and units:
  std::string tls_version;                      // "TLS 1.2", "TLS 1.3"
  bool tls_verified = false;                    // the chain verified for server_name
  std::optional<int64_t> earliest_cert_expiry;  // min NotAfter of the presented chain (unix seconds)
  std::optional<int64_t> last_chain_expiry;     // earliest NotAfter of the verified chain
  std::vector<int64_t> chain_not_after;         // per presented certificate, leaf first
};

// `resolver` resolves a host name (svc::resolve_host(), bounded by spec.timeout); it is only used from
// this call's thread, and may be null when host is an IP literal (a name then fails "resolve").
TcpQueryResult run_tcp_query(const TcpQuerySpec& spec, Resolver* resolver);

// Prometheus text exposition of a result: probe_success, probe_duration_seconds,
// probe_dns_lookup_time_seconds, probe_tcp_connect_seconds, probe_failed_due_to{reason}, and with TLS
// probe_ssl_earliest_cert_expiry, probe_ssl_last_chain_expiry_timestamp_seconds,
// probe_tls_version_info{version}, probe_ssl_verified, probe_ssl_expiry_window_seconds (the threshold, like
// netprobify's `threshold`).
std::string to_metrics_text(const TcpQuerySpec& spec, const TcpQueryResult& r);

}  // namespace netprobe::svc
