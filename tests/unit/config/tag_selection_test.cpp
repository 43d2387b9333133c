// Target selection by tags (config/tag_selection.h): conn-check's semantics, as a table.
#include "config/tag_selection.h"

#include <gtest/gtest.h>

namespace netprobe {
namespace {

using Tags = std::vector<std::string>;
using Opt = std::optional<std::string>;

TEST(config_TagSelection, Table) {
  struct Row {
    Opt include, exclude;
    Tags target;
    bool selected;
  };
  const std::vector<Row> rows = {
      // No option: everything, tagged or not.
      {{}, {}, {}, true},
      {{}, {}, {"web"}, true},
      // Include: at least one shared tag; an untagged target is left out.
      {"web", {}, {"web"}, true},
      {"web", {}, {"db", "web"}, true},
      {"web,db", {}, {"db"}, true},
      {"web", {}, {"db"}, false},
      {"web", {}, {}, false},
      {"web", {}, {"webserver"}, false},  // whole tags, never prefixes
      // Exclude: any shared tag drops it; an untagged target stays.
      {{}, "web", {"web"}, false},
      {{}, "web", {"db", "web"}, false},
      {{}, "web,db", {"db"}, false},
      {{}, "web", {"db"}, true},
      {{}, "web", {}, true},
  };
  for (const auto& r : rows) {
    SCOPED_TRACE(r.include.value_or("-") + " / " + r.exclude.value_or("-"));
    auto s = parse_tag_selection(r.include, r.exclude);
    ASSERT_TRUE(s.ok()) << s.error().message;
    EXPECT_EQ(tags_selected(*s, r.target), r.selected);
  }
}

TEST(config_TagSelection, UsageErrors) {
  struct Row {
    Opt include, exclude;
    std::string error;
  };
  const std::vector<Row> rows = {
      {"a", "b", "--include-tags and --exclude-tags are mutually exclusive"},
      {"", {}, "--include-tags: \"\" is not a tag"},
      {"a,,b", {}, "--include-tags: \"\" is not a tag"},
      {{}, "a,", "--exclude-tags: \"\" is not a tag"},
      {"a b", {}, "--include-tags: \"a b\" is not a tag"},
      {std::string(65, 'x'), {}, "is not a tag"},
      {std::string(5000, 'x'), {}, "--include-tags: too long"},
  };
  for (const auto& r : rows) {
    auto s = parse_tag_selection(r.include, r.exclude);
    ASSERT_FALSE(s.ok()) << r.error;
    EXPECT_NE(s.error().message.find(r.error), std::string::npos) << s.error().message;
  }
  std::string many;
  for (int i = 0; i < 33; ++i) many += (i ? "," : "") + std::to_string(i);
  auto s = parse_tag_selection(many, {});
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().message, "--include-tags: more than 32 tags");
}

TEST(config_TagSelection, ListsAreSortedAndDistinct) {
  auto s = parse_tag_selection("web,db,web", {});
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->tags, (Tags{"db", "web"}));
  EXPECT_EQ(describe(*s), "include db,web");
  EXPECT_EQ(describe(TagSelection{}), "all");
}

TEST(config_TagSelection, SelectTargetsRemovesTheOthers) {
  std::map<std::string, TargetConfig> targets;
  for (const auto& [name, tags] : std::vector<std::pair<std::string, Tags>>{
           {"a", {"web"}}, {"b", {"db"}}, {"c", {}}, {"d", {"db", "web"}}}) {
    targets[name].name = name;
    targets[name].tags = tags;
  }
  auto s = parse_tag_selection({}, "db");
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(select_targets(*s, targets), (Tags{"b", "d"}));
  ASSERT_EQ(targets.size(), 2u);
  EXPECT_TRUE(targets.count("a") && targets.count("c"));
}

}  // namespace
}  // namespace netprobe
