// Issue 10: configuration text written by an attacker or an unlucky operator. Each case crashed, hung,
// exploded or was accepted on main; now each is refused with a message that says where and why.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "config/loader.h"
#include "config/schema_validator.h"
#include "config/yaml_json.h"
#include "test_util.h"

namespace netprobe {
namespace {

using nlohmann::json;
using ::testing::AllOf;
using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::SizeIs;

std::string config_with(const std::string& global_extra, const std::string& groups = "  g: {}\n",
                        const std::string& probe_name = "lab") {
  return "global:\n  probe_name: " + probe_name +
         "\n  interval: 30\n  nb_proc: 1\n  logging_level: INFO\n  prometheus_port: 8000\n"
         "  dns_update_interval: 300\n" +
         global_extra + "groups:\n" + groups + "targets:\n  t: {type: ICMPping, destination: 192.0.2.1}\n";
}

LoadedConfig load(const std::string& text) { return load_config_string(text, "x.yaml"); }

// Defect 1: std::regex recursed once per character and overflowed the stack (SIGSEGV).
TEST(config_hostile, LongStringsInPatternCheckedFieldsAreRefusedWithoutCrashing) {
  const std::string name14k(14000, 'a');
  LoadedConfig r = load(config_with("", "  g: {}\n", name14k));
  EXPECT_FALSE(r.ok());
  EXPECT_THAT(r.diagnostics.errors, ElementsAre(AllOf(HasSubstr("global.probe_name: \"aaaa"),
                                                      HasSubstr("too long: 14000 characters"))));
  const std::string group30k(30000, 'g');
  r = load(config_with("", "  ? " + group30k + "\n  : {}\n"));  // explicit key: YAML caps implicit ones
  EXPECT_FALSE(r.ok());
  ASSERT_THAT(r.diagnostics.errors, SizeIs(1));
  EXPECT_THAT(r.diagnostics.errors[0], HasSubstr("groups[\"gggg"));
  EXPECT_LT(r.diagnostics.errors[0].size(), 400u);  // the name is cut in the message
  // The pattern engine itself takes any length (RE2 is linear and not recursive).
  const auto v = SchemaValidator::compile(json::parse(R"({"type": "string", "pattern": "^([a-z])+$"})"));
  ASSERT_TRUE(v.ok());
  std::vector<std::string> errors;
  EXPECT_TRUE(v.value().validate(std::string(1'000'000, 'a'), &errors));
  EXPECT_FALSE(v.value().validate(std::string(1'000'000, 'a') + "B", &errors));
}

// Defect 2: yaml-cpp 0.7's LoadAll looped for ever (and grew without bound) on these.
TEST(config_hostile, TextsThatHungTheOldParserAreSyntaxErrors) {
  for (const char* text : {",", "{},\n c}", ",\n,", "[,]", "{,}", "- ,\n"}) {
    const auto r = parse_yaml_to_json(text, "x.yaml");
    ASSERT_THAT(r.errors, SizeIs(1)) << text;
    EXPECT_THAT(r.errors[0], ::testing::StartsWith("x.yaml:")) << text;
    EXPECT_TRUE(r.value.is_null());
  }
  EXPECT_THAT(parse_yaml_to_json("{},\n c}", "x.yaml").errors[0],
              ::testing::MatchesRegex("x\\.yaml:[0-9]+:[0-9]+: .*"));
}

// Defect 3: 644 bytes expanded to 3 GB (std::bad_alloc); a recursive alias wedged the loader and printed
// 1.5 GB of errors.
TEST(config_hostile, AliasBombsAreRefused) {
  std::string laughs = "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n";
  for (char c = 'b'; c <= 'i'; ++c) {
    laughs += std::string(1, c) + ": &" + c + " [";
    for (int k = 0; k < 9; ++k) laughs += std::string(k ? "," : "") + "*" + char(c - 1);
    laughs += "]\n";
  }
  auto r = parse_yaml_to_json(laughs, "x.yaml");
  EXPECT_THAT(r.errors, ElementsAre(HasSubstr("alias bomb")));
  EXPECT_TRUE(r.value.is_null());
  LoadedConfig loaded = load(laughs);
  EXPECT_THAT(loaded.diagnostics.errors, ElementsAre(HasSubstr("alias bomb")));

  r = parse_yaml_to_json("x: &x [*x, *x]\n", "x.yaml");
  EXPECT_THAT(r.errors, ElementsAre("x.yaml:1:8: recursive alias: *x is inside the node that &x names"));
  r = parse_yaml_to_json("a: &r {b: {c: *r}}\n", "x.yaml");
  EXPECT_THAT(r.errors, ElementsAre(HasSubstr("recursive alias")));
  // Sharing defaults by alias is fine.
  r = parse_yaml_to_json("d: &d {x: 1}\na: *d\nb: {<<: *d, y: 2}\n", "x.yaml");
  EXPECT_TRUE(r.errors.empty());
  EXPECT_EQ(r.value, json::parse(R"({"d":{"x":1},"a":{"x":1},"b":{"x":1,"y":2}})"));
}

// Defect 9: the address went into the HTTP server's listening_ports as written.
TEST(config_hostile, PrometheusAddressMustBeOneAddress) {
  for (const char* bad : {"9301,127.0.0.1", "127.0.0.1:80", "0.0.0.0,::", "", "localhost", "[::1]", "1.2.3",
                          "999.1.1.1", "::1 "}) {
    const LoadedConfig r = load(config_with(std::string("  prometheus_address: '") + bad + "'\n"));
    EXPECT_FALSE(r.ok()) << bad;
    EXPECT_THAT(r.diagnostics.errors, Contains(HasSubstr("global.prometheus_address"))) << bad;
  }
  for (const char* good : {"0.0.0.0", "127.0.0.1", "::", "::1", "2001:db8::1"}) {
    const LoadedConfig r = load(config_with(std::string("  prometheus_address: '") + good + "'\n"));
    EXPECT_TRUE(r.ok()) << good << ": " << (r.diagnostics.errors.empty() ? "" : r.diagnostics.errors[0]);
  }
}

// Defect 10: every number has a range; the extremes that broke the run are refused.
TEST(config_hostile, ExtremeNumbersAreRefused) {
  struct Row {
    std::string global, target;
  };
  for (const Row& row : std::vector<Row>{{"  timeout: 1e300\n", ""},
                                         {"  timeout: 1e-9\n", ""},
                                         {"  interval: 100000000\n", ""},
                                         {"  nb_proc: 100000\n", ""},
                                         {"  interval_packets: 1e30\n", ""},
                                         {"  max_packets_per_second: 1e30\n", ""},
                                         {"  dns_update_interval: 2000000000\n", ""},
                                         {"  reload_conf_interval: 2000000000\n", ""},
                                         {"", "timeout: 1e300"},
                                         {"", "nb_packets: 100000000"},
                                         {"", "threshold: {latency: 1e300}"},
                                         {"", "dns_update_interval: 2000000000"}}) {
    std::string text = config_with(row.global);
    if (!row.target.empty()) text.replace(text.find("192.0.2.1}"), 10, "192.0.2.1, " + row.target + "}");
    const LoadedConfig r = load(text);
    EXPECT_FALSE(r.ok()) << row.global << row.target;
    EXPECT_THAT(r.diagnostics.errors, Contains(HasSubstr("imum"))) << row.global << row.target;
  }
  EXPECT_TRUE(load(config_with("  timeout: 86400\n")).ok());
}

// Every number and string of both schemas is bounded (a field added later without a range fails here).
void expect_bounded(const json& s, const std::string& where) {
  if (!s.is_object()) return;
  if (s.contains("type") && !s.contains("enum")) {
    const json types = s["type"].is_array() ? s["type"] : json::array({s["type"]});
    for (const auto& t : types) {
      if (t == "number" || t == "integer") {
        EXPECT_TRUE(s.contains("minimum") && s.contains("maximum")) << where << ": " << t;
      }
      if (t == "string") {
        EXPECT_TRUE(s.contains("maxLength")) << where;
      }
    }
  }
  for (auto it = s.begin(); it != s.end(); ++it) {
    if (it.key() == "examples" || it.key() == "default" || it.key() == "enum") continue;
    if (it->is_object()) expect_bounded(*it, where + "/" + it.key());
  }
}

TEST(config_hostile, EverySchemaValueIsBounded) {
  for (const char* file : {"schema/netprobe-config.schema.json", "schema/inventory.schema.json"}) {
    const json schema = json::parse(testing::read_text(testing::source_path(file)));
    expect_bounded(schema, file);
  }
}

// Defect 11: messages say where, for every kind of bad text.
TEST(config_hostile, MessagesSayWhere) {
  // Not UTF-8: was "internal error [json.exception.type_error.316]" without a path.
  auto r = parse_yaml_to_json("a: 1\nb: x\xff\xfey\n", "x.yaml");
  EXPECT_THAT(r.errors,
              ElementsAre("x.yaml:2:5: invalid UTF-8 (byte 0xff); the document must be UTF-8 text"));
  EXPECT_THAT(load("global: {probe_name: \"\xc3\"}\n").diagnostics.errors,
              ElementsAre(HasSubstr("x.yaml:1:")));
  // Empty and odd keys are quoted.
  LoadedConfig l = load(config_with("", "  '': {}\n  'a b': {}\n  \"x\\ny\": {}\n"));
  EXPECT_THAT(l.diagnostics.errors, Contains(HasSubstr("groups[\"\"]: invalid name \"\"")));
  EXPECT_THAT(l.diagnostics.errors, Contains(HasSubstr("groups[\"a b\"]:")));
  EXPECT_THAT(l.diagnostics.errors, Contains(HasSubstr("groups[\"x\\ny\"]:")));
  l = load(config_with("  '': 1\n"));
  EXPECT_THAT(l.diagnostics.errors, Contains(HasSubstr("global[\"\"]: unknown key")));
  // Deep nesting: was "bad file".
  const std::string deep = std::string(10000, '[') + std::string(10000, ']');
  r = parse_yaml_to_json(deep, "x.yaml");
  EXPECT_THAT(r.errors, ElementsAre("x.yaml:1:65: nested deeper than 64 levels"));
  std::string block;
  for (int i = 0; i < 200; ++i) block += std::string(size_t(i), ' ') + "k:\n";
  EXPECT_THAT(parse_yaml_to_json(block, "x.yaml").errors, ElementsAre(HasSubstr("nested deeper than 64")));
}

TEST(config_hostile, ManyErrorsAreCapped) {
  std::string text = config_with("");
  for (int i = 0; i < 3000; ++i)
    text += "  t" + std::to_string(i) + ": {type: bogus, destination: 192.0.2.1}\n";
  const LoadedConfig r = load(text);
  EXPECT_THAT(r.diagnostics.errors, SizeIs(1001));
  EXPECT_THAT(r.diagnostics.errors.back(), HasSubstr("more errors not shown"));
}

// Defect 11: check-config blocked for ever on a FIFO and read 2 GB from /dev/zero.
TEST(config_hostile, OnlyRegularFilesOfBoundedSizeAreRead) {
  const auto dir = std::filesystem::temp_directory_path() / ("netprobe_cfg_" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  const std::string fifo = (dir / "fifo.yaml").string();
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  EXPECT_THAT(load_config_file(fifo).diagnostics.errors, ElementsAre(HasSubstr("not a regular file")));
  EXPECT_THAT(load_config_file("/dev/zero").diagnostics.errors, ElementsAre(HasSubstr("not a regular file")));
  EXPECT_THAT(load_config_file(dir.string()).diagnostics.errors,
              ElementsAre(HasSubstr("not a regular file")));
  const std::string big = (dir / "big.yaml").string();
  { std::ofstream(big) << "a: 1\n"; }
  std::filesystem::resize_file(big, kMaxConfigBytes + 1);  // sparse
  EXPECT_THAT(load_config_file(big).diagnostics.errors, ElementsAre(HasSubstr("more than the limit")));
  const std::string ok = (dir / "ok.yaml").string();
  { std::ofstream(ok) << config_with(""); }
  EXPECT_TRUE(load_config_file(ok).ok());
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace netprobe
