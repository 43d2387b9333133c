#include "inventory/snapshot.h"

#include <poll.h>

#include <fmt/format.h>

#include "inventory/manager.h"

namespace netprobe {

InventorySnapshot collect_inventory_once(const Config& config, Nanos timeout, Clock& clock) {
  InventoryOptions options = inventory_options(config);
  options.first_document_timeout = timeout;
  options.backoff_initial = options.backoff_max = timeout;  // a failed plug-in is not run again meanwhile
  InventoryManager manager(std::move(options), clock);
  std::set<std::string> groups;
  for (const auto& [name, g] : config.groups) groups.insert(name);
  manager.set_known_groups(std::move(groups));

  InventorySnapshot out;
  out.plugins = manager.start();
  const Nanos deadline = clock.monotonic() + timeout;
  // Bounded: every pass waits at most until the deadline, and the deadline ends the loop.
  for (;;) {
    manager.poll();
    bool done = true;
    for (const auto& s : manager.status()) done = done && (s.documents > 0 || s.failures > 0);
    const Nanos now = clock.monotonic();
    if (done || now >= deadline) break;
    std::vector<pollfd> fds;
    for (int fd : manager.fds()) fds.push_back({fd, POLLIN, 0});
    const Nanos wait = std::min({deadline - now, manager.next_deadline() - now, Nanos(100'000'000)});
    ::poll(fds.data(), fds.size(), int(std::max<int64_t>(1, wait.count() / 1'000'000)));
  }
  for (const auto& s : manager.status()) {
    if (s.documents > 0) continue;
    out.errors.push_back(s.failures > 0 ? fmt::format("inventory {}: {}", s.name, s.last_error)
                                        : fmt::format("inventory {}: no document within {:.0f} s", s.name,
                                                      std::chrono::duration<double>(timeout).count()));
  }
  out.targets = manager.dynamic_targets();
  manager.stop();
  return out;
}

}  // namespace netprobe
