#include "metrics/exporter.h"

#include <zlib.h>

#include <algorithm>
#include <cctype>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <mutex>
#include <optional>
#include <string_view>
#include <thread>

#include <fmt/format.h>

#include "http/server.h"
#include "metrics/status.h"

namespace netprobe {

// Rendering threads still running; the exporter waits for them before it goes.
struct ScrapeCounter {
  std::mutex mutex;
  std::condition_variable changed;
  int running = 0;
};

namespace {

// The exposition format netprobify's users' Prometheus servers negotiate
// (docs/netprobify-compatibility.md#d15-content-type).
constexpr const char* kMetricsContentType = "text/plain; version=0.0.4; charset=utf-8";
constexpr const char* kOpenMetricsContentType = "application/openmetrics-text; version=1.0.0; charset=utf-8";
// Text rendered before it is handed on, and the size of the pieces sent to the client.
constexpr size_t kPiece = 64 * 1024;
// Pieces rendered ahead of the client at most (memory per scrape: about this many pieces).
constexpr size_t kPiecesAhead = 2;
// Scrapes rendered at once (each holds a thread and ~0.5 MB): more answer 503. Only authorized clients
// get this far.
constexpr int kMaxScrapes = 4;
// The status page renders the exposition in memory (at most this much text) and shows the worst rows.
constexpr size_t kMaxStatusText = 256 * 1024 * 1024;
constexpr size_t kMaxStatusRows = 2000;

// One scrape's output, between the thread that renders it and the HTTP thread that sends it.
struct Scrape {
  std::mutex mutex;
  std::condition_variable changed;
  std::deque<std::string> pieces;  // ready to send (compressed when gzip)
  bool streaming = false;          // a piece was handed on before the end: the length is not known
  bool done = false;               // nothing more will come
  bool failed = false;             // rendering failed: the body must not look complete
  bool cancelled = false;          // the client is gone: stop rendering
};

// Renders the sources into `scrape`, gzipped or not, a piece at a time (exporter.h: why and how).
class Renderer {
 public:
  Renderer(std::shared_ptr<Scrape> scrape, bool gzip, bool openmetrics) : scrape_(std::move(scrape)) {
    if (openmetrics) openmetrics_.emplace();
    // gzip (RFC 1952 framing: windowBits 15 + 16). A large target set renders to highly repetitive text:
    // compression cuts it ~40x.
    gzip_ =
        gzip && deflateInit2(&zs_, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) == Z_OK;
    pending_.reserve(kPiece + kDeflateStep);
  }
  ~Renderer() {
    if (gzip_) deflateEnd(&zs_);
  }
  Renderer(const Renderer&) = delete;
  Renderer& operator=(const Renderer&) = delete;
  bool gzip() const { return gzip_; }

  void run(const std::vector<std::weak_ptr<const TextSource>>& sources) {
    bool ok = false;
    try {
      std::string text;
      text.reserve(kPiece + kPiece / 4);  // a source overshoots flush_at by at most one target's lines
      const TextSink sink = [&](std::string_view piece) { return write(piece); };
      ok = true;
      for (const auto& weak : sources) {
        if (auto source = weak.lock()) {
          ok = source->render(text, kPiece, sink);
          if (!ok) break;
        }
      }
      if (ok && !text.empty()) ok = write(text);
      if (ok && openmetrics_) {
        std::string end;
        openmetrics_->finish(end);
        ok = write_converted(end);
      }
      if (ok && gzip_) ok = deflate_into_pending({}, Z_FINISH);
    } catch (...) {
      ok = false;  // only allocation can throw while rendering
    }
    const std::lock_guard lock(scrape_->mutex);
    if (ok && !pending_.empty()) scrape_->pieces.push_back(std::move(pending_));
    scrape_->failed = !ok;
    scrape_->done = true;
    scrape_->changed.notify_all();
  }

 private:
  static constexpr size_t kDeflateStep = 16 * 1024;

  // Appends text to the body (in OpenMetrics when asked); hands a piece on once one is complete. False
  // once the client is gone.
  bool write(std::string_view text) {
    if (!openmetrics_) return write_converted(text);
    converted_.clear();
    openmetrics_->feed(text, converted_);
    return write_converted(converted_);
  }

  bool write_converted(std::string_view text) {
    if (gzip_) return deflate_into_pending(text, Z_NO_FLUSH);
    pending_.append(text);
    return pending_.size() < kPiece || hand_on();
  }

  bool deflate_into_pending(std::string_view in, int flush) {
    zs_.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
    zs_.avail_in = static_cast<uInt>(in.size());
    // zlib's loop: give it output room until it leaves some unused (Z_NO_FLUSH: all input consumed) or,
    // for Z_FINISH, until the stream ends. Bounded: each pass either ends or fills kDeflateStep bytes.
    for (;;) {
      const size_t used = pending_.size();
      pending_.resize(used + kDeflateStep);
      zs_.next_out = reinterpret_cast<Bytef*>(pending_.data() + used);
      zs_.avail_out = static_cast<uInt>(kDeflateStep);
      const int rc = deflate(&zs_, flush);
      pending_.resize(used + kDeflateStep - zs_.avail_out);
      if (rc == Z_STREAM_ERROR) return false;
      if (flush == Z_FINISH ? rc == Z_STREAM_END : zs_.avail_out != 0) return true;
      if (pending_.size() >= kPiece && !hand_on()) return false;
    }
  }

  // Waits (only for the client) until there is room, then queues the pending piece.
  bool hand_on() {
    std::unique_lock lock(scrape_->mutex);
    scrape_->changed.wait(lock, [&] { return scrape_->cancelled || scrape_->pieces.size() < kPiecesAhead; });
    if (scrape_->cancelled) return false;
    scrape_->pieces.push_back(std::move(pending_));
    scrape_->streaming = true;
    scrape_->changed.notify_all();
    pending_.clear();
    pending_.reserve(kPiece + kDeflateStep);
    return true;
  }

  std::shared_ptr<Scrape> scrape_;
  bool gzip_ = false;
  z_stream zs_{};
  std::string pending_;  // body bytes (compressed when gzip_) not handed on yet
  std::optional<OpenMetricsConverter> openmetrics_;
  std::string converted_;
};

// The streamed body: the pieces as the renderer hands them on. Waits only for rendering (CPU), never for a
// client; going away (client gone, server stopped) cancels the rendering.
class ScrapeStream final : public http::BodyStream {
 public:
  explicit ScrapeStream(std::shared_ptr<Scrape> scrape) : scrape_(std::move(scrape)) {}
  ~ScrapeStream() override {
    if (!scrape_) return;
    const std::lock_guard lock(scrape_->mutex);
    scrape_->cancelled = true;
    scrape_->changed.notify_all();
  }
  ScrapeStream(const ScrapeStream&) = delete;
  ScrapeStream& operator=(const ScrapeStream&) = delete;

  ssize_t read(char* buffer, size_t max) override {
    if (!scrape_) return 0;  // HEAD
    if (at_ == current_.size()) {
      std::unique_lock lock(scrape_->mutex);
      scrape_->changed.wait(lock, [&] { return scrape_->done || !scrape_->pieces.empty(); });
      if (scrape_->pieces.empty()) return scrape_->failed ? -1 : 0;
      current_ = std::move(scrape_->pieces.front());
      scrape_->pieces.pop_front();
      scrape_->changed.notify_all();
      at_ = 0;
    }
    const size_t n = std::min(max, current_.size() - at_);
    std::copy_n(current_.data() + at_, n, buffer);
    at_ += n;
    return static_cast<ssize_t>(n);
  }

 private:
  std::shared_ptr<Scrape> scrape_;
  std::string current_;
  size_t at_ = 0;
};

// One media range of an Accept header: its type and its q (1 when absent).
struct MediaRange {
  std::string_view type;
  double q = 1;
};

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

MediaRange parse_range(std::string_view item) {
  MediaRange r;
  const size_t semi = item.find(';');
  r.type = trim(item.substr(0, semi));
  std::string_view params = semi == std::string_view::npos ? std::string_view() : item.substr(semi + 1);
  while (!params.empty()) {
    const size_t next = params.find(';');
    const std::string_view p = trim(params.substr(0, next));
    params = next == std::string_view::npos ? std::string_view() : params.substr(next + 1);
    if (p.size() > 2 && (p[0] == 'q' || p[0] == 'Q') && p[1] == '=') {
      const std::string value(p.substr(2, 8));
      char* end = nullptr;
      const double q = std::strtod(value.c_str(), &end);
      r.q = end == value.c_str() || !(q >= 0) ? 0 : std::min(q, 1.0);
    }
  }
  return r;
}

}  // namespace

bool prefers_openmetrics(std::optional<std::string_view> accept) {
  if (!accept) return false;
  double openmetrics = 0, text = -1;
  std::string_view rest = *accept;
  for (int items = 0; !rest.empty() && items < 64; ++items) {  // bounded: a header is at most 16 KiB anyway
    const size_t comma = rest.find(',');
    const MediaRange r = parse_range(rest.substr(0, comma));
    rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
    auto is = [&](std::string_view type) {
      if (r.type.size() != type.size()) return false;
      for (size_t i = 0; i < type.size(); ++i)
        if (std::tolower(static_cast<unsigned char>(r.type[i])) != type[i]) return false;
      return true;
    };
    if (is("application/openmetrics-text")) openmetrics = std::max(openmetrics, r.q);
    if (is("text/plain")) text = std::max(text, r.q);
  }
  // Asked for, and not less wanted than the 0.0.4 text (a tie goes to OpenMetrics, the newer format).
  return openmetrics > 0 && openmetrics >= text;
}

Exporter::Exporter(std::vector<std::weak_ptr<prometheus::Collectable>> collectables,
                   std::vector<std::weak_ptr<const TextSource>> sources)
    : scrapes_(std::make_shared<ScrapeCounter>()) {
  for (auto& collectable : collectables) {
    adapters_.push_back(std::make_shared<CollectableSource>(std::move(collectable)));
    sources_.push_back(adapters_.back());
  }
  for (auto& source : sources) sources_.push_back(std::move(source));
}

Exporter::~Exporter() {
  // Stops the HTTP threads (no request reaches `this` afterwards) and drops every stream (which cancels its
  // rendering), then waits for the rendering threads, which use sources_.
  servers_.clear();
  std::unique_lock lock(scrapes_->mutex);
  scrapes_->changed.wait(lock, [&] { return scrapes_->running == 0; });
}

Result<std::unique_ptr<Exporter>> Exporter::start(
    const std::string& address, int port, std::optional<BasicAuth> auth,
    std::vector<std::weak_ptr<prometheus::Collectable>> collectables,
    std::vector<std::weak_ptr<const TextSource>> sources) {
  if (port < 0 || port > 65535) return Error{fmt::format("prometheus_port {} is out of range 0-65535", port)};
  http::Options options;
  options.address = address;
  options.port = port;
  options.auth = std::move(auth);
  std::vector<http::Options> servers;
  servers.push_back(std::move(options));
  return start(std::move(servers), std::move(collectables), std::move(sources));
}

Result<std::unique_ptr<Exporter>> Exporter::start(
    std::vector<http::Options> servers, std::vector<std::weak_ptr<prometheus::Collectable>> collectables,
    std::vector<std::weak_ptr<const TextSource>> sources, std::map<std::string, http::Route> extra_routes) {
  std::unique_ptr<Exporter> exporter(new Exporter(std::move(collectables), std::move(sources)));
  Exporter* self = exporter.get();
  for (auto& options : servers) {
    std::map<std::string, http::Route> routes = extra_routes;
    routes["/metrics"] = [self](const http::Request& request) { return self->serve(request); };
    routes["/"] = [self](const http::Request& request) { return self->serve_status(request, false); };
    routes["/status.json"] = [self](const http::Request& request) {
      return self->serve_status(request, true);
    };
    auto server = http::Server::start(std::move(options), std::move(routes));
    if (!server.ok()) return Error{fmt::format("cannot serve /metrics: {}", server.error().message)};
    exporter->servers_.push_back(std::move(server).value());
  }
  return exporter;
}

http::Response Exporter::serve_status(const http::Request&, bool json) {
  {
    const std::lock_guard lock(scrapes_->mutex);
    if (scrapes_->running >= kMaxScrapes) return http::Response::text(503, "Too many scrapes at once\n");
    ++scrapes_->running;
  }
  std::string text;
  bool complete = true;
  try {
    std::string piece;
    const TextSink sink = [&](std::string_view p) {
      text.append(p);
      complete = text.size() <= kMaxStatusText;
      return complete;
    };
    for (const auto& weak : sources_) {
      if (auto source = weak.lock()) {
        if (!source->render(piece, kPiece, sink)) break;
        if (!sink(piece)) break;
        piece.clear();
      }
    }
  } catch (...) {
    complete = false;
  }
  {
    const std::lock_guard lock(scrapes_->mutex);
    --scrapes_->running;
    scrapes_->changed.notify_all();
  }
  StatusSnapshot status = status_from_exposition(text, kMaxStatusRows);
  http::Response response;
  response.headers.emplace_back("Content-Type",
                                json ? "application/json; charset=utf-8" : "text/html; charset=utf-8");
  response.headers.emplace_back("Cache-Control", "no-store");
  if (!json)
    response.headers.emplace_back("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'");
  response.body = json ? status_json(status) : status_html(status);
  if (!complete) response.headers.emplace_back("X-Netprobe-Truncated", "1");
  return response;
}

std::vector<int> Exporter::listening_ports() const {
  std::vector<int> ports;
  for (const auto& server : servers_) ports.push_back(server->port());
  return ports;
}

http::Response Exporter::serve(const http::Request& request) {
  http::Response response;
  const bool openmetrics = prefers_openmetrics(request.header("Accept"));
  response.headers.emplace_back("Content-Type", openmetrics ? kOpenMetricsContentType : kMetricsContentType);
  const bool gzip = http::accepts_encoding(request.header("Accept-Encoding"), "gzip");
  if (request.method == "HEAD") {
    // The headers a GET would get, without a length (it is not known before rendering).
    if (gzip) response.headers.emplace_back("Content-Encoding", "gzip");
    response.stream = std::make_unique<ScrapeStream>(nullptr);
    return response;
  }
  {
    const std::lock_guard lock(scrapes_->mutex);
    if (scrapes_->running >= kMaxScrapes) return http::Response::text(503, "Too many scrapes at once\n");
    ++scrapes_->running;
  }
  auto scrape = std::make_shared<Scrape>();
  auto renderer = std::make_shared<Renderer>(scrape, gzip, openmetrics);
  if (renderer->gzip()) response.headers.emplace_back("Content-Encoding", "gzip");
  try {
    std::thread([renderer, sources = sources_, counter = scrapes_]() {
      renderer->run(sources);
      const std::lock_guard lock(counter->mutex);
      --counter->running;
      counter->changed.notify_all();
    }).detach();
  } catch (...) {
    const std::lock_guard lock(scrapes_->mutex);
    --scrapes_->running;
    return http::Response::text(503, "Cannot render now\n");
  }
  // The first piece tells: the whole body fits in one (sent with a Content-Length), or it is streamed.
  std::unique_lock lock(scrape->mutex);
  scrape->changed.wait(lock, [&] { return scrape->done || scrape->streaming; });
  if (!scrape->streaming) {
    if (scrape->failed) return http::Response::text(500, "Internal Server Error\n");
    if (!scrape->pieces.empty()) response.body = std::move(scrape->pieces.front());
    return response;
  }
  lock.unlock();
  response.stream = std::make_unique<ScrapeStream>(std::move(scrape));
  return response;
}

}  // namespace netprobe
