#pragma once
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "session/session.h"
#include "trace/options.h"
#include "trace/prober.h"

namespace netprobe {

// `netprobe trace TARGET`: Paris traceroute on netprobe's engine, in this process (src/session, src/trace):
// every probe of a flow keeps its 5-tuple, so each source port shows its own ECMP path; with --mda, as many
// flows as the Multipath Detection Algorithm needs to find every next hop (docs/trace.md). The options
// (TraceCliOptions) and their checks are in src/trace/options.h, shared with /api/v1/tests.

// 0 when the destination answered on some flow, 1 when not; 64 usage, 68 unknown host, 77 without
// CAP_NET_RAW.
int run_trace(const TraceCliOptions& options);

// Shared by `netprobe trace` and `netprobe pathloss` (implemented in trace.cpp).

// Opens the session (capabilities dropped), resolves `name` (first address of the family asked) and asks the
// kernel for the source address. Returns 0 and fills `target` and `session`, or an exit code after printing
// why on stderr with the `command` prefix.
int open_trace_session(const std::string& command, const std::string& name, ProbeType type, uint16_t dst_port,
                       bool ipv4, bool ipv6, TraceTarget& target, std::unique_ptr<Session>& session);

}  // namespace netprobe
