#pragma once
// TLS for http::Server through libmicrohttpd's GnuTLS (docs/http-server.md: why GnuTLS, and the mapping
// of exporter-toolkit's settings onto it).
//
// A TlsContext holds the server certificate chain and key, read from their files at start and re-read when
// either file changes (checked at most once a second, at a TLS handshake): a renewed certificate is served
// from the next connection on, without a restart; a renewed pair that cannot be loaded is logged and the
// previous one kept. reload() replaces every setting at once (the web configuration file changed: other
// files, client CA bundle, client_auth_type, versions, cipher suites, curves), for new connections.
#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>

#include <chrono>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"

namespace netprobe::http {

// Go's tls.ClientAuthType, as exporter-toolkit names them in client_auth_type.
enum class ClientAuth { kNone, kRequest, kRequireAny, kVerifyIfGiven, kRequireAndVerify };

struct TlsSettings {
  std::string cert_file;       // PEM: the server certificate, then its intermediates
  std::string key_file;        // PEM: its private key (unencrypted)
  std::string client_ca_file;  // PEM bundle the client certificates are verified against ("" = none)
  ClientAuth client_auth = ClientAuth::kNone;
  std::string priorities = "NORMAL";  // a GnuTLS priority string (tls_priorities())
};

// TLS protocol versions as Go numbers them (0x0301 TLS 1.0 ... 0x0304 TLS 1.3).
constexpr int kTls10 = 0x0301, kTls11 = 0x0302, kTls12 = 0x0303, kTls13 = 0x0304;

// True when `name` is one of Go's (crypto/tls CipherSuites(), the secure ones) IANA cipher suite names, or a
// curve name exporter-toolkit accepts (CurveP256, CurveP384, CurveP521, X25519).
bool known_cipher_suite(std::string_view name);
bool known_curve(std::string_view name);

// The GnuTLS priority string for exporter-toolkit's settings: versions min..max; when `cipher_suites` is not
// empty, only their key exchanges, ciphers and MACs (GnuTLS combines those three lists, so a set of suites
// is reproduced exactly only when it is a full cross product, as the usual AEAD sets are); `curves` in
// order; the server's order first when `prefer_server`. Checked by GnuTLS: an error names what it refused.
Result<std::string> tls_priorities(const std::vector<std::string>& cipher_suites,
                                   const std::vector<std::string>& curves, int min_version, int max_version,
                                   bool prefer_server);

class TlsContext {
 public:
  // Reads and checks the certificate chain and key (the key must match the first certificate) and the
  // client CA bundle; checks the priority string. Errors name the file and the reason.
  static Result<std::shared_ptr<TlsContext>> create(TlsSettings settings);
  ~TlsContext();
  TlsContext(const TlsContext&) = delete;
  TlsContext& operator=(const TlsContext&) = delete;

  // The settings in force (a copy: reload() may replace them).
  TlsSettings settings() const;
  // The priority string and client CA bundle of create(), for libmicrohttpd's daemon options (every
  // session then gets the ones in force from prepare_session()).
  const std::string& start_priorities() const { return start_priorities_; }
  const std::string& client_ca_pem() const { return client_ca_pem_; }
  // Loads and checks everything `settings` names (pair, client CA bundle, priority string) and, only when all
  // of it is good, puts it in force for the connections that start afterwards; otherwise changes nothing
  // and says why.
  Status reload(TlsSettings settings);
  // Per connection, before its handshake: the priorities in force, and asks for (or requires) a client
  // certificate as client_auth says; one to verify is verified by `verify` (which must call
  // verify_client() of this context: GnuTLS's verify callback gets only the session).
  void prepare_session(gnutls_session_t session, gnutls_certificate_verify_function* verify) const;
  // The client's chain against the client CA bundle in force (with the TLS client key purpose, dates
  // checked): 0 to go on with the handshake, -1 to fail it. No certificate passes when client_auth is
  // VerifyClientCertIfGiven (or asks for none), fails when it is RequireAndVerifyClientCert.
  int verify_client(gnutls_session_t session) const;
  // The certificate chain and key to present (GnuTLS' retrieve function); re-reads the files first if they
  // changed. Returns 0, or -1 when there is none.
  int retrieve(gnutls_pcert_st** pcert, unsigned int* pcert_length, gnutls_privkey_t* key);
  // How many times a changed pair was loaded since start (tests).
  unsigned reloads() const;

 private:
  struct Pair;
  struct Live;
  struct Stamp {
    long long mtime_ns = 0, size = 0, inode = 0;
    bool operator==(const Stamp&) const = default;
  };
  TlsContext() = default;
  static Result<std::shared_ptr<Pair>> load_pair(const std::string& cert_file, const std::string& key_file);
  // Everything but the pair, loaded and checked; *pem gets the client CA bundle's text.
  static Result<std::shared_ptr<const Live>> load_live(TlsSettings settings, std::string* pem);
  static Stamp stamp(const TlsSettings& settings);
  std::shared_ptr<const Live> live() const;

  std::string start_priorities_;
  std::string client_ca_pem_;
  mutable std::mutex mutex_;
  std::shared_ptr<const Live> live_;  // settings, priorities, client CA trust list: replaced whole
  std::shared_ptr<Pair> current_;
  // Pairs replaced recently: GnuTLS may still be sending one in a handshake that started before the change.
  std::deque<std::shared_ptr<Pair>> retired_;
  Stamp stamp_;
  std::chrono::steady_clock::time_point checked_{};
  unsigned reloads_ = 0;
};

}  // namespace netprobe::http
