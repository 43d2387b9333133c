#pragma once
// Where the supervisor turns target destinations into addresses.
//
// The supervisor keeps a TargetAddressBook (dns/target_address_book.h) fed by the c-ares resolver
// (make_system_resolver()): hostnames are resolved in the background at start, at every reload and every
// dns_update_interval, never delaying the targets that are ready; destination_of() is what a target's
// shard entry gets from it. IP literals and subnets need no lookup (subnets are expanded by the worker
// that probes them, so a /8 never travels over IPC).
//
// GetaddrinfoResolver (blocking getaddrinfo inside resolve(), the first address as netprobify used) and
// resolve_destinations() remain as the fallback when c-ares cannot start, and for tests.
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "config/config.h"
#include "core/clock.h"
#include "dns/resolver.h"
#include "dns/target_address_book.h"

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

// The system's resolver: c-ares with /etc/resolv.conf (followed when it changes); blocking getaddrinfo
// if c-ares cannot start (logged).
std::unique_ptr<Resolver> make_system_resolver();

// A target's destination as the address book has it now: ok only when the target is active (resolved,
// a literal, or a subnet).
DestinationResolution destination_of(const TargetAddressBook& book, const std::string& target);

// Resolves the destination of every target of `config` that has at least one group (the others are
// never probed). Waits at most `timeout` for the resolver; unanswered lookups fail with "timeout".
std::map<std::string, DestinationResolution> resolve_destinations(Resolver& resolver, const Config& config,
                                                                  Clock& clock, Nanos timeout);

}  // namespace netprobe
