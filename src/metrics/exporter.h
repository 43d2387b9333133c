#pragma once
// The /metrics HTTP endpoint, with optional HTTP basic auth (netprobify's PROM_USER / PROM_PASSWORD).
//
// Built on CivetWeb directly rather than prometheus::Exposer: prometheus-cpp 1.0.1's handler hard-codes
// `Content-Type: text/plain; charset=utf-8` (checked in libprometheus-cpp-pull.so.1.0), and decision 15
// wants the exposition-format version in it, which Prometheus 3 needs to pick the parser without a
// fallback_scrape_protocol. The handler is ~50 lines: serialize the collectables with prometheus-cpp's
// TextSerializer, gzip it when the client accepts gzip (as prometheus-cpp does), write our own
// headers. Only GET/HEAD on exactly /metrics serves metrics; every other
// path answers 404.
//
// Thread-safety: start() and the destructor from one thread; requests are served on CivetWeb's own
// threads, which call Collect() on the registered collectables concurrently (they must allow that, as
// prometheus::Registry and ProcessCollector do). The HTTP threads hold no netprobe lock.
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <prometheus/collectable.h>

#include "core/result.h"

struct mg_context;
struct mg_connection;

namespace netprobe {

struct BasicAuth {
  std::string user;
  std::string password;
};

// netprobify's rule: auth is on when both variables are set (non-empty), off when neither is; exactly
// one set is a configuration error (returned as nullopt with `*error` naming the missing variable).
// `user` and `password` are the variables' values (getenv results, nullptr when unset), so tests need
// not touch the environment. `error` is cleared when there is no error.
std::optional<BasicAuth> basic_auth_from_env(const char* user, const char* password, std::string* error);

// Compares two secrets in time that depends only on their lengths, never on where they first differ.
bool constant_time_equal(std::string_view a, std::string_view b);

class Exporter {
 public:
  // Listens on address:port (port 0 = any free port; IPv6 literals accepted with or without brackets)
  // and serves the collectables at /metrics. Errors (port in use, address not local, bad address) come
  // back as a Result error; nothing throws.
  static Result<std::unique_ptr<Exporter>> start(const std::string& address, int port,
                                                 std::optional<BasicAuth> auth,
                                                 std::vector<std::weak_ptr<prometheus::Collectable>> collectables);
  ~Exporter();
  Exporter(const Exporter&) = delete;
  Exporter& operator=(const Exporter&) = delete;

  std::vector<int> listening_ports() const;

 private:
  Exporter(std::optional<BasicAuth> auth, std::vector<std::weak_ptr<prometheus::Collectable>> collectables);
  static int handle(mg_connection* conn, void* self);
  int serve(mg_connection* conn);
  bool authorized(mg_connection* conn) const;

  std::optional<BasicAuth> auth_;
  std::vector<std::weak_ptr<prometheus::Collectable>> collectables_;
  mg_context* ctx_ = nullptr;
};

}  // namespace netprobe
