#pragma once
// What `netprobe trace` and `netprobe pathloss` print: text, JSON (one document) and, for trace, DOT.
// Layouts in docs/trace.md.
#include <map>
#include <string>
#include <vector>

#include "trace/pathloss.h"
#include "trace/trace.h"

namespace netprobe {

struct TraceReport {
  TraceTarget target;
  TraceOptions options;
  bool mda = false;
  double confidence = 0.95;
  bool mda_complete = false;
  std::string mda_stop_reason;
  std::vector<FlowTrace> flows;
  std::map<std::string, std::string> names;  // address -> reverse DNS name (empty with -n)
  uint64_t probes_sent = 0;
  std::string error;  // a capture failure or an interruption
};
std::string trace_text(const TraceReport& report);
std::string trace_json(const TraceReport& report);
std::string trace_dot(const TraceReport& report);

struct PathlossReport {
  TraceTarget target;
  int probes_per_hop = 0;
  std::vector<PathlossFlow> flows;
  std::vector<PathlossVerdict> verdicts;
  uint64_t probes_sent = 0;
  std::string error;
};
std::string pathloss_text(const PathlossReport& report);
std::string pathloss_json(const PathlossReport& report);

// "time_exceeded:0", "unreachable:3", ... (the engine's label), "" for a destination's own answer.
std::string hop_label(const HopReply& hop, AddressFamily af);

}  // namespace netprobe
