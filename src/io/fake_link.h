#pragma once
// An in-memory link for component tests: the whole engine runs over it on a fake clock.
//
// Every packet sent through sink():
//   (a) comes back on source() as a kOutgoing copy stamped clock.realtime() + egress_delay (as a capture
//       of our own probe would), and
//   (b) is handed to the scripted responder, whose replies are queued as kIncoming packets stamped
//       realtime-at-send + reply.delay (an empty vector is a drop).
// source().poll() delivers, in timestamp order (ties in queueing order), every queued packet whose stamp is
// <= clock.realtime() now. It never waits for fake time to pass: nothing due means it returns 0 at once
// (or after at most Options::idle_wait of real time, so that a capture thread looping on poll() does not
// spin); the test or the engine's FakeClock::sleep_until() advances the clock.
//
// Thread-safe: the engine sends from one thread and polls from a capture thread. The responder and the
// poll handler are called without the link's lock held, so they may call back into the link (inject()).
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <queue>
#include <vector>

#include "io/packet_io.h"

namespace netprobe {

struct ScriptedReply {
  std::vector<uint8_t> ip_bytes;
  Nanos delay{0};  // after the probe's send time
};

class FakeLink {
 public:
  using Responder = std::function<std::vector<ScriptedReply>(std::span<const uint8_t> ip_packet)>;
  // Decides whether a send succeeds (true) or fails like a kernel error (false, nothing delivered).
  using SendFilter = std::function<bool(std::span<const uint8_t> ip_packet)>;

  struct Options {
    Nanos egress_delay{0};         // added to the stamp of the outgoing copy
    bool deliver_outgoing = true;  // false: no outgoing copies (the engine must use its fallback stamps)
    Nanos idle_wait{0};            // real time poll() may wait when nothing is due (0: return at once)
    bool log_sent = true;          // keep copies for sent_packets() (off for million-probe tests)
  };

  explicit FakeLink(const Clock& clock);
  FakeLink(const Clock& clock, Options options);
  FakeLink(const FakeLink&) = delete;
  FakeLink& operator=(const FakeLink&) = delete;

  PacketSink& sink() { return sink_; }
  PacketSource& source() { return source_; }

  void set_responder(Responder responder);
  // Refused packets fail with `error` (what the kernel's errno would have been).
  void set_send_filter(SendFilter filter, SendError error = SendError::kOther);
  // Queues a packet that nobody sent (foreign traffic, spoofed replies), delivered at `at` (realtime).
  void inject(std::vector<uint8_t> ip_bytes, Nanos at, Direction direction = Direction::kIncoming);

  uint64_t sent_count() const;                             // accepted by the sink
  uint64_t failed_count() const;                           // refused by the send filter
  uint64_t delivered_count() const;                        // handed to poll() handlers
  size_t queued_count() const;                             // waiting in the link (due or not)
  std::vector<std::vector<uint8_t>> sent_packets() const;  // copies, in send order
  // Realtime stamp of the earliest queued packet (Nanos::max() when empty): lets a test advance the
  // clock exactly to the next delivery.
  Nanos next_due() const;

 private:
  struct Queued {
    Nanos at;
    uint64_t seq;  // FIFO among equal stamps
    Direction direction;
    std::vector<uint8_t> bytes;
  };
  struct Later {
    bool operator()(const Queued& a, const Queued& b) const {
      return a.at != b.at ? a.at > b.at : a.seq > b.seq;
    }
  };

  class Sink final : public PacketSink {
   public:
    explicit Sink(FakeLink& link) : link_(link) {}
    using PacketSink::send;
    size_t send(std::span<const OutPacket> batch, std::span<uint8_t> failed) noexcept override {
      return link_.send(batch, failed);
    }

   private:
    FakeLink& link_;
  };
  class Source final : public PacketSource {
   public:
    explicit Source(FakeLink& link) : link_(link) {}
    int poll(const Handler& handler, Nanos max_wait) override { return link_.poll(handler, max_wait); }
    void interrupt() override { link_.interrupt(); }
    CaptureStats stats() const override;

   private:
    FakeLink& link_;
  };

  size_t send(std::span<const OutPacket> batch, std::span<uint8_t> failed) noexcept;
  int poll(const PacketSource::Handler& handler, Nanos max_wait);
  void interrupt();
  void push_locked(Nanos at, Direction direction, std::vector<uint8_t> bytes);

  const Clock& clock_;
  Options options_;
  Sink sink_{*this};
  Source source_{*this};

  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool interrupted_ = false;
  Responder responder_;
  SendFilter send_filter_;
  SendError send_error_ = SendError::kOther;
  std::priority_queue<Queued, std::vector<Queued>, Later> queue_;
  uint64_t seq_ = 0;
  uint64_t sent_ = 0;
  uint64_t failed_ = 0;
  uint64_t delivered_ = 0;
  std::vector<std::vector<uint8_t>> sent_log_;
};

}  // namespace netprobe
