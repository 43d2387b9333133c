#pragma once
// Restart delay of a process that died (a worker, an inventory plug-in): by default 1 s, doubling up to
// 30 s, back to the initial delay once an incarnation has stayed up for a healthy minute. A worker that
// crashes at start-up (bad capture device, missing privilege) thus costs one log line every 30 s instead
// of a fork loop, while a rare crash is repaired within a second. Pure arithmetic on times passed in, so
// that tests need no clock.
#include <algorithm>

#include "core/clock.h"

namespace netprobe {

class Backoff {
 public:
  struct Options {
    Nanos initial{1'000'000'000};
    Nanos max{30'000'000'000};
    Nanos healthy{60'000'000'000};  // an incarnation up this long resets the delay
  };
  Backoff() = default;
  explicit Backoff(Options options) : options_(options), next_(options.initial) {}

  // An incarnation started at `started` died at `now`: the delay before starting the next one.
  Nanos on_death(Nanos started, Nanos now) {
    if (now - started >= options_.healthy) next_ = options_.initial;
    const Nanos delay = next_;
    next_ = std::min(options_.max, next_ * 2);
    return delay;
  }
  // The delay the next death would get if the current incarnation were not healthy.
  Nanos peek() const { return next_; }
  // For callers with their own notion of health (a plug-in is healthy once it delivered): start over.
  void reset() { next_ = options_.initial; }

 private:
  Options options_{};
  Nanos next_{options_.initial};
};

}  // namespace netprobe
