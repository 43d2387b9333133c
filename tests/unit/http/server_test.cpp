// http::Server on loopback, ephemeral port: routing (404/405/413), HEAD, basic auth, streamed bodies, the
// connection limits (global, per address, idle timeout), the request size limit, IPv6 ::1, and the strict
// listen-address parser (issue 10 defect 9: no string reaches a listener spec).
#include "http/server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace netprobe::http {
namespace {

// A connected socket to [family loopback]:port, or -1. Receive/send timeouts bound every call.
int connect_loopback(int port, int family = AF_INET) {
  const int fd = ::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  timeval tv{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  int rc;
  if (family == AF_INET6) {
    sockaddr_in6 a{};
    a.sin6_family = AF_INET6;
    a.sin6_port = htons(static_cast<uint16_t>(port));
    a.sin6_addr = in6addr_loopback;
    rc = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  } else {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    rc = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  }
  if (rc != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// Everything the server sends until it closes the connection (bounded by the socket timeout).
std::string read_all(int fd) {
  std::string out;
  char buf[16384];
  for (int i = 0; i < 100000; ++i) {
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

// Sends `request` raw and returns the whole answer ("" if the connection failed).
std::string raw_exchange(int port, const std::string& request, int family = AF_INET) {
  const int fd = connect_loopback(port, family);
  if (fd < 0) return "";
  ::send(fd, request.data(), request.size(), MSG_NOSIGNAL);
  std::string out = read_all(fd);
  ::close(fd);
  return out;
}

int status_of(const std::string& response) {
  return response.size() > 12 && response.rfind("HTTP/1.", 0) == 0 ? std::atoi(response.c_str() + 9) : 0;
}

std::string body_of(const std::string& response) {
  const size_t end = response.find("\r\n\r\n");
  return end == std::string::npos ? "" : response.substr(end + 4);
}

std::string get(int port, const std::string& path, const std::string& headers = "",
                const std::string& method = "GET", const std::string& version = "HTTP/1.1") {
  return raw_exchange(
      port, method + " " + path + " " + version + "\r\nHost: t\r\nConnection: close\r\n" + headers + "\r\n");
}

// A streamed body of `count` pieces of "x" * 1000, then the end or (fail) an error.
class CountingStream : public BodyStream {
 public:
  CountingStream(int count, bool fail) : left_(count), fail_(fail) {}
  ssize_t read(char* buffer, size_t max) override {
    if (left_ == 0) return fail_ ? -1 : 0;
    --left_;
    const size_t n = std::min<size_t>(max, 1000);
    std::fill_n(buffer, n, 'x');
    return static_cast<ssize_t>(n);
  }

 private:
  int left_;
  bool fail_;
};

std::map<std::string, Route> routes() {
  return {
      {"/a", [](const Request& r) { return Response::text(200, "path " + std::string(r.path) + "\n"); }},
      {"/stream",
       [](const Request&) {
         Response r;
         r.headers.emplace_back("Content-Type", "text/plain");
         r.stream = std::make_unique<CountingStream>(5, false);
         return r;
       }},
      {"/broken",
       [](const Request&) {
         Response r;
         r.stream = std::make_unique<CountingStream>(2, true);
         return r;
       }},
      {"/throws", [](const Request&) -> Response { throw std::bad_alloc(); }},
  };
}

std::unique_ptr<Server> start(Options options) {
  auto server = Server::start(std::move(options), routes());
  EXPECT_TRUE(server.ok()) << (server.ok() ? "" : server.error().message);
  return server.ok() ? std::move(server).value() : nullptr;
}

Options loopback() {
  Options o;
  o.address = "127.0.0.1";
  return o;
}

TEST(http_Server, RoutesExactPaths) {
  auto server = start(loopback());
  ASSERT_TRUE(server);
  const int port = server->port();
  ASSERT_GT(port, 0);
  struct Case {
    std::string request_path, method;
    int status;
  };
  for (const Case& c : std::vector<Case>{{"/a", "GET", 200},
                                         {"/a?x=1", "GET", 200},
                                         {"/a/", "GET", 404},
                                         {"/ab", "GET", 404},
                                         {"/", "GET", 404},
                                         {"/a", "POST", 405},
                                         {"/a", "DELETE", 405},
                                         {"/nope", "POST", 404},
                                         {"/throws", "GET", 500}}) {
    const std::string r = get(port, c.request_path, "", c.method);
    EXPECT_EQ(status_of(r), c.status) << c.method << " " << c.request_path << "\n" << r;
  }
  EXPECT_EQ(body_of(get(port, "/a")), "path /a\n");
  EXPECT_NE(get(port, "/a", "", "POST").find("\r\nAllow: GET, HEAD\r\n"), std::string::npos);
  // A request body is refused before the handler runs.
  EXPECT_EQ(status_of(get(port, "/a", "Content-Length: 3\r\n", "GET")), 413);
}

TEST(http_Server, HeadSendsNoBody) {
  auto server = start(loopback());
  ASSERT_TRUE(server);
  const std::string r = get(server->port(), "/a", "", "HEAD");
  EXPECT_EQ(status_of(r), 200) << r;
  EXPECT_EQ(body_of(r), "") << r;
  const std::string s = get(server->port(), "/stream", "", "HEAD");
  EXPECT_EQ(status_of(s), 200) << s;
  EXPECT_EQ(body_of(s), "") << s;
  EXPECT_EQ(s.find("Transfer-Encoding"), std::string::npos) << s;
}

TEST(http_Server, StreamsChunkedOrUntilClose) {
  auto server = start(loopback());
  ASSERT_TRUE(server);
  const std::string chunked = get(server->port(), "/stream");
  EXPECT_NE(chunked.find("Transfer-Encoding: chunked"), std::string::npos) << chunked;
  EXPECT_EQ(chunked.substr(chunked.size() - 5), "0\r\n\r\n");
  const std::string http10 = get(server->port(), "/stream", "", "GET", "HTTP/1.0");
  EXPECT_EQ(body_of(http10), std::string(5000, 'x'));
  // A stream that fails: the connection closes without the chunked terminator.
  const std::string broken = get(server->port(), "/broken");
  EXPECT_EQ(status_of(broken), 200);
  EXPECT_EQ(broken.find("0\r\n\r\n"), std::string::npos) << broken;
}

TEST(http_Server, BasicAuth) {
  Options o = loopback();
  o.auth = BasicAuth{"prom", "s3cret"};
  auto server = start(std::move(o));
  ASSERT_TRUE(server);
  const int port = server->port();
  const std::string none = get(port, "/a");
  EXPECT_EQ(status_of(none), 401);
  EXPECT_NE(none.find("WWW-Authenticate: Basic realm="), std::string::npos) << none;
  EXPECT_EQ(status_of(get(port, "/a", "Authorization: Basic cHJvbTpzM2NyZXQ=\r\n")), 200);
  EXPECT_EQ(status_of(get(port, "/a", "Authorization: Basic cHJvbTp3cm9uZw==\r\n")), 401);
  EXPECT_EQ(status_of(get(port, "/a", "Authorization: Basic cHJvbTpzM2NyZXQ=\r\n", "HEAD")), 200);
  EXPECT_EQ(status_of(get(port, "/x", "Authorization: Basic cHJvbTpzM2NyZXQ=\r\n")), 404);
  EXPECT_EQ(status_of(get(port, "/x")), 404);  // 404 first: auth protects routes only
}

// True when the server closed `fd` (EOF or reset) within the socket timeout.
bool closed_by_server(int fd) {
  char c;
  const ssize_t n = ::recv(fd, &c, 1, 0);
  return n == 0 || (n < 0 && errno == ECONNRESET);
}

TEST(http_Server, PerAddressLimit) {
  Options o = loopback();
  o.limits.connections_per_ip = 3;
  auto server = start(std::move(o));
  ASSERT_TRUE(server);
  std::vector<int> held;
  for (int i = 0; i < 3; ++i) held.push_back(connect_loopback(server->port()));
  for (int fd : held) ASSERT_GE(fd, 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // let the server accept them
  // The fourth from the same address is accepted by the kernel and closed by the server at once.
  const std::string refused = get(server->port(), "/a");
  EXPECT_EQ(refused, "");
  ::close(held.back());
  held.pop_back();
  // Once one goes, a request goes through (bounded retries: the server notices the close asynchronously).
  int status = 0;
  for (int i = 0; i < 50 && status != 200; ++i) {
    status = status_of(get(server->port(), "/a"));
    if (status != 200) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(status, 200);
  for (int fd : held) ::close(fd);
}

TEST(http_Server, GlobalLimit) {
  Options o = loopback();
  o.limits.connections = 2;
  o.limits.threads = 1;  // libmicrohttpd splits the limit between its threads
  auto server = start(std::move(o));
  ASSERT_TRUE(server);
  EXPECT_EQ(server->limits().connections, 2u);
  const int a = connect_loopback(server->port()), b = connect_loopback(server->port());
  ASSERT_GE(a, 0);
  ASSERT_GE(b, 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_EQ(get(server->port(), "/a"), "");
  ::close(a);
  ::close(b);
}

TEST(http_Server, IdleConnectionsAreClosed) {
  Options o = loopback();
  o.limits.idle_timeout_s = 1;
  auto server = start(std::move(o));
  ASSERT_TRUE(server);
  const int fd = connect_loopback(server->port());  // 5 s receive timeout
  ASSERT_GE(fd, 0);
  ::send(fd, "GET /a HT", 9, MSG_NOSIGNAL);  // a request that never ends
  EXPECT_TRUE(closed_by_server(fd));
  ::close(fd);
}

TEST(http_Server, OversizedRequestsAreRefused) {
  Options o = loopback();
  o.limits.request_memory = 4096;
  auto server = start(std::move(o));
  ASSERT_TRUE(server);
  const std::string big_header = get(server->port(), "/a", "X-Big: " + std::string(8000, 'a') + "\r\n");
  EXPECT_EQ(status_of(big_header), 431) << big_header.substr(0, 200);
  const std::string big_path = get(server->port(), "/" + std::string(8000, 'a'));
  EXPECT_EQ(status_of(big_path), 414) << big_path.substr(0, 200);
  std::string many;
  for (int i = 0; i < 2000; ++i) many += "X-H" + std::to_string(i) + ": v\r\n";
  EXPECT_GE(status_of(get(server->port(), "/a", many)), 400);
  EXPECT_EQ(status_of(get(server->port(), "/a")), 200);  // and the server is fine
}

TEST(http_Server, MalformedRequestsAreRefused) {
  auto server = start(loopback());
  ASSERT_TRUE(server);
  for (const std::string& raw : std::vector<std::string>{
           "GARBAGE\r\n\r\n", "GET\r\n\r\n", "GET /a HTTP/9.9\r\nHost: t\r\n\r\n",
           "GET /a HTTP/1.1\r\n\r\n" /* no Host */, std::string("GET /a\0 HTTP/1.1\r\n\r\n", 21)}) {
    const std::string r = raw_exchange(server->port(), raw);
    EXPECT_NE(status_of(r), 200) << raw;
  }
  EXPECT_EQ(status_of(get(server->port(), "/a")), 200);
}

TEST(http_Server, ServesIpv6Loopback) {
  const int probe = ::socket(AF_INET6, SOCK_STREAM, 0);
  if (probe < 0) GTEST_SKIP() << "no IPv6";
  ::close(probe);
  for (const char* address : {"::1", "[::1]"}) {
    Options o;
    o.address = address;
    auto server = Server::start(std::move(o), routes());
    if (!server.ok() && server.error().message.find("Cannot assign") != std::string::npos)
      GTEST_SKIP() << "::1 not configured: " << server.error().message;
    ASSERT_TRUE(server.ok()) << server.error().message;
    const int port = (*server)->port();
    EXPECT_EQ(
        status_of(raw_exchange(port, "GET /a HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", AF_INET6)),
        200)
        << address;
    EXPECT_EQ(connect_loopback(port, AF_INET), -1) << "only ::1 was asked for";
  }
}

TEST(http_Server, StartErrorsNameTheAddress) {
  auto first = start(loopback());
  ASSERT_TRUE(first);
  Options same = loopback();
  same.port = first->port();
  auto second = Server::start(std::move(same), routes());
  ASSERT_FALSE(second.ok());
  EXPECT_NE(second.error().message.find(std::to_string(first->port())), std::string::npos);
  Options foreign;
  foreign.address = "192.0.2.1";  // not a local address
  EXPECT_FALSE(Server::start(std::move(foreign), routes()).ok());
  Options name;
  name.address = "localhost";
  auto by_name = Server::start(std::move(name), routes());
  ASSERT_FALSE(by_name.ok());
  EXPECT_NE(by_name.error().message.find("not an IPv4 or IPv6 address"), std::string::npos);
}

// Routes of the other kinds: methods, bodies, prefixes, query parameters, their own authentication, and
// asynchronous answers (given during the call, later from another thread, never, or after the server stops).
struct AsyncRoutes {
  std::mutex mutex;
  std::vector<Responder> parked;  // /later's requests, answered by the test
  std::map<std::string, Route> routes() {
    std::map<std::string, Route> r;
    Route echo = [](const Request& request) {
      std::string text = std::string(request.method) + " " + std::string(request.path) + " [" +
                         std::string(request.body) + "]";
      for (const auto& [k, v] : request.query_args()) text += " " + k + "=" + v;
      if (const auto q = request.query("q")) text += " q:" + std::string(*q);
      text += " peer:" + request.peer();
      return Response::text(200, text);
    };
    echo.methods = {"GET", "POST", "DELETE"};
    echo.max_body = 16;
    echo.prefix = true;
    echo.server_auth = false;  // the handler would authenticate
    r["/api"] = std::move(echo);
    r["/now"] = [](const Request&, Responder responder) { responder.respond(Response::text(200, "now")); };
    r["/later"] = [this](const Request&, Responder responder) {
      const std::lock_guard lock(mutex);
      parked.push_back(std::move(responder));
    };
    r["/dropped"] = [](const Request&, Responder) {};
    r["/guarded"] = [](const Request&) { return Response::text(200, "metrics"); };
    return r;
  }
  size_t parked_count() {
    const std::lock_guard lock(mutex);
    return parked.size();
  }
};

TEST(http_Server, MethodsBodiesPrefixesQueries) {
  AsyncRoutes a;
  Options o = loopback();
  o.auth = BasicAuth{"prom", "s3cret"};
  auto started = Server::start(std::move(o), a.routes());
  ASSERT_TRUE(started.ok());
  const int port = started.value()->port();
  const std::string post = "Content-Type: application/json\r\n";
  struct Case {
    std::string method, path, headers, body;
    int status;
    std::string expect;  // in the answer
  };
  for (const Case& c : std::vector<Case>{
           {"POST", "/api", "Content-Length: 5\r\n", "hello", 200, "POST /api [hello] peer:127.0.0.1"},
           {"DELETE", "/api/tests/abc", "", "", 200, "DELETE /api/tests/abc []"},
           {"GET", "/api/x?target=a%20b&module=m&target=c", "", "", 200, " target=a b module=m target=c"},
           {"GET", "/api?q", "", "", 200, " q= q:"},
           {"GET", "/api?q=1&q=2", "", "", 200, " q:1"},
           {"PUT", "/api", "", "", 405, "Allow: GET, POST, DELETE"},
           {"POST", "/api", "Content-Length: 17\r\n", std::string(17, 'x'), 413, "at most 16 bytes"},
           {"POST", "/api", "Content-Length: 99999999999999999999\r\n", "", 413, ""},
           {"POST", "/api", "Content-Length: -1\r\n", "", 400, ""},
           {"POST", "/api", "Transfer-Encoding: chunked\r\n", "3\r\nabc\r\n0\r\n\r\n", 411, ""},
           {"POST", "/guarded", "Content-Length: 1\r\n", "x", 405, ""},
           {"GET", "/guarded", "Content-Length: 1\r\n", "x", 413, ""},  // a refused body before auth
           {"GET", "/guarded", "", "", 401, ""},
           {"GET", "/apix", "", "", 404, ""},
           {"GET", "/api/", "", "", 404, ""},
       }) {
    const std::string r =
        raw_exchange(port, c.method + " " + c.path + " HTTP/1.1\r\nHost: t\r\n" + "Connection: close\r\n" +
                               post + c.headers + "\r\n" + c.body);
    EXPECT_EQ(status_of(r), c.status) << c.method << " " << c.path << "\n" << r;
    EXPECT_NE(r.find(c.expect), std::string::npos) << c.method << " " << c.path << "\n" << r;
  }
  // The server's basic auth still guards the routes that use it, and only those.
  EXPECT_EQ(status_of(get(port, "/guarded", "Authorization: Basic cHJvbTpzM2NyZXQ=\r\n")), 200);
  EXPECT_EQ(status_of(get(port, "/api")), 200);
}

TEST(http_Server, AsynchronousAnswers) {
  AsyncRoutes a;
  auto started = Server::start(loopback(), a.routes());
  ASSERT_TRUE(started.ok());
  auto server = std::move(started).value();
  const int port = server->port();
  EXPECT_EQ(body_of(get(port, "/now")), "now");
  // Never answered: the dropped Responder answers 500.
  EXPECT_EQ(status_of(get(port, "/dropped")), 500);
  // Answered later from another thread, while other requests are served: a suspended request holds no thread.
  constexpr int kParked = 8;
  std::vector<std::thread> clients;
  std::vector<std::string> answers(kParked);
  for (int i = 0; i < kParked; ++i) clients.emplace_back([&, i] { answers[i] = get(port, "/later"); });
  for (int i = 0; i < 500 && a.parked_count() < kParked; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  ASSERT_EQ(a.parked_count(), static_cast<size_t>(kParked));
  EXPECT_EQ(body_of(get(port, "/now")), "now");  // both epoll threads are free
  std::thread answering([&] {
    for (int i = 0; i < kParked; ++i) {
      a.parked[i].respond(Response::text(200, "later " + std::to_string(i)));
      a.parked[i].respond(Response::text(500, "twice"));  // ignored
    }
  });
  answering.join();
  for (auto& t : clients) t.join();
  // Each client got exactly one of the answers (in the order its request was parked, not started).
  std::set<std::string> bodies;
  for (const auto& answer : answers) bodies.insert(body_of(answer));
  std::set<std::string> expected;
  for (int i = 0; i < kParked; ++i) expected.insert("later " + std::to_string(i));
  EXPECT_EQ(bodies, expected);
  a.parked.clear();
  // A request still waiting when the server stops: the client is let go, and a late answer is harmless.
  std::string last;
  std::thread waiting([&] { last = get(port, "/later"); });
  for (int i = 0; i < 500 && a.parked_count() < 1; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  ASSERT_EQ(a.parked_count(), 1U);
  server.reset();
  waiting.join();
  EXPECT_NE(status_of(last), 200) << last;
  a.parked[0].respond(Response::text(200, "too late"));
  a.parked.clear();
}

TEST(http_ParseListenAddress, StrictLiterals) {
  struct Case {
    const char* address;
    const char* text;  // nullptr: rejected
  };
  for (const Case& c : std::vector<Case>{
           {"127.0.0.1", "127.0.0.1:80"},
           {"", "0.0.0.0:80"},
           {"0.0.0.0", "0.0.0.0:80"},
           {"::1", "[::1]:80"},
           {"[::1]", "[::1]:80"},
           {"::", "[::]:80"},
           {"2001:db8::5", "[2001:db8::5]:80"},
           {"::ffff:127.0.0.1", "[::ffff:127.0.0.1]:80"},
           {"9301,127.0.0.1", nullptr},  // issue 10 defect 9: was an extra listener on 0.0.0.0:9301
           {"127.0.0.1:80", nullptr},
           {"localhost", nullptr},
           {"1.2.3", nullptr},
           {" 127.0.0.1", nullptr},
           {"127.0.0.1 ", nullptr},
           {"[127.0.0.1]", nullptr},
           {"[::1", nullptr},
           {"::1]", nullptr},
           {"fe80::1%eth0", nullptr},
           {"0x7f.1", nullptr},
           {"01.02.03.04", nullptr},
       }) {
    const auto parsed = parse_listen_address(c.address, 80);
    if (c.text) {
      ASSERT_TRUE(parsed) << c.address;
      EXPECT_EQ(parsed->text, c.text);
    } else {
      EXPECT_FALSE(parsed) << c.address;
    }
  }
  EXPECT_FALSE(parse_listen_address("127.0.0.1", 65536));
  EXPECT_FALSE(parse_listen_address("127.0.0.1", -1));
}

// --web.listen-address as Go's exporters take it (docs/http-server.md), literals only.
TEST(http_ParseHostPort, Table) {
  struct Case {
    const char* text;
    const char* address;  // nullptr: rejected
    int port;
  };
  for (const Case& c : std::vector<Case>{
           {"127.0.0.1:9377", "127.0.0.1", 9377},
           {"[::1]:9377", "[::1]", 9377},
           {"[2001:db8::1]:0", "[2001:db8::1]", 0},
           {":9377", "::", 9377},
           {"0.0.0.0:65535", "0.0.0.0", 65535},
           {"127.0.0.1:65536", nullptr, 0},
           {"127.0.0.1", nullptr, 0},
           {"::1:9377", nullptr, 0},  // IPv6 needs brackets
           {"[::1]", nullptr, 0},
           {"[127.0.0.1]:80", nullptr, 0},
           {"localhost:9377", nullptr, 0},  // no names
           {"127.0.0.1:http", nullptr, 0},
           {"127.0.0.1:", nullptr, 0},
           {"127.0.0.1:+80", nullptr, 0},
           {"127.0.0.1:-1", nullptr, 0},
           {"127.0.0.1:000080", nullptr, 0},
           {"9301,127.0.0.1:80", nullptr, 0},
           {"", nullptr, 0},
           {":", nullptr, 0},
       }) {
    const auto parsed = parse_host_port(c.text);
    if (c.address) {
      ASSERT_TRUE(parsed) << c.text;
      EXPECT_EQ(parsed->address, c.address) << c.text;
      EXPECT_EQ(parsed->port, c.port) << c.text;
    } else {
      EXPECT_FALSE(parsed) << c.text;
    }
  }
}

TEST(http_AcceptsEncoding, Table) {
  struct Case {
    std::optional<std::string_view> header;
    bool gzip;
  };
  for (const Case& c : std::vector<Case>{{std::nullopt, false},
                                         {"", false},
                                         {"gzip", true},
                                         {"GZIP", true},
                                         {"deflate, gzip;q=0.5", true},
                                         {"gzip;q=0", false},
                                         {"gzip;q=0.000", false},
                                         {"gzip;q=0.001", true},
                                         {"br, deflate", false},
                                         {"x-gzip", false},
                                         {",,,;;;", false}}) {
    EXPECT_EQ(accepts_encoding(c.header, "gzip"), c.gzip) << (c.header ? *c.header : "(none)");
  }
}

TEST(http_Base64, Table) {
  EXPECT_EQ(base64_decode("cHJvbTpzM2NyZXQ="), "prom:s3cret");
  EXPECT_EQ(base64_decode("cHJvbTpzM2NyZXQ"), "prom:s3cret");
  EXPECT_EQ(base64_decode(""), "");
  EXPECT_FALSE(base64_decode("!!!!"));
  EXPECT_FALSE(base64_decode("a"));
}

TEST(http_Nofile, RaisedToTheHardLimit) {
  const unsigned long now = raise_nofile_limit();
  rlimit limit{};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &limit), 0);
  EXPECT_EQ(limit.rlim_cur, limit.rlim_max);
  EXPECT_GT(now, 0u);
}

}  // namespace
}  // namespace netprobe::http
