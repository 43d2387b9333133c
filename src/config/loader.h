#pragma once
// Loading a netprobify-compatible configuration file: YAML (resolved as PyYAML does) -> JSON -> the JSON
// Schema in schema/ (embedded in the binary) -> cross-field checks -> defaulted Config structs.
//
// Every problem is reported at once, one "path: message" string each, e.g.
//   targets.web.dst_port: required for TCPsyn
//   global.nb_prc: unknown key (did you mean "nb_proc"?)
// Warnings (deprecated keys, unknown groups in register_to/exclude_from, targets left without a group,
// duplicate YAML keys) never prevent loading: netprobify accepted those configurations.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "config/config.h"
#include "core/net.h"
#include "core/result.h"

namespace netprobe {

class SchemaValidator;

struct ConfigDiagnostics {
  std::vector<std::string> errors;    // any error means no Config
  std::vector<std::string> warnings;  // informational; log them
};

struct LoadedConfig {
  std::optional<Config> config;  // set only when there is no error
  ConfigDiagnostics diagnostics;
  bool ok() const { return config.has_value() && diagnostics.errors.empty(); }
};

// The largest configuration file read (a 100,000-target configuration is about 10 MB).
inline constexpr size_t kMaxConfigBytes = size_t(64) << 20;
// Reads a configuration file: regular files only (a FIFO or a device is refused without blocking), at
// most `max_bytes`. The error says why, without the path.
Result<std::string> read_config_text(const std::string& path, size_t max_bytes = kMaxConfigBytes);
// Reads and loads a file; Config::source_path is `path`. Never throws.
LoadedConfig load_config_file(const std::string& path);
// Loads YAML text; `source_name` is used in syntax errors and as Config::source_path. Never throws.
LoadedConfig load_config_string(std::string_view yaml, std::string source_name);
// Loads an already converted document (YAML resolved to JSON, or JSON). Never throws.
LoadedConfig load_config_json(const nlohmann::json& doc, std::string source_name);

// The text of schema/netprobe-config.schema.json as it was at build time.
std::string_view embedded_config_schema();
// The embedded schema, compiled once. nullptr (and *error set) if the schema uses a keyword the validator
// does not implement: a build that would silently ignore part of its schema refuses every configuration.
const SchemaValidator* config_schema_validator(std::string* error = nullptr);

// Key-space limits checked at load time. These mirror the token widths of probes/probe.h (TCPsyn: 32-bit
// sequence number minus kTcpSeqShift bits; ICMPping: 16-bit id + 16-bit seq; UDPunreachable: IPv4 IP-ID or
// IPv6 flow label), kept here so that loading a configuration does not depend on the probe library.
int config_token_bits(ProbeType type, AddressFamily af);
// At most this many probes per iteration may go to one (type, destination host), all groups and source
// ports together: tokens are a permutation of the probe's ordinal among them (worker/iteration.h), and
// token 0 is never used, so 2^bits - 1.
// With nb_proc workers, the top key_slice_bits(nb_proc) bits of every token name the worker that sent it
// (its capture filter selects them in the kernel), so one worker's share is smaller by that many bits; a
// target is probed by one worker only, so the limit applies per worker's share.
uint64_t max_probes_per_key_space(ProbeType type, AddressFamily af, int slice_bits = 0);
// Bits of every token that select the worker: ceil(log2(nb_proc)); 0 for one worker.
int key_slice_bits(int nb_proc);
inline constexpr uint64_t kMaxProbesPerIteration = 16'777'216;

// TCPquery / TLS targets (docs/service-checks.md#configuration): how many, the longest timeout and
// expiry_window accepted.
inline constexpr size_t kMaxServiceChecks = 4096;
inline constexpr double kMaxServiceCheckTimeout = 300;
inline constexpr int64_t kMaxExpiryWindow = int64_t(10) * 365 * 86400;
// A duration as Prometheus writes them, in seconds: "30d", "720h", "1h30m", "90s", or a bare number of
// seconds ("3600"). Units s, m, h, d, w, y (365 d). nullopt with *why otherwise.
std::optional<int64_t> parse_duration_seconds(std::string_view text, std::string* why);

}  // namespace netprobe
