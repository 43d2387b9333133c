#include "supervisor/ondemand_worker.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <future>

#include <spdlog/spdlog.h>

namespace netprobe {

// ---- LoopQueue ----

LoopQueue::LoopQueue() : fd_(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {}

LoopQueue::~LoopQueue() {
  if (fd_ >= 0) ::close(fd_);
}

bool LoopQueue::post(std::function<void()> task) {
  {
    std::lock_guard lock(mu_);
    if (closed_ || tasks_.size() >= kMaxPending) return false;
    tasks_.push_back(std::move(task));
  }
  const uint64_t one = 1;
  if (fd_ >= 0 && ::write(fd_, &one, sizeof one) < 0) {
  }  // EAGAIN: the counter is already non-zero
  return true;
}

void LoopQueue::drain() {
  uint64_t count = 0;
  if (fd_ >= 0 && ::read(fd_, &count, sizeof count) < 0) {
  }  // EAGAIN: nothing was posted
  std::deque<std::function<void()>> tasks;
  {
    std::lock_guard lock(mu_);
    tasks.swap(tasks_);
  }
  for (auto& task : tasks) task();
}

void LoopQueue::close() {
  std::lock_guard lock(mu_);
  closed_ = true;
  tasks_.clear();
}

// ---- OnDemandWorker ----

OnDemandJob OnDemandWorker::job_of(const ondemand::ProbeJob& job, const std::vector<Nanos>& send_times,
                                   Nanos now) {
  OnDemandJob j;
  j.type = job.type;
  if (!job.addresses.empty()) j.dst = job.addresses.front();
  j.dst_port = job.dst_port;
  j.dscp = uint8_t(std::clamp(job.dscp, 0, 63));
  j.dont_fragment = job.dont_fragment;
  const auto ttl = uint8_t(std::clamp(job.ttl, 1, 255));
  if (job.ip_payload_size) j.ip_payload_size = uint16_t(std::clamp(*job.ip_payload_size, 0, 1472));
  // The whole probe within its timeout (blackbox's rule): the last packet waits what is left, at least a
  // tenth of the timeout (the budget placed every send time within it).
  const Nanos last = send_times.empty() ? now : send_times.back();
  const double left = job.timeout_s - std::chrono::duration<double>(last - now).count();
  j.timeout_s = std::clamp(std::max(left, job.timeout_s / 10), 0.001, 60.0);
  const uint32_t ports = job.src_port_z >= job.src_port_a ? uint32_t(job.src_port_z - job.src_port_a) + 1 : 1;
  for (size_t i = 0; i < send_times.size(); ++i)
    j.probes.push_back({uint16_t(job.src_port_a + i % ports), ttl, send_times[i].count()});
  return j;
}

std::vector<ProbeEvent> OnDemandWorker::unsent_events(const OnDemandJob& job, size_t reason) {
  std::vector<ProbeEvent> events(job.probes.size());
  for (size_t i = 0; i < events.size(); ++i) {
    events[i].slot = uint32_t(i);
    events[i].src_port = job.type == ProbeType::kIcmpPing ? 0 : job.probes[i].sport;
    events[i].state = ProbeEvent::State::kUnsent;
    events[i].send_error = uint8_t(reason + 1);
  }
  return events;
}

void OnDemandWorker::run(const ondemand::ProbeJob& job, std::vector<Nanos> send_times,
                         std::function<void(std::vector<ProbeEvent>)> done) {
  run_job(job_of(job, send_times, clock_.monotonic()), std::move(done));
}

void OnDemandWorker::set_caps(double per_destination_pps, double global_pps) {
  const auto gap = [](double pps) -> int64_t { return pps > 0 ? ondemand::floor_gap(pps).count() : 0; };
  dest_gap_ns_ = gap(per_destination_pps);
  global_gap_ns_ = gap(global_pps);
}

void OnDemandWorker::run_job(OnDemandJob job, JobDone done) {
  job.id = next_id_++;
  job.dest_gap_ns = dest_gap_ns_;
  job.global_gap_ns = global_gap_ns_;
  if (job.probes.empty() || job.probes.size() > kMaxJobProbes) {
    done(unsent_events(job, IterationRunner::kUnsentNoToken));
    return;
  }
  Nanos last{0};
  for (const JobProbe& p : job.probes) last = std::max(last, Nanos(p.send_at_ns));
  if (!send_(job)) {
    done(unsent_events(job, IterationRunner::kUnsentNoWorker));
    return;
  }
  const Nanos deadline = last + Nanos(int64_t(job.timeout_s * 1e9)) + kResultGrace;
  const uint64_t id = job.id;
  pending_.emplace(id, Pending{std::move(job), deadline, std::move(done)});
}

void OnDemandWorker::fail(uint64_t id, const std::string& why) {
  auto it = pending_.find(id);
  if (it == pending_.end()) return;
  Pending p = std::move(it->second);
  pending_.erase(it);
  spdlog::warn("on-demand job {} to {}: {}", id, p.job.dst.to_string(), why);
  p.done(unsent_events(p.job, IterationRunner::kUnsentNoWorker));
}

void OnDemandWorker::on_result(OnDemandResult result) {
  auto it = pending_.find(result.id);
  if (it == pending_.end()) return;  // failed already (timed out, worker restarted)
  Pending p = std::move(it->second);
  pending_.erase(it);
  if (!result.error.empty()) spdlog::warn("on-demand job {}: {}", result.id, result.error);
  // One event per probe, in order, whatever the worker sent: a missing or misplaced one reads as unsent.
  std::vector<ProbeEvent> events = unsent_events(p.job, IterationRunner::kUnsentNoWorker);
  for (ProbeEvent& e : result.events)
    if (e.slot < events.size()) events[e.slot] = e;
  for (const ProbeEvent& e : events)
    if (e.state != ProbeEvent::State::kUnsent) ++packets_sent_;
  p.done(std::move(events));
}

void OnDemandWorker::on_down() {
  std::vector<uint64_t> ids;
  for (const auto& [id, p] : pending_) ids.push_back(id);
  for (uint64_t id : ids) fail(id, "the on-demand worker went down");
}

void OnDemandWorker::run_timers() {
  const Nanos now = clock_.monotonic();
  std::vector<uint64_t> late;
  for (const auto& [id, p] : pending_)
    if (now >= p.deadline) late.push_back(id);
  for (uint64_t id : late) fail(id, "no result from the on-demand worker in time");
}

Nanos OnDemandWorker::next_deadline() const {
  Nanos next = Nanos::max();
  for (const auto& [id, p] : pending_) next = std::min(next, p.deadline);
  return next;
}

// ---- WorkerHopProber ----

namespace {
constexpr Nanos kStartLead{20'000'000};  // the first probe leaves this long after the batch is posted
}

std::vector<HopReply> WorkerHopProber::probe(std::span<const ProbeSpec> probes) {
  const double rate = rate_pps_ > 0 ? rate_pps_ : 100;
  const Nanos start = SystemClock().monotonic() + kStartLead;
  std::vector<Nanos> send_at(probes.size());
  for (size_t i = 0; i < probes.size(); ++i) send_at[i] = start + Nanos(int64_t(double(i) * 1e9 / rate));
  return probe_at(probes, send_at);
}

std::vector<HopReply> WorkerHopProber::probe_at(std::span<const ProbeSpec> probes,
                                                std::span<const Nanos> send_at) {
  std::lock_guard lock(mu_);
  std::vector<HopReply> out(probes.size());
  if (send_at.size() != probes.size()) {
    failed_ = true;
    return out;
  }
  const double timeout = std::clamp(timeout_s_, 0.01, 60.0);
  // Every job of the batch is handed over before waiting for any: a later one's send times must not pass
  // while an earlier one is still out.
  std::vector<std::pair<size_t, std::future<std::vector<ProbeEvent>>>> jobs;
  for (size_t at = 0; at < probes.size(); at += kMaxJobProbes) {
    const size_t n = std::min(kMaxJobProbes, probes.size() - at);
    OnDemandJob job;
    job.type = target_.type;
    job.dst = target_.dst;
    job.dst_port = target_.dst_port;
    job.paris = target_.type == ProbeType::kIcmpPing;
    job.icmp_error_resolves = true;
    job.timeout_s = timeout;
    for (size_t i = at; i < at + n; ++i)
      job.probes.push_back({probes[i].sport, std::max<uint8_t>(1, probes[i].ttl), send_at[i].count()});
    auto promise = std::make_shared<std::promise<std::vector<ProbeEvent>>>();
    auto future = promise->get_future();
    OnDemandWorker& worker = worker_;
    if (!loop_.post([&worker, job = std::move(job), promise]() mutable {
          worker.run_job(std::move(job), [promise](std::vector<ProbeEvent> events) {
            promise->set_value(std::move(events));
          });
        })) {
      failed_ = true;
      break;
    }
    jobs.emplace_back(at, std::move(future));
  }
  // The loop answers within the last send time, the timeout and the executor's grace; a little more for
  // the loop itself. One bound for the whole batch, so waiting stays bounded whatever the job count.
  const Nanos last = *std::max_element(send_at.begin(), send_at.end());
  const double until_last_s =
      std::max(0.0, std::chrono::duration<double>(last - SystemClock().monotonic()).count());
  using Steady = std::chrono::steady_clock;
  const double bound_s =
      until_last_s + timeout + std::chrono::duration<double>(OnDemandWorker::kResultGrace).count() + 3;
  const auto bound =
      Steady::now() + std::chrono::duration_cast<Steady::duration>(std::chrono::duration<double>(bound_s));
  for (auto& [at, future] : jobs) {
    if (future.wait_until(bound) != std::future_status::ready) {
      failed_ = true;  // the loop still owns the promise: it is answered into the void later
      break;
    }
    for (const ProbeEvent& e : future.get()) {
      // The worker down: later batches would read as silence too.
      if (e.send_error == IterationRunner::kUnsentNoWorker + 1) failed_ = true;
      if (at + e.slot >= out.size() || e.slot >= kMaxJobProbes || e.state == ProbeEvent::State::kUnsent)
        continue;
      ++sent_;
      out[at + e.slot] = hop_reply_of(e, target_.dst);
    }
  }
  return out;
}

HopProberFactory make_hop_prober_factory(LoopQueue& loop, OnDemandWorker& worker) {
  return
      [&loop, &worker](TraceTarget target, double timeout_s, double rate_pps) -> std::unique_ptr<HopProber> {
        return std::make_unique<WorkerHopProber>(loop, worker, std::move(target), timeout_s, rate_pps);
      };
}

// ---- GET /probe ----

namespace {
http::Response probe_response(const ondemand::ProbeHttpResponse& r) {
  http::Response out = http::Response::text(r.status, r.body);
  if (r.status == 200 && !r.debug)  // a metrics page; the debug log is plain text, as blackbox's
    for (auto& [name, value] : out.headers)
      if (name == "Content-Type") value = "text/plain; version=0.0.4; charset=utf-8";
  return out;
}
}  // namespace

http::Route make_probe_route(LoopQueue& loop, std::shared_ptr<const ProbeServe> serve) {
  http::Route route([&loop, serve](const http::Request& request, http::Responder responder) {
    ondemand::ProbeHttpRequest r;
    const auto args = request.query_args();
    if (args.size() > kMaxQueryParams) {
      responder.respond(http::Response::text(400, "too many query parameters\n"));
      return;
    }
    for (const auto& [name, value] : args) {
      if (!r.params.emplace(name, value).second) {
        responder.respond(
            http::Response::text(400, "query parameter \"" + name.substr(0, 64) + "\" repeated\n"));
        return;
      }
    }
    if (auto a = request.header("Authorization")) r.authorization = std::string(*a);
    if (auto t = request.header("X-Prometheus-Scrape-Timeout-Seconds")) r.scrape_timeout = std::string(*t);
    r.peer = request.peer();
    const bool posted = loop.post([serve, r = std::move(r), responder]() mutable {
      (*serve)(std::move(r), [responder](ondemand::ProbeHttpResponse answer) {
        responder.respond(probe_response(answer));
      });
    });
    if (!posted) responder.respond(http::Response::text(503, "netprobe is stopping or overloaded, retry\n"));
  });
  route.server_auth = false;  // the on-demand credentials, not the /metrics users
  return route;
}

}  // namespace netprobe
