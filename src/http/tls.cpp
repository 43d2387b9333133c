#include "http/tls.h"

#include <fcntl.h>
#include <gnutls/x509.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace netprobe::http {
namespace {

// A certificate, key or CA bundle larger than this is not one.
constexpr size_t kMaxPemBytes = 1 << 20;
constexpr unsigned kMaxChain = 16;
constexpr size_t kRetiredPairs = 32;  // reloads at most once a second: each kept >= 32 s

struct Suite {
  const char* name;
  const char* kx;  // nullptr: TLS 1.3 (no key exchange in the suite)
  const char* cipher;
  const char* mac;
};
// Go's crypto/tls CipherSuites() (the ones exporter-toolkit accepts), as GnuTLS names their parts.
constexpr std::array<Suite, 17> kSuites{{
    {"TLS_RSA_WITH_AES_128_CBC_SHA", "RSA", "AES-128-CBC", "SHA1"},
    {"TLS_RSA_WITH_AES_256_CBC_SHA", "RSA", "AES-256-CBC", "SHA1"},
    {"TLS_RSA_WITH_AES_128_GCM_SHA256", "RSA", "AES-128-GCM", "AEAD"},
    {"TLS_RSA_WITH_AES_256_GCM_SHA384", "RSA", "AES-256-GCM", "AEAD"},
    {"TLS_AES_128_GCM_SHA256", nullptr, "AES-128-GCM", "AEAD"},
    {"TLS_AES_256_GCM_SHA384", nullptr, "AES-256-GCM", "AEAD"},
    {"TLS_CHACHA20_POLY1305_SHA256", nullptr, "CHACHA20-POLY1305", "AEAD"},
    {"TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA", "ECDHE-ECDSA", "AES-128-CBC", "SHA1"},
    {"TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA", "ECDHE-ECDSA", "AES-256-CBC", "SHA1"},
    {"TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA", "ECDHE-RSA", "AES-128-CBC", "SHA1"},
    {"TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA", "ECDHE-RSA", "AES-256-CBC", "SHA1"},
    {"TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", "ECDHE-ECDSA", "AES-128-GCM", "AEAD"},
    {"TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", "ECDHE-ECDSA", "AES-256-GCM", "AEAD"},
    {"TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "ECDHE-RSA", "AES-128-GCM", "AEAD"},
    {"TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", "ECDHE-RSA", "AES-256-GCM", "AEAD"},
    {"TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256", "ECDHE-RSA", "CHACHA20-POLY1305", "AEAD"},
    {"TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256", "ECDHE-ECDSA", "CHACHA20-POLY1305", "AEAD"},
}};

struct Curve {
  const char* name;
  const char* group;
};
constexpr std::array<Curve, 4> kCurves{{{"CurveP256", "GROUP-SECP256R1"},
                                        {"CurveP384", "GROUP-SECP384R1"},
                                        {"CurveP521", "GROUP-SECP521R1"},
                                        {"X25519", "GROUP-X25519"}}};

const Suite* find_suite(std::string_view name) {
  for (const auto& s : kSuites)
    if (name == s.name) return &s;
  return nullptr;
}

const char* version_keyword(int v) {
  switch (v) {
    case kTls10:
      return "VERS-TLS1.0";
    case kTls11:
      return "VERS-TLS1.1";
    case kTls12:
      return "VERS-TLS1.2";
    case kTls13:
      return "VERS-TLS1.3";
    default:
      return nullptr;
  }
}

void add_once(std::vector<std::string>& list, const std::string& item) {
  for (const auto& i : list)
    if (i == item) return;
  list.push_back(item);
}

// Reads a whole (small) file; the error says which file and why.
Result<std::string> read_small_file(const std::string& path, const char* what) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Error{fmt::format("cannot read {} {}: {}", what, path, std::strerror(errno))};
  std::string out;
  char buf[16384];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      ::close(fd);
      return Error{fmt::format("cannot read {} {}: {}", what, path, std::strerror(err))};
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
    if (out.size() > kMaxPemBytes) {
      ::close(fd);
      return Error{fmt::format("{} {} is larger than {} bytes", what, path, kMaxPemBytes)};
    }
  }
  ::close(fd);
  return out;
}

gnutls_datum_t datum(const std::string& s) {
  return gnutls_datum_t{reinterpret_cast<unsigned char*>(const_cast<char*>(s.data())),
                        static_cast<unsigned int>(s.size())};
}

// The SHA-256 key id of a public key, or "" on error.
std::string key_id(gnutls_pubkey_t key) {
  unsigned char id[64];
  size_t size = sizeof id;
  if (gnutls_pubkey_get_key_id(key, GNUTLS_KEYID_USE_SHA256, id, &size) < 0) return {};
  return std::string(reinterpret_cast<char*>(id), size);
}

}  // namespace

struct TlsContext::Pair {
  std::vector<gnutls_pcert_st> chain;
  gnutls_privkey_t key = nullptr;
  Pair() = default;
  Pair(const Pair&) = delete;
  Pair& operator=(const Pair&) = delete;
  ~Pair() {
    for (auto& c : chain) gnutls_pcert_deinit(&c);
    if (key) gnutls_privkey_deinit(key);
  }
};

bool known_cipher_suite(std::string_view name) { return find_suite(name) != nullptr; }

bool known_curve(std::string_view name) {
  for (const auto& c : kCurves)
    if (name == c.name) return true;
  return false;
}

Result<std::string> tls_priorities(const std::vector<std::string>& cipher_suites,
                                   const std::vector<std::string>& curves, int min_version, int max_version,
                                   bool prefer_server) {
  if (!version_keyword(min_version) || !version_keyword(max_version))
    return Error{"unknown TLS version (TLS10, TLS11, TLS12, TLS13)"};
  if (min_version > max_version)
    return Error{"min_version is above max_version: no TLS version would be left"};
  std::string p = "NORMAL";
  if (!cipher_suites.empty()) {
    std::vector<std::string> kx, ciphers, macs;
    for (const auto& name : cipher_suites) {
      const Suite* s = find_suite(name);
      if (!s) return Error{fmt::format("unknown cipher: {}", name)};
      if (s->kx) add_once(kx, s->kx);
      add_once(ciphers, s->cipher);
      add_once(macs, s->mac);
    }
    p += ":-KX-ALL:-CIPHER-ALL:-MAC-ALL";
    for (const auto* list : {&kx, &ciphers, &macs})
      for (const auto& item : *list) p += ":+" + item;
  }
  p += ":-VERS-ALL";
  for (int v = max_version; v >= min_version; --v) p += fmt::format(":+{}", version_keyword(v));
  if (!curves.empty()) {
    p += ":-GROUP-ALL";
    for (const auto& name : curves) {
      const Curve* found = nullptr;
      for (const auto& c : kCurves)
        if (name == c.name) found = &c;
      if (!found) return Error{fmt::format("unknown curve: {}", name)};
      p += fmt::format(":+{}", found->group);
    }
  }
  if (prefer_server) p += ":%SERVER_PRECEDENCE";
  gnutls_priority_t check = nullptr;
  const char* at = nullptr;
  const int rc = gnutls_priority_init(&check, p.c_str(), &at);
  if (rc < 0)
    return Error{fmt::format("GnuTLS refuses the TLS settings ({}, at '{}' of '{}')", gnutls_strerror(rc),
                             at ? at : "", p)};
  gnutls_priority_deinit(check);
  return p;
}

Result<std::shared_ptr<TlsContext::Pair>> TlsContext::load_pair(const std::string& cert_file,
                                                                const std::string& key_file) {
  auto cert_pem = read_small_file(cert_file, "cert_file");
  if (!cert_pem.ok()) return cert_pem.error();
  auto key_pem = read_small_file(key_file, "key_file");
  if (!key_pem.ok()) return key_pem.error();
  auto pair = std::make_shared<Pair>();
  pair->chain.resize(kMaxChain);
  unsigned count = kMaxChain;
  const gnutls_datum_t cert_data = datum(*cert_pem);
  int rc = gnutls_pcert_list_import_x509_raw(pair->chain.data(), &count, &cert_data, GNUTLS_X509_FMT_PEM, 0);
  if (rc < 0) {
    pair->chain.clear();
    return Error{fmt::format("cert_file {}: not a PEM certificate chain of at most {} certificates ({})",
                             cert_file, kMaxChain, gnutls_strerror(rc))};
  }
  pair->chain.resize(count);
  if (count == 0) return Error{fmt::format("cert_file {}: no certificate", cert_file)};
  const gnutls_datum_t key_data = datum(*key_pem);
  if (gnutls_privkey_init(&pair->key) < 0) return Error{"out of memory"};
  rc = gnutls_privkey_import_x509_raw(pair->key, &key_data, GNUTLS_X509_FMT_PEM, nullptr, 0);
  if (rc < 0)
    return Error{
        fmt::format("key_file {}: not an unencrypted PEM private key ({})", key_file, gnutls_strerror(rc))};
  gnutls_pubkey_t from_key = nullptr;
  std::string key_side;
  if (gnutls_pubkey_init(&from_key) == 0) {
    if (gnutls_pubkey_import_privkey(from_key, pair->key, 0, 0) == 0) key_side = key_id(from_key);
    gnutls_pubkey_deinit(from_key);
  }
  if (key_side.empty() || key_side != key_id(pair->chain[0].pubkey))
    return Error{fmt::format("key_file {} is not the private key of the certificate in cert_file {}",
                             key_file, cert_file)};
  return pair;
}

struct TlsContext::Live {
  TlsSettings settings;
  gnutls_priority_t priority = nullptr;      // GnuTLS counts the sessions using it: deinit is safe meanwhile
  gnutls_x509_trust_list_t trust = nullptr;  // the client CA bundle; null when there is none
  Live() = default;
  Live(const Live&) = delete;
  Live& operator=(const Live&) = delete;
  ~Live() {
    if (priority) gnutls_priority_deinit(priority);
    if (trust) gnutls_x509_trust_list_deinit(trust, 1);
  }
};

Result<std::shared_ptr<const TlsContext::Live>> TlsContext::load_live(TlsSettings settings,
                                                                      std::string* pem) {
  auto live = std::make_shared<Live>();
  const char* at = nullptr;
  if (gnutls_priority_init(&live->priority, settings.priorities.c_str(), &at) < 0) {
    live->priority = nullptr;
    return Error{fmt::format("GnuTLS refuses the priority string '{}'", settings.priorities)};
  }
  if (!settings.client_ca_file.empty()) {
    auto text = read_small_file(settings.client_ca_file, "client_ca_file");
    if (!text.ok()) return text.error();
    int rc = gnutls_x509_trust_list_init(&live->trust, 0);
    const gnutls_datum_t data = datum(*text);
    if (rc == 0)
      rc = gnutls_x509_trust_list_add_trust_mem(live->trust, &data, nullptr, GNUTLS_X509_FMT_PEM, 0, 0);
    if (rc <= 0)
      return Error{fmt::format("client_ca_file {}: no PEM certificate in it ({})", settings.client_ca_file,
                               rc < 0 ? gnutls_strerror(rc) : "empty")};
    if (pem) *pem = std::move(text).value();
  }
  live->settings = std::move(settings);
  return std::shared_ptr<const Live>(std::move(live));
}

Result<std::shared_ptr<TlsContext>> TlsContext::create(TlsSettings settings) {
  std::shared_ptr<TlsContext> context(new TlsContext());
  auto pair = load_pair(settings.cert_file, settings.key_file);
  if (!pair.ok()) return pair.error();
  context->start_priorities_ = settings.priorities;
  auto live = load_live(std::move(settings), &context->client_ca_pem_);
  if (!live.ok()) return live.error();
  context->live_ = std::move(live).value();
  context->stamp_ = stamp(context->live_->settings);
  context->current_ = std::move(pair).value();
  context->checked_ = std::chrono::steady_clock::now();
  return context;
}

Status TlsContext::reload(TlsSettings settings) {
  // Loaded outside the lock: handshakes meanwhile go on with the settings in force.
  auto pair = load_pair(settings.cert_file, settings.key_file);
  if (!pair.ok()) return pair.error();
  const Stamp new_stamp = stamp(settings);
  auto live = load_live(std::move(settings), nullptr);
  if (!live.ok()) return live.error();
  const std::lock_guard lock(mutex_);
  live_ = std::move(live).value();
  retired_.push_back(std::move(current_));
  if (retired_.size() > kRetiredPairs) retired_.pop_front();
  current_ = std::move(pair).value();
  stamp_ = new_stamp;
  checked_ = std::chrono::steady_clock::now();
  return {};
}

TlsContext::~TlsContext() = default;

std::shared_ptr<const TlsContext::Live> TlsContext::live() const {
  const std::lock_guard lock(mutex_);
  return live_;
}

TlsSettings TlsContext::settings() const { return live()->settings; }

TlsContext::Stamp TlsContext::stamp(const TlsSettings& settings) {
  Stamp out;
  for (const std::string* path : {&settings.cert_file, &settings.key_file}) {
    struct stat st {};
    if (::stat(path->c_str(), &st) != 0) continue;
    // Folded: a change of either file changes the stamp.
    out.mtime_ns = out.mtime_ns * 31 + st.st_mtim.tv_sec * 1'000'000'000LL + st.st_mtim.tv_nsec;
    out.size = out.size * 31 + st.st_size;
    out.inode = out.inode * 31 + static_cast<long long>(st.st_ino);
  }
  return out;
}

void TlsContext::prepare_session(gnutls_session_t session, gnutls_certificate_verify_function* verify) const {
  const auto current = live();
  gnutls_priority_set(session, current->priority);
  switch (current->settings.client_auth) {
    case ClientAuth::kNone:
      gnutls_certificate_server_set_request(session, GNUTLS_CERT_IGNORE);
      return;
    case ClientAuth::kRequest:
      gnutls_certificate_server_set_request(session, GNUTLS_CERT_REQUEST);
      return;
    case ClientAuth::kRequireAny:
      gnutls_certificate_server_set_request(session, GNUTLS_CERT_REQUIRE);
      return;
    case ClientAuth::kVerifyIfGiven:
      // GnuTLS's automatic verification fails a session without a certificate: verify only one given.
      gnutls_certificate_server_set_request(session, GNUTLS_CERT_REQUEST);
      gnutls_session_set_verify_function(session, verify);
      return;
    case ClientAuth::kRequireAndVerify:
      gnutls_certificate_server_set_request(session, GNUTLS_CERT_REQUIRE);
      gnutls_session_set_verify_function(session, verify);
      return;
  }
}

int TlsContext::verify_client(gnutls_session_t session) const {
  // The client CA bundle in force now (a reload between prepare_session() and here: the newer one).
  const auto current = live();
  const ClientAuth mode = current->settings.client_auth;
  if (mode != ClientAuth::kVerifyIfGiven && mode != ClientAuth::kRequireAndVerify) return 0;
  unsigned int count = 0;
  const gnutls_datum_t* peers = gnutls_certificate_get_peers(session, &count);
  if (!peers || count == 0) return mode == ClientAuth::kVerifyIfGiven ? 0 : -1;
  if (!current->trust || count > kMaxChain) return -1;
  std::vector<gnutls_x509_crt_t> chain;
  int result = -1;
  for (unsigned i = 0; i < count; ++i) {
    gnutls_x509_crt_t crt = nullptr;
    if (gnutls_x509_crt_init(&crt) < 0) break;
    chain.push_back(crt);
    if (gnutls_x509_crt_import(crt, &peers[i], GNUTLS_X509_FMT_DER) < 0) break;
  }
  if (chain.size() == count) {
    // Chains to the bundle, within its dates, meant for TLS clients.
    gnutls_typed_vdata_st purpose{};
    purpose.type = GNUTLS_DT_KEY_PURPOSE_OID;
    purpose.data = reinterpret_cast<unsigned char*>(const_cast<char*>(GNUTLS_KP_TLS_WWW_CLIENT));
    unsigned int status = 0;
    if (gnutls_x509_trust_list_verify_crt2(current->trust, chain.data(), count, &purpose, 1, 0, &status,
                                           nullptr) == 0 &&
        status == 0)
      result = 0;
  }
  for (auto crt : chain) gnutls_x509_crt_deinit(crt);
  return result;
}

int TlsContext::retrieve(gnutls_pcert_st** pcert, unsigned int* pcert_length, gnutls_privkey_t* key) {
  const std::lock_guard lock(mutex_);
  const auto now = std::chrono::steady_clock::now();
  if (now - checked_ >= std::chrono::seconds(1)) {
    checked_ = now;
    const TlsSettings& files = live_->settings;
    const Stamp current = stamp(files);
    if (!(current == stamp_)) {
      stamp_ = current;
      auto pair = load_pair(files.cert_file, files.key_file);
      if (pair.ok()) {
        retired_.push_back(std::move(current_));
        if (retired_.size() > kRetiredPairs) retired_.pop_front();
        current_ = std::move(pair).value();
        ++reloads_;
        spdlog::info("TLS certificate {} and key {} changed: serving the new pair", files.cert_file,
                     files.key_file);
      } else {
        spdlog::warn(
            "TLS certificate or key changed but cannot be loaded ({}): still serving the previous pair",
            pair.error().message);
      }
    }
  }
  if (!current_) return -1;
  *pcert = current_->chain.data();
  *pcert_length = static_cast<unsigned>(current_->chain.size());
  *key = current_->key;
  return 0;
}

unsigned TlsContext::reloads() const {
  const std::lock_guard lock(mutex_);
  return reloads_;
}

}  // namespace netprobe::http
