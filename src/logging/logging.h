#pragma once
// Logging: one line per event on stderr, `time level=... message`, levels named as netprobify's
// global.logging_level (CRITICAL, ERROR, WARNING, INFO, DEBUG, NOTSET).
#include <spdlog/spdlog.h>

#include <string_view>

namespace netprobe {

inline spdlog::level::level_enum log_level_from_config(std::string_view level) {
  if (level == "CRITICAL") return spdlog::level::critical;
  if (level == "ERROR") return spdlog::level::err;
  if (level == "WARNING") return spdlog::level::warn;
  if (level == "DEBUG") return spdlog::level::debug;
  if (level == "NOTSET") return spdlog::level::trace;
  return spdlog::level::info;
}

void setup_logging();

}  // namespace netprobe
