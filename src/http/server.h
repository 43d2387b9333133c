#pragma once
// A small HTTP/1.1 server on libmicrohttpd (docs/http-server.md: why, and every limit).
//
// It listens on one IPv4 or IPv6 literal address (parsed with inet_pton, nothing else accepted), routes
// exact paths (the query string is not part of the path) to handlers that take GET and HEAD, answers 404 to
// any other path, 405 to any other method, 413 to a request with a body, and, when basic auth is on, 401 with
// WWW-Authenticate to a request without the right credentials, in that order.
//
// Threading: libmicrohttpd's own epoll threads (Limits::threads) accept, read and write every connection; an
// idle or slow client costs a file descriptor and a small memory pool, never a thread. Handlers and body
// streams run on those threads: they must not block on anything but CPU-bound work.
#include <sys/types.h>

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/result.h"
#include "http/auth.h"
#include "http/tls.h"

struct MHD_Daemon;
struct MHD_Connection;

namespace netprobe::http {

struct ServerAccess;

struct Limits {
  unsigned connections = 4096;        // at once, all clients together (lowered to fit RLIMIT_NOFILE)
  unsigned connections_per_ip = 128;  // at once from one client address
  unsigned idle_timeout_s = 10;       // a connection that sends nothing for this long is closed
  size_t request_memory = 16 * 1024;  // per connection: request line + headers must fit (else 431/414)
  unsigned threads = 2;               // epoll threads
};

// The request as a handler sees it.
class Request {
 public:
  Request(MHD_Connection* connection, std::string_view method, std::string_view path,
          std::string_view version)
      : connection_(connection), method(method), path(path), version(version) {}
  // The value of the first header `name` (case-insensitive), or nullopt.
  std::optional<std::string_view> header(const char* name) const;

 private:
  MHD_Connection* connection_;

 public:
  std::string_view method;   // "GET" or "HEAD"
  std::string_view path;     // without the query string
  std::string_view version;  // "HTTP/1.1", "HTTP/1.0"
};

// A body produced while it is sent, for responses too large to build first. read() fills up to `max` bytes of
// `buffer`: returns how many (> 0), 0 at the end of the body, -1 on an error (the connection is closed
// without ending the body, so that the client cannot take a truncated body for a whole one). Called on a
// server thread, only when the client can take more; destroyed when the connection no longer needs it.
class BodyStream {
 public:
  virtual ~BodyStream() = default;
  virtual ssize_t read(char* buffer, size_t max) = 0;
};

struct Response {
  int status = 200;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;  // the whole body (sent with a Content-Length) when `stream` is null
  // A body of unknown length: chunked to HTTP/1.1 clients, ended by closing the connection for HTTP/1.0 ones.
  std::unique_ptr<BodyStream> stream;

  static Response text(int status, std::string body);  // text/plain; charset=utf-8
};

using Handler = std::function<Response(const Request&)>;

// What an authenticate hook decides: let in, refuse (401), or not now (429: the check is busy; exporter's
// bcrypt runs one at a time and never makes a server thread wait for another).
enum class AuthVerdict { kAllow, kDeny, kBusy };

struct Options {
  std::string
      address;   // IPv4 or IPv6 literal ("" = 0.0.0.0; IPv6 with or without brackets; "::" = dual stack)
  int port = 0;  // 0: any free port
  std::optional<BasicAuth> auth;
  // When set, basic auth is on and this decides (user, password); `auth` is then ignored.
  std::function<AuthVerdict(std::string_view user, std::string_view password)> authenticate;
  // Added to every response (http_server_config.headers).
  std::vector<std::pair<std::string, std::string>> headers;
  // A web configuration re-read while serving (web/reload.h): when set, they decide per request whether
  // basic auth is on (instead of `auth`/`authenticate` being set) and which headers to add (instead of
  // `headers`).
  std::function<bool()> auth_active;
  std::function<std::vector<std::pair<std::string, std::string>>()> headers_now;
  // HTTPS with this certificate, key and client-certificate policy (http/tls.h); shared by servers.
  std::shared_ptr<TlsContext> tls;
  Limits limits;
  // Fuzzing: no listening socket and no thread; connections are handed in with add_connection() and served
  // by run() on the caller's thread.
  bool external_loop = false;
};

class Server {
 public:
  // Starts serving `routes` (exact path -> handler). Errors (bad address, port in use, address not local,
  // libmicrohttpd failing to start) come back as a Result error naming the address; nothing throws.
  static Result<std::unique_ptr<Server>> start(Options options, std::map<std::string, Handler> routes);
  ~Server();  // stops the threads and closes every connection: no handler runs afterwards
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  int port() const { return port_; }

  // external_loop only: serves `fd` (a connected stream socket, owned from now on) as a client at 127.0.0.1.
  bool add_connection(int fd);
  // external_loop only: one round of I/O and request handling on every connection, without waiting.
  void run();
  const Limits& limits() const { return options_.limits; }

 private:
  Server(Options options, std::map<std::string, Handler> routes);
  friend struct ServerAccess;
  bool serve(MHD_Connection* connection, const char* url, const char* method, const char* version);
  AuthVerdict authorized(const Request& request) const;
  bool auth_on() const {
    if (options_.auth_active) return options_.auth_active();
    return options_.auth.has_value() || static_cast<bool>(options_.authenticate);
  }

  Options options_;
  std::map<std::string, Handler> routes_;
  MHD_Daemon* daemon_ = nullptr;
  int port_ = 0;
};

// Parses an IPv4 or IPv6 literal (IPv6 optionally in brackets) into a socket address with `port`; nullopt for
// anything else (names, ports, lists, scopes). "" is 0.0.0.0.
struct ListenAddress {
  int family = 0;
  std::vector<unsigned char> sockaddr;  // sockaddr_in or sockaddr_in6
  std::string text;                     // "127.0.0.1:9100", "[::1]:9100"
};
std::optional<ListenAddress> parse_listen_address(std::string_view address, int port);

// A --web.listen-address as Go's exporters take it: "host:port", "[ipv6]:port" or ":port" (every address:
// "::", IPv4 included). The host must be an IPv4 or IPv6 literal (no names), the port a decimal 0-65535.
struct HostPort {
  std::string address;  // for Options::address
  int port = 0;
};
std::optional<HostPort> parse_host_port(std::string_view text);

// Raises the soft RLIMIT_NOFILE to the hard limit (once per process); returns the soft limit now in force.
unsigned long raise_nofile_limit();

// True when an Accept-Encoding header value lists `coding` with a non-zero q ("gzip", "gzip;q=0.5").
bool accepts_encoding(std::optional<std::string_view> header, std::string_view coding);

// Decodes standard base64 (RFC 4648, padding optional); nullopt on any invalid character.
std::optional<std::string> base64_decode(std::string_view in);

}  // namespace netprobe::http
