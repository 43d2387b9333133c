// parse_yaml_to_json reads with libyaml and falls back to yaml-cpp; the two front ends must give the same
// JSON, errors and warnings for every text the fast one accepts (and the fallback makes the rest identical
// by construction). Compared here on every configuration in the repository and on YAML's odd corners.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "config/yaml_json.h"
#include "config/yaml_tree.h"
#include "large_config.h"
#include "test_util.h"

namespace netprobe {
namespace {

using nlohmann::json;

// == but NaN equals NaN and 1 differs from 1.0 (not dump(): yaml-cpp may produce invalid UTF-8).
bool same_json(const json& a, const json& b) {
  if (a.type() != b.type()) return false;
  if (a.is_number_float()) {
    const double x = a.get<double>(), y = b.get<double>();
    return x == y || (std::isnan(x) && std::isnan(y));
  }
  if (a.is_array()) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i)
      if (!same_json(a[i], b[i])) return false;
    return true;
  }
  if (a.is_object()) {
    if (a.size() != b.size()) return false;
    for (auto it = a.begin(), jt = b.begin(); it != a.end(); ++it, ++jt)
      if (it.key() != jt.key() || !same_json(it.value(), jt.value())) return false;
    return true;
  }
  return a == b;
}

std::string shown(const json& v) { return v.dump(-1, ' ', true, json::error_handler_t::replace); }

void expect_same(const std::string& text, const std::string& what) {
  const YamlToJsonResult fast = parse_yaml_to_json(text, "x.yaml");
  const YamlToJsonResult ref = parse_yaml_to_json_reference(text, "x.yaml");
  EXPECT_TRUE(same_json(fast.value, ref.value)) << what << "\n"
                                                << shown(fast.value) << "\n"
                                                << shown(ref.value);
  EXPECT_EQ(fast.errors, ref.errors) << what;
  EXPECT_EQ(fast.warnings, ref.warnings) << what;
}

bool fast_path_reads(const std::string& text) { return parse_yaml_tree(text).has_value(); }

std::vector<std::string> repository_configs() {
  std::vector<std::string> out;
  for (const char* dir : {"tests/fixtures/config", "config"})
    for (const auto& e : std::filesystem::recursive_directory_iterator(testing::source_path(dir)))
      if (e.path().extension() == ".yaml") out.push_back(e.path().string());
  std::sort(out.begin(), out.end());
  return out;
}

TEST(config_yaml_frontends, RepositoryConfigurationsConvertTheSame) {
  const auto files = repository_configs();
  ASSERT_GT(files.size(), 20u);
  for (const auto& f : files) {
    const std::string text = testing::read_text(f);
    expect_same(text, f);
    // Only the deliberately broken ones may need yaml-cpp.
    if (f.find("/good/") != std::string::npos || f.find("/netprobify/") != std::string::npos) {
      EXPECT_TRUE(fast_path_reads(text)) << f;
    }
  }
}

TEST(config_yaml_frontends, GeneratedConfigurationConvertsTheSame) {
  const std::string text = testing::large_config_yaml(300);
  EXPECT_TRUE(fast_path_reads(text));
  expect_same(text, "large_config_yaml(300)");
}

// Corners of YAML where two parsers could disagree, each read by both front ends.
TEST(config_yaml_frontends, CornersConvertTheSame) {
  const char* const cases[] = {
      // scalars of every style
      "a: plain text\nb: 'single ''quoted'''\nc: \"double \\\"quoted\\\" \\t \\u00e9 \\x41\"\n",
      "a: |\n  literal\n   kept\n\n  lines\nb: >\n  folded\n  text\n\n  para\nc: |-\n  strip\nd: |+\n  "
      "keep\n\ne: x\n",
      "a: >-\n  folded\n   more indented\n  back\n",
      "a: multi\n  line\n\n  plain\nb: \"multi\n  line\n\n  quoted\"\n",
      "a: 'it''s'\nb: \"\\\\\"\nc: \"\\x00\"\n",
      "a: 1\nb: -1\nc: 0x1F\nd: 0o17\ne: 017\nf: 1_000\ng: 1:30\nh: 1.5\ni: .inf\nj: -.inf\nk: .nan\nl: "
      "1e3\n",
      "a: yes\nb: No\nc: ON\nd: off\ne: y\nf: n\ng: ~\nh: null\ni: Null\nj: NULL\nk:\nl: ''\n",
      "a: 99999999999999999999\nb: 18446744073709551615\nc: -9223372036854775809\n",
      "a: 2001-01-01\nb: 127.0.0.1\nc: fe80::1\nd: ::1\ne: 10.0.0.0/8\nf: a:b\ng: 'a: b'\n",
      "a: x # comment\n# line comment\nb: 'y' # another\n",
      "a: \"\"\nb: ''\nc: \" \"\n",
      // tags
      "a: !!str 12\nb: !!int \"12\"\nc: !!float 3\nd: !!bool yes\ne: !!null x\nf: !!str\ng: !!int\nh: !\n",
      "a: !!int abc\nb: !!float abc\nc: !!bool maybe\nd: !custom 1\ne: !custom\nf: ! 12\ng: ! yes\n",
      "a: !!seq [1]\nb: !!map {c: 1}\nc: !!map [1]\nd: !!seq {e: 1}\ne: !x [1]\nf: !x {g: 1}\ng: ! [1]\nh: ! "
      "{i: 1}\n",
      "%TAG !e! tag:yaml.org,2002:\n---\na: !e!int 12\nb: !e!str 12\n",
      "%YAML 1.1\n---\na: 1\n",
      "a: !<tag:yaml.org,2002:str> 12\nb: !<tag:yaml.org,2002:int> '7'\n",
      // null and odd keys
      "~: a\nnull: b\n'null': c\n: d\n1: e\n0x1f: f\n!!int 2: g\n\"\": h\n",
      "? complex\n: value\n? [a, b]\n: seq key\n? {c: d}\n: map key\n",
      "a: {b: 1, c, d: }\nb: [a: 1, b]\nc: [{x: 1}, {}]\nd: {}\ne: []\n",
      // anchors, aliases, merges
      "base: &b {a: 1, b: 2}\none:\n  <<: *b\n  b: 3\ntwo:\n  <<: [*b, {c: 4}]\n  d: 5\n",
      "base: &b {a: 1}\nm:\n  !!merge <<: *b\nq:\n  '<<': *b\nr:\n  \"<<\": 1\n",
      "a: &x 1\nb: *x\nc: &x 2\nd: *x\n",
      "a: &s !!int abc\nb: *s\nc: [*s, *s]\n",
      "a: &k key\n*k : value\nb: &m {x: 1}\n",
      "a: &m {x: 1}\n*m : value\n",
      "a: &r [*r]\n",
      "a: &r {b: *r}\n",
      "<<: 5\n",
      "a:\n  <<: [1, {b: 2}]\n",
      "a:\n  <<: {x: 1}\n  <<: {x: 2, y: 2}\n  z: 3\n",
      "a:\n  <<: &n ~\n",
      "a: &e\nb: *e\n",
      // duplicates
      "a:\n  b: 1\n  b: 2\n  b: {c: 3}\n",
      "a: 1\na: 2\n<<: {a: 3}\n",
      "a: {b: 1, b: 2}\n",
      // documents, markers, encodings
      "",
      "# only a comment\n",
      "---\n",
      "--- \n...\n",
      "---\na: 1\n...\n",
      "a: 1\n...\n",
      "--- 5\n",
      "--- |\n  text\n",
      "\xEF\xBB\xBF"
      "a: 1\n",
      "a: 1\r\nb:\r\n  - x\r\n  - y\r\n",
      "a: caf\xC3\xA9\nb: \"\xE2\x82\xAC\"\n",
      "- a\n- b:\n    c: 1\n-\n- - x\n  - y\n",
      "[1, 2, [3, {a: 4}]]\n",
      "just a scalar\n",
      "'quoted root'\n",
      "a:\n- 1\n- 2\nb:\n  - 3\n",
      "a: [\n  1,\n  2,\n]\n",
      "a: {\n  b: 1,\n}\n",
      "a: b\t# tab before a comment\nc:\td\n",
      // where yaml-cpp differs from libyaml (and PyYAML), the fallback keeps yaml-cpp's reading
      "a: \"x\\N y\\_ z\\L w\\P\"\n",
      "a: \"no\xC2\xA0"
      "break\"\n",
      "a: |+\n  keep\n\n\nb: >2+\n   x\n\nc: |+2\n   y\n\n",
      "a: x\ry\n",
      "b: x\ry: 2",
      "a: 1\r\nb:\r\n  - x\r",
      "a: x\xC2\x85"
      "b: y\n",
      "a: \"x\xE2\x80\xA8"
      "y\"\n",
      "# c\xE2\x80\xA9"
      "a: 1\n",
      "a: \"x|+y\"\n",
  };
  size_t fast = 0;
  for (const char* text : cases) {
    expect_same(text, text);
    fast += fast_path_reads(text);
  }
  EXPECT_GT(fast,
            std::size(cases) * 3 / 4);  // the comparison is about libyaml's results, so it must read most
}

// Nesting around the converter's limit (64) and past the depth where libyaml hands over to yaml-cpp.
TEST(config_yaml_frontends, DeepNestingConvertsTheSame) {
  for (int depth : {10, 63, 64, 65, 99, 100, 101, 150, 600}) {
    std::string flow;
    for (int i = 0; i < depth; ++i) flow += "[";
    flow += "1";
    for (int i = 0; i < depth; ++i) flow += "]";
    expect_same(flow + "\n", fmt::format("flow depth {}", depth));
    std::string block;
    for (int i = 0; i < depth; ++i) block += std::string(size_t(i) * 2, ' ') + fmt::format("k{}:\n", i);
    block += std::string(size_t(depth) * 2, ' ') + "v\n";
    expect_same(block, fmt::format("block depth {}", depth));
  }
}

// Where yaml-cpp refuses, the fallback makes the messages yaml-cpp's, whatever libyaml thought.
TEST(config_yaml_frontends, SyntaxErrorsAreYamlCpps) {
  const char* const cases[] = {
      "a: [1, 2\n",
      "a: {b: 1\n",
      "a: b: c\n",
      "a:\n  - 1\n  b: 2\n",
      "a: 'unterminated\n",
      "a: \"bad \\q escape\"\n",
      "a: *undefined\n",
      "a: 1\n---\nb: 2\n",
      "- a\nb: c\n",
      "a: 1\n b: 2\n",
      "\ta: 1\n",
      "a: @x\n",
      "a: `x\n",
      "a: 1\n--- b\n--- c\n",
      "key: \x01\n",
      "%BOGUS directive\n---\na: 1\n",
      "a: &x &y 1\n",
      "a: !!str !!int 1\n",
  };
  for (const char* text : cases) {
    const auto r = parse_yaml_to_json(text, "x.yaml");
    const auto ref = parse_yaml_to_json_reference(text, "x.yaml");
    EXPECT_EQ(r.errors, ref.errors) << text;
    EXPECT_TRUE(same_json(r.value, ref.value)) << text;
  }
}

}  // namespace
}  // namespace netprobe
