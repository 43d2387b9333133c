#pragma once
// `netprobe export-fw` and `netprobe convert-fw` (docs/firewall.md): their options and subcommands. main.cpp
// registers them before parsing and runs the selected one after.
#include <optional>
#include <string>
#include <vector>

namespace CLI {
class App;
}

namespace netprobe {

struct FirewallCli {
  CLI::App* export_fw = nullptr;
  CLI::App* convert_fw = nullptr;
  // export-fw
  std::string config_path;
  std::string output_path;                                // "" or "-": stdout
  std::string from_host;                                  // "": gethostname()
  std::optional<std::string> include_tags, exclude_tags;  // as on `netprobe check` (config/tag_selection.h)
  bool no_inventory = false;                              // as on `netprobe check`
  double inventory_timeout_s = 30;
  // convert-fw
  std::string backend;
  std::vector<std::string> files;
  std::string group = "$SECGROUP";
  std::string nft_table = "filter";
  double dns_timeout_s = 30;

  bool selected() const;
};

void add_firewall_commands(CLI::App& app, FirewallCli& cli);
// Runs the selected command; sysexits codes (64 usage, 65 invalid input, 66 no input, 68 unknown host,
// 73 cannot create the output file).
int run_firewall_command(const FirewallCli& cli);

}  // namespace netprobe
