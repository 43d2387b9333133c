#include "config/tag_selection.h"

#include <algorithm>

#include <fmt/format.h>

namespace netprobe {
namespace {

constexpr size_t kMaxTags = 32;
constexpr size_t kMaxTagLength = 64;

bool valid_tag(const std::string& tag) {
  if (tag.empty() || tag.size() > kMaxTagLength) return false;
  return std::all_of(tag.begin(), tag.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == ':' || c == '/' || c == '-';
  });
}

}  // namespace

Result<TagSelection> parse_tag_selection(const std::optional<std::string>& include,
                                         const std::optional<std::string>& exclude) {
  if (include && exclude) return Error{"--include-tags and --exclude-tags are mutually exclusive"};
  if (!include && !exclude) return TagSelection{};
  const std::string option = include ? "--include-tags" : "--exclude-tags";
  const std::string& text = include ? *include : *exclude;
  if (text.size() > kMaxTags * (kMaxTagLength + 1))
    return Error{
        fmt::format("{}: too long (at most {} tags of {} characters)", option, kMaxTags, kMaxTagLength)};
  TagSelection out;
  out.mode = include ? TagSelection::Mode::kInclude : TagSelection::Mode::kExclude;
  size_t start = 0;
  for (;;) {
    const size_t comma = text.find(',', start);
    std::string tag = text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    if (!valid_tag(tag))
      return Error{
          fmt::format("{}: \"{}\" is not a tag (1 to {} characters among letters, digits and _ . : / -)",
                      option, tag.substr(0, kMaxTagLength), kMaxTagLength)};
    out.tags.push_back(std::move(tag));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  std::sort(out.tags.begin(), out.tags.end());
  out.tags.erase(std::unique(out.tags.begin(), out.tags.end()), out.tags.end());
  if (out.tags.size() > kMaxTags) return Error{fmt::format("{}: more than {} tags", option, kMaxTags)};
  return out;
}

bool tags_selected(const TagSelection& selection, const std::vector<std::string>& tags) {
  if (selection.mode == TagSelection::Mode::kAll) return true;
  const bool shares = std::any_of(tags.begin(), tags.end(), [&](const std::string& t) {
    return std::binary_search(selection.tags.begin(), selection.tags.end(), t);
  });
  return selection.mode == TagSelection::Mode::kInclude ? shares : !shares;
}

std::vector<std::string> select_targets(const TagSelection& selection,
                                        std::map<std::string, TargetConfig>& targets) {
  std::vector<std::string> dropped;
  for (auto it = targets.begin(); it != targets.end();) {
    if (tags_selected(selection, it->second.tags)) {
      ++it;
    } else {
      dropped.push_back(it->first);
      it = targets.erase(it);
    }
  }
  return dropped;
}

std::string describe(const TagSelection& selection) {
  switch (selection.mode) {
    case TagSelection::Mode::kInclude:
      return fmt::format("include {}", fmt::join(selection.tags, ","));
    case TagSelection::Mode::kExclude:
      return fmt::format("exclude {}", fmt::join(selection.tags, ","));
    case TagSelection::Mode::kAll:
      break;
  }
  return "all";
}

}  // namespace netprobe
