#pragma once
// Helpers for the probe types' capture-filter clauses (Probe::capture_clauses()); not public interface.
#include <string>
#include <string_view>

#include "probes/probe.h"

namespace netprobe::detail {

// `load & mask = value`, checking the slice bits of a token whose most significant bit is just below bit
// `top` of the loaded value, plus `zero_mask` bits that must be zero. "" when there is nothing to check.
std::string field_test(std::string_view load, int top, uint32_t zero_mask, const KeySlice& slice);
// `base and test`, parenthesised, or `base` alone when there is no test.
std::string both(std::string_view base, const std::string& test);

}  // namespace netprobe::detail
