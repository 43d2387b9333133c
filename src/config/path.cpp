#include "config/path.h"

#include "logging/escape.h"

namespace netprobe {
namespace {

bool plain_key(std::string_view key) {
  if (key.empty() || key.size() > 64) return false;
  for (char c : key)
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
          c == '-' || c == '.'))
      return false;
  return true;
}

}  // namespace

std::string config_path_join(const std::string& path, std::string_view key) {
  if (!plain_key(key)) return path + "[" + quote_for_log(key, 64) + "]";
  return path.empty() ? std::string(key) : path + "." + std::string(key);
}

std::string quoted_excerpt(std::string_view text) { return quote_for_log(text, 64); }

}  // namespace netprobe
