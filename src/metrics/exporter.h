#pragma once
// The /metrics HTTP endpoint, with optional HTTP basic auth (netprobify's PROM_USER / PROM_PASSWORD).
//
// Served by src/http (libmicrohttpd; docs/http-server.md says why it replaced CivetWeb, and its limits).
// OpenMetrics 1.0 text when the Accept header asks for it (prefers_openmetrics(); OpenMetricsConverter in
// exposition.h), the 0.0.4 text otherwise.
// Content-Type carries the exposition-format version (docs/netprobify-compatibility.md#d15-content-type):
// Prometheus 3 needs it to pick the parser without a fallback_scrape_protocol. Only GET/HEAD on exactly
// /metrics serves metrics; every other path answers 404.
//
// The response is streamed, because with 10,000 targets the page is ~40 MB of text (~1 MB gzipped): a
// rendering thread per scrape renders the sources into a 64 KiB buffer that is handed on each time it fills,
// at most two pieces ahead of the client. A response that fits in one such piece (after gzip, when the
// client accepts gzip, as Prometheus does) goes out with a Content-Length; a larger one is sent piece by
// piece as it is rendered: chunked to HTTP/1.1 clients (Prometheus), delimited by closing the connection for
// HTTP/1.0 ones, through one zlib deflate stream when gzipped. A scrape thus holds ~64 KiB of text, ~3 pieces
// of output and zlib's ~270 KB state whatever the number of targets. At most kMaxScrapes render at once
// (exporter.cpp); more answer 503.
//
// Thread-safety: start() and the destructor from one thread; requests are served on the HTTP server's
// threads and rendered on one thread per scrape, concurrently (sources must allow that, as
// prometheus::Registry, ProcessCollector and TargetSeries do). No netprobe lock is held while a client is
// written to (TextSource's contract).
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <prometheus/collectable.h>

#include "core/result.h"
#include "http/auth.h"
#include "http/server.h"
#include "metrics/exposition.h"

namespace netprobe {

struct ScrapeCounter;

// Content negotiation: true when an Accept header asks for OpenMetrics text (application/openmetrics-text,
// any version, q > 0) at least as much as for text/plain (Prometheus >= 2.5 sends
// "application/openmetrics-text;version=1.0.0,...,text/plain;version=0.0.4;q=0.5,*/*;q=0.1").
bool prefers_openmetrics(std::optional<std::string_view> accept);

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
  // The same on several servers at once (--web.listen-address, repeatable): one per element of `servers`
  // (address, port, TLS, authentication; docs/http-server.md). All or nothing: an error on one stops the
  // others. `extra_routes` are served beside /metrics, / and /status.json on every server (/probe and
  // /api/v1/tests: docs/on-demand.md); they must outlive the Exporter's servers.
  static Result<std::unique_ptr<Exporter>> start(
      std::vector<http::Options> servers, std::vector<std::weak_ptr<prometheus::Collectable>> collectables,
      std::vector<std::weak_ptr<const TextSource>> sources = {},
      std::map<std::string, http::Route> extra_routes = {});
  ~Exporter();
  Exporter(const Exporter&) = delete;
  Exporter& operator=(const Exporter&) = delete;

  std::vector<int> listening_ports() const;

 private:
  Exporter(std::vector<std::weak_ptr<prometheus::Collectable>> collectables,
           std::vector<std::weak_ptr<const TextSource>> sources);
  http::Response serve(const http::Request& request);
  // The status page (/) or its JSON (/status.json): metrics/status.h.
  http::Response serve_status(const http::Request& request, bool json);

  std::vector<std::shared_ptr<const TextSource>> adapters_;  // the collectables as sources (owned here)
  std::vector<std::weak_ptr<const TextSource>> sources_;     // adapters_, then the sources given
  std::shared_ptr<ScrapeCounter> scrapes_;                   // rendering threads still running
  std::vector<std::unique_ptr<http::Server>> servers_;
};

}  // namespace netprobe
