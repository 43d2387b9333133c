// PyYAML (YAML 1.1) scalar resolution, which netprobify's configurations were written against.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>

#include "config/yaml_json.h"

namespace netprobe {
namespace {

using nlohmann::json;
using ::testing::ElementsAre;

struct Row {
  const char* text;
  json expected;
};

// Plain scalars, with what PyYAML's safe_load returns for them (rows marked "netprobe" are extensions).
TEST(config_yaml, PlainScalarResolutionLikePyYAML) {
  const Row rows[] = {
      // null
      {"", nullptr},
      {"~", nullptr},
      {"null", nullptr},
      {"Null", nullptr},
      {"NULL", nullptr},
      {"nULL", "nULL"},
      // bool: yes/no/true/false/on/off in three spellings each; y/n are strings in PyYAML
      {"yes", true},
      {"Yes", true},
      {"YES", true},
      {"no", false},
      {"No", false},
      {"NO", false},
      {"true", true},
      {"True", true},
      {"TRUE", true},
      {"false", false},
      {"False", false},
      {"FALSE", false},
      {"on", true},
      {"On", true},
      {"ON", true},
      {"off", false},
      {"Off", false},
      {"OFF", false},
      {"y", "y"},
      {"n", "n"},
      {"yEs", "yEs"},
      {"tRUE", "tRUE"},
      // int
      {"0", 0},
      {"42", 42},
      {"-42", -42},
      {"+42", 42},
      {"1_000", 1000},
      {"0x1F", 31},
      {"0xff", 255},
      {"-0x10", -16},
      {"0b101", 5},
      {"017", 15},
      {"0o17", 15} /* netprobe: YAML 1.2 octal */,
      {"0_17", 15},
      {"1:30", 90},
      {"1:00:00", 3600},
      {"-1:30", -90},
      {"9223372036854775807", INT64_MAX},
      {"18446744073709551615", UINT64_MAX},
      {"-9223372036854775808", INT64_MIN},
      {"08", "08"} /* not octal, not decimal: a string */,
      {"0x", "0x"},
      {"1_", 1},
      {"1:60", "1:60"},
      // float
      {"1.5", 1.5},
      {"-1.5", -1.5},
      {"1.", 1.0},
      {".5", 0.5},
      {"1_000.5", 1000.5},
      {"1.5e+3", 1500.0},
      {"1.5E-1", 0.15},
      {"1e3", 1000.0} /* netprobe: PyYAML says "1e3" */,
      {"1.5e3", 1500.0} /* netprobe */,
      {"1:30.5", 90.5},
      {".inf", INFINITY},
      {"-.Inf", -INFINITY},
      {"+.INF", INFINITY},
      {"-.5", "-.5"} /* PyYAML's regex has no sign before a bare .5 */,
      {"1.2.3", "1.2.3"},
      // strings
      {"127.0.0.1", "127.0.0.1"},
      {"fe80::1", "fe80::1"},
      {"::1", "::1"},
      {"10.0.0.0/8", "10.0.0.0/8"},
      {"TCPsyn", "TCPsyn"},
      {"in production", "in production"},
      {"2001-01-01", "2001-01-01"} /* PyYAML: a date; no key takes one */,
      {"0.0.0.0", "0.0.0.0"},
      {"1e", "1e"},
      {"e3", "e3"},
      {"-", "-"},
      {"+", "+"},
      {".", "."},
  };
  for (const auto& row : rows) {
    const json got = resolve_plain_scalar(row.text);
    EXPECT_EQ(int(got.type()), int(row.expected.type())) << row.text;
    EXPECT_EQ(got, row.expected) << row.text;
  }
  const json nan = resolve_plain_scalar(".nan");
  ASSERT_TRUE(nan.is_number_float());
  EXPECT_TRUE(std::isnan(nan.get<double>()));
  EXPECT_TRUE(std::isnan(resolve_plain_scalar(".NaN").get<double>()));
}

YamlToJsonResult convert(const std::string& text) { return parse_yaml_to_json(text, "x.yaml"); }

TEST(config_yaml, QuotedScalarsAreStrings) {
  const auto r = convert("a: 'yes'\nb: \"1\"\nc: \"~\"\nd: ''\ne: !!str 12\nf: !!int \"12\"\ng: !!float 3\n");
  EXPECT_TRUE(r.errors.empty());
  EXPECT_EQ(r.value, json::parse(R"({"a":"yes","b":"1","c":"~","d":"","e":"12","f":12,"g":3.0})"));
}

TEST(config_yaml, MapsAndSequences) {
  const auto r = convert("a: [1, two, 3.0, no]\nb: {c: ~, d: on}\ne:\n  - x\n  - - y\n");
  EXPECT_TRUE(r.errors.empty());
  EXPECT_EQ(r.value, json::parse(R"({"a":[1,"two",3.0,false],"b":{"c":null,"d":true},"e":["x",["y"]]})"));
}

TEST(config_yaml, MergeKeysLikePyYAML) {
  const auto r = convert(R"(
base: &base {a: 1, b: 2}
other: &other {b: 20, c: 30}
one:
  <<: *base
  b: 3
list:
  <<: [*base, *other]
  d: 4
)");
  EXPECT_TRUE(r.errors.empty());
  EXPECT_EQ(r.value["one"], json::parse(R"({"a":1,"b":3})"));                // explicit keys win
  EXPECT_EQ(r.value["list"], json::parse(R"({"a":1,"b":2,"c":30,"d":4})"));  // earlier merged maps win
}

TEST(config_yaml, DuplicateKeysKeepTheLastWithAWarning) {
  const auto r = convert("a:\n  b: 1\n  b: 2\n");
  EXPECT_TRUE(r.errors.empty());
  EXPECT_EQ(r.value, json::parse(R"({"a":{"b":2}})"));
  EXPECT_THAT(r.warnings, ElementsAre("a.b: duplicate key; the last value is used (as PyYAML)"));
}

TEST(config_yaml, Errors) {
  EXPECT_THAT(convert("a: [1, 2\n").errors,
              ElementsAre("x.yaml:2:1: did not find expected ',' or ']' (while parsing a flow sequence at "
                          "line 1, column 4)"));
  EXPECT_THAT(convert("a: 1\n---\nb: 2\n").errors,
              ElementsAre("x.yaml:2:1: expected a single YAML document, found a second one"));
  EXPECT_THAT(convert("a: !custom 1\n").errors, ElementsAre("a: unsupported YAML tag !custom"));
  EXPECT_THAT(convert("a: 99999999999999999999\n").errors,
              ElementsAre("a: integer 99999999999999999999 does not fit in 64 bits"));
  EXPECT_THAT(convert("a: !!int abc\n").errors, ElementsAre("a: \"abc\" is not a valid int"));
  EXPECT_THAT(convert("<<: 5\n").errors,
              ElementsAre("[\"<<\"]: a merge key needs a mapping or a list of mappings"));
  EXPECT_TRUE(convert("").value.is_null());
  EXPECT_TRUE(convert("# only a comment\n").value.is_null());
}

}  // namespace
}  // namespace netprobe
