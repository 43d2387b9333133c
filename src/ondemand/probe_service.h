#pragma once
// GET /probe from request to page, with the executor behind an interface (docs/on-demand.md#get-probe):
// credentials -> parameters -> concurrency -> target policy (one resolution, addresses pinned) -> packet
// budget (send times reserved) -> executor -> page. Every refusal is counted by reason and every request
// gives one audit line. Runs on the caller's loop: `done` is called once, from handle() or from the
// resolver's poll() or the executor's completion.
#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "config/on_demand.h"
#include "core/clock.h"
#include "dns/resolver.h"
#include "engine/iteration.h"
#include "ondemand/budget.h"
#include "ondemand/credentials.h"
#include "ondemand/probe_request.h"
#include "ondemand/target_policy.h"

namespace netprobe::ondemand {

// Runs a job's probes to job.addresses.front() at `send_times` (one per probe) and reports one event per
// probe. The production one is the on-demand worker (supervisor/ondemand_worker.h); tests script it.
class ProbeExecutor {
 public:
  virtual ~ProbeExecutor() = default;
  virtual void run(const ProbeJob& job, std::vector<Nanos> send_times,
                   std::function<void(std::vector<ProbeEvent>)> done) = 0;
};

struct ProbeHttpRequest {
  std::optional<std::string> authorization;
  QueryParams params;
  std::optional<std::string> scrape_timeout;  // X-Prometheus-Scrape-Timeout-Seconds
  std::string peer;                           // client address, for the audit line
};

struct ProbeHttpResponse {
  int status = 200;
  std::string body;
  std::string reason;  // refusal reason ("" when served): the rejections counter's label
  bool debug = false;  // the per-probe log (plain text), not a metrics page
};

class ProbeService {
 public:
  // `limits`: the admission and packet budget shared with /api/v1/tests (either left null: its own).
  ProbeService(OnDemandConfig config, Policy policy, Resolver& resolver, ProbeExecutor& executor,
               Clock& clock, std::function<void(const std::string&)> audit, SharedLimits limits = {});
  void handle(ProbeHttpRequest request, std::function<void(ProbeHttpResponse)> done);
  std::map<std::string, uint64_t> rejections() const;  // reason -> count
  int running() const { return running_; }

 private:
  void release(const std::string& credential);
  void finish(const ProbeHttpRequest& request, const std::string& credential, ProbeHttpResponse response,
              const std::function<void(ProbeHttpResponse)>& done);

  OnDemandConfig config_;
  Policy policy_;
  Resolver& resolver_;
  ProbeExecutor& executor_;
  Clock& clock_;
  std::function<void(const std::string&)> audit_;
  CredentialTable credentials_;
  std::shared_ptr<Admission> admission_;
  std::shared_ptr<PacketBudget> budget_;
  std::atomic<int> running_{0};  // this service's requests in flight (the admission may be shared)
  mutable std::mutex mu_;
  std::map<std::string, uint64_t> rejections_;
};

}  // namespace netprobe::ondemand
