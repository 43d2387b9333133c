#pragma once
// HTTP basic auth credentials as netprobify configures them (PROM_USER / PROM_PASSWORD).
#include <optional>
#include <string>
#include <string_view>

namespace netprobe {

struct BasicAuth {
  std::string user;
  std::string password;
};

// netprobify's rule: auth is on when both variables are set (non-empty), off when neither is; exactly
// one set is a configuration error (returned as nullopt with `*error` naming the missing variable).
// `user` and `password` are the variables' values (getenv results, nullptr when unset), so tests need
// not touch the environment. `error` is cleared when there is no error.
std::optional<BasicAuth> basic_auth_from_env(const char* user, const char* password, std::string* error);

// Compares two secrets in time that depends only on their lengths, never on where they first differ.
bool constant_time_equal(std::string_view a, std::string_view b);

}  // namespace netprobe
