// `netprobe export-fw` and `netprobe convert-fw`: the command-line side of src/firewall.
#include "app/firewall.h"

#include <sysexits.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "config/loader.h"
#include "config/tag_selection.h"
#include "dns/cares_resolver.h"
#include "firewall/convert.h"
#include "firewall/export.h"
#include "inventory/manager.h"
#include "inventory/merge.h"
#include "inventory/snapshot.h"

namespace netprobe {

bool FirewallCli::selected() const { return (export_fw && *export_fw) || (convert_fw && *convert_fw); }

void add_firewall_commands(CLI::App& app, FirewallCli& cli) {
  cli.export_fw = app.add_subcommand(
      "export-fw",
      "print the egress firewall rules CONFIG's probes need (conn-check's YAML, plus source ports and "
      "the returning traffic; docs/firewall.md)");
  cli.export_fw->footer(
      "Exit codes: 0 ok, 64 usage, 65 invalid CONFIG, 69 an inventory plug-in gave no targets, 73 cannot "
      "write the output file");
  cli.export_fw->add_option("config", cli.config_path, "configuration file")->required();
  cli.export_fw->add_option("-o,--output", cli.output_path, "write the YAML to this file instead of stdout");
  cli.export_fw->add_option("--from-host", cli.from_host,
                            "the prober's name in from_host (default: the host name)");
  cli.export_fw->add_option("--include-tags", cli.include_tags, "only the targets sharing a tag (a,b)");
  cli.export_fw->add_option("--exclude-tags", cli.exclude_tags, "not the targets sharing a tag (a,b)");
  cli.export_fw->add_flag("--no-inventory", cli.no_inventory,
                          "leave out the dynamic inventory plug-ins' targets (run once by default)");
  cli.export_fw
      ->add_option("--inventory-timeout", cli.inventory_timeout_s,
                   "seconds for every inventory plug-in's first document (default 30)")
      ->check(CLI::Range(1.0, 3600.0));

  cli.convert_fw = app.add_subcommand(
      "convert-fw",
      "merge egress rule files (export-fw's or conn-check's) and print iptables, nftables, ufw, aws "
      "or neutron commands");
  cli.convert_fw->footer(
      "Exit codes: 0 ok, 64 usage, 65 invalid rules file, 66 unreadable file, 68 a host name does not "
      "resolve");
  cli.convert_fw->add_option("-t,--type", cli.backend, "iptables, nftables, ufw, aws or neutron")->required();
  cli.convert_fw->add_option("files", cli.files, "YAML rule files")->required();
  cli.convert_fw->add_option(
      "--group", cli.group,
      "aws / neutron: the security group id or name (default: the shell variable $SECGROUP)");
  cli.convert_fw->add_option(
      "--nft-table", cli.nft_table,
      "nftables: the inet table whose input and output chains get the rules (default: filter)");
  cli.convert_fw
      ->add_option("--dns-timeout", cli.dns_timeout_s, "seconds to resolve every host name (default: 30)")
      ->check(CLI::Range(0.1, 600.0));
}

namespace {

int export_fw(const FirewallCli& cli) {
  const auto loaded = load_config_file(cli.config_path);
  for (const auto& e : loaded.diagnostics.errors)
    std::fprintf(stderr, "%s: error: %s\n", cli.config_path.c_str(), e.c_str());
  if (!loaded.ok()) return EX_DATAERR;
  Config config = *loaded.config;
  // The dynamic inventory's targets need rules too: its plug-ins run once (src/inventory/snapshot.h). A
  // plug-in that gives nothing would leave its targets without rules: an error, not a warning.
  if (!cli.no_inventory && std::filesystem::is_directory(inventory_directory(config))) {
    SystemClock clock;
    const auto timeout =
        std::chrono::duration_cast<Nanos>(std::chrono::duration<double>(cli.inventory_timeout_s));
    InventorySnapshot inventory = collect_inventory_once(config, timeout, clock);
    for (const auto& e : inventory.errors) std::fprintf(stderr, "export-fw: %s\n", e.c_str());
    if (!inventory.errors.empty()) {
      std::fprintf(stderr,
                   "export-fw: %zu inventory plug-in(s) gave no targets: the rules would be incomplete "
                   "(--no-inventory exports the static targets only)\n",
                   inventory.errors.size());
      return EX_UNAVAILABLE;
    }
    config = with_dynamic_targets(config, inventory.targets);
  }

  std::string from_host = cli.from_host;
  if (from_host.empty()) {
    char name[256] = {};
    if (gethostname(name, sizeof(name) - 1) == 0) from_host = name;
  }
  if (!firewall::is_valid_host_name(from_host) && !IpAddress::parse(from_host)) {
    std::fprintf(stderr, "export-fw: the host name \"%s\" cannot be a from_host: use --from-host NAME\n",
                 from_host.c_str());
    return EX_USAGE;
  }
  const auto selection = parse_tag_selection(cli.include_tags, cli.exclude_tags);
  if (!selection.ok()) {
    std::fprintf(stderr, "export-fw: %s\n", selection.error().message.c_str());
    return EX_USAGE;
  }
  std::vector<const TargetConfig*> selected;
  for (const TargetConfig* t : firewall::all_targets(config))
    if (tags_selected(selection.value(), t->tags)) selected.push_back(t);
  auto rules = firewall::export_rules(config, selected, from_host);
  if (!rules) {
    std::fprintf(stderr, "%s: error: %s\n", cli.config_path.c_str(), rules.error().message.c_str());
    return EX_DATAERR;
  }
  // TCPquery / TLS targets: kernel TCP connections (docs/service-checks.md#firewall).
  std::vector<const ServiceCheckConfig*> checks;
  for (const auto& [name, c] : config.service_checks)
    if (tags_selected(selection.value(), c.tags)) checks.push_back(&c);
  auto check_rules = firewall::export_service_check_rules(config, checks, from_host);
  if (!check_rules) {
    std::fprintf(stderr, "%s: error: %s\n", cli.config_path.c_str(), check_rules.error().message.c_str());
    return EX_DATAERR;
  }
  if (!checks.empty()) {
    auto all = std::move(rules).value();
    for (auto& r : check_rules.value()) all.push_back(std::move(r));
    rules = firewall::merge_rules(std::move(all));
  }
  const std::string text = firewall::render_yaml(
      rules.value(),
      {"netprobe export-fw: the egress rules of the probes of " +
           std::to_string(selected.size() + checks.size()) + " target(s) (docs/firewall.md)",
       "conn-check-export-fw's shape; from_cidr, src_ports, returning and targets are netprobe's."});
  if (cli.output_path.empty() || cli.output_path == "-") {
    std::fwrite(text.data(), 1, text.size(), stdout);
    return std::fflush(stdout) == 0 ? EX_OK : EX_IOERR;
  }
  std::ofstream out(cli.output_path, std::ios::binary | std::ios::trunc);
  out << text;
  out.close();
  if (!out) {
    std::fprintf(stderr, "%s: cannot write\n", cli.output_path.c_str());
    return EX_CANTCREAT;
  }
  return EX_OK;
}

int convert_fw(const FirewallCli& cli) {
  const auto backend = firewall::backend_from_string(cli.backend);
  if (!backend) {
    std::fprintf(stderr, "convert-fw: unknown type \"%s\" (iptables, nftables, ufw, aws, neutron)\n",
                 cli.backend.c_str());
    return EX_USAGE;
  }
  if (!firewall::is_valid_group(cli.group)) {
    std::fprintf(stderr,
                 "convert-fw: --group must be a security group id or name ([A-Za-z0-9_.:-]) or $VARIABLE\n");
    return EX_USAGE;
  }
  if (!firewall::is_valid_nft_table(cli.nft_table)) {
    std::fprintf(stderr, "convert-fw: --nft-table must be a table name ([A-Za-z][A-Za-z0-9_-]*)\n");
    return EX_USAGE;
  }
  constexpr size_t kMaxFiles = 10'000, kMaxTotalRules = 1'000'000;
  if (cli.files.size() > kMaxFiles) {
    std::fprintf(stderr, "convert-fw: %zu files, more than %zu\n", cli.files.size(), kMaxFiles);
    return EX_USAGE;
  }
  const firewall::ParseLimits limits;
  std::vector<firewall::EgressRule> all;
  int rc = EX_OK;
  for (const auto& path : cli.files) {
    const auto text = read_config_text(path, limits.max_bytes);
    if (!text) {
      std::fprintf(stderr, "%s: %s\n", path.c_str(), text.error().message.c_str());
      rc = rc == EX_OK ? EX_NOINPUT : rc;
      continue;
    }
    auto parsed = firewall::parse_rules(text.value(), path, limits);
    for (const auto& e : parsed.errors) std::fprintf(stderr, "%s\n", e.c_str());
    if (!parsed.errors.empty()) {
      rc = EX_DATAERR;
      continue;
    }
    if (all.size() + parsed.rules.size() > kMaxTotalRules) {
      std::fprintf(stderr, "%s: more than %zu rules in all\n", path.c_str(), kMaxTotalRules);
      return EX_DATAERR;
    }
    for (auto& r : parsed.rules) all.push_back(std::move(r));
  }
  if (rc != EX_OK) return rc;
  const auto merged = firewall::merge_rules(std::move(all));

  auto resolver = CaresResolver::create();
  if (!resolver) {
    std::fprintf(stderr, "convert-fw: DNS: %s\n", resolver.error().message.c_str());
    return EX_UNAVAILABLE;
  }
  const auto resolved = firewall::resolve_names(
      merged, **resolver,
      std::chrono::duration_cast<Nanos>(std::chrono::duration<double>(cli.dns_timeout_s)));
  for (const auto& e : resolved.errors) std::fprintf(stderr, "convert-fw: %s\n", e.c_str());
  if (!resolved.errors.empty()) return EX_NOHOST;

  firewall::ConvertOptions options;
  options.backend = *backend;
  options.group = cli.group;
  options.nft_table = cli.nft_table;
  const std::string text = firewall::render_commands(merged, resolved, options);
  std::fwrite(text.data(), 1, text.size(), stdout);
  return std::fflush(stdout) == 0 ? EX_OK : EX_IOERR;
}

}  // namespace

int run_firewall_command(const FirewallCli& cli) {
  if (cli.export_fw && *cli.export_fw) return export_fw(cli);
  return convert_fw(cli);
}

}  // namespace netprobe
