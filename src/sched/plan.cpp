#include "sched/plan.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <unordered_map>

#include "config/config.h"
#include "core/sockaddr.h"
#include "probes/udp_query_spec.h"

namespace netprobe {

std::optional<IpAddress> kernel_source_for(const IpAddress& dst) {
  const int fd = ::socket(dst.af == AddressFamily::kV4 ? AF_INET : AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return std::nullopt;
  sockaddr_storage ss;
  const socklen_t len = to_sockaddr(dst, 9, ss);
  // connect() on a datagram socket only selects a route and a source address: nothing is sent.
  std::optional<IpAddress> out;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&ss), len) == 0) {
    sockaddr_storage local{};
    socklen_t local_len = sizeof local;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &local_len) == 0)
      out = from_sockaddr(reinterpret_cast<const sockaddr*>(&local));
  }
  ::close(fd);
  return out;
}

LocalCheck host_local_addresses() {
  std::vector<IpAddress> local;
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) == 0) {
    for (ifaddrs* i = list; i; i = i->ifa_next)
      if (auto a = from_sockaddr(i->ifa_addr)) local.push_back(*a);
    freeifaddrs(list);
  }
  return [local](const IpAddress& a) { return std::find(local.begin(), local.end(), a) != local.end(); };
}

std::vector<IpAddress> source_addresses(const IpNetwork& net, size_t limit) {
  return net.usable_hosts(limit);
}
std::vector<IpAddress> host_addresses(const IpNetwork& net, size_t limit) { return net.usable_hosts(limit); }

namespace {
constexpr size_t kMaxSources = 65535;  // PlannedProbe::src is 16 bits
constexpr uint8_t kUnknownLocality = 2;
}  // namespace

namespace {

// build_plan() in three steps: the targets' templates and streams (add_target), the distinct source
// addresses (source_indexes), then the order of the probes (interleave).
class PlanBuilder {
 public:
  PlanBuilder(const Config& config, const SourceResolver& source_for, const LocalCheck& is_local)
      : config_(config), source_for_(source_for), is_local_(is_local) {
    plan_.interval_packets_s = config.global.interval_packets_s;
  }

  Status add_target(const ResolvedTarget& rt) {
    const TargetConfig& t = *rt.config;
    if (t.groups.empty() || rt.hosts.empty()) return Status::success();
    const AddressFamily af = t.family();
    std::vector<std::optional<IpAddress>> kernel_sources;
    if (const IpAddress* unroutable = ask_kernel_sources(rt, af, kernel_sources)) {
      plan_.skipped_targets.push_back(
          Error::for_target(t.name, "target " + t.name + ": no route to " + unroutable->to_string()));
      return Status::success();
    }
    std::shared_ptr<const udpquery::Spec> query;  // UDPquery: one per target, shared by its templates
    if (t.type == ProbeType::kUdpQuery) {
      std::string why;
      auto spec = udpquery::make_spec(t.payload, t.expect_kind, t.expect_value, t.token_offset,
                                      t.token_length, t.token_reply_offset, &why);
      if (!spec) {  // the loader validated it: only a hand-made configuration gets here
        plan_.skipped_targets.push_back(Error::for_target(t.name, "target " + t.name + ": " + why));
        return Status::success();
      }
      query = std::make_shared<const udpquery::Spec>(std::move(*spec));
    }
    const auto target_index = uint32_t(plan_.targets.size());
    plan_.targets.push_back(
        {t.name, t.type, af, std::chrono::duration_cast<Nanos>(std::chrono::duration<double>(t.timeout_s))});
    plan_.max_timeout = std::max(plan_.max_timeout, plan_.targets.back().timeout);
    ++plan_.active_targets;

    for (const auto& group_name : t.groups) {
      const auto git = config_.groups.find(group_name);
      if (git == config_.groups.end()) continue;
      const GroupConfig& g = git->second;
      const auto bucket = uint32_t(plan_.buckets.size());
      plan_.buckets.push_back({t.name, g.name, t.type, af, t.state_label(), target_index});
      const std::vector<IpAddress> group_sources = configured_sources(g, af);
      for (size_t h = 0; h < rt.hosts.size(); ++h) {
        const std::vector<IpAddress> sources =
            group_sources.empty() ? std::vector<IpAddress>{*kernel_sources[h]} : group_sources;
        ProbeParams params;
        params.af = af;
        params.src = sources.front();
        params.dst = rt.hosts[h];
        params.dst_port = t.dst_port.value_or(0);
        params.dscp = uint8_t(g.dscp);
        params.dont_fragment = t.dont_fragment;
        params.ip_payload_size = uint16_t(effective_ip_payload_size(t, g));
        params.query = query;
        plan_.templates.push_back(probe_for(t.type).make_template(params));
        plan_.template_buckets.push_back(bucket);
        auto indexes = source_indexes(sources, t.type);
        if (!indexes.ok()) return indexes.error();
        add_flows(uint32_t(indexes->size()),
                  probe_for(t.type).has_ports() ? uint32_t(g.src_port_z - g.src_port_a + 1) : 1u,
                  t.nb_packets);
        streams_.push_back({uint32_t(plan_.templates.size() - 1), bucket, t.nb_packets, std::move(*indexes),
                            g.src_port_a, uint16_t(g.src_port_z - g.src_port_a + 1)});
      }
    }
    return Status::success();
  }

  Plan finish() {
    interleave();
    for (auto& f : plan_.foreign_sources)
      if (f == kUnknownLocality) f = 0;  // never used by a type with follow-ups: nothing to send
    return std::move(plan_);
  }

 private:
  // A stream is the nb_packets probes of one (target, host, group); streams are interleaved at the end.
  struct Stream {
    uint32_t tmpl;
    uint32_t bucket;
    int count;
    std::vector<uint16_t> sources;  // into Plan::sources: round robin (source subnet) or a single address
    uint16_t port_a, port_count;
  };

  // Source addresses a group configures for a family: a subnet (round robin) or a fixed address; empty
  // when the kernel chooses per destination host.
  static std::vector<IpAddress> configured_sources(const GroupConfig& g, AddressFamily af) {
    const auto& subnet = af == AddressFamily::kV4 ? g.src_subnet_ipv4 : g.src_subnet_ipv6;
    const auto& fixed = af == AddressFamily::kV4 ? g.src_ipv4 : g.src_ipv6;
    if (subnet) return source_addresses(*subnet);
    if (fixed) return {*fixed};
    return {};
  }

  // The kernel's source towards each host where a group needs it, asked before anything of the target
  // enters the plan, so that a target without a route is skipped whole. Returns the first host without
  // a route, or nullptr.
  const IpAddress* ask_kernel_sources(const ResolvedTarget& rt, AddressFamily af,
                                      std::vector<std::optional<IpAddress>>& out) const {
    const auto& groups = rt.config->groups;
    const bool needed = std::any_of(groups.begin(), groups.end(), [&](const std::string& name) {
      const auto git = config_.groups.find(name);
      return git != config_.groups.end() && configured_sources(git->second, af).empty();
    });
    out.assign(rt.hosts.size(), std::nullopt);
    for (size_t h = 0; needed && h < rt.hosts.size(); ++h) {
      out[h] = source_for_(rt.hosts[h]);
      if (!out[h]) return &rt.hosts[h];
    }
    return nullptr;
  }

  // The flows of the template just added: its stream takes source pair n % (sources x ports) for its n-th
  // probe (interleave()); without ports the pairs of one address are one flow, and since the address
  // rotates fastest (n % sources), n % sources names it.
  void add_flows(uint32_t sources, uint32_t ports, int probes) {
    TemplateFlows f;
    f.first = plan_.flow_count;
    const uint64_t n = uint64_t(std::max(probes, 1));
    // A period longer than the probes is never completed: n % period = n for every probe, as with n.
    f.period = uint32_t(std::min<uint64_t>(uint64_t(sources) * ports, n));
    f.count = std::min({f.period, uint32_t(n), tracked_flow_budget(uint32_t(n))});
    plan_.template_flows.push_back(f);
    plan_.flow_count += f.count;
  }

  // Indexes into Plan::sources of `sources`, adding the new ones.
  Result<std::vector<uint16_t>> source_indexes(const std::vector<IpAddress>& sources, ProbeType type) {
    std::vector<uint16_t> indexes(sources.size());
    for (size_t k = 0; k < sources.size(); ++k) {
      auto [it, added] = source_index_.emplace(sources[k], uint32_t(plan_.sources.size()));
      if (added) {
        if (plan_.sources.size() > kMaxSources)
          return Error{"more than " + std::to_string(kMaxSources + 1) +
                       " distinct source addresses in the configuration (source subnets of all groups)"};
        plan_.sources.push_back(sources[k]);
        plan_.foreign_sources.push_back(kUnknownLocality);
      }
      indexes[k] = uint16_t(it->second);
      // Locality matters only for types with follow-ups (who resets TCP half-open connections,
      // docs/netprobify-compatibility.md#d12-half-open-rst): asked once per source, and only then.
      uint8_t& foreign = plan_.foreign_sources[it->second];
      if (probe_for(type).has_follow_ups() && foreign == kUnknownLocality)
        foreign = is_local_(sources[k]) ? 0 : 1;
    }
    return indexes;
  }

  // Order: round robin across targets, and within a target across its streams (groups x hosts), so that
  // every target's packets are spread over the whole send window. Source (address, port) pairs of a
  // stream: n -> (n % A, (n / A) % P) covers every pair once per A*P packets (netprobify's rotation
  // skipped pairs: docs/netprobify-compatibility.md#q8-source-subnet-rotation).
  void interleave() {
    std::vector<std::vector<uint32_t>> streams_of(plan_.targets.size());
    for (uint32_t i = 0; i < streams_.size(); ++i)
      streams_of[plan_.buckets[streams_[i].bucket].target_index].push_back(i);
    struct Cursor {
      std::vector<int> next;  // per stream of the target: next probe number
      size_t turn = 0;
      size_t left = 0;
    };
    std::vector<Cursor> cursors(plan_.targets.size());
    size_t total = 0;
    for (size_t t = 0; t < cursors.size(); ++t) {
      cursors[t].next.assign(streams_of[t].size(), 0);
      for (uint32_t si : streams_of[t]) cursors[t].left += size_t(streams_[si].count);
      total += cursors[t].left;
    }
    plan_.probes.reserve(total);
    while (plan_.probes.size() < total) {
      for (size_t t = 0; t < cursors.size(); ++t) {
        Cursor& c = cursors[t];
        if (c.left == 0) continue;
        // Next stream of this target that still has probes.
        for (size_t k = 0; k < c.next.size(); ++k) {
          const size_t j = (c.turn + k) % c.next.size();
          const Stream& s = streams_[streams_of[t][j]];
          if (c.next[j] >= s.count) continue;
          const size_t n = size_t(c.next[j]++);
          const size_t a = s.sources.size();
          plan_.probes.push_back({s.tmpl, s.sources[n % a], uint16_t(s.port_a + (n / a) % s.port_count)});
          c.turn = j + 1;
          --c.left;
          break;
        }
      }
    }
  }

  const Config& config_;
  const SourceResolver& source_for_;
  const LocalCheck& is_local_;
  Plan plan_;
  std::vector<Stream> streams_;
  std::unordered_map<IpAddress, uint32_t> source_index_;
};

}  // namespace

Result<Plan> build_plan(const Config& config, const std::vector<ResolvedTarget>& targets,
                        const SourceResolver& source_for, const LocalCheck& is_local) {
  PlanBuilder builder(config, source_for, is_local);
  for (const auto& rt : targets) {
    if (Status s = builder.add_target(rt); !s.ok()) return s.error();
  }
  return builder.finish();
}

Pacer::Pacer(const Plan& plan, Nanos window, double max_pps)
    : plan_(plan),
      window_ns_(double(window.count())),
      max_pps_(max_pps),
      gap_(int64_t(plan.interval_packets_s * 1e9)),
      last_(plan.targets.size(), Nanos(-1)) {}

Nanos Pacer::next() {
  const size_t total = plan_.probes.size();
  const size_t i = i_++;
  if (i >= total) return prev_;
  const double spread = window_ns_ * double(i) / double(total);
  const double capped = max_pps_ > 0 ? double(i) * 1e9 / max_pps_ : 0.0;
  Nanos t(int64_t(std::max(spread, capped)));
  const uint32_t target = plan_.target_of(plan_.probes[i]);
  if (last_[target] >= Nanos(0)) t = std::max(t, last_[target] + gap_);
  t = std::max(t, prev_);  // packets leave in plan order
  prev_ = last_[target] = t;
  return t;
}

std::vector<Nanos> schedule(const Plan& plan, Nanos window, double max_pps) {
  Pacer pacer(plan, window, max_pps);
  std::vector<Nanos> at(plan.probes.size());
  for (auto& t : at) t = pacer.next();
  return at;
}

Nanos send_window(const Plan& plan, double interval_s) {
  const double available =
      std::max(0.0, interval_s - std::chrono::duration<double>(plan.max_timeout).count());
  return Nanos(int64_t(available * kSendWindowShare * 1e9));
}

}  // namespace netprobe
