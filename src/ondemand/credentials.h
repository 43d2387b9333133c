#pragma once
// The on-demand credentials (docs/on-demand.md#credentials): `Authorization: Bearer <token>` against the
// SHA-256 hashes of the configuration, or `Authorization: Basic` (the credential's name as user) against
// its bcrypt hash. Separate from the /metrics users.
//
// A bearer token is hashed once and compared with every configured hash, each in constant time and without
// stopping at a match, so the time says neither which credential matched nor how much of a hash did.
// bcrypt goes through web::UserTable (a dummy hash for unknown names, one bcrypt at a time: kBusy -> 429).
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "config/on_demand.h"
#include "http/server.h"

namespace netprobe::web {
class UserTable;
}

namespace netprobe::ondemand {

// Lower-case hex of SHA-256(text) (the form of token_sha256).
std::string sha256_hex(std::string_view text);

struct AuthResult {
  http::AuthVerdict verdict = http::AuthVerdict::kDeny;
  std::string credential;  // the credential's name when kAllow
  std::string reason;      // when not kAllow: "missing", "malformed", "wrong", "busy"
};

class CredentialTable {
 public:
  explicit CredentialTable(const std::map<std::string, OnDemandCredential>& credentials);
  ~CredentialTable();
  // `authorization`: the Authorization header's value, nullopt when absent. Thread-safe.
  AuthResult check(std::optional<std::string_view> authorization) const;

 private:
  std::vector<std::pair<std::string, std::string>> tokens_;  // name -> sha256 hex
  std::unique_ptr<web::UserTable> users_;                    // bcrypt ones; null when none
};

}  // namespace netprobe::ondemand
