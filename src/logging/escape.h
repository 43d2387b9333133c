#pragma once
// Text from outside (plug-in output, configuration keys and values) shown in logs and messages: control
// characters, backslashes and bytes that are not UTF-8 are escaped, so that such text can never forge or
// split a log line, and it is cut to a bounded size.
#include <cstddef>
#include <string>
#include <string_view>

namespace netprobe {

// `text` with \n \r \t and other control bytes as \xNN (also DEL and invalid UTF-8 bytes); valid UTF-8
// is kept, backslashes too (only quote_for_log escapes them). At most `max_bytes` of input are shown; when
// cut, "... (N bytes)" follows.
std::string escape_for_log(std::string_view text, size_t max_bytes = 512);

// escape_for_log in double quotes, with `"` escaped too: "par1 \"tor\"\x01".
std::string quote_for_log(std::string_view text, size_t max_bytes = 80);

// Length of the valid UTF-8 sequence at text[i] (1-4), or 0 when the byte there does not start one
// (overlong forms, surrogates and code points above U+10FFFF are invalid, as RFC 3629 says).
size_t utf8_sequence_length(std::string_view text, size_t i);

}  // namespace netprobe
