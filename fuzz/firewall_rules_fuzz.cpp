// convert-fw reads egress rule files written on other hosts (docs/firewall.md): any text must give rules or
// errors, never a crash, a hang or an unbounded allocation; rules it accepts must render for every backend,
// and what export-fw would write for them must read back without an error.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "firewall/convert.h"
#include "firewall/rules.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace netprobe::firewall;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const ParseResult parsed = parse_rules(text, "fuzz.yaml");
  if (!parsed.errors.empty()) {
    if (!parsed.rules.empty()) __builtin_trap();  // a refused file yields no rule
    return 0;
  }
  const auto merged = merge_rules(parsed.rules);
  if (!parse_rules(render_yaml(merged), "again.yaml").errors.empty()) __builtin_trap();
  // Every name resolves to one address per family: no DNS here.
  Resolved resolved;
  for (const auto& r : merged)
    resolved.addresses[r.to_host] = {*netprobe::IpAddress::parse("192.0.2.1"),
                                     *netprobe::IpAddress::parse("2001:db8::1")};
  for (const auto b :
       {Backend::kIptables, Backend::kNftables, Backend::kUfw, Backend::kAws, Backend::kNeutron}) {
    ConvertOptions options;
    options.backend = b;
    (void)render_commands(merged, resolved, options);
  }
  return 0;
}
