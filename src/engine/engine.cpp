#include "engine/engine.h"

#include <algorithm>
#include <random>

namespace netprobe {

Engine::Engine(Clock& clock, PacketSink& sink, PacketSource& source, uint64_t secret, EngineOptions options)
    : clock_(clock), sink_(sink), source_(source), options_(options), runner_(secret, options.slice) {
  // Iteration numbers start at a random point per engine, so that a restarted worker (same run secret)
  // never reuses the tokens of its previous incarnation: their late replies stay unknown.
  std::random_device rd;
  iteration_ = (uint64_t(rd()) << 32) | rd();
  if (options_.capture_thread) capture_ = std::thread([this] { capture_loop(); });
}

Engine::~Engine() {
  quit_capture_ = true;
  source_.interrupt();
  if (capture_.joinable()) capture_.join();
}

void Engine::stop() {
  stop_ = true;
  clock_.wake();
}

int Engine::poll_once(Nanos wait) {
  // One lock per run of packets instead of one per packet: a poll hands over a whole ring block at
  // once. The lock is taken at the first packet (never across the source's wait for one) and released
  // every kPacketsPerLock packets, so the sender's short critical sections never queue behind a block.
  constexpr int kPacketsPerLock = 64;
  std::unique_lock lock(mu_, std::defer_lock);
  int held = 0;
  return source_.poll(
      [&](const CapturedPacket& packet) {
        if (!lock.owns_lock()) lock.lock();
        runner_.on_packet(packet);
        if (++held == kPacketsPerLock) {
          held = 0;
          lock.unlock();
        }
      },
      wait);
}

void Engine::capture_loop() {
  while (!quit_capture_.load(std::memory_order_relaxed)) {
    if (poll_once(options_.poll_wait) < 0) {
      // A failed live capture cannot recover by itself; the iteration will report everything as lost
      // and the worker's supervisor restarts it. Avoid spinning meanwhile.
      clock_.sleep_until(clock_.monotonic() + options_.poll_wait);
    }
  }
}

void Engine::send_resets(const Plan& plan, std::span<const uint32_t> tokens) {
  {
    std::lock_guard lock(mu_);
    resets_.swap(runner_.pending_resets());
    stale_resets_.swap(runner_.stale_resets());
  }
  if (resets_.empty() && stale_resets_.empty()) return;
  std::vector<uint8_t> packet;
  // The follow-up (TCPsyn: a RST with seq = token + 1) from `slot`'s 4-tuple, `copies` times.
  auto send_rst = [&](uint32_t slot, uint32_t token, int copies) {
    const PlannedProbe& p = plan.probes[slot];
    const PacketTemplate& t = plan.templates[p.tmpl];
    packet.resize(t.bytes.size());
    const size_t len =
        probe_for(t.type).craft_follow_up(t, PacketFields{plan.source_of(p), p.src_port, token}, packet);
    if (len == 0) return;
    const OutPacket out{std::span<const uint8_t>(packet.data(), len), t.params.dst};
    for (int i = 0; i < copies; ++i) sink_.send(std::span<const OutPacket>(&out, 1));
  };
  for (uint32_t slot : resets_) send_rst(slot, tokens[slot], 1);
  // Half-open connections of earlier probes: seq = the ack that proved them
  // (docs/architecture.md#two-way-loss).
  for (const auto& r : stale_resets_) send_rst(r.slot, r.token, IterationRunner::kStaleResetCopies);
  resets_.clear();
  stale_resets_.clear();
}

IterationReport Engine::run_iteration(const Plan& plan, const IterationSettings& settings,
                                      std::vector<ProbeEvent>* events) {
  const Nanos start = clock_.monotonic();
  progress_.store(start.count(), std::memory_order_relaxed);
  std::span<const uint32_t> tokens;  // the runner's: stable (and only read) until the next prepare()
  {
    std::lock_guard lock(mu_);
    runner_.set_options(
        {.reply_details = events != nullptr, .icmp_error_resolves = settings.icmp_error_resolves});
    tokens = runner_.prepare(plan, ++iteration_);
  }
  const Nanos hard_deadline =
      settings.hard_timeout == Nanos::max() ? Nanos::max() : start + settings.hard_timeout;
  bool timed_out = !send_probes(plan, tokens, settings, start, hard_deadline);
  const Nanos sent_at = clock_.monotonic();
  timed_out = !wait_for_answers(plan, tokens, hard_deadline) || timed_out;

  IterationReport report;
  {
    std::lock_guard lock(mu_);
    report = runner_.report();
    if (events) {
      events->clear();
      runner_.probe_events(*events);
    }
    runner_.finish();  // the worker may replace the plan before the next iteration: never read it again
  }
  add_capture_stats(report);
  report.timed_out = timed_out;
  report.duration_s = std::chrono::duration<double>(clock_.monotonic() - start).count();
  report.send_window_s = std::chrono::duration<double>(sent_at - start).count();
  return report;
}

bool Engine::send_probes(const Plan& plan, std::span<const uint32_t> tokens,
                         const IterationSettings& settings, Nanos start, Nanos hard_deadline) {
  const size_t n = plan.probes.size();
  size_t max_len = 0;
  for (const auto& t : plan.templates) max_len = std::max(max_len, t.bytes.size());
  const size_t batch = std::max<size_t>(1, options_.batch);
  buffer_.resize(batch * max_len);
  std::vector<OutPacket> out(batch);
  std::vector<uint8_t> failed(batch);
  std::vector<uint32_t> slots(batch);  // the probe of each packet of the batch
  Pacer pacer(plan, send_window(plan, settings.interval_s), settings.max_packets_per_second);
  Nanos due = pacer.next();  // of probe i
  bool in_time = true;

  // Every packet whose time has come, in batches; sleep until the next one is due.
  size_t i = 0;
  while (i < n && !stop_) {
    const Nanos now = clock_.monotonic() - start;
    progress_.store((start + now).count(), std::memory_order_relaxed);
    if (start + now >= hard_deadline) {
      in_time = false;
      break;
    }
    if (due > now) {
      if (!options_.capture_thread) poll_once(Nanos(0));
      clock_.sleep_until(std::min(start + due, start + now + kMaxWait));
      continue;
    }
    size_t k = 0;
    while (i < n && k < batch && due <= now) {
      const PlannedProbe& p = plan.probes[i];
      const PacketTemplate& t = plan.templates[p.tmpl];
      if (tokens[i] != 0) {  // 0: no token left for it (prepare() accounted it as unsent)
        std::span<uint8_t> buf(buffer_.data() + k * max_len, max_len);
        const size_t len =
            probe_for(t.type).craft(t, PacketFields{plan.source_of(p), p.src_port, tokens[i]}, buf);
        out[k] = OutPacket{buf.first(len), t.params.dst};
        slots[k++] = uint32_t(i);
      }
      ++i;
      due = pacer.next();
    }
    // Failed packets can be anywhere in the batch (one unreachable destination fails alone).
    std::fill_n(failed.begin(), k, uint8_t(0));
    if (k > 0) sink_.send(std::span<const OutPacket>(out.data(), k), std::span<uint8_t>(failed.data(), k));
    const Nanos stamp = clock_.realtime();
    bool resets;
    {
      std::lock_guard lock(mu_);
      for (size_t j = 0; j < k; ++j) {
        if (!failed[j])
          runner_.on_sender_stamp(slots[j], stamp);
        else
          runner_.mark_unsent(slots[j], size_t(failed[j] - 1));
      }
      resets = !runner_.pending_resets().empty() || !runner_.stale_resets().empty();
    }
    if (resets) send_resets(plan, tokens);
  }
  std::lock_guard lock(mu_);
  for (size_t j = i; j < n; ++j) runner_.mark_unsent(uint32_t(j), IterationRunner::kUnsentCutShort);
  return in_time;
}

bool Engine::wait_for_answers(const Plan& plan, std::span<const uint32_t> tokens, Nanos hard_deadline) {
  while (!stop_) {
    progress_.store(clock_.monotonic().count(), std::memory_order_relaxed);
    if (!options_.capture_thread) poll_once(Nanos(0));
    send_resets(plan, tokens);
    bool done;
    {
      std::lock_guard lock(mu_);
      done = runner_.expire(clock_.realtime() - options_.capture_grace);
    }
    if (done) return true;
    if (clock_.monotonic() >= hard_deadline) return false;
    clock_.sleep_until(std::min(hard_deadline, clock_.monotonic() + options_.poll_wait));
  }
  return true;
}

void Engine::add_capture_stats(IterationReport& report) {
  const CaptureStats stats = source_.stats();
  report.capture_received = stats.received - std::min(stats.received, last_stats_.received);
  report.capture_dropped = stats.dropped - std::min(stats.dropped, last_stats_.dropped);
  report.capture_if_dropped = stats.if_dropped - std::min(stats.if_dropped, last_stats_.if_dropped);
  if (const uint64_t d = stats.not_ip - std::min(stats.not_ip, last_stats_.not_ip))
    report.rejected["not_ip"] += d;
  if (const uint64_t d = stats.truncated - std::min(stats.truncated, last_stats_.truncated))
    report.rejected["truncated_frame"] += d;
  last_stats_ = stats;
}

}  // namespace netprobe
