#include "logging/logging.h"

#include <spdlog/sinks/stdout_sinks.h>

namespace netprobe {

void setup_logging() {
  auto logger = spdlog::stderr_logger_mt("netprobe");
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e%z level=%l pid=%P %v");
  logger->flush_on(spdlog::level::trace);  // one line per event, visible at once under systemd
  spdlog::set_default_logger(logger);
}

}  // namespace netprobe
