#pragma once
// The one-shot UDP query (`netprobe query --udp`, issue 18, docs/service-checks.md#udpquery) over a kernel
// socket. Payload, token field and expect are the UDPquery probe type's (probes/udp_query_spec.h).
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "dns/resolver.h"
#include "probes/udp_query_spec.h"

namespace netprobe::svc {

// The payload, token and expect pieces live in probes/udp_query_spec.h (the UDPquery probe type uses them
// too); these names keep the one-shot command's and the TCP query's spelling.
using udpquery::Expect;
using udpquery::ExpectKind;
using udpquery::judge;
using udpquery::kMaxExpectBytes;
using udpquery::kMaxJudgedAnswerBytes;
using udpquery::kMaxPayloadBytes;
using udpquery::kMaxRegexPatternBytes;
using udpquery::kMaxRegexProgramBytes;
using udpquery::kMaxTokenBytes;
using udpquery::kMinTokenBytes;
using udpquery::Outcome;
using udpquery::parse_bytes;
using udpquery::parse_expect;
using udpquery::to_string;
using udpquery::token_carried_bits;
using udpquery::TokenSpec;
using udpquery::validate_token;
using udpquery::write_token;

// A one-shot UDP query over a connected kernel socket (`netprobe query --udp`, unprivileged; the daemon's
// UDPquery over the group's source ports is docs/service-checks.md#udpquery): a random W in the token
// field, one datagram, then answers judged until one is ours or the timeout. A connected UDP socket
// reports an ICMP port unreachable as ECONNREFUSED: "closed". A host name is resolved with
// svc::resolve_host() within the timeout (which covers resolution and the wait for the answer); one that
// does not resolve in time is "resolve".
struct UdpQuerySpec {
  std::string host;
  uint16_t port = 0;
  std::vector<uint8_t> payload;
  std::optional<TokenSpec> token;
  Expect expect;
  std::chrono::milliseconds timeout{2000};
};
struct UdpQueryResult {
  std::string outcome;  // "answered", "unexpected", "closed", "timeout", "resolve", "error"
  std::string detail;
  double rtt_seconds = 0;
  int not_ours = 0;               // datagrams whose echoed token was not ours (ignored)
  double dns_lookup_seconds = 0;  // 0 for an IP literal
};
// `resolver`: as for run_tcp_query() (used from this thread only; may be null for an IP literal).
UdpQueryResult run_udp_query(const UdpQuerySpec& spec, Resolver* resolver);

}  // namespace netprobe::svc
