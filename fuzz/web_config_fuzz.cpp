// The --web.config.file text (exporter-toolkit format) through src/web's reader: YAML (libyaml), strict keys,
// bcrypt hash checks, TLS settings turned into a GnuTLS priority string (checked by GnuTLS). No file is read:
// relative paths only get joined. Nothing may crash, hang or grow without bound; errors are returned.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "web/web_config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 64 * 1024) return 0;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto config = netprobe::web::parse_web_config(text, "/etc/netprobe");
  if (config.ok() && config->tls && config->tls->priorities.empty()) __builtin_trap();
  return 0;
}
