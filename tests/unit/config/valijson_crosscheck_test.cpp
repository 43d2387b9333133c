// Cross-check: valijson, an independent JSON Schema implementation, must reach the same verdict as
// netprobe's own validator on every fixture, so schema/netprobe-config.schema.json is standard draft-07
// that editors and CI linters interpret as the binary does.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <valijson/adapters/nlohmann_json_adapter.hpp>
#include <valijson/schema.hpp>
#include <valijson/schema_parser.hpp>
#include <valijson/validation_results.hpp>
#include <valijson/validator.hpp>

#include "config/loader.h"
#include "config/schema_validator.h"
#include "config/yaml_json.h"
#include "test_util.h"

namespace netprobe {
namespace {

class config_valijson : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    schema_json_ = new nlohmann::json(nlohmann::json::parse(
        testing::read_text(testing::source_path("schema/netprobe-config.schema.json"))));
    schema_ = new valijson::Schema;
    valijson::SchemaParser parser(valijson::SchemaParser::kDraft7);
    valijson::adapters::NlohmannJsonAdapter adapter(*schema_json_);
    parser.populateSchema(adapter, *schema_);
  }
  static void TearDownTestSuite() {
    delete schema_;
    delete schema_json_;
  }

  static std::string valijson_errors(const nlohmann::json& doc) {
    valijson::Validator validator;
    valijson::ValidationResults results;
    valijson::adapters::NlohmannJsonAdapter target(doc);
    if (validator.validate(*schema_, target, &results)) return "";
    std::string out;
    valijson::ValidationResults::Error e;
    while (results.popError(e)) {
      for (const auto& c : e.context) out += c;
      out += ": " + e.description + "\n";
    }
    return out.empty() ? "invalid" : out;
  }

  static inline nlohmann::json* schema_json_ = nullptr;
  static inline valijson::Schema* schema_ = nullptr;
};

TEST_F(config_valijson, SameVerdictOnEveryFixture) {
  const SchemaValidator* ours = config_schema_validator();
  ASSERT_NE(ours, nullptr);
  std::vector<std::string> files;
  for (const char* dir : {"good", "bad", "netprobify"})
    for (const auto& f : testing::fixtures_in(dir)) files.push_back(testing::fixture(f));
  files.push_back(testing::source_path("config/default.yaml"));
  files.push_back(testing::source_path("config/netprobify-example.yaml"));
  size_t compared = 0, rejected = 0;
  for (const auto& file : files) {
    const auto parsed = parse_yaml_to_json(testing::read_text(file), file);
    if (!parsed.errors.empty() || parsed.value.is_null())
      continue;  // YAML-level failures: no document to compare
    std::vector<std::string> our_errors;
    const bool our_ok = ours->validate(parsed.value, &our_errors);
    const std::string theirs = valijson_errors(parsed.value);
    EXPECT_EQ(our_ok, theirs.empty()) << file << "\nours:\n"
                                      << (our_errors.empty() ? "(valid)" : our_errors[0]) << "\nvalijson:\n"
                                      << theirs;
    ++compared;
    rejected += !our_ok;
  }
  EXPECT_GE(compared, 30u);
  EXPECT_GE(rejected, 8u);  // the cross-check must cover rejections, not only acceptances
}

// Each schema-level mistake on its own, so that one disagreement cannot hide behind another error.
TEST_F(config_valijson, SameVerdictOnSingleMutations) {
  const SchemaValidator* ours = config_schema_validator();
  ASSERT_NE(ours, nullptr);
  const auto base =
      parse_yaml_to_json(testing::read_text(testing::fixture("good/all_keys.yaml")), "all_keys").value;
  ASSERT_TRUE(base.is_object());
  const std::vector<std::pair<std::string, nlohmann::json>> mutations = {
      {"/global/interval", 1.5},
      {"/global/interval", "30"},
      {"/global/verbose", 2},
      {"/global/timeout", 0},
      {"/global/timeout", 0.001},
      {"/global/percentile/0", 0},
      {"/global/percentile/1", 99},
      {"/global/percentile", nullptr},
      {"/global/nb_proc", 0},
      {"/global/probe_name", "UP"},
      {"/global/max_packets_per_second", -1},
      {"/global/nb_prc", 1},
      {"/groups/G1", nlohmann::json::object()},
      {"/groups/transit1/dscp", 64},
      {"/groups/transit1/src_port_a", 0},
      {"/groups/transit1/bogus", 1},
      {"/targets/web/type", "tcpsyn"},
      {"/targets/web/state", nullptr},
      {"/targets/web/state", "prod"},
      {"/targets/web/threshold/los", 1},
      {"/targets/web/threshold", nullptr},
      {"/targets/web/description", 5},
      {"/targets/web/explicit_groups/register_to/0", "Bad"},
      {"/targets/web/dst_port", 65536},
      {"/targets/web/nb_packets", true},
      {"/targets", nullptr},
      {"/groups", nullptr},
      {"/global", nullptr},
      {"/extra", 1},
  };
  for (const auto& [pointer, value] : mutations) {
    nlohmann::json doc = base;
    doc[nlohmann::json::json_pointer(pointer)] = value;
    std::vector<std::string> our_errors;
    const bool our_ok = ours->validate(doc, &our_errors);
    const std::string theirs = valijson_errors(doc);
    EXPECT_EQ(our_ok, theirs.empty())
        << pointer << " = " << value.dump() << "\nours: " << (our_errors.empty() ? "(valid)" : our_errors[0])
        << "\nvalijson: " << theirs;
  }
}

}  // namespace
}  // namespace netprobe
