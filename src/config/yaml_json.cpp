#include "config/yaml_json.h"

#include <cmath>
#include <cstdlib>
#include <limits>

#include <fmt/format.h>
#include "config/path.h"
#include "config/yaml_tree.h"
#include "logging/escape.h"

namespace netprobe {
namespace {

// Hand-written matchers rather than std::regex: a 100,000-target file has about a million scalars, and
// std::regex would cost seconds.
bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_hex(char c) { return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }
bool all_of(std::string_view s, bool (*pred)(char)) {
  if (s.empty()) return false;
  for (char c : s)
    if (!pred(c)) return false;
  return true;
}
bool dec_(char c) { return is_digit(c) || c == '_'; }
bool bin_(char c) { return c == '0' || c == '1' || c == '_'; }
bool oct_(char c) { return (c >= '0' && c <= '7') || c == '_'; }
bool hex_(char c) { return is_hex(c) || c == '_'; }

bool is_null_text(std::string_view s) {
  return s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL";
}

std::optional<bool> bool_text(std::string_view s) {
  static constexpr std::string_view kTrue[] = {"yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON"};
  static constexpr std::string_view kFalse[] = {"no",    "No",  "NO",  "false", "False",
                                                "FALSE", "off", "Off", "OFF"};
  for (auto t : kTrue)
    if (s == t) return true;
  for (auto f : kFalse)
    if (s == f) return false;
  return std::nullopt;
}

std::string_view strip_sign(std::string_view s, bool* negative) {
  *negative = false;
  if (!s.empty() && (s[0] == '-' || s[0] == '+')) {
    *negative = s[0] == '-';
    s.remove_prefix(1);
  }
  return s;
}

// `(:[0-5]?[0-9])+` after the first part.
bool sexagesimal_tail(std::string_view s) {
  if (s.empty()) return false;
  size_t i = 0;
  while (i < s.size()) {
    if (s[i] != ':') return false;
    ++i;
    size_t start = i;
    while (i < s.size() && is_digit(s[i])) ++i;
    const size_t n = i - start;
    if (n == 0 || n > 2 || (n == 2 && s[start] > '5')) return false;
  }
  return true;
}

// Optional exponent: [eE][-+]?[0-9]+ (PyYAML requires the sign; we do not).
bool exponent(std::string_view s) {
  if (s.size() < 2 || (s[0] != 'e' && s[0] != 'E')) return false;
  s.remove_prefix(1);
  if (s[0] == '-' || s[0] == '+') s.remove_prefix(1);
  return all_of(s, is_digit);
}

enum class NumKind { kNone, kInt, kFloat };

NumKind classify_number(std::string_view text) {
  if (text.empty()) return NumKind::kNone;
  bool neg;
  const std::string_view s = strip_sign(text, &neg);
  if (s.empty()) return NumKind::kNone;
  // Integers.
  if (s.size() > 2 && s[0] == '0' && s[1] == 'b' && all_of(s.substr(2), bin_)) return NumKind::kInt;
  if (s.size() > 2 && s[0] == '0' && s[1] == 'x' && all_of(s.substr(2), hex_)) return NumKind::kInt;
  if (s.size() > 2 && s[0] == '0' && s[1] == 'o' && all_of(s.substr(2), oct_)) return NumKind::kInt;
  if (s == "0") return NumKind::kInt;
  if (s.size() > 1 && s[0] == '0' && all_of(s.substr(1), oct_)) return NumKind::kInt;
  if (s[0] >= '1' && s[0] <= '9') {
    size_t i = 1;
    while (i < s.size() && dec_(s[i])) ++i;
    if (i == s.size()) return NumKind::kInt;
    const auto colon = s.find(':');
    if (colon != std::string_view::npos && colon == i && sexagesimal_tail(s.substr(i))) return NumKind::kInt;
  }
  // Floats.
  if (s == ".inf" || s == ".Inf" || s == ".INF") return NumKind::kFloat;
  if (!neg && text[0] != '+' && (s == ".nan" || s == ".NaN" || s == ".NAN")) return NumKind::kFloat;
  if (is_digit(s[0])) {
    size_t i = 1;
    while (i < s.size() && dec_(s[i])) ++i;
    if (i < s.size() && s[i] == '.') {  // [0-9][0-9_]*\.[0-9_]*(exp)?
      ++i;
      while (i < s.size() && dec_(s[i])) ++i;
      if (i == s.size() || exponent(s.substr(i))) return NumKind::kFloat;
      return NumKind::kNone;
    }
    if (i < s.size() && (s[i] == 'e' || s[i] == 'E'))
      return exponent(s.substr(i)) ? NumKind::kFloat : NumKind::kNone;
    if (i < s.size() && s[i] == ':') {  // base 60 with a fractional part: 1:30.5
      const auto dot = s.find('.', i);
      if (dot == std::string_view::npos) return NumKind::kNone;
      const auto frac = s.substr(dot + 1);
      if (sexagesimal_tail(s.substr(i, dot - i)) && (frac.empty() || all_of(frac, dec_)))
        return NumKind::kFloat;
    }
    return NumKind::kNone;
  }
  if (s[0] == '.' && !neg && text[0] != '+' && s.size() > 1 && is_digit(s[1])) {  // \.[0-9][0-9_]*(exp)?
    size_t i = 2;
    while (i < s.size() && dec_(s[i])) ++i;
    if (i == s.size() || exponent(s.substr(i))) return NumKind::kFloat;
  }
  return NumKind::kNone;
}

std::string without_underscores(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s)
    if (c != '_') out += c;
  return out;
}

// Accumulates digits into *v in `base`; false on overflow of 64 bits.
bool accumulate(std::string_view digits, unsigned base, uint64_t* v) {
  for (char c : digits) {
    const unsigned d = is_digit(c) ? unsigned(c - '0') : unsigned((c | 0x20) - 'a' + 10);
    if (__builtin_mul_overflow(*v, uint64_t(base), v) || __builtin_add_overflow(*v, uint64_t(d), v))
      return false;
  }
  return true;
}

// Parses a classified integer (PyYAML's construct_yaml_int); false when it does not fit 64 bits.
bool parse_int(std::string_view text, nlohmann::json* out) {
  bool neg;
  const std::string s = without_underscores(strip_sign(text, &neg));
  const std::string_view sv = s;
  uint64_t v = 0;
  bool ok = true;
  if (sv.rfind("0b", 0) == 0)
    ok = accumulate(sv.substr(2), 2, &v);
  else if (sv.rfind("0x", 0) == 0)
    ok = accumulate(sv.substr(2), 16, &v);
  else if (sv.rfind("0o", 0) == 0)
    ok = accumulate(sv.substr(2), 8, &v);
  else if (sv.size() > 1 && sv[0] == '0')
    ok = accumulate(sv.substr(1), 8, &v);
  else if (sv.find(':') != std::string_view::npos) {  // base 60: 1:30 == 90
    size_t start = 0;
    while (ok) {
      const auto colon = sv.find(':', start);
      uint64_t part = 0;
      ok = accumulate(sv.substr(start, colon - start), 10, &part) &&
           !__builtin_mul_overflow(v, uint64_t(60), &v) && !__builtin_add_overflow(v, part, &v);
      if (colon == std::string_view::npos) break;
      start = colon + 1;
    }
  } else {
    ok = accumulate(sv, 10, &v);
  }
  if (!ok) return false;
  if (neg) {
    if (v > uint64_t(std::numeric_limits<int64_t>::max()) + 1) return false;
    *out = v == uint64_t(std::numeric_limits<int64_t>::max()) + 1 ? std::numeric_limits<int64_t>::min()
                                                                  : -int64_t(v);
  } else if (v <= uint64_t(std::numeric_limits<int64_t>::max())) {
    *out = int64_t(v);
  } else {
    *out = v;
  }
  return true;
}

double parse_float(std::string_view text) {
  bool neg;
  std::string s = without_underscores(strip_sign(text, &neg));
  for (auto& c : s) c = char(std::tolower(static_cast<unsigned char>(c)));
  double v;
  if (s == ".inf") {
    v = std::numeric_limits<double>::infinity();
  } else if (s == ".nan") {
    v = std::numeric_limits<double>::quiet_NaN();
  } else if (s.find(':') != std::string::npos) {
    v = 0;
    size_t start = 0;
    while (true) {
      const auto colon = s.find(':', start);
      v = v * 60 + std::strtod(s.substr(start, colon - start).c_str(), nullptr);
      if (colon == std::string::npos) break;
      start = colon + 1;
    }
  } else {
    v = std::strtod(s.c_str(), nullptr);
  }
  return neg ? -v : v;
}

// Resolves a plain scalar; sets *error when it looks like an integer too large for 64 bits.
nlohmann::json resolve_plain(std::string_view text, std::string* error) {
  if (is_null_text(text)) return nullptr;
  if (auto b = bool_text(text)) return *b;
  switch (classify_number(text)) {
    case NumKind::kInt: {
      nlohmann::json v;
      if (parse_int(text, &v)) return v;
      if (error) *error = fmt::format("integer {} does not fit in 64 bits", escape_for_log(text, 64));
      return std::string(text);
    }
    case NumKind::kFloat:
      return parse_float(text);
    case NumKind::kNone:
      break;
  }
  return std::string(text);
}

constexpr std::string_view kTagStr = "tag:yaml.org,2002:str";
constexpr std::string_view kTagInt = "tag:yaml.org,2002:int";
constexpr std::string_view kTagFloat = "tag:yaml.org,2002:float";
constexpr std::string_view kTagBool = "tag:yaml.org,2002:bool";
constexpr std::string_view kTagNull = "tag:yaml.org,2002:null";
constexpr std::string_view kTagMap = "tag:yaml.org,2002:map";
constexpr std::string_view kTagSeq = "tag:yaml.org,2002:seq";
constexpr std::string_view kTagMerge = "tag:yaml.org,2002:merge";
constexpr int kMaxDepth = 64;
// Aliases are expanded (JSON has none), so a few hundred bytes of nested aliases ("billion laughs") would
// expand to billions of nodes. The expansion may add at most this many nodes and scalar bytes to those of
// the document itself; a configuration that shares a block of defaults between 100,000 targets stays far
// below.
constexpr size_t kMaxAliasNodes = 1'000'000;
constexpr size_t kMaxAliasBytes = size_t(64) << 20;
// A document with more problems than this is not worth listing further.
constexpr size_t kMaxErrors = 1000;

std::string join_key(const std::string& path, std::string_view key) { return config_path_join(path, key); }
std::string shown(const std::string& path) { return path.empty() ? "(root)" : path; }

// Where the node being converted sits, spelled out only when a message needs it: building
// "targets.t1.destination" for each of a million scalars would cost more than converting them.
struct Path {
  const Path* parent = nullptr;  // nullptr: the document's root
  std::string_view key;          // a mapping key, unless is_index
  size_t index = 0;              // a sequence index, if is_index
  bool is_index = false;

  std::string str() const {
    if (!parent) return {};
    const std::string base = parent->str();
    return is_index ? base + "[" + std::to_string(index) + "]" : join_key(base, key);
  }
};

enum class NodeKind { kNull, kScalar, kSequence, kMap };

// The node graph the converter reads (libyaml's YamlTree).
class YamlTreeDoc {
 public:
  using Ref = YamlTree::Index;
  explicit YamlTreeDoc(const YamlTree& t) : t_(t) {}
  NodeKind kind(Ref n) const {
    switch (t_.kind(n)) {
      case YamlTree::Kind::kScalar:
        return NodeKind::kScalar;
      case YamlTree::Kind::kSequence:
        return NodeKind::kSequence;
      case YamlTree::Kind::kMap:
        return NodeKind::kMap;
      case YamlTree::Kind::kNull:
        break;
    }
    return NodeKind::kNull;
  }
  std::string_view tag(Ref n) const { return t_.tag(n); }
  std::string_view scalar(Ref n) const { return t_.scalar(n); }
  template <class F>
  void for_each_item(Ref n, F&& f) const {
    for (Ref item : t_.children(n)) f(item);
  }
  template <class F>
  void for_each_pair(Ref n, F&& f) const {
    const auto c = t_.children(n);
    for (size_t i = 0; i + 1 < c.size(); i += 2) f(c[i], c[i + 1]);
  }

 private:
  const YamlTree& t_;
};

template <class Doc>
class Converter {
 public:
  using Ref = typename Doc::Ref;
  Converter(const Doc& doc, YamlToJsonResult* result, size_t max_nodes, size_t max_bytes)
      : doc_(doc), r_(result), max_nodes_(max_nodes), max_bytes_(max_bytes) {}

  bool refused() const { return refused_; }

  nlohmann::json convert(const Ref& node, const Path& path, int depth) {
    if (refused_) return nullptr;
    if (++nodes_ > max_nodes_) {
      refuse(fmt::format("aliases expand the document to more than {} nodes (an alias bomb?); refused",
                         max_nodes_));
      return nullptr;
    }
    if (depth > kMaxDepth) {
      error(path, fmt::format("nested deeper than {} levels (through aliases)", kMaxDepth));
      return nullptr;
    }
    const std::string_view tag = doc_.tag(node);
    switch (doc_.kind(node)) {
      case NodeKind::kNull:
        if (tag == kTagStr) return "";
        return nullptr;
      case NodeKind::kScalar:
        return scalar(node, tag, path);
      case NodeKind::kSequence: {
        if (!generic_tag(tag, kTagSeq)) {
          error(path, fmt::format("unsupported YAML tag {}", escape_for_log(tag, 64)));
          return nullptr;
        }
        nlohmann::json out = nlohmann::json::array();
        size_t i = 0;
        doc_.for_each_item(node, [&](const Ref& item) {
          out.push_back(convert(item, Path{&path, {}, i, true}, depth + 1));
          ++i;
        });
        return out;
      }
      case NodeKind::kMap: {
        if (!generic_tag(tag, kTagMap)) {
          error(path, fmt::format("unsupported YAML tag {}", escape_for_log(tag, 64)));
          return nullptr;
        }
        return map(node, path, depth);
      }
    }
    return nullptr;
  }

 private:
  static bool generic_tag(std::string_view tag, std::string_view specific) {
    return tag.empty() || tag == "?" || tag == "!" || tag == specific;
  }

  nlohmann::json scalar(const Ref& node, std::string_view tag, const Path& path) {
    const std::string_view text = doc_.scalar(node);
    bytes_ += text.size();
    if (bytes_ > max_bytes_) {
      refuse(fmt::format(
          "aliases expand the document to more than {} bytes of text (an alias bomb?); refused", max_bytes_));
      return nullptr;
    }
    if (tag == "?" || tag.empty()) {  // plain scalar: implicit resolution
      std::string err;
      auto v = resolve_plain(text, &err);
      if (!err.empty()) error(path, err);
      return v;
    }
    if (tag == "!" || tag == kTagStr) return std::string(text);  // quoted, or explicitly !!str
    if (tag == kTagNull) return nullptr;
    if (tag == kTagBool) {
      if (auto b = bool_text(text)) return *b;
    } else if (tag == kTagInt) {
      nlohmann::json v;
      if (classify_number(text) == NumKind::kInt && parse_int(text, &v)) return v;
    } else if (tag == kTagFloat) {
      const auto kind = classify_number(text);
      if (kind == NumKind::kFloat) return parse_float(text);
      nlohmann::json v;
      if (kind == NumKind::kInt && parse_int(text, &v)) return v.get<double>();
    } else {
      error(path, fmt::format("unsupported YAML tag {}", escape_for_log(tag, 64)));
      return nullptr;
    }
    error(path, fmt::format("{} is not a valid {}", quoted_excerpt(text), tag.substr(tag.rfind(':') + 1)));
    return nullptr;
  }

  nlohmann::json map(const Ref& node, const Path& path, int depth) {
    nlohmann::json out = nlohmann::json::object();
    auto& obj = out.get_ref<nlohmann::json::object_t&>();
    std::vector<nlohmann::json> merges;
    doc_.for_each_pair(node, [&](const Ref& k, const Ref& value) {
      const NodeKind kk = doc_.kind(k);
      if (kk != NodeKind::kScalar && kk != NodeKind::kNull) {
        error(path, "mapping keys must be scalars");
        return;
      }
      const std::string_view key = kk == NodeKind::kNull ? std::string_view() : doc_.scalar(k);
      if (key == "<<" && (doc_.tag(k) == "?" || doc_.tag(k) == kTagMerge)) {
        collect_merge(value, path, depth, &merges);
        return;
      }
      nlohmann::json v = convert(value, Path{&path, key}, depth + 1);
      auto [it, inserted] = obj.try_emplace(std::string(key));
      if (!inserted && r_->warnings.size() < kMaxErrors)
        r_->warnings.push_back(
            fmt::format("{}: duplicate key; the last value is used (as PyYAML)", join_key(path.str(), key)));
      it->second = std::move(v);
    });
    // Merged mappings: explicit keys win, then the earliest merged mapping (PyYAML's flatten_mapping).
    for (const auto& m : merges)
      for (auto it = m.begin(); it != m.end(); ++it) out.emplace(it.key(), it.value());
    return out;
  }

  void collect_merge(const Ref& value, const Path& path, int depth, std::vector<nlohmann::json>* merges) {
    const NodeKind kind = doc_.kind(value);
    if (kind == NodeKind::kMap) {
      merges->push_back(convert(value, path, depth + 1));
      return;
    }
    if (kind == NodeKind::kSequence) {
      bool ok = true;
      doc_.for_each_item(value, [&](const Ref& item) { ok = ok && doc_.kind(item) == NodeKind::kMap; });
      if (ok) {
        doc_.for_each_item(value,
                           [&](const Ref& item) { merges->push_back(convert(item, path, depth + 1)); });
        return;
      }
    }
    error(join_key(path.str(), "<<"), "a merge key needs a mapping or a list of mappings");
  }

  void error(const Path& path, const std::string& message) { error(path.str(), message); }
  void error(const std::string& path, const std::string& message) {
    if (r_->errors.size() < kMaxErrors)
      r_->errors.push_back(fmt::format("{}: {}", shown(path), message));
    else if (r_->errors.size() == kMaxErrors)
      r_->errors.push_back(fmt::format("(root): more than {} errors; the rest are not shown", kMaxErrors));
  }
  void refuse(const std::string& message) {
    if (refused_) return;
    refused_ = true;
    r_->errors.push_back("(root): " + message);
  }

  const Doc& doc_;
  YamlToJsonResult* r_;
  const size_t max_nodes_, max_bytes_;
  size_t nodes_ = 0, bytes_ = 0;
  bool refused_ = false;
};

YamlToJsonResult convert_document(const YamlTree& tree, size_t text_size) {
  YamlToJsonResult r;
  try {
    const YamlTreeDoc doc(tree);
    Converter<YamlTreeDoc> c(doc, &r, tree.node_count() + kMaxAliasNodes, text_size + kMaxAliasBytes);
    r.value = c.convert(tree.root(), Path{}, 0);
    if (c.refused()) r.value = nullptr;  // nothing of a refused document is used
  } catch (const std::exception& e) {    // bad_alloc, or nlohmann on something unforeseen: never escapes
    r.value = nullptr;
    r.errors.push_back(fmt::format("(root): cannot read the YAML document: {}", e.what()));
  }
  return r;
}

}  // namespace

nlohmann::json resolve_plain_scalar(std::string_view text) { return resolve_plain(text, nullptr); }

YamlToJsonResult parse_yaml_to_json(std::string_view text, const std::string& source_name) {
  std::string error;
  const auto tree = parse_yaml_tree(text, &error);
  if (!tree) {
    YamlToJsonResult r;
    r.errors.push_back(fmt::format("{}:{}", source_name, error));
    return r;
  }
  if (!tree->has_root()) return YamlToJsonResult{nullptr, {}, {}};
  return convert_document(*tree, text.size());
}

}  // namespace netprobe
