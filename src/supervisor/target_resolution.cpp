#include "supervisor/target_resolution.h"

#include <netdb.h>
#include <sys/socket.h>
#include <memory>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "core/sockaddr.h"
#include "dns/cares_resolver.h"

namespace netprobe {

void GetaddrinfoResolver::resolve(const std::string& host, AddressFamily af,
                                  std::function<void(Resolution)> done) {
  Resolution r;
  addrinfo hints{};
  hints.ai_family = af == AddressFamily::kV4 ? AF_INET : AF_INET6;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  const int rc = getaddrinfo(host.c_str(), nullptr, &hints, &res);
  if (rc != 0) {
    r.error = gai_strerror(rc);
  } else {
    for (addrinfo* a = res; a; a = a->ai_next)
      if (auto address = from_sockaddr(a->ai_addr)) r.addresses.push_back(*address);
    freeaddrinfo(res);
    r.ok = !r.addresses.empty();
    if (!r.ok) r.error = "no address";
  }
  queue_.push_back([done = std::move(done), r = std::move(r)]() mutable { done(std::move(r)); });
}

int GetaddrinfoResolver::poll(Nanos) {
  int n = 0;
  while (!queue_.empty()) {
    auto cb = std::move(queue_.front());
    queue_.pop_front();
    cb();
    ++n;
  }
  return n;
}

std::unique_ptr<Resolver> make_system_resolver() {
  auto cares = CaresResolver::create();
  if (!cares.ok()) {
    spdlog::error("{}: falling back to blocking getaddrinfo", cares.error().message);
    return std::make_unique<GetaddrinfoResolver>();
  }
  spdlog::info("DNS: c-ares, servers {} (from /etc/resolv.conf)", fmt::join((*cares)->servers(), ","));
  return std::move(cares).value();
}

DestinationResolution destination_of(const TargetAddressBook& book, const std::string& target) {
  DestinationResolution d;
  d.ok = book.state(target) == TargetAddressBook::State::kActive;
  d.subnet = book.is_subnet(target);
  if (auto ip = book.address(target)) d.hosts = {*ip};
  if (!d.ok) d.error = book.error(target);
  return d;
}

std::map<std::string, DestinationResolution> resolve_destinations(Resolver& resolver, const Config& config,
                                                                  Clock& clock, Nanos timeout) {
  // Shared with the callbacks: a lookup still pending at the deadline may complete later (c-ares) and
  // must then write into a live object, not into this function's returned-and-gone frame.
  auto results = std::make_shared<std::map<std::string, DestinationResolution>>();
  auto& out = *results;
  for (const auto& [name, t] : config.targets) {
    if (t.groups.empty()) continue;
    DestinationResolution& d = out[name];
    if (t.is_subnet) {
      d.subnet = true;
      d.ok = IpNetwork::parse(t.destination).has_value();
      if (!d.ok) d.error = "not a network";
      continue;
    }
    if (auto ip = IpAddress::parse(t.destination)) {
      d.ok = true;
      d.hosts = {*ip};
      continue;
    }
    d.error = "timeout";
    resolver.resolve(t.destination, t.family(), [results, &d](Resolution r) {
      d.ok = r.ok && !r.addresses.empty();
      d.error = r.ok ? std::string() : r.error;
      if (d.ok) d.hosts = {r.addresses.front()};  // netprobify probes the first address only
    });
  }
  const Nanos deadline = clock.monotonic() + timeout;
  while (resolver.pending() > 0) {
    const Nanos now = clock.monotonic();
    if (now >= deadline) break;
    resolver.poll(deadline - now);
  }
  return out;  // a copy: late callbacks write into the shared original
}

}  // namespace netprobe
