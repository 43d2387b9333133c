#pragma once
// Selecting targets by their tags (`--include-tags a,b` / `--exclude-tags c` of `netprobe run` and
// `netprobe check`), with conn-check's semantics: include keeps the targets sharing at least one tag with
// the list (an untagged target is dropped), exclude drops them (an untagged target is kept); giving both
// is a usage error. Pure functions: the supervisor applies them to configuration and inventory targets
// at every (re)load, `netprobe check` to its configuration.
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "config/config.h"
#include "core/result.h"

namespace netprobe {

struct TagSelection {
  enum class Mode { kAll, kInclude, kExclude };
  Mode mode = Mode::kAll;
  std::vector<std::string> tags;  // sorted, distinct
  friend bool operator==(const TagSelection&, const TagSelection&) = default;
};

// From the options' values ("a,b"; nullopt when the option was not given). Errors (usage): both given, an
// empty list or tag, a tag the schema would refuse (1 to 64 of [A-Za-z0-9_.:/-]), more than 32 tags.
Result<TagSelection> parse_tag_selection(const std::optional<std::string>& include,
                                         const std::optional<std::string>& exclude);

// Whether a target with these tags (sorted, as TargetConfig::tags) is selected.
bool tags_selected(const TagSelection& selection, const std::vector<std::string>& tags);

// Removes the targets `selection` does not select; returns their names (sorted).
std::vector<std::string> select_targets(const TagSelection& selection,
                                        std::map<std::string, TargetConfig>& targets);

// "include a,b" / "exclude c" / "all", for logs.
std::string describe(const TagSelection& selection);

}  // namespace netprobe
