#include "io/fake_link.h"

#include <utility>

namespace netprobe {

FakeLink::FakeLink(const Clock& clock) : FakeLink(clock, Options{}) {}
FakeLink::FakeLink(const Clock& clock, Options options) : clock_(clock), options_(options) {}

void FakeLink::set_responder(Responder responder) {
  std::lock_guard lock(mu_);
  responder_ = std::move(responder);
}

void FakeLink::set_send_filter(SendFilter filter, SendError error) {
  std::lock_guard lock(mu_);
  send_filter_ = std::move(filter);
  send_error_ = error;
}

void FakeLink::push_locked(Nanos at, Direction direction, std::vector<uint8_t> bytes) {
  queue_.push(Queued{at, seq_++, direction, std::move(bytes)});
}

void FakeLink::inject(std::vector<uint8_t> ip_bytes, Nanos at, Direction direction) {
  {
    std::lock_guard lock(mu_);
    push_locked(at, direction, std::move(ip_bytes));
  }
  cv_.notify_all();
}

size_t FakeLink::send(std::span<const OutPacket> batch, std::span<uint8_t> failed) noexcept {
  if (failed.size() < batch.size()) failed = {};
  Responder responder;
  SendFilter filter;
  SendError error;
  {
    std::lock_guard lock(mu_);
    responder = responder_;
    filter = send_filter_;
    error = send_error_;
  }
  size_t accepted = 0;
  for (size_t i = 0; i < batch.size(); ++i) {
    const OutPacket& p = batch[i];
    const bool ok = !filter || filter(p.bytes);
    if (!failed.empty()) failed[i] = ok ? 0 : uint8_t(1 + uint8_t(error));
    if (!ok) {
      std::lock_guard lock(mu_);
      ++failed_;
      continue;
    }
    const Nanos now = clock_.realtime();
    // The responder runs unlocked: it is test code and may inject() or read counters.
    std::vector<ScriptedReply> replies;
    if (responder) replies = responder(p.bytes);
    std::vector<uint8_t> copy(p.bytes.begin(), p.bytes.end());
    {
      std::lock_guard lock(mu_);
      ++sent_;
      if (options_.log_sent) sent_log_.push_back(copy);
      if (options_.deliver_outgoing)
        push_locked(now + options_.egress_delay, Direction::kOutgoing, std::move(copy));
      for (ScriptedReply& r : replies)
        push_locked(now + r.delay, Direction::kIncoming, std::move(r.ip_bytes));
    }
    ++accepted;
  }
  cv_.notify_all();
  return accepted;
}

int FakeLink::poll(const PacketSource::Handler& handler, Nanos max_wait) {
  std::vector<Queued> due;
  {
    std::unique_lock lock(mu_);
    const auto take_due = [&] {
      const Nanos now = clock_.realtime();
      while (!queue_.empty() && queue_.top().at <= now) {
        // priority_queue::top() is const; the element is popped right after, so moving from it is safe.
        due.push_back(std::move(const_cast<Queued&>(queue_.top())));
        queue_.pop();
      }
    };
    take_due();
    const Nanos idle = std::min(max_wait, options_.idle_wait);
    if (due.empty() && idle > Nanos::zero() && !interrupted_) {
      cv_.wait_for(lock, idle, [&] {
        take_due();
        return !due.empty() || interrupted_;
      });
    }
    interrupted_ = false;
  }
  for (const Queued& q : due) handler(CapturedPacket{q.bytes, q.at, q.direction});
  {
    std::lock_guard lock(mu_);
    delivered_ += due.size();
  }
  return static_cast<int>(due.size());
}

void FakeLink::interrupt() {
  {
    std::lock_guard lock(mu_);
    interrupted_ = true;
  }
  cv_.notify_all();
}

CaptureStats FakeLink::Source::stats() const {
  CaptureStats s;
  s.received = link_.delivered_count();
  return s;
}

uint64_t FakeLink::sent_count() const {
  std::lock_guard lock(mu_);
  return sent_;
}

uint64_t FakeLink::failed_count() const {
  std::lock_guard lock(mu_);
  return failed_;
}

uint64_t FakeLink::delivered_count() const {
  std::lock_guard lock(mu_);
  return delivered_;
}

size_t FakeLink::queued_count() const {
  std::lock_guard lock(mu_);
  return queue_.size();
}

std::vector<std::vector<uint8_t>> FakeLink::sent_packets() const {
  std::lock_guard lock(mu_);
  return sent_log_;
}

Nanos FakeLink::next_due() const {
  std::lock_guard lock(mu_);
  return queue_.empty() ? Nanos::max() : queue_.top().at;
}

}  // namespace netprobe
