#include "config/yaml_tree.h"

#include <yaml.h>

#include <limits>
#include <memory>
#include <unordered_map>

namespace netprobe {
namespace {

// yaml-cpp refuses documents nested 500 levels deep with its own message, and the converter reports
// anything deeper than 64 levels; past this depth we let yaml-cpp decide, which costs nothing real.
constexpr size_t kMaxNesting = 100;
// Offsets are 32-bit; a configuration is a few megabytes.
constexpr size_t kMaxText = size_t(1) << 31;

// yaml-cpp's IsNullString: a plain untagged scalar spelled like this is a null node, not a scalar.
bool is_null_string(std::string_view s) {
  return s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL";
}

// Texts where yaml-cpp and libyaml both succeed but disagree, yaml-cpp being the odd one out (found by
// tests/unit/config/yaml_frontends_test.cpp). Such files are rare; yaml-cpp reads them, as it always did.
//  - a lone CR and the Unicode line breaks NEL, LS and PS are line breaks to libyaml only;
//  - keep chomping (|+, >+, |2+): yaml-cpp keeps one trailing line break fewer. Looked for in the whole
//    text (libyaml's marks count characters, not bytes); "|+" inside a string only costs the fast path.
bool has_divergent_text(std::string_view text) {
  for (size_t i = text.find('\r'); i != std::string_view::npos; i = text.find('\r', i + 1))
    if (i + 1 == text.size() || text[i + 1] != '\n') return true;
  for (size_t i = text.find('+'); i != std::string_view::npos; i = text.find('+', i + 1)) {
    size_t j = i;
    if (j > 0 && text[j - 1] >= '1' && text[j - 1] <= '9') --j;
    if (j > 0 && (text[j - 1] == '|' || text[j - 1] == '>')) return true;
  }
  return text.find("\xC2\x85") != std::string_view::npos ||
         text.find("\xE2\x80\xA8") != std::string_view::npos ||
         text.find("\xE2\x80\xA9") != std::string_view::npos;
}

// The \N and \_ escapes of double-quoted scalars: yaml-cpp writes the bare Latin-1 byte (0x85, 0xA0), not
// UTF-8. Seen in the value as U+0085 or U+00A0 (a literal no-break space there only costs the fast path).
bool has_divergent_escape(const yaml_event_t& e) {
  if (e.data.scalar.style != YAML_DOUBLE_QUOTED_SCALAR_STYLE) return false;
  const std::string_view v(reinterpret_cast<const char*>(e.data.scalar.value), e.data.scalar.length);
  return v.find("\xC2\x85") != std::string_view::npos || v.find("\xC2\xA0") != std::string_view::npos;
}

std::string_view str(const yaml_char_t* s) {
  return s ? std::string_view(reinterpret_cast<const char*>(s)) : std::string_view();
}

struct ParserDeleter {
  void operator()(yaml_parser_t* p) const {
    yaml_parser_delete(p);
    delete p;
  }
};

// Owns one event; libyaml allocates its strings.
struct Event {
  yaml_event_t e{};
  ~Event() { yaml_event_delete(&e); }
};

}  // namespace

class YamlTreeBuilder {
 public:
  explicit YamlTreeBuilder(size_t text_size) {
    t_.text_.reserve(text_size + 2);
    t_.text_ = "?!";  // the two non-specific tags, shared by every node
  }

  // False: hand the text to yaml-cpp (see parse_yaml_tree).
  bool on_event(const yaml_event_t& e) {
    switch (e.type) {
      case YAML_DOCUMENT_START_EVENT:
        return ++documents_ == 1;
      case YAML_SCALAR_EVENT: {
        const auto& s = e.data.scalar;
        if (has_divergent_escape(e)) return false;
        const std::string_view value(reinterpret_cast<const char*>(s.value), s.length);
        YamlTree::Node n{};
        if (s.tag) {
          store(str(s.tag), &n.tag_offset, &n.tag_size);
        } else if (s.style == YAML_PLAIN_SCALAR_STYLE) {
          n.tag_offset = 0, n.tag_size = 1;  // "?"
        } else {
          n.tag_offset = 1, n.tag_size = 1;  // "!": quoted, literal or folded
        }
        if (!s.tag && s.style == YAML_PLAIN_SCALAR_STYLE && is_null_string(value)) {
          n.kind = YamlTree::Kind::kNull;
          n.tag_offset = n.tag_size = 0;
        } else {
          n.kind = YamlTree::Kind::kScalar;
          store(value, &n.offset, &n.size);
        }
        return add(n, s.anchor);
      }
      case YAML_SEQUENCE_START_EVENT:
      case YAML_MAPPING_START_EVENT: {
        const bool seq = e.type == YAML_SEQUENCE_START_EVENT;
        const yaml_char_t* tag = seq ? e.data.sequence_start.tag : e.data.mapping_start.tag;
        const yaml_char_t* anchor = seq ? e.data.sequence_start.anchor : e.data.mapping_start.anchor;
        YamlTree::Node n{};
        n.kind = seq ? YamlTree::Kind::kSequence : YamlTree::Kind::kMap;
        if (tag)
          store(str(tag), &n.tag_offset, &n.tag_size);
        else
          n.tag_offset = 0, n.tag_size = 1;  // "?"
        if (!add(n, anchor)) return false;
        if (open_.size() >= kMaxNesting) return false;
        open_.push_back({YamlTree::Index(t_.nodes_.size() - 1), pending_.size()});
        return true;
      }
      case YAML_SEQUENCE_END_EVENT:
      case YAML_MAPPING_END_EVENT: {
        const Open o = open_.back();
        open_.pop_back();
        YamlTree::Node& n = t_.nodes_[o.node];
        n.offset = uint32_t(t_.children_.size());
        n.size = uint32_t(pending_.size() - o.mark);
        t_.children_.insert(t_.children_.end(), pending_.begin() + std::ptrdiff_t(o.mark), pending_.end());
        pending_.resize(o.mark);
        return true;
      }
      case YAML_ALIAS_EVENT: {
        // yaml-cpp registers an anchor before reading its content, so an alias inside its own anchor is
        // the node itself (a cycle the converter stops at); an unknown anchor is yaml-cpp's error to word.
        const auto it = anchors_.find(std::string(str(e.data.alias.anchor)));
        if (it == anchors_.end()) return false;
        attach(it->second);
        return true;
      }
      default:
        return true;
    }
  }

  YamlTree take() { return std::move(t_); }

 private:
  struct Open {
    YamlTree::Index node;
    size_t mark;  // where its children start in pending_
  };

  void store(std::string_view s, uint32_t* offset, uint32_t* size) {
    *offset = uint32_t(t_.text_.size());
    *size = uint32_t(s.size());
    t_.text_.append(s);
  }

  bool add(const YamlTree::Node& n, const yaml_char_t* anchor) {
    if (t_.nodes_.size() >= std::numeric_limits<YamlTree::Index>::max() || t_.text_.size() > kMaxText)
      return false;
    const auto index = YamlTree::Index(t_.nodes_.size());
    t_.nodes_.push_back(n);
    if (anchor)
      anchors_.insert_or_assign(std::string(str(anchor)), index);  // a redefined anchor: the last wins
    attach(index);
    return true;
  }

  void attach(YamlTree::Index index) {
    if (!open_.empty()) {
      pending_.push_back(index);
    } else if (!t_.has_root_) {
      t_.root_ = index;
      t_.has_root_ = true;
    }
  }

  YamlTree t_;
  std::vector<Open> open_;
  std::vector<YamlTree::Index> pending_;  // children of the open collections, innermost last
  std::unordered_map<std::string, YamlTree::Index> anchors_;
  int documents_ = 0;
};

std::optional<YamlTree> parse_yaml_tree(std::string_view text) {
  if (text.size() > kMaxText || has_divergent_text(text)) return std::nullopt;
  std::unique_ptr<yaml_parser_t, ParserDeleter> parser(new yaml_parser_t);
  if (!yaml_parser_initialize(parser.get())) {
    delete parser.release();  // not initialised: nothing for yaml_parser_delete to free
    return std::nullopt;
  }
  yaml_parser_set_input_string(parser.get(), reinterpret_cast<const unsigned char*>(text.data()),
                               text.size());
  YamlTreeBuilder builder(text.size());
  while (true) {
    Event ev;
    if (!yaml_parser_parse(parser.get(), &ev.e)) return std::nullopt;
    if (!builder.on_event(ev.e)) return std::nullopt;
    if (ev.e.type == YAML_STREAM_END_EVENT) break;
  }
  return builder.take();
}

}  // namespace netprobe
