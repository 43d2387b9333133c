// Exporter on 127.0.0.1:0 through a tiny blocking HTTP client: the basic-auth accept/reject matrix, the
// Content-Type Prometheus negotiates, no metrics on any other path, and large pages streamed (chunked for
// HTTP/1.1, up to the close for HTTP/1.0, gzipped or not) arriving whole.
#include <gtest/gtest.h>

#include <zlib.h>

#include <prometheus/counter.h>
#include <prometheus/registry.h>

#include <random>

#include "metrics/exporter.h"
#include "metrics/process_collector.h"
#include "tests/support/loopback_http.h"

namespace netprobe {
namespace {

struct HttpResponse {
  int status = 0;
  std::string head;  // status line + headers
  std::string body;
  std::string header(const std::string& name) const {
    // Case-insensitive search of "\r\nName: value".
    std::string lower_head = head, lower_name = name;
    for (auto& c : lower_head) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    for (auto& c : lower_name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    const size_t at = lower_head.find("\r\n" + lower_name + ":");
    if (at == std::string::npos) return {};
    size_t begin = at + 2 + name.size() + 1;
    while (begin < head.size() && head[begin] == ' ') ++begin;
    return head.substr(begin, head.find("\r\n", begin) - begin);
  }
};

// Sends `request` as is and reads until the server closes the connection; "" if the connection fails.
std::string send_and_read(int port, const std::string& request) {
  return testing::loopback_http(port, request);
}

// Splits one response off the front of `raw` (consumed): the body by Content-Length, by chunks
// (Transfer-Encoding: chunked, decoded) or up to the end. Status 0 if it is malformed.
HttpResponse take_response(std::string& raw, bool head_request = false) {
  HttpResponse r;
  const size_t end = raw.find("\r\n\r\n");
  if (end == std::string::npos) return r;
  r.head = raw.substr(0, end + 2);
  std::string rest = raw.substr(end + 4);
  raw.clear();
  const int status = r.head.size() > 12 ? std::atoi(r.head.c_str() + 9) : 0;
  if (head_request) {
    raw = rest;
  } else if (!r.header("Content-Length").empty()) {
    const size_t length = std::stoul(r.header("Content-Length"));
    if (rest.size() < length) return r;
    r.body = rest.substr(0, length);
    raw = rest.substr(length);
  } else if (r.header("Transfer-Encoding") == "chunked") {
    size_t at = 0;
    for (;;) {  // each pass consumes a chunk or returns
      const size_t line_end = rest.find("\r\n", at);
      if (line_end == std::string::npos) return r;
      const size_t size = std::stoul(rest.substr(at, line_end - at), nullptr, 16);
      if (rest.size() < line_end + 2 + size + 2 || rest.compare(line_end + 2 + size, 2, "\r\n") != 0)
        return r;
      r.body += rest.substr(line_end + 2, size);
      at = line_end + 2 + size + 2;
      if (size == 0) break;
    }
    raw = rest.substr(at);
  } else {
    r.body = rest;
  }
  r.status = status;
  return r;
}

// One request, HTTP/1.0 so that the server closes the connection after the body.
HttpResponse http_get(int port, const std::string& path, const std::string& extra_headers = "",
                      const std::string& method = "GET", const std::string& version = "HTTP/1.0") {
  const std::string connection = version == "HTTP/1.0" ? "" : "Connection: close\r\n";
  std::string raw = send_and_read(port, method + " " + path + " " + version + "\r\nHost: 127.0.0.1\r\n" +
                                            connection + extra_headers + "\r\n");
  HttpResponse r = take_response(raw, method == "HEAD");
  if (!raw.empty()) r.status = -1;  // bytes after the response
  return r;
}

std::string gunzip(const std::string& in) {
  z_stream zs{};
  if (inflateInit2(&zs, 15 + 16) != Z_OK) return {};
  std::string out;
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  zs.avail_in = static_cast<uInt>(in.size());
  int rc = Z_OK;
  while (rc == Z_OK) {  // each pass produces output or ends: bounded by the size of the result
    const size_t used = out.size();
    out.resize(used + (1 << 20));
    zs.next_out = reinterpret_cast<Bytef*>(out.data() + used);
    zs.avail_out = 1 << 20;
    rc = inflate(&zs, Z_NO_FLUSH);
    out.resize(used + (1 << 20) - zs.avail_out);
    if (rc == Z_BUF_ERROR && zs.avail_in == 0) break;
  }
  inflateEnd(&zs);
  return rc == Z_STREAM_END ? out : std::string();
}

std::string basic(const std::string& base64_credentials) {
  return "Authorization: Basic " + base64_credentials + "\r\n";
}

class metrics_Exporter : public ::testing::Test {
 protected:
  void SetUp() override {
    registry_ = std::make_shared<prometheus::Registry>();
    prometheus::BuildCounter()
        .Name("tcpsyn_sent_total")
        .Help("h")
        .Register(*registry_)
        .Add({{"group", "g1"}})
        .Increment(3);
    process_ = std::make_shared<ProcessCollector>();
  }
  int start(std::optional<BasicAuth> auth) {
    auto exporter = Exporter::start("127.0.0.1", 0, std::move(auth), {registry_, process_});
    EXPECT_TRUE(exporter.ok()) << (exporter.ok() ? "" : exporter.error().message);
    if (!exporter.ok()) return -1;
    exporter_ = std::move(exporter).value();
    auto ports = exporter_->listening_ports();
    EXPECT_EQ(ports.size(), 1u);
    return ports.empty() ? -1 : ports[0];
  }

  std::shared_ptr<prometheus::Registry> registry_;
  std::shared_ptr<ProcessCollector> process_;
  std::unique_ptr<Exporter> exporter_;
};

TEST_F(metrics_Exporter, ServesMetricsWithVersionedContentType) {
  const int port = start(std::nullopt);
  ASSERT_GT(port, 0);
  const auto r = http_get(port, "/metrics");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.header("Content-Type"), "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_NE(r.body.find("\ntcpsyn_sent_total{group=\"g1\"} 3\n"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("# TYPE process_cpu_seconds_total counter"), std::string::npos);
  EXPECT_EQ(r.header("Content-Length"), std::to_string(r.body.size()));
}

TEST_F(metrics_Exporter, GzipWhenAccepted) {
  const int port = start(std::nullopt);
  ASSERT_GT(port, 0);
  const auto r = http_get(port, "/metrics", "Accept-Encoding: gzip\r\n");  // what Prometheus sends
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.header("Content-Encoding"), "gzip");
  EXPECT_EQ(r.header("Content-Type"), "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_EQ(r.header("Content-Length"), std::to_string(r.body.size()));
  EXPECT_NE(gunzip(r.body).find("\ntcpsyn_sent_total{group=\"g1\"} 3\n"), std::string::npos);

  for (const char* refused : {"Accept-Encoding: gzip;q=0\r\n", "Accept-Encoding: br, deflate\r\n"}) {
    const auto plain = http_get(port, "/metrics", refused);
    EXPECT_TRUE(plain.header("Content-Encoding").empty()) << refused;
    EXPECT_NE(plain.body.find("tcpsyn_sent_total"), std::string::npos) << refused;
  }
  EXPECT_EQ(http_get(port, "/metrics", "Accept-Encoding: deflate, GZIP;q=0.5\r\n").header("Content-Encoding"),
            "gzip");
}

TEST_F(metrics_Exporter, OtherPathsServeNoMetrics) {
  const int port = start(std::nullopt);
  ASSERT_GT(port, 0);
  for (const char* path : {"/metricsx", "/metrics/", "/metrics/x", "/foo", "/index.html", "/status.json/"}) {
    const auto r = http_get(port, path);
    EXPECT_EQ(r.status, 404) << path;
    EXPECT_EQ(r.body.find("tcpsyn_sent_total"), std::string::npos) << path;
  }
  EXPECT_EQ(http_get(port, "/metrics?x=1").status, 200);  // a query string is not another path
}

TEST_F(metrics_Exporter, HeadAndOtherMethods) {
  const int port = start(std::nullopt);
  ASSERT_GT(port, 0);
  const auto head = http_get(port, "/metrics", "", "HEAD");
  EXPECT_EQ(head.status, 200);
  EXPECT_TRUE(head.body.empty());
  EXPECT_EQ(http_get(port, "/metrics", "", "POST").status, 405);
}

TEST_F(metrics_Exporter, BasicAuthMatrix) {
  const int port = start(BasicAuth{"prom", "s3cret"});
  ASSERT_GT(port, 0);
  // base64("prom:s3cret") = cHJvbTpzM2NyZXQ=
  const auto ok = http_get(port, "/metrics", basic("cHJvbTpzM2NyZXQ="));
  EXPECT_EQ(ok.status, 200);
  EXPECT_NE(ok.body.find("tcpsyn_sent_total"), std::string::npos);
  EXPECT_EQ(http_get(port, "/metrics", "Authorization: basic cHJvbTpzM2NyZXQ=\r\n").status,
            200);  // scheme is case-insensitive

  const auto none = http_get(port, "/metrics");
  EXPECT_EQ(none.status, 401);
  EXPECT_EQ(none.header("WWW-Authenticate").rfind("Basic ", 0), 0u) << none.head;
  EXPECT_EQ(none.body.find("tcpsyn_sent_total"), std::string::npos);

  struct Case {
    const char* description;
    std::string headers;
  };
  const std::vector<Case> rejected = {
      {"wrong user (bob:s3cret)", basic("Ym9iOnMzY3JldA==")},
      {"wrong password (prom:wrong)", basic("cHJvbTp3cm9uZw==")},
      {"password prefix (prom:s3cre)", basic("cHJvbTpzM2NyZQ==")},
      {"password with a suffix (prom:s3cret1)", basic("cHJvbTpzM2NyZXQx")},
      {"empty credentials (:)", basic("Og==")},
      {"no colon (proms3cret)", basic("cHJvbXMzY3JldA==")},
      {"not base64", basic("!!!!")},
      {"bearer scheme", "Authorization: Bearer cHJvbTpzM2NyZXQ=\r\n"},
      {"scheme only", "Authorization: Basic\r\n"},
  };
  for (const auto& c : rejected) {
    const auto r = http_get(port, "/metrics", c.headers);
    EXPECT_EQ(r.status, 401) << c.description;
    EXPECT_FALSE(r.header("WWW-Authenticate").empty()) << c.description;
    EXPECT_EQ(r.body.find("tcpsyn_sent_total"), std::string::npos) << c.description;
  }
  // Another path with valid credentials is still not metrics; the status page takes the same credentials.
  EXPECT_EQ(http_get(port, "/foo", basic("cHJvbTpzM2NyZXQ=")).status, 404);
  EXPECT_EQ(http_get(port, "/", basic("cHJvbTpzM2NyZXQ=")).status, 200);
  EXPECT_EQ(http_get(port, "/").status, 401);
  EXPECT_EQ(http_get(port, "/status.json").status, 401);
}

TEST_F(metrics_Exporter, PortInUseIsAnError) {
  const int port = start(std::nullopt);
  ASSERT_GT(port, 0);
  auto second = Exporter::start("127.0.0.1", port, std::nullopt, {registry_});
  ASSERT_FALSE(second.ok());
  EXPECT_NE(second.error().message.find(std::to_string(port)), std::string::npos) << second.error().message;
}

TEST_F(metrics_Exporter, BadAddressIsAnError) {
  EXPECT_FALSE(Exporter::start("not an address", 0, std::nullopt, {registry_}).ok());
  EXPECT_FALSE(Exporter::start("192.0.2.1", 0, std::nullopt, {registry_}).ok());  // not a local address
  EXPECT_FALSE(Exporter::start("127.0.0.1", 70000, std::nullopt, {registry_}).ok());
}

// --web.listen-address given twice: one exporter, two sockets, the same page on both (IPv6 listeners:
// http_test and integration.web.listen); an error on the second (port in use) fails the whole start.
TEST_F(metrics_Exporter, SeveralListeners) {
  std::vector<http::Options> servers(2);
  servers[0].address = "127.0.0.1";
  servers[1].address = "127.0.0.1";
  auto exporter = Exporter::start(servers, {registry_});
  ASSERT_TRUE(exporter.ok()) << exporter.error().message;
  const auto ports = (*exporter)->listening_ports();
  ASSERT_EQ(ports.size(), 2u);
  EXPECT_EQ(http_get(ports[0], "/metrics").status, 200);
  EXPECT_NE(ports[0], ports[1]);
  EXPECT_NE(http_get(ports[1], "/metrics").body.find("tcpsyn_sent_total"), std::string::npos);
  servers[1].port = ports[0];
  EXPECT_FALSE(Exporter::start(servers, {registry_}).ok());
}

// A fixed exposition as a source: one lossy target, one clean one, process health.
class FixedSource : public TextSource {
 public:
  explicit FixedSource(std::string text) : text_(std::move(text)) {}
  bool render(std::string& out, size_t, const TextSink&) const override {
    out += text_;
    return true;
  }

 private:
  std::string text_;
};

TEST_F(metrics_Exporter, StatusPageAndJson) {
  auto source = std::make_shared<FixedSource>(
      "# TYPE icmp_sent_total counter\n"
      "icmp_sent_total{address_family=\"ipv4\",destination=\"lossy<b>\",group=\"g\",probe_name=\"p\"} 100\n"
      "icmp_sent_total{address_family=\"ipv4\",destination=\"clean\",group=\"g\",probe_name=\"p\"} 100\n"
      "icmp_loss_total{address_family=\"ipv4\",destination=\"lossy<b>\",group=\"g\",probe_name=\"p\"} 25\n"
      "icmp_loss_total{address_family=\"ipv4\",destination=\"clean\",group=\"g\",probe_name=\"p\"} 0\n"
      "icmp_loss_ratio{address_family=\"ipv4\",destination=\"lossy<b>\",group=\"g\",probe_name=\"p\"} 0.5\n"
      "icmp_loss_ratio{address_family=\"ipv4\",destination=\"clean\",group=\"g\",probe_name=\"p\"} 0\n"
      "icmp_round_trip_seconds{address_family=\"ipv4\",destination=\"clean\",group=\"g\",percentile=\"95\","
      "probe_name=\"p\"} 0.0025\n"
      "app_worker_restarts_total{probe_name=\"p\"} 2\n"
      "app_reload_conf_failed_status{probe_name=\"p\"} 1\n");
  auto exporter = Exporter::start("127.0.0.1", 0, std::nullopt, {}, {source});
  ASSERT_TRUE(exporter.ok());
  const int port = (*exporter)->listening_ports().at(0);
  const auto html = http_get(port, "/");
  EXPECT_EQ(html.status, 200);
  EXPECT_EQ(html.header("Content-Type"), "text/html; charset=utf-8");
  EXPECT_NE(html.body.find("lossy&lt;b&gt;"), std::string::npos);  // escaped
  EXPECT_EQ(html.body.find("lossy<b>"), std::string::npos);
  EXPECT_NE(html.body.find("50.00 %"), std::string::npos);
  EXPECT_NE(html.body.find("25.00 %"), std::string::npos);
  EXPECT_NE(html.body.find("2.500 ms"), std::string::npos);
  EXPECT_NE(html.body.find("FAILED"), std::string::npos);
  EXPECT_LT(html.body.find("lossy&lt;b&gt;"), html.body.find("clean"));  // worst first
  EXPECT_EQ(html.body.find("<script"), std::string::npos);
  EXPECT_EQ(html.body.find("http://"), std::string::npos);  // no external request
  const auto json = http_get(port, "/status.json");
  EXPECT_EQ(json.status, 200);
  EXPECT_EQ(json.header("Content-Type"), "application/json; charset=utf-8");
  EXPECT_NE(json.body.find("\"destination\": \"lossy<b>\""), std::string::npos) << json.body;
  EXPECT_NE(json.body.find("\"loss_ratio_last_iteration\": 0.5"), std::string::npos) << json.body;
  EXPECT_NE(json.body.find("\"worker_restarts\": 2"), std::string::npos) << json.body;
  EXPECT_NE(json.body.find("\"last_reload_failed\": true"), std::string::npos) << json.body;
}

TEST_F(metrics_Exporter, ExpiredCollectablesAreSkipped) {
  auto extra = std::make_shared<prometheus::Registry>();
  prometheus::BuildGauge().Name("gone_gauge").Help("h").Register(*extra).Add({}).Set(1);
  auto exporter = Exporter::start("127.0.0.1", 0, std::nullopt, {registry_, extra});
  ASSERT_TRUE(exporter.ok());
  const int port = (*exporter)->listening_ports().at(0);
  EXPECT_NE(http_get(port, "/metrics").body.find("gone_gauge"), std::string::npos);
  extra.reset();
  const auto r = http_get(port, "/metrics");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body.find("gone_gauge"), std::string::npos);
}

// A page of `lines` sample lines of poorly compressible values (pseudo-random digits), rendered honouring
// flush_at like the real sources.
class BigSource : public TextSource {
 public:
  explicit BigSource(int lines) {
    std::mt19937_64 rng(7);
    text_ = "# HELP big_metric h\n# TYPE big_metric gauge\n";
    for (int i = 0; i < lines; ++i)
      text_ += "big_metric{i=\"" + std::to_string(i) + "\"} " + std::to_string(rng()) + "\n";
  }
  bool render(std::string& out, size_t flush_at, const TextSink& flush) const override {
    for (size_t at = 0; at < text_.size();) {  // one line per pass
      const size_t end = text_.find('\n', at) + 1;
      out.append(text_, at, end - at);
      at = end;
      if (out.size() >= flush_at) {
        if (!flush(out)) return false;
        out.clear();
      }
    }
    return true;
  }
  const std::string& text() const { return text_; }

 private:
  std::string text_;
};

class metrics_ExporterStreaming : public ::testing::Test {
 protected:
  int start() {
    auto exporter = Exporter::start("127.0.0.1", 0, std::nullopt, {}, {big_});
    EXPECT_TRUE(exporter.ok());
    if (!exporter.ok()) return -1;
    exporter_ = std::move(exporter).value();
    return exporter_->listening_ports().at(0);
  }
  std::shared_ptr<BigSource> big_ = std::make_shared<BigSource>(40000);  // ~1.1 MB of text, ~0.5 MB gzipped
  std::unique_ptr<Exporter> exporter_;
};

// Whole and exactly framed: take_response needs the chunked terminator, http_get fails on any byte after
// the response (the server closes the connection after it: the request says Connection: close or HTTP/1.0).
TEST_F(metrics_ExporterStreaming, LargePagesArriveWhole) {
  const int port = start();
  ASSERT_GT(port, 0);
  struct Case {
    const char* version;
    bool gzip;
    const char* transfer_encoding;  // expected
  };
  for (const Case& c : {Case{"HTTP/1.1", false, "chunked"}, Case{"HTTP/1.1", true, "chunked"},
                        Case{"HTTP/1.0", false, ""}, Case{"HTTP/1.0", true, ""}}) {
    const std::string what = std::string(c.version) + (c.gzip ? " gzip" : " plain");
    const auto r = http_get(port, "/metrics", c.gzip ? "Accept-Encoding: gzip\r\n" : "", "GET", c.version);
    EXPECT_EQ(r.status, 200) << what;
    EXPECT_EQ(r.header("Content-Type"), "text/plain; version=0.0.4; charset=utf-8") << what;
    EXPECT_EQ(r.header("Transfer-Encoding"), c.transfer_encoding) << what;
    EXPECT_EQ(r.header("Content-Length"), "") << what;
    EXPECT_EQ(r.header("Content-Encoding"), c.gzip ? "gzip" : "") << what;
    const std::string body = c.gzip ? gunzip(r.body) : r.body;
    EXPECT_EQ(body.size(), big_->text().size()) << what;
    EXPECT_TRUE(body == big_->text()) << what;
  }
}

// OpenMetrics when asked (what Prometheus 2.42 sends): the same page, streamed and gzipped the same way,
// ending in "# EOF".
TEST_F(metrics_ExporterStreaming, OpenMetricsWhenAsked) {
  const int port = start();
  ASSERT_GT(port, 0);
  const std::string accept =
      "Accept: application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
      "text/plain;version=0.0.4;q=0.5,*/*;q=0.1\r\n";
  for (bool gzip : {false, true}) {
    const auto r =
        http_get(port, "/metrics", accept + (gzip ? "Accept-Encoding: gzip\r\n" : ""), "GET", "HTTP/1.1");
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.header("Content-Type"), "application/openmetrics-text; version=1.0.0; charset=utf-8");
    EXPECT_EQ(r.header("Transfer-Encoding"), "chunked");
    const std::string body = gzip ? gunzip(r.body) : r.body;
    EXPECT_EQ(body, big_->text() + "# EOF\n") << gzip;
  }
  const auto head = http_get(port, "/metrics", accept, "HEAD", "HTTP/1.1");
  EXPECT_EQ(head.header("Content-Type"), "application/openmetrics-text; version=1.0.0; charset=utf-8");
}

TEST(metrics_PrefersOpenMetrics, Table) {
  struct Case {
    std::optional<std::string_view> accept;
    bool openmetrics;
  };
  for (const auto& c : std::vector<Case>{
           {std::nullopt, false},
           {"", false},
           {"*/*", false},
           {"text/plain", false},
           {"text/plain;version=0.0.4;q=0.5,*/*;q=0.1", false},
           {"application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
            "text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
            true},
           {"application/openmetrics-text", true},
           {"Application/OpenMetrics-Text; version=0.0.1", true},
           {"application/openmetrics-text;q=0", false},
           {"application/openmetrics-text;q=0.4, text/plain;q=0.5", false},
           {"text/plain;q=0.5, application/openmetrics-text;q=0.5", true},
           {"application/openmetrics-text;q=abc", false},
           {"application/openmetrics-textx", false},
       }) {
    EXPECT_EQ(prefers_openmetrics(c.accept), c.openmetrics) << (c.accept ? *c.accept : "(none)");
  }
}

TEST_F(metrics_ExporterStreaming, HeadRendersNothing) {
  const int port = start();
  ASSERT_GT(port, 0);
  const auto r = http_get(port, "/metrics", "", "HEAD", "HTTP/1.1");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.header("Content-Type"), "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_TRUE(r.body.empty());
}

TEST(metrics_BasicAuthFromEnv, BothNeitherOrOne) {
  std::string error = "stale";
  auto both = basic_auth_from_env("u", "p", &error);
  ASSERT_TRUE(both);
  EXPECT_EQ(both->user, "u");
  EXPECT_EQ(both->password, "p");
  EXPECT_TRUE(error.empty());

  EXPECT_FALSE(basic_auth_from_env(nullptr, nullptr, &error));
  EXPECT_TRUE(error.empty());

  EXPECT_FALSE(basic_auth_from_env("u", nullptr, &error));
  EXPECT_NE(error.find("PROM_PASSWORD"), std::string::npos) << error;
  EXPECT_FALSE(basic_auth_from_env(nullptr, "p", &error));
  EXPECT_NE(error.find("PROM_USER"), std::string::npos) << error;
  EXPECT_FALSE(basic_auth_from_env("", "p", &error));  // set but empty counts as missing
  EXPECT_NE(error.find("PROM_USER"), std::string::npos) << error;
}

TEST(metrics_ConstantTimeEqual, Table) {
  EXPECT_TRUE(constant_time_equal("", ""));
  EXPECT_TRUE(constant_time_equal("secret", "secret"));
  EXPECT_FALSE(constant_time_equal("secret", "secreT"));
  EXPECT_FALSE(constant_time_equal("secret", "secre"));
  EXPECT_FALSE(constant_time_equal("", "x"));
  EXPECT_FALSE(constant_time_equal(std::string_view("a\0", 2), "a"));  // a NUL pad is not equality
}

}  // namespace
}  // namespace netprobe
