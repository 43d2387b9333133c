#include "config/schema_validator.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <map>
#include <optional>
#include <set>

#include <fmt/format.h>
#include <re2/re2.h>

#include "config/path.h"

namespace netprobe {

namespace {

enum TypeBit : uint8_t {
  kNull = 1,
  kBoolean = 2,
  kInteger = 4,
  kNumber = 8,
  kString = 16,
  kArray = 32,
  kObject = 64,
};

// RE2, not std::regex: std::regex backtracks recursively and overflows the stack on a long string (a
// 14,000-character probe_name crashed the prober); RE2 runs in time linear in the text, without recursion.
struct Pattern {
  std::string source;
  std::shared_ptr<const RE2> re;
  bool search(std::string_view text) const { return RE2::PartialMatch(text, *re); }
};

struct Node {
  int ref = -1;          // index of the referenced node, when this node is a $ref
  std::string ref_name;  // until resolved
  uint8_t types = 0;     // 0 = any type
  std::map<std::string, int> properties;
  std::vector<std::pair<Pattern, int>> pattern_properties;
  bool additional_allowed = true;
  int additional_schema = -1;
  std::vector<std::string> required;
  std::optional<nlohmann::json> enum_values;
  std::optional<Pattern> pattern;
  std::optional<nlohmann::json> minimum, maximum, exclusive_minimum;
  int items = -1;
  std::optional<size_t> min_items, max_items, max_length;
  bool unique_items = false;
};

std::string join(const std::string& path, std::string_view key) { return config_path_join(path, key); }
std::string shown(const std::string& path) { return path.empty() ? "(root)" : path; }

// Characters (code points) of a UTF-8 string, as JSON Schema's maxLength counts them.
size_t utf8_length(std::string_view s) {
  size_t n = 0;
  for (char c : s) n += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  return n;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = char(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string type_name(uint8_t bit) {
  switch (bit) {
    case kNull:
      return "null";
    case kBoolean:
      return "a boolean (true/false)";
    case kInteger:
      return "an integer";
    case kNumber:
      return "a number";
    case kString:
      return "a string";
    case kArray:
      return "a list";
    case kObject:
      return "a mapping";
  }
  return "?";
}

std::string expected_types(uint8_t types) {
  std::vector<std::string> names;
  for (uint8_t bit : {kObject, kArray, kString, kInteger, kNumber, kBoolean, kNull})
    if (types & bit) {
      if (bit == kInteger && (types & kNumber)) continue;
      names.push_back(type_name(bit));
    }
  std::string out;
  for (size_t i = 0; i < names.size(); ++i) {
    if (i) out += i + 1 == names.size() ? " or " : ", ";
    out += names[i];
  }
  return out;
}

// How a value is shown in messages: strings quoted, scalars as written, containers by kind.
std::string describe(const nlohmann::json& v) {
  switch (v.type()) {
    case nlohmann::json::value_t::null:
      return "an empty value";
    case nlohmann::json::value_t::object:
      return "a mapping";
    case nlohmann::json::value_t::array:
      return "a list";
    case nlohmann::json::value_t::string: {
      std::string s = v.get<std::string>();
      if (s.size() > 80) s = s.substr(0, 77) + "...";
      return nlohmann::json(s).dump();
    }
    case nlohmann::json::value_t::number_float:
      // nlohmann prints NaN and infinities as null; YAML's .nan/.inf can reach us.
      if (!std::isfinite(v.get<double>())) return fmt::format("{}", v.get<double>());
      return v.dump();
    default:
      return v.dump();
  }
}

// Enum values listed unquoted: `TCPsyn, ICMPping, UDPunreachable`.
std::string list_values(const nlohmann::json& values) {
  std::string out;
  for (const auto& v : values) {
    if (!out.empty()) out += ", ";
    out += v.is_string() ? v.get<std::string>() : v.dump();
  }
  return out;
}

bool type_matches(uint8_t types, const nlohmann::json& v) {
  if (types == 0) return true;
  switch (v.type()) {
    case nlohmann::json::value_t::null:
      return types & kNull;
    case nlohmann::json::value_t::boolean:
      return types & kBoolean;
    case nlohmann::json::value_t::number_integer:
    case nlohmann::json::value_t::number_unsigned:
      return types & (kInteger | kNumber);
    case nlohmann::json::value_t::number_float:
      return types & kNumber;
    case nlohmann::json::value_t::string:
      return types & kString;
    case nlohmann::json::value_t::array:
      return types & kArray;
    case nlohmann::json::value_t::object:
      return types & kObject;
    default:
      return false;
  }
}

// Numbers compare as long double so that 64-bit integers and doubles are both exact enough here.
long double as_number(const nlohmann::json& v) {
  if (v.is_number_unsigned()) return (long double)v.get<uint64_t>();
  if (v.is_number_integer()) return (long double)v.get<int64_t>();
  return (long double)v.get<double>();
}

class Compiler {
 public:
  std::vector<Node> nodes;
  std::vector<std::string> errors;

  int compile(const nlohmann::json& s, const std::string& where) {
    const int idx = int(nodes.size());
    nodes.emplace_back();
    if (!s.is_object()) {
      errors.push_back(fmt::format("schema {}: a schema must be an object", where));
      return idx;
    }
    Node n;
    bool has_ref = false;
    size_t validation_keywords = 0;
    for (auto it = s.begin(); it != s.end(); ++it) {
      const std::string& kw = it.key();
      const auto& v = it.value();
      const std::string at = where + "/" + kw;
      if (kw == "default" || kw == "description" || kw == "title" || kw == "$schema" || kw == "$id" ||
          kw == "examples") {
        continue;  // annotations
      }
      if (kw == "definitions") {
        if (where != "#")
          errors.push_back(fmt::format("schema {}: definitions are supported at the root only", at));
        continue;  // compiled by compile_root()
      }
      ++validation_keywords;
      if (kw == "$ref") {
        has_ref = true;
        const std::string prefix = "#/definitions/";
        if (!v.is_string() || v.get<std::string>().rfind(prefix, 0) != 0 ||
            v.get<std::string>().find('/', prefix.size()) != std::string::npos) {
          errors.push_back(
              fmt::format("schema {}: only \"#/definitions/<name>\" references are supported", at));
        } else {
          n.ref_name = v.get<std::string>().substr(prefix.size());
        }
      } else if (kw == "type") {
        auto add = [&](const nlohmann::json& t) {
          static const std::map<std::string, uint8_t> kTypes = {
              {"null", kNull},     {"boolean", kBoolean}, {"integer", kInteger}, {"number", kNumber},
              {"string", kString}, {"array", kArray},     {"object", kObject}};
          const auto f = t.is_string() ? kTypes.find(t.get<std::string>()) : kTypes.end();
          if (f == kTypes.end())
            errors.push_back(fmt::format("schema {}: unknown type {}", at, t.dump()));
          else
            n.types |= f->second;
        };
        if (v.is_array()) {
          for (const auto& t : v) add(t);
        } else {
          add(v);
        }
      } else if (kw == "properties") {
        if (!v.is_object())
          errors.push_back(fmt::format("schema {}: must be an object", at));
        else
          for (auto p = v.begin(); p != v.end(); ++p)
            n.properties[p.key()] = compile(p.value(), at + "/" + p.key());
      } else if (kw == "patternProperties") {
        if (!v.is_object())
          errors.push_back(fmt::format("schema {}: must be an object", at));
        else
          for (auto p = v.begin(); p != v.end(); ++p) {
            auto re = make_pattern(p.key(), at);
            const int child = compile(p.value(), at + "/" + p.key());
            if (re) n.pattern_properties.emplace_back(std::move(*re), child);
          }
      } else if (kw == "additionalProperties") {
        if (v.is_boolean())
          n.additional_allowed = v.get<bool>();
        else
          n.additional_schema = compile(v, at);
      } else if (kw == "required") {
        if (!v.is_array())
          errors.push_back(fmt::format("schema {}: must be a list of names", at));
        else
          for (const auto& r : v) {
            if (r.is_string())
              n.required.push_back(r.get<std::string>());
            else
              errors.push_back(fmt::format("schema {}: must be a list of names", at));
          }
      } else if (kw == "enum") {
        if (!v.is_array() || v.empty())
          errors.push_back(fmt::format("schema {}: must be a non-empty list", at));
        else
          n.enum_values = v;
      } else if (kw == "pattern") {
        if (!v.is_string())
          errors.push_back(fmt::format("schema {}: must be a string", at));
        else
          n.pattern = make_pattern(v.get<std::string>(), at);
      } else if (kw == "minimum" || kw == "maximum" || kw == "exclusiveMinimum") {
        if (!v.is_number())
          errors.push_back(fmt::format("schema {}: must be a number", at));
        else
          (kw == "minimum" ? n.minimum : kw == "maximum" ? n.maximum : n.exclusive_minimum) = v;
      } else if (kw == "items") {
        if (!v.is_object())
          errors.push_back(fmt::format("schema {}: only a single schema is supported", at));
        else
          n.items = compile(v, at);
      } else if (kw == "minItems" || kw == "maxItems" || kw == "maxLength") {
        if (!v.is_number_integer() || v.get<int64_t>() < 0)
          errors.push_back(fmt::format("schema {}: must be a non-negative integer", at));
        else
          (kw == "minItems" ? n.min_items : kw == "maxItems" ? n.max_items : n.max_length) = v.get<size_t>();
      } else if (kw == "uniqueItems") {
        if (!v.is_boolean())
          errors.push_back(fmt::format("schema {}: must be a boolean", at));
        else
          n.unique_items = v.get<bool>();
      } else {
        errors.push_back(
            fmt::format("schema {}: unsupported keyword \"{}\" (netprobe's validator implements only "
                        "the keywords its schema uses; add support before using it)",
                        where, kw));
      }
    }
    if (has_ref && validation_keywords > 1)
      errors.push_back(
          fmt::format("schema {}: keywords beside $ref are ignored by draft-07; not allowed", where));
    nodes[idx] = std::move(n);
    return idx;
  }

  std::optional<Pattern> make_pattern(const std::string& source, const std::string& at) {
    RE2::Options options;
    options.set_log_errors(false);
    auto re = std::make_shared<const RE2>(source, options);
    if (!re->ok()) {
      errors.push_back(fmt::format("schema {}: invalid pattern {}: {}", at, source, re->error()));
      return std::nullopt;
    }
    return Pattern{source, std::move(re)};
  }
};

}  // namespace

struct SchemaValidator::Impl {
  std::vector<Node> nodes;

  const Node& resolve(int idx) const {
    // Refs were resolved at compile time and cycles of pure refs rejected, so this terminates.
    while (nodes[idx].ref >= 0) idx = nodes[idx].ref;
    return nodes[idx];
  }

  void validate(int idx, const nlohmann::json& v, const std::string& path,
                std::vector<std::string>* errors) const {
    const Node& n = resolve(idx);
    auto error = [&](const std::string& msg) { errors->push_back(fmt::format("{}: {}", shown(path), msg)); };
    if (!type_matches(n.types, v)) {
      error(fmt::format("expected {}, got {}", expected_types(n.types), describe(v)));
      return;  // nothing else is meaningful on a value of the wrong type
    }
    if (n.enum_values) {
      bool found = false;
      for (const auto& e : *n.enum_values)
        // The JSON types must agree too: nlohmann says 1 == 1.0 and we want `true` != 1.
        if (e == v && e.is_number() == v.is_number() && e.is_boolean() == v.is_boolean()) found = true;
      if (!found) error(fmt::format("{} is not one of {}", describe(v), list_values(*n.enum_values)));
    }
    if (v.is_string()) {
      const std::string& s = v.get_ref<const std::string&>();
      const size_t length = n.max_length ? utf8_length(s) : 0;
      if (n.max_length && length > *n.max_length)
        error(fmt::format("{} is too long: {} characters, at most {}", describe(v), length, *n.max_length));
      else if (n.pattern && !n.pattern->search(s))
        error(fmt::format("{} does not match {}", describe(v), n.pattern->source));
    }
    if (v.is_number()) {
      const long double x = as_number(v);
      if (n.minimum && x < as_number(*n.minimum))
        error(fmt::format("{} is less than the minimum {}", describe(v), n.minimum->dump()));
      if (n.maximum && x > as_number(*n.maximum))
        error(fmt::format("{} is greater than the maximum {}", describe(v), n.maximum->dump()));
      if (n.exclusive_minimum && !(x > as_number(*n.exclusive_minimum)))
        error(fmt::format("{} must be greater than {}", describe(v), n.exclusive_minimum->dump()));
    }
    if (v.is_array()) validate_array(n, v, path, errors);
    if (v.is_object()) validate_object(n, v, path, errors);
  }

  void validate_array(const Node& n, const nlohmann::json& v, const std::string& path,
                      std::vector<std::string>* errors) const {
    if (n.min_items && v.size() < *n.min_items)
      errors->push_back(
          fmt::format("{}: expected at least {} item(s), got {}", shown(path), *n.min_items, v.size()));
    if (n.max_items && v.size() > *n.max_items)
      errors->push_back(
          fmt::format("{}: expected at most {} item(s), got {}", shown(path), *n.max_items, v.size()));
    if (n.items >= 0)
      for (size_t i = 0; i < v.size(); ++i)
        validate(n.items, v[i], path + "[" + std::to_string(i) + "]", errors);
    if (n.unique_items && v.size() > 1) {
      // Sort indices by value: O(n log n) rather than comparing every pair.
      std::vector<size_t> order(v.size());
      for (size_t i = 0; i < order.size(); ++i) order[i] = i;
      std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return v[a] < v[b]; });
      std::vector<std::pair<size_t, size_t>> dups;  // (later index, first index)
      size_t group_start = 0;
      for (size_t k = 1; k < order.size(); ++k) {
        if (v[order[k]] == v[order[group_start]])
          dups.emplace_back(order[k], order[group_start]);
        else
          group_start = k;
      }
      std::sort(dups.begin(), dups.end());
      for (const auto& [later, first] : dups)
        errors->push_back(fmt::format("{}[{}]: {} is a duplicate of item {} (items must be unique)",
                                      shown(path), later, describe(v[later]), first));
    }
  }

  void validate_object(const Node& n, const nlohmann::json& v, const std::string& path,
                       std::vector<std::string>* errors) const {
    for (const auto& r : n.required)
      if (!v.contains(r)) errors->push_back(fmt::format("{}: required key missing", join(path, r)));
    for (auto it = v.begin(); it != v.end(); ++it) {
      const std::string& key = it.key();
      const std::string child_path = join(path, key);
      bool matched = false;
      if (auto p = n.properties.find(key); p != n.properties.end()) {
        matched = true;
        validate(p->second, it.value(), child_path, errors);
      }
      for (const auto& [pat, child] : n.pattern_properties)
        if (pat.search(key)) {
          matched = true;
          validate(child, it.value(), child_path, errors);
        }
      if (matched) continue;
      if (n.additional_schema >= 0) {
        validate(n.additional_schema, it.value(), child_path, errors);
      } else if (!n.additional_allowed) {
        errors->push_back(fmt::format("{}: {}", shown(child_path), unknown_key_message(n, key)));
      }
    }
  }

  static std::string unknown_key_message(const Node& n, const std::string& key) {
    if (n.properties.empty() && !n.pattern_properties.empty()) {
      // A map of names (groups, targets): the key is a name that breaks the naming rule.
      std::string msg = fmt::format("invalid name {}: does not match {}", quoted_excerpt(key),
                                    n.pattern_properties[0].first.source);
      for (const auto& [pat, child] : n.pattern_properties)
        if (const auto l = lower(key); l != key && pat.search(l))
          return msg + fmt::format(" (did you mean \"{}\"?)", l);
      return msg;
    }
    std::vector<std::string> names;
    for (const auto& [name, child] : n.properties) names.push_back(name);
    if (const auto hint = closest_match(key, names); !hint.empty())
      return fmt::format("unknown key (did you mean \"{}\"?)", hint);
    std::string allowed;
    for (const auto& name : names) allowed += (allowed.empty() ? "" : ", ") + name;
    return fmt::format("unknown key (allowed: {})", allowed);
  }
};

Result<SchemaValidator> SchemaValidator::compile_text(std::string_view schema_json, std::string_view what) {
  const nlohmann::json schema = nlohmann::json::parse(schema_json, nullptr, /*allow_exceptions=*/false);
  if (schema.is_discarded()) return Error{std::string(what) + " is not valid JSON"};
  return compile(schema);
}

Result<SchemaValidator> SchemaValidator::compile(const nlohmann::json& schema) {
  Compiler c;
  std::map<std::string, int> definitions;
  const int root = c.compile(schema, "#");
  if (schema.is_object() && schema.contains("definitions")) {
    const auto& defs = schema["definitions"];
    if (!defs.is_object()) {
      c.errors.push_back("schema #/definitions: must be an object");
    } else {
      for (auto it = defs.begin(); it != defs.end(); ++it)
        definitions[it.key()] = c.compile(it.value(), "#/definitions/" + it.key());
    }
  }
  for (auto& n : c.nodes) {
    if (n.ref_name.empty()) continue;
    const auto f = definitions.find(n.ref_name);
    if (f == definitions.end())
      c.errors.push_back(fmt::format("schema: $ref to unknown definition \"{}\"", n.ref_name));
    else
      n.ref = f->second;
  }
  // A cycle made only of $refs would never reach a real schema.
  for (size_t i = 0; i < c.nodes.size(); ++i) {
    int idx = int(i);
    size_t steps = 0;
    while (c.nodes[idx].ref >= 0 && steps <= c.nodes.size()) {
      idx = c.nodes[idx].ref;
      ++steps;
    }
    if (steps > c.nodes.size()) {
      c.errors.push_back("schema: cycle of $ref without any schema in between");
      break;
    }
  }
  if (!c.errors.empty()) {
    std::string msg;
    for (const auto& e : c.errors) msg += (msg.empty() ? "" : "\n") + e;
    return Error{msg};
  }
  auto impl = std::make_unique<Impl>();
  impl->nodes = std::move(c.nodes);
  (void)root;  // node 0
  return SchemaValidator(std::move(impl));
}

bool SchemaValidator::validate(const nlohmann::json& doc, std::vector<std::string>* errors) const {
  const size_t before = errors->size();
  impl_->validate(0, doc, "", errors);
  return errors->size() == before;
}

SchemaValidator::SchemaValidator(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
SchemaValidator::SchemaValidator(SchemaValidator&&) noexcept = default;
SchemaValidator& SchemaValidator::operator=(SchemaValidator&&) noexcept = default;
SchemaValidator::~SchemaValidator() = default;

size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j)
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

std::string closest_match(std::string_view word, const std::vector<std::string>& candidates) {
  const std::string lw = lower(word);
  for (const auto& c : candidates)
    if (lower(c) == lw) return c;
  const size_t limit = word.size() >= 9 ? 3 : word.size() >= 5 ? 2 : 1;
  std::string best;
  size_t best_d = limit + 1;
  for (const auto& c : candidates) {
    const size_t d = edit_distance(lw, lower(c));
    if (d < best_d) {
      best_d = d;
      best = c;
    }
  }
  return best;
}

}  // namespace netprobe
