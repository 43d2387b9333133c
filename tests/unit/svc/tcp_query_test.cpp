// TCP query and TLS check (src/svc/tcp_query.h) against servers on loopback in this process: a banner /
// PING-PONG server, and a GnuTLS server presenting a self-signed certificate made here with a chosen
// NotAfter (valid, expired, expiring soon).
#include "svc/tcp_query.h"

#include <arpa/inet.h>
#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <ctime>
#include <fstream>
#include <functional>
#include <string>
#include <thread>

#include "loopback_server.h"

namespace netprobe::svc {
namespace {

using namespace std::chrono_literals;

// A listening socket on 127.0.0.1 (port chosen by the kernel) that serves one connection with `serve`.
class OneShotServer : public LoopbackServer {
 public:
  template <typename F>
  explicit OneShotServer(F serve) : LoopbackServer(SOCK_STREAM) {
    EXPECT_EQ(::listen(fd_, 4), 0);
    thread_ = std::thread([this, serve] {
      const int c = ::accept(fd_, nullptr, nullptr);
      if (c < 0) return;
      set_receive_timeout(c);
      serve(c);
      ::close(c);
    });
  }
  ~OneShotServer() { ::shutdown(fd_, SHUT_RDWR); }  // wakes accept() if nobody connected (then joined)
};

std::string read_line(int fd) {
  std::string s;
  char ch;
  while (s.size() < 256 && ::recv(fd, &ch, 1, 0) == 1) {
    s += ch;
    if (ch == '\n') break;
  }
  return s;
}

void redis_like(int c) {
  ::send(c, "220 svc ready\r\n", 15, MSG_NOSIGNAL);
  if (read_line(c) == "PING\r\n") ::send(c, "+PONG\r\n", 7, MSG_NOSIGNAL);
  read_line(c);  // until the client closes
}

TcpStep step(const char* kind, const char* value) {
  std::string why;
  auto s = parse_tcp_step(kind, value, &why);
  EXPECT_TRUE(s) << why;
  return s ? *s : TcpStep{};
}

TEST(svc, TcpStepParsingTable) {
  struct Row {
    const char* kind;
    const char* value;
    bool ok;
  } rows[] = {{"send", "PING\r\n", true},   {"send", "hex:0d0a", true},
              {"expect", "^\\+PONG", true}, {"expect_bytes", "PONG", true},
              {"expect", "(", false},       {"send", "", false},
              {"recv", "x", false}};
  for (const auto& r : rows) {
    std::string why;
    EXPECT_EQ(parse_tcp_step(r.kind, r.value, &why).has_value(), r.ok)
        << r.kind << " " << r.value << ": " << why;
  }
}

TEST(svc, TcpQueryBannerAndPingPong) {
  OneShotServer server(redis_like);
  TcpQuerySpec spec;
  spec.host = "127.0.0.1";
  spec.port = server.port();
  spec.steps = {step("expect", "^220 "), step("send", "PING\r\n"), step("expect", "^\\+PONG"),
                step("send", "QUIT\r\n")};
  const auto r = run_tcp_query(spec, nullptr);
  EXPECT_TRUE(r.success) << r.failure << ": " << r.detail;
  EXPECT_EQ(r.failed_step, -1);
  EXPECT_GT(r.connect_seconds, 0);
  const std::string m = to_metrics_text(spec, r);
  EXPECT_NE(m.find("probe_success 1\n"), std::string::npos) << m;
  EXPECT_EQ(m.find("probe_ssl"), std::string::npos) << m;
}

TEST(svc, TcpQueryWrongAnswerFailsItsStep) {
  OneShotServer server(redis_like);
  TcpQuerySpec spec;
  spec.host = "127.0.0.1";
  spec.port = server.port();
  spec.timeout = 500ms;
  spec.steps = {step("expect_bytes", "220"), step("send", "PING\r\n"), step("expect", "^-ERR")};
  const auto r = run_tcp_query(spec, nullptr);
  EXPECT_FALSE(r.success);
  EXPECT_EQ(r.failure, "expect");
  EXPECT_EQ(r.failed_step, 2);
  EXPECT_NE(to_metrics_text(spec, r).find("probe_failed_due_to{reason=\"expect\"} 1"), std::string::npos);
}

TEST(svc, TcpQueryDripFeedIsCutOff) {
  // One byte per write, never the expected text: the expect gives up after its read budget, not the timeout.
  OneShotServer server([](int c) {
    // Until the client hangs up (bounded: 20000 bytes stay below the 64 KiB buffer cap).
    for (int i = 0; i < 20000; ++i) {
      if (::send(c, "x", 1, MSG_NOSIGNAL) != 1) break;
      usleep(200);
    }
  });
  TcpQuerySpec spec;
  spec.host = "127.0.0.1";
  spec.port = server.port();
  spec.timeout = 30s;
  spec.steps = {step("expect", "^220")};
  const auto r = run_tcp_query(spec, nullptr);
  EXPECT_EQ(r.failure, "expect");
  EXPECT_NE(r.detail.find("reads"), std::string::npos) << r.detail;
}

TEST(svc, TcpQueryClosedPortFailsConnect) {
  uint16_t port;
  {
    OneShotServer server([](int) {});
    port = server.port();
  }  // closed now: nothing listens there
  TcpQuerySpec spec;
  spec.host = "127.0.0.1";
  spec.port = port;
  const auto r = run_tcp_query(spec, nullptr);
  EXPECT_FALSE(r.success);
  EXPECT_EQ(r.failure, "connect") << r.detail;
}

// A self-signed certificate for `name`, valid from `not_before` to `not_after`, written as PEM to
// `cert_path`; the key and certificate are kept for the server.
struct SelfSigned {
  gnutls_x509_privkey_t key = nullptr;
  gnutls_x509_crt_t crt = nullptr;
  SelfSigned(const char* name, time_t not_before, time_t not_after) {
    gnutls_x509_privkey_init(&key);
    EXPECT_EQ(gnutls_x509_privkey_generate(key, GNUTLS_PK_ECDSA,
                                           GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0),
              0);
    gnutls_x509_crt_init(&crt);
    gnutls_x509_crt_set_version(crt, 3);
    const unsigned char serial[] = {1, 2, 3};
    gnutls_x509_crt_set_serial(crt, serial, sizeof serial);
    gnutls_x509_crt_set_activation_time(crt, not_before);
    gnutls_x509_crt_set_expiration_time(crt, not_after);
    gnutls_x509_crt_set_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, name, unsigned(strlen(name)));
    gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_DNSNAME, name, unsigned(strlen(name)),
                                         GNUTLS_FSAN_SET);
    gnutls_x509_crt_set_basic_constraints(crt, 1, -1);
    gnutls_x509_crt_set_key_usage(crt, GNUTLS_KEY_DIGITAL_SIGNATURE | GNUTLS_KEY_KEY_CERT_SIGN);
    gnutls_x509_crt_set_key(crt, key);
    EXPECT_EQ(gnutls_x509_crt_sign2(crt, crt, key, GNUTLS_DIG_SHA256, 0), 0);
  }
  ~SelfSigned() {
    gnutls_x509_crt_deinit(crt);
    gnutls_x509_privkey_deinit(key);
  }
  std::string write_pem(const std::string& path) const {
    gnutls_datum_t out{};
    gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_PEM, &out);
    std::ofstream(path) << std::string(reinterpret_cast<char*>(out.data), out.size);
    gnutls_free(out.data);
    return path;
  }
};

// Serves one TLS handshake with `cert` then closes.
std::function<void(int)> tls_server(const SelfSigned& cert) {
  return [&cert](int c) {
    gnutls_certificate_credentials_t cred;
    gnutls_certificate_allocate_credentials(&cred);
    gnutls_x509_crt_t chain[1] = {cert.crt};
    gnutls_certificate_set_x509_key(cred, chain, 1, cert.key);
    gnutls_session_t s;
    gnutls_init(&s, GNUTLS_SERVER);
    gnutls_set_default_priority(s);
    gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, cred);
    gnutls_transport_set_int(s, c);
    gnutls_handshake_set_timeout(s, 5000);
    int rc;
    do {
      rc = gnutls_handshake(s);
    } while (rc < 0 && !gnutls_error_is_fatal(rc));
    if (rc == 0) gnutls_bye(s, GNUTLS_SHUT_WR);
    gnutls_deinit(s);
    gnutls_certificate_free_credentials(cred);
  };
}

std::string temp_path(const char* leaf) {
  return std::string(::testing::TempDir()) + "/svc_" + std::to_string(::getpid()) + "_" + leaf;
}

TEST(svc, TlsVerifiedChainReportsItsNotAfter) {
  const time_t now = std::time(nullptr);
  const time_t not_after = now + 90 * 86400;
  SelfSigned cert("svc.test", now - 3600, not_after);
  const std::string ca = cert.write_pem(temp_path("ca.pem"));
  struct Row {
    const char* name;
    const char* server_name;
    const char* ca_file;  // nullptr: the system store
    int64_t window_s;
    bool success;
    const char* failure;
    bool verified;
  } rows[] = {
      {"trusted by the CA file", "svc.test", ca.c_str(), 0, true, "", true},
      {"outside the window", "svc.test", ca.c_str(), 30 * 86400, true, "", true},
      {"inside the window", "svc.test", ca.c_str(), 100 * 86400, false, "tls_expiry_window", true},
      {"wrong name", "other.test", ca.c_str(), 0, false, "tls_verify", false},
      {"system store does not know it", "svc.test", nullptr, 0, false, "tls_verify", false},
  };
  for (const auto& row : rows) {
    OneShotServer server(tls_server(cert));
    TcpQuerySpec spec;
    spec.host = "127.0.0.1";
    spec.port = server.port();
    spec.tls.enabled = true;
    spec.tls.server_name = row.server_name;
    spec.tls.ca_file = row.ca_file ? row.ca_file : "";
    spec.tls.expiry_window = std::chrono::seconds(row.window_s);
    const auto r = run_tcp_query(spec, nullptr);
    EXPECT_EQ(r.success, row.success) << row.name << ": " << r.failure << " " << r.detail;
    EXPECT_EQ(r.failure, row.failure) << row.name << ": " << r.detail;
    EXPECT_EQ(r.tls_verified, row.verified) << row.name;
    // The expiry is reported whether or not the chain verified: it is what an alert looks at.
    ASSERT_TRUE(r.earliest_cert_expiry) << row.name;
    EXPECT_EQ(*r.earliest_cert_expiry, int64_t(not_after)) << row.name;
    EXPECT_EQ(r.last_chain_expiry.has_value(), row.verified) << row.name;
    EXPECT_FALSE(r.tls_version.empty()) << row.name;
    const std::string m = to_metrics_text(spec, r);
    EXPECT_NE(m.find("probe_ssl_earliest_cert_expiry " + std::to_string(not_after) + "\n"), std::string::npos)
        << m;
    EXPECT_NE(m.find("probe_tls_version_info{version=\"TLS 1."), std::string::npos) << m;
  }
  std::remove(ca.c_str());
}

TEST(svc, TlsExpiredChainFailsVerification) {
  const time_t start = 1577836800;      // 2020-01-01
  const time_t not_after = 1580515200;  // 2020-02-01
  SelfSigned cert("svc.test", start, not_after);
  const std::string ca = cert.write_pem(temp_path("expired.pem"));
  OneShotServer server(tls_server(cert));
  TcpQuerySpec spec;
  spec.host = "127.0.0.1";
  spec.port = server.port();
  spec.tls = {true, "svc.test", ca, false, std::chrono::seconds(0)};
  const auto r = run_tcp_query(spec, nullptr);
  EXPECT_FALSE(r.success);
  EXPECT_EQ(r.failure, "tls_verify") << r.detail;
  EXPECT_NE(r.detail.find("expired"), std::string::npos) << r.detail;
  ASSERT_TRUE(r.earliest_cert_expiry);
  EXPECT_EQ(*r.earliest_cert_expiry, int64_t(not_after));
  std::remove(ca.c_str());
}

}  // namespace
}  // namespace netprobe::svc
