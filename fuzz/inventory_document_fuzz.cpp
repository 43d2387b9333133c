// An inventory plug-in's output (JSON or YAML) is parsed by the supervisor; plug-ins talk to CMDBs and
// are not trusted. Any text must give a document (valid targets + rejections) or an error, never a crash,
// a hang or an unbounded allocation; a rejection must not carry raw control characters into the log.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "inventory/document.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const auto doc = netprobe::parse_inventory_document(text, "fuzz");
  if (doc.ok()) {
    for (const auto& r : doc->rejected)
      if (r.find('\n') != std::string::npos || r.find('\r') != std::string::npos) __builtin_trap();
  }
  return 0;
}
