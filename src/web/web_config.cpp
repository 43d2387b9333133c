#include "web/web_config.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <functional>
#include <set>

#include <fmt/format.h>

#include "config/yaml_json.h"
#include "config/yaml_tree.h"
#include "web/users.h"

namespace netprobe::web {
namespace {

constexpr size_t kMaxFileBytes = 1 << 20;
constexpr size_t kMaxUsers = 10'000;

using Index = YamlTree::Index;

// exporter-toolkit's settable headers; an empty list means any value.
struct AllowedHeader {
  const char* name;
  std::vector<const char*> values;
};
const std::vector<AllowedHeader>& allowed_headers() {
  static const std::vector<AllowedHeader> headers{
      {"Strict-Transport-Security", {}},
      {"X-Content-Type-Options", {"nosniff"}},
      {"X-Frame-Options", {"deny", "sameorigin"}},
      {"X-XSS-Protection", {}},
      {"Content-Security-Policy", {}},
  };
  return headers;
}

class Reader {
 public:
  Reader(const YamlTree& tree, std::string directory) : tree_(tree), directory_(std::move(directory)) {}

  Result<WebConfig> read() {
    WebConfig out;
    if (!tree_.has_root() || tree_.kind(tree_.root()) == YamlTree::Kind::kNull) return out;
    std::string tls_cert, tls_key, client_auth, client_ca, min_v, max_v;
    std::vector<std::string> ciphers, curves;
    bool prefer_server = true;
    Status s =
        map(tree_.root(), "the web configuration",
            {"tls_server_config", "http_server_config", "basic_auth_users"},
            [&](std::string_view key, Index value) -> Status {
              if (key == "tls_server_config") {
                return map(value, "tls_server_config",
                           {"cert_file", "key_file", "client_auth_type", "client_ca_file", "cipher_suites",
                            "curve_preferences", "min_version", "max_version", "prefer_server_cipher_suites"},
                           [&](std::string_view k, Index v) -> Status {
                             if (k == "cert_file") return string(v, k, tls_cert);
                             if (k == "key_file") return string(v, k, tls_key);
                             if (k == "client_auth_type") return string(v, k, client_auth);
                             if (k == "client_ca_file") return string(v, k, client_ca);
                             if (k == "min_version") return tls_version(v, k, min_v);
                             if (k == "max_version") return tls_version(v, k, max_v);
                             if (k == "cipher_suites") return strings(v, k, ciphers);
                             if (k == "curve_preferences") return strings(v, k, curves);
                             return boolean(v, k, prefer_server);
                           });
              }
              if (key == "http_server_config") {
                return map(value, "http_server_config", {"http2", "headers"},
                           [&](std::string_view k, Index v) -> Status {
                             if (k == "http2") return boolean(v, k, out.http2);
                             return headers(v, out.headers);
                           });
              }
              return users(value, out.users);
            });
    if (!s.ok()) return s.error();
    if (tls_cert.empty() && tls_key.empty() && client_auth.empty() && client_ca.empty()) return out;

    http::TlsSettings tls;
    if (tls_cert.empty()) return Error{"tls_server_config: missing cert_file"};
    if (tls_key.empty()) return Error{"tls_server_config: missing key_file"};
    tls.cert_file = join(tls_cert);
    tls.key_file = join(tls_key);
    tls.client_ca_file = client_ca.empty() ? "" : join(client_ca);
    if (client_auth == "RequestClientCert") {
      tls.client_auth = http::ClientAuth::kRequest;
    } else if (client_auth == "RequireAnyClientCert" || client_auth == "RequireClientCert") {
      tls.client_auth = http::ClientAuth::kRequireAny;
    } else if (client_auth == "VerifyClientCertIfGiven") {
      tls.client_auth = http::ClientAuth::kVerifyIfGiven;
    } else if (client_auth == "RequireAndVerifyClientCert") {
      tls.client_auth = http::ClientAuth::kRequireAndVerify;
    } else if (client_auth.empty() || client_auth == "NoClientCert") {
      tls.client_auth = http::ClientAuth::kNone;
    } else {
      return Error{fmt::format(
          "tls_server_config.client_auth_type: '{}' is not one of NoClientCert, RequestClientCert, "
          "RequireAnyClientCert, VerifyClientCertIfGiven, RequireAndVerifyClientCert",
          client_auth)};
    }
    if (!client_ca.empty() && tls.client_auth == http::ClientAuth::kNone)
      return Error{"tls_server_config: client_ca_file is set but client_auth_type is NoClientCert"};
    if (client_ca.empty() && (tls.client_auth == http::ClientAuth::kVerifyIfGiven ||
                              tls.client_auth == http::ClientAuth::kRequireAndVerify))
      tls.client_ca_file = "/etc/ssl/certs/ca-certificates.crt";  // Go verifies against the system roots
    auto priorities = http::tls_priorities(ciphers, curves, version(min_v, http::kTls12),
                                           version(max_v, http::kTls13), prefer_server);
    if (!priorities.ok()) return Error{fmt::format("tls_server_config: {}", priorities.error().message)};
    tls.priorities = std::move(priorities).value();
    out.tls = std::move(tls);
    return out;
  }

 private:
  using KeyHandler = std::function<Status(std::string_view key, Index value)>;

  std::string where(Index n) const { return fmt::format("line {}", tree_.line(n)); }

  // A mapping with only `known` keys, each at most once; null is an empty mapping.
  Status map(Index n, std::string_view what, std::vector<std::string_view> known, const KeyHandler& handle) {
    if (tree_.kind(n) == YamlTree::Kind::kNull) return {};
    if (tree_.kind(n) != YamlTree::Kind::kMap)
      return Error{fmt::format("{}: {} must be a mapping", where(n), what)};
    std::set<std::string_view> seen;
    const auto children = tree_.children(n);
    for (size_t i = 0; i + 1 < children.size(); i += 2) {
      const Index k = children[i], v = children[i + 1];
      if (tree_.kind(k) != YamlTree::Kind::kScalar)
        return Error{fmt::format("{}: a key of {} must be a string", where(k), what)};
      const std::string_view key = tree_.scalar(k);
      if (std::find(known.begin(), known.end(), key) == known.end()) {
        std::string list;
        for (auto name : known) list += (list.empty() ? "" : ", ") + std::string(name);
        return Error{fmt::format("{}: unknown key '{}' in {} (known: {})", where(k), key, what, list)};
      }
      if (!seen.insert(key).second)
        return Error{fmt::format("{}: key '{}' is repeated in {}", where(k), key, what)};
      if (Status s = handle(key, v); !s.ok()) return s;
    }
    return {};
  }

  Status string(Index n, std::string_view key, std::string& out) {
    if (tree_.kind(n) == YamlTree::Kind::kNull) {
      out.clear();
      return {};
    }
    if (tree_.kind(n) != YamlTree::Kind::kScalar)
      return Error{fmt::format("{}: {} must be a string", where(n), key)};
    out = std::string(tree_.scalar(n));
    return {};
  }

  // Checked even when TLS is off, as Go's decoder does.
  Status tls_version(Index n, std::string_view key, std::string& out) {
    if (Status s = string(n, key, out); !s.ok()) return s;
    if (version(out, 0) < 0)
      return Error{
          fmt::format("{}: {}: unknown TLS version: {} (TLS10, TLS11, TLS12, TLS13)", where(n), key, out)};
    return {};
  }

  Status strings(Index n, std::string_view key, std::vector<std::string>& out) {
    out.clear();
    if (tree_.kind(n) == YamlTree::Kind::kNull) return {};
    if (tree_.kind(n) != YamlTree::Kind::kSequence)
      return Error{fmt::format("{}: {} must be a list of strings", where(n), key)};
    for (Index item : tree_.children(n)) {
      std::string s;
      if (Status st = string(item, key, s); !st.ok()) return st;
      if (key == "cipher_suites" && !http::known_cipher_suite(s))
        return Error{
            fmt::format("{}: unknown cipher: {} (cipher_suites takes Go's IANA names, e.g. "
                        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256)",
                        where(item), s)};
      if (key == "curve_preferences" && !http::known_curve(s))
        return Error{
            fmt::format("{}: unknown curve: {} (CurveP256, CurveP384, CurveP521, X25519)", where(item), s)};
      out.push_back(std::move(s));
    }
    return {};
  }

  Status boolean(Index n, std::string_view key, bool& out) {
    if (tree_.kind(n) == YamlTree::Kind::kNull) {
      out = false;
      return {};
    }
    if (tree_.kind(n) == YamlTree::Kind::kScalar && tree_.tag(n) == "?") {
      const auto v = resolve_plain_scalar(tree_.scalar(n));
      if (v.is_boolean()) {
        out = v.get<bool>();
        return {};
      }
    }
    return Error{fmt::format("{}: {} must be true or false", where(n), key)};
  }

  Status headers(Index n, std::vector<std::pair<std::string, std::string>>& out) {
    std::vector<std::string_view> names;
    for (const auto& h : allowed_headers()) names.push_back(h.name);
    std::string what = "http_server_config.headers";
    return map(n, what, names, [&](std::string_view name, Index v) -> Status {
      std::string value;
      if (Status s = string(v, name, value); !s.ok()) return s;
      for (const auto& h : allowed_headers()) {
        if (name != h.name || h.values.empty()) continue;
        if (std::find(h.values.begin(), h.values.end(), value) == h.values.end()) {
          std::string list;
          for (auto allowed : h.values) list += (list.empty() ? "" : ", ") + std::string(allowed);
          return Error{fmt::format("{}: invalid value for {}: '{}' (expected one of: {})", where(v), name,
                                   value, list)};
        }
      }
      for (char c : value)
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f)
          return Error{fmt::format("{}: the value of header {} has a control character", where(v), name)};
      out.emplace_back(std::string(name), std::move(value));
      return {};
    });
  }

  Status users(Index n, std::map<std::string, std::string>& out) {
    if (tree_.kind(n) == YamlTree::Kind::kNull) return {};
    if (tree_.kind(n) != YamlTree::Kind::kMap)
      return Error{fmt::format("{}: basic_auth_users must be a mapping of user to bcrypt hash", where(n))};
    const auto children = tree_.children(n);
    if (children.size() / 2 > kMaxUsers)
      return Error{fmt::format("{}: more than {} basic_auth_users", where(n), kMaxUsers)};
    for (size_t i = 0; i + 1 < children.size(); i += 2) {
      std::string user, hash, why;
      if (Status s = string(children[i], "a user name", user); !s.ok()) return s;
      if (Status s = string(children[i + 1], "a bcrypt hash", hash); !s.ok()) return s;
      if (out.count(user))
        return Error{fmt::format("{}: user '{}' is repeated in basic_auth_users", where(children[i]), user)};
      if (!valid_bcrypt_hash(hash, &why))
        return Error{fmt::format("{}: basic_auth_users.{}: {}", where(children[i + 1]), user, why)};
      out.emplace(std::move(user), std::move(hash));
    }
    return {};
  }

  static int version(const std::string& name, int fallback) {
    if (name.empty()) return fallback;
    if (name == "TLS10") return http::kTls10;
    if (name == "TLS11") return http::kTls11;
    if (name == "TLS12") return http::kTls12;
    if (name == "TLS13") return http::kTls13;
    return -1;  // refused by tls_priorities() ("unknown TLS version")
  }

  std::string join(const std::string& path) const {
    if (path.empty() || path.front() == '/' || directory_.empty()) return path;
    return directory_ + "/" + path;
  }

  const YamlTree& tree_;
  std::string directory_;
};

}  // namespace

Result<WebConfig> parse_web_config(std::string_view text, const std::string& directory) {
  std::string error;
  const auto tree = parse_yaml_tree(text, &error);
  if (!tree) return Error{fmt::format("not valid YAML: {}", error)};
  return Reader(*tree, directory).read();
}

Result<WebConfig> read_web_config(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Error{fmt::format("cannot read {}: {}", path, std::strerror(errno))};
  std::string text;
  char buf[16384];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    text.append(buf, static_cast<size_t>(n));
    if (text.size() > kMaxFileBytes) {
      ::close(fd);
      return Error{fmt::format("{} is larger than {} bytes", path, kMaxFileBytes)};
    }
  }
  ::close(fd);
  const size_t slash = path.rfind('/');
  const std::string directory = slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
  return parse_web_config(text, directory);
}

}  // namespace netprobe::web
