#pragma once
// The /metrics HTTP endpoint, with optional HTTP basic auth (netprobify's PROM_USER / PROM_PASSWORD).
//
// Built on CivetWeb directly rather than prometheus::Exposer: prometheus-cpp 1.0.1's handler hard-codes
// `Content-Type: text/plain; charset=utf-8` (checked in libprometheus-cpp-pull.so.1.0), and decision 15
// wants the exposition-format version in it, which Prometheus 3 needs to pick the parser without a
// fallback_scrape_protocol. Only GET/HEAD on exactly /metrics serves metrics; every other path answers 404.
//
// The response is streamed, because with 10,000 targets the page is ~40 MB of text (~1 MB gzipped): the
// sources render into a 64 KiB buffer that is handed on each time it fills. A response that fits in one
// such piece (after gzip, when the client accepts gzip, as prometheus-cpp does) goes out with a
// Content-Length, as before; a larger one is sent piece by piece as it is rendered: chunked to HTTP/1.1
// clients (Prometheus), delimited by closing the connection for HTTP/1.0 ones, through one zlib deflate
// stream when gzipped. A scrape thus holds ~64 KiB of text, ~64 KiB of output and zlib's ~270 KB state
// whatever the number of targets.
//
// Thread-safety: start() and the destructor from one thread; requests are served on CivetWeb's own
// threads, which render the sources concurrently (they must allow that, as prometheus::Registry,
// ProcessCollector and TargetSeries do). The HTTP threads hold no netprobe lock while writing to a client.
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <prometheus/collectable.h>

#include "core/result.h"
#include "metrics/exposition.h"

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
  // and serves the collectables, then the text sources, at /metrics; a source or collectable that no
  // longer exists is skipped. Errors (port in use, address not local, bad address) come back as a Result
  // error; nothing throws.
  static Result<std::unique_ptr<Exporter>> start(
      const std::string& address, int port, std::optional<BasicAuth> auth,
      std::vector<std::weak_ptr<prometheus::Collectable>> collectables,
      std::vector<std::weak_ptr<const TextSource>> sources = {});
  ~Exporter();
  Exporter(const Exporter&) = delete;
  Exporter& operator=(const Exporter&) = delete;

  std::vector<int> listening_ports() const;

 private:
  Exporter(std::optional<BasicAuth> auth, std::vector<std::weak_ptr<prometheus::Collectable>> collectables,
           std::vector<std::weak_ptr<const TextSource>> sources);
  static int handle(mg_connection* conn, void* self);
  int serve(mg_connection* conn);
  bool authorized(mg_connection* conn) const;

  std::optional<BasicAuth> auth_;
  std::vector<std::shared_ptr<const TextSource>> adapters_;  // the collectables as sources (owned here)
  std::vector<std::weak_ptr<const TextSource>> sources_;     // adapters_, then the sources given
  mg_context* ctx_ = nullptr;
};

}  // namespace netprobe
