#include "ondemand/probe_service.h"

#include <fmt/format.h>

#include <utility>

#include "ondemand/probe_output.h"

namespace netprobe::ondemand {

ProbeService::ProbeService(OnDemandConfig config, Policy policy, Resolver& resolver, ProbeExecutor& executor,
                           Clock& clock, std::function<void(const std::string&)> audit, SharedLimits limits)
    : config_(std::move(config)),
      policy_(std::move(policy)),
      resolver_(resolver),
      executor_(executor),
      clock_(clock),
      audit_(std::move(audit)),
      credentials_(config_.credentials),
      admission_(std::move(limits.admission)),
      budget_(std::move(limits.budget)) {
  const SharedLimits own = SharedLimits::of(config_.budgets);
  if (!admission_) admission_ = own.admission;
  if (!budget_) budget_ = own.budget;
  policy_.allowed_prefixes = config_.allowed_prefixes;
  policy_.allowed_targets = config_.allowed_targets;
}

void ProbeService::finish(const ProbeHttpRequest& request, const std::string& credential,
                          ProbeHttpResponse response, const std::function<void(ProbeHttpResponse)>& done) {
  if (!response.reason.empty()) {
    std::lock_guard lock(mu_);
    ++rejections_[response.reason];
  }
  const auto param = [&](const char* name) {
    auto it = request.params.find(name);
    return it == request.params.end() ? std::string("-") : it->second.substr(0, 253);
  };
  if (audit_)
    audit_(fmt::format("on-demand /probe peer={} credential={} target={:?} module={:?} status={} reason={}",
                       request.peer.empty() ? "-" : request.peer, credential.empty() ? "-" : credential,
                       param("target"), param("module"), response.status,
                       response.reason.empty() ? "-" : response.reason));
  done(std::move(response));
}

void ProbeService::release(const std::string& credential) {
  admission_->release(credential);
  --running_;
}

void ProbeService::handle(ProbeHttpRequest request, std::function<void(ProbeHttpResponse)> done) {
  const AuthResult auth = credentials_.check(
      request.authorization ? std::optional<std::string_view>(*request.authorization) : std::nullopt);
  if (auth.verdict != http::AuthVerdict::kAllow) {
    const bool busy = auth.verdict == http::AuthVerdict::kBusy;
    finish(request, "", {busy ? 429 : 401, busy ? "busy, retry\n" : "unauthorized\n", "auth_" + auth.reason},
           done);
    return;
  }
  auto job = build_probe_job(config_, request.params, request.scrape_timeout);
  if (!job) {
    finish(request, auth.credential, {400, job.error().message + "\n", "bad_request"}, done);
    return;
  }
  std::string why;
  if (!admission_->try_acquire(auth.credential, &why)) {
    finish(request, auth.credential, {429, "too many tests running (" + why + ")\n", why}, done);
    return;
  }
  ++running_;
  job->credential = auth.credential;
  const Nanos start = clock_.monotonic();
  const OnDemandModule& module = config_.modules.at(job->module);
  auto shared = std::make_shared<ProbeHttpRequest>(std::move(request));
  // Copied first: the lambda below takes the job, and argument evaluation order is unspecified.
  const std::string target = job->target;
  const AddressFamily af = job->af;
  check_target(
      policy_, target, af, resolver_,
      [this, shared, done, start, &module, job = std::move(*job)](ParsedTarget parsed, Decision d) mutable {
        const std::string credential = job.credential;
        if (!d.allowed()) {
          release(credential);
          if (d.refusal == Refusal::kResolveFailed) {  // as blackbox: a probe that failed, not a refusal
            finish(*shared, credential,
                   {200,
                    render_probe_metrics(job, module, {}, double((clock_.monotonic() - start).count()) / 1e9),
                    ""},
                   done);
            return;
          }
          finish(*shared, credential, {403, d.detail + "\n", std::string(to_string(d.refusal))}, done);
          return;
        }
        job.target = parsed.host;
        job.addresses = std::move(d.pinned);  // the probe goes to what was checked, nothing else
        // Every packet must leave within the job's timeout, else the caller waits for a budget it lacks.
        const Nanos now = clock_.monotonic();
        auto times = budget_->reserve(job.addresses.front(), job.nb_packets, now,
                                      now + Nanos(int64_t(job.timeout_s * 1e9)));
        if (!times) {
          release(credential);
          finish(*shared, credential,
                 {429, "packet budget exhausted for this destination, retry later\n", "packet_budget"}, done);
          return;
        }
        executor_.run(job, std::move(*times),
                      [this, shared, done, start, &module, job](std::vector<ProbeEvent> events) {
                        release(job.credential);
                        const double duration = double((clock_.monotonic() - start).count()) / 1e9;
                        finish(*shared, job.credential,
                               {200,
                                job.debug ? render_probe_debug(job, module, events, duration)
                                          : render_probe_metrics(job, module, events, duration),
                                "", job.debug},
                               done);
                      });
      });
}

std::map<std::string, uint64_t> ProbeService::rejections() const {
  std::lock_guard lock(mu_);
  return rejections_;
}

}  // namespace netprobe::ondemand
