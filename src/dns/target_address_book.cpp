#include "dns/target_address_book.h"

#include <algorithm>
#include <utility>

namespace netprobe {

TargetAddressBook::TargetAddressBook(Resolver& resolver, const Clock& clock, AddressBookOptions options)
    : resolver_(resolver),
      clock_(clock),
      options_(options),
      alive_(std::make_shared<TargetAddressBook*>(this)) {}

TargetAddressBook::~TargetAddressBook() = default;

void TargetAddressBook::set_targets(const std::map<std::string, TargetConfig>& targets) {
  std::map<std::string, Entry> next;
  std::vector<std::string> to_query;
  for (const auto& [name, t] : targets) {
    Entry e;
    e.destination = t.destination;
    e.af = t.family();
    e.interval_s = std::max(0, t.dns_update_interval_s);
    if (t.is_subnet) {
      e.kind = Kind::kSubnet;
    } else if (auto ip = IpAddress::parse(t.destination)) {
      e.kind = Kind::kLiteral;
      e.address = *ip;
    }
    if (t.groups.empty()) {
      e.state = State::kDisabled;
      next.emplace(name, std::move(e));
      continue;
    }
    // Same destination as before: keep probing what we had while the forced re-resolution runs.
    if (auto old = entries_.find(name); old != entries_.end()) {
      const Entry& o = old->second;
      if (o.state != State::kDisabled && o.kind == e.kind && o.destination == e.destination && o.af == e.af) {
        e.state = o.state;
        e.address = o.address;
        e.subnet = o.subnet;
        e.error = o.error;
      }
    }
    if (e.kind == Kind::kHostname) {
      to_query.push_back(name);
    } else if (e.state == State::kPending) {
      // New literal or subnet: settled now, reported once as a first resolution (netprobify's update pass
      // gave them status 1 and a change too).
      ResolutionEvent ev;
      ev.target = name;
      ev.af = e.af;
      ev.destination = e.destination;
      if (e.kind == Kind::kSubnet) {
        e.subnet = IpNetwork::parse(t.destination);
        // The schema and loader check subnets; a family mismatch would still make every host unusable.
        if (!e.subnet || e.subnet->base.af != e.af) {
          e.state = State::kFailed;
          e.error = "invalid subnet for " + std::string(to_string(e.af));
          ev.kind = ResolutionEvent::Kind::kFailed;
          ev.error = e.error;
          events_.push_back(std::move(ev));
          next.emplace(name, std::move(e));
          continue;
        }
      } else if (e.address.af != e.af) {
        e.state = State::kFailed;
        e.error = "address is not " + std::string(to_string(e.af));
        ev.kind = ResolutionEvent::Kind::kFailed;
        ev.error = e.error;
        events_.push_back(std::move(ev));
        next.emplace(name, std::move(e));
        continue;
      } else {
        ev.hosts = {e.address};
      }
      e.state = State::kActive;
      events_.push_back(std::move(ev));
    }
    next.emplace(name, std::move(e));
  }
  // Queries of the old set are forgotten: their answers find no matching id and are dropped.
  entries_ = std::move(next);
  ++generation_;  // a reload always rebuilds the plan
  for (const auto& name : to_query) start_query(name, entries_.at(name));
}

void TargetAddressBook::start_query(const std::string& name, Entry& e) {
  const uint64_t id = next_query_++;
  e.query = id;
  e.query_started = clock_.monotonic();
  std::weak_ptr<TargetAddressBook*> alive = alive_;
  resolver_.resolve(e.destination, e.af, [alive, name, id](Resolution r) {
    if (auto self = alive.lock()) (*self)->on_answer(name, id, std::move(r));
  });
}

size_t TargetAddressBook::refresh_due() {
  expire_queries();
  const Nanos now = clock_.monotonic();
  size_t started = 0;
  for (auto& [name, e] : entries_) {
    if (e.kind != Kind::kHostname || e.state == State::kDisabled || e.query) continue;
    if (e.interval_s == 0 || now >= e.next_refresh) {
      start_query(name, e);
      ++started;
    }
  }
  return started;
}

int TargetAddressBook::poll(Nanos max_wait) {
  int applied = 0;
  // Answers owed to a previous set of targets are drained, but never waited for.
  if (resolver_.pending() > 0) applied = resolver_.poll(pending() > 0 ? max_wait : Nanos(0));
  expire_queries();
  return applied;
}

void TargetAddressBook::settle(Nanos budget) {
  const auto deadline = std::chrono::steady_clock::now() + budget;
  while (pending() > 0) {
    const auto left = deadline - std::chrono::steady_clock::now();
    if (left <= Nanos(0)) break;
    poll(std::chrono::duration_cast<Nanos>(left));
  }
}

void TargetAddressBook::expire_queries() {
  const Nanos now = clock_.monotonic();
  for (auto& [name, e] : entries_) {
    if (e.query && now - e.query_started >= options_.query_deadline) {
      e.query = 0;
      e.next_refresh = now + std::chrono::seconds(e.interval_s);
      fail(name, e, "timeout (no answer from the resolver)");
    }
  }
}

void TargetAddressBook::on_answer(const std::string& name, uint64_t query, Resolution r) {
  auto it = entries_.find(name);
  if (it == entries_.end() || it->second.query != query) return;  // superseded by a reload or expired
  Entry& e = it->second;
  e.query = 0;
  e.next_refresh = clock_.monotonic() + std::chrono::seconds(e.interval_s);
  // Defensive: a resolver must only return addresses of the family asked for.
  std::erase_if(r.addresses, [&](const IpAddress& a) { return a.af != e.af; });
  if (!r.ok || r.addresses.empty()) {
    fail(name, e, r.error.empty() ? "no " + std::string(to_string(e.af)) + " address" : r.error);
    return;
  }
  const bool was_active = e.state == State::kActive;
  if (was_active && std::find(r.addresses.begin(), r.addresses.end(), e.address) != r.addresses.end())
    return;  // stable: netprobify does not touch the metrics either
  ResolutionEvent ev;
  ev.kind = ResolutionEvent::Kind::kResolved;
  ev.target = name;
  ev.af = e.af;
  ev.destination = e.destination;
  if (was_active) ev.previous = {e.address};
  e.address = r.addresses.front();
  e.state = State::kActive;
  e.error.clear();
  ev.hosts = {e.address};
  events_.push_back(std::move(ev));
  ++generation_;
}

void TargetAddressBook::fail(const std::string& name, Entry& e, std::string error) {
  ResolutionEvent ev;
  ev.kind = ResolutionEvent::Kind::kFailed;
  ev.target = name;
  ev.af = e.af;
  ev.destination = e.destination;
  ev.was_active = e.state == State::kActive;
  ev.repeated = e.state == State::kFailed;
  ev.error = error;
  if (ev.was_active) {
    ev.previous = {e.address};
    ++generation_;
  }
  e.state = State::kFailed;
  e.error = std::move(error);
  events_.push_back(std::move(ev));
}

std::optional<std::vector<IpAddress>> TargetAddressBook::hosts(const std::string& target) const {
  auto it = entries_.find(target);
  if (it == entries_.end() || it->second.state != State::kActive) return std::nullopt;
  const Entry& e = it->second;
  if (e.kind == Kind::kSubnet) return e.subnet->usable_hosts(kMaxSubnetHosts);
  return std::vector<IpAddress>{e.address};
}

std::optional<IpAddress> TargetAddressBook::address(const std::string& target) const {
  auto it = entries_.find(target);
  if (it == entries_.end() || it->second.state != State::kActive || it->second.kind == Kind::kSubnet)
    return std::nullopt;
  return it->second.address;
}

bool TargetAddressBook::is_subnet(const std::string& target) const {
  auto it = entries_.find(target);
  return it != entries_.end() && it->second.kind == Kind::kSubnet;
}

TargetAddressBook::State TargetAddressBook::state(const std::string& target) const {
  auto it = entries_.find(target);
  return it == entries_.end() ? State::kDisabled : it->second.state;
}

const std::string& TargetAddressBook::error(const std::string& target) const {
  static const std::string kNone;
  auto it = entries_.find(target);
  return it == entries_.end() ? kNone : it->second.error;
}

size_t TargetAddressBook::pending() const {
  return size_t(
      std::count_if(entries_.begin(), entries_.end(), [](const auto& kv) { return kv.second.query != 0; }));
}

std::optional<Nanos> TargetAddressBook::next_refresh() const {
  std::optional<Nanos> next;
  for (const auto& [name, e] : entries_) {
    if (e.kind != Kind::kHostname || e.state == State::kDisabled || e.query) continue;
    if (!next || e.next_refresh < *next) next = e.next_refresh;
  }
  return next;
}

std::vector<ResolutionEvent> TargetAddressBook::take_events() { return std::exchange(events_, {}); }

bool TargetAddressBook::take_changed() {
  if (taken_generation_ == generation_) return false;
  taken_generation_ = generation_;
  return true;
}

}  // namespace netprobe
