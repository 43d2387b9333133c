#include "logging/logging.h"

#include <mutex>

#include <spdlog/sinks/base_sink.h>
#include <spdlog/sinks/stdout_sinks.h>

#include "logging/rate_limit.h"

namespace netprobe {
namespace {

// Every line goes through LogRateLimiter before the real sink (docs/architecture.md: bounded logs).
class RateLimitedSink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  explicit RateLimitedSink(spdlog::sink_ptr inner) : inner_(std::move(inner)) {}
  ~RateLimitedSink() override {
    std::vector<std::string> summaries;
    limiter_.due_summaries(std::chrono::steady_clock::now(), &summaries, /*all=*/true);
    write_summaries(summaries, spdlog::details::log_msg("netprobe", spdlog::level::warn, ""));
  }

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    std::vector<std::string> summaries;
    const std::string_view payload(msg.payload.data(), msg.payload.size());
    const bool admitted = msg.level >= spdlog::level::critical
                              ? (limiter_.due_summaries(std::chrono::steady_clock::now(), &summaries), true)
                              : limiter_.admit(payload, std::chrono::steady_clock::now(), &summaries);
    write_summaries(summaries, msg);
    if (admitted) inner_->log(msg);
  }
  void flush_() override { inner_->flush(); }
  void set_pattern_(const std::string& pattern) override { inner_->set_pattern(pattern); }
  void set_formatter_(std::unique_ptr<spdlog::formatter> f) override { inner_->set_formatter(std::move(f)); }

 private:
  void write_summaries(const std::vector<std::string>& summaries, const spdlog::details::log_msg& like) {
    for (const auto& s : summaries) {
      spdlog::details::log_msg m(like.time, like.source, like.logger_name, spdlog::level::warn, s);
      inner_->log(m);
    }
  }

  spdlog::sink_ptr inner_;
  LogRateLimiter limiter_;
};

}  // namespace

void setup_logging() {
  auto sink = std::make_shared<RateLimitedSink>(std::make_shared<spdlog::sinks::stderr_sink_mt>());
  auto logger = std::make_shared<spdlog::logger>("netprobe", sink);
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e%z level=%l pid=%P %v");
  logger->flush_on(spdlog::level::trace);  // one line per event, visible at once under systemd
  spdlog::set_default_logger(logger);
}

}  // namespace netprobe
