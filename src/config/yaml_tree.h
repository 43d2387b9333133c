#pragma once
// A compact, read-only YAML node graph built with libyaml's event parser (the C parser under PyYAML's
// CLoader): the only YAML parser netprobe hands untrusted text to. libyaml is not recursive and fails
// cleanly on every malformed text; yaml-cpp 0.7, used before, looped for ever on texts as small as `,`.
// Tags read as yaml-cpp reported them (non-specific "?" and "!"), so the converter kept its rules.
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace netprobe {

class YamlTree {
 public:
  using Index = uint32_t;
  enum class Kind : uint8_t { kNull, kScalar, kSequence, kMap };

  // False for a stream without a document (empty, or only comments).
  bool has_root() const { return has_root_; }
  Index root() const { return root_; }
  size_t node_count() const { return nodes_.size(); }

  Kind kind(Index n) const { return nodes_[n].kind; }
  // As yaml-cpp reports it: "?" for a plain scalar or an untagged collection, "!" for a quoted or block
  // scalar, the resolved tag when one is written (!!int is "tag:yaml.org,2002:int"), "" for a null.
  std::string_view tag(Index n) const { return view(nodes_[n].tag_offset, nodes_[n].tag_size); }
  std::string_view scalar(Index n) const { return view(nodes_[n].offset, nodes_[n].size); }
  // A sequence's items, or a mapping's keys and values interleaved (key0, value0, key1, ...). An alias is
  // its anchor's node, so a graph with a recursive alias has a cycle.
  std::span<const Index> children(Index n) const {
    return std::span<const Index>(children_).subspan(nodes_[n].offset, nodes_[n].size);
  }
  // The 1-based line where the node starts (for messages that point at a line of the document).
  uint32_t line(Index n) const { return lines_[n]; }

 private:
  friend class YamlTreeBuilder;
  struct Node {
    Kind kind;
    uint32_t tag_offset, tag_size;  // in text_
    uint32_t offset, size;          // scalar: its text in text_; collection: its range of children_
  };
  std::string_view view(uint32_t offset, uint32_t size) const {
    return std::string_view(text_).substr(offset, size);
  }

  std::vector<Node> nodes_;
  std::vector<Index> children_;
  std::vector<uint32_t> lines_;  // per node; apart from Node so that its layout stays 20 bytes
  std::string text_;  // every scalar's and tag's bytes, back to back: one allocation instead of a million
  Index root_ = 0;
  bool has_root_ = false;
};

// Parses YAML text into a graph. nullopt, with *error set to "line:column: message", when the text is not
// exactly one well-formed document: invalid UTF-8, syntax error, second document, unknown anchor, an alias
// inside its own anchor's node (recursive), nesting deeper than 64 levels, text over 2 GiB.
std::optional<YamlTree> parse_yaml_tree(std::string_view text, std::string* error = nullptr);

}  // namespace netprobe
