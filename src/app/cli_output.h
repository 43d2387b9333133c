#pragma once
// What every one-shot command prints the same way: its output flushed as it goes (a pipe sees each line
// when it happens), and a usage error on stderr under the command's name with the command's exit code.
#include <cstdio>
#include <string_view>

namespace netprobe {

inline void print_stdout(std::string_view text) {
  std::fwrite(text.data(), 1, text.size(), stdout);
  std::fflush(stdout);
}

// "netprobe <command>: <message>" on stderr; returns `exit_code` (64, EX_USAGE, unless the command says).
inline int command_usage_error(std::string_view command, std::string_view message, int exit_code = 64) {
  std::fprintf(stderr, "netprobe %.*s: %.*s\n", int(command.size()), command.data(), int(message.size()),
               message.data());
  return exit_code;
}

}  // namespace netprobe
