#pragma once
// Supervisor <-> worker messages, and their framing on a SOCK_STREAM socketpair.
//
// Frame: a 4-byte big-endian payload length, then the payload: one nlohmann::json document encoded as
// CBOR (RFC 8949, nlohmann's json::to_cbor). CBOR rather than JSON text because a report carries every
// RTT of an iteration (millions at high rates): they travel as one byte string of packed little-endian
// float64 (memcpy both ways) instead of millions of printed and re-parsed decimals. The document model
// is plain JSON otherwise (`json::from_cbor(payload).dump()` shows a frame when debugging).
//
// Every document has a "type": supervisor -> worker "shard" | "stop" | "job"; worker -> supervisor "ready" |
// "report" | "error" | "heartbeat" | "job_result". Decoding never throws and checks every field: the
// supervisor reads what workers send, and workers parse packets from the network.
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "config/config.h"
#include "core/clock.h"
#include "core/measurement.h"
#include "core/result.h"
#include "engine/iteration.h"
#include "probes/probe.h"
#include "sched/plan.h"

namespace netprobe {

inline constexpr uint32_t kMaxFrameBytes = 512u << 20;  // a report of ~60M RTTs; anything larger is a bug

// Supervisor -> worker: everything one worker needs to probe its shard. A new Shard replaces the
// previous one at the end of the worker's current iteration.
struct Shard {
  uint64_t generation = 0;  // increases with every shard the supervisor sends (reloads, DNS changes)
  uint32_t index = 0;       // the worker's index, 0 <= index < nb_proc
  KeySlice slice{};
  uint64_t secret = 0;  // keys this incarnation's tokens
  IterationSettings settings{};
  Config config;  // global settings, every group, and only this worker's targets
  // Resolved destination of each target of `config` (netprobify probes the first address). Subnet
  // targets are absent: the worker expands them itself (host_addresses), so that a /8 never travels.
  std::map<std::string, std::vector<IpAddress>> hosts;
};
struct StopRequest {};
// Supervisor -> the on-demand worker (docs/on-demand.md#the-on-demand-worker): one job, tagged with an id
// (several are in flight at once). The worker builds its plan (one template per distinct TTL, its own
// source address towards `dst`) and sends each probe at its `send_at` (CLOCK_MONOTONIC, which both
// processes share), never before: the supervisor's PacketBudget chose those times.
inline constexpr size_t kMaxJobProbes = 4096;  // decoding refuses more (trace.h kMaxBatch)
struct JobProbe {
  uint16_t sport = 0;  // ICMPping: with `paris`, the flow's id (its checksum); else unused
  uint8_t ttl = 64;
  int64_t send_at_ns = 0;
  friend bool operator==(const JobProbe&, const JobProbe&) = default;
};
struct OnDemandJob {
  uint64_t id = 0;
  ProbeType type = ProbeType::kTcpSyn;
  IpAddress dst;
  uint16_t dst_port = 0;
  uint8_t dscp = 0;                         // 0..63
  std::optional<uint16_t> ip_payload_size;  // at most 1472
  bool paris = false;                       // ICMPping traces: the echo checksum is the flow's id
  bool dont_fragment = true;                // IPv4 DF bit
  bool icmp_error_resolves = false;         // traces: an ICMP error is the probe's answer
  double timeout_s = 1;                     // per probe, after its send; (0, 60]
  // Never two on-demand packets to `dst` closer than this, nor any two closer than `global_gap_ns`, whatever
  // job sent them (0: no floor). The reserved send times already respect the caps; the floor keeps them
  // when a late packet would bring its successor closer (docs/on-demand.md#the-on-demand-worker).
  int64_t dest_gap_ns = 0;
  int64_t global_gap_ns = 0;
  std::vector<JobProbe> probes;  // 1..kMaxJobProbes
  friend bool operator==(const OnDemandJob&, const OnDemandJob&) = default;
};
using SupervisorMessage = std::variant<Shard, StopRequest, OnDemandJob>;

// Worker -> supervisor.
struct WorkerReady {
  uint32_t index = 0;
  std::vector<std::string> warnings;  // from opening the sockets and the capture
};
struct WorkerReport {
  uint64_t generation = 0;  // of the shard the iteration ran
  IterationReport report;
};
struct WorkerError {
  std::string message;
  std::vector<std::string> inactive_targets;  // targets of the shard the worker cannot probe (no route...)
};
// Sent at least every kHeartbeatInterval while the worker's main loop makes progress (also mid-
// iteration): the supervisor's WorkerPool kills a worker silent for a few seconds (stopped, wedged).
struct WorkerHeartbeat {};
// The on-demand worker -> supervisor: a job's outcome, one event per probe in job order (reply details
// included), or an error (a job it could not run: no route, a bad job) and no events.
struct OnDemandResult {
  uint64_t id = 0;
  std::string error;
  std::vector<ProbeEvent> events;
};
inline constexpr Nanos kHeartbeatInterval{1'000'000'000};
using WorkerMessage = std::variant<WorkerReady, WorkerReport, WorkerError, WorkerHeartbeat, OnDemandResult>;

// A whole frame (length prefix included), ready to write.
std::string encode_frame(const SupervisorMessage& message);
std::string encode_frame(const WorkerMessage& message);
// Decodes one payload (without the length prefix).
Result<SupervisorMessage> decode_supervisor_message(std::span<const uint8_t> payload);
Result<WorkerMessage> decode_worker_message(std::span<const uint8_t> payload);

// Reassembles frames from a byte stream read in arbitrary pieces (non-blocking sockets).
class FrameReader {
 public:
  void feed(std::span<const uint8_t> bytes);
  // The next complete payload, if any. After an oversized length, error() is set and nothing more is
  // returned: the stream cannot be resynchronised.
  std::optional<std::vector<uint8_t>> next();
  bool error() const { return error_; }
  // Bytes of an incomplete frame still buffered (a peer that died mid-write leaves some).
  size_t pending() const { return buffer_.size() - pos_; }

 private:
  std::vector<uint8_t> buffer_;
  size_t pos_ = 0;
  bool error_ = false;
};

// Blocking helpers for the worker side. write_all() retries on EINTR and short writes; false on error
// (EPIPE: the supervisor is gone; SIGPIPE must be ignored). read_frame() returns nullopt on a clean EOF
// between frames, an Error on a read error, a truncated frame or an oversized length.
bool write_all(int fd, std::string_view bytes);
Result<std::optional<std::vector<uint8_t>>> read_frame(int fd);

// The JSON halves, exposed for the round-trip tests.
nlohmann::json to_json_document(const Config& config);
Result<Config> config_from_json_document(const nlohmann::json& doc);
// A report's groups and target events travel as positional arrays, not objects: a decoded object costs a
// map node per field, ~1.3 KB per group, and a 10,000-target report was a 27 MB transient in the
// supervisor (and as much in the worker while encoding) every iteration. Field positions:
enum ReportGroupField : size_t {
  kGroupTarget,
  kGroupName,
  kGroupType,
  kGroupAf,
  kGroupState,
  kGroupSent,
  kGroupLost,
  kGroupRtts,
  kGroupTimeOoo,
  kGroupLate,
  kGroupDuplicates,
  kGroupIcmpErrors,
  kGroupFlows,             // FlowMeasurement records (ipc.cpp flows_to_binary)
  kGroupFlowDestinations,  // addresses (ipc.cpp addresses_to_binary)
  kGroupUnexpected,        // UDPquery
  kGroupClosed,
  kGroupFields
};
enum ReportTargetField : size_t {
  kTargetName,
  kTargetType,
  kTargetAf,
  kTargetMatchAckFail,
  kTargetPortMismatch,
  kTargetFields
};
nlohmann::json to_json_document(const IterationReport& report);
Result<IterationReport> report_from_json_document(const nlohmann::json& doc);

}  // namespace netprobe
