// A configuration file is written by an operator, or by whoever can write it: check-config, start and
// reload load it through load_config_string (YAML with libyaml -> JSON -> schema -> cross-field checks ->
// Config). Any text must give a Config or errors, never a crash, a hang or an unbounded allocation.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "config/loader.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const netprobe::LoadedConfig loaded = netprobe::load_config_string(text, "fuzz.yaml");
  // A loaded configuration always says something or holds a Config, never neither.
  if (!loaded.config && loaded.diagnostics.errors.empty()) __builtin_trap();
  return 0;
}
