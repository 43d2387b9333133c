// netprobe command line: run the prober, or check a configuration.
#include <sysexits.h>

#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>
#include <cstdio>
#include <optional>
#include <string>

#include "app/check.h"
#include "app/firewall.h"
#include "app/pathloss.h"
#include "app/ping.h"
#include "app/query.h"
#include "app/run.h"
#include "app/trace.h"
#include "config/loader.h"
#include "config/tag_selection.h"
#include "logging/logging.h"
#include "web/surface.h"

#ifndef NETPROBE_VERSION
#define NETPROBE_VERSION "0.0.0"
#endif

namespace {

int check_config(const std::string& path) {
  const auto loaded = netprobe::load_config_file(path);
  for (const auto& w : loaded.diagnostics.warnings)
    std::fprintf(stderr, "%s: warning: %s\n", path.c_str(), w.c_str());
  for (const auto& e : loaded.diagnostics.errors)
    std::fprintf(stderr, "%s: error: %s\n", path.c_str(), e.c_str());
  if (!loaded.ok()) {
    std::fprintf(stderr, "%s: %zu error(s); configuration rejected\n", path.c_str(),
                 loaded.diagnostics.errors.size());
    return EX_DATAERR;
  }
  const auto& c = *loaded.config;
  std::printf("%s: OK (%zu group(s), %zu target(s))\n", path.c_str(), c.groups.size(), c.targets.size());
  return EX_OK;
}

// `promtool check web-config`'s job, with netprobe's reading of the file.
int check_web_config(const std::string& path) {
  netprobe::web::WebSettings settings;
  if (auto s = netprobe::web::load_web_config(path, settings, nullptr); !s.ok()) {
    std::fprintf(stderr, "%s\n", s.error().message.c_str());
    return EX_CONFIG;
  }
  std::printf("%s: OK (TLS %s, %zu user(s), %zu header(s))\n", path.c_str(), settings.tls ? "on" : "off",
              settings.users ? settings.users->size() : size_t{0}, settings.headers.size());
  return EX_OK;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "netprobe " NETPROBE_VERSION
      " - raw-packet network prober, a drop-in successor of netprobify.\n"
      "Sends TCP SYN, ICMP echo and UDP-to-closed-port probes across each group's source ports, matches "
      "every\n"
      "reply to its probe and serves loss and latency on a Prometheus /metrics endpoint.\n\n"
      "Environment:\n"
      "  PROM_USER, PROM_PASSWORD  when both are set, /metrics requires HTTP basic auth with them (unless\n"
      "                           --web.config.file has basic_auth_users, which then win)\n\n"
      "Exit codes: 0 ok, 64 usage, 65 invalid configuration, 69 service unavailable (port in use, capture\n"
      "failure), 77 missing privilege (CAP_NET_RAW), 78 environment misconfigured",
      "netprobe"};
  app.set_version_flag("--version", "netprobe " NETPROBE_VERSION);
  app.require_subcommand(0, 1);
  app.fallthrough(false);

  std::string config_path = "config.yaml";
  app.add_option("config", config_path,
                 "configuration file (netprobify format); same as `netprobe run CONFIG`")
      ->capture_default_str();

  std::string run_path;
  auto* run =
      app.add_subcommand("run", "run the prober on CONFIG until SIGTERM/SIGINT (SIGHUP reloads CONFIG)");
  run->add_option("config", run_path, "configuration file")->required();
  std::string run_user;
  run->add_option("--user", run_user,
                  "started as root, run every process as this user once the sockets are open (default: "
                  "`netprobe` if it exists, else `nobody`; never root)");
  std::optional<std::string> run_include, run_exclude;
  run->add_option("--include-tags", run_include, "probe only the targets sharing a tag with this list (a,b)");
  run->add_option("--exclude-tags", run_exclude, "do not probe the targets sharing a tag with this list");

  std::vector<std::string> run_listen;
  run->add_option("--web.listen-address", run_listen,
                  "serve /metrics on HOST:PORT, [IPV6]:PORT or :PORT (every address); repeatable; replaces "
                  "prometheus_address and prometheus_port")
      ->take_all()
      ->allow_extra_args(false);
  std::string run_web_config;
  run->add_option("--web.config.file", run_web_config,
                  "exporter-toolkit web configuration (TLS, basic_auth_users, headers), as node_exporter's; "
                  "its users win over PROM_USER/PROM_PASSWORD");
  std::string web_check_path;
  auto* web_check = app.add_subcommand(
      "check-web-config", "validate a --web.config.file (TLS files included), exit 0, or 78 if invalid");
  web_check->add_option("file", web_check_path, "web configuration file")->required();

  std::string check_path;
  auto* check =
      app.add_subcommand("check-config", "validate CONFIG, print every error with its path, exit 0 or 65");
  check->add_option("config", check_path, "configuration file")->required();

  netprobe::FirewallCli firewall;  // export-fw, convert-fw: src/app/firewall.cpp
  netprobe::add_firewall_commands(app, firewall);
  // netprobe check: the selected targets once, Nagios exit codes (src/app/check.cpp).
  netprobe::CheckOptions check_options;
  auto* one_shot = app.add_subcommand(
      "check",
      "probe the targets of CONFIG once (or --count times), print each result, exit 0 all OK, 2 any "
      "failed, 3 configuration or usage error");
  one_shot->add_option("config", check_options.config_path, "configuration file")->required();
  one_shot->add_option("--include-tags", check_options.include_tags, "only the targets sharing a tag (a,b)");
  one_shot->add_option("--exclude-tags", check_options.exclude_tags, "not the targets sharing a tag (a,b)");
  one_shot->add_option("--count", check_options.count, "iterations (1 to 1000, default 1)");
  one_shot->add_option("--format", check_options.format, "text or json (default text)");
  one_shot->add_flag("-U,--unbuffered", check_options.unbuffered,
                     "text lines as each iteration ends, instead of failures first at the end");
  one_shot->add_flag("--no-inventory", check_options.no_inventory,
                     "leave out the dynamic inventory plug-ins' targets (run once by default)");
  one_shot
      ->add_option("--inventory-timeout", check_options.inventory_timeout_s,
                   "seconds for every inventory plug-in's first document (default 30)")
      ->check(CLI::Range(1.0, 3600.0));

  // netprobe ping: hping3's job, one target (src/app/ping.cpp).
  netprobe::PingOptions ping_options;
  auto* ping = app.add_subcommand(
      "ping",
      "probe TARGET COUNT times from a sweep of source ports, a line per probe, a summary and the lossy "
      "source "
      "ports; exit 0 when loss <= --max-loss (default: some reply), 1 when not, 68 unknown host");
  ping->add_option("target", ping_options.target, "host name or address")->required();
  auto* ping_syn = ping->add_flag_callback(
      "-S", [&] { ping_options.mode = 'S'; }, "TCP SYN (default)");
  auto* ping_icmp = ping->add_flag_callback(
      "-1", [&] { ping_options.mode = '1'; }, "ICMP echo");
  auto* ping_udp = ping->add_flag_callback(
      "-2", [&] { ping_options.mode = '2'; }, "UDP to a closed port");
  ping_syn->excludes(ping_icmp, ping_udp);
  ping_icmp->excludes(ping_udp);
  ping->add_option("-p,--destport", ping_options.dst_port, "destination port (default 80 TCP, 33434 UDP)");
  ping->add_option("--sport-range", ping_options.sport_range, "source ports A-B, swept in turn");
  ping->add_option("-s,--baseport", ping_options.base_sport, "source ports BASE to BASE+15 (default 65000)");
  ping->add_flag("-k,--keep", ping_options.keep_sport, "keep one source port");
  ping->add_option("-c,--count", ping_options.count, "probes (default 5)");
  ping->add_option("-i,--interval", ping_options.interval,
                   "seconds between probes, or uN microseconds (default 1)");
  ping->add_flag("--fast", ping_options.fast, "10 probes per second");
  ping->add_flag("--faster", ping_options.faster, "100 probes per second");
  ping->add_flag("--flood", ping_options.flood, "as fast as --rate allows (uncapped without it)");
  ping->add_option("--rate", ping_options.rate, "at most PPS probes per second");
  ping->add_option("-t,--ttl", ping_options.ttl, "IP TTL / hop limit (default 64)");
  ping->add_option("-o,--tos", ping_options.tos, "TOS byte in hex (its DSCP bits)");
  ping->add_option("--dscp", ping_options.dscp, "DSCP 0-63");
  ping->add_option("-d,--data", ping_options.data_bytes, "data bytes after the TCP/UDP/ICMP header");
  ping->add_flag("-y,--dontfrag", ping_options.df, "set DF (the default)");
  ping->add_flag("--no-df", ping_options.no_df, "clear DF (IPv4)");
  ping->add_option("-a,--spoof", ping_options.src_addr, "source address (must be one of this host's)");
  ping->add_option("-I,--interface", ping_options.iface, "source address of this interface");
  ping->add_flag("-n,--numeric", ping_options.numeric, "numeric output (always: no reverse lookups)");
  ping->add_flag("--per-port", ping_options.per_port, "the per-source-port table in text too");
  ping->add_option("-W,--timeout", ping_options.timeout_s, "seconds to wait for each answer (default 1)");
  ping->add_flag("-q,--quiet", ping_options.quiet, "summary and port table only");
  ping->add_option("--format", ping_options.format,
                   "text, hping (hping3's lines) or json (one object per line)");
  ping->add_option("--max-loss", ping_options.max_loss_pct, "exit 1 above this loss percentage");
  ping->add_option("--max-rtt", ping_options.max_rtt_ms, "exit 1 when the p99 RTT is above this (ms)");
  ping->add_flag("-4", ping_options.ipv4, "IPv4 address of a name");
  ping->add_flag("-6", ping_options.ipv6, "IPv6 address of a name");

  // netprobe trace / pathloss: Paris traceroute, MDA and the hop that drops a flow (src/app/trace.cpp).
  netprobe::TraceCliOptions trace_options;
  auto* trace = app.add_subcommand(
      "trace",
      "the hops of each flow (source port) to TARGET, keeping its 5-tuple (Paris traceroute); exit 0 "
      "when the destination answered");
  trace->add_option("target", trace_options.target, "host name or address")->required();
  auto* trace_syn = trace->add_flag_callback(
      "-S", [&] { trace_options.mode = 'S'; }, "TCP SYN (default)");
  auto* trace_icmp = trace->add_flag_callback(
      "-1", [&] { trace_options.mode = '1'; }, "ICMP echo (one flow)");
  auto* trace_udp = trace->add_flag_callback(
      "-2", [&] { trace_options.mode = '2'; }, "UDP");
  trace_syn->excludes(trace_icmp, trace_udp);
  trace_icmp->excludes(trace_udp);
  trace->add_option("-p,--destport", trace_options.dst_port, "destination port (default 80 TCP, 33434 UDP)");
  trace->add_option("--sport-range", trace_options.sport_range,
                    "source ports A-B: one flow each (MDA: the pool)");
  trace->add_option("--first-ttl", trace_options.first_ttl, "first TTL (default 1)");
  trace->add_option("--max-ttl", trace_options.max_ttl, "last TTL (default 30)");
  trace->add_option("--rate", trace_options.rate_pps, "probes per second (default 100)");
  trace->add_option("-w,--wait", trace_options.wait_s, "seconds to wait for each answer (default 1)");
  trace->add_flag("-n", trace_options.numeric, "no reverse DNS");
  trace->add_flag("--mda", trace_options.mda, "Multipath Detection Algorithm: every next hop of every hop");
  trace->add_option("--confidence", trace_options.confidence, "MDA confidence, 95 or 99 (default 95)");
  trace->add_option("--max-flows", trace_options.max_flows, "MDA: at most this many flows (default 256)");
  trace->add_option("--format", trace_options.format, "text, json or dot");
  trace->add_flag("-4", trace_options.ipv4, "IPv4 address of a name");
  trace->add_flag("-6", trace_options.ipv6, "IPv6 address of a name");

  netprobe::PathlossCliOptions pathloss_options;
  auto* pathloss = app.add_subcommand(
      "pathloss",
      "which hop drops these flows: TTL-limited probes per (flow, hop), a verdict per flow; exit 1 "
      "when a suspect link is named");
  pathloss->add_option("target", pathloss_options.target, "host name or address")->required();
  auto* pl_syn = pathloss->add_flag_callback(
      "-S", [&] { pathloss_options.mode = 'S'; }, "TCP SYN (default)");
  auto* pl_udp = pathloss->add_flag_callback(
      "-2", [&] { pathloss_options.mode = '2'; }, "UDP");
  pl_syn->excludes(pl_udp);
  pathloss->add_option("-p,--destport", pathloss_options.dst_port,
                       "destination port (default 80 TCP, 33434 UDP)");
  pathloss->add_option("--sports", pathloss_options.sports, "the flows' source ports, 40001,40007");
  pathloss->add_option("--sport-range", pathloss_options.sport_range, "the flows' source ports A-B");
  pathloss->add_option("--probes-per-hop", pathloss_options.probes_per_hop,
                       "probes per (flow, TTL), default 1000");
  pathloss->add_option("--compare-healthy", pathloss_options.compare_healthy,
                       "reference flows (the next source ports), default 4");
  pathloss->add_option("--first-ttl", pathloss_options.first_ttl, "first TTL (default 1)");
  pathloss->add_option("--max-ttl", pathloss_options.max_ttl, "last TTL (default 30)");
  pathloss->add_option("--rate", pathloss_options.rate_pps, "probes per second (default 1000)");
  pathloss->add_option("-w,--wait", pathloss_options.wait_s, "seconds to wait for each answer (default 1)");
  pathloss->add_option("--format", pathloss_options.format, "text or json");
  pathloss->add_flag("-4", pathloss_options.ipv4, "IPv4 address of a name");
  pathloss->add_flag("-6", pathloss_options.ipv6, "IPv6 address of a name");

  // netprobe query: one TCP query / TLS certificate check, unprivileged (src/app/query.cpp).
  netprobe::QueryOptions query_options;
  auto* query = app.add_subcommand(
      "query",
      "connect to HOST PORT (TCP, optionally TLS), run --step send=/expect=/expect_bytes= in order; exit 0 "
      "OK, 2 failed, 3 usage error (docs/service-checks.md)");
  query->add_option("host", query_options.host, "host name or address")->required();
  query->add_option("port", query_options.port, "TCP port")->required();
  query->add_option("--step", query_options.steps,
                    "KIND=VALUE, repeatable, in order: send=BYTES, expect=REGEX, expect_bytes=BYTES "
                    "(BYTES: text, hex:..., base64:...)");
  query->add_flag("--tls", query_options.tls, "TLS handshake after connect (implied by the TLS options)");
  query->add_option("--server-name", query_options.server_name, "SNI and verified name (default: HOST)");
  query->add_option("--ca-file", query_options.ca_file, "PEM trust anchors (default: the system store)");
  query->add_flag("--insecure", query_options.insecure, "report the chain without failing verification");
  query->add_option("--expiry-window", query_options.expiry_window_s,
                    "fail when a certificate expires within this many seconds");
  query->add_option("--timeout", query_options.timeout_s, "seconds for the whole query (default 5)");
  query->add_flag("--udp", query_options.udp, "one UDP datagram instead: --payload, --expect, --token");
  query->add_option("--payload", query_options.payload, "UDP payload: text, hex:..., base64:...");
  query->add_option("--expect", query_options.expect,
                    "UDP answer: any (default), exact=BYTES, contains=BYTES, regex=RE");
  query->add_option("--token", query_options.token,
                    "OFFSET:LENGTH[:REPLY_OFFSET]: a random token there, echoed by the server (DNS ID: 0:2)");
  query->add_option("--format", query_options.format, "text or metrics (blackbox's names)")
      ->check(CLI::IsMember({"text", "metrics"}));

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    // A usage error of `check` is Nagios' UNKNOWN (3), as its configuration errors are.
    const bool check_command =
        argc > 1 && (std::string(argv[1]) == "check" || std::string(argv[1]) == "query");
    return rc == 0 ? 0 : check_command ? netprobe::kCheckUnknown : EX_USAGE;
  }
  if (*one_shot) {
    netprobe::setup_logging();
    spdlog::set_level(spdlog::level::warn);
    return netprobe::run_check(check_options);
  }

  if (*query) return netprobe::run_query(query_options);

  if (*ping) {
    netprobe::setup_logging();
    spdlog::set_level(spdlog::level::warn);
    return netprobe::run_ping(ping_options);
  }
  if (*trace || *pathloss) {
    netprobe::setup_logging();
    spdlog::set_level(spdlog::level::warn);
    return *trace ? netprobe::run_trace(trace_options) : netprobe::run_pathloss(pathloss_options);
  }
  if (*check) return check_config(check_path);
  if (*web_check) return check_web_config(web_check_path);
  if (firewall.selected()) return netprobe::run_firewall_command(firewall);
  netprobe::setup_logging();
  netprobe::RunOptions options;
  if (*run && run->count("--user") > 0) options.user = run_user;
  auto selection = netprobe::parse_tag_selection(run_include, run_exclude);
  if (!selection.ok()) {
    std::fprintf(stderr, "netprobe run: %s\n", selection.error().message.c_str());
    return EX_USAGE;
  }
  options.selection = *selection;
  options.listen_addresses = run_listen;
  options.web_config_file = run_web_config;
  return netprobe::run_prober(*run ? run_path : config_path, NETPROBE_VERSION, options);
}
