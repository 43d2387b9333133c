#pragma once
// YAML -> nlohmann::json with PyYAML's YAML 1.1 scalar resolution. netprobify read its configuration with
// PyYAML (yaml.safe_load), so a plain `on` is a boolean, `0x1f` an integer and `1:30` the integer 90 there;
// yaml-cpp leaves that decision to the caller, and we decide it exactly as PyYAML did so that every
// netprobify configuration means the same thing here. Quoted scalars are always strings.
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace YAML {
class Node;
}

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

// Converts a parsed YAML document. Mapping keys are taken as text; merge keys (`<<: *anchor`) are applied as
// PyYAML does (explicit keys win). Duplicate keys keep the last value, as PyYAML, with a warning. Never
// throws.
YamlToJsonResult yaml_to_json(const YAML::Node& root);

// Parses YAML text (exactly one document) and converts it. Syntax errors are reported as
// "<source_name>:<line>:<column>: <message>". Never throws. Reads with libyaml (fast); anything libyaml does
// not read as one well-formed document is read again by parse_yaml_to_json_reference, whose messages these
// are.
YamlToJsonResult parse_yaml_to_json(std::string_view text, const std::string& source_name);

// The same through yaml-cpp only (ten times slower on large files): the reference the fast path is tested
// against, and the path taken for syntax errors, several documents and other texts libyaml refuses.
YamlToJsonResult parse_yaml_to_json_reference(std::string_view text, const std::string& source_name);

}  // namespace netprobe
