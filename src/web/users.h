#pragma once
// basic_auth_users of the exporter-toolkit web configuration: user -> bcrypt hash ($2a$, $2b$, $2y$;
// checked with libxcrypt's crypt_rn).
//
// As exporter-toolkit does: an unknown user is checked against a dummy hash, so that the time taken does not
// tell whether a user exists (here the dummy has the highest cost of the configured hashes, so that it
// takes as long as the slowest of them); one bcrypt at a time (CPU-bound: ~140 ms at cost 10 here), and a
// check that finds another one running answers kBusy at once (HTTP 429) rather than make a server thread
// wait, so that wrong passwords sent in parallel cannot stall both server threads; a user's last
// good password is remembered (one per configured user, compared in constant time), so that a scraper that
// sends the same credentials every 15 s costs one bcrypt in all, not one per scrape.
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "http/server.h"

namespace netprobe::web {

// True for a bcrypt hash crypt_rn can check: "$2a$", "$2b$" or "$2y$", a two-digit cost 04..31, then 53
// characters of bcrypt's base64. Otherwise false with *why set.
bool valid_bcrypt_hash(std::string_view hash, std::string* why);

class UserTable {
 public:
  // `users`: name -> hash, every hash valid (valid_bcrypt_hash()).
  explicit UserTable(std::map<std::string, std::string> users);
  // Thread-safe. kDeny for an unknown user, a wrong password, or a password with a NUL byte; kBusy when
  // another check is running bcrypt (the remembered password is still compared).
  http::AuthVerdict check(std::string_view user, std::string_view password);
  size_t size() const { return hashes_.size(); }

 private:
  // nullopt: another bcrypt is running.
  std::optional<bool> bcrypt_matches(const std::string& hash, std::string_view password);

  std::map<std::string, std::string, std::less<>> hashes_;
  std::string dummy_hash_;
  std::mutex bcrypt_mutex_;
  std::mutex cache_mutex_;
  std::map<std::string, std::string, std::less<>> verified_;  // user -> last password that matched
};

}  // namespace netprobe::web
