#pragma once
// YAML -> nlohmann::json with PyYAML's YAML 1.1 scalar resolution. netprobify read its configuration with
// PyYAML (yaml.safe_load), so a plain `on` is a boolean, `0x1f` an integer and `1:30` the integer 90 there;
// we decide it exactly as PyYAML did so that every netprobify configuration means the same thing here. Quoted
// scalars are always strings.
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace netprobe {

// How a plain (unquoted, untagged) scalar resolves, per PyYAML's implicit resolvers:
//   null:  ~ null Null NULL and the empty scalar
//   bool:  yes/no/true/false/on/off in lower, Capitalised or UPPER case (not y/n)
//   int:   decimal, 0b binary, 0x hex, 0-prefixed (YAML 1.1) or 0o octal, `_` separators, base 60 (1:30)
//   float: 1.5, .5, 1.5e+3, base 60 (1:30.5), .inf, -.inf, .nan; netprobe also reads 1e3 and 1.5e3 as
//          floats (PyYAML leaves them strings, which netprobify then failed on or misused)
//   else:  string.
nlohmann::json resolve_plain_scalar(std::string_view text);

struct YamlToJsonResult {
  nlohmann::json value;
  std::vector<std::string> errors;    // "path: message"
  std::vector<std::string> warnings;  // "path: message"
};

// Parses YAML text (exactly one document, libyaml) and converts it. Mapping keys are taken as text; merge
// keys (`<<: *anchor`) are applied as PyYAML does (explicit keys win). Duplicate keys keep the last value,
// as PyYAML, with a warning. Syntax errors are "<source_name>:<line>:<column>: <message>"; invalid UTF-8,
// nesting deeper than 64 levels, recursive aliases and aliases that expand beyond a budget (1,000,000
// nodes or 64 MiB of text more than the document itself) are refused with such a message. Never throws.
YamlToJsonResult parse_yaml_to_json(std::string_view text, const std::string& source_name);

}  // namespace netprobe
