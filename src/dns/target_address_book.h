#pragma once
// Which address each configured target is probed at, kept up to date without ever blocking probing.
//
// The supervisor owns one TargetAddressBook and calls it from its own loop, whatever the process model:
//   set_targets(config.targets)   at start and after every successful reload (forces DNS for hostnames);
//   refresh_due()                 once per iteration: netprobify's update pass, starts the queries due;
//   poll(max_wait)                whenever it has time (between iterations, while waiting for workers);
//   take_events()                 -> record_resolution_events() (resolution_metrics.h) for the metrics;
//   take_changed()                -> rebuild the plan from hosts() before the next iteration, only then.
// Nothing here waits for DNS: IP literals and subnets are settled by set_targets() itself, and a hostname
// whose answer has not come yet is simply not active yet (or keeps its previous address).
//
// Behaviour, netprobify's unless noted (differences: docs/netprobify-compatibility.md#d27-dns-changes):
// - hostnames are resolved at set_targets(), then every dns_update_interval seconds after the previous
//   answer; 0 re-resolves at every refresh_due() (docs/netprobify-compatibility.md#d9-dns-interval-zero).
//   A query still in flight is not restarted.
//   Dynamic targets honour their interval too (netprobify re-resolved them every iteration regardless).
// - one address per target: the first of the answer; but while the address being probed is still in the
//   answer it is kept, so that round-robin record order does not count as a change (netprobe's choice).
// - success with a new address (the first resolution, and the first after a failure, included): status 1,
//   change counter +1, the target probes the new address from the next plan. Same address: no event.
// - failure (NXDOMAIN, SERVFAIL, timeout, no address of the family): the target becomes inactive, a
//   kFailed event on every failed attempt (status 0, measurement series removed; idempotent).
// - IP literals and subnets get one kResolved event when they appear (netprobify passed them through the
//   same update code with no previous destination), none afterwards.
// - a reload keeps a target's state and address when its destination, family and subnet flag are the same
//   (no change event: fixes netprobify counting every reload as a change); anything else starts afresh.
// - targets with no group are neither resolved nor probed (netprobify's "disabled: not associated to any
//   group"); the supervisor handles their metrics as it does today.
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "config/config.h"
#include "core/clock.h"
#include "core/net.h"
#include "dns/resolver.h"

namespace netprobe {

struct ResolutionEvent {
  enum class Kind : uint8_t {
    kResolved,  // new address (first included): app_host_resolution_status 1, change_total +1
    kFailed,    // app_host_resolution_status 0, measurement series removed, target inactive
  };
  Kind kind = Kind::kResolved;
  std::string target;
  AddressFamily af = AddressFamily::kV4;
  std::string destination;          // as configured
  std::vector<IpAddress> previous;  // the address probed before (empty at first / after a failure)
  std::vector<IpAddress> hosts;     // kResolved: the new address (empty for a subnet: see hosts())
  std::string error;                // kFailed
  bool was_active = false;          // kFailed: the target was being probed until now
  bool repeated = false;            // kFailed: the previous attempt had failed too (log once, not every pass)
};

struct AddressBookOptions {
  // A query the resolver has not answered after this long counts as a failure ("timeout") and its late
  // answer is ignored: a Resolver that hangs must not keep a target in limbo. Longer than c-ares' own
  // worst case with the default options (2 s + 4 s per search domain).
  Nanos query_deadline = std::chrono::seconds(30);
};

class TargetAddressBook {
 public:
  enum class State : uint8_t {
    kPending,   // hostname, never answered yet (or answer pending after a destination change)
    kActive,    // has an address: probe it
    kFailed,    // last resolution failed
    kDisabled,  // no group: not resolved, not probed
  };

  // `resolver` and `clock` must outlive the book. The book may be destroyed with queries in flight: their
  // answers are then dropped.
  TargetAddressBook(Resolver& resolver, const Clock& clock, AddressBookOptions options = {});
  ~TargetAddressBook();
  TargetAddressBook(const TargetAddressBook&) = delete;
  TargetAddressBook& operator=(const TargetAddressBook&) = delete;

  // Start and every reload: the book now holds exactly these targets; hostname queries start now.
  void set_targets(const std::map<std::string, TargetConfig>& targets);
  // Once per iteration: starts the queries whose interval has elapsed (all, when it is 0). Returns how
  // many started. Also expires queries older than query_deadline.
  size_t refresh_due();
  // Lets the resolver run for at most `max_wait` (returning early once answers came, at once when none of
  // this book's queries is in flight) and applies its answers. Returns the resolver's callbacks run.
  int poll(Nanos max_wait);

  // poll() until no query of this book is in flight or `budget` (real time: it waits on real sockets)
  // is spent. For the very first plan only, so that names answered promptly make the first iteration as
  // netprobify's blocking resolution did, while a dead server delays the others by `budget` at most.
  void settle(Nanos budget);

  // The hosts to probe, nullopt when the target is not active (unknown, pending, failed, disabled). A
  // subnet's hosts are expanded on each call (host_addresses), so call this when building a plan only.
  std::optional<std::vector<IpAddress>> hosts(const std::string& target) const;
  // Without expansion, for a supervisor that ships subnets to workers as networks: the address of an
  // active hostname or literal target; nullopt for a subnet or an inactive target.
  std::optional<IpAddress> address(const std::string& target) const;
  bool is_subnet(const std::string& target) const;
  State state(const std::string& target) const;               // kDisabled for an unknown name
  const std::string& error(const std::string& target) const;  // last failure, "" otherwise
  size_t pending() const;                                     // queries in flight
  // When the next interval-driven query is due (nullopt: none scheduled), for loops that sleep.
  std::optional<Nanos> next_refresh() const;

  std::vector<ResolutionEvent> take_events();
  // Bumped whenever the set of active targets or an address changes: the plan must be rebuilt.
  uint64_t generation() const { return generation_; }
  // True once after every change of generation(): "rebuild the plan now".
  bool take_changed();

 private:
  enum class Kind : uint8_t { kHostname, kLiteral, kSubnet };
  struct Entry {
    Kind kind = Kind::kHostname;
    std::string destination;
    AddressFamily af = AddressFamily::kV4;
    int interval_s = 0;
    State state = State::kPending;
    IpAddress address;  // kLiteral / kHostname when kActive
    std::optional<IpNetwork> subnet;
    std::string error;
    uint64_t query = 0;  // id of the query in flight, 0 = none
    Nanos query_started{0};
    Nanos next_refresh{0};
  };

  void start_query(const std::string& name, Entry& e);
  void on_answer(const std::string& name, uint64_t query, Resolution r);
  void fail(const std::string& name, Entry& e, std::string error);
  void expire_queries();

  Resolver& resolver_;
  const Clock& clock_;
  AddressBookOptions options_;
  std::map<std::string, Entry> entries_;
  std::vector<ResolutionEvent> events_;
  uint64_t next_query_ = 1;
  uint64_t generation_ = 0;
  uint64_t taken_generation_ = 0;
  // Callbacks hold a weak reference: an answer arriving after the book is gone is dropped.
  std::shared_ptr<TargetAddressBook*> alive_;
};

}  // namespace netprobe
