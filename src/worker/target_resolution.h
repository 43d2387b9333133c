#pragma once
// Where the supervisor turns target destinations into addresses: the one place to change when the
// c-ares resolver (src/dns/) and the dns_update_interval refresh replace today's blocking lookups.
//
// resolve_destinations() asks a Resolver (src/dns/resolver.h) for every target whose destination is a
// host name; IP literals and subnets need no lookup (subnets are expanded by the worker that probes
// them, so a /8 never travels over IPC). GetaddrinfoResolver is the interim Resolver: blocking
// getaddrinfo inside resolve(), the first address as netprobify used.
#include <deque>
#include <functional>
#include <map>
#include <string>

#include "config/config.h"
#include "core/clock.h"
#include "dns/resolver.h"

namespace netprobe {

// Blocking getaddrinfo (AI_ADDRCONFIG off, SOCK_STREAM as netprobify's proto=TCP). Callbacks are queued
// and run from poll(), as the Resolver contract says.
class GetaddrinfoResolver final : public Resolver {
 public:
  void resolve(const std::string& host, AddressFamily af, std::function<void(Resolution)> done) override;
  int poll(Nanos max_wait) override;
  size_t pending() const override { return queue_.size(); }

 private:
  std::deque<std::function<void()>> queue_;
};

struct DestinationResolution {
  bool ok = false;
  bool subnet = false;           // no lookup: the worker expands the network
  std::vector<IpAddress> hosts;  // what the worker probes (netprobify: the first address); empty for subnets
  std::string error;
};

// Resolves the destination of every target of `config` that has at least one group (the others are
// never probed). Waits at most `timeout` for the resolver; unanswered lookups fail with "timeout".
std::map<std::string, DestinationResolution> resolve_destinations(Resolver& resolver, const Config& config,
                                                                  Clock& clock, Nanos timeout);

}  // namespace netprobe
