#include "svc/tcp_query.h"

#include <fcntl.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <poll.h>
#include <re2/re2.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>

#include <fmt/format.h>

#include "core/sockaddr.h"
#include "svc/resolve.h"
#include "svc/udp_query.h"

namespace netprobe::svc {

namespace {

using Clock = std::chrono::steady_clock;

std::optional<TcpStep> bad(std::string* why, std::string msg) {
  if (why) *why = std::move(msg);
  return std::nullopt;
}

// Milliseconds left until `deadline`, at least 0.
int left_ms(Clock::time_point deadline) {
  const auto d = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return d <= 0 ? 0 : int(std::min<int64_t>(d, 1 << 30));
}

bool wait_fd(int fd, short events, Clock::time_point deadline) {
  pollfd p{fd, events, 0};
  for (;;) {
    const int r = ::poll(&p, 1, left_ms(deadline));
    if (r > 0) return true;
    if (r == 0) return false;
    if (errno != EINTR) return false;
  }
}

struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

// A GnuTLS client session and its credentials, released together.
struct Tls {
  gnutls_certificate_credentials_t cred = nullptr;
  gnutls_session_t session = nullptr;
  ~Tls() {
    if (session) gnutls_deinit(session);
    if (cred) gnutls_certificate_free_credentials(cred);
  }
};

bool is_ip_literal(const std::string& host) { return IpAddress::parse(host).has_value(); }

std::string blackbox_version(gnutls_protocol_t v) {
  switch (v) {
    case GNUTLS_TLS1_0:
      return "TLS 1.0";
    case GNUTLS_TLS1_1:
      return "TLS 1.1";
    case GNUTLS_TLS1_2:
      return "TLS 1.2";
    case GNUTLS_TLS1_3:
      return "TLS 1.3";
    default: {
      const char* n = gnutls_protocol_get_name(v);
      return n ? n : "unknown";
    }
  }
}

// Reads and writes over the plain socket or the TLS session, within the deadline.
class Stream {
 public:
  Stream(int fd, gnutls_session_t tls) : fd_(fd), tls_(tls) {}
  // Sends all of `b`; false on error or timeout.
  bool send_all(const std::vector<uint8_t>& b, Clock::time_point deadline) {
    size_t off = 0;
    while (off < b.size()) {
      ssize_t n;
      if (tls_) {
        n = gnutls_record_send(tls_, b.data() + off, b.size() - off);
        if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED) {
          if (!wait_fd(fd_, POLLOUT, deadline)) return false;
          continue;
        }
      } else {
        n = ::send(fd_, b.data() + off, b.size() - off, MSG_NOSIGNAL);
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
          if (!wait_fd(fd_, POLLOUT, deadline)) return false;
          continue;
        }
      }
      if (n <= 0) return false;
      off += size_t(n);
    }
    return true;
  }
  // Appends what arrives to `buf` (at most up to kMaxTcpReadBytes); 0 on EOF, -1 on error or timeout.
  int read_some(std::vector<uint8_t>& buf, Clock::time_point deadline) {
    uint8_t tmp[4096];
    const size_t room = std::min(sizeof tmp, kMaxTcpReadBytes - buf.size());
    if (room == 0) return -1;
    for (;;) {
      if (tls_ && gnutls_record_check_pending(tls_) == 0 && !wait_fd(fd_, POLLIN, deadline)) return -1;
      if (!tls_ && !wait_fd(fd_, POLLIN, deadline)) return -1;
      ssize_t n;
      if (tls_) {
        n = gnutls_record_recv(tls_, tmp, room);
        if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED) continue;
        if (n == GNUTLS_E_PREMATURE_TERMINATION) n = 0;
      } else {
        n = ::recv(fd_, tmp, room, 0);
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
      }
      if (n < 0) return -1;
      buf.insert(buf.end(), tmp, tmp + n);
      return int(n);
    }
  }

 private:
  int fd_;
  gnutls_session_t tls_;
};

bool buffer_satisfies(const TcpStep& s, const std::vector<uint8_t>& buf) {
  if (s.kind == TcpStep::Kind::kExpectBytes)
    return std::search(buf.begin(), buf.end(), s.bytes.begin(), s.bytes.end()) != buf.end();
  const re2::StringPiece text(reinterpret_cast<const char*>(buf.data()), buf.size());
  return s.regex && RE2::PartialMatch(text, *s.regex);
}

TcpQueryResult finish(TcpQueryResult r, Clock::time_point start, std::string failure,
                      std::string detail = {}) {
  r.duration_seconds = std::chrono::duration<double>(Clock::now() - start).count();
  r.failure = std::move(failure);
  r.detail = std::move(detail);
  r.success = r.failure.empty();
  return r;
}

// Handshake (not verifying inside it: an invalid chain's expiry is still reported), then verification
// and the chain's NotAfter dates.
TcpQueryResult tls_handshake(Tls& t, int fd, const TcpQuerySpec& spec, TcpQueryResult r,
                             Clock::time_point start, Clock::time_point deadline, bool* ok) {
  *ok = false;
  const TlsOptions& o = spec.tls;
  if (gnutls_certificate_allocate_credentials(&t.cred) < 0)
    return finish(r, start, "tls_handshake", "credentials");
  const int loaded = o.ca_file.empty() ? gnutls_certificate_set_x509_system_trust(t.cred)
                                       : gnutls_certificate_set_x509_trust_file(t.cred, o.ca_file.c_str(),
                                                                                GNUTLS_X509_FMT_PEM);
  if (loaded < 0 || (!o.ca_file.empty() && loaded == 0))
    return finish(r, start, "tls_handshake",
                  "no trust anchors loaded from " + (o.ca_file.empty() ? "the system store" : o.ca_file));
  if (gnutls_init(&t.session, GNUTLS_CLIENT | GNUTLS_NONBLOCK) < 0)
    return finish(r, start, "tls_handshake", "init");
  gnutls_set_default_priority(t.session);
  gnutls_credentials_set(t.session, GNUTLS_CRD_CERTIFICATE, t.cred);
  const std::string name =
      !o.server_name.empty() ? o.server_name : (is_ip_literal(spec.host) ? "" : spec.host);
  if (!name.empty()) gnutls_server_name_set(t.session, GNUTLS_NAME_DNS, name.data(), name.size());
  gnutls_transport_set_int(t.session, fd);
  int rc;
  do {
    rc = gnutls_handshake(t.session);
    if (rc == GNUTLS_E_AGAIN || rc == GNUTLS_E_INTERRUPTED) {
      const short ev = gnutls_record_get_direction(t.session) ? POLLOUT : POLLIN;
      if (!wait_fd(fd, ev, deadline)) return finish(r, start, "timeout", "during the TLS handshake");
    }
  } while (rc < 0 && !gnutls_error_is_fatal(rc));
  if (rc < 0) return finish(r, start, "tls_handshake", gnutls_strerror(rc));
  r.tls_version = blackbox_version(gnutls_protocol_get_version(t.session));

  unsigned n = 0;
  const gnutls_datum_t* peers = gnutls_certificate_get_peers(t.session, &n);
  for (unsigned i = 0; i < n && i < 16; ++i) {  // a chain longer than 16 is not read further
    gnutls_x509_crt_t crt;
    if (gnutls_x509_crt_init(&crt) < 0) break;
    if (gnutls_x509_crt_import(crt, &peers[i], GNUTLS_X509_FMT_DER) >= 0) {
      const time_t na = gnutls_x509_crt_get_expiration_time(crt);
      if (na != time_t(-1)) r.chain_not_after.push_back(int64_t(na));
    }
    gnutls_x509_crt_deinit(crt);
  }
  if (!r.chain_not_after.empty())
    r.earliest_cert_expiry = *std::min_element(r.chain_not_after.begin(), r.chain_not_after.end());

  unsigned status = 0;
  const int vr = gnutls_certificate_verify_peers3(t.session, name.empty() ? nullptr : name.c_str(), &status);
  r.tls_verified = vr == 0 && status == 0 && n > 0;
  // GnuTLS does not hand back the chain it built; the presented chain, once it verified, is what the
  // trust anchor vouches for (docs/service-checks.md#tls: a root absent from it is not counted).
  if (r.tls_verified) r.last_chain_expiry = r.earliest_cert_expiry;
  if (!r.tls_verified && !o.insecure_skip_verify) {
    std::string why = "no certificate presented";
    gnutls_datum_t out{};
    if (vr < 0) {
      why = gnutls_strerror(vr);
    } else if (n > 0 && gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509, &out, 0) == 0) {
      why.assign(reinterpret_cast<const char*>(out.data), out.size);
      gnutls_free(out.data);
    }
    return finish(r, start, "tls_verify", why);
  }
  if (o.expiry_window.count() > 0 && r.earliest_cert_expiry &&
      *r.earliest_cert_expiry - int64_t(std::time(nullptr)) < o.expiry_window.count())
    return finish(r, start, "tls_expiry_window",
                  fmt::format("a certificate expires within {} s", o.expiry_window.count()));
  *ok = true;
  return r;
}

}  // namespace

std::optional<TcpStep> parse_tcp_step(std::string_view kind, std::string_view value, std::string* why) {
  TcpStep s;
  if (kind == "send" || kind == "expect_bytes") {
    s.kind = kind == "send" ? TcpStep::Kind::kSend : TcpStep::Kind::kExpectBytes;
    auto b = parse_bytes(value, kMaxPayloadBytes, why);
    if (!b) return std::nullopt;
    s.bytes = std::move(*b);
    return s;
  }
  if (kind == "expect") {
    auto e = parse_expect("regex", value, why);
    if (!e) return std::nullopt;
    s.kind = TcpStep::Kind::kExpect;
    s.regex = e->regex;
    return s;
  }
  return bad(why, "a step is send, expect or expect_bytes");
}

TcpQueryResult run_tcp_query(const TcpQuerySpec& spec, Resolver* resolver) {
  const auto start = Clock::now();
  const auto deadline = start + spec.timeout;
  TcpQueryResult r;
  if (spec.steps.size() > kMaxTcpSteps) return finish(r, start, "config", "too many steps");

  const HostResolution dst = resolve_host(resolver, spec.host, spec.family, deadline);
  r.dns_lookup_seconds = dst.seconds;
  if (!dst.address) return finish(r, start, "resolve", spec.host + ": " + dst.error);
  sockaddr_storage dst_sa{};
  const socklen_t dst_len = to_sockaddr(*dst.address, spec.port, dst_sa);
  Fd fd;
  fd.fd = ::socket(dst_sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd.fd < 0) return finish(r, start, "connect", std::strerror(errno));
  if (!spec.source.empty()) {
    // A literal only (a group's src_ipv4 / src_ipv6): a source never goes to DNS.
    const auto src = IpAddress::parse(spec.source);
    if (!src || src->af != dst.address->af)
      return finish(r, start, "connect",
                    "bind to " + spec.source + ": not an address literal of the destination's family");
    sockaddr_storage src_sa{};
    const socklen_t src_len = to_sockaddr(*src, 0, src_sa);
    if (::bind(fd.fd, reinterpret_cast<const sockaddr*>(&src_sa), src_len) != 0)
      return finish(r, start, "connect", "bind to " + spec.source + ": " + std::strerror(errno));
  }
  const auto connect_start = Clock::now();
  const int crc = ::connect(fd.fd, reinterpret_cast<const sockaddr*>(&dst_sa), dst_len);
  if (crc < 0 && errno != EINPROGRESS) return finish(r, start, "connect", std::strerror(errno));
  if (crc < 0) {
    if (!wait_fd(fd.fd, POLLOUT, deadline)) return finish(r, start, "timeout", "during connect");
    int err = 0;
    socklen_t len = sizeof err;
    ::getsockopt(fd.fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) return finish(r, start, "connect", std::strerror(err));
  }
  r.connect_seconds = std::chrono::duration<double>(Clock::now() - connect_start).count();

  Tls tls;
  if (spec.tls.enabled) {
    bool ok = false;
    r = tls_handshake(tls, fd.fd, spec, std::move(r), start, deadline, &ok);
    if (!ok) return r;
  }
  Stream stream(fd.fd, tls.session);
  std::vector<uint8_t> buf;  // bytes read and not yet consumed by an expect
  for (size_t i = 0; i < spec.steps.size(); ++i) {
    const TcpStep& s = spec.steps[i];
    r.failed_step = int(i);
    if (s.kind == TcpStep::Kind::kSend) {
      if (!stream.send_all(s.bytes, deadline)) return finish(r, start, "send", fmt::format("step {}", i));
      continue;
    }
    // Each read re-runs the match over the buffer: a server dripping one byte at a time is cut off after
    // kMaxTcpReadsPerExpect reads, so the work stays bounded (at most that many scans of 64 KiB).
    for (int reads = 0; !buffer_satisfies(s, buf); ++reads) {
      const int n = reads < kMaxTcpReadsPerExpect ? stream.read_some(buf, deadline) : -1;
      if (n <= 0) {
        const std::string what =
            n == 0 ? "connection closed"
                   : (left_ms(deadline) == 0 ? "timeout"
                                             : fmt::format("read error, or over {} bytes or {} reads",
                                                           kMaxTcpReadBytes, kMaxTcpReadsPerExpect));
        return finish(r, start, "expect", fmt::format("step {}: {}", i, what));
      }
    }
    buf.clear();  // the next expect looks at what arrives after this one matched
  }
  r.failed_step = -1;
  return finish(r, start, "");
}

std::string to_metrics_text(const TcpQuerySpec& spec, const TcpQueryResult& r) {
  std::string out;
  out += fmt::format("probe_success {}\n", r.success ? 1 : 0);
  out += fmt::format("probe_duration_seconds {:.6f}\n", r.duration_seconds);
  out += fmt::format("probe_dns_lookup_time_seconds {:.6f}\n", r.dns_lookup_seconds);
  out += fmt::format("probe_tcp_connect_seconds {:.6f}\n", r.connect_seconds);
  if (!r.success) out += fmt::format("probe_failed_due_to{{reason=\"{}\"}} 1\n", r.failure);
  if (!spec.tls.enabled) return out;
  if (!r.tls_version.empty())
    out += fmt::format("probe_tls_version_info{{version=\"{}\"}} 1\n", r.tls_version);
  out += fmt::format("probe_ssl_verified {}\n", r.tls_verified ? 1 : 0);
  if (r.earliest_cert_expiry)
    out += fmt::format("probe_ssl_earliest_cert_expiry {}\n", *r.earliest_cert_expiry);
  if (r.last_chain_expiry)
    out += fmt::format("probe_ssl_last_chain_expiry_timestamp_seconds {}\n", *r.last_chain_expiry);
  out += fmt::format("probe_ssl_expiry_window_seconds {}\n", spec.tls.expiry_window.count());
  return out;
}

}  // namespace netprobe::svc
