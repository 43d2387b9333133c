#include "ondemand/credentials.h"

#include <gnutls/crypto.h>

#include "http/auth.h"
#include "web/users.h"

namespace netprobe::ondemand {

std::string sha256_hex(std::string_view text) {
  unsigned char digest[32];
  if (gnutls_hash_fast(GNUTLS_DIG_SHA256, text.data(), text.size(), digest) != 0) return {};
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(64);
  for (unsigned char c : digest) {
    out.push_back(kHex[c >> 4]);
    out.push_back(kHex[c & 15]);
  }
  return out;
}

CredentialTable::CredentialTable(const std::map<std::string, OnDemandCredential>& credentials) {
  std::map<std::string, std::string> bcrypt;
  for (const auto& [name, c] : credentials) {
    if (!c.token_sha256.empty()) tokens_.emplace_back(name, c.token_sha256);
    if (!c.password_bcrypt.empty()) bcrypt[name] = c.password_bcrypt;
  }
  if (!bcrypt.empty()) users_ = std::make_unique<web::UserTable>(std::move(bcrypt));
}

CredentialTable::~CredentialTable() = default;

AuthResult CredentialTable::check(std::optional<std::string_view> authorization) const {
  AuthResult r;
  if (!authorization || authorization->empty()) {
    r.reason = "missing";
    return r;
  }
  const std::string_view h = *authorization;
  constexpr std::string_view kBearer = "Bearer ", kBasic = "Basic ";
  if (h.size() > 4096) {
    r.reason = "malformed";
    return r;
  }
  if (h.substr(0, kBearer.size()) == kBearer) {
    const std::string hash = sha256_hex(h.substr(kBearer.size()));
    const std::string* match = nullptr;
    for (const auto& [name, expected] : tokens_) {  // every hash compared: no early exit
      if (constant_time_equal(hash, expected) && match == nullptr) match = &name;
    }
    if (match == nullptr || hash.empty()) {
      r.reason = "wrong";
      return r;
    }
    r.verdict = http::AuthVerdict::kAllow;
    r.credential = *match;
    return r;
  }
  if (h.substr(0, kBasic.size()) == kBasic) {
    const auto decoded = http::base64_decode(h.substr(kBasic.size()));
    const size_t colon = decoded ? decoded->find(':') : std::string::npos;
    if (colon == std::string::npos) {
      r.reason = "malformed";
      return r;
    }
    const std::string user = decoded->substr(0, colon);
    if (!users_) {
      r.reason = "wrong";
      return r;
    }
    r.verdict = users_->check(user, std::string_view(*decoded).substr(colon + 1));
    if (r.verdict == http::AuthVerdict::kAllow)
      r.credential = user;
    else
      r.reason = r.verdict == http::AuthVerdict::kBusy ? "busy" : "wrong";
    return r;
  }
  r.reason = "malformed";
  return r;
}

}  // namespace netprobe::ondemand
