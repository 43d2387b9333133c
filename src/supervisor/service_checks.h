#pragma once
// TCPquery and TLS targets in the daemon (issue 18, docs/service-checks.md#daemon): a bounded pool of
// threads in the supervisor runs each configured (check, group) once per global.interval with
// svc::run_tcp_query(), the code of `netprobe query` and `netprobe check`, and ServiceCheckSeries renders
// the results in blackbox's names and units.
//
// Why threads of the supervisor (docs/architecture.md#service-checks): the supervisor holds no capability,
// reads the host's files (the system trust store, ca_file), and is where results become metrics; the
// raw-socket workers must keep parsing nothing but fixed-layout headers.
//
// Bounds: kServiceCheckThreads threads (so at most that many connections at once); each check at most once
// in flight (a check still running when its next turn comes skips that turn, counted); every check's time
// is bounded by its timeout (name resolution by svc::resolve_host() over the thread's own c-ares resolver,
// connect, handshake, steps) and its reads by svc::kMaxTcpReadBytes per expect.
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "config/config.h"
#include "config/tag_selection.h"
#include "core/result.h"
#include "dns/resolver.h"
#include "metrics/exposition.h"
#include "svc/tcp_query.h"

namespace netprobe {

inline constexpr size_t kServiceCheckThreads = 4;

// Makes the resolver of one checking thread (a Resolver is used from one thread only). Null: a check of a
// host name fails "resolve" ("no resolver"); IP literals never need one.
using ServiceCheckResolverFactory = std::function<std::unique_ptr<Resolver>()>;
// The production one: c-ares with the system's settings (/etc/resolv.conf), as the raw targets' resolver;
// null (logged) when c-ares cannot start. Also what `netprobe query` uses.
std::unique_ptr<Resolver> make_service_check_resolver();

// The query of one check from one group: the destination in the check's family, the group's source address
// of that family bound when it has one (src_ipv4 / src_ipv6; with only a subnet the kernel chooses), the
// steps compiled. An Error names a step the loader would have refused.
Result<svc::TcpQuerySpec> service_check_spec(const ServiceCheckConfig& check, const GroupConfig* group);

// The selected checks of `config` (tags as for the raw targets), in name order.
std::vector<const ServiceCheckConfig*> selected_service_checks(const Config& config,
                                                               const TagSelection& selection);

// `netprobe check`: every (check, group) of `checks` once, at most kServiceCheckThreads at a time, through
// the daemon's code (each thread with a resolver from `resolvers`, empty: make_service_check_resolver);
// results in (name, group) order.
struct ServiceCheckOutcome {
  const ServiceCheckConfig* check = nullptr;
  std::string group;
  svc::TcpQueryResult result;
};
std::vector<ServiceCheckOutcome> run_service_checks_once(const Config& config,
                                                         const std::vector<const ServiceCheckConfig*>& checks,
                                                         const ServiceCheckResolverFactory& resolvers = {});
// One line of `netprobe check`'s text output, as CheckResult::line():
//   TLS www.example.com:443 OK 12.31 ms, TLS 1.3, expires 2027-03-01T12:00:00Z [web/g1]
//   TCPquery 192.0.2.25:25 FAILED expect: step 0: connection closed [smtp/g1]
std::string service_check_line(const ServiceCheckOutcome& o);

// The service-check families of /metrics. Labels of every series: address_family, destination (the target
// name, as for the other families), group, probe_name, state, type (TCPquery or TLS). Thread-safe: the
// runner's threads record, HTTP threads render.
class ServiceCheckSeries final : public TextSource {
 public:
  explicit ServiceCheckSeries(std::string probe_name);
  void set_probe_name(std::string probe_name);
  // The checks that exist (after a load or reload): series of checks or groups no longer configured go,
  // declared ones get their expiry window.
  void declare(const std::vector<const ServiceCheckConfig*>& checks);
  void record(const ServiceCheckConfig& check, const std::string& group, const svc::TcpQueryResult& result);
  void inc_skipped(const std::string& name, const std::string& group, double n);
  bool render(std::string& out, size_t flush_at, const TextSink& flush) const override;

 private:
  struct Row {
    bool measured = false;
    svc::TcpQueryResult last;
    double runs = 0;
    double skipped = 0;
    std::map<std::string, double> failures;  // reason -> count
  };
  struct Check {
    std::string af, type, state, alert_level;  // label values, escaped
    bool tls = false;
    int64_t expiry_window_s = 0;
    std::map<std::string, Row> rows;  // by group
  };
  mutable std::mutex mutex_;
  std::string probe_name_;               // escaped
  std::map<std::string, Check> checks_;  // by name
};

// Runs the checks. Construct, then update() from the supervisor's thread at every (re)load; the destructor
// stops the threads (a check in flight finishes within its timeout first).
class ServiceCheckRunner {
 public:
  // Each thread makes its resolver with `resolvers` (empty: make_service_check_resolver) at its first run.
  ServiceCheckRunner(std::shared_ptr<ServiceCheckSeries> series, size_t threads = kServiceCheckThreads,
                     ServiceCheckResolverFactory resolvers = {});
  ~ServiceCheckRunner();
  ServiceCheckRunner(const ServiceCheckRunner&) = delete;
  ServiceCheckRunner& operator=(const ServiceCheckRunner&) = delete;

  // The checks to run and the interval between two runs of each: a check whose configuration is unchanged
  // keeps its schedule; a new one starts within min(interval, 10 s) (spread by its name).
  void update(const Config& config, const TagSelection& selection);

 private:
  using Clock = std::chrono::steady_clock;
  struct Entry {
    ServiceCheckConfig config;
    std::string group;
    std::shared_ptr<const svc::TcpQuerySpec> spec;  // null: spec_error says why (a failure "config")
    std::string spec_error;
    Clock::time_point due;
    bool running = false;
    bool removed = false;
  };
  void loop();

  std::shared_ptr<ServiceCheckSeries> series_;
  ServiceCheckResolverFactory resolvers_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::chrono::seconds interval_{30};
  std::map<std::pair<std::string, std::string>, std::shared_ptr<Entry>> entries_;  // (name, group)
  std::vector<std::thread> threads_;
};

}  // namespace netprobe
