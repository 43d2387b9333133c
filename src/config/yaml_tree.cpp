#include "config/yaml_tree.h"

#include <yaml.h>

#include <fmt/format.h>

#include "logging/escape.h"

#include <limits>
#include <memory>
#include <unordered_map>

namespace netprobe {
namespace {

// Deeper nesting is refused with a message (the converter and the schema validator recurse once per level;
// netprobe's documents are 5 levels deep).
constexpr size_t kMaxNesting = 64;
// Offsets are 32-bit; the readers cap configurations and plug-in documents far below this.
constexpr size_t kMaxText = size_t(1) << 31;

// yaml-cpp's IsNullString, kept so that documents read as they always did: a plain untagged scalar spelled
// like this is a null node, not a scalar.
bool is_null_string(std::string_view s) {
  return s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL";
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

  // False: the text is refused, error() says why.
  bool on_event(const yaml_event_t& e) {
    switch (e.type) {
      case YAML_DOCUMENT_START_EVENT:
        if (++documents_ == 1) return true;
        return fail(e.start_mark, "expected a single YAML document, found a second one");
      case YAML_SCALAR_EVENT: {
        const auto& s = e.data.scalar;
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
        if (!add(n, s.anchor, e.start_mark)) return fail(e.start_mark, "document too large");
        return true;
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
        if (open_.size() >= kMaxNesting)
          return fail(e.start_mark, fmt::format("nested deeper than {} levels", kMaxNesting));
        if (!add(n, anchor, e.start_mark)) return fail(e.start_mark, "document too large");
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
        const std::string name(str(e.data.alias.anchor));
        const auto it = anchors_.find(name);
        if (it == anchors_.end()) return fail(e.start_mark, fmt::format("unknown anchor *{}", name));
        // An alias inside the node of its own anchor would make the document infinite.
        for (const Open& o : open_)
          if (o.node == it->second)
            return fail(e.start_mark,
                        fmt::format("recursive alias: *{} is inside the node that &{} names", name, name));
        attach(it->second);
        return true;
      }
      default:
        return true;
    }
  }

  YamlTree take() { return std::move(t_); }
  const std::string& error() const { return error_; }

 private:
  struct Open {
    YamlTree::Index node;
    size_t mark;  // where its children start in pending_
  };

  bool fail(const yaml_mark_t& mark, const std::string& message) {
    error_ = fmt::format("{}:{}: {}", mark.line + 1, mark.column + 1, message);
    return false;
  }

  void store(std::string_view s, uint32_t* offset, uint32_t* size) {
    *offset = uint32_t(t_.text_.size());
    *size = uint32_t(s.size());
    t_.text_.append(s);
  }

  bool add(const YamlTree::Node& n, const yaml_char_t* anchor, const yaml_mark_t& mark) {
    if (t_.nodes_.size() >= std::numeric_limits<YamlTree::Index>::max() || t_.text_.size() > kMaxText)
      return false;
    const auto index = YamlTree::Index(t_.nodes_.size());
    t_.nodes_.push_back(n);
    t_.lines_.push_back(uint32_t(mark.line + 1));
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
  std::string error_;
};

// "line:column" of a byte offset (libyaml's reader errors give an offset, not a mark).
std::string position_of(std::string_view text, size_t offset) {
  size_t line = 1, column = 1;
  for (size_t i = 0; i < offset && i < text.size(); ++i) {
    if (text[i] == '\n') {
      ++line;
      column = 1;
    } else if ((static_cast<unsigned char>(text[i]) & 0xC0) != 0x80) {
      ++column;
    }
  }
  return fmt::format("{}:{}", line, column);
}

std::optional<YamlTree> parse_yaml_tree(std::string_view text, std::string* error) {
  std::string ignored;
  if (!error) error = &ignored;
  if (text.size() > kMaxText) {
    *error = fmt::format("1:1: document too large ({} bytes)", text.size());
    return std::nullopt;
  }
  // libyaml checks UTF-8 too, but reports a byte offset and a terse message.
  for (size_t i = 0; i < text.size();) {
    const size_t n = utf8_sequence_length(text, i);
    if (n == 0) {
      *error = fmt::format("{}: invalid UTF-8 (byte 0x{:02x}); the document must be UTF-8 text",
                           position_of(text, i), static_cast<unsigned char>(text[i]));
      return std::nullopt;
    }
    i += n;
  }
  std::unique_ptr<yaml_parser_t, ParserDeleter> parser(new yaml_parser_t);
  if (!yaml_parser_initialize(parser.get())) {
    delete parser.release();  // not initialised: nothing for yaml_parser_delete to free
    *error = "1:1: cannot initialise the YAML parser (out of memory)";
    return std::nullopt;
  }
  yaml_parser_set_input_string(parser.get(), reinterpret_cast<const unsigned char*>(text.data()),
                               text.size());
  YamlTreeBuilder builder(text.size());
  while (true) {
    Event ev;
    if (!yaml_parser_parse(parser.get(), &ev.e)) {
      const yaml_parser_t& p = *parser;
      const std::string problem = p.problem ? p.problem : "syntax error";
      if (p.error == YAML_READER_ERROR) {
        *error = fmt::format("{}: {}", position_of(text, p.problem_offset), problem);
      } else {
        const yaml_mark_t& m = p.problem_mark;
        *error = fmt::format("{}:{}: {}", m.line + 1, m.column + 1, problem);
        if (p.context)
          *error += fmt::format(" ({} at line {}, column {})", p.context, p.context_mark.line + 1,
                                p.context_mark.column + 1);
      }
      return std::nullopt;
    }
    if (!builder.on_event(ev.e)) {
      *error = builder.error();
      return std::nullopt;
    }
    if (ev.e.type == YAML_STREAM_END_EVENT) break;
  }
  return builder.take();
}

}  // namespace netprobe
