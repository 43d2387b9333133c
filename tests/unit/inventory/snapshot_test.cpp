// collect_inventory_once(): the one-shot commands' inventory, with real plug-in processes (/bin/sh scripts
// in a temporary directory) and the system clock (its timeout is real time, kept short here).
#include "inventory/snapshot.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace netprobe {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using namespace std::chrono_literals;

class inventory_snapshot : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("netprobe-snap-" + std::to_string(getpid()) + "-" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "inventories");
    config_.source_path = (dir_ / "netprobe.yaml").string();
    config_.groups["g1"] = GroupConfig{};
  }
  void TearDown() override { fs::remove_all(dir_); }
  void plugin(const std::string& name, const std::string& body) {
    const fs::path p = dir_ / "inventories" / name;
    std::ofstream(p) << "#!/bin/sh\n" << body << "\n";
    chmod(p.c_str(), 0755);
  }
  static std::string emit(const std::string& host, const std::string& dest) {
    return "printf '%s\\n---\\n' '{\"targets\": [{\"hostname\": \"" + host + "\", \"destination\": \"" +
           dest + "\", \"type\": \"ICMPping\", \"groups\": [\"g1\"]}]}'\n";
  }
  std::vector<std::string> names(const InventorySnapshot& s) {
    std::vector<std::string> out;
    for (const auto& [name, t] : s.targets) out.push_back(name);
    return out;
  }

  fs::path dir_;
  Config config_;
  SystemClock clock_;
};

// A daemon-like plug-in (one document, then it stays) and a one-shot one (one document, exit 0): both
// give their targets, and the daemon is stopped.
TEST_F(inventory_snapshot, EveryPluginsFirstDocument) {
  plugin("cmdb", emit("web1", "192.0.2.1") + "exec sleep 60");
  plugin("static", emit("db1", "192.0.2.2"));
  const InventorySnapshot s = collect_inventory_once(config_, 20s, clock_);
  EXPECT_THAT(s.plugins, ElementsAre("cmdb", "static"));
  EXPECT_THAT(s.errors, IsEmpty());
  EXPECT_THAT(names(s), ElementsAre("cmdb_web1", "static_db1"));
  EXPECT_TRUE(s.targets.at("cmdb_web1").is_dynamic);
}

// A plug-in that fails, or says nothing in time, is an error naming it; the others still count.
TEST_F(inventory_snapshot, FailingAndSilentPluginsAreErrors) {
  plugin("broken", "echo 'cannot reach the CMDB' >&2; exit 3");
  plugin("good", emit("web1", "192.0.2.1"));
  plugin("silent", "exec sleep 60");
  const InventorySnapshot s = collect_inventory_once(config_, 2s, clock_);
  EXPECT_THAT(names(s), ElementsAre("good_web1"));
  ASSERT_EQ(s.errors.size(), 2u);
  EXPECT_THAT(s.errors[0], HasSubstr("inventory broken:"));
  EXPECT_THAT(s.errors[1], HasSubstr("inventory silent:"));
  EXPECT_THAT(s.errors[1], HasSubstr("no document within 2 s"));
}

TEST_F(inventory_snapshot, NoDirectoryNoPlugin) {
  fs::remove_all(dir_ / "inventories");
  const InventorySnapshot s = collect_inventory_once(config_, 2s, clock_);
  EXPECT_THAT(s.plugins, IsEmpty());
  EXPECT_THAT(s.errors, IsEmpty());
  EXPECT_THAT(s.targets, IsEmpty());
}

}  // namespace
}  // namespace netprobe
