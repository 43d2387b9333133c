#pragma once
// Paths in configuration messages: `targets.web.dst_port`, `global.percentile[1]`. A key that is not a
// plain word (empty, spaces, quotes, control characters, non-ASCII, over 64 bytes) is shown quoted and
// escaped, `groups[""]`, `targets["a b"].type`, so that every path can be read and found in the file.
#include <string>
#include <string_view>

namespace netprobe {

std::string config_path_join(const std::string& path, std::string_view key);
// A value or key shown in a message: quoted, escaped, cut after 64 bytes.
std::string quoted_excerpt(std::string_view text);

}  // namespace netprobe
