#include "worker/ondemand_engine.h"

#include <algorithm>
#include <map>
#include <random>

#include "probes/icmp_echo.h"

namespace netprobe {
namespace {

constexpr Nanos kPollWait{5'000'000};
constexpr Nanos kCaptureGrace{50'000'000};  // as the Engine: answers may still sit in the capture buffer
constexpr Nanos kHardGrace{5'000'000'000};  // a lane is freed at the latest this long after its timeout

}  // namespace

Result<Plan> build_job_plan(const OnDemandJob& job, const SourceResolver& source_for) {
  const auto src = source_for(job.dst);
  if (!src) return Error{"no route to " + job.dst.to_string()};
  Plan plan;
  const AddressFamily af = job.dst.af;
  const auto timeout = Nanos(int64_t(job.timeout_s * 1e9));
  const std::string name = job.dst.to_string();
  plan.targets.push_back({name, job.type, af, timeout});
  plan.buckets.push_back({name, "on_demand", job.type, af, "", 0});
  plan.sources = {*src};
  plan.foreign_sources = {0};
  plan.max_timeout = timeout;
  plan.active_targets = 1;
  const Probe& probe = probe_for(job.type);
  const bool paris = job.paris && job.type == ProbeType::kIcmpPing;
  std::map<uint8_t, uint32_t> by_ttl;
  plan.probes.reserve(job.probes.size());
  for (const JobProbe& p : job.probes) {
    auto [it, added] = by_ttl.emplace(p.ttl, uint32_t(plan.templates.size()));
    if (added) {
      ProbeParams params;
      params.af = af;
      params.src = *src;
      params.dst = job.dst;
      params.dst_port = job.dst_port;
      params.dscp = job.dscp;
      params.dont_fragment = job.dont_fragment;
      params.ttl = p.ttl;
      if (job.ip_payload_size) params.ip_payload_size = *job.ip_payload_size;
      if (paris) params.ip_payload_size = std::max<uint16_t>(params.ip_payload_size, 10);
      plan.templates.push_back(probe.make_template(params));
      if (paris && !make_paris_checksum(plan.templates.back()))
        return Error{"cannot build a Paris ICMP template"};
      plan.template_buckets.push_back(0);
      plan.template_flows.push_back({0, 0, 1});  // no per-path tally: the caller has every event
    }
    plan.probes.push_back({it->second, 0, p.sport});
  }
  return plan;
}

OnDemandEngine::OnDemandEngine(Clock& clock, PacketSink& sink, PacketSource& source, uint64_t secret,
                               KeySlice slice, SourceResolver source_for, bool capture_thread)
    : clock_(clock),
      sink_(sink),
      source_(source),
      source_for_(std::move(source_for)),
      capture_thread_(capture_thread) {
  std::random_device rd;
  iteration_ = (uint64_t(rd()) << 32) | rd();  // as Engine: a restarted worker never reuses tokens
  lanes_.resize(size_t(1) << kLaneBits);
  for (size_t i = 0; i < lanes_.size(); ++i) {
    const KeySlice lane{slice.bits + kLaneBits, (slice.index << kLaneBits) | uint32_t(i)};
    lanes_[i].runner = std::make_unique<IterationRunner>(secret, lane);
  }
  progress_ = clock_.monotonic().count();
  if (capture_thread_)
    capture_ = std::thread([this] {
      while (!quit_capture_.load(std::memory_order_relaxed))
        if (poll_once(kPollWait) < 0) clock_.sleep_until(clock_.monotonic() + kPollWait);
    });
}

OnDemandEngine::~OnDemandEngine() {
  quit_capture_ = true;
  source_.interrupt();
  if (capture_.joinable()) capture_.join();
}

int OnDemandEngine::poll_once(Nanos wait) {
  return source_.poll(
      [&](const CapturedPacket& packet) {
        std::lock_guard lock(mu_);
        for (Lane& l : lanes_)
          if (l.busy) l.runner->on_packet(packet);
      },
      wait);
}

void OnDemandEngine::submit(OnDemandJob job) {
  {
    std::lock_guard lock(queue_mu_);
    queue_.push_back(std::move(job));
  }
  clock_.wake();
}

void OnDemandEngine::stop() {
  stop_ = true;
  clock_.wake();
}

size_t OnDemandEngine::busy_lanes() const {
  std::lock_guard lock(mu_);
  return size_t(std::count_if(lanes_.begin(), lanes_.end(), [](const Lane& l) { return l.busy; }));
}

void OnDemandEngine::admit(const Done& done) {
  for (Lane& lane : lanes_) {
    if (lane.busy) continue;
    OnDemandJob job;
    {
      std::lock_guard lock(queue_mu_);
      if (queue_.empty()) return;
      job = std::move(queue_.front());
      queue_.pop_front();
    }
    auto plan = build_job_plan(job, source_for_);
    if (!plan.ok()) {
      done(OnDemandResult{job.id, plan.error().message, {}});
      continue;
    }
    Nanos last{0};
    for (const JobProbe& p : job.probes) last = std::max(last, Nanos(p.send_at_ns));
    std::lock_guard lock(mu_);
    lane.job = std::move(job);
    lane.plan = std::move(plan).value();
    lane.runner->set_options({.reply_details = true, .icmp_error_resolves = lane.job.icmp_error_resolves});
    lane.tokens = lane.runner->prepare(lane.plan, ++iteration_);
    lane.next = 0;
    lane.hard_deadline = last + lane.plan.max_timeout + kHardGrace;
    lane.busy = true;
  }
}

Nanos OnDemandEngine::send_due(Nanos now) {
  Nanos next_due = Nanos::max();
  // Floors older than any gap (10 s at most) hold nothing: forget them, so that the map stays small.
  if (last_to_.size() > 1024)
    std::erase_if(last_to_, [&](const auto& e) { return now - e.second > Nanos(10'000'000'000); });
  for (Lane& lane : lanes_) {
    if (!lane.busy) continue;
    const size_t n = lane.plan.probes.size();
    while (lane.next < n) {
      const size_t i = lane.next;
      Nanos due(lane.job.probes[i].send_at_ns);
      // The floors push it later, never earlier; its lateness is still measured from its reserved time.
      Nanos floor = Nanos::min();
      if (lane.job.dest_gap_ns > 0)
        if (auto it = last_to_.find(lane.job.dst); it != last_to_.end())
          floor = it->second + Nanos(lane.job.dest_gap_ns);
      if (lane.job.global_gap_ns > 0 && last_any_ != Nanos::min())
        floor = std::max(floor, last_any_ + Nanos(lane.job.global_gap_ns));
      if (std::max(due, floor) > now) {
        next_due = std::min(next_due, std::max(due, floor));
        break;
      }
      ++lane.next;
      if (lane.tokens[i] == 0) continue;  // no token: prepare() accounted it
      if (now - due > kLateTolerance) {
        std::lock_guard lock(mu_);
        lane.runner->mark_unsent(uint32_t(i), IterationRunner::kUnsentCutShort);
        continue;
      }
      const PlannedProbe& p = lane.plan.probes[i];
      const PacketTemplate& t = lane.plan.templates[p.tmpl];
      buffer_.resize(std::max(buffer_.size(), t.bytes.size()));
      const size_t len = probe_for(t.type).craft(
          t, PacketFields{lane.plan.source_of(p), p.src_port, lane.tokens[i]}, std::span<uint8_t>(buffer_));
      const OutPacket out{std::span<const uint8_t>(buffer_.data(), len), t.params.dst};
      uint8_t failed = 0;
      sink_.send(std::span<const OutPacket>(&out, 1), std::span<uint8_t>(&failed, 1));
      const Nanos stamp = clock_.realtime();
      now = clock_.monotonic();
      last_to_[lane.job.dst] = now;
      last_any_ = now;
      std::lock_guard lock(mu_);
      if (!failed)
        lane.runner->on_sender_stamp(uint32_t(i), stamp);
      else
        lane.runner->mark_unsent(uint32_t(i), size_t(failed - 1));
    }
  }
  return next_due;
}

void OnDemandEngine::finish_resolved(const Done& done) {
  const Nanos now = clock_.monotonic();
  const Nanos packet_now = clock_.realtime() - kCaptureGrace;
  for (Lane& lane : lanes_) {
    if (!lane.busy || lane.next < lane.plan.probes.size()) continue;
    OnDemandResult result;
    {
      std::lock_guard lock(mu_);
      // The RSTs an Engine sends are for foreign sources and stale half-open connections: the job's
      // source is the kernel's own (its kernel resets), and a job has no previous iteration.
      lane.runner->pending_resets().clear();
      lane.runner->stale_resets().clear();
      if (!lane.runner->expire(packet_now) && now < lane.hard_deadline) continue;
      result.id = lane.job.id;
      lane.runner->probe_events(result.events);
      lane.runner->finish();
      lane.busy = false;
    }
    lane.plan = Plan{};
    lane.job.probes.clear();
    done(std::move(result));
  }
}

void OnDemandEngine::run(const Done& done) {
  while (!stop_) {
    const Nanos now = clock_.monotonic();
    progress_.store(now.count(), std::memory_order_relaxed);
    admit(done);
    const Nanos next_due = send_due(now);
    finish_resolved(done);
    if (!capture_thread_) poll_once(Nanos(0));
    clock_.sleep_until(std::min(next_due, clock_.monotonic() + kPollWait));
  }
}

}  // namespace netprobe
