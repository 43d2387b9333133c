#pragma once
// basic_auth_users of the exporter-toolkit web configuration: user -> bcrypt hash ($2a$, $2b$, $2y$;
// checked with libxcrypt's crypt_rn).
//
// As exporter-toolkit does: an unknown user is checked against a dummy hash, so that the time taken does not
// tell whether a user exists (here the dummy has the highest cost of the configured hashes, so that it
// takes as long as the slowest of them); a user's last good password is remembered (one per configured
// user, compared in constant time), so that a scraper that sends the same credentials every 15 s costs one
// bcrypt in all, not one per scrape.
//
// bcrypt is CPU-bound (~140 ms at cost 10 here). The HTTP servers use check_async(): the bcrypt runs on a
// small process-wide pool (kBcryptThreads threads, at most kBcryptQueue checks waiting) while the request's
// connection waits suspended, so no server thread ever runs or waits for one; a full pool answers kBusy at
// once (HTTP 429). check() (synchronous, for callers that cannot wait) runs one bcrypt at a time on the
// caller's thread and answers kBusy when another one is running.
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "http/server.h"

namespace netprobe::web {

// True for a bcrypt hash crypt_rn can check: "$2a$", "$2b$" or "$2y$", a two-digit cost 04..31, then 53
// characters of bcrypt's base64. Otherwise false with *why set.
bool valid_bcrypt_hash(std::string_view hash, std::string* why);

inline constexpr unsigned kBcryptThreads = 2;
inline constexpr size_t kBcryptQueue = 8;

class UserTable {
 public:
  // `users`: name -> hash, every hash valid (valid_bcrypt_hash()).
  explicit UserTable(std::map<std::string, std::string> users);
  // Thread-safe. kDeny for an unknown user, a wrong password, or a password with a NUL byte; kBusy when
  // another check is running bcrypt (the remembered password is still compared).
  http::AuthVerdict check(std::string_view user, std::string_view password);
  size_t size() const { return hashes_.size(); }
  // Thread-safe, never blocks on bcrypt: the remembered password (or a NUL byte in it) answers at once
  // (returned); otherwise the check is queued on the bcrypt pool and nullopt returned, and `done` is
  // called once with the verdict from a pool thread (the table is kept alive until then); a full pool
  // answers kBusy at once (returned; `done` is not called).
  static std::optional<http::AuthVerdict> check_async(std::shared_ptr<UserTable> table, std::string_view user,
                                                      std::string_view password,
                                                      std::function<void(http::AuthVerdict)> done);
  // Checks queued or running on the pool (tests).
  static size_t bcrypt_pool_load();

 private:
  // nullopt: another bcrypt is running.
  std::optional<bool> bcrypt_matches(const std::string& hash, std::string_view password);
  // The remembered password, or nullopt when a bcrypt must decide.
  std::optional<http::AuthVerdict> quick_check(std::string_view user, std::string_view password);
  // The bcrypt (of the user's hash, or of the dummy) and the remembering, on the calling thread.
  http::AuthVerdict slow_check(const std::string& user, const std::string& password);

  std::map<std::string, std::string, std::less<>> hashes_;
  std::string dummy_hash_;
  std::mutex bcrypt_mutex_;
  std::mutex cache_mutex_;
  std::map<std::string, std::string, std::less<>> verified_;  // user -> last password that matched
};

}  // namespace netprobe::web
