#include "svc/resolve.h"

#include <sys/socket.h>

#include <algorithm>
#include <memory>
#include <vector>

#include <fmt/format.h>

namespace netprobe::svc {

namespace {

using Steady = std::chrono::steady_clock;

// One query's answer, shared with its callback: a callback that runs after resolve_host() returned (the
// query was abandoned at the deadline and the thread's resolver answers it during a later check) writes
// into this, never into a gone frame.
struct Slot {
  bool done = false;
  Resolution r;
};

// Polls until every slot is answered, `enough` says the answers so far suffice, or the deadline. Bounded in
// time (each poll waits at most the time left) and in count (a resolver that has nothing in flight and
// answers nothing ends the wait at once instead of spinning to the deadline).
template <typename Enough>
void wait_for(Resolver& resolver, const std::vector<std::shared_ptr<Slot>>& slots,
              Steady::time_point deadline, Enough enough) {
  auto all_done = [&] { return std::all_of(slots.begin(), slots.end(), [](auto& s) { return s->done; }); };
  for (int round = 0; round < 100000 && !all_done() && !enough(); ++round) {
    const auto left = deadline - Steady::now();
    if (left <= Steady::duration::zero()) break;
    const int ran = resolver.poll(std::chrono::duration_cast<Nanos>(left));
    if (ran == 0 && resolver.pending() == 0) break;  // lost: nothing will ever answer
  }
}

bool wanted(const IpAddress& ip, int family) {
  if (family == AF_INET) return ip.af == AddressFamily::kV4;
  if (family == AF_INET6) return ip.af == AddressFamily::kV6;
  return true;
}

// The first answer of `r` usable as a destination of `family`; `why` collects what was discarded.
std::optional<IpAddress> first_usable(const Resolution& r, int family, std::string& why) {
  for (const IpAddress& ip : r.addresses) {
    if (!wanted(ip, family)) continue;
    if (const char* bad = unusable_destination(ip)) {
      if (why.empty()) why = fmt::format("answer {} is {}", ip.to_string(), bad);
      continue;
    }
    return ip;
  }
  return std::nullopt;
}

}  // namespace

const char* unusable_destination(const IpAddress& ip) {
  if (ip.is_unspecified()) return "unspecified";
  if (ip.af == AddressFamily::kV4) {
    if ((ip.bytes[0] & 0xf0) == 0xe0) return "multicast";
    if (ip.v4_host_order() == 0xffffffffu) return "broadcast";
    if (ip.bytes[0] == 0) return "unspecified";  // 0.0.0.0/8: "this network", reaches the host itself
  } else if (ip.bytes[0] == 0xff) {
    return "multicast";
  }
  return nullptr;
}

HostResolution resolve_host(Resolver* resolver, const std::string& host, int family,
                            Steady::time_point deadline) {
  HostResolution out;
  if (auto ip = IpAddress::parse(host)) {
    if (!wanted(*ip, family))
      out.error = fmt::format("{} is not an {} address", host, family == AF_INET6 ? "IPv6" : "IPv4");
    else
      out.address = *ip;
    return out;
  }
  if (host.empty() || host.size() > 253) {
    out.error = "not a host name";
    return out;
  }
  if (!resolver) {
    out.error = "no resolver";
    return out;
  }
  out.queried = true;
  const auto start = Steady::now();
  // Family 0 asks both and takes IPv4 when it has an answer (the daemon's default family), without waiting
  // for the IPv6 query once IPv4 answered.
  std::vector<std::pair<AddressFamily, std::shared_ptr<Slot>>> queries;
  if (family != AF_INET6) queries.emplace_back(AddressFamily::kV4, std::make_shared<Slot>());
  if (family != AF_INET) queries.emplace_back(AddressFamily::kV6, std::make_shared<Slot>());
  std::vector<std::shared_ptr<Slot>> slots;
  for (auto& [af, slot] : queries) {
    slots.push_back(slot);
    resolver->resolve(host, af, [slot = slot](Resolution r) {
      slot->done = true;
      slot->r = std::move(r);
    });
  }
  const int want = family == 0 ? AF_INET : family;
  wait_for(*resolver, slots, deadline, [&] {
    const Slot& first = *queries.front().second;
    std::string ignored;
    return first.done && first.r.ok && first_usable(first.r, want, ignored).has_value();
  });
  out.seconds = std::chrono::duration<double>(Steady::now() - start).count();
  std::string discarded;
  std::string errors;
  bool timed_out = false;
  for (auto& [af, slot] : queries) {
    const int f = af == AddressFamily::kV4 ? AF_INET : AF_INET6;
    if (!slot->done) {
      timed_out = true;
      continue;
    }
    if (slot->r.ok) {
      if (auto ip = first_usable(slot->r, f, discarded)) {
        out.address = *ip;
        return out;
      }
      if (errors.empty()) errors = fmt::format("no {} address", af == AddressFamily::kV4 ? "IPv4" : "IPv6");
    } else if (errors.empty()) {
      errors = slot->r.error.empty() ? "no answer" : slot->r.error;
    }
  }
  if (timed_out)
    out.error =
        fmt::format("timeout after {} ms",
                    std::chrono::duration_cast<std::chrono::milliseconds>(Steady::now() - start).count());
  else
    out.error = !discarded.empty() ? discarded : errors;
  return out;
}

}  // namespace netprobe::svc
