#pragma once
// A small HTTP/1.1 server on libmicrohttpd (docs/http-server.md: why, and every limit).
//
// It listens on one IPv4 or IPv6 literal address (parsed with inet_pton, nothing else accepted) and routes
// paths (the query string is not part of the path; a prefix route also takes "path/...") to routes. In this
// order: 404 to an unknown path, 405 to a method the route does not take, 413 to a body the route does not
// take or a Content-Length above its limit (411 to a chunked body: a length must be announced), and, when
// basic auth is on and the route uses it, 401 with WWW-Authenticate to a request without the right
// credentials (429 while the password check is busy). A route may authenticate by itself instead (on-demand
// credentials: docs/on-demand.md).
//
// Threading: libmicrohttpd's own epoll threads (Limits::threads) accept, read and write every connection; an
// idle or slow client costs a file descriptor and a small memory pool, never a thread. Handlers and body
// streams run on those threads: they must not block on anything but CPU-bound work. A request that needs
// longer (a probe) takes an asynchronous handler: the connection is suspended, costs no thread, and resumes
// when the handler's Responder is given the response, from any thread.
#include <sys/types.h>

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <type_traits>
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
  // The first value of query parameter `name` (URL-decoded; "" for "?name"), or nullopt.
  std::optional<std::string_view> query(const char* name) const;
  // Every query parameter in order, repeats included (a handler that wants one value refuses repeats).
  std::vector<std::pair<std::string, std::string>> query_args() const;
  // The client's address ("192.0.2.1", "2001:db8::1"), for audit lines.
  std::string peer() const;

 private:
  MHD_Connection* connection_;

 public:
  std::string_view method;   // "GET", "HEAD", or a method the route lists
  std::string_view path;     // without the query string
  std::string_view version;  // "HTTP/1.1", "HTTP/1.0"
  std::string_view body;     // the request body, at most Route::max_body bytes ("" when none)
  // Every view above, and the Request itself, live only during the handler call: an asynchronous handler
  // copies what it needs before it returns.
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

struct PendingResponse;
// Completes an asynchronous request: respond() once, from any thread (later calls are ignored). Copies share
// one request; when the last copy is destroyed without an answer, the client gets a 500. After the server is
// stopped, respond() does nothing.
class Responder {
 public:
  explicit Responder(std::shared_ptr<PendingResponse> pending);
  void respond(Response response) const;

 private:
  struct Guard;
  std::shared_ptr<Guard> guard_;
};
using AsyncHandler = std::function<void(const Request&, Responder)>;

// What serves a path.
struct Route {
  Route() = default;
  // Implicit, so that {"/path", lambda} makes a GET/HEAD route of either kind.
  template <typename F>
  requires std::is_invocable_r_v<Response, F, const Request&> Route(F f)
      : handler(std::move(f)) {}  // NOLINT(google-explicit-constructor)
  template <typename F>
  requires(std::is_invocable_v<F, const Request&, Responder> && !std::is_invocable_v<F, const Request&>)
      Route(F f)
      : async(std::move(f)) {}  // NOLINT(google-explicit-constructor)

  Handler handler;     // answers at once, or
  AsyncHandler async;  // answers later through its Responder
  std::vector<std::string> methods{"GET", "HEAD"};
  // false: the server's basic auth is not applied; the handler authenticates (Request::header).
  bool server_auth = true;
  // Largest request body accepted, in bytes (Content-Length required); 0: a body is refused (413).
  size_t max_body = 0;
  // When set, asked at each request instead of max_body (a limit a configuration reload may change).
  std::function<size_t()> max_body_now;
  size_t body_limit() const { return max_body_now ? max_body_now() : max_body; }
  // Also serves "<path>/<anything>" (the handler reads the rest from Request::path).
  bool prefix = false;
};

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
  // When set, basic auth is on and this decides without blocking a server thread (bcrypt: web/users.h):
  // a verdict now, or nullopt and `later` called once with it, from any thread, while the connection waits
  // suspended (no thread held). `authenticate` and `auth` are then ignored.
  std::function<std::optional<AuthVerdict>(std::string_view user, std::string_view password,
                                           std::function<void(AuthVerdict)> later)>
      authenticate_async;
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
  // Starts serving `routes` (path -> route). Errors (bad address, port in use, address not local,
  // libmicrohttpd failing to start) come back as a Result error naming the address; nothing throws.
  static Result<std::unique_ptr<Server>> start(Options options, std::map<std::string, Route> routes);
  // Stops the threads and closes every connection (suspended ones too: their clients get nothing more, and
  // their Responders turn into no-ops): no handler runs afterwards.
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  int port() const { return port_; }

  // external_loop only: serves `fd` (a connected stream socket, owned from now on) as a client at 127.0.0.1.
  bool add_connection(int fd);
  // external_loop only: one round of I/O and request handling on every connection, without waiting.
  void run();
  const Limits& limits() const { return options_.limits; }

 private:
  struct RequestState;
  Server(Options options, std::map<std::string, Route> routes);
  friend struct ServerAccess;
  bool serve(MHD_Connection* connection, const char* url, const char* method, const char* version,
             const char* upload, size_t* upload_size, void** state);
  std::optional<Response> refusal(const Request& request, const Route* route) const;
  bool dispatch(MHD_Connection* connection, RequestState& state, const Request& request);
  bool finish(MHD_Connection* connection, bool head, Response response) const;
  const Route* find_route(std::string_view path) const;
  void forget(RequestState* state);
  AuthVerdict authorized(const Request& request) const;
  bool auth_on() const {
    if (options_.auth_active) return options_.auth_active();
    return options_.auth.has_value() || static_cast<bool>(options_.authenticate) ||
           static_cast<bool>(options_.authenticate_async);
  }
  // The server's basic auth of a request through authenticate_async: true when it is decided or under way
  // (the connection suspended, or answered 401/429 now); false when the request may go on at once.
  bool begin_auth(MHD_Connection* connection, RequestState& state, const Request& request, bool* handled);

  Options options_;
  std::map<std::string, Route> routes_;
  MHD_Daemon* daemon_ = nullptr;
  std::mutex pending_mutex_;
  std::set<std::shared_ptr<PendingResponse>> pending_;  // suspended or about to be
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
