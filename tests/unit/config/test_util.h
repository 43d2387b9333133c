#pragma once
// Shared helpers of the config tests.
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace netprobe::testing {

inline std::string source_path(const std::string& relative) {
  return std::string(NETPROBE_SOURCE_DIR) + "/" + relative;
}
inline std::string fixture(const std::string& relative) {
  return source_path("tests/fixtures/config/" + relative);
}

inline std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// Every *.yaml under a fixture folder, sorted, as paths relative to tests/fixtures/config.
inline std::vector<std::string> fixtures_in(const std::string& folder) {
  std::vector<std::string> out;
  for (const auto& e : std::filesystem::directory_iterator(fixture(folder)))
    if (e.path().extension() == ".yaml") out.push_back(folder + "/" + e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace netprobe::testing
