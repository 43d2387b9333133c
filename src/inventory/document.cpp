#include "inventory/document.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <ctime>

#include <fmt/format.h>

#include "config/loader.h"
#include "config/schema_validator.h"
#include "config/yaml_json.h"
#include "logging/escape.h"

namespace netprobe {
namespace {

using Json = nlohmann::json;

// Keys of a dynamic target that static targets do not have; everything else is handed to the config loader.
constexpr std::string_view kDynamicOnlyKeys[] = {"hostname", "groups", "lifetime", "creation_date"};

const SchemaValidator* inventory_schema_validator(std::string* error) {
  static const Result<SchemaValidator> compiled =
      SchemaValidator::compile_text(embedded_inventory_schema(), "the embedded inventory schema");
  return validator_or_error(compiled, error);
}

// "targets[12].dst_port: msg" -> (12, "dst_port: msg"); "targets[12]: msg" -> (12, "msg").
std::optional<std::pair<size_t, std::string>> split_target_error(const std::string& e) {
  constexpr std::string_view kPrefix = "targets[";
  if (e.compare(0, kPrefix.size(), kPrefix) != 0) return std::nullopt;
  const size_t close = e.find(']', kPrefix.size());
  if (close == std::string::npos) return std::nullopt;
  size_t index = 0;
  const char* first = e.data() + kPrefix.size();
  if (std::from_chars(first, e.data() + close, index).ptr != e.data() + close) return std::nullopt;
  std::string rest = e.substr(close + 1);
  if (rest.starts_with("."))
    rest.erase(0, 1);
  else if (rest.starts_with(": "))
    rest.erase(0, 2);
  return std::make_pair(index, rest);
}

// The loader's "targets.t.dst_port: msg" / "targets.t: msg" for the synthetic target "t" -> "dst_port: msg".
std::string strip_synthetic(const std::string& e) {
  if (e.starts_with("targets.t.")) return e.substr(10);
  if (e.starts_with("targets.t: ")) return e.substr(11);
  return e;
}

std::string join_messages(const std::vector<std::string>& messages) {
  std::string out;
  for (const auto& m : messages) out += (out.empty() ? "" : "; ") + m;
  return out;
}

std::string describe_type(const Json& v) {
  switch (v.type()) {
    case Json::value_t::null:
      return "nothing (null)";
    case Json::value_t::string:
      return "a string";
    case Json::value_t::array:
      return "a list";
    case Json::value_t::boolean:
      return "a boolean";
    case Json::value_t::object:
      return "a mapping";
    default:
      return "a number";
  }
}

// Nanos since the epoch overflow in 2262: creation dates end in 2223 and lifetimes at 10 years, so that
// creation_date + lifetime always fits.
constexpr int64_t kMaxCreationSeconds = 8'000'000'000;
constexpr int64_t kMaxLifetimeSeconds = 315'360'000;

}  // namespace

std::optional<Nanos> parse_lifetime(std::string_view text) {
  if (text.empty()) return std::nullopt;
  int64_t total = 0;
  size_t i = 0;
  const bool bare = std::all_of(text.begin(), text.end(), [](char c) { return std::isdigit(uint8_t(c)); });
  while (i < text.size()) {
    int64_t n = 0;
    const auto [p, ec] = std::from_chars(text.data() + i, text.data() + text.size(), n);
    if (ec != std::errc() || p == text.data() + i) return std::nullopt;
    i = size_t(p - text.data());
    int64_t unit = 1;
    if (!bare) {
      if (i >= text.size()) return std::nullopt;
      switch (text[i++]) {
        case 'w':
          unit = 7 * 86400;
          break;
        case 'd':
          unit = 86400;
          break;
        case 'h':
          unit = 3600;
          break;
        case 'm':
          unit = 60;
          break;
        case 's':
          unit = 1;
          break;
        default:
          return std::nullopt;
      }
    }
    if (n > kMaxLifetimeSeconds / unit) return std::nullopt;
    total += n * unit;
    if (total > kMaxLifetimeSeconds)
      return std::nullopt;  // beyond 10 years: a typo, and Nanos would overflow
  }
  if (total <= 0) return std::nullopt;
  return std::chrono::seconds(total);
}

std::optional<Nanos> parse_rfc3339(std::string_view s) {
  // YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM)
  auto num = [&](size_t pos, size_t len, int& out) {
    if (pos + len > s.size()) return false;
    out = 0;
    for (size_t k = pos; k < pos + len; ++k) {
      if (!std::isdigit(uint8_t(s[k]))) return false;
      out = out * 10 + (s[k] - '0');
    }
    return true;
  };
  int year, month, day, hour, minute, second;
  if (!num(0, 4, year) || s.size() < 20 || s[4] != '-' || !num(5, 2, month) || s[7] != '-' ||
      !num(8, 2, day) || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') || !num(11, 2, hour) ||
      s[13] != ':' || !num(14, 2, minute) || s[16] != ':' || !num(17, 2, second))
    return std::nullopt;
  if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 60)
    return std::nullopt;
  size_t i = 19;
  int64_t frac_ns = 0;
  if (i < s.size() && s[i] == '.') {
    ++i;
    int64_t scale = 100'000'000;
    const size_t start = i;
    for (; i < s.size() && std::isdigit(uint8_t(s[i])); ++i) {
      frac_ns += (s[i] - '0') * scale;
      scale /= 10;
    }
    if (i == start) return std::nullopt;
  }
  int64_t offset_s = 0;
  if (i < s.size() && (s[i] == 'Z' || s[i] == 'z')) {
    ++i;
  } else if (i < s.size() && (s[i] == '+' || s[i] == '-')) {
    int oh, om;
    if (!num(i + 1, 2, oh) || i + 3 >= s.size() || s[i + 3] != ':' || !num(i + 4, 2, om) || oh > 23 ||
        om > 59)
      return std::nullopt;
    offset_s = (oh * 3600 + om * 60) * (s[i] == '+' ? 1 : -1);
    i += 6;
  } else {
    return std::nullopt;  // a local time would mean something different on every probe
  }
  if (i != s.size()) return std::nullopt;
  std::tm tm{};
  tm.tm_year = year - 1900;
  tm.tm_mon = month - 1;
  tm.tm_mday = day;
  tm.tm_hour = hour;
  tm.tm_min = minute;
  tm.tm_sec = second;
  const time_t t = timegm(&tm);
  if (tm.tm_mday != day) return std::nullopt;  // 2026-02-31 normalised into March
  // Nanos since the epoch only reach the year 2262 (the fuzzer's year 1013 overflowed them).
  const int64_t secs = int64_t(t) - offset_s;
  if (secs < 0 || secs > kMaxCreationSeconds) return std::nullopt;
  return std::chrono::seconds(secs) + Nanos(frac_ns);
}

namespace {

// JSON first (what most plug-ins write, and much faster than YAML), then YAML read as PyYAML would.
// nlohmann's parser is iterative, but the validator and the converter recurse once per level: a value
// nested deeper than YAML's limit (64) is dropped while parsing and the document refused.
Result<Json> read_json_or_yaml(std::string_view text, const std::string& plugin) {
  constexpr int kMaxDepth = 64;
  bool too_deep = false;
  const Json::parser_callback_t depth_guard = [&](int depth, Json::parse_event_t event, Json&) {
    if (depth > kMaxDepth &&
        (event == Json::parse_event_t::object_start || event == Json::parse_event_t::array_start)) {
      too_deep = true;
      return false;
    }
    return !too_deep;
  };
  Json doc = Json::parse(text, depth_guard, /*allow_exceptions=*/false);
  if (too_deep) return Error{fmt::format("JSON nested deeper than {} levels", kMaxDepth)};
  if (!doc.is_discarded()) return doc;
  YamlToJsonResult yaml;
  try {
    yaml = parse_yaml_to_json(text, plugin);
  } catch (const std::exception& e) {
    return Error{fmt::format("not JSON nor YAML: {}", e.what())};
  }
  if (!yaml.errors.empty()) return Error{fmt::format("not JSON nor YAML: {}", yaml.errors.front())};
  return std::move(yaml.value);
}

// Schema errors by target index; an error about the document's shape itself is returned as the Error.
Result<std::map<size_t, std::vector<std::string>>> schema_errors_by_target(const Json& doc) {
  std::string schema_error;
  const SchemaValidator* validator = inventory_schema_validator(&schema_error);
  if (!validator) return Error{"internal error: the inventory schema cannot be used: " + schema_error};
  std::vector<std::string> errors;
  validator->validate(doc, &errors);
  std::map<size_t, std::vector<std::string>> by_target;
  for (const auto& e : errors) {
    auto split = split_target_error(e);
    if (!split) return Error{e};  // the document's shape itself is wrong: nothing to salvage
    by_target[split->first].push_back(split->second);
  }
  return by_target;
}

// The static-target rules (destination syntax, dst_port for TCPsyn/UDPunreachable, key-space limits)
// live in the config loader: a dynamic target is checked as the one target "t" of a configuration.
Json one_target_config(const Json& t, const DocumentOptions& options) {
  Json st = t;
  for (auto key : kDynamicOnlyKeys) st.erase(std::string(key));
  st["auto_register_to_groups"] = false;
  st["explicit_groups"] = Json{{"register_to", t["groups"]}};
  Json groups = Json::object();
  int port = 1024;
  for (const auto& g : t["groups"]) {  // distinct ports: the real groups' ranges are checked by the plan
    groups[g.get<std::string>()] = Json{{"src_port_a", port}, {"src_port_z", port + 1}};
    port += 2;
  }
  return Json{{"global",
               {{"probe_name", "inventory"},
                {"interval", 30},
                {"nb_proc", 1},
                {"logging_level", "INFO"},
                {"prometheus_port", 0},
                {"dns_update_interval", options.default_dns_update_interval_s}}},
              {"groups", groups},
              {"targets", {{"t", st}}}};
}

// lifetime and creation_date, checked again here (the schema allows 10 years) so that Nanos never overflow.
void read_dates(const Json& t, DynamicTarget& dt, std::vector<std::string>& problems) {
  if (const Json* lt = t.contains("lifetime") ? &t["lifetime"] : nullptr) {
    if (lt->is_string())
      dt.lifetime = parse_lifetime(lt->get<std::string>());
    else if (lt->is_number_integer() && lt->get<int64_t>() > 0 && lt->get<int64_t>() <= kMaxLifetimeSeconds)
      dt.lifetime = std::chrono::seconds(lt->get<int64_t>());
    if (!dt.lifetime)
      problems.push_back(fmt::format("lifetime: {} is not a duration", escape_for_log(lt->dump(), 64)));
  }
  if (const Json* cd = t.contains("creation_date") ? &t["creation_date"] : nullptr) {
    if (cd->is_string())
      dt.creation_date = parse_rfc3339(cd->get<std::string>());
    else if (std::isfinite(cd->get<double>()) && cd->get<double>() >= 0 &&
             cd->get<double>() <= double(kMaxCreationSeconds))
      dt.creation_date = Nanos(int64_t(cd->get<double>() * 1e9));
    if (!dt.creation_date)
      problems.push_back(fmt::format("creation_date: {} is not a date", escape_for_log(cd->dump(), 64)));
  }
}

// One schema-valid target: the loader's checks, its dates, and its configuration under its dynamic name.
// Returns the reasons it is rejected, if any; warnings go to `out`.
std::optional<std::string> read_target(const Json& t, const std::string& hostname, const std::string& plugin,
                                       const std::string& who, const DocumentOptions& options,
                                       InventoryDocument& out) {
  LoadedConfig loaded = load_config_json(one_target_config(t, options), plugin);
  std::vector<std::string> problems;
  // Without a token a UDPquery answer is matched by its 5-tuple alone, which is only safe when no other
  // target shares it and each flow carries one probe at a time: checks against the real groups and every
  // other target that a document, read on its own, cannot make.
  if (t["type"] == "UDPquery" && !t.contains("token"))
    problems.push_back(
        "token: required for a UDPquery target from an inventory (without one, answers are matched by their "
        "5-tuple alone, which cannot be checked against the other targets and the real groups here)");
  for (const auto& e : loaded.diagnostics.errors) problems.push_back(strip_synthetic(e));
  for (const auto& w : loaded.diagnostics.warnings)
    out.warnings.push_back(fmt::format("{}: {}", who, strip_synthetic(w)));
  DynamicTarget dt;
  dt.hostname = hostname;
  read_dates(t, dt, problems);
  if (!problems.empty() || !loaded.ok()) return join_messages(problems);
  dt.config = std::move(loaded.config->targets.at("t"));
  dt.config.name = plugin + "_" + hostname;
  dt.config.description = "from_" + plugin;
  dt.config.is_dynamic = true;
  dt.config.auto_register_to_groups = false;
  dt.config.register_to.clear();
  dt.config.groups = t["groups"].get<std::vector<std::string>>();
  std::sort(dt.config.groups.begin(), dt.config.groups.end());
  dt.canonical = t.dump();  // nlohmann's object keeps keys sorted: a canonical form
  out.targets.push_back(std::move(dt));
  return std::nullopt;
}

}  // namespace

Result<InventoryDocument> parse_inventory_document(std::string_view text, const std::string& plugin,
                                                   const DocumentOptions& options) {
  Result<Json> doc = read_json_or_yaml(text, plugin);
  if (!doc) return doc.error();
  if (!doc->is_object())
    return Error{fmt::format("expected a mapping with a `targets` list, got {}", describe_type(*doc))};
  auto target_errors = schema_errors_by_target(*doc);
  if (!target_errors) return target_errors.error();

  InventoryDocument out;
  const Json& targets = doc->at("targets");
  std::map<std::string, size_t> seen;  // hostname -> first index
  for (size_t i = 0; i < targets.size(); ++i) {
    const Json& t = targets[i];
    std::string hostname;
    if (t.is_object() && t.contains("hostname") && t["hostname"].is_string())
      hostname = t["hostname"].get<std::string>();
    const std::string who =
        fmt::format("{}: targets[{}]{}", plugin, i,
                    hostname.empty() ? "" : fmt::format(" (hostname {})", escape_for_log(hostname, 64)));
    if (auto it = target_errors->find(i); it != target_errors->end()) {
      out.rejected.push_back(fmt::format("{}: {}", who, join_messages(it->second)));
      continue;
    }
    if (auto [it, inserted] = seen.emplace(hostname, i); !inserted) {
      out.rejected.push_back(fmt::format(
          "{}: hostname: duplicate of targets[{}] (target names must be unique)", who, it->second));
      continue;
    }
    if (auto why = read_target(t, hostname, plugin, who, options, out))
      out.rejected.push_back(fmt::format("{}: {}", who, *why));
  }
  return out;
}

}  // namespace netprobe
