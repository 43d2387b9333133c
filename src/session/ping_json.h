#pragma once
// The summary object of `netprobe ping --format json` ({"event": "summary", ...}), shared with the ping
// tests of /api/v1/tests (src/ondemand/test_service.cpp) so that both print the same thing.
#include <string>

#include <nlohmann/json.hpp>

#include "session/ping_result.h"

namespace netprobe {

// `ports`: the probe type has source ports (the "ports" table is included); `error`: "" when none.
nlohmann::json ping_summary_json(const PingSummary& sum, bool ports, bool interrupted, int exit_code,
                                 const std::string& error);

}  // namespace netprobe
