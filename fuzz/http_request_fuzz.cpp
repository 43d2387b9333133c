// HTTP requests come from anyone who can reach the /metrics port, before authentication. The input is the
// raw bytes a client sends on one connection (one or several pipelined requests, or garbage); they go through
// libmicrohttpd's parser and src/http's routing, method and body checks, basic auth (base64, constant-time
// compare) and Accept-Encoding negotiation, on a connection handed to a thread-less server over a socketpair.
// Nothing may crash, hang or grow without bound; whatever the server answers is read and dropped.
#include <sys/socket.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "http/server.h"

namespace {

using namespace netprobe;

// A streamed body of a few pieces, as /metrics sends a large page.
class Pieces : public http::BodyStream {
 public:
  ssize_t read(char* buffer, size_t max) override {
    if (left_ == 0) return 0;
    --left_;
    const size_t n = max < 100 ? max : 100;
    for (size_t i = 0; i < n; ++i) buffer[i] = 'x';
    return static_cast<ssize_t>(n);
  }

 private:
  int left_ = 3;
};

http::Server* server() {
  static std::unique_ptr<http::Server> instance = [] {
    http::Options options;
    options.external_loop = true;
    options.auth = BasicAuth{"prom", "s3cret"};
    options.limits.request_memory = 16 * 1024;
    std::map<std::string, http::Route> routes;
    routes["/metrics"] = [](const http::Request& request) {
      http::Response r = http::Response::text(200, "up 1\n");
      if (http::accepts_encoding(request.header("Accept-Encoding"), "gzip")) {
        r.headers.emplace_back("Content-Encoding", "identity");
        r.stream = std::make_unique<Pieces>();
      }
      return r;
    };
    routes["/"] = [](const http::Request& request) {
      return http::Response::text(200, std::string(request.path));
    };
    // A route of every other kind: own authentication, a bounded POST body, a prefix, query parameters,
    // and an asynchronous answer (given during the call here: the fuzzer has one thread).
    http::Route api = [](const http::Request& request, http::Responder responder) {
      std::string text(request.body);
      for (const auto& [k, v] : request.query_args()) text += k + "=" + v + "\n";
      if (request.query("q")) text += "q\n";
      responder.respond(http::Response::text(202, text));
    };
    api.methods = {"GET", "POST", "DELETE"};
    api.server_auth = false;
    api.max_body = 1024;
    api.prefix = true;
    routes["/api"] = std::move(api);
    auto started = http::Server::start(std::move(options), std::move(routes));
    if (!started.ok()) abort();
    return std::move(started).value();
  }();
  return instance.get();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 64 * 1024) return 0;
  http::Server* s = server();
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0) return 0;
  if (!s->add_connection(sv[1])) {
    close(sv[0]);
    return 0;
  }
  size_t sent = 0;
  char buffer[16384];
  // Bounded: at most 512 rounds, and 4 in a row without any byte moving end the exchange.
  for (int round = 0, quiet = 0; round < 512 && quiet < 4; ++round) {
    bool moved = false;
    if (sent < size) {
      const ssize_t n = send(sv[0], data + sent, size - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n > 0) {
        sent += static_cast<size_t>(n);
        moved = true;
      }
    }
    s->run();
    for (int i = 0; i < 64; ++i) {
      const ssize_t n = recv(sv[0], buffer, sizeof buffer, MSG_DONTWAIT);
      if (n == 0) quiet = 4;  // the server closed the connection
      if (n <= 0) break;
      moved = true;
    }
    quiet = moved ? 0 : quiet + 1;
  }
  close(sv[0]);
  // Let the server notice the close and free the connection before the next input.
  for (int i = 0; i < 4; ++i) s->run();
  return 0;
}
