#include "http/server.h"

#include <arpa/inet.h>
#include <gnutls/gnutls.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <mutex>

#include <fmt/format.h>

#include "core/sockaddr.h"

namespace netprobe {

bool constant_time_equal(std::string_view a, std::string_view b) {
  // Walk the longer of the two in full and fold every difference (lengths included) into one
  // accumulator: no early exit, so the time does not reveal the length of a matching prefix.
  const size_t n = std::max(a.size(), b.size());
  volatile unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < n; ++i) {
    const unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    const unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
    diff = diff | static_cast<unsigned char>(x ^ y);
  }
  return diff == 0;
}

std::optional<BasicAuth> basic_auth_from_env(const char* user, const char* password, std::string* error) {
  const bool has_user = user != nullptr && *user != '\0';
  const bool has_password = password != nullptr && *password != '\0';
  std::string message;
  std::optional<BasicAuth> result;
  if (has_user && has_password) {
    result = BasicAuth{user, password};
  } else if (has_user) {
    message =
        "PROM_USER is set but PROM_PASSWORD is not: set both to enable basic auth on /metrics, or neither";
  } else if (has_password) {
    message =
        "PROM_PASSWORD is set but PROM_USER is not: set both to enable basic auth on /metrics, or neither";
  }
  if (error) *error = std::move(message);
  return result;
}

namespace http {

namespace {

// netprobify's realm and body, so that anything that screen-scraped its 401 keeps working.
constexpr const char* kAuthenticate = "Basic realm=\"Authentication Required\", charset=\"UTF-8\"";
constexpr const char* kUnauthorizedBody = "Unauthorized Access";
// File descriptors kept for everything else the process opens (sockets, pipes, logs, /proc).
constexpr unsigned long kReservedFds = 256;

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    const auto x = static_cast<unsigned char>(a[i]), y = static_cast<unsigned char>(b[i]);
    if ((x >= 'A' && x <= 'Z' ? x + 32 : x) != (y >= 'A' && y <= 'Z' ? y + 32 : y)) return false;
  }
  return true;
}

// libmicrohttpd's callbacks for a streamed body.
ssize_t read_stream(void* cls, uint64_t, char* buffer, size_t max) {
  const ssize_t n = static_cast<BodyStream*>(cls)->read(buffer, max);
  if (n > 0) return n;
  // Never 0: libmicrohttpd would call again at once (busy loop).
  return n == 0 ? MHD_CONTENT_READER_END_OF_STREAM : MHD_CONTENT_READER_END_WITH_ERROR;
}

void free_stream(void* cls) { delete static_cast<BodyStream*>(cls); }

MHD_Result queue(MHD_Connection* connection, Response response) {
  MHD_Response* r;
  if (response.stream) {
    BodyStream* stream = response.stream.release();
    r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024, &read_stream, stream, &free_stream);
    if (!r) delete stream;
  } else {
    r = MHD_create_response_from_buffer(response.body.size(), response.body.data(), MHD_RESPMEM_MUST_COPY);
  }
  if (!r) return MHD_NO;  // out of memory: libmicrohttpd closes the connection
  for (const auto& [name, value] : response.headers) MHD_add_response_header(r, name.c_str(), value.c_str());
  const MHD_Result result = MHD_queue_response(connection, static_cast<unsigned>(response.status), r);
  MHD_destroy_response(r);
  return result;
}

}  // namespace

// The bridge from libmicrohttpd's C callback to Server (a friend).
struct ServerAccess {
  // A new connection: remembered as this server's (the certificate callback finds it that way), and on TLS
  // its session told the client-certificate policy before the handshake starts.
  static void on_connection(void* self, MHD_Connection* connection, void** socket_context,
                            MHD_ConnectionNotificationCode code) {
    if (code != MHD_CONNECTION_NOTIFY_STARTED) return;
    auto* server = static_cast<Server*>(self);
    *socket_context = server;
    if (!server->options_.tls) return;
    const MHD_ConnectionInfo* info = MHD_get_connection_info(connection, MHD_CONNECTION_INFO_GNUTLS_SESSION);
    if (info && info->tls_session)
      server->options_.tls->prepare_session(static_cast<gnutls_session_t>(info->tls_session), &verify_client);
  }
  static Server* server_of(gnutls_session_t session) {
    auto* connection = static_cast<MHD_Connection*>(gnutls_session_get_ptr(session));
    const MHD_ConnectionInfo* info =
        connection ? MHD_get_connection_info(connection, MHD_CONNECTION_INFO_SOCKET_CONTEXT) : nullptr;
    return info ? static_cast<Server*>(info->socket_context) : nullptr;
  }
  // GnuTLS asks whether the client's certificate will do (client_auth_type VerifyClientCertIfGiven and
  // RequireAndVerifyClientCert): the client CA bundle in force decides (it may have been reloaded).
  static int verify_client(gnutls_session_t session) {
    Server* server = server_of(session);
    if (!server || !server->options_.tls) return -1;
    return server->options_.tls->verify_client(session);
  }
  // GnuTLS asks for the certificate to present (at every handshake, so that a renewed one is served).
  static int retrieve_certificate(gnutls_session_t session, const gnutls_datum_t*, int,
                                  const gnutls_pk_algorithm_t*, int, gnutls_pcert_st** pcert,
                                  unsigned int* pcert_length, gnutls_privkey_t* key) {
    Server* server = server_of(session);
    if (!server || !server->options_.tls) return -1;
    return server->options_.tls->retrieve(pcert, pcert_length, key);
  }
  static MHD_Result on_request(void* self, MHD_Connection* connection, const char* url, const char* method,
                               const char* version, const char* upload, size_t* upload_size, void** state) {
    return static_cast<Server*>(self)->serve(connection, url, method, version, upload, upload_size, state)
               ? MHD_YES
               : MHD_NO;
  }
  // The request is over (answered, failed or the connection closed): its state goes.
  static void on_completed(void* self, MHD_Connection*, void** state, MHD_RequestTerminationCode) {
    if (state && *state) static_cast<Server*>(self)->forget(static_cast<Server::RequestState*>(*state));
    if (state) *state = nullptr;
  }
};

// An asynchronous request's answer, shared by its Responders, the server (to resume or abandon it) and the
// connection's state.
struct PendingResponse {
  std::mutex mutex;
  MHD_Connection* connection = nullptr;
  bool suspended = false;  // the connection waits in libmicrohttpd for resume
  bool closed = false;     // the server stopped or the request ended: nothing more to do
  bool answered = false;   // respond() was called (once counts)
  std::optional<Response> response;

  void deliver(Response r) {
    const std::lock_guard lock(mutex);
    if (answered || closed) return;
    answered = true;
    response = std::move(r);
    if (suspended) {
      suspended = false;
      MHD_resume_connection(connection);
    }
  }
};

// The last copy of a Responder: an unanswered request gets a 500 rather than hang until the server stops.
struct Responder::Guard {
  std::shared_ptr<PendingResponse> pending;
  ~Guard() {
    if (pending) pending->deliver(Response::text(500, "Internal Server Error: the request was dropped\n"));
  }
};

Responder::Responder(std::shared_ptr<PendingResponse> pending) : guard_(std::make_shared<Guard>()) {
  guard_->pending = std::move(pending);  // set in place: a temporary Guard would answer 500 as it dies
}

void Responder::respond(Response response) const { guard_->pending->deliver(std::move(response)); }

// One request's state across libmicrohttpd's calls (headers, body pieces, end, resume).
struct Server::RequestState {
  const Route* route = nullptr;
  std::string body;
  bool too_large = false;
  bool dispatched = false;
  std::shared_ptr<PendingResponse> pending;  // asynchronous routes
  // The password check under way (authenticate_async): its answer is a Response, status 0 meaning "let in".
  std::shared_ptr<PendingResponse> auth;
};

std::optional<std::string_view> Request::header(const char* name) const {
  const char* value = MHD_lookup_connection_value(connection_, MHD_HEADER_KIND, name);
  if (!value) return std::nullopt;
  return std::string_view(value);
}

namespace {
MHD_Result collect_argument(void* cls, MHD_ValueKind, const char* key, size_t key_size, const char* value,
                            size_t value_size) {
  auto* out = static_cast<std::vector<std::pair<std::string, std::string>>*>(cls);
  out->emplace_back(std::string(key ? key : "", key ? key_size : 0),
                    std::string(value ? value : "", value ? value_size : 0));
  return MHD_YES;
}
}  // namespace

std::vector<std::pair<std::string, std::string>> Request::query_args() const {
  std::vector<std::pair<std::string, std::string>> out;
  if (connection_) MHD_get_connection_values_n(connection_, MHD_GET_ARGUMENT_KIND, &collect_argument, &out);
  return out;
}

std::optional<std::string_view> Request::query(const char* name) const {
  if (!connection_) return std::nullopt;
  // Through the length-aware lookup, so that "?a" (no value) reads as "" and not as absent.
  const char* value = nullptr;
  size_t size = 0;
  if (MHD_lookup_connection_value_n(connection_, MHD_GET_ARGUMENT_KIND, name, std::strlen(name), &value,
                                    &size) != MHD_YES)
    return std::nullopt;
  return value ? std::string_view(value, size) : std::string_view();
}

std::string Request::peer() const {
  const MHD_ConnectionInfo* info =
      connection_ ? MHD_get_connection_info(connection_, MHD_CONNECTION_INFO_CLIENT_ADDRESS) : nullptr;
  if (!info || !info->client_addr) return "";
  char text[INET6_ADDRSTRLEN] = "";
  const sockaddr* a = info->client_addr;
  if (a->sa_family == AF_INET)
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(a)->sin_addr, text, sizeof text);
  else if (a->sa_family == AF_INET6)
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(a)->sin6_addr, text, sizeof text);
  return text;
}

Response Response::text(int status, std::string body) {
  Response r;
  r.status = status;
  r.headers.emplace_back("Content-Type", "text/plain; charset=utf-8");
  r.body = std::move(body);
  return r;
}

bool accepts_encoding(std::optional<std::string_view> header, std::string_view coding) {
  if (!header) return false;
  std::string_view rest(*header);
  while (!rest.empty()) {
    const size_t comma = rest.find(',');
    std::string_view item = rest.substr(0, comma);
    rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
    while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
    const size_t semi = item.find(';');
    std::string_view name = item.substr(0, semi);
    while (!name.empty() && name.back() == ' ') name.remove_suffix(1);
    if (!iequals(name, coding)) continue;
    if (semi == std::string_view::npos) return true;
    std::string_view params = item.substr(semi + 1);
    const size_t q = params.find("q=");
    if (q == std::string_view::npos) return true;
    const std::string_view qv = params.substr(q + 2);
    return !(qv.rfind("0", 0) == 0 && qv.find_first_of("123456789") == std::string_view::npos);
  }
  return false;
}

std::optional<std::string> base64_decode(std::string_view in) {
  while (!in.empty() && in.back() == '=') in.remove_suffix(1);
  std::string out;
  out.reserve(in.size() * 3 / 4);
  uint32_t acc = 0;
  int bits = 0;
  for (char ch : in) {
    int v;
    if (ch >= 'A' && ch <= 'Z') {
      v = ch - 'A';
    } else if (ch >= 'a' && ch <= 'z') {
      v = ch - 'a' + 26;
    } else if (ch >= '0' && ch <= '9') {
      v = ch - '0' + 52;
    } else if (ch == '+') {
      v = 62;
    } else if (ch == '/') {
      v = 63;
    } else {
      return std::nullopt;
    }
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xFF));
    }
  }
  if (bits >= 6) return std::nullopt;  // a lone trailing character cannot encode a byte
  return out;
}

std::optional<ListenAddress> parse_listen_address(std::string_view address, int port) {
  if (port < 0 || port > 65535) return std::nullopt;
  if (address.size() >= 2 && address.front() == '[' && address.back() == ']') {
    address = address.substr(1, address.size() - 2);
    if (address.find(':') == std::string_view::npos) return std::nullopt;  // brackets are for IPv6 only
  }
  if (address.size() > INET6_ADDRSTRLEN) return std::nullopt;
  const std::string text = address.empty() ? "0.0.0.0" : std::string(address);
  const std::optional<IpAddress> ip = IpAddress::parse(text);
  if (!ip) return std::nullopt;
  ListenAddress out;
  sockaddr_storage ss;
  const socklen_t len = to_sockaddr(*ip, static_cast<uint16_t>(port), ss);
  out.family = ip->af == AddressFamily::kV4 ? AF_INET : AF_INET6;
  out.sockaddr.assign(reinterpret_cast<unsigned char*>(&ss), reinterpret_cast<unsigned char*>(&ss) + len);
  out.text =
      ip->af == AddressFamily::kV4 ? fmt::format("{}:{}", text, port) : fmt::format("[{}]:{}", text, port);
  return out;
}

std::optional<HostPort> parse_host_port(std::string_view text) {
  const size_t colon = text.rfind(':');
  if (colon == std::string_view::npos) return std::nullopt;
  std::string_view host = text.substr(0, colon);
  const std::string_view port_text = text.substr(colon + 1);
  if (port_text.empty() || port_text.size() > 5 ||
      port_text.find_first_not_of("0123456789") != std::string_view::npos)
    return std::nullopt;
  const int port = std::atoi(std::string(port_text).c_str());
  if (port > 65535) return std::nullopt;
  if (!host.empty() && host.front() == '[') {
    if (host.size() < 2 || host.back() != ']') return std::nullopt;
  } else if (host.find(':') != std::string_view::npos) {
    return std::nullopt;  // an IPv6 address needs its brackets here
  }
  if (host.empty()) host = "::";
  if (!parse_listen_address(host, port)) return std::nullopt;
  return HostPort{std::string(host), port};
}

unsigned long raise_nofile_limit() {
  static std::mutex mutex;
  const std::lock_guard lock(mutex);
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return 1024;
  if (limit.rlim_cur < limit.rlim_max) {
    rlimit raised = limit;
    raised.rlim_cur = limit.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &raised) == 0) limit = raised;
  }
  return limit.rlim_cur == RLIM_INFINITY ? 1UL << 20 : static_cast<unsigned long>(limit.rlim_cur);
}

Server::Server(Options options, std::map<std::string, Route> routes)
    : options_(std::move(options)), routes_(std::move(routes)) {}

Server::~Server() {
  {
    // libmicrohttpd refuses to stop with suspended connections: resume each one (it then answers 503 or
    // closes), and make every late Responder a no-op.
    const std::lock_guard lock(pending_mutex_);
    for (const auto& pending : pending_) {
      const std::lock_guard p(pending->mutex);
      pending->closed = true;
      if (pending->suspended) {
        pending->suspended = false;
        MHD_resume_connection(pending->connection);
      }
    }
  }
  // Joins libmicrohttpd's threads and closes every connection (and the listening socket).
  if (daemon_) MHD_stop_daemon(daemon_);
}

Result<std::unique_ptr<Server>> Server::start(Options options, std::map<std::string, Route> routes) {
  if (options.external_loop) {
    std::unique_ptr<Server> server(new Server(std::move(options), std::move(routes)));
    const Limits& l = server->options_.limits;
    server->daemon_ = MHD_start_daemon(
        MHD_USE_NO_LISTEN_SOCKET | MHD_ALLOW_SUSPEND_RESUME, 0, nullptr, nullptr, &ServerAccess::on_request,
        server.get(), MHD_OPTION_NOTIFY_COMPLETED, &ServerAccess::on_completed, server.get(),
        MHD_OPTION_CONNECTION_LIMIT, l.connections, MHD_OPTION_PER_IP_CONNECTION_LIMIT, l.connections_per_ip,
        MHD_OPTION_CONNECTION_TIMEOUT, l.idle_timeout_s, MHD_OPTION_CONNECTION_MEMORY_LIMIT, l.request_memory,
        MHD_OPTION_STRICT_FOR_CLIENT, 1, MHD_OPTION_END);
    if (!server->daemon_) return Error{"libmicrohttpd failed to start"};
    return server;
  }
  const std::optional<ListenAddress> listen = parse_listen_address(options.address, options.port);
  if (!listen) {
    if (options.port < 0 || options.port > 65535)
      return Error{fmt::format("port {} is out of range 0-65535", options.port)};
    return Error{fmt::format("cannot listen on '{}': not an IPv4 or IPv6 address", options.address)};
  }
  // Connections cost file descriptors only: allow as many as the process may open, less a reserve.
  const unsigned long nofile = raise_nofile_limit();
  Limits& limits = options.limits;
  const unsigned long usable = nofile > 2 * kReservedFds ? nofile - kReservedFds : nofile / 2;
  limits.connections = static_cast<unsigned>(std::min<unsigned long>(limits.connections, usable));
  limits.connections = std::max(limits.connections, 1U);
  limits.threads = std::clamp(limits.threads, 1U, 16U);

  int fd = socket(listen->family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0 && errno == EAFNOSUPPORT && options.address == "::") {
    // "::" (every address) on a host without IPv6: every IPv4 address.
    options.address = "0.0.0.0";
    return start(std::move(options), std::move(routes));
  }
  if (fd < 0) return Error{fmt::format("cannot listen on {}: {}", listen->text, std::strerror(errno))};
  const int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (listen->family == AF_INET6) {
    // "::" serves IPv4 too (as Go's exporters do); any other IPv6 address serves exactly itself.
    const auto* v6 = reinterpret_cast<const sockaddr_in6*>(listen->sockaddr.data());
    const int v6only = IN6_IS_ADDR_UNSPECIFIED(&v6->sin6_addr) ? 0 : 1;
    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof v6only);
  }
  if (bind(fd, reinterpret_cast<const sockaddr*>(listen->sockaddr.data()),
           static_cast<socklen_t>(listen->sockaddr.size())) != 0 ||
      ::listen(fd, SOMAXCONN) != 0) {
    const int err = errno;
    close(fd);
    return Error{fmt::format("cannot listen on {}: {}", listen->text, std::strerror(err))};
  }
  sockaddr_storage bound{};
  socklen_t bound_size = sizeof bound;
  int port = options.port;
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &bound_size) == 0) {
    port = ntohs(bound.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                                             : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  }

  std::unique_ptr<Server> server(new Server(std::move(options), std::move(routes)));
  server->port_ = port;
  const Limits& l = server->options_.limits;
  std::vector<MHD_OptionItem> items{
      {MHD_OPTION_LISTEN_SOCKET, fd, nullptr},
      {MHD_OPTION_THREAD_POOL_SIZE, l.threads, nullptr},
      {MHD_OPTION_CONNECTION_LIMIT, l.connections, nullptr},
      {MHD_OPTION_PER_IP_CONNECTION_LIMIT, l.connections_per_ip, nullptr},
      {MHD_OPTION_CONNECTION_TIMEOUT, l.idle_timeout_s, nullptr},
      {MHD_OPTION_CONNECTION_MEMORY_LIMIT, static_cast<intptr_t>(l.request_memory), nullptr},
      {MHD_OPTION_STRICT_FOR_CLIENT, 1, nullptr},
      {MHD_OPTION_NOTIFY_CONNECTION, reinterpret_cast<intptr_t>(&ServerAccess::on_connection), server.get()},
      {MHD_OPTION_NOTIFY_COMPLETED, reinterpret_cast<intptr_t>(&ServerAccess::on_completed), server.get()},
  };
  unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME;
  if (const auto& tls = server->options_.tls) {
    flags |= MHD_USE_TLS;
    items.push_back(
        {MHD_OPTION_HTTPS_CERT_CALLBACK, 0, reinterpret_cast<void*>(&ServerAccess::retrieve_certificate)});
    items.push_back({MHD_OPTION_HTTPS_PRIORITIES, 0, const_cast<char*>(tls->start_priorities().c_str())});
    // The client CA bundle is the trust list that client certificates are verified against.
    if (!tls->client_ca_pem().empty())
      items.push_back({MHD_OPTION_HTTPS_MEM_TRUST, 0, const_cast<char*>(tls->client_ca_pem().c_str())});
  }
  items.push_back({MHD_OPTION_END, 0, nullptr});
  // No MHD_USE_ERROR_LOG: libmicrohttpd stays quiet; start-up errors come back in the Result.
  server->daemon_ = MHD_start_daemon(flags, 0, nullptr, nullptr, &ServerAccess::on_request, server.get(),
                                     MHD_OPTION_ARRAY, items.data(), MHD_OPTION_END);
  if (!server->daemon_) {
    close(fd);
    return Error{fmt::format("cannot listen on {}: libmicrohttpd failed to start", listen->text)};
  }
  return server;
}

bool Server::add_connection(int fd) {
  sockaddr_in client{};
  client.sin_family = AF_INET;
  client.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (!options_.external_loop ||
      MHD_add_connection(daemon_, fd, reinterpret_cast<const sockaddr*>(&client), sizeof client) != MHD_YES) {
    close(fd);
    return false;
  }
  return true;
}

void Server::run() {
  if (options_.external_loop) MHD_run(daemon_);
}

// (user, password) of an Authorization: Basic header; nullopt when there is none or it does not decode.
static std::optional<std::pair<std::string, std::string>> basic_credentials(const Request& request) {
  const std::optional<std::string_view> header = request.header(MHD_HTTP_HEADER_AUTHORIZATION);
  if (!header) return std::nullopt;
  std::string_view value = *header;
  while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
  const size_t space = value.find(' ');
  if (space == std::string_view::npos || !iequals(value.substr(0, space), "Basic")) return std::nullopt;
  value.remove_prefix(space);
  while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
  while (!value.empty() && value.back() == ' ') value.remove_suffix(1);
  const std::optional<std::string> decoded = base64_decode(value);
  if (!decoded) return std::nullopt;
  const size_t colon = decoded->find(':');
  if (colon == std::string::npos) return std::nullopt;
  return std::make_pair(decoded->substr(0, colon), decoded->substr(colon + 1));
}

AuthVerdict Server::authorized(const Request& request) const {
  const auto credentials = basic_credentials(request);
  if (!credentials) return AuthVerdict::kDeny;
  const std::string_view user = credentials->first;
  const std::string_view password = credentials->second;
  if (options_.authenticate) return options_.authenticate(user, password);
  // Both comparisons always run (bitwise &), so timing does not tell which of the two was wrong.
  const bool user_ok = constant_time_equal(user, options_.auth->user);
  const bool password_ok = constant_time_equal(password, options_.auth->password);
  return (user_ok & password_ok) ? AuthVerdict::kAllow : AuthVerdict::kDeny;
}

const Route* Server::find_route(std::string_view path) const {
  if (const auto exact = routes_.find(std::string(path)); exact != routes_.end()) return &exact->second;
  const Route* best = nullptr;
  size_t best_size = 0;
  for (const auto& [key, route] : routes_) {
    if (!route.prefix || path.size() <= key.size() + 1 || path.compare(0, key.size(), key) != 0 ||
        path[key.size()] != '/' || key.size() < best_size)
      continue;
    best = &route;
    best_size = key.size();
  }
  return best;
}

std::optional<Response> Server::refusal(const Request& request, const Route* route) const {
  if (!route) return Response::text(404, "Not Found\n");
  if (std::find(route->methods.begin(), route->methods.end(), request.method) == route->methods.end()) {
    Response response = Response::text(405, "Method Not Allowed\n");
    std::string allow;
    for (const auto& m : route->methods) allow += (allow.empty() ? "" : ", ") + m;
    response.headers.emplace_back("Allow", allow);
    return response;
  }
  const auto length = request.header(MHD_HTTP_HEADER_CONTENT_LENGTH);
  if (request.header(MHD_HTTP_HEADER_TRANSFER_ENCODING)) {
    // A body of unannounced length cannot be bounded before it is read.
    if (route->body_limit() == 0) return Response::text(413, "Request bodies are not accepted\n");
    return Response::text(411, "A request body needs a Content-Length\n");
  }
  if (length && *length != "0") {
    const size_t limit = route->body_limit();
    if (limit == 0) return Response::text(413, "Request bodies are not accepted\n");
    const bool digits = !length->empty() && length->size() <= 19 &&
                        length->find_first_not_of("0123456789") == std::string_view::npos;
    if (!digits || std::strtoull(std::string(*length).c_str(), nullptr, 10) > limit)
      return Response::text(413, fmt::format("Request body too large: at most {} bytes\n", limit));
  }
  if (!route->server_auth || !auth_on() || options_.authenticate_async) return std::nullopt;
  const AuthVerdict verdict = authorized(request);
  if (verdict == AuthVerdict::kBusy) {
    Response response = Response::text(429, "Too many password checks at once: retry\n");
    response.headers.emplace_back("Retry-After", "1");
    return response;
  }
  if (verdict == AuthVerdict::kDeny) {
    Response response = Response::text(401, kUnauthorizedBody);
    response.headers.emplace_back("WWW-Authenticate", kAuthenticate);
    return response;
  }
  return std::nullopt;
}

bool Server::serve(MHD_Connection* connection, const char* url, const char* method, const char* version,
                   const char* upload, size_t* upload_size, void** state_slot) {
  const Request request(connection, method ? method : "", url ? url : "", version ? version : "");
  const bool head = request.method == "HEAD";
  auto* state = static_cast<RequestState*>(*state_slot);
  if (!state) {
    // The headers are in: refuse now (before any body is read), or keep a state for what follows.
    const Route* route = find_route(request.path);
    if (std::optional<Response> refused = refusal(request, route))
      return finish(connection, head, std::move(*refused));
    auto fresh = std::make_unique<RequestState>();
    fresh->route = route;
    state = fresh.release();
    *state_slot = state;  // freed by on_completed
    bool handled = false;
    if (route->server_auth && options_.authenticate_async && auth_on() &&
        begin_auth(connection, *state, request, &handled))
      return handled;
    const auto length = request.header(MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (length && *length != "0") return true;  // the body comes in the next calls
    return dispatch(connection, *state, request);
  }
  if (state->auth) {
    // Resumed: the password check is done (or the server is stopping).
    std::optional<Response> verdict;
    {
      const std::lock_guard lock(state->auth->mutex);
      verdict = std::move(state->auth->response);
      state->auth->response.reset();
      state->auth->closed = true;
    }
    {
      const std::lock_guard lock(pending_mutex_);
      pending_.erase(state->auth);
    }
    state->auth.reset();
    if (!verdict)
      return finish(connection, head, Response::text(503, "Service Unavailable: the server is stopping\n"));
    if (verdict->status != 0) return finish(connection, head, std::move(*verdict));
    if (!upload_size || *upload_size == 0) {
      const auto length = request.header(MHD_HTTP_HEADER_CONTENT_LENGTH);
      if (length && *length != "0") return true;  // let in: the body comes in the next calls
      return dispatch(connection, *state, request);
    }
    // A piece of the body already: handled below.
  }
  if (upload_size && *upload_size > 0) {
    // A piece of the body: libmicrohttpd stops at the announced length, which refusal() bounded.
    if (!state->dispatched) {
      if (state->body.size() + *upload_size > state->route->body_limit()) {
        state->too_large = true;
      } else {
        state->body.append(upload, *upload_size);
      }
    }
    *upload_size = 0;
    return true;
  }
  if (!state->dispatched) {
    if (state->too_large) return finish(connection, head, Response::text(413, "Request body too large\n"));
    Request with_body = request;
    with_body.body = state->body;
    return dispatch(connection, *state, with_body);
  }
  // Resumed: the asynchronous answer is in (or the server is stopping).
  std::optional<Response> response;
  if (state->pending) {
    const std::lock_guard lock(state->pending->mutex);
    response = std::move(state->pending->response);
    state->pending->response.reset();
  }
  if (!response) response = Response::text(503, "Service Unavailable: the server is stopping\n");
  return finish(connection, head, std::move(*response));
}

namespace {
Response unauthorized() {
  Response response = Response::text(401, kUnauthorizedBody);
  response.headers.emplace_back("WWW-Authenticate", kAuthenticate);
  return response;
}
Response busy() {
  Response response = Response::text(429, "Too many password checks at once: retry\n");
  response.headers.emplace_back("Retry-After", "1");
  return response;
}
}  // namespace

bool Server::begin_auth(MHD_Connection* connection, RequestState& state, const Request& request,
                        bool* handled) {
  const bool head = request.method == "HEAD";
  const std::optional<std::pair<std::string, std::string>> credentials = basic_credentials(request);
  if (!credentials) {
    *handled = finish(connection, head, unauthorized());
    return true;
  }
  auto pending = std::make_shared<PendingResponse>();
  pending->connection = connection;
  {
    const std::lock_guard lock(pending_mutex_);
    pending_.insert(pending);
  }
  std::optional<AuthVerdict> now;
  try {
    now =
        options_.authenticate_async(credentials->first, credentials->second, [pending](AuthVerdict verdict) {
          Response answer;
          answer.status = 0;  // let in
          if (verdict == AuthVerdict::kDeny) answer = unauthorized();
          if (verdict == AuthVerdict::kBusy) answer = busy();
          pending->deliver(std::move(answer));
        });
  } catch (...) {
    now = AuthVerdict::kBusy;  // allocation failure: try again later
  }
  auto drop = [&] {
    {
      const std::lock_guard lock(pending->mutex);
      pending->closed = true;
    }
    const std::lock_guard lock(pending_mutex_);
    pending_.erase(pending);
  };
  if (now) {
    drop();
    if (*now == AuthVerdict::kAllow) return false;
    *handled = finish(connection, head, *now == AuthVerdict::kBusy ? busy() : unauthorized());
    return true;
  }
  {
    const std::lock_guard lock(pending->mutex);
    if (!pending->response && !pending->closed) {
      // The check runs elsewhere: the connection waits without a thread; serve() goes on when resumed.
      state.auth = pending;
      MHD_suspend_connection(connection);
      pending->suspended = true;
      *handled = true;
      return true;
    }
  }
  // Answered during the call (or the server is stopping).
  std::optional<Response> verdict;
  {
    const std::lock_guard lock(pending->mutex);
    verdict = std::move(pending->response);
  }
  drop();
  if (!verdict) {
    *handled = finish(connection, head, Response::text(503, "Service Unavailable: the server is stopping\n"));
    return true;
  }
  if (verdict->status == 0) return false;
  *handled = finish(connection, head, std::move(*verdict));
  return true;
}

bool Server::dispatch(MHD_Connection* connection, RequestState& state, const Request& request) {
  state.dispatched = true;
  const bool head = request.method == "HEAD";
  const Route& route = *state.route;
  if (!route.async) {
    Response response;
    try {
      response = route.handler ? route.handler(request) : Response::text(404, "Not Found\n");
    } catch (...) {
      // Handlers only throw on allocation failure: answer 500 rather than let it cross into C.
      response = Response::text(500, "Internal Server Error\n");
    }
    return finish(connection, head, std::move(response));
  }
  auto pending = std::make_shared<PendingResponse>();
  pending->connection = connection;
  {
    const std::lock_guard lock(pending_mutex_);
    pending_.insert(pending);
  }
  state.pending = pending;
  try {
    route.async(request, Responder(pending));
  } catch (...) {
    pending->deliver(Response::text(500, "Internal Server Error\n"));
  }
  std::optional<Response> ready;
  {
    const std::lock_guard lock(pending->mutex);
    if (pending->response) {
      ready = std::move(pending->response);  // answered during the call: no suspension
      pending->response.reset();
    } else if (pending->closed) {
      ready = Response::text(503, "Service Unavailable: the server is stopping\n");
    } else {
      MHD_suspend_connection(connection);
      pending->suspended = true;
      return true;
    }
  }
  return finish(connection, head, std::move(*ready));
}

void Server::forget(RequestState* state) {
  if (state->auth) {
    {
      const std::lock_guard lock(state->auth->mutex);
      state->auth->closed = true;
    }
    const std::lock_guard lock(pending_mutex_);
    pending_.erase(state->auth);
  }
  if (state->pending) {
    {
      const std::lock_guard lock(state->pending->mutex);
      state->pending->closed = true;
    }
    const std::lock_guard lock(pending_mutex_);
    pending_.erase(state->pending);
  }
  delete state;
}

bool Server::finish(MHD_Connection* connection, bool head, Response response) const {
  if (head && response.stream) {
    // libmicrohttpd 0.9.75 sends the chunked terminator after the headers of a HEAD response of unknown
    // length, a body HEAD must not have: send no stream (the headers then say Content-Length: 0).
    response.stream.reset();
    response.body.clear();
  }
  if (options_.headers_now) {
    for (auto& header : options_.headers_now()) response.headers.push_back(std::move(header));
  } else {
    for (const auto& header : options_.headers) response.headers.push_back(header);
  }
  return queue(connection, std::move(response)) == MHD_YES;
}

}  // namespace http
}  // namespace netprobe
