#include "metrics/exporter.h"

#include <civetweb.h>
#include <zlib.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cstring>
#include <mutex>

#include <fmt/format.h>

namespace netprobe {

namespace {

// The exposition format netprobify's users' Prometheus servers negotiate (decision 15).
constexpr const char* kMetricsContentType = "text/plain; version=0.0.4; charset=utf-8";
// netprobify's realm and body, so that anything that screen-scraped its 401 keeps working.
constexpr const char* kAuthenticate = "Basic realm=\"Authentication Required\", charset=\"UTF-8\"";
constexpr const char* kUnauthorizedBody = "Unauthorized Access";

// Decodes standard base64 (RFC 4648, padding optional); nullopt on any invalid character.
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

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i])))
      return false;
  }
  return true;
}

// True when the client lists gzip in Accept-Encoding with a non-zero q (Prometheus sends "gzip").
bool accepts_gzip(mg_connection* conn) {
  const char* header = mg_get_header(conn, "Accept-Encoding");
  if (!header) return false;
  std::string_view rest(header);
  while (!rest.empty()) {
    const size_t comma = rest.find(',');
    std::string_view item = rest.substr(0, comma);
    rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
    while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
    const size_t semi = item.find(';');
    std::string_view coding = item.substr(0, semi);
    while (!coding.empty() && coding.back() == ' ') coding.remove_suffix(1);
    if (!iequals(coding, "gzip")) continue;
    if (semi == std::string_view::npos) return true;
    std::string_view params = item.substr(semi + 1);
    const size_t q = params.find("q=");
    if (q == std::string_view::npos) return true;
    const std::string_view qv = params.substr(q + 2);
    return !(qv.rfind("0", 0) == 0 && qv.find_first_of("123456789") == std::string_view::npos);
  }
  return false;
}

int send_simple(mg_connection* conn, int status, const char* body, const char* extra_name = nullptr,
                const char* extra_value = nullptr) {
  const std::string length = std::to_string(std::strlen(body));
  mg_response_header_start(conn, status);
  mg_response_header_add(conn, "Content-Type", "text/plain; charset=utf-8", -1);
  mg_response_header_add(conn, "Content-Length", length.c_str(), -1);
  if (extra_name) mg_response_header_add(conn, extra_name, extra_value, -1);
  mg_response_header_send(conn);
  const mg_request_info* ri = mg_get_request_info(conn);
  if (!(ri && ri->request_method && std::string_view(ri->request_method) == "HEAD")) {
    mg_write(conn, body, std::strlen(body));
  }
  return status;
}

// Text rendered before it is handed on, and the size of the pieces sent to the client.
constexpr size_t kPiece = 64 * 1024;

// The body of one 200 /metrics response, sent as it is produced (exporter.h: why and how). Not thread-safe:
// one per request.
class ResponseBody {
 public:
  // `gzip`: the client accepts it (dropped if zlib cannot start: the body then goes out as plain text).
  // `chunked`: the client speaks HTTP/1.1.
  ResponseBody(mg_connection* conn, bool gzip, bool chunked) : conn_(conn), chunked_(chunked) {
    // gzip (RFC 1952 framing: windowBits 15 + 16). A large target set renders to highly repetitive text:
    // compression cuts it ~40x.
    gzip_ =
        gzip && deflateInit2(&zs_, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) == Z_OK;
    pending_.reserve(kPiece + kDeflateStep);
  }
  ~ResponseBody() {
    if (gzip_) deflateEnd(&zs_);
  }
  ResponseBody(const ResponseBody&) = delete;
  ResponseBody& operator=(const ResponseBody&) = delete;

  bool headers_sent() const { return headers_sent_; }

  // Appends text to the body; sends a piece once one is complete. False once the client is gone.
  bool write(std::string_view text) {
    if (failed_) return false;
    if (gzip_) {
      if (!deflate_into_pending(text, Z_NO_FLUSH)) return false;
    } else {
      pending_.append(text);
    }
    return pending_.size() < kPiece || send_pending();
  }

  // Ends the body: all of it in one response with a Content-Length if it never filled a piece.
  bool finish() {
    if (failed_) return false;
    if (gzip_ && !deflate_into_pending({}, Z_FINISH)) return false;
    if (!headers_sent_) {
      if (!send_headers(pending_.size())) return false;
      return send_raw(pending_.data(), pending_.size());
    }
    if (!pending_.empty() && !send_pending()) return false;
    return !chunked_ || send_raw("0\r\n\r\n", 5);
  }

  // HEAD: the headers a GET would get, without a length (it is not known before rendering).
  void head() { send_headers(std::nullopt); }

  // A failure after the headers went out: the client must not take a truncated body for a whole one. Without
  // the chunked terminator (or, for HTTP/1.0, with the connection closed early) it cannot.
  void abort() { mg_disable_connection_keep_alive(conn_); }

 private:
  static constexpr size_t kDeflateStep = 16 * 1024;

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
      if (rc == Z_STREAM_ERROR) return fail();
      if (flush == Z_FINISH ? rc == Z_STREAM_END : zs_.avail_out != 0) return true;
      if (pending_.size() >= kPiece && !send_pending()) return false;
    }
  }

  bool send_headers(std::optional<size_t> length) {
    headers_sent_ = true;
    mg_response_header_start(conn_, 200);
    mg_response_header_add(conn_, "Content-Type", kMetricsContentType, -1);
    if (gzip_) mg_response_header_add(conn_, "Content-Encoding", "gzip", -1);
    if (length) {
      const std::string value = std::to_string(*length);
      mg_response_header_add(conn_, "Content-Length", value.c_str(), -1);
    } else if (chunked_) {
      mg_response_header_add(conn_, "Transfer-Encoding", "chunked", -1);
    } else {
      mg_disable_connection_keep_alive(conn_);  // HTTP/1.0: the body ends when the connection closes
    }
    return mg_response_header_send(conn_) == 0 || fail();
  }

  bool send_pending() {
    if (!headers_sent_ && !send_headers(std::nullopt)) return false;
    bool ok;
    if (chunked_) {
      // One write per chunk (size line, data, CRLF): mg_send_chunk would make three small writes.
      frame_ = fmt::format("{:x}\r\n", pending_.size());
      frame_ += pending_;
      frame_ += "\r\n";
      ok = send_raw(frame_.data(), frame_.size());
    } else {
      ok = send_raw(pending_.data(), pending_.size());
    }
    pending_.clear();
    return ok;
  }

  bool send_raw(const char* data, size_t size) {
    if (size == 0) return true;
    return mg_write(conn_, data, size) == static_cast<int>(size) || fail();
  }

  bool fail() {
    failed_ = true;
    return false;
  }

  mg_connection* conn_;
  bool gzip_ = false;
  bool chunked_;
  bool headers_sent_ = false;
  bool failed_ = false;
  z_stream zs_{};
  std::string pending_;  // body bytes (compressed when gzip_) not sent yet
  std::string frame_;
};

}  // namespace

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

Exporter::Exporter(std::optional<BasicAuth> auth,
                   std::vector<std::weak_ptr<prometheus::Collectable>> collectables,
                   std::vector<std::weak_ptr<const TextSource>> sources)
    : auth_(std::move(auth)) {
  for (auto& collectable : collectables) {
    adapters_.push_back(std::make_shared<CollectableSource>(std::move(collectable)));
    sources_.push_back(adapters_.back());
  }
  for (auto& source : sources) sources_.push_back(std::move(source));
}

Exporter::~Exporter() {
  if (ctx_) mg_stop(ctx_);  // joins the HTTP threads: no request can reach `this` afterwards
}

Result<std::unique_ptr<Exporter>> Exporter::start(
    const std::string& address, int port, std::optional<BasicAuth> auth,
    std::vector<std::weak_ptr<prometheus::Collectable>> collectables,
    std::vector<std::weak_ptr<const TextSource>> sources) {
  if (port < 0 || port > 65535) return Error{fmt::format("prometheus_port {} is out of range 0-65535", port)};
  static std::once_flag init_once;
  std::call_once(init_once, [] { mg_init_library(0); });

  std::string listen;
  if (address.empty()) {
    listen = std::to_string(port);
  } else if (address.find(':') != std::string::npos && address.front() != '[') {
    listen = fmt::format("[{}]:{}", address, port);  // IPv6 literal
  } else {
    listen = fmt::format("{}:{}", address, port);
  }
  const std::array<const char*, 7> options{
      "listening_ports",
      listen.c_str(),
      "num_threads",
      "2",  // Prometheus scrapes one at a time; two lets a slow client not block it
      "request_timeout_ms",
      "10000",  // a client that stalls mid-request must not hold a thread for ever
      nullptr};

  std::unique_ptr<Exporter> exporter(
      new Exporter(std::move(auth), std::move(collectables), std::move(sources)));
  mg_callbacks callbacks{};
  // Quiet: CivetWeb would otherwise print its own errors; ours go through the returned Result.
  callbacks.log_message = [](const mg_connection*, const char*) { return 1; };
  mg_init_data init{};
  init.callbacks = &callbacks;
  init.user_data = exporter.get();
  init.configuration_options = const_cast<const char**>(options.data());
  std::array<char, 256> text{};
  unsigned code = 0;
  mg_error_data error{};
  error.code = &code;
  error.text = text.data();
  error.text_buffer_size = text.size();
  exporter->ctx_ = mg_start2(&init, &error);
  if (!exporter->ctx_) {
    return Error{
        fmt::format("cannot serve /metrics on {}: {}", listen,
                    text[0] ? text.data() : "CivetWeb failed to start (address in use or not local?)")};
  }
  // "**" catches every path so that anything but /metrics gets our 404, whatever CivetWeb's defaults.
  mg_set_request_handler(exporter->ctx_, "**", &Exporter::handle, exporter.get());
  return exporter;
}

std::vector<int> Exporter::listening_ports() const {
  std::vector<int> ports;
  std::array<mg_server_port, 8> info{};
  const int n = mg_get_server_ports(ctx_, static_cast<int>(info.size()), info.data());
  for (int i = 0; i < n; ++i) ports.push_back(info[static_cast<size_t>(i)].port);
  return ports;
}

int Exporter::handle(mg_connection* conn, void* self) {
  try {
    return static_cast<Exporter*>(self)->serve(conn);
  } catch (...) {
    // Serialization only throws on allocation failure: answer 500 rather than let it cross into C.
    return send_simple(conn, 500, "Internal Server Error\n");
  }
}

bool Exporter::authorized(mg_connection* conn) const {
  const char* header = mg_get_header(conn, "Authorization");
  if (!header) return false;
  std::string_view value(header);
  while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
  const size_t space = value.find(' ');
  if (space == std::string_view::npos || !iequals(value.substr(0, space), "Basic")) return false;
  value.remove_prefix(space);
  while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
  while (!value.empty() && value.back() == ' ') value.remove_suffix(1);
  const std::optional<std::string> decoded = base64_decode(value);
  if (!decoded) return false;
  const size_t colon = decoded->find(':');
  if (colon == std::string::npos) return false;
  const std::string_view user = std::string_view(*decoded).substr(0, colon);
  const std::string_view password = std::string_view(*decoded).substr(colon + 1);
  // Both comparisons always run (bitwise &), so timing does not tell which of the two was wrong.
  const bool user_ok = constant_time_equal(user, auth_->user);
  const bool password_ok = constant_time_equal(password, auth_->password);
  return user_ok & password_ok;
}

int Exporter::serve(mg_connection* conn) {
  const mg_request_info* ri = mg_get_request_info(conn);
  const std::string_view path = ri && ri->local_uri ? ri->local_uri : "";
  const std::string_view method = ri && ri->request_method ? ri->request_method : "";
  if (path != "/metrics") return send_simple(conn, 404, "Not Found\n");
  if (method != "GET" && method != "HEAD") {
    return send_simple(conn, 405, "Method Not Allowed\n", "Allow", "GET, HEAD");
  }
  if (auth_ && !authorized(conn)) {
    return send_simple(conn, 401, kUnauthorizedBody, "WWW-Authenticate", kAuthenticate);
  }

  const std::string_view version = ri && ri->http_version ? ri->http_version : "";
  ResponseBody body(conn, accepts_gzip(conn), version == "1.1");
  if (method == "HEAD") {
    body.head();
    return 200;
  }
  try {
    std::string text;
    text.reserve(kPiece + kPiece / 4);  // a source overshoots flush_at by at most one target's lines
    const TextSink sink = [&](std::string_view piece) { return body.write(piece); };
    bool ok = true;
    for (const auto& weak : sources_) {
      if (auto source = weak.lock()) {
        ok = source->render(text, kPiece, sink);
        if (!ok) break;
      }
    }
    if (ok && !text.empty()) ok = body.write(text);
    if (ok) body.finish();
  } catch (...) {
    // Only allocation can throw while rendering.
    if (!body.headers_sent()) return send_simple(conn, 500, "Internal Server Error\n");
    body.abort();
    return 500;
  }
  return 200;
}

}  // namespace netprobe
