#pragma once
// GET /probe?target=&module= as blackbox_exporter takes it (docs/on-demand.md#probe), up to the job the
// on-demand executor runs: the parameters checked against the module (only the overrides it lists, within
// their bounds), the timeout from X-Prometheus-Scrape-Timeout-Seconds minus the offset, capped by the module.
// The target policy (target_policy.h) then pins the addresses. Pure: table-tested.
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/on_demand.h"
#include "core/net.h"
#include "core/result.h"

namespace netprobe::ondemand {

// What the executor runs: everything fixed, the destination addresses pinned by the target policy.
struct ProbeJob {
  std::string target;  // as parsed (for logs and labels)
  std::string module;
  std::string credential;
  ProbeType type = ProbeType::kTcpSyn;
  AddressFamily af = AddressFamily::kV4;
  std::vector<IpAddress> addresses;  // pinned; filled after the target policy
  uint16_t dst_port = 0;
  int nb_packets = 1;
  uint16_t src_port_a = 0, src_port_z = 0;
  int dscp = 0;
  std::optional<int> ip_payload_size;
  int ttl = 64;               // IP TTL / hop limit, 1..255 (a ping test's -t)
  bool dont_fragment = true;  // IPv4 DF (a ping test's --no-df clears it)
  double timeout_s = 1;       // wait for answers after the last packet
  bool debug = false;
};

// Query parameters after URL decoding (name -> value); a repeated parameter is refused by the caller.
using QueryParams = std::map<std::string, std::string, std::less<>>;

// Checks the parameters: `target` and `module` required, the module known, every other parameter one of
// the module's overrides (nb_packets, dst_port, dscp, ip_payload_size, timeout) within its bounds, or
// `debug` (true/false). The error is a readable sentence for a 400.
Result<ProbeJob> build_probe_job(const OnDemandConfig& config, const QueryParams& params,
                                 std::optional<std::string_view> scrape_timeout_header);

// The timeout of a probe: min(module's, header - offset); nullopt (400) when the header is not a positive
// finite number or leaves nothing after the offset. No header: the module's.
std::optional<double> effective_timeout(double module_timeout_s, double offset_s,
                                        std::optional<std::string_view> scrape_timeout_header,
                                        std::string* why);

}  // namespace netprobe::ondemand
