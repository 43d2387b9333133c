#pragma once
// Name resolution behind an interface, so that the supervisor's loop never blocks on DNS and tests can
// script answers. The production implementation uses c-ares (resolver settings from /etc/resolv.conf).
#include <functional>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/net.h"

namespace netprobe {

struct Resolution {
  bool ok = false;
  std::vector<IpAddress> addresses;  // in the resolver's order; netprobify used the first one
  std::string error;                 // "NXDOMAIN", "timeout", ... when !ok
};

class Resolver {
 public:
  virtual ~Resolver() = default;
  // Starts resolving `host` for `af`. `done` runs later, from poll(), never from inside resolve().
  virtual void resolve(const std::string& host, AddressFamily af, std::function<void(Resolution)> done) = 0;
  // Runs I/O and timeouts for at most `max_wait`; returns how many callbacks ran.
  virtual int poll(Nanos max_wait) = 0;
  // Queries started and not yet answered.
  virtual size_t pending() const = 0;
};

}  // namespace netprobe
