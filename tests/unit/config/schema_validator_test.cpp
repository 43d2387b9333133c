// The schema validator: each supported keyword on small schemas, refusal of unsupported keywords, and the
// embedded copy of schema/netprobe-config.schema.json.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "config/loader.h"
#include "config/schema_validator.h"
#include "test_util.h"

namespace netprobe {
namespace {

using nlohmann::json;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

std::vector<std::string> check(const json& schema, const json& doc) {
  auto v = SchemaValidator::compile(schema);
  EXPECT_TRUE(v.ok()) << (v.ok() ? "" : v.error().message);
  std::vector<std::string> errors;
  if (v.ok()) v->validate(doc, &errors);
  return errors;
}

TEST(config_schema, EmbeddedSchemaIsTheFileAndCompiles) {
  EXPECT_EQ(embedded_config_schema(),
            testing::read_text(testing::source_path("schema/netprobe-config.schema.json")));
  std::string error;
  EXPECT_NE(config_schema_validator(&error), nullptr) << error;
}

TEST(config_schema, RejectsUnsupportedKeywords) {
  for (const char* kw : {"oneOf", "anyOf", "allOf", "not", "if", "format", "minLength", "const",
                         "minProperties", "propertyNames", "dependencies", "exclusiveMaximum", "multipleOf",
                         "contains", "additionalItems", "$comment", "markdownDescription"}) {
    json schema = json::parse(R"({"type": "object", "properties": {"a": {"type": "string"}}})");
    schema["properties"]["a"][kw] = 1;
    const auto v = SchemaValidator::compile(schema);
    ASSERT_FALSE(v.ok()) << kw;
    EXPECT_EQ(
        v.error().message,
        std::string("schema #/properties/a: unsupported keyword \"") + kw +
            "\" (netprobe's validator implements only the keywords its schema uses; add support before using "
            "it)");
  }
  // The real schema with one unsupported keyword added is refused as a whole.
  json schema = json::parse(embedded_config_schema());
  schema["definitions"]["target"]["properties"]["nb_packets"]["maximumItems"] = 3;
  const auto v = SchemaValidator::compile(schema);
  ASSERT_FALSE(v.ok());
  EXPECT_THAT(v.error().message,
              HasSubstr("#/definitions/target/properties/nb_packets: unsupported keyword \"maximumItems\""));
}

TEST(config_schema, RejectsMalformedSchemas) {
  EXPECT_FALSE(SchemaValidator::compile(json::parse(R"({"$ref": "#/definitions/missing"})")).ok());
  EXPECT_FALSE(SchemaValidator::compile(json::parse(R"({"$ref": "other.json#/x"})")).ok());
  EXPECT_FALSE(SchemaValidator::compile(json::parse(R"({"type": "float"})")).ok());
  EXPECT_FALSE(SchemaValidator::compile(json::parse(R"({"pattern": "(unclosed"})")).ok());
  EXPECT_FALSE(SchemaValidator::compile(json::parse(R"({"items": [{"type": "string"}]})")).ok());
  EXPECT_FALSE(
      SchemaValidator::compile(
          json::parse(
              R"({"definitions": {"a": {"$ref": "#/definitions/b"}, "b": {"$ref": "#/definitions/a"}}, "$ref": "#/definitions/a"})"))
          .ok());
  const auto sibling = SchemaValidator::compile(
      json::parse(R"({"definitions": {"a": {}}, "$ref": "#/definitions/a", "type": "string"})"));
  ASSERT_FALSE(sibling.ok());
  EXPECT_EQ(sibling.error().message, "schema #: keywords beside $ref are ignored by draft-07; not allowed");
}

TEST(config_schema, Types) {
  const json s = json::parse(R"({"properties": {
      "i": {"type": "integer"}, "n": {"type": "number"}, "s": {"type": "string"}, "b": {"type": "boolean"},
      "o": {"type": "object"}, "a": {"type": "array"}, "z": {"type": "null"}, "m": {"type": ["string", "null"]}}})");
  EXPECT_THAT(
      check(s,
            json::parse(R"({"i": 1, "n": 1, "s": "x", "b": true, "o": {}, "a": [], "z": null, "m": null})")),
      IsEmpty());
  EXPECT_THAT(check(s, json::parse(R"({"n": 1.5, "m": "x"})")), IsEmpty());
  EXPECT_THAT(
      check(s, json::parse(R"({"i": 1.0, "n": "1", "s": 1, "b": 1, "o": [], "a": {}, "z": false, "m": 3})")),
      ElementsAre("a: expected a list, got a mapping", "b: expected a boolean (true/false), got 1",
                  "i: expected an integer, got 1.0", "m: expected a string or null, got 3",
                  R"(n: expected a number, got "1")", "o: expected a mapping, got a list",
                  "s: expected a string, got 1", "z: expected null, got false"));
}

TEST(config_schema, ObjectsAndHints) {
  const json s =
      json::parse(R"({"type": "object", "required": ["interval", "nb_proc"], "additionalProperties": false,
      "properties": {"interval": {}, "nb_proc": {}, "destination": {}},
      "patternProperties": {"^x-": {"type": "string"}}})");
  EXPECT_THAT(check(s, json::parse(R"({"interval": 1, "nb_proc": 1, "x-note": "ok"})")), IsEmpty());
  EXPECT_THAT(check(s, json::parse(R"({"nb_prc": 1, "Destination": 2, "zzz": 3, "x-n": 4})")),
              ElementsAre("interval: required key missing", "nb_proc: required key missing",
                          R"(Destination: unknown key (did you mean "destination"?))",
                          R"(nb_prc: unknown key (did you mean "nb_proc"?))", "x-n: expected a string, got 4",
                          "zzz: unknown key (allowed: destination, interval, nb_proc)"));
  const json open = json::parse(R"({"additionalProperties": {"type": "integer"}, "properties": {"a": {}}})");
  EXPECT_THAT(check(open, json::parse(R"({"a": "x", "b": 1, "c": "y"})")),
              ElementsAre(R"(c: expected an integer, got "y")"));
}

TEST(config_schema, NameMaps) {
  const json s = json::parse(
      R"({"additionalProperties": false, "patternProperties": {"^[a-z0-9_\\-\\.]+$": {"type": "object"}}})");
  EXPECT_THAT(check(s, json::parse(R"({"g1": 1, "G2": {}, "Gé": {}})")),
              ElementsAre(R"(G2: invalid name "G2": does not match ^[a-z0-9_\-\.]+$ (did you mean "g2"?))",
                          R"(["Gé"]: invalid name "Gé": does not match ^[a-z0-9_\-\.]+$)",
                          "g1: expected a mapping, got 1"));
}

TEST(config_schema, ScalarsAndArrays) {
  const json s = json::parse(R"({"definitions": {"pct": {"type": "integer", "minimum": 1, "maximum": 100}},
      "properties": {
        "e": {"enum": ["TCPsyn", "ICMPping", 1]}, "p": {"type": "string", "pattern": "^[a-z]+$"},
        "x": {"type": "number", "exclusiveMinimum": 0}, "l": {"type": "array", "items": {"$ref": "#/definitions/pct"},
        "minItems": 2, "uniqueItems": true}}})");
  EXPECT_THAT(check(s, json::parse(R"({"e": 1, "p": "abc", "x": 0.1, "l": [1, 100]})")), IsEmpty());
  EXPECT_THAT(check(s, json::parse(R"({"e": "tcpsyn", "p": "ab1", "x": 0, "l": [0]})")),
              ElementsAre(R"(e: "tcpsyn" is not one of TCPsyn, ICMPping, 1)",
                          "l: expected at least 2 item(s), got 1", "l[0]: 0 is less than the minimum 1",
                          R"(p: "ab1" does not match ^[a-z]+$)", "x: 0 must be greater than 0"));
  EXPECT_THAT(
      check(s, json::parse(R"({"e": true, "l": [5, 101, 5, 7, 5]})")),
      ElementsAre(R"(e: true is not one of TCPsyn, ICMPping, 1)", "l[1]: 101 is greater than the maximum 100",
                  "l[2]: 5 is a duplicate of item 0 (items must be unique)",
                  "l[4]: 5 is a duplicate of item 0 (items must be unique)"));
}

TEST(config_schema, DidYouMean) {
  const std::vector<std::string> keys = {"nb_proc", "interval", "interval_packets", "dst_port", "type"};
  EXPECT_EQ(closest_match("nb_prc", keys), "nb_proc");
  EXPECT_EQ(closest_match("NB_PROC", keys), "nb_proc");
  EXPECT_EQ(closest_match("intervall", keys), "interval");
  EXPECT_EQ(closest_match("interval_packet", keys), "interval_packets");
  EXPECT_EQ(closest_match("dst-port", keys), "dst_port");
  EXPECT_EQ(closest_match("typ", keys), "type");
  EXPECT_EQ(closest_match("destination", keys), "");
  EXPECT_EQ(closest_match("xy", keys), "");
  EXPECT_EQ(edit_distance("kitten", "sitting"), 3u);
  EXPECT_EQ(edit_distance("", "abc"), 3u);
}

}  // namespace
}  // namespace netprobe
