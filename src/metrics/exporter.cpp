#include "metrics/exporter.h"

#include <civetweb.h>
#include <zlib.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cstring>
#include <mutex>
#include <sstream>

#include <fmt/format.h>
#include <prometheus/metric_family.h>
#include <prometheus/text_serializer.h>

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
    if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i]))) return false;
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

// gzip (RFC 1952) of `in`; nullopt if zlib fails, in which case the caller sends the plain text.
// A large fleet target set renders to megabytes of highly repetitive text: compression cuts it ~10x.
std::optional<std::string> gzip(const std::string& in) {
  z_stream zs{};
  if (deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) return std::nullopt;
  std::string out(deflateBound(&zs, static_cast<uLong>(in.size())), '\0');
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  zs.avail_in = static_cast<uInt>(in.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  const int rc = deflate(&zs, Z_FINISH);
  const size_t produced = zs.total_out;
  deflateEnd(&zs);
  if (rc != Z_STREAM_END) return std::nullopt;
  out.resize(produced);
  return out;
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
    message = "PROM_USER is set but PROM_PASSWORD is not: set both to enable basic auth on /metrics, or neither";
  } else if (has_password) {
    message = "PROM_PASSWORD is set but PROM_USER is not: set both to enable basic auth on /metrics, or neither";
  }
  if (error) *error = std::move(message);
  return result;
}

Exporter::Exporter(std::optional<BasicAuth> auth, std::vector<std::weak_ptr<prometheus::Collectable>> collectables)
    : auth_(std::move(auth)), collectables_(std::move(collectables)) {}

Exporter::~Exporter() {
  if (ctx_) mg_stop(ctx_);  // joins the HTTP threads: no request can reach `this` afterwards
}

Result<std::unique_ptr<Exporter>> Exporter::start(const std::string& address, int port, std::optional<BasicAuth> auth,
                                                  std::vector<std::weak_ptr<prometheus::Collectable>> collectables) {
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
      "listening_ports", listen.c_str(),
      "num_threads", "2",              // Prometheus scrapes one at a time; two lets a slow client not block it
      "request_timeout_ms", "10000",   // a client that stalls mid-request must not hold a thread for ever
      nullptr};

  std::unique_ptr<Exporter> exporter(new Exporter(std::move(auth), std::move(collectables)));
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
    return Error{fmt::format("cannot serve /metrics on {}: {}", listen,
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

  std::vector<prometheus::MetricFamily> families;
  for (const auto& weak : collectables_) {
    if (auto collectable = weak.lock()) {
      auto collected = collectable->Collect();
      families.insert(families.end(), std::make_move_iterator(collected.begin()),
                      std::make_move_iterator(collected.end()));
    }
  }
  std::ostringstream body;
  prometheus::TextSerializer().Serialize(body, families);
  std::string text = std::move(body).str();
  bool gzipped = false;
  if (accepts_gzip(conn)) {
    if (auto compressed = gzip(text)) {
      text = std::move(*compressed);
      gzipped = true;
    }
  }
  const std::string length = std::to_string(text.size());
  mg_response_header_start(conn, 200);
  mg_response_header_add(conn, "Content-Type", kMetricsContentType, -1);
  if (gzipped) mg_response_header_add(conn, "Content-Encoding", "gzip", -1);
  mg_response_header_add(conn, "Content-Length", length.c_str(), -1);
  mg_response_header_send(conn);
  if (method == "GET") mg_write(conn, text.data(), text.size());
  return 200;
}

}  // namespace netprobe
