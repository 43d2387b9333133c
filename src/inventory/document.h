#pragma once
// One inventory document (the protocol of inventories/README.md, schema/inventory.schema.json): parsing,
// validation and conversion into TargetConfigs. Pure functions, no I/O, so that every rule is unit-tested
// without processes.
//
// A document is usable or garbage as a whole: garbage (not JSON/YAML, not a mapping with a `targets`
// list) makes the plug-in's run a failure. Inside a usable document every target stands alone: an invalid
// one is rejected with a message naming the plug-in, the target and the path, and the others are used.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "core/clock.h"
#include "core/result.h"

namespace netprobe {

struct DynamicTarget {
  std::string hostname;
  TargetConfig config;                 // name <plugin>_<hostname>, description from_<plugin>, is_dynamic
  std::optional<Nanos> lifetime;       // absent: lives until the plug-in stops listing it
  std::optional<Nanos> creation_date;  // realtime (Unix epoch); absent: when netprobe first saw the target
  std::string canonical;               // the target's JSON as given, keys sorted: equal means unchanged
};

struct InventoryDocument {
  std::vector<DynamicTarget> targets;  // the valid targets, in document order
  std::vector<std::string> rejected;  // "netbox: targets[3] (hostname tor-01): dst_port: required for TCPsyn"
  std::vector<std::string> warnings;  // same form; the target is used
};

struct DocumentOptions {
  int default_dns_update_interval_s = 0;  // global.dns_update_interval, for targets that set none
};

// Parses one document (JSON, or YAML read as PyYAML would) written by plug-in `plugin`. An Error means
// garbage; its message says why (first problem only: the plug-in's output is not a document at all).
Result<InventoryDocument> parse_inventory_document(std::string_view text, const std::string& plugin,
                                                   const DocumentOptions& options = {});

// "1d2h", "90m", "1w", "45s", "3600" (seconds) -> duration. nullopt if malformed, zero or over 10 years.
std::optional<Nanos> parse_lifetime(std::string_view text);
// RFC 3339 date-time with a zone ("2026-11-21T13:52:14Z", "...+01:00", fractional seconds allowed) ->
// realtime since the Unix epoch. nullopt if malformed.
std::optional<Nanos> parse_rfc3339(std::string_view text);

// The text of schema/inventory.schema.json as it was at build time.
std::string_view embedded_inventory_schema();

}  // namespace netprobe
