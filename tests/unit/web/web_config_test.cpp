// src/web: bcrypt users (right, wrong, unknown, NUL, the remembered password), the hash format table, the
// web configuration reader (paths, defaults, the GnuTLS priority string), --web.listen-address settings.
// The verdicts on whole files are checked against promtool in tests/integration/test_web_config.py.
#include <crypt.h>

#include <gtest/gtest.h>

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "http/tls.h"
#include "web/reload.h"
#include "web/surface.h"
#include "web/users.h"
#include "web/web_config.h"

namespace netprobe::web {
namespace {

std::string hash(const char* password, int cost = 4) {
  char salt[CRYPT_GENSALT_OUTPUT_SIZE];
  EXPECT_NE(crypt_gensalt_rn("$2b$", static_cast<unsigned long>(cost), nullptr, 0, salt, sizeof salt),
            nullptr);
  crypt_data data{};
  return crypt_rn(password, salt, &data, sizeof data);
}

constexpr auto kAllow = http::AuthVerdict::kAllow;
constexpr auto kDeny = http::AuthVerdict::kDeny;

TEST(web_Users, RightWrongUnknown) {
  UserTable users({{"alice", hash("a-pw")}, {"bob", hash("b-pw", 5)}});
  for (int round = 0; round < 2; ++round) {  // the second round hits the remembered passwords
    EXPECT_EQ(users.check("alice", "a-pw"), kAllow);
    EXPECT_EQ(users.check("bob", "b-pw"), kAllow);
    EXPECT_EQ(users.check("alice", "b-pw"), kDeny);
    EXPECT_EQ(users.check("bob", "a-pw"), kDeny);
    EXPECT_EQ(users.check("carol", "a-pw"), kDeny);
    EXPECT_EQ(users.check("", ""), kDeny);
    EXPECT_EQ(users.check("alice", ""), kDeny);
    EXPECT_EQ(users.check("alice", std::string_view("a-pw\0x", 6)), kDeny);
    EXPECT_EQ(users.check("Alice", "a-pw"), kDeny);
  }
}

// Wrong passwords in parallel: one bcrypt at a time, the others answered kBusy at once (never a wait); the
// remembered good password still gets in while a bcrypt runs.
TEST(web_Users, OneBcryptAtATime) {
  UserTable users({{"alice", hash("a-pw", 8)}});
  ASSERT_EQ(users.check("alice", "a-pw"), kAllow);  // remembered from now on
  std::atomic<int> busy{0}, denied{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i)
    threads.emplace_back([&] {
      for (int j = 0; j < 3; ++j) {
        const auto v = users.check("alice", "wrong");
        (v == http::AuthVerdict::kBusy ? busy : denied)++;
      }
    });
  for (int i = 0; i < 20; ++i) EXPECT_EQ(users.check("alice", "a-pw"), kAllow);
  for (auto& t : threads) t.join();
  EXPECT_EQ(busy + denied, 12);
  EXPECT_GE(denied, 1);
}

TEST(web_Users, HashFormat) {
  const std::string good = hash("pw");
  struct Case {
    std::string hash;
    bool ok;
  };
  for (const auto& c : std::vector<Case>{
           {good, true},
           {"$2a$" + good.substr(4), true},
           {"$2y$" + good.substr(4), true},
           {"$2x$" + good.substr(4), false},
           {"$2$" + good.substr(4), false},
           {"$2b$03$" + good.substr(7), false},
           {"$2b$32$" + good.substr(7), false},
           {"$2b$1a$" + good.substr(7), false},
           {good.substr(0, 59), false},
           {good + "x", false},
           {good.substr(0, 59) + "!", false},
           {"secret", false},
           {"", false},
       }) {
    std::string why;
    EXPECT_EQ(valid_bcrypt_hash(c.hash, &why), c.ok) << c.hash << ": " << why;
    if (!c.ok) {
      EXPECT_FALSE(why.empty());
    }
  }
}

TEST(web_Config, DefaultsAndPaths) {
  auto c = parse_web_config(
      "tls_server_config:\n  cert_file: s.crt\n  key_file: /abs/s.key\n"
      "http_server_config:\n  headers:\n    X-Frame-Options: deny\n",
      "/etc/netprobe");
  ASSERT_TRUE(c.ok()) << c.error().message;
  ASSERT_TRUE(c->tls);
  EXPECT_EQ(c->tls->cert_file, "/etc/netprobe/s.crt");
  EXPECT_EQ(c->tls->key_file, "/abs/s.key");
  EXPECT_EQ(c->tls->client_auth, http::ClientAuth::kNone);
  // exporter-toolkit's defaults: TLS 1.2 and 1.3, the server's preference.
  EXPECT_EQ(c->tls->priorities, "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2:%SERVER_PRECEDENCE");
  ASSERT_EQ(c->headers.size(), 1u);
  EXPECT_EQ(c->headers[0].first, "X-Frame-Options");
  EXPECT_TRUE(c->users.empty());

  auto none = parse_web_config("http_server_config: {http2: false}\n", "/x");
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->tls);
  EXPECT_FALSE(none->http2);
}

TEST(web_Config, PriorityStrings) {
  struct Case {
    std::vector<std::string> suites, curves;
    int min, max;
    bool prefer;
    const char* expected;  // nullptr: an error
  };
  for (const auto& c : std::vector<Case>{
           {{}, {}, http::kTls13, http::kTls13, false, "NORMAL:-VERS-ALL:+VERS-TLS1.3"},
           {{"TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"},
            {"X25519"},
            http::kTls12,
            http::kTls12,
            true,
            "NORMAL:-KX-ALL:-CIPHER-ALL:-MAC-ALL:+ECDHE-RSA:+ECDHE-ECDSA:+AES-128-GCM:+AEAD:-VERS-ALL:+VERS-"
            "TLS1.2:"
            "-GROUP-ALL:+GROUP-X25519:%SERVER_PRECEDENCE"},
           {{"TLS_RSA_WITH_AES_128_CBC_SHA"},
            {},
            http::kTls10,
            http::kTls12,
            false,
            "NORMAL:-KX-ALL:-CIPHER-ALL:-MAC-ALL:+RSA:+AES-128-CBC:+SHA1:-VERS-ALL:+VERS-TLS1.2:+VERS-TLS1.1:"
            "+VERS-"
            "TLS1.0"},
           {{"TLS_RSA_WITH_RC4_128_SHA"}, {}, http::kTls12, http::kTls13, false, nullptr},
           {{}, {"P-256"}, http::kTls12, http::kTls13, false, nullptr},
           {{}, {}, http::kTls13, http::kTls12, false, nullptr},
       }) {
    auto p = http::tls_priorities(c.suites, c.curves, c.min, c.max, c.prefer);
    if (c.expected) {
      ASSERT_TRUE(p.ok()) << p.error().message;
      EXPECT_EQ(*p, c.expected);
    } else {
      EXPECT_FALSE(p.ok()) << *p;
    }
  }
}

TEST(web_Surface, UsersWinOverTheEnvironment) {
  WebSettings settings;
  settings.env_auth = BasicAuth{"env", "pw"};
  auto env_only = server_options(settings, "127.0.0.1", 0);
  ASSERT_TRUE(env_only.ok());
  ASSERT_EQ(env_only->size(), 1u);
  EXPECT_TRUE((*env_only)[0].auth);
  EXPECT_FALSE((*env_only)[0].authenticate);

  settings.users = std::make_shared<UserTable>(std::map<std::string, std::string>{{"file", hash("pw")}});
  settings.listen_addresses = {"127.0.0.1:0", "[::1]:0"};
  auto both = server_options(settings, "ignored", 1);
  ASSERT_TRUE(both.ok());
  ASSERT_EQ(both->size(), 2u);
  for (const auto& o : *both) {
    EXPECT_FALSE(o.auth);
    ASSERT_TRUE(o.authenticate);
    EXPECT_EQ(o.authenticate("file", "pw"), kAllow);
    EXPECT_EQ(o.authenticate("env", "pw"), kDeny);
  }
  EXPECT_EQ(describe_listeners(*both), "127.0.0.1:0, [::1]:0");
}

// check_async: the remembered password answers at once; otherwise the bcrypt runs on the pool and `done`
// gets the verdict (unknown users through the dummy hash); a full pool (kBcryptThreads running, kBcryptQueue
// waiting) answers kBusy at once, and every queued check still gets its verdict.
TEST(web_Users, ChecksOnThePool) {
  auto table = std::make_shared<UserTable>(std::map<std::string, std::string>{{"alice", hash("right")}});
  struct Verdicts {
    std::mutex mutex;
    std::condition_variable changed;
    std::vector<http::AuthVerdict> got;
    bool hold = false;    // `done` waits while true: the pool threads stay busy
    unsigned inside = 0;  // pool threads waiting in `done`
  };
  auto v = std::make_shared<Verdicts>();
  auto done = [v](http::AuthVerdict verdict) {
    std::unique_lock lock(v->mutex);
    ++v->inside;
    v->changed.notify_all();
    v->changed.wait(lock, [&] { return !v->hold; });
    --v->inside;
    v->got.push_back(verdict);
    v->changed.notify_all();
  };
  auto wait_for = [&](size_t n) {
    std::unique_lock lock(v->mutex);
    return v->changed.wait_for(lock, std::chrono::seconds(30), [&] { return v->got.size() >= n; });
  };
  EXPECT_FALSE(UserTable::check_async(table, "alice", "wrong", done));
  ASSERT_TRUE(wait_for(1));
  EXPECT_FALSE(UserTable::check_async(table, "nobody", "right", done));  // the dummy hash, on the pool too
  ASSERT_TRUE(wait_for(2));
  EXPECT_FALSE(UserTable::check_async(table, "alice", std::string_view("ri\0ght", 6), done));
  ASSERT_TRUE(wait_for(3));
  EXPECT_FALSE(UserTable::check_async(table, "alice", "right", done));
  ASSERT_TRUE(wait_for(4));
  EXPECT_EQ(v->got, (std::vector<http::AuthVerdict>{kDeny, kDeny, kDeny, kAllow}));
  // Remembered: answered at once, no bcrypt.
  EXPECT_EQ(UserTable::check_async(table, "alice", "right", done), kAllow);

  // Saturated: the running checks are held in `done`, the queue fills, the next one is refused at once.
  {
    const std::lock_guard lock(v->mutex);
    v->hold = true;
    v->got.clear();
  }
  for (unsigned i = 0; i < kBcryptThreads; ++i) EXPECT_FALSE(UserTable::check_async(table, "bob", "x", done));
  {
    // Both threads inside `done`: the queue is empty and nothing runs a bcrypt.
    std::unique_lock lock(v->mutex);
    ASSERT_TRUE(
        v->changed.wait_for(lock, std::chrono::seconds(30), [&] { return v->inside == kBcryptThreads; }));
  }
  EXPECT_EQ(UserTable::bcrypt_pool_load(), kBcryptThreads);
  for (size_t i = 0; i < kBcryptQueue; ++i)
    EXPECT_FALSE(UserTable::check_async(table, "bob", "x", done)) << i;
  EXPECT_EQ(UserTable::check_async(table, "bob", "x", done), http::AuthVerdict::kBusy);
  EXPECT_EQ(UserTable::check_async(table, "alice", "right", done), kAllow);  // remembered: never busy
  {
    const std::lock_guard lock(v->mutex);
    v->hold = false;
    v->changed.notify_all();
  }
  ASSERT_TRUE(wait_for(kBcryptThreads + kBcryptQueue));
  EXPECT_EQ(v->got, std::vector<http::AuthVerdict>(kBcryptThreads + kBcryptQueue, kDeny));
}

// --web.config.file re-read (web/reload.h): users and headers follow the file; a bad file or one turning TLS
// on keeps the previous configuration and fails once per change; PROM_USER/PROM_PASSWORD when the file has
// no users; no auth when neither.
TEST(web_Reload, FollowsTheFileAndKeepsTheLastGoodOne) {
  char dir_template[] = "/tmp/netprobe-web-reload-XXXXXX";
  ASSERT_NE(mkdtemp(dir_template), nullptr);
  const std::string dir = dir_template, path = dir + "/web.yml";
  int version = 0;
  auto write = [&](const std::string& text) {
    // A new file renamed over the old one, as deployment tools do: a new inode, whatever the clock.
    const std::string tmp = path + std::to_string(++version);
    std::ofstream(tmp) << text;
    ASSERT_EQ(std::rename(tmp.c_str(), path.c_str()), 0);
  };
  const std::string first = hash("first"), second = hash("second");
  write("basic_auth_users: {alice: '" + first +
        "'}\nhttp_server_config: {headers: {X-Frame-Options: deny}}\n");
  WebSettings settings;
  settings.env_auth = BasicAuth{"env", "pw"};
  std::string warning;
  ASSERT_TRUE(load_web_config(path, settings, &warning).ok());
  ASSERT_TRUE(settings.live);
  auto servers = server_options(settings, "127.0.0.1", 0);
  ASSERT_TRUE(servers.ok());
  const http::Options& o = (*servers)[0];
  ASSERT_TRUE(o.authenticate && o.auth_active && o.headers_now);
  LiveWebConfig& live = *settings.live;
  std::string message;
  EXPECT_EQ(live.check(&message), LiveWebConfig::Outcome::kUnchanged);
  EXPECT_TRUE(o.auth_active());
  EXPECT_EQ(o.authenticate("alice", "first"), kAllow);
  EXPECT_EQ(o.authenticate("env", "pw"), kDeny);
  EXPECT_EQ(o.headers_now(), (std::vector<std::pair<std::string, std::string>>{{"X-Frame-Options", "deny"}}));

  write("basic_auth_users: {bob: '" + second +
        "'}\nhttp_server_config: {headers: {X-Frame-Options: sameorigin}}\n");
  EXPECT_EQ(live.check(&message), LiveWebConfig::Outcome::kReloaded);
  EXPECT_NE(message.find("PROM_USER/PROM_PASSWORD are ignored"), std::string::npos) << message;
  EXPECT_EQ(o.authenticate("bob", "second"), kAllow);
  EXPECT_EQ(o.authenticate("alice", "first"), kDeny);
  EXPECT_EQ(o.headers_now()[0].second, "sameorigin");
  EXPECT_TRUE(live.last_ok());

  const std::vector<std::pair<std::string, std::string>> bad_files{
      {"basic_auth_users: {bob: 'not a hash'}\n", "not a bcrypt hash"},
      {"bogus: 1\n", "unknown key 'bogus'"},
      {"basic_auth_users: [\n", "not valid YAML"},
      {"tls_server_config: {cert_file: a.crt, key_file: a.key}\n", "turns TLS on, which needs a restart"},
  };
  for (const auto& [text, says] : bad_files) {
    write(text);
    EXPECT_EQ(live.check(&message), LiveWebConfig::Outcome::kFailed) << text;
    EXPECT_NE(message.find(says), std::string::npos) << message;
    EXPECT_NE(message.find("the previous web configuration stays in force"), std::string::npos) << message;
    EXPECT_FALSE(live.last_ok());
    EXPECT_EQ(live.check(&message), LiveWebConfig::Outcome::kUnchanged) << "said once per change";
    EXPECT_EQ(o.authenticate("bob", "second"), kAllow) << text;
    EXPECT_EQ(o.headers_now()[0].second, "sameorigin");
  }
  ASSERT_EQ(std::remove(path.c_str()), 0);
  EXPECT_EQ(live.check(&message), LiveWebConfig::Outcome::kFailed);
  EXPECT_EQ(o.authenticate("bob", "second"), kAllow);

  // No users in the file: PROM_USER/PROM_PASSWORD decide again.
  write("http_server_config: {headers: {X-Content-Type-Options: nosniff}}\n");
  EXPECT_EQ(live.check(&message), LiveWebConfig::Outcome::kReloaded);
  EXPECT_TRUE(live.last_ok());
  EXPECT_TRUE(o.auth_active());
  EXPECT_EQ(o.authenticate("env", "pw"), kAllow);
  EXPECT_EQ(o.authenticate("bob", "second"), kDeny);
  ASSERT_EQ(std::remove(path.c_str()), 0);
  ASSERT_EQ(rmdir(dir.c_str()), 0);

  // Neither: no authentication.
  LiveWebConfig open("/nonexistent/web.yml", nullptr, {}, nullptr, std::nullopt);
  EXPECT_FALSE(open.auth_active());
}

}  // namespace
}  // namespace netprobe::web
